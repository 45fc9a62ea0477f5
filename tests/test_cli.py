import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from conftest import cpu_command_env, long_run_env

import jaxhp
from jaxhp import cli
from jaxhp.cli import build_parser, main
from jaxhp.records import HParams

SMALL_MODEL = ["--layers", "6", "--steps", "60", "--quiet"]
SMALL = ["--n-train", "80", "--n-dev", "40", *SMALL_MODEL]


def test_train_command(tmp_path, capsys, monkeypatch):
    import jaxhp.plot

    titles, plot_cost = [], jaxhp.plot.plot_cost
    monkeypatch.setattr(
        jaxhp.plot, "plot_cost", lambda h, p, title: titles.append(title) or plot_cost(h, p)
    )
    code = main(
        [
            "train",
            "--steps",
            "100",
            "--eval-every",
            "50",
            "--keep-prob",
            "0.8",
            "--lambd",
            "0.1",
            "--n-train",
            "100",
            "--n-dev",
            "50",
            "--bayes-error",
            "0.05",
            "--save",
            str(tmp_path / "p.npz"),
            "--plot",
            str(tmp_path / "cost.png"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "data: moons: 100 train, 50 dev, 0 test examples" in out
    # the hparams it used, with the library's default learning rate
    assert f"hparams: lambd=0.1 keep_prob=0.8 learning_rate={HParams().learning_rate:.4g}" in out
    assert sum(line.startswith("step ") for line in out.splitlines()) == 2
    assert "final (last params): train accuracy" in out
    assert "Bayes error 5.00%" in out and "verdict:" in out
    assert "chosen as the best of" not in out  # one run: nothing was chosen on dev
    assert "saved the last params (step 100)" in out
    with np.load(tmp_path / "p.npz") as params:
        assert params["W1"].shape == (2, 20) and params["b3"].shape == (1,)
    assert (tmp_path / "cost.png").stat().st_size > 1000
    assert titles == ["moons: layers 2-20-3-1, λ=0.1, keep_prob=0.8, lr=0.1"]  # which run


def test_no_command_lists_the_commands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    for command in ("train", "sweep", "tune"):
        assert re.search(rf"^\s+{command}\s+\S", err, re.M), err


def test_an_int_flag_takes_a_whole_number_written_as_a_float():
    args = build_parser().parse_args(["sweep", "--steps", "1e3", "--seeds", "2.0"])
    assert (args.steps, args.seeds) == (1000, 2) and isinstance(args.steps, int)


def test_one_default_learning_rate_for_library_and_cli():
    parser = build_parser()
    assert parser.parse_args(["train"]).learning_rate == HParams().learning_rate
    assert parser.parse_args(["sweep"]).learning_rate.values == [HParams().learning_rate]
    assert parser.parse_args(["sweep"]).seeds >= 2


def test_sweep_writes_outputs_and_its_config_reruns_it(tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = main(["sweep", "--lambd", "0,1", "--keep-prob", "0.8,1", *SMALL, "--out", str(out_dir)])
    text = capsys.readouterr().out
    assert code == 0
    assert "data: moons: 80 train, 40 dev, 0 test examples" in text
    assert "sweep: 8 members (4 points × 2 seeds)" in text and "trained 8 members" in text
    assert re.search(r"trained 8 members in [\d.]+ s \(in one chunk\)", text)
    assert "best: lambd=" in text and "verdict:" in text
    assert "note: chosen as the best of 4 configurations on this dev set, so its dev" in text
    assert "test: no test split drawn (--n-test N draws one" in text
    # moons' noise is known: the Bayes error assumed is the best possible classifier's
    assert re.search(r"assumed Bayes error 5\.\d\d% \(the moons generator's at noise 0.25", text)
    assert text.rstrip().splitlines()[-1].startswith("done: best: ")
    for name in ("results.csv", "results.json", "heatmap.png", "curves.png"):
        assert (out_dir / name).stat().st_size > 0
    table = (out_dir / "results.csv").read_text()
    assert len(table.splitlines()) == 9
    config = json.loads((out_dir / "results.json").read_text())["config"]
    assert config["dataset"]["name"] == "moons" and config["dataset"]["m_dev"] == 40
    assert config["layer_sizes"] == [2, 6, 1] and config["steps"] == 60
    assert config["optimizer"] == "sgd" and config["seeds"] == 2
    assert set(config["versions"]) >= {"jaxhp", "jax", "jaxlib"}
    # back in Python, the diagnosis assumes the Bayes error the command assumed
    said = str(cli.load_run(out_dir / "results.json")[0].diagnosis()).splitlines()[0]
    assert said.startswith("train error ") and "assumed Bayes error 5." in said
    assert said in text.splitlines()
    # and so does the plain reader, which knows nothing of the flags
    read = jaxhp.SweepResults.from_json(out_dir / "results.json").diagnosis()
    assert str(read).splitlines()[0] == said

    again = tmp_path / "again"
    assert main(["sweep", "--config", str(out_dir / "results.json"), "--out", str(again)]) == 0
    assert (again / "results.csv").read_text() == table
    assert "sweep: 8 members" in capsys.readouterr().out


def test_with_patience_the_table_ranks_by_the_accuracy_of_the_params_kept(tmp_path, capsys):
    """Early stopping keeps each member's best params, so the default ranking is the dev
    accuracy at the best evaluation; the best configuration is recomputed from the CSV."""
    out_dir = tmp_path / "out"
    args = ["sweep", "--lambd", "0,1", "--keep-prob", "0.7,1", *SMALL, "--out", str(out_dir)]
    assert main([*args, "--eval-every", "10", "--patience", "1", "--seeds", "1"]) == 0
    text = capsys.readouterr().out
    assert "ranked by best_dev_accuracy, ties by best_dev_cost" in text
    with open(out_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    accuracy = np.array([float(r["best_dev_accuracy"]) for r in rows])
    cost = np.array([float(r["best_dev_cost"]) for r in rows])
    top = rows[np.lexsort((np.arange(len(rows)), cost, -accuracy))[0]]
    best_line = next(line for line in text.splitlines() if line.startswith("best: "))
    assert f"lambd={float(top['lambd']):g}" in best_line
    assert f"best_dev_accuracy {float(top['best_dev_accuracy']):.4f}" in best_line
    # one seed: the best point is one member, whose stop and kept steps the CSV has
    stopping = next(line for line in text.splitlines() if line.startswith("early stopping"))
    assert stopping == (
        f"early stopping: stopped at step {top['stop_step']}, kept the params of step "
        f"{top['best_step']}"
    )
    header = next(line for line in text.splitlines() if line.lstrip().startswith("rank"))
    assert header.split()[-7:-4] == ["best_dev_accuracy", "best_train_accuracy", "best_dev_cost"]


def test_train_with_patience_reports_the_kept_params(capsys):
    """The final line and the diagnosis describe the evaluation whose params are kept: its
    accuracies are the ones the progress line of that step printed."""
    argv = ["train", "--n-train", "100", "--n-dev", "50", "--steps", "100", "--eval-every"]
    assert main([*argv, "10", "--patience", "2", "--learning-rate", "2"]) == 0  # 10 lines
    out = capsys.readouterr().out
    final = re.search(
        r"final \(kept params, step (\d+)\): train accuracy (\S+), dev accuracy (\S+)", out
    )
    assert final, out
    step_line = re.search(rf"^step +{final[1]} .*train acc (\S+) .*dev acc (\S+)$", out, re.M)
    assert step_line, out
    assert f"{float(final[2]):.3f}" == step_line[1] and f"{float(final[3]):.3f}" == step_line[2]


def test_file_features_are_standardised_with_train_statistics_only():
    from jaxhp.cli import _standardised
    from jaxhp.records import Data

    rng = np.random.default_rng(0)
    train = rng.normal([0.0, 5000.0], [1.0, 1000.0], size=(50, 2)).astype(np.float32)
    dev = rng.normal([0.0, 5000.0], [1.0, 1000.0], size=(20, 2)).astype(np.float32)
    labels = np.zeros(50, np.int32), np.zeros(20, np.int32)
    got = _standardised(Data((train, labels[0]), (dev, labels[1])))
    mean, std = train.astype(np.float64).mean(0), train.astype(np.float64).std(0)
    np.testing.assert_allclose(got.train[0], (train - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.dev[0], (dev - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got.dev[1], labels[1])
    assert got.test is None


def test_train_prints_about_ten_progress_lines(capsys):
    argv = ["train", "--n-train", "100", "--n-dev", "50", "--steps", "190", "--eval-every", "5"]
    assert main(argv) == 0  # 38 evaluations: every 4th shown, and the last
    out = capsys.readouterr().out
    steps = [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")]
    assert steps == [20, 40, 60, 80, 100, 120, 140, 160, 180, 190]
    assert "evaluated every 5 (every 4th shown)" in out
    assert main([*argv, "--quiet"]) == 0  # the same run, its result only
    quiet = capsys.readouterr().out
    assert not [line for line in quiet.splitlines() if line.startswith("step ")]
    assert "shown" not in quiet
    final = re.compile(r"^final .*$", re.M)
    assert final.findall(quiet) == final.findall(out) != []


def test_help_shows_every_option_with_its_default(capsys):
    parser = build_parser()
    for command in ("train", "sweep"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        sub = parser._subparsers._group_actions[0].choices[command]
        for action in sub._actions:
            assert action.help, action.option_strings
            if action.default not in (None, False, "==SUPPRESS=="):
                assert f"(default: {action.default})" in text, action.option_strings
    assert "{sgd,momentum,adam,rmsprop}" in text and "0.8/0.9" in text
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--version"])
    assert stop.value.code == 0
    assert f"jaxhp {jaxhp.__version__} (jax {jax.__version__}" in capsys.readouterr().out


def test_progress_bar_counts_each_evaluation(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = cli._Progress(total=12, enabled=True)
    bar({"step": np.asarray(10)})  # one member's evaluation
    bar({"step": np.arange(4)})  # a vmapped group of four members
    assert bar.bar.n == 5
    for _ in range(3):  # a chunk with padding lanes: each record weighs 1/3, shown when whole
        bar({"step": np.asarray(10), "weight": 1 / 3})
        assert isinstance(bar.bar.n, int)
    assert bar.bar.n == 6
    bar.close()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bar
    assert cli._Progress(total=12, enabled=True).bar is None


def test_closed_stdout_is_quiet_and_results_are_still_written(tmp_path, monkeypatch, capsys):
    read, write = os.pipe()
    os.close(read)  # the reader went away, as with `| head`
    broken = open(write, "w")  # noqa: SIM115 - closed below
    monkeypatch.setattr(sys, "stdout", broken)
    try:
        # the same sweep as above: its compiled program is reused
        argv = ["sweep", "--lambd", "0,1", "--keep-prob", "0.8,1", *SMALL, "--out", str(tmp_path)]
        code = main(argv)
    finally:
        monkeypatch.undo()
        broken.close()
    assert code == 0
    assert "Traceback" not in capsys.readouterr().err
    assert (tmp_path / "results.csv").exists()


def test_random_search_command(tmp_path, capsys):
    code = main(
        [
            "sweep",
            "--lambd",
            "loguniform:0.001:1",
            "--keep-prob",
            "uniform:0.6:1",
            "--random",
            "5",
            "--seeds",
            "2",
            *SMALL,
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert "trained 10 members" in capsys.readouterr().out


def test_sweep_from_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    rows = "\n".join(",".join(f"{v:.5f}" for v in xi) + f",{yi}" for xi, yi in zip(x, y))
    (tmp_path / "d.csv").write_text("a,b,c,label\n" + rows + "\n")
    for name in ("d.npz", "d.csv"):
        code = main(
            [
                "sweep",
                "--dataset",
                str(tmp_path / name),
                "--lambd",
                "0,1",
                "--keep-prob",
                "1",
                *SMALL_MODEL,
                "--out",
                str(tmp_path / name[-3:]),
            ]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        # a file keeps its own test split (60/20/20 at this size), scored once at the end
        assert "90 train, 30 dev, 30 test examples" in out
        said = "(its first row, a, b, c, label, read as column names)"
        assert (said in out) == (name == "d.csv")
        # its own test split scores the choice: no --n-test (refused with a file) to suggest
        assert "the test split below scores it once" in out and "--n-test" not in out
        assert "test accuracy of the chosen configuration (last params): " in out
    # the run, back in Python: its data and config rebuilt from the recorded flags, a refit
    # of its best member is the table's row bit for bit
    results, data, config = cli.load_run(tmp_path / "csv" / "results.json")
    assert results.default_metric == "dev_accuracy"  # the run's --metric
    best = results.best()["member"]
    refitted = jaxhp.sweep.refit(results, best, data, config)
    np.testing.assert_array_equal(refitted.history.dev_cost, results.history.dev_cost[best])
    # train reads files too (it once crashed checking the built-in-only flags)
    assert main(["train", "--dataset", str(tmp_path / "d.csv"), "--steps", "60", "--quiet"]) == 0
    (tmp_path / "d.csv").write_text("a,b,c,label\n" + rows + "\n0,0,0,1\n")
    with pytest.raises(ValueError, match=r"d.csv has changed since that sweep read it"):
        cli.load_run(tmp_path / "csv" / "results.json")
    # a file with flags of another jaxhp, and one SweepResults.to_json wrote: ValueErrors
    payload = json.loads((tmp_path / "npz" / "results.json").read_text())
    payload["config"]["argv"].append("--frobnicate=1")
    (tmp_path / "other.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=r"recorded flags are not this jaxhp's .*--frobnicate"):
        cli.load_run(tmp_path / "other.json")
    with pytest.raises(ValueError, match=r"records no jaxhp sweep or tune flags .*from_json"):
        cli.load_run(results.to_json(tmp_path / "python.json"))
    assert re.search(
        r"^test accuracy \(last params\): \S+ on 30 test", capsys.readouterr().out, re.M
    )


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "does not exist"),
        (b"not a zip file", "is not a .npz archive (a zip of arrays, as np.savez"),
        (b"PK\x03\x04 but no zip", "is not a readable .npz"),  # a damaged archive
        ("npz-missing-y", "must hold arrays 'x' and 'y'"),
        ("csv-bad", "d.csv line 2: 'oops' is not a number"),
        # a first row with numbers in it is data: it was once dropped as a header
        ("csv-bad-first", "d.csv line 1: 'oops' is not a number"),
        ("csv-fractional", "d.csv: labels must be integer class ids, got 0.5 first at line 3"),
    ],
)
def test_sweep_bad_dataset_file(tmp_path, capsys, content, match):
    if content == "npz-missing-y":
        path = tmp_path / "d.npz"
        np.savez(path, x=np.ones((5, 2)))
    elif content == "csv-bad":
        path = tmp_path / "d.csv"
        path.write_text("1,2,0\n3,oops,1\n")
    elif content == "csv-fractional":
        path = tmp_path / "d.csv"
        path.write_text("x,label\n1,0\n2,0.5\n3,1\n")
    elif content == "csv-bad-first":
        path = tmp_path / "d.csv"
        path.write_text("oops,2,0\n3,4,1\n5,6,0\n")
    else:
        path = tmp_path / "d.npz"
        if content is not None:
            path.write_bytes(content)
    code = main(["sweep", "--dataset", str(path), *SMALL_MODEL, "--out", str(tmp_path)])
    assert code == 2
    assert match in capsys.readouterr().err


def _sweep_cmd(checkpoint, out):
    """A sweep of 12 members in chunks of 2 into ``checkpoint``; without one, in one chunk
    (its members are bit-identical whatever the chunk size)."""
    chunks = [] if checkpoint is None else ["--chunk-size", "2", "--checkpoint", str(checkpoint)]
    return [
        sys.executable,
        "-m",
        "jaxhp",
        "sweep",
        "--n-train",
        "300",
        "--n-dev",
        "100",
        "--steps",
        "1500",
        "--lambd",
        "0,0.1,1,10",
        "--keep-prob",
        "0.5,0.8,1",
        "--seeds",
        "1",
        "--quiet",
        *chunks,
        "--out",
        str(out),
    ]


def test_sigkilled_sweep_resumes_to_the_same_table(tmp_path):
    checkpoint = tmp_path / "ck"
    env = long_run_env()
    proc = subprocess.Popen(
        _sweep_cmd(checkpoint, tmp_path / "killed"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not list(checkpoint.glob("chunk-*.npz")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no chunk was written in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished = len(list(checkpoint.glob("chunk-*.npz")))
    assert 1 <= finished < 6, "the kill must land mid-sweep"
    assert not (tmp_path / "killed" / "results.csv").exists()

    resumed = subprocess.run(
        _sweep_cmd(checkpoint, tmp_path / "resumed"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    # before training it only says what the folder holds: it may still be refused
    assert f"checkpoint: {checkpoint}/ holds {2 * finished} members; they are reused only if" in (
        resumed.stdout
    )
    assert f"{2 * finished} from the checkpoint" in resumed.stdout
    fresh = subprocess.run(
        _sweep_cmd(None, tmp_path / "fresh"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr
    resumed_table = Path(tmp_path / "resumed" / "results.csv").read_text()
    assert resumed_table == Path(tmp_path / "fresh" / "results.csv").read_text()
    assert len(resumed_table.splitlines()) == 13


def test_sweep_without_matplotlib_still_writes_the_table(tmp_path, capsys, monkeypatch):
    import jaxhp.plot

    def missing():
        raise ImportError("plotting needs matplotlib: pip install 'jaxhp[plot]'")

    monkeypatch.setattr(jaxhp.plot, "_pyplot", missing)
    code = main(["sweep", "--lambd", "0,1", "--keep-prob", "1", *SMALL, "--out", str(tmp_path)])
    assert code == 0
    assert "no plots: plotting needs matplotlib" in capsys.readouterr().out
    assert (tmp_path / "results.csv").exists() and not (tmp_path / "heatmap.png").exists()


def _interruptible(out, checkpoint=None):
    """A sweep of 16 tiny members in 8 chunks, so Ctrl-C lands mid-sweep."""
    cmd = [sys.executable, "-m", "jaxhp", "sweep", "--n-train", "100", "--n-dev", "40"]
    cmd += ["--lambd", "0,0.1,1,3", "--keep-prob", "0.8,1", "--layers", "6", "--steps", "1000"]
    cmd += ["--chunk-size", "2", "--quiet", "--out", str(out)]
    return cmd + ([] if checkpoint is None else ["--checkpoint", str(checkpoint)])


def _interrupt(cmd, ready, env):
    """Start cmd, wait until ready(proc) (bounded), send SIGINT, return (code, stdout, stderr)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not ready(proc):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sweep did not start in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_ctrl_c_with_a_checkpoint_says_what_was_saved_and_resumes(tmp_path):
    env = cpu_command_env()
    checkpoint = tmp_path / "ck"
    cmd = _interruptible(tmp_path / "out", checkpoint)
    code, _, err = _interrupt(cmd, lambda _: any(checkpoint.glob("chunk-*.npz")), env)
    assert code == 130 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    saved = re.fullmatch(
        rf"interrupted: (\d+) of 16 members saved in {re.escape(str(checkpoint))}/; "
        "re-run the same command to resume",
        lines[0],
    )
    assert saved, lines[0]
    assert 2 <= int(saved.group(1)) < 16
    assert not (tmp_path / "out" / "results.csv").exists()
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{saved.group(1)} from the checkpoint" in resumed.stdout
    assert len((tmp_path / "out" / "results.csv").read_text().splitlines()) == 17
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert "loaded all 16 members from the checkpoint in" in again.stdout
    assert "nothing to train" in again.stdout and "trained" not in again.stdout


def test_ctrl_c_while_xla_compiles_exits_130_not_a_crash(tmp_path):
    # XLA compiles the sweep program on its own threads; a normal Python shutdown under
    # them crashed the command (exit -11) in 5 of 6 tries before the fix. At XLA's default
    # level the compile runs from about 1.5 s to 5 s after the plan is printed.
    env = long_run_env()
    cmd = [sys.executable, "-m", "jaxhp", "sweep", "--steps", "3000", "--no-cache", "--quiet"]
    cmd += ["--out", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "ck")]

    def compiling(proc):
        if not proc.stdout.readline().startswith("sweep:"):
            return False
        time.sleep(2.0)
        return True

    code, _, err = _interrupt(cmd, compiling, env)
    assert code == 130, err[-2000:]
    assert err.strip() == (
        f"interrupted: nothing was saved in {tmp_path / 'ck'}/ yet (no chunk had finished); "
        "re-running the same command starts over"
    )


def test_ctrl_c_without_a_checkpoint_says_nothing_was_saved(tmp_path):
    env = cpu_command_env()

    def started(proc):  # the start-up lines are printed just before training
        return proc.stdout.readline().startswith("sweep:")

    code, _, err = _interrupt(_interruptible(tmp_path / "out"), started, env)
    assert code == 130
    assert err.strip().splitlines() == [
        "interrupted: nothing was saved; with --checkpoint DIR finished chunks are kept "
        "and re-running the same command resumes"
    ]
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_train_while_it_prints_its_history(tmp_path):
    # The progress lines come from a host callback, and JAX ran such a program inside the
    # main thread, which held Ctrl-C until the last of the 3,000,000 steps.
    cmd = [sys.executable, "-m", "jaxhp", "train", "--n-train", "100", "--n-dev", "40"]
    cmd += ["--layers", "6", "--steps", "3000000", "--save", str(tmp_path / "p.npz")]

    def printing(proc):
        return proc.stdout.readline().startswith("step")

    code, out, err = _interrupt(cmd, printing, cpu_command_env())
    assert code == 130 and "Traceback" not in err
    assert "step 3000000" not in out  # stopped, not run to the end
    assert err.strip().startswith("interrupted: nothing was saved")
    assert not (tmp_path / "p.npz").exists()


def test_ctrl_c_inside_a_gc_callback_is_sent_again_once_it_returns(monkeypatch):
    """Python ignores an exception raised in a garbage-collector callback (JAX registers
    one), so a KeyboardInterrupt raised there was lost and the sweep ran on. The handler
    sends the signal again a moment later instead, also from a frame the callback called
    (a signal sent at once landed in such a frame: the full suite saw the sweep run on)."""
    import gc

    from jaxhp.cli import _on_ctrl_c

    sent, frames = [], []
    monkeypatch.setattr(cli.os, "kill", lambda pid, sig: sent.append((pid, sig)))

    def callback(phase, info):
        def called():
            frames.append(sys._getframe())

        called()

    gc.callbacks.append(callback)
    try:
        gc.collect()
        for frame in (frames[0], frames[0].f_back):  # called by the callback, the callback
            try:
                _on_ctrl_c(signal.SIGINT, frame)
            except KeyboardInterrupt:
                pytest.fail(f"raised inside the gc callback (frame {frame.f_code.co_name})")
        deadline = time.monotonic() + 10
        while len(sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sent == [(os.getpid(), signal.SIGINT)] * 2
        with pytest.raises(KeyboardInterrupt):
            _on_ctrl_c(signal.SIGINT, sys._getframe())
    finally:
        gc.callbacks.remove(callback)


def test_report_names_diverged_members_and_ranks_by_the_metric(tmp_path, capsys):
    from jaxhp.records import History
    from jaxhp.results import SweepResults

    # points lambd 0 / 1 / 2, two seeds each; lambd 2 diverged on both seeds, lambd 1 on one
    acc = np.asarray([[0.8, 0.85], [0.9, 0.9], [0.5, 0.5], [0.7, 0.9], [0.5, 0.5], [0.5, 0.5]])
    cost = np.asarray(
        [[0.5, 0.4], [0.3, 0.2], [0.7, np.inf], [0.6, 0.25], [0.7, np.nan]] + [[1, 1]]
    )
    n = len(acc)
    results = SweepResults(
        hparams=HParams(
            lambd=np.repeat(np.asarray([0.0, 1.0, 2.0], np.float32), 2),
            keep_prob=np.ones(n, np.float32),
            learning_rate=np.full(n, 0.1, np.float32),
        ),
        seeds=np.asarray([0, 1] * 3),
        history=History(
            step=np.tile(np.asarray([5, 10], np.int32), (n, 1)),
            train_cost=cost.astype(np.float32),
            train_accuracy=acc.astype(np.float32),
            dev_cost=cost.astype(np.float32),
            dev_accuracy=acc.astype(np.float32),
        ),
        stop_step=np.full(n, 10),
        best_step=np.full(n, 10),
        diverged=np.asarray([False, False, True, False, True, True]),
        meta={
            "members": n,
            "seconds": 1.0,
            "chunks_run": 1,
            "chunk_size": n,
            "members_from_checkpoint": 0,
            "m_dev": 40,
            "m_train": 80,
        },
    )
    args = build_parser().parse_args(["sweep", "--out", str(tmp_path), "--bayes-error", "0.05"])
    assert cli._report(args, results, {"argv": []}) == 0
    text = capsys.readouterr().out
    assert "diverged (flagged, not ranked): members [2, 4, 5]" in text
    lines = text.splitlines()
    table = lines[lines.index(next(x for x in lines if x.lstrip().startswith("rank"))) + 1 :][:3]
    # lambd 1 (0.9, from its one live seed) beats lambd 0 (mean of 0.85 and 0.9 = 0.875)
    assert table[0].split()[1] == "1" and "(1 seed diverged, not in the mean)" in table[0]
    assert table[1].split()[1] == "0"
    assert table[2].split()[1] == "2" and "every seed diverged" in table[2]


def test_flower_noise_is_not_read_as_bias():
    """On flower the diagnosis assumes the generator's Bayes error (5.8% at its default
    noise 0.2, not 0): a train error of 7% is then about what any classifier reaches."""
    bayes, note = cli._bayes_default(build_parser().parse_args(["sweep", "--dataset", "flower"]))
    assert 0.05 < bayes < 0.07 and "the flower generator's at noise 0.2" in note
    verdict = jaxhp.diagnose(train_error=0.07, dev_error=0.08, bayes_error=bayes).verdict
    assert verdict == "fine"
    digits = build_parser().parse_args(["sweep", "--dataset", "digits"])
    assert cli._bayes_default(digits)[0] is None
    # where the noise leaves guessing best (50%), a dev set that samples 2 of 5 of a class
    # has a chance error of 40%: the Bayes error assumed is capped there, and says so
    noisy = build_parser().parse_args(["sweep", "--dataset", "flower", "--noise", "50"])
    dev = (np.zeros((5, 2), np.float32), np.array([0, 0, 1, 1, 1]))
    bayes, note = cli._bayes_default(noisy, jaxhp.Data(train=dev, dev=dev))
    assert bayes == pytest.approx(0.4)
    assert "capped at this dev set's chance error 40.00% (the generator's is 50.00%)" in note


def test_second_sweep_loads_its_program_from_the_cache_and_no_cache_turns_it_off(tmp_path):
    env = cpu_command_env(JAXHP_CACHE_DIR=str(tmp_path / "cache"))
    args = [sys.executable, "-m", "jaxhp", "sweep", "--lambd", "0,1", "--keep-prob", "1"]
    args += ["--n-train", "80", "--n-dev", "40", "--layers", "6", "--seeds", "1", "--quiet"]

    def sweep(*extra, steps="60"):
        done = subprocess.run(
            [*args, "--steps", steps, *extra, "--out", str(tmp_path / "out")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert "cache miss: later runs reuse it" in sweep()
    assert any((tmp_path / "cache").iterdir())
    assert re.search(
        r"compiling took [\d.]+ s of that \([1-9]\d* programs? from the cache\)", sweep()
    )
    # more steps: a new main program, compiled, while the small ones come from the cache
    mixed = r"[1-9]\d* programs? from the cache, [1-9]\d* compiled \(later runs reuse them\)"
    assert re.search(mixed, sweep(steps="70"))
    assert "compilation cache off" in sweep("--no-cache")


@pytest.mark.parametrize(
    "metric, which", [(None, "last params"), ("best_dev_cost", "params at each seed's best")]
)
def test_sweep_scores_the_chosen_configuration_on_the_test_split_once(
    tmp_path, capsys, metric, which
):
    """--n-test keeps a test split; the best configuration's seeds are refitted and scored
    on it, with the params the ranking read. Checked against fit on the same draws and a
    NumPy forward pass. The run overfits 30 noisy examples, so a seed's best evaluation
    comes well before its last, and the two params score differently."""
    argv = ["sweep", "--n-train", "30", "--n-dev", "40", "--noise", "0.35", "--layers", "20"]
    argv += ["--steps", "300", "--eval-every", "10", "--lr", "1", "--quiet", "--n-test", "120"]
    argv += ["--seeds", "2", "--lambd", "0,0.3"] + (["--metric", metric] if metric else [])
    assert main([*argv, "--keep-prob", "1", "--no-cache", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    said = re.search(
        rf"test accuracy of the chosen configuration \({which}.*\): (\S+) ± (\S+) over 2 "
        r"seeds on 120",
        out,
    )
    assert said, out
    meta = json.loads((tmp_path / "results.json").read_text())["meta"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    data = jaxhp.datasets.load("moons", n_train=30, n_dev=40, n_test=120, noise=0.35, seed=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 20, 1), steps=300, eval_every=10)

    def score(params):
        a = np.asarray(data.test[0], np.float64)
        for k, layer in enumerate(params):
            a = a @ np.asarray(layer.W, np.float64) + np.asarray(layer.b, np.float64)
            a = np.maximum(a, 0) if k < len(params) - 1 else a
        return np.mean((a[:, 0] > 0) == np.asarray(data.test[1]))

    scores, others = [], []
    for member in meta["test"]["members"]:
        row = rows[member]
        hp = HParams(lambd=np.float32(row["lambd"]), keep_prob=np.float32(1.0),
                     learning_rate=np.float32(row["learning_rate"]))  # fmt: skip
        fitted = jaxhp.fit(jaxhp.sweep.member_key(0, int(row["seed"])), hp, data, config)
        best, last = score(fitted.best_params), score(fitted.params)
        scores.append(best if metric else last)
        others.append(last if metric else best)
    assert np.abs(np.subtract(scores, others)).max() > 2.5 / 120  # the two params differ
    np.testing.assert_allclose(meta["test"]["accuracy"], scores, atol=1.5 / 120)
    assert float(said[1]) == pytest.approx(np.mean(meta["test"]["accuracy"]), abs=1e-4)
    assert float(said[2]) == pytest.approx(np.std(meta["test"]["accuracy"], ddof=1), abs=1e-4)
    if metric is None:  # the table's order for its default metric, rebuilt from the CSV
        assert sorted(meta["test"]["members"]) == [int(m) for m in _rows_of_best(rows)]


def _rows_of_best(rows):
    """The members of the table's best configuration (mean dev accuracy over seeds; ties
    by mean dev cost), ranked here from results.csv."""
    points = {}
    for row in rows:
        points.setdefault((row["lambd"], row["learning_rate"]), []).append(row)
    best = max(
        points.values(),
        key=lambda rs: (
            np.mean([float(r["dev_accuracy"]) for r in rs]),
            -np.mean([float(r["dev_cost"]) for r in rs]),
        ),
    )
    return [r["member"] for r in best]


def test_train_scores_its_params_on_the_test_split_with_its_optimizer_flags(capsys):
    """jaxhp train --optimizer momentum --momentum 0.5: the test score is that of fit with
    optax's SGD at momentum 0.5 (written out here), scored by a NumPy forward pass."""
    argv = ["train", "--n-train", "80", "--n-dev", "40", "--n-test", "50", "--steps", "30"]
    argv += ["--layers", "6", "--optimizer", "momentum", "--momentum", "0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "learning_rate=0.1 momentum=0.5 seed=0" in out
    said = re.search(r"^test accuracy \(last params\): (0\.\d{4}) on 50 test examples$", out, re.M)
    data = jaxhp.datasets.load("moons", n_train=80, n_dev=40, n_test=50, seed=0)
    config = jaxhp.TrainConfig(
        layer_sizes=(2, 6, 1), steps=30, optimizer=lambda hp: optax.sgd(0.1, momentum=0.5)
    )
    fitted = jaxhp.fit(jax.random.key(0), HParams(learning_rate=0.1), data, config)
    last = [line for line in out.splitlines() if line.startswith("step ")][-1]
    assert float(re.search(r"dev cost (\S+)", last)[1]) == pytest.approx(
        float(fitted.history.dev_cost[-1]), abs=1e-4
    )  # a cost, not only an accuracy: another momentum would move it
    params = fitted.params
    a = np.asarray(data.test[0], np.float64)
    for k, layer in enumerate(params):
        a = a @ np.asarray(layer.W, np.float64) + np.asarray(layer.b, np.float64)
        a = np.maximum(a, 0) if k < len(params) - 1 else a
    expected = np.mean((a[:, 0] > 0) == np.asarray(data.test[1]))
    assert said and float(said[1]) == pytest.approx(expected, abs=1e-4), out


def test_ctrl_c_while_reporting_says_what_is_on_disk(tmp_path, capsys, monkeypatch):
    """Training has finished when the plots are drawn: Ctrl-C there keeps results.csv and
    results.json, and the message says so rather than "nothing was saved"."""
    from jaxhp.results import SweepResults

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(SweepResults, "plot_heatmap", interrupted)
    out, ck = tmp_path / "out", tmp_path / "ck"
    out.mkdir()
    for name in ("heatmap.png", "curves.png", "rungs.png"):  # an earlier run's plots
        (out / name).write_bytes(b"an earlier sweep")
    argv = ["sweep", *SMALL, "--lambd", "0,0.1", "--keep-prob", "1", "--no-cache"]
    assert main([*argv, "--out", str(out), "--checkpoint", str(ck)]) == cli.EXIT_INTERRUPTED
    said = capsys.readouterr().err.strip()
    assert said == (
        f"interrupted after training, while reporting: results.csv, results.json written to "
        f"{out}/; the members are saved in {ck}: re-run to report them"
    )
    assert (out / "results.csv").is_file() and (out / "results.json").is_file()
    # they showed another sweep beside this one's table
    assert not any((out / n).exists() for n in ("heatmap.png", "curves.png", "rungs.png"))


def test_ctrl_c_during_the_test_refit_leaves_this_runs_plots(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_score_test", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    (out / "heatmap.png").write_bytes(b"an earlier sweep")
    argv = ["sweep", *SMALL, "--n-test", "40", "--lambd", "0,0.1", "--keep-prob", "1"]
    assert main([*argv, "--no-cache", "--out", str(out)]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == (
        "interrupted after training, while reporting: results.csv, results.json, heatmap.png, "
        f"curves.png written to {out}/"
    )
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"  # this run's


@pytest.mark.parametrize("n_dev, note", [(10, True), (20, False)])
def test_a_dev_set_too_small_to_rank_on_is_said(n_dev, note, capsys):
    argv = ["train", "--n-train", "60", "--n-dev", str(n_dev), "--steps", "10", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    said = "note: accuracy moves in steps of 10% on the dev set (10 examples): too coarse"
    assert (said in out) == note, out


def test_train_interrupted_leaves_no_empty_folder_behind(tmp_path, capsys, monkeypatch):
    import jaxhp.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxhp.train, "fit", interrupted)
    target = tmp_path / "new" / "sub" / "p.npz"
    argv = ["train", "--n-train", "60", "--n-dev", "30", "--steps", "10", "--quiet"]
    assert main([*argv, "--save", str(target)]) == cli.EXIT_INTERRUPTED
    assert not (tmp_path / "new").exists()  # made before training, removed as it was empty
    # ... and said, so that a mistyped path does not go unnoticed
    assert f"--save: made the folder {target.parent}\n" in capsys.readouterr().out


def test_a_damaged_checkpoint_chunk_is_one_warning_line(tmp_path):
    argv = ["sweep", *SMALL, "--lambd", "0,0.1", "--keep-prob", "1", "--chunk-size", "2"]
    argv += ["--no-cache", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "o")]
    # in their own processes: pytest records warnings raised in this one, and both runs on
    # the same backend (a checkpoint written on a GPU would be another sweep's on the CPU)
    cmd, env = [sys.executable, "-m", "jaxhp", *argv], cpu_command_env()
    first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    chunk = sorted((tmp_path / "ck").glob("chunk-*.npz"))[0]
    chunk.write_bytes(b"garbage " * 20)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"warning: checkpoint chunk {chunk} is damaged (cannot be read: not an .npz file "
        f"(overwritten?)); set aside as {chunk.name}.damaged, and its members will be trained "
        "again\n"
    )  # not Python's "sweep.py:607: UserWarning:" and source line, nor a "pickled data" cause


def test_train_save_to_a_folder_that_cannot_be_made_fails_before_training(capsys):
    # /proc refuses new folders even to root, whom os.access lets through
    argv = ["train", "--n-train", "60", "--n-dev", "30", "--steps", "20", "--quiet"]
    assert main([*argv, "--save", "/proc/jaxhp-test/p.npz"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("jaxhp train: error: --save /proc/jaxhp-test") and "done" not in out


def test_train_ctrl_c_after_saving_says_the_params_are_saved(tmp_path, capsys, monkeypatch):
    import jaxhp.plot

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxhp.plot, "plot_cost", interrupted)
    params = tmp_path / "p.npz"
    argv = ["train", "--n-train", "60", "--n-dev", "30", "--steps", "20", "--quiet"]
    code = main([*argv, "--save", str(params), "--plot", str(tmp_path / "c.png")])
    assert code == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == (
        f"interrupted after training: the params are saved in {params}"
    )
    assert sorted(np.load(params).files) == ["W1", "W2", "W3", "b1", "b2", "b3"]


def test_sweep_puts_an_axis_on_the_optimizers_own_hyperparameter(tmp_path, capsys):
    """--momentum 0,0.9 with --optimizer momentum: each row equals fit with optax's SGD at
    that momentum written out here (not the CLI's optimizer table)."""
    argv = ["sweep", *SMALL, "--optimizer", "momentum", "--momentum", "0,0.9", "--seeds", "1"]
    assert main([*argv, "--lambd", "0.1", "--keep-prob", "1", "--out", str(tmp_path)]) == 0
    assert "momentum=0.9" in capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert sorted(float(r["momentum"]) for r in rows) == [0.0, pytest.approx(0.9)]
    data = jaxhp.datasets.load("moons", n_train=80, n_dev=40, n_test=0, seed=0)
    every = json.loads((tmp_path / "results.json").read_text())["config"]["eval_every"]
    for row in rows:
        lr, momentum = float(row["learning_rate"]), float(row["momentum"])
        config = jaxhp.TrainConfig(
            layer_sizes=(2, 6, 1),
            steps=60,
            eval_every=every,
            optimizer=lambda hp, lr=lr, mu=momentum: optax.sgd(lr, momentum=mu),
        )
        hp = HParams(lambd=0.1, keep_prob=1.0, learning_rate=lr)
        fitted = jaxhp.fit(jaxhp.sweep.member_key(0, int(row["seed"])), hp, data, config)
        assert float(row["dev_cost"]) == pytest.approx(float(fitted.history.dev_cost[-1]), 1e-5)
    again = tmp_path / "again"  # --config replays the flags, --momentum's axis with them
    assert main(["sweep", "--config", str(tmp_path / "results.json"), "--out", str(again)]) == 0
    assert (again / "results.csv").read_text() == (tmp_path / "results.csv").read_text()


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_a_digits_sweep_from_the_command_line_equals_fit(tmp_path, capsys, model):
    """--dataset digits with --model mlp (pixels flattened) or cnn (NHWC images): each row
    equals jaxhp.fit of the same network built here from the library's own pieces."""
    argv = ["sweep", "--dataset", "digits", "--n-train", "100", "--n-dev", "50", "--model"]
    argv += [model, "--steps", "20", "--batch-size", "25", "--seeds", "1", "--quiet"]
    argv += ["--channels", "4"] if model == "cnn" else ["--layers", "8"]
    assert main([*argv, "--lambd", "0,1", "--keep-prob", "1", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "digits: 100 train, 50 dev, 0 test examples; 8x8x1 images" in text
    data = jaxhp.datasets.load("digits", n_train=100, n_dev=50, n_test=0, seed=0)
    if model == "mlp":
        assert "flattened to 64 features" in text and "layers 64-8-10" in text
        data = jaxhp.Data(*[(s[0].reshape(len(s[0]), 64), s[1]) for s in data[:2]])
        net = {"layer_sizes": (64, 8, 10)}
    else:
        assert "cnn with conv blocks of 4 channels, dense 10" in text
        net = {"model": jaxhp.models.cnn((8, 8, 1), channels=(4,), dense=(10,))}
    every = json.loads((tmp_path / "results.json").read_text())["config"]["eval_every"]
    config = jaxhp.TrainConfig(**net, steps=20, batch_size=25, eval_every=every)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert sorted(float(r["lambd"]) for r in rows) == [0.0, 1.0]
    for row in rows:
        hp = HParams(lambd=float(row["lambd"]), keep_prob=1.0, learning_rate=0.1)
        fitted = jaxhp.fit(jaxhp.sweep.member_key(0, int(row["seed"])), hp, data, config)
        assert float(row["dev_cost"]) == pytest.approx(float(fitted.history.dev_cost[-1]), 1e-5)


def test_train_member_seed_saves_the_params_of_a_sweep_member(tmp_path, capsys):
    """jaxhp train --member-seed K trains the sweep's member of seed K: its saved params are
    fit's with the member's key, and sweep.refit's of that member (the sweep's own program,
    reached through run_sweep) to float rounding."""
    flags = ["--n-train", "80", "--n-dev", "40", "--layers", "5", "--steps", "30"]
    flags += ["--eval-every", "10", "--seed", "3", "--quiet"]
    out = tmp_path / "sweep"
    assert main(["sweep", *flags, "--lambd", "0.1", "--keep-prob", "0.8", "--seeds", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    saved = tmp_path / "p.npz"
    train_flags = ["--lambd", "0.1", "--keep-prob", "0.8", "--member-seed", "1"]
    assert main(["train", *flags, *train_flags, "--save", str(saved)]) == 0
    assert "seed=3 member_seed=1" in capsys.readouterr().out
    data = jaxhp.datasets.load("moons", n_train=80, n_dev=40, n_test=0, seed=0)
    config = jaxhp.TrainConfig(layer_sizes=(2, 5, 1), steps=30, eval_every=10)
    space = jaxhp.sweep.grid(lambd=[0.1], keep_prob=[0.8], seeds=2)
    results = jaxhp.run_sweep(space, data, config, seed=3, progress=False)
    member = int(np.flatnonzero(np.asarray(results.seeds) == 1)[0])
    refitted = jaxhp.sweep.refit(results, member, data, config)
    hparams = jaxhp.HParams(lambd=0.1, keep_prob=0.8)
    alone = jaxhp.fit(jaxhp.sweep.member_key(3, 1), hparams, data, config)
    with np.load(saved) as params:
        assert sorted(params) == ["W1", "W2", "b1", "b2"]
        for k, (layer, same) in enumerate(zip(refitted.params, alone.params), start=1):
            for name in ("W", "b"):
                np.testing.assert_array_equal(params[f"{name}{k}"], getattr(same, name))
                np.testing.assert_allclose(
                    params[f"{name}{k}"], getattr(layer, name), rtol=1e-5, atol=1e-7
                )
