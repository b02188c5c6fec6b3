#!/usr/bin/env bash
# Tokenizer speed: FuseKit vs HF tokenizers (single thread) on the same 10 MB of text.
#   Benchmarks/tokenize/run.sh [PYTHON] [TOKENIZER_DIR ...]
# Default tokenizers: the fixture ones (GPT-2 style byte-level BPE, Llama 2 SentencePiece BPE,
# WordPiece, Unigram) plus SmolLM2 / Gemma 3 / GPT-2 when FUSEKIT_MODELS_DIR/tokenizers has them
# (Tools/fixtures/tokenizer_fixtures.py writes them there).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${1:-python3}
shift || true
swift build -c release --product fusekit >/dev/null
dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  dirs=(Tests/Fixtures/tokenizers/gpt2-trained Tests/Fixtures/tokenizers/llama2-spm Tests/Fixtures/tokenizers/wordpiece Tests/Fixtures/tokenizers/unigram)
  if [ -n "${FUSEKIT_MODELS_DIR:-}" ]; then
    for m in smollm2 gpt2 gemma3; do [ -f "$FUSEKIT_MODELS_DIR/tokenizers/$m/tokenizer.json" ] && dirs+=("$FUSEKIT_MODELS_DIR/tokenizers/$m"); done
  fi
fi
"$PYTHON" Benchmarks/tokenize/bench.py .build/release/fusekit "${dirs[@]}"
