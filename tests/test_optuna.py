"""The Optuna bridge: batches of trials trained as sweeps, told back to the study."""

import dataclasses
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import jaxhp
from jaxhp.sweep import member_key

optuna = pytest.importorskip("optuna")
bridge = pytest.importorskip("jaxhp.integrations.optuna")
Float = optuna.distributions.FloatDistribution
Categorical = optuna.distributions.CategoricalDistribution
State = optuna.trial.TrialState

CONFIG = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=30, eval_every=10)
BASE = jaxhp.HParams(learning_rate=0.1)


@pytest.fixture(scope="module")
def data():
    x, y = jaxhp.datasets.moons(96, noise=0.2, seed=0)
    xd, yd = jaxhp.datasets.moons(48, noise=0.2, seed=1)
    return jaxhp.Data(train=(x, y), dev=(xd, yd))


DISTS = {"lambd": Float(1e-3, 1.0, log=True), "learning_rate": Float(0.05, 1.0, log=True)}


def _standalone_best_dev_cost(params: dict, data) -> float:
    hp = BASE._replace(**params)
    result = jaxhp.fit(member_key(0, 0), hp, data, CONFIG)
    return float(np.min(np.asarray(result.history.dev_cost)))


def test_trials_are_told_their_standalone_dev_cost(data):
    study = bridge.create_study(sampler="tpe", seed=0)
    bridge.optimize(study, DISTS, data, CONFIG, n_trials=6, batch_size=4, base=BASE)
    complete = study.get_trials(states=(State.COMPLETE,))
    assert len(complete) == 6
    assert all(set(t.params) == set(DISTS) for t in complete)
    for trial in complete[3:5]:  # one from each batch (the second one was padded)
        expected = _standalone_best_dev_cost(trial.params, data)
        np.testing.assert_allclose(trial.value, expected, rtol=1e-5)
        assert 0.0 <= trial.user_attrs["dev_accuracy"] <= 1.0
        assert trial.user_attrs["diverged"] is False
        assert trial.user_attrs["stop_step"] == CONFIG.steps


def test_a_name_the_optimizer_reads_needs_no_base(data):
    """momentum, read by optimizer='momentum', is searched as run_sweep sweeps it, without
    declaring it in base first; each trial trains with its own momentum, as fit does."""
    config = CONFIG.replace(optimizer="momentum")
    study = bridge.create_study(sampler="random", seed=0)
    dists = {"momentum": Float(0.0, 0.95)}
    bridge.optimize(study, dists, data, config, n_trials=2, base=BASE, keep_history=True)
    for trial in study.get_trials(states=(State.COMPLETE,)):
        hp = jaxhp.HParams(**BASE._asdict(), momentum=trial.params["momentum"])
        result = jaxhp.fit(member_key(0, 0), hp, data, config)
        np.testing.assert_allclose(trial.value, np.min(np.asarray(result.history.dev_cost)),
                                   rtol=1e-5)  # fmt: skip
    assert study.trials[0].params["momentum"] != study.trials[1].params["momentum"]
    assert len(bridge.study_results(study, config)) == 2  # its table rebuilds too
    assert len(bridge.study_results(study, config, base=BASE)) == 2  # with the base given
    # a searched name's base value is never trained with: another range, or a base that
    # names it (as `jaxhp tune` gives), continue the same study
    narrower = {"momentum": Float(0.8, 0.95)}
    bridge.optimize(study, narrower, data, config, n_trials=1, base=BASE, keep_history=True)
    declared = jaxhp.HParams(**BASE._asdict(), momentum=0.9)
    bridge.optimize(study, narrower, data, config, n_trials=1, base=declared, keep_history=True)
    assert len(bridge.study_results(study, config, base=declared)) == 4


def test_a_new_name_close_to_a_known_one_is_searched_when_the_model_reads_it(data):
    """keep_prob_in is close to keep_prob, yet a name of its own the model reads: searched,
    as run_sweep sweeps it, not refused with "did you mean 'keep_prob'?"."""

    def apply(p, x, *, key, hparams):
        return (x * hparams.keep_prob_in) @ p["w"]

    model = jaxhp.Model(lambda key: {"w": jax.random.normal(key, (2, 1))}, apply)
    config = jaxhp.TrainConfig(model=model, steps=5, l2="w")
    study = bridge.create_study(sampler="random", seed=0)
    bridge.optimize(study, {"keep_prob_in": Float(0.5, 1.0)}, data, config, n_trials=2)
    assert len(study.get_trials(states=(State.COMPLETE,))) == 2


def test_a_trials_accuracies_are_those_of_its_best_evaluation():
    """The value is the dev cost at the best evaluation; train_accuracy came from the last
    one. A small noisy set over-fits, so the best evaluation comes well before the end."""
    data = jaxhp.datasets.load("moons", n_train=40, n_dev=200, n_test=0, noise=0.35)
    config = jaxhp.TrainConfig(layer_sizes=(2, 32, 32, 1), steps=1500, eval_every=50)
    study = bridge.create_study(sampler="random", seed=0)
    dists = {"learning_rate": Float(0.5, 0.5001)}
    bridge.optimize(study, dists, data, config, n_trials=1, batch_size=1)
    (trial,) = study.trials
    fitted = jaxhp.fit(member_key(0, 0), jaxhp.HParams(**trial.params), data, config)
    best = int(np.argmin(np.asarray(fitted.history.dev_cost)))
    assert best < len(fitted.history.step) - 1  # the case: not the last evaluation
    assert trial.user_attrs["best_step"] == int(fitted.history.step[best])
    for name in ("train_accuracy", "dev_accuracy"):
        expected = float(getattr(fitted.history, name)[best])
        assert trial.user_attrs[name] == pytest.approx(expected, abs=1e-6)


def test_a_point_asked_twice_is_trained_and_told_twice(data):
    # A sampler may ask for one point twice (here: the only one there is); both trials
    # are trained (one identical run each) and told the same value.
    study = bridge.create_study(sampler="random", seed=0)
    one_point = {"lambd": Categorical([0.1])}
    bridge.optimize(study, one_point, data, CONFIG, n_trials=2, batch_size=2, base=BASE)
    complete = study.get_trials(states=(State.COMPLETE,))
    assert len(complete) == 2
    expected = _standalone_best_dev_cost({"lambd": 0.1}, data)
    np.testing.assert_allclose([t.value for t in complete], [expected] * 2, rtol=1e-5)


def test_diverged_trials_are_told_as_fail(data):
    study = bridge.create_study(sampler="random", seed=0)
    study.enqueue_trial({"learning_rate": 1e6})
    study.enqueue_trial({"learning_rate": 0.1})
    bridge.optimize(
        study,
        {"learning_rate": Float(0.01, 1e6, log=True)},
        data,
        CONFIG,
        n_trials=2,
        batch_size=2,
        base=BASE,
    )
    by_rate = {t.params["learning_rate"]: t for t in study.trials}
    assert by_rate[1e6].state == State.FAIL
    assert by_rate[1e6].user_attrs["diverged"] is True
    assert by_rate[0.1].state == State.COMPLETE


def test_trials_left_running_by_a_killed_run_are_trained_again(data):
    study = bridge.create_study(sampler="random", seed=1)
    stale = study.ask(DISTS)  # as a killed optimize() leaves it
    stale.set_user_attr(bridge.MARK, True)
    foreign = study.ask(DISTS)  # asked by someone else: left alone
    # drawn from other ranges (the invalid ones that failed their batch, say): not retrained
    elsewhere = study.ask({**DISTS, "learning_rate": Float(2.0, 5.0, log=True)})
    elsewhere.set_user_attr(bridge.MARK, True)
    wider = study.ask({**DISTS, "momentum": Float(0.1, 0.9)})  # a name these do not draw
    wider.set_user_attr(bridge.MARK, True)
    other_choices = study.ask({**DISTS, "keep_prob": Categorical([0.7])})
    other_choices.set_user_attr(bridge.MARK, True)
    assert bridge.stale_trials(study, {**DISTS, "keep_prob": Categorical([0.8, 0.9])}) == []
    bridge.optimize(study, DISTS, data, CONFIG, n_trials=2, batch_size=2, base=BASE)
    states = {t.number: t.state for t in study.trials}
    assert states[stale.number] == State.COMPLETE and states[foreign.number] == State.RUNNING
    assert states[elsewhere.number] == states[wider.number] == State.RUNNING
    assert sum(state == State.COMPLETE for state in states.values()) == 2  # and one new
    expected = _standalone_best_dev_cost(study.trials[stale.number].params, data)
    np.testing.assert_allclose(study.trials[stale.number].value, expected, rtol=1e-5)


def test_sqlite_study_resumes_in_a_second_process(data, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = bridge.create_study(storage=url, study_name="s", seed=0)
    bridge.optimize(study, DISTS, data, CONFIG, n_trials=2, batch_size=2)
    script = textwrap.dedent(
        f"""
        import jaxhp, optuna
        from jaxhp.integrations import optuna as bridge
        F = optuna.distributions.FloatDistribution
        x, y = jaxhp.datasets.moons(96, noise=0.2, seed=0)
        xd, yd = jaxhp.datasets.moons(48, noise=0.2, seed=1)
        data = jaxhp.Data(train=(x, y), dev=(xd, yd))
        config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=30, eval_every=10)
        study = bridge.create_study(storage={url!r}, study_name="s", seed=1)
        dists = {{"lambd": F(1e-3, 1.0, log=True), "learning_rate": F(0.05, 1.0, log=True)}}
        bridge.optimize(study, dists, data, config, n_trials=2, batch_size=2)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    resumed = optuna.load_study(study_name="s", storage=url)
    complete = resumed.get_trials(states=(State.COMPLETE,))
    assert [t.number for t in complete] == [0, 1, 2, 3]
    best = min(complete, key=lambda t: t.value)
    assert resumed.best_trial.number == best.number


def _searching(name):
    """optimize over one distribution named ``name`` (a study and data to come)."""
    return lambda s, d: bridge.optimize(s, {name: Float(0, 1)}, d, CONFIG, n_trials=1)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s, d: bridge.optimize(s, {}, d, CONFIG, n_trials=1), TypeError, "distributions"),
        (  # sgd reads no momentum: refused before any trial is asked, as run_sweep would
            _searching("momentum"),
            ValueError,
            r"'momentum', which neither the model, .*use optimizer='momentum', which reads",
        ),
        (_searching("momentun"), ValueError, r"'momentun', which neither .*check its spelling"),
        (_searching("lamdb"), ValueError, r"'lamdb', which neither .*did you mean 'lambd'\?"),
        (_searching("lambda"), ValueError, r"'lambda', which is no.*did you mean 'lambd'\?"),
        (_searching("class"), ValueError, r"'class', .*identifiers that are not keywords"),
        (
            lambda s, d: bridge.optimize(s, {"lambd": (0, 1)}, d, CONFIG, n_trials=1),
            TypeError,
            r"distributions\['lambd'\] must be an optuna distribution",
        ),
        (
            lambda s, d: bridge.optimize(
                s, {"lambd": Categorical(["small", "big"])}, d, CONFIG, n_trials=1
            ),
            ValueError,
            "non-numeric choices",
        ),
        (
            lambda s, d: bridge.optimize(s, DISTS, d, CONFIG, n_trials=2, batch_size=0),
            ValueError,
            "batch_size must be a positive int, got 0",
        ),
        (
            lambda s, d: bridge.optimize(s, DISTS, d, CONFIG, n_trials=2, vmap_width=0),
            ValueError,
            "vmap_width must be",
        ),
        (
            lambda s, d: bridge.optimize(s, DISTS, d, CONFIG, n_trials=0),
            ValueError,
            "n_trials must be a positive int",
        ),
        (
            lambda s, d: bridge.optimize(s, DISTS, d, CONFIG, n_trials=1, chunk_size=4),
            ValueError,
            "chunk_size",
        ),
        (
            lambda s, d: bridge.optimize(
                s, DISTS, d, CONFIG, n_trials=1, schedule=jaxhp.sweep.halving(3, min_steps=10)
            ),
            ValueError,
            "optimize trains every trial to config.steps; leave schedule out",
        ),
        (
            lambda s, d: bridge.optimize(
                optuna.create_study(direction="maximize"), DISTS, d, CONFIG, n_trials=1
            ),
            ValueError,
            "study must minimise",
        ),
        (lambda s, d: bridge.optimize("study", DISTS, d, CONFIG, n_trials=1), TypeError, "study"),
        (  # a range that reaches invalid values: refused before any trial is asked
            lambda s, d: bridge.optimize(s, {"keep_prob": Float(0.5, 1.5)}, d, CONFIG, n_trials=1),
            ValueError,
            r"distributions\['keep_prob'\] = .* near 1.5, but keep_prob must be in \(0, 1\]$",
        ),
        (
            lambda s, d: bridge.optimize(s, {"learning_rate": Float(-1, 1)}, d, CONFIG, n_trials=1),
            ValueError,
            r"distributions\['learning_rate'\] = .* near -1.0, but learning_rate must be",
        ),
        (  # checked as trained, in float32: 1 - 1e-8 is 1.0 there
            lambda s, d: bridge.optimize(
                s,
                {"momentum": Float(0.99999999, 1.0)},
                d,
                CONFIG.replace(optimizer="momentum"),
                n_trials=1,
                base=jaxhp.HParams(momentum=0.9),
            ),
            ValueError,
            r"distributions\['momentum'\] = .* near 0.99999999, but momentum must be in \[0, 1\)",
        ),
        (lambda s, d: bridge.create_study(sampler="grid"), ValueError, "unknown sampler 'grid'"),
        (
            lambda s, d: bridge.create_study(storage="sqlite:////no/such/dir/s.db"),
            ValueError,
            r"storage 'sqlite:////no/such/dir/s.db' names .*, whose folder /no/such/dir does not",
        ),
        (lambda s, d: bridge.create_study(storage="nosuchdb://x"), ValueError, "cannot be opened"),
    ],
)
def test_bad_input_is_refused_before_training(data, call, error, match, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained despite bad input")

    monkeypatch.setattr(jaxhp.sweep, "run_sweep", no_training)
    study = optuna.create_study()
    with pytest.raises(error, match=match):
        call(study, data)
    assert not study.trials


def test_without_dev_data_the_objective_is_the_train_cross_entropy(data):
    study = bridge.create_study(seed=0)
    train_only = jaxhp.Data(train=data.train)
    dists = {"lambd": Float(1e-3, 1.0, log=True)}
    with pytest.warns(UserWarning, match="no dev set: the objective is the train cross-ent"):
        bridge.optimize(study, dists, train_only, CONFIG, n_trials=1, base=BASE)
    (trial,) = study.trials
    hp = BASE._replace(lambd=trial.params["lambd"])
    history = jaxhp.fit(member_key(0, 0), hp, train_only, CONFIG).history
    # Without dev data the history's dev columns repeat the train cross-entropy.
    np.testing.assert_allclose(trial.value, np.min(np.asarray(history.dev_cost)), rtol=1e-5)


def test_an_adam_trial_refits_bit_for_bit_on_as_many_devices_as_it_trained_on(data):
    """XLA rounds Adam differently in a one-device program than in one split over devices
    (see test_sweep): the trials record their devices, and the refit splits as they did."""
    study = bridge.create_study(sampler="random", seed=0)
    config = CONFIG.replace(optimizer="adam")
    kwargs = {"n_trials": 2, "batch_size": 2, "base": BASE, "keep_history": True}
    bridge.optimize(study, DISTS, data, config, devices=2, **kwargs)
    results = bridge.study_results(study, config, base=BASE)
    assert results.meta["devices"] == ["cpu:0", "cpu:1"]
    for i in (0, 1):
        refitted = jaxhp.sweep.refit(results, i, data, config)
        np.testing.assert_array_equal(refitted.history.dev_cost, results.history.dev_cost[i])


def test_study_results_refit_with_the_seed_the_trials_were_trained_with(data):
    study = bridge.create_study(sampler="random", seed=0)
    kwargs = {"n_trials": 2, "batch_size": 2, "base": BASE, "keep_history": True}
    bridge.optimize(study, DISTS, data, CONFIG, seed=7, **kwargs)
    results = bridge.study_results(study, CONFIG, base=BASE)
    assert results.meta["seed"] == 7
    refitted = jaxhp.sweep.refit(results, 1, data, CONFIG)  # the trial column is a label
    trial = study.get_trials(states=(State.COMPLETE,))[1]
    hp = BASE._replace(**{k: np.float32(v) for k, v in trial.params.items()})
    alone = jaxhp.fit(member_key(7, 0), hp, data, CONFIG)  # member seed 0, base seed 7
    # the trial's stored history bit for bit (the sweep's program), and fit's to rounding
    np.testing.assert_array_equal(refitted.history.dev_cost, results.history.dev_cost[1])
    np.testing.assert_allclose(refitted.history.dev_cost, alone.history.dev_cost, rtol=1e-5)
    # The trials record the config, the data and the base: a refit checks all three.
    with pytest.raises(ValueError, match=r"eval_every=5, the sweep's eval_every=10"):
        jaxhp.sweep.refit(results, 1, data, CONFIG.replace(eval_every=5))
    other = jaxhp.Data(train=data.train, dev=(data.dev[0] + 0.01, data.dev[1]))
    with pytest.raises(ValueError, match="data is not what the sweep trained on"):
        jaxhp.sweep.refit(results, 1, other, CONFIG)
    recorded_base = bridge.study_results(study, CONFIG)  # no base: the trials' own
    np.testing.assert_array_equal(recorded_base.hparams.keep_prob, results.hparams.keep_prob)
    with pytest.raises(ValueError, match="base is not what optimize was given"):
        bridge.study_results(study, CONFIG, base=BASE._replace(keep_prob=0.5))
    as32 = bridge.study_results(study, CONFIG, base=jaxhp.HParams(learning_rate=np.float32(0.1)))
    np.testing.assert_array_equal(as32.hparams.lambd, results.hparams.lambd)  # one value
    # A second call must train as the first did: one study, one training setup.
    for change, match in [
        ({"seed": 8}, r"trial 0 of the study was trained with another seed: 7 \(here 8\)"),
        ({"config": CONFIG.replace(steps=20)}, r"another config: steps 30 \(here 20\)"),
        ({"data": other}, r"trained with other data \(the train and dev arrays differ\)"),
        ({"base": BASE._replace(keep_prob=0.5)}, r"another base: .*keep_prob.*here"),
    ]:
        call = {"data": data, "config": CONFIG, "seed": 7, **kwargs, **change}
        with pytest.raises(ValueError, match=match):
            bridge.optimize(study, DISTS, n_trials=2, **{k: v for k, v in call.items()
                                                          if k != "n_trials"})  # fmt: skip
    assert len(study.trials) == 2  # nothing asked
    with pytest.raises(ValueError, match=r"trial 0 was trained with another config: steps 30"):
        bridge.study_results(study, CONFIG.replace(steps=20))
    unknown = dataclasses.replace(results, meta={**results.meta, "seed": None})
    with pytest.raises(ValueError, match=r"member 0's base seed is unknown"):
        jaxhp.sweep.refit(unknown, 0, data, CONFIG)


def test_trials_told_without_a_recorded_seed_have_an_unknown_base_seed():
    study = optuna.create_study()
    for seed in (None, 0):
        trial = study.ask()
        if seed is not None:
            trial.set_user_attr("seed", seed)
        study.tell(trial, 1.0)
    assert bridge._common(study.trials, "seed") is None  # not 0: one trial does not say
    assert bridge._common(study.trials[1:], "seed") == 0


def test_study_results_rank_as_the_study_and_know_the_dev_sets_resolution(data):
    """The table ranks trials by the study's objective (the best dev cost), not by dev
    accuracy, and knows the dev set's size and chance level, as run_sweep's results do."""
    study = bridge.create_study(sampler="random", seed=0)
    kwargs = {"n_trials": 8, "batch_size": 4, "base": BASE, "keep_history": True}
    # learning rates up to 5: the dev accuracy then orders the trials otherwise than the cost
    dists = {**DISTS, "learning_rate": Float(0.05, 5.0, log=True)}
    bridge.optimize(study, dists, data, CONFIG, **kwargs)
    results = bridge.study_results(study, CONFIG, base=BASE)
    told = [
        t.number for t in sorted(study.get_trials(states=(State.COMPLETE,)), key=lambda t: t.value)
    ]
    ranked = [row["trial"] for row in results.summary()]
    assert ranked[: len(told)] == told  # the study's order, FAILs last
    assert [row["trial"] for row in results.summary("best_dev_accuracy")][: len(told)] != told
    assert results.meta["m_dev"] == len(data.dev[1]) and results.meta["m_train"] == 96
    labels = np.asarray(data.dev[1]).ravel()
    majority = max(np.mean(labels == 0), np.mean(labels == 1))
    assert results.meta["chance_error"] == pytest.approx(1 - majority)
    # one dev example is the resolution of an accuracy (one seed: no spread to measure)
    by_accuracy = results.summary(metric="dev_accuracy")
    assert by_accuracy[0]["noise"] == pytest.approx(1 / len(data.dev[1]))


def test_study_results_without_histories_says_how_to_keep_them(data):
    study = bridge.create_study(sampler="random", seed=0)
    bridge.optimize(study, DISTS, data, CONFIG, n_trials=1, base=BASE)
    with pytest.raises(ValueError, match=r"run optimize with keep_history=True"):
        bridge.study_results(study, CONFIG)
    assert "dev_accuracy" in study.trials[0].user_attrs  # the final metrics are there


def test_a_study_of_float64_data_resumes_and_its_members_refit(data):
    # the study records the data as trained on (float32); float64 arrays are the same data
    wide = jaxhp.Data(*(tuple(np.asarray(a, np.float64) if a.dtype.kind == "f" else a
                              for a in pair) for pair in data[:2]))  # fmt: skip
    study = bridge.create_study(sampler="random", seed=0)
    dists = {"learning_rate": Float(0.0, 1.0), "lambd": Float(0.0, 1.0)}  # 0 is no trial's
    kwargs = {"n_trials": 2, "batch_size": 2, "base": BASE, "keep_history": True}
    bridge.optimize(study, dists, wide, CONFIG, **kwargs)
    bridge.optimize(study, dists, wide, CONFIG, **kwargs)  # same setup: not refused
    bridge.optimize(study, dists, data, CONFIG, **kwargs)  # float32: the same data
    results = bridge.study_results(study, CONFIG)
    refitted = jaxhp.sweep.refit(results, 0, wide, CONFIG)
    np.testing.assert_allclose(refitted.history.dev_cost, results.history.dev_cost[0], 1e-5)


def test_trials_at_a_chosen_width_refit_at_it_and_resume_only_at_it(data):
    study = bridge.create_study(sampler="random", seed=1)
    kwargs = {"base": BASE, "keep_history": True, "devices": 1}  # 3 trials fill 3 lanes
    bridge.optimize(study, DISTS, data, CONFIG, n_trials=3, batch_size=3, vmap_width=3, **kwargs)
    results = bridge.study_results(study, CONFIG, base=BASE)
    assert results.meta["vmap_width_given"] == 3
    for i, refitted in enumerate(jaxhp.sweep.refit_together(results, [0, 1, 2], data, CONFIG)):
        for field in results.history._fields:  # trained at width 3 again, not jaxhp's 8
            np.testing.assert_array_equal(
                getattr(results.history, field)[i], getattr(refitted.history, field)
            )
    rule = jaxhp.sweep._vmap_width(CONFIG, len(data.train[0]), (2,))  # 8 on the CPU
    with pytest.raises(ValueError, match=rf"another vmap_width: 3 \(here {rule}\)"):
        bridge.optimize(study, DISTS, data, CONFIG, n_trials=1, batch_size=1, **kwargs)
    # a study trained at the rule's width resumes with that width given explicitly
    ruled = bridge.create_study(sampler="random", seed=2)
    bridge.optimize(ruled, DISTS, data, CONFIG, n_trials=1, batch_size=1, **kwargs)
    with pytest.warns(UserWarning, match="lanes are padding"):  # 1 trial in `rule` lanes
        bridge.optimize(
            ruled, DISTS, data, CONFIG, n_trials=1, batch_size=1, vmap_width=rule, **kwargs
        )
    assert bridge.study_results(ruled, CONFIG, base=BASE).meta["vmap_width"] == rule
