"""The Python peer: load each shard with safetensors (mmap), optionally cast, save it."""
import os, shutil, sys, torch
from safetensors.torch import load_file, save_file
src, out, dtype = sys.argv[1:4]
torch.set_num_threads(2)
os.makedirs(out)
for f in sorted(os.listdir(src)):
    p = os.path.join(src, f)
    if f.endswith(".safetensors"):
        t = load_file(p)
        if dtype == "bf16": t = {k: v.to(torch.bfloat16) for k, v in t.items()}
        save_file(t, os.path.join(out, f), metadata={"format": "pt"})
        os.sync()
    else:
        shutil.copy(p, out)
