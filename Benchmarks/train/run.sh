#!/bin/sh
# Benchmarks/train: FuseKit vs PyTorch (f32, 2 threads) training tokens/s and peak RSS on SmolLM2-135M,
# sequence 256, full fine-tuning and LoRA rank 8. Usage: Benchmarks/train/run.sh [MODELS_DIR] [ROUNDS] [STEPS]
# On a shared, loaded machine PyTorch's OpenMP threads spin while descheduled; OMP_WAIT_POLICY=PASSIVE
# (inherited by the PyTorch runs) is the fairer setting there. FUSEKIT_CORETYPE picks the OpenBLAS kernels of the FuseKit side (default SKYLAKEX; Haswell = the AVX2 ones).
set -e
MODELS=${1:-models}
ROUNDS=${2:-2}
STEPS=${3:-6}
PY=${PYTHON:-/opt/fkvenv/bin/python}
swift build -c release --product bench-train >/dev/null
[ -f "$MODELS/smollm2.gguf" ] || Tools/fetch-models.sh "$MODELS"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
OPENBLAS_NUM_THREADS=2 "$PY" Benchmarks/train/bench.py "$MODELS" .build/release/bench-train "$ROUNDS" "$STEPS"
