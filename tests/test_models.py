"""Bring your own model: a plain-JAX CNN swept over lambd x keep_prob x momentum, each
member equal to its standalone fit; its loss checked by grad_check; the built-in MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import assert_close

import jaxhp
from jaxhp import sweep


def _images(m, seed):
    """6x6x1 images of 3 classes: class c has a bright vertical band at columns 2c, 2c+1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, m)
    x = rng.normal(0.0, 0.3, (m, 6, 6, 1))
    for i, c in enumerate(y):
        x[i, :, 2 * c : 2 * c + 2, 0] += 1.0
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def images():
    return jaxhp.Data(_images(48, 0), _images(24, 1))


def small_cnn(activation=jax.nn.relu):
    """A user-written CNN: conv 3x3x4 -> activation -> 2x2 avg pool -> dropout -> dense 3."""

    def init(key):
        k_conv, k_dense = jax.random.split(key)
        return {
            "conv": {
                "w": jax.random.normal(k_conv, (3, 3, 1, 4)) * np.sqrt(2 / 9),
                "b": 0.1 * jnp.ones(4),
            },
            "dense": {
                "w": jax.random.normal(k_dense, (36, 3)) * np.sqrt(2 / 36),
                "b": jnp.zeros(3),
            },
        }

    def apply(params, x, *, key, hparams):
        z = jax.lax.conv_general_dilated(
            x, params["conv"]["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        a = activation(z + params["conv"]["b"][None, None, None, :])
        a = jax.lax.reduce_window(a, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
        a = a.reshape(a.shape[0], -1)
        a = jaxhp.dropout(key, a, hparams.keep_prob)
        return a @ params["dense"]["w"] + params["dense"]["b"][None, :]

    return jaxhp.Model(init, apply)


CNN = small_cnn()


def momentum_sgd(hp):
    return optax.sgd(hp.learning_rate, momentum=hp.momentum)


def test_user_cnn_sweep_members_equal_standalone_fit(images):
    config = jaxhp.TrainConfig(
        model=CNN, steps=12, eval_every=4, batch_size=16, optimizer=momentum_sgd
    )
    space = sweep.grid(lambd=[0.0, 0.5], keep_prob=[0.6, 1.0], momentum=[0.0, 0.9])
    results = jaxhp.run_sweep(
        space, images, config, base=jaxhp.HParams(learning_rate=0.2), progress=False
    )
    assert len(results) == 8 and results.hparams._fields[-1] == "momentum"
    # One compile for all eight standalone runs: hparams are traced, never baked in.
    solo = jax.jit(lambda key, hp: jaxhp.fit(key, hp, images, config))
    for i in range(8):
        hp = jax.tree.map(lambda v: v[i], results.hparams)
        single = solo(sweep.member_key(0, int(results.seeds[i])), hp)
        assert_close(
            jax.tree.map(lambda a: a[i], results.history), single.history, rtol=1e-5, atol=1e-6
        )
        assert results.stop_step[i] == int(single.stop_step)
    assert solo._cache_size() == 1
    # The three axes all matter: the members' histories all differ from one another.
    first = np.asarray(results.history.train_cost[:, 0])
    assert len(np.unique(np.round(first, 5))) == 8
    assert results.meta["l2_leaves"] == ["['conv']['w']", "['dense']['w']"]


def test_fit_of_user_model_minimises_its_documented_loss(images):
    """The recorded train cost is CE of the logits + lambd/(2m) * (||conv w||^2 + ||dense w||^2),
    recomputed here in NumPy from the returned params."""
    config = jaxhp.TrainConfig(model=CNN, steps=6, eval_every=3)
    hp = jaxhp.HParams(lambd=0.7, learning_rate=0.1)
    result = jaxhp.fit(jax.random.key(3), hp, images, config)
    x, y = images.train
    logits = np.asarray(CNN.apply(result.params, x, key=None, hparams=hp), np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ce = -np.mean(log_p[np.arange(len(y)), y])
    squares = sum(
        float(np.sum(np.asarray(result.params[k]["w"], np.float64) ** 2)) for k in ("conv", "dense")
    )
    expected = ce + 0.7 / (2 * len(y)) * squares
    np.testing.assert_allclose(result.history.train_cost[-1], expected, rtol=1e-5, atol=1e-6)


def test_l2_selection_by_pattern_and_function(images):
    both = jaxhp.TrainConfig(model=CNN, steps=1)
    assert jaxhp.l2_leaves(both) == ["['conv']['w']", "['dense']['w']"]
    dense_only = both.replace(l2="dense")
    assert jaxhp.l2_leaves(dense_only) == ["['dense']['b']", "['dense']['w']"]
    by_function = both.replace(l2=lambda name, leaf: name.endswith("['b']"))
    assert jaxhp.l2_leaves(by_function) == ["['conv']['b']", "['dense']['b']"]
    params = CNN.init(jax.random.key(0))
    x, y = images.train
    hp = jaxhp.HParams(lambd=2.0)
    bias_squares = float(jnp.sum(params["conv"]["b"] ** 2) + jnp.sum(params["dense"]["b"] ** 2))
    gap = jaxhp.model_loss(by_function, params, x, y, hparams=hp) - jaxhp.model_loss(
        by_function, params, x, y, hparams=hp._replace(lambd=0.0)
    )
    np.testing.assert_allclose(gap, 2.0 / (2 * len(y)) * bias_squares, rtol=1e-5, atol=2e-7)


def test_grad_check_of_a_user_models_loss(images):
    """jax.grad of the CNN's loss (with dropout under a fixed key, and L2) agrees with finite
    differences; a smooth activation keeps the check away from ReLU kinks."""
    config = jaxhp.TrainConfig(model=small_cnn(jnp.tanh), steps=1)
    params = config.model.init(jax.random.key(1))
    x, y = (a[:6] for a in images.train)
    hp = jaxhp.HParams(lambd=0.3, keep_prob=0.7)

    def loss(params, x, y):
        return jaxhp.model_loss(config, params, x, y, hparams=hp, key=jax.random.key(5))

    report = jaxhp.grad_check(loss, params, x, y)
    assert report.verdict == "great", str(report)


def test_mlp_model_equals_layer_sizes_shorthand():
    data = jaxhp.datasets.load("moons", n_train=40, n_dev=20, n_test=0, noise=0.2)
    short = jaxhp.TrainConfig(layer_sizes=(2, 6, 1), steps=8, eval_every=4)
    full = jaxhp.TrainConfig(model=jaxhp.models.mlp((2, 6, 1)), steps=8, eval_every=4)
    assert short.resolved_model is full.model  # cached: one program for both
    hp = jaxhp.HParams(keep_prob=0.8, learning_rate=0.3)
    assert_close(jaxhp.fit(0, hp, data, short), jaxhp.fit(0, hp, data, full), rtol=0)


def test_learning_curve_of_a_user_model(images):
    """Each size of the curve equals a fit on that prefix of the training set (dropout masks
    are indexed by row, so a prefix of rows sees a prefix of the masks)."""
    config = jaxhp.TrainConfig(model=CNN, steps=4, eval_every=2)
    hp = {"keep_prob": 0.8, "learning_rate": 0.2}
    curve = jaxhp.learning_curve(jax.random.key(2), hp, images, config, [12, 48])
    x, y = images.train
    prefix = jaxhp.fit(jax.random.key(2), hp, jaxhp.Data((x[:12], y[:12]), images.dev), config)
    assert_close(
        jax.tree.map(lambda a: a[0], curve.results.history), prefix.history, rtol=1e-5, atol=1e-6
    )


def test_cnn_refuses_images_of_another_layout_with_the_same_size():
    # (m, 3, 8, 8) or (m, 4, 16, 3) reshape to (m, 8, 8, 3) without complaint, pixels and
    # channels scrambled; NHWC and flat rows are the two layouts the docstring allows.
    model = jaxhp.models.cnn((8, 8, 3), channels=(2,), dense=(4,))
    params = model.init(jax.random.key(0))
    nhwc = np.random.default_rng(0).normal(size=(5, 8, 8, 3)).astype(np.float32)
    want = model.apply(params, nhwc, key=None, hparams=jaxhp.HParams())
    flat = model.apply(params, nhwc.reshape(5, -1), key=None, hparams=jaxhp.HParams())
    assert np.array_equal(np.asarray(want), np.asarray(flat))
    with pytest.raises(
        ValueError, match=r"channels-first \(NCHW\): pass x.transpose\(0, 2, 3, 1\)"
    ):
        model.apply(params, nhwc.transpose(0, 3, 1, 2), key=None, hparams=jaxhp.HParams())
    with pytest.raises(ValueError, match=r"x must be \(m, 8, 8, 3\) or flat \(m, 192\)$"):
        model.apply(params, nhwc.reshape(5, 4, 16, 3), key=None, hparams=jaxhp.HParams())


def test_course_style_column_biases_are_not_penalised():
    """The course keeps b1 as an (n, 1) column: 2-D, yet a bias by its name, as are ``b``
    and ``*bias``; a capital ``B`` (a low-rank factor, say) is a weight and is penalised."""
    rng = np.random.default_rng(0)
    shapes = {"W1": (4, 2), "b1": (4, 1), "W2": (1, 4), "b2": (1, 1), "B": (2, 2)}
    shapes |= {"conv_bias": (3, 1, 1), "b": (2, 1)}
    params = {k: jnp.asarray(rng.normal(size=s), jnp.float32) for k, s in shapes.items()}

    def apply(p, x, *, key=None, hparams=None):
        return (p["W2"] @ jax.nn.relu(p["W1"] @ x.T + p["b1"]) + p["b2"]).T

    config = jaxhp.TrainConfig(model=jaxhp.Model(lambda key: params, apply), steps=1)
    assert jaxhp.l2_leaves(config) == ["['B']", "['W1']", "['W2']"]
    x, y = rng.normal(size=(5, 2)).astype(np.float32), np.array([0, 1, 1, 0, 1])
    hp = jaxhp.HParams(lambd=3.0)
    with_l2 = jaxhp.model_loss(config, params, x, y, hparams=hp)
    without = jaxhp.model_loss(config, params, x, y, hparams=jaxhp.HParams(lambd=0.0))
    squares = sum(np.sum(np.asarray(params[k], np.float64) ** 2) for k in ("W1", "W2", "B"))
    assert_close(with_l2 - without, 3.0 / (2 * 5) * squares, rtol=1e-5)
