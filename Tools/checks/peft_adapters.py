# pip install torch==2.15.0 transformers==5.23.0 tokenizers==0.23.3 peft==0.21.2 safetensors==0.8.0 numpy==2.4.6
"""FuseKit's PEFT adapters against peft 0.21.2, end to end:
1. `fusekit extract-lora` writes an adapter; peft loads it (PeftModel.from_pretrained) and its
   merge_and_unload equals `fusekit apply-lora` of the same adapter.
2. Adapters made by peft (rslora + rank_pattern + alpha_pattern + an embedding LoRA + modules_to_save on a
   Llama; fan_in_fan_out on GPT-2's Conv1D), in float32 and bfloat16 bases: `fusekit apply-lora` equals
   merge_and_unload. Prints the max |difference| per case (f32: relative to the tensor's max magnitude;
   bf16: the fraction of bit-equal elements).
Usage: python3 Tools/checks/peft_adapters.py [path/to/fusekit]   (default .build/release/fusekit)"""
import os
import subprocess
import sys
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

FUSEKIT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", ".build", "release", "fusekit")


def fusekit(*args):
    subprocess.run([FUSEKIT, *args, "--quiet"], check=True, stdout=subprocess.DEVNULL)


def load_folder(path):
    tensors = {}
    for fn in os.listdir(path):
        if fn.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(path, fn)))
    return tensors


def compare(label, ours_dir, merged_model, dtype):
    ours = load_folder(ours_dir)
    state = merged_model.state_dict()
    theirs = {k: v for k, v in state.items() if k in ours}
    tied = {"lm_head.weight"} if merged_model.config.tie_word_embeddings else set()   # saved once, as the embedding
    missing = sorted(set(state) - set(ours) - tied)
    assert not missing, f"{label}: FuseKit's output lacks {missing[:3]}"
    worst, equal, total = 0.0, 0, 0
    for name, t in theirs.items():
        a, b = ours[name], t.contiguous()
        assert a.dtype == b.dtype, f"{label} {name}: dtype {a.dtype} vs {b.dtype}"
        scale = b.float().abs().max().item() or 1.0
        worst = max(worst, ((a.float() - b.float()).abs().max().item()) / scale)
        equal += (a.view(torch.int16 if a.element_size() == 2 else torch.int32) ==
                  b.view(torch.int16 if b.element_size() == 2 else torch.int32)).sum().item()
        total += b.numel()
    print(f"{label}: max |FuseKit - peft| / max|W| = {worst:.3e}, bit-equal {100 * equal / total:.4f}% of {total}")
    ok = worst <= 1e-6 if dtype == torch.float32 else equal / total >= 0.999
    return ok


def peft_adapter(base_dir, model_cls, config, out_dir, gen):
    model = model_cls.from_pretrained(base_dir, dtype=torch.float32)
    pm = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                p.copy_(p + 0.2 * torch.randn(p.shape, generator=gen))
    pm.save_pretrained(out_dir)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, tie_word_embeddings=False)
        base = LlamaForCausalLM(cfg).eval()
        ft = LlamaForCausalLM(cfg).eval()
        ft.load_state_dict(base.state_dict())
        with torch.no_grad():
            for name, p in ft.named_parameters():
                if p.dim() == 2 and "embed" not in name and "lm_head" not in name:
                    p.add_(0.02 * torch.randn(p.shape[0], 3) @ torch.randn(3, p.shape[1]))
        for d, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            base.to(dtype).save_pretrained(os.path.join(tmp, f"base-{d}"))
        ft.save_pretrained(os.path.join(tmp, "ft"))

        # 1. FuseKit writes, peft reads.
        fusekit("extract-lora", "--model", os.path.join(tmp, "ft"), "--base", os.path.join(tmp, "base-f32"),
                os.path.join(tmp, "extracted"), "--rank", "3")
        cases = [("extract-lora adapter", "extracted", LlamaForCausalLM)]

        # 2. peft writes, FuseKit reads.
        peft_adapter(os.path.join(tmp, "base-f32"), LlamaForCausalLM,
                     LoraConfig(r=8, lora_alpha=16, use_rslora=True, init_lora_weights=False,
                                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens"],
                                rank_pattern={"model.layers.1.self_attn.q_proj": 2, "down_proj": 4}, alpha_pattern={"v_proj": 5},
                                modules_to_save=["lm_head"]),
                     os.path.join(tmp, "llama-adapter"), gen)
        cases.append(("peft llama adapter (rslora, patterns, embedding, modules_to_save)", "llama-adapter", LlamaForCausalLM))

        gcfg = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=64)
        gpt2 = GPT2LMHeadModel(gcfg).eval()
        for d, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            gpt2.to(dtype).save_pretrained(os.path.join(tmp, f"gpt2-{d}"))
        peft_adapter(os.path.join(tmp, "gpt2-f32"), GPT2LMHeadModel,
                     LoraConfig(r=4, lora_alpha=8, fan_in_fan_out=True, init_lora_weights=False,
                                target_modules=["c_attn", "c_proj", "c_fc"]),
                     os.path.join(tmp, "gpt2-adapter"), gen)
        cases.append(("peft gpt2 adapter (fan_in_fan_out Conv1D)", "gpt2-adapter", GPT2LMHeadModel))

        for label, adapter, cls in cases:
            stem = "gpt2" if cls is GPT2LMHeadModel else "base"
            for d, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
                out = os.path.join(tmp, f"applied-{adapter}-{d}")
                fusekit("apply-lora", os.path.join(tmp, f"{stem}-{d}"), os.path.join(tmp, adapter), out)
                model = cls.from_pretrained(os.path.join(tmp, f"{stem}-{d}"), dtype=dtype)
                merged = PeftModel.from_pretrained(model, os.path.join(tmp, adapter)).merge_and_unload()
                ok &= compare(f"{label}, {d}", out, merged, dtype)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
