#!/bin/sh
# Benchmarks/evolve: one generation (population 8) of `fusekit evolve` on SmolLM2-135M vs `fusekit eval`
# alone on the same dev tasks; the search's overhead beyond evaluation (goal: under 10%).
# Usage: Benchmarks/evolve/run.sh [EXAMPLE_DIR] [ROUNDS]
# EXAMPLE_DIR: the work folder of examples/evolve/run.sh (default /tmp/fusekit-evolve-example); its
# fine-tunes are made first if missing (STOP_AFTER=finetunes: about 7 minutes on 2 cores).
set -e
EXAMPLE=${1:-/tmp/fusekit-evolve-example}
ROUNDS=${2:-2}
swift build -c release --product fusekit >/dev/null
[ -d "$EXAMPLE/ft-dates" ] || STOP_AFTER=finetunes examples/evolve/run.sh models/smollm2.gguf "$EXAMPLE"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 Benchmarks/evolve/bench.py "$PWD/.build/release/fusekit" "$EXAMPLE" "$ROUNDS"
