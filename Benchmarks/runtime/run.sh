#!/bin/sh
# Benchmarks/runtime: FuseKit vs PyTorch/transformers (and llama.cpp when llama-cpp-python is installed)
# on SmolLM2-135M. Usage: Benchmarks/runtime/run.sh [MODELS_DIR] [ROUNDS]
# llama.cpp: set LLAMA_PYTHON to a Python with llama-cpp-python, e.g.
#   python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install numpy llama-cpp-python   (builds from source, ~15 min)
set -e
MODELS=${1:-models}
ROUNDS=${2:-5}
PY=${PYTHON:-/opt/fkvenv/bin/python}
swift build -c release --product fusekit >/dev/null
[ -f "$MODELS/smollm2.gguf" ] || Tools/fetch-models.sh "$MODELS"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), OpenBLAS core $(OPENBLAS_VERBOSE=2 .build/release/fusekit --help 2>&1 | grep -m1 Core || echo '?')"
OPENBLAS_NUM_THREADS=2 "$PY" Benchmarks/runtime/bench.py "$MODELS" .build/release/fusekit "$ROUNDS"
