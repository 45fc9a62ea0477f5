"""Data hygiene (COURSE.md points 2, 7 and 8): splits, normalisation, augmentation, shift.

- :func:`split` sizes train/dev/test by the course's rule and keeps the indices.
- :class:`Normalizer` is fitted on the training set only and reused unchanged.
- :mod:`jaxhp.augment` holds jit/vmap-friendly image augmentations.
- :func:`check_shift` tests whether two sets come from the same distribution.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxhp import _checks, _warn
from jaxhp.nn import forward
from jaxhp.records import Data, HParams, TrainConfig
from jaxhp.train import fit

_fit = jax.jit(fit)  # shared, so repeated shift checks of one shape compile once

AUTO_FRACTION, AUTO_CAP = 0.2, 10_000  # dev and test each get min(20% of m, 10,000)


def _rng(key: Any) -> np.random.Generator:
    """A NumPy generator determined by a JAX key (or an int seed)."""
    key = _checks.check_key("key", key)
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
            raise ValueError(
                f"ratios must be 'auto' or (train, dev, test) fractions, got {ratios!r}"
            )
        n_train, n_dev, n_test = auto_sizes(m)
        n_train_dev = n_dev if train_dev else 0
        sizes = (n_train - n_train_dev, n_dev, n_test, n_train_dev)
    else:
        expected = 4 if train_dev else 3
        names = "(train, train_dev, dev, test)" if train_dev else "(train, dev, test)"
        try:
            ratios = tuple(float(r) for r in ratios)
        except (TypeError, ValueError):
            raise TypeError(
                f"ratios must be 'auto' or a sequence of {expected} fractions {names}, "
                f"got {ratios!r}"
            ) from None
        if len(ratios) != expected:
            raise ValueError(f"ratios must have {expected} entries {names}, got {ratios}")
        if any(not (0 <= r <= 1) for r in ratios):
            raise ValueError(f"ratios must each lie in [0, 1], got {ratios}")
        if abs(sum(ratios) - 1) > 1e-6:
            raise ValueError(f"ratios must sum to 1, got {ratios} (sum {sum(ratios):.6g})")
        if train_dev:
            _, r_train_dev, r_dev, r_test = ratios
        else:
            (_, r_dev, r_test), r_train_dev = ratios, 0.0
        n_dev, n_test, n_train_dev = (int(round(r * m)) for r in (r_dev, r_test, r_train_dev))
        sizes = (m - n_dev - n_test - n_train_dev, n_dev, n_test, n_train_dev)
    if sizes[1] <= 0:
        raise ValueError(
            f"the dev set would have 0 examples (m = {m}, ratios = {ratios}); "
            "give it a positive share"
        )
    if sizes[0] <= 0:
        raise ValueError(
            f"the training set would have {sizes[0]} examples (m = {m}, ratios = {ratios})"
        )
    return sizes


def _stratified_counts(class_sizes: np.ndarray, set_sizes: np.ndarray) -> np.ndarray:
    """Integer (classes x sets) counts with the given row and column sums, each entry the
    floor or ceiling of its exact share ``class_size * set_size / m``.

    Start from the floors; the missing units form a 0/1 matrix with known row and column
    sums, filled greedily (each class in turn gives its units to the sets that miss the most,
    which always succeeds for such bipartite degree sequences).
    """
    exact = np.outer(class_sizes, set_sizes) / class_sizes.sum()
    counts = np.floor(exact).astype(np.int64)
    row_missing = class_sizes - counts.sum(axis=1)
    col_missing = set_sizes - counts.sum(axis=0)
    fraction = exact - counts
    for c in np.argsort(-row_missing, kind="stable"):
        order = np.lexsort((-fraction[c], -col_missing))[: row_missing[c]]
        counts[c, order] += 1
        col_missing[order] -= 1
    return counts


def split_indices(
    m: int, *, key, y=None, ratios="auto", stratify: bool = True, train_dev: bool = False
) -> SplitIndices:
    """Index-only version of :func:`split` (no data is touched; works for any m)."""
    _checks.check_positive_int("m", m)
    if y is not None and len(np.asarray(y)) != m:
        raise ValueError(f"y has {len(np.asarray(y))} rows but m is {m}")
    n_train, n_dev, n_test, n_train_dev = _sizes(m, ratios, train_dev)
    rng = _rng(key)
    set_sizes = np.array([n_train, n_dev, n_test, n_train_dev])
    if stratify and y is not None:
        labels = _class_ids(y)
        classes, counts = np.unique(labels, return_counts=True)
        if (counts < 2).any():
            c = classes[np.argmin(counts)]
            raise ValueError(
                f"class {c.item()!r} has {counts.min()} example; stratify needs at "
                "least 2 per class (or pass stratify=False)"
            )
        # Each class is cut into the four sets in proportion to its size (within one row).
        shares = _stratified_counts(counts, set_sizes)
        parts = [[], [], [], []]
        for j, c in enumerate(classes):
            rows = rng.permutation(np.flatnonzero(labels == c))
            for s, piece in enumerate(np.split(rows, np.cumsum(shares[j])[:-1])):
                parts[s].append(piece)
        train, dev, test, tdev = (np.sort(np.concatenate(p)) for p in parts)
    else:
        order = rng.permutation(m)
        train, dev, test, tdev = (np.sort(p) for p in np.split(order, np.cumsum(set_sizes)[:-1]))
    return SplitIndices(train=train, dev=dev, test=test, train_dev=tdev if train_dev else None)


def _class_ids(y) -> np.ndarray:
    y = _checks.as_numeric("y", y)
    if not np.isfinite(y).all():
        row = int(np.argmin(np.isfinite(y).reshape(len(y), -1).all(axis=1)))
        raise ValueError(f"y must be finite labels, got {y[row].tolist()} at row {row}")
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    return y.reshape(-1)


def split(x, y, *, key, ratios="auto", stratify: bool = True, train_dev: bool = False) -> Splits:
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
        example under stratify, 0 rows, mismatched rows, or NaN/inf in x.
      TypeError: a key that is neither a PRNG key nor an int seed, ratios that are not
        numbers, or x/y that do not hold numbers.
    """
    x = _checks.as_numeric("x", x)
    y = _checks.as_numeric("y", y)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x must be (m, ...) with m > 0 rows, got shape {x.shape}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be (m,) labels or (m, k) one-hot, got shape {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y have different row counts: {x.shape[0]} vs {y.shape[0]}")
    _checks.check_finite_rows(x)
    idx = split_indices(
        x.shape[0], key=key, y=y, ratios=ratios, stratify=stratify, train_dev=train_dev
    )

    def take(rows):
        return None if rows is None or len(rows) == 0 else (x[rows], y[rows])

    return Splits(
        train=take(idx.train),
        dev=take(idx.dev),
        test=take(idx.test),
        train_dev=take(idx.train_dev),
        indices=idx,
    )


def load_file(path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(x, y)`` from an ``.npz`` (arrays ``x`` and ``y``) or a ``.csv`` (features then
    the label in the last column; a first row without numbers is a header, and skipped:
    :func:`csv_header` returns it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    lines = None  # a CSV's line number of each data row, to name a bad one
    if path.suffix == ".npz":
        with path.open("rb") as f:
            magic = f.read(4)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # not a zip (np.load would unpickle)
            raise ValueError(
                f"dataset file {path} is not a .npz archive (a zip of arrays, as "
                f"np.savez(path, x=x, y=y) writes; it starts with {magic!r})"
            )
        try:
            archive = np.load(path)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"dataset file {path} is not a readable .npz: {err}") from err
        if not hasattr(archive, "files"):
            raise ValueError(f"dataset file {path} is not a readable .npz (a plain array)")
        with archive as f:
            if "x" not in f.files or "y" not in f.files:
                raise ValueError(
                    f"dataset file {path} must hold arrays 'x' and 'y', found {f.files}"
                )
            try:
                x, y = f["x"], f["y"]
            except ValueError as err:  # object arrays need pickle, which is never allowed
                raise ValueError(
                    f"dataset file {path}: x and y must be arrays of numbers ({err})"
                ) from None
        for name, array in (("x", x), ("y", y)):
            if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
                raise ValueError(
                    f"dataset file {path}: {name} must hold numbers, got dtype {array.dtype}"
                    + ("; relabel with np.unique(y, return_inverse=True)" if name == "y" else "")
                )
    elif path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = [(number, r) for number, r in enumerate(csv.reader(f), start=1) if r]
        # A first row of no numbers is a header, unless the file reads as one column
        # throughout and its rows hold another separator: then it is data in that
        # separator (named at line 1).
        one_column = len(rows) > 1 and len(rows[0][1]) == len(rows[1][1]) == 1
        other = one_column and _other_separator(rows[1][1][0]) is not None
        if rows and _is_header(rows[0][1]) and not other:
            rows = rows[1:]
        table = _csv_table(path, rows)
        lines = [number for number, _ in rows]
        if table.ndim != 2 or table.shape[1] < 2:
            raise ValueError(
                f"dataset file {path} needs at least one feature column and a label column; "
                f"it has {table.shape[1] if table.ndim == 2 else 0}"
            )
        x, y = table[:, :-1], table[:, -1]
    else:
        raise ValueError(f"dataset file {path} must be .npz or .csv")
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"dataset file {path}: x must be (m, n_x) with m = len(y) > 0, got "
            f"x {x.shape} and y {np.shape(y)}"
        )
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        where = f"line {lines[row]}" if lines else f"row {row} (counted from 0)"
        raise ValueError(
            f"dataset file {path}: x holds NaN or inf, first at {where}; fill or drop those rows"
        )
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # a column of class ids
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"dataset file {path}: y must hold one class id per row, shape ({len(x)},), got "
            f"shape {y.shape}; for one-hot labels save y.argmax(axis=1)"
        )
    fractional = y != np.round(y)  # NaN too
    if fractional.any():
        row = int(np.argmax(fractional))
        where = f"line {lines[row]}" if lines else f"row {row} (counted from 0)"
        raise ValueError(
            f"dataset file {path}: labels must be integer class ids, got {y[row].item()!r} "
            f"first at {where}"
        )
    present = np.unique(y).astype(np.int64)
    if len(present) < 2:
        raise ValueError(
            f"dataset file {path}: every label is {present[0]}; a classifier needs examples "
            "of two classes or more"
        )
    if present[0] != 0 or present[-1] != len(present) - 1:
        shown = ", ".join(map(str, present[:8])) + (", ..." if len(present) > 8 else "")
        raise ValueError(
            f"dataset file {path}: labels must be the class ids 0, 1, ..., k-1 with every "
            f"class present, got {shown}; relabel them (e.g. np.unique(y, return_inverse=True))"
        )
    return x, y.astype(np.int32)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_header(cells: list[str]) -> bool:
    """A first row with no number in it names the columns; one with some numbers is data
    (a bad cell there is reported, not dropped with the row)."""
    return not any(_is_number(cell) for cell in cells)


def csv_header(path) -> list[str] | None:
    """The column names of a CSV dataset file whose first row is a header (which
    :func:`load_file` skips), else None."""
    with Path(path).open(newline="") as f:
        first = next((row for row in csv.reader(f) if row), None)
    return first if first is not None and _is_header(first) else None


def _other_separator(cell: str) -> str | None:
    """The separator other than a comma that a CSV's cell holds, if any."""
    return next((sep for sep in (";", "\t", " ") if sep in cell), None)


def _csv_table(path: Path, rows: list) -> np.ndarray:
    """The numeric table of a CSV's (line number, cells) rows; a bad row is named."""
    if not rows:
        raise ValueError(f"dataset file {path} has no data rows")
    width = len(rows[0][1])
    other = _other_separator(rows[0][1][0])
    if width == 1 and other is not None:
        shown = {";": "';'", "\t": "tabs", " ": "spaces"}[other]
        raise ValueError(
            f"dataset file {path} line {rows[0][0]} reads as one column: jaxhp reads "
            f"comma-separated values, and this file looks separated by {shown}"
        )
    for number, cells in rows:
        if len(cells) != width:
            raise ValueError(
                f"dataset file {path} line {number} has {len(cells)} columns, the first data "
                f"row has {width}"
            )
        for cell in cells:
            if not _is_number(cell):
                raise ValueError(f"dataset file {path} line {number}: {cell!r} is not a number")
    return np.asarray([cells for _, cells in rows], np.float64)


class Normalizer:
    """Feature standardisation ``x' = (x − μ) / σ`` with μ and σ from the training set only.

    Fit it on train, then apply the same instance, unchanged, to dev and test (COURSE.md
    point 8). Statistics are per feature over the first axis, so any trailing shape works.
    A constant feature (σ below ``min_std``) gets σ = 1: it is centred to 0 on train and
    shifted by the same μ elsewhere, never divided by ~0; ``constant_features`` lists them.
    :meth:`fit` warns when such a feature varies at all (σ > 0): rounding residue, or a
    signal in small units that a smaller ``min_std`` would scale.

    ``Normalizer(mean, std)`` builds one from known statistics (both required, the same
    feature shape, std >= 0); an explicit std below ``min_std``, 0 included, is a constant
    feature exactly as in :meth:`fit`.

    Example:
      >>> norm = Normalizer().fit(x_train)
      >>> x_train, x_dev = norm.transform(x_train), norm.transform(x_dev)

    Raises:
      ValueError: only one of mean and std, different shapes, a negative or non-finite std,
        or (in the methods) data of another feature shape, NaN/inf or 0 rows.
      TypeError: statistics or data that are not numbers.
    """

    def __init__(self, mean=None, std=None, *, min_std: float = 1e-8):
        self.min_std = _checks.check_number("min_std", min_std, low=0.0)
        self.mean = self.std = self._raw_std = None
        if mean is None and std is None:
            return
        if mean is None or std is None:
            given, missing = ("mean", "std") if std is None else ("std", "mean")
            raise ValueError(
                f"Normalizer got {given} but no {missing}: pass both, "
                "Normalizer(mean, std), or fit one with Normalizer().fit(x_train)"
            )
        mean = _checks.as_numeric("mean", mean).astype(np.float64)
        std = _checks.as_numeric("std", std).astype(np.float64)
        if mean.ndim == 0 or mean.shape != std.shape:
            raise ValueError(
                "mean and std must both have the feature shape (n_features, ...), got "
                f"mean {mean.shape} and std {std.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError("mean and std must be finite")
        if (std < 0).any():
            raise ValueError(f"std must be >= 0, got {std.ravel()[np.argmax(std.ravel() < 0)]}")
        self._set(mean, std)

    def _set(self, mean: np.ndarray, raw_std: np.ndarray):
        self.mean, self._raw_std = mean, raw_std
        self.std = np.where(raw_std < self.min_std, 1.0, raw_std)

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    @property
    def constant_features(self) -> np.ndarray:
        """Flat indices of the features whose std was below ``min_std``."""
        self._require_fit()
        return np.flatnonzero(self._raw_std.ravel() < self.min_std)

    def fit(self, x_train) -> Normalizer:
        """Store μ and σ of ``x_train`` (m, ...); returns self."""
        x = self._check(x_train, fitting=True)
        self._set(x.mean(axis=0), x.std(axis=0))
        varying = self._raw_std.ravel()[self.constant_features] > 0
        if varying.any():
            first = int(self.constant_features[np.argmax(varying)])
            _warn.warn(
                f"{int(varying.sum())} feature(s) vary by less than min_std={self.min_std:g} "
                f"(feature {first}: std {self._raw_std.ravel()[first]:.2g}) and are treated as "
                "constant (centred, not scaled); if that is a signal in small units, pass a "
                "smaller min_std or rescale it"
            )
        return self

    def transform(self, x) -> np.ndarray:
        """``(x − μ) / σ`` with the stored training statistics, as float32 (what jaxhp
        trains in; the statistics themselves are kept in float64)."""
        self._require_fit()
        x = self._check(x)
        return ((x - self.mean) / self.std).astype(np.float32)

    def fit_transform(self, x_train) -> np.ndarray:
        return self.fit(x_train).transform(x_train)

    def inverse_transform(self, x) -> np.ndarray:
        """``x σ + μ``: back to the original units (x of the fitted feature shape), as
        float32 like :meth:`transform` (about 7 significant digits)."""
        self._require_fit()
        x = self._check(x)
        return (x * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict[str, np.ndarray]:
        self._require_fit()
        return {
            "mean": self.mean,
            "std": self.std,
            "raw_std": self._raw_std,
            "min_std": np.asarray(self.min_std),
        }

    @classmethod
    def from_dict(cls, state) -> Normalizer:
        std = state["raw_std"] if "raw_std" in state else state["std"]
        return cls(state["mean"], std, min_std=float(state["min_std"]))

    def save(self, path) -> Path:
        """Write the statistics to ``path`` (``.npz`` is appended where it is missing, as
        ``np.savez`` does); returns the path written, which :meth:`load` reads."""
        path = Path(path)
        path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
        np.savez(path, **self.to_dict())
        return path

    @classmethod
    def load(cls, path) -> Normalizer:
        with np.load(path) as f:
            return cls.from_dict({k: f[k] for k in f.files})

    def _require_fit(self):
        if not self.fitted:
            raise ValueError(
                "Normalizer is not fitted: call Normalizer().fit(x_train) on the training set first"
            )

    def _check(self, x, fitting: bool = False) -> np.ndarray:
        x = _checks.as_numeric("x", x).astype(np.float64)
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x must be (m, n_features, ...) with m > 0, got shape {x.shape}")
        if not fitting and x.shape[1:] != self.mean.shape:
            raise ValueError(
                f"x has feature shape {x.shape[1:]} but the Normalizer was fitted "
                f"on {self.mean.shape}"
            )
        _checks.check_finite_rows(x)
        return x


class ShiftReport(NamedTuple):
    """Result of :func:`check_shift`.

    Attributes:
      auc: held-out ROC AUC of a classifier trained to tell set a from set b (0.5 = chance).
      p_value: one-sided permutation p-value of that AUC.
      ks_statistic, ks_p_value: per-feature two-sample Kolmogorov–Smirnov statistic and
        two-sided p-value (``scipy.stats.ks_2samp``; 1 where D = 0).
      different: the verdict at level ``alpha`` (Bonferroni over the classifier test and
        the features' KS tests, so the false-alarm rate stays at most ``alpha``).
      top_features: ``(feature, ks_statistic, ks_p_value)`` of the most different features.
    """

    auc: float
    p_value: float
    ks_statistic: np.ndarray
    ks_p_value: np.ndarray
    alpha: float
    different: bool
    top_features: list

    @property
    def verdict(self) -> str:
        if self.different:
            return "different distributions: fix the split so both sets come from one source"
        return "no evidence of a shift: consistent with one distribution"

    def __str__(self) -> str:
        lines = [
            f"classifier two-sample test: held-out AUC {self.auc:.3f}, p = {self.p_value:.3g}",
            f"verdict (alpha {self.alpha}): {self.verdict}",
            "most different features (KS statistic, p):",
        ]
        lines += [f"  feature {i}: D = {d:.3f}, p = {p:.3g}" for i, d, p in self.top_features]
        return "\n".join(lines)


def _ks_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column two-sample KS statistic D = sup|F_a − F_b| and its two-sided p-value,
    from ``scipy.stats.ks_2samp`` (exact for small samples, asymptotic for large ones;
    D = 0, e.g. a constant feature, gives p = 1)."""
    try:
        from scipy import stats
    except ImportError as err:
        raise ImportError(
            "check_shift needs scipy for its KS tests: pip install 'jaxhp[stats]'"
        ) from err
    result = stats.ks_2samp(a, b, axis=0)
    return np.atleast_1d(result.statistic), np.atleast_1d(result.pvalue)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``scores``, ties sharing their average rank."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    if len(values) < len(scores):
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / counts)[inverse]
    return ranks


def _auc(ranks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC by the Mann–Whitney rank sum; ``labels`` may be (n,) or (k, n) 0/1 rows."""
    n_pos = labels.sum(axis=-1)
    n_neg = labels.shape[-1] - n_pos
    return ((labels * ranks).sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _as_rows(name: str, x) -> np.ndarray:
    """(m, ...) samples as (m, n_features) float64 rows."""
    x = _checks.as_numeric(name, x)
    if x.ndim == 0:
        raise ValueError(f"{name} must be (m, ...) samples, got a scalar")
    return x.astype(np.float64).reshape(len(x), -1)


def check_shift(
    x_a,
    x_b,
    *,
    key,
    alpha: float = 0.05,
    n_permutations: int = 1000,
    hidden: int = 16,
    steps: int = 300,
    top: int = 5,
) -> ShiftReport:
    """Test whether two sets (dev vs test, or train vs dev) come from one distribution.

    A classifier two-sample test: half of each set trains a small jaxhp MLP (one hidden
    layer of ``hidden`` units, Adam, ``steps`` full-batch steps, inputs normalised by the
    training half) to tell a from b; on the other half its AUC is compared with the AUCs of
    ``n_permutations`` label permutations (valid because the classifier never saw the
    held-out half). Per-feature two-sample KS tests are added; the sets are called
    different when the classifier p-value is below alpha/2 or the smallest KS p-value is
    below alpha / (2 n_features).

    Args:
      x_a, x_b: (m_a, n) and (m_b, n) samples.
      key: PRNG key or int seed.
      alpha: the false-alarm rate of the verdict.

    Returns:
      A :class:`ShiftReport`.

    Raises:
      ValueError: fewer than 10 rows in a set, different feature counts, NaN/inf, alpha
        outside (0, 1), or a non-positive count.
      TypeError: data that are not numbers, or a key that is neither a key nor an int.
      ImportError: without scipy (install the ``stats`` extra).
    """
    a, b = (_as_rows(name, v) for name, v in (("x_a", x_a), ("x_b", x_b)))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x_a and x_b have different feature counts: {a.shape[1]} vs {b.shape[1]}")
    integers = [
        name
        for name, v in (("x_a", x_a), ("x_b", x_b))
        if np.issubdtype(np.asarray(v).dtype, np.integer) and np.asarray(v).dtype != np.uint8
    ]  # uint8: pixels, numbers indeed
    if integers:  # ids 0, 2, 4 against 1, 3, 5: disjoint sets, alike as numbers
        _warn.warn(
            f"{integers[0]} holds integers: check_shift compares them as numbers; if they "
            "are ids or categories, sets drawn from different ones can look alike (even "
            "against odd ids): compare their counts, or one-hot encode them, instead"
        )
    if min(len(a), len(b)) < 10:
        raise ValueError(
            f"check_shift needs at least 10 examples in each set, got x_a {len(a)} and "
            f"x_b {len(b)} rows"
        )
    _checks.check_number("alpha", alpha)
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    counts = {"n_permutations": n_permutations, "hidden": hidden, "steps": steps, "top": top}
    for name, value in counts.items():
        _checks.check_positive_int(name, value)
    _checks.check_finite_rows(a, "x_a")
    _checks.check_finite_rows(b, "x_b")
    rng = _rng(key)
    x = np.concatenate([a, b])
    y = np.concatenate([np.zeros(len(a), np.int32), np.ones(len(b), np.int32)])
    half = split_indices(len(x), key=int(rng.integers(2**31)), y=y, ratios=(0.5, 0.5, 0.0))
    norm = Normalizer().fit(x[half.train])
    x_fit, x_held = norm.transform(x[half.train]), norm.transform(x[half.dev])
    config = TrainConfig(
        layer_sizes=(x.shape[1], hidden, 1), steps=steps, optimizer="adam", eval_every=steps
    )
    model = _fit(
        jax.random.key(int(rng.integers(2**31))),
        HParams(lambd=1.0, learning_rate=0.01),
        Data(train=(x_fit, y[half.train])),
        config,
    )
    scores = np.asarray(forward(model.params, x_held))[:, 0]
    labels = y[half.dev]
    ranks = _ranks(scores)
    auc = float(_auc(ranks, labels))
    # Under "same distribution" the held-out scores carry no information about the labels:
    # the null AUCs come from shuffling the labels against the fixed ranks.
    null = _auc(ranks, rng.permuted(np.tile(labels, (n_permutations, 1)), axis=1))
    p_value = float((1 + np.sum(null >= auc)) / (1 + n_permutations))
    ks, ks_p = _ks_two_sample(a, b)
    different = p_value < alpha / 2 or ks_p.min() < alpha / (2 * a.shape[1])
    order = np.argsort(-ks)[:top]
    return ShiftReport(
        auc,
        p_value,
        ks,
        ks_p,
        alpha,
        bool(different),
        [(int(i), float(ks[i]), float(ks_p[i])) for i in order],
    )
