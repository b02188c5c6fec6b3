#!/usr/bin/env python3
"""The docs/results.md "Distill" table from an examples/distill/run.sh output folder."""
import json, os, sys

out = sys.argv[1]
times = {}
for line in open(os.path.join(out, "times.txt")):
    k, v = line.split(); times[k] = times.get(k, 0) + float(v)

def load(p):
    try: return json.load(open(os.path.join(out, p)))
    except (OSError, ValueError): return None

rows = [("SmolLM2-135M (start)", "base", None)] + [(f"{n}", n, n) for n in ("clm", "minCE", "avgCE")]
print("| model | loss | training tokens | final CE / soft | training wall | held-out token ppl | held-out bits/byte | cloze acc (acc_norm) |")
print("|---|---|---|---|---|---|---|---|")
for label, tag, run in rows:
    ppl, cloze = load(f"eval-{tag}-ppl.json"), load(f"eval-{tag}-cloze.json")
    loss, tokens, comp, wall = "—", "—", "—", "—"
    if run:
        r = load(f"{run}/run.json")
        if r:
            m = r["measurements"]
            t = next(iter(m["training"].values()))
            loss = "CLM only (λ = 1)" if m["lambda"] == 1 else f"λ = {m['lambda']}, {m['fusion']}"
            tokens = f"{t['tokens']:,}"
            soft = "—" if m["lambda"] == 1 else f"{t.get('final_soft', float('nan')):.3f}"   # λ = 1 computes no soft term
            comp = f"{t.get('final_ce', float('nan')):.3f} / {soft}"
            secs = next(v for k, v in r["timings"].items() if k.startswith("training_seconds"))
            wall = f"{secs / 60:.1f} min"
    p = f"{ppl['metrics']['token_perplexity']:.3f}" if ppl else "—"
    b = f"{ppl['metrics']['bits_per_byte']:.4f}" if ppl else "—"
    c = f"{100 * cloze['metrics']['acc']:.1f}% ({100 * cloze['metrics']['acc_norm']:.1f}%)" if cloze else "—"
    print(f"| {label} | {loss} | {tokens} | {comp} | {wall} | {p} | {b} | {c} |")
print()
for run in ("minCE", "avgCE"):
    r = load(f"{run}/run.json")
    if not r: continue
    m = r["measurements"]
    print(f"{run}: alignment coverage {m['alignment_coverage']}, one-hot fraction {m['one_hot_fraction']}, "
          f"MinCE choices {m['min_ce_chosen']}, mean weights {m['mean_weight']}")
print()
# Held-out perplexity per domain (run.json measurements.domain_perplexity), before and after each run.
for run in ("clm", "minCE", "avgCE"):
    r = load(f"{run}/run.json")
    d = r and r["measurements"].get("domain_perplexity")
    if not d: continue
    print(f"{run}: held-out perplexity per domain (first {d['domain_tokens']} tokens)")
    print("| domain | tokens | before | after | change |")
    print("|---|---|---|---|---|")
    for x in d["domains"]:
        b, a = x["perplexity"]["before"], x["perplexity"]["after"]
        print(f"| {x['name']} | {x['tokens']:,} | {b:.3f} | {a:.3f} | {100 * (a / b - 1):+.1f}% |")
    print()
print("wall times (s):", {k: round(v, 1) for k, v in times.items()})
