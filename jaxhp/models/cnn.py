"""A course-style convolutional network as a :class:`Model`.

Each block is CONV (stride 1) -> ReLU -> POOL -> dropout on NHWC activations, then come
dense layers (ReLU and dropout on the hidden ones), and the last dense layer returns logits.
Kernels are HWIO, so a block computes ``z[n, i, j, o] = sum_{di, dj, c} a[n, i + di, j + dj, c]
* W[di, dj, c, o] + b[o]`` on the padded input. Every weight gets He init,
``N(0, 2 / fan_in)`` with ``fan_in = k * k * c_in`` for a kernel and ``n_in`` for a dense
matrix; biases start at zero.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxhp import _checks
from jaxhp.init import Layer
from jaxhp.models._model import Model
from jaxhp.nn import dropout

PADDINGS = ("SAME", "VALID")
POOLS = ("max", "avg")


def _positive_ints(name: str, values, *, allow_empty: bool) -> tuple[int, ...]:
    try:
        values = tuple(values)
    except TypeError as err:
        raise TypeError(f"{name} must be a sequence of positive ints, got {values!r}") from err
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
    if not ok or (not values and not allow_empty):
        raise ValueError(f"{name} must be a sequence of positive ints, got {values!r}")
    return values


def _block_out(size: int, kernel_size: int, padding: str, pool_size: int) -> int:
    """Height (or width) after one conv (stride 1) and one pool (stride = window)."""
    conv = size if padding == "SAME" else size - kernel_size + 1
    return conv // pool_size if conv > 0 else 0


def _keep_probs(hparams, n_dropout: int, dtype) -> jax.Array:
    keep_prob = jnp.asarray(hparams.keep_prob, dtype)
    if keep_prob.ndim == 1 and keep_prob.shape[0] != n_dropout:
        raise ValueError(
            f"keep_prob has {keep_prob.shape[0]} values but this cnn has {n_dropout} dropout "
            "layers (one per conv block and per hidden dense layer); give a scalar or "
            f"{n_dropout} values"
        )
    return jnp.broadcast_to(keep_prob, (n_dropout,))


def _images_shape(shape: tuple, input_shape: tuple) -> tuple:
    """``input_shape``, once ``x`` of ``shape`` is known to hold such images (NHWC, or
    flat rows); anything else that merely has the right size would be silently scrambled."""
    image = tuple(shape[1:])
    if image == input_shape or image == (int(np.prod(input_shape)),):
        return input_shape
    height, width, channels = input_shape
    hint = ""
    if image == (channels, height, width):
        hint = "; this looks channels-first (NCHW): pass x.transpose(0, 2, 3, 1)"
    raise ValueError(
        f"x has shape {tuple(shape)} but the cnn takes images of input_shape "
        f"{input_shape} (H, W, C): x must be (m, {height}, {width}, {channels}) or flat "
        f"(m, {height * width * channels}){hint}"
    )


def cnn(
    input_shape: Sequence[int],
    channels: Sequence[int] = (8,),
    dense: Sequence[int] = (10,),
    *,
    kernel_size: int = 3,
    padding: str = "SAME",
    pool_size: int = 2,
    pool: str = "max",
) -> Model:
    """A CNN: ``len(channels)`` conv blocks, then ``len(dense)`` dense layers.

    Dropout follows every conv block and every hidden dense layer (never the output), with
    ``hparams.keep_prob`` (a scalar, or one value per dropout layer in that order). It is
    on only when ``apply`` gets a key; dropout layer ``i`` draws its mask from
    ``jax.random.fold_in(key, i)`` via :func:`jaxhp.dropout`.

    Args:
      input_shape: ``(H, W, C)`` of one image. ``apply`` takes ``x`` as (m, H, W, C), or as
        flat rows (m, H * W * C) which it reshapes.
      channels: output channels of each conv block, e.g. ``(8, 16)``; may be empty.
      dense: widths of the dense layers; the last is the number of outputs (1: sigmoid).
      kernel_size: the square kernel's side.
      padding: ``"SAME"`` (keeps H and W) or ``"VALID"``.
      pool_size: side and stride of the square pooling window (1: no pooling).
      pool: ``"max"`` or ``"avg"``.

    Returns:
      A :class:`jaxhp.models.Model`; params are ``{"conv": (Layer, ...), "dense": (Layer,
      ...)}`` with conv ``W`` of shape (k, k, c_in, c_out) and dense ``W`` (n_in, n_out).

    Raises:
      ValueError: a non-positive size, an unknown padding or pool, or blocks that shrink
        the image to nothing.

    Example:
      >>> model = cnn((8, 8, 1), channels=(8,), dense=(10,))
      >>> params = model.init(jax.random.key(0))
      >>> model.apply(params, jnp.zeros((4, 8, 8, 1)), key=None, hparams=None).shape
      (4, 10)
    """
    input_shape = _positive_ints("input_shape", input_shape, allow_empty=False)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C), got {input_shape!r}")
    channels = _positive_ints("channels", channels, allow_empty=True)
    dense = _positive_ints("dense", dense, allow_empty=False)
    _checks.check_positive_int("kernel_size", kernel_size)
    _checks.check_positive_int("pool_size", pool_size)
    _checks.check_choice("padding", padding, PADDINGS)
    _checks.check_choice("pool", pool, POOLS)

    height, width, c_in = input_shape
    for block in range(len(channels)):
        height = _block_out(height, kernel_size, padding, pool_size)
        width = _block_out(width, kernel_size, padding, pool_size)
        if height < 1 or width < 1:
            raise ValueError(
                f"conv block {block} shrinks the {input_shape[0]}x{input_shape[1]} input to "
                f"nothing (kernel_size={kernel_size}, padding={padding!r}, "
                f"pool_size={pool_size}); use fewer blocks, a smaller pool or 'SAME' padding"
            )
    conv_shapes = [
        (kernel_size, kernel_size, c, c_out) for c, c_out in zip((c_in, *channels), channels)
    ]
    flat = height * width * (channels[-1] if channels else c_in)
    dense_shapes = list(zip((flat, *dense), dense))
    n_dropout = len(channels) + len(dense) - 1

    shapes = conv_shapes + dense_shapes
    sizes = [math.prod(shape) for shape in shapes]

    def init(key):
        # One normal draw for all weights: each threefry call adds compile time.
        noise = jax.random.normal(key, (sum(sizes),))
        starts = [0, *itertools.accumulate(sizes)]
        layers = [
            Layer(
                W=noise[start : start + size].reshape(shape)
                * math.sqrt(2.0 / math.prod(shape[:-1])),
                b=jnp.zeros(shape[-1]),
            )
            for start, size, shape in zip(starts, sizes, shapes)
        ]
        n_conv = len(conv_shapes)
        return {"conv": tuple(layers[:n_conv]), "dense": tuple(layers[n_conv:])}

    def apply(params, x, *, key=None, hparams=None):
        a = x.reshape((x.shape[0], *_images_shape(x.shape, input_shape)))
        train = key is not None and n_dropout > 0  # else keep_prob is never read
        keep = _keep_probs(hparams, n_dropout, a.dtype) if train else None
        for i, layer in enumerate(params["conv"]):
            z = _conv(a, layer.W, padding) + layer.b.reshape(1, 1, 1, -1)
            a = _pool(jax.nn.relu(z), pool_size, pool)
            if train:
                a = dropout(jax.random.fold_in(key, i), a, keep[i])
        a = a.reshape(a.shape[0], -1)
        *hidden, out = params["dense"]
        for j, layer in enumerate(hidden, start=len(params["conv"])):
            a = jax.nn.relu(a @ layer.W + layer.b[None, :])
            if train:
                a = dropout(jax.random.fold_in(key, j), a, keep[j])
        return a @ out.W + out.b[None, :]

    return Model(init=init, apply=apply)


def _conv(a: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
    return jax.lax.conv_general_dilated(
        a, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _pool(a: jax.Array, size: int, kind: str) -> jax.Array:
    if size == 1:
        return a
    window = (1, size, size, 1)
    # NumPy init values are concrete, so JAX sees the max and add monoids and can
    # differentiate the windows.
    if kind == "max":
        lowest = np.asarray(-np.inf, a.dtype)
        return jax.lax.reduce_window(a, lowest, jax.lax.max, window, window, "VALID")
    total = jax.lax.reduce_window(a, np.asarray(0, a.dtype), jax.lax.add, window, window, "VALID")
    return total / (size * size)
