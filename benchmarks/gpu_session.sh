#!/usr/bin/env bash
# The GPU checks of a node in one run of at most TOTAL seconds (default 470), each step under its own timeout and
# the time left, every log under OUT:
#
#     bash benchmarks/gpu_session.sh OUT [WHEELS]        # from the repository root
#
#   dry_run   the user's grid at train=paper, bundles of 10 (hydra.launcher.dry_run=true): its wall time (goal
#             <= 60 s) and the device-hours it predicts
#   gpu_step  benchmarks/gpu_step.py: the paper symp step per bundle size against the device's float64 GEMM, and
#             the dry run's estimate against the step measured at the final horizon (cells past its deadline are
#             listed as not measured)
#   bringup   python -m sympscale.bringup, node mode, every section (goal <= 8 min)
#
# STEPS="dry_run gpu_step bringup" picks and orders them: the three compete for TOTAL, so for the bring-up's own
# time run STEPS=bringup in a call of its own. gpu_step.py rewrites its JSON (with the table) after every cell: a
# step cut off by its limit keeps the cells it finished. Where Hydra is not installed, the wheels in WHEELS
# (benchmarks/gpu_wheels.sh) are installed offline into OUT/site and the project runs from src/.
set -u
OUT=${1:?usage: bash benchmarks/gpu_session.sh OUT [WHEELS]}
WHEELS=${2:-.gpu-wheels}
TOTAL=${TOTAL:-470}
STEPS=${STEPS:-dry_run gpu_step bringup}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
case $WHEELS in /*) ;; *) WHEELS="$PWD/$WHEELS" ;; esac
cd "$(dirname "$0")/.." || exit 1
START=$(date +%s)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! python -c "import hydra" 2>/dev/null; then
  python -m pip install -q --no-index --no-deps --target "$OUT/site" "$WHEELS"/*.whl > "$OUT/install.log" 2>&1 \
    || { echo "install: failed (see $OUT/install.log)"; exit 1; }
  export PYTHONPATH="$PYTHONPATH:$OUT/site"
fi
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  python -c "import sys, jax, jaxlib; print('python', sys.version.split()[0], 'jax', jax.__version__, 'jaxlib', jaxlib.__version__, jax.devices())"
  git rev-parse --short HEAD 2>/dev/null || true
} > "$OUT/environment.txt" 2>&1

step() {  # step NAME LIMIT COMMAND...: run under min(LIMIT, time left), log to OUT/NAME.log, one summary line
  local name=$1 limit=$2 left=$((TOTAL - ($(date +%s) - START)))
  shift 2
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 10 ]; then echo "$name: not run (no time left)" | tee -a "$OUT/summary.txt"; return; fi
  local t0=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $?, $(($(date +%s) - t0)) s (limit $limit s)" | tee -a "$OUT/summary.txt"
}

for s in $STEPS; do
  case $s in
    dry_run) step dry_run 120 python -m sympscale.train -m system=toda,fput D=64,256 model=symp,gru seed=1-10 \
               train=paper hydra.launcher.dry_run=true "hydra.sweep.dir=$OUT/dry" ;;
    gpu_step) step gpu_step 300 python benchmarks/gpu_step.py --deadline 100 --json "$OUT/gpu_step.json" ;;
    bringup) step bringup 480 python -m sympscale.bringup --out "$OUT/bringup" ;;
    *) echo "unknown step $s (valid: dry_run gpu_step bringup)"; exit 2 ;;
  esac
done
grep -h "^predicted device time\|^dry run:" "$OUT/dry_run.log" 2>/dev/null
grep -h "^|\|^not measured\|GEMM" "$OUT/gpu_step.log" 2>/dev/null \
  || python -c "import json, sys; print(*json.load(open(sys.argv[1]))['table'], sep='\n')" "$OUT/gpu_step.json" 2>/dev/null
tail -n 3 "$OUT/bringup.log" 2>/dev/null
echo "total: $(($(date +%s) - START)) s"
