#!/usr/bin/env python3
"""Three small tasks for examples/evolve (standard library only, deterministic).

For each task T in arith, facts, dates this writes, under OUT_DIR:
  T-train.jsonl  {"prompt", "completion"}                       what `fusekit train` reads
  T-dev.jsonl    {"prompt", "answer", "stop", "max_tokens"}     generation exact match (`fusekit eval`); selection
  T-test.jsonl   the same kind, held out: never used to choose, only to report

arith  two-digit addition ("Q: 37 + 48 =" -> "85"); dev and test sums are not in train.
facts  made-up capitals of made-up countries ("Q: What is the capital of Vornad?" -> "Kelmir"). A fact
       cannot be guessed, so every fact is trained; dev and test ask disjoint subsets of them (the task
       measures whether a model still holds the facts after fusion).
dates  an ISO date rewritten US style ("2021-07-04" -> "07/04/2021"); dev and test dates are not in train.
"""
import json
import random
import sys

SIZES = {"train": 160, "dev": 16, "test": 40}   # per task; facts trains on all its dev and test facts too
rng = random.Random(20261124)


def write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def split(pairs, max_tokens, out, name, train_extra=()):
    n_train, n_dev = SIZES["train"], SIZES["dev"]
    train, dev, test = pairs[:n_train], pairs[n_train:n_train + n_dev], pairs[n_train + n_dev:n_train + n_dev + SIZES["test"]]
    train = list(train) + list(train_extra)
    rng.shuffle(train)
    write(f"{out}/{name}-train.jsonl", [{"prompt": p, "completion": " " + a + "\n"} for p, a in train])
    for part, rows in (("dev", dev), ("test", test)):
        write(f"{out}/{name}-{part}.jsonl",
              [{"prompt": p, "answer": a, "stop": ["\n"], "max_tokens": max_tokens} for p, a in rows])


def arith():
    seen, pairs = set(), []
    total = SIZES["train"] + SIZES["dev"] + SIZES["test"]
    while len(pairs) < total:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        pairs.append((f"Q: {a} + {b} =\nA:", str(a + b)))
    return pairs


ONSETS = ["b", "br", "d", "dr", "f", "g", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t", "tr", "v", "z"]
VOWELS = ["a", "e", "i", "o", "u"]
CODAS = ["", "n", "r", "l", "m", "d"]


def word(syllables):
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)).capitalize()


def facts():
    seen, pairs = set(), []
    total = SIZES["dev"] + SIZES["test"]
    while len(pairs) < total:
        country = word(2)
        if country in seen:
            continue
        seen.add(country)
        pairs.append((f"Q: What is the capital of {country}?\nA:", word(2)))
    return pairs


def dates():
    seen, pairs = set(), []
    total = SIZES["train"] + SIZES["dev"] + SIZES["test"]
    while len(pairs) < total:
        y, m, d = rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28)
        if (y, m, d) in seen:
            continue
        seen.add((y, m, d))
        pairs.append((f"Date: {y}-{m:02d}-{d:02d}\nUS:", f"{m:02d}/{d:02d}/{y}"))
    return pairs


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    split(arith(), 5, out, "arith")
    f = facts()
    # Every fact is trained (three times, so the short fine-tune sees each often enough); dev/test split the questions.
    n_dev = SIZES["dev"]
    facts_train = f * 3
    write(f"{out}/facts-train.jsonl", [{"prompt": p, "completion": " " + a + "\n"} for p, a in rng.sample(facts_train, len(facts_train))])
    for part, rows in (("dev", f[:n_dev]), ("test", f[n_dev:])):
        write(f"{out}/facts-{part}.jsonl", [{"prompt": p, "answer": a, "stop": ["\n"], "max_tokens": 8} for p, a in rows])
    split(dates(), 12, out, "dates")
    print(f"wrote arith, facts and dates (train/dev/test) to {out}")


if __name__ == "__main__":
    main()
