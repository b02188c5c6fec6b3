#!/bin/bash
# FuseLLM on two CPU cores (issue 10, item 6): target SmolLM2-135M; sources SmolLM2-135M (the target's
# own distribution, a MinCE/AvgCE candidate) and Gemma 3 270M (another tokenizer: 262,144 SentencePiece
# tokens against SmolLM2's 49,152 byte-level BPE ones). Three trainings on the same corpus blocks and
# token budget, differing only in the loss:
#   clm    λ = 1: continual causal-LM training only (the paper's "Llama-2 CLM" control)
#   minCE  λ = 0.9, MinCE fusion (per sequence, the candidate with the lowest CE on the gold tokens)
#   avgCE  λ = 0.9, AvgCE fusion (candidates weighted by softmax of exp(−CE))
# then held-out perplexity (`fusekit eval --perplexity`) and a held-out cloze task (make_task.py) for
# the starting model and each result. Each distill run also scores the held-out text of each Debian
# package (corpus.domains: CORPUS/held_out/<package>.txt, written by Tools/build-corpus.py) before and
# after training; table.py prints those per-domain tables. Numbers: docs/results.md, "Distill".
#
# Usage: examples/distill/run.sh            (after: swift build -c release --product fusekit,
#                                             Tools/fetch-models.sh models, Tools/build-corpus.py corpus/debian)
# Env:   SEQ (corpus blocks of 256 SmolLM2 tokens, default 96), SEED (default 0), OUT (default runs/distill),
#        CACHE (captures and fused targets, default OUT/cache: share it between seeds), FUSEKIT, MODELS, CORPUS
set -euo pipefail
BIN=${FUSEKIT:-.build/release/fusekit}
MODELS=${MODELS:-models}
CORPUS=${CORPUS:-corpus/debian}
SEQ=${SEQ:-96}
OUT=${OUT:-runs/distill}
SEED=${SEED:-0}   # training data order; the corpus blocks and captures are the same for every seed
CACHE=${CACHE:-$OUT/cache}
mkdir -p "$OUT"

# Held-out text (whole lines, about 12 KB) and the cloze task, both from the held-out split only.
python3 examples/distill/make_task.py "$CORPUS/held_out.txt" "$OUT/held_out.txt" "$OUT/cloze.jsonl"

spec() {   # name fusion lambda
  cat > "$OUT/$1.yml" <<YAML
target: $MODELS/smollm2.gguf
sources:
  - model: $MODELS/gemma3-270m.gguf
    name: gemma3
corpus:
  train: $CORPUS/train.txt
  block_tokens: 256
  max_sequences: $SEQ
  domains:                     # held-out perplexity per Debian package, before and after (run.json, fusekit report)
    python3.11-doc: $CORPUS/held_out/python3.11-doc.txt
    manpages: $CORPUS/held_out/manpages.txt
    manpages-dev: $CORPUS/held_out/manpages-dev.txt
  domain_tokens: 4096
k: 10
fusion: $2
lambda: $3
temperature: 1.0
target_distribution: true
cache_dir: $CACHE
training:
  mode: full
  lr: 5.0e-5
  epochs: 1
  batch_size: 4
  warmup_ratio: 0.008
  weight_decay: 0.1
  grad_clip: 1.0
  loss: ce
  seed: $SEED
  save_every: 5
YAML
}

timed() {   # label command...: runs it, appends "label seconds" to OUT/times.txt
  local label=$1; shift
  local t0=$(date +%s.%N)
  "$@"
  python3 -c "import sys; print(sys.argv[1], round(float(sys.argv[3]) - float(sys.argv[2]), 1))" "$label" "$t0" "$(date +%s.%N)" >> "$OUT/times.txt"
}

# The starting point as an f32 HF folder: the same weights training starts from (GGUF dequantized).
[ -f "$OUT/base/config.json" ] || timed convert "$BIN" convert "$MODELS/smollm2.gguf" "$OUT/base" --dtype f32 --quiet

for run in minCE:minCE:0.9 avgCE:avgCE:0.9 clm:minCE:1.0; do
  IFS=: read -r name fusion lambda <<< "$run"
  spec "$name" "$fusion" "$lambda"
  if ! grep -q '"status": "complete"' "$OUT/$name/run.json" 2>/dev/null; then
    resume=""; [ -d "$OUT/$name" ] && resume="--resume"
    timed "distill-$name" "$BIN" distill "$OUT/$name.yml" "$OUT/$name" $resume --json > "$OUT/$name.json"
  fi
done

for m in base minCE/model avgCE/model clm/model; do
  tag=${m%/model}
  [ -f "$OUT/eval-$tag-ppl.json" ] || timed "eval-ppl-$tag" "$BIN" eval "$OUT/$m" --perplexity "$OUT/held_out.txt" --json --quiet > "$OUT/eval-$tag-ppl.json"
  [ -f "$OUT/eval-$tag-cloze.json" ] || timed "eval-cloze-$tag" "$BIN" eval "$OUT/$m" --task "$OUT/cloze.jsonl" --json --quiet > "$OUT/eval-$tag-cloze.json"
done
python3 examples/distill/table.py "$OUT"
