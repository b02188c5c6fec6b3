# pip install mergekit==0.1.5 torch==2.15.0 transformers==5.23.0 tokenizers==0.23.3 safetensors==0.8.0 numpy==2.4.6
"""Merge benchmark: FuseKit vs mergekit 0.1.5 on two ~1.1B bf16 TinyLlama-shaped fine-tunes and their base.

  python3 Benchmarks/merge/bench.py [--fusekit .build/release/fusekit] [--mergekit mergekit-yaml]
                                    [--root /tmp/fusekit-bench-merge] [--only fusekit|mergekit] [--methods linear,ties]

Generates the checkpoints (make_checkpoints.py) if missing, measures memory bandwidth (numpy copy) and
disk read/write (dd) in the same run, then runs each method's config with both tools: wall time (process
plus a final `sync`, so both are charged for getting the output to disk), peak RSS (wait4), their ratios,
and the bound the bandwidth sets: every input byte read once, every output byte written once.
Results go to ROOT/results-<tool>.json; with both present, a Markdown table is printed."""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = {
    "linear": "merge_method: linear\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.5}}\ndtype: bfloat16\n",
    "task_arithmetic": "merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.7}}\n  - model: {b}\n    parameters: {{weight: 0.5}}\ndtype: bfloat16\n",
    "ties": "merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5, density: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.5, density: 0.5}}\ndtype: bfloat16\n",
    "dare_ties": "merge_method: dare_ties\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5, density: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.5, density: 0.5}}\ndtype: bfloat16\n",
    "slerp": "merge_method: slerp\nbase_model: {a}\nmodels:\n  - model: {a}\n  - model: {b}\nparameters:\n  t: [0, 0.5, 1]\ndtype: bfloat16\n",
    "della": "merge_method: della\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5, density: 0.5, epsilon: 0.1}}\n  - model: {b}\n    parameters: {{weight: 0.5, density: 0.5, epsilon: 0.1}}\ndtype: bfloat16\n",
}
INPUTS = {"linear": 2, "task_arithmetic": 3, "ties": 3, "dare_ties": 3, "slerp": 2, "della": 3}


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.endswith(".safetensors"))


def run(cmd, env=None):
    """Wall time (process + sync) and peak RSS. RSS comes from /usr/bin/time's report of the exec'd
    process: ru_maxrss of a forked child would start at this Python process's own RSS."""
    rss_file = "/tmp/fusekit-bench-rss.txt"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-o", rss_file, "-f", "%M"] + cmd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    subprocess.run(["sync"])
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')[-3000:]}")
    with open(rss_file) as f:
        rss_kb = int(f.read().strip().splitlines()[-1])
    return wall, rss_kb * 1024


def bandwidth(root):
    """Runs in a child process (see main) so this process never holds the 2 GiB of test arrays."""
    a = np.ones(1 << 28, dtype=np.float32)   # 1 GiB
    b = np.empty_like(a)
    np.copyto(b, a)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter(); np.copyto(b, a); dt = time.perf_counter() - t
        best = max(best, 2 * a.nbytes / dt)   # read + write
    del a, b
    probe = os.path.join(root, "dd-probe")
    t = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={probe}", "bs=16M", "count=128", "conv=fdatasync"], capture_output=True, check=True)
    write = 2 * 1024 ** 3 / (time.perf_counter() - t)
    t = time.perf_counter()
    subprocess.run(["dd", f"if={probe}", "of=/dev/null", "bs=16M", "iflag=direct"], capture_output=True, check=True)
    read = 2 * 1024 ** 3 / (time.perf_counter() - t)
    os.remove(probe)
    return {"memory_gbps": best / 1e9, "disk_write_gbps": write / 1e9, "disk_read_gbps": read / 1e9}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fusekit", default=os.path.join(HERE, "..", "..", ".build", "release", "fusekit"))
    ap.add_argument("--mergekit", default=os.path.join(os.path.dirname(sys.executable), "mergekit-yaml"))
    ap.add_argument("--root", default="/tmp/fusekit-bench-merge")
    ap.add_argument("--only", choices=["fusekit", "mergekit"])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--bandwidth-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = args.root
    if args.bandwidth_only:
        print(json.dumps(bandwidth(root)))
        return
    subprocess.run([sys.executable, os.path.join(HERE, "make_checkpoints.py"), root], check=True,
                   env=dict(os.environ, PYTHONHASHSEED="0"))
    paths = {k: os.path.join(root, k) for k in ("base", "a", "b")}
    limits = json.loads(subprocess.run([sys.executable, __file__, "--bandwidth-only", "--root", root],
                                       check=True, capture_output=True, text=True).stdout)
    print(json.dumps(limits), flush=True)
    tools = [args.only] if args.only else ["fusekit", "mergekit"]
    results = {tool: {"limits": limits, "runs": {}} for tool in tools}
    # Methods outer, tools inner: both tools of one method run back to back, under the same machine load.
    for method in args.methods.split(","):
        cfg = os.path.join(root, f"{method}.yml")
        with open(cfg, "w") as f:
            f.write(METHODS[method].format(**paths))
        for tool in tools:
            out = os.path.join(root, f"out-{tool}-{method}")
            subprocess.run(["rm", "-rf", out])
            # Warm the page cache the same way for both tools: read every input once.
            for k in ("base", "a", "b"):
                subprocess.run(f"cat {paths[k]}/*.safetensors > /dev/null", shell=True)
            if tool == "fusekit":
                cmd = [args.fusekit, "merge", cfg, out, "--quiet", "--seed", "1"]
            else:
                cmd = [args.mergekit, cfg, out, "--quiet", "--random-seed", "1"]
            env = dict(os.environ, HF_HUB_OFFLINE="1")
            wall, rss = run(cmd, env)
            written = folder_bytes(out)
            read = INPUTS[method] * folder_bytes(paths["a"])
            results[tool]["runs"][method] = {"wall_s": wall, "peak_rss_bytes": rss, "read_bytes": read, "written_bytes": written}
            print(f"{tool:8} {method:16} {wall:7.2f} s  peak RSS {rss / 1e9:5.2f} GB", flush=True)
            subprocess.run(["rm", "-rf", out])
            with open(os.path.join(root, f"results-{tool}.json"), "w") as f:
                json.dump(results[tool], f, indent=1)
    report(root)


def report(root):
    try:
        fk = json.load(open(os.path.join(root, "results-fusekit.json")))
        mk = json.load(open(os.path.join(root, "results-mergekit.json")))
    except FileNotFoundError:
        return
    lim = fk["limits"]
    print(f"\nmemory {lim['memory_gbps']:.1f} GB/s (copy, read+write), disk write {lim['disk_write_gbps']:.2f} GB/s, disk read {lim['disk_read_gbps']:.2f} GB/s\n")
    print("| method | FuseKit s | mergekit s | speed-up | FuseKit peak RSS | mergekit peak RSS | RSS ratio | bound s (memory / durable write) | FuseKit vs memory bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, r in fk["runs"].items():
        if m not in mk["runs"]:
            continue
        q = mk["runs"][m]
        mem_bound = (r["read_bytes"] + r["written_bytes"]) / (lim["memory_gbps"] * 1e9 / 2)
        disk_bound = r["written_bytes"] / (lim["disk_write_gbps"] * 1e9)
        print(f"| {m} | {r['wall_s']:.1f} | {q['wall_s']:.1f} | {q['wall_s'] / r['wall_s']:.1f}x | {r['peak_rss_bytes'] / 1e9:.2f} GB | "
              f"{q['peak_rss_bytes'] / 1e9:.2f} GB | {r['peak_rss_bytes'] / q['peak_rss_bytes']:.2f} | {mem_bound:.1f} / {disk_bound:.1f} | "
              f"{mem_bound / r['wall_s'] * 100:.0f}% |")


if __name__ == "__main__":
    main()
