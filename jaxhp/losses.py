"""Cross-entropy from logits plus the Frobenius L2 term (COURSE.md point 5)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxhp import _checks
from jaxhp.init import Params
from jaxhp.nn import forward


def targets(y: jax.Array, n_out: int, dtype=jnp.float32) -> jax.Array:
    """Labels in the form the loss uses: (m,) 0/1 floats for one output, (m, k) one-hot else.

    Accepts (m,), (m, 1) or, for k > 1 outputs, (m, k) one-hot / soft targets.

    Raises:
      ValueError: any other label shape (it would broadcast into a wrong loss).
    """
    _check_label_shape(y, n_out)
    if n_out == 1:
        return jnp.reshape(y, (-1,)).astype(dtype)
    if y.ndim == 2 and y.shape[1] == n_out:
        return y.astype(dtype)
    return jax.nn.one_hot(jnp.reshape(y, (-1,)).astype(jnp.int32), n_out, dtype=dtype)


def _check_label_shape(y, n_out: int):
    """Labels (m,), (m, 1), or (m, n_out) for n_out > 1: nothing that could broadcast."""
    shape = getattr(y, "shape", None)
    if shape is None:
        raise TypeError(f"labels must be an array, got {type(y).__name__}")
    allowed = (1,) if n_out == 1 else (1, n_out)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] in allowed)):
        forms = "(m,) or (m, 1)" if n_out == 1 else f"(m,), (m, 1) or (m, {n_out}) one-hot"
        raise ValueError(f"labels have shape {shape}; with {n_out} output(s) use {forms}")


def _check_logits(logits):
    if getattr(logits, "ndim", None) != 2:
        raise ValueError(f"logits must be (m, n_out), got shape {getattr(logits, 'shape', None)}")


def _check_shape(name: str, value, expected: tuple):
    """An optional array that must have exactly ``expected`` shape (no broadcasting)."""
    if value is not None and getattr(value, "shape", None) != expected:
        got = getattr(value, "shape", type(value).__name__)
        raise ValueError(f"{name} must have shape {expected}, got {got}")


def weighted_mean(values: jax.Array, weights: jax.Array | None) -> jax.Array:
    """Plain mean, or the weighted mean sum(w v) / sum(w) (per-example weights)."""
    if weights is None:
        return jnp.mean(values)
    return jnp.sum(weights * values) / jnp.sum(weights)


def cross_entropy(logits: jax.Array, t: jax.Array, weights: jax.Array | None = None):
    """Mean cross-entropy from logits, in the numerically stable form.

    One output (``t`` of shape (m,)): sigmoid/BCE, ``mean(softplus(z) - z t)`` with a stable
    softplus whose derivative is exactly ``sigmoid(z)``, also at ``z = 0`` (the
    ``max(z, 0) + log1p(exp(-|z|))`` form gets 0 instead of 1/2 there under autodiff).
    k outputs (``t`` of shape (m, k)): softmax, ``mean(logsumexp(z) - sum(t z))``.
    ``t`` comes from :func:`targets`. With per-example ``weights`` (m,) the mean is
    weighted: ``sum(w ce) / sum(w)``.

    Raises:
      ValueError: logits not (m, k), or ``t``/``weights`` of another shape than above.
    """
    _check_logits(logits)
    m, k = logits.shape
    _check_shape("t", t, (m,) if k == 1 else (m, k))
    _check_shape("weights", weights, (m,))
    return weighted_mean(cross_entropy_rows(logits, t), weights)


def cross_entropy_rows(logits: jax.Array, t: jax.Array) -> jax.Array:
    """The cross-entropy of every row (m,), shapes as in :func:`cross_entropy` (unchecked)."""
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        return jax.nn.softplus(z) - z * t
    return jax.nn.logsumexp(logits, axis=-1) - jnp.sum(t * logits, axis=-1)


def l2_penalty(params: Params, lambd: Any, m: Any) -> jax.Array:
    """``lambd / (2 m) * sum_l ||W_l||_F^2`` over the weights only (biases are not penalised).

    Args:
      params: MLP parameters (a sequence of records with a ``W`` field).
      lambd: L2 strength (scalar, may be traced).
      m: number of training examples (the full training set, also under mini-batches).
    """
    _checks.check_m(m)
    squares = sum(jnp.sum(layer.W**2) for layer in params)
    return lambd / (2 * m) * squares


def loss(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    lambd: Any = 0.0,
    m: Any = None,
    key: jax.Array | None = None,
    keep_prob: Any = 1.0,
    activation: str = "relu",
    weights: jax.Array | None = None,
) -> jax.Array:
    """Regularised cost ``J = CE(forward(params, x), y) + lambd / (2 m) * sum ||W||_F^2``.

    Args:
      params: MLP parameters.
      x: (m_batch, n_x) inputs.
      y: labels: (m,) or (m, 1) with 0/1 for one output; (m,) class ids or (m, k) one-hot
        for k outputs.
      lambd: L2 strength >= 0.
      m: the ``m`` of the L2 term; defaults to the rows of ``x`` (``sum(weights)`` with
        weights). ``fit`` passes the training-set size so that mini-batch and full-batch
        runs minimise the same J.
      key, keep_prob, activation: as in :func:`jaxhp.forward`.
      weights: optional (m,) per-example weights >= 0: the cross-entropy becomes the
        weighted mean (0/1 weights select a subset while keeping shapes fixed).

    Returns:
      Scalar cost.

    Example:
      >>> params = init_mlp(jax.random.key(0), (2, 4, 1))
      >>> J = loss(params, jnp.ones((3, 2)), jnp.array([0, 1, 1]), lambd=0.1)
    """
    _checks.check_xy(x, y, n_in=params[0].W.shape[0], n_out=params[-1].W.shape[1])
    _checks.check_lambd(lambd)
    _checks.check_m(m)
    if weights is not None:
        _checks.check_weights(weights, x.shape[0])
    logits = forward(params, x, key=key, keep_prob=keep_prob, activation=activation)
    ce = cross_entropy(logits, targets(y, logits.shape[-1], logits.dtype), weights)
    if m is None:
        m = x.shape[0] if weights is None else jnp.sum(weights)
    return ce + l2_penalty(params, lambd, m)


def predict(params: Params, x: jax.Array, *, activation: str = "relu") -> jax.Array:
    """Class predictions (m,) int32, dropout off: ``z > 0`` for one output, argmax for k."""
    _checks.check_xy(x, None, n_in=params[0].W.shape[0])
    return predictions(forward(params, x, activation=activation))


def predictions(logits: jax.Array) -> jax.Array:
    """Class predictions (m,) int32 from logits: ``z > 0`` for one output, argmax for k."""
    _check_logits(logits)
    if logits.shape[-1] == 1:
        return (logits[:, 0] > 0).astype(jnp.int32)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def labels_of(y: jax.Array) -> jax.Array:
    """Integer class ids (m,) from any accepted label form."""
    if getattr(y, "ndim", None) not in (1, 2):
        raise ValueError(
            f"labels must be (m,), (m, 1) or (m, k), got shape {getattr(y, 'shape', None)}"
        )
    if y.ndim == 2 and y.shape[1] > 1:
        return jnp.argmax(y, axis=-1).astype(jnp.int32)
    return jnp.reshape(y, (-1,)).astype(jnp.int32)


def accuracy(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    activation: str = "relu",
    weights: jax.Array | None = None,
):
    """Fraction of rows (weighted by ``weights``) where :func:`predict` equals the label,
    dropout off."""
    _checks.check_xy(x, y, n_in=params[0].W.shape[0], n_out=params[-1].W.shape[1])
    return logits_accuracy(forward(params, x, activation=activation), y, weights)


def logits_accuracy(logits: jax.Array, y: jax.Array, weights: jax.Array | None = None):
    """:func:`accuracy` from already computed logits."""
    _check_logits(logits)
    m = logits.shape[0]
    _check_shape("labels", labels_of(y), (m,))
    _check_shape("weights", weights, (m,))
    hits = (predictions(logits) == labels_of(y)).astype(jnp.float32)
    return weighted_mean(hits, weights)
