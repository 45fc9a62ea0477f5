"""The figures' content: what a user reads off them, checked on the matplotlib objects."""

import itertools

import matplotlib
import numpy as np
import pytest

import jaxhp
from jaxhp import plot
from jaxhp.learning import InitProbe, LearningCurve
from jaxhp.records import History, HParams
from jaxhp.results import SweepResults

matplotlib.use("Agg")

N_EVALS = 4


def make_results(lambd, keep_prob, learning_rate, seeds, dev_accuracy, diverged=None):
    """A SweepResults built from per-member arrays, without training."""
    n = len(lambd)
    diverged = np.zeros(n, bool) if diverged is None else np.asarray(diverged)
    steps = np.tile(np.arange(1, N_EVALS + 1) * 10, (n, 1))
    dev_cost = np.linspace(0.7, 0.3, N_EVALS)[None, :] + 0.01 * np.arange(n)[:, None]
    accuracy = np.tile(np.asarray(dev_accuracy, np.float64)[:, None], (1, N_EVALS))
    history = History(steps, dev_cost + 0.05, accuracy + 0.02, dev_cost, accuracy)
    hparams = HParams(
        lambd=np.asarray(lambd, np.float32),
        keep_prob=np.asarray(keep_prob, np.float32),
        learning_rate=np.asarray(learning_rate, np.float32),
    )
    last = np.full(n, steps[0, -1])
    return SweepResults(hparams, np.asarray(seeds), history, last, last, diverged)


LAMBDS, KEEPS, RATES, SEEDS = [0.0, 0.1, 1.0], [0.8, 1.0], [0.1, 0.3], [0, 1, 2]


@pytest.fixture
def grid_results():
    """3 lambd x 2 keep_prob cells, each averaging 2 learning rates x 3 seeds."""
    rows = list(itertools.product(LAMBDS, KEEPS, RATES, SEEDS))
    lambd, keep, rate, seed = (np.asarray(c) for c in zip(*rows))
    rng = np.random.default_rng(0)
    accuracy = 0.6 + 0.1 * lambd + 0.2 * keep + 0.01 * rng.standard_normal(len(rows))
    diverged = (lambd == 0.0) & (keep == 0.8) & (rate == 0.3) & (seed == 1)
    diverged |= (lambd == 1.0) & (keep == 1.0) & (seed == 2)
    accuracy[diverged] = 0.5  # a diverged member's: not in any mean, whatever it reads
    return make_results(lambd, keep, rate, seed, accuracy, diverged)


@pytest.mark.parametrize("metric, better", [("dev_accuracy", max), ("dev_cost", min)])
def test_the_better_end_of_the_colour_scale_is_bright_for_any_metric(grid_results, metric, better):
    image = plot.heatmap_figure(grid_results, x="lambd", y="keep_prob", metric=metric).axes[0]
    image = image.images[0]
    values = np.asarray(image.get_array(), np.float64)
    values = values[np.isfinite(values)]
    luminance = lambda rgba: 0.2126 * rgba[0] + 0.7152 * rgba[1] + 0.0722 * rgba[2]  # noqa: E731
    best, worst = better(values), (min if better is max else max)(values)
    assert luminance(image.cmap(image.norm(best))) > luminance(image.cmap(image.norm(worst)))


def test_a_title_counts_columns_that_move_together_as_combinations():
    """keep_prob per layer, set as pairs (0.7, 0.9) and (1, 1): each cell is the best of 2
    configurations, not of 2 x 2."""
    rows = list(itertools.product(LAMBDS, RATES, [(0.7, 0.9), (1.0, 1.0)]))
    lambd, rate, keep = (np.asarray(c) for c in zip(*rows))
    results = make_results(lambd, keep, rate, np.zeros(len(rows), int), 0.8 + 0.01 * lambd)
    title = plot.heatmap_figure(results, x="lambd", y="learning_rate").axes[0].get_title()
    assert "best of 2 combinations of keep_prob_1, keep_prob_2" in title, title
    pairs = list(itertools.product([0.7, 1.0], [0.7, 1.0]))  # every pair: 2 x 2 in a cell
    rows = list(itertools.product(LAMBDS, RATES, pairs))
    lambd, rate, keep = (np.asarray(c) for c in zip(*rows))
    results = make_results(lambd, keep, rate, np.zeros(len(rows), int), 0.8 + 0.01 * lambd)
    title = plot.heatmap_figure(results, x="lambd", y="learning_rate").axes[0].get_title()
    assert "best of 2 keep_prob_1 values × 2 keep_prob_2 values" in title, title


def cell_members(results, i, j):
    """Members of the cell at column i (lambd) and row j (keep_prob), by the test's own
    reading of the table."""
    cols = results.columns()
    return (np.isclose(cols["lambd"], LAMBDS[i])) & np.isclose(cols["keep_prob"], KEEPS[j])


def expected_cells(results, metric="dev_accuracy", best=max):
    """Independent per cell: the best learning rate's mean and std over its non-diverged
    seeds, and the cell's diverged count."""
    cols = results.columns()
    cells = {}
    for i, j in itertools.product(range(len(LAMBDS)), range(len(KEEPS))):
        members = cell_members(results, i, j)
        stats = []
        for rate in RATES:
            group = members & np.isclose(cols["learning_rate"], rate) & ~cols["diverged"]
            kept = cols[metric][group]
            stats.append((kept.mean(), kept.std(ddof=1)))
        mean, std = best(stats, key=lambda ms: ms[0])
        cells[i, j] = (mean, std, int(cols["diverged"][members].sum()))
    return cells


def texts_at(ax):
    return {(round(t.get_position()[0]), round(t.get_position()[1])): t for t in ax.texts}


def patches(ax, gid):
    return [p for p in ax.patches if p.get_gid() == gid]


def test_heatmap_marks_the_best_cell_and_shows_mean_and_std(grid_results):
    fig = plot.heatmap_figure(grid_results, x="lambd", y="keep_prob", metric="dev_accuracy")
    ax = fig.axes[0]
    cells = expected_cells(grid_results)
    best = max(cells, key=lambda c: cells[c][0])
    (marker,) = patches(ax, "best")
    assert marker.get_xy() == (best[0] - 0.5, best[1] - 0.5)
    texts = texts_at(ax)
    for cell, (mean, std, _) in cells.items():
        lines = texts[cell].get_text().split("\n")
        assert lines[0] == f"{mean:.3f}" and lines[1] == f"± {std:.3f}"
    assert "best of 2 learning_rate values, mean ± std over 3 seeds" in ax.get_title()
    assert max(map(len, ax.get_title().splitlines())) <= 80  # wrapped, not past the edge
    assert ax.get_xlabel() == "lambd" and ax.get_ylabel() == "keep_prob"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.1", "1"]
    assert "dev_accuracy (higher is better)" in fig.axes[1].get_ylabel()


def test_heatmap_best_cell_follows_the_metric_direction(grid_results):
    # Costs are minimised: the best learning rate and the best cell have the lowest cost.
    fig = plot.heatmap_figure(grid_results, metric="dev_cost")
    cells = expected_cells(grid_results, "dev_cost", min)
    best = min(cells, key=lambda c: cells[c][0])
    (marker,) = patches(fig.axes[0], "best")
    assert marker.get_xy() == (best[0] - 0.5, best[1] - 0.5)
    assert texts_at(fig.axes[0])[best].get_text().startswith(f"{cells[best][0]:.3f}")


def test_heatmap_hatches_exactly_the_cells_with_diverged_members(grid_results):
    ax = plot.heatmap_figure(grid_results).axes[0]
    cells = expected_cells(grid_results)
    hatched = {(round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in patches(ax, "diverged")}
    assert hatched == {c for c, (_, _, n) in cells.items() if n} == {(0, 0), (2, 1)}
    assert all(p.get_hatch() for p in patches(ax, "diverged"))
    assert texts_at(ax)[0, 0].get_text().endswith("1/6 diverged")
    assert texts_at(ax)[2, 1].get_text().endswith("2/6 diverged")
    assert "diverged" not in texts_at(ax)[1, 1].get_text()


def wcag_contrast(rgb_a, rgb_b):
    """WCAG 2 contrast ratio, written out from the standard's definition."""

    def luminance(rgb):
        channels = []
        for c in rgb[:3]:
            channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
        r, g, b = channels
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    hi, lo = sorted((luminance(rgb_a), luminance(rgb_b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_heatmap_text_uses_the_colour_with_more_contrast(grid_results):
    from matplotlib.colors import to_rgb

    ax = plot.heatmap_figure(grid_results).axes[0]
    image = ax.images[0]
    grid = image.get_array()
    used = set()
    for (i, j), text in texts_at(ax).items():
        background = image.cmap(image.norm(grid[j, i]))
        ink = to_rgb(text.get_color())
        other = (1.0, 1.0, 1.0) if ink == (0.0, 0.0, 0.0) else (0.0, 0.0, 0.0)
        assert ink in ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        assert wcag_contrast(ink, background) >= wcag_contrast(other, background)
        used.add(ink)
    assert len(used) == 2  # viridis runs dark to light: both inks are exercised


@pytest.mark.parametrize(
    "colour, luminance",
    [("white", 1.0), ("black", 0.0), ("red", 0.2126), ((0.5, 0.5, 0.5), 0.21404)],
)
def test_relative_luminance_matches_the_wcag_values(colour, luminance):
    assert plot.relative_luminance(colour) == pytest.approx(luminance, abs=1e-4)


@pytest.mark.parametrize("colour, ink", [("yellow", "black"), ("navy", "white")])
def test_text_colour_on_known_backgrounds(colour, ink):
    assert plot.text_colour(colour) == ink


def random_search(lambd):
    n = len(lambd)
    keep = np.linspace(0.5, 1.0, n)
    accuracy = 0.9 - 0.05 * np.abs(np.log10(np.maximum(lambd, 1e-4)) + 1)
    diverged = np.zeros(n, bool)
    diverged[2] = True
    return make_results(lambd, keep, np.full(n, 0.1), np.zeros(n, int), accuracy, diverged)


def test_random_search_is_a_log_scatter_coloured_by_the_metric():
    lambd = np.geomspace(1e-3, 10.0, 15)
    results = random_search(lambd)
    fig = plot.heatmap_figure(results)
    ax = fig.axes[0]
    assert not ax.images  # no categorical grid
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    points = ax.collections[0]
    ok = ~results.diverged
    np.testing.assert_allclose(points.get_offsets()[:, 0], lambd[ok].astype(np.float32))
    np.testing.assert_allclose(
        points.get_array(), results.columns()["dev_accuracy"][ok], rtol=1e-12
    )
    (crossed,) = [c for c in ax.collections if c.get_gid() == "diverged"]
    np.testing.assert_allclose(crossed.get_offsets()[0], [lambd[2], 0.5 + 0.5 * 2 / 14], 1e-6)
    (best,) = [c for c in ax.collections if c.get_gid() == "best"]
    top = np.argmax(np.where(ok, results.columns()["dev_accuracy"], -1))
    np.testing.assert_allclose(best.get_offsets()[0], [lambd[top], 0.5 + 0.5 * top / 14], 1e-6)
    assert "one member per point" in ax.get_title()


@pytest.mark.parametrize("smallest", [1e-3, 0.01])
def test_random_search_with_a_zero_lambda_uses_symlog(smallest):
    lambd = np.concatenate([[0.0], np.geomspace(smallest, 10.0, 14)])
    ax = plot.heatmap_figure(random_search(lambd)).axes[0]
    assert ax.get_xscale() == "symlog"
    # 0, then the decades from the smallest λ up: no 10^k inside the linear part around 0,
    # whose label would sit on the 0 (float32 0.01 is just below 10^-2)
    decades = 10.0 ** np.arange(np.log10(smallest), 2)
    np.testing.assert_allclose(ax.get_xticks(), [0.0, *decades], rtol=1e-9)
    short = np.concatenate([[0.0], np.geomspace(smallest, 0.5, 14)])  # up to 0.5: no 10^0
    ax = plot.heatmap_figure(random_search(short)).axes[0]
    np.testing.assert_allclose(ax.get_xticks(), [0.0, *decades[:-2]], rtol=1e-9)
    assert ax.get_xlim()[1] < 1.0  # no tick beyond the data widens the axis


def test_heatmap_rejects_unknown_names(grid_results):
    with pytest.raises(ValueError, match=r"x='lr' is not a swept column; allowed: lambd"):
        plot.heatmap_figure(grid_results, x="lr")
    with pytest.raises(ValueError, match=r"unknown metric 'accuracy'"):
        plot.heatmap_figure(grid_results, metric="accuracy")
    with pytest.raises(ValueError, match=r"x and y are both 'lambd': give two different col"):
        plot.heatmap_figure(grid_results, x="lambd", y="lambd")


def test_curves_legend_uses_significant_digits_and_labels_both_costs():
    keep = np.float32(0.7)
    assert float(keep) != 0.7  # the stored value is 0.699999988...
    results = make_results([0.0013], [keep], [0.3], [0], [0.9])
    fig = plot.curves_figure(results, top=1)
    cost_ax, acc_ax = fig.axes
    texts = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert texts == ["1. #0 λ=0.0013 kp=0.7 lr=0.3"]  # the table's rank, then the member
    legend = [t.get_text() for t in cost_ax.get_legend().get_texts()]
    assert legend == ["dev cross-entropy", "train J = cross-entropy + L2 term"]
    for ax in fig.axes:
        assert ax.get_xlabel() == "step" and ax.get_ylabel()


def test_curves_legend_lists_configurations_in_the_table_order():
    # dev accuracies 0.7, 0.9, 0.8: the table ranks members 1, 2, 0
    results = make_results([0.0, 0.1, 1.0], [1.0, 1.0, 1.0], [0.3] * 3, [0, 0, 0], [0.7, 0.9, 0.8])
    fig = plot.curves_figure(results, top=3, metric="dev_accuracy")
    legend = fig.axes[1].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert [t.split()[:2] for t in texts] == [["1.", "#1"], ["2.", "#2"], ["3.", "#0"]]
    assert "best seed" not in legend.get_title().get_text()  # one seed: nothing to pick


def test_curves_end_where_each_member_stopped():
    results = make_results([0.0, 0.1], [1.0, 1.0], [0.3, 0.3], [0, 0], [0.9, 0.8])
    results.stop_step[1] = 20  # stopped at its second evaluation (steps 10, 20, 30, 40)
    fig = plot.curves_figure(results, top=2)
    cost_ax, _ = fig.axes
    ends = sorted(max(line.get_xdata()) for line in cost_ax.get_lines())
    assert ends == [20, 20, 40, 40]  # dev and train line of each member


def test_curves_legend_names_a_configuration_hidden_under_a_better_one():
    # accuracies tie, so the table ranks members 0, 1 by dev cost, then member 2
    results = make_results([0.0, 0.1, 1.0], [1.0] * 3, [0.3] * 3, [0, 0, 0], [0.9, 0.9, 0.8])
    for cost in (results.history.dev_cost, results.history.train_cost):
        cost[1] = cost[0] * 1.002  # 0.2% from member 0's curves, drawn over it
        cost[2] = cost[0] * 1.05  # 5% away: visible on its own
    fig = plot.curves_figure(results, top=3)
    cost_ax, acc_ax = fig.axes
    texts = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert [t.split()[1] for t in texts] == ["#0", "#1", "#2"]
    assert texts[1].endswith("(hidden under 1.: the same curves)")
    assert "hidden" not in texts[0] + texts[2]
    # accuracies one dev example apart (1/80) at one evaluation look the same too
    results.history.dev_accuracy[1, 2] += 1 / 80

    def legend(results):
        ax = plot.curves_figure(results, top=3).axes[1]
        return [t.get_text() for t in ax.get_legend().get_texts()]

    assert "hidden" not in legend(results)[1]  # 0.0125 apart, with no dev size known
    results.meta["m_dev"] = 80
    assert legend(results)[1].endswith("(hidden under 1.: the same curves)")
    # the dev curves alike but the train curves apart: the train line shows, not hidden
    results.history.train_cost[1] = results.history.train_cost[0] * 1.05
    assert "hidden" not in legend(results)[1]
    # 1.5% apart (an L2 term's share of J) on an axis of costs 0.3 to 0.8: 1.5% of its
    # height, a visible gap, though under the 2% that a wide axis hides
    results.history.train_cost[1] = results.history.train_cost[0] * 1.015
    assert "hidden" not in legend(results)[1]
    results.history.train_cost[1] = results.history.train_cost[0]
    results.history.train_accuracy[1] = results.history.train_accuracy[0] - 0.03
    assert "hidden" not in legend(results)[1]
    # each configuration's dev lines carry its own marker, at points the others leave free
    marked = [line for line in acc_ax.get_lines() if line.get_marker() not in (None, "None", "")]
    assert len({line.get_marker() for line in marked}) == 3
    starts = [plot._markers(i, 3, 60)["markevery"] for i in range(3)]  # 60 evaluations
    assert [every for _, every in starts] == [10] * 3
    assert sorted(start for start, _ in starts) == [0, 3, 6]


def test_hidden_under_compares_costs_as_the_log_axis_shows_them():
    def run(cost, accuracy=(0.8, 0.9, 0.9, 0.9)):
        steps = np.arange(1, 5) * 10
        return History(steps, np.asarray(cost), np.asarray(accuracy), np.asarray(cost),
                       np.asarray(accuracy, np.float64))  # fmt: skip

    best = run([0.7, 0.1, 0.01, 0.001])
    assert plot._hidden_under(run([0.7, 0.1, 0.01, 0.00101]), [best]) != ""
    # twice the cost at the end is far apart on a log axis, however small next to 0.7
    assert plot._hidden_under(run([0.7, 0.1, 0.01, 0.002]), [best]) == ""
    # one dev example of 10 is a visible step: never "the same"
    lower = run([0.7, 0.1, 0.01, 0.001], (0.7, 0.8, 0.8, 0.8))
    assert plot._hidden_under(lower, [best], resolution=0.1) == ""


def test_every_run_gets_its_own_marker_start_even_on_short_histories():
    for n_points in (4, 12, 60):
        starts = [plot._markers(i, 5, n_points)["markevery"][0] for i in range(5)]
        assert len(set(starts)) == 5, (n_points, starts)


def test_log_cost_axis_labels_plain_numbers():
    fig = plot.curves_figure(make_results([0.0], [1.0], [0.3], [0], [0.9]), top=1)
    assert_plain_log_labels(fig, fig.axes[0])


def test_a_narrow_log_axis_gets_half_steps():
    """Costs 0.21 to 0.42 (0.3 decades): 2, 3, 4 alone label only 0.3 and 0.4."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [0.21, 0.42])
    ax.set_yscale("log")
    plot._plain_log_axis(ax.yaxis)
    assert_plain_log_labels(fig, ax)
    plt.close(fig)


def assert_plain_log_labels(fig, cost_ax, axis="y"):
    fig.canvas.draw()
    low, high = getattr(cost_ax, f"get_{axis}lim")()
    labels_of = getattr(cost_ax, f"get_{axis}ticklabels")
    at = 1 if axis == "y" else 0
    ticks = [*labels_of(), *labels_of(minor=True)]
    shown = {
        t.get_text(): t.get_position()[at] for t in ticks if low <= t.get_position()[at] <= high
    }
    labels = {text: where for text, where in shown.items() if text}
    assert len(labels) >= 3  # costs from 0.3 to 0.8: under one decade, yet labelled
    for text, where in labels.items():
        assert "e" not in text and np.isclose(float(text), where)  # "0.4", not "4e-01"


@pytest.mark.parametrize(
    "value, text",
    [(np.float32(0.7), "0.7"), (0.30000001192092896, "0.3"), (1e-5, "1e-05"),
     (123456.0, "1.23e+05"), (1000.0, "1000"), (12345.0, "1.23e+04"), (np.inf, "inf"),
     (np.nan, "nan"), (3, "3"),
     ((0.8, np.float32(0.9)), "0.8/0.9")],
)  # fmt: skip
def test_format_number(value, text):
    assert plot.format_number(value) == text


def annotations(ax):
    return sorted(t.get_text() for t in ax.texts)


def test_cost_plot_shows_inf_and_nan_where_they_happen():
    inf_at, nan_at = 3, 2
    train = np.array([0.7, 0.5, 0.4, np.inf, np.inf])
    dev = np.array([0.7, 0.6, np.nan, np.nan, np.nan])
    steps = np.arange(5) * 10
    history = History(steps, train, np.full(5, 0.8), dev, np.full(5, 0.7))
    fig = plot.cost_figure(history)
    cost_ax = fig.axes[0]
    assert annotations(cost_ax) == ["inf", "nan"]
    where = {t.get_text(): t.xy[0] for t in cost_ax.texts}
    assert where == {"inf": steps[inf_at], "nan": steps[nan_at]}
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()


def test_init_probe_plot_labels_overflow_and_underflow_instead_of_a_floor():
    probe = InitProbe(
        ("he", "big", "tiny"),
        np.array([[1.0, 1.1, 0.9], [10.0, 1e20, np.inf], [1e-3, 1e-30, 0.0]]),
        np.array([[2.0, 2.0, 2.0], [np.inf, np.inf, np.inf], [1e-3, np.nan, 0.0]]),
    )
    fig = plot.init_probe_figure(probe)
    left, right = fig.axes
    assert annotations(left) == ["0", "inf"]
    assert annotations(right) == ["0", "inf", "nan"]
    for ax in (left, right):
        assert ax.get_xlabel() == "layer" and ax.get_ylabel()
        assert ax.get_yscale() == "log"
        for line in ax.get_lines():
            if line.get_label().startswith("_"):  # the edge markers, in axes coordinates
                continue
            y = np.asarray(line.get_ydata(), np.float64)
            assert not np.any(y[np.isfinite(y)] < 1e-40)  # nothing drawn at a tiny floor


def test_init_probe_plot_marks_every_overflowed_layer_and_names_identical_schemes():
    probe = InitProbe(
        ("glorot", "lecun", "big"),
        np.array([[1.0, 0.5, 0.2], [1.0, 0.5, 0.2], [10.0, np.inf, np.inf]]),
        np.array([[2.0, 2.0, 2.0], [2.0, 2.0, 2.0], [np.inf, np.inf, np.inf]]),
    )
    left, right = plot.init_probe_figure(probe).axes
    labels = [line.get_label() for line in left.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["glorot", "lecun (same as glorot)", "big"]  # one line hides the other
    # a marker at each overflowed layer, so "inf at every layer" does not read as layer 1 only
    (edge,) = [line for line in right.get_lines() if line.get_marker() == "^"]
    assert list(edge.get_xdata()) == [1, 2, 3]
    (edge,) = [line for line in left.get_lines() if line.get_marker() == "^"]
    assert list(edge.get_xdata()) == [2, 3]


def test_init_probe_reports_every_gradient_of_an_exploded_net_as_inf(key):
    probe = jaxhp.init_probe(key, 20, 8, schemes=("he", ("random", 100.0)), n=16)
    he, exploded = probe.activation_std
    assert np.isfinite(he).all() and np.isinf(exploded[-1])
    assert np.isfinite(probe.grad_norm[0]).all() and np.isinf(probe.grad_norm[1]).all()


def test_learning_curve_and_decision_boundary_axes_are_labelled():
    diagnosis = jaxhp.diagnose(train_error=0.05, dev_error=0.15, bayes_error=0.0)
    curve = LearningCurve(
        np.array([10, 20, 40]), np.array([0.0, 0.02, 0.05]), np.array([0.3, 0.2, 0.15]),
        None, diagnosis, True,
    )  # fmt: skip
    x = np.array([[-1.0, 0.0], [1.0, 0.5], [0.5, -1.0]])
    boundary = plot.decision_boundary_figure(
        lambda g: (g[:, 0] > 0).astype(int), x, np.array([0, 1, 1]), title="none"
    )
    for fig in (plot.learning_curve_figure(curve), boundary):
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    # the Bayes line says whether its level was given or is the default 0
    for bayes, label in ((None, "assumed 0: none given"), (0.05, "assumed 0.05")):
        reading = jaxhp.diagnose(train_error=0.05, dev_error=0.15, bayes_error=bayes)
        figure = plot.learning_curve_figure(curve._replace(diagnosis=reading))
        legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
        assert f"Bayes error ({label})" in legend


def test_heatmap_and_curves_write_pngs(grid_results, tmp_path):
    for path in (
        grid_results.plot_heatmap(tmp_path / "h.png"),
        grid_results.plot_curves(tmp_path / "c.png", top=3),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("accuracy", [0.995, 0.5])
def test_one_cell_colour_range_holds_its_value_inside_0_1(accuracy):
    results = make_results([0.1, 0.1], [1.0, 1.0], [0.1, 0.1], [0, 1], [accuracy] * 2)
    fig = plot.heatmap_figure(results, x="lambd", y="keep_prob", metric="dev_accuracy")
    low, high = fig.axes[1].get_ylim()  # the colourbar's range
    assert 0.0 <= low < accuracy < high <= 1.0
    assert high - low < 0.2  # a narrow range around the one value, not ±0.5


def test_differences_within_noise_do_not_span_the_colour_scale():
    # 0.880 vs 0.8775 on 200 dev examples: half of one example apart
    results = make_results([0.0, 1.0], [1.0, 1.0], [0.1, 0.1], [0, 0], [0.88, 0.8775])
    results.meta["m_dev"] = 200
    fig = plot.heatmap_figure(results, x="lambd", y="keep_prob", metric="dev_accuracy")
    low, high = fig.axes[1].get_ylim()
    assert high - low == pytest.approx(0.02)  # four dev examples (0.005 each): the minimum
    assert low < 0.8775 and 0.88 < high
    wide = make_results([0.0, 1.0], [1.0, 1.0], [0.1, 0.1], [0, 0], [0.7, 0.9])
    fig = plot.heatmap_figure(wide, x="lambd", y="keep_prob", metric="dev_accuracy")
    assert fig.axes[1].get_ylim() == pytest.approx((0.7, 0.9))  # wider spreads: as they are


def test_the_heatmap_shows_the_swept_columns_by_default():
    def _heatmap_axes(results):
        ax = plot.heatmap_figure(results).axes[0]
        return ax.get_xlabel(), ax.get_ylabel()

    rates = make_results([0.1] * 3, [1.0] * 3, [0.03, 0.1, 0.3], [0] * 3, [0.8, 0.85, 0.9])
    assert _heatmap_axes(rates) == ("learning_rate", "lambd")
    both = make_results([0.0, 0.1], [0.5, 1.0], [0.1, 0.1], [0, 0], [0.8, 0.9])
    assert _heatmap_axes(both) == ("lambd", "keep_prob")
    keep = make_results([0.1, 0.1], [0.5, 1.0], [0.1, 0.3], [0, 0], [0.8, 0.9])
    assert _heatmap_axes(keep) == ("keep_prob", "learning_rate")
    fixed = make_results([0.1], [1.0], [0.1], [0], [0.8])
    assert _heatmap_axes(fixed) == ("lambd", "keep_prob")
    ax = plot.heatmap_figure(rates, y="lambd").axes[0]  # one axis given: the other swept
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("learning_rate", "lambd")


def test_of_three_swept_columns_the_heatmap_shows_the_two_that_matter():
    # a 3 x 2 x 2 grid whose accuracy depends on the learning rate and keep_prob only
    rows = list(itertools.product(LAMBDS, KEEPS, RATES))
    lambd, keep, rate = (np.asarray(c) for c in zip(*rows))
    accuracy = 0.5 + (rate == 0.3) * 0.3 + (keep == 1.0) * 0.1 + 0.001 * lambd
    results = make_results(lambd, keep, rate, [0] * len(rows), accuracy)
    ax = plot.heatmap_figure(results).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("learning_rate", "keep_prob")
    # make_results' dev cost rises with the member number, so with λ, then keep_prob
    assert plot.default_axes(results, metric="dev_cost") == ("lambd", "keep_prob")


def test_a_column_swept_together_with_a_chosen_one_is_not_the_second_axis():
    # the learning rate is set with keep_prob (0.8 -> 0.1, 1.0 -> 0.3), as keep_prob_2 is
    # with keep_prob_1 in "--keep-prob 0.8/0.9,1/1": as axes they would plot a diagonal
    rows = [(lam, kp, 0.1 if kp == 0.8 else 0.3) for lam in LAMBDS for kp in KEEPS]
    lambd, keep, rate = (np.asarray(c) for c in zip(*rows))
    results = make_results(lambd, keep, rate, [0] * len(rows), 0.6 + 0.2 * keep + 0.01 * lambd)
    assert plot.default_axes(results) == ("keep_prob", "lambd")
    flipped = make_results(
        lambd, keep, 0.4 - rate, [0] * len(rows), results.columns()["dev_accuracy"]
    )
    assert plot.default_axes(flipped) == ("keep_prob", "lambd")  # 0.8 -> 0.3, 1.0 -> 0.1
    title = plot.heatmap_figure(results).axes[0].get_title()
    assert title.endswith("axes: the 2 of its 3 swept columns that explain most of its spread")
    chosen = plot.heatmap_figure(results, x="lambd", y="keep_prob").axes[0].get_title()
    assert "axes:" not in chosen  # the user's own choice needs no explaining


def test_heatmap_outlines_the_cells_within_noise_of_the_best():
    # 100 dev examples: 0.895 is half an example below 0.90, 0.80 ten examples below
    results = make_results([0.0, 0.1, 1.0], [1.0] * 3, [0.1] * 3, [0] * 3, [0.9, 0.895, 0.8])
    results.meta["m_dev"] = 100
    fig = plot.heatmap_figure(results, x="lambd", y="keep_prob")
    ax = fig.axes[0]
    outlined = {
        p.get_gid(): p.get_x() + p.get_width() / 2
        for p in ax.patches
        if p.get_gid() in ("best", "near")
    }
    assert outlined == {"best": 0.0, "near": 1.0}  # columns λ = 0 and λ = 0.1
    near = next(p for p in ax.patches if p.get_gid() == "near")
    assert near.get_width() < 1  # inside its cell: apart from a neighbour's outline
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["best", "within noise of the best"]  # one run per point: no mean


def test_scatter_rings_the_points_within_noise_of_the_best():
    # the same accuracies as above, at points that make no grid: a scatter
    results = make_results([0.0, 0.1, 1.0], [1.0] * 3, [0.1, 0.2, 0.3], [0] * 3, [0.9, 0.895, 0.8])
    results.meta["m_dev"] = 100
    fig = plot.heatmap_figure(results, x="lambd", y="learning_rate")
    ringed = [c for c in fig.axes[0].collections if c.get_gid() == "near"]
    assert len(ringed) == 1
    np.testing.assert_allclose(ringed[0].get_offsets(), [[0.1, 0.2]])  # λ 0.1, not 1.0
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["best", "within noise of the best (red ring)"]
    # drawn as its legend entry shows it: a solid ring (a legend marker cannot be dashed)
    assert ringed[0].get_linestyle()[0][1] is None
    # two seeds per point: the colour is their mean; a scatter shows no std
    seeded = make_results([0.0, 0.0, 0.1, 0.1], [1.0] * 4, [0.1, 0.1, 0.2, 0.2], [0, 1] * 2,
                          [0.9, 0.8, 0.85, 0.8])  # fmt: skip
    title = plot.heatmap_figure(seeded, x="lambd", y="learning_rate").axes[0].get_title()
    assert "mean over 2 seeds" in title and "std" not in title


def test_choosing_the_axes_leaves_the_results_untouched(grid_results):
    # float64 histories: the metric column is a view of them, and diverged members are
    # left out of the choice by marking them NaN, in a copy
    before = np.array(grid_results.history.dev_cost)
    assert grid_results.diverged.any() and before.dtype == np.float64
    plot.default_axes(grid_results, metric="dev_cost")
    np.testing.assert_array_equal(grid_results.history.dev_cost, before)


def _epsilon_squared(keys, values):
    """ε², written out: (between-group SS - (k - 1) within-group mean square) / total SS."""
    mean = sum(values) / len(values)
    total = sum((v - mean) ** 2 for v in values)
    between = within = 0.0
    for key in set(keys):
        group = [v for k, v in zip(keys, values) if k == key]
        group_mean = sum(group) / len(group)
        between += len(group) * (group_mean - mean) ** 2
        within += sum((v - group_mean) ** 2 for v in group)
    k = len(set(keys))
    return (between - (k - 1) * within / (len(values) - k)) / total


def test_influence_is_the_noise_corrected_correlation_ratio():
    values = np.array([1.0, 1.2, 3.0, 3.4, 2.0, 2.3, np.nan])
    column = ["a", "a", "b", "b", "c", "c", "c"]  # the NaN member is left out
    assert plot._influence(column, values) == pytest.approx(
        _epsilon_squared(column[:6], values[:6].tolist())
    )
    assert plot._influence([1, 2, 1, 2], np.array([5.0, 5.0, 5.0, 5.0])) == 0.0
    assert plot._influence([1, 2, 3], np.array([0.1, 0.5, 0.2])) == 0.0  # a group each
    # random search: 10 distinct rates in 5 bins of 2 by rank
    rng = np.random.default_rng(0)
    rates, values = rng.uniform(size=10), rng.normal(size=10)
    bins = [sorted(rates).index(r) // 2 for r in rates]
    assert plot._influence(rates, values) == pytest.approx(_epsilon_squared(bins, values.tolist()))


def test_label_axes_keep_the_sweeps_order():
    # layer sizes as labels: "2-16-8-1" sorts before "2-8-1" as text, not as the sweep has them
    results = make_results([0.0, 0.1, 0.0, 0.1], [1.0] * 4, [0.1] * 4, [0] * 4, [0.8, 0.9] * 2)
    results.static = {"layer_sizes": [(2, 8, 1), (2, 8, 1), (2, 16, 8, 1), (2, 16, 8, 1)]}
    ax = plot.heatmap_figure(results).axes[0]
    assert ax.get_ylabel() == "layer_sizes"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2-8-1", "2-16-8-1"]


def test_a_label_column_is_not_plotted_as_a_hyperparameter():
    # an Optuna study's table: one member per trial, the trial number a static column
    points = [(0.01, 0.8, 0.1), (0.1, 0.9, 0.3), (1.0, 0.7, 0.2)]
    lambd, keep, rate = (list(c) for c in zip(*points))
    results = make_results(lambd, keep, rate, [0, 0, 0], [0.8, 0.9, 0.7])
    results.static = {"trial": [0, 1, 2]}

    def texts(fig):
        found = [t.get_text() for ax in fig.axes for t in (ax.title, *ax.texts)]
        found += [fig._suptitle.get_text()] if fig._suptitle else []
        for ax in fig.axes:
            legend = ax.get_legend()
            found += [t.get_text() for t in legend.get_texts()] if legend else []
        return " ".join(found)

    as_static = texts(plot.heatmap_figure(results)) + texts(plot.curves_figure(results))
    assert "trial" in as_static  # the test would see it
    results.meta["label_columns"] = ["trial"]
    labelled = texts(plot.heatmap_figure(results)) + texts(plot.curves_figure(results))
    assert "trial" not in labelled and "learning_rate also varies" in labelled


def test_rungs_figure_spaces_geometric_rungs_evenly_and_labels_them():
    results = make_results([0.0, 0.1, 1.0], [1.0] * 3, [0.1] * 3, [0, 0, 0], [0.8, 0.9, 0.7])
    results.rung = np.array([0, 1, 0])
    results.stop_step = np.array([10, 40, 10])
    results.meta["rungs"] = [
        {"step": 10, "evaluation": 1, "members": 3},
        {"step": 40, "evaluation": 4, "members": 1},
    ]
    ax = plot.rungs_figure(results).axes[0]
    assert ax.get_xscale() == "log"  # rungs at r * eta**k sit evenly, their labels apart
    (top,) = ax.child_axes
    assert list(top.get_xticks()) == [10, 40]
    labels = [t.get_text() for t in top.get_xticklabels()]
    assert labels == ["rung 0\n3 members", "rung 1\n1 member"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["stopped at rung 0", "reached rung 1, the end"]  # finalists not "stopped"
    assert_plain_log_labels(ax.figure, ax)  # costs 0.3 to 0.7: "0.4", not "4×10⁻¹"
    assert_plain_log_labels(ax.figure, ax, axis="x")  # steps: "20", not "2×10¹"


def test_heatmap_title_names_an_axis_that_varies_only_from_point_to_point():
    """keep_prob_2 set together with keep_prob_1 (or, here, the learning rate with
    keep_prob): each cell holds one value, but the cells differ in it; the title says so."""
    rows = [(lam, kp, 0.1 if kp == 0.8 else 0.3, s) for lam in (0.0, 1.0) for kp in (0.8, 1.0)
            for s in (0, 1)]  # fmt: skip
    lambd, keep, rate, seed = (np.asarray(c) for c in zip(*rows))
    results = make_results(lambd, keep, rate, seed, 0.7 + 0.1 * keep)
    title = plot.heatmap_figure(results, x="lambd", y="keep_prob").axes[0].get_title()
    assert "mean ± std over 2 seeds (learning_rate also varies)" in title


def test_curves_of_a_halving_sweep_say_the_ranking_puts_later_rungs_first():
    results = make_results([0.0, 0.1, 1.0], [1.0] * 3, [0.1] * 3, [0, 0, 0], [0.8, 0.9, 0.7])
    results.rung = np.array([0, 1, 0])
    results.stop_step = np.array([10, 40, 10])
    results.meta["rungs"] = [{"step": 10, "evaluation": 1, "members": 3},
                             {"step": 40, "evaluation": 4, "members": 1}]  # fmt: skip
    legend = plot.curves_figure(results).axes[1].get_legend()
    assert legend.get_title().get_text() == "top 3 configurations by the last rung reached, "\
        "then dev_accuracy"  # fmt: skip


def test_halving_heatmaps_mark_the_points_stopped_at_an_earlier_rung():
    # 2 x 2 grid, one seed: member 3 reached the last rung (2); the others stopped earlier
    grid = make_results([0.0, 0.0, 1.0, 1.0], [0.8, 1.0] * 2, [0.1] * 4, [0] * 4,
                        [0.80, 0.82, 0.84, 0.90])  # fmt: skip
    grid.rung = np.asarray([0, 1, 0, 2])
    title = plot.heatmap_figure(grid, x="learning_rate", y="keep_prob").axes[0].get_title()
    assert max(map(len, title.splitlines())) <= 80  # the halving note makes line 1 81 long
    texts = {k: t.get_text() for k, t in texts_at(plot.heatmap_figure(grid).axes[0]).items()}
    assert texts == {  # (lambd, keep_prob) cell -> its text
        (0, 0): "0.800\n(rung 0)",
        (0, 1): "0.820\n(rung 1)",
        (1, 0): "0.840\n(rung 0)",
        (1, 1): "0.900",
    }
    # a random search: the stopped points are hollow, the finished one filled
    scattered = make_results(np.geomspace(1e-3, 1, 6), np.linspace(0.5, 1, 6), [0.1] * 6,
                             [0] * 6, np.linspace(0.8, 0.9, 6))  # fmt: skip
    scattered.rung = np.asarray([0, 0, 0, 1, 1, 2])
    fig = plot.heatmap_figure(scattered)
    ax = fig.axes[0]
    (hollow,) = [c for c in ax.collections if c.get_gid() == "earlier rung"]
    np.testing.assert_allclose(hollow.get_offsets()[:, 0], np.geomspace(1e-3, 1, 6)[:5], 1e-6)
    assert len(ax.collections[0].get_offsets()) == 1  # the filled one: member 5
    labels = [t.get_text() for t in fig.legends[0].get_texts()]  # both kinds explained
    assert labels[-2:] == [
        "filled: trained to the last rung",
        "hollow: stopped at an earlier rung by halving, fewer steps",
    ]


def test_a_random_momentum_axis_is_one_minus_beta_on_a_log_scale():
    """The course draws beta as 1 - beta log-uniform: 0.9, 0.99 and 0.999 must sit evenly
    apart (on a linear axis the draws crowd at its top). keep_prob is no beta: linear."""
    momentum = np.asarray([0.5, 0.9, 0.95, 0.99, 0.995, 0.999])
    results = make_results(np.geomspace(1e-3, 1, 6), [1.0] * 6, [0.1] * 6, [0] * 6,
                           np.linspace(0.8, 0.9, 6))  # fmt: skip
    results.hparams = HParams(**results.hparams._asdict(), momentum=momentum.astype(np.float32))
    ax = plot.heatmap_figure(results, x="lambd", y="momentum").axes[0]
    assert ax.get_ylabel() == "momentum (1 - momentum on a log scale)"
    ax.figure.canvas.draw()
    heights = [ax.transData.transform((0.01, v))[1] for v in (0.9, 0.99, 0.999)]
    np.testing.assert_allclose(np.diff(heights), np.diff(heights)[0], rtol=1e-6)
    shown = [t.get_text() for t in ax.get_yticklabels()]
    assert {"0.9", "0.99", "0.999"} <= set(shown)
    # the limits hug the draws (0.5 to 0.999), not linear margins past 1 (12 decades)
    low, high = ax.get_ylim()
    assert 0.3 < low < 0.5 and 0.999 < high < 0.9995
    results.hparams = results.hparams._replace(keep_prob=momentum.astype(np.float32))
    assert plot.heatmap_figure(results, x="lambd", y="keep_prob").axes[0].get_yscale() == "linear"
