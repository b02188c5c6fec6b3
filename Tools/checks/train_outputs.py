# pip install torch==2.15.0 transformers==5.23.0 tokenizers==0.23.3 peft==0.21.2 safetensors==0.8.0 numpy==2.4.6
"""A LoRA trained by `fusekit train` loads in peft, and a fully fine-tuned folder in transformers, and
each means the same thing there.

Makes a tiny random Llama with transformers (the byte-level BPE tokenizer of
Tests/Fixtures/tokenizers/gpt2-trained), trains a LoRA (q_proj, v_proj, down_proj; dropout 0) for a few
steps with `fusekit train --eval`, then loads base + adapter with PeftModel.from_pretrained and computes
the held-out loss itself, tokenizing and packing the {"text"} lines as FuseTrain documents
(encode with special tokens, EOS after each document, windows of seq_len + 1 overlapping by one).
Prints both losses; they must agree to 1e-4 (relative). Also checks the adapter's key names.
Usage: /opt/fkvenv/bin/python Tools/checks/train_outputs.py [path/to/fusekit]   (default .build/debug/fusekit)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from peft import PeftModel
from safetensors import safe_open
from transformers import LlamaForCausalLM

from tiny_llama import ROOT, make_base, packed_windows

FUSEKIT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug", "fusekit")
SEQ_LEN = 24
TEXTS = ["the quick brown fox jumps over the lazy dog", "hello world, this is a tiny corpus for a tiny model",
         "merging models needs statistics", "fisher and regmean are two ways to merge", "low rank adapters are small"]


def main():
    work = tempfile.mkdtemp(prefix="fusekit-train-peft-")
    try:
        base, base_dir, data = make_base(work, 0, TEXTS)
        out = os.path.join(work, "out")
        subprocess.run([FUSEKIT, "train", base_dir, "--data", data, out, "--eval", data, "--lora-rank", "4", "--lora-alpha", "8",
                        "--lora-targets", "q_proj,v_proj,down_proj", "--steps", "6", "--lr", "1e-2", "--batch-size", "2",
                        "--seq-len", str(SEQ_LEN), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        ours = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][-1]["eval_loss"]
        with safe_open(os.path.join(out, "adapter_model.safetensors"), "pt") as f:
            keys = sorted(f.keys())
        assert all(k.startswith("base_model.model.model.layers.") and (k.endswith(".lora_A.weight") or k.endswith(".lora_B.weight")) for k in keys), keys
        assert len(keys) == 2 * 2 * 3, keys

        model = PeftModel.from_pretrained(base, out).eval()
        windows = packed_windows(TEXTS, SEQ_LEN)
        def loss():
            total, count = 0.0, 0
            with torch.no_grad():
                for window in windows:
                    logits = model(input_ids=torch.tensor([window[:-1]])).logits[0]
                    total += torch.nn.functional.cross_entropy(logits.double(), torch.tensor(window[1:]), reduction="sum").item()
                    count += len(window) - 1
            return total / count
        theirs = loss()
        with model.disable_adapter():
            untrained = loss()
        rel = abs(ours - theirs) / abs(theirs)
        print(f"held-out loss: fusekit {ours:.6f}, peft {theirs:.6f} (base without adapter {untrained:.6f}), relative difference {rel:.2e}")
        assert abs(untrained - theirs) > 1e-2, "the adapter must change the loss for this check to mean anything"
        if rel > 1e-4:
            print("MISMATCH")
            sys.exit(1)
        print("ok: the trained adapter loads in peft with the same meaning")

        # Full fine-tuning: OUT_DIR is an HF folder that transformers loads, with the same held-out loss.
        full = os.path.join(work, "full")
        subprocess.run([FUSEKIT, "train", base_dir, "--data", data, full, "--eval", data, "--steps", "4", "--lr", "1e-3",
                        "--batch-size", "2", "--seq-len", str(SEQ_LEN), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        ours = [json.loads(l) for l in open(os.path.join(full, "metrics.jsonl"))][-1]["eval_loss"]
        model = LlamaForCausalLM.from_pretrained(full).eval()
        theirs = loss()
        rel = abs(ours - theirs) / abs(theirs)
        print(f"full fine-tune held-out loss: fusekit {ours:.6f}, transformers {theirs:.6f} (base {untrained:.6f}), relative difference {rel:.2e}")
        assert abs(untrained - theirs) > 1e-2
        if rel > 1e-4:
            print("MISMATCH")
            sys.exit(1)
        print("ok: the fully fine-tuned folder loads in transformers with the same meaning")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
