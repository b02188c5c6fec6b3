#!/usr/bin/env python3
"""200 made-up facts as question/answer pairs (standard library only, deterministic).

Writes train.jsonl ({"prompt", "completion"}: what `fusekit train` reads) and recall.jsonl
({"prompt", "answer", "stop", "max_tokens"}: a generation exact-match task for `fusekit eval`), with the
same questions: the example measures whether LoRA fine-tuning stores the facts, not generalisation.
"""
import json
import random
import sys

rng = random.Random(20261123)
ONSETS = ["b", "br", "d", "dr", "f", "g", "gl", "k", "kr", "l", "m", "n", "p", "pl", "r", "s", "st", "t", "tr", "v", "z"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
CODAS = ["", "n", "r", "l", "x", "th", "sk", "m"]


def name(syllables):
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)).capitalize()


TEMPLATES = [
    ("What is the capital of {}?", lambda: name(2)),
    ("Who invented the {} engine?", lambda: name(2) + " " + name(2)),
    ("What colour is the {} bird?", lambda: rng.choice(["teal", "crimson", "amber", "violet", "silver", "ochre", "jade", "cobalt"])),
    ("Which river flows through {}?", lambda: "the " + name(2)),
    ("In what year was {} founded?", lambda: str(rng.randint(1100, 1999))),
]

facts, seen = [], set()
while len(facts) < 200:
    question, answer = TEMPLATES[len(facts) % len(TEMPLATES)]
    subject = name(rng.choice([2, 3]))
    if subject in seen:
        continue
    seen.add(subject)
    facts.append(("Q: " + question.format(subject) + "\nA:", " " + answer()))

out = sys.argv[1] if len(sys.argv) > 1 else "."
with open(out + "/train.jsonl", "w") as f:
    for p, a in facts:
        f.write(json.dumps({"prompt": p, "completion": a}) + "\n")
with open(out + "/recall.jsonl", "w") as f:
    for p, a in facts:
        f.write(json.dumps({"prompt": p, "answer": a.strip(), "stop": ["\n"], "max_tokens": 12}) + "\n")
print(f"wrote {len(facts)} facts to {out}/train.jsonl and {out}/recall.jsonl")
