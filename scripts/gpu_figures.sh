#!/usr/bin/env bash
# The accelerator figures of docs/scaling.md, in one go, each stage bounded in time:
#   bash scripts/gpu_figures.sh OUT [STAGE ...]
# Stages (default: all, in this order):
#   versions   Python, jax, jaxlib, flax, optax, orbax, the devices and the driver: versions.json
#   benchmark  the benchmark in float32 and bfloat16, parallel_runs swept, with the end-to-end
#              run of a whole protocol (5 folds × 3 seeds, all together) on emer/synthetic_small:
#              benchmark_float32.json, benchmark_bfloat16.json
#   protocol   configs/protocols/er7.py on emer/synthetic, seeds (0, 1, 2), all runs together,
#              timed by /usr/bin/time: protocol_er7.json (its results.json), the time in log.txt
# Every stage's stderr goes to OUT/log.txt. FOLDS, SEEDS, RUNS (the parallel_runs swept) and
# STEPS (each end-to-end run's) size the runs; BENCH_FLAGS and MAIN_FLAGS are more flags for the
# benchmark's and the protocol's command (a CPU rehearsal shrinks all of these); DATA is the TFDS
# folder (built where missing), WORK the folder for the protocol's workdir, PYTHON the
# interpreter, LIMIT the seconds a stage may take (600).
# On an accelerator machine without network whose image ships jax, flax, optax and orbax, the
# packages it lacks are installed first from wheels fetched elsewhere by scripts/gpu_wheels.sh
# (grain, array-record, tensorflow-datasets and the rest, for Python 3.12).
set -uo pipefail
OUT=${1:?usage: bash scripts/gpu_figures.sh OUT [STAGE ...]}
shift
STAGES=${*:-versions benchmark protocol}
PYTHON=${PYTHON:-python3}
DATA=${DATA:-/tmp/emer_tfds}
LIMIT=${LIMIT:-600}
WORK=${WORK:-/tmp/emer_gpu_figures}
FOLDS=${FOLDS:-(1,2,3,4,5)}
SEEDS=${SEEDS:-(0,1,2)}
RUNS=${RUNS:-(1,4,16,32)}
STEPS=${STEPS:-200}
BENCH_FLAGS=${BENCH_FLAGS:-}
MAIN_FLAGS=${MAIN_FLAGS:-}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1

stage() {  # stage FILE COMMAND...: runs it under the time limit, its stdout in FILE
  local file=$1
  shift
  echo "== $(date -u +%T) $*" | tee -a "$OUT/log.txt" >&2
  timeout "$LIMIT" "$@" >"$file" 2>>"$OUT/log.txt"
  local rc=$?
  echo "== $(date -u +%T) exit $rc" | tee -a "$OUT/log.txt" >&2
  return $rc
}

for s in $STAGES; do
  case $s in
  versions)
    stage "$OUT/versions.json" "$PYTHON" -c '
import json, platform, subprocess, sys
import flax, jax, jaxlib, optax, orbax.checkpoint as ocp
try:
  gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                        "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except FileNotFoundError:
  gpu = None
print(json.dumps({"python": platform.python_version(), "jax": jax.__version__,
  "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__,
  "orbax-checkpoint": ocp.__version__, "backend": jax.default_backend(),
  "devices": [d.device_kind for d in jax.devices()], "nvidia-smi": gpu}))'
    ;;
  benchmark)
    for dtype in float32 bfloat16; do
      # shellcheck disable=SC2086
      stage "$WORK/benchmark_$dtype.out" "$PYTHON" -m emer_jax.benchmark --config=configs/benchmark.py \
        --config.data_dir="$DATA" --config.dtype=$dtype \
        --config.benchmark.parallel_runs="$RUNS" --config.steps_per_call=8 \
        --config.folds="$FOLDS" --config.seeds="$SEEDS" --config.parallel_runs=0 \
        --config.input.placement=device --config.benchmark.end_to_end_steps="$STEPS" $BENCH_FLAGS
      tail -n 1 "$WORK/benchmark_$dtype.out" >"$OUT/benchmark_$dtype.json"
    done
    ;;
  protocol)
    # shellcheck disable=SC2086
    run=$(mktemp -d "$WORK/er7.XXXX")  # a fresh workdir: the run is timed from scratch
    stage "$run.out" /usr/bin/time -v "$PYTHON" -m emer_jax.main \
      --config=configs/protocols/er7.py --workdir="$run" --config.data_dir="$DATA" \
      --config.folds="$FOLDS" --config.seeds="$SEEDS" --config.parallel_runs=0 \
      --config.input.placement=device $MAIN_FLAGS
    cp "$run/results.json" "$OUT/protocol_er7.json" || true
    ;;
  *)
    echo "unknown stage $s (versions, benchmark, protocol)" >&2
    exit 2
    ;;
  esac
done
