"""Assertions for users' own test suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxhp.gradcheck import GradCheckReport, grad_check


def assert_grads_close(f: Callable, params: Any, *args, **options) -> GradCheckReport:
    """Assert that a gradient matches centred finite differences (see :func:`grad_check`).

    Takes the arguments of :func:`jaxhp.grad_check` as they are: f's own arguments after
    ``params`` (its keywords in ``kwargs={...}``), and the checker's options (``grad_fn``,
    ``mode``, ``check``, ``order``, ``eps``, ``tol``, ...). Passes when the report passes:
    every leaf's relative difference is at most ``tol`` (default: the "check" band of f's
    working precision) once kinks are set aside, and no leaf is "bug", "disputed" or
    "not finite".

    Returns:
      The report, for further assertions.

    Raises:
      AssertionError: the check failed. The message is the report in the same words:
        precision and bands, the per-leaf table with kinks and Taylor orders, the notes
        that explain each verdict, and the worst coordinate (located by bisection in
        ``"directions"`` mode).
    """
    report = grad_check(f, params, *args, **options)
    if not report.passed:
        failing = ", ".join(f"{c.path} ({c.verdict})" for c in report.failing) or (
            f"the overall difference {report.difference:.2e} ({report.verdict})"
        )
        message = [f"gradient check failed (tol {report.tol:.1e}) at {failing}:", str(report)]
        worst = report.worst
        if report.mode == "directions" and worst.worst_index is None and report.order == 1:
            if worst.verdict != "not finite":
                message.append(report.locate().worst_line())
        raise AssertionError("\n".join(message))
    return report
