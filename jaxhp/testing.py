"""Assertions for users' own test suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxhp.gradcheck import GradCheckReport, grad_check


def assert_grads_close(
    f: Callable, params: Any, *args, tol: float = 1e-5, **kwargs
) -> GradCheckReport:
    """Assert that a gradient matches centred finite differences (see :func:`grad_check`).

    Takes the arguments of :func:`jaxhp.grad_check` (``grad_fn``, ``mode``, ``eps``, ...).
    Passes when every leaf's relative difference is at most ``tol`` (default 1e-5, the
    course's "check" band). On failure the AssertionError message holds the per-leaf table
    and the worst coordinate (located by bisection in ``"directions"`` mode).

    Returns:
      The report, for further assertions.
    """
    report = grad_check(f, params, *args, tol=tol, **kwargs)
    if not report.passed:
        message = [f"gradient check failed (tol {tol:.0e}):", str(report)]
        if report.mode == "directions":
            message.append(report.locate().worst_line())
        raise AssertionError("\n".join(message))
    return report
