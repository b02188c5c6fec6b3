#!/usr/bin/env python3
"""The results table of examples/evolve: held-out exact match per task, the average, and wall times.

Usage: table.py WORK_DIR   (reads WORK_DIR/scores/*.json, times.tsv and evolve-*/run.json; prints Markdown)
"""
import json
import os
import sys

work = sys.argv[1]
TASKS = ["arith", "facts", "dates"]
ROWS = [  # (row name in scores/, label, steps whose wall time made the model)
    ("base", "SmolLM2-135M (no fine-tune)", ["base"]),
    ("ft-arith", "fine-tune: arith", ["train-arith", "apply-arith"]),
    ("ft-facts", "fine-tune: facts", ["train-facts", "apply-facts"]),
    ("ft-dates", "fine-tune: dates", ["train-dates", "apply-dates"]),
    ("linear", "merge: linear", ["merge-linear"]),
    ("ties", "merge: TIES (density 0.5)", ["merge-ties"]),
    ("dare_ties", "merge: DARE-TIES (density 0.5)", ["merge-dare_ties"]),
    ("greedy-soup", "evolve: greedy soup", ["evolve-soup"]),
    ("evolver-individual", "evolve: Evolver, individual form", ["evolve-evolver"]),
    ("evolver-population", "evolve: Evolver, population form (linear)", ["evolve-evolver-pop"]),
    ("cma-es", "evolve: CMA-ES recipe search (TIES weight+density)", ["evolve-cma"]),
]
RUNS = {"greedy-soup": "evolve-soup", "evolver-individual": "evolve-evolver", "evolver-population": "evolve-evolver-pop", "cma-es": "evolve-cma"}

times = {}
path = os.path.join(work, "times.tsv")
if os.path.exists(path):
    for line in open(path):
        name, seconds = line.rstrip("\n").split("\t")
        times[name] = float(seconds)


def score(row, task):
    p = os.path.join(work, "scores", f"{row}-{task}.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))["metrics"]["exact_match"]


def fmt(v):
    return "–" if v is None else f"{100 * v:.1f}"


print("| model | arith | facts | dates | average | made in (s) | dev fitness | dev evaluations |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for row, label, steps in ROWS:
    s = [score(row, t) for t in TASKS]
    avg = sum(s) / len(s) if all(v is not None for v in s) else None
    made = sum(times[k] for k in steps if k in times) if any(k in times for k in steps) else None
    dev, evals = "", ""
    if row in RUNS and os.path.exists(os.path.join(work, RUNS[row], "run.json")):
        r = json.load(open(os.path.join(work, RUNS[row], "run.json")))
        summary = r.get("measurements", r)
        best = summary.get("best_dev")
        dev = f"{100 * best:.1f}" if isinstance(best, (int, float)) else ""
        evals = str(summary.get("evaluations", ""))
    print(f"| {label} | {fmt(s[0])} | {fmt(s[1])} | {fmt(s[2])} | {fmt(avg)} | {'–' if made is None else f'{made:.0f}'} | {dev} | {evals} |")
total = sum(times.values())
tests = sum(v for k, v in times.items() if k.startswith("test-"))
print()
print(f"Held-out exact match in % (40 questions per task). Wall time of all steps: {total:.0f} s "
      f"(of which scoring on the test sets {tests:.0f} s); per step: "
      + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ".")
