"""CLI misuse: each bad command line stops before any training, with one line on stderr that
names the flag, and exit status 2."""

import json
import re

import numpy as np
import pytest

import jaxhp.sweep
import jaxhp.train
from jaxhp.cli import main


@pytest.fixture
def no_training(monkeypatch):
    """Training would fail the test: every case must stop before it."""

    def trained(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(jaxhp.sweep, "run_sweep", trained)
    monkeypatch.setattr(jaxhp.train, "fit", trained)


def _paths(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    (tmp_path / "labels12.csv").write_text("0.1,0.2,1\n0.3,0.4,2\n" * 20)
    (tmp_path / "cell.csv").write_text("a,b,y\n0.1,0.2,0\n0.3,,1\n")
    (tmp_path / "ragged.csv").write_text("0.1,0.2,0\n0.3,1\n")
    (tmp_path / "lone.csv").write_text("0.1,0.2,0\n" * 9 + "0.3,0.4,1\n")
    (tmp_path / "nan.csv").write_text("0.1,0.2,0\n0.3,nan,1\n" * 5)
    (tmp_path / "semi.csv").write_text("a;b;y\n" + "0.1;0.2;0\n0.3;0.4;1\n" * 5)
    (tmp_path / "bare.csv").write_text("0.1; 0.2; 0\n0.3; 0.4; 1\n" * 5)  # no header
    (tmp_path / "labels.csv").write_text("class label\n" + "0\n1\n" * 5)  # no features
    x = np.zeros((40, 2), np.float32)
    np.savez(tmp_path / "onehot.npz", x=x, y=np.eye(2, dtype=np.int32)[np.arange(40) % 2])
    np.savez(tmp_path / "strings.npz", x=x, y=np.array(["cat", "dog"])[np.arange(40) % 2])
    np.savez(tmp_path / "objects.npz", x=x, y=np.array(["cat", 1], dtype=object)[np.arange(40) % 2])
    np.savez(tmp_path / "oneclass.npz", x=x, y=np.zeros(40, np.int32))
    (tmp_path / "not.json").write_text("{")
    (tmp_path / "other.json").write_text('{"meta": {}}')
    (tmp_path / "tune.json").write_text('{"config": {"command": "tune", "argv": ["--trials=4"]}}')
    (tmp_path / "sweep.json").write_text('{"config": {"command": "sweep", "argv": []}}')
    return {
        "FILE": str(tmp_path / "a-file"),
        "DIR": str(tmp_path),
        "BADNPZ": str(tmp_path / "bad.npz"),
        "LABELS12": str(tmp_path / "labels12.csv"),
        "CELL": str(tmp_path / "cell.csv"),
        "RAGGED": str(tmp_path / "ragged.csv"),
        "LONE": str(tmp_path / "lone.csv"),
        "NANCSV": str(tmp_path / "nan.csv"),
        "SEMICOLON": str(tmp_path / "semi.csv"),
        "BARE_SEMICOLON": str(tmp_path / "bare.csv"),
        "LABELS_ONLY": str(tmp_path / "labels.csv"),
        "ONEHOT": str(tmp_path / "onehot.npz"),
        "STRINGS": str(tmp_path / "strings.npz"),
        "OBJECTS": str(tmp_path / "objects.npz"),
        "ONECLASS": str(tmp_path / "oneclass.npz"),
        "MISSING": str(tmp_path / "missing.csv"),
        "NOTJSON": str(tmp_path / "not.json"),
        "OTHERJSON": str(tmp_path / "other.json"),
        "TUNEJSON": str(tmp_path / "tune.json"),
        "SWEEPJSON": str(tmp_path / "sweep.json"),
    }


CASES = [
    (["swep"], "invalid choice: 'swep'.*did you mean sweep\\?"),
    (  # a list given as separate words: the one word the flag takes
        ["sweep", "--keep-prob", "0.8", "0.9", "1", "--steps", "5"],
        r"unrecognized arguments: 0.9 1 \(a list of values is one word: --keep-prob 0.8,0.9,1\)$",
    ),
    (["sweep", "--steps", "5", "10"], r"unrecognized arguments: 10$"),  # --steps is no list
    (["sweep", "--steps", "5", "--lambd=0", "5"], r"one word: --lambd 0,5\)$"),  # 5 twice
    (["sweep", "--lambd", "0.1", "moons"], r"unrecognized arguments: moons$"),  # no list
    (
        ["sweep", "--stpes", "5"],
        "jaxhp sweep: error: unrecognized arguments: --stpes; did you mean --steps\\?",
    ),
    (["train", "--step", "3"], "jaxhp train: error: .*--step; did you mean --steps\\?"),
    (
        ["tune", "--seeds", "3"],
        "jaxhp tune: error: .*--seeds; --seeds is an option of `jaxhp sweep`",
    ),
    (["--versoin"], "jaxhp: error: unrecognized arguments: --versoin; did you mean --version\\?"),
    (
        ["tune", "--trials", "4", "--batch", "2", "--seeds", "3"],
        "--seeds; --seeds is an option of `jaxhp sweep` only",
    ),
    (["train", "--out", "o"], "--out is an option of `jaxhp sweep / tune` only"),
    (["sweep", "--activation", "rellu"], "argument --activation: .*did you mean relu\\?"),
    (["sweep", "--keep-prob", "abc"], "argument --keep-prob: .*got 'abc'"),
    (["train", "--keep-prob", "abc"], "argument --keep-prob: .*got 'abc'"),
    (["train", "--keep-prob", "0.8,0.9"], "argument --keep-prob: .*write one value per hidden"),
    (["sweep", "--keep-prob", "0.5,1.5"], "argument --keep-prob: keep_prob must be in \\(0, 1\\]"),
    (["sweep", "--keep-prob", "0.8/0.9/0.7"], "--keep-prob 0.8/0.9/0.7 has 3 values but"),
    (["sweep", "--n-dev", "0"], "argument --n-dev: expected an int >= 1, got 0"),
    (["train", "--n-dev", "0"], "argument --n-dev: expected an int >= 1, got 0"),
    (
        ["sweep", "--bayes-error", "5"],
        "argument --bayes-error: expected an error rate in \\[0, 1\\), got '5'; for 5% give 0.05",
    ),
    (["sweep", "--bayes-error", "1"], "argument --bayes-error: expected an error rate"),
    (
        ["sweep", "--dataset", "flower", "--bayes-error", "0.8"],
        "--bayes-error 0.8: bayes_error 80.00% is above the chance error 50.00% .* never does",
    ),
    (["sweep", "--out", "FILE"], "--out .*a-file is a file; give a folder"),
    (["sweep", "--out", ""], "--out is empty; give a folder"),
    (["sweep", "--out", "/proc/jaxhp-out"], "--out /proc/jaxhp-out cannot be created"),
    (["sweep", "--checkpoint", "FILE/ck"], "--checkpoint .*a-file is a file, so the folder"),
    (["train", "--save", "DIR"], "--save .* is a folder; give a file name"),
    (["train", "--plot", "FILE/cost.png"], "--plot .*a-file is a file"),
    (["sweep", "--dataset", "mons"], "--dataset must be one of .*did you mean moons\\?"),
    (["sweep", "--halving", "1"], "argument --halving: expected a reduction factor > 1"),
    (["sweep", "--halving", "x"], "argument --halving: .*'x'"),
    (["sweep", "--min-steps", "10"], "--min-steps needs --halving ETA"),
    (["sweep", "--lambd", "0.1", "--lambd=1"], "--lambd is given twice; give it once \\(a list"),
    (["sweep", "--steps", "100", "--steps", "200"], "--steps is given twice; give it once$"),
    (
        ["sweep", "--random", "6", "--lambd", "0,1", "--keep-prob", "1"],
        "--random 6 asks for more distinct points than the lists hold \\(2: 2 x 1 x 1\\);.*drop "
        "--random",
    ),
    (["train", "--lr", "0.1", "--learning-rate", "1"], "--lr and --learning-rate are one flag"),
    (["sweep", "--halving", "3", "--min-steps", "0"], "argument --min-steps: expected an int"),
    (
        ["sweep", "--halving", "3", "--steps", "100", "--eval-every", "10", "--min-steps", "15"],
        "--min-steps 15 does not fall on an evaluation .*every 10 steps.*e.g. 10 or 20",
    ),
    (
        ["sweep", "--halving", "3", "--steps", "100", "--min-steps", "200"],
        "--min-steps must be <= --steps \\(100\\), got 200",
    ),
    (["sweep", "--dataset", "MISSING"], "dataset file .*missing.csv does not exist"),
    (["sweep", "--dataset", "BADNPZ"], "dataset file .*bad.npz is not a .npz archive"),
    (
        ["sweep", "--dataset", "LABELS12"],
        "labels12.csv: labels must be the class ids 0, 1, .*got 1, 2",
    ),
    (["sweep", "--dataset", "CELL"], "cell.csv line 3: '' is not a number"),
    (["sweep", "--dataset", "RAGGED"], "ragged.csv line 2 has 2 columns, the first data row has 3"),
    (
        ["sweep", "--dataset", "ONEHOT"],
        r"onehot.npz: y must hold one class id per row, shape \(40,\)",
    ),
    (["sweep", "--dataset", "LONE"], "lone.csv: class 1 has only 1 example; .* stratified"),
    (["train", "--dataset", "STRINGS"], "strings.npz: y must hold numbers, got dtype <U3; rel"),
    (["train", "--dataset", "OBJECTS"], "objects.npz: x and y must be arrays of numbers"),
    (["sweep", "--dataset", "ONECLASS"], "oneclass.npz: every label is 0; a classifier needs"),
    (  # one moons point: one class to learn
        ["sweep", "--n-train", "1"],
        r"--dataset moons: every training label is [01] \(1 training example\); a classifier",
    ),
    (["train", "--save", "p.txt"], "--save p.txt: give a file name ending in .npz"),
    (["train", "--save", "/proc/p.npz"], "--save.*(cannot write in /proc|/proc is not writable)"),
    (["train", "--plot", "cost.txt"], "--plot cost.txt: give a file name ending in .png, .pdf"),
    (["sweep", "--dataset", "LONE", "--n-train", "50"], "--n-train 50 applies to the built-in"),
    (["sweep", "--dataset", "LONE", "--noise", "0.1"], "--noise 0.1 applies to the built-in"),
    (["sweep", "--dataset", "LONE", "--n-test", "20"], "--n-test 20 applies to the built-in"),
    (["train", "--dataset", "LONE", "--n-test", "20"], "--n-test 20 applies to the built-in"),
    (["sweep", "--n-test", "-1"], "argument --n-test: expected an int >= 0, got -1"),
    (["sweep", "--no-normalize"], "--no-normalize applies to data files only"),
    (["sweep", "--dataset", "NANCSV"], "nan.csv: x holds NaN or inf, first at line 2;"),
    (["sweep", "--dataset", "SEMICOLON"], "semi.csv line 1 reads as one column: .*by ';'"),
    # its first line, not the second: a first row of no numbers was read as a header
    (["sweep", "--dataset", "BARE_SEMICOLON"], "bare.csv line 1 reads as one column: .*by ';'"),
    # a header (with a space in it) over one column of numbers: no features, not a separator
    (
        ["sweep", "--dataset", "LABELS_ONLY"],
        "labels.csv needs at least one feature column and a label column; it has 1$",
    ),
    (["train", "--lambd", "0,1"], "expected a number, got '0,1'; a list of values is for"),
    (["sweep", "--lambd", "0,0.1,0"], "argument --lambd: '0,0.1,0' lists 0 more than once"),
    (["sweep", "--keep-prob", "0.5,1,0.50"], "argument --keep-prob: .* lists 0.5 more than"),
    (["sweep", "--eval-every", "5000"], "--eval-every 5000 must be <= --steps 2000"),
    (["sweep", "--batch-size", "1000"], "--batch-size 1000 is larger than the training set"),
    (["sweep", "--lambd", "loguniform:0.1:1"], "--lambd loguniform:0.1:1 is a distribution"),
    (["sweep", "--lambd", "loguniform:0:1", "--random", "3"], "argument --lambd: .*0 < a < b"),
    (["sweep", "--lr", "-1"], "argument --learning-rate/--lr: expected a number > 0"),
    (["train", "--lr", "nan"], "argument --learning-rate/--lr: expected a finite number"),
    (["sweep", "--seeds", "0"], "argument --seeds: expected an int >= 1"),
    (["sweep", "--model", "cnn"], "--model cnn takes images \\(--dataset digits\\); moons has 2"),
    (["sweep", "--channels", "8"], "--channels applies to --model cnn, not --model mlp"),
    (
        ["train", "--dataset", "digits", "--model", "cnn", "--channels", "8,8,8,8"],
        "4 conv blocks, but 8x8 images allow at most 3",
    ),
    (["train", "--optimizer", "adam", "--b1=0.99999999"], "β in \\[0, 1\\), got '0.99999999'"),
    (["train", "--optimizer", "adam", "--b1", "uniform:0.8:0.9"], "a distribution is for jaxhp"),
    (
        ["sweep", "--random", "5", "--lambd", "normal:0:1"],
        "unknown distribution 'normal' in 'normal:0:1'; allowed: loguniform:a:b, uniform:a:b",
    ),
    (
        ["tune", "--lambd", "one_minus_loguniform:0.9:0.99"],
        "unknown distribution 'one_minus_loguniform' .*is for the β axes",
    ),
    (["train", "--dataset", "digits", "--model", "cnn", "--init", "xavier"], "--init xavier app"),
    (["sweep", "--dataset", "digits", "--noise", "0.1"], "--noise 0.1 applies to the 2-D gen"),
    (["sweep", "--dataset", "digits", "--n-train", "1700"], "exceeds the 1797 images of digits"),
    (
        ["train", "--dataset", "digits", "--model", "cnn", "--keep-prob", "0.8/0.9"],
        "0.8/0.9 has 2 values but the cnn has 1 dropout layer",
    ),
    (["sweep", "--b1", "0.8"], "--b1 is a hyperparameter of --optimizer adam, but this run uses"),
    (["train", "--optimizer", "adam", "--decay", "0.9"], "--decay is a hyperparameter of --opt"),
    (["sweep", "--optimizer", "momentum", "--momentum", "1"], "--momentum: .*β in \\[0, 1\\)"),
    (["train", "--optimizer", "adam", "--b2", "-0.1"], "argument --b2: expected a decay rate"),
    (
        ["sweep", "--optimizer", "momentum", "--momentum", "one_minus_loguniform:0.9:1"],
        "argument --momentum: 'one_minus_loguniform:0.9:1' needs 0 <= a < b < 1",
    ),
    (["sweep", "--steps", "2.5"], "argument --steps: expected an int >= 1, got '2.5'"),
    (["sweep", "--chunk-size", "0"], "argument --chunk-size: expected 'auto' or an int"),
    (["sweep", "--metric", "accuracy"], "argument --metric: invalid choice: 'accuracy'"),
    (["sweep", "--top", "0"], "argument --top: expected an int >= 1"),
    (["sweep", "--seed", "-1"], "argument --seed: expected an int in \\[0, 2\\*\\*31\\)"),
    (["sweep", "--layers", "20,x"], "argument --layers: expected widths like 20,3"),
    (["sweep", "--process-id", "0"], "give --coordinator, --num-processes and --process-id tog"),
    (["sweep", "--config", "MISSING"], "--config .*missing.csv does not exist"),
    (["sweep", "--config", "TUNEJSON"], "tune.json was written by jaxhp tune; run jaxhp tune --c"),
    (["tune", "--config", "SWEEPJSON"], "sweep.json was written by jaxhp sweep; run jaxhp sweep"),
    (["tune", "--batch", "2"], "the following arguments are required: --trials$"),
    (["tune"], "the following arguments are required: --trials, --batch$"),
    (["sweep", "--config", "NOTJSON"], "--config .*not.json is not a results.json"),
    (["sweep", "--config", "OTHERJSON"], "--config .*other.json is not .*no 'config' entry"),
    (["sweep", "--config", "DIR"], "--config .* is a folder; give the results.json .*"),
]


@pytest.mark.parametrize("argv, match", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_command_line_stops_before_training(argv, match, tmp_path, capsys, no_training):
    paths = _paths(tmp_path)
    argv = [next((v + a[len(k) :] for k, v in paths.items() if a.startswith(k)), a) for a in argv]
    out = tmp_path / "out"
    if argv[0] in ("sweep", "tune") and "--out" not in argv:
        argv += ["--out", str(out)]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert re.search(match, err), err
    assert not out.exists()  # nothing written


def test_config_whose_data_file_changed_is_refused(tmp_path, capsys, no_training):
    data = tmp_path / "d.csv"
    data.write_text("".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(60)))
    record = {"argv": [f"--dataset={data}", "--steps=5"], "dataset": {"sha256": "0" * 64}}
    (tmp_path / "results.json").write_text(json.dumps({"config": record}))
    argv = ["sweep", "--config", str(tmp_path / "results.json"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "d.csv has changed since that sweep read it" in err


def test_noise_words_say_what_the_threshold_is_made_of():
    from jaxhp.cli import _noise_words

    pooled = "the seeds' std pooled over the better half of the points"
    assert _noise_words("dev_accuracy", True, 0.005, 0.0073) == (
        f"gap below 0.0073, the larger of one dev example and {pooled}"
    )
    assert _noise_words("dev_accuracy", False, 0.025, 0.025) == "gap below one dev example, 0.0250"
    assert _noise_words("train_accuracy", True, 0.01, 0.01).startswith("gap below 0.0100, the larg")
    assert _noise_words("best_dev_cost", True, 0.0, 0.0123) == f"gap below 0.0123, {pooled}"
    assert "--seeds 2" in _noise_words("best_dev_cost", False, 0.0, 0.0)
    assert "jaxhp sweep" in _noise_words("best_dev_cost", False, 0.0, 0.0, "tune")  # no --seeds


def test_a_point_with_one_live_seed_shows_no_spread():
    from jaxhp.results import _mean_cell

    one = {"seeds": 2, "diverged": 1, "dev_accuracy_mean": 0.9, "dev_accuracy_std": 0.0}
    assert _mean_cell(one, "dev_accuracy").split() == ["0.9000"]
    three = {"seeds": 3, "diverged": 0, "dev_accuracy_mean": 0.9, "dev_accuracy_std": 0.0125}
    assert _mean_cell(three, "dev_accuracy").split() == ["0.9000", "±", "0.0125"]
