import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import assert_close

import jaxhp


@pytest.fixture(scope="module")
def moons():
    return jaxhp.datasets.load("moons", n_train=200, n_dev=100, n_test=0, noise=0.2)


def test_course_initialisation_zeros_vs_he():
    # COURSE.md reference: circles, 300 train / 100 test, [2, 10, 5, 1], lr 0.01, GD.
    data = jaxhp.datasets.load("circles", n_train=300, n_dev=100, n_test=0, noise=0.05)
    hparams = jaxhp.HParams(learning_rate=0.01)
    base = jaxhp.TrainConfig(layer_sizes=(2, 10, 5, 1), steps=15000, eval_every=1000)
    zeros = jaxhp.fit(jax.random.key(1), hparams, data, base.replace(init="zeros"))
    assert abs(float(zeros.history.train_accuracy[-1]) - 0.5) <= 0.05
    np.testing.assert_allclose(zeros.history.train_cost, np.log(2), atol=1e-3)
    he = jaxhp.fit(jax.random.key(1), hparams, data, base.replace(init="he"))
    assert float(he.history.train_accuracy[-1]) >= 0.95


def test_larger_lambda_gives_smaller_weights(moons):
    config = jaxhp.TrainConfig(layer_sizes=(2, 20, 3, 1), steps=600)
    norms = []
    for lambd in (0.0, 0.5, 5.0):
        result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(lambd, 1.0, 0.3), moons, config)
        norms.append(sum(float(jnp.sum(p.W**2)) for p in result.params))
    assert norms[0] > norms[1] > norms[2]


def test_sgd_l2_step_is_weight_decay(key):
    # W_new(lambd) = (1 - lr * lambd / m) W - lr * g  =  W_new(0) - lr * lambd / m * W.
    sizes, m, lr, lambd = (3, 5, 1), 30, 0.1, 2.0
    params = jaxhp.init_mlp(key, sizes)
    x = jax.random.normal(key, (m, 3))
    y = (x[:, 0] > 0).astype(jnp.int32)
    config = jaxhp.TrainConfig(layer_sizes=sizes, steps=1)
    step = jaxhp.make_update_step(config)
    state = jaxhp.init_state(params, config)
    with_l2, _ = step(state, x, y, key, jaxhp.HParams(lambd, 1.0, lr))
    without, _ = step(state, x, y, key, jaxhp.HParams(0.0, 1.0, lr))
    for new, base, old in zip(with_l2.params, without.params, params):
        assert_close(new.W, base.W - lr * lambd / m * old.W, rtol=1e-5, atol=1e-7)
        assert_close(new.b, base.b, rtol=1e-6)


def test_learning_rate_change_does_not_recompile(key):
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=1)
    step = jaxhp.make_update_step(config)
    state = jaxhp.init_state(jaxhp.init_mlp(key, (2, 4, 1)), config)
    x, y = jnp.ones((8, 2)), jnp.ones(8)
    for lr, lambd, kp in [(0.1, 0.0, 1.0), (0.5, 0.3, 0.5), (2.0, 1.0, 0.9)]:
        step(state, x, y, key, jaxhp.HParams(lambd, kp, lr))
    assert step._cache_size() == 1


def _stop_step(dev_costs, patience, every, min_delta=0.0):
    """The early-stopping rule re-implemented over a full run's dev costs."""
    best, bad = np.inf, 0
    for i, cost in enumerate(dev_costs):
        if cost < best - min_delta:
            best, bad = cost, 0
        else:
            bad += 1
        if bad >= patience:
            return (i + 1) * every
    return len(dev_costs) * every


def test_early_stopping_and_restore_best():
    # Tiny noisy training set and a big net: the dev cost turns up, so training stops.
    data = jaxhp.datasets.load("moons", n_train=24, n_dev=200, n_test=0, noise=0.45)
    config = jaxhp.TrainConfig(
        layer_sizes=(2, 64, 64, 1),
        steps=4000,
        eval_every=40,
        optimizer="adam",
        patience=5,
        restore_best=True,
    )
    hp = jaxhp.HParams(learning_rate=0.01)
    result = jaxhp.fit(jax.random.key(0), hp, data, config)
    # The exact stop step, from the rule applied to the history of a run without stopping.
    full = jaxhp.fit(jax.random.key(0), hp, data, config.replace(patience=None))
    expected_stop = _stop_step(np.asarray(full.history.dev_cost), 5, 40)
    assert expected_stop < config.steps
    assert int(result.stop_step) == expected_stop
    best = float(jnp.min(result.history.dev_cost))
    x_dev, y_dev = data.dev
    dev_cost_of_returned = float(jaxhp.loss(result.params, x_dev, y_dev))
    np.testing.assert_allclose(dev_cost_of_returned, best, rtol=1e-5)
    # History after the stop repeats the frozen params' values.
    stopped_at = int(np.argmax(np.asarray(result.history.step) >= int(result.stop_step)))
    assert np.ptp(np.asarray(result.history.dev_cost[stopped_at:])) < 1e-6


def test_minibatch_runs_and_uses_training_set_m(moons):
    config = jaxhp.TrainConfig(layer_sizes=(2, 16, 1), steps=300, batch_size=32)
    result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(0.1, 0.9, 0.3), moons, config)
    assert float(result.history.dev_accuracy[-1]) > 0.8
    # The recorded train cost is J with m = all 200 training rows.
    x, y = moons.train
    expected = jaxhp.loss(result.params, x, y, lambd=0.1)
    np.testing.assert_allclose(result.history.train_cost[-1], expected, rtol=1e-5)


def test_divergence_is_flagged_and_params_stay_finite(moons):
    config = jaxhp.TrainConfig(layer_sizes=(2, 16, 1), steps=200, activation="tanh")
    result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(0.0, 1.0, 1e38), moons, config)
    assert bool(result.diverged)
    assert int(result.stop_step) < 200
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(result.params))


def test_divergence_returns_the_last_finite_evaluation(moons):
    """Updates scaled by e^(step/2) blow up after a few evaluations: the run stops at the
    first non-finite cost and hands back the params of the evaluation before, whose
    recorded cost equals J recomputed from them."""

    def exploding(learning_rate):
        return optax.chain(
            optax.sgd(learning_rate), optax.scale_by_schedule(lambda c: jnp.exp(c / 2))
        )

    config = jaxhp.TrainConfig(
        layer_sizes=(2, 16, 1), steps=400, eval_every=20, patience=None, optimizer=exploding
    )
    result = jaxhp.fit(jax.random.key(1), jaxhp.HParams(0.0, 1.0, 0.1), moons, config)
    cost = np.asarray(result.history.train_cost)
    assert bool(result.diverged), cost
    first_bad = int(np.flatnonzero(~np.isfinite(cost))[0])
    assert first_bad >= 1 and np.all(np.isfinite(cost[:first_bad]))
    assert int(result.stop_step) == 20 * first_bad
    x, y = moons.train
    np.testing.assert_allclose(jaxhp.loss(result.params, x, y), cost[first_bad - 1], rtol=1e-5)
    # The diverged evaluation's accuracies describe no model (non-finite logits predict
    # class 0): NaN, not a chance-level number; the rows before keep theirs.
    for accuracy in (result.history.train_accuracy, result.history.dev_accuracy):
        accuracy = np.asarray(accuracy)
        assert np.all(np.isnan(accuracy[first_bad:])), accuracy
        assert np.all(np.isfinite(accuracy[:first_bad]))
    # Both accuracies, also where only the train cost is non-finite (its L2 term
    # overflowed) while the dev cross-entropy stays a huge finite number.
    every_step = jaxhp.TrainConfig(layer_sizes=(2, 20, 3, 1), steps=100, eval_every=1)
    wild = jaxhp.fit(jax.random.key(0), jaxhp.HParams(learning_rate=1e5), moons, every_step)
    h = jax.tree.map(np.asarray, wild.history)
    row = int(np.flatnonzero(~np.isfinite(h.train_cost))[0])
    assert np.isfinite(h.dev_cost[row]), "the case: train cost diverged, dev cost finite"
    assert np.isnan(h.train_accuracy[row]) and np.isnan(h.dev_accuracy[row])


def test_vmap_fit_equals_separate_fits(moons):
    config = jaxhp.TrainConfig(layer_sizes=(2, 12, 4, 1), steps=120, batch_size=50, eval_every=20)
    keys = jax.random.split(jax.random.key(3), 4)
    hps = jaxhp.HParams(
        lambd=jnp.array([0.0, 0.1, 1.0, 3.0]),
        keep_prob=jnp.array([1.0, 0.8, 0.6, 0.9]),
        learning_rate=jnp.array([0.1, 0.3, 0.5, 0.05]),
    )
    vmapped = jax.jit(jax.vmap(jaxhp.fit, in_axes=(0, 0, None, None)), static_argnums=3)
    batched = vmapped(keys, hps, moons, config)
    for i in range(4):
        single = jaxhp.fit(keys[i], jax.tree.map(lambda a: a[i], hps), moons, config)
        assert_close(jax.tree.map(lambda a: a[i], batched), single, rtol=1e-6, atol=1e-7)


def test_ragged_steps_and_history_steps(moons):
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=50, eval_every=20)
    result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(learning_rate=0.1), moons, config)
    np.testing.assert_array_equal(result.history.step, [20, 40, 50])
    assert int(result.stop_step) == 50


@pytest.mark.parametrize(
    "hparams, match",
    [
        (jaxhp.HParams(keep_prob=0.0), "keep_prob must be in"),
        (jaxhp.HParams(keep_prob=1.2), "keep_prob must be in"),
        (jaxhp.HParams(keep_prob=float("nan")), "keep_prob must be in"),
        (jaxhp.HParams(lambd=-1.0), "lambd must be"),
        (jaxhp.HParams(learning_rate=0.0), "learning_rate must be"),
    ],
)
def test_bad_hparams(moons, hparams, match):
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=5)
    with pytest.raises(ValueError, match=match):
        jaxhp.fit(jax.random.key(0), hparams, moons, config)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "steps must be a positive int, got 0"),
        ({"steps": -3}, "steps must be a positive int"),
        ({"layer_sizes": (2,)}, "at least 2 entries"),
        ({"layer_sizes": (2, 0, 1)}, "positive ints"),
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"init": "orthogonal"}, "unknown init scheme 'orthogonal'"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'.*'adam'"),
        ({"eval_every": 50}, "eval_every must be <= steps"),
        ({"dtype": "int32"}, "float dtype"),
    ],
)
def test_bad_config(kwargs, match):
    args = {"layer_sizes": (2, 4, 1), "steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        jaxhp.TrainConfig(**args)


def test_bad_data(moons):
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=5)
    x, y = moons.train
    hp = jaxhp.HParams()
    with pytest.raises(ValueError, match="batch_size must be <= the number of training"):
        jaxhp.fit(jax.random.key(0), hp, moons, config.replace(batch_size=1000))
    with pytest.raises(ValueError, match="different row counts"):
        jaxhp.fit(jax.random.key(0), hp, jaxhp.Data((x, y[:-1])), config)
    bad_x = np.array(x)
    bad_x[7, 0] = np.nan
    with pytest.raises(ValueError, match="train x contains NaN or inf, first at row 7"):
        jaxhp.fit(jax.random.key(0), hp, jaxhp.Data((bad_x, y)), config)
    with pytest.raises(ValueError, match="dev x.*0 or 1"):
        jaxhp.fit(jax.random.key(0), hp, jaxhp.Data((x, y), (x, y + 1)), config)


def test_custom_optimizer_factory_is_used(moons):
    """A factory of the learning rate and one of the member's hparams both give exactly the
    built-in momentum optimizer's run; plain SGD gives another."""
    config = jaxhp.TrainConfig(layer_sizes=(2, 8, 1), steps=20, eval_every=10)
    hp = jaxhp.HParams(learning_rate=0.05, momentum=0.9)

    def run(optimizer):
        return jaxhp.fit(0, hp, moons, config.replace(optimizer=optimizer)).history.train_cost

    builtin = run("momentum")
    # a factory of the learning rate alone, and plain SGD, leave hparams.momentum unread
    with pytest.warns(UserWarning, match="hparams has 'momentum', which neither"):
        by_lr = run(lambda lr: optax.sgd(lr, momentum=0.9))
    np.testing.assert_allclose(by_lr, builtin, rtol=1e-6)
    by_hparams = run(lambda hp: optax.sgd(hp.learning_rate, momentum=hp.momentum))
    np.testing.assert_allclose(by_hparams, builtin, rtol=1e-6)
    with pytest.warns(UserWarning, match="hparams has 'momentum', which neither"):
        assert not np.allclose(run("sgd"), builtin, rtol=1e-4)


def test_every_way_of_writing_a_factory_gets_the_members_learning_rate(moons):
    """A factory of the learning rate, of the hparams read by name, key, position or
    _asdict(), and optax's inject_hyperparams all train exactly as plain SGD at the
    member's learning rate; one that reads no hyperparameter trains at its own, and a
    swept learning rate is then an axis that does nothing (it used to be passed 0.05
    silently ignored)."""
    config = jaxhp.TrainConfig(layer_sizes=(2, 8, 1), steps=20, eval_every=10)
    hp = jaxhp.HParams(learning_rate=0.05)

    def run(optimizer, hparams=hp):
        config_ = config.replace(optimizer=optimizer)
        return np.asarray(jaxhp.fit(0, hparams, moons, config_).history.train_cost)

    reference = run("sgd")
    for factory in (
        lambda lr: optax.sgd(lr),
        lambda hp: optax.sgd(hp.learning_rate),
        lambda hp: optax.sgd(hp["learning_rate"]),
        lambda hp: optax.sgd(hp[2]),
        lambda hp: optax.sgd(hp._asdict()["learning_rate"]),
        optax.inject_hyperparams(optax.sgd),
    ):
        np.testing.assert_array_equal(run(factory), reference)
    # a factory that uses its learning rate only on some leaves (the biases here)
    biases = lambda p: jax.tree.map(lambda a: a.ndim == 1, p)  # noqa: E731
    decay = lambda lr: optax.masked(optax.add_decayed_weights(lr), biases)  # noqa: E731
    np.testing.assert_array_equal(
        run(lambda lr: optax.chain(decay(lr), optax.sgd(0.1))),
        run(lambda hp: optax.chain(decay(0.05), optax.sgd(0.1))),
    )
    fixed = lambda hp: optax.sgd(0.3)  # noqa: E731
    np.testing.assert_array_equal(run(fixed), run("sgd", hp._replace(learning_rate=0.3)))
    space = jaxhp.sweep.grid(learning_rate=[0.05, 0.5])
    with pytest.warns(UserWarning, match="axis 'learning_rate' does nothing"):
        jaxhp.run_sweep(space, moons, config.replace(optimizer=fixed, steps=2, eval_every=1))


@pytest.mark.parametrize(
    "name, hparams, factory",
    [
        ("momentum", {"momentum": 0.5}, lambda lr: optax.sgd(lr, momentum=0.5)),
        ("adam", {"b1": 0.5, "b2": 0.9}, lambda lr: optax.adam(lr, b1=0.5, b2=0.9)),
        ("adam", {}, lambda lr: optax.adam(lr)),
        ("rmsprop", {"decay": 0.5}, lambda lr: optax.rmsprop(lr, decay=0.5)),
    ],
)
def test_named_optimizers_read_their_hyperparameters_from_hparams(moons, name, hparams, factory):
    config = jaxhp.TrainConfig(layer_sizes=(2, 8, 1), steps=20, eval_every=10)
    hp = jaxhp.HParams(learning_rate=0.05, **hparams)

    def run(optimizer):
        return jaxhp.fit(0, hp, moons, config.replace(optimizer=optimizer)).history.train_cost

    if hparams:  # the plain factory takes the learning rate alone: the rest goes unread
        with pytest.warns(UserWarning, match="neither the model nor the optimizer reads"):
            by_factory = run(factory)
    else:
        by_factory = run(factory)
    np.testing.assert_allclose(run(name), by_factory, rtol=1e-6)


def test_momentum_from_hparams_is_traced_not_recompiled(moons):
    config = jaxhp.TrainConfig(
        layer_sizes=(2, 4, 1),
        steps=4,
        optimizer=lambda hp: optax.sgd(hp.learning_rate, momentum=hp.momentum),
    )
    run = jax.jit(lambda m: jaxhp.fit(0, jaxhp.HParams(momentum=m), moons, config))
    costs = [run(m).history.train_cost[-1] for m in (0.0, 0.5, 0.9)]
    assert run._cache_size() == 1
    assert len(set(np.round(np.asarray(costs), 7))) == 3


def test_batch_with_zero_weight_makes_no_update():
    """Issue #11 item 6: with batch_size 1 and weights (1, 0, 0, 0) three of the four steps
    see a zero-weight batch and leave the params alone; the one step on row 0 is plain SGD."""
    x = jnp.array([[0.5, -1.0], [1.0, 2.0], [-0.3, 0.4], [2.0, 0.1]])
    y = jnp.array([1.0, 0.0, 1.0, 0.0])
    w = jnp.array([1.0, 0.0, 0.0, 0.0])
    config = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=4, batch_size=1)
    hp = jaxhp.HParams(learning_rate=0.5)
    result = jaxhp.fit(jax.random.key(0), hp, jaxhp.Data((x, y, w)), config)
    assert not bool(result.diverged)
    params0 = jaxhp.init_mlp(jax.random.split(jax.random.key(0), 4)[0], (2, 3, 1))
    grads = jax.grad(jaxhp.loss)(params0, x[:1], y[:1])
    expected = jax.tree.map(lambda p, g: p - 0.5 * g, params0, grads)
    assert_close(result.params, expected, rtol=1e-5, atol=1e-7)


def test_diverged_evaluation_is_never_the_best():
    """Issue #11 item 8: a train cost that overflows while the dev cost stays finite rolls
    back and stops, and the best cost stays that of the best params."""
    from jaxhp.train import _bookkeeping, _Carry, _Metrics

    config = jaxhp.TrainConfig(layer_sizes=(2, 1), steps=10)
    start = _Carry(
        state=jaxhp.train.TrainState(jnp.zeros(2), ()),
        active=jnp.array(True),
        updates=jnp.array(5),
        diverged=jnp.array(False),
        best_params=jnp.full(2, 7.0),
        best_cost=jnp.array(0.9),
        best_step=jnp.array(5),
        bad_evals=jnp.array(0),
    )
    after = start._replace(
        state=jaxhp.train.TrainState(jnp.full(2, jnp.inf), ()), updates=jnp.array(10)
    )
    metrics = _Metrics(jnp.array(jnp.inf), jnp.array(0.5), jnp.array(0.1), jnp.array(0.9))
    carry = _bookkeeping(config, start, after, metrics)
    assert bool(carry.diverged) and not bool(carry.active)
    assert float(carry.best_cost) == np.float32(0.9) and int(carry.best_step) == 5
    np.testing.assert_array_equal(carry.best_params, [7.0, 7.0])
    np.testing.assert_array_equal(carry.state.params, [0.0, 0.0])
    assert int(carry.updates) == 5


def test_epoch_shuffle_is_a_uniform_permutation():
    from jaxhp.train import _shuffle

    keys = jax.random.split(jax.random.key(0), 4000)
    perms = np.asarray(jax.vmap(lambda k: _shuffle(k, 5))(keys))
    np.testing.assert_array_equal(np.sort(perms, axis=1), np.tile(np.arange(5), (4000, 1)))
    # Each element lands in each position with probability 1/5 (5 binomial sd bounds).
    counts = np.stack([(perms == v).sum(0) for v in range(5)])
    assert np.all(np.abs(counts / 4000 - 0.2) < 5 * np.sqrt(0.2 * 0.8 / 4000))


@pytest.mark.parametrize("table", ["per chunk", "per step"])
def test_minibatches_follow_the_documented_epoch_shuffles(monkeypatch, table):
    """Logistic regression by SGD, batches of 30 from 100 rows (3 per epoch, 10 rows left
    out), 11 steps evaluated every 4 (chunks straddle epochs), against NumPy: epoch e takes
    rows argsort(bits(fold_in(shuffle_key, e))) in order, shuffle_key being the third of
    four splits of the run's key. Both ways of making the shuffles, and two vmapped runs."""
    if table == "per step":  # the fallback for chunks whose shuffle table would be huge
        monkeypatch.setattr(jaxhp.train, "_MAX_SHUFFLE_TABLE", 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 2)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=100) > 0).astype(np.float32)
    model = jaxhp.Model(
        init=lambda key: {"w": jnp.zeros((2, 1)), "b": jnp.zeros(1)},
        apply=lambda p, xb, *, key, hparams: xb @ p["w"] + p["b"][None, :],
    )
    config = jaxhp.TrainConfig(model=model, steps=11, batch_size=30, eval_every=4)
    hparams = jaxhp.HParams(lambd=0.0, keep_prob=1.0, learning_rate=0.5)
    keys = jax.random.split(jax.random.key(7), 2)
    runs = jax.jit(jax.vmap(lambda k: jaxhp.fit(k, hparams, jaxhp.Data((x, y)), config)))(keys)
    for i, key in enumerate(keys):
        shuffle_key = jax.random.split(key, 4)[2]
        w, b = np.zeros(2), 0.0
        for step in range(11):
            bits = np.asarray(jax.random.bits(jax.random.fold_in(shuffle_key, step // 3), (100,)))
            rows = np.argsort(bits, kind="stable")[step % 3 * 30 :][:30]
            dz = 1 / (1 + np.exp(-(x[rows] @ w + b))) - y[rows]
            w, b = w - 0.5 * x[rows].T @ dz / 30, b - 0.5 * dz.mean()
        np.testing.assert_allclose(runs.params["w"][i, :, 0], w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(runs.params["b"][i, 0], b, rtol=1e-5, atol=1e-6)


def _numpy_metrics(logits: np.ndarray, y: np.ndarray, w: np.ndarray | None = None):
    """Cross-entropy and accuracy in float64 NumPy: softmax for k > 1 outputs, sigmoid for
    one; weighted means with per-example weights w."""
    logits = logits.astype(np.float64)
    if logits.shape[1] == 1:
        z = logits[:, 0]
        ce = np.logaddexp(0.0, z) - z * y
        hits = (z > 0) == (y == 1)
    else:
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ce = -log_p[np.arange(len(y)), y]
        hits = logits.argmax(axis=1) == y
    w = np.ones(len(y)) if w is None else w
    return np.sum(w * ce) / np.sum(w), np.sum(w * hits) / np.sum(w)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_each_evaluation_matches_numpy_on_the_train_and_dev_rows(n_classes):
    """The history's costs and accuracies after training: train ones weighted (per-example
    weights), dev ones plain means, from one application of the model to both sets."""
    rng = np.random.default_rng(0)
    x, x_dev = rng.normal(size=(40, 3)), rng.normal(size=(25, 3))
    y, y_dev = rng.integers(0, n_classes, 40), rng.integers(0, n_classes, 25)
    w = rng.uniform(0.2, 2.0, 40)
    data = jaxhp.Data((x, y, w), (x_dev, y_dev))
    n_out = 1 if n_classes == 2 else n_classes
    config = jaxhp.TrainConfig(layer_sizes=(3, 6, n_out), steps=30, eval_every=15)
    hp = jaxhp.HParams(lambd=0.4, learning_rate=0.2)
    result = jaxhp.fit(jax.random.key(1), hp, data, config)
    (W1, b1), (W2, b2) = ((np.asarray(p.W, np.float64), np.asarray(p.b)) for p in result.params)

    def logits(a):  # the MLP in NumPy: relu hidden layer, linear output
        return np.maximum(a @ W1 + b1, 0) @ W2 + b2

    train_ce, train_acc = _numpy_metrics(logits(x), y, w)
    dev_ce, dev_acc = _numpy_metrics(logits(x_dev), y_dev)
    l2 = 0.4 / (2 * w.sum()) * (np.sum(W1**2) + np.sum(W2**2))
    history = result.history
    np.testing.assert_allclose(history.train_cost[-1], train_ce + l2, rtol=1e-5)
    np.testing.assert_allclose(history.dev_cost[-1], dev_ce, rtol=1e-5)
    np.testing.assert_allclose(history.train_accuracy[-1], train_acc, rtol=1e-6)
    np.testing.assert_allclose(history.dev_accuracy[-1], dev_acc, rtol=1e-6)


def test_model_predict_of_the_mlp_equals_the_course_predict():
    """model_predict(config, params, x) on a layer_sizes config gives what jaxhp.predict
    (the course's forward pass) gives: z > 0 for one output, argmax for three."""
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    for sizes in ((4, 6, 1), (4, 16, 3)):
        params = jaxhp.init_mlp(jax.random.key(1), sizes)
        config = jaxhp.TrainConfig(layer_sizes=sizes, steps=1)
        expected = np.asarray(jaxhp.predict(params, x))
        np.testing.assert_array_equal(jaxhp.model_predict(config, params, x), expected)
        assert len(set(expected.tolist())) > 1  # a real split, not one class everywhere
