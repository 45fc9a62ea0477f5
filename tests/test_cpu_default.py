"""jaxhp's default of one JAX CPU device per core, and its opt-outs (fresh processes)."""

import os
import subprocess
import sys

import pytest

PROBE = "import jaxhp, jax; print(jax.device_count())"


def _devices(code=PROBE, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")}
    clean.pop("JAXHP_CPU_DEVICES", None)
    clean.update(JAX_PLATFORMS="cpu", **env)
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 or "JAXHP_CPU_DEVICES" in done.stderr, done.stderr[-2000:]
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def test_import_gives_one_device_per_core():
    assert _devices() == str(os.cpu_count())


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"JAXHP_CPU_DEVICES": "1"}, "1"),
        ({"JAX_NUM_CPU_DEVICES": "5"}, "5"),
    ],
)
def test_the_users_choice_wins(env, expected):
    assert _devices(**env) == expected


def test_a_jax_that_already_started_is_left_alone():
    code = "import jax; jax.numpy.ones(1); import jaxhp; print(jax.device_count())"
    assert _devices(code) == "1"


def test_a_bad_count_is_named():
    assert "JAXHP_CPU_DEVICES must be a positive int, got 'many'" in _devices(
        JAXHP_CPU_DEVICES="many"
    )
