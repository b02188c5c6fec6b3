#!/usr/bin/env bash
# Fuzzes FuseKit's file parsers (make fuzz): builds fuzz-formats in release, then runs each format
# for DURATION seconds (default 60) from SEED (default 1). A finding exits non-zero and leaves the
# input under .build/fuzz-out/; the same seed replays the same inputs.
set -euo pipefail
DURATION=${1:-60}
SEED=${2:-1}
cd "$(dirname "$0")/.."
swift build -c release --product fuzz-formats
for format in gguf safetensors; do
    .build/release/fuzz-formats "$format" "$DURATION" "$SEED"
done
