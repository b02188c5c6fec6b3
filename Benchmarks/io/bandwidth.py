"""Memory bandwidth (numpy copy, 1 and 2 threads via two processes) and disk write/read in this run."""
import os, subprocess, sys, time
import numpy as np

def copy_rate(n_bytes=1 << 30, reps=5):
    a = np.ones(n_bytes // 4, dtype=np.float32); b = np.empty_like(a)
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter(); np.copyto(b, a); dt = time.perf_counter() - t
        best = max(best, 2 * n_bytes / dt)      # read + write
    return best

if len(sys.argv) > 2 and sys.argv[2] == "--child":
    print(copy_rate()); sys.exit(0)
work = sys.argv[1]
one = copy_rate()
procs = [subprocess.Popen([sys.executable, __file__, work, "--child"], stdout=subprocess.PIPE) for _ in range(2)]
two = sum(float(p.communicate()[0]) for p in procs)
path = os.path.join(work, "dd.bin")
t = time.perf_counter()
subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=16M", "count=64", "conv=fdatasync"], capture_output=True, check=True)
w = (1 << 30) / (time.perf_counter() - t)
subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], capture_output=True)
t = time.perf_counter()
subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=16M"], capture_output=True, check=True)
r = (1 << 30) / (time.perf_counter() - t)
os.remove(path)
print(f"  memory copy bandwidth: {one/1e9:.1f} GB/s (1 thread), {two/1e9:.1f} GB/s (2 threads)")
print(f"  disk: write {w/1e9:.2f} GB/s (fdatasync), read {r/1e9:.2f} GB/s (page cache dropped if permitted)")
