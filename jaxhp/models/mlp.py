"""The course's MLP as a :class:`Model`, with jaxhp's fast dropout and narrow-layer layout."""

from __future__ import annotations

import functools

import jax.numpy as jnp

from jaxhp import _checks
from jaxhp.init import SCHEMES, init_mlp
from jaxhp.models._model import Model
from jaxhp.nn import ACTIVATIONS, _forward, layer_words


def mlp(
    layer_sizes: tuple[int, ...],
    *,
    activation: str = "relu",
    init: str = "he",
    init_scale: float | None = None,
    dtype: str = "float32",
) -> Model:
    """A fully connected net ``(n_x, n_1, ..., n_out)`` with inverted dropout on hidden layers.

    ``apply(params, x, *, key, hparams)`` is :func:`jaxhp.forward` with
    ``keep_prob=hparams.keep_prob`` (a scalar or one value per hidden layer) and the hidden
    layers' masks drawn from ``key`` (no dropout when ``key`` is None). The same arguments
    give the same (cached) Model, so configs built from them compare equal and share a
    compiled program.

    Args:
      layer_sizes: ``(n_x, n_1, ..., n_out)``; one output means sigmoid/BCE, k softmax.
      activation: hidden activation, one of ``jaxhp.nn.ACTIVATIONS``.
      init: init scheme (see :func:`jaxhp.init_mlp`); ``init_scale`` its scale.
      dtype: float dtype of the params.

    Returns:
      A :class:`jaxhp.Model`.

    Raises:
      ValueError: bad layer sizes, an unknown activation or init scheme.
    """
    sizes = _checks.check_layer_sizes(layer_sizes)
    _checks.check_choice("activation", activation, tuple(ACTIVATIONS))
    _checks.check_choice("init scheme", init, SCHEMES)
    return _mlp(sizes, activation, init, init_scale, jnp.dtype(dtype).name)


@functools.lru_cache(maxsize=256)
def _mlp(sizes, activation, init, init_scale, dtype) -> Model:
    n_hidden = len(sizes) - 2
    dtype = jnp.dtype(dtype)

    def init_params(key):
        return init_mlp(key, sizes, scheme=init, scale=init_scale, dtype=dtype)

    def apply(params, x, *, key=None, hparams=None):
        if key is None or hparams is None:  # evaluation: dropout off
            return _forward(params, x, None, 1.0, activation)
        _checks.check_keep_prob(hparams.keep_prob, n_hidden=n_hidden)
        # One cheap hash of the key per layer (no threefry call): see jaxhp.nn.layer_words.
        return _forward(params, x, layer_words(key, n_hidden), hparams.keep_prob, activation)

    return Model(init_params, apply)
