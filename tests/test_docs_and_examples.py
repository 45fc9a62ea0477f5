import ast
import inspect
import re
import runpy
import subprocess
import sys
import types
from pathlib import Path

import pytest

import jaxhp

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PINNED = [
    "Data",
    "Diagnosis",
    "GradCheckReport",
    "HParams",
    "History",
    "Layer",
    "LeafCheck",
    "Model",
    "SweepResults",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "accuracy",
    "augment",
    "cross_entropy",
    "data",
    "datasets",
    "diagnose",
    "dropout",
    "dropout_mask",
    "enable_compilation_cache",
    "fit",
    "forward",
    "grad_check",
    "init_mlp",
    "init_probe",
    "init_state",
    "l2_leaves",
    "l2_penalty",
    "learning_curve",
    "loss",
    "make_update_step",
    "model_loss",
    "model_predict",
    "models",
    "predict",
    "run_sweep",
    "sweep",
    "testing",
]


def surface_problems(package: types.ModuleType) -> list[str]:
    """What is wrong with a package's public surface: a name in ``__all__`` that the package
    lacks (``from package import *`` would fail), or a public non-module attribute missing
    from ``__all__`` (an export nobody pinned). Submodules reached by import are allowed."""
    exported = set(package.__all__)
    problems = [f"{name} is in __all__ but not defined" for name in exported - set(vars(package))]
    for name, value in vars(package).items():
        if name.startswith("_") or name in exported or isinstance(value, types.ModuleType):
            continue
        problems.append(f"{name} is public but not in __all__")
    return sorted(problems)


def test_public_api_is_pinned():
    assert sorted(jaxhp.__all__) == sorted(PINNED)
    assert surface_problems(jaxhp) == []
    namespace = {}
    exec("from jaxhp import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(PINNED)


def test_the_lazy_submodules_are_reached_from_a_plain_import():
    names = "jaxhp.cli.load_run, jaxhp.optuna.optimize, jaxhp.plot.heatmap_figure"
    code = f"import jaxhp; print(*(f.__name__ for f in ({names})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["load_run", "optimize", "heatmap_figure"], done.stderr[-2000:]


def test_surface_check_sees_a_missing_and_an_unpinned_name():
    fake = types.ModuleType("fake")
    fake.__all__ = ["fit", "gone"]
    fake.fit = lambda: None
    fake.extra = lambda: None  # public, not pinned
    fake.helper_module = types  # a submodule: fine
    assert surface_problems(fake) == [
        "extra is public but not in __all__",
        "gone is in __all__ but not defined",
    ]


def private_uses(source: str) -> list[str]:
    """jaxhp names an example reaches that are private (a leading underscore anywhere in the
    dotted path): ``from jaxhp.plot import _save``, ``import jaxhp._checks``,
    ``jaxhp.plot._pyplot()``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxhp"):
            found += [f"{node.module}.{a.name}" for a in node.names]
            found += [node.module] if "._" in node.module else []
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("jaxhp")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in ("jaxhp", "plot", "sweep", "data"):
                found.append(f"{ast.unparse(node)}")
    return sorted({name for name in found if any(p.startswith("_") for p in name.split("."))})


def test_private_use_check_sees_each_kind():
    source = (
        "import jaxhp._checks\n"
        "from jaxhp.plot import _pyplot, save\n"
        "from jaxhp import plot\n"
        "plot._save(1, 2)\n"
        "jaxhp.sweep.member_key(0, 1)\n"
    )
    assert private_uses(source) == ["jaxhp._checks", "jaxhp.plot._pyplot", "plot._save"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_uses_only_the_public_api(path):
    assert private_uses(path.read_text()) == []


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


def test_example_outputs_are_gitignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "/jaxhp-out/" in ignored


# Lines each example must print (regular expressions, one per line, in any order).
EXPECTED_OUTPUT = {
    "regularization": [
        r"^none +\d\.\d{3} ± \d\.\d{3} +\d\.\d{3} ± \d\.\d{3}$",
        r"^L2 +\d\.\d{3} ± \d\.\d{3} +\d\.\d{3} ± \d\.\d{3}$",
        r"^dropout +\d\.\d{3} ± \d\.\d{3} +\d\.\d{3} ± \d\.\d{3}$",
    ],
    "bias_variance": [
        r"== tiny[^=]*verdict: high bias\n",
        r"over-fits\)\n[^=]*verdict: high variance\n",
    ],
    "sweep_moons": [r"verdict:", r"^test accuracy of the chosen member: 0\.\d{3} on 200 "],
    "initialization": [r"^ +He: .*dev accuracy"],
    "gradient_checking": [r"."],
    "halving_refine": [r"^coarse random \+ halving +9 +210 ", r"the grid's best dev accuracy"],
}
# Files each example must write under its output folder.
EXPECTED_FILES = {
    "regularization": ["boundary_none.png", "boundary_L2.png", "boundary_dropout.png"],
    "bias_variance": ["learning_curve.png"],
    "sweep_moons": ["heatmap.png", "random_search.png"],
    "initialization": ["init_probe.png", "boundary_he.png"],
    "halving_refine": ["coarse_rungs.png", "fine_rungs.png"],
}


# What each example's main returns, checked after its run (the course's results).
EXPECTED_RESULT = {
    "gradient_checking": lambda r: r[0] == ["W2", "b1"] and r[1] < 1e-7,
    "initialization": lambda r: (
        abs(r["zeros"][0] - 0.5) <= 0.05 and r["He"][0] > r["random x10"][0]
    ),
    "sweep_moons": lambda r: 0.5 < r["dev_accuracy"] <= 1.0 and 0.5 < r["test_accuracy"] <= 1.0,
    # quick: 8 x 90 steps; 9 x 10 + 3 x 20 + 1 x 60; 3 x 10 + 1 x 20 + 1 x 60
    "halving_refine": lambda r: r["member_steps"] == [720, 210, 110],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_writes_only_under_its_output_folder(path, tmp_path, monkeypatch, capsys):
    """Every example's main, in its quick mode when it has one, run from a fresh folder:
    it prints and returns what it promises and writes only under jaxhp-out/examples/<name>/."""
    monkeypatch.chdir(tmp_path)
    main = runpy.run_path(str(path))["main"]
    if inspect.signature(main).parameters:
        result = main(["--quick"] if "--quick" in path.read_text() else [])
    else:
        result = main()
    out = capsys.readouterr().out
    for pattern in EXPECTED_OUTPUT.get(path.stem, [r"\S"]):
        assert re.search(pattern, out, re.M), (pattern, out)
    assert EXPECTED_RESULT.get(path.stem, lambda r: True)(result), result
    folder = tmp_path / "jaxhp-out" / "examples" / path.stem
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p for p in written if not p.is_relative_to(folder)] == []
    for name in EXPECTED_FILES.get(path.stem, []):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
