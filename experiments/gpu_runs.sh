#!/usr/bin/env bash
# The Fashion-MNIST convnet experiments, too heavy for a 2-core CPU: run them on a GPU.
#
#   experiments/gpu_runs.sh OUT_DIR [NAME ...]
#
# Runs each NAME (all four by default) as `python -m jtricks run NAME --out OUT_DIR/NAME --no-checkpoint`,
# all at the same time (each process gets 1/N of the GPU memory), with its log in OUT_DIR/NAME.log:
#   dropout_fashion_cnn   the dropout notebook's CNN, 4 rates x 8 seeds, 5 epochs            (32 members)
#   architectures         MLP / CNN / CNN+BN / ResNet-20 / Inception x 8 seeds, 5 epochs     (40 members)
#   architectures_small   the same on 5,500 images, 15 epochs                                (40 members)
#   architectures_long    CNN / CNN+BN / ResNet-20 x 8 seeds, 15 epochs, cosine decay        (24 members)
# Running them together, and each run compiling its static groups' programs ahead of time in parallel
# threads (`--compile-workers`, default min(groups, cores/2)), overlaps the XLA compile times (tens of
# seconds per convnet on a GPU) with each other and with training. Then, when both architecture runs are
# there (and architectures_long if it ran), experiments/plots/architectures_table.py (parameters, accuracy, time per epoch and compile time
# from the runs' own timing records) into OUT_DIR/architectures_table/table.md. Wall times: OUT_DIR/times.txt.
#
# Measured on one H200 (docs/results.md): dropout_fashion_cnn alone 30 s; architectures and architectures_small
# side by side 216 s and 162 s; architectures_long alone 254 s.
#
# Extra `jtricks run` arguments for every run (e.g. a smoke test): JTRICKS_RUN_ARGS="--epochs 1 --seeds 2".
# Needs Fashion-MNIST: the Debian package dataset-fashion-mnist or the four IDX files under
# $JTRICKS_DATA/fashion-mnist/. Set PYTHON to choose the interpreter (default: python).
set -uo pipefail
OUT_DIR=${1:?usage: experiments/gpu_runs.sh OUT_DIR [NAME ...]}
shift
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(dropout_fashion_cnn architectures architectures_small architectures_long)
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-$(awk "BEGIN{print 0.9/${#NAMES[@]}}")}
pids=()
for name in "${NAMES[@]}"; do
  ( start=$(date +%s)
    "$PY" -m jtricks run "$name" --out "$OUT_DIR/$name" --no-checkpoint ${JTRICKS_RUN_ARGS:-} > "$OUT_DIR/$name.log" 2>&1
    echo "$name: rc=$? $(( $(date +%s) - start )) s" | tee -a "$OUT_DIR/times.txt" ) &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
if [ -f "$OUT_DIR/architectures/summary.csv" ] && [ -f "$OUT_DIR/architectures_small/summary.csv" ]; then
  extra=(); [ -f "$OUT_DIR/architectures_long/summary.csv" ] && extra=("$OUT_DIR/architectures_long")
  "$PY" experiments/plots/architectures_table.py "$OUT_DIR/architectures" "$OUT_DIR/architectures_small" "${extra[@]}" \
    --out "$OUT_DIR/architectures_table"
fi
