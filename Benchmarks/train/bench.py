# pip install torch==2.15.0 transformers==5.23.0 peft==0.21.2 safetensors==0.8.0 numpy==2.4.6 gguf==0.19.0
"""FuseKit vs PyTorch (f32, 2 threads) training throughput on SmolLM2-135M, interleaved A/B rounds.

One step = forward + backward + AdamW on one sequence of 256 random tokens (next-token cross-entropy),
for full fine-tuning and for LoRA rank 8 (alpha 16, dropout 0) on q/k/v/o/gate/up/down. Both sides
read the same f32 weights (the GGUF dequantized by transformers' own loader and saved as an HF folder).
Each run is its own process: tokens/s over steps 3..N (best and median step), and the process's peak
RSS (ru_maxrss). Prints best and median over rounds, the FuseKit/PyTorch ratios, and the ceiling in the
same run: sgemm GFLOP/s (numpy/OpenBLAS, 2 threads) and the 6·params flops/token bound it implies.
Usage: bench.py MODELS_DIR BENCH_TRAIN_BINARY [ROUNDS] [STEPS]      (worker: bench.py --torch MODE STEPS)
"""
import json, os, resource, statistics, subprocess, sys, time

WORK = os.environ.get("FUSEKIT_BENCH_DIR", "/tmp/fusekit-bench")
HF = os.path.join(WORK, "smollm2-f32")
SEQ = 256
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

def torch_worker(mode, steps):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(2)
    from transformers import AutoModelForCausalLM
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(HF, dtype=torch.float32)
    if mode.startswith("lora"):
        from peft import LoraConfig, get_peft_model
        r = int(mode[4:])
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=TARGETS))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
    load = time.perf_counter() - t0
    g = torch.Generator().manual_seed(7)
    vocab = model.config.vocab_size
    seconds, losses, backward, cpu = [], [], [], []
    for _ in range(steps):
        ids = torch.randint(0, vocab, (1, SEQ), generator=g)
        labels = torch.cat([ids[:, 1:], torch.full((1, 1), -1)], dim=1)
        t, c = time.perf_counter(), time.process_time()
        logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1), ignore_index=-1)
        loss.backward()
        backward.append(time.perf_counter() - t)
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        losses.append(loss.item())
    measured = sorted(seconds[2:] if len(seconds) > 2 else seconds)
    print(json.dumps({"mode": mode, "load_seconds": load, "step_seconds": seconds, "losses": losses,
                      "forward_backward_seconds": backward, "cpu_seconds": cpu,
                      "tokens_per_second_best": SEQ / measured[0], "tokens_per_second_median": SEQ / measured[len(measured) // 2],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "trainable_parameters": sum(p.numel() for p in params), "torch": torch.__version__}))

def convert(models):
    """GGUF -> HF f32 folder with transformers' own GGUF loader (dequantized, q/k un-permuted)."""
    if os.path.exists(os.path.join(HF, "model.safetensors")): return
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(models, gguf_file="smollm2.gguf", dtype=torch.float32)
    os.makedirs(HF, exist_ok=True)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    if m.config.tie_word_embeddings: sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(HF, "model.safetensors"), metadata={"format": "pt"})
    m.config.to_json_file(os.path.join(HF, "config.json"))

def sgemm_ceiling():
    import numpy as np
    a = np.random.rand(2048, 2048).astype(np.float32); a @ a
    best = 0
    for _ in range(5):
        t = time.perf_counter(); a @ a; best = max(best, 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9)
    return best

def steal():
    with open("/proc/stat") as f: return int(f.readline().split()[8])

def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    models, binary = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    convert(models)
    gflops = sgemm_ceiling()
    params = 134_515_008
    print(f"ceiling: sgemm {gflops:.0f} GFLOP/s (2 threads) -> full training bound {gflops * 1e9 / (6 * params):.0f} tokens/s "
          f"(6 flops/weight/token), LoRA bound {gflops * 1e9 / (4 * params):.0f} tokens/s (4 flops/frozen weight/token)")
    # OpenBLAS 0.3.21 runs Zen 4 on its AVX2 "Haswell" kernels; the fusekit CLI switches to SKYLAKEX unless
    # OPENBLAS_CORETYPE is set. This machine's environment sets it, so the FuseKit side gets
    # FUSEKIT_CORETYPE (default SKYLAKEX) explicitly; PyTorch uses its bundled MKL either way.
    fk_env = dict(os.environ, OPENBLAS_CORETYPE=os.environ.get("FUSEKIT_CORETYPE", "SKYLAKEX"))
    print(f"FuseKit OpenBLAS core: {fk_env['OPENBLAS_CORETYPE']}; load average before: {open('/proc/loadavg').read().split()[:3]}")
    results = {}
    steal0 = steal()
    for r in range(rounds):
        for mode in ("full", "lora8"):
            fk = run([binary, HF, "--seq", str(SEQ), "--steps", str(steps), "--threads", "2"] + (["--lora-rank", "8"] if mode == "lora8" else []), fk_env)
            pt = run([sys.executable, __file__, "--torch", mode, str(steps)])
            for side, res in (("fusekit", fk), ("pytorch", pt)):
                results.setdefault((mode, side), []).append(res)
                cpu = sorted(res["cpu_seconds"][2:] or res["cpu_seconds"])
                opt = min(s - b for s, b in zip(res["step_seconds"], res["forward_backward_seconds"]))
                print(f"round {r + 1} {mode:6s} {side:8s} {res['tokens_per_second_best']:7.1f} tok/s best step, "
                      f"{res['tokens_per_second_median']:7.1f} median step, {SEQ / cpu[len(cpu) // 2]:6.1f} tok per CPU-s, "
                      f"optimizer {opt:.2f} s, peak RSS {res['peak_rss_mib']:7.0f} MiB, "
                      f"losses {' '.join(f'{x:.3f}' for x in res['losses'][:3])}", flush=True)
    print(f"steal ticks during the run: {steal() - steal0}; load average after: {open('/proc/loadavg').read().split()[:3]}")
    for mode in ("full", "lora8"):
        fk, pt = results[(mode, "fusekit")], results[(mode, "pytorch")]
        fb, pb = max(x["tokens_per_second_best"] for x in fk), max(x["tokens_per_second_best"] for x in pt)
        fm = statistics.median(x["tokens_per_second_median"] for x in fk)
        pm = statistics.median(x["tokens_per_second_median"] for x in pt)
        frss, prss = max(x["peak_rss_mib"] for x in fk), max(x["peak_rss_mib"] for x in pt)
        print(f"{mode}: FuseKit {fb:.1f} tok/s best / {fm:.1f} median; PyTorch {pb:.1f} best / {pm:.1f} median; "
              f"ratio {fb / pb:.2f}x best, {fm / pm:.2f}x median; peak RSS FuseKit {frss:.0f} MiB, PyTorch {prss:.0f} MiB")

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--torch":
        torch_worker(sys.argv[2], int(sys.argv[3]))
    else:
        main()
