#!/usr/bin/env bash
# One prepared run on a GPU machine: versions, the Fashion-MNIST convnet experiments that are
# too heavy for 2 CPU cores, the --quick benchmark suite, and the engine/population tests on the GPU.
#   OUT=/path bash benchmarks/gpu_session.sh      (run from the repository root)
# Needs .gpu/data/fashion-mnist/*.gz (the four IDX files) and .gpu/whl/mnist1d-*.whl carried along.
# Every stage has its own time limit and writes into $OUT as it goes, so a stage that runs long loses nothing else.
set -u
OUT=${OUT:?set OUT}
ROOT=$(pwd)
export PYTHONUNBUFFERED=1 JTRICKS_DATA=$ROOT/.gpu/data
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl >/dev/null 2>&1
export PYTHONPATH=$ROOT:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
  python3 -c "import sys, jax; from importlib.metadata import version; print('python', sys.version.split()[0], *(f'{d} {version(d)}' for d in ('jax', 'jaxlib', 'optax', 'flax')), jax.devices())"; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
stage() { # name seconds command...
  local name=$1 secs=$2; shift 2; local t0=$(date +%s)
  timeout "$secs" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - t0 ))s" | tee -a "$OUT/stages.txt"
  (cd /tmp/exp && tar czf "$OUT/exp.tar.gz" --exclude=checkpoints .) 2>/dev/null
  tar czf "$OUT/bench.tar.gz" benchmarks/results 2>/dev/null
}
mkdir -p /tmp/exp
stage dropout_fashion_cnn 150 python3 -m jtricks run dropout_fashion_cnn --out /tmp/exp/dropout_fashion_cnn --quiet
stage bench_quick 160 python3 -m benchmarks.run --quick
stage architectures_small 100 python3 -m jtricks run architectures_small --out /tmp/exp/architectures_small --quiet
stage architectures 110 python3 -m jtricks run architectures --out /tmp/exp/architectures --quiet
stage tests 45 python3 -m pytest -q -x -p no:cacheprovider tests/test_population.py tests/test_engine.py -k "bitwise or population or divergence or chunked"
cat "$OUT/stages.txt"
