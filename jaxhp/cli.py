"""The ``jaxhp`` command: ``jaxhp train`` (one run), ``jaxhp sweep`` (many at once) and
``jaxhp tune`` (Optuna's sampler picks them, batch by batch).

Every argument is checked before anything trains: a bad one prints one line on stderr and
exits with status 2. Ctrl-C prints one line saying what was saved and exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import gc
import hashlib
import io
import json
import math
import os
import platform
import re
import signal
import sys
import tempfile
import threading
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

import jaxhp
from jaxhp import datasets
from jaxhp.cache import compile_stats, default_cache_dir, enable_compilation_cache
from jaxhp.diagnose import above_chance, majority_error, returned_params_row
from jaxhp.init import SCHEMES
from jaxhp.nn import ACTIVATIONS
from jaxhp.records import OPTIMIZER_HPARAMS, OPTIMIZERS, HParams
from jaxhp.results import METRICS, diagnose_errors, format_summary, number_text, tie_break
from jaxhp.space import _repeated
from jaxhp.sweep import _divergence_advice, refit_together
from jaxhp.train import model_predict

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CLI_MODELS = ("mlp", "cnn")
DEFAULT_LEARNING_RATE = HParams().learning_rate  # one default for the library and the CLI


class UsageError(ValueError):
    """A bad command line, found before any training."""


class Interrupted(Exception):
    """Ctrl-C; the message says what was saved."""


# ---- argument types: each error names its flag (argparse prefixes "argument --flag") ----
def _int(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = _whole_number(text)  # 1e3 is 1000; 100.5 is no int
        if value is None:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not low <= value < 2**31:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _whole_number(text: str) -> int | None:
    """``text`` as an int when it is a float's text of a whole number (``1e3``, ``2000.0``)."""
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _positive_int(text: str) -> int:
    return _int(text, 1, "an int >= 1")


def _non_negative_int(text: str) -> int:
    return _int(text, 0, "an int >= 0")


def _seed(text: str) -> int:
    return _int(text, 0, "an int in [0, 2**31)")


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        lists = "; a list of values is for jaxhp sweep" if "," in text else ""
        lists += "; a distribution is for jaxhp sweep --random or tune" if ":" in text else ""
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}{lists}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _eta(text: str) -> float:
    value = _float(text)
    if not value > 1:
        raise argparse.ArgumentTypeError(f"expected a reduction factor > 1 (e.g. 3), got {text!r}")
    return value


def _bayes_error(text: str) -> float:
    value = _float(text)
    if not 0 <= value < 1:
        percent = f"; for {value:g}% give {value / 100:g}" if 1 < value <= 100 else ""
        raise argparse.ArgumentTypeError(f"expected an error rate in [0, 1), got {text!r}{percent}")
    return value


def _beta(text: str) -> float:
    value = _float(text)
    if not 0 <= np.float32(value) < 1:  # trained in float32: 0.99999999 would be 1
        raise argparse.ArgumentTypeError(f"expected a decay rate β in [0, 1), got {text!r}")
    return value


def _layers(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 20,3, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"widths must be >= 1, got {text!r}")
    return sizes


def _chunk_size(text: str):
    return "auto" if text == "auto" else _int(text, 1, "'auto' or an int >= 1")


def _keep_prob_value(text: str):
    """One keep_prob: ``0.8``, or one value per hidden layer written ``0.8/0.9``."""
    try:
        values = tuple(float(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a keep probability in (0, 1] (per hidden layer: 0.8/0.9), got {text!r}"
        ) from None
    bad = [v for v in values if not 0 < v <= 1]
    if bad:
        raise argparse.ArgumentTypeError(f"keep_prob must be in (0, 1], got {bad[0]}")
    return values[0] if len(values) == 1 else values


def _train_keep_prob(text: str):
    if "," in text:
        raise argparse.ArgumentTypeError(
            f"jaxhp train takes one keep_prob, got {text!r}; write one value per hidden "
            "layer as 0.8/0.9"
        )
    return _keep_prob_value(text)


class _Axis:
    """A sweep axis as typed (kept for the record) and as values or a distribution."""

    def __init__(self, text: str, values):
        self.text, self.values = text, values

    def __repr__(self) -> str:
        return self.text


def _axis_type(number, *, keep_prob: bool = False):
    """Parser of a sweep axis: ``a,b,c`` (``0.8/0.9`` = one keep_prob per hidden layer), or
    ``loguniform:a:b`` / ``uniform:a:b`` for random search; a β axis (``number`` is
    :func:`_beta`) also takes ``one_minus_loguniform:a:b``, 1 − β drawn on a log scale."""
    beta = number is _beta
    kinds = ("loguniform", "uniform", "one_minus_loguniform") if beta else ("loguniform", "uniform")

    def parse(text: str) -> _Axis:
        from jaxhp import sweep

        kind, _, rest = text.partition(":")
        if kind in kinds:
            try:
                a, b = (_float(v) for v in rest.split(":"))
            except (ValueError, argparse.ArgumentTypeError):
                raise argparse.ArgumentTypeError(
                    f"expected {kind}:a:b with numbers a < b, got {text!r}"
                ) from None
            low = 0.0 if kind != "loguniform" and number in (_non_negative, _beta) else None
            inside = a < b and (a > 0 if low is None else a >= low)
            if not inside or (keep_prob and b > 1) or (beta and np.float32(b) >= 1):
                allowed = "0 <= a < b" if low is not None else "0 < a < b"
                bound = " <= 1" if keep_prob else " < 1" if beta else ""
                raise argparse.ArgumentTypeError(f"{text!r} needs {allowed}{bound}")
            return _Axis(text, getattr(sweep, kind)(a, b))
        if ":" in text:  # a distribution of another name
            beta_only = "" if beta else " (one_minus_loguniform is for the β axes)"
            raise argparse.ArgumentTypeError(
                f"unknown distribution {kind!r} in {text!r}; allowed: "
                f"{', '.join(f'{k}:a:b' for k in kinds)}{beta_only}, or values a,b,c"
            )
        parse_one = _keep_prob_value if keep_prob else number
        values = [parse_one(part) for part in text.split(",")]
        twice = _repeated(values)
        if twice is not None:
            raise argparse.ArgumentTypeError(
                f"{text!r} lists {number_text(twice)} more than once; list each value once "
                "(--seeds repeats every point with new seeds)"
            )
        return _Axis(text, values)

    parse.is_axis = True  # a flag that takes a list of values (a,b,c)
    return parse


# ---- the parser --------------------------------------------------------------------------
class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, but not the noise of ``(default: None)`` for flags."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and a "did you mean" for mistyped words."""

    root: argparse.ArgumentParser | None = None  # a subcommand's parser: the jaxhp parser

    def __init__(self, *args, **kwargs):
        # No prefixes: `--seed 3` (the base seed) must not pass for `--seeds 3`, nor a typo
        # such as `--step` for --steps.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        message = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{self._hint(message)}\n")

    def _hint(self, message: str) -> str:
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            word, options = choice.group(1), re.findall(r"'([^']*)'", choice.group(2))
        elif message.startswith("unrecognized arguments:"):
            listed = message.split(":", 1)[1].split(" (")[0]  # not a hint's own flags
            words = [w for w in listed.split() if w.startswith("-")]
            if not words:
                return ""
            word, options = words[0].split("=")[0], _option_strings(self)
            root = self.root or self
            owners = _option_owners(root).get(word)
            if owners:  # a real flag, of another command: say whose, not "did you mean" it
                return f"; {word} is an option of `{root.prog} {' / '.join(owners)}` only"
        else:
            return ""
        close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else ""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {
        name: sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    }


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    names = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    for sub in _subcommands(parser).values():
        names += _option_strings(sub)
    return names


def _option_owners(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each subcommand option, and the subcommands that take it."""
    owners: dict[str, list[str]] = {}
    for name, sub in _subcommands(parser).items():
        for option in dict.fromkeys(_option_strings(sub)):
            owners.setdefault(option, []).append(name)
    return owners


def _add_data_args(parser: argparse.ArgumentParser):
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        metavar="NAME|FILE",
        default="moons",
        help=f"a built-in dataset ({', '.join(datasets.GENERATORS)}: 2-D points; digits: "
        "scikit-learn's 8x8 handwritten digits, pip install 'jaxhp[data]'), or a .npz file "
        "(arrays x (m, n_x) and y (m,)) or .csv file (features, then the label in the last "
        "column; a header row is skipped), split train/dev/test by the course's rule",
    )
    data.add_argument(
        "--n-train",
        metavar="N",
        type=_positive_int,
        default=None,
        help="training examples drawn from a built-in dataset (default: 600; 1197 for digits)",
    )
    data.add_argument(
        "--n-dev",
        metavar="N",
        type=_positive_int,
        default=None,
        help="dev examples drawn from a built-in dataset (the dev set ranks members: >= 1; "
        "default: 200; 300 for digits)",
    )
    data.add_argument(
        "--n-test",
        metavar="N",
        type=_non_negative_int,
        default=0,
        help="test examples drawn from a built-in dataset: the chosen configuration is "
        "refitted and scored on them once, after ranking on dev (a file keeps its own split)",
    )
    data.add_argument(
        "--noise",
        metavar="X",
        type=_non_negative,
        default=None,
        help="noise of the built-in dataset (default: the generator's, e.g. 0.25 for moons)",
    )
    data.add_argument(
        "--data-seed",
        metavar="N",
        type=_seed,
        default=0,
        help="seed of the data draws or the file's split",
    )
    data.add_argument(
        "--no-normalize",
        action="store_true",
        help="keep a file's features as they are (by default each is standardised with the "
        "mean and std of the training split only, as the course does)",
    )
    model = parser.add_argument_group("model and training")
    model.add_argument(
        "--model",
        choices=CLI_MODELS,
        default="mlp",
        help="mlp: dense layers on the features (images are flattened); cnn: conv 3x3 -> "
        "ReLU -> 2x2 max pool -> dropout blocks (--channels), then the --layers dense "
        "layers, for image data (--dataset digits)",
    )
    model.add_argument(
        "--layers",
        metavar="W1,W2",
        type=_layers,
        default=None,
        help="hidden dense layer widths; input and output widths come from the data "
        "(default: 20,3 for mlp, 64 for mlp on digits, none for cnn)",
    )
    model.add_argument(
        "--channels",
        metavar="C1,C2",
        type=_layers,
        default=None,
        help="--model cnn: channels of each conv block (default: 8, one block)",
    )
    model.add_argument(
        "--activation", choices=list(ACTIVATIONS), default="relu", help="hidden activation"
    )
    model.add_argument("--init", choices=SCHEMES, default="he", help="weight init scheme")
    model.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="optimiser")
    model.add_argument(
        "--steps", metavar="N", type=_positive_int, default=2000, help="optimiser updates"
    )
    model.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive_int,
        default=None,
        help="mini-batch rows (default: full batch)",
    )
    model.add_argument(
        "--eval-every",
        metavar="N",
        type=_positive_int,
        default=None,
        help="steps between evaluations (default: steps // 100)",
    )
    model.add_argument(
        "--patience",
        metavar="N",
        type=_positive_int,
        default=None,
        help="stop after this many evaluations without a dev-cost improvement, and keep the "
        "best params (default: no early stopping, keep the last params)",
    )
    model.add_argument(
        "--bayes-error",
        metavar="X",
        type=_bayes_error,
        default=None,
        help="the error rate you consider unavoidable (e.g. human error) for the "
        "bias/variance diagnosis, in [0, 1) (default: for a built-in 2-D dataset the error "
        "of the best possible classifier on the generator's noise, else 0; the diagnosis "
        "says which)",
    )


def _version() -> str:
    return (
        f"jaxhp {jaxhp.__version__} (jax {_installed('jax')}, jaxlib {_installed('jaxlib')}, "
        f"Python {platform.python_version()})"
    )


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _add_course_axes(group, *, defaults: tuple, helps: tuple) -> None:
    """--lambd, --keep-prob and --learning-rate (alias --lr), which sweep and tune share."""
    flags = (("--lambd",), ("--keep-prob",), ("--learning-rate", "--lr"))
    kinds = (_axis_type(_non_negative), _axis_type(None, keep_prob=True), _axis_type(_positive))
    for names, kind, default, text in zip(flags, kinds, defaults, helps):
        group.add_argument(*names, type=kind, default=default, help=text)


# A built-in optimizer's own hyperparameters (``OPTIMIZER_HPARAMS``): one flag each.
_OWNER = {name: opt for opt, names in OPTIMIZER_HPARAMS.items() for name in names}
_OPTIMIZER_FLAGS = tuple(_OWNER)


def _add_optimizer_axes(group, *, axes: bool, one_minus: bool = False) -> None:
    """--momentum, --b1, --b2 and --decay: one value each for jaxhp train, an axis for sweep
    and tune (a list, uniform:a:b; sweep also one_minus_loguniform:a:b, the course's scale
    for β, which Optuna has no distribution for)."""
    for name in _OPTIMIZER_FLAGS:
        owner = _OWNER[name]
        default = OPTIMIZER_HPARAMS[owner][name]
        text = f"{name} of --optimizer {owner}, in [0, 1) (default: {default})"
        if axes:
            text += "; values a,b,c, or uniform:a:b / loguniform:a:b"
            text += " / one_minus_loguniform:a:b (1 − β on a log scale)" if one_minus else ""
        kind = _axis_type(_beta) if axes else _beta
        group.add_argument(f"--{name}", metavar="β", type=kind, default=None, help=text)


def build_parser() -> argparse.ArgumentParser:
    description = __doc__.replace("``", "")  # the module docstring, without its RST quotes
    parser = _Parser(prog="jaxhp", description=description, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train one configuration",
        description="Train one configuration, print its history and a bias/variance diagnosis.",
        formatter_class=_Formatter,
    )
    _add_data_args(train)
    hp = train.add_argument_group("hyperparameters")
    hp.add_argument("--lambd", type=_non_negative, default=0.0, help="L2 strength λ")
    hp.add_argument(
        "--keep-prob",
        type=_train_keep_prob,
        default="1.0",
        help="dropout keep probability in (0, 1], or one per hidden layer: 0.8/0.9",
    )
    hp.add_argument(
        "--learning-rate",
        "--lr",
        type=_positive,
        default=DEFAULT_LEARNING_RATE,
        help="learning rate (the library's default, jaxhp.HParams().learning_rate)",
    )
    _add_optimizer_axes(hp, axes=False)
    hp.add_argument("--seed", type=_seed, default=0, help="seed of init, dropout and shuffles")
    hp.add_argument(
        "--member-seed",
        metavar="K",
        type=_seed,
        default=None,
        help="train the member of seed K (results.csv's seed column) of jaxhp sweep --seed "
        "SEED with these flags, to --save its params; a plain fit, equal to the sweep's row "
        "to float rounding (default: the key is jax.random.key(SEED))",
    )
    out = train.add_argument_group("outputs")
    out.add_argument("--quiet", action="store_true", help="no per-step lines, only the result")
    out.add_argument(
        "--save", metavar="FILE", type=Path, default=None, help="write the params to this .npz"
    )
    out.add_argument(
        "--plot", metavar="FILE", type=Path, default=None, help="write the cost curve to this PNG"
    )
    train.set_defaults(run=_train, parser=train)

    sweep = commands.add_parser(
        "sweep",
        help="train a λ × keep_prob × learning-rate sweep as one program",
        description="Train every member of a grid (or --random draws) as one vmapped program, "
        "rank the configurations by --metric (mean over seeds) and write results.csv, "
        "results.json and plots to --out.",
        formatter_class=_Formatter,
    )
    _add_config_arg(sweep)
    _add_data_args(sweep)
    space = sweep.add_argument_group("search space")
    _add_course_axes(
        space,
        defaults=("0,0.01,0.1,1,3,10", "0.5,0.6,0.7,0.8,0.9,1.0", str(DEFAULT_LEARNING_RATE)),
        helps=(
            "λ values a,b,c, or loguniform:a:b / uniform:a:b with --random",
            "keep_prob values in (0, 1] (0.8/0.9 = one per hidden layer), or uniform:a:b",
            "learning rates, or loguniform:a:b with --random (by default the library's, "
            "jaxhp.HParams().learning_rate)",
        ),
    )
    _add_optimizer_axes(space, axes=True, one_minus=True)
    space.add_argument(
        "--random",
        metavar="N",
        type=_positive_int,
        default=None,
        help="draw N random points instead of a grid",
    )
    space.add_argument(
        "--seeds",
        metavar="N",
        type=_positive_int,
        default=2,
        help="seeds per point; the table reports mean ± std over them",
    )
    space.add_argument("--seed", type=_seed, default=0, help="base seed of the sweep")
    space.add_argument(
        "--metric",
        choices=METRICS,
        default=None,
        help="ranking metric (ties broken by the dev cost of the same evaluation); default "
        "dev_accuracy, or with --patience best_dev_accuracy (that of the params kept)",
    )
    search = sweep.add_argument_group("successive halving")
    search.add_argument(
        "--halving",
        metavar="ETA",
        type=_eta,
        default=None,
        help="train every member to --min-steps, keep the best 1/ETA by dev cost, train "
        "those ETA times longer, ... up to --steps (all in compiled programs)",
    )
    search.add_argument(
        "--min-steps",
        metavar="N",
        type=_positive_int,
        default=None,
        help="the first rung, a multiple of --eval-every (default: about one member "
        "reaches --steps); without --eval-every, evaluations fall on it",
    )
    run = sweep.add_argument_group("running and outputs")
    run.add_argument(
        "--chunk-size",
        metavar="N|auto",
        type=_chunk_size,
        default="auto",
        help="members per compiled call, or auto (fits the memory budget)",
    )
    _add_vmap_width(run)
    run.add_argument(
        "--checkpoint",
        metavar="DIR",
        default=None,
        help="folder for finished chunks; re-running the same command resumes from it",
    )
    _add_output_args(run)
    cluster = sweep.add_argument_group("several processes or hosts (jax.distributed)")
    cluster.add_argument(
        "--coordinator", metavar="HOST:PORT", default=None, help="HOST:PORT of process 0"
    )
    cluster.add_argument(
        "--num-processes",
        metavar="N",
        type=_positive_int,
        default=None,
        help="processes in the cluster",
    )
    cluster.add_argument(
        "--process-id",
        metavar="N",
        type=_int_process,
        default=None,
        help="this process's id, from 0",
    )
    cluster.add_argument(
        "--distributed",
        action="store_true",
        help="join a cluster described by the environment (SLURM, ...)",
    )
    cluster.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_int,
        default=60,
        help="seconds to wait for a missing process before failing",
    )
    sweep.set_defaults(run=_sweep, parser=sweep)
    _add_tune(commands)
    return parser


def _add_vmap_width(group):
    group.add_argument(
        "--vmap-width",
        metavar="N",
        type=_positive_int,
        default=None,
        help="members trained together in one vmap (default: jaxhp's rule, 8 on the CPU "
        "and 64 on a GPU; fewer members than that are padded). Results are bit-identical "
        "at one width, whatever the chunks, devices or processes",
    )


def _add_output_args(group):
    group.add_argument(
        "--out", metavar="DIR", default="jaxhp-out", help="folder for results and plots"
    )
    group.add_argument(
        "--top", metavar="N", type=_positive_int, default=5, help="configurations to print"
    )
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use the persistent compilation cache (default: on, in $JAXHP_CACHE_DIR "
        "or ~/.cache/jaxhp/xla)",
    )


TUNE_SAMPLERS = ("tpe", "cmaes", "random")  # jaxhp.integrations.optuna.SAMPLERS (no optuna)
DEFAULT_STUDY_NAME = "jaxhp-tune"


def _add_config_arg(parser) -> None:
    command = parser.prog.split()[-1]
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=None,
        help=f"re-run the {command} recorded in this results.json (flags given here override it)",
    )


def _add_tune(commands):
    tune = commands.add_parser(
        "tune",
        help="let an Optuna sampler pick the configurations, trained in vmapped batches",
        description="Ask an Optuna sampler (TPE, CMA-ES or random) for --batch trials at a "
        "time, train each batch as one vmapped program, and tell Optuna every trial's dev "
        "cost (at its best evaluation), until the study holds --trials finished trials. "
        "Write results.csv, results.json and plots to --out, as jaxhp sweep does. With "
        "--storage the study is kept in a database, and re-running the same command "
        "resumes it. Needs optuna: pip install 'jaxhp[optuna]'.",
        formatter_class=_Formatter,
    )
    _add_config_arg(tune)
    _add_data_args(tune)
    space = tune.add_argument_group("search space (one value: fixed; a,b,c: a choice)")
    _add_course_axes(
        space,
        defaults=("loguniform:1e-4:10", "uniform:0.5:1", "loguniform:0.01:1"),
        helps=(
            "L2 strength λ: loguniform:a:b, uniform:a:b, choices a,b,c or one value",
            "dropout keep probability in (0, 1]: uniform:a:b, choices a,b,c, or one value "
            "(0.8/0.9 = one fixed value per hidden layer)",
            "learning rate: loguniform:a:b, uniform:a:b, choices a,b,c or one value",
        ),
    )
    _add_optimizer_axes(space, axes=True)
    study = tune.add_argument_group("the study")
    # Required, but checked in _tune: --config may give them.
    study.add_argument(
        "--trials",
        metavar="N",
        type=_positive_int,
        help="required: finished trials the study should hold (a resumed study trains only "
        "the rest)",
    )
    study.add_argument(
        "--batch",
        metavar="B",
        type=_positive_int,
        help="required: trials asked and trained together as one compiled program",
    )
    study.add_argument("--sampler", choices=TUNE_SAMPLERS, default="tpe", help="Optuna sampler")
    study.add_argument(
        "--storage",
        metavar="URL",
        default=None,
        help="keep the study in this database, e.g. sqlite:///study.db; re-running the same "
        "command resumes it (default: in memory, lost at exit)",
    )
    study.add_argument(
        "--study-name",
        metavar="NAME",
        default=DEFAULT_STUDY_NAME,
        help="the study's name in --storage",
    )
    study.add_argument("--seed", type=_seed, default=0, help="seed of the sampler and training")
    study.add_argument(
        "--metric",
        choices=METRICS,
        default="best_dev_cost",
        help="ranking metric of the printed table (the study itself minimises best_dev_cost)",
    )
    outputs = tune.add_argument_group("running and outputs")
    _add_vmap_width(outputs)
    _add_output_args(outputs)
    tune.set_defaults(run=_tune, parser=tune)


def _int_process(text: str) -> int:
    return _int(text, 0, "an int >= 0")


# ---- checks before training --------------------------------------------------------------
def _check_folder(path, flag: str) -> Path:
    """``path`` is a folder we can write into, or one we can create."""
    if not str(path).strip():  # Path("") is the current folder: its files would be overwritten
        raise UsageError(f"{flag} is empty; give a folder")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; give a folder")
    existing = path if path.exists() else next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, so the folder cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {existing} is not writable")
    if existing == path:  # os.access says yes to root even where writes fail (/proc)
        try:
            tempfile.TemporaryFile(dir=path).close()
        except OSError as err:
            raise UsageError(f"{flag}: cannot write in {path} ({err.strerror})") from None
    return path


def _make_folder(path, flag: str) -> bool:
    """Create an output folder once every check has passed, before training: one that
    cannot be made (``/proc/x``) fails now rather than after the sweep. Returns whether
    it was made here (so that an interrupted run can remove it while it is empty)."""
    made = not Path(path).exists()
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{flag} {path} cannot be created ({err.strerror})") from None
    return made


def _remove_if_empty(path, made: bool) -> None:
    if made and Path(path).is_dir() and not any(Path(path).iterdir()):
        Path(path).rmdir()


def _check_file_target(path, flag: str, suffixes: tuple[str, ...]):
    """A file ``flag`` will write: its name ends in one of ``suffixes`` (numpy and
    matplotlib would add or demand one), and its folder can be written."""
    if path is None:
        return
    if Path(path).is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    if Path(path).suffix.lower() not in suffixes:
        *others, last = suffixes
        allowed = f"{', '.join(others)} or {last}" if others else last
        raise UsageError(f"{flag} {path}: give a file name ending in {allowed}")
    parent = Path(path).absolute().parent
    blocking = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UsageError(f"{flag} {path}: {blocking} is a file, so {path} cannot be written")
    _check_folder(parent, flag)


def _check_steps(args):
    if args.eval_every is not None and args.eval_every > args.steps:
        raise UsageError(f"--eval-every {args.eval_every} must be <= --steps {args.steps}")


def _optimizer_axes(args) -> list[str]:
    """The optimizer hyperparameters given on the command line (--momentum, --b1, ...)."""
    return [name for name in _OPTIMIZER_FLAGS if getattr(args, name) is not None]


def _check_optimizer_flags(args):
    """Another optimizer's hyperparameter would be ignored: refuse it before training."""
    for name in _optimizer_axes(args):
        owner = _OWNER[name]
        if args.optimizer != owner:
            recorded = (
                f"; --{name} may come from the flags --config recorded: keep --optimizer "
                f"{owner}, or run without --config"
                if getattr(args, "config", None)
                else f"; add --optimizer {owner} or leave --{name} out"
            )
            raise UsageError(
                f"--{name} is a hyperparameter of --optimizer {owner}, but this run uses "
                f"--optimizer {args.optimizer}{recorded}"
            )


def _check_training(args, config, data):
    m_train = len(data.train[0])
    if args.batch_size is not None and args.batch_size > m_train:
        raise UsageError(
            f"--batch-size {args.batch_size} is larger than the training set ({m_train} rows)"
        )
    per_layer = [v for v in _keep_values(args) if isinstance(v, tuple)]
    n_dropout = _dropout_layers(args)
    for value in per_layer:
        if len(value) != n_dropout:
            where = (
                f"--layers has {n_dropout} hidden layer(s)"
                if args.model == "mlp"
                else f"the cnn has {n_dropout} dropout layer(s) (one per conv block and per "
                "hidden dense layer)"
            )
            raise UsageError(
                f"--keep-prob {'/'.join(map(str, value))} has {len(value)} values but {where}"
            )


def _check_file_flags(args):
    """--n-train, --n-dev, --n-test and --noise shape a built-in dataset's draws; a file is split
    by the course's rule instead, so a value given for them would be ignored."""
    for dest in ("n_train", "n_dev", "n_test", "noise"):
        value = getattr(args, dest)
        if value != args.parser.get_default(dest):
            flag = "--" + dest.replace("_", "-")
            recorded = (
                " (it may come from the flags --config recorded)"
                if getattr(args, "config", None)
                else ""
            )
            raise UsageError(
                f"{flag} {value} applies to the built-in datasets only; the file "
                f"{args.dataset} is split into train/dev/test by the course's rule (all of "
                f"its rows are used): drop the flag, or write the rows you want to the file"
                f"{recorded}"
            )


def _check_classes_can_split(name: str, y: np.ndarray):
    """The file's train/dev/test split is stratified by class: each class needs two
    examples at least."""
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        raise UsageError(
            f"dataset file {name}: class {classes[np.argmin(counts)]} has only "
            f"{_plural(int(counts.min()), 'example')}; the train/dev/test split is "
            "stratified by class, which needs 2 examples of each class or more"
        )


def _keep_values(args) -> list:
    kp = args.keep_prob
    if isinstance(kp, _Axis):
        return kp.values if isinstance(kp.values, list) else []
    return [kp]


# ---- data and config ---------------------------------------------------------------------
def _load_data(args):
    """A built-in dataset, or an .npz/.csv file split train/dev/test by the course's rule
    (stratified, seeded by --data-seed). Returns the Data, the output width, the class
    count, and a record of the source."""
    name = args.dataset
    built_in = name in datasets.NAMES
    if built_in and getattr(args, "no_normalize", False):
        raise UsageError(
            f"--no-normalize applies to data files only; the built-in {name} is used as "
            "generated (its features are already on a unit scale)"
        )
    if name in datasets.IMAGES and args.noise is not None:
        raise UsageError(f"--noise {args.noise} applies to the 2-D generators; {name} has none")
    if built_in:
        n_train, n_dev = _built_in_sizes(args)
        try:
            data = datasets.load(
                name,
                n_train=n_train,
                n_dev=n_dev,
                n_test=args.n_test,
                noise=args.noise,
                seed=args.data_seed,
            )
        except (ImportError, ValueError) as err:  # no scikit-learn; sizes beyond 1,797 images
            sizes = (
                f" (--n-train {n_train}, --n-dev {n_dev}, --n-test {args.n_test})"
                if isinstance(err, ValueError)
                else ""
            )
            raise UsageError(f"--dataset {name}: {err}{sizes}") from None
        n_classes = datasets.n_classes(name)
        source = {
            "name": name,
            "n_train": n_train,
            "n_dev": n_dev,
            "n_test": args.n_test,
            "noise": args.noise,
            "data_seed": args.data_seed,
        }
    elif name.endswith((".npz", ".csv")):
        from jaxhp.data import load_file, split

        _check_file_flags(args)
        x, y = load_file(name)
        _check_classes_can_split(name, y)
        data = split(x, y, key=args.data_seed).data()
        if not getattr(args, "no_normalize", False):
            data = _standardised(data)
        y = np.asarray(y)
        n_classes = y.shape[1] if y.ndim == 2 else int(y.max()) + 1
        digest = hashlib.sha256(Path(name).read_bytes()).hexdigest()
        source = {
            "file": str(Path(name).absolute()),
            "sha256": digest,
            "data_seed": args.data_seed,
            "normalized": not getattr(args, "no_normalize", False),
        }
    else:
        close = difflib.get_close_matches(name, list(datasets.NAMES), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UsageError(
            f"--dataset must be one of {', '.join(datasets.NAMES)} or an .npz/.csv "
            f"file, got {name!r}{hint}"
        )
    if data.dev is None or len(data.dev[0]) == 0:
        raise UsageError(f"--dataset {name}: no dev set (too few rows to split)")
    train_classes = np.unique(np.asarray(data.train[1]))
    if len(train_classes) < 2:  # e.g. --n-train 1: nothing to tell apart
        raise UsageError(
            f"--dataset {name}: every training label is {train_classes[0]} "
            f"({_plural(len(data.train[1]), 'training example')}); a classifier needs examples "
            "of two classes or more: draw more (--n-train)"
        )
    source.update(_split_sizes(data))
    source["example_shape"] = list(np.shape(data.train[0])[1:])
    if args.model == "mlp":  # dense layers take flat rows: an image becomes its pixels
        data = _flattened(data)
    return data, (n_classes if n_classes > 2 else 1), n_classes, source


def _built_in_sizes(args) -> tuple[int, int]:
    """--n-train and --n-dev, or the dataset's defaults (digits has 1,797 images)."""
    defaults = (1197, 300) if args.dataset in datasets.IMAGES else (600, 200)
    given = (args.n_train, args.n_dev)
    return tuple(d if v is None else v for v, d in zip(given, defaults))


def _flattened(data):
    from jaxhp.records import Data

    flat = [None if s is None else (np.reshape(s[0], (len(s[0]), -1)), *s[1:]) for s in data]
    return Data(*flat)


def _chance_error(data) -> float:
    """The dev error of always guessing the most common dev class."""
    return majority_error(data.dev[1])


def _check_bayes_error(args, data) -> None:
    """A --bayes-error above guessing (by more than the diagnosis' default threshold) is a
    mistake: refused before any training. (A recorded run read back is not re-judged.)"""
    if getattr(args, "bayes_error", None) is None:
        return
    why = above_chance(args.bayes_error, _chance_error(data))
    if why:
        raise UsageError(f"--bayes-error {args.bayes_error:g}: {why} (on the dev labels)")


def _split_sizes(data) -> dict:
    return {
        f"m_{part}": 0 if getattr(data, part) is None else len(getattr(data, part)[0])
        for part in ("train", "dev", "test")
    }


def _standardised(data):
    """Each feature standardised with the training split's mean and std (train-only
    statistics: dev and test are scaled as new data would be)."""
    from jaxhp.data import Normalizer
    from jaxhp.records import Data

    norm = Normalizer().fit(data.train[0])
    scaled = [None if s is None else (norm.transform(s[0]), *s[1:]) for s in data]
    return Data(*scaled)


def _data_line(source: dict, data, n_classes: int) -> str:
    label = source.get("name") or source["file"]
    example = source.get("example_shape") or list(np.shape(data.train[0])[1:])
    n_x = int(np.prod(example))
    shape = f"{_plural(n_x, 'feature')}"
    if len(example) == 3:  # images: NHWC, flattened for an MLP
        image = "x".join(map(str, example))
        flat = np.ndim(data.train[0]) == 2
        shape = f"{image} images" + (f", flattened to {shape}" if flat else "")
    scaling = ""
    if "normalized" in source:
        scaling = (
            "; features standardised with the train split's mean and std (--no-normalize "
            "keeps them as they are)"
            if source["normalized"]
            else "; features as they are in the file"
        )
    header = ""
    if str(source.get("file", "")).endswith(".csv"):
        from jaxhp.data import csv_header

        names = csv_header(source["file"])
        header = f" (its first row, {', '.join(names)}, read as column names)" if names else ""
    line = (
        f"data: {label}{header}: {source['m_train']} train, {source['m_dev']} dev, "
        f"{source['m_test']} test examples; {shape}, {n_classes} classes{scaling}"
    )
    small = [(part, source[f"m_{part}"]) for part in ("dev", "test")]
    small = [(part, m) for part, m in small if 0 < m < _FEW_EXAMPLES]
    if small:
        steps = " and ".join(
            f"in steps of {1 / m:.0%} on the {part} set ({_plural(m, 'example')})"
            for part, m in small
        )
        line += (
            f"\nnote: accuracy moves {steps}: too coarse to tell configurations apart or to "
            "estimate an error; more rows help"
        )
    return line


_FEW_EXAMPLES = 20  # a dev or test set below this scores in steps of more than 5%


def _hidden(args) -> tuple[int, ...]:
    """The hidden dense widths: --layers, else the default for the model and data (the
    course's 20,3 for 2-D points; one layer of 64 for the 10 digit classes)."""
    if args.layers is not None:
        return args.layers
    if args.model == "cnn":
        return ()
    return (64,) if args.dataset in datasets.IMAGES else (20, 3)


def _channels(args) -> tuple[int, ...]:
    return args.channels if args.channels is not None else (8,)


def _dropout_layers(args) -> int:
    """Layers that drop units: the hidden dense ones, and the cnn's conv blocks."""
    return len(_hidden(args)) + (len(_channels(args)) if args.model == "cnn" else 0)


def _recorded_hint(args) -> str:
    return (
        " (it may come from the flags --config recorded)" if getattr(args, "config", None) else ""
    )


def _check_model(args, data):
    """--model, --channels, --activation and --init fit together and fit the data."""
    example = np.shape(data.train[0])[1:]
    if args.model == "cnn":
        if len(example) != 3:
            raise UsageError(
                f"--model cnn takes images (--dataset digits); {args.dataset} has "
                f"{_plural(int(np.prod(example)), 'feature')} per example"
            )
        for flag in ("activation", "init"):
            if getattr(args, flag) != args.parser.get_default(flag):
                raise UsageError(
                    f"--{flag} {getattr(args, flag)} applies to --model mlp; the cnn uses ReLU "
                    f"and He init{_recorded_hint(args)}"
                )
        blocks, side = len(_channels(args)), min(example[:2])
        if side >> blocks < 1:  # each block's 2x2 pool halves the image
            raise UsageError(
                f"--channels {','.join(map(str, _channels(args)))}: {blocks} conv blocks, but "
                f"{example[0]}x{example[1]} images allow at most {side.bit_length() - 1} (each "
                "block's 2x2 pool halves them)"
            )
    elif args.channels is not None:
        raise UsageError(
            f"--channels applies to --model cnn, not --model {args.model}{_recorded_hint(args)}"
        )


def _train_key(args):
    """jaxhp train's key: a sweep member's (--member-seed), or jax.random.key(--seed)."""
    import jax

    if args.member_seed is None:
        return jax.random.key(args.seed)
    from jaxhp.sweep import member_key

    return member_key(args.seed, args.member_seed)


def _eval_every(args) -> int | None:
    """--eval-every; without it, for halving from --min-steps, the largest divisor of
    --min-steps up to the default (steps // 100), so that every rung is an evaluation."""
    if args.eval_every is not None or getattr(args, "min_steps", None) is None:
        return args.eval_every
    default = max(1, args.steps // 100)
    return max(d for d in range(1, min(default, args.min_steps) + 1) if args.min_steps % d == 0)


def _config(args, data, n_out):
    from jaxhp import models
    from jaxhp.records import TrainConfig

    _check_model(args, data)
    training = {
        "steps": args.steps,
        "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        "eval_every": _eval_every(args),
        "patience": args.patience,
        "restore_best": args.patience is not None,
    }
    if args.model == "cnn":
        example = np.shape(data.train[0])[1:]
        cnn = models.cnn(example, channels=_channels(args), dense=(*_hidden(args), n_out))
        return TrainConfig(model=cnn, **training)
    n_x = np.asarray(data.train[0]).shape[1]
    return TrainConfig(
        layer_sizes=(n_x, *_hidden(args), n_out),
        activation=args.activation,
        init=args.init,
        **training,
    )


def _architecture(args, config, n_out: int) -> str:
    """The model in a few words, for the start-up lines."""
    if args.model == "mlp":
        return f"layers {'-'.join(map(str, config.layer_sizes))}"
    dense = "-".join(map(str, (*_hidden(args), n_out)))
    return f"cnn with conv blocks of {','.join(map(str, _channels(args)))} channels, dense {dense}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def _print(*lines):
    """Print to stdout; when the reader went away (``| head``), stay quiet and carry on,
    so the results are still written."""
    try:
        print(*lines, sep="\n", flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# ---- jaxhp train -------------------------------------------------------------------------
def _train(args) -> int:
    import jax

    from jaxhp.train import fit

    _check_file_target(args.save, "--save", (".npz",))
    _check_file_target(args.plot, "--plot", (".png", ".pdf", ".svg"))
    if args.plot is not None:
        from jaxhp.plot import _pyplot

        _pyplot()  # no matplotlib: say so now, not after training
    _check_steps(args)
    _check_optimizer_flags(args)
    data, n_out, n_classes, source = _load_data(args)
    _check_bayes_error(args, data)
    config = _config(args, data, n_out)
    _check_training(args, config, data)
    made = []  # folders made here, removed again if Ctrl-C leaves them empty
    for target, flag in ((args.save, "--save"), (args.plot, "--plot")):
        if target is not None:  # a folder that cannot be made fails now, not after training
            parent = Path(target).absolute().parent
            new = [p for p in (parent, *parent.parents) if not p.exists()]
            _make_folder(parent, flag)
            if new:  # said, so that a mistyped path does not go unnoticed
                _print(f"{flag}: made the folder {parent}")
            made += new
    keep = (
        np.asarray(args.keep_prob, np.float32)
        if isinstance(args.keep_prob, tuple)
        else (args.keep_prob)
    )
    own = {name: getattr(args, name) for name in _optimizer_axes(args)}
    hparams = HParams(lambd=args.lambd, keep_prob=keep, learning_rate=args.learning_rate, **own)
    kept = "best (lowest dev cost)" if config.restore_best else "last"
    # About ten progress lines, whatever the number of evaluations (--plot draws them all).
    stride = -(-config.n_evals // _PROGRESS_LINES)
    shown = f" (every {_ordinal(stride)} shown)" if stride > 1 and not args.quiet else ""
    _print(
        _data_line(source, data, n_classes),
        f"hparams: lambd={number_text(args.lambd)} keep_prob={number_text(args.keep_prob)} "
        f"learning_rate={number_text(args.learning_rate)} "
        + "".join(f"{name}={number_text(value)} " for name, value in own.items())
        + f"seed={args.seed}"
        + ("" if args.member_seed is None else f" member_seed={args.member_seed}"),
        f"model: {_architecture(args, config, n_out)}, {config.activation}, "
        f"{config.init} init, {config.optimizer}, {config.steps} steps, evaluated every "
        f"{config.every}{shown}; keeps the {kept} params",
    )

    def progress(record):
        step = int(record["step"])
        if -(-step // config.every) % stride and step < config.steps:
            return
        _print(
            f"step {step:>6}  train J {float(record['train_cost']):.4f}  "
            f"train acc {float(record['train_accuracy']):.3f}  "
            f"dev cost {float(record['dev_cost']):.4f}  "
            f"dev acc {float(record['dev_accuracy']):.3f}"
        )

    started = time.perf_counter()
    try:
        on_eval = None if args.quiet else progress
        key = _train_key(args)
        result = _interruptible(lambda: fit(key, hparams, data, config, on_eval=on_eval))
        jax.effects_barrier()
        history = jax.device_get(result.history)
    except KeyboardInterrupt:
        for folder in made:  # deepest first
            _remove_if_empty(folder, True)
        raise Interrupted(
            "interrupted: nothing was saved (jaxhp train keeps no checkpoint; jaxhp sweep "
            "--checkpoint DIR keeps finished members and resumes)"
        ) from None
    stop, best_step = int(result.stop_step), int(result.best_step)
    diverged = bool(result.diverged)
    status = (
        "diverged"
        if diverged
        else f"stopped early at step {stop}"
        if stop < config.steps
        else f"ran all {stop} steps"
    )
    row = returned_params_row(result)  # the params kept: best (restore_best) or last finite
    at_step = int(np.asarray(history.step)[row])
    params_words = (
        f"kept params, step {at_step}"
        if config.restore_best
        else f"last finite params, step {at_step}"
        if diverged
        else "last params"
    )
    train_acc, dev_acc = float(history.train_accuracy[row]), float(history.dev_accuracy[row])
    _print(
        f"final ({params_words}): train accuracy {train_acc:.4f}, dev accuracy {dev_acc:.4f} "
        f"({status})",
        _diagnosis_words(
            args,
            lambda bayes: diagnose_errors(
                train_acc,
                dev_acc,
                bayes_error=bayes,
                diverged=diverged,
                chance_error=_chance_error(data),
            ),
            data=data,
        ),
    )
    if data.test is not None and len(data.test[0]):
        _print(
            "test: not scored (the run diverged)"
            if diverged
            else f"test accuracy ({params_words}): "
            f"{_test_accuracy(result.params, data, config):.4f} on {len(data.test[0])} test "
            "examples"
        )
    saved = []  # for an interruption's message
    try:
        if args.save:
            np.savez(args.save, **_named_leaves(result.params))
            saved.append(str(args.save))
            which = (
                f"best params (lowest dev cost, step {best_step})"
                if config.restore_best
                else (f"last params (step {stop})")
            )
            _print(f"saved the {which} to {args.save}")
        if args.plot:
            from jaxhp.plot import plot_cost

            title = (
                f"{source.get('name') or Path(source['file']).name}: "
                f"{_architecture(args, config, n_out)}, λ={number_text(args.lambd)}, "
                f"keep_prob={number_text(args.keep_prob)}, lr={number_text(args.learning_rate)}"
            )
            _print(f"saved the cost curve to {plot_cost(history, args.plot, title=title)}")
    except KeyboardInterrupt:
        kept = f"the params are saved in {saved[0]}" if saved else "nothing was saved"
        raise Interrupted(f"interrupted after training: {kept}") from None
    _print(f"done in {time.perf_counter() - started:.1f} s: dev accuracy {dev_acc:.4f} ({status})")
    return 0


_PROGRESS_LINES = 10


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _named_leaves(params) -> dict[str, np.ndarray]:
    """Leaves by name: ``W1``, ``b1``, ... for the course's layer list, else the key path."""
    import jax

    named = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = jax.tree_util.keystr(path)
        layer = re.fullmatch(r"\[(\d+)\]\.(\w+)", name)
        named[f"{layer.group(2)}{int(layer.group(1)) + 1}" if layer else name] = np.asarray(leaf)
    return named


# ---- jaxhp sweep -------------------------------------------------------------------------
def _space(args):
    from jaxhp import sweep

    axes = {
        "lambd": args.lambd.values,
        "keep_prob": args.keep_prob.values,
        "learning_rate": args.learning_rate.values,
        **{name: getattr(args, name).values for name in _optimizer_axes(args)},
    }
    if args.random is None:
        for name, values in axes.items():
            if not isinstance(values, list):
                raise UsageError(
                    f"--{name.replace('_', '-')} {getattr(args, name).text} is a distribution; "
                    "add --random N to draw N points from it"
                )
        return sweep.grid(seeds=args.seeds, **axes)
    lists = [len(v) for v in axes.values() if isinstance(v, list)]
    if len(lists) == len(axes) and args.random > math.prod(lists):  # said in flags, not Python
        raise UsageError(
            f"--random {args.random} asks for more distinct points than the lists hold "
            f"({math.prod(lists)}: {' x '.join(map(str, lists))}); draw at most "
            f"{math.prod(lists)}, give a distribution (e.g. --lambd loguniform:1e-4:10), or "
            "drop --random to train them all"
        )
    return sweep.random(args.seed, args.random, seeds=args.seeds, **axes)


def _start_jax(args):
    """Before any JAX computation: turn the compilation cache on, join a cluster if asked."""
    from jaxhp import distributed as dist

    cluster = None
    if args.coordinator or args.num_processes is not None or args.process_id is not None:
        cluster = dist.Cluster(args.coordinator, args.num_processes, args.process_id, args.timeout)
    elif args.distributed:
        cluster = dist.Cluster(timeout_s=args.timeout)
    if cluster is not None:
        try:
            dist.validate(cluster)
        except ValueError as err:  # the library's argument names, as the flags that set them
            raise UsageError(_as_flags(str(err))) from None
    # importing jaxhp already gave every core a CPU device (unless the user chose)
    if not args.no_cache:
        enable_compilation_cache()
    if cluster is not None:
        dist.initialize(cluster)
    return cluster


def _as_flags(message: str) -> str:
    for name in ("coordinator", "num_processes", "process_id", "timeout_s"):
        flag = "--" + name.removesuffix("_s").replace("_", "-")
        message = re.sub(rf"(?<![-\w]){name}\b", flag, message)
    return message


_NOT_RECORDED = {
    "no_cache",
    "config",
    "out",
    "checkpoint",
    "quiet",
    "chunk_size",
    "coordinator",
    "num_processes",
    "process_id",
    "distributed",
    "timeout",
    "help",
    "version",
}


def _replay_argv(args) -> list[str]:
    """The flags that make this sweep again (every one that shapes its results)."""
    argv = []
    for action in args.parser._actions:
        if action.dest in _NOT_RECORDED or not action.option_strings:
            continue
        value, flag = getattr(args, action.dest), action.option_strings[0]
        if action.dest == "dataset" and value not in datasets.NAMES:
            value = str(Path(value).absolute())  # a file: found from any folder
        if action.dest == "storage" and value is not None:
            value = _absolute_sqlite(value)  # the same study, from any folder
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, tuple):
            argv.append(f"{flag}={','.join(map(str, value))}")
        else:
            argv.append(f"{flag}={value!r}" if isinstance(value, float) else f"{flag}={value}")
    return argv


def _absolute_sqlite(url: str) -> str:
    """``sqlite:///study.db`` (relative to the working folder) as an absolute URL."""
    prefix = "sqlite:///"
    path = url[len(prefix) :] if url.startswith(prefix) else None
    if not path or path.startswith("/") or path.startswith(":memory:"):
        return url
    return prefix + str(Path(path).absolute())


def _record(args, source, config, space) -> dict:
    """results.json's config: what the sweep was, and the flags that re-run it."""
    return {
        **_run_record(args, source, config),
        "search": {
            "lambd": args.lambd.text,
            "keep_prob": args.keep_prob.text,
            "learning_rate": args.learning_rate.text,
            **{name: getattr(args, name).text for name in _optimizer_axes(args)},
            "random": args.random,
        },
        "seeds": args.seeds,
        "seed": args.seed,
        "halving": None
        if args.halving is None
        else {"eta": args.halving, "min_steps": args.min_steps},
        "members": len(space),
        "metric": args.metric,
        "bayes_error": args.bayes_error,
        "versions": _versions(),
    }


def _run_record(args, source, config) -> dict:
    """What any command's results were trained on, and the flags that train them again."""
    return {
        "command": args.command,
        "argv": _replay_argv(args),
        "dataset": source,
        "model": args.model,
        "layer_sizes": None if config.layer_sizes is None else list(config.layer_sizes),
        "channels": list(_channels(args)) if args.model == "cnn" else None,
        "hidden": list(_hidden(args)),
        "activation": config.activation,
        "init": config.init,
        "optimizer": config.optimizer,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "eval_every": config.every,
        "patience": config.patience,
    }


def _versions() -> dict:
    return {
        "jaxhp": jaxhp.__version__,
        "jax": _installed("jax"),
        "jaxlib": _installed("jaxlib"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _recorded_argv(path: Path, command: str) -> list[str]:
    if Path(path).is_dir():
        raise UsageError(
            f"--config {path} is a folder; give the results.json a run wrote there "
            f"({Path(path) / 'results.json'})"
        )
    try:
        payload = json.loads(Path(path).read_text())
        argv = payload["config"]["argv"]
    except FileNotFoundError:
        raise UsageError(f"--config {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, UnicodeDecodeError):
            reason = "it is not UTF-8 text"
        elif isinstance(err, KeyError):
            reason = f"it has no {err.args[0]!r} entry"
        else:
            reason = f"{type(err).__name__}: {str(err)[:120]}"
        raise UsageError(
            f"--config {path} is not a results.json written by jaxhp {command} ({reason})"
        ) from None
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise UsageError(f"--config {path}: config.argv must be a list of flags")
    recorded = payload["config"].get("command", "sweep")
    if recorded != command:
        raise UsageError(
            f"--config {path} was written by jaxhp {recorded}; run jaxhp {recorded} "
            f"--config {path} to re-run it"
        )
    return argv


def load_run(path) -> tuple:
    """A run that ``jaxhp sweep`` or ``jaxhp tune`` wrote (its results.json), back in
    Python: ``(results, data, config)``, the :class:`jaxhp.SweepResults` and the data and
    :class:`jaxhp.TrainConfig` it trained with, rebuilt from the recorded flags.

    Example:
      >>> results, data, config = jaxhp.cli.load_run("jaxhp-out/results.json")
      >>> best = results.summary()[0]  # the configuration the run called best
      >>> fitted = jaxhp.sweep.refit(results, best["members"][0], data, config)

    The results rank by the run's own ``--metric`` and diagnose against the Bayes error
    the command assumed (``meta["bayes_error"]``).

    Raises:
      ValueError: ``path`` is not a results.json that ``jaxhp sweep`` or ``jaxhp tune`` of
        this jaxhp wrote (one that ``SweepResults.to_json`` wrote from Python records no
        flags: read it with ``SweepResults.from_json``), or a data file it read has
        changed since (its sha256 differs).
    """
    from jaxhp.results import SweepResults

    results = SweepResults.from_json(path)
    recorded = json.loads(Path(path).read_text())["config"]
    if not isinstance(recorded, dict) or "argv" not in recorded:
        raise ValueError(
            f"{path} records no jaxhp sweep or tune flags (SweepResults.to_json wrote it?): "
            "read it with jaxhp.SweepResults.from_json, and pass its data and config yourself"
        )
    command = recorded.get("command", "sweep")
    argv = [command, *_recorded_argv(path, command), f"--config={path}"]
    with contextlib.redirect_stderr(io.StringIO()) as said:
        try:
            args = _parse(build_parser(), argv)
        except SystemExit:  # argparse's own refusal, said on stderr
            message = " ".join(said.getvalue().split())
            raise ValueError(
                f"{path}: its recorded flags are not this jaxhp's ({message})"
            ) from None
    data, n_out, _, source = _load_data(args)
    _check_same_file(args, source)
    if recorded.get("metric") is not None:
        results.meta["metric"] = recorded["metric"]
    bayes, note = _bayes_default(args, data)  # the diagnosis assumes what the command did
    if bayes is not None:
        results.meta.update(bayes_error=bayes, bayes_note=note or None)
    return results, data, _config(args, data, n_out)


def _check_same_file(args, source: dict):
    """With --config, a data file must be the one the recorded run read."""
    if args.config is None or "sha256" not in source:
        return
    recorded = json.loads(Path(args.config).read_text())["config"].get("dataset", {})
    if recorded.get("sha256") not in (None, source["sha256"]):
        raise UsageError(
            f"--config {args.config}: {source['file']} has changed since that "
            f"{args.command} read it (its sha256 differs); the results would not be the same"
        )


class _Progress:
    """Evaluations done, as a bar on stderr when it is a terminal (fed by ``on_eval``)."""

    def __init__(self, total: int, enabled: bool):
        self.bar, self.done = None, 0.0
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="eval", desc="sweep", file=sys.stderr, leave=False)

    def __call__(self, record):
        if self.bar is not None:  # a sweep's records weigh its padding lanes out
            self.done += np.size(record["step"]) * record.get("weight", 1.0)
            self.bar.update(int(self.done + 1e-6) - self.bar.n)  # whole evaluations shown

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _saved_members(folder) -> int:
    """How many members a checkpoint folder of a plain sweep holds (unreadable files hold
    none)."""
    members = set()
    for file in Path(folder).glob("*.npz"):
        try:
            with np.load(file) as chunk:
                members.update(np.asarray(chunk["member"]).ravel().tolist())
        except Exception:  # noqa: BLE001 - a damaged or foreign file saves no member
            continue
    return len(members)


def _saved_words(folder, halving: bool) -> tuple[int, str]:
    """How many members a checkpoint folder holds, and that in words; for a halving sweep,
    the latest rung with saved progress (a rung's folder is made before its first save)."""
    if not halving:
        saved = _saved_members(folder)
        return saved, _plural(saved, "member")
    by_rung: dict[int, int] = {}
    for group in Path(folder).glob("rung*-group*"):
        rung = int(group.name[4:].split("-")[0])
        by_rung[rung] = by_rung.get(rung, 0) + _saved_members(group)
    saved = {rung: n for rung, n in by_rung.items() if n}
    if not saved:
        return 0, "no member"
    rung = max(saved)
    return saved[rung], f"the progress of {_plural(saved[rung], 'member')} at rung {rung}"


def _interrupted(args, n_members: int) -> Interrupted:
    if args.checkpoint is None:
        return Interrupted(
            "interrupted: nothing was saved; with --checkpoint DIR finished chunks are kept "
            "and re-running the same command resumes"
        )
    halving = getattr(args, "halving", None) is not None
    saved, what = _saved_words(args.checkpoint, halving)
    folder = args.checkpoint.rstrip("/")
    if not saved:  # interrupted before the first chunk (or rung) finished
        return Interrupted(
            f"interrupted: nothing was saved in {folder}/ yet (no chunk had finished); "
            "re-running the same command starts over"
        )
    if not halving:
        what = f"{saved} of {n_members} members"
    return Interrupted(f"interrupted: {what} saved in {folder}/; re-run the same command to resume")


def _sweep(args) -> int:
    from jaxhp.sweep import run_sweep

    _check_folder(args.out, "--out")
    if args.checkpoint is not None:
        _check_folder(args.checkpoint, "--checkpoint")
    cluster = _start_jax(args)
    _check_steps(args)
    _check_optimizer_flags(args)
    if args.metric is None:  # rank by the accuracy of the params each member keeps
        args.metric = "best_dev_accuracy" if args.patience is not None else "dev_accuracy"
    data, n_out, n_classes, source = _load_data(args)
    _check_bayes_error(args, data)
    _check_same_file(args, source)
    config = _config(args, data, n_out)
    _check_training(args, config, data)
    space = _space(args)
    space.compile(config.n_hidden)  # every member's values are checked now, before training
    schedule, rungs = _schedule(args, config, len(space))
    is_main = _is_main() if cluster is not None else True
    say = _print if is_main else (lambda *lines: None)
    if args.checkpoint is not None and Path(args.checkpoint).is_dir():
        saved, what = _saved_words(args.checkpoint, schedule is not None)
        if saved:  # the folder's identity is checked before training: never another sweep's
            say(
                f"checkpoint: {args.checkpoint.rstrip('/')}/ holds {what}; they are reused "
                "only if the folder is this sweep's (checked before training)"
            )
    n = len(space)
    say(
        _data_line(source, data, n_classes),
        f"sweep: {_plural(n, 'member')} ({_plural(n // args.seeds, 'point')} × "
        f"{_plural(args.seeds, 'seed')}), {_architecture(args, config, n_out)}, "
        f"{config.steps} steps, {config.optimizer}; ranked by "
        + ("the last rung reached, then " if args.halving else "")
        + f"{args.metric}, ties by {tie_break(args.metric)}",
        *_rung_lines(args, rungs),
    )
    # The bar moves per evaluation (run_sweep feeds it while a chunk trains); without a
    # terminal there is no bar, and no callback in the compiled program either.
    evaluations = n * config.n_evals if rungs is None else _rung_evaluations(rungs)
    made = _make_folder(args.out, "--out") if is_main else False
    bar = _Progress(evaluations, enabled=not args.quiet and is_main)
    try:
        with compile_stats() as compiled:
            results = run_sweep(
                space,
                data,
                config,
                seed=args.seed,
                chunk_size=args.chunk_size,
                checkpoint=args.checkpoint,
                distributed=cluster is not None,
                progress=False,
                on_eval=bar if bar.bar is not None else None,
                schedule=schedule,
                vmap_width=args.vmap_width,
            )
    except KeyboardInterrupt:
        _remove_if_empty(args.out, made)
        raise _interrupted(args, n) from None
    finally:
        bar.close()
    meta = results.meta
    if meta["processes"] > 1 and not is_main:
        print(
            f"process trained its {meta['members_this_process']} members; process 0 "
            "writes the results"
        )
        return 0
    meta.update(m_train=source["m_train"], m_dev=source["m_dev"], chance_error=_chance_error(data))
    meta.update(
        compile_seconds=round(compiled.total_s, 3),
        compile_cache_hits=compiled.cache_hits,
        compile_cache_misses=compiled.cache_misses,
        compile_cache=None if args.no_cache else str(default_cache_dir()),
    )
    record = _record(args, source, config, space)
    return _report(args, results, record, data=data, config=config)


def _schedule(args, config, n_members: int):
    """The halving schedule and its rungs (None, None without --halving); a rung that
    misses an evaluation is refused now, before training."""
    from jaxhp import halving

    if args.halving is None:
        if args.min_steps is not None:
            raise UsageError("--min-steps needs --halving ETA (e.g. --halving 3)")
        return None, None
    schedule = halving.halving(args.halving, args.min_steps)
    try:
        points = max(1, n_members // args.seeds)
        rungs = halving.rungs(schedule, points, config.steps, config.every, seeds=args.seeds)
        return schedule, rungs
    except ValueError as err:
        text = str(err).replace("min_steps=", "--min-steps ").replace("min_steps", "--min-steps")
        raise UsageError(text.replace("the config's steps", "--steps")) from None


def _rung_lines(args, rungs) -> list[str]:
    if rungs is None:
        return []
    steps = ", ".join(f"{r.step} ({r.members})" for r in rungs)
    lines = [
        f"successive halving, eta {number_text(args.halving)}: rungs at step (members) {steps}; "
        "the table ranks later rungs first (their members trained longer)"
    ]
    if len(rungs) == 1:
        lines.append(
            "note: one rung, so halving stops no member; lower --min-steps (or --halving) "
            "to get several rungs"
        )
    return lines


def _rung_evaluations(rungs) -> int:
    """Evaluations a halving run makes (its members do not stop early)."""
    total, previous = 0, 0
    for rung in rungs:
        total += rung.members * (rung.evaluation - previous)
        previous = rung.evaluation
    return total


def _trained_words(meta: dict, results) -> str:
    if "rungs" not in meta:
        loaded, members = meta["members_from_checkpoint"], meta["members"]
        if loaded == 0:
            return f"(in {_chunks_words(meta)})"
        return f"({members - loaded} now, in {_chunks_words(meta)}; {loaded} from the checkpoint)"
    # Recorded since diverged members' last steps count (their stop_step rolls back).
    trained = int(results.meta.get("member_steps", np.sum(results.stop_step)))
    full = meta["members"] * meta["rungs"][-1]["step"]
    loaded = meta.get("member_steps_from_checkpoint", 0)
    return (
        f"(successive halving: {trained:,} member-steps, {trained / full:.0%} of a full "
        f"sweep's {full:,}{f'; {loaded:,} of them from the checkpoint' if loaded else ''})"
    )


def _chunks_words(meta: dict) -> str:
    """How the members trained now were run: one chunk (its padding to whole vmap groups
    is not the user's business), or several of the chunk size."""
    n = meta["chunks_run"]
    return "one chunk" if n <= 1 else f"{n} chunks of up to {meta['chunk_size']} members"


def _sweep_trained(meta: dict, results) -> str:
    if "rungs" not in meta and meta["members_from_checkpoint"] == meta["members"]:
        return (
            f"loaded all {_plural(meta['members'], 'member')} from the checkpoint in "
            f"{meta['seconds']:.1f} s; nothing to train{_cache_words(meta)}"
        )
    return (
        f"trained {_plural(meta['members'], 'member')} in {meta['seconds']:.1f} s "
        f"{_trained_words(meta, results)}{_cache_words(meta)}"
    )


def _report(args, results, record, trained: str | None = None, *, data=None, config=None) -> int:
    """Print what was trained (``trained``; by default a sweep's line), the ranked table,
    the best configuration, its diagnosis and (with a test split) its test accuracy; write
    results.csv, results.json and the plots to --out."""
    done: list[str] = []  # the files written so far, for an interruption's message
    try:
        return _report_steps(args, results, record, trained, data, config, done)
    except KeyboardInterrupt:
        raise _interrupted_reporting(args, done) from None


def _interrupted_reporting(args, done: list[str]) -> Interrupted:
    """Ctrl-C after training: say what is on disk (the training itself is not lost where a
    checkpoint or a study's storage holds it)."""
    wrote = f"{done[-1]} written to {args.out}/" if done else "no result file written"
    kept = ""
    if getattr(args, "checkpoint", None):
        kept = f"; the members are saved in {args.checkpoint}: re-run to report them"
    elif getattr(args, "storage", None):
        kept = f"; the trials are saved in {args.storage}: re-run to report them"
    return Interrupted(f"interrupted after training, while reporting: {wrote}{kept}")


_PLOTS = ("heatmap.png", "curves.png", "rungs.png")


def _report_steps(args, results, record, trained, data, config, done: list[str]) -> int:
    _print(_sweep_trained(results.meta, results) if trained is None else trained)
    if results.diverged_members:
        _print(f"diverged (flagged, not ranked): members {results.diverged_members}")
    if args.metric is None:  # as the library ranks: by the accuracy of the kept params
        args.metric = results.default_metric
    rows = results.summary(args.metric)
    best = rows[0]
    _print(format_summary(rows[: args.top], results, args.metric), "")
    mean, std = best[f"{args.metric}_mean"], best[f"{args.metric}_std"]
    ranked = np.isfinite(mean)
    if not ranked:
        advice = "lower the learning rate" if data is None else _divergence_advice(data)
        headline = f"every member diverged: {advice[0].lower()}{advice[1:].rstrip('.')}"
        _print(headline)
    else:
        others = sum(r["within_noise"] for r in rows) - 1
        resolution = results._resolution(args.metric)
        seeded = any(r["seeds"] - r["diverged"] > 1 for r in rows)
        live = best["seeds"] - best["diverged"]
        spread = f" ± {std:.4f} over {live} seeds" if live > 1 else " (one seed)"
        headline = f"best: {_point(best, results)}: {args.metric} {mean:.4f}{spread}"
        _print(
            f"{headline}; {_plural(others, 'other point') if others else 'no other point'} "
            "within noise of it ("
            f"{_noise_words(args.metric, seeded, resolution, best['noise'], args.command)})",
            *_stopping_words(results, best),
            _diagnosis_words(
                args,
                lambda bayes: results.diagnosis(best["members"], bayes_error=bayes),
                chosen_from=len(rows),
                data=data,
                processes=results.meta.get("processes", 1),
            ),
        )
    out = Path(args.out)
    # An earlier run's plots must never sit beside this run's table, even if Ctrl-C comes
    # before this run's are drawn.
    earlier = [name for name in _PLOTS if (out / name).is_file()]
    for name in earlier:
        (out / name).unlink()
    bayes, note = _bayes_default(args, data)  # SweepResults.from_json diagnoses as this did
    if bayes is not None:
        results.meta.update(bayes_error=bayes, bayes_note=note or None)
    results.to_csv(out / "results.csv")
    results.to_json(out / "results.json", config=record)
    written = "results.csv, results.json"
    done.append(written)
    try:  # before the test refit, which trains: the plots do not depend on it
        results.plot_heatmap(out / "heatmap.png", metric=args.metric)  # the swept columns
        results.plot_curves(out / "curves.png", top=min(args.top, 5), metric=args.metric)
        written += ", heatmap.png, curves.png"
        if results.rung is not None:
            results.plot_rungs(out / "rungs.png")
            written += ", rungs.png"
        elif "rungs.png" in earlier:  # an earlier halving run's: not this sweep's
            written += " (and removed an earlier run's rungs.png)"
    except ImportError as err:  # matplotlib is optional: keep the table, say what is missing
        written += f" (no plots: {err})"
    done.append(written)
    if ranked and _has_test_split(data):  # after the table is safe on disk: it trains
        test = _score_test(results, best, args.metric, data, config)
        _print(_test_line(test))
        if isinstance(test, dict):
            results.meta["test"] = test
            results.to_json(out / "results.json", config=record)
            headline += f"; test accuracy {results.meta['test']['accuracy_mean']:.4f}"
    elif ranked and data is not None and getattr(args, "dataset", None) in datasets.NAMES:
        _print("test: no test split drawn (--n-test N draws one; the chosen configuration is "
               "then refitted and scored on it once)")  # fmt: skip
    _print(f"done: {headline}; wrote {written} to {out}/")
    return 0


# ---- jaxhp tune --------------------------------------------------------------------------
def _optuna_bridge():
    """jaxhp.integrations.optuna, or a usage error that says how to get optuna."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UsageError("jaxhp tune needs optuna: pip install 'jaxhp[optuna]'") from None
    from jaxhp.integrations import optuna as bridge

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our lines say what it would
    return bridge


_TUNED = ("lambd", "keep_prob", "learning_rate")


def _tuned_names(args) -> tuple[str, ...]:
    """The hyperparameters jaxhp tune searches or fixes: the course's three, and the
    optimizer's own where given."""
    return (*_TUNED, *_optimizer_axes(args))


def _tune_space(args) -> tuple[dict, HParams]:
    """The search flags as Optuna distributions (ranges, choices), and the fixed values."""
    import optuna

    from jaxhp import space

    distributions, fixed = {}, {}
    for name in _tuned_names(args):
        axis, flag = getattr(args, name), "--" + name.replace("_", "-")
        values = axis.values
        if isinstance(values, space.one_minus_loguniform):
            raise UsageError(
                f"{flag} {axis.text}: Optuna has no 1 − β log scale; in jaxhp tune give "
                "uniform:a:b, loguniform:a:b or choices a,b,c"
            )
        if isinstance(values, (space.uniform, space.loguniform)):
            log = isinstance(values, space.loguniform)
            distributions[name] = optuna.distributions.FloatDistribution(
                values.a, values.b, log=log
            )
        elif len(values) == 1:
            one = values[0]
            fixed[name] = np.asarray(one, np.float32) if isinstance(one, tuple) else one
        elif any(isinstance(v, tuple) for v in values):
            raise UsageError(
                f"{flag} {axis.text}: per-layer values (0.8/0.9) can be one fixed value in "
                "jaxhp tune, not a choice"
            )
        else:
            distributions[name] = optuna.distributions.CategoricalDistribution(values)
    if not distributions:
        flags = ["--" + name.replace("_", "-") for name in _tuned_names(args)]
        raise UsageError(
            f"{', '.join(flags[:-1])} and {flags[-1]} are all fixed: give at least one a "
            "range (loguniform:a:b, uniform:a:b) or choices a,b,c"
        )
    # A searched optimizer hyperparameter must be a name of the base (its value: optax's
    # default, which every trial's sampled value replaces).
    searched = {n: OPTIMIZER_HPARAMS[_OWNER[n]][n] for n in distributions if n in _OWNER}
    return distributions, HParams(**fixed, **searched)


def _tune_record(args, source, config) -> dict:
    return {
        **_run_record(args, source, config),
        "search": {name: getattr(args, name).text for name in _tuned_names(args)},
        "trials": args.trials,
        "batch": args.batch,
        "sampler": args.sampler,
        "storage": None if args.storage is None else _absolute_sqlite(args.storage),
        "study_name": args.study_name if args.storage else None,
        "seed": args.seed,
        "metric": args.metric,
        "bayes_error": args.bayes_error,
        "versions": _versions(),
    }


_STUDY_ATTR = "jaxhp_tune"  # the study's user attribute: what its trials were trained on
_SAMPLER_ATTR = "jaxhp_sampler"  # and the sampler its last run asked
_SHAPES_TRIALS = (
    "dataset",
    "model",
    "layer_sizes",
    "channels",
    "hidden",
    "activation",
    "init",
    "optimizer",
    "steps",
    "batch_size",
    "eval_every",
    "patience",
    "search",
    "seed",
)


def _check_same_study(study, record: dict, args):
    """A resumed study must have been tuned with the same data, model and search space:
    its trials and the new ones go into one table and one sampler."""
    mine = json.loads(json.dumps({k: record[k] for k in _SHAPES_TRIALS}))
    theirs = study.user_attrs.get(_STUDY_ATTR)
    if theirs is None:
        study.set_user_attr(_STUDY_ATTR, mine)
        return
    for key in _SHAPES_TRIALS:
        if _without_test_sizes(theirs.get(key)) != _without_test_sizes(mine[key]):
            raise UsageError(
                f"--study-name {args.study_name} in --storage {args.storage} was tuned with "
                f"other settings ({key}: {theirs.get(key)!r} there, {mine[key]!r} here); "
                "give the same flags to resume it, or another --study-name"
            )


def _without_test_sizes(setting):
    """A recorded setting without the test split's size: the test set is scored after
    tuning and shapes no trial (older studies did not record it)."""
    if not isinstance(setting, dict):
        return setting
    return {k: v for k, v in setting.items() if k not in ("n_test", "m_test")}


def _open_study(args, bridge):
    """The study: new, or (with --storage) resumed; its sampler's seed moves on with the
    trials asked so far (finished or left running by an interrupted run), so a resumed
    sampler does not repeat the first run's draws."""
    try:
        study = bridge.create_study(
            storage=args.storage,
            study_name=args.study_name if args.storage else None,
            sampler=args.sampler,
            seed=args.seed,
        )
    except ValueError as err:
        raise UsageError(f"--storage {args.storage}: {err}") from None
    asked = len(study.trials)
    if asked:
        study.sampler = bridge.make_sampler(args.sampler, args.seed + asked)
    return study


def _tune_interrupted(args, bridge, study) -> Interrupted:
    if args.storage is None:
        return Interrupted(
            "interrupted: nothing was saved; with --storage sqlite:///study.db finished "
            "trials are kept and re-running the same command resumes"
        )
    finished = len(bridge.finished_trials(study))
    running = len(bridge.stale_trials(study, _tune_space(args)[0]))
    unfinished = ""
    if running:
        stay, are = ("stay", "are") if running > 1 else ("stays", "is")
        unfinished = (
            f" (the {_plural(running, 'trial')} it was training {stay} RUNNING in the study "
            f"and {are} trained again then)"
        )
    return Interrupted(
        f"interrupted: {finished} of {args.trials} trials finished in study "
        f"{args.study_name!r} ({args.storage}); re-run the same command to resume{unfinished}"
    )


def _tune(args) -> int:
    missing = [flag for flag in ("--trials", "--batch") if getattr(args, flag[2:]) is None]
    if missing:
        raise UsageError(f"the following arguments are required: {', '.join(missing)}")
    bridge = _optuna_bridge()
    _check_folder(args.out, "--out")
    _check_steps(args)
    _check_optimizer_flags(args)
    data, n_out, n_classes, source = _load_data(args)
    _check_bayes_error(args, data)
    _check_same_file(args, source)
    config = _config(args, data, n_out)
    _check_training(args, config, data)
    distributions, base = _tune_space(args)
    record = _tune_record(args, source, config)
    study = _open_study(args, bridge)
    _check_same_study(study, record, args)
    finished = len(bridge.finished_trials(study))
    stale = len(bridge.stale_trials(study, distributions))
    if finished or stale:
        again = (
            f"; {_plural(stale, 'trial')} an interrupted run left unfinished "
            f"{'is' if stale == 1 else 'are'} trained again"
            if stale
            else ""
        )
        held = (
            f"{finished} of {args.trials} trials finished"
            if finished <= args.trials
            else f"it holds {_plural(finished, 'finished trial')}, --trials asks for {args.trials}"
        )
        _print(f"resuming study {args.study_name!r} in {args.storage}: {held}{again}")
        before = study.user_attrs.get(_SAMPLER_ATTR)
        if before not in (None, args.sampler):  # allowed (Optuna keeps no sampler): said
            _print(
                f"note: its trials so far were sampled by {before}; the next come from "
                f"--sampler {args.sampler}"
            )
    study.set_user_attr(_SAMPLER_ATTR, args.sampler)
    todo = max(0, args.trials - finished)
    batch = max(1, min(args.batch, todo))  # fewer trials than --batch: a smaller call
    if not args.no_cache:
        enable_compilation_cache()
    plan = (
        f"{_plural(todo, 'trial')} to train in batches of {batch}"
        if todo
        else "nothing to train (raise --trials to search further)"
    )
    _print(
        _data_line(source, data, n_classes),
        f"tune: {plan}, {args.sampler} sampler "
        f"over {', '.join(distributions)}; {_architecture(args, config, n_out)}, "
        f"{config.steps} steps, {config.optimizer}; ranked by {args.metric}, ties by "
        f"{tie_break(args.metric)}",
    )
    made = _make_folder(args.out, "--out")
    bar = _Progress(todo * config.n_evals, enabled=not args.quiet)
    started = time.perf_counter()
    try:
        with compile_stats() as compiled:
            if todo:
                bridge.optimize(
                    study,
                    distributions,
                    data,
                    config,
                    n_trials=todo,
                    batch_size=batch,
                    seed=args.seed,
                    base=base,
                    keep_history=True,
                    on_eval=bar if bar.bar is not None else None,
                    vmap_width=args.vmap_width,
                )
    except KeyboardInterrupt:
        _remove_if_empty(args.out, made)
        raise _tune_interrupted(args, bridge, study) from None
    except ValueError as err:  # a stored study trained otherwise: the advice in flags
        _remove_if_empty(args.out, made)
        raise UsageError(
            str(err).replace(
                "use the same one, or a new study (create_study(study_name=...))",
                f"give the flags it was tuned with, or another --study-name than {args.study_name}",
            )
        ) from None
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    results = bridge.study_results(study, config, base=base)
    if results.meta["seed"] is None:  # trials told before jaxhp recorded it: the study's
        results.meta["seed"] = args.seed  # seed is --seed (a resume with another is refused)
    results.meta.update(
        m_train=source["m_train"],
        m_dev=source["m_dev"],
        chance_error=_chance_error(data),
        seconds=seconds,
        trials_trained=todo,
        study_name=study.study_name,
        storage=args.storage,
        sampler=args.sampler,
        compile_seconds=round(compiled.total_s, 3),
        compile_cache_hits=compiled.cache_hits,
        compile_cache_misses=compiled.cache_misses,
        compile_cache=None if args.no_cache else str(default_cache_dir()),
    )
    holds = f"the study holds {_plural(len(results), 'finished trial')}"
    trained = (
        f"trained {_plural(todo, 'trial')} in {seconds:.1f} s "
        f"({_plural(-(-todo // batch), 'batch', 'batches')} of "
        f"{batch}); {holds}{_cache_words(results.meta)}"
        if todo
        else f"trained nothing; {holds}"
    )
    return _report(args, results, record, trained, data=data, config=config)


def _test_accuracy(params, data, config) -> float:
    x, y = data.test[:2]
    return float(np.mean(np.asarray(model_predict(config, params, x)) == np.asarray(y).ravel()))


def _has_test_split(data) -> bool:
    return data is not None and data.test is not None and len(data.test[0]) > 0


def _score_test(results, best, metric: str, data, config) -> dict | str:
    """The chosen configuration's seeds refitted (a sweep keeps no params) and scored on
    the test split, once, after choosing on dev: the params the ranking read (each seed's
    best evaluation for a ``best_*`` metric, else the params it keeps). Returns the
    scores (for ``meta["test"]``), or why nothing was scored."""
    if results.meta.get("processes", 1) > 1:  # the other processes do not wait for it
        return "a run over several processes; refit from Python with jaxhp.sweep.refit"
    seeds, members = set(), []
    for m in np.atleast_1d(best["members"]):  # live members, one per seed
        if not results.diverged[m] and int(results.seeds[m]) not in seeds:
            seeds.add(int(results.seeds[m]))
            members.append(int(m))
    seeds_words = _plural(len(members), "seed")
    _print(f"refitting the chosen configuration ({seeds_words}) to score it on the test split")
    try:
        fitted = refit_together(results, members, data, config)  # one compiled call
    except ValueError as err:  # e.g. a halving member that the schedule stopped at a rung
        return str(err)
    at_best = metric.startswith("best_")
    which = (
        "params at each seed's best evaluation"
        if at_best
        else ("kept params (best evaluation)" if config.restore_best else "last params")
    )
    scores = [_test_accuracy(f.best_params if at_best else f.params, data, config) for f in fitted]
    # a refit on another kind of device rounds differently from the sweep; where that moved
    # its best evaluation or stop, the params scored are the refit's own
    reads_best = at_best or config.restore_best  # else the last params: only the stop counts
    moved = [
        m
        for m, f in zip(members, fitted)
        if (reads_best and int(f.best_step) != int(results.best_step[m]))
        or int(f.stop_step) != int(results.stop_step[m])
    ]
    return {
        "members": members,
        "accuracy": scores,
        "accuracy_mean": float(np.mean(scores)),
        "accuracy_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else None,  # JSON null
        "m_test": len(data.test[0]),
        "params": which,
        "refit_moved": moved,
    }


def _test_line(test: dict | str) -> str:
    if isinstance(test, str):
        return f"test: not scored ({test})"
    n = len(test["accuracy"])
    spread = f" ± {test['accuracy_std']:.4f} over {n} seeds" if n > 1 else ""
    moved = (
        f"; members {test['refit_moved']} reached their best or stop at another step when "
        "refitted alone (float rounding, grown by the training's sensitivity), so their "
        "refits' params were scored"
        if test["refit_moved"]
        else ""
    )
    return (
        f"test accuracy of the chosen configuration ({test['params']}): "
        f"{test['accuracy_mean']:.4f}{spread} on {test['m_test']} test examples (the test "
        "set was used only now, after choosing on dev, so this estimates how the choice "
        f"does on new data){moved}"
    )


def _noise_words(
    metric: str, seeded: bool, resolution: float, noise: float, command: str = "sweep"
) -> str:
    """The rule that marks a point within noise of the best, and the ``noise`` it gave
    (see SweepResults.summary); ``seeded``: some point has two live seeds or more."""
    example = "one example" if metric == "train_accuracy" else "one dev example"
    pooled = "the seeds' std pooled over the better half of the points"
    if "accuracy" in metric:
        if seeded:
            return f"gap below {noise:.4f}, the larger of {example} and {pooled}"
        return f"gap below {example}, {resolution:.4f}"
    if seeded:
        return f"gap below {noise:.4g}, {pooled}"
    rerun = "rerun with --seeds 2 or more"
    if command != "sweep":  # only sweep has --seeds
        rerun = "try the best point in `jaxhp sweep --seeds 2`"
    return f"one seed gives no noise estimate for a cost: {rerun}"


def _bayes_default(args, data=None) -> tuple[float | None, str]:
    """--bayes-error, or for a built-in 2-D dataset (whose generator is known exactly) the
    error of the best possible classifier on it, at most ``data``'s dev chance error (a
    small dev set can sample below the generator's, at a noise where guessing is best);
    else None (0 assumed)."""
    if args.bayes_error is not None:
        return args.bayes_error, ""
    name = getattr(args, "dataset", None)
    if name in datasets.BAYES_KNOWN:
        noise = args.noise if args.noise is not None else datasets.DEFAULT_NOISE[name]
        bayes = datasets.bayes_error(name, noise)
        note = (
            f"the {name} generator's at noise {number_text(float(noise))}: the error of the best "
            "possible classifier; --bayes-error overrides it"
        )
        chance = None if data is None or data.dev is None else _chance_error(data)
        if chance is not None and bayes > chance:
            note += (
                f"; capped at this dev set's chance error {chance:.2%} (the generator's is "
                f"{bayes:.2%})"
            )
            bayes = chance
        return bayes, note
    return None, "the default: pass --bayes-error, your estimate of human-level error"


def _diagnosis_words(args, diagnosis_of, chosen_from: int = 1, data=None, processes=1) -> str:
    """The diagnosis, with the Bayes error the CLI assumes and where it comes from. Its
    warning about a Bayes error above the train error is left out: a note says it. The
    best of ``chosen_from`` configurations gets a note that its dev error reads low, and
    where an unbiased score comes from (``data``'s test split, or how to draw one)."""
    bayes, note = _bayes_default(args, data)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="bayes_error .* is above train_error")
        diagnosis = diagnosis_of(bayes)
    notes = diagnosis.notes
    if chosen_from > 1:
        where = _unbiased(args, data, processes)
        notes += (
            f"chosen as the best of {chosen_from} configurations on this dev set, so its dev "
            f"error reads low (the choice also fits the dev set's noise); {where} "
            "scores it once, without that bias",
        )
    return str(diagnosis._replace(bayes_note=note or None, notes=notes))


def _unbiased(args, data, processes: int = 1) -> str:
    if _has_test_split(data) and processes == 1:  # as _score_test scores it
        return "the test split below"
    if getattr(args, "dataset", None) in datasets.NAMES:
        return "a test split (--n-test N)"
    return "a test split"


def _cache_words(meta: dict) -> str:
    if "compile_seconds" not in meta:
        return ""
    if meta["compile_cache"] is None:
        cache = "compilation cache off"
    elif not meta["compile_cache_hits"]:
        cache = "cache miss: later runs reuse it"
    else:  # a changed sweep can find its small programs in the cache but not its main one
        cache = f"{_plural(meta['compile_cache_hits'], 'program')} from the cache"
        if meta["compile_cache_misses"]:
            cache += f", {meta['compile_cache_misses']} compiled (later runs reuse them)"
    return f"; compiling took {meta['compile_seconds']:.1f} s of that ({cache})"


def _point(row: dict, results) -> str:
    return " ".join(f"{name}={number_text(row[name])}" for name in results.hparam_names())


def _stopping_words(results, best: dict) -> list[str]:
    """With early stopping: the steps at which the best point's members stopped and the
    evaluation whose params they keep (a range over its seeds)."""
    if not results.meta.get("restore_best"):
        return []
    members = best["members"]

    def steps(values) -> str:
        low, high = int(np.min(values[members])), int(np.max(values[members]))
        return f"{low}" if low == high else f"{low}–{high}"

    stop, kept = np.asarray(results.stop_step), np.asarray(results.best_step)
    return [f"early stopping: stopped at step {steps(stop)}, kept the params of step {steps(kept)}"]


def _interruptible(call):
    """``call()`` in a worker thread, waited for in short joins: JAX runs a program that
    calls back to Python (the progress lines) inside the calling thread, where Ctrl-C
    waited for the whole run. After Ctrl-C the worker is left to the process's exit
    (:func:`console_main` leaves at once)."""
    outcome = {}

    def work():
        try:
            outcome["value"] = call()
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _is_main() -> bool:
    import jax

    return jax.process_index() == 0


# ---- entry point -------------------------------------------------------------------------
def _on_ctrl_c(signum, frame):
    """Ctrl-C as KeyboardInterrupt, except while a garbage-collector callback runs (JAX has
    one), where Python ignores exceptions and the Ctrl-C would be lost. There it is sent
    again a moment later from another thread: sent at once, it would land at once, still
    inside the callback."""
    if _in_gc_callback(frame):
        threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()
        return
    raise KeyboardInterrupt


def _in_gc_callback(frame) -> bool:
    """Is ``frame``, or a frame that called it, one of the garbage collector's callbacks?"""
    callbacks = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks:
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def _ctrl_c_never_lost():
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args``, but an unknown option is reported first (argparse would first
    ask for the required ones) and by its subcommand (``jaxhp sweep: error: ...``, with
    suggestions from that command's own flags)."""
    commands = _subcommands(parser)
    command = commands.get(argv[0]) if argv else None
    known = (
        _option_strings(command)
        if command
        else [s for a in parser._actions for s in a.option_strings]
    )
    words = argv[1:] if command else argv[:1]
    unknown = [w for w in words if w.startswith("--") and w.split("=")[0] not in known]
    if not unknown:
        args, unknown = parser.parse_known_args(argv)
        command = commands[args.command]
    if unknown:
        if command is None:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        command.root = parser
        hint = _list_hint(command, argv, unknown)
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


def _list_hint(command: argparse.ArgumentParser, argv: list[str], unknown: list[str]) -> str:
    """For values left over after a list flag's value (``--keep-prob 0.8 0.9``): the list
    as the one comma-separated word the flag takes, where that word parses."""
    by_string = {s: a for a in command._actions for s in a.option_strings}
    for at, word in enumerate(argv):
        flag, equals, value = word.partition("=")
        action = by_string.get(flag)
        if not getattr(getattr(action, "type", None), "is_axis", False):
            continue
        first = at + 1 if equals else at + 2  # the first word after the flag's value
        values = [value] if equals else argv[at + 1 : at + 2]
        extra = []
        for later in argv[first:]:
            if later.startswith("--"):
                break
            extra.append(later)
        if not values or not extra or any(w not in unknown for w in extra):
            continue
        joined = ",".join(values + extra)
        try:
            action.type(joined)
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
        return f" (a list of values is one word: {flag} {joined})"
    return ""


def _check_repeated(command: argparse.ArgumentParser, words: list[str]) -> None:
    """One value flag given twice (``--lambd 0.1 --lambd 1``) is an error: argparse would
    keep the last and drop the first silently. ``--lr`` and ``--learning-rate`` are one
    flag."""
    by_string = {s: a for a in command._actions for s in a.option_strings}
    seen: dict[str, str] = {}
    for word in words:
        action = by_string.get(word.split("=")[0]) if word.startswith("--") else None
        if action is None or action.nargs == 0:  # a switch twice (--quiet) loses nothing
            continue
        flag = word.split("=")[0]
        if action.dest in seen:
            twice = (
                f"{flag} is"
                if seen[action.dest] == flag
                else f"{seen[action.dest]} and {flag} are one flag,"
            )
            hint = " (a list of values is a,b,c)" if getattr(action.type, "is_axis", False) else ""
            command.error(f"{twice} given twice; give it once{hint}")
        seen[action.dest] = flag


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv:  # a first try: the commands, not only that one is missing
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = _parse(parser, argv)
    _check_repeated(_subcommands(parser)[args.command], argv[1:])
    try:
        if getattr(args, "config", None) is not None:  # recorded flags first, typed ones win
            recorded = _recorded_argv(args.config, args.command)
            args = _parse(parser, [args.command, *recorded, *argv[1:]])
        with _ctrl_c_never_lost(), warnings.catch_warnings():
            warnings.formatwarning = _warning_line  # recorded warnings stay recorded
            # the table's headline says it, with advice
            warnings.filterwarnings("ignore", message="every member of the sweep diverged")
            # the test line says when a refit moved (refit_moved)
            warnings.filterwarnings("ignore", message="the refit of member")
            return args.run(args)
    except (Interrupted, KeyboardInterrupt) as stop:
        text = str(stop) if isinstance(stop, Interrupted) else "interrupted: nothing was saved"
        newline = "\n" if sys.stderr.isatty() else ""  # past the terminal's ^C
        print(f"{newline}{text}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError, ImportError) as err:
        message = " ".join(str(err).split())
        print(f"jaxhp {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as one line for a command's user, not Python's file:line and source."""
    return f"warning: {message}\n"


def console_main() -> None:
    """The ``jaxhp`` command: :func:`main`, then exit with its status. After Ctrl-C, XLA
    may still be compiling on its own threads, and Python's normal shutdown can then crash
    under them (exit -11 instead of 130). Everything worth keeping is written by then
    (checkpoint chunks synchronously, Optuna's storage on each tell), so an interrupted
    command flushes its output and leaves at once."""
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
