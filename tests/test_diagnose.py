import jax
import numpy as np
import pytest
from conftest import assert_close

import jaxhp


@pytest.mark.parametrize(
    "train, dev, verdict",
    [
        (0.01, 0.11, "high variance"),
        (0.15, 0.16, "high bias"),
        (0.15, 0.30, "high bias and high variance"),
        (0.005, 0.01, "fine"),
    ],
)
def test_course_cases(train, dev, verdict):
    d = jaxhp.diagnose(train_error=train, dev_error=dev, bayes_error=0.0)
    assert d.verdict == verdict
    assert d.avoidable_bias == pytest.approx(train)
    assert d.variance == pytest.approx(dev - train)


def test_recipe_says_more_data_does_not_fix_bias():
    bias = jaxhp.diagnose(train_error=0.15, dev_error=0.16)
    assert "bigger" in bias.advice[0] and "More data will not fix bias" in bias.advice[0]
    variance = jaxhp.diagnose(train_error=0.01, dev_error=0.11)
    assert "more training data" in variance.advice[0] and "regularise" in variance.advice[0]


def test_train_dev_separates_mismatch_from_variance():
    d = jaxhp.diagnose(train_error=0.01, train_dev_error=0.015, dev_error=0.10)
    assert d.verdict == "data mismatch"
    assert d.variance == pytest.approx(0.005) and d.data_mismatch == pytest.approx(0.085)


def test_threshold_is_adjustable_and_bayes_error_counts():
    assert jaxhp.diagnose(train_error=0.15, dev_error=0.16, bayes_error=0.14).verdict == "fine"
    assert jaxhp.diagnose(train_error=0.03, dev_error=0.035, threshold=0.01).verdict == "high bias"


def test_diagnose_a_train_result():
    data = jaxhp.datasets.load("moons", n_train=100, n_dev=50, n_test=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=50)
    result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(learning_rate=0.3), data, config)
    d = jaxhp.diagnose(result)
    assert d.train_error == pytest.approx(1 - float(result.history.train_accuracy[-1]))


def test_bad_input():
    with pytest.raises(ValueError, match="train_error must be an error rate in \\[0, 1\\]"):
        jaxhp.diagnose(train_error=1.5, dev_error=0.1)
    with pytest.raises(ValueError, match="needs train_error and dev_error"):
        jaxhp.diagnose(train_error=0.1)


def test_learning_curve_equals_separate_training():
    data = jaxhp.datasets.load("moons", n_train=200, n_dev=100, n_test=0, noise=0.3)
    config = jaxhp.TrainConfig(layer_sizes=(2, 16, 1), steps=60, eval_every=20)
    hparams = jaxhp.HParams(lambd=0.3, keep_prob=0.8, learning_rate=0.5)
    key = jax.random.key(2)
    curve = jaxhp.learning_curve(key, hparams, data, config, sizes=[20, 50, 200])
    x, y = data.train
    for i, n in enumerate(curve.sizes):
        alone = jaxhp.fit(key, hparams, jaxhp.Data((x[:n], y[:n]), data.dev), config)
        assert_close(
            jax.tree.map(lambda a: a[i], curve.results.history), alone.history, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            curve.train_error[i], 1 - float(alone.history.train_accuracy[-1]), atol=1e-6
        )
    assert curve.diagnosis.dev_error == pytest.approx(curve.dev_error[-1])


def test_learning_curve_plot_and_errors(tmp_path):
    data = jaxhp.datasets.load("moons", n_train=60, n_dev=30, n_test=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=10)
    curve = jaxhp.learning_curve(jax.random.key(0), jaxhp.HParams(), data, config, [10, 60])
    assert curve.plot(tmp_path / "lc.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="sizes must be ints in \\[1, 60\\]"):
        jaxhp.learning_curve(jax.random.key(0), jaxhp.HParams(), data, config, [0, 100])
    with pytest.raises(ValueError, match="full-batch"):
        jaxhp.learning_curve(
            jax.random.key(0), jaxhp.HParams(), data, config.replace(batch_size=10), [10]
        )


def test_init_probe_he_is_stable_small_random_vanishes(tmp_path):
    probe = jaxhp.init_probe(jax.random.key(0), 50, 256, schemes=("he", ("random", 0.01)))
    he, small = probe.activation_std
    assert 1 / 3 <= he[-1] / he[0] <= 3
    assert small[-1] / small[0] < 1e-6
    assert probe.plot(tmp_path / "probe.png").stat().st_size > 1000
