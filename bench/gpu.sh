#!/usr/bin/env bash
# Every GPU row in one short run: B3 (bench/gradcheck.py), the Optuna bridge, halving, B4
# (bench/b4_cnn.py, also at 32 lanes a vmap), as much of the test suite as its limit
# allows, then B1 and B2 (bench/sweep.py) when B1_S / B2_S give them seconds. Each step has
# its own time limit, so one that fails or hangs leaves the others' results.
#
# Run from the repository root on a machine with a GPU and JAX's CUDA plugin:
#   OUT=/some/folder bash bench/gpu.sh
# Results: $OUT/log.txt, $OUT/tests.log, $OUT/failures.log and each step's
# bench/results/*-gpu.json as
# $OUT/<step>-<file> (b3-gradcheck-gpu.json, optuna-optuna_bridge-gpu.json, ...).
set -u
OUT=${OUT:-/tmp/jaxhp-gpu}
mkdir -p "$OUT"
LOG=$OUT/log.txt
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# JAX would take 75% of the card at start; leave room for the PyTorch peers in the process.
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.5
PY=${PY:-python3}

step() {  # step NAME SECONDS RESULT COMMAND...: run with a time limit, log to $LOG, and
    # copy bench/results/RESULT to $OUT/NAME-RESULT only when the step succeeded
    local name=$1 limit=$2 result=bench/results/$3
    shift 3
    local start=$SECONDS status
    rm -f "$result"  # never copy a file an earlier run left
    echo "### $name: $*" >>"$LOG"
    timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
    status=$?
    echo "### $name: exit $status after $((SECONDS - start)) s" >>"$LOG"
    if [ "$status" -eq 0 ] && [ -f "$result" ]; then
        cp "$result" "$OUT/$name-$(basename "$result")"
    else
        echo "### $name: no results kept" >>"$LOG"
    fi
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $PY -c "import jax, torch; print('jax', jax.__version__, jax.devices()); \
print('torch', torch.__version__, torch.cuda.get_device_name(0)); \
print('matmul precision', jax.config.jax_default_matmul_precision)"
} >"$LOG" 2>&1

# Rows not yet measured on a GPU first (B3, Optuna, halving, B4's lane widths), then the
# suite; B1/B2 last, each skipped with a 0 limit (GPU rows of 2026-11-28 04:03 exist).
step b3 "${B3_S:-60}" gradcheck-gpu.json $PY bench/gradcheck.py
step optuna "${OPTUNA_S:-100}" optuna_bridge-gpu.json $PY bench/optuna_bridge.py
step halving "${HALVING_S:-50}" halving-gpu.json $PY bench/halving.py
step b4 "${B4_S:-90}" b4_cnn-gpu.json $PY bench/b4_cnn.py --accelerator-widths 32
# The suite, workers sharing the card (each allocates as it goes); -v names each result as
# it comes, so a run cut short by its limit still says which tests passed and failed.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
timeout -k 10 "${TESTS_S:-180}" $PY -m pytest -v -n "${TEST_WORKERS:-12}" --dist load \
    -p no:cacheprovider -rfE --durations=15 >"$OUT/tests.log" 2>&1
echo "### tests: exit $?" >>"$LOG"
# Under xdist the failures' tracebacks come only in pytest's final summary, which a run cut
# at its limit never prints: run the failed tests again, one process, for their messages.
failed=$(grep -oE "FAILED tests/[^ ]+" "$OUT/tests.log" | sed 's/^FAILED //' | sort -u)
if [ -n "$failed" ]; then
    # shellcheck disable=SC2086  # one argument per test id
    timeout -k 10 "${RERUN_S:-90}" $PY -m pytest -n 0 -q -p no:cacheprovider --tb=short \
        $failed >"$OUT/failures.log" 2>&1
    echo "### failures rerun: exit $?" >>"$LOG"
fi
unset XLA_PYTHON_CLIENT_PREALLOCATE
[ "${B1_S:-0}" -gt 0 ] && step b1 "$B1_S" sweep-gpu.json $PY bench/sweep.py --only b1 --no-torch-compile
[ "${B2_S:-0}" -gt 0 ] && step b2 "$B2_S" sweep-gpu.json $PY bench/sweep.py --only b2
true
