"""Data augmentation for NHWC image batches (COURSE.md point 7): flips, crops with
padding, small rotations and gaussian noise.

Every op has the signature ``op(key, x) -> x`` for a batch x of shape (N, H, W, C); each
example draws its own randomness from ``split(key, N)``, so ops are deterministic per key,
differ across the examples of a batch, and are jit- and vmap-compatible. Ops never touch
labels, and keep shapes. :func:`compose` chains them; :func:`for_flat_images` adapts an op
to the flat (m, H*W*C) rows that :func:`jaxhp.fit` trains on, for ``TrainConfig.augment``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Op = Callable[[jax.Array, jax.Array], jax.Array]


def _per_example(key: jax.Array, x: jax.Array, one: Callable) -> jax.Array:
    if x.ndim != 4:
        raise ValueError(f"augmentations take NHWC batches (N, H, W, C), got shape {x.shape}")
    return jax.vmap(one)(jax.random.split(key, x.shape[0]), x)


def random_flip(key, x, *, horizontal: bool = True, vertical: bool = False, p: float = 0.5):
    """Flip each image left-right (and/or up-down) with probability ``p``."""

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
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    h, w = x.shape[1], x.shape[2]
    pad = ((padding, padding), (padding, padding), (0, 0))

    def one(k, image):
        padded = jnp.pad(image, pad, mode=mode)
        top, left = jax.random.randint(k, (2,), 0, 2 * padding + 1)
        return jax.lax.dynamic_slice(padded, (top, left, 0), (h, w, image.shape[2]))

    return _per_example(key, x, one)


def random_rotation(key, x, *, max_degrees: float = 10.0):
    """Rotate each image about its centre by a uniform angle in ±``max_degrees``
    (bilinear interpolation, zeros outside)."""
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
    return _per_example(
        key, x, lambda k, image: image + std * jax.random.normal(k, image.shape, image.dtype)
    )


def compose(*ops: Op) -> Op:
    """Apply ``ops`` in order, each with its own key derived from the one given."""

    def composed(key, x):
        for k, op in zip(jax.random.split(key, len(ops)), ops):
            x = op(k, x)
        return x

    return composed


def for_flat_images(op: Op, shape: tuple[int, int, int]) -> Op:
    """Adapt an NHWC op to flat rows (m, H*W*C), as ``TrainConfig(augment=...)`` needs."""

    def flat(key, x):
        return op(key, x.reshape((x.shape[0], *shape))).reshape(x.shape)

    return flat
