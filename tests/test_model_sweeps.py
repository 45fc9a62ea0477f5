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
