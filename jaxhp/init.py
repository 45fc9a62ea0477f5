"""Weight initialisation for MLPs (COURSE.md point 10).

Layout is batch-first: layer ``l`` computes ``x @ W + b`` with ``W`` of shape
``(n_in, n_out)``. The course's column layout stores ``W[l]`` as ``(n[l], n[l-1])``; it is
the transpose of ours, and the variances below are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxhp import _checks

SCHEMES = ("he", "lecun", "xavier", "glorot", "zeros", "random")


class Layer(NamedTuple):
    """One dense layer: ``W`` (n_in, n_out) and ``b`` (n_out,)."""

    W: jax.Array
    b: jax.Array


Params = tuple[Layer, ...]


def weight_std(scheme: str, n_in: int, n_out: int, scale: float | None = None) -> float:
    """Standard deviation of the normal a scheme draws ``W`` from.

    - ``"he"``: sqrt(2 / n_in)  (ReLU)
    - ``"lecun"`` / ``"xavier"``: sqrt(1 / n_in)  (the course's tanh rule)
    - ``"glorot"``: sqrt(2 / (n_in + n_out))
    - ``"random"``: ``scale`` (default 0.01; the course's "large random" is 10)
    - ``"zeros"``: 0

    For the variance-scaling schemes a given ``scale`` multiplies the std (a gain).
    """
    _checks.check_choice("init scheme", scheme, SCHEMES)
    gain = 1.0 if scale is None else float(scale)
    if scheme == "he":
        return gain * (2.0 / n_in) ** 0.5
    if scheme in ("lecun", "xavier"):
        return gain * (1.0 / n_in) ** 0.5
    if scheme == "glorot":
        return gain * (2.0 / (n_in + n_out)) ** 0.5
    if scheme == "random":
        return 0.01 if scale is None else float(scale)
    return 0.0


def _is_float_dtype(dtype) -> bool:
    try:
        return dtype is not None and bool(jnp.issubdtype(dtype, jnp.floating))
    except TypeError:  # not a dtype at all, e.g. "abc"
        return False


def init_mlp(
    key: jax.Array,
    layer_sizes: Sequence[int],
    *,
    scheme: str = "he",
    scale: float | None = None,
    dtype=jnp.float32,
) -> Params:
    """Initialise an MLP's parameters.

    Weights are drawn from a plain, **untruncated** normal ``N(0, std^2)`` with the std given
    by :func:`weight_std` (the course's ``randn * sqrt(...)``); biases are zeros.

    Args:
      key: PRNG key (or an int seed).
      layer_sizes: ``(n_x, n_1, ..., n_out)``, at least two positive ints.
      scheme: ``"he"``, ``"lecun"`` (alias ``"xavier"``), ``"glorot"``, ``"zeros"`` or
        ``"random"``.
      scale: gain on the std for he/lecun/glorot; the std itself for ``"random"``.
      dtype: float dtype of the parameters.

    Returns:
      A tuple of :class:`Layer` records, one per layer, ``W`` of shape (n_in, n_out) and
      ``b`` of shape (n_out,). It is a plain pytree usable with optax and jax.tree_util.

    Raises:
      ValueError: for bad ``layer_sizes``, an unknown scheme or a non-positive scale.
      TypeError: for a key that is neither a key nor an int, a non-number scale or a
        non-float dtype.

    Example:
      >>> params = init_mlp(jax.random.key(0), (2, 20, 3, 1), scheme="he")
      >>> params[0].W.shape, params[2].b.shape
      ((2, 20), (1,))
    """
    key = _checks.check_key("key", key)
    sizes = _checks.check_layer_sizes(layer_sizes)
    _checks.check_choice("init scheme", scheme, SCHEMES)
    if scale is not None and not (_checks.check_number("scale", scale) > 0):
        raise ValueError(f"scale must be > 0, got {scale!r}")
    if not _is_float_dtype(dtype):
        raise TypeError(f"dtype must be a float dtype such as jnp.float32, got {dtype!r}")
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:]):
        std = weight_std(scheme, n_in, n_out, scale)
        W = std * jax.random.normal(k, (n_in, n_out), dtype)
        layers.append(Layer(W=W.astype(dtype), b=jnp.zeros((n_out,), dtype)))
    return tuple(layers)
