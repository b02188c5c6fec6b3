#!/usr/bin/env python3
"""Held-out evaluation files for examples/distill/run.sh, from the corpus's held-out split only.

Usage: make_task.py HELD_OUT.txt OUT_TEXT.txt OUT_CLOZE.jsonl [--bytes 12000] [--items 40] [--seed 0]

OUT_TEXT.txt: the first whole lines of the held-out split, up to --bytes (perplexity text).
OUT_CLOZE.jsonl: a 4-way multiple-choice cloze task (`fusekit eval --task`): for a prose line of 12 to 40
words taken after that text, the context is the line without its last 4 words and the choices are those
4 words and the last 4 words of three other such lines (seeded shuffle). Scored by log-likelihood as
lm-evaluation-harness does; chance is 25%.
"""
import argparse, json, random

p = argparse.ArgumentParser()
p.add_argument("held_out"); p.add_argument("text"); p.add_argument("cloze")
p.add_argument("--bytes", type=int, default=12000); p.add_argument("--items", type=int, default=40)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
lines = open(a.held_out, encoding="utf-8").read().split("\n")
out, size, i = [], 0, 0
while i < len(lines) and size + len(lines[i].encode()) + 1 <= a.bytes:
    out.append(lines[i]); size += len(lines[i].encode()) + 1; i += 1
open(a.text, "w", encoding="utf-8").write("\n".join(out) + "\n")
prose = []
for line in lines[i:]:
    words = line.split()
    if 12 <= len(words) <= 40 and sum(w.isalpha() for w in words) >= 0.7 * len(words):
        prose.append(words)
rng = random.Random(a.seed)
rng.shuffle(prose)
items = prose[:a.items]
pool = prose[a.items:a.items * 4]
with open(a.cloze, "w", encoding="utf-8") as f:
    for n, words in enumerate(items):
        right = " ".join(words[-4:])
        wrong = [" ".join(w[-4:]) for w in pool[3 * n:3 * n + 3]]
        choices = [right] + wrong
        rng.shuffle(choices)
        f.write(json.dumps({"context": " ".join(words[:-4]), "choices": choices, "answer": choices.index(right)}) + "\n")
print(f"{a.text}: {size} bytes; {a.cloze}: {len(items)} items")
