import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhp
from jaxhp.init import weight_std

N_IN, N_OUT = 400, 300


@pytest.mark.parametrize(
    "scheme, expected_var",
    [
        ("he", 2 / N_IN),
        ("lecun", 1 / N_IN),
        ("xavier", 1 / N_IN),
        ("glorot", 2 / (N_IN + N_OUT)),
        ("random", 0.01**2),
    ],
)
def test_weight_variance_matches_formula(key, scheme, expected_var):
    (layer,) = jaxhp.init_mlp(key, (N_IN, N_OUT), scheme=scheme)
    w = np.asarray(layer.W, np.float64).ravel()
    n = w.size
    # For normal samples the sample variance has std var * sqrt(2 / (n - 1)): allow 5 sds.
    tolerance = 5 * expected_var * np.sqrt(2 / (n - 1))
    assert abs(w.var() - expected_var) < tolerance
    assert abs(w.mean()) < 5 * np.sqrt(expected_var / n)
    np.testing.assert_array_equal(layer.b, np.zeros(N_OUT))


def test_random_scale_is_the_std(key):
    (layer,) = jaxhp.init_mlp(key, (N_IN, N_OUT), scheme="random", scale=10.0)
    w = np.asarray(layer.W, np.float64).ravel()
    assert abs(w.var() - 100.0) < 5 * 100.0 * np.sqrt(2 / (w.size - 1))


def test_zeros_and_shapes(key):
    params = jaxhp.init_mlp(key, (4, 5, 3, 1), scheme="zeros")
    chex.assert_shape([p.W for p in params], [(4, 5), (5, 3), (3, 1)])
    chex.assert_shape([p.b for p in params], [(5,), (3,), (1,)])
    assert all(float(jnp.abs(p.W).sum()) == 0 for p in params)


def test_params_are_a_plain_pytree(key):
    params = jaxhp.init_mlp(key, (3, 4, 2), dtype=jnp.float32)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    assert len(leaves) == 4
    chex.assert_type(leaves, jnp.float32)
    with jax.enable_x64(True):
        chex.assert_type(
            jax.tree.leaves(jaxhp.init_mlp(key, (3, 4, 2), dtype=jnp.float64)), jnp.float64
        )
    doubled = jax.tree.map(lambda a: 2 * a, params)
    assert isinstance(doubled[0], jaxhp.Layer)


def test_gain_multiplies_std():
    assert weight_std("he", 8, 3, scale=2.0) == pytest.approx(2 * np.sqrt(2 / 8))


def test_same_key_same_params_different_key_different(key):
    a = jaxhp.init_mlp(key, (3, 4, 1))
    b = jaxhp.init_mlp(key, (3, 4, 1))
    c = jaxhp.init_mlp(jax.random.key(1), (3, 4, 1))
    np.testing.assert_array_equal(a[0].W, b[0].W)
    assert not np.allclose(a[0].W, c[0].W)


@pytest.mark.parametrize(
    "sizes, match",
    [
        ((3,), "at least 2"),
        ((3, 0, 1), "positive"),
        ((3, -2), "positive"),
        ((3, 2.5), "positive"),
        ("32", "sequence"),
    ],
)
def test_bad_layer_sizes(key, sizes, match):
    with pytest.raises((ValueError, TypeError), match=match):
        jaxhp.init_mlp(key, sizes)


def test_unknown_scheme(key):
    with pytest.raises(ValueError, match="unknown init scheme 'kaiming'.*allowed"):
        jaxhp.init_mlp(key, (2, 1), scheme="kaiming")
