#!/usr/bin/env bash
# I/O benchmark: FuseKit against the Python peers on the same inputs, in one run, next to the
# machine's memory and disk bandwidth measured in the same run.
#   1. copy a ~2 GB f32 safetensors checkpoint (8 shards) to a new HF folder: fusekit convert vs
#      safetensors.torch load_file + save_file (what a Python tool does)
#   2. re-type it to bf16: fusekit convert --dtype bf16 vs torch .to(bfloat16) + save_file
#   3. convert the Gemma 3 270M GGUF to a bf16 HF folder: fusekit convert vs transformers' own GGUF
#      loading (from_pretrained(gguf_file=...)) + save_pretrained
# Usage: Benchmarks/io/run.sh [MODELS_DIR] [WORK_DIR]   (needs the Python venv from Tools/setup-python.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${1:-models}
WORK=${2:-/tmp/fusekit-bench-io}
PY=${PYTHON:-/opt/fkvenv/bin/python}
mkdir -p "$WORK"
swift build -c release --product fusekit >/dev/null
FK=.build/release/fusekit

echo "== machine"
$PY Benchmarks/io/bandwidth.py "$WORK"

echo "== inputs"
[ -d "$WORK/ckpt" ] || $PY Benchmarks/io/make_checkpoint.py "$WORK/ckpt"
du -sh "$WORK/ckpt"

timeit() {   # label, command...: wall seconds and peak RSS through /usr/bin/time
  local label=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/err.txt" || { cat "$WORK/err.txt"; exit 1; }
  read -r secs kb < "$WORK/time.txt"
  echo "$label $secs $kb"
}

bytes=$(du -sb "$WORK/ckpt" | cut -f1)
report() {  # fk_line peer_line bytes_out
  read -r _ fs fk_kb <<<"$1"; read -r _ ps peer_kb <<<"$2"
  python3 -c "
fs, ps, b_in, b_out = $fs, $ps, $bytes, $3
print(f'  fusekit {fs:7.2f} s {b_in/fs/1e6:8.0f} MB/s in, {b_out/fs/1e6:6.0f} MB/s out, peak RSS {$fk_kb/1024:7.0f} MB')
print(f'  peer    {ps:7.2f} s {b_in/ps/1e6:8.0f} MB/s in, {b_out/ps/1e6:6.0f} MB/s out, peak RSS {$peer_kb/1024:7.0f} MB')
print(f'  speed-up {ps/fs:.2f}x')"
}

echo "== 1. copy f32 checkpoint ($bytes bytes)"
rm -rf "$WORK/out-fk" "$WORK/out-py"
a=$(timeit fusekit $FK convert "$WORK/ckpt" "$WORK/out-fk" --quiet)
b=$(timeit python $PY Benchmarks/io/peer_copy.py "$WORK/ckpt" "$WORK/out-py" f32)
report "$a" "$b" "$bytes"

echo "== 2. f32 -> bf16"
rm -rf "$WORK/out-fk" "$WORK/out-py"
a=$(timeit fusekit $FK convert "$WORK/ckpt" "$WORK/out-fk" --dtype bf16 --quiet)
b=$(timeit python $PY Benchmarks/io/peer_copy.py "$WORK/ckpt" "$WORK/out-py" bf16)
report "$a" "$b" $((bytes / 2))

if [ -f "$MODELS/gemma3-270m.gguf" ]; then
  echo "== 3. Gemma 3 270M GGUF -> bf16 HF folder"
  rm -rf "$WORK/out-fk" "$WORK/out-py"
  out_bytes=$((268098176 * 2))
  bytes=$(stat -c %s "$MODELS/gemma3-270m.gguf")
  a=$(timeit fusekit $FK convert "$MODELS/gemma3-270m.gguf" "$WORK/out-fk" --dtype bf16 --quiet)
  b=$(timeit python $PY Benchmarks/io/peer_gguf.py "$MODELS/gemma3-270m.gguf" "$WORK/out-py")
  report "$a" "$b" "$out_bytes"
fi
rm -rf "$WORK/out-fk" "$WORK/out-py"
