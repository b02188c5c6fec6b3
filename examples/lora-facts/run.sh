#!/usr/bin/env bash
# LoRA fine-tuning of SmolLM2-135M on 200 made-up facts, then exact-match recall of every fact.
# Usage: examples/lora-facts/run.sh [MODEL] [WORK_DIR]   (from the repository root, after a release build:
#        swift build -c release --product fusekit). MODEL defaults to models/smollm2.gguf (Tools/fetch-models.sh).
set -euo pipefail
MODEL=${1:-models/smollm2.gguf}
WORK=${2:-/tmp/fusekit-lora-facts}
FUSEKIT=${FUSEKIT:-.build/release/fusekit}
mkdir -p "$WORK"
python3 "$(dirname "$0")/make_facts.py" "$WORK"
start=$(date +%s)
"$FUSEKIT" train "$MODEL" --data "$WORK/train.jsonl" "$WORK/adapter" --force \
    --lora-rank 16 --lora-alpha 32 --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj \
    --epochs 12 --batch-size 8 --lr 1e-3 --warmup 10 --seq-len 64 --seed 1 --save-every 50
trained=$(date +%s)
"$FUSEKIT" apply-lora "$MODEL" "$WORK/adapter" "$WORK/merged" --force
"$FUSEKIT" eval "$WORK/merged" --task "$WORK/recall.jsonl"
echo "training took $((trained - start)) s"
