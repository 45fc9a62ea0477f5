"""Second order: Hessian-vector products against centred differences of the gradient.

For each leaf and each of its directions v (coordinate axes in "full" mode, random unit
directions in "directions" mode), ``(∇J(θ + ε v) - ∇J(θ - ε v)) / (2 ε)`` is compared with
the product ``H v`` that JAX derives from f's rules: reverse over reverse for
``check="vjp"`` (as torch's gradgradcheck does for double backward), forward over forward
for ``check="jvp"``. Directions whose ±ε step crosses a kink are left out.
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxhp.gradcheck import _kinks
from jaxhp.gradcheck._check import coarse_precision_note, norm
from jaxhp.gradcheck._report import LeafCheck


def _gradient_fn(spec, arrays, check, unravel):
    def loss(theta):
        return spec.call(jax.tree.leaves(unravel(theta)), arrays)

    return jax.grad(loss) if check == "vjp" else jax.jacfwd(loss)


@functools.partial(jax.jit, static_argnames=("spec", "check"))
def _second_program(leaves, arrays, directions, steps, *, spec, check):
    theta, unravel = ravel_pytree(list(leaves))
    gradient = _gradient_fn(spec, arrays, check, unravel)
    crossed = _kinks.crossing(lambda *ls: spec.call(ls, arrays), list(leaves))

    def hvp(v):
        if check == "vjp":
            return jax.grad(lambda t: jnp.dot(gradient(t), v))(theta)
        return jax.jvp(gradient, (theta,), (v,))[1]

    def one(args):
        v, h = args
        numeric = (gradient(theta + h * v) - gradient(theta - h * v)) / (2 * h)
        kink = crossed(jax.tree.leaves(unravel(theta + h * v))) | crossed(
            jax.tree.leaves(unravel(theta - h * v))
        )
        return numeric, hvp(v), kink

    n = directions.shape[0]
    return jax.lax.map(one, (directions, steps), batch_size=min(8, n))


def _primitive_named(error: Exception) -> str:
    text = str(error)
    for pattern in (
        r"rule for '([\w\-]+)'",
        r"for primitive '?([\w\-]+)'?",
        r"lax\.(\w+)",
        r"(while_loop|pure_callback|io_callback|fori_loop)",
    ):
        found = re.search(pattern, text)
        if found:
            return found.group(1)
    return "unknown"


def check_second_order(p, mode: str, check: str, n_directions: int, key):
    """Per-leaf checks of Hessian-vector products. Returns (leaves, overall difference)."""
    n_total = len(p.grad)
    rows, owners, steps = [], [], []
    for i, shape in enumerate(p.shapes):
        size, lo = math.prod(shape), p.offsets[i]
        if mode == "full":
            block = np.zeros((size, n_total))
            block[np.arange(size), lo + np.arange(size)] = 1.0
        else:
            key, sub = jax.random.split(key)
            block = np.zeros((n_directions, n_total))
            block[:, lo : lo + size] = np.asarray(
                jax.random.normal(sub, (n_directions, size), jnp.float64)
            )
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        rows.append(block)
        owners += [i] * len(block)
        steps += [p.eps[i]] * len(block)
    directions, owners = np.concatenate(rows), np.asarray(owners)
    try:
        numeric, analytic, kinks = (
            np.asarray(a)
            for a in _second_program(
                p.leaves, p.arrays, directions, np.asarray(steps), spec=p.spec, check=check
            )
        )
    except (NotImplementedError, TypeError, ValueError) as error:
        raise ValueError(
            f"order=2: the gradient of f is not differentiable in mode {check!r} (primitive "
            f"{_primitive_named(error)}): {str(error).splitlines()[0]}"
        ) from None
    leaves, num_all, ana_all = [], [], []
    for i in range(len(p.names)):
        mine = owners == i
        keep = mine & ~kinks
        num, ana = numeric[keep].ravel(), analytic[keep].ravel()
        if not np.all(np.isfinite(numeric[mine])):
            leaves.append(
                LeafCheck(
                    p.names[i],
                    p.shapes[i],
                    float("nan"),
                    "not finite",
                    int(mine.sum()),
                    note=f"the gradient of f is not finite at θ ± ε for leaf {p.names[i]}",
                )
            )
            continue
        floor = (
            100
            * p.precision.u
            * (1 + np.abs(p.grad).max())
            / p.eps[i]
            * math.sqrt(max(1, num.size))
        )
        gap = norm(num - ana)
        denominator = norm(num) + norm(ana)
        diff = float(gap / denominator) if denominator > floor else float(gap > floor)
        n_kinks = int((mine & kinks).sum())
        note = f"{n_kinks} directions cross a kink and are left out" if n_kinks else ""
        verdict = p.precision.verdict(diff)
        if coarse_precision_note(p.precision):
            verdict, note = "unresolved", coarse_precision_note(p.precision)
        leaves.append(LeafCheck(p.names[i], p.shapes[i], diff, verdict, int(mine.sum()), note=note))
        num_all.append(num)
        ana_all.append(ana)
    num, ana = np.concatenate(num_all or [np.zeros(0)]), np.concatenate(ana_all or [np.zeros(0)])
    denominator = norm(num) + norm(ana)
    overall = float(norm(num - ana) / denominator) if denominator > 0 else 0.0
    if any(c.verdict == "not finite" for c in leaves):
        overall = float("nan")
    return leaves, overall
