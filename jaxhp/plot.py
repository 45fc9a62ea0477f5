"""Matplotlib figures, written to PNG. matplotlib is an optional dependency (``jaxhp[plot]``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxhp.records import History


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'jaxhp[plot]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_cost(history: History, path, *, title: str = "cost") -> Path:
    """Train and dev cost against step, saved as a PNG at ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = np.asarray(history.step)
    ax.plot(steps, np.asarray(history.train_cost), label="train J (with L2)")
    ax.plot(steps, np.asarray(history.dev_cost), label="dev cross-entropy")
    ax.set_xlabel("step")
    ax.set_ylabel("cost")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def heatmap(xs, ys, values, path, *, x: str, y: str, metric: str) -> Path:
    """Mean of ``values`` per (x, y) cell; a colour scatter when there are too many distinct
    values for a grid (random search). Log-scaled axes for positive log-spread values."""
    plt = _pyplot()
    xs, ys, values = (np.asarray(a, np.float64) for a in (xs, ys, values))
    ux, uy = np.unique(xs), np.unique(ys)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    if len(ux) * len(uy) <= 400 and len(ux) <= 20 and len(uy) <= 20:
        grid = np.full((len(uy), len(ux)), np.nan)
        for j, yv in enumerate(uy):
            for i, xv in enumerate(ux):
                cell = values[(xs == xv) & (ys == yv)]
                cell = cell[np.isfinite(cell)]
                if cell.size:
                    grid[j, i] = cell.mean()
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(ux)), [f"{v:.3g}" for v in ux], rotation=45)
        ax.set_yticks(range(len(uy)), [f"{v:.3g}" for v in uy])
        for j in range(len(uy)):
            for i in range(len(ux)):
                if np.isfinite(grid[j, i]):
                    ax.text(
                        i, j, f"{grid[j, i]:.3f}", ha="center", va="center", fontsize=7, color="w"
                    )
    else:
        image = ax.scatter(xs, ys, c=values, cmap="viridis", s=25)
        for axis_values, set_scale in ((xs, ax.set_xscale), (ys, ax.set_yscale)):
            positive = axis_values[axis_values > 0]
            if positive.size == axis_values.size and positive.max() / positive.min() > 50:
                set_scale("log")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{metric} by {x} and {y}")
    return _save(fig, path)


def curves(history: History, members, labels, path) -> Path:
    """Train (dashed) and dev (solid) cost curves of the chosen sweep members."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps = np.asarray(history.step)
    for i, (member, label) in enumerate(zip(members, labels)):
        colour = f"C{i % 10}"
        step = steps[member] if steps.ndim == 2 else steps
        ax.plot(step, np.asarray(history.dev_cost)[member], color=colour, label=label)
        ax.plot(step, np.asarray(history.train_cost)[member], color=colour, ls="--", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("cost (solid: dev, dashed: train J)")
    ax.set_title("cost curves of the best members")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_learning_curve(curve, path) -> Path:
    """Train and dev error against training-set size, with the diagnosis in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve.sizes, curve.train_error, "o-", label="train error")
    ax.plot(curve.sizes, curve.dev_error, "o-", label="dev error")
    ax.axhline(curve.diagnosis.bayes_error, color="grey", ls=":", label="Bayes error")
    ax.set_xlabel("training examples")
    ax.set_ylabel("error")
    ax.set_title(f"learning curve: {curve.diagnosis.verdict}")
    ax.legend()
    return _save(fig, path)


def plot_init_probe(probe, path) -> Path:
    """Activation std and gradient norm per layer (log scale), one line per scheme."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    layers = np.arange(1, probe.activation_std.shape[1] + 1)
    for label, std, grad in zip(probe.schemes, probe.activation_std, probe.grad_norm):
        left.semilogy(layers, np.maximum(std, 1e-45), label=label)
        right.semilogy(layers, np.maximum(grad, 1e-45), label=label)
    left.set_title("activation std per layer")
    right.set_title("weight-gradient norm per layer")
    for ax in (left, right):
        ax.set_xlabel("layer")
        ax.legend(fontsize=8)
    return _save(fig, path)
