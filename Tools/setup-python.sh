#!/usr/bin/env bash
# The pinned Python environment for fixture scripts, checks and benchmarks (never needed by `make test`).
# Usage: Tools/setup-python.sh [VENV_DIR]   (default /opt/fkvenv)
set -euo pipefail
venv=${1:-/opt/fkvenv}
python3 -m venv "$venv"
"$venv/bin/pip" install -q numpy==2.4.6 torch==2.15.0 safetensors==0.8.0 gguf==0.19.0 tokenizers==0.23.3 \
  transformers==5.23.0 mergekit==0.1.5 peft==0.21.2 sentencepiece protobuf
echo "python environment ready: $venv/bin/python"
