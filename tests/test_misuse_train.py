"""Bad input to the engine (HParams, Model, TrainConfig, fit, make_update_step, spaces,
run_sweep): a clear error naming the argument, before any training starts."""

import collections
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxhp
from jaxhp import sweep

MLP = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=2)


@pytest.fixture(scope="module")
def data():
    return jaxhp.datasets.load("moons", n_train=20, n_dev=10, n_test=0, noise=0.2)


def _linear(n_out=1, *, logits_shape=None, reads=None, params=None):
    """A user model: logits = x @ w (+ optional reads of hparams)."""

    def init(key):
        if params is not None:
            return params
        return {"w": jax.random.normal(key, (2, n_out))}

    def apply(p, x, *, key, hparams):
        if reads is not None:
            getattr(hparams, reads)
        out = x @ p["w"]
        return out if logits_shape is None else jnp.zeros(logits_shape(x))

    return jaxhp.Model(init, apply)


# ---- HParams ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: jaxhp.HParams(learning_rate="0.3"), TypeError, r"learning_rate='0.3' \(str\)"),
        (lambda: jaxhp.HParams(momentum={"a": 1}), TypeError, r"momentum=.*must be a number"),
        (lambda: jaxhp.HParams(0.1, 1.0, 0.1, 0.9), TypeError, "at most 3 positional"),
        (lambda: jaxhp.HParams(0.1, lambd=0.2), TypeError, "'lambd' both by position"),
        (lambda: jaxhp.HParams()._replace(momentum=0.9), ValueError, "no 'momentum' to replace"),
        (lambda: jaxhp.HParams().momentum, AttributeError, "no hyperparameter 'momentum'"),
        (lambda: jaxhp.HParams().lamda, AttributeError, "'lamda'; did you mean 'lambd'\\?"),
        (lambda: jaxhp.HParams(flag=True), TypeError, "flag=True"),
    ],
)
def test_bad_hparams_values(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_hparams_as_dict_is_accepted_and_equal(data):
    as_dict = jaxhp.fit(0, {"lambd": 0.1, "learning_rate": 0.2}, data, MLP)
    as_record = jaxhp.fit(0, jaxhp.HParams(lambd=0.1, learning_rate=0.2), data, MLP)
    np.testing.assert_array_equal(as_dict.history.train_cost, as_record.history.train_cost)
    with pytest.raises(TypeError, match="hparams must be a jaxhp.HParams or a dict"):
        jaxhp.fit(0, "lr=0.1", data, MLP)


def test_int_key_is_a_seed_and_other_keys_are_refused(data):
    by_int = jaxhp.fit(3, jaxhp.HParams(), data, MLP)
    by_key = jaxhp.fit(jax.random.key(3), jaxhp.HParams(), data, MLP)
    np.testing.assert_array_equal(by_int.history.train_cost, by_key.history.train_cost)
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        jaxhp.fit("0", jaxhp.HParams(), data, MLP)
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        jaxhp.dropout(jnp.array([1.5, 2.0]), jnp.ones(3), 0.5)


# ---- optimizer factories ------------------------------------------------------------------
@pytest.mark.parametrize(
    "factory, error, match",
    [
        (lambda: optax.sgd(0.1), TypeError, "takes no argument"),
        (
            lambda hp: optax.sgd(hp.learnig_rate),
            AttributeError,
            "no hyperparameter 'learnig_rate'; did you mean 'learning_rate'",
        ),
        (
            lambda hp: optax.sgd(hp["learnig_rate"]),
            KeyError,
            "no hyperparameter 'learnig_rate'; did you mean 'learning_rate'",
        ),
        (
            lambda lr, mom: optax.sgd(lr, mom),
            TypeError,
            r"takes 2 arguments \(lr, mom\); it is given one, the member's hyperparameters",
        ),
        (lambda lr: "sgd", TypeError, r"must return an optax.GradientTransformation, got str"),
        (
            lambda hp: optax.sgd(hp.learning_rate, hp.momentum),
            AttributeError,
            "no hyperparameter 'momentum'",
        ),
    ],
)
def test_bad_optimizer_factory(data, factory, error, match):
    with pytest.raises(error, match=match):
        jaxhp.fit(0, jaxhp.HParams(), data, MLP.replace(optimizer=factory))


# ---- TrainConfig and models ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"steps": 3}, ValueError, "needs a model"),
        (
            {"layer_sizes": (2, 1), "model": _linear(), "steps": 3},
            ValueError,
            "either model= or layer_sizes=",
        ),
        ({"model": "cnn", "steps": 3}, TypeError, r"model must be a jaxhp.Model\(init, apply\)"),
        ({"layer_sizes": (2, 1)}, ValueError, "steps is required"),
        ({"layer_sizes": (2, 1), "steps": 3, "l2": 5}, TypeError, "l2 must be None, a regular"),
        ({"layer_sizes": (2, 1), "steps": 3, "l2": "["}, ValueError, "l2 must be a valid regular"),
        ({"layer_sizes": (2, 1), "steps": 3, "min_delta": "0"}, ValueError, "min_delta must be"),
    ],
)
def test_bad_train_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        jaxhp.TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "model, match",
    [
        (
            _linear(logits_shape=lambda x: (x.shape[0], 1, 1)),
            r"must return logits of shape \(m, n_out\)",
        ),
        (
            _linear(logits_shape=lambda x: (3, 1)),
            r"must return logits of shape \(m, n_out\), one row per example: \(20, n_out\)",
        ),
        (  # a squeezed one-output model (Equinox's Linear(n, "scalar"), Dense(1)(h)[:, 0])
            _linear(logits_shape=lambda x: (x.shape[0],)),
            r"got \(20,\); for one logit per example return \(m, 1\): logits\[:, None\]$",
        ),
        (_linear(params={"step": jnp.zeros((), jnp.int32)}), "no float leaves"),
        (
            _linear(params={"w": jnp.ones((2, 1)), "n": jnp.arange(3)}),
            r"the int32 leaf params\['n'\]: every leaf is trained",
        ),
        (
            jaxhp.Model(lambda key: {"w": jnp.ones((2, 1))}, lambda p, x, **_: (x @ p["w"], 0.0)),
            r"must return one array of logits \(m, n_out\), got PyTreeDef\(\(\*, \*\)\)",
        ),
        (_linear(reads="dropout_rate"), "no hyperparameter 'dropout_rate'; it has lambd"),
    ],
)
def test_bad_model(data, model, match):
    with pytest.raises((ValueError, AttributeError), match=match):
        jaxhp.fit(0, jaxhp.HParams(), data, jaxhp.TrainConfig(model=model, steps=1))


def _good_init(key):
    return {"w": jax.random.normal(key, (2, 1))}


def _good_apply(p, x, *, key, hparams):
    return x @ p["w"]


@pytest.mark.parametrize(
    "init, apply, match",
    [
        (  # NumPy on a traced array: JAX's own error class, said as a plain TypeError
            lambda key: {"w": np.asarray(_good_init(key)["w"])},
            _good_apply,
            r"the model's init .* fails when called as init\(key\) .* jax\.numpy, not NumPy",
        ),
        (lambda: _good_init(0), _good_apply, r"init\(key\) with one PRNG key .* takes 0"),
        (_good_apply, _good_init, r"Model\(init, apply\): init comes first"),  # swapped
        (
            _good_init,
            lambda p, x, *, key, hparams: np.asarray(x) @ p["w"],  # was an AttributeError
            r"the model's apply fails on train x of shape \(20, 2\).*numpy\.ndarray",
        ),
    ],
)
def test_a_model_whose_init_or_apply_cannot_be_traced_is_named(data, init, apply, match):
    with pytest.raises(TypeError, match=match):
        jaxhp.fit(
            0, jaxhp.HParams(), data, jaxhp.TrainConfig(model=jaxhp.Model(init, apply), steps=1)
        )


def test_fit_with_its_arguments_out_of_order_says_so(data):
    with pytest.raises(TypeError, match=r"hparams must be a jaxhp.HParams .* jaxhp.Data \(argu"):
        jaxhp.fit(0, data, jaxhp.HParams(), MLP)
    # a tuple of the course's three values, a user's namedtuple too, still reads as HParams
    Course = collections.namedtuple("Course", "lambd keep_prob learning_rate")
    assert jaxhp.HParams.coerce(Course(0.1, 0.9, 0.01)) == jaxhp.HParams(0.1, 0.9, 0.01)


@pytest.mark.parametrize("mlp", [False, True])
def test_model_with_too_few_logits_for_the_labels(mlp):  # the model is named, not the labels
    x = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    y = np.arange(12) % 3  # three classes, two logits
    if mlp:
        config, fix = jaxhp.TrainConfig(layer_sizes=(2, 4, 2), steps=1), "end layer_sizes with 3"
    else:
        config, fix = jaxhp.TrainConfig(model=_linear(n_out=2), steps=1), "give the model 3"
    with pytest.raises(ValueError, match=rf" 2 output\(s\) .*up to 2 \(3 classes\): {fix}"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x, y)), config)


@pytest.mark.parametrize("mlp", [False, True])
def test_model_with_more_logits_than_classes_warns(mlp):  # outputs 3..4 are never a target
    x = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    y = np.arange(12) % 3  # three classes, five logits
    model = "layer_sizes ends in" if mlp else "model.apply returns"
    config = jaxhp.TrainConfig(
        **({"layer_sizes": (2, 4, 5)} if mlp else {"model": _linear(n_out=5)}), steps=1
    )
    with pytest.warns(
        UserWarning, match=rf"{model} 5 outputs .*up to 2 \(3 classes\): outputs 3..4"
    ):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x, y)), config)
    with warnings.catch_warnings():  # as many outputs as classes: silent
        warnings.simplefilter("error")
        jaxhp.fit(
            0,
            jaxhp.HParams(),
            jaxhp.Data((x, y)),
            config.replace(**({"layer_sizes": (2, 4, 3)} if mlp else {"model": _linear(n_out=3)})),
        )


def test_labels_as_one_row_and_string_labels_are_named():
    x = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=1)
    with pytest.raises(ValueError, match=r"12 vs 1; the labels look like one row \(1, m\)"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x, y[None, :])), config)
    with pytest.raises(ValueError, match=r"x and y look transposed .*: pass x.T and y.reshape"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x.T, y[None, :])), config)  # the course's
    model = jaxhp.TrainConfig(model=_linear(), steps=1)  # the same hints for a model=
    with pytest.raises(ValueError, match=r"x and y look transposed .*: pass x.T and y.reshape"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x.T, y[None, :])), model)
    with pytest.raises(ValueError, match=r"the labels look like one row \(1, m\)"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x, y[None, :])), model)
    with pytest.raises(TypeError, match=r"labels for train x must hold real numbers, got dtype <U"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x, np.where(y, "a", "b"))), config)


def test_l2_matching_no_leaf_warns(data):
    config = jaxhp.TrainConfig(model=_linear(), steps=1, l2="bias")
    with pytest.warns(UserWarning, match=r"l2='bias'.*matches no parameter leaf.*\['w'\]"):
        jaxhp.fit(0, jaxhp.HParams(lambd=0.1), data, config)


def test_augment_that_changes_the_batch_shape(data):
    config = MLP.replace(augment=lambda key, x: x[:, :1])
    with pytest.raises(ValueError, match=r"same shape and dtype \(20, 2\) float32, got \(20, 1\)"):
        jaxhp.fit(0, jaxhp.HParams(), data, config)


def test_zero_rows_and_non_array_data(data):
    x, y = data.train
    with pytest.raises(ValueError, match="train x must have at least one row"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x[:0], y[:0])), MLP)
    with pytest.raises(TypeError, match="data must be jaxhp.Data"):
        jaxhp.fit(0, jaxhp.HParams(), "moons", MLP)


# ---- make_update_step labels (issue #11 item 4) -------------------------------------------
def test_update_step_label_shapes(key):
    x = jax.random.normal(key, (3, 2))
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 3), steps=1)
    state = jaxhp.init_state(jaxhp.init_mlp(key, (2, 4, 3)), config)
    step = jaxhp.make_update_step(config)
    hp = jaxhp.HParams(learning_rate=0.5)
    ids = jnp.array([2, 0, 1])  # m == k == 3: class ids, not one-hot rows
    by_ids, _ = step(state, x, ids, None, hp)
    by_one_hot, _ = step(state, x, jax.nn.one_hot(ids, 3), None, hp)
    by_column, _ = step(state, x, ids[:, None], None, hp)
    expected = jax.tree.map(
        lambda p, g: p - 0.5 * g, state.params, jax.grad(jaxhp.loss)(state.params, x, ids)
    )
    for got in (by_ids, by_one_hot, by_column):
        for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"labels y have shape \(3, 2\), which does not fit 3"):
        step(state, x, jnp.zeros((3, 2)), None, hp)
    with pytest.raises(ValueError, match=r"labels y must have shape \(3,\), \(3, 1\)"):
        step(state, x, jnp.zeros(4), None, hp)


def test_update_step_single_output_column_labels(key):
    x = jax.random.normal(key, (5, 2))
    y = jnp.array([0.0, 1.0, 1.0, 0.0, 1.0])
    config = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=1)
    state = jaxhp.init_state(jaxhp.init_mlp(key, (2, 3, 1)), config)
    step = jaxhp.make_update_step(config)
    flat, metrics = step(state, x, y, None, jaxhp.HParams())
    column, column_metrics = step(state, x, y[:, None], None, jaxhp.HParams())
    np.testing.assert_allclose(column_metrics["loss"], jaxhp.loss(state.params, x, y), rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], column_metrics["loss"], rtol=1e-6)
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        step(state, x, y, 7, jaxhp.HParams(keep_prob=0.5))


def test_update_step_refuses_what_fit_refuses_before_it_trains(key):
    """The step once trained on keep_prob 0 or 1.5, a negative lambd and labels -1/1 or
    1/2 for a sigmoid output, and dropped dropout silently without a key."""
    x = np.asarray(jax.random.normal(key, (6, 2)))
    y = np.array([0, 1, 1, 0, 1, 0])
    config = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=1)
    state = jaxhp.init_state(jaxhp.init_mlp(key, (2, 3, 1)), config)
    step = jaxhp.make_update_step(config)
    bad = [
        ((x, y, key, jaxhp.HParams(keep_prob=0.0)), ValueError, r"keep_prob must be in \(0, 1\]"),
        ((x, y, key, jaxhp.HParams(keep_prob=1.5)), ValueError, r"keep_prob must be in \(0, 1\]"),
        ((x, y, key, jaxhp.HParams(lambd=-1.0)), ValueError, r"lambd must be a finite number >="),
        ((x, 2 * y - 1, key, jaxhp.HParams()), ValueError, r"must be 0 or 1 .*, got -1"),
        ((x, y + 1, key, jaxhp.HParams()), ValueError, r"must be 0 or 1 .*, got 2"),
        ((x, y[None, :], key, jaxhp.HParams()), ValueError, r"look like one row \(1, m\)"),
        ((x, None, key, jaxhp.HParams()), TypeError, r"y must be an array .*got NoneType"),
        ((x, y, None, jaxhp.HParams(keep_prob=0.8)), ValueError, r"keep_prob=0.8 drops units"),
        ((x[:0], y[:0], key, jaxhp.HParams()), ValueError, r"x must hold at least one example"),
        (
            (x, y, jax.random.split(key, 2), jaxhp.HParams()),
            ValueError,
            r"key must be one PRNG key, got a batch of shape \(2,\)",
        ),
    ]
    for args, error, match in bad:
        with pytest.raises(error, match=match):
            step(state, *args)
    with pytest.raises(TypeError, match=r"state must be a TrainState .*got tuple"):
        step(tuple(state), x, y, key, jaxhp.HParams())
    with pytest.raises(TypeError, match=r"make_update_step takes a jaxhp.TrainConfig, got tuple"):
        jaxhp.make_update_step((2, 3, 1))
    for m, error in ((0, ValueError), (-5, ValueError), ("5", TypeError)):
        with pytest.raises(error, match=f"m must be .*got {m!r}"):
            jaxhp.make_update_step(config, m=m)
        for call in (
            lambda: jaxhp.model_loss(config, state.params, x, y, m=m),
            lambda: jaxhp.loss(state.params, x, y, m=m),
            lambda: jaxhp.l2_penalty(state.params, 0.1, m),
        ):
            with pytest.raises(error, match="m must be"):
                call()
    # model_loss refuses what loss and fit refuse: a negative lambd, negative weights
    with pytest.raises(ValueError, match=r"lambd must be a finite number >="):
        jaxhp.model_loss(config, state.params, x, y, hparams=jaxhp.HParams(lambd=-1.0))
    with pytest.raises(ValueError, match="weights must be finite, >= 0"):
        jaxhp.model_loss(config, state.params, x, y, weights=-np.ones(6))
    # a misspelt name in hparams warns at the first call, as fit does
    with pytest.warns(UserWarning, match=r"'lamda', which neither the model nor .*'lambd'"):
        jaxhp.make_update_step(config)(state, x, y, key, {"lamda": 0.3})
    # on the device, labels are checked at the first call (later calls must not wait)
    fresh = jaxhp.make_update_step(config)
    with pytest.raises(ValueError, match=r"must be 0 or 1 .*, got 2"):
        fresh(state, x, jnp.asarray(y + 1), key, jaxhp.HParams())
    # params made for other layer sizes: named, not a dot_general error from inside JAX
    other = jaxhp.init_state(jaxhp.init_mlp(key, (3, 3, 1)), config)
    for call in (
        lambda: step(other, x, y, key, jaxhp.HParams()),
        lambda: jaxhp.model_loss(config, other.params, x, y),
    ):
        with pytest.raises(ValueError, match=r"the params do not fit x \(6, 2\): .*\(3, 3\)"):
            call()
    # as a jitted function: eval_shape (and lower, trace, clear_cache) are there
    assert step.eval_shape(state, x, y, key, jaxhp.HParams())[1]["loss"].shape == ()
    new, _ = step(state, x, y, key, jaxhp.HParams(keep_prob=0.8))  # good input still trains
    assert not np.array_equal(new.params[0].W, state.params[0].W)
    per_layer, _ = step(state, x, y, key, jaxhp.HParams(keep_prob=[0.8]))  # a list: no hash
    assert np.array_equal(per_layer.params[0].W, new.params[0].W)
    # a first call inside the user's jit checks nothing concrete: the next eager call does
    traced = jaxhp.make_update_step(config)
    jax.jit(lambda s, yy: traced(s, x, yy, key, jaxhp.HParams()))(state, y)
    with pytest.raises(ValueError, match=r"must be 0 or 1 .*, got 2"):
        traced(state, x, jnp.asarray(y + 1), key, jaxhp.HParams())


# ---- spaces and run_sweep -----------------------------------------------------------------
@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: sweep.grid(seed=[0, 1]),
            ValueError,
            r"grid\(seed=\[0, 1\]\) is not an axis: use seeds=N",
        ),
        (
            lambda: sweep.Space([{"seed": 0.5}]),
            ValueError,
            r"seed must be an int >= 0, got 0.5 \(member 0",
        ),
        (
            lambda: sweep.grid(momentum=["0.9"]),
            TypeError,
            "axis 'momentum': values must be numbers",
        ),
        (lambda: sweep.grid(layer_sizes=[{"a": 1}]), TypeError, "static axis 'layer_sizes'"),
        (
            lambda: sweep.random(0, 3, momentum=sweep.one_minus_loguniform(0.9, 1.0)),
            ValueError,
            "0 <= a < b < 1",
        ),
        (
            lambda: (sweep.grid(momentum=[0.9]) + sweep.grid(lambd=[0.1])).compile(1),
            ValueError,
            r"member 1 of the sweep has no value for 'momentum'.*base=HParams\(momentum=",
        ),
    ],
)
def test_bad_space(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"devices": "cpu"}, TypeError, "devices must be None, a count or a list of jax devices"),
        ({"memory_budget": 0}, ValueError, "memory_budget must be 'auto' or a number of bytes"),
        ({"memory_budget": -5}, ValueError, "memory_budget must be .* got -5"),
        ({"memory_budget": "lots"}, ValueError, "memory_budget must be 'auto' or .* got 'lots'"),
        ({"base": "lr"}, TypeError, "base must be a jaxhp.HParams or a dict"),
    ],
)
def test_bad_run_sweep_arguments(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        jaxhp.run_sweep(sweep.grid(lambd=[0.0]), data, MLP, progress=False, **kwargs)


def test_a_numpy_memory_budget_is_a_number_of_bytes(data):
    result = jaxhp.run_sweep(
        sweep.grid(lambd=[0.0]), data, MLP, progress=False, memory_budget=np.int64(2**20)
    )
    assert result.meta["memory_budget_bytes"] == 2**20
    assert type(result.meta["memory_budget_bytes"]) is int  # a plain int, as JSON writes it


def test_a_member_too_big_for_the_machine_is_refused_before_training(data, monkeypatch):
    # as if the machine had 1 kB: one member of this tiny MLP needs about 5 kB (30 rows)
    monkeypatch.setattr(jaxhp.sweep, "_host_bytes", lambda: 1000)
    monkeypatch.setattr(jaxhp.sweep, "_device_bytes", lambda devices: None)  # the CPU's case
    too_big = r"one member needs about \d\.\d kB .* all 30 train and dev rows.* 1\.0 kB of"
    with pytest.raises(ValueError, match=too_big):
        jaxhp.run_sweep(sweep.grid(lambd=[0.0]), data, MLP, progress=False)


def test_a_base_name_that_nothing_reads_warns_with_the_likely_name(data, recwarn):
    base = jaxhp.HParams(learnig_rate=0.5)
    with pytest.warns(UserWarning, match=r"base has 'learnig_rate', which neither.*'learning_"):
        jaxhp.run_sweep(sweep.grid(lambd=[0.0]), data, MLP, progress=False, base=base)
    recwarn.clear()
    jaxhp.run_sweep(sweep.grid(lambd=[0.0]), data, MLP, progress=False, base={"lambd": 0.5})
    assert not [w for w in recwarn if "base has" in str(w.message)]


def test_a_sweep_without_dev_data_says_its_dev_columns_are_training_metrics(data):
    with pytest.warns(UserWarning, match="data has no dev set: the dev_\\* columns repeat"):
        results = jaxhp.run_sweep(
            sweep.grid(lambd=[0.0]), jaxhp.Data(data.train), MLP, progress=False
        )
    columns = results.columns()
    assert columns["dev_cost"][0] == pytest.approx(columns["train_cost"][0])  # λ = 0: J = CE


def test_swept_name_that_nothing_reads(data):
    config = MLP.replace(optimizer=lambda hp: optax.sgd(hp.learning_rate, momentum=hp.momentum))
    space = sweep.grid(momentm=[0.5, 0.9])
    with pytest.raises(ValueError, match=r"unknown axis 'momentm'.*'momentum'"):
        jaxhp.run_sweep(space, data, config, base={"momentum": 0.0}, progress=False)
    with pytest.raises(AttributeError, match=r"no hyperparameter 'momentum'.*base=HParams"):
        jaxhp.run_sweep(sweep.grid(lambd=[0.0]), data, config, progress=False)
    # A built-in optimizer's own name on another optimizer: the one that reads it is named.
    with pytest.raises(ValueError, match=r"unknown axis 'b1'.*use optimizer='adam'"):
        jaxhp.run_sweep(sweep.grid(b1=[0.8]), data, MLP.replace(optimizer="momentum"))
    # A factory of one number gets the learning rate only: the hint says so.
    adamw = optax.inject_hyperparams(optax.adamw)
    with pytest.raises(ValueError, match=r"'weight_decay'.*receives the learning rate only"):
        jaxhp.run_sweep(sweep.grid(weight_decay=[1e-4]), data, MLP.replace(optimizer=adamw))


def test_a_negative_decay_rate_is_refused_for_being_negative():
    with pytest.raises(ValueError, match=r"must be in \[0, 1\) \(a decay rate: negative\)"):
        jaxhp.HParams(momentum=-0.1).validate()
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):  # RMSprop's, too
        jaxhp.HParams(decay=1.5).validate()


def test_keep_prob_axis_for_a_model_without_dropout_warns(data):
    config = jaxhp.TrainConfig(model=_linear(), steps=1)
    with pytest.warns(UserWarning, match="axis 'keep_prob' does nothing"):
        jaxhp.run_sweep(sweep.grid(keep_prob=[0.5]), data, config, progress=False)


def test_an_optax_transformation_as_optimizer_names_the_factory_form():
    import optax

    with pytest.raises(TypeError, match=r"optimizer=lambda hp: optax.adam\(hp.learning_rate\)"):
        jaxhp.TrainConfig(layer_sizes=(2, 1), steps=10, optimizer=optax.adam(1e-3))


def test_an_extra_hyperparameter_nothing_reads_is_named(data):
    """A misspelt name would otherwise be silently ignored by fit."""
    config = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=1, optimizer="adam")
    with pytest.warns(UserWarning, match=r"hparams has 'momentun', which neither the model nor"):
        jaxhp.fit(0, jaxhp.HParams(momentun=0.9), data, config)
    with pytest.warns(UserWarning, match=r"'kep_prob', .*did you mean 'keep_prob'\?"):
        jaxhp.fit(0, jaxhp.HParams(kep_prob=0.9), data, config)


def test_label_shape_error_lists_each_form_once():
    from jaxhp.train import _check_label_shape

    with pytest.raises(
        ValueError,
        match=r"labels y must have shape \(300,\) or \(300, 1\) for 300 examples and 1 "
        r"output\(s\), got \(295,\) \(295 rows for 300 examples\)$",
    ):
        _check_label_shape((295,), 300, 1, "y")


@pytest.mark.parametrize("name, value", [("momentum", 1.5), ("b1", 2.0), ("b2", -0.1)])
def test_decay_rates_outside_0_1_are_refused_before_training(name, value):
    # momentum 1.5 trained "fine" before: dev cost 892 after a few hundred steps, not diverged
    data = jaxhp.Data((np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])))
    config = jaxhp.TrainConfig(layer_sizes=(2, 1), steps=2, optimizer="momentum")
    with pytest.raises(ValueError, match=rf"^{name} must be in \[0, 1\) .*got {value}$"):
        jaxhp.fit(0, jaxhp.HParams(**{name: value}), data, config)
    grid = jaxhp.sweep.grid(**{name: [0.5, value]})
    with pytest.raises(
        ValueError, match=rf"^{name} must be in \[0, 1\) .*\(member 1 of the sweep\)"
    ):
        jaxhp.run_sweep(grid, data, config, progress=False)


def test_an_mlp_fed_x_transposed_is_told_to_pass_x_t():
    x, y = np.zeros((6, 2), np.float32), np.array([0, 1] * 3)
    config = jaxhp.TrainConfig(layer_sizes=(2, 1), steps=2)
    with pytest.raises(ValueError, match=r"has 6 features .* takes 2 .*; x looks transposed: pass"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x.T, y)), config)
    with pytest.raises(
        ValueError,
        match=r"has 1 features but the first layer takes 2 \(layer_sizes\[0\], the rows of W1\)$",
    ):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((x[:, :1], y)), config)


def test_dev_weights_are_refused_not_ignored(data):
    (x, y), (x_dev, y_dev) = data.train, data.dev
    weighted_dev = jaxhp.Data((x, y), (x_dev, y_dev, np.ones(len(y_dev))))
    with pytest.raises(ValueError, match=r"data.dev must be a pair \(x, y\), got 3 arrays"):
        jaxhp.fit(0, jaxhp.HParams(), weighted_dev, MLP)


def _branches_on(name: str):
    """A model whose apply branches in Python on a hyperparameter (a traced value)."""

    def apply(p, x, *, key, hparams):
        return x @ p["w"] * (2.0 if getattr(hparams, name) < 1 else 1.0)

    return jaxhp.Model(lambda key: {"w": jnp.ones((2, 1))}, apply)


def test_python_control_flow_on_a_hyperparameter_says_it_is_traced(data):
    """Without the hint JAX raises TracerBoolConversionError from inside jaxhp's program."""
    config = jaxhp.TrainConfig(model=_branches_on("keep_prob"), steps=2)
    match = r"`if hparams.keep_prob < 1:`: hyperparameters are traced.*jnp.where"
    with pytest.raises(TypeError, match=match):
        jaxhp.fit(0, jaxhp.HParams(keep_prob=0.9), data, config)
    with pytest.raises(TypeError, match=match):
        jaxhp.run_sweep(sweep.grid(keep_prob=[0.5, 0.9]), data, config, progress=False)
    factory = MLP.replace(
        optimizer=lambda hp: optax.sgd(hp.learning_rate, momentum=hp.momentum or None)
    )
    with pytest.raises(TypeError, match=match):
        jaxhp.fit(0, jaxhp.HParams(momentum=0.9), data, factory)


def test_forward_and_loss_fed_x_transposed_say_so():
    params = jaxhp.init_mlp(jax.random.key(0), (2, 3, 1))
    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=r"x has 6 features .* takes 2 .*x looks transposed"):
        jaxhp.forward(params, x.T)  # no y: the shape alone says it
    (w1, b1), (w2, b2) = [(np.asarray(p.W), np.asarray(p.b)) for p in params]
    expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2  # the right layout still works
    np.testing.assert_allclose(jaxhp.forward(params, x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name, value",
    [
        ({"lambd": "0.7"}, "lambd", "'0.7'"),  # NumPy would parse it: the loss then fails
        ({"keep_prob": "0.8", "key": jax.random.key(1)}, "keep_prob", "'0.8'"),
        ({"lambd": None}, "lambd", "None"),
    ],
)
def test_loss_and_grad_check_refuse_a_hyperparameter_given_as_text(kwargs, name, value):
    params = jaxhp.init_mlp(jax.random.key(0), (2, 3, 1))
    x, y = np.ones((4, 2), np.float32), np.array([0, 1, 0, 1])
    match = rf"{name} must be a number, got {re.escape(value)} \("
    with pytest.raises(TypeError, match=match):
        jaxhp.loss(params, x, y, **kwargs)
    with pytest.raises(TypeError, match=match):  # not "unsupported operand" from losses.py
        jaxhp.grad_check(jaxhp.loss, params, x, y, **kwargs)


def test_a_float64_config_without_64_bit_jax_is_refused_not_truncated(data):
    """x64 off, a float64 config trained in float32 behind JAX's truncation warnings."""
    config = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=2, dtype="float64")
    with pytest.raises(ValueError, match=r"dtype='float64'\) needs JAX's 64-bit mode"):
        jaxhp.fit(jax.random.key(0), jaxhp.HParams(), data, config)
    step = jaxhp.make_update_step(config)
    x, y = data.train
    state = jaxhp.init_state(jaxhp.init_mlp(jax.random.key(0), (2, 3, 1)), config)
    with pytest.raises(ValueError, match=r"dtype='float64'\) needs JAX's 64-bit mode"):
        step(state, x, y, None, jaxhp.HParams())
    with jax.enable_x64(True):
        result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(), data, config)
    assert result.history.train_cost.dtype == np.float64


def test_every_warning_points_at_the_users_line(data):
    """A warning names the caller's file and line, however deep in jaxhp (or in a user's
    jit) it is raised: else filters by module miss it and the shown line is jaxhp's."""
    adam = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=1, optimizer="adam")
    misspelt = jaxhp.HParams(momentun=0.9)
    state = jaxhp.init_state(jaxhp.init_mlp(jax.random.key(0), (2, 3, 1)), adam)
    x, y = (np.asarray(v) for v in data.train)
    sweep_config = jaxhp.TrainConfig(model=_linear(), steps=1)

    def low_precision(p):
        return jnp.sum(jnp.tanh(p["w"].astype(jnp.bfloat16)) ** 2).astype(jnp.float32)

    calls = {
        "fit": lambda: jaxhp.fit(0, misspelt, data, adam),
        "update step": lambda: jaxhp.make_update_step(adam)(
            state, x, y, jax.random.key(0), misspelt
        ),
        "update step in a user's jit": lambda: jax.jit(jaxhp.make_update_step(adam))(
            state, x, y, jax.random.key(0), misspelt
        ),
        "l2": lambda: jaxhp.fit(0, jaxhp.HParams(), data, sweep_config.replace(l2="bias")),
        "run_sweep axis": lambda: jaxhp.run_sweep(
            sweep.grid(keep_prob=[0.5]), data, sweep_config, progress=False
        ),
        "run_sweep without dev": lambda: jaxhp.run_sweep(
            sweep.grid(lambd=[0.0]), jaxhp.Data(data.train), sweep_config, progress=False
        ),
        "diagnose": lambda: jaxhp.diagnose(train_error=0.10, dev_error=0.11, bayes_error=0.12),
        "grad_check": lambda: jaxhp.grad_check(low_precision, {"w": np.array([0.3, -1.2])}),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        assert caught, name
        assert {w.filename for w in caught} == {__file__}, (name, [str(w) for w in caught])


def test_input_dtype_refuses_what_would_corrupt_the_ids(data):
    """An integer input_dtype takes integers that fit it; a cast would truncate or wrap."""
    assert jaxhp.TrainConfig(layer_sizes=(2, 1), steps=1, input_dtype="bfloat16").input_dtype == (
        "bfloat16"  # a float dtype, as dtype= takes it
    )
    for bad in ("text", "bool", "complex64"):
        with pytest.raises(ValueError, match=f"input_dtype must be .*got '{bad}'"):
            jaxhp.TrainConfig(layer_sizes=(2, 1), steps=1, input_dtype=bad)
    model = _linear()
    ids = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    y = np.array([0, 1, 0, 1])
    config = jaxhp.TrainConfig(model=model, steps=1, input_dtype="int8")
    with pytest.raises(ValueError, match=r"train x holds 0.5, not an integer, but .*'int8'"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((ids + 0.5, y)), config)
    with pytest.raises(ValueError, match=r"dev x holds values from 0 to 350, outside .*-128, 127"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((ids, y), (ids * 50, y)), config)
    with pytest.raises(ValueError, match=r"input_dtype='int64'\) needs JAX's 64-bit mode.*'int32'"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((ids, y)), config.replace(input_dtype="int64"))
    with pytest.raises(ValueError, match=r"outside input_dtype int8"):  # sweeps check first
        jaxhp.run_sweep(sweep.grid(lambd=[0.0]), jaxhp.Data((ids * 50, y)), config, progress=False)


def test_configs_without_input_dtype_record_as_before_it_existed():
    """Optuna studies, checkpoints and results.json written before the field compare their
    config records to today's: unset, it is left out (else every old study is refused)."""
    from jaxhp.checkpoint import _plain_fields
    from jaxhp.records import config_record

    config = jaxhp.TrainConfig(layer_sizes=(2, 1), steps=1)
    for record in (config_record, _plain_fields):
        assert "input_dtype" not in record(config)
        assert record(config.replace(input_dtype="int32"))["input_dtype"] == "int32"


def test_integer_x_that_float32_would_round_is_warned_about(data):
    """Ids above 2**24 became even numbers in float32 (odd + 1): the parity, and any id
    hash, was lost without a word. Integer x below that casts exactly: no warning."""
    ids = (2**24 + np.arange(20))[:, None].repeat(2, axis=1)
    y = ids[:, 0] % 2
    config = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=1)
    with pytest.warns(UserWarning, match=r"train x holds integers up to 16777235, but float32 "
                      r"rounds integers above 16777216: .*input_dtype='int32'"):  # fmt: skip
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((ids, y)), config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((ids - 2**24, y)), config)
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data(((ids % 2).astype(np.uint8) * 255, y)), config)
    huge = np.array([[2**63 + 1, 0], [0, 1]] * 5, np.uint64)  # past int64: no wrap to negative
    with pytest.warns(UserWarning, match=r"holds integers up to 9223372036854775809,"):
        jaxhp.fit(0, jaxhp.HParams(), jaxhp.Data((huge, np.arange(10) % 2)), config)
