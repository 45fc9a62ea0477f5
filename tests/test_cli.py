import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxhp.cli import main

SMALL = ["--n-train", "80", "--n-dev", "40", "--layers", "6", "--steps", "60", "--quiet"]


def test_train_command(tmp_path, capsys):
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
            "--save",
            str(tmp_path / "p.npz"),
            "--plot",
            str(tmp_path / "cost.png"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("step ") == 2 and "final: train accuracy" in out
    with np.load(tmp_path / "p.npz") as params:
        assert params["W1"].shape == (2, 20) and params["b3"].shape == (1,)
    assert (tmp_path / "cost.png").stat().st_size > 1000


def test_sweep_command_writes_outputs(tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = main(["sweep", "--lambd", "0,1", "--keep-prob", "0.8,1", *SMALL, "--out", str(out_dir)])
    text = capsys.readouterr().out
    assert code == 0
    assert "trained 4 members" in text and "best member #" in text and "verdict:" in text
    for name in ("results.csv", "results.json", "heatmap.png", "curves.png"):
        assert (out_dir / name).stat().st_size > 0
    with (out_dir / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4


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
                *SMALL,
                "--out",
                str(tmp_path / name[-3:]),
            ]
        )
        assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "does not exist"),
        (b"not a zip file", "not a readable .npz"),
        ("npz-missing-y", "must hold arrays 'x' and 'y'"),
        ("csv-bad", "malformed"),
    ],
)
def test_sweep_bad_dataset_file(tmp_path, capsys, content, match):
    if content == "npz-missing-y":
        path = tmp_path / "d.npz"
        np.savez(path, x=np.ones((5, 2)))
    elif content == "csv-bad":
        path = tmp_path / "d.csv"
        path.write_text("1,2,0\n3,oops,1\n")
    else:
        path = tmp_path / "d.npz"
        if content is not None:
            path.write_bytes(content)
    code = main(["sweep", "--dataset", str(path), *SMALL, "--out", str(tmp_path)])
    assert code == 2
    assert match in capsys.readouterr().err


def test_sweep_bad_values_exit_cleanly(tmp_path, capsys):
    assert main(["sweep", "--keep-prob", "0.5,1.5", *SMALL, "--out", str(tmp_path)]) == 2
    assert "keep_prob must be in (0, 1], got 1.5" in capsys.readouterr().err
    assert main(["sweep", "--lambd", "loguniform:0:1", *SMALL, "--out", str(tmp_path)]) == 2
    assert "--random" in capsys.readouterr().err


def _sweep_cmd(checkpoint, out):
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
        "0,0.01,0.1,1,3,10",
        "--keep-prob",
        "0.5,0.6,0.7,0.8,0.9,1",
        "--chunk-size",
        "4",
        "--quiet",
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
    ]


def test_sigkilled_sweep_resumes_to_the_same_table(tmp_path):
    checkpoint = tmp_path / "ck"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
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
    assert 1 <= finished < 9, "the kill must land mid-sweep"
    assert not (tmp_path / "killed" / "results.csv").exists()

    resumed = subprocess.run(
        _sweep_cmd(checkpoint, tmp_path / "resumed"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{4 * finished} from checkpoint" in resumed.stdout
    fresh = subprocess.run(
        _sweep_cmd(tmp_path / "ck2", tmp_path / "fresh"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr
    resumed_table = Path(tmp_path / "resumed" / "results.csv").read_text()
    assert resumed_table == Path(tmp_path / "fresh" / "results.csv").read_text()
    assert len(resumed_table.splitlines()) == 37


def test_sweep_without_matplotlib_still_writes_the_table(tmp_path, capsys, monkeypatch):
    import jaxhp.plot

    def missing():
        raise ImportError("plotting needs matplotlib: pip install 'jaxhp[plot]'")

    monkeypatch.setattr(jaxhp.plot, "_pyplot", missing)
    code = main(["sweep", "--lambd", "0,1", "--keep-prob", "1", *SMALL, "--out", str(tmp_path)])
    assert code == 0
    assert "no plots: plotting needs matplotlib" in capsys.readouterr().out
    assert (tmp_path / "results.csv").exists() and not (tmp_path / "heatmap.png").exists()
