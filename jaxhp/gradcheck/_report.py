"""The records a gradient check returns and how they print."""

from __future__ import annotations

from typing import Any, NamedTuple

from jaxhp.gradcheck._precision import Precision

# Verdicts that fail a leaf whatever its difference, worst first.
SEVERE = ("not finite", "bug", "disputed")
NOT_PASSED = (*SEVERE, "unresolved")  # an unresolved leaf was not checked: no pass


class Kink(NamedTuple):
    """A coordinate whose ±ε step crosses a kink of f, with its one-sided re-check.

    ``left = (J(θ) - J(θ - t e)) / t`` and ``right = (J(θ + t e) - J(θ)) / t``, each at the
    largest step t of ε, ε/10, ... that crosses no kink on its side (the smallest where all
    do); ``steps`` is (t_left, t_right). ``matches`` says which one-sided derivative the
    analytic value equals (to the precision's resolution and the steps' rounding noise):
    "right", "left", "both", or "neither".
    """

    index: tuple[int, ...]
    analytic: float
    left: float
    right: float
    matches: str
    steps: tuple[float, float] = (float("nan"), float("nan"))

    def line(self, path: str) -> str:
        t_left, t_right = self.steps
        return (
            f"kink {path}{list(self.index)}: analytic {self.analytic:.6e}, one-sided left "
            f"{self.left:.6e} (step {t_left:.1e}), right {self.right:.6e} (step {t_right:.1e}) "
            f"(matches {self.matches})"
        )


class LeafCheck(NamedTuple):
    """The check of one leaf. ``worst_index`` and the values there are None in directions
    mode until :meth:`GradCheckReport.locate` narrows the leaf down.

    ``kinks`` lists the coordinates (or, in directions mode, nothing: the leaf is then
    re-checked coordinate by coordinate) left out of ``difference`` because their ±ε step
    crosses a kink. ``taylor_order`` is the measured order of the Taylor remainder along
    the leaf's worst direction (2 for a right gradient, 1 for a wrong one), measured only
    when the difference is above ``tol``. ``note`` explains a verdict in words.
    """

    path: str
    shape: tuple[int, ...]
    difference: float
    verdict: str
    n_checked: int  # coordinates (full) or directions (directions mode)
    worst_index: tuple[int, ...] | None = None
    analytic: float | None = None
    numeric: float | None = None
    kinks: tuple[Kink, ...] = ()
    taylor_order: float | None = None
    note: str = ""

    def worst_line(self) -> str:
        """``worst coordinate: W2[3, 1]: analytic ..., numeric ...`` (once it is known)."""
        return (
            f"worst coordinate: {self.path}{list(self.worst_index)}: analytic "
            f"{self.analytic:.6e}, numeric {self.numeric:.6e}"
        )


class GradCheckReport(NamedTuple):
    """Result of :func:`grad_check`. ``str(report)`` is a table, worst leaf first.

    Attributes:
      leaves: one :class:`LeafCheck` per leaf, in tree order.
      difference: the overall relative difference (kink coordinates left out).
      verdict: the worst leaf's "not finite", "bug" or "disputed", else the band of
        ``difference`` for the working precision, or "unresolved" where a leaf could
        not be checked (its gradients lie below finite differences' noise floor, yet
        differ, or f computes in float16/bfloat16; grad_check warns).
      mode: ``"full"`` or ``"directions"``.
      tol: the pass bound used.
      precision: the working :class:`~jaxhp.gradcheck.Precision` of f.
      check: ``"vjp"`` (reverse mode or ``grad_fn``) or ``"jvp"`` (forward mode).
      order: 1 (gradient) or 2 (Hessian-vector products).
      passed: True when no leaf is "not finite", "bug", "disputed" or "unresolved" and
        every leaf and the overall number are at most ``tol`` (an "unresolved" leaf was
        not checked, so it does not pass; nor is it called a bug).
    """

    leaves: tuple[LeafCheck, ...]
    difference: float
    verdict: str
    mode: str
    tol: float
    problem: Any
    precision: Precision | None = None
    check: str = "vjp"
    order: int = 1

    @property
    def passed(self) -> bool:
        if any(c.verdict in NOT_PASSED for c in self.leaves):
            return False
        return self.difference <= self.tol and all(c.difference <= self.tol for c in self.leaves)

    @property
    def ranked(self) -> list[LeafCheck]:
        """Leaves sorted worst first (not finite first)."""
        return sorted(self.leaves, key=_badness)

    @property
    def worst(self) -> LeafCheck:
        return self.ranked[0]

    @property
    def failing(self) -> list[LeafCheck]:
        return [c for c in self.ranked if c.verdict in NOT_PASSED or not c.difference <= self.tol]

    @property
    def kinks(self) -> dict[str, tuple[Kink, ...]]:
        """The kink coordinates found, by leaf."""
        return {c.path: c.kinks for c in self.leaves if c.kinks}

    def locate(self, leaf: str | None = None, *, top: int = 4, key=None) -> LeafCheck:
        """Narrow a leaf down to its worst coordinate (see :func:`jaxhp.gradcheck.locate`)."""
        from jaxhp.gradcheck._check import locate

        return locate(self, leaf, top=top, key=key)

    def __str__(self) -> str:
        return format_report(self)


def _badness(c: LeafCheck):
    severe = SEVERE.index(c.verdict) if c.verdict in SEVERE else len(SEVERE)
    diff = c.difference if c.difference == c.difference else float("inf")
    return (severe, -diff)


def _taylor(order: float | None) -> str:
    return "" if order is None else f"{order:.2f}"


def format_report(report: GradCheckReport) -> str:
    """The per-leaf table: precision, bands, kinks and Taylor orders in words."""
    p, prec = report.problem, report.precision
    lines = [
        f"grad_check mode={report.mode}  check={report.check}  order={report.order}  "
        f"J={p.value:.6g}  overall difference {report.difference:.2e} ({report.verdict})",
    ]
    if prec is not None:
        # two digits where the bound has them: a float32 "great" bound is 2.4e-04, and a
        # leaf at 2.1e-04 must not read as above a printed "2e-04"
        bands = ", ".join(
            f"{name} <= {bound:.1e}".replace(".0e", "e") for bound, name in prec.bands
        )
        lines.append(
            f"precision {prec.dtype} (u={prec.u:.1e}): eps = {p.eps_rule}, resolution "
            f"{prec.resolution:.1e}; bands {bands}, bug above; tol {report.tol:.1e}"
        )
    # columns as wide as their longest entry (a Flax path such as Embed_0.embedding)
    leaf = max([14, *(len(c.path) for c in report.ranked)]) + 2
    shape = max([12, *(len(str(c.shape)) for c in report.ranked)]) + 2
    lines.append(
        f"{'leaf':<{leaf}}{'shape':<{shape}}{'checked':>8}  {'difference':>10}  {'verdict':<11}"
        f"{'kinks':>5}  {'taylor':>6}  {'worst index':<14}{'analytic':>12}  {'numeric':>12}"
    )
    for c in report.ranked:
        index = "" if c.worst_index is None else str(c.worst_index)
        ana = "" if c.analytic is None else f"{c.analytic:.5e}"
        num = "" if c.numeric is None else f"{c.numeric:.5e}"
        lines.append(
            f"{c.path:<{leaf}}{str(c.shape):<{shape}}{c.n_checked:>8}  {c.difference:>10.2e}  "
            f"{c.verdict:<11}{len(c.kinks):>5}  {_taylor(c.taylor_order):>6}  "
            f"{index:<14}{ana:>12}  {num:>12}"
        )
    for c in report.ranked:
        if c.note:
            lines.append(f"{c.path}: {c.note}")
        for kink in c.kinks[:5]:
            lines.append(kink.line(c.path))
        if len(c.kinks) > 5:
            lines.append(f"... and {len(c.kinks) - 5} more kinks in {c.path}")
    worst = report.worst
    if worst.worst_index is not None:
        lines.append(worst.worst_line())
    elif report.mode == "directions" and not report.passed:
        lines.append(f"call report.locate({worst.path!r}) to find its worst coordinate")
    return "\n".join(lines)
