#!/usr/bin/env bash
# The experiments a 2-core CPU runs in minutes: run each, add its analyses, publish it into docs/results/.
#
#   experiments/cpu_runs.sh OUT_DIR [NAME ...]
#
# One after another (they share the cores), each NAME (all fifteen by default) is run as
# `python -m jtricks run NAME --out OUT_DIR/NAME --no-checkpoint` (overfitting and ensemble_variance through their own
# scripts, which add ensemble.md / ensemble_variance.md), then its analyses (lr_sensitivity.md/png for the learning-rate sweeps), then
# `python -m jtricks publish OUT_DIR/NAME docs/results/NAME` (the results without the models, metrics.csv gzipped
# when large; PUBLISH=0 skips it). Logs: OUT_DIR/NAME.log; wall times: OUT_DIR/times.txt.
# docs/results/init/by_depth.* depend on the initial weights only: `python experiments/plots/init_by_depth.py
# --out docs/results/init`. The Fashion-MNIST convnets run on a GPU: experiments/gpu_runs.sh.
#
# Extra `jtricks run` arguments for every run (e.g. a smoke test): JTRICKS_RUN_ARGS="--epochs 1 --seeds 2".
# Set PYTHON to choose the interpreter (default: python).
set -uo pipefail
OUT_DIR=${1:?usage: experiments/cpu_runs.sh OUT_DIR [NAME ...]}
shift
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(dropout_mnist1d scaling init batchnorm overfitting optimizers clipping lr_decay
                                 architectures_mnist1d tuned_optimizers
                                 dropout_rates momentum batchnorm_position clipping_cnn1d ensemble_variance)
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1

# the baseline group of each learning-rate sweep (experiments/plots/lr_sensitivity.py --baseline)
declare -A SWEEP_BASELINE=([scaling]=preprocess=raw [batchnorm]=norm=None [optimizers]=optimizer=sgd
                           [clipping]=none [lr_decay]=constant [momentum]=gamma=0 [batchnorm_position]=none
                           [clipping_cnn1d]=none)

for name in "${NAMES[@]}"; do
  run="$OUT_DIR/$name"
  start=$(date +%s)
  if [ "$name" = overfitting ] || [ "$name" = ensemble_variance ]; then
    # shellcheck disable=SC2086
    "$PY" "experiments/$name.py" --out "$run" ${JTRICKS_RUN_ARGS:-} > "$OUT_DIR/$name.log" 2>&1
  else
    # shellcheck disable=SC2086
    "$PY" -m jtricks run "$name" --out "$run" --no-checkpoint ${JTRICKS_RUN_ARGS:-} > "$OUT_DIR/$name.log" 2>&1
  fi
  rc=$?
  echo "$name: rc=$rc $(( $(date +%s) - start )) s" | tee -a "$OUT_DIR/times.txt"
  [ $rc -eq 0 ] || continue
  if [ -n "${SWEEP_BASELINE[$name]:-}" ]; then
    "$PY" experiments/plots/lr_sensitivity.py "$run" --baseline "${SWEEP_BASELINE[$name]}" >> "$OUT_DIR/$name.log" 2>&1
  fi
  if [ "${PUBLISH:-1}" = 1 ]; then
    "$PY" -m jtricks publish "$run" "docs/results/$name" >> "$OUT_DIR/$name.log" 2>&1
  fi
done
