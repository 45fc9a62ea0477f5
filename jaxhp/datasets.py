"""Small deterministic datasets: the course's 2-D classics and scikit-learn's 8x8 digits.

Each 2-D generator takes ``n``, ``noise`` and ``seed`` and returns ``(x, y)``: x (n, 2)
float32, y (n,) int32. The same arguments always give the same arrays (NumPy's PCG64
generator). :func:`digits` returns real images, NHWC. :func:`load` gives either as
:class:`jaxhp.Data`; for a generator, train, dev and test are independent samples of one
distribution, so dev and test match by construction.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from jaxhp import _checks
from jaxhp.records import Data


def _rng(seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return np.random.default_rng(seed)


def _finish(x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order].astype(np.int32)


def moons(n: int = 1000, *, noise: float = 0.25, seed: int = 0):
    """Two interleaving half circles (as in scikit-learn's ``make_moons``)."""
    _checks.check_positive_int("n", n)
    rng = _rng(seed)
    n_top = n // 2
    angle_top = np.linspace(0, np.pi, n_top)
    angle_bottom = np.linspace(0, np.pi, n - n_top)
    top = np.stack([np.cos(angle_top), np.sin(angle_top)], axis=1)
    bottom = np.stack([1 - np.cos(angle_bottom), 0.5 - np.sin(angle_bottom)], axis=1)
    x = np.concatenate([top, bottom]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n_top), np.ones(n - n_top)])
    return _finish(x, y, rng)


def circles(n: int = 300, *, noise: float = 0.05, factor: float = 0.8, seed: int = 0):
    """Two concentric circles (as in scikit-learn's ``make_circles``); the inner one, of
    radius ``factor``, is class 1."""
    _checks.check_positive_int("n", n)
    rng = _rng(seed)
    n_out = n // 2
    angle_out = rng.uniform(0, 2 * np.pi, n_out)
    angle_in = rng.uniform(0, 2 * np.pi, n - n_out)
    outer = np.stack([np.cos(angle_out), np.sin(angle_out)], axis=1)
    inner = factor * np.stack([np.cos(angle_in), np.sin(angle_in)], axis=1)
    x = np.concatenate([outer, inner]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n_out), np.ones(n - n_out)])
    return _finish(x, y, rng)


def flower(n: int = 400, *, noise: float = 0.2, seed: int = 0):
    """The course's planar "flower": two classes of petals, r = 4 sin(4 t) plus noise."""
    _checks.check_positive_int("n", n)
    rng = _rng(seed)
    per_class = [n // 2, n - n // 2]
    xs, ys = [], []
    for label, count in enumerate(per_class):
        t = np.linspace(label * 3.12, (label + 1) * 3.12, count) + noise * rng.standard_normal(
            count
        )
        r = 4 * np.sin(4 * t) + noise * rng.standard_normal(count)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(count, label))
    return _finish(np.concatenate(xs), np.concatenate(ys), rng)


def spirals(n: int = 300, *, noise: float = 0.2, classes: int = 3, seed: int = 0):
    """``classes`` interleaved spiral arms (labels 0..classes-1)."""
    _checks.check_positive_int("n", n)
    _checks.check_positive_int("classes", classes)
    rng = _rng(seed)
    xs, ys = [], []
    for label in range(classes):
        count = n // classes + (1 if label < n % classes else 0)
        radius = np.linspace(0.05, 1.0, count)
        angle = np.linspace(label * 4.0, (label + 1) * 4.0, count) + noise * rng.standard_normal(
            count
        )
        xs.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        ys.append(np.full(count, label))
    return _finish(np.concatenate(xs), np.concatenate(ys), rng)


def digits():
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 real images in 10 classes.

    Returns:
      ``(x, y)``: x (1797, 8, 8, 1) float32 NHWC, the 0..16 pixel values divided by 16 so
      they lie in [0, 1]; y (1797,) int32 labels 0..9. Rows keep scikit-learn's order.

    Raises:
      ImportError: scikit-learn is not installed (``pip install 'jaxhp[data]'``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "the digits dataset needs scikit-learn: pip install 'jaxhp[data]'"
        ) from err
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    return x, bunch.target.astype(np.int32)


def _moons_curves(theta: np.ndarray) -> list[np.ndarray]:
    top = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    bottom = np.stack([1 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
    return [top, bottom]


def _circles_curves(theta: np.ndarray, factor: float = 0.8) -> list[np.ndarray]:
    ring = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return [ring, factor * ring]


# Generators whose classes are curves plus isotropic Gaussian noise: (curves of a parameter
# in [0, its range), that range). Their class densities, hence their Bayes error, follow.
_CURVES = {"moons": (_moons_curves, np.pi), "circles": (_circles_curves, 2 * np.pi)}
_PETAL = 3.12  # the span of the angle t over which each flower class draws its petals
_ERFC = np.frompyfunc(math.erfc, 1, 1)
_LOG_ROOT_2PI = 0.5 * math.log(2 * math.pi)


def _log_normal_pdf(z: np.ndarray, scale: float) -> np.ndarray:
    with np.errstate(over="ignore"):  # far out at a tiny scale: -inf, as it should be
        return -0.5 * (z / scale) ** 2 - math.log(scale) - _LOG_ROOT_2PI


def _log_wrapped(phi: np.ndarray, centre, span: float, noise: float) -> np.ndarray:
    """Log density at the angle phi (mod 2 pi) of an angle drawn uniformly from
    centre ± span / 2 (exactly centre for span 0) plus N(0, noise^2): for a wide noise its
    Fourier series, for a narrow one the sum of its copies shifted by 2 pi k, either cut
    where the next term is below e^-32 (relative). Far outside the span (~37 noise widths)
    the narrow form underflows to -inf."""
    offset = np.mod(phi - centre + np.pi, 2 * np.pi) - np.pi  # in [-pi, pi)
    if noise > 1.0:
        n = np.arange(1, int(8.0 / noise) + 2)[:, None]
        weight = np.exp(-0.5 * (n * noise) ** 2) * np.sinc(n * span / (2 * np.pi))
        return np.log1p(2.0 * (weight * np.cos(n * offset)).sum(0)) - math.log(2 * np.pi)
    turns = int((span / 2 + 8 * noise + np.pi) / (2 * np.pi)) + 1
    d = np.abs(offset[None, :] + 2 * np.pi * np.arange(-turns, turns + 1)[:, None])
    if span == 0:
        return np.logaddexp.reduce(_log_normal_pdf(d, noise), axis=0)
    # P(|d| - span/2 < e < |d| + span/2) / span from the upper tails, exact far out too
    near, far = [_ERFC(((d + sign * span / 2) / noise) / math.sqrt(2)) for sign in (-1, 1)]
    with np.errstate(divide="ignore"):  # a copy past erfc's range adds nothing: log 0
        return np.log((0.5 * (near - far).astype(np.float64) / span).sum(0))


def _log_curve_densities(name: str, x: np.ndarray, noise: float, **shape) -> list[np.ndarray]:
    """Each class's log density at x, up to a shared constant: the mean Gaussian kernel over
    points of its curve."""
    curves, span = _CURVES[name]
    grid = curves((np.arange(360) + 0.5) * span / 360, **shape)  # midpoints of the range
    with np.errstate(over="ignore"):  # far out at a tiny noise: -inf, as it should be
        return [
            np.logaddexp.reduce(-0.5 * (((x[:, None, :] - c[None]) / noise) ** 2).sum(-1), 1)
            for c in grid
        ]


def _log_flower_densities(x: np.ndarray, noise: float) -> list[np.ndarray]:
    """:func:`flower`'s class log densities at x, less their shared log Jacobian. Class c
    draws t = U(c T, (c + 1) T) plus N(0, noise^2) (T = 3.12) and r = 4 sin(4 t) +
    N(0, noise^2), then x = r (sin t, cos t). A point at radius rho and angle phi comes from
    t = phi (mod 2 pi) with r = rho, or t = phi + pi (mod 2 pi) with r = -rho; sin(4 t) is
    the same for all of them, and the map's Jacobian, |r| = rho, for every class."""
    rho = np.hypot(x[:, 0], x[:, 1])
    phi = np.arctan2(x[:, 0], x[:, 1])
    outwards = _log_normal_pdf(rho - 4 * np.sin(4 * phi), noise)
    inwards = _log_normal_pdf(-rho - 4 * np.sin(4 * phi), noise)
    return [
        np.logaddexp(
            outwards + _log_wrapped(phi, centre, _PETAL, noise),
            inwards + _log_wrapped(phi + np.pi, centre, _PETAL, noise),
        )
        for centre in (_PETAL / 2, 3 * _PETAL / 2)
    ]


def _log_spirals_densities(x: np.ndarray, noise: float, classes: int = 3) -> list[np.ndarray]:
    """:func:`spirals`' class log densities at x, less the density of the radius, which all
    classes share. A row at position u in [0, 1] of its arm has radius 0.05 + 0.95 u (no
    noise) and angle 4 (c + u) + N(0, noise^2): the radius fixes u, and the angle, modulo
    2 pi, is a wrapped normal around the arm's. (Off radii 0.05 to 1 no arm reaches: there
    the arms are extended, and the odds mean nothing.)"""
    u = (np.hypot(x[:, 0], x[:, 1]) - 0.05) / 0.95
    phi = np.arctan2(x[:, 0], x[:, 1])
    return [_log_wrapped(phi, 4 * (label + u), 0.0, noise) for label in range(classes)]


_LOG_DENSITIES = {
    "moons": functools.partial(_log_curve_densities, "moons"),
    "circles": functools.partial(_log_curve_densities, "circles"),
    "flower": _log_flower_densities,
    "spirals": _log_spirals_densities,
}
# The generators' own shape arguments that change the class densities, with their defaults.
_SHAPE_DEFAULTS = {"circles": {"factor": 0.8}, "spirals": {"classes": 3}}


def _shape(name: str, classes, factor) -> dict:
    """The generator's shape arguments for ``name``: its defaults, with those given."""
    given = {k: v for k, v in (("classes", classes), ("factor", factor)) if v is not None}
    shape = dict(_SHAPE_DEFAULTS.get(name, {}))
    for key, value in given.items():
        if key not in shape:
            owner = next(g for g, defaults in _SHAPE_DEFAULTS.items() if key in defaults)
            raise ValueError(f"{key} is an argument of {owner}, not of {name!r}")
        if key == "classes":
            _checks.check_positive_int("classes", value)
        elif not _checks.check_number("factor", value) > 0:
            raise ValueError(f"factor must be > 0 (the inner circle's radius), got {value!r}")
        shape[key] = value
    return shape


def _check_known(name) -> None:
    if name not in _LOG_DENSITIES:
        raise ValueError(
            f"class densities and the Bayes error are known for the 2-D generators "
            f"{', '.join(_LOG_DENSITIES)}, not {name!r}"
        )


def class_densities(
    name: str, x, noise: float | None = None, *, classes: int | None = None, factor=None
) -> np.ndarray:
    """Each class's density at points ``x`` under a built-in 2-D generator's own model,
    (classes, n), each column divided by its largest entry (a factor that depends on the
    point, not on the class): the ratios, hence the classes' posterior odds (the classes
    are equally likely), are exact to float64 rounding, and a point far from every class
    does not underflow (except flower's angle, ~37 noise widths off a class's arc, where
    that class reads 0). The Bayes classifier predicts ``argmax`` over axis 0.

    Args:
      name: ``moons``, ``circles``, ``flower`` or ``spirals``.
      x: (n, 2) finite points.
      noise: the generator's noise, > 0 (its default when None).
      classes: spirals' number of arms (default 3); factor: circles' inner radius (0.8).

    Raises:
      ValueError: an unknown name, a noise <= 0, x not (n, 2) finite numbers, a shape
        argument of another generator or out of range.
      TypeError: a noise or shape argument that is not a number.
    """
    _check_known(name)
    shape = _shape(name, classes, factor)
    noise = DEFAULT_NOISE[name] if noise is None else _checks.check_number("noise", noise)
    if not noise > 0:
        raise ValueError(f"noise must be > 0 for class densities, got {noise!r}")
    try:
        x = np.asarray(x, np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"x must be (n, 2) numbers: {err}") from None
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must be (n, 2) points, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"x must be finite: {int(np.sum(~np.isfinite(x)))} entries are not")
    log_p = np.stack(_LOG_DENSITIES[name](x, noise, **shape))
    top = log_p.max(axis=0)  # -inf where no class reaches the point: a column of zeros
    return np.exp(log_p - np.where(np.isfinite(top), top, 0.0))


def bayes_error(
    name: str,
    noise: float | None = None,
    *,
    samples: int = 8_000,
    classes: int | None = None,
    factor=None,
) -> float:
    """The lowest error any classifier can reach on a built-in 2-D dataset: the error of
    the Bayes classifier, from the generator's own class densities
    (:func:`class_densities`), estimated as the mean of 1 - max_c p_c / sum_c p_c over
    ``samples`` draws of the generator (the same value every call; its sampling error is
    0.1 to 0.2 points at the default 8,000). For ``moons``, ``circles`` (inner radius
    ``factor``, default 0.8), ``flower`` and ``spirals`` (``classes`` arms, default 3).

    Raises:
      ValueError: another dataset name (digits: its Bayes error is not known), a noise
        below 0 or not finite, samples not a positive int, a shape argument of another
        generator or out of range.
      TypeError: a noise or shape argument that is not a number.
    """
    _check_known(name)
    shape = _shape(name, classes, factor)
    noise = DEFAULT_NOISE[name] if noise is None else _checks.check_number("noise", noise, low=0)
    _checks.check_positive_int("samples", samples)
    if noise == 0:
        return 0.0
    # Past a noise of 1e6 the classes' densities agree to float64 precision (chance level),
    # and a wider one would overflow the float32 points.
    return _bayes_error(name, min(noise, 1e6), samples, tuple(sorted(shape.items())))


@functools.lru_cache(maxsize=64)  # the CLI asks for the same one several times a run
def _bayes_error(name: str, noise: float, samples: int, shape: tuple) -> float:
    x, _ = GENERATORS[name](samples, noise=noise, seed=12345, **dict(shape))
    total = class_densities(name, x, noise, **dict(shape)).sum(axis=0)  # the largest is 1
    with np.errstate(divide="ignore"):  # where no class reached a point: no error counted
        return float(np.mean(np.where(total > 0, 1.0 - 1.0 / total, 0.0)))


GENERATORS = {"moons": moons, "circles": circles, "flower": flower, "spirals": spirals}
DEFAULT_NOISE = {"moons": 0.25, "circles": 0.05, "flower": 0.2, "spirals": 0.2}
IMAGES = {"digits": digits}
BAYES_KNOWN = tuple(GENERATORS)  # the datasets whose bayes_error is known
NAMES = (*GENERATORS, *IMAGES)
_DIGITS_SIZES = (1197, 300, 300)
_GENERATOR_SIZES = (600, 200, 200)


def n_classes(name: str) -> int:
    """Number of classes a built-in dataset has (its default)."""
    return {"spirals": 3, "digits": 10}.get(name, 2)


def load(
    name: str,
    *,
    n_train: int | None = None,
    n_dev: int | None = None,
    n_test: int | None = None,
    noise: float | None = None,
    seed: int = 0,
) -> Data:
    """A built-in dataset as :class:`jaxhp.Data`.

    Args:
      name: one of ``moons``, ``circles``, ``flower``, ``spirals`` (2-D points) or
        ``digits`` (8x8 images, NHWC, needs the ``[data]`` extra).
      n_train, n_dev, n_test: sizes (``0`` leaves ``dev`` or ``test`` as None). Defaults:
        600, 200, 200 for the generators; 1197, 300, 300 for digits.
      noise: the generator's noise (its default when None); digits have none.
      seed: for a generator, the three sets use ``seed``, ``seed + 1`` and ``seed + 2``;
        for digits, the seed of the shuffle that deals the images into the three sets.

    Raises:
      ValueError: an unknown name (the message lists the allowed ones), a size that is not
        an int (n_train >= 1, n_dev and n_test >= 0), ``noise`` for digits or below 0, or
        digits sizes that add up to more than its 1,797 images, or a ``seed`` that is not
        an int >= 0.
      TypeError: ``noise`` that is not a number.
    """
    _checks.check_choice("dataset", name, NAMES)
    _rng(seed)  # checks it before anything is drawn
    if name in IMAGES:
        return _load_images(name, (n_train, n_dev, n_test), noise, seed)
    n_train, n_dev, n_test = _sizes((n_train, n_dev, n_test), _GENERATOR_SIZES)
    if noise is not None:
        noise = _checks.check_number("noise", noise, low=0.0)
    make = GENERATORS[name]
    kwargs = {} if noise is None else {"noise": noise}
    train = make(n_train, seed=seed, **kwargs)
    dev = make(n_dev, seed=seed + 1, **kwargs) if n_dev else None
    test = make(n_test, seed=seed + 2, **kwargs) if n_test else None
    return Data(train=train, dev=dev, test=test)


def _sizes(sizes, defaults) -> tuple[int, int, int]:
    """(n_train, n_dev, n_test), defaults filled in: n_train >= 1, the others >= 0."""
    n_train, n_dev, n_test = (d if size is None else size for size, d in zip(sizes, defaults))
    _checks.check_positive_int("n_train", n_train)
    for label, size in (("n_dev", n_dev), ("n_test", n_test)):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"{label} must be an int >= 0, got {size!r}")
    return int(n_train), int(n_dev), int(n_test)


def _load_images(name: str, sizes, noise, seed: int) -> Data:
    if noise is not None:
        raise ValueError(f"the {name} dataset has no noise parameter, got noise={noise!r}")
    n_train, n_dev, n_test = _sizes(sizes, _DIGITS_SIZES)
    x, y = IMAGES[name]()
    total = n_train + n_dev + n_test
    if total > len(y):
        raise ValueError(
            f"n_train + n_dev + n_test = {total} exceeds the {len(y)} images of {name}"
        )
    order = _rng(seed).permutation(len(y))
    cuts = np.cumsum([n_train, n_dev, n_test])
    train, dev, test = (order[start:stop] for start, stop in zip((0, *cuts[:2]), cuts))
    return Data(
        train=(x[train], y[train]),
        dev=(x[dev], y[dev]) if n_dev else None,
        test=(x[test], y[test]) if n_test else None,
    )
