"""Forward pass with PRNG-keyed inverted dropout (COURSE.md point 6).

Dropout masks come from a counter-based hash instead of ``jax.random.bernoulli``: a key
gives two 32-bit words ``w0, w1`` by hashing its key data (:func:`key_words`, a few integer
ops, no threefry call), and unit ``i`` (its row-major index in the activations) is kept when
``mix32((i ^ w1) + w0) >> 8 < round(keep_prob * 2**24)``. ``mix32`` is a 32-bit avalanche
mixer (lowbias32: near-ideal avalanche, so consecutive counters give unrelated bits); the
xor with ``w1`` keeps two keys' streams from being shifted copies of each other. It costs
~8 integer ops per unit where threefry costs ~100. Masks are deterministic per key, fresh
per key, and the kept units are scaled by ``1 / p_eff`` with
``p_eff = round(keep_prob * 2**24) / 2**24`` (within 6e-8 of keep_prob), so the expected
activation is unchanged up to the rounding of ``a / p_eff`` to the activations' dtype:
about 1e-7 relative in float32, but up to 2**-9 in bfloat16 (``1 / 0.9`` is stored as
1.109375), so a bfloat16 layer's dropout shifts its mean by that much.
``tests/test_nn.py`` checks the keep fraction and the independence of masks across keys
(also keys one bit apart), layers, units and shifted rows.
keep_prob is always handled in float32, whatever the activations' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxhp import _checks
from jaxhp.init import Params

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.01),
}

_KEEP_BITS = 24  # resolution of keep_prob: 1 / 2**24


def _mix32(h: jax.Array) -> jax.Array:
    """A 32-bit avalanche mixer (xor-shift-multiply, constants from C. Wellons' lowbias32)."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x846CA68B)
    return h ^ (h >> 16)


def effective_keep_prob(keep_prob: Any, dtype=jnp.float32) -> jax.Array:
    """The keep probability a mask actually uses: keep_prob rounded to a multiple of 2**-24."""
    return _keep_threshold(keep_prob).astype(dtype) / (1 << _KEEP_BITS)


def _keep_threshold(keep_prob: Any) -> jax.Array:
    # float32 represents every multiple of 2**-24 in (0, 1] exactly, so rounding is exact.
    scaled = jnp.round(jnp.asarray(keep_prob, jnp.float32) * (1 << _KEEP_BITS))
    return jnp.clip(scaled, 1, 1 << _KEEP_BITS).astype(jnp.uint32)


def _key_data(key: Any) -> jax.Array:
    """A key's raw uint32 words, flattened (typed keys and legacy uint32 keys alike)."""
    if isinstance(key, (int, np.integer)) or not hasattr(key, "dtype"):
        raise TypeError(
            f"key must be a PRNG key such as jax.random.key(0), got {type(key).__name__} {key!r}"
        )
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    elif key.dtype != jnp.uint32:
        raise TypeError(f"key must be a PRNG key such as jax.random.key(0), got dtype {key.dtype}")
    return jnp.reshape(key, (-1,))


def key_words(key: Any) -> jax.Array:
    """Two uint32 words hashed from a key's data, the seed of its dropout masks.

    Two chains of the mixer run over the key's words, forwards and backwards, so a change of
    any single bit of the key changes both words unpredictably. No threefry call: on
    XLA:CPU each such call is a small loop (~40 us), more than a step of a small net.
    """
    data = _key_data(key)
    forwards, backwards = jnp.uint32(0x243F6A88), jnp.uint32(0x85A308D3)
    for i in range(data.shape[0]):
        forwards = _mix32(forwards ^ data[i])
        backwards = _mix32(backwards + data[data.shape[0] - 1 - i])
    return jnp.stack([forwards, _mix32(backwards ^ forwards)])


def dropout_mask(key: jax.Array, shape: tuple[int, ...], keep_prob: Any) -> jax.Array:
    """Boolean keep-mask of ``shape``: each entry is True with probability ``keep_prob``.

    Args:
      key: PRNG key; the same key gives the same mask, different keys independent masks.
      shape: mask shape, e.g. ``(m, n_units)``.
      keep_prob: scalar (may be traced), in (0, 1].
    """
    return _mask_from_words(key_words(key), shape, keep_prob)


def layer_words(key: jax.Array, n_hidden: int) -> jax.Array:
    """The (n_hidden, 2) uint32 words from which ``forward`` draws each hidden layer's mask:
    the key's words salted with the layer index and mixed twice."""
    layer = jnp.arange(n_hidden, dtype=jnp.uint32)[:, None]
    column = jnp.arange(2, dtype=jnp.uint32)[None, :]
    salt = _mix32(layer * jnp.uint32(0x9E3779B9) + column * jnp.uint32(0x632BE5AB) + 1)
    return _mix32(_mix32(key_words(key)[None, :] ^ salt))


def step_mask_words(base: jax.Array, step: jax.Array) -> jax.Array:
    """Words for training step ``step`` from a run's ``base`` words (any shape): two rounds
    of the mixer over ``base ^ mix32(step * 0x9E3779B9 + 1)``. ``fit`` wraps them as the
    step's key (``jax.random.wrap_key_data``): a few integer ops instead of a threefry
    call per step."""
    salt = _mix32(jnp.asarray(step).astype(jnp.uint32) * jnp.uint32(0x9E3779B9) + jnp.uint32(1))
    return _mix32(_mix32(base ^ salt))


def layer_masks(key: jax.Array, m: int, widths, keep_prob: Any) -> list[jax.Array]:
    """The keep-masks, (m, width) each, that ``forward(..., key=key)`` applies to its hidden
    layers of ``widths`` units; for hand-written backward passes and their tests."""
    kp = jnp.broadcast_to(jnp.asarray(keep_prob, jnp.float32), (len(widths),))
    words = layer_words(key, len(widths))
    return [_mask_from_words(words[l], (m, n), kp[l]) for l, n in enumerate(widths)]


def _mask_from_words(words: jax.Array, shape, keep_prob: Any) -> jax.Array:
    """Keep bits from each unit's row-major index."""
    index = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    return _keep_from_words(words, index, keep_prob)


def _keep_from_words(words: jax.Array, index: jax.Array, keep_prob: Any) -> jax.Array:
    h = _mix32((index ^ words[1]) + words[0])
    return (h >> (32 - _KEEP_BITS)) < _keep_threshold(keep_prob)


def _apply_mask(keep: jax.Array, a: jax.Array, keep_prob: Any) -> jax.Array:
    # The scale is computed in float32 (an integer or bf16 keep_prob would round 0.8 away).
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.float32)
    scale = (1.0 / effective_keep_prob(keep_prob, jnp.float32)).astype(a.dtype)
    return jnp.where(keep, a * scale, jnp.zeros((), a.dtype))


def dropout(key: jax.Array | None, a: jax.Array, keep_prob: Any) -> jax.Array:
    """Inverted dropout: zero each unit with prob. 1 - keep_prob, scale the rest by 1/p_eff.

    The public dropout for user models: inside ``apply(params, x, *, key, hparams)`` call
    ``dropout(key, a, hparams.keep_prob)``. ``key=None`` (evaluation) or a concrete
    keep_prob of 1 returns ``a`` unchanged. The mask is a hash of the key's data (no
    threefry call); for a second dropout in one apply use ``jax.random.fold_in(key, i)``.

    Args:
      key: PRNG key, or None for no dropout.
      a: activations of any shape.
      keep_prob: scalar in (0, 1], may be traced.

    Returns:
      ``a * mask / p_eff``, same shape (float32 for integer ``a``).
    """
    if key is None or _dropout_is_off(keep_prob):
        return a
    _checks.check_keep_prob(keep_prob)
    if np.ndim(keep_prob) != 0:
        raise ValueError(f"dropout needs a scalar keep_prob, got shape {np.shape(keep_prob)}")
    return _apply_mask(dropout_mask(key, a.shape, keep_prob), a, keep_prob)


def _dropout_from_words(words: jax.Array, a: jax.Array, keep_prob: Any) -> jax.Array:
    return _apply_mask(_mask_from_words(words, a.shape, keep_prob), a, keep_prob)


def _dropout_units_first(words: jax.Array, a_t: jax.Array, keep_prob: Any) -> jax.Array:
    """``_dropout_from_words(words, a_t.T, keep_prob).T`` for (units, m) activations."""
    n, m = a_t.shape
    example = jax.lax.broadcasted_iota(jnp.uint32, (n, m), 1)
    unit = jax.lax.broadcasted_iota(jnp.uint32, (n, m), 0)
    keep = _keep_from_words(words, example * jnp.uint32(n) + unit, keep_prob)
    return _apply_mask(keep, a_t, keep_prob)


def _dropout_is_off(keep_prob: Any) -> bool:
    """True when keep_prob is concretely 1 everywhere: dropout is then skipped entirely."""
    if not _checks.is_concrete(keep_prob):
        return False
    return bool(np.all(np.asarray(keep_prob) == 1.0))


def forward(
    params: Params,
    x: jax.Array,
    *,
    key: jax.Array | None = None,
    keep_prob: Any = 1.0,
    activation: str = "relu",
) -> jax.Array:
    """Logits of an MLP for batch-first inputs.

    Each hidden layer computes ``a = g(a_prev @ W + b)`` and, when ``keep_prob < 1``, applies
    inverted dropout ``a = a * d / p`` with a fresh mask ``d`` drawn from ``key`` (see the
    module docstring). The output layer is linear: it returns logits, never probabilities.
    Dropout never touches the input or the output layer.

    Args:
      params: from :func:`jaxhp.init_mlp`.
      x: (m, n_x) inputs.
      key: PRNG key for the dropout masks; required when keep_prob < 1 (or traced),
        unless ``mask_words`` are given.
      keep_prob: scalar or one value per hidden layer, in (0, 1]; may be traced (vmap).
        ``keep_prob=1`` is exactly the identity and needs no key.
      activation: ``"relu"``, ``"tanh"``, ``"sigmoid"`` or ``"leaky_relu"``.

    Returns:
      (m, n_out) logits.

    Raises:
      ValueError: unknown activation, x not (m, n_x) with n_x the first layer's width,
        keep_prob outside (0, 1], or dropout without a key.
    """
    _checks.check_choice("activation", activation, tuple(ACTIVATIONS))
    _checks.check_xy(x, None, n_in=params[0].W.shape[0])
    n_hidden = len(params) - 1
    _checks.check_keep_prob(keep_prob, n_hidden=n_hidden)
    use_dropout = n_hidden > 0 and not _dropout_is_off(keep_prob)
    if use_dropout and key is None:
        raise ValueError(
            "dropout with keep_prob < 1 needs a PRNG key: call "
            "forward(params, x, key=jax.random.key(0), keep_prob=...) with a fresh key per "
            "step, or pass keep_prob=1.0 to turn dropout off"
        )
    words = layer_words(key, n_hidden) if use_dropout else None
    return _forward(params, x, words, keep_prob, activation)


def _forward(params: Params, x: jax.Array, words, keep_prob: Any, activation: str):
    """:func:`forward` with the masks' (n_hidden, 2) words given (None: no dropout)."""
    n_hidden = len(params) - 1
    use_dropout = words is not None and n_hidden > 0 and not _dropout_is_off(keep_prob)
    g = ACTIVATIONS[activation]
    if use_dropout:
        kp = jnp.broadcast_to(jnp.asarray(keep_prob, jnp.float32), (n_hidden,))
    # Narrow layers run units first: (units, m) activations put the long examples axis
    # where the vector units run along it (2.2x faster steps on B1's 20/3/1 units).
    narrow = _narrow(params)
    affine = _units_first_layer if narrow else _batch_first_layer
    drop = _dropout_units_first if narrow else _dropout_from_words
    a = x.T if narrow else x
    for layer_index, layer in enumerate(params[:-1]):
        a = g(affine(layer, a))
        if use_dropout:
            a = drop(words[layer_index], a, kp[layer_index])
    logits = affine(params[-1], a)
    return logits.T if narrow else logits


_NARROW_UNITS = 64


def _narrow(params: Params) -> bool:
    """Whether every layer has at most 64 units. Wide layers keep the (m, units) layout:
    their matmuls dominate and run faster batch-first (B2: 213 against 177 GFLOP/s)."""
    return max(layer.W.shape[1] for layer in params) <= _NARROW_UNITS


def _batch_first_layer(layer, a: jax.Array) -> jax.Array:
    """``a @ W + b``: (m, units_out)."""
    return a @ layer.W + layer.b[None, :]


def _units_first_layer(layer, a_t: jax.Array) -> jax.Array:
    """``(a_t.T @ W + b).T`` computed as ``W.T @ a_t + b``: (units_out, m)."""
    z = jax.lax.dot_general(layer.W, a_t, (((0,), (0,)), ((), ())))
    return z + layer.b[:, None]
