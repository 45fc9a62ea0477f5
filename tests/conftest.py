# Compile time dominates this suite's small programs. XLA:CPU's newer fusion emitters take
# about twice as long to compile them as its loop emitters, for the same HLO, and LLVM at
# -O0 about half as long again as at its default level (test_gradcheck and test_train: 96 s
# against 181 s). So the tests (and the commands they start, which inherit the environment)
# use both. Set before JAX starts its backend; the benchmarks and users get XLA's defaults.
# jaxlib 0.11 removed the loop emitters (XLA aborts on a flag it does not know).
import importlib.metadata  # noqa: E402
import os

_COMPILE_FAST = " --xla_backend_optimization_level=0"
_JAXLIB = tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2])
_LOOP_EMITTERS = " --xla_cpu_use_fusion_emitters=false" if _JAXLIB < (0, 11) else ""
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')}{_LOOP_EMITTERS}{_COMPILE_FAST}"


# The suite's processes split the CPU into 2 devices, as on the 2-core CI machine, whatever
# this machine has: a sweep's chunks (hence what a checkpoint holds, and where an interrupt
# lands) follow the device count; on 16 devices, 16 members are one chunk.
os.environ.setdefault("JAXHP_CPU_DEVICES", "2")


def cpu_command_env(devices: int = 2, **extra) -> dict:
    """The environment for a command a test starts: on the CPU, as ``devices`` devices."""
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAXHP_CPU_DEVICES": str(devices), **extra}


def long_run_env(**extra) -> dict:
    """:func:`cpu_command_env` for a command that trains for a while: XLA's default LLVM
    level, whose code runs about 3x faster than -O0's (a sweep the test must kill mid-way)."""
    flags = os.environ["XLA_FLAGS"].replace(_COMPILE_FAST, "")
    return cpu_command_env(XLA_FLAGS=flags, **extra)


import chex  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

# Silent broadcasting bugs surface as errors (STYLE.md).
jax.config.update("jax_numpy_rank_promotion", "raise")
# On a GPU, JAX's default float32 matmuls are TensorFloat-32 (10-bit mantissas), which the
# float32 tolerances here do not allow for. Chosen from the installed plugins, without
# starting JAX's backends (jaxhp splits the CPU into devices before they start); the
# environment carries it to the commands the tests start.
if any(
    (d.metadata["Name"] or "").startswith("jax-cuda") for d in importlib.metadata.distributions()
):
    os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"
    jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def key():
    return jax.random.key(0)


def assert_close(actual, expected, *, rtol, atol=0.0):
    """The one tolerance helper: two pytrees of the same structure agree leaf by leaf to
    rtol/atol (chex names the first leaf that differs)."""
    chex.assert_trees_all_close(actual, expected, rtol=rtol, atol=atol)


@pytest.fixture(autouse=True, scope="session")
def _private_compilation_cache(tmp_path_factory):
    """`jaxhp sweep` caches compiled programs (in this process and in the subprocesses the
    tests start); keep that cache inside the test session's temporary folder."""
    import os

    os.environ["JAXHP_CACHE_DIR"] = str(tmp_path_factory.mktemp("xla-cache"))
