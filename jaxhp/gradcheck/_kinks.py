"""Kinks: where a small move of the params switches a branch of a piecewise primitive.

f is evaluated by walking its jaxpr, and each piecewise primitive also records the branch
it took: the sign of ``a - b`` for max/min (relu is ``max(x, 0)``), of ``x`` for abs and
sign, of ``x - lo`` and ``x - hi`` for clamp; the result of a float comparison (the
predicate of a sign-dependent ``where``); which positions hold a reduce_max/min; the
index of argmax/argmin, the order found by sort, top_k's indices, the steps of
floor/ceil/round and float-to-int casts. A perturbation "crosses a kink" when any record
differs from the unperturbed one: f is not differentiable between the two points, so a
centred difference across them measures a jump, not the derivative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core as jcore

from jaxhp.perturb import _bind, _read, _sub_jaxpr

_SIGN_OF_DIFFERENCE = frozenset({"max", "min"})
_SIGN_OF_INPUT = frozenset({"abs", "sign"})
_RESULT = frozenset(
    {"lt", "le", "gt", "ge", "eq", "ne", "floor", "ceil", "round", "argmax", "argmin"}
)
_AT_EXTREME = frozenset({"reduce_max", "reduce_min", "cummax", "cummin"})

# Primitives whose branch records make f piecewise (reported by name in errors).
PIECEWISE = (
    _SIGN_OF_DIFFERENCE
    | _SIGN_OF_INPUT
    | _RESULT
    | _AT_EXTREME
    | {"clamp", "sort", "top_k", "convert_element_type", "select_n"}
)


def _sign(x):
    return (x > 0).astype(jnp.int8) - (x < 0).astype(jnp.int8)


def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _branches(eqn, ins, outs) -> list:
    """The branch records of one equation (empty for smooth primitives)."""
    name = eqn.primitive.name
    if not any(_is_float(x) for x in ins):
        return []
    if name in _SIGN_OF_DIFFERENCE:
        return [_sign(ins[0] - ins[1])]
    if name in _SIGN_OF_INPUT:
        return [_sign(ins[0])]
    if name in _RESULT:
        return [outs[0]]
    if name == "clamp":
        lo, x, hi = ins
        return [_sign(x - lo), _sign(x - hi)]
    if name in ("reduce_max", "reduce_min"):
        keep = [a for a in range(ins[0].ndim) if a not in eqn.params["axes"]]
        return [ins[0] == lax.broadcast_in_dim(outs[0], ins[0].shape, tuple(keep))]
    if name in ("cummax", "cummin"):
        return [ins[0] == outs[0]]
    if name == "sort":
        return [jnp.argsort(ins[0], axis=eqn.params["dimension"], stable=True)]
    if name == "top_k":
        return [outs[1]]
    if name == "convert_element_type" and not _is_float(outs[0]):
        return [outs[0]]
    return []


def run(jaxpr, consts, args) -> tuple[list, list]:
    """Evaluate ``jaxpr``; returns its outputs and the branch records of every piecewise
    primitive inside it (loop bodies and calls included). Traceable."""
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    records = []
    for eqn in jaxpr.eqns:
        ins = [_read(env, v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        if sub:
            outs, inner = run(*sub, ins)
            records += inner
        elif eqn.primitive.name == "scan":
            outs, inner = _scan(eqn, ins)
            records += inner
        else:
            outs = _bind(eqn, ins)
            records += _branches(eqn, ins, outs)
        env.update(zip(eqn.outvars, outs))
    return [_read(env, v) for v in jaxpr.outvars], records


def _scan(eqn, ins) -> tuple[list, list]:
    """A scan whose body also returns its branch records, stacked over the steps."""
    body = eqn.params["jaxpr"]
    n_consts, n_carry = eqn.params["num_consts"], eqn.params["num_carry"]
    consts, carry, xs = (
        ins[:n_consts],
        ins[n_consts : n_consts + n_carry],
        ins[n_consts + n_carry :],
    )

    def step(carry, x):
        outs, records = run(body.jaxpr, body.consts, [*consts, *carry, *x])
        return outs[:n_carry], (outs[n_carry:], records)

    carry, (ys, records) = lax.scan(
        step, carry, xs, length=eqn.params["length"], reverse=eqn.params["reverse"]
    )
    return [*carry, *ys], records


def crossing(fn, leaves: list):
    """A function ``crossed(moved_leaves) -> bool``: does ``fn`` take another branch of a
    piecewise primitive at ``moved_leaves`` than at ``leaves``? Traceable; vmap it."""
    closed = jax.make_jaxpr(fn)(*leaves)
    _, base = run(closed.jaxpr, closed.consts, leaves)

    def crossed(moved):
        _, records = run(closed.jaxpr, closed.consts, moved)
        flags = [jnp.any(r != b) for r, b in zip(records, base)]
        return jnp.any(jnp.stack(flags)) if flags else jnp.array(False)

    return crossed


def piecewise_primitives(jaxpr) -> set[str]:
    """Names of the piecewise primitives in ``jaxpr`` (sub-jaxprs included)."""
    names = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in PIECEWISE:
            names.add(eqn.primitive.name)
        for value in eqn.params.values():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(item, jcore.ClosedJaxpr):
                    names |= piecewise_primitives(item.jaxpr)
                elif isinstance(item, jcore.Jaxpr):
                    names |= piecewise_primitives(item)
    return names
