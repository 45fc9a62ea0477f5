"""jaxhp: regularisation, gradient checking and vectorised hyperparameter sweeps in JAX."""

from jaxhp import _cpu

_cpu.split_cpu_by_default()  # before anything starts JAX's backends

# ruff: noqa: E402 - the imports below come after the CPU device default on purpose

from jaxhp import augment, data, datasets, models, sweep, testing
from jaxhp.cache import enable_compilation_cache
from jaxhp.diagnose import Diagnosis, diagnose
from jaxhp.gradcheck import GradCheckReport, LeafCheck, grad_check
from jaxhp.init import Layer, init_mlp
from jaxhp.learning import init_probe, learning_curve
from jaxhp.losses import accuracy, cross_entropy, l2_penalty, loss, predict
from jaxhp.models import Model
from jaxhp.nn import dropout, dropout_mask, forward
from jaxhp.records import Data, History, HParams, TrainConfig, TrainResult
from jaxhp.results import SweepResults
from jaxhp.sweep import run_sweep
from jaxhp.train import (
    TrainState,
    fit,
    init_state,
    l2_leaves,
    make_update_step,
    model_loss,
    model_predict,
)

__version__ = "0.1.0"

__all__ = [
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
    "init_probe",
    "init_mlp",
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


# jaxhp.optuna and jaxhp.plot need optional extras (optuna, matplotlib), and jaxhp.cli (the
# command, and cli.load_run) is not needed to train: each is imported on first use only.
_LAZY = {"optuna": "jaxhp.integrations.optuna", "cli": "jaxhp.cli", "plot": "jaxhp.plot"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(_LAZY[name])
    raise AttributeError(f"module 'jaxhp' has no attribute {name!r}")
