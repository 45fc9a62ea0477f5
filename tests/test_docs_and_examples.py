import re
import runpy
import sys
from pathlib import Path

import jaxhp

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_is_pinned():
    assert sorted(jaxhp.__all__) == sorted(
        [
            "Data",
            "Diagnosis",
            "GradCheckReport",
            "HParams",
            "History",
            "Layer",
            "LeafCheck",
            "SweepResults",
            "TrainConfig",
            "TrainResult",
            "TrainState",
            "accuracy",
            "cross_entropy",
            "data",
            "datasets",
            "diagnose",
            "dropout",
            "dropout_mask",
            "fit",
            "forward",
            "grad_check",
            "init_mlp",
            "init_probe",
            "init_state",
            "l2_penalty",
            "learning_curve",
            "loss",
            "make_update_step",
            "predict",
            "run_sweep",
            "sweep",
            "testing",
        ]
    )
    for name in jaxhp.__all__:
        assert hasattr(jaxhp, name), name


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert blocks[0].strip() == 'pip install -e ".[plot]" && jaxhp sweep'
    assert blocks[1].strip() == 'pip install -e ".[dev]" && pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]" && pytest' in ci


def test_readme_quickstart_runs(capsys):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "dev accuracy" in out and "grad_check mode=full" in out and "great" in out


def test_gradient_checking_example_flags_exactly_the_course_bugs(capsys):
    namespace = runpy.run_path(str(ROOT / "examples" / "gradient_checking.py"))
    flagged, fixed_difference = namespace["main"]()
    assert flagged == ["W2", "b1"]
    assert fixed_difference < 1e-7


def test_sweep_example_runs(tmp_path, capsys):
    namespace = runpy.run_path(str(ROOT / "examples" / "sweep_moons.py"))
    best = namespace["main"](["--steps", "200", "--out", str(tmp_path)])
    assert (tmp_path / "heatmap.png").stat().st_size > 1000
    assert 0.5 < best["dev_accuracy"] <= 1.0
    assert "verdict:" in capsys.readouterr().out
    assert sys.modules.get("jaxhp") is not None


def test_bias_variance_example_diagnoses_both_failure_modes(tmp_path, capsys):
    namespace = runpy.run_path(str(ROOT / "examples" / "bias_variance.py"))
    verdicts = namespace["main"](["--out", str(tmp_path), "--steps", "1500"])
    assert verdicts["tiny, short (under-fits)"] == "high bias"
    assert verdicts["wide, long, no regularisation (over-fits)"] == "high variance"
    assert (tmp_path / "learning_curve.png").exists()


def test_initialization_example_reproduces_the_course_ordering(tmp_path, capsys):
    namespace = runpy.run_path(str(ROOT / "examples" / "initialization.py"))
    accuracies = namespace["main"](["--steps", "6000", "--out", str(tmp_path)])
    assert abs(accuracies["zeros"][0] - 0.5) <= 0.05
    assert accuracies["He"][0] > accuracies["random x10"][0]
    assert (tmp_path / "init_probe.png").exists()
