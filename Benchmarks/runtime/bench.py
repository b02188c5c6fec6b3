# pip install torch==2.15.0 transformers==5.23.0 safetensors==0.8.0 numpy==2.4.6 gguf==0.19.0
"""FuseKit vs PyTorch/transformers (f32, 2 threads) and llama.cpp on SmolLM2-135M, interleaved A/B rounds.

Measures prefill tokens/s on a 512-token prompt (only the last position's logits: transformers gets
logits_to_keep=1, as FuseKit skips the head for prompt positions) and greedy decode tokens/s over 128
new tokens after an 8-token prompt (prompt time excluded). Prints best and median of N rounds, their
ratios, and the ceilings measured in the same run: sgemm GFLOP/s at 2048² (numpy/OpenBLAS, 2 threads)
and a 1 GiB copy's bandwidth (numpy, one thread). Prompts are English text tokenized by transformers. Usage: bench.py MODELS_DIR FUSEKIT_BINARY [ROUNDS]
"""
import json, os, statistics, subprocess, sys, time
import numpy as np

MODELS, FUSEKIT = sys.argv[1], sys.argv[2]
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
PREFILL, DECODE, DECODE_PROMPT = 512, 128, 8
WORK = os.environ.get("FUSEKIT_BENCH_DIR", "/tmp/fusekit-bench")
GGUF = os.path.join(MODELS, "smollm2.gguf")
HF = os.path.join(WORK, "smollm2-f32")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import torch
torch.set_num_threads(2)
from transformers import AutoModelForCausalLM

def convert():
    """GGUF -> HF f32 folder with transformers' own GGUF loader (dequantized, q/k un-permuted)."""
    if os.path.exists(os.path.join(HF, "model.safetensors")): return
    from safetensors.torch import save_file
    m = AutoModelForCausalLM.from_pretrained(MODELS, gguf_file="smollm2.gguf", dtype=torch.float32)
    os.makedirs(HF, exist_ok=True)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    if m.config.tie_word_embeddings: sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(HF, "model.safetensors"), metadata={"format": "pt"})
    m.config.to_json_file(os.path.join(HF, "config.json"))

TEXT = ("The history of the river valley begins with small farming villages that grew wheat and barley along "
        "the banks. Over centuries, trade routes connected them to the coast, and markets appeared where roads met. ")

def steal():
    with open("/proc/stat") as f: return int(f.readline().split()[8])

def ceilings():
    """Best of 5: noise only adds time."""
    a = np.random.rand(2048, 2048).astype(np.float32); a @ a
    x = np.ones(1 << 28, dtype=np.float32); y = np.empty_like(x); np.copyto(y, x)
    g = bw = 0
    for _ in range(5):
        t = time.perf_counter(); a @ a; g = max(g, 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9)
        t = time.perf_counter(); np.copyto(y, x); bw = max(bw, 2 * x.nbytes / (time.perf_counter() - t) / 1e9)
    return g, bw

def fusekit(model, ids, new):
    out = subprocess.run([FUSEKIT, "generate", model, "--prompt-ids", ",".join(map(str, ids)), "--max-tokens", str(new),
                          "--json", "--threads", "2", "--quiet", "--ignore-eos"], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    return r["prompt_seconds"], r["decode_seconds"], r["tokens"]

def torch_prefill(model, ids):
    x = torch.tensor([ids])
    with torch.no_grad():
        t = time.perf_counter(); model(input_ids=x, logits_to_keep=1); return time.perf_counter() - t

def torch_decode(model, ids, new):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
        past, nxt, toks = out.past_key_values, out.logits[0, -1].argmax().item(), []
        t = time.perf_counter()
        for _ in range(new):
            toks.append(nxt)
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[0, -1].argmax().item()
        return time.perf_counter() - t, toks

LLAMA_PYTHON = os.environ.get("LLAMA_PYTHON")   # a Python with llama-cpp-python (built from PyPI source)

def llama_decode(ids, new):
    out = subprocess.run([LLAMA_PYTHON, os.path.join(os.path.dirname(__file__), "llama_decode.py"), GGUF,
                          ",".join(map(str, ids)), str(new), "2"], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    return r["seconds"], r["tokens"], r["system"]

def main():
    convert()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(MODELS, gguf_file="smollm2.gguf")
    prompt = tok(TEXT * 40).input_ids[:PREFILL]
    short = prompt[:DECODE_PROMPT]
    model = AutoModelForCausalLM.from_pretrained(HF, dtype=torch.float32).eval()
    llm = bool(LLAMA_PYTHON)
    res = {k: [] for k in ["fk_prefill", "pt_prefill", "fk_decode_f32", "pt_decode", "fk_decode_q", "llama_decode"]}
    s0 = steal()
    for r in range(ROUNDS + 1):   # round 0 warms up and is dropped
        fp, _, _ = fusekit(HF, prompt, 1)
        pp = torch_prefill(model, prompt)
        _, fd, ftoks = fusekit(HF, short, DECODE + 1)
        assert len(ftoks) == DECODE + 1, "FuseKit stopped early"
        pd, ptoks = torch_decode(model, short, DECODE)
        _, qd, qtoks = fusekit(GGUF, short, DECODE + 1)
        ld, ltoks, system = llama_decode(short, DECODE) if llm else (float("nan"), [], "")
        if r == 0:
            agree = sum(a == b for a, b in zip(ftoks, ptoks))
            print(f"f32 greedy tokens equal to transformers: {agree}/{min(len(ftoks), len(ptoks))}")
            first = lambda x, y: next((i for i, (a, b) in enumerate(zip(x, y)) if a != b), min(len(x), len(y)))
            print(f"Q4_1 greedy tokens (8-bit activations) equal to transformers' on the dequantized GGUF: first {first(qtoks, ptoks)}")
            if llm:
                print(f"llama.cpp's greedy tokens equal to transformers': first {first(ltoks, ptoks)}")
                agree = first(qtoks, ltoks)
                print(f"Q4_1 greedy tokens equal to llama.cpp's: first {agree} of {min(len(qtoks), len(ltoks))}")
                print(f"llama.cpp: {system.strip()}")
            continue
        res["fk_prefill"].append(PREFILL / fp); res["pt_prefill"].append(PREFILL / pp)
        # FuseKit's decode time covers len(tokens) - 1 forward steps (the last token is never fed back)
        res["fk_decode_f32"].append((len(ftoks) - 1) / fd); res["pt_decode"].append(DECODE / pd)
        res["fk_decode_q"].append((len(qtoks) - 1) / qd); res["llama_decode"].append(DECODE / ld)
    g, bw = ceilings()
    print(f"rounds {ROUNDS}, steal ticks {steal() - s0}, load {os.getloadavg()[0]:.2f}, torch {torch.__version__}, "
          f"sgemm {g:.0f} GFLOP/s, copy {bw:.1f} GB/s")
    flops_per_token = 2 * 134.5e6 * (1 - 28.3 / 134.5)   # prompt positions skip the head
    def line(name, key, ref=None, bound=None):
        v = res[key]
        if not v or all(np.isnan(v)): print(f"{name:34s} n/a"); return
        best, med = max(v), statistics.median(v)
        s = f"{name:34s} best {best:8.1f}  median {med:8.1f} tok/s"
        if ref: s += f"   ratio best {best / max(res[ref]):.2f} median {med / statistics.median(res[ref]):.2f}"
        if bound: s += f"   {100 * best / bound:.0f}% of bound {bound:.0f}"
        print(s)
    line("prefill 512, transformers f32", "pt_prefill", bound=g * 1e9 / flops_per_token)
    line("prefill 512, FuseKit f32", "fk_prefill", "pt_prefill", g * 1e9 / flops_per_token)
    line("decode, transformers f32", "pt_decode", bound=bw * 1e9 / 538e6)
    line("decode, FuseKit f32", "fk_decode_f32", "pt_decode", bw * 1e9 / 538e6)
    line("decode, llama.cpp Q4_1 GGUF", "llama_decode", bound=bw * 1e9 / 93e6)
    line("decode, FuseKit Q4_1 GGUF", "fk_decode_q", "llama_decode" if llm else None, bw * 1e9 / 93e6)

if __name__ == "__main__":
    main()
