"""Search spaces: grids, random draws, products, unions, seeds and coarse-to-fine refinement.

A :class:`Space` is an ordered list of members; a member is a dict of axes:
- hyperparameters, any name: ``lambd``, ``keep_prob`` (a float, or a tuple with one value
  per hidden layer), ``learning_rate``, ``momentum``, ``b2``, ... (traced values);
- static axes, named after a :class:`jaxhp.TrainConfig` field (``layer_sizes``,
  ``batch_size``, ``activation``, ``optimizer`` by name, ``steps``, ...): ``run_sweep``
  compiles one program per distinct combination;
- ``seed`` (an int).

Axes a member leaves out take ``run_sweep``'s ``base`` values (``HParams()`` defaults), the
config's fields and seed 0. Following the course, prefer random search to grids, sample
``learning_rate`` and ``lambd`` on a log scale (:func:`loguniform`) and a β near 1 (momentum,
Adam's b2) through 1 − β on a log scale (:func:`one_minus_loguniform`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxhp import _checks, _warn
from jaxhp.records import DECAY_RATES, HParams, TrainConfig

STATIC_AXES = tuple(f.name for f in dataclasses.fields(TrainConfig))
LOG_AXES = ("lambd", "learning_rate")  # refined on a log scale when positive


def _check_axes(names):
    for name in names:
        if not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"axis names must be identifiers, got {name!r}")


def _number(value: Any, name: str = "value"):
    """Hyperparameter values are plain Python floats (tuples for per-layer values)."""
    if isinstance(value, (tuple, list, np.ndarray)) and np.ndim(value) == 1:
        return tuple(_number(v, name) for v in value)
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            f"axis {name!r}: values must be numbers (or per-layer tuples), got "
            f"{type(value).__name__} {value!r}"
        )
    return float(value)


def _static(value: Any, name: str):
    """Static axis values must be hashable (lists become tuples)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):  # a Model stays one
        value = tuple(_static(v, name) for v in value)
    if isinstance(value, np.generic):
        value = value.item()
    try:
        hash(value)
    except TypeError as err:
        raise TypeError(f"static axis {name!r}: value {value!r} is not hashable") from err
    return value


def _seed(value: Any, member: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"seed must be an int >= 0, got {value!r} (member {member} of the sweep); seeds "
            "are never rounded"
        )
    return int(value)


def _value(name: str, value: Any, member: int):
    if name == "seed":
        return _seed(value, member)
    if name in STATIC_AXES:
        return _static(value, name)
    return _number(value, name)


class uniform(NamedTuple):  # noqa: N801 - reads like a distribution in user code
    """Uniform on [a, b]."""

    a: float
    b: float

    def sample(self, key, n: int) -> np.ndarray:
        return np.asarray(jax.random.uniform(key, (n,), minval=self.a, maxval=self.b), np.float64)


class loguniform(NamedTuple):  # noqa: N801
    """Log-uniform on [a, b] with 0 < a < b: every decade is equally likely."""

    a: float
    b: float

    def sample(self, key, n: int) -> np.ndarray:
        u = np.asarray(jax.random.uniform(key, (n,)), np.float64)
        return np.exp(np.log(self.a) + u * (np.log(self.b) - np.log(self.a)))


class one_minus_loguniform(NamedTuple):  # noqa: N801
    """β in [a, b] with 1 − β log-uniform on [1 − b, 1 − a]: for β near 1 (momentum, Adam's
    b1/b2), where 0.9 → 0.99 matters as much as 0.99 → 0.999. Needs 0 <= a < b < 1.

    Example:
      >>> space = random(0, 16, momentum=one_minus_loguniform(0.9, 0.999))
    """

    a: float
    b: float

    def sample(self, key, n: int) -> np.ndarray:
        return 1.0 - loguniform(1.0 - self.b, 1.0 - self.a).sample(key, n)


class choice(NamedTuple):  # noqa: N801
    """Uniform choice among ``values`` (floats, or per-layer tuples for keep_prob)."""

    values: tuple

    def sample(self, key, n: int) -> list:
        picks = np.asarray(jax.random.randint(key, (n,), 0, len(self.values)))
        return [self.values[i] for i in picks]


def _check_distribution(name: str, dist: Any):
    if isinstance(dist, one_minus_loguniform):
        if not (0 <= dist.a < dist.b < 1):
            raise ValueError(
                f"{name}: one_minus_loguniform needs 0 <= a < b < 1, got a={dist.a}, b={dist.b}"
            )
    elif isinstance(dist, (uniform, loguniform)):
        if not (math.isfinite(dist.a) and math.isfinite(dist.b) and dist.a < dist.b):
            raise ValueError(
                f"{name}: {type(dist).__name__} needs finite a < b, got a={dist.a}, b={dist.b}"
            )
        if isinstance(dist, loguniform) and dist.a <= 0:
            raise ValueError(f"{name}: loguniform needs a > 0, got a={dist.a}")
    elif isinstance(dist, choice):
        if len(dist.values) == 0:
            raise ValueError(f"{name}: choice needs at least one value")
    else:
        raise TypeError(
            f"{name}: expected uniform(a, b), loguniform(a, b), one_minus_loguniform(a, b), "
            "choice([...]) "
            f"or a constant, got {dist!r}"
        )


class Space:
    """An ordered collection of sweep members. Combine with ``*`` (product) and ``+`` (union).

    Example:
      >>> space = grid(lambd=[0.0, 0.1, 1.0], keep_prob=[0.8, 1.0], seeds=2)
      >>> len(space)
      12
    """

    def __init__(self, members: Sequence[dict], *, repeats: bool = False):
        """``repeats=True`` lets two members be the same point with the same seed (Optuna
        may ask for one point twice); otherwise that is refused, as training it twice."""
        members = [dict(m) for m in members]
        for m in members:
            _check_axes(m)
        self.members: list[dict] = [
            {k: _value(k, v, i) for k, v in m.items()} for i, m in enumerate(members)
        ]
        if not repeats:
            _check_distinct(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        axes = sorted({k for m in self.members for k in m})
        return f"Space({len(self)} members over {', '.join(axes) or 'no axes'})"

    def __add__(self, other: Space) -> Space:
        return Space(self.members + other.members)

    def __mul__(self, other: Space) -> Space:
        merged = []
        for a, b in itertools.product(self.members, other.members):
            shared = set(a) & set(b)
            if shared:
                raise ValueError(
                    f"product of spaces that share axes {sorted(shared)}; use + for a union"
                )
            merged.append({**a, **b})
        return Space(merged)

    def with_seeds(self, seeds: int) -> Space:
        """Replicate every member with seeds 0..seeds-1 (the seed varies fastest)."""
        _checks.check_positive_int("seeds", seeds)
        if any("seed" in m for m in self.members):
            raise ValueError("this space already has a seed axis")
        return Space([{**m, "seed": s} for m in self.members for s in range(seeds)])

    def static_axes(self) -> tuple[str, ...]:
        """The static axes (TrainConfig fields) some member sets, in order of appearance."""
        names = dict.fromkeys(k for m in self.members for k in m if k in STATIC_AXES)
        return tuple(names)

    def compile(self, n_hidden: int | None = None, base: HParams | None = None, *, member_ids=None):
        """Batched :class:`HParams` (numpy, leading member axis) and int seeds (N,).

        Static axes are left out (``run_sweep`` groups members by them first). Every member
        is validated; an error names the member and the offending value. keep_prob becomes
        (N,) when all members give a scalar, else (N, n_hidden).

        Raises:
          ValueError: an empty space, an out-of-range value (naming the member), or a
            member without a value for an axis that others sweep and ``base`` lacks.
        """
        if len(self) == 0:
            raise ValueError("the search space is empty: give at least one member")
        ids = list(range(len(self))) if member_ids is None else [int(i) for i in member_ids]
        base = HParams() if base is None else HParams.coerce(base, name="base")
        names = list(base._fields)
        for m in self.members:
            names += [k for k in m if k not in names and k != "seed" and k not in STATIC_AXES]
        columns = {}
        for name in names:
            default = (
                _number(np.asarray(getattr(base, name)).tolist(), name)
                if name in base._fields
                else None
            )
            column = []
            for i, m in enumerate(self.members):
                if name not in m and default is None:
                    raise ValueError(
                        f"member {ids[i]} of the sweep has no value for {name!r}, which other "
                        f"members sweep; give it a default: base=HParams({name}=...)"
                    )
                column.append(m.get(name, default))
            columns[name] = column
        keep = columns["keep_prob"]
        per_layer = any(isinstance(v, tuple) for v in keep)
        if per_layer and n_hidden is None:
            n_hidden = max(len(v) for v in keep if isinstance(v, tuple))
        if per_layer:
            keep = [v if isinstance(v, tuple) else (v,) * n_hidden for v in keep]
        wrong_width = [len(v) != n_hidden for v in keep] if per_layer else [False]
        lambd = np.asarray(columns["lambd"], np.float64)
        rate = np.asarray(columns["learning_rate"], np.float64)
        kp = np.asarray(keep, np.float64) if not any(wrong_width) else np.ones(len(self))
        others = {}
        for name in names:
            if name in ("lambd", "keep_prob", "learning_rate"):
                continue
            try:
                others[name] = np.asarray(columns[name], np.float64)
            except ValueError as err:
                raise ValueError(
                    f"axis {name!r} mixes scalars and tuples of different lengths"
                ) from err
        # Vectorised range checks; the first offending member is then validated on its
        # own, so the error names it and its value exactly as HParams.validate words it.
        bad = (
            np.asarray(wrong_width)
            | ~(np.isfinite(lambd) & (lambd >= 0))
            | ~(np.isfinite(rate) & (rate > 0))
            | ~((kp > 0) & (kp <= 1)).reshape(len(self), -1).all(axis=1)
        )
        for name, values in others.items():
            ok = np.isfinite(values)
            if name in DECAY_RATES:
                ok = ok & (values >= 0) & (values < 1)
            bad = bad | ~ok.reshape(len(self), -1).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            HParams(**{a: columns[a][i] for a in names}).validate(n_hidden=n_hidden, member=ids[i])
        hparams = HParams(
            lambd=lambd.astype(np.float32),
            keep_prob=kp.astype(np.float32),
            learning_rate=rate.astype(np.float32),
            **{name: values.astype(np.float32) for name, values in others.items()},
        )
        seeds = np.asarray([m.get("seed", 0) for m in self.members], np.int64)
        if (seeds < 0).any():
            i = int(np.argmax(seeds < 0))
            raise ValueError(f"seed must be >= 0, got {seeds[i]} (member {ids[i]} of the sweep)")
        return hparams, seeds

    def __iter__(self):
        return iter(self.members)


def _seeded(space: Space, seeds: int) -> Space:
    """``space`` with a seed axis when ``seeds`` > 1. One seed adds no axis (members then
    take seed 0), so such spaces combine with ``*``."""
    _checks.check_positive_int("seeds", seeds)
    return space.with_seeds(seeds) if seeds > 1 else space


def grid(*, seeds: int = 1, **axes: Sequence) -> Space:
    """The Cartesian product of the axes' values (the first axis varies slowest).

    Args:
      seeds: replicate every point with seeds 0..seeds-1.
      **axes: any hyperparameter (``lambd=[...]``, ``keep_prob=[...]`` with values or
        per-layer tuples, ``momentum=[...]``, ...) or static axis (``layer_sizes=[...]``,
        ``batch_size=[...]``, ...).

    Raises:
      ValueError: an empty axis, or ``seed=[...]`` (use ``seeds=N``).
    """
    _check_axes(axes)
    if "seed" in axes:
        raise ValueError(
            f"grid(seed={axes['seed']!r}) is not an axis: use seeds=N for seeds 0..N-1, or "
            "Space([{'seed': s, ...}, ...]) for chosen seeds"
        )
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
            raise TypeError(f"grid axis {name!r} needs a list of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"grid axis {name!r} is empty: the search space would be empty")
        twice = _repeated(values)
        if twice is not None:
            raise ValueError(
                f"grid axis {name!r} lists {twice!r} more than once, so its points would be "
                "trained again under the same names: list each value once (seeds=N repeats "
                "points with new seeds)"
            )
    names = list(axes)
    points = [dict(zip(names, combo)) for combo in itertools.product(*axes.values())]
    return _seeded(Space(points), seeds)


def _repeated(values: Sequence) -> Any:
    """The first value of ``values`` equal to an earlier one, or None."""
    for i, value in enumerate(values):
        for earlier in values[:i]:
            if np.shape(value) == np.shape(earlier) and np.array_equal(
                np.asarray(value, dtype=object), np.asarray(earlier, dtype=object)
            ):
                return value
    return None


def random(key: Any, n: int, *, seeds: int = 1, **dists: Any) -> Space:
    """``n`` distinct random points; each axis from a distribution, a constant or a list
    (choice). A draw that repeats an earlier point is drawn again, so a sweep never trains
    one point twice (lists alone may hold too few combinations: then a ValueError).

    Args:
      key: PRNG key or int seed.
      n: number of points (before seed replication).
      seeds: replicate every point with seeds 0..seeds-1.
      **dists: e.g. ``lambd=loguniform(1e-4, 10)``, ``keep_prob=uniform(0.5, 1.0)``,
        ``momentum=one_minus_loguniform(0.8, 0.999)``; static axes take a list (choice).
    """
    _check_axes(dists)
    _checks.check_positive_int("n", n)
    if "seed" in dists:
        raise ValueError("random(seed=...) is not an axis: use seeds=N for seeds 0..N-1")
    key = jax.random.key(key) if isinstance(key, int) else key
    dists = {name: _as_distribution(name, dist) for name, dist in dists.items()}
    _check_enough_points(n, dists)
    points = _draw(key, n, dists)
    for attempt in range(1, _REDRAWS + 1):
        repeats = _repeats(points)
        if not repeats:
            break
        fresh = _draw(jax.random.fold_in(key, attempt), len(repeats), dists)
        for i, point in zip(repeats, fresh):
            points[i] = point
    else:
        raise ValueError(f"random: no {n} distinct points after {_REDRAWS} redraws")
    return _seeded(Space(points), seeds)


_REDRAWS = 10_000


def _as_distribution(name: str, dist: Any) -> Any:
    """A list becomes a choice; constants (and a static axis's one value) stay as they are."""
    distributions = (uniform, loguniform, one_minus_loguniform, choice)
    if isinstance(dist, (list, tuple)) and not isinstance(dist, distributions):
        dist = choice(tuple(dist))
    if isinstance(dist, (int, float)) or name in STATIC_AXES and not isinstance(dist, choice):
        return dist
    _check_distribution(name, dist)
    return dist


def _draw(key: jax.Array, n: int, dists: dict) -> list[dict]:
    columns = {}
    for k, (name, dist) in zip(jax.random.split(key, max(1, len(dists))), dists.items()):
        sampled = hasattr(dist, "sample")
        columns[name] = list(dist.sample(k, n)) if sampled else [dist] * n
    return [{name: columns[name][i] for name in columns} for i in range(n)]


def _point_key(point: dict) -> tuple:
    """What makes two points equal: their names and values, in any order."""
    return tuple(sorted((k, repr(np.asarray(v, dtype=object).tolist())) for k, v in point.items()))


def _refined(axis: str, values, centre: int, shrink: float, rng) -> Any:
    """One draw of ``axis`` for refine: uniform in a box around member ``centre``'s value."""
    values = np.asarray(values, np.float64)
    if values.ndim > 1 or np.ptp(values) == 0:  # per-layer or constant: keep as is
        v = values[centre]
        return tuple(v) if values.ndim > 1 else float(v)
    log = axis in LOG_AXES and (values > 0).all()
    scaled = np.log10(values) if log else values
    width = shrink * np.ptp(scaled)
    draw = rng.uniform(scaled[centre] - width / 2, scaled[centre] + width / 2)
    v = 10**draw if log else draw
    if axis == "keep_prob":
        return float(np.clip(v, 1e-3, 1.0))
    if axis == "lambd":
        return max(0.0, float(v))
    if axis not in LOG_AXES:  # other names stay in the range the sweep covered
        return float(np.clip(v, values.min(), values.max()))
    return float(v)


def _check_distinct(members: list[dict]):
    """Two members with the same values and seed would train the same run twice."""
    seeded = [{"seed": 0, **member} for member in members]  # no seed: seed 0
    repeats = _repeats(seeded)
    if repeats:
        keys = [_point_key(point) for point in seeded]
        i = repeats[0]
        raise ValueError(
            f"members {keys.index(keys[i])} and {i} of the space are the same point with the "
            f"same seed ({members[i]}): each would train the same run; list each point once "
            "(new seeds replicate it)"
        )


def _repeats(points: list[dict]) -> list[int]:
    """Indices of the points equal to an earlier one."""
    seen, repeats = set(), []
    for i, point in enumerate(points):
        key = _point_key(point)
        if key in seen:
            repeats.append(i)
        seen.add(key)
    return repeats


def _check_enough_points(n: int, dists: dict):
    """Axes that are all lists or constants hold finitely many points: n must fit."""
    if any(isinstance(d, (uniform, loguniform, one_minus_loguniform)) for d in dists.values()):
        return
    sizes = [len(set(map(repr, d.values))) if isinstance(d, choice) else 1 for d in dists.values()]
    total = math.prod(sizes)
    if n > total:
        raise ValueError(
            f"random(n={n}) asks for more distinct points than the lists hold ({total}: "
            f"{' x '.join(map(str, sizes))}); draw at most {total}, or use grid(...) for all "
            "of them"
        )


def refine(
    results,
    *,
    top: int = 5,
    shrink: float = 0.5,
    n: int = 32,
    key: Any = 0,
    metric: str = "dev_accuracy",
    seeds: int = 1,
) -> Space:
    """A coarse-to-fine random space around the ``top`` members of a finished sweep.

    Each hyperparameter that varied in the sweep is sampled uniformly in a box centred on
    one of the top members (cycling through them), ``shrink`` times the width of the range
    the sweep covered; ``lambd`` and ``learning_rate`` use a log scale when all values are
    positive. keep_prob is clipped to (0, 1], lambd to >= 0, other names to the range the
    sweep covered. Static axes keep the centre member's value.

    Args:
      results: a :class:`jaxhp.SweepResults`.
      top: how many of the best members to refine around.
      shrink: box width as a fraction of the swept range, in (0, 1].
      n: number of new points.
      key: PRNG key or int seed.
      metric: ranking metric (see ``SweepResults.best``).
      seeds: seeds per new point.
    """
    _checks.check_positive_int("top", top)
    _checks.check_positive_int("n", n)
    if not (0 < shrink <= 1):
        raise ValueError(f"shrink must be in (0, 1], got {shrink!r}")
    best = results.top(top, metric=metric)
    if not best:
        raise ValueError("refine needs at least one member that did not diverge")
    if len(best) < top:
        _warn.warn(
            f"refine: top={top}, but the sweep has {len(best)} members that did not diverge: "
            f"the new space is drawn around all {len(best)} (a box that wide narrows little)"
        )
    rng = np.random.default_rng(
        np.asarray(jax.random.key_data(jax.random.key(key) if isinstance(key, int) else key))
    )
    hp = results.hparams
    centres = [row["member"] for row in best]
    results.refuse_static_text(centres, "refine the SweepResults that run_sweep returned")
    static = getattr(results, "static", {})

    def point(j: int) -> dict:
        centre = centres[j % len(centres)]
        drawn = {
            axis: _refined(axis, getattr(hp, axis), centre, shrink, rng) for axis in hp._fields
        }
        return {**drawn, **{axis: values[centre] for axis, values in static.items()}}

    points = [point(j) for j in range(n)]
    for j in _repeats(points):  # clipping can land two draws on one point: draw again
        seen = {_point_key(p) for i, p in enumerate(points) if i != j}
        for _ in range(_REDRAWS):
            if _point_key(points[j]) not in seen:
                break
            points[j] = point(j)
        else:
            raise ValueError(
                f"refine: no {n} distinct points around the top {top} members (the swept "
                "axes leave too little room); ask for fewer points (n=...)"
            )
    return _seeded(Space(points), seeds)
