# pip install tokenizers==0.23.3
"""Encodes the same ~10 MB of text with FuseKit and with HF tokenizers (Rust, one thread) and prints
the ratio. Run through Benchmarks/tokenize/run.sh, which builds fusekit in release mode first.

    python Benchmarks/tokenize/bench.py FUSEKIT_BINARY TOKENIZER_DIR [TOKENIZER_DIR ...]

The text: Python standard-library sources and Debian documentation found on the machine, cut to
10 MB (written once to /tmp/fusekit-bench-10mb.txt). Both sides encode the whole file as one text
(no special tokens added); FuseKit's time is its in-process encode time (`--count-only` reports it),
HF's the `Tokenizer.encode` call. HF's `encode_batch` over lines, single-threaded, is shown too.
"""
import glob, gzip, os, subprocess, sys, time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer

TARGET = 10 * 1024 * 1024
PATH = "/tmp/fusekit-bench-10mb.txt"

def build_text():
    parts, size = [], 0
    files = sorted(glob.glob("/usr/share/doc/*/copyright")) + sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True))
    for f in files:
        try:
            t = open(f, encoding="utf-8").read()
        except Exception:
            continue
        parts.append(t)
        size += len(t.encode())
        if size >= TARGET:
            break
    text = "".join(parts).encode()[:TARGET].decode("utf-8", errors="ignore")
    open(PATH, "w", encoding="utf-8").write(text)

if not os.path.exists(PATH):
    build_text()
text = open(PATH, encoding="utf-8").read()
nbytes = len(text.encode())
binary = sys.argv[1]
print(f"text: {nbytes / 1e6:.1f} MB, {text.count(chr(10))} lines")
print(f"{'tokenizer':<14} {'tokens':>9} {'FuseKit s':>10} {'HF s':>8} {'ratio':>7} {'HF batch s':>11}")
for d in sys.argv[2:]:
    name = os.path.basename(os.path.normpath(d))
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    best_hf = 1e9
    for _ in range(2):
        t0 = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False).ids; best_hf = min(best_hf, time.perf_counter() - t0)
    lines = text.splitlines(keepends=True)
    t0 = time.perf_counter(); tok.encode_batch(lines, add_special_tokens=False); hf_batch = time.perf_counter() - t0
    best_fk, count = 1e9, None
    for _ in range(2):
        r = subprocess.run([binary, "tokenize", d, "--text", PATH, "--count-only", "--no-special-tokens"], capture_output=True, text=True, check=True)
        count = int(r.stdout.strip())
        best_fk = min(best_fk, float(r.stderr.split(" in ")[1].split()[0]))
    same = "" if count == len(ids) else f"  (token counts differ: {count} vs {len(ids)})"
    print(f"{name:<14} {len(ids):>9} {best_fk:>10.3f} {best_hf:>8.3f} {best_hf / best_fk:>6.2f}x {hf_batch:>11.3f}{same}")
print("ratio = HF time / FuseKit time (above 1: FuseKit faster); best of 2 runs each")
