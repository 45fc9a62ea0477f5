import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close

import jaxhp
from jaxhp.nn import layer_masks

Z = 5.0  # bounds are 5 binomial standard deviations: a false failure has odds ~1e-6


def binomial_bound(n, p):
    return Z * np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("keep_prob", [0.1, 0.5, 0.8, 0.86, 0.99])
def test_keep_fraction(key, keep_prob):
    mask = np.asarray(jaxhp.dropout_mask(key, (500, 200), keep_prob))
    assert abs(mask.mean() - keep_prob) < binomial_bound(mask.size, keep_prob)


@pytest.mark.parametrize("keep_prob", [0.5, 0.8])
def test_dropout_preserves_mean(key, keep_prob):
    a = jnp.ones((400, 250))
    out = np.asarray(jaxhp.dropout(key, a, keep_prob), np.float64)
    # Each entry is 0 or 1/p: mean 1 and variance (1 - p) / p.
    assert abs(out.mean() - 1.0) < Z * np.sqrt((1 - keep_prob) / keep_prob / out.size)
    kept = out[out > 0]
    np.testing.assert_allclose(kept, 1 / keep_prob, rtol=1e-6)


def test_same_key_same_mask_other_key_other_mask(key):
    a = jaxhp.dropout_mask(key, (64, 32), 0.5)
    b = jaxhp.dropout_mask(key, (64, 32), 0.5)
    c = jaxhp.dropout_mask(jax.random.key(1), (64, 32), 0.5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _joint_keep_fraction_ok(a, b, p):
    both = np.mean(a & b)
    return abs(both - p * p) < binomial_bound(a.size, p * p)


@pytest.mark.parametrize("p", [0.5, 0.8])
def test_masks_independent_across_keys_layers_steps_and_units(key, p):
    shape = (300, 100)
    step_keys = [jax.random.fold_in(key, t) for t in range(3)]
    masks = [np.asarray(jaxhp.dropout_mask(k, shape, p)) for k in step_keys]
    for i in range(3):  # across steps
        for j in range(i + 1, 3):
            assert _joint_keep_fraction_ok(masks[i], masks[j], p)
    l0, l1 = (np.asarray(mask) for mask in layer_masks(key, shape[0], (shape[1],) * 2, p))
    assert _joint_keep_fraction_ok(l0, l1, p)  # across layers
    m = masks[0]  # neighbouring units and rows within one mask
    assert _joint_keep_fraction_ok(m[:, :-1], m[:, 1:], p)
    assert _joint_keep_fraction_ok(m[:-1], m[1:], p)


def test_streams_of_two_keys_are_not_shifted_copies():
    """A counter hash ``mix(i + w0)`` alone gives two keys whose w0 differ by a small
    amount the same stream shifted; the xor with the second word breaks that."""
    from jaxhp.nn import _keep_from_words

    index = jnp.arange(20_000, dtype=jnp.uint32)
    shift, w0 = 7, 12345
    moved = w0 + shift

    def keep(w0, w1):
        return np.asarray(_keep_from_words(jnp.array([w0, w1], jnp.uint32), index, 0.5))

    plain_a, plain_b = keep(w0, 0), keep(moved, 0)  # no xor: a shifted copy
    np.testing.assert_array_equal(plain_a[shift:], plain_b[:-shift])
    a, b = keep(w0, 0x5BD1E995), keep(moved, 0x27D4EB2F)
    assert _joint_keep_fraction_ok(a[shift:], b[:-shift], 0.5)


def test_training_steps_draw_independent_masks(key):
    """fit's per-step keys (a hash of the run's key data and the step, wrapped as a key) give
    the MLP masks that are independent across steps and layers."""
    from jaxhp.nn import _mask_from_words, layer_words, step_mask_words

    base = jax.random.key_data(key)
    shape, p = (300, 100), 0.5
    step_keys = [jax.random.wrap_key_data(step_mask_words(base, t)) for t in (0, 1, 2, 1000)]
    words = [layer_words(k, 2) for k in step_keys]
    masks = [np.asarray(_mask_from_words(w[l], shape, p)) for w in words for l in (0, 1)]
    for i in range(len(masks)):
        assert abs(masks[i].mean() - p) < binomial_bound(masks[i].size, p)
        for j in range(i + 1, len(masks)):
            assert _joint_keep_fraction_ok(masks[i], masks[j], p)


def test_masks_independent_across_vmapped_members(key):
    keys = jax.random.split(key, 2)
    masks = jax.vmap(lambda k: jaxhp.dropout_mask(k, (300, 100), 0.5))(keys)
    a, b = np.asarray(masks)
    assert _joint_keep_fraction_ok(a, b, 0.5)


def test_keep_prob_one_is_identity_and_needs_no_key(key):
    params = jaxhp.init_mlp(key, (3, 8, 8, 2))
    x = jax.random.normal(key, (5, 3))
    plain = jaxhp.forward(params, x)
    assert_close(jaxhp.forward(params, x, keep_prob=1.0), plain, rtol=0)
    # A traced keep_prob of 1 goes through the mask path and is still exactly the identity.
    traced = jax.jit(lambda p, x, kp: jaxhp.forward(p, x, key=key, keep_prob=kp))(params, x, 1.0)
    assert_close(traced, jax.jit(jaxhp.forward)(params, x), rtol=0)


def _numpy_forward(params, x, masks, keep_probs):
    """A NumPy reference: ReLU hidden layers, inverted dropout with the given masks."""
    a = np.asarray(x, np.float64)
    for layer, mask, p in zip(params[:-1], masks, keep_probs):
        a = np.maximum(a @ np.asarray(layer.W, np.float64) + np.asarray(layer.b, np.float64), 0)
        a = a * np.asarray(mask) / p
    return a @ np.asarray(params[-1].W, np.float64) + np.asarray(params[-1].b, np.float64)


def test_dropout_hits_hidden_layers_only(key):
    # One hidden unit and a non-zero output bias: a dropped hidden unit gives exactly b_out,
    # a kept one b_out + W2 * a1 / p. Output-layer dropout would also give 0s.
    params = jaxhp.init_mlp(key, (2, 1, 1))
    params = (params[0], params[1]._replace(W=jnp.full((1, 1), 1.3), b=jnp.full((1,), 0.37)))
    x = jnp.ones((1000, 2))
    out = np.asarray(jaxhp.forward(params, x, key=key, keep_prob=0.5, activation="sigmoid"))
    a1 = 1 / (1 + np.exp(-(np.asarray(params[0].W).sum() + float(params[0].b[0]))))
    values = np.unique(np.round(out, 5))
    np.testing.assert_allclose(values, [0.37, 0.37 + 1.3 * a1 / 0.5], rtol=1e-5)


@pytest.mark.parametrize("sizes", [(3, 50, 50, 1), (3, 80, 70, 2)])  # narrow and wide layouts
def test_per_layer_dropout_matches_numpy_and_layer_masks(key, sizes):
    """Both layouts (units-first for <= 64 units, batch-first above) apply exactly the masks
    of layer_masks, per-layer keep_prob included."""
    params = jaxhp.init_mlp(key, sizes)
    params = [layer._replace(b=layer.b + 0.1) for layer in params]
    x = jax.random.normal(jax.random.key(1), (40, 3))
    keep = [0.6, 0.9]
    masks = layer_masks(key, 40, sizes[1:-1], jnp.array(keep))
    logits = jaxhp.forward(params, x, key=key, keep_prob=jnp.array(keep))
    expected = _numpy_forward(params, x, masks, keep)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="2 hidden"):
        jaxhp.forward(params, x, key=key, keep_prob=jnp.array([0.5, 0.5, 0.5]))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bfloat16, jnp.float32])
def test_forward_keeps_keep_prob_in_float32_for_any_input_dtype(key, dtype):
    """Integer or bf16 inputs (issue #11 item 7): keep_prob 0.8 stays 0.8, the masks are those
    of layer_masks, and the result matches the float64 reference."""
    params = jaxhp.init_mlp(key, (3, 16, 1))
    x = jnp.round(3 * jax.random.normal(jax.random.key(2), (30, 3))).astype(dtype)
    masks = layer_masks(key, 30, (16,), 0.8)
    logits = jaxhp.forward(params, x, key=key, keep_prob=0.8)
    expected = _numpy_forward(params, np.asarray(x.astype(jnp.float32)), masks, [0.8])
    np.testing.assert_allclose(np.asarray(logits, np.float64), expected, rtol=1e-5, atol=1e-5)
    out = np.asarray(jaxhp.dropout(key, jnp.ones((200, 100), dtype), 0.8), np.float64)
    np.testing.assert_allclose(out[out > 0], 1 / 0.8, rtol=1e-6)  # also bf16: 1.25 is exact
    assert abs((out > 0).mean() - 0.8) < binomial_bound(out.size, 0.8)


def test_keys_one_bit_apart_give_independent_masks():
    """The key hash avalanches: keys whose data differ in a single bit (any word, any bit)
    give masks as unrelated as independent ones."""
    base = np.array([0x12345678, 0x9ABCDEF0], np.uint32)
    mask = np.asarray(jaxhp.dropout_mask(jax.random.wrap_key_data(base), (200, 100), 0.5))
    for word, bit in [(0, 0), (0, 31), (1, 0), (1, 17)]:
        flipped = base.copy()
        flipped[word] ^= np.uint32(1 << bit)
        other = np.asarray(jaxhp.dropout_mask(jax.random.wrap_key_data(flipped), (200, 100), 0.5))
        assert _joint_keep_fraction_ok(mask, other, 0.5), (word, bit)
    zero = jax.random.wrap_key_data(np.zeros(2, np.uint32))
    one = jax.random.wrap_key_data(np.array([0, 1], np.uint32))
    a, b = (np.asarray(jaxhp.dropout_mask(k, (200, 100), 0.5)) for k in (zero, one))
    assert _joint_keep_fraction_ok(a, b, 0.5)


def test_dropout_without_key_or_at_keep_prob_one_is_identity(key):
    a = jax.random.normal(key, (4, 5))
    assert jaxhp.dropout(None, a, 0.5) is a
    assert jaxhp.dropout(key, a, 1.0) is a


def test_vmap_over_keep_prob(key):
    params = jaxhp.init_mlp(key, (3, 16, 1))
    x = jnp.ones((10, 3))
    kps = jnp.array([0.3, 0.6, 1.0])
    batched = jax.vmap(lambda kp: jaxhp.forward(params, x, key=key, keep_prob=kp))(kps)
    for i, kp in enumerate(kps):
        single = jaxhp.forward(params, x, key=key, keep_prob=float(kp))
        assert_close(batched[i], single, rtol=1e-6)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_bad_keep_prob(key, bad):
    params = jaxhp.init_mlp(key, (2, 3, 1))
    with pytest.raises(ValueError, match="keep_prob must be in \\(0, 1\\]"):
        jaxhp.forward(params, jnp.ones((2, 2)), key=key, keep_prob=bad)


def test_dropout_without_key_shows_the_call(key):
    params = jaxhp.init_mlp(key, (2, 3, 1))
    with pytest.raises(ValueError, match=r"needs a PRNG key.*key=jax.random.key"):
        jaxhp.forward(params, jnp.ones((2, 2)), keep_prob=0.5)


def test_unknown_activation(key):
    params = jaxhp.init_mlp(key, (2, 3, 1))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        jaxhp.forward(params, jnp.ones((2, 2)), activation="gelu")
