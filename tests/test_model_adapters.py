"""models.cnn against a NumPy re-implementation; the Flax (linen, NNX) and Equinox adapters
against the same networks written in NumPy; dropout statistics."""

import functools
import sys
import warnings

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from flax import nnx

import jaxhp
from jaxhp import models

HIDDEN = 6


# ---- a NumPy reference of conv -> ReLU -> pool ---------------------------------------
def np_conv(a, kernel, padding):
    """z[n, i, j, o] = sum_{di, dj, c} a_pad[n, i + di, j + dj, c] * W[di, dj, c, o]."""
    k = kernel.shape[0]
    if padding == "SAME":
        lo = (k - 1) // 2
        a = np.pad(a, ((0, 0), (lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)))
    m, h, w, _ = a.shape
    out = np.zeros((m, h - k + 1, w - k + 1, kernel.shape[3]))
    for di in range(k):
        for dj in range(k):
            out += np.einsum(
                "nijc,co->nijo", a[:, di : di + h - k + 1, dj : dj + w - k + 1], kernel[di, dj]
            )
    return out


def np_pool(a, size, kind):
    m, h, w, c = a.shape
    a = a[:, : h // size * size, : w // size * size]
    blocks = a.reshape(m, h // size, size, w // size, size, c)
    return blocks.max(axis=(2, 4)) if kind == "max" else blocks.mean(axis=(2, 4))


def np_cnn(params, x, *, padding, pool_size, pool, masks=()):
    """The CNN in NumPy (float64); ``masks[i]`` multiplies dropout layer i's output."""
    masks = list(masks)
    a = np.asarray(x, np.float64)
    for layer in params["conv"]:
        z = np_conv(a, np.asarray(layer.W, np.float64), padding) + np.asarray(layer.b)
        a = np_pool(np.maximum(z, 0), pool_size, pool)
        a = a * masks.pop(0) if masks else a
    a = a.reshape(a.shape[0], -1)
    for layer in params["dense"][:-1]:
        a = np.maximum(a @ np.asarray(layer.W, np.float64) + np.asarray(layer.b), 0)
        a = a * masks.pop(0) if masks else a
    out = params["dense"][-1]
    return a @ np.asarray(out.W, np.float64) + np.asarray(out.b)


def _normal(shape, seed):
    """Test inputs from NumPy: every jax.random call in a test costs a compile."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _jiggle(params, seed=1):
    """Params changed away from init (biases too), so a test sees which params apply uses."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: p + 0.1 * rng.standard_normal(p.shape).astype(p.dtype), params)


def _init(model, key):
    """Jitted: one compile instead of one per eager op."""
    return jax.jit(model.init)(key)


CNN_CASES = [
    dict(
        input_shape=(6, 6, 2),
        channels=(3, 4),
        dense=(5, 4),
        kernel_size=3,
        padding="SAME",
        pool_size=2,
        pool="max",
    ),
    dict(
        input_shape=(7, 5, 1),
        channels=(3,),
        dense=(1,),
        kernel_size=2,
        padding="VALID",
        pool_size=2,
        pool="avg",
    ),
    dict(
        input_shape=(4, 4, 3),
        channels=(),
        dense=(3,),
        kernel_size=3,
        padding="SAME",
        pool_size=1,
        pool="max",
    ),
]


@pytest.mark.parametrize("case", CNN_CASES)
def test_cnn_matches_numpy(key, case):
    model = models.cnn(**case)
    params = _jiggle(_init(model, key))
    x = _normal((3, *case["input_shape"]), 2)
    apply = jax.jit(model.apply)  # eager op-by-op dispatch costs seconds per case
    logits = apply(params, x, key=None, hparams=jaxhp.HParams(keep_prob=0.5))
    expected = np_cnn(
        params, x, padding=case["padding"], pool_size=case["pool_size"], pool=case["pool"]
    )
    assert logits.shape == expected.shape
    assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    flat = apply(params, x.reshape(3, -1), key=None, hparams=None)  # flat rows are reshaped
    assert_close(flat, expected, rtol=1e-4, atol=1e-5)


def test_cnn_dropout_layers_use_their_keep_prob_and_fold_in_keys(key):
    case = CNN_CASES[0]
    model = models.cnn(**case)
    params = _jiggle(_init(model, key))
    x = _normal((3, *case["input_shape"]), 2)
    keep = jnp.array([0.5, 0.7, 0.9])  # two conv blocks, one hidden dense layer
    step_key = jax.random.key(7)
    logits = jax.jit(model.apply)(params, x, key=step_key, hparams=jaxhp.HParams(keep_prob=keep))
    # Each layer's mask-and-scale, read off jaxhp.dropout applied to ones.
    shapes = [(3, 3, 3, 3), (3, 1, 1, 4), (3, 5)]
    masks = jax.jit(
        lambda k: [
            jaxhp.dropout(jax.random.fold_in(k, i), jnp.ones(s), keep[i])
            for i, s in enumerate(shapes)
        ]
    )(step_key)
    masks = [np.asarray(mask) for mask in masks]
    for mask, kp in zip(masks, keep):
        kept = mask != 0
        np.testing.assert_allclose(mask[kept], 1 / float(kp), rtol=1e-6)
    expected = np_cnn(params, x, padding="SAME", pool_size=2, pool="max", masks=masks)
    assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(logits, np_cnn(params, x, padding="SAME", pool_size=2, pool="max"))


def test_cnn_he_init_and_grads(key):
    model = models.cnn((8, 8, 16), channels=(64,), dense=(32, 10))
    params = _init(model, key)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    conv, dense = params["conv"][0], params["dense"][0]
    assert np.std(conv.W) == pytest.approx(np.sqrt(2 / (3 * 3 * 16)), rel=0.04)
    assert np.std(dense.W) == pytest.approx(np.sqrt(2 / (4 * 4 * 64)), rel=0.04)
    assert not np.any(conv.b) and not np.any(dense.b)
    # Gradients against central differences of the NumPy reference (float64).
    small = models.cnn((4, 4, 1), channels=(2,), dense=(3, 2), pool="avg")
    params = _jiggle(_init(small, key))
    x = _normal((5, 4, 4, 1), 3)
    y = np.array([0, 1, 1, 0, 1])

    def cost(p, forward):
        logits = forward(p)
        return (jax.nn.logsumexp(logits, axis=1) - logits[np.arange(5), y]).mean()

    grads = jax.jit(
        jax.grad(lambda p: cost(p, lambda p: small.apply(p, x, key=None, hparams=None)))
    )(params)

    def np_cost(p):
        logits = np_cnn(p, x, padding="SAME", pool_size=2, pool="avg")
        return float(np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(5), y]))

    leaves, tree = jax.tree.flatten(jax.tree.map(lambda a: np.asarray(a, np.float64), params))
    rng = np.random.default_rng(0)
    for leaf_index, grad in enumerate(jax.tree.leaves(grads)):
        flat = leaves[leaf_index].reshape(-1)
        i = rng.integers(flat.size)
        shifted = []
        for step in (1e-6, -1e-6):
            copy = [a.copy() for a in leaves]
            copy[leaf_index].reshape(-1)[i] += step
            shifted.append(np_cost(jax.tree.unflatten(tree, copy)))
        assert np.asarray(grad).reshape(-1)[i] == pytest.approx(
            (shifted[0] - shifted[1]) / 2e-6, rel=1e-3, abs=1e-6
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=(4, 4)), "input_shape must be \\(H, W, C\\)"),
        (dict(input_shape=(4, 4, 1), channels=(2, 2, 2)), "conv block 2 shrinks the 4x4"),
        (dict(input_shape=(4, 4, 1), padding="same"), "unknown padding 'same'"),
        (dict(input_shape=(4, 4, 1), pool="mean"), "unknown pool 'mean'.*'max', 'avg'"),
        (dict(input_shape=(4, 4, 1), dense=()), "dense must be a sequence of positive ints"),
        (dict(input_shape=(4, 4, 1), channels=(0,)), "channels must be .*got \\(0,\\)"),
    ],
)
def test_cnn_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.cnn(**kwargs)


def test_cnn_keep_prob_of_the_wrong_length(key):
    model = models.cnn((4, 4, 1), channels=(2,), dense=(3, 2))
    with pytest.raises(ValueError, match="keep_prob has 3 values but this cnn has 2 dropout"):
        jax.eval_shape(
            lambda: model.apply(
                model.init(key),
                jnp.zeros((1, 4, 4, 1)),
                key=key,
                hparams=jaxhp.HParams(keep_prob=jnp.array([0.5, 0.5, 0.5])),
            )
        )


# ---- the same two-layer network in linen, NNX and Equinox ----------------------------
def np_net(w1, b1, w2, b2, x):
    """tanh(x W1 + b1) W2 + b2, float64; w2 None returns the hidden layer."""
    h = np.tanh(np.asarray(x, np.float64) @ np.asarray(w1, np.float64) + np.asarray(b1))
    return h if w2 is None else h @ np.asarray(w2, np.float64) + np.asarray(b2)


class LinenNet(nn.Module):
    n_out: int | None = 3
    hidden: int = HIDDEN

    @nn.compact
    def __call__(self, x, *, key=None, hparams=None):
        h = jnp.tanh(nn.Dense(self.hidden)(x))
        if key is not None:
            h = jaxhp.dropout(key, h, hparams.keep_prob)
        return h if self.n_out is None else nn.Dense(self.n_out)(h)


class NNXNet(nnx.Module):
    def __init__(self, n_in, n_out=3, hidden=HIDDEN, *, rngs):
        self.hidden = nnx.Linear(n_in, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, n_out, rngs=rngs) if n_out else None

    def __call__(self, x, *, key=None, hparams=None):
        h = jnp.tanh(self.hidden(x))
        if key is not None:
            h = jaxhp.dropout(key, h, hparams.keep_prob)
        return h if self.out is None else self.out(h)


class EqxNet(eqx.Module):
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear | None

    def __init__(self, n_in, n_out=3, hidden=HIDDEN, *, key):
        k1, k2 = jax.random.split(key)
        self.hidden = eqx.nn.Linear(n_in, hidden, key=k1)
        self.out = eqx.nn.Linear(hidden, n_out, key=k2) if n_out else None

    def __call__(self, x, *, key=None, hparams=None):
        h = jnp.tanh(self.hidden(x))
        if key is not None:
            h = jaxhp.dropout(key, h, hparams.keep_prob)
        return h if self.out is None else self.out(h)


def _weights(kind, params):
    """(W1, b1, W2, b2) in the x @ W layout, whatever the framework."""
    if kind == "linen":
        layers = [params[name] for name in sorted(params)]
        return [a for layer in layers for a in (layer["kernel"], layer["bias"])] + [None] * (
            4 - 2 * len(layers)
        )
    if kind == "nnx":
        layers = [params["hidden"]] + ([params["out"]] if "out" in params else [])
        return [a for layer in layers for a in (layer["kernel"][...], layer["bias"][...])] + [
            None
        ] * (4 - 2 * len(layers))
    layers = [params.hidden] + ([params.out] if params.out is not None else [])
    return [a for layer in layers for a in (layer.weight.T, layer.bias)] + [None] * (
        4 - 2 * len(layers)
    )


@functools.cache  # one model per shape: jit caches its init and apply across tests
def make_model(kind, n_in=4, n_out=3, hidden=HIDDEN):
    if kind == "linen":
        return models.from_flax(LinenNet(n_out, hidden), jnp.zeros((2, n_in)))
    if kind == "nnx":
        return models.from_flax(lambda key: NNXNet(n_in, n_out, hidden, rngs=nnx.Rngs(key)))
    return models.from_equinox(lambda key: EqxNet(n_in, n_out, hidden, key=key))


KINDS = ["linen", "nnx", "equinox"]


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_apply_matches_numpy_with_dropout_off(key, kind):
    model = make_model(kind)
    params = _jiggle(_init(model, key))
    x = _normal((5, 4), 2)
    hp = jaxhp.HParams(keep_prob=0.5)
    expected = np_net(*_weights(kind, params), x)
    evaluate = jax.jit(lambda p, x: model.apply(p, x, key=None, hparams=hp))
    assert_close(evaluate(params, x), expected, rtol=1e-5, atol=1e-6)


def np_net_grads(w1, b1, w2, b2, x):
    """d/d(W1, b1, W2, b2) of sum(out ** 2) for out = tanh(x W1 + b1) W2 + b2, by hand."""
    x = np.asarray(x, np.float64)
    h = np_net(w1, b1, None, None, x)
    g_out = 2 * (h @ np.asarray(w2, np.float64) + np.asarray(b2))
    g_z = (g_out @ np.asarray(w2, np.float64).T) * (1 - h**2)
    return [x.T @ g_z, g_z.sum(0), h.T @ g_out, g_out.sum(0)]


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_params_are_float_leaves_that_grad_takes(key, kind):
    model = make_model(kind)
    params = _jiggle(_init(model, key))
    assert len(jax.tree.leaves(params)) == 4
    assert all(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in jax.tree.leaves(params))
    x = _normal((5, 4), 2)

    def cost(p):
        return jnp.sum(model.apply(p, x, key=None, hparams=jaxhp.HParams()) ** 2)

    grads = jax.jit(jax.grad(cost))(params)
    expected = np_net_grads(*_weights(kind, params), x)
    assert_close(_weights(kind, grads), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_dropout_reads_keep_prob_from_hparams(key, kind):
    m, hidden = 64, 128
    model = make_model(kind, n_out=None, hidden=hidden)  # apply returns the dropped-out layer
    params = _init(model, key)
    x = _normal((m, 4), 2)
    h = np_net(*_weights(kind, params), x)
    train = jax.jit(
        lambda p, x, k, kp: model.apply(p, x, key=k, hparams=jaxhp.HParams(keep_prob=kp))
    )
    for keep_prob in (0.3, 0.8):  # traced: one compile for both
        out = np.asarray(train(params, x, jax.random.key(3), keep_prob))
        kept = out != 0
        # m * hidden = 8192 units: the kept fraction is within 4 standard errors.
        se = np.sqrt(keep_prob * (1 - keep_prob) / kept.size)
        assert abs(kept.mean() - keep_prob) < 4 * se
        np.testing.assert_allclose(out[kept], h[kept] / keep_prob, rtol=1e-5, atol=1e-6)
        assert not np.array_equal(kept[0], kept[1])  # masks differ across examples
        again = train(params, x, jax.random.key(4), keep_prob)
        assert not np.array_equal(kept, np.asarray(again) != 0)  # and across keys


class LinenOwnDropout(nn.Module):
    @nn.compact
    def __call__(self, x, *, key=None, hparams=None):
        h = jnp.tanh(nn.Dense(128)(x))
        return nn.Dropout(rate=0.25)(h, deterministic=key is None)


def test_linens_own_dropout_gets_a_key_while_training(key):
    model = models.from_flax(LinenOwnDropout(), jnp.zeros((2, 4)))
    params = _init(model, key)
    x = _normal((64, 4), 2)
    h = np_net(*_weights("linen", params), x)
    out = np.asarray(model.apply(params, x, key=jax.random.key(3), hparams=jaxhp.HParams()))
    kept = out != 0
    se = np.sqrt(0.75 * 0.25 / kept.size)
    assert abs(kept.mean() - 0.75) < 4 * se  # its own fixed rate
    np.testing.assert_allclose(out[kept], h[kept] / 0.75, rtol=1e-5, atol=1e-6)
    again = np.asarray(model.apply(params, x, key=jax.random.key(4), hparams=jaxhp.HParams()))
    assert not np.array_equal(kept, again != 0)  # a mask per key
    evaluated = model.apply(params, x, key=None, hparams=jaxhp.HParams())
    np.testing.assert_allclose(evaluated, h, rtol=1e-5, atol=1e-6)  # off at evaluation


@pytest.mark.parametrize("kind", ["nnx", "equinox"])
def test_factories_give_each_key_its_own_init_under_vmap(kind):
    model = make_model(kind)
    stacked = jax.jit(jax.vmap(model.init))(jax.random.split(jax.random.key(0), 2))
    for leaf in jax.tree.leaves(stacked):
        if leaf.ndim > 2:  # stacked kernels (biases may start at zero)
            assert not np.allclose(leaf[0], leaf[1])


def test_module_instances_keep_their_params():
    net = NNXNet(4, rngs=nnx.Rngs(5))
    model = models.from_flax(net)
    assert_close(
        model.init(jax.random.key(9))["hidden"]["kernel"][...], net.hidden.kernel[...], rtol=0
    )
    enet = EqxNet(4, key=jax.random.key(5))
    assert_close(
        models.from_equinox(enet).init(jax.random.key(9)).hidden.weight, enet.hidden.weight, rtol=0
    )


def test_equinox_batched_module(key):
    class Batched(eqx.Module):
        w: jax.Array

        def __call__(self, x):
            return x @ self.w

    w = jax.random.normal(key, (4, 3))
    model = models.from_equinox(Batched(w), per_example=False)
    x = _normal((5, 4), 1)
    assert_close(
        model.apply(model.init(key), x, key=key, hparams=None),
        np.asarray(x) @ np.asarray(w),
        rtol=1e-5,
    )


def test_modules_in_files_named_after_the_other_library_are_accepted(key):
    class OwnEqx(eqx.Module):  # e.g. defined in the user's flax_models.py
        w: jax.Array

        def __call__(self, x):
            return x @ self.w

    OwnEqx.__module__ = "flax_models"
    model = models.from_equinox(OwnEqx(jnp.ones((4, 3))))
    assert model.apply(model.init(key), jnp.ones((2, 4))).shape == (2, 3)

    class OwnLinen(LinenNet):  # e.g. in equinox_port.py
        pass

    OwnLinen.__module__ = "equinox_port"
    assert models.from_flax(OwnLinen(), _normal((2, 4), 0)).init(key)


def test_a_per_example_module_fed_the_wrong_width_gets_no_per_example_hint(key):
    model = models.from_equinox(EqxNet(4, key=key))  # a per-example module; data is wider
    data = jaxhp.Data(train=(_normal((6, 5), 2), np.arange(6) % 3))
    with pytest.raises(TypeError) as error:
        jaxhp.fit(0, jaxhp.HParams(), data, jaxhp.TrainConfig(model=model, steps=1))
    assert "per_example" not in str(error.value) and "shape (6, 5)" in str(error.value)


def test_a_batch_module_given_as_per_example_is_told_about_per_example(key):
    class Batched(eqx.Module):  # written for (m, 4) batches: reshape(len(x), -1)
        w: jax.Array

        def __call__(self, x):
            return x.reshape(len(x), -1) @ self.w

    model = models.from_equinox(Batched(jax.random.normal(key, (4, 3))))
    data = jaxhp.Data(train=(_normal((6, 4), 2), np.arange(6) % 3))
    config = jaxhp.TrainConfig(model=model, steps=1)
    with pytest.raises(TypeError, match=r"one example at a time, of shape \(4,\); give per_ex"):
        jaxhp.fit(0, jaxhp.HParams(), data, config)


def test_a_per_example_module_given_as_batched_is_told_about_per_example(key):
    """eqx.nn.Embedding takes one id: per_example=False handed it the whole (m, L) batch
    and Equinox's own message did not say which argument to change."""
    ids = np.arange(12, dtype=np.int32).reshape(6, 2) % 5

    class Bag(eqx.Module):
        embed: eqx.nn.Embedding
        out: eqx.nn.Linear

        def __call__(self, tokens):  # one example: (2,) ids
            return self.out(jnp.mean(jax.vmap(self.embed)(tokens), axis=0))

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.embed = eqx.nn.Embedding(5, 3, key=k1)
            self.out = eqx.nn.Linear(3, 2, key=k2)

    data = jaxhp.Data(train=(ids, np.arange(6) % 2))
    given = models.from_equinox(Bag(key), per_example=False)
    config = jaxhp.TrainConfig(model=given, steps=1, input_dtype="int32")
    with pytest.raises((TypeError, ValueError), match=r"whole batch, of shape \(6, 2\); leave "
                       r"per_example=True"):  # fmt: skip
        jaxhp.fit(0, jaxhp.HParams(), data, config)
    right = config.replace(model=models.from_equinox(Bag(key)))
    assert jaxhp.fit(0, jaxhp.HParams(), data, right).history.train_cost.shape == (1,)


# ---- bad modules -----------------------------------------------------------------------
def test_linen_module_with_batch_stats_is_refused():
    class WithNorm(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.BatchNorm(use_running_average=False)(nn.Dense(3)(x))

    with pytest.raises(ValueError, match="variables \\['batch_stats'\\] besides 'params'"):
        models.from_flax(WithNorm(), jnp.zeros((2, 4)))


def test_equinox_module_with_state_is_refused(key):
    class WithNorm(eqx.Module):
        dense: eqx.nn.Linear
        norm: eqx.nn.BatchNorm

        def __call__(self, x, state):
            return self.norm(self.dense(x), state)

    module = WithNorm(eqx.nn.Linear(4, 3, key=key), eqx.nn.BatchNorm(3, "batch", mode="batch"))
    with pytest.raises(ValueError, match="module WithNorm holds state \\(eqx.nn.StateIndex"):
        models.from_equinox(module)


def test_linen_needs_sample_x():
    with pytest.raises(ValueError, match="needs sample_x for the linen module LinenNet"):
        models.from_flax(LinenNet())


def test_nnx_dropout_with_its_own_rngs_warns(key):
    class StaticDropout(nnx.Module):
        def __init__(self, rngs):
            self.dense = nnx.Linear(4, 3, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.dense(x))

    with pytest.warns(UserWarning, match="holds nnx.Rngs.*masks repeat at every step"):
        model = models.from_flax(StaticDropout(nnx.Rngs(0)))
    step = jax.jit(lambda p, x: model.apply(p, x, key=None, hparams=None))
    x = jnp.ones((2, 4))
    assert_close(step(model.init(key), x), step(model.init(key), x), rtol=0)  # runs, twice


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: models.from_flax(42), "from_flax takes a flax.linen.Module, an nnx.Module"),
        (lambda: models.from_flax(lambda key: 3), "must return an nnx.Module for a key"),
        (lambda: models.from_equinox(lambda key: 3), "from_equinox takes an eqx.Module"),
        (  # a factory of Rngs, not of a key: the error says how jaxhp calls it
            lambda: models.from_flax(lambda rngs: NNXNet(4, rngs=rngs)),
            r"from_flax calls its function with a PRNG key .*AttributeError.*rngs=nnx.Rngs\(key\)",
        ),
        (
            lambda: models.from_equinox(lambda k1, k2: EqxNet(4, key=k1)),
            r"from_equinox calls its function with a PRNG key .*TypeError.*key=key\)",
        ),
        (  # a module of the other library: named, not called as a factory
            lambda: models.from_flax(EqxNet(4, key=jax.random.key(0))),
            r"^from_flax got an Equinox module \(EqxNet\): use jaxhp.models.from_equinox",
        ),
        (
            lambda: models.from_equinox(NNXNet(4, rngs=nnx.Rngs(0))),
            r"^from_equinox got a Flax module \(NNXNet\): use jaxhp.models.from_flax\(",
        ),
        (
            lambda: models.from_equinox(LinenNet()),
            r"^from_equinox got a Flax module \(LinenNet\)",
        ),
    ],
)
def test_not_a_module(make, match):
    with pytest.raises(TypeError, match=match):
        make()


@pytest.mark.parametrize(
    "blocked, call, match",
    [
        (
            "flax.linen",
            lambda: models.from_flax(None),
            "from_flax needs flax: pip install 'jaxhp\\[flax\\]'",
        ),
        (
            "equinox",
            lambda: models.from_equinox(None),
            "needs equinox: pip install 'jaxhp\\[equinox\\]'",
        ),
    ],
)
def test_missing_extra_names_it(monkeypatch, blocked, call, match):
    monkeypatch.setitem(sys.modules, blocked, None)  # import of it now raises ImportError
    with pytest.raises(ImportError, match=match):
        call()


def test_l2_leaves_of_an_equinox_cnn_leave_out_its_conv_bias():
    """eqx.nn.Conv2d keeps its bias as (C, 1, 1): ndim 3, yet a bias, so not penalised."""

    class Net(eqx.Module):
        conv: eqx.nn.Conv2d
        out: eqx.nn.Linear

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.conv = eqx.nn.Conv2d(1, 2, 3, padding=1, key=k1)
            self.out = eqx.nn.Linear(32, 3, key=k2)

        def __call__(self, x, *, key=None, hparams=None):
            return self.out(self.conv(x.transpose(2, 0, 1)).reshape(-1))

    config = jaxhp.TrainConfig(model=models.from_equinox(lambda key: Net(key)), steps=1)
    params = config.model.init(jax.random.key(0))
    assert params.conv.bias.shape == (2, 1, 1)
    assert jaxhp.l2_leaves(config) == [".conv.weight", ".out.weight"]


def test_seeds_of_a_module_instance_warn_that_init_does_not_vary():
    """A module instance gives every key the same init: its seeds differ only in batch
    order and masks, and a std of 0 would read as "no init spread". Seeds of a factory's
    model, and a single seed of an instance, say nothing."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 4)).astype(np.float32), rng.integers(0, 3, 24)
    data = jaxhp.Data((x[:16], y[:16]), (x[16:], y[16:]))
    space = jaxhp.sweep.grid(lambd=[0.0], seeds=2)
    for instance in (NNXNet(4, rngs=nnx.Rngs(0)), EqxNet(4, key=jax.random.key(0))):
        adapt = models.from_flax if isinstance(instance, nnx.Module) else models.from_equinox
        config = jaxhp.TrainConfig(model=adapt(instance), steps=2)
        with pytest.warns(UserWarning, match="2 seeds, but its model's init returns the same"):
            results = jaxhp.run_sweep(space, data, config, progress=False)
        assert np.array_equal(results.history.dev_cost[0], results.history.dev_cost[1])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            jaxhp.run_sweep(jaxhp.sweep.grid(lambd=[0.0]), data, config, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = jaxhp.TrainConfig(model=make_model("nnx"), steps=2)
        jaxhp.run_sweep(space, data, config, progress=False)


def test_an_own_dropout_that_needs_a_key_is_named_before_training():
    """jaxhp evaluates with key=None: a model's own dropout that draws from the key
    unguarded failed deep inside jax.random at the first evaluation."""

    def apply(p, x, *, key=None, hparams=None):
        h = jnp.tanh(x @ p["w"])
        return h * jax.random.bernoulli(key, hparams.keep_prob, h.shape) / hparams.keep_prob

    model = jaxhp.Model(lambda key: {"w": jax.random.normal(key, (4, 3))}, apply)
    rng = np.random.default_rng(0)
    data = jaxhp.Data((rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8)))
    with pytest.raises(TypeError, match="the model's apply fails with key=None, as jaxhp"):
        jaxhp.fit(jax.random.key(0), jaxhp.HParams(), data, jaxhp.TrainConfig(model=model, steps=2))


def test_l2_leaves_of_an_nnx_module_leave_out_its_column_bias():
    """NNX keeps each param in a Variable, so its path ends in .value: the (4, 1) b1 is a
    bias by the name before it, not penalised; W1 and the Linear's kernel are."""

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.W1 = nnx.Param(jax.random.normal(rngs.params(), (4, 3)))
            self.b1 = nnx.Param(jnp.zeros((4, 1)))
            self.lin = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, x, *, key=None, hparams=None):
            return self.lin((self.W1 @ x.T + self.b1).T)

    config = jaxhp.TrainConfig(model=models.from_flax(lambda key: Net(nnx.Rngs(key))), steps=1)
    assert jaxhp.l2_leaves(config) == ["['W1'].value", "['lin']['kernel'].value"]


def test_a_linen_sample_of_the_wrong_kind_is_named():
    """np.ones((1, L)), the usual init idiom, is float: nn.Embed said only 'Input type must
    be an integer or unsigned integer', not that from_flax traced the module on sample_x."""

    class Bag(nn.Module):
        @nn.compact
        def __call__(self, ids):
            return nn.Dense(2)(nn.Embed(5, 3)(ids).mean(axis=1))

    with pytest.raises(ValueError, match=r"integer.*on sample_x, of shape \(1, 4\) and dtype "
                       r"float32: give a batch like the training x"):  # fmt: skip
        models.from_flax(Bag(), np.ones((1, 4), np.float32))
    assert models.from_flax(Bag(), np.ones((1, 4), np.int32)).init(jax.random.key(0))


def test_a_linen_module_that_branches_on_its_input_keeps_jaxs_explanation():
    """``if x.sum() > 0`` at init: JAX's TracerBoolConversionError says what to do; the
    sample_x hint must not replace it (rebuilding that error class from a string broke)."""

    class Branchy(nn.Module):
        @nn.compact
        def __call__(self, x):
            if x.sum() > 0:
                return nn.Dense(2)(x)
            return nn.Dense(2)(-x)

    with pytest.raises(jax.errors.TracerBoolConversionError):
        models.from_flax(Branchy(), np.ones((1, 4), np.float32))
