# pip install torch==2.15.0 transformers==5.23.0 safetensors==0.8.0 numpy==2.4.6
"""Random cross-check of FuseModels' forward pass against transformers.

Makes random tiny configs of every architecture FuseModels runs (Llama with every rope type, Mistral
with a small sliding window, Qwen2 with biases and optional sliding layers, Gemma 3 text with short
sliding windows and soft-capping, GPT-2 with its attention-scaling switches), saves them with
save_pretrained in f32 or bf16, runs transformers (eager attention) on random token sequences
(length 1, short, longer than the sliding window, and a left-padded batch), and compares the logits
of `fusekit logits` (a hidden command) fed all at once and through the KV cache one token and three
tokens at a time. The error is max |fusekit - transformers| / max |transformers| over a case.

bf16 checkpoints are compared with transformers in f32 on the bf16-rounded weights (FuseKit computes
in f32); Gemma's embedding scale is then rounded to bf16 as transformers does for a bf16 model.

Run (from the repository root, after `swift build -c release --product fusekit`):
  /opt/fkvenv/bin/python Tools/checks/runtime_random.py --cases 20 [--seed 1] [--arch llama,gemma3]
                                                        [--keep /tmp/rt] [--tolerance 2e-5]
Exit status 1 when a case disagrees; the failing case folders are kept (under --keep or a temp dir).
"""
import argparse, json, os, shutil, subprocess, sys, tempfile
import numpy as np
import torch
from safetensors.torch import save_file, load_file
from transformers import (GPT2Config, GPT2LMHeadModel, Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig,
                          LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
FUSEKIT = ".build/release/fusekit"
ARCHS = ["llama", "mistral", "qwen2", "gemma3", "gpt2"]


def pick(rng, xs):
    return xs[int(rng.integers(len(xs)))]


def heads_and_dims(rng, head_dim_free):
    """(hidden, heads, kv_heads, head_dim): GQA ratio 1, 2 or 4; head_dim free where the architecture allows."""
    ratio = pick(rng, [1, 2, 4])
    kv = pick(rng, [1, 2])
    heads = kv * ratio
    if head_dim_free:
        head_dim = pick(rng, [4, 6, 8, 10, 12, 16])   # transformers still wants hidden % heads == 0
        hidden = heads * int(rng.integers(-(-24 // heads), 64 // heads + 1))
    else:
        head_dim = pick(rng, [4, 6, 8, 12, 16])
        hidden = heads * head_dim
        while hidden < 24: head_dim += 2; hidden = heads * head_dim
        while hidden > 64: head_dim -= 2; hidden = heads * head_dim
    return hidden, heads, kv, head_dim


def llama_rope(rng, max_pos):
    theta = float(pick(rng, [10000.0, 500000.0, 1e6, 100.0, 12345.6]))
    kind = pick(rng, ["default", "linear", "dynamic", "llama3", "yarn"])
    if kind == "default": return {"rope_type": "default", "rope_theta": theta}
    if kind == "linear": return {"rope_type": "linear", "factor": float(pick(rng, [2.0, 4.0, 0.5])), "rope_theta": theta}
    if kind == "dynamic": return {"rope_type": "dynamic", "factor": float(pick(rng, [2.0, 4.0])), "rope_theta": theta}
    if kind == "llama3":
        return {"rope_type": "llama3", "factor": float(pick(rng, [8.0, 4.0, 2.0])), "low_freq_factor": float(pick(rng, [1.0, 2.0])),
                "high_freq_factor": float(pick(rng, [4.0, 8.0])), "original_max_position_embeddings": int(pick(rng, [8, 16, 32])),
                "rope_theta": theta}
    p = {"rope_type": "yarn", "factor": float(pick(rng, [2.0, 4.0, 8.0])), "original_max_position_embeddings": int(pick(rng, [8, 16, 32])),
         "rope_theta": theta}
    if rng.random() < 0.3: p["beta_fast"], p["beta_slow"] = 16.0, 2.0
    if rng.random() < 0.3: p["attention_factor"] = float(pick(rng, [0.8, 1.3]))
    if rng.random() < 0.2: p["truncate"] = False
    if rng.random() < 0.2: p["mscale"], p["mscale_all_dim"] = 1.0, 0.5
    return p


CONFIG_EDITS = [None]   # what make_case wants changed in the saved config.json (read back by both sides)


def make_case(arch, rng):
    """(model class, config, sliding window or 0) for one random case."""
    vocab = int(rng.integers(40, 91))
    layers = int(rng.integers(1, 4))
    eps = float(pick(rng, [1e-5, 1e-6, 1e-3, 0.1]))
    tied = bool(rng.random() < 0.5)
    ids = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if arch in ("llama", "mistral", "qwen2"):
        hidden, heads, kv, head_dim = heads_and_dims(rng, head_dim_free=True)
        common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=int(rng.integers(16, 97)), num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim, max_position_embeddings=64,
                      rms_norm_eps=eps, tie_word_embeddings=tied, hidden_act=pick(rng, ["silu", "silu", "gelu_pytorch_tanh"]), **ids)
        if arch == "llama":
            return LlamaForCausalLM, LlamaConfig(**common, rope_parameters=llama_rope(rng, 64), attention_bias=bool(rng.random() < 0.4),
                                                 mlp_bias=bool(rng.random() < 0.4)), 0
        if arch == "mistral":
            w = int(pick(rng, [2, 3, 4, 5]))
            return MistralForCausalLM, MistralConfig(**common, sliding_window=w, rope_theta=float(pick(rng, [10000.0, 1e6]))), w
        sliding = bool(rng.random() < 0.5)
        w = int(pick(rng, [2, 3, 4]))
        return Qwen2ForCausalLM, Qwen2Config(**common, use_sliding_window=sliding, sliding_window=w, max_window_layers=int(rng.integers(0, layers + 1)),
                                             rope_theta=float(pick(rng, [10000.0, 1e6]))), (w if sliding else 0)
    if arch == "gemma3":
        hidden, heads, kv, head_dim = heads_and_dims(rng, head_dim_free=bool(rng.random() < 0.5))
        w = int(pick(rng, [2, 3, 4, 5]))
        types = [pick(rng, ["sliding_attention", "full_attention"]) for _ in range(layers)]
        extra = {}
        if rng.random() < 0.3:   # an older Hub config: sliding_window_pattern instead of layer_types
            pattern = int(rng.integers(1, 4))
            types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]
            CONFIG_EDITS[0] = {"drop": ["layer_types"], "set": {"sliding_window_pattern": pattern}}
        if rng.random() < 0.4: extra["final_logit_softcapping"] = float(pick(rng, [0.5, 2.0, 30.0]))
        if rng.random() < 0.4: extra["attn_logit_softcapping"] = float(pick(rng, [0.5, 5.0, 50.0]))
        rope = {"sliding_attention": {"rope_type": "default", "rope_theta": float(pick(rng, [10000.0, 100.0]))},
                "full_attention": {"rope_type": "default", "rope_theta": float(pick(rng, [1e6, 10000.0]))}}
        if rng.random() < 0.3: rope["full_attention"] = {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}
        return Gemma3ForCausalLM, Gemma3TextConfig(
            vocab_size=vocab, hidden_size=hidden, intermediate_size=int(rng.integers(16, 97)), num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim, sliding_window=w,
            query_pre_attn_scalar=int(pick(rng, [head_dim, 24, 7])), layer_types=types, rope_parameters=rope,
            max_position_embeddings=64, rms_norm_eps=eps, tie_word_embeddings=tied, bos_token_id=2, eos_token_id=1, pad_token_id=0,
            attention_bias=bool(rng.random() < 0.3),
            **extra), w
    hidden, heads, _, _ = heads_and_dims(rng, head_dim_free=False)
    return GPT2LMHeadModel, GPT2Config(
        vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=int(rng.integers(30, 65)),
        n_inner=pick(rng, [None, int(rng.integers(16, 97))]), layer_norm_epsilon=eps,
        activation_function=pick(rng, ["gelu_new", "gelu_pytorch_tanh"]),
        scale_attn_weights=bool(rng.random() < 0.8), scale_attn_by_inverse_layer_idx=bool(rng.random() < 0.5),
        reorder_and_upcast_attn=bool(rng.random() < 0.3), tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2), 0


def randomize(model, g):
    """Random norms and biases (transformers' init leaves them at 1 and 0); Gemma norms are zero-centred."""
    gemma = "gemma" in type(model).__name__.lower()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                centre = 1.0 if ("norm" in name or "ln_" in name) and not gemma else 0.0
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + centre)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)


def reference(model, prompts, pad_left=True):
    out = {}
    with torch.no_grad():
        for i, p in enumerate(prompts):
            out[f"p{i}"] = model(input_ids=torch.tensor(p)[None]).logits[0].float()
        tmax = max(len(p) for p in prompts)
        ids = torch.zeros((len(prompts), tmax), dtype=torch.int64)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, tmax - len(p):] = torch.tensor(p)
            mask[i, tmax - len(p):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out["batch"] = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
    return out, ids, mask


def run_case(arch, k, rng, folder, dtype, tolerance):
    CONFIG_EDITS[0] = None
    cls, config, window = make_case(arch, rng)
    config._attn_implementation = "eager"
    torch.manual_seed(int(rng.integers(1 << 30)))
    model = cls(config).eval()
    randomize(model, torch.Generator().manual_seed(int(rng.integers(1 << 30))))
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder)
    if CONFIG_EDITS[0]:
        path = os.path.join(folder, "config.json")
        saved = json.load(open(path))
        for key in CONFIG_EDITS[0]["drop"]: saved.pop(key, None)
        saved.update(CONFIG_EDITS[0]["set"])
        json.dump(saved, open(path, "w"), indent=2)
    # The reference is the saved checkpoint read back in f32 (a cast model would keep bf16-rounded rope buffers).
    model = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    if dtype == "bf16" and arch == "gemma3":   # transformers scales by the embedding-dtype value in a bf16 model
        model.model.embed_tokens.embed_scale.copy_(torch.tensor(config.hidden_size ** 0.5).to(torch.bfloat16).float())
    max_len = getattr(config, "n_positions", None) or config.max_position_embeddings
    lengths = [1, int(rng.integers(2, 9)), min(max_len, int(rng.integers(max(window, 6) + 2, 30)))]
    prompts = [rng.integers(0, config.vocab_size, size=n).tolist() for n in lengths]
    ref, bids, bmask = reference(model, prompts)
    inputs = {f"p{i}.ids": torch.tensor(p, dtype=torch.int64) for i, p in enumerate(prompts)}
    inputs["batch.ids"], inputs["batch.mask"] = bids, bmask
    save_file(inputs, os.path.join(folder, "inputs.safetensors"))
    worst, where = 0.0, ""
    for step in (0, 1, 3):
        outp = os.path.join(folder, f"out{step}.safetensors")
        r = subprocess.run([FUSEKIT, "logits", folder, "--input", os.path.join(folder, "inputs.safetensors"), "--output", outp,
                            "--step", str(step)], capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"fusekit failed: {r.stderr.strip()[:300]}", config
        got = load_file(outp)
        for key, want in ref.items():
            have = got[key + ".logits"]
            if key == "batch":   # padding rows are unspecified: compare real tokens only
                m = bmask.bool()
                have, want = have[m], want[m]
            scale = max(float(want.abs().max()), 1e-6)
            err = float((have - want).abs().max()) / scale
            if err > worst: worst, where = err, f"{key} step {step}"
    return worst, where, config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10, help="cases per architecture and dtype")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--arch", default="llama,mistral,qwen2,gemma3,gpt2")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--keep", default=None, help="folder for the case folders (default: a temp dir, failures kept)")
    ap.add_argument("--tolerance", type=float, default=2e-5, help="max relative error (of the largest |logit|)")
    args = ap.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="runtime_random_")
    os.makedirs(root, exist_ok=True)
    failures, total = [], 0
    for arch in args.arch.split(","):
        for dtype in args.dtypes.split(","):
            for k in range(args.cases):
                rng = np.random.default_rng([args.seed, ARCHS.index(arch), k, int(dtype == "bf16")])
                folder = os.path.join(root, f"{arch}_{dtype}_{k}")
                shutil.rmtree(folder, ignore_errors=True)
                worst, where, config = run_case(arch, k, rng, folder, dtype, args.tolerance)
                total += 1
                bad = worst is None or worst > args.tolerance
                status = "FAIL" if bad else "ok"
                print(f"{status} {arch} {dtype} #{k}: {'error' if worst is None else f'{worst:.2e}'} {where}", flush=True)
                if bad:
                    failures.append(folder)
                elif not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
    print(f"{total - len(failures)}/{total} cases agree (tolerance {args.tolerance}); failures kept: {failures}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
