# pip install tokenizers==0.23.3 transformers==5.23.0 gguf==0.19.0 numpy==2.4.6
"""Random cross-check of FuseTokenizers against HF tokenizers on text the fixture corpus lacks.

Random strings (CJK and other scripts, combining-mark stacks, emoji ZWJ/flag/keycap sequences, RTL with
bidi controls, C0/C1 control characters, long space/newline/tab runs, digit runs in several scripts,
code, special-token strings such as "<|im_start|>" inside text and cut short, leading spaces, the
empty string, random code points from all planes) are encoded by `fusekit tokenize --jsonl` (hidden
flag) and by HF `tokenizers` (Tokenizer.encode with the post-processor's special tokens), and the
decodes (with and without special tokens) are compared.

Tokenizers: the two real GGUF models (HF side: transformers' GGUF conversion, as
Tools/fixtures/tokenizer_fixtures.py builds it; FuseKit side: its GGUF-vocabulary tokenizer on the
.gguf file), the fixture tokenizer.json files (gpt2-trained, llama2-spm, wordpiece, unigram) and the
tiny GGUF vocabularies (written back to .gguf files from their .vocab.json dumps).

Run (from the repository root, after `swift build -c release --product fusekit`):
  /opt/fkvenv/bin/python Tools/checks/tokenizer_random.py [--count 3000] [--seed 1] [--models /work/main/models]
                                                          [--only smollm2,gemma3] [--failures out.jsonl]
"""
import argparse, json, os, random, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")
FUSEKIT = os.path.join(ROOT, ".build", "release", "fusekit")
sys.path.insert(0, os.path.join(ROOT, "Tools", "fixtures"))
from gguf_vocab import write_gguf   # noqa: E402

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<s>", "</s>",
            "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<image_soft_token>", "[CLS]", "[SEP]", "[MASK]",
            "<|user|>", "<0x41>", "<0x0A>", "<unused0>", "<tool>", "hello world", "Hello_There"]
EMOJI = ["👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "👩🏽\u200d💻", "🧑\u200d🤝\u200d🧑", "❤️\u200d🔥", "🇯🇵", "🇺🇳", "1\ufe0f\u20e3",
         "#\ufe0f\u20e3", "👍🏿", "🫠", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "☺︎", "☺️", "🦀", "🤷‍♀️"]
CODE = ["def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
        "SELECT * FROM t WHERE id IN (1, 2, 3);", "fn main() { println!(\"{}\", 42); }", "if x != None and y >= 0:\n\t\tpass",
        "#include <stdio.h>\nint main(void){return 0;}", "const re = /^\\s*(\\d+)\\.(\\d+)$/g;", "<div class=\"a\">&nbsp;&lt;</div>",
        "$ ls -la | grep '^d' && echo \"done\"", "x=[i*i for i in range(10)if i%2]", "    \n    \n\tindent\n", "λx.λy.x y",
        "```python\nprint('hi')\n```", "{\"key\": [1, 2.5e-3, null, true]}", "a->b::c<d<e>>", "i++; j--; k**=2; m//=3"]


def rand_char(r, lo, hi):
    return chr(r.randint(lo, hi))


def gen(r):
    kind = r.randrange(16)
    if kind == 0:   # CJK / kana / hangul
        ranges = [(0x4E00, 0x9FFF), (0x3040, 0x309F), (0x30A0, 0x30FF), (0xAC00, 0xD7A3), (0x3400, 0x4DBF), (0x20000, 0x2A6DF)]
        return "".join(rand_char(r, *r.choice(ranges)) for _ in range(r.randint(1, 20)))
    if kind == 1:   # combining mark stacks
        return "".join(r.choice("aeiouAZnxç ") + "".join(rand_char(r, 0x0300, 0x036F) for _ in range(r.randint(0, 4))) for _ in range(r.randint(1, 8)))
    if kind == 2:   # emoji sequences
        return "".join(r.choice(EMOJI + [" ", "", "a"]) for _ in range(r.randint(1, 6)))
    if kind == 3:   # RTL with bidi controls
        return "".join(r.choice([rand_char(r, 0x0600, 0x06FF), rand_char(r, 0x0590, 0x05FF), "\u200f", "\u200e", "\u202e", "\u202c", " ", "1"])
                       for _ in range(r.randint(1, 20)))
    if kind == 4:   # control characters
        pool = [chr(c) for c in range(0, 32)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)] + ["\u2028", "\u2029", "\u0085", "\ufeff", "\u200b"]
        return "".join(r.choice(pool + ["a", " "]) for _ in range(r.randint(1, 12)))
    if kind == 5:   # whitespace runs
        parts = [r.choice([" " * r.randint(1, 40), "\n" * r.randint(1, 20), "\t" * r.randint(1, 8), "\r\n" * r.randint(1, 4), " \n" * r.randint(1, 5),
                           "\u3000", "\u00a0" * r.randint(1, 3), rand_char(r, 0x2000, 0x200A), "word", "x"]) for _ in range(r.randint(1, 6))]
        return "".join(parts)
    if kind == 6:   # digit runs
        digits = r.choice(["0123456789", "٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９", "⁰¹²³⁴⁵⁶⁷⁸⁹", "०१२३४५६७८९"])
        return "".join(r.choice([r.choice(digits) * r.randint(1, 3), "".join(r.choice(digits) for _ in range(r.randint(1, 50))), " ", ".", ",", "-", "e"])
                       for _ in range(r.randint(1, 5)))
    if kind == 7:   # code
        return "".join(r.choice(CODE) for _ in range(r.randint(1, 3)))
    if kind == 8:   # special-token strings in text, whole and cut short
        out = ""
        for _ in range(r.randint(1, 6)):
            s = r.choice(SPECIALS)
            if r.random() < 0.25: s = s[: r.randint(1, len(s))]
            out += r.choice(["", " ", "  ", "\n", "x", "<", ">", "|"]) + s
        return out
    if kind == 9:   # leading spaces
        return " " * r.randint(1, 6) + r.choice(["hello", "Hello world", "123", "日本", "\n", "<|im_start|>", "'s", "ok."])
    if kind == 10:   # random code points from every plane (no surrogates)
        out = ""
        for _ in range(r.randint(1, 10)):
            c = r.choice([r.randint(0x20, 0x7E), r.randint(0xA0, 0x2FFF), r.randint(0xE000, 0xFFFD), r.randint(0x10000, 0x10FFFF)])
            if 0xD800 <= c <= 0xDFFF: c = 0x41
            out += chr(c)
        return out
    if kind == 11:   # short edge strings
        return r.choice(["", " ", "\n", "\t", "  ", "a", "'", "'s", "'S", "'ll", " 's", "▁", "▁▁", "<", ">", "<0x00>", "\x00", "\ufffd", "ÿ", "\u00ad"])
    if kind == 12:   # apostrophes and contractions
        return " ".join(r.choice(["it's", "IT'S", "we've", "I'M", "don’t", "'re", "''", "'''", "o'clock", "rock'n'roll", "'", "’s"]) for _ in range(r.randint(1, 6)))
    if kind == 13:   # Indic/Thai/other scripts with marks
        ranges = [(0x0900, 0x097F), (0x0E00, 0x0E7F), (0x0B80, 0x0BFF), (0x1000, 0x109F), (0x10A0, 0x10FF), (0x1780, 0x17FF)]
        return "".join(rand_char(r, *r.choice(ranges)) for _ in range(r.randint(1, 15)))
    if kind == 14:   # long repeats
        return r.choice(["a", "ab", "=", "-", "_", "😀", "日", " a", "\n\n", "0"]) * r.randint(10, 120)
    return " ".join(gen(r) for _ in range(r.randint(2, 4)))   # mixtures


def hf_from_gguf(gguf_path, outdir):
    """transformers' GGUF tokenizer conversion, saved as tokenizer.json (cached in outdir)."""
    path = os.path.join(outdir, "tokenizer.json")
    if not os.path.exists(path):
        from transformers import AutoTokenizer
        t = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
        t.save_pretrained(outdir)
    return path


def tokenizers_under_test(models, cache, only):
    out = []   # (name, fusekit path, tokenizer.json)
    if models:
        for name, file in [("smollm2", "smollm2.gguf"), ("gemma3", "gemma3-270m.gguf")]:
            g = os.path.join(models, file)
            if os.path.exists(g): out.append((name, g, hf_from_gguf(g, os.path.join(cache, name))))
    for name in ["gpt2-trained", "llama2-spm", "wordpiece", "unigram"]:
        out.append((name, os.path.join(FIX, name), os.path.join(FIX, name, "tokenizer.json")))
    for name in ["tiny-gguf-gpt2", "tiny-gguf-llama", "tiny-gguf-gemma"]:
        v = json.load(open(os.path.join(FIX, name + ".vocab.json"), encoding="utf-8"))
        g = os.path.join(cache, name + ".gguf")
        if not os.path.exists(g): write_gguf(g, v["architecture"], v)
        out.append((name, g, hf_from_gguf(g, os.path.join(cache, name))))
    return [t for t in out if not only or t[0] in only]


def fusekit_encode(path, texts, tmp):
    inp = os.path.join(tmp, "in.jsonl")
    with open(inp, "w", encoding="utf-8") as f:
        for s in texts: f.write(json.dumps(s) + "\n")
    r = subprocess.run([FUSEKIT, "tokenize", path, "--text", inp, "--jsonl"], capture_output=True, text=True, encoding="utf-8")
    if r.returncode != 0: raise SystemExit(f"fusekit tokenize {path} failed: {r.stderr[:500]}")
    return [json.loads(l) for l in r.stdout.split("\n") if l]   # not splitlines: U+2028, U+0085 may stand raw in JSON


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", default="/work/main/models")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "fusekit-tokenizer-random"))
    ap.add_argument("--only", default="")
    ap.add_argument("--codepoints", action="store_true",
                    help="instead of random strings: every code point c (no surrogates) in f'x{c} {c}{c}1'")
    ap.add_argument("--failures", default=None, help="write the disagreeing strings here (JSONL: tokenizer, text, ids)")
    args = ap.parse_args()
    from tokenizers import Tokenizer
    os.makedirs(args.cache, exist_ok=True)
    r = random.Random(args.seed)
    if args.codepoints:
        texts = [f"x{chr(c)} {chr(c)}{chr(c)}1" for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    else:
        texts = [gen(r) for _ in range(args.count)]
    only = set(filter(None, args.only.split(",")))
    failures, total_bad = [], 0
    for name, path, tj in tokenizers_under_test(args.models, args.cache, only):
        hf = Tokenizer.from_file(tj)
        got = fusekit_encode(path, texts, args.cache)
        bad_ids = bad_dec = 0
        assert len(got) == len(texts), f"{name}: fusekit returned {len(got)} lines for {len(texts)} texts"
        wants = [e.ids for e in hf.encode_batch(texts)]
        for s, g, want in zip(texts, got, wants):
            if g["ids"] != want:
                bad_ids += 1
                failures.append({"tokenizer": name, "text": s, "fusekit": g["ids"], "hf": want, "what": "ids"})
                continue
            d, k = hf.decode(want, skip_special_tokens=False), hf.decode(want, skip_special_tokens=True)
            if g["decoded"] != d or g["skipped"] != k:
                bad_dec += 1
                failures.append({"tokenizer": name, "text": s, "fusekit": [g["decoded"], g["skipped"]], "hf": [d, k], "what": "decode"})
        total_bad += bad_ids + bad_dec
        print(f"{name}: {len(texts) - bad_ids}/{len(texts)} ids agree, {bad_dec} decodes differ", flush=True)
    if args.failures:
        with open(args.failures, "w", encoding="utf-8") as f:
            for x in failures: f.write(json.dumps(x, ensure_ascii=False) + "\n")
    for x in failures[:15]:
        print(f"  {x['tokenizer']} {x['what']}: {x['text']!r}\n    fusekit {x['fusekit']!r}\n    hf      {x['hf']!r}")
    sys.exit(1 if total_bad else 0)


if __name__ == "__main__":
    main()
