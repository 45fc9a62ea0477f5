import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import assert_close

import jaxhp
from jaxhp import learning
from jaxhp.diagnose import majority_error


# The course's cases (COURSE.md point 3) with their gaps written out by hand.
@pytest.mark.parametrize(
    "train, dev, bias, variance, verdict",
    [
        (0.01, 0.11, 0.01, 0.10, "high variance"),
        (0.15, 0.16, 0.15, 0.01, "high bias"),
        (0.15, 0.30, 0.15, 0.15, "high bias and high variance"),
        (0.005, 0.01, 0.005, 0.005, "fine"),
    ],
)
def test_course_cases(train, dev, bias, variance, verdict):
    d = jaxhp.diagnose(train_error=train, dev_error=dev, bayes_error=0.0)
    assert d.verdict == verdict
    assert d.avoidable_bias == pytest.approx(bias, abs=1e-12)
    assert d.variance == pytest.approx(variance, abs=1e-12)


def test_human_level_error_as_bayes_error_moves_the_verdict():
    # Train 8%, dev 12%: against 0% the bias (8%) is high; against a human level of 7.5%
    # the avoidable bias is 0.5% and only the 4% variance is high.
    assert jaxhp.diagnose(train_error=0.08, dev_error=0.12, bayes_error=0.0).verdict == (
        "high bias and high variance"
    )
    d = jaxhp.diagnose(train_error=0.08, dev_error=0.12, bayes_error=0.075)
    assert d.verdict == "high variance"
    assert d.avoidable_bias == pytest.approx(0.005, abs=1e-12)
    assert d.variance == pytest.approx(0.04, abs=1e-12)


def test_output_states_the_assumed_bayes_error():
    default = str(jaxhp.diagnose(train_error=0.15, dev_error=0.16))
    assert "assumed Bayes error 0.00% (the default" in default
    given = jaxhp.diagnose(train_error=0.15, dev_error=0.16, bayes_error=0.075)
    assert "assumed Bayes error 7.50%" in str(given) and "the default" not in str(given)
    assert (
        given.bayes_error_given
        and not jaxhp.diagnose(train_error=0.1, dev_error=0.1).bayes_error_given
    )


def test_negative_variance_reads_as_about_zero_with_a_note():
    d = jaxhp.diagnose(train_error=0.10, dev_error=0.09, bayes_error=0.09)
    assert d.variance == pytest.approx(-0.01, abs=1e-12)  # the measured gap is kept
    text = str(d)
    assert "variance about 0" in text and "-1.00%" not in text
    assert "dev error is 1.00% below train error" in text
    assert d.verdict == "fine"
    mismatch = jaxhp.diagnose(
        train_error=0.05, train_dev_error=0.08, dev_error=0.06, bayes_error=0.04
    )
    assert mismatch.verdict == "high variance"
    assert "data mismatch about 0" in str(mismatch)
    assert "dev error is 2.00% below train-dev error" in str(mismatch)


def test_bayes_error_above_train_error_warns():
    with pytest.warns(UserWarning, match="bayes_error 12.00% is above train_error 10.00%"):
        d = jaxhp.diagnose(train_error=0.10, dev_error=0.11, bayes_error=0.12)
    assert "avoidable bias about 0" in str(d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same call below Bayes error stays quiet
        jaxhp.diagnose(train_error=0.13, dev_error=0.14, bayes_error=0.12)


def test_chance_level_is_not_learning_before_any_bias_verdict():
    # Stuck at chance, the bias reading (49%) would say "use a bigger network"; without a
    # chance level, a note says that 49% may be guessing, and how to tell.
    unknown = jaxhp.diagnose(train_error=0.49, dev_error=0.50)
    assert unknown.verdict == "high bias"
    (note,) = unknown.notes
    assert "49.00% is as high as guessing" in note and "chance_error=majority_error" in note
    assert not jaxhp.diagnose(train_error=0.40, dev_error=0.50).notes  # learnt something
    d = jaxhp.diagnose(train_error=0.49, dev_error=0.50, chance_error=0.5)
    # not "learning rate too high": a run with dead units sits at chance with a finite,
    # smoothly falling cost, and a lower learning rate does not help it
    assert d.verdict == "not learning (train error at chance level)"
    assert d.problems == ("not learning",) and len(d.advice) == 1
    assert "lower the learning rate" in d.advice[0] and "train longer" in d.advice[0]
    assert "dead" in d.advice[0] and "other seeds" in d.advice[0]
    assert "bigger" not in str(d) and "not assessed" in str(d)
    assert "train error 49.00% is at chance level (50.00%)" in str(d)
    # Rare positives (chance 3%): 1.1% has cut the errors by two thirds, which is learning
    # (the course's reading: bias 0.6 and variance 0.1 points, fine); 2.8% has not.
    rare = dict(dev_error=0.012, chance_error=0.03, bayes_error=0.005)
    assert jaxhp.diagnose(train_error=0.011, **rare).verdict == "fine"
    assert jaxhp.diagnose(train_error=0.028, **rare).problems == ("not learning",)
    # Three classes (chance 2/3): 60% error has learnt something; 66% has not.
    three = dict(dev_error=0.7, chance_error=2 / 3)
    assert jaxhp.diagnose(train_error=0.60, **three).verdict == "high bias and high variance"
    assert jaxhp.diagnose(train_error=0.66, **three).problems == ("not learning",)
    # a diverged run is that, whatever its error
    d = jaxhp.diagnose(train_error=0.49, dev_error=0.50, chance_error=0.5, diverged=True)
    assert d.problems == ("diverging",) and "non-finite" in d.advice[0]
    # A task whose Bayes error is itself near chance is not a failed run.
    noisy = jaxhp.diagnose(train_error=0.49, dev_error=0.5, chance_error=0.5, bayes_error=0.485)
    assert noisy.verdict == "fine"


def test_diverged_flag_and_non_finite_costs_give_diverging():
    d = jaxhp.diagnose(train_error=0.02, dev_error=0.03, diverged=True)
    assert d.verdict == "learning rate too high / diverging"
    history = jaxhp.History(
        step=np.array([10, 20]),
        train_cost=np.array([0.5, 0.4]),
        train_accuracy=np.array([0.8, 0.9]),
        dev_cost=np.array([0.6, np.inf]),
        dev_accuracy=np.array([0.8, 0.85]),
    )
    result = jaxhp.TrainResult(None, None, history, 20, np.bool_(False), 10)
    assert jaxhp.diagnose(result).problems == ("diverging",)
    finite = history._replace(dev_cost=np.array([0.6, 0.5]))
    d = jaxhp.diagnose(result._replace(history=finite))
    assert d.train_error == pytest.approx(0.1) and d.dev_error == pytest.approx(0.15)
    assert d.verdict == "high bias and high variance"  # 10% and 5% against Bayes 0


def test_a_run_that_never_had_a_finite_evaluation_says_the_start_may_be_the_cause():
    history = jaxhp.History(*(np.array(v) for v in ([10, 20], *[[np.nan, np.nan]] * 4)))
    result = jaxhp.TrainResult(None, None, history, 0, np.bool_(True), 0)
    (note,) = jaxhp.diagnose(result).notes
    assert "before its first evaluation" in note and "finite_at_start" in note
    measured = history._replace(train_cost=np.array([0.5, np.nan]))
    measured = measured._replace(dev_cost=measured.train_cost)
    measured = measured._replace(train_accuracy=np.array([0.8, np.nan]))
    measured = measured._replace(dev_accuracy=np.array([0.7, np.nan]))
    (note,) = jaxhp.diagnose(result._replace(history=measured, stop_step=10)).notes
    assert note == "the run diverged (its cost became non-finite)"


def test_a_result_without_dev_data_is_refused_not_read_as_zero_variance():
    """fit without dev data records the training set's metrics as dev_*: a diagnosis would
    read a variance of exactly 0."""
    data = jaxhp.datasets.load("moons", n_train=60, n_dev=0, n_test=0, noise=0.2)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=20, eval_every=10)
    result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(), jaxhp.Data(data.train), config)
    assert data.dev is None
    with pytest.raises(ValueError, match=r"dev history repeats its train history .*Data\(train"):
        jaxhp.diagnose(result)
    with_dev = jaxhp.Data(data.train, (data.train[0][:30], data.train[1][:30]))
    jaxhp.diagnose(jaxhp.fit(jax.random.key(0), jaxhp.HParams(), with_dev, config))  # reads


def test_majority_error_is_the_chance_level():
    assert majority_error(np.array([0, 0, 0, 1])) == pytest.approx(0.25)
    assert majority_error(np.eye(3)[[0, 1, 2, 2, 2]]) == pytest.approx(0.4)


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


def _result_with_accuracies(train, dev):
    """A one-run TrainResult whose last evaluation has these float32 accuracies."""
    f32 = lambda v: np.asarray([v], np.float32)  # noqa: E731
    history = jaxhp.History(np.asarray([100]), f32(0.1), f32(train), f32(0.2), f32(dev))
    return jaxhp.TrainResult(None, None, history, np.int32(100), np.bool_(False), np.int32(100))


@pytest.mark.parametrize("n", [100, 1000])
def test_a_gap_of_exactly_the_threshold_is_not_high_whatever_the_rounding(n):
    # every pair below has dev error - train error = 2% exactly, counted in examples: the
    # float32 accuracies round the gap to 0.0199999 or 0.0200001, it must not matter
    hits = range(n // 10, n - n // 50 + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor does a Bayes error equal to the train error warn
        for train_hits in hits:
            dev_hits = train_hits - n // 50
            d = jaxhp.diagnose(
                _result_with_accuracies(train_hits / n, dev_hits / n),
                bayes_error=1 - train_hits / n,
            )
            assert "high variance" not in d.problems, (train_hits, dev_hits, d.variance)
    # plain floats: 0.07 - 0.05 is 0.020000000000000004
    assert jaxhp.diagnose(train_error=0.07, dev_error=0.09, bayes_error=0.05).verdict == "fine"
    # and one example more is high
    d = jaxhp.diagnose(_result_with_accuracies(0.97, 0.95 - 1 / n), bayes_error=0.03)
    assert d.verdict == "high variance"


def test_diagnose_a_train_result():
    data = jaxhp.datasets.load("moons", n_train=100, n_dev=50, n_test=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=50)
    result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(learning_rate=0.3), data, config)
    d = jaxhp.diagnose(result)
    x, y = data.train
    train_accuracy = np.mean(np.asarray(jaxhp.predict(result.params, x)) == y)
    assert d.train_error == pytest.approx(1 - train_accuracy, abs=1e-6)
    # The case: a learning rate of 1000 must not be told to use a bigger network.
    wild = jaxhp.fit(jax.random.key(0), jaxhp.HParams(learning_rate=1e3), data, config)
    d = jaxhp.diagnose(wild, chance_error=majority_error(data.dev[1]))
    assert d.verdict == "learning rate too high / diverging"
    # its error rates are those of the params it returns: the last finite evaluation's
    train_accuracy = np.mean(np.asarray(jaxhp.predict(wild.params, x)) == y)
    assert d.train_error == pytest.approx(1 - train_accuracy, abs=1e-6)
    # diverged at its only evaluation: nothing measured, and the text says so (not "nan%")
    once = config.replace(eval_every=50)
    first = jaxhp.fit(jax.random.key(0), jaxhp.HParams(learning_rate=1e30), data, once)
    d = jaxhp.diagnose(first)
    assert d.verdict == "learning rate too high / diverging" and np.isnan(d.train_error)
    assert str(d).startswith("train and dev error not measured")


def test_diagnose_reads_the_evaluation_of_the_params_a_result_returns():
    """Under restore_best the params returned are the best evaluation's, not the last's:
    the error rates must be theirs (predicted here from the params, on both sets)."""
    data = jaxhp.datasets.load("moons", n_train=40, n_dev=200, n_test=0, noise=0.35)
    config = jaxhp.TrainConfig(
        layer_sizes=(2, 32, 32, 1), steps=1500, eval_every=50, patience=4, restore_best=True
    )
    result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(learning_rate=0.5), data, config)
    assert int(result.best_step) < int(result.stop_step)  # the case: best before the end
    # and a run that also diverged: it still returns the best params, not the last finite
    blow_up = lambda hp: optax.sgd(optax.piecewise_constant_schedule(0.3, {600: 1e5}))  # noqa: E731
    both = config.replace(patience=None, eval_every=10, optimizer=blow_up)
    diverged = jaxhp.fit(jax.random.key(0), jaxhp.HParams(), data, both)
    assert bool(diverged.diverged) and int(diverged.best_step) < int(diverged.stop_step) - 10
    for run in (result, diverged):
        d = jaxhp.diagnose(run)
        for (x, y), error in ((data.train, d.train_error), (data.dev, d.dev_error)):
            accuracy = np.mean(np.asarray(jaxhp.predict(run.params, x)) == y)
            assert error == pytest.approx(1 - accuracy, abs=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="train_error must be an error rate in \\[0, 1\\]"):
        jaxhp.diagnose(train_error=1.5, dev_error=0.1)
    with pytest.raises(ValueError, match="needs train_error and dev_error"):
        jaxhp.diagnose(train_error=0.1)
    # the same range as the CLI's --bayes-error: [0, 1)
    for bad in (1.0, 5, -0.1):  # one range, said the same way for every bad value
        with pytest.raises(ValueError, match=r"bayes_error must be an error rate in \[0, 1\), "):
            jaxhp.diagnose(train_error=0.1, dev_error=0.2, bayes_error=bad)


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
    assert "assumed Bayes error 0.00% (the default" in str(curve.diagnosis)
    # a curve whose runs diverge is returned, and its diagnosis says so (was a ValueError on
    # the NaN errors, after the training)
    blown = jaxhp.learning_curve(
        jax.random.key(0), jaxhp.HParams(learning_rate=1e30), data, config, [10, 60]
    )
    assert np.isnan(blown.dev_error).all()
    assert blown.diagnosis.verdict == "learning rate too high / diverging"
    with pytest.raises(ValueError, match="sizes must be whole numbers in \\[1, 60\\], got 0"):
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
    # backward too: He keeps the weight gradients' scale over 50 layers (a read-out shared
    # by all examples grew it 28x), small random weights let it vanish
    he, small = probe.grad_norm
    assert np.all((1 / 3 <= he / he[0]) & (he / he[0] <= 3)), he
    assert small[-1] < 1e-6 * he[-1]
    assert probe.plot(tmp_path / "probe.png").stat().st_size > 1000


def test_references_are_checked_and_a_chance_level_bayes_error_is_said():
    with pytest.raises(ValueError, match=r"threshold must be a gap .* in \(0, 1\), e.g. 0.02"):
        jaxhp.diagnose(train_error=0.05, dev_error=0.3, threshold=2)  # meant 2%
    # a Bayes error above guessing cannot be: read as the chance error, with a note (a small
    # dev set's chance error can sample below a generator's true Bayes error)
    with pytest.warns(UserWarning, match="above train_error"):
        high = jaxhp.diagnose(train_error=0.4, dev_error=0.45, bayes_error=0.7, chance_error=0.5)
    assert high.bayes_error == 0.5 and "the best possible classifier never does worse" in str(high)
    # labels that carry nothing: the verdict's gaps are the model fitting noise, and it says so
    with pytest.warns(UserWarning, match="bayes_error 50.00% is above train_error 30.00%"):
        noise = jaxhp.diagnose(train_error=0.3, dev_error=0.5, bayes_error=0.5, chance_error=0.5)
    assert "the Bayes error 50.00% is at chance level (50.00%)" in str(noise)
    fair = jaxhp.diagnose(train_error=0.3, dev_error=0.5, bayes_error=0.2, chance_error=0.5)
    assert "chance level" not in str(fair)
    # nor when no Bayes error was given (0 assumed) and guessing is nearly perfect
    tiny = jaxhp.diagnose(train_error=0.0, dev_error=0.01, chance_error=0.01)
    assert "chance level" not in str(tiny)
    # a diverged run's NaN errors, as JAX or NumPy scalars, are "not measured"
    for nan in (jnp.float32(jnp.nan), np.array(np.nan), float("nan")):
        d = jaxhp.diagnose(train_error=nan, dev_error=nan, diverged=True)
        assert d.verdict == "learning rate too high / diverging"
    with pytest.raises(ValueError, match="y must be finite labels: 1 are not"):
        majority_error([np.nan, 1, 1])


def test_learning_curve_refuses_bad_sizes_and_references_before_training(monkeypatch):
    data = jaxhp.datasets.load("moons", n_train=60, n_dev=30, n_test=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=10)
    monkeypatch.setattr(learning, "fit", lambda *a, **k: pytest.fail("trained"))
    cases = [
        ({"sizes": [50.7, 60]}, ValueError, r"whole numbers in \[1, 60\], got 50.7"),
        ({"sizes": [True, 60]}, TypeError, r"sizes must be numbers, got True"),
        ({"sizes": [float("nan")]}, ValueError, r"whole numbers in \[1, 60\], got nan"),
        ({"sizes": ["a"]}, TypeError, r"sizes must be numbers, got 'a'"),
        ({"sizes": 60}, TypeError, "sizes must be a sequence of training-set sizes, got 60"),
        ({"sizes": "60"}, TypeError, "sizes must be a sequence of training-set sizes"),
        ({"sizes": []}, ValueError, "at least one size"),
        ({"sizes": [60], "bayes_error": -0.1}, ValueError, "bayes_error must be an error rate"),
        ({"sizes": [60], "threshold": 0}, ValueError, "threshold must be a gap"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            jaxhp.learning_curve(jax.random.key(0), jaxhp.HParams(), data, config, **kwargs)
    assert learning._check_sizes(jnp.array([60, 10]), 60).tolist() == [10, 60]
    assert learning._check_sizes({30.0, 10}, 60).tolist() == [10, 30]
