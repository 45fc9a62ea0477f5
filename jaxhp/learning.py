"""Learning curves in one vmapped program, and the initialisation probe.

``learning_curve`` (COURSE.md points 3-4) trains one member per training-set size; member
s uses the first n_s examples through 0/1 per-example weights, so every member has the same
shapes and the whole curve is one ``vmap(fit)``. ``init_probe`` (points 9-10) measures how
activations and gradients scale through a deep net at initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxhp.diagnose import (
    THRESHOLD,
    Diagnosis,
    check_reference,
    diagnose,
    gap_exceeds,
    majority_error,
)
from jaxhp.init import init_mlp
from jaxhp.nn import ACTIVATIONS
from jaxhp.records import Data, HParams, TrainConfig, TrainResult
from jaxhp.train import check_inputs, fit


class LearningCurve(NamedTuple):
    """Train and dev error against training-set size.

    Attributes:
      sizes: (S,) training-set sizes.
      train_error, dev_error: (S,) final error rates (1 − accuracy).
      results: the batched :class:`TrainResult` (leading axis S).
      diagnosis: :func:`jaxhp.diagnose` at the largest size.
      more_data_helps: True when the dev error still fell by more than half the diagnosis
        threshold between the two largest sizes (the curve has not flattened; space the
        sizes geometrically, e.g. doubling, for this to mean the last doubling of data).
    """

    sizes: np.ndarray
    train_error: np.ndarray
    dev_error: np.ndarray
    results: TrainResult
    diagnosis: Diagnosis
    more_data_helps: bool

    def plot(self, path):
        """Save the curve as a PNG (see :func:`jaxhp.plot.plot_learning_curve`)."""
        from jaxhp.plot import plot_learning_curve

        return plot_learning_curve(self, path)


def learning_curve(
    key: jax.Array,
    hparams: HParams,
    data: Data,
    config: TrainConfig,
    sizes: Sequence[int],
    *,
    bayes_error: float | None = None,
    threshold: float = THRESHOLD,
) -> LearningCurve:
    """Train on the first n examples for every n in ``sizes``, in one vmapped program.

    Each size's result equals ``fit(key, hparams, Data((x[:n], y[:n]), dev), config)``
    (same key, same dropout masks: masks are indexed by row, so a prefix of rows sees a
    prefix of the mask). Full-batch training only: a mini-batch shuffle over the first n
    rows would need per-member epoch lengths.

    Args:
      key, hparams, config: as for :func:`jaxhp.fit` (``config.batch_size`` must be None).
      data: :class:`jaxhp.Data` with train and dev sets; shuffle train beforehand if its
        order is not random.
      sizes: training-set sizes in [1, m].
      bayes_error, threshold: for the diagnosis at the largest size, as for
        :func:`jaxhp.diagnose` (None assumes 0 and says so; for a built-in 2-D dataset
        :func:`jaxhp.datasets.bayes_error` gives the true one).

    Returns:
      A :class:`LearningCurve`.

    Raises:
      ValueError: no dev set, a batch_size, sizes that are not whole numbers in [1, m], a
        bayes_error outside [0, 1) or a threshold outside (0, 1): before any training.
      TypeError: sizes that are not an iterable of numbers.
    """
    data = check_inputs(hparams, data, config)
    if data.dev is None:
        raise ValueError("learning_curve needs a dev set: Data(train=(x, y), dev=(x, y))")
    if config.batch_size is not None:
        raise ValueError(
            f"learning_curve trains full-batch; got batch_size="
            f"{config.batch_size}, use batch_size=None"
        )
    x, y = data.train[0], data.train[1]
    m = x.shape[0]
    sizes = _check_sizes(sizes, m)
    check_reference(bayes_error, threshold)  # before training
    weights = (np.arange(m)[None, :] < sizes[:, None]).astype(config.dtype)

    def one(w):
        return fit(key, hparams, Data(train=(x, y, w), dev=data.dev), config)

    results = jax.jit(jax.vmap(one))(jnp.asarray(weights))
    train_error = 1.0 - np.asarray(results.history.train_accuracy)[:, -1]
    dev_error = 1.0 - np.asarray(results.history.dev_accuracy)[:, -1]
    verdict = diagnose(
        train_error=float(train_error[-1]),
        dev_error=float(dev_error[-1]),
        bayes_error=bayes_error,
        threshold=threshold,
        chance_error=majority_error(data.dev[1]),
        diverged=bool(np.asarray(results.diverged)[-1]),  # its errors may then be NaN
    )
    still_falling = len(sizes) > 1 and gap_exceeds(dev_error[-2] - dev_error[-1], threshold / 2)
    return LearningCurve(sizes, train_error, dev_error, results, verdict, bool(still_falling))


def _check_sizes(sizes, m: int) -> np.ndarray:
    """``sizes`` as sorted distinct ints in [1, m]: whole numbers (5.0 is 5; 5.5, True, NaN
    are refused), from any iterable but a string."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a sequence of training-set sizes, got {sizes!r}")
    values = list(np.ravel(sizes)) if hasattr(sizes, "shape") else list(sizes)
    for n in values:
        if isinstance(n, (str, bytes)) or np.asarray(n).dtype.kind not in "iuf":
            raise TypeError(f"sizes must be numbers, got {n!r}")
        if not float(n).is_integer() or not 1 <= float(n) <= m:
            raise ValueError(f"sizes must be whole numbers in [1, {m}], got {n!r}")
    if not values:
        raise ValueError(f"sizes must hold at least one size in [1, {m}], got none")
    return np.asarray(sorted({int(n) for n in values}))


class InitProbe(NamedTuple):
    """Per-layer signal scales of a deep net at initialisation.

    Attributes:
      schemes: labels, e.g. ``"he"`` or ``"random(0.01)"``.
      activation_std: (S, depth) std of each layer's activations over a N(0, 1) batch.
      grad_norm: (S, depth) Frobenius norm of each layer's weight gradient for a random
        linear read-out of the last layer, drawn per example (so that the examples'
        gradients do not add up coherently).
      Values that overflowed float32 (an exploding signal) are reported as inf, and so is
      every gradient norm of a scheme whose forward pass overflowed.
    """

    schemes: tuple[str, ...]
    activation_std: np.ndarray
    grad_norm: np.ndarray

    def plot(self, path):
        """Save the probe as a PNG (see :func:`jaxhp.plot.plot_init_probe`): inf, NaN and
        values that underflowed to 0 are marked and labelled at the panel's edge."""
        from jaxhp.plot import plot_init_probe

        return plot_init_probe(self, path)


def init_probe(
    key: jax.Array,
    depth: int,
    width: int,
    *,
    schemes: Sequence = ("he", "glorot", "lecun", ("random", 0.01), ("random", 1.0)),
    activation: str = "relu",
    n: int = 512,
) -> InitProbe:
    """Measure activation std and weight-gradient norm per layer at initialisation.

    The net has ``depth`` layers of ``width`` → ``width`` units, each followed by
    ``activation``, zero biases and weights from each scheme (a name, or ``(name, scale)``
    as in :func:`jaxhp.init_mlp`). A vanishing or exploding signal shows as a geometric
    trend across layers; He (ReLU) and LeCun/Glorot (tanh) keep it flat.
    """
    if depth < 1 or width < 1 or n < 2:
        raise ValueError(f"depth, width must be >= 1 and n >= 2, got {depth}, {width}, {n}")
    g = ACTIVATIONS[activation] if activation in ACTIVATIONS else None
    if g is None:
        raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    kx, kr, kp = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, width))
    # A random read-out per example: one shared by all would send every example the same
    # output gradient, and deep ReLU features (correlated across examples) would then add
    # their weight gradients up coherently, growing with depth even under He init.
    readout = jax.random.normal(kr, (n, width))

    def run(params):
        stds = []
        a = x
        for layer in params:
            a = g(a @ layer.W + layer.b[None, :])
            stds.append(jnp.std(a))
        return jnp.mean(jnp.sum(a * readout, axis=1)), jnp.stack(stds)

    @jax.jit  # one compile serves every scheme: the shapes are the same
    def measure(params):
        grads, std = jax.grad(run, has_aux=True)(params)
        return std, jnp.stack([jnp.linalg.norm(layer.W) for layer in grads])

    labels, stds, norms = [], [], []
    for entry in schemes:
        name, scale = (entry, None) if isinstance(entry, str) else entry
        labels.append(name if scale is None else f"{name}({scale:g})")
        params = init_mlp(kp, (width,) * (depth + 1), scheme=name, scale=scale)
        std, norm = measure(params)
        stds.append(np.asarray(std))
        norms.append(np.asarray(norm))
    # A signal that overflowed float32 has exploded: report it as inf, never as NaN. Once
    # the forward pass overflowed, the backward pass through it is meaningless (0 or NaN
    # where the true gradient is huge), so every gradient norm of that scheme is inf.
    stds, norms = np.stack(stds), np.stack(norms)
    exploded = ~np.isfinite(stds).all(axis=1, keepdims=True)
    norms = np.where(exploded | ~np.isfinite(norms), np.inf, norms)
    return InitProbe(tuple(labels), np.where(np.isfinite(stds), stds, np.inf), norms)
