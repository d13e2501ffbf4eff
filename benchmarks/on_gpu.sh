#!/usr/bin/env bash
# Run the test suite and the benchmarks on a CUDA machine whose Python already has JAX,
# equinox, diffrax, optax and the test tools (numdifftools may be given as wheels in .whl/).
# Writes logs and JSON into ${OUT:-gpu-results}/.
set -u
out=${OUT:-gpu-results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import jax, equinox, diffrax, optax; print('jax', jax.__version__, jax.devices(), 'equinox', equinox.__version__, 'diffrax', diffrax.__version__, 'optax', optax.__version__)" | tee "$out/versions.txt"
timeout "${TEST_SECONDS:-330}" python3 -m pytest -q -p no:cacheprovider --durations=10 2>&1 | tee "$out/pytest.log" | tail -25
for bench in foundation score_function optimize; do
  timeout 90 python3 "benchmarks/bench_$bench.py" > "$out/bench_$bench.json" 2> "$out/bench_$bench.err"
  echo "bench_$bench: exit $?"
done
