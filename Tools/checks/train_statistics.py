# pip install torch==2.15.0 transformers==5.23.0 tokenizers==0.23.3 safetensors==0.8.0 numpy==2.4.6
"""`fusekit stats` against PyTorch on a tiny random Llama (transformers), end to end.

Gram: forward hooks on every nn.Linear collect its input rows per sequence, G = Σ xᵀx.
Fisher: per sequence, backward of the summed next-token NLL, F = mean over sequences of grad².
Sequences are the {"text"} lines packed as FuseTrain does (encode with special tokens, EOS after each
document, windows of seq_len + 1 overlapping by one). Prints the largest relative difference per
statistic; fails above 1e-4 (Gram) / 1e-3 (Fisher, squared f32 gradients).
Usage: /opt/fkvenv/bin/python Tools/checks/train_statistics.py [path/to/fusekit]   (default .build/debug/fusekit)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FUSEKIT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug", "fusekit")
TOKENIZER = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "gpt2-trained", "tokenizer.json")
SEQ_LEN, EOS = 16, 0
TEXTS = ["the quick brown fox jumps over the lazy dog", "hello world, this is a tiny corpus for a tiny model",
         "merging models needs statistics", "fisher and regmean are two ways to merge"]


def main():
    work = tempfile.mkdtemp(prefix="fusekit-stats-check-")
    try:
        torch.manual_seed(1)
        config = LlamaConfig(vocab_size=2560, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, head_dim=8, max_position_embeddings=64, eos_token_id=EOS, bos_token_id=EOS,
                             tie_word_embeddings=False)
        model = LlamaForCausalLM(config).eval()
        base = os.path.join(work, "base")
        model.save_pretrained(base)
        shutil.copy(TOKENIZER, os.path.join(base, "tokenizer.json"))
        data = os.path.join(work, "data.jsonl")
        with open(data, "w") as f:
            for t in TEXTS:
                f.write(json.dumps({"text": t}) + "\n")
        for kind in ["gram", "fisher"]:
            subprocess.run([FUSEKIT, "stats", base, "--data", data, "--" + kind, os.path.join(work, kind + ".safetensors"),
                            "--seq-len", str(SEQ_LEN), "--quiet"], check=True, stdout=subprocess.DEVNULL)

        tok = Tokenizer.from_file(TOKENIZER)
        stream = []
        for t in TEXTS:
            ids = tok.encode(t).ids
            if not ids or ids[-1] != EOS:
                ids.append(EOS)
            stream += ids
        windows, start = [], 0
        while len(stream) - start >= 2:
            windows.append(stream[start:start + SEQ_LEN + 1])
            start += SEQ_LEN

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
