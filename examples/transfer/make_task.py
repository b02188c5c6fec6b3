"""Writes the transfer example's task: reverse the order of 3-5 words. The skill generalises, so a
held-out test set measures it. Files in OUT: train.jsonl (prompt/completion, for the teacher's and
the student's LoRA), seeds.jsonl (32 prompt/completion seed samples for sensitivity), test.jsonl
(prompt/answer for `fusekit eval`, exact match) and test_loss.jsonl (prompt/completion, held-out loss).
Usage: python3 make_task.py OUT [SEED]. Standard library only."""
import json
import os
import random
import sys

WORDS = ("apple river stone cloud table green quiet music paper light window forest candle silver "
         "garden bridge winter orange pencil rocket mirror planet yellow castle summer marble thunder "
         "violet basket dragon meadow harbor jacket lemon mountain needle ocean pepper rabbit saddle "
         "tiger umbrella valley wagon zebra anchor butter cactus desert engine feather glacier hammer "
         "island jungle kettle ladder magnet nectar orbit pillow quartz ribbon spider tunnel velvet").split()


def example(rng):
    words = rng.sample(WORDS, rng.randint(3, 5))
    prompt = "Reverse the words: " + " ".join(words) + "\nAnswer:"
    return prompt, " " + " ".join(reversed(words))


def main(out, seed=0):
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    seen, rows = set(), []
    while len(rows) < 632:
        p, c = example(rng)
        if p not in seen:
            seen.add(p)
            rows.append((p, c))
    train, seeds, test = rows[:400], rows[400:432], rows[432:]
    with open(os.path.join(out, "train.jsonl"), "w") as f:
        for p, c in train:
            f.write(json.dumps({"prompt": p, "completion": c}) + "\n")
    with open(os.path.join(out, "seeds.jsonl"), "w") as f:
        for p, c in seeds:
            f.write(json.dumps({"prompt": p, "completion": c}) + "\n")
    with open(os.path.join(out, "test.jsonl"), "w") as f:
        for p, c in test:
            f.write(json.dumps({"prompt": p, "answer": c, "stop": ["\n"], "max_tokens": 16}) + "\n")
    with open(os.path.join(out, "test_loss.jsonl"), "w") as f:
        for p, c in test:
            f.write(json.dumps({"prompt": p, "completion": c}) + "\n")
    print(f"wrote {len(train)} train, {len(seeds)} seed, {len(test)} test examples to {out}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
