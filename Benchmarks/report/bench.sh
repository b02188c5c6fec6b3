#!/usr/bin/env bash
# Report benchmark: the cost of `fusekit report` on a merge of two ~1.1B-parameter bf16 TinyLlama-shaped
# fine-tunes and their base, against the cost of the merge itself (the issue's goal: at most 1.5x).
#
#   Benchmarks/report/bench.sh [ROOT]     (ROOT defaults to /tmp/fusekit-bench-merge)
#
# Uses Benchmarks/merge/make_checkpoints.py's checkpoints (generated if missing), a release build of
# fusekit, and for each method: merge wall time and peak RSS, then report wall time and peak RSS, their
# ratio, and the bound the measured bandwidth sets (every input and output byte read once).
set -euo pipefail
ROOT=${1:-/tmp/fusekit-bench-merge}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-/opt/fkvenv/bin/python}
FUSEKIT="$REPO/.build/release/fusekit"
[ -x "$FUSEKIT" ] || (cd "$REPO" && swift build -c release --product fusekit >/dev/null)
[ -d "$ROOT/a" ] || "$PY" "$REPO/Benchmarks/merge/make_checkpoints.py" "$ROOT"
bw=$("$PY" - <<'PY'
import numpy as np, time
a = np.ones(1 << 28, dtype=np.uint8); b = np.empty_like(a)
best = 1e9
for _ in range(3):
    t = time.perf_counter(); np.copyto(b, a); best = min(best, time.perf_counter() - t)
print(f"{2 * a.nbytes / best / 1e9:.1f}")
PY
)
bytes_of() { du -cb --apparent-size "$1"/*.safetensors | tail -1 | cut -f1; }
measure() {  # prints "seconds peak_rss_mb"
  /usr/bin/time -f "%e %M" -o /tmp/fusekit-report-time.txt "$@" >/dev/null
  sync
  awk '{printf "%s %.0f\n", $1, $2/1024}' /tmp/fusekit-report-time.txt
}
echo "memory bandwidth (numpy copy): $bw GB/s"
printf "| method | merge s | merge RSS MB | report s | report RSS MB | report/merge | bandwidth bound s |\n|---|---|---|---|---|---|---|\n"
for method in ${METHODS:-ties linear}; do
  cfg="$ROOT/$method-report.yml"
  case $method in
    ties) printf "merge_method: ties\nbase_model: %s/base\nmodels:\n  - model: %s/a\n    parameters: {weight: 0.5, density: 0.5}\n  - model: %s/b\n    parameters: {weight: 0.5, density: 0.5}\ndtype: bfloat16\n" "$ROOT" "$ROOT" "$ROOT" > "$cfg"; inputs="base a b" ;;
    linear) printf "merge_method: linear\nmodels:\n  - model: %s/a\n    parameters: {weight: 0.5}\n  - model: %s/b\n    parameters: {weight: 0.5}\ndtype: bfloat16\n" "$ROOT" "$ROOT" > "$cfg"; inputs="a b" ;;
  esac
  out="$ROOT/out-report-$method"
  read -r ms mrss < <(measure "$FUSEKIT" merge "$cfg" "$out" --force --quiet)
  read -r rs rrss < <(measure "$FUSEKIT" report "$out" --quiet)
  total=$(bytes_of "$out"); for i in $inputs; do total=$((total + $(bytes_of "$ROOT/$i"))); done
  bound=$(awk -v b="$total" -v bw="$bw" 'BEGIN {printf "%.2f", b / (bw * 1e9)}')
  ratio=$(awk -v r="$rs" -v m="$ms" 'BEGIN {printf "%.2f", r / m}')
  echo "| $method | $ms | $mrss | $rs | $rrss | $ratio | $bound |"
done
