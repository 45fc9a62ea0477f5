import chex
import jax
import pytest

# Silent broadcasting bugs surface as errors (STYLE.md).
jax.config.update("jax_numpy_rank_promotion", "raise")


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
