# pip install torch==2.15.0 transformers==5.23.0 gguf==0.19.0 safetensors==0.8.0 numpy==2.4.6 sentencepiece protobuf
"""Checks `fusekit convert MODEL.gguf OUT` against transformers' own GGUF loading, on the real models.

For each model: fusekit writes an f32 HF folder; transformers loads it (AutoModelForCausalLM +
AutoTokenizer) and, separately, loads the GGUF itself (from_pretrained(gguf_file=...)). Reported:
  - every tensor: max |difference| between the two state dicts (expected 0: same dequantization);
  - logits on a few prompts: max |difference| (expected 0 up to float noise);
  - tokenizer: ids of our tokenizer files vs transformers' GGUF tokenizer on sample texts.
Usage: python Tools/checks/gguf_convert.py MODELS_DIR [path/to/fusekit]
"""
import os, subprocess, sys, tempfile
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

models_dir = sys.argv[1]
fusekit = sys.argv[2] if len(sys.argv) > 2 else ".build/release/fusekit"
texts = ["The capital of France is", "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)",
         "Ünïcödé — 東京 مرحبا 🙂  spaces\t\ttabs\n\nnewlines", "1234567 + 89 = ?"]
ok = True
for name in ["smollm2.gguf", "gemma3-270m.gguf"]:
    path = os.path.join(models_dir, name)
    out = tempfile.mkdtemp(prefix="fk-gguf-") + "/hf"
    subprocess.run([fusekit, "convert", path, out, "--dtype", "f32", "--quiet"], check=True)
    ours = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ref = AutoModelForCausalLM.from_pretrained(models_dir, gguf_file=name, dtype=torch.float32).eval()
    sd_ours, sd_ref = ours.state_dict(), ref.state_dict()
    worst = max(((sd_ours[k].float() - sd_ref[k].float()).abs().max().item(), k) for k in sd_ref)
    missing = set(sd_ref) ^ set(sd_ours)
    tok_ours = AutoTokenizer.from_pretrained(out)
    tok_ref = AutoTokenizer.from_pretrained(models_dir, gguf_file=name)
    tok_bad = [t for t in texts if tok_ours(t)["input_ids"] != tok_ref(t)["input_ids"]]
    logit_diff = 0.0
    with torch.no_grad():
        for t in texts:
            ids = tok_ref(t, return_tensors="pt")["input_ids"]
            logit_diff = max(logit_diff, (ours(ids).logits - ref(ids).logits).abs().max().item())
    print(f"{name}: {len(sd_ref)} tensors, max |weight diff| {worst[0]:g} ({worst[1]}), "
          f"name mismatches {sorted(missing)[:4]}, max |logit diff| {logit_diff:g}, "
          f"tokenizer mismatches {len(tok_bad)}/{len(texts)}")
    ok = ok and worst[0] == 0 and not missing and logit_diff < 1e-3 and not tok_bad
print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
