"""Data hygiene (COURSE.md points 2, 7 and 8): splits, normalisation, augmentation, shift.

- :func:`split` sizes train/dev/test by the course's rule and keeps the indices.
- :class:`Normalizer` is fitted on the training set only and reused unchanged.
- :mod:`jaxhp.augment` holds jit/vmap-friendly image augmentations.
- :func:`check_shift` tests whether two sets come from the same distribution.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxhp import _checks
from jaxhp.records import Data

AUTO_FRACTION, AUTO_CAP = 0.2, 10_000  # dev and test each get min(20% of m, 10,000)


def _rng(key: Any) -> np.random.Generator:
    """A NumPy generator determined by a JAX key (or an int seed)."""
    if isinstance(key, (int, np.integer)):
        key = jax.random.key(int(key))
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())


class SplitIndices(NamedTuple):
    """Row indices of each set; disjoint and together covering every row."""

    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray
    train_dev: np.ndarray | None = None


class Splits(NamedTuple):
    """The sets as ``(x, y)`` pairs plus the indices that made them (``test`` and
    ``train_dev`` may be None)."""

    train: tuple
    dev: tuple
    test: tuple | None
    train_dev: tuple | None
    indices: SplitIndices

    def data(self) -> Data:
        """The train/dev/test sets as :class:`jaxhp.Data`."""
        return Data(train=self.train, dev=self.dev, test=self.test)


def auto_sizes(m: int) -> tuple[int, int, int]:
    """(train, dev, test) sizes by the course's rule: dev and test get min(20% of m,
    10,000) each, so 60/20/20 for small data and ≈ 98/1/1 at a million examples."""
    held = min(int(round(AUTO_FRACTION * m)), AUTO_CAP)
    return m - 2 * held, held, held


def _sizes(m: int, ratios, train_dev: bool) -> tuple[int, ...]:
    """Sizes of (train, dev, test[, train_dev])."""
    if isinstance(ratios, str):
        if ratios != "auto":
            raise ValueError(f"ratios must be 'auto' or (train, dev, test) fractions, "
                             f"got {ratios!r}")
        n_train, n_dev, n_test = auto_sizes(m)
        n_train_dev = n_dev if train_dev else 0
        sizes = (n_train - n_train_dev, n_dev, n_test, n_train_dev)
    else:
        expected = 4 if train_dev else 3
        names = "(train, train_dev, dev, test)" if train_dev else "(train, dev, test)"
        ratios = tuple(float(r) for r in ratios)
        if len(ratios) != expected:
            raise ValueError(f"ratios must have {expected} entries {names}, got {ratios}")
        if any(not (0 <= r <= 1) for r in ratios):
            raise ValueError(f"ratios must each lie in [0, 1], got {ratios}")
        if abs(sum(ratios) - 1) > 1e-6:
            raise ValueError(f"ratios must sum to 1, got {ratios} (sum {sum(ratios):.6g})")
        if train_dev:
            r_train, r_train_dev, r_dev, r_test = ratios
        else:
            (r_train, r_dev, r_test), r_train_dev = ratios, 0.0
        n_dev, n_test, n_train_dev = (int(round(r * m)) for r in (r_dev, r_test, r_train_dev))
        sizes = (m - n_dev - n_test - n_train_dev, n_dev, n_test, n_train_dev)
    if sizes[1] <= 0:
        raise ValueError(f"the dev set would have 0 examples (m = {m}, ratios = {ratios}); "
                         "give it a positive share")
    if sizes[0] <= 0:
        raise ValueError(f"the training set would have {sizes[0]} examples (m = {m}, "
                         f"ratios = {ratios})")
    return sizes


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder)."""
    exact = total * weights / weights.sum()
    parts = np.floor(exact).astype(np.int64)
    remainder = total - parts.sum()
    parts[np.argsort(-(exact - parts), kind="stable")[:remainder]] += 1
    return parts


def split_indices(m: int, *, key, y=None, ratios="auto", stratify: bool = True,
                  train_dev: bool = False) -> SplitIndices:
    """Index-only version of :func:`split` (no data is touched; works for any m)."""
    _checks.check_positive_int("m", m)
    n_train, n_dev, n_test, n_train_dev = _sizes(m, ratios, train_dev)
    rng = _rng(key)
    held_sizes = np.array([n_dev, n_test, n_train_dev])
    if stratify and y is not None:
        labels = _class_ids(y)
        classes, counts = np.unique(labels, return_counts=True)
        if (counts < 2).any():
            c = classes[np.argmin(counts)]
            raise ValueError(f"class {c.item()!r} has {counts.min()} example; stratify needs at "
                             "least 2 per class (or pass stratify=False)")
        # Per class, shares of each held-out set proportional to the class's size.
        shares = np.stack([_allocate(int(s), counts.astype(np.float64)) for s in held_sizes])
        parts = [[], [], [], []]
        for j, c in enumerate(classes):
            rows = rng.permutation(np.flatnonzero(labels == c))
            bounds = np.cumsum(shares[:, j])
            parts[1].append(rows[: bounds[0]])
            parts[2].append(rows[bounds[0]: bounds[1]])
            parts[3].append(rows[bounds[1]: bounds[2]])
            parts[0].append(rows[bounds[2]:])
        train, dev, test, tdev = (np.sort(np.concatenate(p)) for p in parts)
    else:
        order = rng.permutation(m)
        bounds = np.cumsum(held_sizes)
        dev, test, tdev = (np.sort(order[a:b]) for a, b in zip((0, *bounds[:-1]), bounds))
        train = np.sort(order[bounds[-1]:])
    return SplitIndices(train=train, dev=dev, test=test,
                        train_dev=tdev if train_dev else None)


def _class_ids(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    return y.reshape(-1)


def split(x, y, *, key, ratios="auto", stratify: bool = True,
          train_dev: bool = False) -> Splits:
    """Split (x, y) into train/dev/test (and optionally train-dev) sets.

    Args:
      x: (m, ...) inputs; y: (m,) labels (or (m, k) one-hot).
      key: PRNG key or int seed; the same key always gives the same split.
      ratios: ``"auto"`` (course rule, see :func:`auto_sizes`) or fractions
        ``(train, dev, test)`` — ``(train, train_dev, dev, test)`` with ``train_dev`` —
        summing to 1.
      stratify: keep each class's proportion in every set (largest-remainder rounding, so
        each class is within one example of its exact share).
      train_dev: hold out a train-dev set from the training distribution (auto: the dev
        size, taken from train) to separate variance from data mismatch.

    Returns:
      :class:`Splits` with the sets and their indices.

    Raises:
      ValueError: ratios that do not sum to 1, an empty dev set, a class with a single
        example under stratify, mismatched rows, or NaN/inf in x.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y have different row counts: {x.shape[0]} vs {y.shape[0]}")
    flat = x.reshape(x.shape[0], -1)
    bad_rows = ~np.isfinite(flat).all(axis=1)
    if bad_rows.any():
        raise ValueError(f"x contains NaN or inf, first at row {int(np.argmax(bad_rows))}")
    idx = split_indices(x.shape[0], key=key, y=y, ratios=ratios, stratify=stratify,
                        train_dev=train_dev)

    def take(rows):
        return None if rows is None or len(rows) == 0 else (x[rows], y[rows])

    return Splits(train=take(idx.train), dev=take(idx.dev), test=take(idx.test),
                  train_dev=take(idx.train_dev), indices=idx)


def load_file(path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(x, y)`` from an ``.npz`` (arrays ``x`` and ``y``) or a ``.csv`` (features then
    the label in the last column; a header row is skipped)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    if path.suffix == ".npz":
        try:
            archive = np.load(path)
        except (OSError, EOFError, ValueError) as err:
            raise ValueError(f"dataset file {path} is not a readable .npz: {err}") from err
        if not hasattr(archive, "files"):
            raise ValueError(f"dataset file {path} is not a readable .npz (a plain array)")
        with archive as f:
            if "x" not in f.files or "y" not in f.files:
                raise ValueError(f"dataset file {path} must hold arrays 'x' and 'y', "
                                 f"found {f.files}")
            x, y = f["x"], f["y"]
    elif path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        try:
            float(rows[0][0])
        except (ValueError, IndexError):
            rows = rows[1:]  # header
        try:
            table = np.asarray(rows, np.float64)
        except ValueError as err:
            raise ValueError(f"dataset file {path} is malformed: {err}") from err
        if table.ndim != 2 or table.shape[1] < 2:
            raise ValueError(f"dataset file {path} needs at least one feature column and a "
                             "label column")
        x, y = table[:, :-1], table[:, -1]
    else:
        raise ValueError(f"dataset file {path} must be .npz or .csv")
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"dataset file {path}: x must be (m, n_x) with m = len(y) > 0, got "
                         f"x {x.shape} and y {np.shape(y)}")
    if np.any(np.asarray(y) != np.round(y)):
        raise ValueError(f"dataset file {path}: labels must be integer class ids")
    return x, np.asarray(y).astype(np.int32)
