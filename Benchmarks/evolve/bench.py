#!/usr/bin/env python3
"""Benchmarks/evolve: one generation of `fusekit evolve` (Evolver, population 8) on SmolLM2-135M
against `fusekit eval` alone on the same dev tasks.

Usage: bench.py FUSEKIT EXAMPLE_DIR [ROUNDS]
EXAMPLE_DIR is the work folder of examples/evolve/run.sh (its three fine-tunes and dev sets).

Evaluation alone: `fusekit eval FT --task DEV --json` for each dev task; its `seconds` is FuseEval's
scoring time (the model load is outside it). One candidate's evaluation is the sum over the three tasks.
Evolve: population 8 (the three fine-tunes and five averages of two), one generation of 8 trials, every
trial scored on every dev task (early_stop off, so each trial costs one full evaluation). The log line of
each generation carries cumulative `timings`; generation 1 is the difference of lines 1 and 0.
Overhead = (generation wall − FuseEval's scoring time inside it) / generation wall; a second figure also
counts the candidates' model loads as evaluation, since `fusekit eval` pays a load per run too.
"""
import json
import os
import subprocess
import sys
import time

fusekit, example = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
tasks = [f"{example}/data/{t}-dev.jsonl" for t in ("arith", "facts", "dates")]
sources = [f"{example}/ft-{t}" for t in ("arith", "facts", "dates")]
work = os.environ.get("BENCH_DIR", "/tmp/fusekit-bench-evolve")
os.makedirs(work, exist_ok=True)


def load_average():
    return open("/proc/loadavg").read().split()[0]


# 1. fusekit eval alone, one candidate = the three dev tasks on one fine-tune; ROUNDS runs before the
# evolve run and ROUNDS after it, so a change in the machine's load shows up on both sides.
alone = []


def eval_alone(label, model=None, into=alone):
    for r in range(rounds):
        score, wall, examples = 0.0, 0.0, 0
        for t in tasks:
            t0 = time.time()
            out = subprocess.run([fusekit, "eval", model or sources[r % len(sources)], "--task", t, "--json", "--quiet"],
                                 check=True, capture_output=True, text=True).stdout
            wall += time.time() - t0
            j = json.loads(out)
            score += j["seconds"]
            examples += j["examples"]
        into.append((score, wall, examples))
        print(f"eval alone ({label}), round {r + 1}: scoring {score:.2f} s, wall {wall:.2f} s (3 processes), {examples} questions, "
              f"load {load_average()}", flush=True)


eval_alone("before")

# 2. One generation of evolve, population 8.
spec = f"""sources: [{", ".join(sources)}]
search: evolver
fitness: {{dev: [{", ".join(tasks)}]}}
population: 8
generations: 1
early_stop: false
seed: 1
options: {{form: individual, f: 0.5, cr: 0.5}}
"""
open(f"{work}/spec.yml", "w").write(spec)
t0 = time.time()
subprocess.run([fusekit, "evolve", f"{work}/spec.yml", f"{work}/run", "--force", "--json", "--quiet"],
               check=True, capture_output=True, text=True)
total_wall = time.time() - t0
eval_alone("after")
# The same kind of candidate as the trials: the evolved individual the run wrote (f32, as scored in
# memory). Fine-tunes and evolved individuals generate answers of different lengths, so this is the
# like-for-like scoring time.
evolved = []
eval_alone("after, the evolved model", model=f"{work}/run/model", into=evolved)
lines = [json.loads(l) for l in open(f"{work}/run/log.jsonl")]
summary = json.load(open(f"{work}/run/run.json"))
summary = summary.get("measurements", summary)
g0, g1 = lines[0], lines[1]
gen_wall = g1["seconds"] - g0["seconds"]
t = {k: g1["timings"].get(k, 0) - g0["timings"].get(k, 0) for k in g1["timings"]}
scoring = t.get("evaluate", 0) - t.get("load_model", 0)
overhead = (gen_wall - scoring) / gen_wall
overhead_with_load = (gen_wall - t.get("evaluate", 0)) / gen_wall
best_alone = min(a[0] for a in alone)
best_alone_wall = min(a[1] for a in alone)
print(f"evolve: whole run {total_wall:.1f} s wall (generation 0: 8 individuals built and scored; generation 1: 8 trials)")
print(f"generation 1: {gen_wall:.2f} s for 8 candidates = {gen_wall / 8:.2f} s per candidate; parts: "
      + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
print(f"FuseEval scoring inside evolve: {scoring / 8:.2f} s per candidate; fusekit eval alone: {best_alone:.2f} s scoring, "
      f"{best_alone_wall:.2f} s wall per candidate (best of {2 * rounds})")
print(f"fusekit eval alone on the evolved model: {min(a[0] for a in evolved):.2f} s scoring, {min(a[1] for a in evolved):.2f} s wall "
      f"(best of {rounds})")
print(f"overhead beyond scoring: {100 * overhead:.1f}%  (counting model loads as evaluation: {100 * overhead_with_load:.1f}%)")
evolved_wall = min(a[1] for a in evolved)
print(f"throughput: evolve {8 / gen_wall * 60:.1f} candidates/min vs fusekit eval alone {60 / evolved_wall:.1f} /min on the evolved model "
      f"({60 / best_alone_wall:.1f} /min on the fine-tunes); peak RSS {summary.get('peak_memory_bytes', 0) / 1e9:.2f} GB; load {load_average()}")
