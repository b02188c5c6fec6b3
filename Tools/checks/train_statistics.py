# pip install torch==2.15.0 transformers==5.23.0 tokenizers==0.23.3 safetensors==0.8.0 numpy==2.4.6
"""`fusekit stats` against PyTorch on a tiny random Llama (transformers), end to end.

Gram: forward hooks on every nn.Linear collect its input rows per sequence, G = Σ xᵀx.
Fisher: per sequence, backward of the summed next-token NLL, F = mean over sequences of grad².
Sequences are the {"text"} lines packed as FuseTrain does (encode with special tokens, EOS after each
document, windows of seq_len + 1 overlapping by one). Prints the largest relative difference per
statistic; fails above 1e-4 (Gram) / 1e-3 (Fisher, squared f32 gradients).
Usage: /opt/fkvenv/bin/python Tools/checks/train_statistics.py [path/to/fusekit]   (default .build/debug/fusekit)
"""
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

from tiny_llama import ROOT, make_base, packed_windows

FUSEKIT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug", "fusekit")
SEQ_LEN = 16
TEXTS = ["the quick brown fox jumps over the lazy dog", "hello world, this is a tiny corpus for a tiny model",
         "merging models needs statistics", "fisher and regmean are two ways to merge"]


def main():
    work = tempfile.mkdtemp(prefix="fusekit-stats-check-")
    try:
        model, base, data = make_base(work, 1, TEXTS)
        for kind in ["gram", "fisher"]:
            subprocess.run([FUSEKIT, "stats", base, "--data", data, "--" + kind, os.path.join(work, kind + ".safetensors"),
                            "--seq-len", str(SEQ_LEN), "--quiet"], check=True, stdout=subprocess.DEVNULL)

        windows = packed_windows(TEXTS, SEQ_LEN)

        grams = {}
        def hook(name):
            def f(module, inputs, output):
                x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
                grams[name] = grams.get(name, 0) + x.T @ x
            return f
        handles = [m.register_forward_hook(hook(n + ".weight")) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
        fisher = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in model.named_parameters()}
        for w in windows:
            model.zero_grad()
            logits = model(input_ids=torch.tensor([w[:-1]])).logits[0]
            torch.nn.functional.cross_entropy(logits, torch.tensor(w[1:]), reduction="sum").backward()
            for n, p in model.named_parameters():
                fisher[n] += p.grad.double() ** 2 / len(windows)
        for h in handles:
            h.remove()

        ours = load_file(os.path.join(work, "gram.safetensors"))
        assert set(ours) == set(grams), (sorted(set(ours) ^ set(grams)))
        worst = max(((ours[n].double() - g).abs().max() / g.abs().max()).item() for n, g in grams.items())
        print(f"gram: {len(grams)} linear layers, max relative difference {worst:.2e}")
        ok = worst < 1e-4
        ours = load_file(os.path.join(work, "fisher.safetensors"))
        assert set(ours) == set(fisher), (sorted(set(ours) ^ set(fisher)))
        worst = max(((ours[n].double() - f).abs().max() / f.abs().max()).item() for n, f in fisher.items())
        print(f"fisher: {len(fisher)} parameters, max relative difference {worst:.2e}")
        ok = ok and worst < 1e-3
        print("ok" if ok else "MISMATCH")
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
