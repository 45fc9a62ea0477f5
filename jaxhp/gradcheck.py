"""Gradient checking against centred finite differences, reported per parameter leaf.

COURSE.md point 11: ``d_approx[i] = (J(θ + ε e_i) - J(θ - ε e_i)) / (2 ε)`` and
``difference = ||d_approx - d|| / (||d_approx|| + ||d||)``, read with the bands
<= 1e-7 great, <= 1e-5 check, <= 1e-3 suspicious, > 1e-3 bug. jaxhp computes it for every
leaf of the params pytree (named by its path) and overall, in float64 inside a local
``jax.enable_x64`` context, with the perturbed evaluations vmapped in memory-sized chunks.
In "full" mode only what a coordinate changes is recomputed (:mod:`jaxhp.perturb`). The
compiled programs are reused by later checks of the same ``f`` with the same shapes and
non-array arguments (as with ``jax.jit``, Python globals that ``f`` reads are frozen at its
first trace).

Step size. The centred difference has truncation error ~ε²|J'''|/6 and rounding error
~u|J|/ε (u = 2.2e-16 in float64), balanced at ε ≈ u^(1/3) ≈ 6e-6 for a unit-scale leaf.
Each leaf uses ``ε_leaf = 6e-6 * max(1, rms(leaf))`` unless ``eps`` is given.

Zero gradients. A leaf whose analytic and numeric gradients both lie below the
finite-difference noise floor (``||·|| <= 100 u (1 + |J|) / ε_leaf * sqrt(n)``) counts as
zero and gets difference 0; a leaf where one side is above the floor and the other is not is
judged normally (difference ~1).

Dropout. A loss that draws fresh randomness on each call has no gradient to check and is
refused. A jaxhp loss with dropout and a *fixed* ``key`` is a deterministic function of the
params (the same masks every evaluation), so checking it is valid: it checks the gradient
for that mask. Set keep_prob=1 to check the plain cost J, as the course advises.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxhp import perturb

BANDS = ((1e-7, "great"), (1e-5, "check"), (1e-3, "suspicious"))
MODES = ("full", "directions")
_ROUNDING = float(np.finfo(np.float64).eps)
_DEFAULT_EPS = _ROUNDING ** (1 / 3)  # ≈ 6.1e-6
DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of live evaluations per vmapped chunk


def verdict(difference: float) -> str:
    """The course's reading of a relative difference."""
    for bound, name in BANDS:
        if difference <= bound:
            return name
    return "bug"


def path_name(path: tuple) -> str:
    """A readable leaf name: ``[0].W`` for a tuple of records, ``W1`` or ``enc.W`` for dicts."""
    parts = []
    for entry in path:
        if isinstance(entry, jax.tree_util.DictKey):
            parts.append(("." if parts else "") + str(entry.key))
        elif isinstance(entry, jax.tree_util.GetAttrKey):
            parts.append(("." if parts else "") + entry.name)
        elif isinstance(entry, jax.tree_util.SequenceKey):
            parts.append(f"[{entry.idx}]")
        else:
            parts.append(str(entry))
    return "".join(parts) or "<root>"


class LeafCheck(NamedTuple):
    """The check of one leaf. ``worst_index`` and the values there are None in directions
    mode until :meth:`GradCheckReport.locate` narrows the leaf down."""

    path: str
    shape: tuple[int, ...]
    difference: float
    verdict: str
    n_checked: int  # coordinates (full) or directions (directions mode)
    worst_index: tuple[int, ...] | None = None
    analytic: float | None = None
    numeric: float | None = None

    def worst_line(self) -> str:
        """``worst coordinate: W2[3, 1]: analytic ..., numeric ...`` (once it is known)."""
        return (
            f"worst coordinate: {self.path}{list(self.worst_index)}: analytic "
            f"{self.analytic:.6e}, numeric {self.numeric:.6e}"
        )


class _Opaque:
    """A static argument that cannot be hashed; compared by identity (no program reuse)."""

    def __init__(self, value):
        self.value = value


_ARRAY = object()  # marks where an array argument goes among the static ones


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return _Opaque(value)
    return value


class _Spec(NamedTuple):
    """How to call ``f`` from params leaves and the array arguments. Hashable, so the
    compiled evaluation programs are reused by later checks of the same function."""

    f: Callable
    params_tree: Any
    args_tree: Any
    statics: tuple  # the non-array leaves of (args, kwargs); _ARRAY where an array goes

    def call(self, leaves, arrays):
        params = jax.tree.unflatten(self.params_tree, list(leaves))
        arrays = iter(arrays)
        flat = [
            next(arrays) if s is _ARRAY else s.value if isinstance(s, _Opaque) else s
            for s in self.statics
        ]
        args, kwargs = jax.tree.unflatten(self.args_tree, flat)
        f = self.f.value if isinstance(self.f, _Opaque) else self.f
        return f(params, *args, **kwargs)


def _spec(f, params, args, kwargs) -> tuple[_Spec, list, tuple]:
    """Split a call into a hashable spec, the params leaves and the array arguments."""
    leaves, params_tree = jax.tree.flatten(params)
    flat, args_tree = jax.tree.flatten((args, kwargs))
    is_array = [isinstance(a, (jax.Array, np.ndarray)) for a in flat]
    statics = tuple(_ARRAY if arr else _hashable(a) for a, arr in zip(flat, is_array))
    arrays = tuple(a for a, arr in zip(flat, is_array) if arr)
    return _Spec(_hashable(f), params_tree, args_tree, statics), leaves, arrays


class _Problem(NamedTuple):
    """Everything the evaluations need, in float64."""

    spec: _Spec
    leaves: list  # params leaves
    arrays: tuple  # array arguments of f
    grad: np.ndarray  # analytic gradient, flat
    value: float
    names: list[str]
    shapes: list[tuple[int, ...]]
    offsets: list[int]
    eps: list[float]  # per leaf
    chunk: int  # evaluations per vmapped chunk in directions mode
    batch: list[int]  # coordinates per vmapped chunk in full mode, per leaf


class GradCheckReport(NamedTuple):
    """Result of :func:`grad_check`. ``str(report)`` is a table, worst leaf first.

    Attributes:
      leaves: one :class:`LeafCheck` per leaf, in tree order.
      difference: the overall relative difference.
      verdict: the course's band for ``difference``.
      mode: ``"full"`` or ``"directions"``.
      passed: True when every leaf and the overall number are at most ``tol``.
    """

    leaves: tuple[LeafCheck, ...]
    difference: float
    verdict: str
    mode: str
    tol: float
    problem: _Problem

    @property
    def passed(self) -> bool:
        return self.difference <= self.tol and all(c.difference <= self.tol for c in self.leaves)

    @property
    def ranked(self) -> list[LeafCheck]:
        """Leaves sorted worst first."""
        return sorted(self.leaves, key=lambda c: -c.difference)

    @property
    def worst(self) -> LeafCheck:
        return self.ranked[0]

    @property
    def failing(self) -> list[LeafCheck]:
        return [c for c in self.ranked if c.difference > self.tol]

    def locate(self, leaf: str | None = None, *, top: int = 4, key=None) -> LeafCheck:
        """Narrow a leaf down to its worst coordinate without scanning every coordinate.

        Bisection: the leaf's coordinates are split in two blocks; for each block the
        directional derivative along two random directions supported on that block is
        compared with its finite difference, and the block with the larger discrepancy is
        kept, until at most ``top`` coordinates remain; those are checked one by one.
        Cost: about 8 log2(n) + 2 top evaluations for a leaf of n coordinates.

        Args:
          leaf: the leaf's path; the worst leaf when None.
          top: size of the final block that is checked coordinate by coordinate.
          key: PRNG key for the random directions.

        Returns:
          The leaf's :class:`LeafCheck` with ``worst_index``, ``analytic`` and ``numeric``.
        """
        p = self.problem
        name = self.worst.path if leaf is None else leaf
        if name not in p.names:
            raise ValueError(f"unknown leaf {name!r}; leaves: {', '.join(p.names)}")
        i = p.names.index(name)
        lo, hi = p.offsets[i], p.offsets[i] + math.prod(p.shapes[i])
        key = jax.random.key(1) if key is None else key
        with jax.enable_x64(True):
            while hi - lo > top:
                mid = (lo + hi) // 2
                key, sub = jax.random.split(key)
                blocks = [(lo, mid), (lo, mid), (mid, hi), (mid, hi)]
                num, ana = _directional(p, blocks, jax.random.split(sub, 4))
                gap = np.abs(num - ana)
                lo, hi = (lo, mid) if gap[:2].sum() >= gap[2:].sum() else (mid, hi)
            numeric = _coordinates(p, {i: np.arange(lo, hi) - p.offsets[i]})[i]
            analytic = np.asarray(p.grad[lo:hi])
        j = int(np.argmax(np.abs(numeric - analytic)))
        index = np.unravel_index(lo + j - p.offsets[i], p.shapes[i])
        found = self.leaves[i]._replace(
            worst_index=tuple(int(k) for k in index),
            analytic=float(analytic[j]),
            numeric=float(numeric[j]),
        )
        return found

    def __str__(self) -> str:
        p = self.problem
        lines = [
            f"grad_check mode={self.mode}  J={p.value:.6g}  overall difference "
            f"{self.difference:.2e} ({self.verdict})",
            f"{'leaf':<16}{'shape':<14}{'checked':>8}  {'difference':>10}  {'verdict':<10}"
            f"{'worst index':<14}{'analytic':>12}  {'numeric':>12}",
        ]
        for c in self.ranked:
            index = "" if c.worst_index is None else str(c.worst_index)
            ana = "" if c.analytic is None else f"{c.analytic:.5e}"
            num = "" if c.numeric is None else f"{c.numeric:.5e}"
            lines.append(
                f"{c.path:<16}{str(c.shape):<14}{c.n_checked:>8}  {c.difference:>10.2e}  "
                f"{c.verdict:<10}{index:<14}{ana:>12}  {num:>12}"
            )
        worst = self.worst
        if worst.worst_index is not None:
            lines.append(worst.worst_line())
        elif self.mode == "directions" and worst.difference > self.tol:
            lines.append(f"call report.locate({worst.path!r}) to find its worst coordinate")
        return "\n".join(lines)


def _to_float64(tree):
    def cast(leaf):
        if isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(leaf, jnp.float64)
        return leaf

    return jax.tree.map(cast, tree)


_BIG_EVALUATION_FLOPS = 5e6  # above this one evaluation already keeps the cores busy


@functools.partial(jax.jit, static_argnames="spec")
def _loss(leaves, arrays, *, spec):
    return spec.call(leaves, arrays)


def _chunk_size(traced, leaves: list, budget: int) -> int:
    """Whole-function evaluations per vmapped chunk so that their live memory fits
    ``budget`` bytes (directions mode and locate).

    Returns 1 (evaluate one after another inside one compiled loop, no vmap) when a single
    evaluation costs more than ~5 MFLOP: XLA's CPU batched matmuls then run slower than
    its plain ones (B3: 12.6 s instead of 16.3 s for the 17k-parameter model).
    """
    try:  # XLA's cost model of one evaluation, read from the lowered program (no compile)
        cost = traced.lower().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        flops, per_eval = float(cost.get("flops", 0.0)), int(cost.get("bytes accessed", 0))
    except Exception:  # noqa: BLE001 - the cost model is best effort on some backends
        flops, per_eval = 0.0, 0
    if flops > _BIG_EVALUATION_FLOPS:
        return 1
    n_params = sum(leaf.size for leaf in leaves)
    per_eval = max(per_eval, 4 * n_params * 8, 1024)
    return int(max(1, min(4096, budget // per_eval)))


_MAX_BATCH = 64  # coordinates per chunk in full mode; more only adds memory traffic


def _batch_sizes(traced, leaves: list, budget: int) -> list[int]:
    """Coordinates per vmapped chunk in full mode, for each leaf: each perturbation keeps
    a few copies of f's largest intermediate value at most (two per coordinate, ±)."""
    per_coordinate = 2 * 4 * max(perturb.largest_value_bytes(traced.jaxpr.jaxpr), 1024)
    batch = max(1, min(_MAX_BATCH, budget // per_coordinate))
    return [max(1, min(batch, leaf.size)) for leaf in leaves]


def _map(fn, xs, chunk: int):
    """``lax.map`` in vmapped chunks, or one by one (no batch axis at all) for chunk 1."""
    return jax.lax.map(fn, xs) if chunk == 1 else jax.lax.map(fn, xs, batch_size=chunk)


@functools.partial(jax.jit, static_argnames="spec")
def _differences_program(leaves, arrays, coords, steps, *, spec):
    return perturb.centred_differences(
        lambda *ls: spec.call(ls, arrays), list(leaves), list(coords), list(steps)
    )


def _coordinates(p: _Problem, wanted: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Centred differences along coordinate axes: ``wanted`` maps a leaf to flat indices
    into it. Changes are propagated from the perturbed coordinate only (jaxhp.perturb)."""
    coords, steps = [None] * len(p.leaves), [None] * len(p.leaves)
    for k, indices in wanted.items():
        batch = min(p.batch[k], len(indices))
        padded = np.resize(np.asarray(indices, np.int32), -(-len(indices) // batch) * batch)
        coords[k] = padded.reshape(-1, batch)
        steps[k] = np.full(coords[k].shape, p.eps[k])
    out = _differences_program(p.leaves, p.arrays, coords, steps, spec=p.spec)
    return {k: np.asarray(out[k]).reshape(-1)[: len(wanted[k])] for k in wanted}


@functools.partial(jax.jit, static_argnames=("spec", "chunk"))
def _directions_program(leaves, arrays, grad, eps_of, lo, hi, keys, *, spec, chunk):
    theta, unravel = ravel_pytree(list(leaves))
    index = jnp.arange(theta.size)

    def one(args):
        lo, hi, key = args
        inside = (index >= lo) & (index < hi)
        v = jnp.where(inside, jax.random.normal(key, theta.shape, jnp.float64), 0.0)
        v = v / jnp.linalg.norm(v)
        h = eps_of[lo]
        plus = spec.call(unravel(theta + h * v), arrays)
        minus = spec.call(unravel(theta - h * v), arrays)
        return (plus - minus) / (2 * h), jnp.dot(grad, v)

    return _map(one, (lo, hi, keys), chunk)


def _directional(p: _Problem, blocks: list[tuple[int, int]], keys) -> tuple[np.ndarray, ...]:
    """For each block [lo, hi) of the flat parameters and key: a random unit direction v
    supported on the block; returns the centred difference of J along v and <grad, v>."""
    eps_of = np.repeat(np.asarray(p.eps), [math.prod(s) for s in p.shapes])
    lo = np.asarray([b[0] for b in blocks])
    hi = np.asarray([b[1] for b in blocks])
    numeric, analytic = _directions_program(
        p.leaves, p.arrays, p.grad, eps_of, lo, hi, keys, spec=p.spec, chunk=p.chunk
    )
    return np.asarray(numeric), np.asarray(analytic)


def _relative_difference(numeric: np.ndarray, analytic: np.ndarray, floor: float) -> float:
    denominator = np.linalg.norm(numeric) + np.linalg.norm(analytic)
    gap = np.linalg.norm(numeric - analytic)
    if denominator <= floor:
        return 0.0 if gap <= floor else 1.0
    return float(gap / denominator)


def _prepare(f, params, args, kwargs, grad_fn, eps, memory_budget) -> _Problem:
    leaves_with_paths, _ = jax.tree_util.tree_flatten_with_path(params)
    if not leaves_with_paths:
        raise ValueError("params is an empty pytree: there is no gradient to check")
    for path, leaf in leaves_with_paths:
        if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            raise TypeError(
                f"params leaf {path_name(path)} has dtype {jnp.asarray(leaf).dtype}; "
                "gradient checking needs float leaves"
            )
    params = _to_float64(jax.tree.map(jnp.asarray, params))
    args, kwargs = _to_float64(args), _to_float64(kwargs)
    # Two eager evaluations: a compiled f would freeze fresh randomness into constants.
    value = f(params, *args, **kwargs)
    if jnp.shape(value) != ():
        raise ValueError(f"f must return a scalar cost, got an array of shape {jnp.shape(value)}")
    again = f(params, *args, **kwargs)
    if not np.array_equal(np.asarray(value), np.asarray(again), equal_nan=True):
        raise ValueError(
            f"f is not deterministic: two evaluations at the same params gave {float(value)!r} "
            f"and {float(again)!r}. Fix its randomness (pass a fixed dropout key) or set "
            "keep_prob=1 before checking gradients"
        )
    if not np.isfinite(float(value)):
        raise ValueError(f"f returned a non-finite cost {float(value)} at params")
    spec, leaves, arrays = _spec(f, params, args, kwargs)
    if grad_fn is None:
        grads = jax.tree.unflatten(spec.params_tree, _gradient(leaves, arrays, spec=spec))
    else:
        grads = _to_float64(grad_fn(params, *args, **kwargs))
        _check_grad_structure(params, grads)
    grad_flat, _ = ravel_pytree(grads)
    names = [path_name(path) for path, _ in leaves_with_paths]
    shapes = [tuple(jnp.shape(leaf)) for leaf in leaves]
    sizes = [math.prod(s) for s in shapes]
    offsets = [int(o) for o in np.cumsum([0, *sizes[:-1]])]
    if eps is None:
        eps_list = [
            _DEFAULT_EPS * max(1.0, float(np.sqrt(np.mean(np.square(np.asarray(leaf))))))
            if leaf.size
            else _DEFAULT_EPS
            for leaf in leaves
        ]
    else:
        eps_list = [float(eps)] * len(names)
    traced = _loss.trace(leaves, arrays, spec=spec)  # one trace of f sizes both modes' chunks
    return _Problem(
        spec=spec,
        leaves=leaves,
        arrays=arrays,
        grad=np.asarray(grad_flat),
        value=float(value),
        names=names,
        shapes=shapes,
        offsets=offsets,
        eps=eps_list,
        chunk=_chunk_size(traced, leaves, memory_budget),
        batch=_batch_sizes(traced, leaves, memory_budget),
    )


@functools.partial(jax.jit, static_argnames="spec")
def _gradient(leaves, arrays, *, spec):
    return jax.grad(spec.call)(leaves, arrays)


def _check_grad_structure(params, grads):
    p_def, g_def = jax.tree.structure(params), jax.tree.structure(grads)
    if p_def != g_def:
        raise ValueError(
            f"grad_fn must return a pytree with the structure of params; got {g_def}, "
            f"expected {p_def}"
        )
    for (path, p), g in zip(
        jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(grads)
    ):
        if jnp.shape(p) != jnp.shape(g):
            raise ValueError(
                f"grad_fn's gradient for leaf {path_name(path)} has shape {jnp.shape(g)}, "
                f"but the parameter has shape {jnp.shape(p)}"
            )


def grad_check(
    f: Callable,
    params: Any,
    *args,
    grad_fn: Callable | None = None,
    mode: str = "full",
    eps: float | None = None,
    n_directions: int = 8,
    key: jax.Array | None = None,
    tol: float = 1e-5,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    **kwargs,
) -> GradCheckReport:
    """Compare a gradient with centred finite differences, leaf by leaf, in float64.

    Args:
      f: ``f(params, *args, **kwargs) -> scalar``, traceable by JAX and deterministic.
      params: any pytree of float arrays (upcast to float64; the caller's arrays and global
        config are untouched).
      *args, **kwargs: passed to ``f`` (and ``grad_fn``); float arrays are upcast too.
      grad_fn: the gradient under test, ``grad_fn(params, *args, **kwargs)`` returning a
        pytree like params (e.g. a hand-written backward pass). Default ``jax.grad(f)``.
      mode: ``"full"`` perturbs every coordinate (2P evaluations, each recomputing only
        what its coordinate changes); ``"directions"`` compares
        ``<g, v>`` with the finite difference along ``n_directions`` random unit directions
        per leaf (2 × leaves × n_directions evaluations).
      eps: step size for every leaf; default ``6e-6 * max(1, rms(leaf))`` per leaf.
      n_directions: directions per leaf in ``"directions"`` mode.
      key: PRNG key for the directions (a fixed default when None).
      tol: the difference above which ``report.passed`` is False (default: the course's
        "check" band, 1e-5).
      memory_budget: bytes that one vmapped chunk of evaluations may use.

    Returns:
      A :class:`GradCheckReport`; ``str(report)`` is the per-leaf table.

    Raises:
      ValueError: an empty params tree, a non-scalar or non-deterministic ``f``, a
        ``grad_fn`` output whose structure or shapes differ from params, ``eps <= 0``,
        ``n_directions <= 0`` or an unknown mode.
      TypeError: a non-float params leaf.

    Example:
      >>> params = jaxhp.init_mlp(jax.random.key(0), (3, 5, 1))
      >>> x, y = jnp.ones((4, 3)), jnp.array([0, 1, 1, 0])
      >>> report = grad_check(jaxhp.loss, params, x, y, lambd=0.7)
      >>> report.verdict
      'great'
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: 'full', 'directions'")
    if eps is not None and not (float(eps) > 0):
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or n_directions <= 0:
        raise ValueError(f"n_directions must be a positive int, got {n_directions!r}")
    if not (tol > 0):
        raise ValueError(f"tol must be > 0, got {tol!r}")
    with jax.enable_x64(True):
        p = _prepare(f, params, args, kwargs, grad_fn, eps, memory_budget)
        if mode == "full":
            leaves, diff = _check_full(p)
        else:
            key = jax.random.key(0) if key is None else key
            leaves, diff = _check_directions(p, n_directions, key)
    return GradCheckReport(tuple(leaves), diff, verdict(diff), mode, tol, p)


def _noise_floor(p: _Problem, i: int, n: int) -> float:
    return 100 * _ROUNDING * (1 + abs(p.value)) / p.eps[i] * math.sqrt(n)


def _leaf_check(p: _Problem, i: int, numeric, analytic, *, n_floor: int, coordinates: bool):
    """The check of leaf i from its numeric and analytic values; with ``coordinates`` the
    values are per coordinate and the worst one is reported."""
    diff = _relative_difference(numeric, analytic, _noise_floor(p, i, n_floor))
    check = LeafCheck(
        path=p.names[i],
        shape=p.shapes[i],
        difference=diff,
        verdict=verdict(diff),
        n_checked=len(numeric),
    )
    if not coordinates or len(numeric) == 0:
        return check
    j = int(np.argmax(np.abs(numeric - analytic)))
    return check._replace(
        worst_index=tuple(int(k) for k in np.unravel_index(j, p.shapes[i])),
        analytic=float(analytic[j]),
        numeric=float(numeric[j]),
    )


def _check_full(p: _Problem):
    sizes = [math.prod(s) for s in p.shapes]
    per_leaf = _coordinates(p, {k: np.arange(n) for k, n in enumerate(sizes) if n})
    numeric = np.concatenate([per_leaf.get(k, np.zeros(0)) for k in range(len(sizes))])
    analytic = p.grad
    leaves = [
        _leaf_check(p, i, numeric[lo : lo + n], analytic[lo : lo + n], n_floor=n, coordinates=True)
        for i, (lo, n) in enumerate(zip(p.offsets, sizes))
    ]
    floor = max(_noise_floor(p, i, n) for i, n in enumerate(sizes))
    return leaves, _relative_difference(numeric, analytic, floor)


def _check_directions(p: _Problem, n_directions: int, key):
    blocks = [
        (lo, lo + math.prod(shape))
        for lo, shape in zip(p.offsets, p.shapes)
        for _ in range(n_directions)
    ]
    numeric, analytic = _directional(p, blocks, jax.random.split(key, len(blocks)))
    # Each directional derivative is a unit-norm projection: the floor counts directions.
    parts = [slice(i * n_directions, (i + 1) * n_directions) for i in range(len(p.names))]
    leaves = [
        _leaf_check(p, i, numeric[part], analytic[part], n_floor=n_directions, coordinates=False)
        for i, part in enumerate(parts)
    ]
    floor = max(_noise_floor(p, i, n_directions) for i in range(len(p.names)))
    return leaves, _relative_difference(numeric, analytic, floor)
