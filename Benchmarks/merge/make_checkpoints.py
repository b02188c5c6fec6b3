# pip install torch==2.15.0 safetensors==0.8.0 numpy==2.4.6
"""Writes three random TinyLlama-shaped (1.1B parameters) bf16 checkpoints for the merge benchmark:
base, and two fine-tunes (base + small random deltas, one of them half-sparse). Sharded like HF (2 GB)."""
import json
import os
import sys

import torch
from safetensors.torch import save_file

HIDDEN, INTER, LAYERS, HEADS, KV, VOCAB = 2048, 5632, 22, 32, 4, 32000
KV_DIM = HIDDEN // HEADS * KV


def shapes():
    s = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = (HIDDEN,)
        s[p + "self_attn.q_proj.weight"] = (HIDDEN, HIDDEN)
        s[p + "self_attn.k_proj.weight"] = (KV_DIM, HIDDEN)
        s[p + "self_attn.v_proj.weight"] = (KV_DIM, HIDDEN)
        s[p + "self_attn.o_proj.weight"] = (HIDDEN, HIDDEN)
        s[p + "post_attention_layernorm.weight"] = (HIDDEN,)
        s[p + "mlp.gate_proj.weight"] = (INTER, HIDDEN)
        s[p + "mlp.up_proj.weight"] = (INTER, HIDDEN)
        s[p + "mlp.down_proj.weight"] = (HIDDEN, INTER)
    s["model.norm.weight"] = (HIDDEN,)
    s["lm_head.weight"] = (VOCAB, HIDDEN)
    return s


def write(folder, tensors_fn):
    os.makedirs(folder, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
           "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
           "num_key_value_heads": KV, "vocab_size": VOCAB, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
           "tie_word_embeddings": False, "torch_dtype": "bfloat16", "hidden_act": "silu"}
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"), indent=2)
    shard, size, shards, index = {}, 0, [], {}
    names = list(shapes().keys())
    for n in names:
        t = tensors_fn(n)
        if size + t.numel() * 2 > 2_000_000_000 and shard:
            shards.append(shard); shard, size = {}, 0
        shard[n] = t
        size += t.numel() * 2
    shards.append(shard)
    total = 0
    for k, sh in enumerate(shards):
        fn = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(sh, os.path.join(folder, fn), metadata={"format": "pt"})
        for n, t in sh.items():
            index[n] = fn
            total += t.numel() * 2
    json.dump({"metadata": {"total_size": total}, "weight_map": index},
              open(os.path.join(folder, "model.safetensors.index.json"), "w"), indent=2)


def main(root):
    s = shapes()
    def base_tensor(n):
        g = torch.Generator().manual_seed(hash(n) % (2 ** 31))
        if n.endswith("norm.weight"):
            return (1 + 0.05 * torch.randn(s[n], generator=g)).bfloat16()
        return (0.02 * torch.randn(s[n], generator=g)).bfloat16()
    for name, scale, sparse in (("base", 0, False), ("a", 0.002, False), ("b", 0.003, True)):
        folder = os.path.join(root, name)
        if os.path.exists(os.path.join(folder, "model.safetensors.index.json")):
            continue
        def fn(n, scale=scale, sparse=sparse, name=name):
            t = base_tensor(n)
            if scale == 0:
                return t
            g = torch.Generator().manual_seed((hash(n) + len(name) * 7919) % (2 ** 31))
            d = scale * torch.randn(s[n], generator=g)
            if sparse:
                d = d * (torch.rand(s[n], generator=g) < 0.5)
            return (t.float() + d).bfloat16()
        write(folder, fn)
        print("wrote", folder, flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fusekit-bench-merge")
