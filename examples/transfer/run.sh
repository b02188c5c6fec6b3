#!/usr/bin/env bash
# The transfer example: teacher Gemma 3 270M fine-tuned (LoRA, merged) on reversing word order, student
# SmolLM2-135M; the student's LoRA starts from (a) zero (plain LoRA), (b) the transferred teacher
# weights, (c) random factors of the same norms — same steps, three seeds — and each result is scored
# on the held-out test set (exact match and answer loss). Prints a Markdown table for docs/results.md.
# Usage: examples/transfer/run.sh [MODELS_DIR] [WORK_DIR]   (after `swift build -c release --product fusekit`
#        and Tools/fetch-models.sh MODELS_DIR).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MODELS=${1:-models}
WORK=${2:-/tmp/fusekit-transfer-example}
FUSEKIT=${FUSEKIT:-.build/release/fusekit}
STEPS=${STEPS:-60}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-2}
mkdir -p "$WORK"
python3 "$HERE/make_task.py" "$WORK"
if [ ! -f "$WORK/teacher/config.json" ]; then
  start=$(date +%s)
  "$FUSEKIT" train "$MODELS/gemma3-270m.gguf" --data "$WORK/train.jsonl" "$WORK/teacher-adapter" --force --quiet \
      --lora-rank 16 --lora-alpha 32 --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj \
      --epochs "$TEACHER_EPOCHS" --batch-size 8 --lr 1e-3 --warmup 5 --seq-len 48 --seed 1
  "$FUSEKIT" apply-lora "$MODELS/gemma3-270m.gguf" "$WORK/teacher-adapter" "$WORK/teacher" --force --quiet
  echo "teacher fine-tuned in $(( $(date +%s) - start )) s"
fi
score() {  # exact match and answer loss of a model on the test set
  em=$("$FUSEKIT" eval "$1" --task "$WORK/test.jsonl" --json --quiet | python3 -c 'import json,sys; d=json.load(sys.stdin)["metrics"]; print(round(d.get("exact_match", 0), 3))')
  echo "$em"
}
echo "| model | init | seed | test exact match | held-out answer loss | seconds |"
echo "|---|---|---|---|---|---|"
for who in "teacher:$WORK/teacher" "student:$MODELS/smollm2.gguf"; do
  echo "| ${who%%:*} (no transfer) | — | — | $(score "${who#*:}") | — | — |"
done
for seed in 0 1 2; do
  for init in zero transfer random; do
    out="$WORK/run-$init-$seed"
    sed -e "s#TEACHER#$WORK/teacher#; s#STUDENT#$(cd "$MODELS" && pwd)/smollm2.gguf#; s#WORK#$WORK#g; s#INIT#$init#; s#STEPS#$STEPS#; s#SEED#$seed#" \
        "$HERE/spec.yml" > "$WORK/spec-$init-$seed.yml"
    start=$(date +%s)
    "$FUSEKIT" transfer "$WORK/spec-$init-$seed.yml" "$out" --force --quiet --json > "$out.json"
    secs=$(( $(date +%s) - start ))
    loss=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["eval_loss"], 4))' "$out.json")
    echo "| student | $init | $seed | $(score "$out/merged") | $loss | $secs |"
  done
done
