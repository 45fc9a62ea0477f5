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
