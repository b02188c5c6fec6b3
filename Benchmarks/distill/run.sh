#!/bin/bash
# Capture throughput (tokens/s per model) against `fusekit eval` forward throughput on the same text,
# and alignment throughput (must be >= 10x the capture rate). Issue 10, item 8.
#
# Usage: Benchmarks/distill/run.sh [MODELS_DIR] [CORPUS.txt] [SEQUENCES]
#   MODELS_DIR  holds smollm2.gguf and gemma3-270m.gguf (default models/)
#   CORPUS.txt  plain text (default: corpus/debian/train.txt from Tools/build-corpus.py)
# Needs a release build: swift build -c release --product fusekit
set -euo pipefail
MODELS=${1:-models}
CORPUS=${2:-corpus/debian/train.txt}
SEQ=${3:-64}
BIN=${FUSEKIT:-.build/release/fusekit}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/spec.yml" <<YAML
target: $MODELS/smollm2.gguf
sources: [{model: $MODELS/gemma3-270m.gguf, name: gemma3}]
corpus: {train: $CORPUS, block_tokens: 256, max_sequences: $SEQ}
k: 10
cache_dir: $WORK/cache
training: {enabled: false}
YAML
"$BIN" distill "$WORK/spec.yml" "$WORK/out" --quiet --json > "$WORK/distill.json"
# the same text for eval: the first blocks of the corpus, about as many tokens
head -c $((SEQ * 1100)) "$CORPUS" > "$WORK/text.txt"
for m in smollm2 gemma3-270m; do
  "$BIN" eval "$MODELS/$m.gguf" --perplexity "$WORK/text.txt" --json --quiet > "$WORK/eval-$m.json"
done
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
d = json.load(open(f"{w}/distill.json"))
ev = {m: json.load(open(f"{w}/eval-{m}.json")) for m in ("smollm2", "gemma3-270m")}
names = {"target:smollm2": "smollm2", "gemma3": "gemma3-270m"}
print(f"{'model':16} {'capture tok/s':>14} {'eval tok/s':>11} {'ratio':>6}")
for c in d["captures"]:
    e = ev[names[c["model"]]]
    rate = e["metrics"]["tokens"] / e["seconds"]
    print(f"{c['model']:16} {c['tokens_per_second']:14.1f} {rate:11.1f} {c['tokens_per_second'] / rate:6.2f}")
slowest = min(c["tokens_per_second"] for c in d["captures"])
for a in d["alignment"]:
    print(f"align {a['source']}: {a['tokens_per_second']:.0f} target tokens/s = {a['tokens_per_second'] / slowest:.0f}x the slowest capture;"
          f" coverage {100 * a['coverage']:.1f}%")
PY
