"""``jaxhp tune``: Optuna's sampler over vmapped batches, from the command line."""

import csv
import json
import re
import sys

import numpy as np
import pytest

import jaxhp
import jaxhp.cli
import jaxhp.integrations.optuna
import jaxhp.sweep
from jaxhp.cli import main
from jaxhp.sweep import member_key

optuna = pytest.importorskip("optuna")
State = optuna.trial.TrialState

TINY = ["--n-train", "100", "--n-dev", "40", "--layers", "4", "--steps", "30"]
TINY += ["--eval-every", "10", "--quiet"]


def _with(argv: list[str], flags) -> list[str]:
    """``argv`` with ``flags`` (``--name value`` pairs, or a lone switch) added; a flag it
    has already takes the new value (a flag may be given only once)."""
    argv, flags = list(argv), list(flags)
    while flags:
        flag = flags.pop(0)
        value = flags.pop(0) if flags and not flags[0].startswith("--") else None
        if flag in argv and value is not None:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag] if value is None else [flag, value]
    return argv


def _tune(tmp_path, *flags, trials=4):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    argv = ["tune", "--trials", str(trials), "--batch", "2", "--storage", url, *TINY]
    return main(_with([*argv, "--out", str(tmp_path / "out")], flags)), url


def _rows(tmp_path) -> list[dict]:
    with (tmp_path / "out" / "results.csv").open() as f:
        return list(csv.DictReader(f))


def _standalone_best_dev_cost(params: dict) -> float:
    """The trial trained alone by jaxhp.fit, on the data the CLI draws."""
    data = jaxhp.datasets.load("moons", n_train=100, n_dev=40, n_test=0, seed=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=30, eval_every=10)
    result = jaxhp.fit(member_key(0, 0), jaxhp.HParams(**params), data, config)
    return float(np.min(np.asarray(result.history.dev_cost)))


def test_tune_writes_the_study_as_a_sweep_table(tmp_path, capsys):
    code, url = _tune(tmp_path, "--keep-prob", "0.9", "--learning-rate", "0.1,0.5")
    text = capsys.readouterr().out
    assert code == 0
    assert "tune: 4 trials to train in batches of 2, tpe sampler over lambd, learning_rate" in text
    assert text.rstrip().splitlines()[-1].startswith("done: best: ")
    for name in ("results.csv", "results.json", "heatmap.png", "curves.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0

    study = optuna.load_study(study_name="jaxhp-tune", storage=url)
    trials = {t.number: t for t in study.get_trials(states=(State.COMPLETE,))}
    rows = _rows(tmp_path)
    assert sorted(int(r["trial"]) for r in rows) == sorted(trials) == [0, 1, 2, 3]
    for row in rows:
        trial = trials[int(row["trial"])]
        assert float(row["lambd"]) == pytest.approx(trial.params["lambd"], rel=1e-6)
        assert 1e-4 <= trial.params["lambd"] <= 10
        assert trial.params["learning_rate"] in (0.1, 0.5)  # a choice, not a range
        assert float(row["keep_prob"]) == pytest.approx(0.9)  # fixed: not in the study
        assert "keep_prob" not in trial.params
        assert float(row["best_dev_cost"]) == pytest.approx(trial.value, rel=1e-6)
    best = min(rows, key=lambda r: float(r["best_dev_cost"]))
    assert float(best["best_dev_cost"]) == pytest.approx(study.best_value, rel=1e-6)
    assert int(best["trial"]) == study.best_trial.number
    expected = _standalone_best_dev_cost({**study.best_trial.params, "keep_prob": 0.9})
    assert study.best_value == pytest.approx(expected, rel=1e-5)
    # the study, back in Python: a refit of its best trial is its stored history
    results, data, config = jaxhp.cli.load_run(tmp_path / "out" / "results.json")
    assert int(results.best()["trial"]) == study.best_trial.number  # ranked as the study
    i = int(np.flatnonzero(np.asarray(results.static["trial"]) == study.best_trial.number)[0])
    refitted = jaxhp.sweep.refit(results, i, data, config)
    np.testing.assert_array_equal(refitted.history.dev_cost, results.history.dev_cost[i])


def test_a_second_run_resumes_the_study_without_retraining(tmp_path, capsys, monkeypatch):
    code, url = _tune(tmp_path, trials=2)
    assert code == 0
    first = {t.number: t for t in optuna.load_study(study_name="jaxhp-tune", storage=url).trials}
    # a killed run leaves its batch RUNNING: the next run trains it again
    study = optuna.load_study(study_name="jaxhp-tune", storage=url)
    killed = study.ask(first[0].distributions)
    killed.set_user_attr("jaxhp", True)

    trained = []
    run_sweep = jaxhp.sweep.run_sweep

    def counting(space, *args, **kwargs):
        trained.append(len(space))
        return run_sweep(space, *args, **kwargs)

    monkeypatch.setattr(jaxhp.sweep, "run_sweep", counting)
    capsys.readouterr()
    code, _ = _tune(tmp_path, trials=4)
    text = capsys.readouterr().out
    assert code == 0
    assert (
        "resuming study 'jaxhp-tune' in sqlite:///" in text.splitlines()[0]
        and "2 of 4 trials finished; 1 trial an interrupted run left unfinished is trained again"
        in text
    )
    assert trained == [2]  # the killed trial and one new one; trials 0 and 1 are kept
    resumed = optuna.load_study(study_name="jaxhp-tune", storage=url)
    assert [t.state for t in resumed.trials] == [State.COMPLETE] * 4
    for number in (0, 1):
        assert resumed.trials[number].datetime_complete == first[number].datetime_complete
    assert sorted(int(r["trial"]) for r in _rows(tmp_path)) == [0, 1, 2, 3]

    capsys.readouterr()
    code, _ = _tune(tmp_path, trials=4)  # nothing left: the table is written again
    text = capsys.readouterr().out
    assert code == 0 and "tune: nothing to train" in text and "note: its trials" not in text
    assert trained == [2]
    # another sampler may go on with the study (Optuna keeps none), and the run says so
    code, _ = _tune(tmp_path, "--sampler", "random", trials=5)
    text = capsys.readouterr().out
    assert code == 0 and trained == [2, 1]
    assert (
        "note: its trials so far were sampled by tpe; the next come from --sampler random" in text
    )


def test_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxhp.sweep, "run_sweep", interrupted)
    code, _ = _tune(tmp_path)
    assert code == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("interrupted: 0 of 4 trials finished in study 'jaxhp-tune'")
    assert err.endswith(
        "re-run the same command to resume (the 2 trials it was training stay RUNNING in the "
        "study and are trained again then)"
    )
    study = optuna.load_study(study_name="jaxhp-tune", storage=f"sqlite:///{tmp_path}/study.db")
    assert [t.state for t in study.trials] == [State.RUNNING] * 2
    # Resumed, the first batch is trained again and the sampler goes on: it must not
    # replay that batch's draws (no trial finished, so a seed moved on by the finished
    # trials started over, and the study held every configuration twice).
    monkeypatch.undo()
    code, url = _tune(tmp_path)
    assert code == 0
    trials = optuna.load_study(study_name="jaxhp-tune", storage=url).trials
    assert [t.state for t in trials] == [State.COMPLETE] * 4
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4


@pytest.fixture
def no_training(monkeypatch):
    def trained(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(jaxhp.sweep, "run_sweep", trained)


BAD = [
    (["--batch", "0"], "argument --batch: expected an int >= 1, got 0"),
    (["--trials", "0"], "argument --trials: expected an int >= 1, got 0"),
    (["--sampler", "tpee"], "argument --sampler: invalid choice: 'tpee'.*did you mean tpe\\?"),
    (
        ["--storage", "sqlite:///TMP/no/such/folder/s.db"],
        "--storage sqlite:///.*/no/such/folder/s.db: .*the file .*/no/such/folder/s.db, whose "
        "folder .*/no/such/folder does not exist",
    ),
    (["--storage", "not a url"], "--storage not a url: .*cannot be opened"),
    (  # three slashes: a path relative to the working folder
        ["--storage", "sqlite:///no-such-folder/s.db"],
        r"the file no-such-folder/s.db, whose folder no-such-folder does not exist \(sqlite:/// ",
    ),
    (
        ["--layers", "4,3", "--keep-prob", "0.8/0.9,0.7/0.6"],
        "--keep-prob 0.8/0.9,0.7/0.6: per-layer values",
    ),
    (
        ["--lambd", "0", "--keep-prob", "1", "--learning-rate", "0.1"],
        "--lambd, --keep-prob and --learning-rate are all fixed",
    ),
    (["--lambd", "loguniform:0:1"], "argument --lambd: 'loguniform:0:1' needs 0 < a < b"),
    (
        ["--optimizer", "adam", "--b2", "one_minus_loguniform:0.9:0.999"],
        "--b2 one_minus_loguniform:0.9:0.999: Optuna has no 1 − β log scale",
    ),
    (
        ["--lambd", "0", "--keep-prob", "1", "--lr", "0.1", "--optimizer", "adam", "--b1", "0.8"],
        "--lambd, --keep-prob, --learning-rate and --b1 are all fixed",
    ),
]


def test_the_optimizers_own_hyperparameters_are_searched_too():
    """--b1 a choice and --b2 a range become the study's distributions, next to λ's."""
    argv = ["tune", "--trials", "4", "--batch", "2", "--optimizer", "adam", "--b1", "0.8,0.9"]
    args = jaxhp.cli.build_parser().parse_args([*argv, "--b2", "uniform:0.99:0.999"])
    distributions, base = jaxhp.cli._tune_space(args)
    assert distributions["b1"] == optuna.distributions.CategoricalDistribution([0.8, 0.9])
    assert distributions["b2"] == optuna.distributions.FloatDistribution(0.99, 0.999)
    assert distributions["lambd"] == optuna.distributions.FloatDistribution(1e-4, 10, log=True)
    # what optimize checks first: every searched name is a hyperparameter of the base
    assert set(distributions) <= set(base._fields)
    bridge = jaxhp.integrations.optuna
    assert bridge._check_distributions(distributions, bridge._hparam_names(base))


@pytest.mark.parametrize(("flags", "message"), BAD)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, no_training, flags, message):
    flags = [f.replace("TMP", str(tmp_path)) for f in flags]
    argv = ["tune", "--trials", "4", "--batch", "2", *TINY, "--out", str(tmp_path / "o")]
    try:
        code = main(_with(argv, flags))
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()  # nothing written


def test_without_optuna_it_says_how_to_install_it(tmp_path, capsys, no_training, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    assert main(["tune", "--trials", "4", "--batch", "2", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "jaxhp tune: error: jaxhp tune needs optuna: pip install 'jaxhp[optuna]'"


def test_a_stored_study_of_other_settings_is_not_mixed_in(tmp_path, capsys, monkeypatch):
    mine = ["--optimizer", "momentum", "--momentum", "0.8"]
    code, url = _tune(tmp_path, *mine, "--batch", "8", trials=2)
    assert code == 0
    assert "tune: 2 trials to train in batches of 2," in capsys.readouterr().out  # not of 8
    monkeypatch.setattr(jaxhp.sweep, "run_sweep", lambda *a, **k: pytest.fail("trained"))
    capsys.readouterr()
    assert _tune(tmp_path, *mine, trials=1)[0] == 0  # the study holds more than asked for
    out = capsys.readouterr().out
    assert "it holds 2 finished trials, --trials asks for 1" in out
    assert "tune: nothing to train (raise --trials to search further)," in out
    assert "trained nothing; the study holds 2 finished trials" in out
    code, _ = _tune(tmp_path, *mine, "--steps", "20")
    assert code == 2
    err = capsys.readouterr().err
    assert "--study-name jaxhp-tune in --storage sqlite:///" in err
    assert "(steps: 30 there, 20 here)" in err
    assert _tune(tmp_path, "--optimizer", "momentum", "--momentum", "0.9")[0] == 2
    assert "search" in capsys.readouterr().err  # the optimizer's own value is searched too
    code, _ = _tune(tmp_path, *mine, "--n-test", "50", trials=2)  # a test split shapes no trial
    out = capsys.readouterr().out
    assert code == 0 and "tune: nothing to train" in out, out
    said = re.search(r"test accuracy of the chosen configuration \(.*\): (\S+) on 50", out)
    # The study's best trial (ranked by best_dev_cost), trained alone, at its best params.
    best = optuna.load_study(study_name="jaxhp-tune", storage=url).best_trial
    data = jaxhp.datasets.load("moons", n_train=100, n_dev=40, n_test=50, seed=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=30, eval_every=10, optimizer="momentum")
    hp = jaxhp.HParams(**best.params, momentum=0.8)
    params = jaxhp.fit(member_key(0, 0), hp, data, config).best_params
    a = np.asarray(data.test[0], np.float64)
    for k, layer in enumerate(params):
        a = a @ np.asarray(layer.W, np.float64) + np.asarray(layer.b, np.float64)
        a = np.maximum(a, 0) if k < len(params) - 1 else a
    expected = np.mean((a[:, 0] > 0) == np.asarray(data.test[1]))
    assert said and float(said[1]) == pytest.approx(expected, abs=1.5 / 50), out


def test_help_names_the_study_flags_and_the_extra(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--trials N", "--batch B", "--sampler", "--storage URL", "--study-name NAME"):
        assert flag in text
    assert "pip install 'jaxhp[optuna]'" in text
    assert "(default: loguniform:1e-4:10)" in text


def test_config_reruns_a_study_and_finds_a_relative_storage_from_any_folder(
    tmp_path, capsys, monkeypatch
):
    first, again = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    again.mkdir()
    monkeypatch.chdir(first)  # a storage URL relative to the folder the study ran in
    argv = ["tune", "--trials", "3", "--batch", "2", "--lambd", "loguniform:1e-3:1", *TINY]
    assert main([*argv, "--learning-rate", "0.3,0.6", "--out", "a"]) == 0
    assert main([*argv, "--storage", "sqlite:///study.db", "--out", "stored"]) == 0
    capsys.readouterr()

    recorded = json.loads((first / "stored" / "results.json").read_text())["config"]
    assert recorded["storage"] == f"sqlite:///{first / 'study.db'}"  # absolute, as replayed

    # In memory: the seeded sampler asks the same trials, so the same table, as text.
    assert main(["tune", "--config", str(first / "a" / "results.json"), "--out", "b"]) == 0
    assert (first / "b" / "results.csv").read_text() == (first / "a" / "results.csv").read_text()

    # A stored study: resumed (nothing to train) from another folder.
    monkeypatch.chdir(again)
    stored = first / "stored" / "results.json"
    trained = []
    monkeypatch.setattr(jaxhp.sweep, "run_sweep", lambda *a, **k: trained.append(a))
    capsys.readouterr()
    assert main(["tune", "--config", str(stored), "--out", "c"]) == 0
    text = capsys.readouterr().out
    assert f"resuming study 'jaxhp-tune' in sqlite:///{first / 'study.db'}: 3 of 3" in text
    assert trained == []
    assert (again / "c" / "results.csv").read_text() == (
        first / "stored" / "results.csv"
    ).read_text()
