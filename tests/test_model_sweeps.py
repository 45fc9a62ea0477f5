"""Flax (linen, NNX), Equinox and built-in CNN models swept by run_sweep: each member equals
its standalone fit. These need the open engine (``TrainConfig(model=...)``, issue #13) and
skip without it."""

import dataclasses
import warnings
from pathlib import Path

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from flax import nnx

import jaxhp
from jaxhp import augment, models, sweep

if "model" not in {field.name for field in dataclasses.fields(jaxhp.TrainConfig)}:
    pytest.skip(
        "needs the open engine: TrainConfig(model=...) (issue #13)", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parents[1]
N_IN, N_OUT, HIDDEN = 8, 3, 16


@pytest.fixture(scope="module")
def features():
    """100 train and 50 dev rows of 8 features, 3 classes from a noisy linear teacher."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((150, N_IN)).astype(np.float32)
    y = np.argmax(
        x @ rng.standard_normal((N_IN, N_OUT)) + 0.5 * rng.standard_normal((150, N_OUT)), 1
    )
    y = y.astype(np.int32)
    return jaxhp.Data(train=(x[:100], y[:100]), dev=(x[100:], y[100:]))


@pytest.fixture(scope="module")
def digits():
    return jaxhp.datasets.load("digits", n_train=100, n_dev=50, n_test=0)


def _member(results, i):
    return jax.tree.map(lambda a: a[i], results.hparams)


def _assert_members_equal_fit(results, data, config):
    """The first and the last member (one compiled fit serves both)."""
    for i in sorted({0, len(results) - 1}):
        key = sweep.member_key(results.meta["seed"], int(results.seeds[i]))
        single = jaxhp.fit(key, _member(results, i), data, config)
        history = jax.tree.map(lambda a: a[i], results.history)
        assert_close(history, single.history, rtol=1e-5, atol=1e-6)
        assert results.stop_step[i] == int(single.stop_step)


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, *, key=None, hparams=None):
        h = jnp.tanh(nn.Dense(HIDDEN)(x))
        if key is not None:
            h = jaxhp.dropout(key, h, hparams.keep_prob)
        return nn.Dense(N_OUT)(h)


class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(N_IN, HIDDEN, rngs=rngs)
        self.out = nnx.Linear(HIDDEN, N_OUT, rngs=rngs)

    def __call__(self, x, *, key=None, hparams=None):
        h = jnp.tanh(self.hidden(x))
        if key is not None:
            h = jaxhp.dropout(key, h, hparams.keep_prob)
        return self.out(h)


class EqxNet(eqx.Module):
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.hidden = eqx.nn.Linear(N_IN, HIDDEN, key=k1)
        self.out = eqx.nn.Linear(HIDDEN, N_OUT, key=k2)

    def __call__(self, x, *, key=None, hparams=None):  # one example, Equinox-style
        h = jnp.tanh(self.hidden(x))
        if key is not None:
            h = jaxhp.dropout(key, h, hparams.keep_prob)
        return self.out(h)


def _framework_model(kind):
    if kind == "linen":
        return models.from_flax(LinenNet(), jnp.zeros((1, N_IN)))
    if kind == "nnx":
        return models.from_flax(lambda key: NNXNet(nnx.Rngs(key)))
    return models.from_equinox(lambda key: EqxNet(key))


@pytest.mark.parametrize("kind", ["linen", "nnx", "equinox"])
def test_framework_module_sweep_equals_standalone_fit(features, kind):
    config = jaxhp.TrainConfig(model=_framework_model(kind), steps=20, eval_every=10)
    space = sweep.grid(lambd=[0.0, 0.5], keep_prob=[0.6, 1.0])
    results = jaxhp.run_sweep(space, features, config, progress=False)
    assert len(results) == 4
    _assert_members_equal_fit(results, features, config)
    # keep_prob reached the module: the two keep_prob values give different histories.
    cost = np.asarray(results.history.train_cost)
    assert not np.allclose(cost[0], cost[1])


def test_digits_cnn_sweep_with_augmentation_in_the_scan(digits):
    batches = []

    def crop(key, x):
        batches.append(x.shape)  # runs while tracing: the op is part of the program
        return augment.random_crop(key, x, padding=1)

    cnn = models.cnn((8, 8, 1), channels=(4,), dense=(10,))
    config = jaxhp.TrainConfig(model=cnn, steps=20, batch_size=50, eval_every=10, augment=crop)
    space = sweep.grid(lambd=[0.0, 1.0], keep_prob=[0.7, 1.0])
    results = jaxhp.run_sweep(space, digits, config, progress=False)
    assert batches and set(batches) == {(50, 8, 8, 1)}  # training batches, NHWC
    _assert_members_equal_fit(results, digits, config)
    assert np.all(np.isfinite(results.history.train_cost))


def test_keep_prob_axis_over_a_module_without_dropout_warns(features):
    class NoDropout(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(N_OUT)(x)

    config = jaxhp.TrainConfig(
        model=models.from_flax(NoDropout(), jnp.zeros((1, N_IN))), steps=5, eval_every=5
    )
    with pytest.warns(UserWarning, match=r"'keep_prob' does nothing.*jaxhp.dropout\(key, a, hp"):
        jaxhp.run_sweep(sweep.grid(keep_prob=[0.5, 1.0]), features, config, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a lambd axis is read by the loss: no warning
        jaxhp.run_sweep(sweep.grid(lambd=[0.0, 1.0]), features, config, progress=False)


# ---- integer inputs: ids for an embedding ---------------------------------------------
VOCAB, LENGTH, WIDTH = 12, 4, 3


def _bag_params(key):
    k1, k2 = jax.random.split(key)
    return {"E": jax.random.normal(k1, (VOCAB, WIDTH)), "w": jax.random.normal(k2, (WIDTH, 1))}


def _bag_of_ids(p, ids, *, key, hparams):
    """An embedding looked up by integer ids (m, LENGTH): indexing needs integers."""
    return jnp.mean(p["E"][ids], axis=1) @ p["w"]


def _bag_of_one_hots(p, x, *, key, hparams):
    """The same model on one-hot floats (m, LENGTH, VOCAB): one_hot(ids) @ E == E[ids]."""
    return jnp.mean(x @ p["E"], axis=1) @ p["w"]


@pytest.fixture(scope="module")
def ids():
    rng = np.random.default_rng(3)
    x = rng.integers(0, VOCAB, size=(90, LENGTH)).astype(np.int32)
    y = (np.sum(x < VOCAB // 2, axis=1) > LENGTH // 2).astype(np.int32)
    return jaxhp.Data(train=(x[:60], y[:60]), dev=(x[60:], y[60:]))


def test_integer_ids_reach_an_embedding_and_train_as_its_one_hot_twin(ids):
    """input_dtype='int32' hands the ids to the model as integers (cast to float32, an
    embedding cannot index with them: refused, naming the option). Reference: the same
    model written as one-hot floats times E, an independent route to the same numbers."""
    embed = jaxhp.TrainConfig(
        model=jaxhp.Model(_bag_params, _bag_of_ids), steps=40, eval_every=10, input_dtype="int32"
    )
    with pytest.raises((TypeError, ValueError), match=r"input_dtype='int32'\) keeps them"):
        jaxhp.fit(0, jaxhp.HParams(learning_rate=0.5), ids, embed.replace(input_dtype=None))
    one_hot = jaxhp.Data(
        *((np.eye(VOCAB, dtype=np.float32)[x], y) for x, y in (ids.train, ids.dev))
    )
    twin = jaxhp.TrainConfig(
        model=jaxhp.Model(_bag_params, _bag_of_one_hots), steps=40, eval_every=10
    )
    space = sweep.grid(learning_rate=[0.3, 1.0], lambd=[0.0, 0.5])
    swept = jaxhp.run_sweep(space, ids, embed, progress=False)
    reference = jaxhp.run_sweep(space, one_hot, twin, progress=False)
    assert_close(swept.history.dev_cost, reference.history.dev_cost, rtol=1e-5)
    assert_close(swept.history.train_cost, reference.history.train_cost, rtol=1e-5)
    assert swept.history.dev_cost[0, -1] < 0.9 * swept.history.dev_cost[0, 0]  # it learns
    # successive halving carries the ids through its rungs: a survivor is the full sweep's
    halved = jaxhp.run_sweep(space, ids, embed, progress=False, schedule=sweep.halving(2, 10))
    survivor = int(np.argmax(halved.rung))
    np.testing.assert_array_equal(
        halved.history.dev_cost[survivor], swept.history.dev_cost[survivor]
    )


def test_ids_above_float32s_integers_stay_exact():
    """float32 holds integers exactly only up to 2**24: 2**24 + 1 became 2**24 (odd became
    even). An int32 input keeps it on every path that trains; a model that reads the
    parity then scores 100% (50% where any path goes through float32)."""
    x = (2**24 + np.arange(40)).astype(np.int32)[:, None]
    y = (x[:, 0] % 2).astype(np.int32)

    def apply(p, x, *, key, hparams):
        sign = (x[:, :1] % 2) * 2 - 1  # +1 for odd ids, -1 for even
        return sign * p["s"][None, :]

    model = jaxhp.Model(lambda key: {"s": jnp.ones(1)}, apply)
    config = jaxhp.TrainConfig(model=model, steps=1, l2="s", input_dtype="int32")
    data = jaxhp.Data((x, y), (x[::-1], y[::-1]))
    result = jaxhp.fit(0, jaxhp.HParams(), data, config)
    assert float(result.history.train_accuracy[0]) == 1.0
    swept = jaxhp.run_sweep(sweep.grid(lambd=[0.0, 0.1]), data, config, progress=False)
    np.testing.assert_array_equal(swept.history.dev_accuracy[:, 0], [1.0, 1.0])
    refitted = sweep.refit(swept, 1, data, config)
    assert float(refitted.history.dev_accuracy[0]) == 1.0
    curve = jaxhp.learning_curve(0, jaxhp.HParams(), data, config, sizes=[20, 40])
    np.testing.assert_array_equal(curve.train_error, [0.0, 0.0])
    predicted = jaxhp.model_predict(config, refitted.params, x)  # as training gave x
    np.testing.assert_array_equal(predicted, y)


def test_all_diverged_on_large_ids_does_not_advise_normalising_them(ids):
    """Ids up to 999 are not features 'reaching 999' to standardise: only the learning
    rate is advised."""
    big = jaxhp.Data(*((x * 90, y) for x, y in (ids.train, ids.dev)))
    config = jaxhp.TrainConfig(
        model=jaxhp.Model(lambda key: {"E": jnp.ones((1000, 3)), "w": jnp.ones((3, 1))},
                          _bag_of_ids), steps=5, input_dtype="int32",
    )  # fmt: skip
    with pytest.warns(UserWarning, match="every member of the sweep diverged") as said:
        jaxhp.run_sweep(sweep.grid(learning_rate=[1e30]), big, config, progress=False)
    (text,) = [str(w.message) for w in said if "diverged" in str(w.message)]
    assert "Lower the learning rate" in text and "normalise" not in text
