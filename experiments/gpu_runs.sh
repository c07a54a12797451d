#!/usr/bin/env bash
# The Fashion-MNIST convnet experiments, too heavy for a 2-core CPU: run them on a GPU.
#
#   experiments/gpu_runs.sh OUT_DIR [NAME ...]
#
# Runs, one after the other, each as `python -m jtricks run NAME --out OUT_DIR/NAME --quiet`
# (all three by default, or only the NAMEs given):
#   dropout_fashion_cnn   the dropout notebook's CNN, 4 rates x 8 seeds, 5 epochs            (32 members)
#   architectures         MLP / CNN / CNN+BN / ResNet-20 / Inception x 8 seeds, 5 epochs     (40 members)
#   architectures_small   the same on 5,500 images, 15 epochs                                (40 members)
# then, when both architecture runs are there, experiments/plots/architectures_table.py (parameters,
# accuracy, time per epoch) into OUT_DIR/architectures_table/table.md. Each run's wall time goes to
# OUT_DIR/times.txt.
#
# Estimated on one H200 / H100 (from the notebook CNN's measured 0.14-0.35 ms per member-step on the
# H200, benchmarks/results/2026-11-26-h200-gpu-quick.md, and the models' FLOPs; ResNet-20 is ~13x the
# CNN's): dropout_fashion_cnn ~30 s (measured: 29.8 s on the H200), architectures ~4-6 min (ResNet-20
# about half of it), architectures_small ~1.5-2.5 min, the table ~1 min: 7-10 min in all. Split it
# over calls by naming experiments.
#
# Needs Fashion-MNIST: the Debian package dataset-fashion-mnist or the four IDX files under
# $JTRICKS_DATA/fashion-mnist/. Set PYTHON to choose the interpreter (default: python).
set -euo pipefail
OUT_DIR=${1:?usage: experiments/gpu_runs.sh OUT_DIR [NAME ...]}
shift
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(dropout_fashion_cnn architectures architectures_small)
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
mkdir -p "$OUT_DIR"
for name in "${NAMES[@]}"; do
  start=$(date +%s)
  "$PY" -m jtricks run "$name" --out "$OUT_DIR/$name" --quiet
  echo "$name: $(( $(date +%s) - start )) s" | tee -a "$OUT_DIR/times.txt"
done
if [ -f "$OUT_DIR/architectures/summary.csv" ] && [ -f "$OUT_DIR/architectures_small/summary.csv" ]; then
  "$PY" experiments/plots/architectures_table.py "$OUT_DIR/architectures" "$OUT_DIR/architectures_small" \
    --steps 10 --out "$OUT_DIR/architectures_table"
fi
