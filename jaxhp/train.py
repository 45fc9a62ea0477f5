"""The update step and ``fit``: a whole training run as one compiled loop, for any Model.

``fit`` is pure and traceable, so a sweep is literally ``vmap(fit)`` over ``(key, hparams)``
with the data shared (``in_axes=None``). It reads as one flow of small pure pieces::

    fit: _start (prepare, init) → _advance: while active (one history row per evaluation):
           train_chunk   scan of eval_every update steps (batch, augment, step key, update)
           evaluate      costs and accuracies, dropout off
           _bookkeeping  divergence rollback, best params, early stopping
         → _finish (the TrainResult)

Successive halving (:mod:`jaxhp.halving`) runs the same pieces, ``_advance`` in several
calls up to each rung.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxhp import _checks, _warn
from jaxhp._conv import for_training
from jaxhp.losses import (
    cross_entropy,
    cross_entropy_rows,
    labels_of,
    predictions,
    targets,
    weighted_mean,
)
from jaxhp.models import Model
from jaxhp.nn import step_mask_words
from jaxhp.records import (
    OPTIMIZER_HPARAMS,
    Data,
    History,
    HParams,
    TrainConfig,
    TrainResult,
    read_names,
)

Params = Any


def _own(hp: HParams, optimizer: str, name: str):
    """A built-in optimizer's own hyperparameter: the member's value, else the default."""
    return getattr(hp, name, OPTIMIZER_HPARAMS[optimizer][name])


_BUILTIN_OPTIMIZERS: dict[str, Callable[[HParams], optax.GradientTransformation]] = {
    "sgd": lambda hp: optax.sgd(hp.learning_rate),
    "momentum": lambda hp: optax.sgd(hp.learning_rate, momentum=_own(hp, "momentum", "momentum")),
    "adam": lambda hp: optax.adam(
        hp.learning_rate, b1=_own(hp, "adam", "b1"), b2=_own(hp, "adam", "b2")
    ),
    "rmsprop": lambda hp: optax.rmsprop(hp.learning_rate, decay=_own(hp, "rmsprop", "decay")),
}


class TrainState(NamedTuple):
    """Parameters and optimiser state."""

    params: Params
    opt_state: Any


# ---- the optimiser ------------------------------------------------------------------------
class _UsedAsNumber(TypeError):
    """A factory used its argument as a number: it is a ``lambda lr: ...`` factory."""

    def __str__(self) -> str:  # seen only if an optimizer kept the stand-in: say so
        return (
            "the optimizer factory used its argument as a number only when the optimizer "
            "ran on some params, and was taken for a factory that reads no hyperparameter; "
            "write it as lambda hp: ... with hp.learning_rate"
        )


def _used_as_number(*args, **kwargs):
    raise _UsedAsNumber


class _ReadLog:
    """Stands in for HParams and records which names a factory reads (an ``hp`` factory
    reads some); using it as a number raises :class:`_UsedAsNumber` (a ``lambda lr: ...``
    factory does that, when it builds its optimizer or when the optimizer runs)."""

    def __init__(self, hparams: HParams):
        self._hparams = hparams
        self.reads: list[str] = []
        self.missing: list[str] = []  # names looked up that it lacks (hasattr(x, "dtype"))

    def __getattr__(self, name):
        try:
            value = getattr(self._hparams, name)
        except AttributeError:
            self.missing.append(name)
            raise
        if not name.startswith("_"):
            self.reads.append(name)
        return value

    def __getitem__(self, index):
        try:
            value = self._hparams[index]
        except (KeyError, IndexError):
            self.missing.append(index)
            raise
        if isinstance(index, (str, int, np.integer)):
            self.reads.append(index if isinstance(index, str) else self._hparams._fields[index])
        return value

    def _asdict(self) -> dict:  # a factory that takes them all may read any
        for name in self._hparams._fields:
            getattr(self, name)
        return self._hparams._asdict()

    # fmt: off
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _used_as_number
    __rtruediv__ = __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = _used_as_number
    __lt__ = __le__ = __gt__ = __ge__ = __float__ = __int__ = __index__ = _used_as_number
    __array__ = __jax_array__ = __bool__ = _used_as_number
    # fmt: on


def _check_factory_signature(factory: Callable):
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: just try them
        return
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    required = [p.name for p in positional if p.default is p.empty and p.kind != p.VAR_POSITIONAL]
    if not positional or len(required) > 1:
        takes = (
            f"{len(required)} arguments ({', '.join(required)})" if positional else "no argument"
        )
        raise TypeError(
            f"optimizer factory {factory!r} takes {takes}; it is given one, the member's "
            "hyperparameters: write it as "
            "lambda hp: optax.sgd(hp.learning_rate, momentum=hp.momentum) "
            "(or lambda lr: optax.sgd(lr))"
        )


def _checked(result: Any, factory: Callable) -> optax.GradientTransformation:
    if not isinstance(result, optax.GradientTransformation):
        raise TypeError(
            f"optimizer factory {factory!r} must return an optax.GradientTransformation, got "
            f"{type(result).__name__} {result!r}"
        )
    return result


@functools.lru_cache(maxsize=16)
def _param_shapes(config: TrainConfig):
    """The shapes of the params ``config``'s model makes (traced once per config)."""
    return jax.eval_shape(config.resolved_model.init, jax.random.key(0))


def _runs_without_its_argument(optimizer: optax.GradientTransformation, params) -> bool:
    """Whether an optimizer built from a :class:`_ReadLog` initialises and updates (traced,
    on ``params``' shapes: a masked transformation may touch only some leaves) without
    using it as a number."""
    try:
        jax.eval_shape(lambda p: optimizer.update(p, optimizer.init(p), p), params)
    except Exception:  # noqa: BLE001 - _UsedAsNumber; or it needs other params: cannot tell
        return False
    return True


def _call_factory(factory: Callable, hparams: HParams, config) -> optax.GradientTransformation:
    """``factory(hparams)`` when the factory reads hyperparameters of its argument, or
    ignores it; ``factory(hparams.learning_rate)`` when it uses its argument as a number
    (a ``lambda lr: ...`` factory)."""
    _check_factory_signature(factory)
    probe = _ReadLog(hparams)
    try:
        result = factory(probe)
        failure = None
    except Exception as err:  # noqa: BLE001 - an lr-factory may fail on an HParams
        result, failure = None, err
    if failure is not None and probe.missing:
        raise failure  # hp.momentun: HParams's own message, with "did you mean"
    if probe.reads:
        if failure is not None:
            raise failure
        return _checked(result, factory)
    if failure is None and _runs_without_its_argument(
        _checked(result, factory), _param_shapes(config)
    ):  # it reads no hyperparameter, or reads them only as it runs (a schedule of hp)
        return _checked(factory(hparams), factory)
    return _checked(factory(hparams.learning_rate), factory)


def make_optimizer(
    config: TrainConfig, hparams: HParams | None = None
) -> optax.GradientTransformation:
    """The config's optimiser for one member's ``hparams`` (traced values inside ``fit``:
    changing them never recompiles).

    Raises:
      TypeError: a factory that takes no argument or returns no GradientTransformation.
      AttributeError: a factory that reads a name ``hparams`` does not have.
    """
    hparams = HParams() if hparams is None else HParams.coerce(hparams)
    if callable(config.optimizer):
        return _call_factory(config.optimizer, hparams, config)
    return _BUILTIN_OPTIMIZERS[config.optimizer](hparams)


def init_state(params: Params, config: TrainConfig, hparams: HParams | None = None) -> TrainState:
    """A :class:`TrainState` for ``params`` with fresh optimiser state (for a factory that
    reads extra names, pass the ``hparams`` it reads)."""
    return TrainState(params=params, opt_state=make_optimizer(config, hparams).init(params))


# ---- the loss of a model ------------------------------------------------------------------
def _l2_choices(params: Params, l2) -> list[tuple[str, Any, bool]]:
    """(name, leaf, penalised) for every leaf of params."""
    rows = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = jax.tree_util.keystr(path)
        is_float = jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
        if l2 is None:  # Equinox keeps a conv bias as (C, 1, 1): a bias by its name
            chosen = is_float and jnp.ndim(leaf) >= 2 and not _named_bias(path)
        elif isinstance(l2, str):
            chosen = is_float and re.search(l2, name) is not None
        else:
            chosen = is_float and bool(l2(name, leaf))
        rows.append((name, leaf, chosen))
    return rows


# A bias by its own name: ``bias``, ``conv_bias``, or the course's ``b``, ``b1``, ``b2``
# (often kept as (n, 1) columns, so the shape cannot tell). A capital ``B`` stays a weight.
_BIAS_NAME = re.compile(r"b\d*|.*[bB]ias")


def _named_bias(path) -> bool:
    if path and getattr(path[-1], "name", None) == "value":  # NNX: ['b1'].value
        path = path[:-1]
    last = path[-1] if path else None
    name = getattr(last, "key", getattr(last, "name", None))  # a dict key or an attribute
    return isinstance(name, str) and _BIAS_NAME.fullmatch(name) is not None


def l2_leaves(config: TrainConfig, params: Params | None = None) -> list[str]:
    """Names (``jax.tree_util.keystr`` paths) of the leaves the L2 term covers.

    Args:
      config: its ``l2`` field chooses (default: float leaves with ndim >= 2, not named
        like a bias: ``bias``, ``*bias``, ``b``, ``b1``, ...).
      params: the params to look at; None uses the shapes of ``config``'s model's init.
    """
    if params is None:
        params = jax.eval_shape(config.resolved_model.init, jax.random.key(0))
    return [name for name, _, chosen in _l2_choices(params, config.l2) if chosen]


def l2_term(params: Params, lambd: Any, m: Any, l2=None) -> jax.Array:
    """``lambd / (2 m) * sum ||leaf||_F^2`` over the leaves ``l2`` chooses (see
    :class:`TrainConfig`; default: float leaves with ndim >= 2, not named like a bias)."""
    chosen = [leaf for _, leaf, on in _l2_choices(params, l2) if on]
    squares = sum((jnp.sum(leaf**2) for leaf in chosen), jnp.zeros(()))
    return lambd / (2 * m) * squares


def model_loss(
    config: TrainConfig,
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    hparams: HParams | None = None,
    key: jax.Array | None = None,
    m: Any = None,
    weights: jax.Array | None = None,
) -> jax.Array:
    """``J = CE(apply(params, x), y) + lambd / (2 m) * sum ||leaf||^2`` for the config's model.

    The cross-entropy is sigmoid/BCE for one logit and softmax for k; the L2 sum runs over
    the leaves ``config.l2`` chooses (:func:`l2_leaves`). This is what ``fit`` minimises.

    Args:
      config: gives the model and the L2 leaves.
      params: the model's params.
      x: (m, ...) inputs. y: (m,), (m, 1) or (m, k) labels as for :func:`jaxhp.fit`.
      hparams: the member's :class:`HParams` (lambd is read from it). It and the
        arguments after it are keyword-only: ``model_loss(config, p, x, y, hparams=hp)``.
      key: dropout key (None: dropout off).
      m: the L2 term's m; None uses the rows of x (sum(weights) with weights).
      weights: optional (m,) per-example weights.

    Returns:
      Scalar cost.
    """
    hparams = HParams() if hparams is None else HParams.coerce(hparams)
    if _checks.is_concrete(hparams):  # as fit and the step check them
        hparams.validate(n_hidden=config.n_hidden)
    _checks.check_m(m)
    if weights is not None:
        _checks.check_weights(weights, jnp.shape(x)[0])
    with _params_fit(params, x):
        logits = config.resolved_model.apply(params, x, key=key, hparams=hparams)
    _check_label_shape(jnp.shape(y), logits.shape[0], logits.shape[-1], "y")
    t = targets(jnp.asarray(y), logits.shape[-1], logits.dtype)
    if m is None:
        m = x.shape[0] if weights is None else jnp.sum(weights)
    return cross_entropy(logits, t, weights) + l2_term(params, hparams.lambd, m, config.l2)


def model_predict(
    config: TrainConfig, params: Params, x: jax.Array, *, hparams: HParams | None = None
) -> jax.Array:
    """Class predictions (m,) int32 of the config's model, dropout off: ``z > 0`` for one
    output, argmax for k. x reaches the model as in training (``config.x_dtype``: integer
    ids stay integers with ``input_dtype``).

    Args:
      config: gives the model.
      params: its params (e.g. a refit's ``best_params``).
      x: (m, ...) inputs.
      hparams: the member's :class:`HParams`, for a model that reads them when evaluating
        (keyword-only; default ``HParams()``).
    """
    hparams = HParams() if hparams is None else HParams.coerce(hparams)
    _check_integer_inputs(x, config, "x")
    x = jnp.asarray(x, config.x_dtype)
    with _params_fit(params, x):
        logits = config.resolved_model.apply(params, x, key=None, hparams=hparams)
    return predictions(logits)


def _check_label_shape(y_shape, m: int, n_out: int, name: str):
    """Labels must fit an output layer of n_out units (shapes only: works on tracers)."""
    if len(y_shape) not in (1, 2) or y_shape[0] != m:
        forms = f"({m},) or ({m}, 1)" if n_out == 1 else f"({m},), ({m}, 1) or ({m}, {n_out})"
        rows = f" ({y_shape[0]} rows for {m} examples)" if len(y_shape) in (1, 2) else ""
        raise ValueError(
            f"labels {name} must have shape {forms} for {m} examples and {n_out} "
            f"output(s), got {tuple(y_shape)}{rows}"
        )
    if len(y_shape) == 2 and y_shape[1] not in (1, n_out):
        allowed = "(m,) or (m, 1)" if n_out == 1 else f"(m,) class ids or (m, {n_out}) one-hot"
        raise ValueError(
            f"labels {name} have shape {tuple(y_shape)}, which does not fit {n_out} "
            f"output(s): use {allowed}"
        )


def _update(run_model: Model, config: TrainConfig, m, state, x, t, weights, hparams, key):
    """One optimiser step on the batch (x, t); m is the training-set size for the L2 term."""
    optimizer = make_optimizer(config, hparams)

    def cost(params):
        logits = run_model.apply(params, x, key=key, hparams=hparams)
        return cross_entropy(logits, t, weights) + l2_term(params, hparams.lambd, m, config.l2)

    # fit never reads the value, so XLA drops J's softplus/logsumexp there.
    value, grads = jax.value_and_grad(cost)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": value, "grad_norm": optax.tree.norm(grads)}
    return TrainState(params, opt_state), metrics


def _check_key(key: Any, name: str = "key"):
    if key is None:
        return
    dtype = getattr(key, "dtype", None)
    if dtype is None or not (
        jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) or dtype == jnp.uint32
    ):
        raise TypeError(
            f"{name} must be a PRNG key such as jax.random.key(0) (or None for no dropout), "
            f"got {type(key).__name__} {key!r}"
        )


def make_update_step(config: TrainConfig, *, m: int | None = None) -> Callable:
    """A jit-compiled ``step(state, x, y, key, hparams) -> (state, metrics)``.

    The step computes ``J`` (:func:`model_loss` with ``hparams``' lambd, the model's dropout
    keyed by ``key``), its gradient, and one optax update from the config's optimiser built
    with ``hparams``. All hparams are traced: changing them does not recompile. Labels are
    converted exactly as in :func:`fit`: (m,) or (m, 1) 0/1 for one output, (m,) class ids
    or (m, k) one-hot for k outputs.

    Args:
      config: static settings (model, optimiser, l2 leaves, ...).
      m: training-set size for the L2 term; ``None`` uses the batch's row count.

    Returns:
      The step: checks its inputs, then runs the jitted update (its ``lower``, ``trace``,
      ``eval_shape`` and ``clear_cache`` are the jitted function's, without the checks).
      ``metrics`` holds ``loss`` and ``grad_norm``. Build its first ``state`` with
      :func:`init_state`. ``key`` may be None (no dropout). A name in ``hparams`` that
      nothing reads warns at the first call, as in :func:`fit`.

    Raises (before the step runs, as :func:`fit` would):
      ValueError: labels whose shape does not fit the output layer, or (for an MLP) whose
        values do not; hyperparameters out of range; keep_prob < 1 with key None; params
        that do not fit x; an empty batch; a batch of keys; ``m`` <= 0. Hyperparameters
        are checked on every call where they are host values (Python or NumPy), labels'
        values on the first call.
      TypeError: a config that is not a TrainConfig, a state that is not a TrainState, x
        or y not an array, a key that is not a PRNG key.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(
            f"make_update_step takes a jaxhp.TrainConfig, got {type(config).__name__} "
            f"{config!r:.60}; e.g. TrainConfig(layer_sizes=(2, 16, 1))"
        )
    _checks.check_m(m)
    model = _training_model(config)

    @jax.jit
    def jitted(state: TrainState, x, y, key, hparams: HParams):
        hparams = HParams.coerce(hparams)
        with _params_fit(state.params, x):
            logits = jax.eval_shape(
                lambda p: model.apply(p, x, key=None, hparams=hparams), state.params
            )
        _check_label_shape(y.shape, x.shape[0], logits.shape[-1], "y")
        t = targets(y, logits.shape[-1], logits.dtype)
        batch_m = x.shape[0] if m is None else m
        return _update(model, config, batch_m, state, x, t, None, hparams, key)

    first_call = True  # checks device values too (one transfer, once)

    def step(state: TrainState, x, y, key, hparams: HParams):
        """One update: ``(state, metrics)`` (see :func:`make_update_step`)."""
        nonlocal first_call
        hparams = _check_step_inputs(config, state, x, y, key, hparams, first=first_call)
        if not first_call:
            return jitted(state, x, y, key, hparams)
        with read_names() as read:  # the first call traces the model and the optimizer
            out = jitted(state, x, y, key, hparams)
        if read:  # traced here (not found in a cache): names nothing reads are misspelt
            _check_names_read(hparams, read)
        first_call = not _checks.is_concrete((y, hparams))  # traced: check them later
        return out

    # As a jitted function: lower, trace, eval_shape, clear_cache (no input checks there)
    for name in ("lower", "trace", "eval_shape", "clear_cache", "_cache_size"):
        setattr(step, name, getattr(jitted, name))
    return step


def _check_step_inputs(config: TrainConfig, state, x, y, key, hparams, *, first: bool) -> HParams:
    """What :func:`fit` checks before training, for one update step: types and the key on
    every call; the hyperparameters' ranges where they are host values (on the ``first``
    call also on the device: a step in a loop must not wait on it); the labels' values on
    the ``first`` call (a loop's batches come from one dataset)."""
    _check_dtype_enabled(config.dtype)  # x64 may be switched on around some calls only
    if not (hasattr(state, "params") and hasattr(state, "opt_state")):
        raise TypeError(
            f"state must be a TrainState (params, opt_state) from jaxhp.init_state(params, "
            f"config), got {type(state).__name__}"
        )
    for name, value in (("x", x), ("y", y)):
        if not (hasattr(value, "shape") and hasattr(value, "dtype")):
            raise TypeError(f"{name} must be an array (numpy or jax), got {type(value).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must hold at least one example (row), got shape {tuple(x.shape)}")
    _check_key(key)
    if key is not None and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape:
        raise ValueError(
            f"key must be one PRNG key, got a batch of shape {tuple(key.shape)} (a step "
            "draws one dropout mask per call: pass keys[i], or vmap the step over them)"
        )
    hparams = HParams.coerce(hparams)
    leaves = jax.tree.leaves(hparams)
    if all(isinstance(v, (int, float)) for v in leaves):  # a loop's usual case: cached
        lists = {k: tuple(v) for k, v in hparams._asdict().items() if isinstance(v, list)}
        _check_step_hparams(config.n_hidden, hparams._replace(**lists), key is None)  # hashable
    elif (first or not any(isinstance(v, jax.Array) for v in leaves)) and _checks.is_concrete(
        hparams
    ):
        _check_step_hparams.__wrapped__(config.n_hidden, hparams, key is None)
    if first and _checks.is_concrete(y) and config.layer_sizes is not None:
        _check_rows(x, y, "x")
        _checks.check_labels(np.asarray(y), config.layer_sizes[-1], name="x")
    return hparams


@functools.lru_cache(maxsize=256)
def _check_step_hparams(n_hidden: int, hparams: HParams, no_key: bool) -> None:
    hparams.validate(n_hidden=n_hidden)
    if no_key and any(np.any(np.asarray(v) < 1) for v in jax.tree.leaves(hparams.keep_prob)):
        raise ValueError(
            f"keep_prob={hparams.keep_prob!r} drops units, which needs a PRNG key: pass "
            "key=jax.random.key(...) (key=None trains without dropout, keep_prob=1)"
        )


@contextlib.contextmanager
def _params_fit(params, x):
    """Name params that do not fit x (made for other layer sizes, or x with other
    features) instead of a shape error from deep inside JAX."""
    try:
        yield
    except TypeError as err:
        if "dot_general requires contracting dimensions" not in str(err):
            raise
        shapes = [getattr(leaf, "shape", None) for leaf in jax.tree.leaves(params)]
        raise ValueError(
            f"the params do not fit x {np.shape(x)}: applying the model fails with "
            f'"{str(err).splitlines()[0]}" (param shapes {shapes}); were they made for '
            "other layer sizes, or does x have other features?"
        ) from None


# ---- inputs -------------------------------------------------------------------------------
def _as_array(value: Any, name: str):
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(f"{name} must be an array (numpy or jax), got {type(value).__name__}")
    return value


def _as_data(data: Any) -> Data:
    if not isinstance(data, Data):
        if not isinstance(data, (tuple, list)):
            raise TypeError(
                f"data must be jaxhp.Data(train=(x, y), dev=(x, y)), got {type(data).__name__}"
            )
        data = Data(*data)
    if data.train is None:
        raise ValueError("data.train is required: Data(train=(x, y), dev=(x, y))")

    def arrays(pair, name, sizes):
        if pair is None:
            return None
        if not isinstance(pair, (tuple, list)) or len(pair) not in sizes:
            raise ValueError(
                f"{name} must be a pair (x, y), got {_length(pair)}; only data.train may add "
                "per-example weights w (the dev metrics are plain means)"
            )
        return tuple(_as_array(a, f"{name}[{i}]") for i, a in enumerate(pair))

    return Data(
        arrays(data.train, "data.train", (2, 3)), arrays(data.dev, "data.dev", (2,)), data.test
    )


def _length(pair: Any) -> str:
    if isinstance(pair, (tuple, list)):
        return f"{len(pair)} arrays"
    return type(pair).__name__


def _check_rows(x, y, name: str):
    """One label per row of x: checked before the model sees x, so that a transposed x
    (the course's (n_x, m) layout) is named as such."""
    if x.ndim >= 1 and np.ndim(y) >= 1 and x.shape[0] != np.shape(y)[0]:
        transposed = x.ndim == 2 and x.shape[1] == np.shape(y)[0]
        hint = "; x looks transposed: pass x.T, one example per row" if transposed else ""
        if x.ndim == 2 and np.shape(y) == (1, x.shape[1]):  # the course's layout, both
            hint = "; x and y look transposed (the course's layout): pass x.T and y.reshape(-1)"
        elif np.shape(y) == (1, x.shape[0]):
            hint = "; the labels look like one row (1, m): pass y.reshape(-1)"
        raise ValueError(f"{name} has {x.shape[0]} rows but its labels have {np.shape(y)[0]}{hint}")


def _check_model_xy(x, y, n_out: int, name: str):
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {x.shape}")
    _check_label_shape(y.shape, x.shape[0], n_out, f"for {name}")
    if _checks.is_concrete((x, y)):
        _checks.check_finite_rows(x, name)
        _check_logit_count(np.asarray(y), n_out, name)
        _checks.check_labels(np.asarray(y), n_out, name=name)


def _class_ids(y: np.ndarray) -> np.ndarray | None:
    """Labels as flat whole class ids from 0 (the form both checks read), or None."""
    flat = y.reshape(-1) if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1) else None
    if flat is None or flat.size == 0 or not np.issubdtype(flat.dtype, np.number):
        return None  # the shape and dtype checks that follow name the problem
    if not np.all(np.isfinite(flat)) or flat.min() != 0 or not np.all(flat == np.round(flat)):
        return None  # ids that do not start at 0 (1/2 for binary) read as wrong labels
    return flat


def _check_logit_count(y: np.ndarray, n_out: int, name: str, mlp: bool = False):
    """Class ids beyond the model's outputs: the model is too narrow, most likely, not the
    labels wrong."""
    ids = _class_ids(y)
    if ids is not None and ids.max() >= max(n_out, 2):
        classes = int(ids.max()) + 1
        model = "layer_sizes ends in" if mlp else "model.apply returns"
        fix = f"end layer_sizes with {classes}" if mlp else f"give the model {classes} outputs"
        raise ValueError(
            f"{model} {n_out} output(s) per example, but the labels of {name} have class ids "
            f"up to {classes - 1} ({classes} classes): {fix}, or check the labels"
        )


def _warn_unused_logits(y: np.ndarray, n_out: int, mlp: bool = False):
    """Train labels that never reach the last outputs: those logits are never a target,
    most likely a model too wide for the data."""
    ids = _class_ids(y)
    if ids is None or n_out < 2 or int(ids.max()) + 1 >= n_out:
        return
    classes = int(ids.max()) + 1
    model = "layer_sizes ends in" if mlp else "model.apply returns"
    _warn.warn(
        f"{model} {n_out} outputs per example, but the train labels have class ids only up "
        f"to {classes - 1} ({classes} classes): outputs {classes}..{n_out - 1} are never a "
        "target and only take probability away; give the model as many outputs as there "
        "are classes"
    )


def _like(err: Exception, message: str) -> Exception:
    """A plain TypeError or ValueError, as ``err`` is one, saying ``message`` (JAX's own
    error classes take other arguments than a message)."""
    return ValueError(message) if isinstance(err, ValueError) else TypeError(message)


def _output_width(config: TrainConfig, hparams: HParams, x) -> int:
    """Shape-check the model on x (init and apply, traced abstractly); return n_out."""
    model = config.resolved_model
    try:
        params = jax.eval_shape(model.init, jax.random.key(0))
    except (TypeError, ValueError) as err:  # a wrong signature, NumPy on traced arrays
        raise _like(
            err,
            "the model's init (Model(init, apply): init comes first) fails when called as "
            "init(key) with one PRNG key (traced, as in jit: it must use jax.numpy, not NumPy, "
            f"on arrays): {str(err).splitlines()[0]}",
        ) from err
    leaves = jax.tree.leaves_with_path(params)
    if not any(jnp.issubdtype(leaf.dtype, jnp.floating) for _, leaf in leaves):
        raise ValueError(
            f"model.init returned no float leaves to train (got {jax.tree.structure(params)}); "
            "init(key) must return a pytree of float arrays"
        )
    for path, leaf in leaves:
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise ValueError(
                f"model.init returned the {leaf.dtype} leaf params{jax.tree_util.keystr(path)}: "
                "every leaf is trained, so each must be a float array (keep integer settings "
                "out of params, e.g. in a closure)"
            )
    spec = jax.ShapeDtypeStruct(x.shape, config.x_dtype)
    try:
        logits = jax.eval_shape(
            lambda p, x: model.apply(p, x, key=jax.random.key(0), hparams=hparams), params, spec
        )
    except (TypeError, ValueError) as err:  # shapes that do not fit the model's layers
        if "hyperparameter" in str(err):  # HParams' own message already says it all
            raise
        raise _like(
            err,
            f"the model's apply fails on train x of shape {tuple(x.shape)} (one example per "
            f"row, then the example's shape; {_x_cast(config)}): {str(err).splitlines()[0]}",
        ) from err
    try:  # as jaxhp evaluates: dropout off
        jax.eval_shape(lambda p, x: model.apply(p, x, key=None, hparams=hparams), params, spec)
    except (TypeError, ValueError) as err:
        raise _like(
            err,
            "the model's apply fails with key=None, as jaxhp evaluates it (dropout off: "
            "jaxhp.dropout returns its input for key None, and a dropout of the model's own "
            f"must too): {str(err).splitlines()[0]}",
        ) from err
    if not isinstance(logits, jax.ShapeDtypeStruct):
        raise ValueError(
            f"model.apply must return one array of logits (m, n_out), got "
            f"{jax.tree.structure(logits)}; return any extra outputs some other way"
        )
    if len(logits.shape) != 2 or logits.shape[0] != x.shape[0]:
        one = tuple(logits.shape) == (x.shape[0],)
        raise ValueError(
            f"model.apply must return logits of shape (m, n_out), one row per example: "
            f"({x.shape[0]}, n_out) for x of shape {tuple(x.shape)}, got "
            f"{tuple(logits.shape)}"
            + ("; for one logit per example return (m, 1): logits[:, None]" if one else "")
        )
    chosen = l2_leaves(config, params)
    if not chosen:
        names = [name for name, _, _ in _l2_choices(params, None)] or ["(none)"]
        _warn.warn(
            f"TrainConfig(l2={config.l2!r}) matches no parameter leaf, so lambd has no "
            f"effect; the leaves are {', '.join(names[:8])}"
        )
    return logits.shape[1]


def _x_cast(config: TrainConfig) -> str:
    """How x reaches the model, for messages about a model that fails on it."""
    if config.input_dtype is not None:
        return f"given as TrainConfig.input_dtype {config.input_dtype}"
    return (
        f"cast to the config's dtype {config.dtype}, so integer ids arrive as floats: "
        "TrainConfig(input_dtype='int32') keeps them integers"
    )


def _check_integer_inputs(x, config: TrainConfig, name: str) -> None:
    """With an integer ``input_dtype``, x must hold integers that fit it (a cast would
    truncate 2.7 to 2 or wrap 300 to 44 without a word). Integer x cast to a float dtype
    that rounds some of them (float32 above 2**24) is warned about: likely ids."""
    dtype = config.x_dtype
    if not _checks.is_concrete(x):
        return
    values = np.asarray(x)
    if jnp.issubdtype(dtype, jnp.floating) and np.issubdtype(values.dtype, np.integer):
        exact = 2 ** (jnp.finfo(dtype).nmant + 1)  # every integer up to this is exact
        kind = np.iinfo(values.dtype)
        if not values.size or (kind.max <= exact and -kind.min <= exact):  # uint8 images
            return
        largest = max(abs(int(values.max())), abs(int(values.min())))  # Python ints: exact
        if largest > exact:
            ints = "int32" if largest < 2**31 else "int64"
            _warn.warn(
                f"{name} holds integers up to {largest}, but {dtype.name} rounds integers "
                f"above {exact}: if they are ids, TrainConfig(input_dtype={ints!r}) passes "
                "them to the model unrounded"
            )
        return
    if not jnp.issubdtype(dtype, jnp.integer):
        return
    if not np.issubdtype(values.dtype, np.integer):
        whole = np.isfinite(values) & (values == np.round(values))
        if not whole.all():
            raise ValueError(
                f"{name} holds {values[~whole].flat[0].item()!r}, not an integer, but "
                f"TrainConfig(input_dtype={config.input_dtype!r}) gives the model integers"
            )
    info = jnp.iinfo(dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise ValueError(
            f"{name} holds values from {values.min()} to {values.max()}, outside "
            f"input_dtype {config.input_dtype}'s range [{info.min}, {info.max}]"
        )


def _check_augment(config: TrainConfig, x):
    if config.augment is None:
        return
    batch = jax.ShapeDtypeStruct((config.batch_size or x.shape[0], *x.shape[1:]), config.x_dtype)
    out = jax.eval_shape(config.augment, jax.random.key(0), batch)
    if getattr(out, "shape", None) != batch.shape or out.dtype != batch.dtype:
        raise ValueError(
            f"augment must return a batch of the same shape and dtype {batch.shape} "
            f"{batch.dtype}, got {getattr(out, 'shape', out)} {getattr(out, 'dtype', '')}"
        )


def _check_dtype_enabled(dtype, field: str = "dtype") -> None:
    """A float64 config where JAX computes in float32 (x64 off) would train in float32
    behind JAX's truncation warnings (and int64 ids would wrap at 2**31)."""
    if dtype is not None and jax.dtypes.canonicalize_dtype(dtype) != jnp.dtype(dtype):
        narrow = jax.dtypes.canonicalize_dtype(dtype).name
        raise ValueError(
            f"TrainConfig({field}={jnp.dtype(dtype).name!r}) needs JAX's 64-bit mode, which is "
            f"off, so it would run in {narrow}: run under `with jax.enable_x64(True):` (or "
            f"set JAX_ENABLE_X64=1), or use {field}={narrow!r}"
        )


def check_inputs(hparams: HParams, data: Data, config: TrainConfig) -> Data:
    """Validate concrete inputs before anything is compiled; returns ``data`` as a Data.

    Checks the hyperparameters, the data's shapes and values, that the model's logits fit
    the labels, the optimiser factory and ``augment``. Array values are only checked when
    concrete (not inside a caller's jit/vmap).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a jaxhp.TrainConfig, got {type(config).__name__}")
    _check_dtype_enabled(config.dtype)
    _check_dtype_enabled(config.input_dtype, "input_dtype")
    hparams = HParams.coerce(hparams).validate(n_hidden=config.n_hidden)
    data = _as_data(data)
    x = data.train[0]
    for name, pair in (("train x", data.train), ("dev x", data.dev)):
        if pair is not None and (pair[0].ndim < 1 or pair[0].shape[0] == 0):
            raise ValueError(f"{name} must have at least one row, got shape {pair[0].shape}")
    if config.layer_sizes is not None:
        sizes = config.layer_sizes
        for name, pair in (("train x", data.train), ("dev x", data.dev)):
            if pair is not None:
                if _checks.is_concrete(pair[1]):
                    _check_logit_count(np.asarray(pair[1]), sizes[-1], name, mlp=True)
                _checks.check_xy(pair[0], pair[1], n_in=sizes[0], n_out=sizes[-1], name=name)
    else:
        for name, pair in (("train x", data.train), ("dev x", data.dev)):
            if pair is not None:
                _check_rows(pair[0], pair[1], name)
        n_out = _output_width(config, hparams, x)
        for name, pair in (("train x", data.train), ("dev x", data.dev)):
            if pair is not None:
                _check_model_xy(pair[0], pair[1], n_out, name)
    if _checks.is_concrete(data.train[1]):
        n_out = config.layer_sizes[-1] if config.layer_sizes is not None else n_out
        _warn_unused_logits(np.asarray(data.train[1]), n_out, mlp=config.layer_sizes is not None)
    if data.dev is not None and data.dev[0].shape[1:] != x.shape[1:]:
        raise ValueError(f"dev x has example shape {data.dev[0].shape[1:]}, train x {x.shape[1:]}")
    for name, pair in (("train x", data.train), ("dev x", data.dev)):
        if pair is not None:
            _check_integer_inputs(pair[0], config, name)
    m = x.shape[0]
    if len(data.train) == 3:
        _checks.check_weights(data.train[2], m)
    if config.batch_size is not None and config.batch_size > m:
        raise ValueError(
            f"batch_size must be <= the number of training examples ({m}), got {config.batch_size}"
        )
    make_optimizer(config, hparams)
    _check_augment(config, x)
    return data


def _as_key(key: Any) -> jax.Array:
    """A typed PRNG key; a Python int is taken as a seed."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    _check_key(key)
    if key is None:
        raise TypeError("key must be a PRNG key such as jax.random.key(0), got None")
    if key.dtype == jnp.uint32:  # a legacy jax.random.PRNGKey
        return jax.random.wrap_key_data(key)
    return key


def _n_out(config: TrainConfig, hparams: HParams, x) -> int:
    if config.layer_sizes is not None:
        return config.layer_sizes[-1]
    model = config.resolved_model
    params = jax.eval_shape(model.init, jax.random.key(0))
    return jax.eval_shape(lambda p: model.apply(p, x, key=None, hparams=hparams), params).shape[-1]


def _prepare(hparams: HParams, data: Data, config: TrainConfig, checked: bool = False):
    """Validate (when concrete, and not ``checked`` already) and cast; returns hparams,
    (x, t), (x_dev, t_dev) or None, and the training weights or None."""
    data = _as_data(data) if checked else check_inputs(hparams, data, config)
    hparams = HParams.coerce(hparams)
    # Python numbers stay concrete under jit: keep_prob=1.0 then skips the masks entirely.
    hparams = jax.tree.map(lambda v: v if isinstance(v, (int, float)) else jnp.asarray(v), hparams)
    dtype = jnp.dtype(config.dtype)
    n_out = _n_out(config, hparams, jnp.asarray(data.train[0], config.x_dtype))
    sets = [
        None
        if pair is None
        else (jnp.asarray(pair[0], config.x_dtype), targets(jnp.asarray(pair[1]), n_out, dtype))
        for pair in (data.train, data.dev)
    ]
    weights = jnp.asarray(data.train[2], dtype) if len(data.train) == 3 else None
    return hparams, sets[0], sets[1], weights


# ---- the pieces of a run ------------------------------------------------------------------
def _shuffle(key: jax.Array, n: int) -> jax.Array:
    """A random permutation of range(n) by one stable sort of n random 32-bit keys (ties,
    ~n²/2**33 expected pairs, keep their order). ``jax.random.permutation`` sorts two or
    more times."""
    return jnp.argsort(jax.random.bits(key, (n,), jnp.uint32), stable=True)


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class _Run(NamedTuple):
    """What every step of one run reads (fixed for the run)."""

    config: TrainConfig
    model: Model
    hparams: HParams
    x: jax.Array
    t: jax.Array
    weights: jax.Array | None
    dev: tuple | None
    m: Any  # the L2 term's training-set size
    shuffle_key: jax.Array
    augment_key: jax.Array
    mask_base: jax.Array  # key data of the training key; each step's key is a hash of it
    key_impl: Any


class _Carry(NamedTuple):
    state: TrainState
    active: jax.Array  # False once stopped early or diverged
    updates: jax.Array  # updates applied so far
    diverged: jax.Array
    best_params: Params
    best_cost: jax.Array
    best_step: jax.Array
    bad_evals: jax.Array  # evaluations since the last improvement


class _Metrics(NamedTuple):
    train_cost: jax.Array
    train_accuracy: jax.Array
    dev_cost: jax.Array
    dev_accuracy: jax.Array


_MAX_SHUFFLE_TABLE = 1 << 24  # row indices (64 MiB of int32) per member and chunk


class _Shuffles(NamedTuple):
    """The permutations of the epochs ``first``, ``first + 1``, ... (one row each)."""

    first: jax.Array
    perms: jax.Array


def _epochs(run: _Run) -> tuple[int, int] | None:
    """(steps per epoch, batch rows) in mini-batch mode; None for full batches."""
    rows = run.x.shape[0]
    batch = run.config.batch_size or rows
    return None if batch == rows else (rows // batch, batch)


def _shuffles(run: _Run, first_step, n_epochs: int) -> _Shuffles:
    """The shuffles of the ``n_epochs`` epochs from the one holding ``first_step``."""
    first = first_step // _epochs(run)[0]
    keys = jax.vmap(lambda e: jax.random.fold_in(run.shuffle_key, e))(first + jnp.arange(n_epochs))
    return _Shuffles(first, jax.vmap(lambda k: _shuffle(k, run.x.shape[0]))(keys))


def _chunk_shuffles(run: _Run, first_step) -> _Shuffles | None:
    """The shuffles of every epoch that a chunk starting at ``first_step`` reaches; None
    for full batches, or when that table would pass ``_MAX_SHUFFLE_TABLE`` entries (each
    step then shuffles its own epoch).

    Made once per chunk rather than at each epoch's first step: under ``vmap`` the step
    is batched, and a per-step ``lax.cond`` on the epoch boundary becomes a select that
    sorts at every step. Epoch ``e``'s permutation is the same either way.
    """
    if _epochs(run) is None:
        return None
    n_epochs = (run.config.every - 1) // _epochs(run)[0] + 2
    if n_epochs * run.x.shape[0] > _MAX_SHUFFLE_TABLE:
        return None
    return _shuffles(run, first_step, n_epochs)


def _batch(run: _Run, shuffles: _Shuffles | None, step):
    """The step's mini-batch (x, t, weights)."""
    if shuffles is None:
        return run.x, run.t, run.weights
    per_epoch, batch = _epochs(run)
    perm = shuffles.perms[step // per_epoch - shuffles.first]
    picked = jax.lax.dynamic_slice_in_dim(perm, step % per_epoch * batch, batch)
    weights = None if run.weights is None else run.weights[picked]
    return run.x[picked], run.t[picked], weights


def _step_key(run: _Run, step) -> jax.Array:
    """The step's dropout key: a hash of the run's key data and the step (no threefry)."""
    return jax.random.wrap_key_data(step_mask_words(run.mask_base, step), impl=run.key_impl)


def _train_step(run: _Run, shuffles: _Shuffles | None, carry: _Carry, step: jax.Array):
    if shuffles is None and _epochs(run) is not None:  # a chunk too long for one table
        shuffles = _shuffles(run, step, 1)
    xb, tb, wb = _batch(run, shuffles, step)
    if run.config.augment is not None:
        xb = run.config.augment(jax.random.fold_in(run.augment_key, step), xb)
    skip = None
    if wb is not None:  # a batch whose weights sum to 0 makes no update
        skip = jnp.sum(wb) <= 0
        wb = jnp.where(skip, jnp.ones_like(wb), wb)
    state, _ = _update(
        run.model, run.config, run.m, carry.state, xb, tb, wb, run.hparams, _step_key(run, step)
    )
    if run.config.n_evals * run.config.every != run.config.steps:  # ragged last chunk
        beyond = step >= run.config.steps
        skip = beyond if skip is None else skip | beyond
    if skip is not None:
        state = _select(skip, carry.state, state)
    return carry._replace(state=state), None


def train_chunk(run: _Run, carry: _Carry, chunk: jax.Array) -> _Carry:
    """``eval_every`` update steps of chunk ``chunk`` (a ``lax.scan``)."""
    every = run.config.every
    steps = chunk * every + jnp.arange(every)
    shuffles = _chunk_shuffles(run, steps[0])
    carry = jax.lax.scan(functools.partial(_train_step, run, shuffles), carry, steps)[0]
    done = jnp.minimum((chunk + 1) * every, run.config.steps)
    return carry._replace(updates=done.astype(carry.updates.dtype))


def evaluate(run: _Run, params: Params) -> _Metrics:
    """Train cost J (with the L2 term) and accuracy, dev cross-entropy and accuracy, dropout
    off. Without dev data the dev fields repeat the train cross-entropy and accuracy.

    The model is applied once, to the train and dev rows together (half the kernels to
    compile), so a row's logits must not depend on the other rows of its batch.
    """
    n = run.x.shape[0]
    x, t = run.x, run.t
    if run.dev is not None:
        x, t = (jnp.concatenate([a, b]) for a, b in zip((x, t), run.dev))
    logits = run.model.apply(params, x, key=None, hparams=run.hparams)
    ce = cross_entropy_rows(logits, t)
    hits = (predictions(logits) == labels_of(t)).astype(jnp.float32)
    train_ce, train_acc = (weighted_mean(v[:n], run.weights) for v in (ce, hits))
    train_cost = train_ce + l2_term(params, run.hparams.lambd, run.m, run.config.l2)
    if run.dev is None:
        return _unless_diverged(_Metrics(train_cost, train_acc, train_ce, train_acc))
    return _unless_diverged(_Metrics(train_cost, train_acc, jnp.mean(ce[n:]), jnp.mean(hits[n:])))


def _unless_diverged(metrics: _Metrics) -> _Metrics:
    """Both accuracies NaN where the evaluation diverged (either cost not finite, as
    :func:`_bookkeeping` reads it): non-finite logits predict class 0, so the accuracy
    such params would read (about chance) describes no model."""
    finite = jnp.isfinite(metrics.train_cost) & jnp.isfinite(metrics.dev_cost)
    return metrics._replace(
        train_accuracy=jnp.where(finite, metrics.train_accuracy, jnp.nan),
        dev_accuracy=jnp.where(finite, metrics.dev_accuracy, jnp.nan),
    )


def _bookkeeping(config: TrainConfig, start: _Carry, carry: _Carry, metrics: _Metrics) -> _Carry:
    """Divergence rollback, best params and early stopping after one evaluation.

    A non-finite train or dev cost (non-finite params make the L2 term so) rolls the run back
    to the chunk's start, whose costs were finite, and stops it; such an evaluation never
    counts as an improvement, so ``best_cost`` always belongs to ``best_params``.
    """
    diverged = ~(jnp.isfinite(metrics.train_cost) & jnp.isfinite(metrics.dev_cost))
    state = _select(diverged, start.state, carry.state)
    updates = jnp.where(diverged, start.updates, carry.updates)
    improved = ~diverged & (metrics.dev_cost < carry.best_cost - config.min_delta)
    bad_evals = jnp.where(improved, 0, carry.bad_evals + 1)
    active = carry.active & ~diverged
    if config.patience is not None:
        active = active & (bad_evals < config.patience)
    return carry._replace(
        state=state,
        updates=updates,
        active=active,
        diverged=diverged,
        best_params=None
        if carry.best_params is None  # not kept (successive halving's sweep)
        else _select(improved, state.params, carry.best_params),
        best_cost=jnp.where(improved, metrics.dev_cost, carry.best_cost),
        best_step=jnp.where(improved, updates, carry.best_step),
        bad_evals=bad_evals,
    )


class _Progress(NamedTuple):
    """A run between evaluations: its carry, the history rows so far and their count.
    Successive halving keeps one per member between rungs."""

    carry: _Carry
    history: History  # (n_evals,) rows; rows from ``done`` on are not written yet
    done: jax.Array  # evaluations run so far


def _begin(run: _Run, carry: _Carry, keep_best: bool = True) -> _Progress:
    """The progress of a run before its first evaluation. Without ``keep_best`` it does not
    track the best params (a halving sweep keeps no params: fewer kernels to compile)."""
    n_evals = run.config.n_evals
    if not keep_best:
        carry = carry._replace(best_params=None)
    shapes = jax.eval_shape(lambda params: evaluate(run, params), carry.state.params)
    empty = History(jnp.zeros(n_evals, jnp.int32), *(jnp.zeros(n_evals, s.dtype) for s in shapes))
    return _Progress(carry, empty, jnp.int32(0))


def _advance(run: _Run, progress: _Progress, until, on_eval=None) -> _Progress:
    """Run chunks ``progress.done``, ... while the run is active, up to evaluation ``until``
    (traced or not: the loop body is the same, so a run advanced in several calls equals
    one advanced in one).

    A while loop rather than a scan of ``cond``s: a stopped run (under vmap: once every run
    has stopped) skips its remaining chunks, and XLA:CPU runs vmapped steps faster than
    under a batched ``cond``.
    """
    config = run.config

    def body(progress):
        carry, chunk = progress.carry, progress.done
        start = carry
        carry = train_chunk(run, carry, chunk)
        metrics = evaluate(run, carry.state.params)
        carry = _bookkeeping(config, start, carry, metrics)
        record = History(jnp.minimum((chunk + 1) * config.every, config.steps), *metrics)
        if on_eval is not None:
            jax.debug.callback(lambda r: on_eval(r._asdict()), record)
        history = jax.tree.map(lambda h, r: h.at[chunk].set(r), progress.history, record)
        return _Progress(carry, history, chunk + 1)

    def running(progress):
        return progress.carry.active & (progress.done < until)

    return jax.lax.while_loop(running, body, progress)


def _finish(config: TrainConfig, progress: _Progress, xp=jnp) -> TrainResult:
    """The result of a run that stopped (or was stopped) after ``progress.done``
    evaluations: history rows after the last one repeat it, at the steps they stand for,
    as a run that stopped early reads. ``xp``: ``numpy`` for a progress on the host (no
    program to compile for it)."""
    n_evals = config.n_evals
    carry = progress.carry
    last_run = xp.minimum(xp.arange(n_evals), progress.done - 1)
    history = jax.tree.map(lambda h: h[last_run], progress.history)
    steps = xp.minimum((xp.arange(n_evals, dtype=xp.int32) + 1) * config.every, config.steps)
    return TrainResult(
        params=carry.best_params if config.restore_best else carry.state.params,
        best_params=carry.best_params,
        history=history._replace(step=steps),
        stop_step=carry.updates,
        diverged=carry.diverged,
        best_step=carry.best_step,
    )


def _training_model(config: TrainConfig) -> Model:
    """The model trained: a ``model=`` computes its convolutions as matmuls on the CPU
    (the same arithmetic, rounded differently; see :mod:`jaxhp._conv`)."""
    if config.model is None:
        return config.resolved_model
    return for_training(config.model)


def _start(
    key: jax.Array, hparams: HParams, data: Data, config: TrainConfig, checked: bool = False
):
    """Validate and cast the inputs, initialise the model: a run and its first carry.
    ``checked``: :func:`check_inputs` has passed already (jaxhp's own programs), so the
    model is not traced once more to check it."""
    key = _as_key(key)
    hparams, (x, t), dev, weights = _prepare(hparams, data, config, checked)
    model = _training_model(config)
    init_key, train_key, shuffle_key, augment_key = jax.random.split(key, 4)
    params = model.init(init_key)
    run = _Run(
        config=config,
        model=model,
        hparams=hparams,
        x=x,
        t=t,
        weights=weights,
        dev=dev,
        m=x.shape[0] if weights is None else jnp.sum(weights),
        shuffle_key=shuffle_key,
        augment_key=augment_key,
        mask_base=jax.random.key_data(train_key),
        key_impl=jax.random.key_impl(train_key),
    )
    carry = _Carry(
        state=init_state(params, config, hparams),
        active=jnp.array(True),
        updates=jnp.array(0, jnp.int32),
        diverged=jnp.array(False),
        best_params=params,
        best_cost=jnp.array(jnp.inf, jnp.dtype(config.dtype)),
        best_step=jnp.array(0, jnp.int32),
        bad_evals=jnp.array(0, jnp.int32),
    )
    return run, carry


def finite_at_start(key: jax.Array, hparams: HParams, data: Data, config: TrainConfig) -> bool:
    """Whether ``fit(key, hparams, data, config)``'s train and dev costs are finite at its
    initial params, before any update. A run that diverged before its first evaluation
    from a non-finite start is the model's or the data's doing, not the learning rate's.
    Evaluated eagerly (one evaluation, no training): ask it after a run diverged.

    Args:
      key, hparams, data, config: as given to :func:`fit`.

    Raises:
      TypeError/ValueError: what :func:`fit` raises for the same inputs.
    """
    return not _nonfinite_at_start(key, hparams, data, config)


def _nonfinite_at_start(key, hparams, data, config, checked: bool = False) -> str:
    """Which costs are not finite at the initial params: "", "train", "dev" or "train and
    dev" (:func:`finite_at_start`); ``checked``: the inputs passed :func:`check_inputs`
    already (a sweep's), so their checks and warnings are not run again."""
    run, carry = _start(key, hparams, data, config, checked=checked)
    metrics = evaluate(run, carry.state.params)
    costs = {"train": metrics.train_cost, "dev": metrics.dev_cost}
    return " and ".join(name for name, cost in costs.items() if not np.isfinite(cost))


def _outputs_at_start(key, hparams, data, config, rows: int = 256) -> np.ndarray:
    """The model's outputs (dropout off) at its initial params on the first ``rows`` train
    examples; the inputs passed :func:`check_inputs` already. Evaluated eagerly."""
    run, carry = _start(key, hparams, data, config, checked=True)
    return np.asarray(
        run.model.apply(carry.state.params, run.x[:rows], key=None, hparams=run.hparams)
    )


def fit(
    key: jax.Array,
    hparams: HParams,
    data: Data,
    config: TrainConfig,
    *,
    on_eval: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Initialise and train a model; pure, jittable and vmappable over ``(key, hparams)``.

    The key is split into init, training, shuffle and augmentation keys. Step ``t`` hands
    the model's ``apply`` the key ``wrap_key_data(step_mask_words(key_data(training_key),
    t))`` (a hash, no threefry call; :func:`jaxhp.dropout` hashes it again, cheaply), and
    epoch ``e`` uses ``fold_in(shuffle_key, e)`` for its shuffle. Hence a result depends
    only on ``(key, hparams, data, config)``, never on how runs are batched.

    The loss is :func:`model_loss`: the cross-entropy of the logits plus
    ``lambd / (2 m) * sum ||leaf||^2`` over the leaves ``config.l2`` chooses (by default the
    float leaves with ndim >= 2 not named like a bias; :func:`l2_leaves` lists them), with m
    the training-set size.

    Early stopping: after each evaluation, the dev cost (train cost without dev data) is
    compared with the best so far; after ``config.patience`` evaluations without an
    improvement larger than ``config.min_delta`` the updates freeze. Divergence is checked at
    each evaluation: when the train or dev cost is non-finite, the run returns to the params
    of the previous evaluation (the initial params for the first), stops and is flagged
    ``diverged``. The history row of that evaluation keeps the non-finite cost.

    Checks: every argument is validated in Python before anything is compiled. Inside your
    own ``jax.jit``/``vmap`` of ``fit`` the hyperparameters and data are tracers whose values
    cannot be checked (``keep_prob=0`` would train silently): validate them first with
    :func:`check_inputs`, or call ``fit`` outside your jit (``run_sweep`` validates every
    member up front).

    Args:
      key: PRNG key (a Python int is taken as a seed).
      hparams: :class:`HParams` (or a dict of name -> value) with scalar leaves (keep_prob
        may be per hidden layer); the model's apply and the optimizer factory read them.
      data: :class:`Data`; ``train`` is required, ``dev`` is used for history and stopping
        (without it, the history's ``dev_*`` repeat the training set's metrics).
        ``train`` may be ``(x, y, w)`` with per-example weights w >= 0: costs and accuracy
        become weighted means and the L2 term's m becomes sum(w). A mini-batch whose
        weights sum to 0 makes no update (the step still counts).
      config: static :class:`TrainConfig` (``layer_sizes=`` or ``model=``).
      on_eval: optional host callback, called with a dict of the metrics after each
        evaluation (via ``jax.debug.callback``; for progress display).

    Returns:
      A :class:`TrainResult`.

    Raises:
      ValueError: for out-of-range hyperparameters, bad data shapes, non-finite inputs,
        labels that do not fit the output layer, or ``batch_size`` larger than the data.
      TypeError: a string hyperparameter, a key that is not a key, a bad optimizer factory.

    Example:
      >>> x, y = jaxhp.datasets.moons(200, noise=0.2, seed=0)
      >>> config = TrainConfig(layer_sizes=(2, 16, 1), steps=500)
      >>> result = fit(jax.random.key(0), HParams(learning_rate=0.5), Data((x, y)), config)
    """
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((key, hparams, data))):
        return _fit(key, hparams, data, config, on_eval)  # inside the caller's jit or vmap
    # Called with values: check them here, then run one compiled program per config, so
    # that new hyperparameter values or data of the same shapes never recompile.
    with read_names() as read:  # check_inputs traces the model's apply and the optimizer
        data = check_inputs(hparams, data, config)
    hparams = HParams.coerce(hparams)
    _check_names_read(hparams, read)
    no_dropout = all(bool(np.all(np.asarray(v) == 1.0)) for v in jax.tree.leaves(hparams.keep_prob))
    with hyperparameters_traced():
        return _fit_compiled(_as_key(key), hparams, data, config, on_eval, no_dropout, checked=True)


@contextlib.contextmanager
def hyperparameters_traced():
    """Name the cause when a program fails to trace because the model's ``apply`` or the
    optimizer factory branches in Python on a hyperparameter (``if hparams.keep_prob <
    1:``): hyperparameters are traced so that one compiled program serves every value."""
    try:
        yield
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError) as err:
        first = str(err).strip().splitlines()[0]
        raise TypeError(
            "the model's apply or the optimizer factory needs a concrete value where it gets a "
            "traced one, e.g. `if hparams.keep_prob < 1:`: hyperparameters are traced (one "
            "compiled program serves every value), so branch with jnp.where or jax.lax.cond "
            f"instead ({type(err).__name__}: {first})"
        ) from err


def _check_names_read(hparams: HParams, read: set[str], label: str = "hparams"):
    """A name beyond the course's three that neither the model nor the optimizer reads is
    ignored by training: most likely misspelt (a warning: one HParams may serve several
    configs)."""
    course = {"lambd", "keep_prob", "learning_rate"}
    unread = [name for name in hparams._fields if name not in course | read]
    if unread:
        known = ", ".join(sorted(read - course)) or "no other name"
        close = difflib.get_close_matches(unread[0], sorted(course | read), n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else f"check its spelling, or use an optimizer or model that reads hparams.{unread[0]}"
        )
        _warn.warn(
            f"{label} has {unread[0]!r}, which neither the model nor the optimizer reads (they "
            f"read lambd, keep_prob, learning_rate and {known}), so training ignores it; "
            f"{hint}"
        )


def _fit(
    key, hparams, data, config, on_eval, no_dropout: bool = False, checked: bool = False
) -> TrainResult:
    if no_dropout:  # a concrete keep_prob of 1 lets the model skip its masks
        hparams = HParams.coerce(hparams)._replace(keep_prob=1.0)
    run, carry = _start(key, hparams, data, config, checked)
    progress = _advance(run, _begin(run, carry), config.n_evals, on_eval)
    return _finish(config, progress)


_fit_compiled = jax.jit(_fit, static_argnames=("config", "on_eval", "no_dropout", "checked"))
