"""The records that flow through training: HParams, TrainConfig, Data, TrainResult."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxhp import _checks
from jaxhp.init import SCHEMES, Params
from jaxhp.models import Model, mlp
from jaxhp.nn import ACTIVATIONS

# The built-in optimizers, each with the hyperparameters of its own that a member's hparams
# may set (so that a sweep can put an axis on them), and optax's defaults for them.
OPTIMIZER_HPARAMS = {
    "sgd": {},
    "momentum": {"momentum": 0.9},
    "adam": {"b1": 0.9, "b2": 0.999},
    "rmsprop": {"decay": 0.9},
}
OPTIMIZERS = tuple(OPTIMIZER_HPARAMS)


_COURSE_DEFAULTS = {"lambd": 0.0, "keep_prob": 1.0, "learning_rate": 0.1}


def _is_number_like(value: Any) -> bool:
    """A real number, an array of real numbers, a tracer, or None (a pytree-prefix slot)."""
    if value is None or isinstance(value, jax.core.Tracer):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    if isinstance(value, (tuple, list)):
        return all(_is_number_like(v) and v is not None for v in value)
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        return False
    try:
        return bool(np.issubdtype(np.dtype(dtype), np.number)) and not np.issubdtype(
            np.dtype(dtype), np.complexfloating
        )
    except TypeError:
        return False


def _check_value(name: str, value: Any):
    if not _is_number_like(value):
        raise TypeError(
            f"HParams value {name}={value!r} ({type(value).__name__}) must be a number or an "
            "array of numbers (e.g. 0.3, not '0.3')"
        )


class HParams:
    """Hyperparameters that are *values*, not shapes: traced, so a sweep vmaps over them.

    Any names are allowed; the three course names always exist, with defaults ``lambd=0.0``
    (L2 strength), ``keep_prob=1.0`` (dropout keep probability, a scalar or one per hidden
    layer) and ``learning_rate=0.1``. Extra names (``momentum``, ``b2``, ...) are read by the
    model's ``apply`` and the optimizer factory. A single run has scalar leaves; a sweep has
    the same names with a leading member axis.

    It reads like a NamedTuple: ``hp.momentum``, ``hp._fields`` (names in order),
    ``hp._asdict()``, ``hp._replace(**changes)``, positional ``HParams(lambd, keep_prob,
    learning_rate)``. It is a pytree whose leaves are the values (names are static).

    Example:
      >>> hp = HParams(lambd=0.1, keep_prob=0.8, learning_rate=0.05, momentum=0.9)
      >>> hp._fields
      ('lambd', 'keep_prob', 'learning_rate', 'momentum')

    Raises:
      TypeError: a value that is not a number or an array of numbers (a string, a dict),
        more than three positional values, or a name given twice.
    """

    __slots__ = ("_names", "_values")

    def __init__(self, *args: Any, **kwargs: Any):
        if len(args) > len(_COURSE_DEFAULTS):
            raise TypeError(
                f"HParams takes at most 3 positional values (lambd, keep_prob, learning_rate), "
                f"got {len(args)}; pass other names as keywords, e.g. HParams(momentum=0.9)"
            )
        values = dict(_COURSE_DEFAULTS)
        for name, value in zip(_COURSE_DEFAULTS, args):
            if name in kwargs:
                raise TypeError(f"HParams got {name!r} both by position and by keyword")
            values[name] = value
        values.update(kwargs)
        for name, value in values.items():
            _check_value(name, value)
        object.__setattr__(self, "_names", tuple(values))
        object.__setattr__(self, "_values", tuple(values.values()))

    @classmethod
    def _make(cls, names, values) -> HParams:
        """Build without checks (pytree unflattening passes arbitrary leaves)."""
        hp = object.__new__(cls)
        object.__setattr__(hp, "_names", tuple(names))
        object.__setattr__(hp, "_values", tuple(values))
        return hp

    @classmethod
    def coerce(cls, value: Any, *, name: str = "hparams") -> HParams:
        """An HParams from an HParams, a mapping of name -> value, or a (lambd, keep_prob,
        learning_rate) tuple.

        Raises:
          TypeError: for anything else.
        """
        if isinstance(value, HParams):
            return value
        if isinstance(value, Mapping):
            bad = [k for k in value if not isinstance(k, str) or not k.isidentifier()]
            if bad:
                raise TypeError(f"{name}: hyperparameter names must be identifiers, got {bad[0]!r}")
            return cls(**value)
        if isinstance(value, (Data, History, TrainResult)):  # e.g. fit(key, data, hparams, ...)
            raise TypeError(
                f"{name} must be a jaxhp.HParams or a dict of name -> number, got a "
                f"jaxhp.{type(value).__name__} (arguments in another order?)"
            )
        if isinstance(value, tuple) and len(value) <= len(_COURSE_DEFAULTS):
            return cls(*value)
        raise TypeError(
            f"{name} must be a jaxhp.HParams or a dict of name -> number, got "
            f"{type(value).__name__} {value!r}"
        )

    @property
    def _fields(self) -> tuple[str, ...]:
        return self._names

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._names, self._values))

    def _replace(self, **changes: Any) -> HParams:
        unknown = [k for k in changes if k not in self._names]
        if unknown:
            raise ValueError(
                f"HParams has no {unknown[0]!r} to replace; it has {', '.join(self._names)}. "
                f"Add a name with HParams(**hp._asdict(), {unknown[0]}=...)"
            )
        for name, value in changes.items():
            _check_value(name, value)
        return HParams._make(self._names, (changes.get(k, v) for k, v in self._asdict().items()))

    def __getitem__(self, index: int | str) -> Any:
        """A value by name (``hp["momentum"]``) or, as in a NamedTuple, by position."""
        if isinstance(index, str):
            if index not in self._names:  # not a method or an internal field either
                raise KeyError(self._unknown(index))
            return getattr(self, index)
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            return getattr(self, self._names[index])  # IndexError past the end
        return self._values[index]  # a slice, or tuple's own TypeError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in HParams.__slots__:
            raise AttributeError(name)
        names = object.__getattribute__(self, "_names")
        if name in names:
            if _READ_LOGS:
                _READ_LOGS[-1].add(name)
            return object.__getattribute__(self, "_values")[names.index(name)]
        raise AttributeError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        """What to say about a name this HParams lacks."""
        names = object.__getattribute__(self, "_names")
        close = difflib.get_close_matches(name, names, n=1)
        if close:  # most likely a typo of a name it has
            return (
                f"HParams has no hyperparameter {name!r}; did you mean {close[0]!r}? It has "
                f"{', '.join(names)}"
            )
        return (
            f"HParams has no hyperparameter {name!r}; it has {', '.join(names)}. Sweep it "
            f"(sweep.grid({name}=[...])) or give a value (base=HParams({name}=...) for "
            f"run_sweep, HParams(..., {name}=...) for fit)"
        )

    def __setattr__(self, name, value):
        raise AttributeError("HParams is immutable; use hp._replace(name=value)")

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other) -> bool:
        if not isinstance(other, HParams):
            return NotImplemented
        return self._names == other._names and self._values == other._values

    def __hash__(self) -> int:
        return hash((self._names, self._values))

    def __repr__(self) -> str:
        return f"HParams({', '.join(f'{k}={v!r}' for k, v in self._asdict().items())})"

    def __reduce__(self):
        return HParams._make, (self._names, self._values)

    def validate(self, *, n_hidden: int | None = None, member: int | None = None) -> HParams:
        """Raise ValueError for out-of-range concrete values; return self.

        lambd must be >= 0, keep_prob in (0, 1] (one value per hidden layer when a vector),
        learning_rate > 0, momentum and Adam's b1 and b2 in [0, 1) (their one meaning in
        optax), and every other value finite.
        """
        values = self._asdict()  # not attribute reads: those are what read_names records
        _checks.check_lambd(values["lambd"], member=member)
        _checks.check_keep_prob(values["keep_prob"], n_hidden=n_hidden, member=member)
        _checks.check_learning_rate(values["learning_rate"], member=member)
        where = "" if member is None else f" (member {member} of the sweep)"
        for name, value in self._asdict().items():
            if value is None:
                raise TypeError(f"hyperparameter {name} is None; give it a number{where}")
            if name in _COURSE_DEFAULTS or not _checks.is_concrete(value):
                continue
            array = np.asarray(value, np.float64)
            if not np.isfinite(array).all():
                raise ValueError(f"hyperparameter {name} must be finite, got {value!r}{where}")
            if name in DECAY_RATES and not ((array >= 0) & (array < 1)).all():
                why = "negative" if (array < 0).any() else "at 1 or more the averages never settle"
                raise ValueError(
                    f"{name} must be in [0, 1) (a decay rate: {why}), got {value!r}{where}"
                )
        return self


# optax's momentum, Adam's moment decays and RMSprop's decay
DECAY_RATES = ("momentum", "b1", "b2", "decay")

_READ_LOGS: list[set[str]] = []


@contextlib.contextmanager
def read_names():
    """Record the HParams names read by attribute inside the block (by a model's apply, an
    optimizer factory, the loss); yields the set. Used to find swept names nothing reads."""
    names: set[str] = set()
    _READ_LOGS.append(names)
    try:
        yield names
    finally:
        _READ_LOGS.pop()


def _flatten_with_keys(hp: HParams):
    return [(jax.tree_util.GetAttrKey(k), v) for k, v in zip(hp._names, hp._values)], hp._names


jax.tree_util.register_pytree_with_keys(
    HParams,
    _flatten_with_keys,
    lambda names, values: HParams._make(names, values),
    lambda hp: (hp._values, hp._names),
)


def _input_dtype_name(value: Any) -> str:
    """``TrainConfig.input_dtype`` checked: a real numeric dtype's name."""
    try:
        dtype = jnp.dtype(value)
    except TypeError as err:
        raise ValueError(
            f"input_dtype must be None or a numeric dtype name such as 'int32', got {value!r}"
        ) from err
    if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
        raise ValueError(
            f"input_dtype must be None, an integer dtype (e.g. 'int32' for ids) or a float "
            f"dtype, got {value!r}"
        )
    return dtype.name


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything static about a training run: the model, loop lengths and choices.

    It is hashable and registered as a static pytree, so ``jit(fit)`` treats it as a
    compile-time constant. Changing any field recompiles; changing :class:`HParams` does not.
    A sweep axis named after a field (``layer_sizes``, ``batch_size``, ``optimizer``, ...) is a
    static axis: :func:`jaxhp.run_sweep` compiles one program per distinct value.

    Attributes:
      layer_sizes: ``(n_x, n_1, ..., n_out)``: shorthand for
        ``model=jaxhp.models.mlp(layer_sizes, activation=..., init=..., init_scale=...)``.
        One output: sigmoid/BCE; k: softmax. Give either ``layer_sizes`` or ``model``.
      steps: number of optimiser updates.
      activation: hidden activation of the ``layer_sizes`` MLP, one of ``jaxhp.nn.ACTIVATIONS``.
      init: init scheme of the ``layer_sizes`` MLP (see :func:`jaxhp.init_mlp`);
        ``init_scale`` its scale.
      optimizer: ``"sgd"``, ``"momentum"``, ``"adam"``, ``"rmsprop"``, or a factory. The
        named ones read ``momentum`` (default 0.9), ``b1``/``b2`` (0.9/0.999) and ``decay``
        (0.9) from the member's hparams when it has them, so these can be swept; or a factory
        ``f(hparams) -> optax.GradientTransformation`` that reads the member's (traced)
        hyperparameters, e.g. ``lambda hp: optax.sgd(hp.learning_rate, momentum=hp.momentum)``.
        A factory of the learning rate alone (``lambda lr: optax.adam(lr)``) also works: a
        factory that uses its argument as a number is given ``hparams.learning_rate``. One
        that reads no hyperparameter (``lambda hp: optax.sgd(0.05)``) keeps its own values,
        and a swept learning rate then does nothing (``run_sweep`` warns).
      batch_size: rows per step; ``None`` means full batch. Each epoch reshuffles and drops
        the last incomplete batch so every step has the same shape.
      eval_every: steps between evaluations (history entries and early-stopping checks);
        ``None`` picks ``max(1, steps // 100)``. Each evaluation passes over the whole
        train and dev sets, so with mini-batches set it to about an epoch or more.
      patience: evaluations without a dev-cost improvement larger than ``min_delta`` after
        which updates stop; ``None`` turns early stopping off.
      restore_best: return the best-dev-cost params instead of the final ones.
      dtype: float dtype of the data (and of the ``layer_sizes`` MLP's params).
      input_dtype: dtype the inputs x are given to the model in; None (default) casts them
        to ``dtype``. An integer dtype (``"int32"``) keeps token or category ids as integers
        for a model that looks them up (an embedding): x must then hold integers that fit
        it (checked where x is concrete, not inside a caller's jit). The labels and the
        costs are not affected.
      augment: optional ``f(key, x) -> x`` applied to each training batch inside the scan;
        it must keep the batch's shape and dtype.
      model: a :class:`jaxhp.Model` (``init(key) -> params``, ``apply(params, x, *, key,
        hparams) -> logits``).
      l2: which parameter leaves the L2 term ``lambd / (2 m) * sum ||leaf||^2`` covers:
        None (default) for every float leaf with ``ndim >= 2`` whose own name (the last
        key of its path, before NNX's ``.value``) is not a bias's: ``bias``, ``*bias``,
        ``b``, ``b1``, ``b2``, ... (weight matrices and conv kernels, not biases,
        Equinox's (C, 1, 1) conv biases and the course's (n, 1) ``b1`` included, or norm
        scales); a regular expression searched in each leaf's name
        (``jax.tree_util.keystr`` of its path, e.g. ``"[0].W"``); or a function
        ``f(name, leaf) -> bool``. :func:`jaxhp.train.l2_leaves` lists the chosen leaves.
    """

    layer_sizes: tuple[int, ...] | None = None
    steps: int | None = None
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
    model: Model | None = None
    l2: str | Callable | None = None
    input_dtype: str | None = None

    def __post_init__(self):
        if self.model is None and self.layer_sizes is None:
            raise ValueError(
                "TrainConfig needs a model: model=jaxhp.models.mlp(...) or your own "
                "jaxhp.Model(init, apply), or the MLP shorthand layer_sizes=(n_x, ..., n_out)"
            )
        if self.model is not None:
            if self.layer_sizes is not None:
                raise ValueError("give either model= or layer_sizes= (the MLP shorthand), not both")
            if not (
                callable(getattr(self.model, "init", None))
                and callable(getattr(self.model, "apply", None))
            ):
                raise TypeError(
                    f"model must be a jaxhp.Model(init, apply) of two functions, got {self.model!r}"
                )
        else:
            object.__setattr__(self, "layer_sizes", _checks.check_layer_sizes(self.layer_sizes))
        if self.steps is None:
            raise ValueError("steps is required: TrainConfig(..., steps=1000)")
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("activation", self.activation, tuple(ACTIVATIONS))
        _checks.check_choice("init scheme", self.init, SCHEMES)
        if hasattr(self.optimizer, "init") and hasattr(self.optimizer, "update"):
            raise TypeError(
                "optimizer must be a name or a factory of the member's hparams, got an optax "
                "transformation (its learning rate would be fixed): write e.g. "
                "optimizer=lambda hp: optax.adam(hp.learning_rate)"
            )
        if not callable(self.optimizer):
            _checks.check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _checks.check_positive_int("batch_size", self.batch_size, allow_none=True)
        _checks.check_positive_int("eval_every", self.eval_every, allow_none=True)
        if self.eval_every is not None and self.eval_every > self.steps:
            raise ValueError(f"eval_every must be <= steps ({self.steps}), got {self.eval_every}")
        _checks.check_positive_int("patience", self.patience, allow_none=True)
        if not (isinstance(self.min_delta, numbers.Real) and self.min_delta >= 0):
            raise ValueError(f"min_delta must be a number >= 0, got {self.min_delta!r}")
        if self.augment is not None and not callable(self.augment):
            raise TypeError(f"augment must be a function f(key, x) -> x, got {self.augment!r}")
        if isinstance(self.l2, str):
            try:
                re.compile(self.l2)
            except re.error as err:
                raise ValueError(
                    f"l2 must be a valid regular expression, got {self.l2!r}: {err}"
                ) from err
        elif self.l2 is not None and not callable(self.l2):
            raise TypeError(
                f"l2 must be None, a regular expression or a function f(name, leaf) -> bool, "
                f"got {self.l2!r}"
            )
        try:
            dtype = jnp.dtype(self.dtype)
        except TypeError as err:
            raise ValueError(f"dtype must be a float dtype name, got {self.dtype!r}") from err
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"dtype must be a float dtype, got {self.dtype!r}")
        object.__setattr__(self, "dtype", dtype.name)
        if self.input_dtype is not None:
            object.__setattr__(self, "input_dtype", _input_dtype_name(self.input_dtype))

    @property
    def x_dtype(self) -> jnp.dtype:
        """The dtype the inputs x reach the model in: ``input_dtype``, else ``dtype``."""
        return jnp.dtype(self.input_dtype or self.dtype)

    @property
    def resolved_model(self) -> Model:
        """``model``, or the MLP that ``layer_sizes`` stands for."""
        if self.model is not None:
            return self.model
        return mlp(
            self.layer_sizes,
            activation=self.activation,
            init=self.init,
            init_scale=self.init_scale,
            dtype=self.dtype,
        )

    @property
    def n_hidden(self) -> int | None:
        """Hidden layers of the ``layer_sizes`` MLP; None for another model."""
        return None if self.layer_sizes is None else len(self.layer_sizes) - 2

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

    def __repr__(self) -> str:
        # Shapes and dtypes: printing a dataset should not dump its arrays.
        def split(pair) -> str:
            if pair is None:
                return "None"
            return "(" + ", ".join(_array_summary(a) for a in pair) + ")"

        return f"Data(train={split(self.train)}, dev={split(self.dev)}, test={split(self.test)})"


def _array_summary(a) -> str:
    """``float32[300, 2]``: an array's dtype and shape (lists are read as NumPy would)."""
    dtype = getattr(a, "dtype", None) or np.asarray(a).dtype
    return f"{np.dtype(dtype).name}{list(np.shape(a))}"


class History(NamedTuple):
    """Metrics recorded every ``eval_every`` steps (dropout off), shape (n_evals,) each.

    ``train_cost`` is J (cross-entropy + L2 term) on the whole training set; ``dev_cost`` is
    the dev cross-entropy without the L2 term (the generalisation error that early stopping
    watches). Without dev data the dev fields repeat the train cross-entropy and accuracy.
    Entries after a stop repeat the last evaluation; a diverged run's last evaluation keeps
    its non-finite cost, with a NaN accuracy (its returned params are those of the
    evaluation before).
    """

    step: jax.Array
    train_cost: jax.Array
    train_accuracy: jax.Array
    dev_cost: jax.Array
    dev_accuracy: jax.Array


def config_record(config: TrainConfig) -> dict[str, Any]:
    """What a config was, as JSON-safe data: plain fields as they are (NumPy scalars as
    Python numbers, ``eval_every`` resolved), functions and other objects by their type
    (``"<function>"``), which is all that can be compared of them."""

    def plain(value):
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if type(value) in (tuple, list):  # not a NamedTuple such as a Model
            items = [plain(v) for v in value]
            if not any(isinstance(v, str) and v.startswith("<") for v in items):
                return tuple(items)
        return f"<{type(value).__name__}>"

    record = {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    record["eval_every"] = config.every
    return without_unset_new_fields(record)


def without_unset_new_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A config record without the fields added since records were first written, where
    they hold their default: an Optuna study or a checkpoint written before then still
    matches its config."""
    return {k: v for k, v in record.items() if not (k == "input_dtype" and v is None)}


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

    def __repr__(self) -> str:
        # A summary: printing a result should not dump every parameter array.
        def tree(params) -> str:
            leaves = jax.tree.leaves(params)
            return f"<{len(leaves)} arrays, {sum(int(np.size(a)) for a in leaves):,} values>"

        def value(a) -> str:
            return repr(np.asarray(a).item()) if np.size(a) == 1 else _array_summary(a)

        return (
            f"TrainResult(params={tree(self.params)}, best_params={tree(self.best_params)}, "
            f"history=<{' x '.join(map(str, np.shape(self.history.step)))} evaluations>, "
            f"stop_step={value(self.stop_step)}, diverged={value(self.diverged)}, "
            f"best_step={value(self.best_step)})"
        )
