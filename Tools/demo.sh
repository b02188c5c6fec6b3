#!/usr/bin/env bash
# `make demo`: a real job on the real models. Inspects both GGUF files, converts them to bf16 HF
# folders, runs a mergekit-style passthrough merge (examples/merge/smollm2-passthrough.yml) and
# generates from the original and the merged model.
# Usage: Tools/demo.sh MODELS_DIR OUT_DIR
set -euo pipefail
models=${1:-models}
out=${2:-demo-out}
fk=.build/release/fusekit
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "inspect $models/smollm2.gguf"
$fk inspect "$models/smollm2.gguf" --max-tensors 8
step "inspect $models/gemma3-270m.gguf"
$fk inspect "$models/gemma3-270m.gguf" --max-tensors 8

step "convert both to bf16 HF folders"
$fk convert "$models/smollm2.gguf" "$out/smollm2-hf" --dtype bf16 --force --quiet
$fk convert "$models/gemma3-270m.gguf" "$out/gemma3-hf" --dtype bf16 --force --quiet

step "merge: examples/merge/smollm2-passthrough.yml (SmolLM2 layers 0-20 + 10-30, 40 layers)"
sed "s#demo-out/#$out/#g" examples/merge/smollm2-passthrough.yml > "$out/passthrough.yml"
$fk merge "$out/passthrough.yml" "$out/smollm2-40L" --force --quiet

step "generate"
for m in "$models/smollm2.gguf" "$out/smollm2-40L" "$out/gemma3-hf"; do
  printf '%s: ' "$m"
  $fk generate "$m" --prompt "The capital of France is" --max-tokens 16 2>/dev/null | tr '\n' ' '
  echo
done
