#!/usr/bin/env bash
# Fuses three LoRA fine-tunes of SmolLM2-135M (two-digit addition, made-up capitals, ISO -> US dates) and
# scores every way FuseKit has of fusing them on each task's held-out test set:
#   each fine-tune alone, linear / TIES / DARE-TIES merges (fusekit merge), greedy soup, Evolver in both
#   forms (individual, population) and CMA-ES recipe search (fusekit evolve).
# Usage: examples/evolve/run.sh [MODEL] [WORK_DIR]   (from the repository root, after a release build:
#        swift build -c release --product fusekit). MODEL defaults to models/smollm2.gguf (Tools/fetch-models.sh).
# Writes WORK_DIR/results.md (the table docs/results.md quotes) and WORK_DIR/times.tsv (wall time per step).
# A finished step is skipped when the script is run again (delete its folder to redo it).
# GENERATIONS (default 3) sets the generations of the Evolver and CMA-ES runs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${1:-models/smollm2.gguf}
WORK=${2:-/tmp/fusekit-evolve-example}
FUSEKIT=${FUSEKIT:-$PWD/.build/release/fusekit}
MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")
mkdir -p "$WORK"
cd "$WORK"
TASKS="arith facts dates"
TIMES=$WORK/times.tsv
touch "$TIMES"

# step NAME OUTPUT COMMAND...: runs COMMAND unless OUTPUT exists, and records its wall time.
step() {
    local name=$1 output=$2; shift 2
    if [ -e "$output" ]; then echo "== $name: $output exists, skipped"; return; fi
    echo "== $name"
    local t0; t0=$(date +%s.%N)
    "$@"
    local t1; t1=$(date +%s.%N)
    grep -v "^$name	" "$TIMES" > "$TIMES.tmp" || true
    printf '%s\t%.1f\n' "$name" "$(echo "$t1 - $t0" | bc)" >> "$TIMES.tmp"
    mv "$TIMES.tmp" "$TIMES"
}

step tasks data/arith-test.jsonl bash -c "mkdir -p data && python3 '$HERE/make_tasks.py' data"
step base base "$FUSEKIT" convert "$MODEL" base --dtype f32

# 1. One LoRA fine-tune per task, merged into the (f32) base: three HF folders of one architecture.
for t in $TASKS; do
    step "train-$t" "adapter-$t/adapter_config.json" "$FUSEKIT" train base --data "data/$t-train.jsonl" "adapter-$t" --force \
        --lora-rank 16 --lora-alpha 32 --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj \
        --epochs 3 --batch-size 8 --lr 2e-3 --warmup 5 --seq-len 32 --seed 1 --quiet
    step "apply-$t" "ft-$t" "$FUSEKIT" apply-lora base "adapter-$t" "ft-$t" --dtype f32 --quiet
done

[ "${STOP_AFTER:-}" = finetunes ] && exit 0   # Benchmarks/evolve needs only the fine-tunes

# 2. Static merges at their defaults (weight 1 each; TIES and DARE at density 0.5, mergekit's usual value,
#    since their default density 1 trims nothing).
cat > linear.yml <<YML
merge_method: linear
models: [{model: ft-arith, parameters: {weight: 1}}, {model: ft-facts, parameters: {weight: 1}}, {model: ft-dates, parameters: {weight: 1}}]
dtype: float32
YML
for m in ties dare_ties; do
cat > $m.yml <<YML
merge_method: $m
base_model: base
models: [{model: ft-arith, parameters: {weight: 1, density: 0.5}}, {model: ft-facts, parameters: {weight: 1, density: 0.5}}, {model: ft-dates, parameters: {weight: 1, density: 0.5}}]
dtype: float32
YML
done
for m in linear ties dare_ties; do step "merge-$m" "merge-$m" "$FUSEKIT" merge $m.yml "merge-$m" --seed 1 --quiet; done

# 3. Evolutionary fusion, selected on the three dev sets (16 questions each), never on test.
DEV="dev: [data/arith-dev.jsonl, data/facts-dev.jsonl, data/dates-dev.jsonl]"
cat > soup.yml <<YML
sources: [ft-arith, ft-facts, ft-dates]
search: greedy-soup
fitness: {$DEV}
seed: 1
YML
cat > evolver.yml <<YML
sources: [ft-arith, ft-facts, ft-dates]
search: evolver
fitness: {$DEV}
population: 6            # the three fine-tunes and three averages of two of them
generations: ${GENERATIONS:-3}
seed: 1
options: {form: individual, f: 0.5, cr: 0.5}
YML
cat > evolver-pop.yml <<YML
sources: [ft-arith, ft-facts, ft-dates]
search: evolver
fitness: {$DEV}
population: 6
generations: ${GENERATIONS:-3}
seed: 1
options: {form: population, f: 0.5, cr: 0.5, merger: {method: linear}}
YML
cat > cma.yml <<YML
sources: [ft-arith, ft-facts, ft-dates]
base: base
search: cma-es
fitness: {$DEV}
generations: ${GENERATIONS:-3}
seed: 1
options: {method: ties, parameters: [weight, density], sigma: 0.2, initial: 0.5}
YML
for s in soup evolver evolver-pop cma; do step "evolve-$s" "evolve-$s/run.json" "$FUSEKIT" evolve $s.yml "evolve-$s" --force; done

# 4. Held-out test scores of every model (and of the base, for reference).
score() {
    local model=$1 name=$2
    for t in $TASKS; do
        "$FUSEKIT" eval "$model" --task "data/$t-test.jsonl" --json --quiet > "scores/$name-$t.json.tmp"
        mv "scores/$name-$t.json.tmp" "scores/$name-$t.json"
    done
}
mkdir -p scores
ROWS="base:base ft-arith:ft-arith ft-facts:ft-facts ft-dates:ft-dates merge-linear:linear merge-ties:ties merge-dare_ties:dare_ties"
ROWS="$ROWS evolve-soup/model:greedy-soup evolve-evolver/model:evolver-individual evolve-evolver-pop/model:evolver-population evolve-cma/model:cma-es"
for row in $ROWS; do
    step "test-${row#*:}" "scores/${row#*:}-dates.json" score "${row%%:*}" "${row#*:}"
done
python3 "$HERE/table.py" "$WORK" | tee results.md
