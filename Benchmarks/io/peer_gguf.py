"""The Python peer for GGUF -> HF: transformers' own GGUF loading, then save_pretrained (bf16)."""
import os, sys, torch
from transformers import AutoModelForCausalLM
path, out = sys.argv[1:3]
torch.set_num_threads(2)
m = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path), dtype=torch.bfloat16)
m.hf_quantizer = None   # the weights are plain dequantized tensors; transformers refuses to save otherwise
m.save_pretrained(out)
os.sync()
