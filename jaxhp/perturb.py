"""Single-coordinate perturbations of a function, evaluated by propagating only what changes.

Gradient checking in "full" mode needs ``J(θ ± ε e_i)`` for every coordinate ``i``. Each of
these, evaluated from scratch, is a whole forward pass. But moving one weight ``W[j, u]`` of
a dense layer changes one unit ``u`` of that layer's output; the next product then only
changes by a rank-one update, and so on. This module walks ``f``'s jaxpr and stores each
value that depends on the perturbed leaf as

- ``Local``: equal to the unperturbed (base) value except in one index along some axes
  (one coordinate, one column, one unit), stored as the new values of that slice; or
- ``Dense``: the whole value, one copy per perturbation.

Values that do not depend on the perturbed leaf are computed once, in the base pass.
Elementwise ops, broadcasts, transposes and reductions that keep the changed axes keep a
value ``Local``; a product or sum over a changed axis becomes a low-rank update of its base
value. Every primitive without a rule here is evaluated on ``Dense`` copies under ``vmap``,
so the result is always ``f`` at the perturbed point; the rules only change its cost (about
20x less work per evaluation for the B3 MLP in ../shared/BENCH.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore


class Local(NamedTuple):
    """The base value with one slice replaced per perturbation.

    ``axes[c]`` is fixed at ``idx[:, c]``; ``vals`` (batch first) holds the slice's new
    values, its other axes in their original order."""

    axes: tuple[int, ...]
    idx: jax.Array  # (batch, len(axes)) int32
    vals: jax.Array  # (batch, *shape without axes)


class Dense(NamedTuple):
    """The whole value, one copy per perturbation (batch first)."""

    value: jax.Array


# Primitives that wrap a jaxpr we can walk into (name -> the param that holds it).
_CALLS = {
    "jit": "jaxpr",
    "pjit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "checkpoint": "jaxpr",
    "remat": "jaxpr",
}

_ELEMENTWISE = frozenset(
    "abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp conj convert_element_type "
    "copy cos cosh digamma div eq erf erf_inv erfc exp exp2 expm1 floor ge gt imag integer_pow "
    "is_finite le lgamma log log1p logistic lt max min mul ne neg nextafter not or pow real "
    "reduce_precision rem round rsqrt select_n sign sin sinh sqrt square stop_gradient sub tan "
    "tanh xor".split()
)

_REDUCTIONS = frozenset(
    "reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or argmax argmin".split()
)


def _sub_jaxpr(eqn):
    param = _CALLS.get(eqn.primitive.name)
    sub = eqn.params.get(param) if param else None
    if isinstance(sub, jcore.ClosedJaxpr):
        return sub.jaxpr, sub.consts
    if isinstance(sub, jcore.Jaxpr):
        return sub, ()
    return None


def _bind(eqn, invals) -> list:
    out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
    return list(out) if eqn.primitive.multiple_results else [out]


def _read(env, var):
    return var.val if isinstance(var, jcore.Literal) else env[var]


def base_pass(jaxpr, consts, args, record: dict, path: tuple = ()) -> list:
    """Evaluate ``jaxpr`` once, recording every equation's outputs under its path."""
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for n, eqn in enumerate(jaxpr.eqns):
        ins = [_read(env, v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        outs = base_pass(*sub, ins, record, (*path, n)) if sub else _bind(eqn, ins)
        record[(*path, n)] = outs
        env.update(zip(eqn.outvars, outs))
    return [_read(env, v) for v in jaxpr.outvars]


def delta_pass(jaxpr, consts, base_args, perturbed_args, record: dict, path: tuple = ()) -> list:
    """Propagate perturbed inputs (``Local``/``Dense``, None where unchanged) through
    ``jaxpr``, reading unchanged values from ``record``. Returns perturbed outputs."""
    base = dict(zip(jaxpr.constvars, consts))
    base.update(zip(jaxpr.invars, base_args))
    changed = {v: p for v, p in zip(jaxpr.invars, perturbed_args) if p is not None}

    def perturbation(var):
        return None if isinstance(var, jcore.Literal) else changed.get(var)

    for n, eqn in enumerate(jaxpr.eqns):
        key = (*path, n)
        base_out = record[key]
        base.update(zip(eqn.outvars, base_out))
        pert_in = [perturbation(v) for v in eqn.invars]
        if all(p is None for p in pert_in):
            continue
        base_in = [_read(base, v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        if sub:
            outs = delta_pass(*sub, base_in, pert_in, record, key)
        else:
            outs = _propagate(eqn, base_in, pert_in, base_out)
        changed.update((v, p) for v, p in zip(eqn.outvars, outs) if p is not None)
    return [perturbation(v) for v in jaxpr.outvars]


# --- Local <-> dense -------------------------------------------------------------------


def _gather(base, axes: Sequence[int], idx) -> jax.Array:
    """``base`` at ``idx[b]`` along ``axes``, for each perturbation b: (batch, *rest)."""
    front = jnp.moveaxis(base, tuple(axes), tuple(range(len(axes))))
    return front[tuple(idx[:, c] for c in range(len(axes)))]


def densify(base, p) -> jax.Array:
    """The perturbed value in full, (batch, *shape)."""
    if isinstance(p, Dense):
        return p.value
    k = len(p.axes)
    front = jnp.moveaxis(jnp.asarray(base), p.axes, tuple(range(k)))

    def one(i, v):
        return front.at[tuple(i[c] for c in range(k))].set(v)

    full = jax.vmap(one)(p.idx, p.vals)
    return jnp.moveaxis(full, tuple(range(1, k + 1)), tuple(a + 1 for a in p.axes))


def _select_columns(p: Local, columns: list[int]):
    return p.idx if len(columns) == len(p.axes) else p.idx[:, columns]


def _rest(ndim: int, axes) -> list[int]:
    return [a for a in range(ndim) if a not in axes]


# --- rules -----------------------------------------------------------------------------


def _propagate(eqn, base_in, pert_in, base_out) -> list:
    name = eqn.primitive.name
    rule = _RULES.get(name)
    if rule is None and name in _ELEMENTWISE:
        rule = _elementwise
    if rule is None and name in _REDUCTIONS:
        rule = _reduction
    if rule is not None and not eqn.primitive.multiple_results:
        out = rule(eqn, base_in, pert_in, base_out[0])
        if out is not None:
            return [out]
    return _dense_rule(eqn, base_in, pert_in)


def _dense_rule(eqn, base_in, pert_in) -> list:
    """Any primitive: evaluate it on full copies, vmapped over the perturbations."""
    args = [b if p is None else densify(b, p) for b, p in zip(base_in, pert_in)]
    in_axes = [None if p is None else 0 for p in pert_in]
    outs = jax.vmap(lambda *a: _bind(eqn, a), in_axes=in_axes)(*args)
    return [Dense(o) for o in outs]


def _only_local(pert_in):
    """The single ``Local`` input, when exactly one input is perturbed and it is Local."""
    perturbed = [p for p in pert_in if p is not None]
    if len(perturbed) == 1 and isinstance(perturbed[0], Local):
        return perturbed[0]
    return None


def _elementwise(eqn, base_in, pert_in, base_out):
    """Unchanged positions map to unchanged outputs, so the op runs on the slice only."""
    perturbed = [p for p in pert_in if p is not None]
    first = perturbed[0]
    if not all(
        isinstance(p, Local) and p.axes == first.axes and p.idx is first.idx for p in perturbed
    ):
        return None
    shape = jnp.shape(base_out)
    args, in_axes = [], []
    for b, p in zip(base_in, pert_in):
        b_shape = jnp.shape(b)
        if p is not None:
            if any(b_shape[a] != shape[a] for a in first.axes):
                return None  # a size-1 axis broadcast over the changed axis: not local
            args.append(p.vals)
            in_axes.append(0)
        elif len(b_shape) == 0:
            args.append(b)
            in_axes.append(None)
        else:  # size-1 (broadcast) axes are read at index 0
            keep = np.array([b_shape[a] == shape[a] for a in first.axes], np.int32)
            args.append(_gather(b, first.axes, first.idx * keep[None, :]))
            in_axes.append(0)
    vals = jax.vmap(lambda *a: _bind(eqn, a)[0], in_axes=in_axes)(*args)
    return Local(first.axes, first.idx, vals)


def _dot_general(eqn, base_in, pert_in, base_out):
    """One operand changes on a slice: out = base_out + (change) · other, where the
    change's contracted local axes select a slice of the other operand (a low-rank
    update), and its free local axes stay local in the output."""
    x = _only_local(pert_in)
    if x is None:
        return None
    side = 0 if pert_in[0] is not None else 1
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    xc, yc, xb, yb = (lc, rc, lb, rb) if side == 0 else (rc, lc, rb, lb)
    if set(x.axes) & set(xb):
        return None
    x_base, y_base = base_in[side], base_in[1 - side]
    contracted = [c for c, a in enumerate(x.axes) if a in xc]
    free = [c for c, a in enumerate(x.axes) if a not in xc]
    change = x.vals - _gather(x_base, x.axes, x.idx)
    y_axes = tuple(yc[list(xc).index(x.axes[c])] for c in contracted)
    y_slice = _gather(y_base, y_axes, x.idx[:, contracted]) if contracted else y_base
    x_pos = {a: n for n, a in enumerate(_rest(x_base.ndim, x.axes))}
    y_pos = {a: n for n, a in enumerate(_rest(y_base.ndim, y_axes))}
    pairs = [(x_pos[a], y_pos[b]) for a, b in zip(xc, yc) if a not in x.axes]
    xc2, yc2 = tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    xb2, yb2 = tuple(x_pos[a] for a in xb), tuple(y_pos[b] for b in yb)
    dims = ((xc2, yc2), (xb2, yb2)) if side == 0 else ((yc2, xc2), (yb2, xb2))
    dtype = base_out.dtype

    def one(dx, y):
        lhs, rhs = (dx, y) if side == 0 else (y, dx)
        if not pairs and not xb2:  # an outer product: a broadcast multiply XLA can fuse
            shape, n = lhs.shape + rhs.shape, lhs.ndim
            lhs = lax.broadcast_in_dim(lhs.astype(dtype), shape, tuple(range(n)))
            rhs = lax.broadcast_in_dim(rhs.astype(dtype), shape, tuple(range(n, len(shape))))
            return lhs * rhs
        return lax.dot_general(lhs, rhs, dims, preferred_element_type=dtype)

    delta = jax.vmap(one, in_axes=(0, 0 if contracted else None))(change, y_slice)
    if not free:
        return Dense(base_out[None] + delta)
    x_free = [a for a in range(x_base.ndim) if a not in xc and a not in xb]
    offset = len(lb) + (0 if side == 0 else base_in[0].ndim - len(lc) - len(lb))
    out_axes = tuple(offset + x_free.index(x.axes[c]) for c in free)
    idx = _select_columns(x, free)
    return Local(out_axes, idx, _gather(base_out, out_axes, idx) + delta)


def _reduced_axes(x: Local, axes, ndim: int):
    """Columns of x's local axes that survive, their output axes, and the vals axes
    (batch first) that the reduction sums."""
    keep = [c for c, a in enumerate(x.axes) if a not in axes]
    out_axes = tuple(x.axes[c] - sum(r < x.axes[c] for r in axes) for c in keep)
    rest = _rest(ndim, x.axes)
    vals_axes = tuple(1 + rest.index(a) for a in axes if a in rest)
    return keep, out_axes, vals_axes


def _reduction(eqn, base_in, pert_in, base_out):
    """A reduction over unchanged axes only: the slice reduces on its own. A sum over a
    changed axis adds the change of that slice to the base sum; other reductions over a
    changed axis (max, argmax, ...) have no cheap form."""
    x = _only_local(pert_in)
    if x is None:
        return None
    axes = tuple(eqn.params["axes"])
    keep, out_axes, vals_axes = _reduced_axes(x, axes, jnp.ndim(base_in[0]))
    params = {**eqn.params, "axes": vals_axes}
    idx = _select_columns(x, keep)
    if len(keep) == len(x.axes):
        return Local(out_axes, idx, eqn.primitive.bind(x.vals, **params))
    if eqn.primitive.name != "reduce_sum":
        return None
    change = x.vals - _gather(base_in[0], x.axes, x.idx)
    delta = eqn.primitive.bind(change, **params)
    if not keep:
        return Dense(base_out[None] + delta)
    return Local(out_axes, idx, _gather(base_out, out_axes, idx) + delta)


def _broadcast_in_dim(eqn, base_in, pert_in, base_out):
    x = _only_local(pert_in)
    if x is None or len(base_in) != 1:
        return None
    shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
    in_shape = jnp.shape(base_in[0])
    if any(in_shape[a] != shape[dims[a]] for a in x.axes):
        return None  # the changed index is broadcast along its axis: not local
    out_axes = tuple(dims[a] for a in x.axes)
    rest_out = _rest(len(shape), out_axes)
    vals_shape = (x.vals.shape[0], *(shape[d] for d in rest_out))
    vals_dims = (0, *(1 + rest_out.index(dims[a]) for a in _rest(len(in_shape), x.axes)))
    return Local(out_axes, x.idx, lax.broadcast_in_dim(x.vals, vals_shape, vals_dims))


def _transpose(eqn, base_in, pert_in, base_out):
    x = _only_local(pert_in)
    if x is None:
        return None
    perm = eqn.params["permutation"]  # output axis j is input axis perm[j]
    out_axes = tuple(perm.index(a) for a in x.axes)
    rest_in = _rest(len(perm), x.axes)
    vals_perm = (0, *(1 + rest_in.index(perm[j]) for j in _rest(len(perm), out_axes)))
    return Local(out_axes, x.idx, jnp.transpose(x.vals, vals_perm))


def _squeeze(eqn, base_in, pert_in, base_out):
    x = _only_local(pert_in)
    if x is None:
        return None
    dims = tuple(eqn.params["dimensions"])
    keep, out_axes, vals_axes = _reduced_axes(x, dims, jnp.ndim(base_in[0]))
    vals = jnp.squeeze(x.vals, vals_axes)
    if not keep:  # every changed axis had size 1: the slice is the whole value
        return Dense(vals)
    return Local(out_axes, _select_columns(x, keep), vals)


_RULES: dict[str, Callable] = {
    "dot_general": _dot_general,
    "broadcast_in_dim": _broadcast_in_dim,
    "transpose": _transpose,
    "squeeze": _squeeze,
}


# --- driver ----------------------------------------------------------------------------


def largest_value_bytes(jaxpr) -> int:
    """Bytes of the largest value in ``jaxpr`` (sub-jaxprs included)."""
    biggest = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            shape, dtype = getattr(v.aval, "shape", ()), getattr(v.aval, "dtype", None)
            itemsize = getattr(dtype, "itemsize", 8)  # key types have no numpy dtype
            biggest = max(biggest, math.prod(shape) * itemsize)
        sub = _sub_jaxpr(eqn)
        if sub:
            biggest = max(biggest, largest_value_bytes(sub[0]))
    return biggest


def centred_differences(fn: Callable, leaves: list, coords: list, steps: list) -> list:
    """Centred differences ``(fn(θ + h e_i) - fn(θ - h e_i)) / (2h)`` of ``fn(*leaves)``.

    ``coords[k]`` holds flat indices into ``leaves[k]`` and ``steps[k]`` their steps ``h``,
    both shaped (chunks, batch): one chunk of ``batch`` coordinates is evaluated at a time
    (vmapped), the chunks one after another (``lax.map``). ``coords[k]`` None skips leaf k.
    The unperturbed pass runs once for all leaves. Traceable: call it under ``jit``.
    """
    closed = jax.make_jaxpr(fn)(*leaves)
    record: dict = {}
    (value,) = base_pass(closed.jaxpr, closed.consts, leaves, record)

    def leaf_differences(k, leaf, coords_k, steps_k):
        def chunk(args):
            c, h = args
            c2, h2 = jnp.concatenate([c, c]), jnp.concatenate([h, -h])
            moved = leaf.reshape(-1)[c2] + h2
            if leaf.ndim == 0:
                p = Dense(moved)
            else:
                idx = jnp.stack(jnp.unravel_index(c2, leaf.shape), axis=1).astype(jnp.int32)
                p = Local(tuple(range(leaf.ndim)), idx, moved)
            inputs = [None] * len(leaves)
            inputs[k] = p
            (out,) = delta_pass(closed.jaxpr, closed.consts, leaves, inputs, record)
            if out is None:  # fn does not depend on this leaf
                return jnp.zeros_like(h)
            values = densify(value, out)
            return (values[: c.shape[0]] - values[c.shape[0] :]) / (2 * h)

        return lax.map(chunk, (coords_k, steps_k))

    return [
        None if c is None else leaf_differences(k, leaf, c, s)
        for k, (leaf, c, s) in enumerate(zip(leaves, coords, steps))
    ]
