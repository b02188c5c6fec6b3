# pip install torch==2.15.0 transformers==5.23.0 safetensors==0.8.0 numpy==2.4.6
"""Checks that HF folders FuseKit writes load in Python's safetensors and in transformers.

Builds a tiny random LlamaForCausalLM with transformers (f32), has `fusekit convert` re-type it to bf16
in several shards and to f32 in one file, then:
  - every shard loads with safetensors.torch.load_file, dtypes and values equal torch's own cast;
  - transformers loads both folders (AutoModelForCausalLM.from_pretrained) and gives the logits of
    the original model (f32: bit-equal; bf16: equal to the original cast to bf16 by torch).
Usage: python Tools/checks/safetensors_interop.py [path/to/fusekit]
"""
import json, os, subprocess, sys, tempfile
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

fusekit = sys.argv[1] if len(sys.argv) > 1 else ".build/release/fusekit"
work = tempfile.mkdtemp(prefix="fk-interop-")
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)
model = LlamaForCausalLM(cfg).eval()
src = os.path.join(work, "src"); model.save_pretrained(src)
ids = torch.randint(0, 128, (1, 12))
with torch.no_grad():
    ref32 = model(ids).logits
    ref16 = LlamaForCausalLM.from_pretrained(src, dtype=torch.bfloat16).eval()(ids).logits

ok = True
for dtype, shard in [("bf16", "20KB"), ("f32", "5GB")]:
    out = os.path.join(work, dtype)
    subprocess.run([fusekit, "convert", src, out, "--dtype", dtype, "--out-shard-size", shard, "--quiet"], check=True)
    files = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    want = torch.bfloat16 if dtype == "bf16" else torch.float32
    n = 0
    for f in files:
        for k, v in load_file(os.path.join(out, f)).items():
            orig = model.state_dict()[k].to(want)
            n += 1
            if v.dtype != want or not torch.equal(v, orig):
                print("MISMATCH", dtype, k); ok = False
    if len(files) > 1:
        index = json.load(open(os.path.join(out, "model.safetensors.index.json")))
        assert set(index["weight_map"].values()) == set(files)
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        logits = loaded(ids).logits
    ref = ref16 if dtype == "bf16" else ref32
    diff = (logits.float() - ref.float()).abs().max().item()
    print(f"{dtype}: {len(files)} shard(s), {n} tensors equal torch's cast; transformers loads it, "
          f"loaded dtype {loaded.dtype}, max |logit diff| vs torch = {diff:g}")
    ok = ok and diff == 0.0
print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
