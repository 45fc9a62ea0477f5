"""The records that flow through training: HParams, TrainConfig, Data, TrainResult."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxhp import _checks
from jaxhp.init import SCHEMES, Params
from jaxhp.nn import ACTIVATIONS

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")


class HParams(NamedTuple):
    """Hyperparameters that are *values*, not shapes: traced, so a sweep vmaps over them.

    A single run has scalar leaves; a sweep has the same type with a leading member axis.
    """

    lambd: Any = 0.0  # L2 strength: lambd / (2 m) * sum ||W||_F^2
    keep_prob: Any = 1.0  # dropout keep probability in (0, 1]; scalar or one per hidden layer
    learning_rate: Any = 0.1

    def validate(self, *, n_hidden: int | None = None, member: int | None = None) -> HParams:
        """Raise ValueError for out-of-range concrete values; return self."""
        _checks.check_lambd(self.lambd, member=member)
        _checks.check_keep_prob(self.keep_prob, n_hidden=n_hidden, member=member)
        _checks.check_learning_rate(self.learning_rate, member=member)
        return self


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything static about a training run: shapes, loop lengths and choices.

    It is hashable and registered as a static pytree, so ``jit(fit)`` treats it as a
    compile-time constant. Changing any field recompiles; changing :class:`HParams` does not.

    Attributes:
      layer_sizes: ``(n_x, n_1, ..., n_out)``. One output: sigmoid/BCE; k: softmax.
      steps: number of optimiser updates.
      activation: hidden activation, one of ``jaxhp.nn.ACTIVATIONS``.
      init: init scheme (see :func:`jaxhp.init_mlp`); ``init_scale`` its scale.
      optimizer: ``"sgd"``, ``"momentum"`` (0.9), ``"adam"``, ``"rmsprop"``, or a factory
        ``f(learning_rate) -> optax.GradientTransformation``.
      batch_size: rows per step; ``None`` means full batch. Each epoch reshuffles and drops
        the last incomplete batch so every step has the same shape.
      eval_every: steps between evaluations (history entries and early-stopping checks);
        ``None`` picks ``max(1, steps // 100)``.
      patience: evaluations without a dev-cost improvement larger than ``min_delta`` after
        which updates stop; ``None`` turns early stopping off.
      restore_best: return the best-dev-cost params instead of the final ones.
      dtype: float dtype of params and data inside training.
      augment: optional ``f(key, x) -> x`` applied to each training batch inside the scan.
    """

    layer_sizes: tuple[int, ...]
    steps: int
    activation: str = "relu"
    init: str = "he"
    init_scale: float | None = None
    optimizer: str | Callable = "sgd"
    batch_size: int | None = None
    eval_every: int | None = None
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = False
    dtype: str = "float32"
    augment: Callable | None = None

    def __post_init__(self):
        object.__setattr__(self, "layer_sizes", _checks.check_layer_sizes(self.layer_sizes))
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("activation", self.activation, tuple(ACTIVATIONS))
        _checks.check_choice("init scheme", self.init, SCHEMES)
        if not callable(self.optimizer):
            _checks.check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _checks.check_positive_int("batch_size", self.batch_size, allow_none=True)
        _checks.check_positive_int("eval_every", self.eval_every, allow_none=True)
        if self.eval_every is not None and self.eval_every > self.steps:
            raise ValueError(f"eval_every must be <= steps ({self.steps}), got {self.eval_every}")
        _checks.check_positive_int("patience", self.patience, allow_none=True)
        if not (self.min_delta >= 0):
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta!r}")
        if self.augment is not None and not callable(self.augment):
            raise TypeError(f"augment must be a function f(key, x) -> x, got {self.augment!r}")
        try:
            dtype = jnp.dtype(self.dtype)
        except TypeError as err:
            raise ValueError(f"dtype must be a float dtype name, got {self.dtype!r}") from err
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"dtype must be a float dtype, got {self.dtype!r}")
        object.__setattr__(self, "dtype", dtype.name)

    @property
    def n_hidden(self) -> int:
        return len(self.layer_sizes) - 2

    @property
    def every(self) -> int:
        """The resolved eval_every."""
        return self.eval_every or max(1, self.steps // 100)

    @property
    def n_evals(self) -> int:
        return -(-self.steps // self.every)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


class Data(NamedTuple):
    """Train, dev and test sets, each ``(x, y)`` with x (m, n_x) and y (m,), (m,1) or (m,k)."""

    train: tuple[Any, Any]
    dev: tuple[Any, Any] | None = None
    test: tuple[Any, Any] | None = None


class History(NamedTuple):
    """Metrics recorded every ``eval_every`` steps (dropout off), shape (n_evals,) each.

    ``train_cost`` is J (cross-entropy + L2 term) on the whole training set; ``dev_cost`` is
    the dev cross-entropy without the L2 term (the generalisation error that early stopping
    watches). Without dev data the dev fields repeat the train cross-entropy and accuracy.
    Entries after a stop repeat the last evaluation; a diverged run's last evaluation keeps
    its non-finite cost (its returned params are those of the evaluation before).
    """

    step: jax.Array
    train_cost: jax.Array
    train_accuracy: jax.Array
    dev_cost: jax.Array
    dev_accuracy: jax.Array


class TrainResult(NamedTuple):
    """What :func:`jaxhp.fit` returns.

    Attributes:
      params: final params, or the best ones when ``config.restore_best``.
      best_params: params at the best recorded dev cost.
      history: a :class:`History`.
      stop_step: updates applied before training ended (``steps`` if it ran to the end).
      diverged: True when an evaluation's cost was non-finite; params are then those of the
        previous evaluation (finite costs), never NaN.
      best_step: the step at which ``best_params`` were recorded.
    """

    params: Params
    best_params: Params
    history: History
    stop_step: jax.Array
    diverged: jax.Array
    best_step: jax.Array
