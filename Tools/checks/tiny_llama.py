# pip install torch==2.15.0 transformers==5.23.0 tokenizers==0.23.3 safetensors==0.8.0 numpy==2.4.6
"""What Tools/checks/train_outputs.py and train_statistics.py share: a tiny random Llama saved with the
byte-level BPE tokenizer of Tests/Fixtures/tokenizers/gpt2-trained, a {"text"} JSONL file, and the
sequences FuseTrain packs from it (encode with special tokens, EOS after each document, windows of
seq_len + 1 tokens overlapping by one)."""
import json
import os
import shutil

import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TOKENIZER = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "gpt2-trained", "tokenizer.json")
EOS = 0


def make_base(work, seed, texts):
    """The model (eval mode), its HF folder under `work`/base and the data file `work`/data.jsonl."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=2560, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=8, max_position_embeddings=64, eos_token_id=EOS, bos_token_id=EOS,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    base = os.path.join(work, "base")
    model.save_pretrained(base)
    shutil.copy(TOKENIZER, os.path.join(base, "tokenizer.json"))
    data = os.path.join(work, "data.jsonl")
    with open(data, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    return model, base, data


def packed_windows(texts, seq_len):
    """The token windows FuseTrain trains and evaluates on."""
    tok = Tokenizer.from_file(TOKENIZER)
    stream = []
    for t in texts:
        ids = tok.encode(t).ids
        if not ids or ids[-1] != EOS:
            ids.append(EOS)
        stream += ids
    windows, start = [], 0
    while len(stream) - start >= 2:
        windows.append(stream[start:start + seq_len + 1])
        start += seq_len
    return windows
