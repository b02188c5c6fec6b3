# pip install torch==2.15.0 transformers==5.23.0 tokenizers==0.23.3 peft==0.21.2 safetensors==0.8.0 numpy==2.4.6
"""Checks `fusekit extract-lora` end to end against PEFT:
1. builds a tiny Llama base and a fine-tune whose linear weights moved by a rank-4 update plus small noise;
2. runs `fusekit extract-lora --model FT --base BASE OUT --rank R --json`;
3. loads the adapter with peft (PeftModel.from_pretrained), merges it into the base, and checks for every
   linear module that ‖W_ft − W_merged‖_F equals the residual FuseKit predicts from the discarded singular
   values (Eckart–Young), and that the merged model's logits approach the fine-tune's as R grows.
Usage: python3 Tools/check_lora_extraction.py [path/to/fusekit]   (default .build/release/fusekit)"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from peft import PeftModel
from transformers import LlamaConfig, LlamaForCausalLM

FUSEKIT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".build", "release", "fusekit")


def main():
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=128, max_position_embeddings=64, tie_word_embeddings=False)
    base = LlamaForCausalLM(cfg).eval()
    ft = LlamaForCausalLM(cfg).eval()
    ft.load_state_dict(base.state_dict())
    with torch.no_grad():
        for name, p in ft.named_parameters():
            if p.ndim == 2 and "embed" not in name and "lm_head" not in name:
                u, v = torch.randn(p.shape[0], 4) * 0.05, torch.randn(4, p.shape[1]) * 0.05
                p += u @ v + 0.001 * torch.randn(p.shape)
    ids = torch.randint(0, 128, (1, 16))
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        base.save_pretrained(os.path.join(tmp, "base"))
        ft.save_pretrained(os.path.join(tmp, "ft"))
        previous = None
        for rank in (2, 4, 16):
            out = os.path.join(tmp, f"lora{rank}")
            res = subprocess.run([FUSEKIT, "extract-lora", "--model", os.path.join(tmp, "ft"), "--base", os.path.join(tmp, "base"),
                                  out, "--rank", str(rank), "--json", "--quiet"], check=True, capture_output=True, text=True)
            summary = json.loads(res.stdout)
            predicted = {e["module"]: e["predicted_residual"] for e in summary["errors"]}
            fresh = LlamaForCausalLM(cfg).eval()
            fresh.load_state_dict(base.state_dict())
            merged = PeftModel.from_pretrained(fresh, out).merge_and_unload().eval()
            ft_state, merged_state = ft.state_dict(), merged.state_dict()
            worst = 0.0
            for module, want in predicted.items():
                got = (ft_state[module + ".weight"] - merged_state[module + ".weight"]).norm().item()
                worst = max(worst, abs(got - want) / max(want, 1e-6))
                if abs(got - want) > 1e-4 + 1e-3 * want:
                    print(f"  FAIL rank {rank} {module}: residual {got:.6g}, predicted {want:.6g}")
                    failures += 1
            with torch.no_grad():
                gap = (merged(ids).logits - ft(ids).logits).abs().max().item()
            print(f"rank {rank}: {len(predicted)} modules, residual vs prediction worst rel diff {worst:.2e}, max |logit gap| {gap:.3e}")
            if previous is not None and gap > previous + 1e-5:
                print("  FAIL: logit gap grew with the rank"); failures += 1
            previous = gap
    print("PASS" if failures == 0 else f"{failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
