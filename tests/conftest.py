import jax
import numpy as np
import pytest

# Silent broadcasting bugs surface as errors (STYLE.md).
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


def assert_close(actual, expected, *, rtol, atol=0.0):
    """The one tolerance helper: every leaf of two pytrees agrees to rtol/atol."""
    actual_leaves = jax.tree.leaves(actual)
    expected_leaves = jax.tree.leaves(expected)
    assert len(actual_leaves) == len(expected_leaves)
    for a, e in zip(actual_leaves, expected_leaves):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)
