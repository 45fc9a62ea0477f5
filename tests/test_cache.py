"""The persistent compilation cache and the compile meter."""

import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from jaxhp import cache

RUN = textwrap.dedent(
    """
    import json, sys
    import jaxhp
    from jaxhp import cache
    cache.enable_compilation_cache(sys.argv[1])
    x, y = jaxhp.datasets.moons(64, noise=0.2, seed=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=10)
    with cache.compile_stats() as stats:
        jaxhp.run_sweep(jaxhp.sweep.grid(lambd=[0.0, 0.1]), jaxhp.Data((x, y)), config,
                        progress=False)
    print(json.dumps({"hits": stats.cache_hits, "misses": stats.cache_misses}))
    """
)


def _run(folder) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(folder)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_sweep_program_from_the_cache(tmp_path):
    first = _run(tmp_path / "xla")
    assert first["hits"] == 0 and first["misses"] >= 1  # the meter sees compiles
    assert any((tmp_path / "xla").iterdir())
    second = _run(tmp_path / "xla")
    assert second["hits"] >= 1 and second["misses"] < first["misses"]


def test_compile_stats_sees_a_compile_only_inside_its_block():
    with cache.compile_stats() as stats:
        jax.jit(lambda v: jnp.sin(v) * 3.0 + 0.25)(jnp.arange(7.0)).block_until_ready()
    inside = (stats.trace_s, stats.compile_s)
    assert stats.trace_s > 0 and stats.compile_s > 0
    jax.jit(lambda v: jnp.cos(v) - 0.75)(jnp.arange(5.0)).block_until_ready()
    assert (stats.trace_s, stats.compile_s) == inside  # listeners removed on exit


def test_cache_path_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "not-a-folder"
    file.write_text("x")
    with pytest.raises(ValueError, match="cache path must be a folder"):
        cache.enable_compilation_cache(file)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXHP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.default_cache_dir() == tmp_path / "jaxhp" / "xla"
    monkeypatch.setenv("JAXHP_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.default_cache_dir() == tmp_path / "mine"
