"""Which hyperparameters a model's ``apply`` reads, found by one abstract trace.

A sweep axis that ``apply`` never reads does nothing (a keep_prob axis over a module
without dropout), and a name ``apply`` reads that the sweep does not provide fails deep
inside the trace. :func:`check_hparams_read` finds both before anything compiles: it traces
``init`` and ``apply`` (in training mode, with a key) under ``jax.eval_shape``, which
computes nothing, handing ``apply`` a stand-in for the hparams that records each name read.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import jax

from jaxhp.models._model import Model


class _UnknownName(AttributeError):
    pass


class _Recorder:
    """Stands in for HParams during the trace: attribute reads return the values and are
    recorded; reading the whole record (``_asdict``, ``_fields``) counts as reading all."""

    def __init__(self, values: dict[str, Any], read: set[str]):
        self.__dict__["_jaxhp_values"] = values
        self.__dict__["_jaxhp_read"] = read

    def __getattr__(self, name: str):
        values, read = self.__dict__["_jaxhp_values"], self.__dict__["_jaxhp_read"]
        if name.startswith("__"):
            raise AttributeError(name)
        if name in ("_fields", "_asdict"):
            read.update(values)
            return tuple(values) if name == "_fields" else (lambda: dict(values))
        if name == "_replace":
            return lambda **changes: _Recorder({**values, **changes}, read)
        if name not in values:
            raise _UnknownName(name)
        read.add(name)
        return values[name]


def hparams_read(model: Model, sample_x: Any, hparams: Any) -> frozenset[str]:
    """The names of ``hparams`` that ``model.apply`` reads when training (given a key).

    Args:
      model: a :class:`jaxhp.models.Model`.
      sample_x: inputs of the shape ``apply`` takes, e.g. the first rows of the training
        set (only shapes and dtypes are used).
      hparams: one member's :class:`jaxhp.HParams` (scalar or per-layer values).

    Returns:
      The names read, e.g. ``frozenset({"keep_prob"})``.

    Raises:
      ValueError: ``apply`` reads a name that ``hparams`` does not have.
    """
    values = hparams._asdict()
    read: set[str] = set()

    def trace(values, x):
        params = model.init(jax.random.key(0))
        return model.apply(params, x, key=jax.random.key(1), hparams=_Recorder(values, read))

    try:
        jax.eval_shape(trace, values, sample_x)
    except _UnknownName as err:
        raise ValueError(
            f"the model's apply reads hparams.{err.args[0]}, but the hyperparameters provide "
            f"only {', '.join(values)}; add {err.args[0]}=... to the sweep's axes or to the "
            "base HParams"
        ) from None
    return frozenset(read)


def check_hparams_read(
    model: Model, sample_x: Any, hparams: Any, axes: Iterable[str] = ()
) -> frozenset[str]:
    """Warn for each swept axis that only the model could use but its ``apply`` never reads.

    Args:
      model, sample_x, hparams: as for :func:`hparams_read`.
      axes: swept names that nothing but the model reads (e.g. ``keep_prob``; leave out
        ``lambd``, ``learning_rate`` and the names the optimizer factory reads).

    Returns:
      The names ``apply`` reads.

    Raises:
      ValueError: ``apply`` reads a name that ``hparams`` does not have.

    Warns:
      UserWarning: ``axis 'keep_prob' does nothing: the model's apply never reads
      hparams.keep_prob`` (e.g. a Flax module without dropout).
    """
    read = hparams_read(model, sample_x, hparams)
    for axis in axes:
        if axis not in read:
            warnings.warn(
                f"the sweep's axis {axis!r} does nothing: the model's apply never reads "
                f"hparams.{axis} (a module without dropout ignores keep_prob); drop the axis "
                "or read it in apply",
                UserWarning,
                stacklevel=2,
            )
    return read
