# pip install mergekit==0.1.5 torch==2.15.0 transformers==5.23.0 safetensors==0.8.0 numpy==2.4.6 pyyaml==6.0.3
"""Random cross-check of `fusekit merge` against mergekit 0.1.5 on configs nobody wrote by hand.

Each case builds tiny random models (Llama- or Qwen2-shaped, 2-4 layers, odd sizes such as 24/40/56,
vocabulary 50-70, bf16/f16/f32, sometimes tied embeddings, extra tensors mergekit's architecture does not
list, a model whose vocabulary is a few rows longer, or inputs of mixed dtypes) and a random mergekit
YAML for one method: per-model and global parameters, gradient lists, `filter:`-scoped values, the
method's switches (normalize, rescale, int8_mask, lambda, epsilon, select_topk, t lists, nuslerp flags,
karcher max_iter/tol, filter_wise, ...), `models:` or `slices:` (per-slice parameters, shifted layer
ranges), base_model present or absent where allowed, dtype / out_dtype, and (some cases)
tokenizer_source base / union / a model.

mergekit runs in this process (`run_merge`, the code mergekit-yaml calls; --random-seed 0 semantics);
fusekit runs as a subprocess. Every tensor is compared: names, shapes, dtype, values (max |diff| / max
|mergekit|, fraction of bit-equal elements), and config.json's layer count, dtype and vocab_size.
Expected: bf16/f16 bit-equal, f32 within 1e-6 relative. A config mergekit rejects must be rejected by
fusekit (and the reverse).

Random methods (dare_*, della*) draw masks from torch's RNG in mergekit and from FuseKit's own seeded
stream (docs/merge.md), so with density < 1 only statistics are compared: per tensor the fraction of
elements the merge changed and the mean |output - base| must agree within 5 sigma (+ small slack).
With density 1 they are deterministic and compared like the others.

Usage (repository root):
  python3 Tools/checks/merge_random.py --fusekit .build/release/fusekit --cases 100 --seed 1 [--methods ties slerp]
  [--keep DIR]   keep every disagreeing case (models, config.yml, both outputs) under DIR
  [--tokenizers] also draw tokenizer_source in some cases
  [--invalid 0.3] give that fraction of cases one edit mergekit refuses (or quietly accepts): both must agree
Statuses: ok; strict (an --invalid edit mergekit ignores and FuseKit refuses on purpose: STRICT_EDITS);
ulp (Float32 arithmetic rounded to a half type at the end, some elements one ulp apart:
see compare_tensors); both-reject; mk-crash (mergekit 0.1.5 fails to save config.json when slices change the
layer count of a Qwen2 config under transformers 5; FuseKit's output is fine); FAIL; FAIL-mixed (inputs of
different dtypes and no `dtype:`: mergekit promotes op by op, FuseKit computes in the promoted type).
Without base_model mergekit takes config.json from an arbitrary model (a Python set's order), so
vocab_size and dtype are not compared then when the models' vocabularies or dtypes differ.
Exit status 1 if any case has FAIL.
"""
import argparse
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

METHODS = ["linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties",
           "della", "della_linear", "sce", "ram", "ramplus_tl", "slerp", "nuslerp", "multislerp", "karcher",
           "model_stock", "nearswap", "arcee_fusion", "passthrough"]
RANDOM_METHODS = {"dare_ties", "dare_linear", "della", "della_linear"}
TA_FAMILY = {"task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear"}
TORCH_DTYPE = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
DTYPE_NAME = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


# MARK: - Models

class Shape:
    def __init__(self, r):
        self.arch = r.choice(["llama", "qwen2"])
        self.layers = r.choice([2, 3, 4])
        self.hidden = r.choice([24, 40, 56])
        self.inter = r.choice([24, 40, 56, 72])
        self.heads = r.choice([2, 4])
        self.kv_heads = r.choice([h for h in (1, 2, self.heads) if self.heads % h == 0])
        self.vocab = r.randint(50, 70)
        self.tied = r.random() < 0.15
        self.extra = r.random() < 0.15          # tensors the architecture does not list
        self.dtype = r.choice(["f32", "bf16", "bf16", "f16"])

    def describe(self):
        return (f"{self.arch} L{self.layers} h{self.hidden} i{self.inter} heads{self.heads}/{self.kv_heads} v{self.vocab} "
                f"{self.dtype}{' tied' if self.tied else ''}{' extra' if self.extra else ''}")


def config_json(s, vocab, dtype):
    arch = "Qwen2ForCausalLM" if s.arch == "qwen2" else "LlamaForCausalLM"
    return {"architectures": [arch], "model_type": s.arch, "hidden_size": s.hidden, "intermediate_size": s.inter,
            "num_hidden_layers": s.layers, "num_attention_heads": s.heads, "num_key_value_heads": s.kv_heads,
            "vocab_size": vocab, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": s.tied, "torch_dtype": DTYPE_NAME[dtype]}


def base_tensors(s, vocab, g):
    hd = s.hidden // s.heads
    t = {"model.embed_tokens.weight": torch.randn(vocab, s.hidden, generator=g),
         "model.norm.weight": 1 + 0.1 * torch.randn(s.hidden, generator=g)}
    if not s.tied:
        t["lm_head.weight"] = torch.randn(vocab, s.hidden, generator=g) * 0.2
    for i in range(s.layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(s.hidden, generator=g)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(s.hidden, generator=g)
        outs = {"q": s.heads * hd, "k": s.kv_heads * hd, "v": s.kv_heads * hd}
        for n, o in outs.items():
            t[p + f"self_attn.{n}_proj.weight"] = torch.randn(o, s.hidden, generator=g) * 0.25
            if s.arch == "qwen2":
                t[p + f"self_attn.{n}_proj.bias"] = torch.randn(o, generator=g) * 0.1
        t[p + "self_attn.o_proj.weight"] = torch.randn(s.hidden, s.heads * hd, generator=g) * 0.25
        t[p + "mlp.gate_proj.weight"] = torch.randn(s.inter, s.hidden, generator=g) * 0.25
        t[p + "mlp.up_proj.weight"] = torch.randn(s.inter, s.hidden, generator=g) * 0.25
        t[p + "mlp.down_proj.weight"] = torch.randn(s.hidden, s.inter, generator=g) * 0.18
        if s.extra:
            t[p + "self_attn.rotary_emb.inv_freq"] = torch.rand(hd // 2, generator=g)
    return t


def write_tokenizer(path, tokens):
    """A WordLevel tokenizer.json; the last token is an added <|endoftext|>, which transformers' Qwen2
    tokenizer appends when the file lacks it (mergekit then fails on an id beyond vocab_size)."""
    tokens = tokens[:-1] + ["<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    added = [{"id": len(tokens) - 1, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
           "model": {"type": "WordLevel", "vocab": vocab, "unk_token": tokens[0]}}
    with open(os.path.join(path, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast"}, f)


def make_models(r, g, s, names, work, tokenizers):
    """names[0] is the base (or first) model. Fine-tunes are the base plus deltas of different scales,
    some sparse. Returns {name: path}."""
    base = base_tensors(s, s.vocab, g)
    long_vocab = r.random() < 0.12 and len(names) > 1      # one model with a few more rows
    mixed = r.random() < 0.1                               # one model stored in another dtype
    long_name = r.choice(names[1:]) if long_vocab else None
    mixed_name = r.choice(names) if mixed else None
    paths = {}
    for k, name in enumerate(names):
        if k == 0:
            t = dict(base)
        else:
            scale = r.choice([0.02, 0.05, 0.1, 0.3])
            t = {}
            sparse = r.random() < 0.3
            for n, v in base.items():
                d = torch.randn(v.shape, generator=g) * scale
                if sparse:
                    d = d * (torch.rand(v.shape, generator=g) < 0.5)
                t[n] = v + d
        vocab = s.vocab
        if name == long_name:
            extra = r.randint(1, 4)
            vocab += extra
            for n in ("model.embed_tokens.weight", "lm_head.weight"):
                if n in t:
                    t[n] = torch.cat([t[n], torch.randn(extra, s.hidden, generator=g) * 0.2])
        dtype = s.dtype
        if name == mixed_name:
            dtype = r.choice([d for d in TORCH_DTYPE if d != s.dtype])
        path = os.path.join(work, "models", name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config_json(s, vocab, dtype), f, indent=1)
        save_file({n: v.to(TORCH_DTYPE[dtype]).contiguous() for n, v in t.items()},
                  os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
        if tokenizers:
            # shared words plus a few of the model's own, in a shuffled order
            words = [f"w{i}" for i in range(vocab - 4)] + [f"{name}{i}" for i in range(3)]
            if k > 0:
                r.shuffle(words)
            words.append("<|endoftext|>")
            write_tokenizer(path, words)
        paths[name] = path
    notes = []
    if long_vocab:
        notes.append(f"{long_name} has a longer vocabulary")
    if mixed:
        notes.append(f"{mixed_name} stored as another dtype")
    return paths, notes


# MARK: - Parameter values

def num(r, lo, hi, digits=3):
    return round(r.uniform(lo, hi), digits)


def value(r, lo, hi, gradient_ok=True):
    """A scalar or a gradient list."""
    if gradient_ok and r.random() < 0.3:
        return [num(r, lo, hi) for _ in range(r.randint(2, 4))]
    return num(r, lo, hi)


def setting(r, lo, hi, gradient_ok=True, fallback=True):
    """A scalar, a gradient, or a filtered list ([{filter, value}, ..., {value}])."""
    x = r.random()
    if x < 0.65:
        return value(r, lo, hi, gradient_ok)
    entries = []
    for f in r.sample(["self_attn", "mlp", "q_proj", "down_proj", "norm", "embed"], r.randint(1, 2)):
        entries.append({"filter": f, "value": value(r, lo, hi, gradient_ok)})
    if fallback:
        entries.append({"value": value(r, lo, hi, gradient_ok)})
    return entries


# MARK: - Configs

def per_model_spec(method, r):
    """(name, lo, hi, required) per-model parameters of the method."""
    if method in ("linear", "nuslerp", "multislerp"):
        return [("weight", 0.05, 1.2, True)]
    if method in TA_FAMILY:
        spec = [("weight", -0.2 if r.random() < 0.15 else 0.1, 1.2, True)]
        if method != "task_arithmetic" or r.random() < 0.3:
            dense = r.random() < 0.2
            spec.append(("density", 1.0 if dense else 0.15, 1.0, False))
        if method.startswith("breadcrumbs"):
            spec.append(("gamma", 0.0, 0.12, False))
        return spec
    if method == "passthrough":
        return [("scale", 0.2, 2.0, False)]
    return []


def global_params(method, r):
    p = {}
    maybe = lambda prob: r.random() < prob
    if method == "linear" and maybe(0.5):
        p["normalize"] = r.random() < 0.7
    if method in TA_FAMILY:
        if maybe(0.4):
            p["normalize"] = r.random() < 0.5
        if maybe(0.3):
            p["rescale"] = r.random() < 0.5
        if maybe(0.3):
            p["int8_mask"] = r.random() < 0.5
        if maybe(0.35):
            p["lambda"] = setting(r, 0.3, 1.6, fallback=True) if maybe(0.3) else num(r, 0.3, 1.6)
    if method == "sce":
        if maybe(0.7):
            p["select_topk"] = r.choice([num(r, 0.05, 0.95), 1.0, [0.2, 0.8], num(r, 0.005, 0.05)])
        if maybe(0.3):
            p["int8_mask"] = r.random() < 0.5
    if method == "ram" and maybe(0.6):
        p["epsilon"] = r.choice([1e-5, 0.01, 0.03, 0.08])
    if method == "ramplus_tl":
        if maybe(0.5):
            p["epsilon"] = r.choice([1e-5, 0.01, 0.03])
        if maybe(0.5):
            p["r"] = num(r, 0.0, 0.8)
        if maybe(0.5):
            p["alpha"] = num(r, 0.0, 0.6)
    if method in ("slerp", "nearswap"):
        lo, hi = (0.0, 1.0) if method == "slerp" else (0.001, 0.3)
        p["t"] = setting(r, lo, hi)
    if method == "nuslerp":
        if maybe(0.5):
            p["nuslerp_flatten"] = r.random() < 0.5
        if maybe(0.5):
            p["nuslerp_row_wise"] = r.random() < 0.5
    if method == "multislerp":
        if maybe(0.4):
            p["normalize_weights"] = r.random() < 0.5
        if maybe(0.3):
            p["eps"] = r.choice([1e-8, 1e-6, 1e-4])
    if method == "karcher":
        if maybe(0.5):
            p["max_iter"] = r.choice([1, 2, 5, 10, 30])
        if maybe(0.5):
            p["tol"] = r.choice([1e-3, 1e-5, 1e-7, 1e-9])
    if method == "model_stock" and maybe(0.5):
        p["filter_wise"] = r.random() < 0.5
    return p


def model_count(method, r):
    """(number of non-base models, base: 'required' | 'optional' | 'none' | 'listed')."""
    if method in TA_FAMILY or method in ("sce", "ram", "ramplus_tl"):
        return r.randint(1, 3), "required"
    if method == "model_stock":
        return r.randint(2, 3), "required"
    if method in ("nearswap", "arcee_fusion"):
        return 1, "listed"
    if method == "slerp":
        return 1, "listed"
    if method == "nuslerp":
        return 2, "optional"
    if method == "multislerp":
        return r.randint(2, 3), "optional"
    if method == "karcher":
        return r.randint(2, 3), "optional"
    if method == "linear":
        return r.randint(1, 3), "optional"
    return r.randint(1, 3), "none"   # passthrough


def della_epsilon(r, density):
    """An epsilon mergekit accepts for this density (0 < d - e and d + e < 1), sometimes not."""
    if isinstance(density, (int, float)) and 0 < density < 1:
        return round(r.uniform(0.0, min(density, 1 - density) * 0.95), 3)
    return 0.0


def fill_model_params(method, r, target, is_base, spec, density_cache):
    for name, lo, hi, required in spec:
        if is_base and r.random() < 0.7:
            continue
        if not required and r.random() < 0.4:
            continue
        if method in ("della", "della_linear") and name == "density":
            d = num(r, 0.2, 0.9)
            target["density"] = d
            target["epsilon"] = della_epsilon(r, d)
            continue
        if name == "density" and method == "ties" and r.random() < 0.5:
            target[name] = num(r, lo, hi)
            continue
        target[name] = setting(r, lo, hi)
    return target


def make_config(method, r, s, paths, names, base_mode):
    cfg = {"merge_method": method}
    notes = []
    spec = per_model_spec(method, r)
    base = names[0] if base_mode in ("required", "listed") or (base_mode == "optional" and r.random() < 0.5) else None
    if base_mode == "optional" and base is None:
        names = names[1:]   # the "base" slot becomes unused
    gp = global_params(method, r)
    # per-model parameters sometimes given once at the top level
    global_model_params = {}
    if spec and r.random() < 0.2:
        fill_model_params(method, r, global_model_params, False, spec, {})
        if method == "linear" and "weight" not in global_model_params:
            global_model_params["weight"] = num(r, 0.1, 1)
    gp.update(global_model_params)
    use_slices = method == "passthrough" or (r.random() < 0.25 and method not in ("arcee_fusion",))
    if base is not None:
        cfg["base_model"] = paths[base]
    if not use_slices:
        models = []
        for n in names:
            if base is not None and n == base and base_mode == "required" and r.random() < 0.5:
                continue   # mergekit appends the base itself
            entry = {"model": paths[n]}
            p = fill_model_params(method, r, {}, n == base, spec, {})
            if method in ("linear", "nuslerp", "multislerp") and "weight" not in p and "weight" not in gp:
                p["weight"] = num(r, 0.1, 1.0)
            if method in TA_FAMILY and n != base and "weight" not in p and "weight" not in gp:
                p["weight"] = num(r, 0.1, 1.0)
            if p:
                entry["parameters"] = p
            models.append(entry)
        cfg["models"] = models
    else:
        cfg["slices"] = make_slices(method, r, s, paths, names, base, spec, gp, notes)
    if gp:
        cfg["parameters"] = gp
    x = r.random()
    if x < 0.25:
        cfg["dtype"] = r.choice(["float32", "bfloat16", "float16"])
    if r.random() < 0.2:
        cfg["out_dtype"] = r.choice(["float32", "bfloat16", "float16"])
    return cfg, notes


def make_slices(method, r, s, paths, names, base, spec, gp, notes):
    slices = []
    if method == "passthrough":
        for _ in range(r.randint(1, 3)):
            n = r.choice(names)
            a = r.randint(0, s.layers - 1)
            b = r.randint(a + 1, s.layers)
            src = {"model": paths[n], "layer_range": [a, b]}
            if r.random() < 0.4:
                src["parameters"] = {"scale": setting(r, 0.2, 2.0)}
            slices.append({"sources": [src]})
        return slices
    # split the layers into one or two output slices; each source may take a shifted range
    cuts = [0, s.layers] if s.layers < 3 or r.random() < 0.5 else [0, r.randint(1, s.layers - 1), s.layers]
    for a, b in zip(cuts, cuts[1:]):
        length = b - a
        sources = []
        for n in names:
            start = r.randint(0, s.layers - length) if r.random() < 0.3 else a
            src = {"model": paths[n], "layer_range": [start, start + length]}
            p = fill_model_params(method, r, {}, n == base, spec, {})
            if method in ("linear", "nuslerp", "multislerp") and "weight" not in p and "weight" not in gp:
                p["weight"] = num(r, 0.1, 1.0)
            if method in TA_FAMILY and n != base and "weight" not in p and "weight" not in gp:
                p["weight"] = num(r, 0.1, 1.0)
            if p:
                src["parameters"] = p
            sources.append(src)
        sl = {"sources": sources}
        if r.random() < 0.3:
            extra = global_params(method, r)
            if extra:
                sl["parameters"] = extra
        slices.append(sl)
    notes.append("slices " + str([[x["layer_range"] for x in sl["sources"]] for sl in slices]))
    return slices


# MARK: - Configs meant to be refused (or accepted against expectation)

BASE_REQUIRED = TA_FAMILY | {"sce", "ram", "ramplus_tl", "slerp", "model_stock", "nearswap", "arcee_fusion"}


# Edits mergekit quietly accepts and FuseKit refuses on purpose: a misspelt key ("did you mean"), a
# parameter name one edit away from the method's own, a reversed layer_range (mergekit plans -1 layers).
STRICT_EDITS = {"edit unknown_key", "edit unknown_parameter", "edit bad_layer_range"}


def mutate(cfg, method, r, s):
    """One edit that mergekit 0.1.5 refuses (or, for the last few, that it quietly accepts). Returns a label."""
    models = cfg.get("models")
    edits = ["unknown_method", "bad_dtype", "bad_layer_range"]
    if method in BASE_REQUIRED and "base_model" in cfg and models:
        edits.append("no_base")
    if method in ("linear", "task_arithmetic", "ties") and models:
        edits.append("missing_weight")
    if method == "slerp" and models:
        edits += ["three_models", "t_under_model"]
    if method in ("ties",) and models:
        edits.append("zero_density")
    if method in ("della", "della_linear") and models:
        edits.append("della_epsilon")
    if method == "model_stock" and models and len(models) >= 2:
        edits.append("one_model")
    edits += ["unknown_parameter", "unknown_key"]
    edit = r.choice(edits)
    if edit == "unknown_method":
        cfg["merge_method"] = method.replace("_", "-") if "_" in method else method + "s"
    elif edit == "bad_dtype":
        cfg["dtype"] = r.choice(["float8", "int8", "bf32"])
    elif edit == "bad_layer_range":
        src = {"model": (cfg.get("base_model") or (models or cfg["slices"][0]["sources"])[0]["model"]),
               "layer_range": r.choice([[2, 1], [0, s.layers + 1], [1, 1]])}
        cfg.pop("models", None)
        cfg["slices"] = [{"sources": [src]}]
    elif edit == "no_base":
        base = cfg.pop("base_model")
        cfg["models"] = [m for m in models if m["model"] != base]
    elif edit == "missing_weight":
        for m in models:
            m.get("parameters", {}).pop("weight", None)
        cfg.get("parameters", {}).pop("weight", None)
    elif edit == "three_models":   # a third, distinct model: a copy of the other one under another path
        src = models[-1]["model"]
        dst = src + "-copy"
        shutil.copytree(src, dst)
        models.append({"model": dst})
    elif edit == "t_under_model":
        t = cfg.get("parameters", {}).pop("t", 0.5)
        models[-1].setdefault("parameters", {})["t"] = t
        if not cfg.get("parameters"):
            cfg.pop("parameters", None)
    elif edit == "zero_density":
        for m in models:
            if m["model"] != cfg.get("base_model"):
                m.setdefault("parameters", {})["density"] = 0.001
    elif edit == "della_epsilon":
        for m in models:
            if m["model"] != cfg.get("base_model"):
                m.setdefault("parameters", {}).update(density=0.5, epsilon=0.6)
    elif edit == "one_model":
        cfg["models"] = [m for m in models if m["model"] == cfg["base_model"]] + [m for m in models if m["model"] != cfg["base_model"]][:1]
    elif edit == "unknown_parameter":
        cfg.setdefault("parameters", {})["densty"] = 0.5
    elif edit == "unknown_key":
        cfg["merge_methd"] = method
    return edit


# MARK: - Running both tools

def run_mergekit(config_path, out, copy_tokenizer):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions
    import transformers
    with open(config_path) as f:
        text = f.read()
    options = MergeOptions(random_seed=0, quiet=True, copy_tokenizer=copy_tokenizer, lazy_unpickle=False, allow_crimes=False)
    transformers.trainer_utils.set_seed(0)
    config = MergeConfiguration.model_validate(yaml.safe_load(text))
    run_merge(config, out, options=options, config_source=text)


def run_fusekit(fusekit, config_path, out):
    p = subprocess.run([fusekit, "merge", config_path, out, "--seed", "0", "--quiet", "--force"],
                       capture_output=True, text=True, timeout=300)
    return p.returncode, (p.stderr + p.stdout).strip()


def load_dir(path):
    t = {}
    for fn in sorted(os.listdir(path)):
        if fn.endswith(".safetensors"):
            t.update(load_file(os.path.join(path, fn)))
    return t


# MARK: - Comparing

def ulp_distance(a, b):
    """Per-element distance in units in the last place for same-dtype half tensors."""
    if a.dtype == torch.bfloat16 or a.dtype == torch.float16:
        ia = a.view(torch.int16).to(torch.int32)
        ib = b.view(torch.int16).to(torch.int32)
        # map sign-magnitude to a monotone integer line
        ia = torch.where(ia < 0, -(ia & 0x7FFF), ia)
        ib = torch.where(ib < 0, -(ib & 0x7FFF), ib)
        return (ia - ib).abs()
    return None


def compare_tensors(ours, theirs, f32_inside=False, half=None, union=False):
    """f32_inside: the method's arithmetic ran in Float32 and only the result was rounded to bf16/f16
    (dtype: float32 with a half out_dtype, or slerp, which mergekit runs in NumPy f32). Then Float32
    summation-order noise (~1e-7) can move a rounding by one ulp; such tensors are reported as "ulp".
    half: the config's dtype when it is bf16/f16: an f32 output (out_dtype) whose values are all of that
    type is compared as that type. union: tokenizer_source union, whose new tokens mergekit orders by
    hash-map iteration; methods that sum over a whole embedding tensor then sum in another order, so
    embedding tensors may differ by 2 ulps."""
    problems, rows, ulps = [], [], []
    if set(ours) != set(theirs):
        missing = sorted(set(theirs) - set(ours))
        extra = sorted(set(ours) - set(theirs))
        problems.append(f"tensor names differ: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, extra {extra[:5]}")
    for name in sorted(set(ours) & set(theirs)):
        a, b = ours[name], theirs[name]
        if a.dtype != b.dtype:
            problems.append(f"{name}: dtype {a.dtype} vs mergekit {b.dtype}")
            continue
        if a.shape != b.shape:
            problems.append(f"{name}: shape {tuple(a.shape)} vs mergekit {tuple(b.shape)}")
            continue
        if half is not None and a.dtype == torch.float32 and torch.equal(b.to(half).float(), b) and torch.equal(a.to(half).float(), a):
            a, b = a.to(half), b.to(half)
        af, bf = a.float(), b.float()
        scale = bf.abs().max().item() if bf.numel() else 0.0
        diff = (af - bf).abs()
        nan_mismatch = (af.isnan() != bf.isnan()).any().item()
        diff = torch.where(af.isnan() & bf.isnan(), torch.zeros_like(diff), diff)
        worst = diff.max().item() if diff.numel() else 0.0
        rel = worst / max(scale, 1e-30)
        if a.dtype in (torch.bfloat16, torch.float16):
            equal = (a.view(torch.int16) == b.view(torch.int16)).float().mean().item() if a.numel() else 1.0
        else:
            equal = (a.view(torch.int32) == b.view(torch.int32)).float().mean().item() if a.numel() else 1.0
        rows.append((name, rel, equal, a.dtype))
        if nan_mismatch:
            problems.append(f"{name}: NaN positions differ")
        elif a.dtype == torch.float32:
            if rel > 1e-6:
                problems.append(f"{name}: f32 rel {rel:.2e}")
        elif equal < 1.0:
            u = ulp_distance(a, b)
            text = f"{name}: {a.dtype} bit-equal {equal * 100:.3f}%, max {u.max().item()} ulp, rel {rel:.2e}"
            embed = union and ("embed_tokens" in name or "lm_head" in name)
            if (f32_inside and u.max().item() <= 1 and equal >= 0.995) or (embed and u.max().item() <= 2 and equal >= 0.99):
                ulps.append(text)
            else:
                problems.append(text)
    return problems, rows, ulps


def compare_random(ours, theirs, base):
    """DARE / DELLA with density < 1: statistics only. Per tensor, the fraction of elements the merge
    moved away from the base and the mean |output - base| must agree."""
    problems = []
    if set(ours) != set(theirs):
        problems.append(f"tensor names differ: {sorted(set(ours) ^ set(theirs))[:6]}")
    for name in sorted(set(ours) & set(theirs)):
        a, b = ours[name], theirs[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            problems.append(f"{name}: {a.dtype}{tuple(a.shape)} vs mergekit {b.dtype}{tuple(b.shape)}")
            continue
        if base is None or name not in base or base[name].shape != a.shape:
            continue
        z = base[name].to(a.dtype).float()
        ca = (a.float() != z).float()
        cb = (b.float() != z).float()
        n = a.numel()
        pa, pb = ca.mean().item(), cb.mean().item()
        mean = (pa + pb) / 2
        sigma = math.sqrt(2 * mean * (1 - mean) / n)
        if abs(pa - pb) > 5 * sigma + 2 / n + 0.01:
            problems.append(f"{name}: changed fraction {pa:.3f} vs mergekit {pb:.3f} (n={n})")
        ma = (a.float() - z).abs().mean().item()
        mb = (b.float() - z).abs().mean().item()
        if n >= 200 and abs(ma - mb) > 0.35 * max(mb, 1e-6) + 1e-3 * max(z.abs().max().item(), 1e-6):
            problems.append(f"{name}: mean |out - base| {ma:.4g} vs mergekit {mb:.4g}")
    return problems


def compare_config(ours_dir, theirs_dir, same_donor=True):
    problems = []
    a = json.load(open(os.path.join(ours_dir, "config.json")))
    b = json.load(open(os.path.join(theirs_dir, "config.json")))
    for k in ("architectures", "model_type", "num_hidden_layers", "vocab_size", "hidden_size", "tie_word_embeddings",
              "intermediate_size", "num_attention_heads", "num_key_value_heads"):
        if a.get(k) != b.get(k) and (same_donor or k != "vocab_size"):
            problems.append(f"config.json {k}: {a.get(k)!r} vs mergekit {b.get(k)!r}")
    da = a.get("dtype", a.get("torch_dtype"))
    db = b.get("dtype", b.get("torch_dtype"))
    if da != db and same_donor:
        problems.append(f"config.json dtype: {da!r} vs mergekit {db!r}")
    return problems


def compare_tokenizer(ours_dir, theirs_dir, ours, theirs):
    """Vocabulary cases: the token → id maps may order union tokens differently; compare rows by token."""
    ta = json.load(open(os.path.join(ours_dir, "tokenizer.json")))["model"]["vocab"]
    tb = json.load(open(os.path.join(theirs_dir, "tokenizer.json")))["model"]["vocab"]
    problems = []
    if set(ta) != set(tb):
        problems.append(f"tokenizer vocab differs: {sorted(set(ta) ^ set(tb))[:8]}")
        return problems
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        if name in ours and name in theirs and ours[name].shape[0] >= len(ta) and theirs[name].shape[0] >= len(tb):
            ia = torch.tensor([ta[t] for t in sorted(ta)])
            ib = torch.tensor([tb[t] for t in sorted(tb)])
            ours[name] = ours[name][ia]
            theirs[name] = theirs[name][ib]
    return problems


# MARK: - One case

def numbers_under(node, key, inside=False):
    """Every number found under `key` anywhere in a config tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from numbers_under(v, key, inside or k == key)
    elif isinstance(node, list):
        for v in node:
            yield from numbers_under(v, key, inside)
    elif inside and isinstance(node, (int, float)) and not isinstance(node, bool):
        yield node


def one_case(index, method, args, work_root):
    r = random.Random(args.seed * 1_000_003 + index)
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + index)
    s = Shape(r)
    count, base_mode = model_count(method, r)
    names = ["base"] + [chr(ord("a") + i) for i in range(count)]
    tokenizers = args.tokenizers and r.random() < 0.4 and method not in ("passthrough",)
    work = os.path.join(work_root, f"case{index:04d}-{method}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    paths, notes = make_models(r, g, s, names, work, tokenizers)
    cfg, more = make_config(method, r, s, paths, names, base_mode)
    notes += more
    # Without base_model mergekit's tokenizer "base" is referenced_models()[0], a Python set's first element
    # (arbitrary), so vocabularies are only drawn with a base; a named source may be a model outside the merge.
    tokenizers = tokenizers and "base_model" in cfg
    if tokenizers:
        merged = [m["model"] for m in cfg.get("models", [])] or [x["model"] for sl in cfg["slices"] for x in sl["sources"]]
        cfg["tokenizer_source"] = r.choice(["base", "union", r.choice(merged), paths[r.choice(names)]])
    if args.invalid and r.random() < args.invalid:
        notes.append("edit " + mutate(cfg, method, r, s))
    config_path = os.path.join(work, "config.yml")
    with open(config_path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    mk_out, fk_out = os.path.join(work, "mergekit"), os.path.join(work, "fusekit")
    mk_error = None
    t0 = time.time()
    try:
        run_mergekit(config_path, mk_out, "tokenizer_source" in cfg)
    except Exception as e:  # mergekit rejected the config (or crashed)
        mk_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    t1 = time.time()
    rc, fk_msg = run_fusekit(args.fusekit, config_path, fk_out)
    t2 = time.time()
    result = {"index": index, "method": method, "shape": s.describe(), "notes": notes, "work": work,
              "seconds": (round(t1 - t0, 1), round(t2 - t1, 1))}
    if mk_error is not None and "validate_layer_type" in mk_error and rc == 0:
        # mergekit 0.1.5 + transformers 5: a slices config that changes the layer count of a model whose
        # config has `layer_types` (Qwen2) fails when mergekit saves config.json; not a FuseKit disagreement.
        result.update(status="mk-crash", mergekit=mk_error, fusekit="accepted")
        return result
    if mk_error is not None or rc != 0:
        if mk_error is not None and rc != 0:
            result.update(status="both-reject", mergekit=mk_error, fusekit=fk_msg.splitlines()[-1] if fk_msg else "")
        elif mk_error is not None:
            result.update(status="FAIL", problems=[f"mergekit rejects ({mk_error}) but fusekit accepts"])
        elif any(n in notes for n in STRICT_EDITS) and ("did you mean" in fk_msg or "layer_range" in fk_msg):
            result.update(status="strict", mergekit="accepted", fusekit=fk_msg.splitlines()[-1] if fk_msg else "")
        else:
            result.update(status="FAIL", problems=[f"fusekit rejects but mergekit accepts: {fk_msg[-400:]}"])
        return result
    ours, theirs = load_dir(fk_out), load_dir(mk_out)
    problems = compare_config(fk_out, mk_out, same_donor="base_model" in cfg or not any("longer vocabulary" in x or "another dtype" in x for x in notes))
    if tokenizers and os.path.exists(os.path.join(mk_out, "tokenizer.json")) and os.path.exists(os.path.join(fk_out, "tokenizer.json")):
        problems += compare_tokenizer(fk_out, mk_out, ours, theirs)
    random_sparse = method in RANDOM_METHODS and any(d < 1 for d in numbers_under(cfg, "density"))
    if random_sparse:
        base = load_dir(paths["base"]) if "base_model" in cfg else None
        problems += compare_random(ours, theirs, base)
        result["compared"] = "statistics"
    else:
        stored = {s.dtype} if not any("another dtype" in x for x in notes) else {"mixed"}
        f32_inside = method == "slerp" or cfg.get("dtype") == "float32" or (stored == {"f32"} and "dtype" not in cfg)
        half = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.get("dtype"))
        p, rows, ulps = compare_tensors(ours, theirs, f32_inside, half, cfg.get("tokenizer_source") == "union")
        problems += p
        result["ulps"] = ulps
        result["worst_rel"] = max((x[1] for x in rows), default=0.0)
        result["bit_equal"] = min((x[2] for x in rows), default=1.0)
        result["compared"] = "values"
    result["status"] = ("FAIL-mixed" if any("another dtype" in x for x in notes) else "FAIL") if problems else \
        ("ulp" if result.get("ulps") else "ok")
    result["problems"] = problems
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fusekit", default=".build/release/fusekit")
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--methods", nargs="*", default=METHODS)
    ap.add_argument("--keep", default=None, help="keep disagreeing cases under this folder")
    ap.add_argument("--tokenizers", action="store_true")
    ap.add_argument("--invalid", type=float, default=0.0, help="fraction of cases given one edit mergekit refuses (mutate())")
    ap.add_argument("--first", type=int, default=0, help="index of the first case (to rerun one case)")
    args = ap.parse_args()
    args.fusekit = os.path.abspath(args.fusekit)
    logging.disable(logging.WARNING)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    work_root = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="fk-mergerandom-")
    tally = {}
    failures = 0
    for i in range(args.first, args.first + args.cases):
        method = args.methods[i % len(args.methods)]
        try:
            res = one_case(i, method, args, work_root)
        except Exception:
            res = {"index": i, "method": method, "status": "FAIL", "problems": ["harness error: " + traceback.format_exc()[-600:]],
                   "work": os.path.join(work_root, f"case{i:04d}-{method}"), "notes": [], "shape": ""}
        t = tally.setdefault(method, {"ok": 0, "ulp": 0, "both-reject": 0, "strict": 0, "mk-crash": 0, "FAIL": 0, "FAIL-mixed": 0})
        t[res["status"]] += 1
        line = f"[{i:4d}] {method:17s} {res['status']:11s} {res.get('shape', '')} {'; '.join(res.get('notes', []))}"
        if "worst_rel" in res:
            line += f" rel {res['worst_rel']:.1e} eq {res['bit_equal'] * 100:.2f}%"
        if res["status"] == "ulp":
            line += "\n        " + res["ulps"][0]
        if res["status"] in ("both-reject", "strict"):
            line += f"\n        mergekit: {res['mergekit'][:200]}\n        fusekit:  {res['fusekit'][:200]}"
        print(line, flush=True)
        if res["status"] == "FAIL":
            failures += 1
        if res["status"].startswith("FAIL"):
            for p in res["problems"][:8]:
                print("        " + p, flush=True)
        if not res["status"].startswith("FAIL") or not args.keep:
            shutil.rmtree(res["work"], ignore_errors=True)
    print("\nmethod             ok  ulp  both-reject  strict  mk-crash  FAIL  FAIL-mixed")
    for m, t in sorted(tally.items()):
        print(f"{m:17s} {t['ok']:4d} {t['ulp']:4d} {t['both-reject']:12d} {t['strict']:7d} {t['mk-crash']:9d} {t['FAIL']:5d} {t['FAIL-mixed']:10d}")
    print("total", {k: sum(t[k] for t in tally.values()) for k in next(iter(tally.values()))})
    if not args.keep:
        shutil.rmtree(work_root, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
