"""Gradient checking against centred finite differences, reported per parameter leaf.

COURSE.md point 11: ``d_approx[i] = (J(θ + ε e_i) - J(θ - ε e_i)) / (2 ε)`` and
``difference = ||d_approx - d|| / (||d_approx|| + ||d||)``. jaxhp computes it for every leaf
of the params pytree (named by ``jax.tree_util.keystr``) and overall, with the params and
float arguments upcast to float64 in a local ``jax.enable_x64`` context and the perturbed
evaluations vmapped in memory-sized chunks. In "full" mode only what a coordinate changes
is recomputed (:mod:`jaxhp.perturb`). Compiled programs are reused by later checks of the
same ``f`` with the same shapes and non-array arguments.

Precision. The step and the verdict bands follow the precision f actually computes in
(:mod:`jaxhp.gradcheck._precision`): ``ε_leaf = u^(1/3) max(1, rms(leaf))``, about 6e-6 in
float64 and 5e-3 in float32 code; the bands are the course's (<= 1e-7 great, <= 1e-5
check, <= 1e-3 suspicious, above: bug) widened to the resolution ``10 u^(2/3)``.

Only where a leaf's difference is above ``tol`` does the check do more, before it says
"bug":

1. Kinks. Coordinates whose ±ε step switches a branch of a piecewise primitive (relu,
   abs, max/min, clamp, a sign-dependent ``where``, sort/argmax selections; read from the
   jaxpr, :mod:`jaxhp.gradcheck._kinks`) are re-checked at steps down to ε/10^5 (ε/10
   below float64); if every one still crosses, they are listed as kinks with one-sided
   differences and left out of the leaf's difference.
2. Taylor remainder. Along the leaf's worst direction d,
   ``r(h) = |J(θ + h d) - J(θ) - h <g, d>|`` falls like h² for a right gradient and like h
   for a wrong one (and past a kink: those steps are left out). The measured order is
   reported; a leaf is called "bug" only when it is below 1.5, and "disputed" when the
   difference and the order disagree.

Zero gradients. A leaf whose analytic and numeric gradients both lie below the
finite-difference noise floor (``||·|| <= 100 u (1 + |J|) / ε_leaf * sqrt(n)``) counts as
zero and gets difference 0. In an f below float64 that floor is large (~1e-3 in float32),
and it grows with |J| (``1e10 + loss`` in float64): where the two gradients there differ
beyond the "suspicious" band and the analytic one is not rounding residue, the check
cannot tell, and the leaf is "unresolved": not checked, so not passed, nor called a bug;
a warning says why. An f that computes in float16 or bfloat16 is unresolved throughout:
there even a wrong sign lies inside the bands.

Dropout. A loss that draws fresh randomness on each call has no gradient to check and is
refused. A loss with dropout and a *fixed* key is a deterministic function of the params,
so checking it is valid: it checks the gradient for that mask.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.tree_util import keystr

from jaxhp import _warn, perturb
from jaxhp.gradcheck import _kinks
from jaxhp.gradcheck._precision import COURSE_BANDS, Precision, _sub_jaxprs, working_precision
from jaxhp.gradcheck._report import SEVERE, GradCheckReport, Kink, LeafCheck

BANDS = COURSE_BANDS
MODES = ("full", "directions")
CHECKS = ("vjp", "jvp")
DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of live evaluations per vmapped chunk
# grad_check's own keywords; any other keyword goes to f.
OPTIONS = (
    "kwargs",
    "grad_fn",
    "mode",
    "check",
    "order",
    "eps",
    "n_directions",
    "direction_key",
    "tol",
    "memory_budget",
)
_DEFAULTS = {
    "mode": "full",
    "check": "vjp",
    "order": 1,
    "n_directions": 8,
    "memory_budget": DEFAULT_MEMORY_BUDGET,
}


def verdict(difference: float) -> str:
    """The course's reading of a relative difference (float64 bands)."""
    for bound, name in BANDS:
        if difference <= bound:
            return name
    return "bug"


def path_name(path: tuple) -> str:
    """A readable leaf name: ``[0].W`` for a tuple of records, ``W1`` or ``enc.W`` for dicts."""
    name = keystr(path)
    if path and isinstance(path[0], jax.tree_util.DictKey):
        name = keystr(path, simple=True, separator=".")
    return name or "<root>"


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
    precision: Precision
    tol: float
    eps_rule: str  # how eps was chosen, in words


# --- compiled programs ----------------------------------------------------------------


@functools.partial(jax.jit, static_argnames="spec")
def _loss(leaves, arrays, *, spec):
    """``spec``'s function (f, or a user's backward pass) at the leaves, compiled."""
    return spec.call(leaves, arrays)


_DETERMINISTIC: dict = {}  # specs whose f gave the same value from two separate traces


def _value(spec: _Spec, leaves: list, arrays: tuple) -> float:
    """f at params, compiled. Randomness drawn in Python (np.random, a counter of keys) is
    fixed when f is traced, so the first check of a function traces it twice, separately,
    and refuses it when the two values differ, as two eager calls would (an eager call
    compiles each operation of f on its own: seconds for a small network)."""
    value = _loss(leaves, arrays, spec=spec)
    if isinstance(value, (tuple, list, dict)):
        raise ValueError(
            f"f must return a scalar cost, got a {type(value).__name__} of {len(value)} "
            "values; for f returning (loss, aux), check lambda params, *args: f(params, "
            "*args)[0]"
        )
    if jnp.shape(value) != ():
        raise ValueError(f"f must return a scalar cost, got an array of shape {jnp.shape(value)}")
    if spec not in _DETERMINISTIC:
        again = jax.jit(spec.call)(leaves, arrays)  # a new function: traced afresh
        if not np.array_equal(np.asarray(value), np.asarray(again), equal_nan=True):
            raise ValueError(
                f"f is not deterministic: two evaluations at the same params gave "
                f"{float(value)!r} and {float(again)!r}. Fix its randomness (pass a fixed "
                "dropout key) or set keep_prob=1 before checking gradients"
            )
        if len(_DETERMINISTIC) >= _MAX_COSTS:
            _DETERMINISTIC.clear()
        _DETERMINISTIC[spec] = True
    if not np.isfinite(float(value)):
        raise ValueError(f"f returned a non-finite cost {float(value)} at params")
    return float(value)


def _user_gradient(spec: _Spec, grad_fn, leaves: list, arrays: tuple):
    """The user's backward pass, compiled once per function and shapes; eagerly when it
    cannot be traced (it converts values to NumPy, or branches on them)."""
    grad_spec = spec._replace(f=_hashable(grad_fn))
    try:
        return _loss(leaves, arrays, spec=grad_spec)
    except (
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerArrayConversionError,
        jax.errors.TracerBoolConversionError,
        jax.errors.TracerIntegerConversionError,
    ):
        return grad_spec.call(leaves, arrays)


@functools.partial(jax.jit, static_argnames="spec")
def _gradient(leaves, arrays, *, spec):
    return jax.grad(spec.call)(leaves, arrays)


@functools.partial(jax.jit, static_argnames="spec")
def _forward_gradient(leaves, arrays, *, spec):
    return jax.jacfwd(spec.call)(leaves, arrays)


_BIG_EVALUATION_FLOPS = 5e6  # above this one evaluation already keeps the cores busy


_COSTS: dict = {}  # (spec, shapes and dtypes) -> (flops, bytes) of one evaluation
_MAX_COSTS = 256


def _evaluation_cost(traced, spec: _Spec, leaves: list, arrays: tuple) -> tuple[float, int]:
    """XLA's cost model of one evaluation of f: flops and bytes accessed, read from the
    lowered program (no compile). Kept per function and shapes: lowering again on every
    check costs tens of milliseconds. Where the backend has no cost model before compiling
    (CUDA's), the bytes are those of f's inputs and its largest value."""
    key = (spec, tuple((tuple(a.shape), str(a.dtype)) for a in (*leaves, *arrays)))
    if key not in _COSTS:
        try:
            cost = traced.lower().cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            found = float(cost.get("flops", 0.0)), int(cost.get("bytes accessed", 0))
        except Exception:  # noqa: BLE001 - the cost model is best effort on some backends
            found = 0.0, 0
        if found[1] == 0:
            inputs = sum(a.size * a.dtype.itemsize for a in (*leaves, *arrays))
            found = found[0], inputs + perturb.largest_value_bytes(traced.jaxpr.jaxpr)
        if len(_COSTS) >= _MAX_COSTS:
            _COSTS.clear()
        _COSTS[key] = found
    return _COSTS[key]


def _chunk_size(cost: tuple[float, int], leaves: list, budget: int) -> int:
    """Whole-function evaluations per vmapped chunk so that their live memory fits
    ``budget`` bytes (directions mode and locate), from one evaluation's ``cost``.

    Returns 1 (evaluate one after another inside one compiled loop, no vmap) when a single
    evaluation costs more than ~5 MFLOP: XLA's CPU batched matmuls then run slower than
    its plain ones.
    """
    flops, per_eval = cost
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
    chunk = min(chunk, jax.tree.leaves(xs)[0].shape[0])
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


def _unit_direction(size: int, lo, hi, key):
    """The random unit direction of ``key`` over ``size`` flat parameters, zero outside
    [lo, hi). Traced inside the programs that use it, so each draws the same vector."""
    index = jnp.arange(size)
    inside = (index >= lo) & (index < hi)
    v = jnp.where(inside, jax.random.normal(key, (size,), jnp.float64), 0.0)
    return v / jnp.linalg.norm(v)


@functools.partial(jax.jit, static_argnames=("spec", "chunk"))
def _directions_program(leaves, arrays, grad, eps_of, lo, hi, keys, *, spec, chunk):
    theta, unravel = ravel_pytree(list(leaves))

    def one(args):
        lo, hi, key = args
        v = _unit_direction(theta.size, lo, hi, key)
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


@functools.partial(jax.jit, static_argnames="spec")
def _crossing_program(leaves, arrays, coords, steps, *, spec):
    """For each flat coordinate c (of ``coords``) and step s: does J take another branch
    at θ + s e_c, and J(θ + s e_c). Coordinates as indices: a dense matrix of directions
    would take coordinates x steps x params of memory."""
    theta, unravel = ravel_pytree(list(leaves))
    crossed = _kinks.crossing(lambda *ls: spec.call(ls, arrays), list(leaves))

    def one(args):
        c, step = args
        moved = jax.tree.leaves(unravel(theta.at[c].add(step)))
        return crossed(moved), spec.call(moved, arrays)

    n, k = coords.shape[0], steps.shape[0]
    flags, values = jax.lax.map(
        one, (jnp.repeat(coords, k), jnp.tile(steps, n)), batch_size=min(8, n * k)
    )
    return flags.reshape(n, k), values.reshape(n, k)


def _values_along(spec, arrays, theta, unravel, direction, hs, chunk: int, crossed):
    """J(θ + h d) for each step h, NaN where J takes another branch there than at θ
    (``crossed``; the Taylor test leaves those steps out: past a kink the remainder falls
    like h, as a wrong gradient's), in vmapped chunks (one by one for a costly J)."""

    def value(h):
        moved = jax.tree.leaves(unravel(theta + h * direction))
        return jnp.where(crossed(moved), jnp.nan, spec.call(moved, arrays))

    return _map(value, hs, chunk)


@functools.partial(jax.jit, static_argnames=("spec", "chunk"))
def _taylor_program(leaves, arrays, direction, hs, *, spec, chunk):
    theta, unravel = ravel_pytree(list(leaves))
    crossed = _kinks.crossing(lambda *ls: spec.call(ls, arrays), list(leaves))
    return _values_along(spec, arrays, theta, unravel, direction, hs, chunk, crossed)


@functools.partial(jax.jit, static_argnames=("spec", "chunk"))
def _worst_direction_program(leaves, arrays, lo, hi, key, steps, hs, *, spec, chunk):
    """A disagreeing leaf's second opinion in one dispatch, along the direction v of
    (lo, hi, key): does J take another branch at θ + s v for any of ``steps`` (±ε); v; and
    J(θ + h v) for the Taylor steps ``hs`` (the smallest block, which settles a wrong
    gradient at once). The steps are mapped, so f is traced once per use (compile time)."""
    theta, unravel = ravel_pytree(list(leaves))
    v = _unit_direction(theta.size, lo, hi, key)
    crossed = _kinks.crossing(lambda *ls: spec.call(ls, arrays), list(leaves))
    flags = _map(lambda s: crossed(jax.tree.leaves(unravel(theta + s * v))), steps, chunk)
    return jnp.any(flags), v, _values_along(spec, arrays, theta, unravel, v, hs, chunk, crossed)


# --- arguments -----------------------------------------------------------------------


def _signature(f):
    try:
        return inspect.signature(f)
    except (TypeError, ValueError):
        return None


def _given(name: str, value) -> bool:
    """Whether a grad_check option was set to something other than its default."""
    return value is not None and not (name in _DEFAULTS and value == _DEFAULTS[name])


def _split_keywords(f, kwargs, f_keywords: dict, options: dict) -> dict:
    """f's keyword arguments: ``kwargs`` when given (then every bare keyword was the
    checker's), else the bare keywords that are not the checker's options. A checker option
    that f also names, given bare with a non-default value, is ambiguous and refused."""
    if kwargs is not None:
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a dict of f's keyword arguments, got {kwargs!r}")
        if f_keywords:
            raise TypeError(
                f"grad_check got unknown keywords {sorted(f_keywords)} next to kwargs=; "
                "with kwargs= every keyword of f goes inside it"
            )
        return dict(kwargs)
    sig = _signature(f)
    if sig is not None:
        named = {
            n
            for n, q in sig.parameters.items()
            if q.kind in (q.KEYWORD_ONLY, q.POSITIONAL_OR_KEYWORD)
        }
        clash = sorted(n for n in named & set(options) if _given(n, options[n]))
        if clash:
            name = clash[0]
            raise ValueError(
                f"{name}={options[name]!r} is ambiguous: it is both a grad_check option and a "
                f"parameter of f. Pass f's keywords as kwargs={{{name!r}: ...}} (then bare "
                "keywords are grad_check's own)"
            )
    return dict(f_keywords)


def _check_call(f, params, args, kwargs, name: str = "f"):
    """A clear error when f (or grad_fn: ``name``) cannot take (params, *args, **kwargs)."""
    sig = _signature(f)
    if sig is None:
        return
    try:
        sig.bind(params, *args, **kwargs)
    except TypeError as error:
        hint = ""
        if "key" in kwargs and "key" not in sig.parameters:
            hint = " (grad_check's own PRNG key for random directions is direction_key=)"
        if name != "f":
            hint += "; grad_check calls grad_fn with f's arguments and keywords"
        raise TypeError(
            f"{name}{sig} cannot be called as {name}(params, *args, **kwargs) with "
            f"{len(args)} extra positional and keywords {sorted(kwargs)}: {error}{hint}"
        ) from None


def _validate(mode, check, order, eps, n_directions, tol, memory_budget, grad_fn):
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: 'full', 'directions'")
    if check not in CHECKS:
        raise ValueError(f"unknown check {check!r}; allowed: 'vjp', 'jvp'")
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if grad_fn is not None and (check == "jvp" or order == 2):
        raise ValueError(
            "grad_fn cannot be combined with check='jvp' or order=2: those check JAX's own "
            "derivatives of f"
        )
    if grad_fn is not None and not callable(grad_fn):
        raise TypeError(f"grad_fn must be callable, got {grad_fn!r}")
    if eps is not None:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (eps > 0):
            raise ValueError(f"eps must be > 0, got {eps!r}")
        if not math.isfinite(eps):
            raise ValueError(f"eps must be finite, got {eps!r}")
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or n_directions <= 0:
        raise ValueError(f"n_directions must be a positive int, got {n_directions!r}")
    if tol is not None and (
        isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1)
    ):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive int of bytes, got {memory_budget!r}")


# --- preparation -----------------------------------------------------------------------


def _to_float64(tree):
    def cast(leaf):
        if isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(leaf, jnp.float64)
        return leaf

    return jax.tree.map(cast, tree)


def _rms(leaf) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(leaf))))) if leaf.size else 0.0


def _steps(leaves, names, eps, precision: Precision) -> tuple[list[float], str]:
    """Per-leaf steps and their rule in words; warns about a step far from the optimum."""
    if eps is None:
        steps = [precision.eps * max(1.0, _rms(leaf)) for leaf in leaves]
        return steps, f"{precision.eps:.1e} * max(1, rms(leaf))"
    for leaf, name in zip(leaves, names):
        best = precision.eps * max(1.0, _rms(leaf))
        if not best / 1e3 <= eps <= best * 1e2:
            _warn.warn(
                f"eps={eps!r} is far from the step that suits leaf {name} in "
                f"{precision.dtype} code (~{best:.1e} = u^(1/3) * max(1, rms)); the "
                "difference will measure truncation or rounding error. The Taylor test "
                "still judges the gradient before any 'bug'"
            )
            break
    return [float(eps)] * len(leaves), f"{eps:.1e} (given)"


def _custom_vjp_names(jaxpr) -> list[str]:
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name.startswith("custom_vjp"):
            found.append(_rule_name(eqn))
        for sub in _sub_jaxprs(eqn):
            found += _custom_vjp_names(sub)
    return found


def _rule_name(eqn) -> str:
    """The name of the function a custom_vjp rule belongs to, as its debug info has it."""
    call = eqn.params.get("call_jaxpr")
    info = getattr(getattr(call, "jaxpr", call), "debug_info", None)
    source = getattr(info, "func_src_info", None) or "custom_vjp"
    return source.split(" ")[0]


def _prepare(f, params, args, kwargs, grad_fn, eps, tol, check, memory_budget) -> _Problem:
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
    spec, leaves, arrays = _spec(f, params, args, kwargs)
    value = _value(spec, leaves, arrays)
    traced = _loss.trace(leaves, arrays, spec=spec)  # one trace sizes chunks, finds precision
    if check == "jvp":
        rules = _custom_vjp_names(traced.jaxpr.jaxpr)
        if rules:
            raise ValueError(
                f"check='jvp': f uses a custom_vjp rule ({', '.join(sorted(set(rules)))}), "
                "which defines reverse mode only, so forward mode is undefined; use "
                "check='vjp' or give it a custom_jvp rule"
            )
        grads = jax.tree.unflatten(spec.params_tree, _forward_gradient(leaves, arrays, spec=spec))
    elif grad_fn is None:
        grads = jax.tree.unflatten(spec.params_tree, _gradient(leaves, arrays, spec=spec))
    else:
        grads = _to_float64(_user_gradient(spec, grad_fn, leaves, arrays))
        _check_grad_structure(params, grads)
    grad_flat, _ = ravel_pytree(grads)
    names = [path_name(path) for path, _ in leaves_with_paths]
    shapes = [tuple(jnp.shape(leaf)) for leaf in leaves]
    sizes = [math.prod(s) for s in shapes]
    offsets = [int(o) for o in np.cumsum([0, *sizes[:-1]])]
    precision = working_precision(traced.jaxpr, len(leaves))
    steps, rule = _steps(leaves, names, eps, precision)
    return _Problem(
        spec=spec,
        leaves=leaves,
        arrays=arrays,
        grad=np.asarray(grad_flat, np.float64),
        value=float(value),
        names=names,
        shapes=shapes,
        offsets=offsets,
        eps=steps,
        chunk=_chunk_size(_evaluation_cost(traced, spec, leaves, arrays), leaves, memory_budget),
        batch=_batch_sizes(traced, leaves, memory_budget),
        precision=precision,
        tol=precision.tol if tol is None else float(tol),
        eps_rule=rule,
    )


def _check_grad_structure(params, grads):
    p_def, g_def = jax.tree.structure(params), jax.tree.structure(grads)
    if p_def != g_def:
        kinds = f"a {type(grads).__name__}, params is a {type(params).__name__}"
        if type(grads) is type(params):  # the same container: say where the leaves differ
            got = [path_name(k) for k, _ in jax.tree_util.tree_flatten_with_path(grads)[0]]
            want = [path_name(k) for k, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
            extra = [k for k in got if k not in want][:4]
            missing = [k for k in want if k not in got][:4]
            kinds = (
                f"leaves {', '.join(extra)} where params has {', '.join(missing)}"
                if len(got) == len(want) and extra
                else f"{len(got)} leaves, params has {len(want)}"
            )
        raise ValueError(
            f"grad_fn must return a pytree with the structure of params; it returned {kinds} "
            f"(got {g_def}, expected {p_def})"
        )
    for (path, p), g in zip(
        jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(grads)
    ):
        if jnp.shape(p) != jnp.shape(g):
            raise ValueError(
                f"grad_fn's gradient for leaf {path_name(path)} has shape {jnp.shape(g)}, "
                f"but the parameter has shape {jnp.shape(p)}"
            )


# --- the entry point -------------------------------------------------------------------


def grad_check(
    f: Callable,
    params: Any,
    *args,
    kwargs: Mapping[str, Any] | None = None,
    grad_fn: Callable | None = None,
    mode: str = "full",
    check: str = "vjp",
    order: int = 1,
    eps: float | None = None,
    n_directions: int = 8,
    direction_key: jax.Array | None = None,
    tol: float | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    **f_keywords,
) -> GradCheckReport:
    """Compare a gradient with centred finite differences, leaf by leaf.

    f's own arguments follow ``params`` positionally; its keyword arguments go in
    ``kwargs={...}``. For convenience, keywords that are not grad_check's options (see
    ``OPTIONS``) also reach f, so ``grad_check(jaxhp.loss, p, x, y, key=k, keep_prob=0.8)``
    passes both to the loss. A grad_check option that f also names, given bare, is refused
    as ambiguous; with ``kwargs=`` every bare keyword is grad_check's.

    Args:
      f: ``f(params, *args, **kwargs) -> scalar``, traceable by JAX and deterministic.
      params: any pytree of float arrays (upcast to float64; the caller's arrays and global
        config are untouched).
      *args: passed to ``f`` (and ``grad_fn``); float arrays are upcast too.
      kwargs: f's keyword arguments.
      grad_fn: the gradient under test, ``grad_fn(params, *args, **kwargs)`` returning a
        pytree like params (e.g. a hand-written backward pass). Default: JAX's.
      mode: ``"full"`` perturbs every coordinate (2P evaluations, each recomputing only
        what its coordinate changes); ``"directions"`` compares ``<g, v>`` with the finite
        difference along ``n_directions`` random unit directions per leaf.
      check: ``"vjp"`` checks reverse mode (``jax.grad``, custom_vjp rules) or
        ``grad_fn``; ``"jvp"`` checks forward mode (``jax.jacfwd``, custom_jvp rules).
      order: 1 checks the gradient; 2 checks Hessian-vector products (reverse over
        reverse for "vjp", forward over forward for "jvp") against centred differences of
        the gradient, as for custom rules used by second-order methods.
      eps: step size for every leaf; default ``u^(1/3) * max(1, rms(leaf))`` for the
        working precision u of f. A step far from that default warns.
      n_directions: directions per leaf in ``"directions"`` mode.
      direction_key: PRNG key for the random directions (a fixed default when None).
      tol: the difference above which a leaf fails; default the upper edge of the "check"
        band of the working precision (1e-5 in float64 code).
      memory_budget: bytes that one vmapped chunk of evaluations may use.
      **f_keywords: f's keyword arguments, when ``kwargs`` is not given.

    Returns:
      A :class:`GradCheckReport`; ``str(report)`` is the per-leaf table.

    Raises:
      ValueError: an empty params tree, a non-scalar or non-deterministic ``f``, a
        ``grad_fn`` output whose structure or shapes differ from params, a bad option,
        an ambiguous keyword, ``check="jvp"`` on a custom_vjp-only f, or ``order=2`` on
        an f whose gradient is not differentiable.
      TypeError: a non-float params leaf, or arguments f cannot take.

    Warns:
      UserWarning: a leaf could not be checked ("unresolved": gradients below what
        finite differences resolve in f's precision and at its |J|, or an f that computes
        in float16/bfloat16).

    Example:
      >>> params = jaxhp.init_mlp(jax.random.key(0), (3, 5, 1))
      >>> x, y = jnp.ones((4, 3)), jnp.array([0, 1, 1, 0])
      >>> report = grad_check(jaxhp.loss, params, x, y, lambd=0.7)
      >>> report.verdict
      'great'
    """
    _validate(mode, check, order, eps, n_directions, tol, memory_budget, grad_fn)
    options = {
        "grad_fn": grad_fn,
        "mode": mode,
        "check": check,
        "order": order,
        "eps": eps,
        "n_directions": n_directions,
        "direction_key": direction_key,
        "tol": tol,
        "memory_budget": memory_budget,
    }
    f_kwargs = _split_keywords(f, kwargs, f_keywords, options)
    _check_call(f, params, args, f_kwargs)
    if grad_fn is not None:
        _check_call(grad_fn, params, args, f_kwargs, name="grad_fn")
    key = jax.random.key(0) if direction_key is None else direction_key
    with jax.enable_x64(True):
        p = _prepare(f, params, args, f_kwargs, grad_fn, eps, tol, check, memory_budget)
        if order == 2:
            from jaxhp.gradcheck._second import check_second_order

            leaves, diff = check_second_order(p, mode, check, n_directions, key)
        elif mode == "full":
            leaves, diff = _check_full(p)
        else:
            leaves, diff = _check_directions(p, n_directions, key)
    unchecked = [c for c in leaves if c.verdict == "unresolved"]
    if unchecked:
        first = unchecked[0]
        why = first.note.removeprefix("not checked: ")
        if len(unchecked) > 1:  # each leaf's own reason is in its note
            names = ", ".join(c.path for c in unchecked)
            why = (
                f"{len(unchecked)} leaves ({names}); each one's note in the report says why. "
                f"{first.path}: {why}"
            )
        else:
            why = f"{first.path}: {why}"
        _warn.warn(f"grad_check could not check {why}")
    return GradCheckReport(
        tuple(leaves),
        diff,
        _overall_verdict(p, leaves, diff),
        mode,
        p.tol,
        p,
        p.precision,
        check,
        order,
    )


def _overall_verdict(p: _Problem, leaves, diff: float) -> str:
    """The worst leaf's severe verdict; else the overall difference's band, unless a leaf
    was not resolved (a "bug" band stands: the overall difference did resolve)."""
    for name in SEVERE:
        if any(c.verdict == name for c in leaves):
            return name
    band = p.precision.verdict(diff)
    if band != "bug" and any(c.verdict == "unresolved" for c in leaves):
        return "unresolved"
    return band


# --- judging ---------------------------------------------------------------------------


def _noise_floor(p: _Problem, i: int, n: int) -> float:
    return 100 * p.precision.u * (1 + abs(p.value)) / p.eps[i] * math.sqrt(n)


def norm(v) -> float:
    """The 2-norm, scaled first (squares of gradients near 1e160 overflow to inf, and
    their differences read NaN). Elementwise sums, not a BLAS dot: on long vectors a
    threaded BLAS call can stall for milliseconds while XLA's threads hold the cores."""
    v = np.asarray(v, np.float64).ravel()
    scale = float(np.max(np.abs(v))) if v.size else 0.0
    if not (0 < scale < np.inf):
        return scale  # 0, inf or NaN: the norm is too
    return scale * math.sqrt(float(np.sum(np.square(v / scale))))


def _relative_difference(numeric: np.ndarray, analytic: np.ndarray, floor: float) -> float:
    denominator = norm(numeric) + norm(analytic)
    gap = norm(numeric - analytic)
    if denominator <= floor:
        return 0.0 if gap <= floor else 1.0
    return float(gap / denominator)


def _unresolved(p: _Problem, i: int, check: LeafCheck, numeric, analytic) -> LeafCheck:
    """``check``, or "unresolved" where leaf i passed only because both its gradients lie
    below the noise floor (difference 0) while they differ beyond the "suspicious" band
    (float32: a floor near 1e-3, where the course's 0.01-scale params give bias gradients
    of 1e-7, and a doubled one passed as "great"; float64 at |J| = 1e10: a floor above a
    gradient of norm 5), or where f computes in float16/bfloat16, whose bands reach past
    the largest relative difference, 1. Such a leaf is not passed, nor called a bug: its
    verdict says it was not checked, and grad_check warns. In float64 an analytic side
    below the differences' own rounding noise is rounding residue (a bias before a batch
    norm: 1e-17), and the leaf agrees."""
    if check.verdict in SEVERE:
        return check
    too_coarse = coarse_precision_note(p.precision)
    if too_coarse:
        return check._replace(verdict="unresolved", note=too_coarse)
    if check.difference > p.tol:
        return check
    ana, num = norm(analytic), norm(numeric)
    floor, gap = _noise_floor(p, i, len(numeric)), norm(numeric - analytic)
    suspicious = p.precision.bands[-1][0]
    # Below this the analytic side is rounding residue (float64: a bias before a batch
    # norm, 1e-17); in float32 a real gradient can be 1e-7 (the course's biases).
    residue = p.precision.u * norm(p.grad)
    if p.precision.u < 1e-10:
        residue = max(residue, floor / 100)  # the differences' own rounding noise
    if not (ana + num <= floor and ana > residue and gap > suspicious * (ana + num)):
        return check
    return check._replace(
        verdict="unresolved",
        note=f"not checked: its numeric and analytic gradients (norms {num:.1e} and "
        f"{ana:.1e}) both lie below the finite-difference noise floor in "
        f"{p.precision.dtype} at |J| = {abs(p.value):.2g} ({floor:.1e}), so their difference "
        f"measured against that floor reads 0, though they differ by "
        f"{100 * gap / (ana + num):.2g}% of their norms: finite differences cannot tell "
        f"whether they agree; {_advice(p)}",
    )


def coarse_precision_note(precision: Precision) -> str:
    """Why nothing can be checked in ``precision`` (float16, bfloat16), else "": its
    "suspicious" band reaches past 1, the largest relative difference, so even a wrong
    sign would pass."""
    if precision.bands[-1][0] < 1:
        return ""
    return (
        f"not checked: f computes in {precision.dtype}, whose finite differences tell "
        f"relative differences only above {precision.resolution:.2g}, so even a wrong sign "
        f"would pass; {_IN_FLOAT64}"
    )


_IN_FLOAT64 = (
    "compute f in float64 (jaxhp upcasts params and float arguments: drop low-precision "
    "casts in f) to check it"
)


def _advice(p: _Problem) -> str:
    """How to make an unresolved leaf checkable: float64, a smaller |J|, larger gradients."""
    if p.precision.u > 1e-10:
        return _IN_FLOAT64
    if abs(p.value) > 100:
        return "check f without its constant offset (the noise grows with |J|), or a larger eps"
    return (
        "its gradients are too small for finite differences here (vanishing through many "
        "layers of small weights?): check it at params of a larger scale, or with a larger eps"
    )


def _not_finite(p: _Problem, i: int, numeric, n_checked: int, index=None) -> LeafCheck:
    where = "" if index is None else f" (first at coordinate {[int(k) for k in index]})"
    return LeafCheck(
        path=p.names[i],
        shape=p.shapes[i],
        difference=float("nan"),
        verdict="not finite",
        n_checked=n_checked,
        note=f"f is not finite at θ ± ε for leaf {p.names[i]}{where}; the gradient cannot be "
        "checked there (try a smaller eps or move θ away from the singularity)",
    )


def _analytic_not_finite(p: _Problem, i: int, numeric, analytic) -> LeafCheck:
    """A bug: f is finite around θ (its differences are), its gradient is not."""
    j = int(np.argmin(np.isfinite(analytic)))
    index = tuple(int(k) for k in np.unravel_index(j, p.shapes[i]))
    return LeafCheck(
        path=p.names[i],
        shape=p.shapes[i],
        difference=float("nan"),
        verdict="bug",
        n_checked=len(numeric),
        worst_index=index,
        analytic=float(analytic[j]),
        numeric=float(numeric[j]),
        note=f"the analytic gradient is {float(analytic[j])} at coordinate {list(index)}, "
        "where f and its finite differences are finite (a where() that hides a NaN branch, "
        "such as where(x > 0, sqrt(x), 0), still differentiates it: make the hidden "
        "branch's input safe too)",
    )


def _judge_coordinates(p: _Problem, i: int, numeric: np.ndarray, analytic: np.ndarray):
    """The check of leaf i from per-coordinate values; above tol, kinks are set aside and
    the Taylor test is asked before any "bug". Returns the check and the numeric values
    with re-checked coordinates replaced and kinks set to the analytic values."""
    n = len(numeric)
    if not np.all(np.isfinite(numeric)):
        j = int(np.argmin(np.isfinite(numeric)))
        return _not_finite(p, i, numeric, n, np.unravel_index(j, p.shapes[i])), numeric
    if not np.all(np.isfinite(analytic)):
        return _analytic_not_finite(p, i, numeric, analytic), numeric
    floor = _noise_floor(p, i, n)
    diff = _relative_difference(numeric, analytic, floor)
    kinks, note, order = (), "", None
    unsure_note = ""
    if diff > p.tol and n:
        at_eps = numeric
        numeric, kinks, outside, agreed, unsure = _set_aside_kinks(p, i, numeric, analytic)
        diff = _relative_difference(numeric, analytic, floor)
        notes = []
        if len(unsure) and diff <= p.tol:
            with_them = numeric.copy()
            with_them[unsure] = at_eps[unsure]
            if _relative_difference(with_them, analytic, floor) > p.tol:
                # The leaf passes only without them: it was not checked there.
                smallest = _kink_ladder(p.precision)[-1]
                unsure_note = (
                    f"not checked: {_coordinates_words(len(unsure))} sit among kinks closer "
                    f"than the smallest step (ε × {smallest:g}) and the leaf agrees only "
                    f"without them; {_advice(p)}"
                )
        if kinks:
            notes.append(
                f"{_coordinates_words(len(kinks) - outside)} cross a kink and are left out "
                "of the difference"
            )
        if outside:
            notes.append(
                f"{_coordinates_words(outside, 'kink coordinate')} have an analytic value "
                "outside their one-sided derivatives and are compared with the nearer one"
            )
        if agreed:
            notes.append(
                f"{_coordinates_words(agreed)} whose ±eps step crosses a kink agree at a "
                "smaller step, within its rounding noise"
            )
        note = "; ".join(notes)
    verdict_ = p.precision.verdict(diff)
    if unsure_note:
        verdict_, note = "unresolved", "; ".join(s for s in (note, unsure_note) if s)
    elif diff > p.tol:
        gap = np.zeros(len(p.grad))
        gap[p.offsets[i] : p.offsets[i] + n] = analytic - numeric
        order = _taylor_order(p, i, gap)
        if (order is None or order >= 1.5) and norm(gap) <= 3 * _noise_floor(p, i, n) / 100:
            verdict_, extra = "unresolved", _within_rounding_note(p, diff, order)
        else:
            verdict_, extra = _with_taylor(verdict_, order, p.precision)
        note = "; ".join(s for s in (note, extra) if s)
    check = LeafCheck(
        path=p.names[i],
        shape=p.shapes[i],
        difference=diff,
        verdict=verdict_,
        n_checked=n,
        kinks=kinks,
        taylor_order=order,
        note=note,
    )
    check = _unresolved(p, i, check, numeric, analytic)
    if n == 0:
        return check, numeric
    j = int(np.argmax(np.abs(numeric - analytic)))
    return check._replace(
        worst_index=tuple(int(k) for k in np.unravel_index(j, p.shapes[i])),
        analytic=float(analytic[j]),
        numeric=float(numeric[j]),
    ), numeric


def _coordinates_words(n: int, noun: str = "coordinate") -> str:
    """``1 coordinate``, ``3 coordinates``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _within_rounding_note(p: _Problem, diff: float, order: float | None) -> str:
    """Why a leaf whose gap lies within the differences' own rounding noise
    (``u (1 + |J|) / ε``, large at a large |J|) is not checked rather than disputed."""
    taylor = (
        "the Taylor test is inconclusive"
        if order is None
        else f"the Taylor remainder falls with order {order:.2f} (2 = a right gradient)"
    )
    return (
        f"not checked: the difference {diff:.1e} lies within the rounding noise of "
        f"{p.precision.dtype} finite differences at |J| = {abs(p.value):.2g}, and {taylor}; "
        f"{_advice(p)}"
    )


def _with_taylor(band: str, order: float | None, precision) -> tuple[str, str]:
    """The verdict once the Taylor order is known, and a note that explains it."""
    if order is not None and order < 1.5:
        return "bug", f"Taylor remainder falls with order {order:.2f} (1 = a wrong gradient)"
    # In float32 both tests are coarse: a gradient 1% off can read as "suspicious" by the
    # difference and as order ~1.8 by the remainder, so float64 settles it, not eps.
    coarse = precision.u > 1e-10
    settle = (
        f"; f computes in {precision.dtype}, whose rounding can hide a gradient error of "
        "about 1% from both tests: check f in float64 (under jax.enable_x64(True)) to "
        "settle it"
        if coarse
        else ""
    )
    if order is None:
        return band, f"Taylor test inconclusive (the remainder stays within rounding noise){settle}"
    hint = settle or ": check eps, or the kinks and noise of f"
    return "disputed", (
        f"the finite difference disagrees, but the Taylor remainder falls with order "
        f"{order:.2f} (2 = a right gradient, 1 = a wrong one){hint}"
    )


_KINK_BATCHES = (8, 32, 128, 512, 2048)


def _kink_ladder(precision: Precision) -> np.ndarray:
    """The steps, as fractions of ε, at which a coordinate whose ±ε step crosses a kink is
    looked at again: down to where their rounding noise stays usable (float64 1e-5 ε,
    about 6e-11; below float64 one tenth). In a deep ReLU net of 0.01-scale weights the
    last layers' pre-activations lie within ~1e-8 of their kinks (1e-10 six layers deep),
    so ε/100 still crosses."""
    return 10.0 ** -np.arange(6 if precision.u < 1e-10 else 2)


def _set_aside_kinks(p: _Problem, i: int, numeric, analytic):
    """Re-check the coordinates of leaf i, those that disagree alone first, then the others
    by their gaps, in growing batches, at each step t of the ladder ε, ε/10, ...: does ±t
    cross a kink, and J(θ ± t). A coordinate with a step that crosses on neither side gets
    the centred difference at the largest such t. Otherwise it is a kink, with one-sided
    derivatives (:func:`_one_sided`); a kink whose analytic value lies between them is left
    out of the difference, one outside them counts, against the nearer. Stops after a batch
    that holds a disagreement that is no kink's, or no crossing at all. A coordinate whose
    re-checked difference agrees within that step's rounding noise counts as agreeing
    (``agreed``)."""
    numeric = numeric.copy()
    h = p.eps[i]
    fractions = _kink_ladder(p.precision)
    # A coordinate disagrees beyond tol and beyond the rounding noise of one difference.
    allowed = p.tol * (np.abs(numeric) + np.abs(analytic)) + _noise_floor(p, i, 1)
    gap = np.abs(numeric - analytic)
    # Those that disagree alone first, then the rest: below that, a dozen coordinates whose
    # steps cross kinks can still add up to a leaf's disagreement.
    bad, rest = np.nonzero(gap > allowed)[0], np.nonzero((gap > 0) & (gap <= allowed))[0]
    order = np.concatenate([bad[np.argsort(-gap[bad])], rest[np.argsort(-gap[rest])]])
    kinks, outside, agreed, unsure, start = [], 0, 0, [], 0
    # The rounding noise of a one-sided difference at step 1 (that of J, with a margin of
    # 10; at step t it is unit / t).
    unit = 10 * p.precision.u * (1 + abs(p.value))
    relative = max(p.tol, p.precision.resolution)  # the relative gap two values may have
    steps = np.stack([h * fractions, -h * fractions], axis=1).ravel()  # +t, -t per level
    for size in _KINK_BATCHES:
        batch = order[start : start + size]
        if len(batch) == 0:
            break
        start += len(batch)
        coords = np.asarray(p.offsets[i] + batch, np.int32)
        flags, values = (
            np.asarray(a) for a in _crossing_program(p.leaves, p.arrays, coords, steps, spec=p.spec)
        )
        plain_bad, crossing = False, False
        for c, crossed, vals in zip(batch, flags.reshape(len(batch), -1, 2), values):
            vals = vals.reshape(-1, 2)
            if not crossed[0].any():
                plain_bad |= gap[c] > allowed[c]
                continue
            crossing = True
            clear = np.nonzero(~crossed.any(axis=1))[0]
            if len(clear):
                k = clear[0]
                small = (vals[k, 0] - vals[k, 1]) / (2 * h * fractions[k])
                noise = p.tol * (abs(small) + abs(analytic[c])) + unit / (h * fractions[k])
                if abs(small - analytic[c]) <= noise:
                    numeric[c] = analytic[c]
                    agreed += 1
                else:
                    numeric[c] = small
                    plain_bad = True
                continue
            sides = [
                _one_sided(
                    p.value, vals[:, side], crossed[:, side], h * fractions, side, unit, relative
                )
                for side in (1, 0)
            ]
            (left, t_left, left_span), (right, t_right, right_span) = sides
            kinks.append(_kink(p, i, c, analytic[c], (left, right), (t_left, t_right), unit))
            slack = p.tol * (abs(numeric[c]) + abs(analytic[c]) + abs(left) + abs(right))
            # Any value between the one-sided derivatives is a valid (sub)gradient there.
            low, high = min(left, right), max(left, right)
            inside = low - slack - unit / min(t_left, t_right) <= analytic[c]
            inside &= analytic[c] <= high + slack + unit / min(t_left, t_right)
            if not inside and (left_span or right_span):
                # Kinks closer than the smallest step may blend every estimate: within the
                # range of all of them, to the smallest step's noise, the leaf is unsure.
                spans = [span or (slope, slope) for slope, _, span in sides]
                low, high = min(a for a, _ in spans), max(b for _, b in spans)
                noise = slack + unit / (h * fractions[-1])
                if low - noise <= analytic[c] <= high + noise:
                    unsure.append(c)
                    inside = True
            if inside:
                numeric[c] = analytic[c]
            else:  # one outside them is compared with the nearer
                numeric[c] = low if analytic[c] < low else high
                outside += 1
                plain_bad = True
        if plain_bad or not crossing:
            break
    return numeric, tuple(kinks), outside, agreed, np.asarray(unsure, np.int64)


def _kink(p: _Problem, i: int, c: int, analytic: float, slopes, steps, unit: float) -> Kink:
    """Coordinate c's kink; which one-sided slope the analytic value matches, to the
    precision's resolution and the rounding noise at the steps they were measured at
    (``unit / t``)."""
    scale = abs(slopes[0]) + abs(slopes[1]) + abs(analytic) + 1e-300
    near = [
        abs(analytic - slope) <= max(p.tol, p.precision.resolution) * scale + unit / t
        for slope, t in zip(slopes, steps)
    ]
    left, right = slopes
    matches = {(True, True): "both", (True, False): "left", (False, True): "right"}.get(
        tuple(near), "neither"
    )
    index = tuple(int(k) for k in np.unravel_index(c, p.shapes[i]))
    return Kink(index, float(analytic), float(left), float(right), matches, steps)


def _one_sided(value: float, moved, crossed, steps, side: int, unit: float, precision: float):
    """The one-sided derivative on one side (0: right, 1: left) from J at θ ± t for the
    ladder's steps t. Where some step crosses no kink: at the largest such t; returns
    (slope, t, None). Where every step crosses and each step's estimate agrees with the
    next smaller one's (within the latter's rounding noise ``unit / t`` and the relative
    ``precision``): one kink, at θ itself; returns (the slope at ε, ε, None). Otherwise
    kinks lie closer than the steps tell apart and each estimate blends the slopes around
    θ: returns (the slope at the largest t from which all smaller steps agree, that t, the
    range of every step's estimate)."""
    sign = 1.0 if side == 0 else -1.0
    slopes = sign * (moved - value) / steps
    clear = np.nonzero(~crossed)[0]
    if len(clear):
        return float(slopes[clear[0]]), float(steps[clear[0]]), None
    # Adjacent steps agree to the smaller one's rounding noise and to the precision (their
    # truncation errors, t f''/2, differ too).
    scale = np.abs(slopes[:-1]) + np.abs(slopes[1:])
    agree = np.abs(np.diff(slopes)) <= unit / steps[1:] + precision * scale
    if agree.all():  # one kink, at θ itself
        return float(slopes[0]), float(steps[0]), None
    k = len(agree) - int(np.argmin(agree[::-1]))
    return float(slopes[k]), float(steps[k]), (float(np.min(slopes)), float(np.max(slopes)))


# Steps h = scale * 4^-k down to ~1e-9 scale: 15 evaluations cover float64's useful range.
_TAYLOR_STEPS = 15
# Steps evaluated per call, from the smallest up (divides _TAYLOR_STEPS: one compiled shape).
# The fit needs 3, and a wrong gradient's remainder usually stands above the noise at every
# step, so one block of 3 settles it.
_TAYLOR_BLOCK = 3


def _taylor_steps(p: _Problem, i: int) -> np.ndarray:
    scale = max(1.0, _rms(p.leaves[i]))
    return scale * 0.25 ** np.arange(_TAYLOR_STEPS, dtype=np.float64)


def _taylor_order(p: _Problem, i: int, direction: np.ndarray, smallest=None) -> float | None:
    """Order of ``r(h) = |J(θ + h d) - J(θ) - h <g, d>|`` as h shrinks, along ``direction``
    (flat over all params, nonzero on leaf i only; normalised here), fitted on the 3
    smallest steps whose remainder stands above rounding noise (1000 u max(|J|,
    |J(θ + h d)|)). None when fewer than 3 do. ``smallest``: J at the smallest block of
    steps when already evaluated.

    Steps are evaluated from the smallest up, a block at a time, until 3 stand above the
    noise: all smaller steps have been evaluated by then, so the order is the one that
    evaluating every step would give."""
    length = norm(direction)
    if not 0 < length < np.inf:
        return None
    d = direction / length
    hs = _taylor_steps(p, i)
    slope = float(np.sum(p.grad * d))
    values = np.full(_TAYLOR_STEPS, np.nan)
    for stop in range(_TAYLOR_STEPS, 0, -_TAYLOR_BLOCK):
        block = slice(stop - _TAYLOR_BLOCK, stop)
        if stop == _TAYLOR_STEPS and smallest is not None:
            values[block] = smallest
        else:
            values[block] = np.asarray(
                _taylor_program(p.leaves, p.arrays, d, hs[block], spec=p.spec, chunk=p.chunk)
            )
        if len(_above_noise(hs, values, p.value, slope, p.precision.u)[0]) >= 3:
            break
    return remainder_order(hs, values, p.value, slope, p.precision.u)


def _above_noise(hs, values, value, slope, u):
    """Indices of the steps whose remainder stands above rounding noise, and remainders."""
    r = np.abs(values - value - hs * slope)
    noise = 1e3 * u * np.maximum(abs(value), np.abs(values))
    return np.nonzero(np.isfinite(r) & (r > noise))[0], r


def remainder_order(hs, values, value, slope, u) -> float | None:
    """The fitted log-log slope of the Taylor remainder (see :func:`_taylor_order`)."""
    valid, r = _above_noise(hs, values, value, slope, u)
    if len(valid) < 3:
        return None
    use = valid[-3:]
    return float(np.polyfit(np.log(hs[use]), np.log(r[use]), 1)[0])


def _check_full(p: _Problem):
    sizes = [math.prod(s) for s in p.shapes]
    per_leaf = _coordinates(p, {k: np.arange(n) for k, n in enumerate(sizes) if n})
    numeric = np.concatenate([per_leaf.get(k, np.zeros(0)) for k in range(len(sizes))])
    analytic = p.grad
    leaves, parts = [], []
    for i, (lo, n) in enumerate(zip(p.offsets, sizes)):
        check, judged = _judge_coordinates(p, i, numeric[lo : lo + n], analytic[lo : lo + n])
        leaves.append(check)
        parts.append(judged)
    return leaves, _overall(p, parts, sizes)


def _overall(p: _Problem, parts, sizes) -> float:
    numeric = np.concatenate(parts) if parts else np.zeros(0)
    if not np.all(np.isfinite(numeric)):
        return float("nan")
    floor = max(_noise_floor(p, i, n) for i, n in enumerate(sizes))
    return _relative_difference(numeric, p.grad[: len(numeric)], floor)


def _check_directions(p: _Problem, n_directions: int, key):
    blocks = [
        (lo, lo + math.prod(shape))
        for lo, shape in zip(p.offsets, p.shapes)
        for _ in range(n_directions)
    ]
    keys = jax.random.split(key, len(blocks))
    numeric, analytic = _directional(p, blocks, keys)
    leaves, num_parts, ana_parts = [], [], []
    for i in range(len(p.names)):
        part = slice(i * n_directions, (i + 1) * n_directions)
        num, ana = numeric[part], analytic[part]
        check = _judge_directions(p, i, num, ana, blocks[part], keys[part])
        leaves.append(check)
        if check.kinks or check.n_checked != n_directions:  # re-checked by coordinates
            continue
        num_parts.append(num)
        ana_parts.append(ana)
    num, ana = (
        np.concatenate(num_parts or [np.zeros(0)]),
        np.concatenate(ana_parts or [np.zeros(0)]),
    )
    if not np.all(np.isfinite(num)):
        return leaves, float("nan")
    floor = max(_noise_floor(p, i, n_directions) for i in range(len(p.names)))
    overall = _relative_difference(num, ana, floor)
    # A leaf re-checked by coordinates (it crossed a kink) is not in the directional sums:
    # its own difference bounds the overall one, so a bug there is not hidden.
    rechecked = [c.difference for c in leaves if c.kinks or c.n_checked != n_directions]
    values = [overall, *rechecked]
    return leaves, float("nan") if np.any(np.isnan(values)) else max(values)


def _judge_directions(p: _Problem, i: int, numeric, analytic, blocks, keys) -> LeafCheck:
    """Leaf i from its directional derivatives. Above tol: if the worst direction's ±ε
    step crosses a kink, the leaf is re-checked coordinate by coordinate (kinks set aside);
    otherwise the discrepancy is no kink's, and the Taylor test along that direction
    decides between "bug" and "disputed", unless the gap lies within the directions'
    rounding noise (then the coordinates decide)."""
    n = len(numeric)
    if not np.all(np.isfinite(numeric)):
        return _not_finite(p, i, numeric, n)
    diff = _relative_difference(numeric, analytic, _noise_floor(p, i, n))
    check = LeafCheck(
        path=p.names[i],
        shape=p.shapes[i],
        difference=diff,
        verdict=p.precision.verdict(diff),
        n_checked=n,
    )
    if diff <= p.tol:
        return _unresolved(p, i, check, numeric, analytic)
    worst = int(np.argmax(np.abs(numeric - analytic)))
    lo, hi = blocks[worst]
    hs = _taylor_steps(p, i)
    kink, direction, smallest = (
        np.asarray(a)
        for a in _worst_direction_program(
            p.leaves,
            p.arrays,
            lo,
            hi,
            keys[worst],
            np.asarray([p.eps[i], -p.eps[i]]),
            hs[-_TAYLOR_BLOCK:],
            spec=p.spec,
            chunk=p.chunk,
        )
    )
    if kink:
        return _by_coordinates(p, i)
    order = _taylor_order(p, i, direction, smallest)
    rounding = _noise_floor(p, i, n) / 100
    if (order is None or order >= 1.5) and norm(numeric - analytic) <= 3 * rounding:
        # Within the rounding noise of differences along random directions (small next to
        # J where each direction's derivative is): the leaf's coordinates tell it better.
        return _by_coordinates(p, i)
    verdict_, note = _with_taylor(check.verdict, order, p.precision)
    return check._replace(verdict=verdict_, taylor_order=order, note=note)


def _by_coordinates(p: _Problem, i: int) -> LeafCheck:
    """Leaf i checked coordinate by coordinate, as in full mode."""
    size = math.prod(p.shapes[i])
    coords = _coordinates(p, {i: np.arange(size)})[i]
    judged, _ = _judge_coordinates(p, i, coords, p.grad[p.offsets[i] : p.offsets[i] + size])
    return judged


# --- locate ----------------------------------------------------------------------------


def locate(report: GradCheckReport, leaf: str | None = None, *, top: int = 4, key=None):
    """Narrow a leaf down to its worst coordinate without scanning every coordinate.

    Bisection: the leaf's coordinates are split in two blocks; for each block the
    directional derivative along two random directions supported on that block is
    compared with its finite difference, and the block with the larger discrepancy is
    kept, until at most ``top`` coordinates remain; those are checked one by one.
    Cost: about 8 log2(n) + 2 top evaluations for a leaf of n coordinates.

    Args:
      report: a report of :func:`grad_check` (order 1).
      leaf: the leaf's path; the worst leaf when None.
      top: size of the final block that is checked coordinate by coordinate.
      key: PRNG key for the random directions.

    Returns:
      The leaf's :class:`LeafCheck` with ``worst_index``, ``analytic`` and ``numeric``.

    Raises:
      ValueError: an unknown leaf name.
    """
    p = report.problem
    name = report.worst.path if leaf is None else leaf
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
    return report.leaves[i]._replace(
        worst_index=tuple(int(k) for k in index),
        analytic=float(analytic[j]),
        numeric=float(numeric[j]),
    )
