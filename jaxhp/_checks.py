"""Argument validation shared by the public functions.

Every check runs in Python, before anything is traced or compiled, and raises a one-line
``ValueError``/``TypeError`` naming the argument, the value and what is allowed. Checks on
array *values* are skipped when the value is a tracer (inside a caller's ``jit``/``vmap``):
sweeps validate whole batches up front instead (see ``jaxhp.sweep``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when every leaf of ``x`` is a concrete value (not a tracer)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _where(member: int | None) -> str:
    return "" if member is None else f" (member {member} of the sweep)"


def _hyperparameter(name: str, value: Any) -> np.ndarray:
    """A hyperparameter's value as numbers: a string ("0.8", which NumPy would parse) or
    None is refused by name."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    return as_numeric(name, value)


def check_keep_prob(keep_prob: Any, *, n_hidden: int | None = None, member: int | None = None):
    """keep_prob must be finite and in (0, 1]; a vector must have one entry per hidden layer."""
    if not is_concrete(keep_prob):
        return
    kp = _hyperparameter("keep_prob", keep_prob).astype(np.float64)  # "0.8" would parse
    if kp.ndim > 1:
        raise ValueError(
            f"keep_prob must be a scalar or a vector with one value per hidden layer, "
            f"got shape {kp.shape}{_where(member)}"
        )
    if kp.ndim == 1 and n_hidden is not None and kp.shape[0] != n_hidden:
        raise ValueError(
            f"keep_prob has {kp.shape[0]} values but the network has {n_hidden} hidden "
            f"layer(s); pass a scalar or exactly {n_hidden} values{_where(member)}"
        )
    bad = ~((kp > 0) & (kp <= 1))  # also catches NaN
    if np.any(bad):
        value = kp[bad].flat[0].item() if kp.ndim else float(kp)
        raise ValueError(f"keep_prob must be in (0, 1], got {value}{_where(member)}")


def check_lambd(lambd: Any, *, member: int | None = None):
    """lambd must be finite and >= 0."""
    if not is_concrete(lambd):
        return
    lam = _hyperparameter("lambd", lambd).astype(np.float64)
    if lam.ndim != 0:
        raise ValueError(f"lambd must be a scalar, got shape {lam.shape}{_where(member)}")
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"lambd must be a finite number >= 0, got {float(lam)}{_where(member)}")


def check_learning_rate(learning_rate: Any, *, member: int | None = None):
    """learning_rate must be finite and > 0."""
    if not is_concrete(learning_rate):
        return
    lr = _hyperparameter("learning_rate", learning_rate).astype(np.float64)
    if lr.ndim != 0:
        raise ValueError(f"learning_rate must be a scalar, got shape {lr.shape}{_where(member)}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(
            f"learning_rate must be a finite number > 0, got {float(lr)}{_where(member)}"
        )


def check_layer_sizes(layer_sizes: Any) -> tuple[int, ...]:
    """Return layer_sizes as a tuple of positive ints, or raise."""
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Sequence):
        raise TypeError(
            f"layer_sizes must be a sequence of ints like (2, 20, 3, 1), got {layer_sizes!r}"
        )
    sizes = tuple(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"layer_sizes needs at least 2 entries (inputs and outputs), got {sizes!r}"
        )
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"layer_sizes entries must be positive ints, got {n!r} in {sizes!r}")
    return tuple(int(n) for n in sizes)


def check_choice(name: str, value: Any, allowed: Sequence[str]):
    """value must be one of the allowed strings."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def check_positive_int(name: str, value: Any, *, allow_none: bool = False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_int32_seeds(name: str, values: Any):
    """Seeds become int32 inside compiled programs: each must be an int in [0, 2**31)."""
    for value in np.ravel(np.asarray(values)).tolist():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise ValueError(f"{name} must be an int in [0, 2**31), got {value!r}")


def check_number(
    name: str, value: Any, *, low: float | None = None, high: float | None = None
) -> float:
    """A finite real number in [low, high] (either bound optional); strings, bools,
    containers and NaN are refused. Returns it as a float."""
    if isinstance(value, (str, bytes, bool)) or np.ndim(value) != 0:
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a number, got {value!r} ({type(value).__name__})"
        ) from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"{name} must be in {bounds}, got {number}")
    return number


def check_m(m: Any):
    """The L2 term's m (the training-set size, or a sum of weights): a positive number.
    Traced values pass (inside a caller's jit)."""
    if m is None or not is_concrete(m):
        return
    if check_number("m", m) <= 0:
        raise ValueError(
            f"m must be positive (the L2 term is lambd / (2 m) * sum ||W||^2, m the number "
            f"of training examples), got {m!r}"
        )


def as_numeric(name: str, x: Any) -> np.ndarray:
    """x as a NumPy array of real numbers (lists are fine); strings, objects and ragged
    nestings are refused with the argument's name."""
    try:
        xa = np.asarray(x)
    except ValueError as err:  # a ragged nesting of lists
        raise ValueError(f"{name} must be a rectangular array of numbers: {err}") from None
    check_real_dtype(name, xa.dtype)
    return xa


def check_real_dtype(name: str, dtype: Any):
    """Real numbers (ints, floats incl. bfloat16, bools); not strings, objects or complex."""
    real = jax.numpy.issubdtype(dtype, np.number) or dtype == np.bool_
    if not real or jax.numpy.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")


def check_key(name: str, key: Any) -> Any:
    """A PRNG key: ``jax.random.key(...)``, legacy uint32 key data, or an int seed (turned
    into ``jax.random.key(seed)``). Anything else is refused naming ``name``."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not -(2**63) <= int(key) < 2**63:
            raise ValueError(f"{name} as an int seed must be in [-2**63, 2**63), got {key}")
        return jax.random.key(int(key))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return key
    if dtype == np.uint32 and getattr(key, "shape", None) == (2,):
        return key
    raise TypeError(f"{name} must be a PRNG key (jax.random.key(seed)) or an int seed, got {key!r}")


def check_array_2d(name: str, x: Any, what: str = "(m, n_x)"):
    """x must be an array (NumPy or JAX) of rank 2 with at least one row."""
    if not hasattr(x, "ndim") or not hasattr(x, "shape"):
        raise TypeError(
            f"{name} must be an array {what}, got {type(x).__name__}; convert it with "
            "np.asarray(...)"
        )
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D {what}, got shape {x.shape}")
    check_real_dtype(name, x.dtype)
    if x.shape[0] == 0:
        raise ValueError(f"{name} has 0 rows; give at least one example")


def _labels(name: str) -> str:
    """How errors name the labels of the inputs called ``name``."""
    return "labels y" if name == "x" else f"labels for {name}"


def check_xy(x: Any, y: Any, *, n_in: int | None = None, n_out: int | None = None, name: str = "x"):
    """Shapes always; finiteness of x and the label range when the arrays are concrete."""
    check_array_2d(name, x)
    if n_in is not None and x.shape[1] != n_in:
        y_shape = getattr(y, "shape", (None,))
        transposed = x.shape[0] == n_in and (y is None or y_shape[:1] == (x.shape[1],))
        both = x.shape[0] == n_in and y_shape == (1, x.shape[1])  # the course's layout
        hint = "; x looks transposed: pass x.T, one example per row" if transposed else ""
        if both:
            hint = "; x and y look transposed (the course's layout): pass x.T and y.reshape(-1)"
        raise ValueError(
            f"{name} has {x.shape[1]} features but the first layer takes {n_in} (layer_sizes[0], "
            f"the rows of W1){hint}"
        )
    if y is not None:
        if not hasattr(y, "ndim"):
            raise TypeError(
                f"{_labels(name)} must be an array (m,), (m, 1) or (m, k), got "
                f"{type(y).__name__}; convert them with np.asarray(...)"
            )
        check_real_dtype(_labels(name), y.dtype)
        if y.ndim not in (1, 2):
            raise ValueError(
                f"{_labels(name)} must be (m,), (m, 1) or (m, k), "
                f"got shape {getattr(y, 'shape', None)}"
            )
        if y.shape[0] != x.shape[0]:
            row = y.ndim == 2 and y.shape == (1, x.shape[0])
            hint = "; the labels look like one row (1, m): pass y.reshape(-1)" if row else ""
            raise ValueError(
                f"{name} and its labels have different row counts: {x.shape[0]} vs "
                f"{y.shape[0]}{hint} (jaxhp is batch-first: one example per row)"
            )
    if not is_concrete((x, y)):
        return
    check_finite_rows(x, name)
    if y is not None and n_out is not None:
        check_labels(np.asarray(y), n_out, name=name)


def check_finite_rows(x: Any, name: str = "x"):
    """Every row of x (m, ...) must be finite; the error names the first bad row."""
    xa = np.asarray(x)
    bad = ~np.isfinite(xa.reshape(xa.shape[0], -1)).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} contains NaN or inf, first at row {int(np.argmax(bad))}")


def check_labels(y: np.ndarray, n_out: int, *, name: str = "x"):
    """Labels must fit the output layer: 0/1 for one output, classes 0..k-1 or one-hot for k."""
    if n_out == 1:
        if y.ndim == 2 and y.shape[1] != 1:
            raise ValueError(
                f"{_labels(name)} have shape {y.shape}, but one output unit needs (m,) or (m, 1)"
            )
        bad = (y != 0) & (y != 1)
        if bad.any():
            value = y.reshape(-1)[np.argmax(bad.reshape(-1))].item()
            regression = (  # a fraction: a soft label, or a regression target
                " (one sigmoid output takes hard 0/1 labels: give soft labels as (m, 2) rows "
                "for 2 outputs; regression targets are not supported, jaxhp trains "
                "classifiers)"
                if np.isfinite(value) and value != round(value)
                else ""
            )
            raise ValueError(
                f"{_labels(name)} must be 0 or 1 for a single sigmoid output, "
                f"got {value!r}{regression}"
            )
        return
    if y.ndim == 2 and y.shape[1] == n_out:  # one-hot or soft targets
        if (y < 0).any() or not np.allclose(y.sum(axis=1), 1.0, atol=1e-5):
            raise ValueError(f"one-hot {_labels(name)} must be non-negative rows summing to 1")
        return
    flat = y.reshape(-1) if (y.ndim == 1 or y.shape[1] == 1) else None
    if flat is None:
        raise ValueError(
            f"{_labels(name)} have shape {y.shape}; with {n_out} outputs use (m,) class "
            f"ids or (m, {n_out}) one-hot"
        )
    bad = (flat < 0) | (flat >= n_out) | (flat != np.round(flat))
    if bad.any():
        raise ValueError(
            f"{_labels(name)} must be class ids in [0, {n_out}), "
            f"got {flat[np.argmax(bad)].item()!r}"
        )


def check_weights(weights: Any, m: int):
    """Per-example weights: shape (m,), finite, >= 0, with a positive sum."""
    if np.shape(weights) != (m,):
        raise ValueError(f"training weights must have shape ({m},), got {np.shape(weights)}")
    if not is_concrete(weights):
        return
    w = np.asarray(weights, np.float64)
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise ValueError("training weights must be finite, >= 0 and not all zero")
