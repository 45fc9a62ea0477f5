"""The benchmark scripts run at --quick size, so they cannot rot. No time is asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


SCRIPTS = [
    "sweep.py",
    "gradcheck.py",
    "gradcheck_false_alarms.py",
    "memory.py",
    "optuna_bridge.py",
    "b4_cnn.py",
    "halving.py",
    "first_call.py",
]


# One torch thread: the other xdist worker keeps the second core busy, and torch's thread
# pool then spins, running its tiny quick-size steps 10-30 times slower.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_quick(script):
    backend = jax.default_backend()  # results off the CPU are named e.g. sweep-gpu-quick.json
    name = script.removesuffix(".py") + ("" if backend == "cpu" else f"-{backend}")
    results = BENCH / "results" / f"{name}-quick.json"
    results.unlink(missing_ok=True)  # so that an old file cannot pass for this run's
    done = subprocess.run(
        [sys.executable, script, "--quick"],
        cwd=BENCH,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "|---" in done.stdout  # printed a markdown table
    payload = json.loads(results.read_text())
    assert payload["quick"] is True and payload["machine"]["jax"]
