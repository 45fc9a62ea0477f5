"""Data augmentation for NHWC image batches (COURSE.md point 7): flips, crops with
padding, small rotations and gaussian noise.

Every op has the signature ``op(key, x) -> x`` for a batch x of shape (N, H, W, C); each
example draws its own randomness from ``split(key, N)``, so ops are deterministic per key,
differ across the examples of a batch, and are jit- and vmap-compatible. Ops never touch
labels, and keep shapes. ``key`` may be an int seed. Bad arguments raise ValueError or
TypeError naming them. :func:`compose` chains them; :func:`for_flat_images` adapts an op
to the flat (m, H*W*C) rows that :func:`jaxhp.fit` trains on, for ``TrainConfig.augment``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxhp import _checks

Op = Callable[[jax.Array, jax.Array], jax.Array]
PAD_MODES = ("constant", "reflect", "symmetric", "edge", "wrap")  # random_crop's jnp.pad modes


def _images(x, *, float_only: bool = False) -> jax.Array:
    """x as an NHWC batch (N, H, W, C), refused clearly otherwise."""
    if not hasattr(x, "ndim"):
        x = jnp.asarray(_checks.as_numeric("x", x))
    if x.ndim != 4:
        raise ValueError(f"augmentations take NHWC batches x (N, H, W, C), got shape {x.shape}")
    if float_only and not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x must hold float images for this op, got dtype {x.dtype}")
    return x


def _option(name: str, value, *, low: float, high: float | None = None):
    """A Python-number option, checked unless the caller traces it."""
    if _checks.is_concrete(value):
        _checks.check_number(name, value, low=low, high=high)


def _per_example(key: jax.Array, x: jax.Array, one: Callable) -> jax.Array:
    key = _checks.check_key("key", key)
    return jax.vmap(one)(jax.random.split(key, x.shape[0]), x)


def random_flip(key, x, *, horizontal: bool = True, vertical: bool = False, p: float = 0.5):
    """Flip each image left-right (and/or up-down) with probability ``p``."""
    x = _images(x)
    _option("p", p, low=0.0, high=1.0)

    def one(k, image):
        kh, kv = jax.random.split(k)
        if horizontal:
            image = jnp.where(jax.random.bernoulli(kh, p), image[:, ::-1], image)
        if vertical:
            image = jnp.where(jax.random.bernoulli(kv, p), image[::-1], image)
        return image

    return _per_example(key, x, one)


def random_crop(key, x, *, padding: int = 4, mode: str = "constant"):
    """Pad each image by ``padding`` pixels (zeros, or ``mode="reflect"``) and crop a
    random window of the original size."""
    x = _images(x)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    _checks.check_choice("mode", mode, PAD_MODES)
    h, w = x.shape[1], x.shape[2]
    pad = ((padding, padding), (padding, padding), (0, 0))

    def one(k, image):
        padded = jnp.pad(image, pad, mode=mode)
        top, left = jax.random.randint(k, (2,), 0, 2 * padding + 1)
        return jax.lax.dynamic_slice(padded, (top, left, 0), (h, w, image.shape[2]))

    return _per_example(key, x, one)


def random_rotation(key, x, *, max_degrees: float = 10.0):
    """Rotate each image about its centre by a uniform angle in ±``max_degrees``
    (bilinear interpolation, zeros outside): the output pixel at (r, c) reads the input at
    (cy, cx) + R(θ) (r − cy, c − cx) with R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]], so in
    (row, column) coordinates a positive θ turns the content clockwise as displayed."""
    x = _images(x, float_only=True)
    _option("max_degrees", max_degrees, low=0.0)
    h, w = x.shape[1], x.shape[2]
    rows, cols = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    cy, cx = (h - 1) / 2, (w - 1) / 2

    def one(k, image):
        angle = jax.random.uniform(k, minval=-max_degrees, maxval=max_degrees) * math.pi / 180
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        src_r = cos * (rows - cy) - sin * (cols - cx) + cy
        src_c = sin * (rows - cy) + cos * (cols - cx) + cx

        def channel(c):
            return jax.scipy.ndimage.map_coordinates(c, [src_r, src_c], order=1, cval=0.0)

        return jax.vmap(channel, in_axes=2, out_axes=2)(image)

    return _per_example(key, x, one)


def gaussian_noise(key, x, *, std: float = 0.05):
    """Add independent N(0, std²) noise to every pixel."""
    x = _images(x, float_only=True)
    _option("std", std, low=0.0)
    return _per_example(
        key, x, lambda k, image: image + std * jax.random.normal(k, image.shape, image.dtype)
    )


def compose(*ops: Op) -> Op:
    """Apply ``ops`` in order, each with its own key derived from the one given."""
    for i, op in enumerate(ops):
        if not callable(op):
            raise TypeError(f"compose takes ops op(key, x); argument {i} is {op!r}")

    def composed(key, x):
        key = _checks.check_key("key", key)
        for k, op in zip(jax.random.split(key, len(ops)), ops):
            x = op(k, x)
        return x

    return composed


def for_flat_images(op: Op, shape: tuple[int, int, int]) -> Op:
    """Adapt an NHWC op to flat rows (m, H*W*C), as ``TrainConfig(augment=...)`` needs."""
    if not callable(op):
        raise TypeError(f"op must be a function op(key, x), got {op!r}")
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 3
        or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in shape)
    ):
        raise ValueError(f"shape must be (H, W, C), three positive ints, got {shape!r}")
    size = shape[0] * shape[1] * shape[2]

    def flat(key, x):
        if getattr(x, "ndim", None) != 2 or x.shape[1] != size:
            raise ValueError(
                f"for_flat_images{tuple(shape)} takes rows x (m, {size}), got shape "
                f"{getattr(x, 'shape', None)}"
            )
        return op(key, x.reshape((x.shape[0], *shape))).reshape(x.shape)

    return flat
