"""Greedy decode with llama.cpp (llama-cpp-python) for Benchmarks/runtime/bench.py, in its own process
(its own Python with llama-cpp-python built from source here). Prints JSON: seconds for N new tokens
after the prompt, the tokens, and llama.cpp's system info (which vector extensions it was built with).
Usage: llama_decode.py MODEL.gguf IDS(comma-separated) N THREADS"""
import json, sys, time
import numpy as np
from llama_cpp import Llama, llama_print_system_info

path, ids, new, threads = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=1024, logits_all=True, verbose=False)
llm.eval(ids)
tokens = []
t = time.perf_counter()
for _ in range(new):
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    tokens.append(tok)
    llm.eval([tok])
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "tokens": tokens, "system": llama_print_system_info().decode()}))
