"""Matplotlib figures of runs, sweeps and probes. matplotlib is optional (``jaxhp[plot]``).

Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure` (built without
pyplot, so no global state and no display are involved); the matching ``plot_*`` /
``heatmap`` / ``curves`` function saves it as a PNG and returns the path.

Conventions shared by every figure:
- every axis is labelled, and numbers use three significant digits of the stored float32
  (``0.7``, never ``0.699999988``);
- a non-finite value is drawn as a marker at the edge of the axis, annotated ``inf`` or
  ``nan`` (never clipped to a tiny floor that reads as "vanishing");
- text drawn on a colour is black or white, whichever contrasts more (WCAG luminance).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxhp.records import OPTIMIZER_HPARAMS, History

# Short names for legends; other hyperparameters keep their own name.
_SHORT = {"lambd": "λ", "keep_prob": "kp", "learning_rate": "lr"}
# Above this relative luminance black text contrasts more than white (WCAG 2:
# (L + 0.05) / 0.05 == 1.05 / (L + 0.05) at L = sqrt(0.0525) - 0.05).
_LUMINANCE_SPLIT = float(np.sqrt(1.05 * 0.05) - 0.05)
_MAX_GRID_SIDE = 12  # more distinct values than this on an axis: draw a scatter
_HATCH = "///"


def _pyplot():
    """matplotlib's Figure class, or an ImportError that says how to install it."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'jaxhp[plot]'") from err
    return Figure


def _figure(**kwargs):
    return _pyplot()(**kwargs)


def save(fig, path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders are created); return the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as err:  # a read-only folder, a folder at path: named, not PIL's frames
        if err.errno is None:
            raise
        raise type(err)(err.errno, f"cannot write the plot: {err.strerror}", str(path)) from None
    return path


# ---- small pieces -------------------------------------------------------------------------
def format_number(value: Any) -> str:
    """Three significant digits of a stored float32: ``0.7`` for 0.699999988, ``1e-05``,
    ``1000`` (not ``1e+03``), ``1.23e+06``, ``inf``, ``nan``; ints as ints; per-layer
    tuples joined with ``/``."""
    if isinstance(value, (tuple, list, np.ndarray)) and np.ndim(value) == 1:
        return "/".join(format_number(v) for v in value)
    if isinstance(value, (bool, np.bool_, str)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(np.float32(value))
    text = f"{value:.3g}"
    if "e+" in text and abs(value) < 1e5 and float(text) == value:
        return str(int(value))  # 1000, 25000: whole numbers read better plainly
    return text


def member_label(row: Mapping[str, Any], names: Sequence[str]) -> str:
    """``#3 λ=0.1 kp=0.7 lr=0.3``: a member's index and its configuration columns."""
    parts = [f"{_SHORT.get(n, n)}={format_number(row[n])}" for n in names if n in row]
    return " ".join([f"#{row['member']}", *parts])


def relative_luminance(colour) -> float:
    """WCAG 2 relative luminance of a matplotlib colour, in [0, 1]."""
    from matplotlib.colors import to_rgb

    rgb = np.asarray(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def text_colour(background) -> str:
    """``"black"`` or ``"white"``: the text colour that contrasts more with ``background``."""
    return "black" if relative_luminance(background) > _LUMINANCE_SPLIT else "white"


def _mark_nonfinite(ax, x, values, colour) -> None:
    """Draw the non-finite values of a series at the top edge of ``ax``, the first one
    labelled (a marker at each, so a series that is inf throughout reads so)."""
    values = np.asarray(values, np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size == 0:
        return
    i = int(bad[0])
    word = "nan" if np.isnan(values[i]) else ("inf" if values[i] > 0 else "-inf")
    top = ax.get_xaxis_transform()  # x in data units, y in axes units
    ax.plot(np.asarray(x)[bad], np.ones(bad.size), ls="", marker="^", color=colour, ms=8,
            transform=top, clip_on=False)  # fmt: skip
    ax.annotate(
        word,
        (x[i], 1.0),
        xycoords=top,
        xytext=(0, 6),
        textcoords="offset points",
        ha="center",
        color=colour,
        fontsize=8,
        fontweight="bold",
    )


def _finite_or_nan(values) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return np.where(np.isfinite(values), values, np.nan)


# ---- one training run ---------------------------------------------------------------------
_TRAIN_J = "train J = cross-entropy + L2 term"
_DEV_CE = "dev cross-entropy"


_MARKERS = "osD^vPX*<>"


def _markers(index: int, count: int, n_points: int) -> dict:
    """Run ``index`` of ``count`` drawn together: its own marker shape, at points spread
    between the others' (so runs whose curves coincide still show each of them)."""
    if n_points < 2:
        return {}
    every = max(count, n_points // 6)  # room for every run's own start
    start = index * every // count
    return dict(marker=_MARKERS[index % len(_MARKERS)], markevery=(start, every), ms=5)


def _draw_run(
    cost_ax, acc_ax, steps, history: History, member, colour, label=None, marks=None
) -> None:
    """Cost (log scale) and accuracy of one run: train dashed, dev solid (with ``marks``,
    matplotlib marker options, on the dev lines)."""

    def row(values):
        values = np.asarray(values)
        return values[member] if member is not None else values

    marks = marks or {}
    train_cost, dev_cost = row(history.train_cost), row(history.dev_cost)
    cost_ax.plot(steps, _finite_or_nan(dev_cost), color=colour, label=label, **marks)
    cost_ax.plot(steps, _finite_or_nan(train_cost), color=colour, ls="--", lw=1)
    acc_ax.plot(steps, row(history.dev_accuracy), color=colour, label=label, **marks)
    acc_ax.plot(steps, row(history.train_accuracy), color=colour, ls="--", lw=1)
    for series in (dev_cost, train_cost):
        _mark_nonfinite(cost_ax, steps, series, colour)


def _plain_log_labels(**options):
    """matplotlib's log-axis labels (which ticks get one) written as plain numbers: 0.3,
    not 3e-01."""
    from matplotlib.ticker import LogFormatter

    class PlainLog(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    return PlainLog(**options)


def _plain_log_axis(axis) -> None:
    """A log axis labelled in plain numbers (0.3, 0.4, ...), its minor ticks too over up
    to two decades (matplotlib labels only the decades of a wider one), and half steps
    (0.25, 0.35) on a view under half a decade, where 2, 3, 4 alone leave one or two."""
    from matplotlib.ticker import LogLocator

    class FinerWhenNarrow(LogLocator):
        def tick_values(self, vmin, vmax):
            if not (0 < vmin < vmax and np.log10(vmax / vmin) < 0.5):
                return super().tick_values(vmin, vmax)
            decades = 10.0 ** np.arange(np.floor(np.log10(vmin)) - 1, np.ceil(np.log10(vmax)) + 1)
            steps = (1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9)
            return np.outer(decades, steps).ravel()

    axis.set_minor_locator(FinerWhenNarrow(subs="auto"))
    axis.set_major_formatter(_plain_log_labels(minor_thresholds=(2, 0.5)))
    axis.set_minor_formatter(_plain_log_labels(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _label_run_axes(cost_ax, acc_ax) -> None:
    from matplotlib.lines import Line2D

    cost_ax.set_yscale("log")
    _plain_log_axis(cost_ax.yaxis)
    cost_ax.set_xlabel("step")
    cost_ax.set_ylabel("cost (log scale)")
    cost_ax.set_title("cost: the train J includes the L2 term, the dev cost does not", fontsize=9)
    acc_ax.set_xlabel("step")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_title("accuracy (dropout off): train and dev are comparable", fontsize=9)
    styles = [
        Line2D([], [], color="black", label=_DEV_CE),
        Line2D([], [], color="black", ls="--", lw=1, label=_TRAIN_J),
    ]
    cost_ax.legend(handles=styles, fontsize=8, loc="upper right")


def cost_figure(history: History, *, title: str = "training run"):
    """Cost and accuracy of one run against step (train dashed, dev solid)."""
    fig = _figure(figsize=(11, 4), layout="constrained")
    cost_ax, acc_ax = fig.subplots(1, 2)
    steps = np.asarray(history.step)
    _draw_run(cost_ax, acc_ax, steps, history, None, "C0")
    _label_run_axes(cost_ax, acc_ax)
    acc_ax.legend(
        handles=[
            _line("black", "-", "dev accuracy"),
            _line("black", "--", "train accuracy"),
        ],
        fontsize=8,
    )
    fig.suptitle(title)
    return fig


def _line(colour, style, label):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=colour, ls=style, label=label)


def plot_cost(history: History, path, *, title: str = "training run") -> Path:
    """Save :func:`cost_figure` as a PNG at ``path``."""
    return save(cost_figure(history, title=title), path)


# ---- sweeps -------------------------------------------------------------------------------
def _config_names(results) -> list[str]:
    """The table columns that define a configuration (hyperparameters and static axes),
    without those that only label members (``meta["label_columns"]``)."""
    if hasattr(results, "hparam_names"):
        labels = set(getattr(results, "meta", {}).get("label_columns", ()))
        return [name for name in results.hparam_names() if name not in labels]
    fields = set(results.hparams._fields)
    names = [c for c in results.columns() if c in fields or c.rsplit("_", 1)[0] in fields]
    return names + list(getattr(results, "static", {}) or {})


def _maximise(metric: str) -> bool:
    return "cost" not in metric


def _check_names(results, *, x=None, y=None, metric=None) -> tuple[dict, list[str]]:
    columns, names = results.columns(), _config_names(results)
    for arg, value in (("x", x), ("y", y)):
        if value is not None and value not in names:
            raise ValueError(f"{arg}={value!r} is not a swept column; allowed: {', '.join(names)}")
    if x is not None and x == y:
        others = ", ".join(n for n in names if n != x) or "none"
        raise ValueError(f"x and y are both {x!r}: give two different columns (others: {others})")
    if metric is not None:
        numeric = [c for c in columns if "cost" in c or "accuracy" in c]
        if metric not in numeric:
            raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(numeric)}")
    return columns, names


def _ordered(values: np.ndarray, numeric: bool) -> np.ndarray:
    """An axis's distinct values: numbers in increasing order, labels (layer sizes
    ``2-8-1``, optimizer names) in the order the sweep first has them."""
    return np.unique(values) if numeric else np.asarray(list(dict.fromkeys(values.tolist())))


def default_axes(results, metric: str | None = None) -> tuple[str, str]:
    """The heatmap's two axes by default: the swept columns, λ and keep_prob first (the
    course's pair). When more than two vary, the two that explain most of ``metric``'s
    spread over the members (:func:`_influence`; default ``results.default_metric``), so a
    learning rate that decides the results is not averaged away. A column that does not
    vary fills in only when fewer than two do."""
    columns = results.columns()
    preferred, varying = _swept(results)
    if len(varying) > 2:
        values = np.array(columns[metric or _default_metric(results)], np.float64)  # a copy
        values[np.asarray(columns["diverged"], bool)] = np.nan
        share = {n: _influence(columns[n], values) for n in varying}
        varying.sort(key=lambda n: -share[n])  # a stable sort: ties keep the course's order
        # a column that splits the members as a chosen one does (keep_prob_2 swept with
        # keep_prob_1 as "0.8/0.9,1/1") would only plot a diagonal: the next one instead
        distinct = []
        for name in varying:
            if not any(_same_split(columns[name], columns[m]) for m in distinct):
                distinct.append(name)
        varying = distinct + [n for n in varying if n not in distinct]
    return tuple((varying + [n for n in preferred if n not in varying])[:2])


def _same_split(a, b) -> bool:
    """Do columns ``a`` and ``b`` group the members alike (each value of one goes with a
    single value of the other, and back)?"""
    a, b = (_axis_values(c)[0].tolist() for c in (a, b))
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


def _swept(results) -> tuple[list[str], list[str]]:
    """The configuration columns, λ and keep_prob first, and those of them that vary."""
    columns = results.columns()
    names = _config_names(results)
    keep = "keep_prob" if "keep_prob" in names else "keep_prob_1"
    preferred = ["lambd", keep] + [n for n in names if n not in ("lambd", keep)]
    return preferred, [n for n in preferred if len({repr(v) for v in columns[n]}) > 1]


def _influence(column, values, bins: int = 5) -> float:
    """The share of the variance of ``values`` that lies between the groups of ``column``,
    as ε² = (SSB − (k − 1) MSW) / SST: the correlation ratio η² less what k groups of noise
    alone would explain (η² favours columns with more values). One group per distinct
    value, or ``bins`` groups of equal size by rank for a numeric column with more distinct
    values (random search). Members whose value is not finite are left out. 0 when
    ``values`` do not vary or every member is its own group."""
    keys, numeric = _axis_values(column)
    finite = np.isfinite(values)
    keys, values = keys[finite], values[finite]
    if numeric and len(np.unique(keys)) > bins:
        keys = np.argsort(np.argsort(keys, kind="stable"), kind="stable") * bins // len(keys)
    groups = np.unique(keys, return_inverse=True)[1]
    n, k = len(values), int(groups.max(initial=-1)) + 1
    total = float(np.sum((values - values.mean()) ** 2)) if n else 0.0
    if n <= k or total == 0:
        return 0.0
    means = np.bincount(groups, values) / np.bincount(groups)
    between = float(np.sum((means[groups] - values.mean()) ** 2))
    within = (total - between) / (n - k)
    return (between - (k - 1) * within) / total


def _axis_values(column) -> tuple[np.ndarray, bool]:
    """The column as floats when numeric (True), else as strings (False)."""
    try:
        return np.asarray(column, np.float64), True
    except (TypeError, ValueError):
        return np.asarray([str(v) for v in column]), False


class _Cell:
    """The members sharing one (x, y) point, summarised. Members that share the other
    configuration columns too (differing only by seed) form a group; the cell shows the
    best group's mean ± std over its seeds, so a bad learning rate does not drag a good
    (x, y) down. Diverged and non-finite members are left out of every mean."""

    def __init__(self, members, groups, values, diverged, maximise: bool):
        self.members = members
        self.n = len(members)
        self.n_diverged = int(diverged[members].sum())
        self.earlier_rung = None  # halving: the rung its members stopped at, before the last
        self.mean = self.std = np.nan
        for group in dict.fromkeys(groups[members].tolist()):
            in_group = members[groups[members] == group]
            kept = values[in_group][~diverged[in_group] & np.isfinite(values[in_group])]
            if kept.size == 0:
                continue
            mean = float(kept.mean())
            if np.isnan(self.mean) or (mean > self.mean if maximise else mean < self.mean):
                self.mean = mean
                self.std = float(kept.std(ddof=1)) if kept.size > 1 else np.nan
        nonfinite = values[members][~np.isfinite(values[members])]
        self.nonfinite = "nan" if np.isnan(nonfinite).any() else ("inf" if nonfinite.size else "")

    def text(self) -> str:
        if np.isnan(self.mean):
            return "diverged" if self.n_diverged else (self.nonfinite or "no data")
        lines = [f"{self.mean:.3f}"]
        if not np.isnan(self.std):
            lines.append(f"± {self.std:.3f}")
        if self.n_diverged:
            lines.append(f"{self.n_diverged}/{self.n} diverged")
        if self.earlier_rung is not None:
            lines.append(f"(rung {self.earlier_rung})")
        return "\n".join(lines)


def _cells(xs, ys, groups, values, diverged, maximise) -> dict[tuple, _Cell]:
    points: dict[tuple, list[int]] = {}
    for i, point in enumerate(zip(xs.tolist(), ys.tolist())):
        points.setdefault(point, []).append(i)
    return {p: _Cell(np.asarray(m), groups, values, diverged, maximise) for p, m in points.items()}


def _groups(columns, names, x, y) -> np.ndarray:
    """An id per member for its configuration apart from x, y and the seed."""
    others = [n for n in names if n not in (x, y)]
    keys = [tuple(str(columns[n][i]) for n in others) for i in range(len(columns["seed"]))]
    ids = {key: k for k, key in enumerate(dict.fromkeys(keys))}
    return np.asarray([ids[key] for key in keys])


def _best_point(cells: dict[tuple, _Cell], maximise: bool):
    """The point with the best mean (ties: smaller std, then first in order), or None."""
    scored = [
        (-c.mean if maximise else c.mean, np.nan_to_num(c.std), k)
        for k, (p, c) in enumerate(cells.items())
        if not np.isnan(c.mean)
    ]
    if not scored:
        return None
    return list(cells)[min(scored)[2]]


def _table_best_point(results, metric: str, xs, ys):
    """The point of the table's best configuration (``results.summary``: the metric's mean
    over seeds, ties broken by the dev cost), so the plot and the table agree."""
    rows = results.summary(metric) if hasattr(results, "summary") else []
    if not rows or not np.isfinite(rows[0][f"{metric}_mean"]):
        return None
    member = int(np.atleast_1d(rows[0]["members"])[0])
    return (xs.tolist()[member], ys.tolist()[member])


def _seeds_per_point(columns, cells) -> int:
    """The most seeds any point averages over (1: each point is one run)."""
    seed = np.asarray(columns["seed"]).tolist()
    return max(len({seed[i] for i in c.members}) for c in cells.values())


def _what_a_point_shows(columns, names, x, y, cells, as_grid: bool = True) -> str:
    """E.g. ``best of 2 learning_rate values, mean ± std over 3 seeds``, counted within the
    points (a random search has one member per point although its other axes vary). A
    scatter's colour shows the mean only; a grid's cells print the std too."""
    seeds = _seeds_per_point(columns, cells)
    best_of, along = [], []  # varying within a point; varying only from point to point
    counts = []
    for name in (n for n in names if n not in (x, y)):
        column = np.asarray(columns[name]).tolist()
        count = max(len({str(column[i]) for i in c.members}) for c in cells.values())
        if count > 1:
            best_of.append(name)
            counts.append(count)
        elif len(set(map(str, column))) > 1:  # e.g. keep_prob_2, set with keep_prob_1
            along.append(name)
    also = f" ({', '.join(along)} also varies)" if along else ""
    if seeds == 1 and not best_of:
        return "one member per point" + also
    parts = [f"best of {_within_a_point(columns, best_of, counts, cells)}"] if best_of else []
    if seeds > 1:
        parts.append(f"mean {'± std ' if as_grid else ''}over {seeds} seeds")
    return ", ".join(parts) + also


def _within_a_point(columns, names: list, counts: list, cells) -> str:
    """``2 lambd values × 3 keep_prob values``, or, where columns move together (a
    per-layer keep_prob_1 and keep_prob_2 set as pairs), ``4 combinations of ...``."""
    rows = [np.asarray(columns[n]).astype(str) for n in names]
    combos = max(len({tuple(r[i] for r in rows) for i in c.members}) for c in cells.values())
    if combos == int(np.prod(counts)):
        return " × ".join(f"{count} {name} values" for name, count in zip(names, counts))
    return f"{combos} combinations of {', '.join(names)}"


# The optimizers' averaging rates: the course samples and reads them as 1 - beta on a log
# scale (0.9, 0.99, 0.999 evenly spaced).
_BETAS = frozenset(name for own in OPTIMIZER_HPARAMS.values() for name in own)


def _scale_for(values: np.ndarray, name: str = "") -> tuple[str, dict]:
    """``1 - beta`` (a log scale of 1 - value) for an optimizer's beta in [0, 1) whose
    1 - beta spreads over a decade or more, ``log`` for positive values spread so,
    ``symlog`` when a 0 sits among such values, else ``linear``."""
    if name in _BETAS and values.size > 1 and (values >= 0).all() and (values < 1).all():
        rest = 1 - values
        if rest.max() / rest.min() >= 10:
            return "1 - beta", {}
    positive = values[values > 0]
    if positive.size < 2 or (values < 0).any() or positive.max() / positive.min() < 10:
        return "linear", {}
    if positive.size == values.size:
        return "log", {}
    return "symlog", {"linthresh": float(positive.min())}


def heatmap_figure(
    results, *, x: str | None = None, y: str | None = None, metric: str | None = None
):
    """``metric`` per (x, y) point of a sweep: a grid of cells, or, when the points do not
    form a small full grid (random search), a scatter on log axes coloured by the metric.

    Each cell shows, for the best setting of the other swept columns (e.g. the learning
    rate), the mean and std over seeds of its members that did not diverge; the title says
    what was picked and averaged. The best cell is outlined in red; cells with
    diverged members are hatched and say how many.

    Args:
      results: a :class:`jaxhp.SweepResults`.
      x, y: configuration columns of ``results.columns()`` for the two axes; by default
        the swept ones, λ and keep_prob first; of three or more, the two that explain
        most of the metric's spread (see :func:`default_axes`).
      metric: the column to colour by (accuracies: higher is better; costs: lower);
        default: ``results.default_metric``.

    Returns:
      A matplotlib Figure.

    Raises:
      ValueError: ``x``, ``y`` or ``metric`` is not a column of the sweep.
    """
    metric = metric or _default_metric(results)
    columns, names = _check_names(results, x=x, y=y, metric=metric)
    chosen, n_swept = "", len(_swept(results)[1])
    if x is None and y is None and n_swept > 2:
        chosen = f"\naxes: the 2 of its {n_swept} swept columns that explain most of its spread"
    if x is None or y is None:
        x, y = _fill_axes(results, x, y, metric)
    xs, x_numeric = _axis_values(columns[x])
    ys, y_numeric = _axis_values(columns[y])
    values = np.asarray(columns[metric], np.float64)
    diverged = np.asarray(columns["diverged"], bool)
    maximise = _maximise(metric)
    cells = _cells(xs, ys, _groups(columns, names, x, y), values, diverged, maximise)
    if "rung" in columns:  # halving: a point's value is from its members' last rung
        rung = np.asarray(columns["rung"])
        last = int(rung.max())
        for cell in cells.values():
            cell.earlier_rung = (
                int(rung[cell.members].max()) if rung[cell.members].max() < last else None
            )
    best = _table_best_point(results, metric, xs, ys)
    if best is None:
        best = _best_point(cells, maximise)
    ux, uy = _ordered(xs, x_numeric), _ordered(ys, y_numeric)
    full_grid = len(cells) == len(ux) * len(uy)
    small = len(ux) <= _MAX_GRID_SIDE and len(uy) <= _MAX_GRID_SIDE
    as_grid = (full_grid and small) or not (x_numeric and y_numeric)

    fig = _figure(figsize=(7, 5.5), layout="constrained")
    ax = fig.subplots()
    draw = _draw_grid if as_grid else _draw_scatter
    resolution = results._resolution(metric) if hasattr(results, "_resolution") else 0.0
    norm = _colour_norm(cells, metric, resolution)
    image = draw(ax, cells, ux, uy, best, norm, _cmap(maximise), names=(x, y))
    near = _near_best_points(results, metric, xs, ys) - {best}
    (_outline_near if as_grid else _ring_near)(ax, near, ux, uy)
    direction = "higher" if maximise else "lower"
    fig.colorbar(image, ax=ax, label=f"{metric} ({direction} is better)")
    for name, scale, set_label in (  # "function": the 1 - beta scale of _scale_for
        (x, ax.get_xscale(), ax.set_xlabel),
        (y, ax.get_yscale(), ax.set_ylabel),
    ):
        set_label(f"{name} (1 - {name} on a log scale)" if scale == "function" else name)
    halving = " (halving: at each member's last rung)" if "rung" in columns else ""
    shows = _what_a_point_shows(columns, names, x, y, cells, as_grid)
    shows = textwrap.fill(f"{shows}; diverged members excluded", 80)  # 7-inch figure, 10 pt
    what = textwrap.fill(f"{metric}{halving} by {x} and {y}", 80)
    ax.set_title(f"{what}\n{shows}{chosen}", fontsize=10)
    handles = _heatmap_legend(
        as_grid,
        _seeds_per_point(columns, cells) > 1,
        best is not None,
        bool(near),
        any(c.n_diverged for c in cells.values()),
        any(c.earlier_rung is not None for c in cells.values()),
    )
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    return fig


def _fill_axes(results, x, y, metric: str | None = None) -> tuple[str, str]:
    """The axes not given, from :func:`default_axes`, other than the one given."""
    spare = [name for name in default_axes(results, metric) if name not in (x, y)]
    spare += [name for name in _config_names(results) if name not in (x, y, *spare)]
    x = x if x is not None else spare.pop(0)
    return x, y if y is not None else next(n for n in spare if n != x)


def _near_best_points(results, metric: str, xs, ys) -> set:
    """The points of the configurations the table marks within noise of the best."""
    rows = results.summary(metric) if hasattr(results, "summary") else []
    near = [int(np.atleast_1d(row["members"])[0]) for row in rows[1:] if row["within_noise"]]
    return {(xs.tolist()[m], ys.tolist()[m]) for m in near}


def _outline_near(ax, points: set, ux, uy) -> None:
    """A dashed outline on each grid cell holding a configuration within noise of the best:
    the data cannot tell those apart from it."""
    from matplotlib.patches import Rectangle

    for xv, yv in points:  # inside the cell: neighbours' outlines (and the best's) stay apart
        i, j = ux.tolist().index(xv), uy.tolist().index(yv)
        ax.add_patch(
            Rectangle(
                (i - 0.44, j - 0.44), 0.88, 0.88, fill=False, ec="red", lw=1.5, ls="--",
                gid="near",
            )
        )  # fmt: skip


def _ring_near(ax, points: set, ux, uy) -> None:
    """A red ring around each scatter point within noise of the best (solid, as its legend
    entry: a marker in a legend cannot be dashed)."""
    if points:
        xv, yv = zip(*sorted(points))
        ax.scatter(
            xv, yv, marker="o", s=160, facecolors="none", edgecolors="red", lw=1.2, gid="near"
        )


def _heatmap_legend(
    as_grid: bool, means: bool, has_best: bool, has_near: bool, has_diverged: bool, earlier: bool
) -> list:
    """``means``: the points average several seeds (the best is the best mean)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    best_label = "best mean" if means else "best"
    near = Patch(fill=False, ec="red", lw=1.5, ls="--", label="within noise of the best")
    if not as_grid:
        near = Line2D([], [], ls="", marker="o", ms=12, mfc="none", mec="red",
                      label="within noise of the best (red ring)")  # fmt: skip
    if as_grid:
        best = Patch(fill=False, ec="red", lw=2, label=best_label)
        diverged = Patch(fc="lightgrey", ec="black", hatch=_HATCH, label="has diverged members")
        stopped = [Patch(fill=False, lw=0, label="(rung k): stopped by halving, fewer steps")]
    else:
        best = Line2D([], [], ls="", marker="*", ms=14, mfc="none", mec="red", label=best_label)
        diverged = Line2D([], [], ls="", marker="x", c="red", label="has diverged members")
        stopped = [
            Line2D([], [], ls="", marker="o", mfc="grey", mec="k", mew=0.3,
                   label="filled: trained to the last rung"),
            Line2D([], [], ls="", marker="o", mfc="none", mec="grey",
                   label="hollow: stopped at an earlier rung by halving, fewer steps"),
        ]  # fmt: skip
    return [best] * has_best + [near] * has_near + [diverged] * has_diverged + stopped * earlier


def _colour_norm(cells, metric: str, resolution: float = 0.0):
    """The colour range of the cells' means, at least a minimum span wide (for an accuracy
    four dev examples or 0.02, whichever is larger; for a cost 5% of its size), so that
    differences within noise do not look like the whole scale. An accuracy's range stays
    inside [0, 1]."""
    from matplotlib.colors import Normalize

    means = np.asarray([c.mean for c in cells.values()])
    means = means[np.isfinite(means)]
    if means.size == 0:
        return Normalize(0, 1)
    lo, hi = float(means.min()), float(means.max())
    accuracy = "accuracy" in metric
    span = max(0.02, 4 * resolution) if accuracy else max(0.05 * abs(lo + hi) / 2, 1e-3)
    if hi - lo >= span:
        return Normalize(lo, hi)
    middle = (lo + hi) / 2
    lo, hi = middle - span / 2, middle + span / 2
    if accuracy:  # slide the window back inside [0, 1]
        shift = max(0.0, -lo) - max(0.0, hi - 1.0)
        lo, hi = lo + shift, hi + shift
    return Normalize(lo, hi)


def _cmap(maximise: bool = True):
    """viridis, reversed for a metric to minimise: the best values are bright either way."""
    import matplotlib

    return matplotlib.colormaps["viridis" if maximise else "viridis_r"].with_extremes(
        bad="lightgrey"
    )


def _draw_grid(ax, cells, ux, uy, best, norm, cmap, names=("", "")):  # noqa: ARG001
    from matplotlib.patches import Rectangle

    grid = np.full((len(uy), len(ux)), np.nan)
    column_of = {v: i for i, v in enumerate(ux.tolist())}
    row_of = {v: j for j, v in enumerate(uy.tolist())}
    where = {}
    for (xv, yv), cell in cells.items():
        i, j = column_of[xv], row_of[yv]
        grid[j, i] = cell.mean
        where[(xv, yv)] = (i, j)
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    x_ticks = [_tick(v) for v in ux]
    ax.set_xticks(range(len(ux)), x_ticks, rotation=45 if max(map(len, x_ticks)) > 5 else 0)
    ax.set_yticks(range(len(uy)), [_tick(v) for v in uy])
    for point, cell in cells.items():
        i, j = where[point]
        face = cmap(norm(cell.mean)) if np.isfinite(cell.mean) else cmap.get_bad()
        ink = text_colour(face)
        ax.text(i, j, cell.text(), ha="center", va="center", fontsize=8, color=ink)
        if cell.n_diverged:
            ax.add_patch(
                Rectangle(
                    (i - 0.5, j - 0.5), 1, 1, fill=False, hatch=_HATCH, ec=ink, lw=0,
                    alpha=0.35, gid="diverged",
                )
            )  # fmt: skip
    if best is not None:
        i, j = where[best]
        ax.add_patch(
            Rectangle(
                (i - 0.5, j - 0.5), 1, 1, fill=False, ec="red", lw=3, gid="best"
            )
        )  # fmt: skip
    return image


def _tick(value) -> str:
    return value if isinstance(value, str) else format_number(value)


def _draw_scatter(ax, cells, ux, uy, best, norm, cmap, names=("", "")):
    points = np.asarray(list(cells), np.float64)
    means = np.asarray([c.mean for c in cells.values()])
    ok = np.isfinite(means)
    earlier = np.asarray([c.earlier_rung is not None for c in cells.values()])
    image = ax.scatter(
        points[ok & ~earlier, 0], points[ok & ~earlier, 1], c=means[ok & ~earlier],
        cmap=cmap, norm=norm, s=40, ec="k", lw=0.3,
    )  # fmt: skip
    if (ok & earlier).any():  # halving: measured after fewer steps, drawn hollow
        ax.scatter(
            points[ok & earlier, 0], points[ok & earlier, 1], facecolors="none",
            edgecolors=cmap(norm(means[ok & earlier])), s=40, lw=1.5, gid="earlier rung",
        )  # fmt: skip
    some = np.asarray([c.n_diverged > 0 for c in cells.values()])
    if some.any():
        ax.scatter(
            points[some, 0], points[some, 1], marker="x", c="red", s=60, lw=1.5,
            gid="diverged",
        )  # fmt: skip
    if best is not None:
        ax.scatter(
            [best[0]], [best[1]], marker="*", s=400, facecolors="none", edgecolors="red",
            lw=2, gid="best", clip_on=False, zorder=5,  # whole even at the axes' edge
        )  # fmt: skip
    axes = (
        (points[:, 0], ax.set_xscale, ax.xaxis, ax.set_xlim),
        (points[:, 1], ax.set_yscale, ax.yaxis, ax.set_ylim),
    )
    for values, set_scale, axis, set_lim, name in zip(*zip(*axes), names):
        scale, options = _scale_for(values, name)
        if scale == "1 - beta":
            _one_minus_log_axis(set_scale, axis, set_lim, values)
            continue
        set_scale(scale, **options)
        if scale == "symlog":  # 0, then whole decades: none inside the linear part near 0
            # (a float32 0.01 is 0.0099999998: its decade is 10^-2, not 10^-3)
            low = np.ceil(np.log10(options["linthresh"]) - 1e-6)
            high = np.floor(np.log10(values.max()) + 1e-6)  # a tick past the data widens it
            axis.set_ticks([0.0, *10.0 ** np.arange(low, high + 1)])
    return image


def _one_minus_log_axis(set_scale, axis, set_lim, values: np.ndarray) -> None:
    """An axis even in -log10(1 - value): 0.9, 0.99 and 0.999 evenly spaced, ticked at
    1 - 10^-k and 1 - 3 * 10^-k (0.7, 0.9, 0.97, 0.99, ...), its limits padded by 5% in
    that space (linear margins past 1 would stretch it to 1 - 1e-12)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    def forward(v):
        return -np.log10(np.clip(1 - np.asarray(v, np.float64), 1e-12, None))

    def inverse(u):
        return 1 - 10.0 ** -np.asarray(u, np.float64)

    set_scale("function", functions=(forward, inverse))
    low, high = forward(values.min()), forward(values.max())
    pad = 0.05 * (high - low)
    set_lim(inverse(low - pad), inverse(high + pad))
    decades = np.arange(np.floor(low), np.ceil(high) + 1)
    ticks = np.concatenate([inverse(decades), 1 - 3 * 10.0**-decades])
    axis.set_major_locator(FixedLocator(np.sort(ticks[(ticks >= 0) & (ticks < 1)])))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.6g}"))


def heatmap(
    results, path, *, x: str | None = None, y: str | None = None, metric: str | None = None
) -> Path:
    """Save :func:`heatmap_figure` as a PNG at ``path``."""
    return save(heatmap_figure(results, x=x, y=y, metric=metric), path)


def _default_metric(results) -> str:
    return getattr(results, "default_metric", "dev_accuracy")


def _top_configurations(results, top: int, metric: str) -> list[dict]:
    """The table rows of the best seed of each of the ``top`` best configurations."""
    if not hasattr(results, "summary"):
        return results.top(top, metric=metric)
    table, order = results.table(), results.top(len(results), metric=metric)
    rank = {row["member"]: k for k, row in enumerate(order)}
    picked = []
    for row in results.summary(metric)[:top]:
        live = [m for m in np.atleast_1d(row["members"]).tolist() if m in rank]
        if live:
            picked.append(table[min(live, key=rank.get)])
    return picked


def curves_figure(results, *, top: int = 5, metric: str | None = None):
    """Cost and accuracy curves of the ``top`` configurations by ``metric`` (the table's
    ranking; diverged members are never ranked), each drawn by its best seed: train dashed,
    dev solid, one colour per configuration.

    Args:
      results: a :class:`jaxhp.SweepResults`.
      top: how many members to draw.
      metric: the ranking metric (as for ``results.top``; default
        ``results.default_metric``).

    Returns:
      A matplotlib Figure.
    """
    metric = metric or _default_metric(results)
    _, names = _check_names(results, metric=metric)
    rows = _top_configurations(results, top, metric)
    fig = _figure(figsize=(14, 4.5), layout="constrained")
    cost_ax, acc_ax = fig.subplots(1, 2)
    steps = np.asarray(results.history.step)
    drawn = [_trained_part(results.history, r["member"], _steps_of(steps, r), r) for r in rows]
    # one dev example's accuracy: curves that differ by no more than that look the same
    resolution = results._resolution("dev_accuracy") if hasattr(results, "_resolution") else 0
    # The best drawn last, on top: runs that coincide then show the higher-ranked one.
    for i, row in reversed(list(enumerate(rows))):
        history = drawn[i]
        label = f"{i + 1}. {member_label(row, names)}"  # the table's rank, then the member
        label += _hidden_under(history, drawn[:i], resolution, _cost_span(drawn))
        marks = _markers(i, len(rows), len(history.step))
        step = _steps_of(steps, row)[: len(history.step)]
        _draw_run(cost_ax, acc_ax, step, history, None, f"C{i % 10}", label, marks)
    _label_run_axes(cost_ax, acc_ax)
    if rows:
        several = len(set(np.asarray(results.seeds).tolist())) > 1
        seeds = " (best seed of each)" if several else ""
        rungs = "the last rung reached, then " if getattr(results, "rung", None) is not None else ""
        title = f"top {len(rows)} configurations by {rungs}{metric}{seeds}"
        handles, labels = acc_ax.get_legend_handles_labels()
        acc_ax.legend(  # ranked order; beside the axes, where it hides no curve
            handles[::-1], labels[::-1], fontsize=7, title=title, title_fontsize=8,
            loc="upper left", bbox_to_anchor=(1.02, 1.0),
        )  # fmt: skip
    else:
        acc_ax.text(0.5, 0.5, "every member diverged", ha="center", transform=acc_ax.transAxes)
    fig.suptitle("curves of the best configurations (train dashed, dev solid)")
    return fig


def _steps_of(steps: np.ndarray, row: dict) -> np.ndarray:
    return steps[row["member"]] if steps.ndim == 2 else steps


def _cost_span(histories: list[History]) -> float:
    """The log range of the costs drawn: the height of the log cost axis."""
    costs = [_finite_or_nan(getattr(h, n)) for h in histories for n in ("train_cost", "dev_cost")]
    costs = np.concatenate([c.ravel() for c in costs]) if costs else np.array([np.nan])
    costs = costs[costs > 0]
    return float(np.log(costs.max() / costs.min())) if costs.size else 0.0


def _hidden_under(
    history: History, above: list[History], resolution: float = 0.0, span: float = np.inf
) -> str:
    """A legend note when this run's train and dev costs lie within 2% of a higher-ranked
    run's (a ratio: the axis is logarithmic), and within half a percent of the cost axis's
    height ``span`` (its log range: on a narrow axis 2% is a visible gap), and its train
    and dev accuracies within 0.01, or one dev example (``resolution``) up to 0.02: that
    run is drawn over all four of its curves, and the legend then explains the curves one
    cannot see."""
    tolerance = max(0.01, min(resolution, 0.02)) + 1e-6  # up to one example of 50 or more
    cost_tolerance = min(np.log(1.02), 0.005 * span)
    for k, other in enumerate(above):
        if len(other.step) != len(history.step):
            continue
        close_costs = all(
            _log_gap(getattr(history, name), getattr(other, name)) <= cost_tolerance
            for name in ("train_cost", "dev_cost")
        )
        close_accuracies = all(
            np.max(np.abs(np.asarray(getattr(history, name)) - getattr(other, name)), initial=0.0)
            <= tolerance
            for name in ("train_accuracy", "dev_accuracy")
        )
        if close_costs and close_accuracies:
            return f" (hidden under {k + 1}.: the same curves)"
    return ""


def _log_gap(a, b) -> float:
    """The largest |log(a / b)| over the finite pairs (the cost axis is logarithmic)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(np.log(_finite_or_nan(a) / _finite_or_nan(b)))
    return float(np.nanmax(ratio, initial=0.0))


def _trained_part(history: History, member: int, steps: np.ndarray, row: dict) -> History:
    """A member's history rows up to its last evaluation (rows after an early stop or a
    halving rung repeat it); a diverged member keeps its rows, the non-finite one too."""
    rows = len(steps)
    if not row["diverged"]:
        rows = int(np.searchsorted(steps, row["stop_step"], side="left")) + 1
        rows = min(max(rows, 1), len(steps))

    def part(values):
        values = np.asarray(values)
        return (values[member] if values.ndim == 2 else values)[:rows]

    return History(*(part(h) for h in history))


def curves(results, path, *, top: int = 5, metric: str | None = None) -> Path:
    """Save :func:`curves_figure` as a PNG at ``path``."""
    return save(curves_figure(results, top=top, metric=metric), path)


def rungs_figure(results):
    """Successive halving at a glance: every member's dev cost against step, each line
    ending where the member stopped, coloured by the last rung it reached; dotted lines
    mark the rungs, labelled with how many members entered each.

    Args:
      results: :class:`jaxhp.SweepResults` of a sweep run with ``schedule=halving(...)``.

    Raises:
      ValueError: results without rungs (a full sweep).
    """
    if getattr(results, "rung", None) is None or "rungs" not in results.meta:
        raise ValueError("rungs_figure needs the results of a halving sweep (schedule=halving())")
    rungs = results.meta["rungs"]
    fig = _figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    cmap = _cmap()
    colours = [cmap(k / max(1, len(rungs) - 1)) for k in range(len(rungs))]
    steps = np.asarray(results.history.step)
    dev = _finite_or_nan(results.history.dev_cost)
    reached = np.asarray(results.rung)
    for member in np.argsort(reached, kind="stable"):  # the survivors drawn last, on top
        step = steps[member] if steps.ndim == 2 else steps
        shown = step <= results.stop_step[member]
        k = reached[member]
        line = dev[member][shown]
        ax.plot(step[shown], line, color=colours[k], lw=0.8 + 0.5 * k, alpha=0.8)
        ax.plot(step[shown][-1:], line[-1:], "o", color=colours[k], ms=3)  # where it stopped
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis)
    ax.set_xscale("log")  # rungs at r, r*eta, r*eta^2, ...: evenly spaced, labels apart
    _plain_log_axis(ax.xaxis)  # steps as 100, 200, 500, not 10^2
    for rung in rungs:
        ax.axvline(rung["step"], color="grey", ls=":", lw=1)
    # The rung labels sit above the plot, clear of the curves.
    top = ax.secondary_xaxis("top")
    top.set_xticks(
        [rung["step"] for rung in rungs],
        labels=[
            f"rung {k}\n{rung['members']} member{'' if rung['members'] == 1 else 's'}"
            for k, rung in enumerate(rungs)
        ],
        fontsize=8,
    )
    last = len(rungs) - 1  # its members were not stopped: they trained on to the end
    labels = [f"stopped at rung {k}" for k in range(last)] + [f"reached rung {last}, the end"]
    ax.legend(
        handles=[_line(colour, "-", label) for colour, label in zip(colours, labels)],
        fontsize=8,
        loc="upper right",
    )
    ax.set_xlabel("step (log scale)")
    ax.set_ylabel("dev cross-entropy (log scale)")
    # Recorded since diverged members' last steps count (their stop_step rolls back).
    trained = int(results.meta.get("member_steps", np.sum(results.stop_step)))
    ax.set_title(
        f"successive halving: {len(results)} members, {trained:,} member-steps "
        f"(a full sweep: {len(results) * int(rungs[-1]['step']):,})",
        fontsize=9,
    )
    return fig


def rungs(results, path) -> Path:
    """Save :func:`rungs_figure` as a PNG at ``path``."""
    return save(rungs_figure(results), path)


# ---- learning curve, init probe, decision boundary ---------------------------------------
def learning_curve_figure(curve):
    """Train and dev error against training-set size, with the diagnosis in the title."""
    fig = _figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(curve.sizes, curve.train_error, "o--", label="train error")
    ax.plot(curve.sizes, curve.dev_error, "o-", label="dev error")
    bayes = curve.diagnosis.bayes_error
    assumed = f"{bayes:.3g}" if curve.diagnosis.bayes_error_given else "0: none given"
    ax.axhline(bayes, color="grey", ls=":", lw=2, label=f"Bayes error (assumed {assumed})")
    ax.set_xlabel("training examples")
    ax.set_ylabel("error rate (1 − accuracy)")
    ax.set_ylim(bottom=-0.005)
    ax.set_title(
        f"learning curve; at {int(curve.sizes[-1])} examples: {curve.diagnosis.verdict}",
        fontsize=10,
    )
    ax.legend()
    return fig


def plot_learning_curve(curve, path) -> Path:
    """Save :func:`learning_curve_figure` as a PNG at ``path``."""
    return save(learning_curve_figure(curve), path)


def _log_series(ax, layers, values, colour, label) -> None:
    """A positive series on a log axis; inf/nan marked at the top edge, exact zeros (an
    underflow) at the bottom edge, each labelled."""
    values = np.asarray(values, np.float64)
    shown = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    ax.plot(layers, shown, marker=".", color=colour, label=label)
    _mark_nonfinite(ax, layers, values, colour)
    zeros = np.flatnonzero(values == 0)
    if zeros.size:  # a marker at each, the first labelled
        i = int(zeros[0])
        bottom = ax.get_xaxis_transform()
        ax.plot(layers[zeros], np.zeros(zeros.size), ls="", marker="v", color=colour, ms=8,
                transform=bottom, clip_on=False)  # fmt: skip
        ax.annotate(
            "0", (layers[i], 0.0), xycoords=bottom, xytext=(0, 6), textcoords="offset points",
            ha="center", color=colour, fontsize=8, fontweight="bold",
        )  # fmt: skip


def init_probe_figure(probe):
    """Activation std and weight-gradient norm per layer (log scale), one line per scheme.

    A value that overflowed (inf) or is NaN is marked at the top of its panel with that
    word; one that underflowed to 0 at the bottom with ``0``.
    """
    fig = _figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    layers = np.arange(1, np.asarray(probe.activation_std).shape[1] + 1)
    seen = []  # (label, std, grad) drawn so far: a scheme identical to one is said to be
    for k, (label, std, grad) in enumerate(
        zip(probe.schemes, probe.activation_std, probe.grad_norm)
    ):
        same = [s for s, a, g in seen if np.array_equal(a, std) and np.array_equal(g, grad)]
        seen.append((label, std, grad))
        if same:  # e.g. glorot and lecun on width -> width layers: one line under the other
            label = f"{label} (same as {same[0]})"
        _log_series(left, layers, std, f"C{k % 10}", label)
        _log_series(right, layers, grad, f"C{k % 10}", label)
    for ax, quantity in (
        (left, "std of the layer's activations"),
        (right, "‖dW‖ (Frobenius) of the layer"),
    ):
        ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{quantity} (log scale)")
    left.set_title("forward: activation scale per layer", fontsize=10, pad=16)
    right.set_title("backward: weight-gradient norm per layer", fontsize=10, pad=16)
    left.legend(fontsize=8, title="init scheme", title_fontsize=8)
    fig.suptitle("▲ inf / nan: the signal overflowed float32;  ▼ 0: it underflowed", fontsize=9)
    return fig


def plot_init_probe(probe, path) -> Path:
    """Save :func:`init_probe_figure` as a PNG at ``path``."""
    return save(init_probe_figure(probe), path)


def decision_boundary_figure(
    predict: Callable[[np.ndarray], Any], x, y, *, title: str = "", resolution: int = 200
):
    """A 2-D classifier's predicted regions with the labelled points on top.

    Args:
      predict: maps (k, 2) float32 points to (k,) predicted labels, e.g.
        ``lambda g: jaxhp.predict(params, g)``.
      x: (m, 2) points; y: (m,) int labels.
      title: the axes title.
      resolution: grid points per side.

    Returns:
      A matplotlib Figure.
    """
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must be (m, 2) points, got shape {x.shape}")
    pad = 0.1 * (x.max(axis=0) - x.min(axis=0))
    lo, hi = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    points = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float32)
    z = np.asarray(predict(points)).reshape(gx.shape)
    fig = _figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.subplots()
    levels = np.arange(int(max(z.max(), y.max())) + 2) - 0.5
    ax.contourf(gx, gy, z, levels=levels, alpha=0.35, cmap="coolwarm")
    points = ax.scatter(
        x[:, 0], x[:, 1], c=y, cmap="coolwarm", vmin=levels[0], vmax=levels[-1], s=12, ec="k",
        lw=0.3,
    )  # fmt: skip
    ax.legend(
        *points.legend_elements(), title="label", fontsize=8, loc="upper left",
        bbox_to_anchor=(1.01, 1),
    )  # fmt: skip
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title(title, fontsize=10)
    return fig
