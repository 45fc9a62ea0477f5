#!/usr/bin/env bash
# Every GPU row in one short run: B1 and B2 (bench/sweep.py), B4 (bench/b4_cnn.py), B3
# (bench/gradcheck.py), then as much of the test suite as the time left allows. Each step
# has its own time limit, so one that fails or hangs leaves the others' results.
#
# Run from the repository root on a machine with a GPU and JAX's CUDA plugin:
#   OUT=/some/folder bash bench/gpu.sh
# Results: bench/results/*-gpu.json, copied with log.txt and tests.log to $OUT.
set -u
OUT=${OUT:-/tmp/jaxhp-gpu}
mkdir -p "$OUT"
LOG=$OUT/log.txt
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# JAX would take 75% of the card at start; leave room for the PyTorch peers in the process.
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.5
PY=${PY:-python3}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $LOG
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "### $name: $*" >>"$LOG"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    echo "### $name: exit $? after $((SECONDS - start)) s" >>"$LOG"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $PY -c "import jax, torch; print('jax', jax.__version__, jax.devices()); \
print('torch', torch.__version__, torch.cuda.get_device_name(0)); \
print('matmul precision', jax.config.jax_default_matmul_precision)"
} >"$LOG" 2>&1

step b1 "${B1_S:-170}" $PY bench/sweep.py --only b1 --no-torch-compile
cp bench/results/sweep-gpu.json "$OUT"/sweep-b1-gpu.json
step b2 "${B2_S:-60}" $PY bench/sweep.py --only b2
cp bench/results/sweep-gpu.json "$OUT"/sweep-b2-gpu.json
step b4 "${B4_S:-80}" $PY bench/b4_cnn.py
step b3 "${B3_S:-60}" $PY bench/gradcheck.py
cp bench/results/b4_cnn-gpu.json bench/results/gradcheck-gpu.json "$OUT"/
# The suite, eight workers sharing the card (each allocates as it goes).
export XLA_PYTHON_CLIENT_PREALLOCATE=false
timeout "${TESTS_S:-110}" $PY -m pytest -q -n 8 -p no:cacheprovider -rfE --durations=10 \
    >"$OUT/tests.log" 2>&1
echo "### tests: exit $?" >>"$LOG"
