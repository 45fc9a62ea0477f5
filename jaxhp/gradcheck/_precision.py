"""The precision at which ``f`` computes, read from its program, and what it implies.

A centred difference has truncation error ~ε²|J'''|/6 and rounding error ~u|J|/ε for the
working unit roundoff u; they balance at ε ≈ u^(1/3), where the relative error is about
u^(2/3). The working u is that of the lowest-precision float value that depends on the
params in f's jaxpr (an ``x.astype(jnp.float32)`` inside f makes it float32 code even
though the checker feeds float64).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

# The course's bands, read for float64 code.
COURSE_BANDS = ((1e-7, "great"), (1e-5, "check"), (1e-3, "suspicious"))


class Precision(NamedTuple):
    """The working precision of f and the check it allows.

    Attributes:
      dtype: name of the lowest-precision float dtype that depends on the params.
      u: its unit roundoff (``jnp.finfo(dtype).eps``).
      eps: the default relative step ``u ** (1/3)``.
      resolution: the smallest relative difference the check can tell from noise,
        ``10 u^(2/3)`` (the course's 1e-7 "great" band for float64 stays as it is).
      bands: (upper bound, name) pairs for the verdict, widened by the resolution.
    """

    dtype: str
    u: float
    eps: float
    resolution: float
    bands: tuple

    def verdict(self, difference: float) -> str:
        """The band a relative difference falls in (``bug`` above the last one)."""
        for bound, name in self.bands:
            if difference <= bound:
                return name
        return "bug"

    @property
    def tol(self) -> float:
        """The default pass bound: the upper edge of the "check" band."""
        return self.bands[1][0]


def precision_of(dtype) -> Precision:
    """The :class:`Precision` record of a float dtype."""
    dtype = jnp.dtype(dtype)
    u = float(jnp.finfo(dtype).eps)
    resolution = 10 * u ** (2 / 3)
    scale = (1.0, 10.0, 100.0)
    bands = tuple(
        (max(bound, k * resolution), name) for (bound, name), k in zip(COURSE_BANDS, scale)
    )
    return Precision(dtype.name, u, u ** (1 / 3), resolution, bands)


def _sub_jaxprs(eqn):
    """The jaxprs an equation holds (calls, loop bodies, branches)."""
    for value in eqn.params.values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, jcore.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jcore.Jaxpr):
                yield item


def _inner_tainted(eqn, sub, ins: list) -> set:
    """The invars of a sub-jaxpr that depend on the params. Calls map their inputs one to
    one and a cond's branches take all but the index; loop carries feed back, so every
    input of a loop body counts."""
    n = len(sub.invars)
    name = eqn.primitive.name
    if name in ("scan", "while") or len(ins) not in (n, n + 1):
        return set(sub.invars)
    flags = ins[1:] if len(ins) == n + 1 else ins
    return {v for v, t in zip(sub.invars, flags) if t}


def _float_dtypes(jaxpr, tainted: set) -> set:
    """Float dtypes of the values in ``jaxpr`` that depend on the ``tainted`` invars."""
    found = set()
    for eqn in jaxpr.eqns:
        ins = [not isinstance(v, jcore.Literal) and v in tainted for v in eqn.invars]
        if not any(ins):
            continue
        for sub in _sub_jaxprs(eqn):
            found |= _float_dtypes(sub, _inner_tainted(eqn, sub, ins))
        for v in eqn.outvars:
            tainted.add(v)
            dtype = getattr(v.aval, "dtype", None)
            if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
                found.add(jnp.dtype(dtype))
    return found


def working_precision(closed_jaxpr, n_params: int) -> Precision:
    """The precision of the lowest-precision float value that depends on the first
    ``n_params`` inputs of ``closed_jaxpr`` (float64 when there is none)."""
    jaxpr = closed_jaxpr.jaxpr
    dtypes = _float_dtypes(jaxpr, set(jaxpr.invars[:n_params]))
    dtypes |= {
        jnp.dtype(v.aval.dtype)
        for v in jaxpr.invars[:n_params]
        if jnp.issubdtype(v.aval.dtype, jnp.floating)
    }
    if not dtypes:
        return precision_of(np.float64)
    return precision_of(max(dtypes, key=lambda d: float(jnp.finfo(d).eps)))
