"""A ~2 GB f32 checkpoint in 8 shards (TinyLlama-like tensor shapes, random values)."""
import json, os, sys
import numpy as np
from safetensors.numpy import save_file
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
names, shards = {}, 8
for s in range(shards):
    t = {}
    for l in range(2):
        layer = s * 2 + l
        for n, shape in [("self_attn.q_proj", (2048, 2048)), ("self_attn.o_proj", (2048, 2048)),
                         ("mlp.gate_proj", (5632, 2048)), ("mlp.up_proj", (5632, 2048))]:
            t[f"model.layers.{layer}.{n}.weight"] = rng.standard_normal(shape, dtype=np.float32) * 0.02
        t[f"model.layers.{layer}.input_layernorm.weight"] = np.ones(2048, dtype=np.float32)
    fname = f"model-{s+1:05d}-of-{shards:05d}.safetensors"
    save_file(t, os.path.join(out, fname), metadata={"format": "pt"})
    names.update({k: fname for k in t})
json.dump({"metadata": {}, "weight_map": names}, open(os.path.join(out, "model.safetensors.index.json"), "w"))
json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, open(os.path.join(out, "config.json"), "w"))
