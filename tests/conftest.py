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
