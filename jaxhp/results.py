"""SweepResults: the per-member table of a sweep, its best members, exports and plots."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxhp.diagnose import diagnose
from jaxhp.records import History, HParams

_MAXIMISE = ("train_accuracy", "dev_accuracy", "best_dev_accuracy")
_MINIMISE = ("train_cost", "dev_cost", "best_dev_cost")
METRICS = _MAXIMISE + _MINIMISE


@dataclass
class SweepResults:
    """Results of :func:`jaxhp.run_sweep`, one entry per member, in the space's order.

    Attributes:
      hparams: :class:`HParams` of numpy arrays with a leading member axis.
      seeds: (N,) member seeds; member i's key is ``jaxhp.sweep.member_key(seed, seeds[i])``.
      history: :class:`History` with (N, n_evals) arrays.
      stop_step, best_step: (N,) ints. diverged: (N,) bools.
      meta: how the sweep ran (chunk size, memory estimate, devices, seconds, ...).
      static: static axis name -> per-member values (e.g. ``layer_sizes``), shown as columns.
    """

    hparams: HParams
    seeds: np.ndarray
    history: History
    stop_step: np.ndarray
    best_step: np.ndarray
    diverged: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    static: dict[str, list] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.seeds)

    # ---- the table -------------------------------------------------------------------
    def _hparam_columns(self) -> dict[str, np.ndarray]:
        keep = np.asarray(self.hparams.keep_prob)
        columns = {"lambd": np.asarray(self.hparams.lambd)}
        if keep.ndim == 1:
            columns["keep_prob"] = keep
        else:
            for layer in range(keep.shape[1]):
                columns[f"keep_prob_{layer + 1}"] = keep[:, layer]
        columns["learning_rate"] = np.asarray(self.hparams.learning_rate)
        for name in self.hparams._fields[3:]:
            columns[name] = np.asarray(getattr(self.hparams, name))
        for name, values in self.static.items():
            columns[name] = np.asarray([str(v) if isinstance(v, tuple) else v for v in values])
        return columns

    def _best_index(self) -> np.ndarray:
        dev_cost = np.where(np.isfinite(self.history.dev_cost), self.history.dev_cost, np.inf)
        return np.argmin(dev_cost, axis=1)

    def columns(self) -> dict[str, np.ndarray]:
        """The table as columns: name -> (N,) array."""
        h, rows = self.history, np.arange(len(self))
        best = self._best_index()
        return {
            "member": rows,
            "seed": np.asarray(self.seeds),
            **self._hparam_columns(),
            "train_cost": h.train_cost[:, -1],
            "dev_cost": h.dev_cost[:, -1],
            "train_accuracy": h.train_accuracy[:, -1],
            "dev_accuracy": h.dev_accuracy[:, -1],
            "best_dev_cost": h.dev_cost[rows, best],
            "best_dev_accuracy": h.dev_accuracy[rows, best],
            "best_step": np.asarray(self.best_step),
            "stop_step": np.asarray(self.stop_step),
            "diverged": np.asarray(self.diverged),
        }

    def table(self) -> list[dict[str, Any]]:
        """One dict per member with its hparams, seed, final and best metrics, stop step
        and diverged flag."""
        cols = self.columns()
        return [{k: v[i].item() for k, v in cols.items()} for i in range(len(self))]

    def _order(self, metric: str) -> list[int]:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        values = np.asarray(self.columns()[metric], np.float64)
        usable = ~np.asarray(self.diverged) & np.isfinite(values)
        keyed = -values if metric in _MAXIMISE else values
        order = np.lexsort((np.arange(len(self)), keyed))  # ties: lower member index first
        return [int(i) for i in order if usable[i]]

    def top(self, k: int = 5, *, metric: str = "dev_accuracy") -> list[dict[str, Any]]:
        """The k best members that did not diverge, best first."""
        rows = self.table()
        return [rows[i] for i in self._order(metric)[:k]]

    def best(self, metric: str = "dev_accuracy") -> dict[str, Any]:
        """The best member that did not diverge (accuracies maximised, costs minimised)."""
        order = self._order(metric)
        if not order:
            raise ValueError("every member of the sweep diverged; lower the learning rate")
        return self.table()[order[0]]

    @property
    def diverged_members(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.diverged)]

    def _diagnosis(self, columns: dict, member: int, bayes_error: float, threshold: float):
        return diagnose(
            train_error=1 - float(columns["train_accuracy"][member]),
            dev_error=1 - float(columns["dev_accuracy"][member]),
            bayes_error=bayes_error,
            threshold=threshold,
        )

    def diagnose(self, bayes_error: float = 0.0, *, threshold: float = 0.02) -> list[dict]:
        """The table with each member's error rates, avoidable bias (train − Bayes),
        variance (dev − train) and verdict (see :func:`jaxhp.diagnose`)."""
        columns, rows = self.columns(), self.table()
        for member, row in enumerate(rows):
            d = self._diagnosis(columns, member, bayes_error, threshold)
            row.update(
                train_error=d.train_error,
                dev_error=d.dev_error,
                avoidable_bias=d.avoidable_bias,
                variance=d.variance,
                verdict=d.verdict,
            )
        return rows

    def diagnosis(self, member: int, bayes_error: float = 0.0, *, threshold: float = 0.02):
        """The full :class:`jaxhp.diagnose.Diagnosis` (with advice) of one member."""
        return self._diagnosis(self.columns(), member, bayes_error, threshold)

    # ---- exports ---------------------------------------------------------------------
    def to_csv(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.table()
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return path

    def to_json(self, path) -> Path:
        """The table, the histories and the run's meta data as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "meta": self.meta,
            "members": self.table(),
            "history": {k: np.asarray(v).tolist() for k, v in self.history._asdict().items()},
        }
        path.write_text(json.dumps(payload, indent=1))
        return path

    def to_pandas(self):
        """The table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("to_pandas needs pandas: pip install pandas") from err
        return pd.DataFrame(self.columns())

    # ---- plots -----------------------------------------------------------------------
    def plot_heatmap(
        self, path, *, x: str = "lambd", y: str = "keep_prob", metric: str = "dev_accuracy"
    ) -> Path:
        """Mean ``metric`` over members sharing (x, y); a scatter when the axes are not a
        grid (random search)."""
        from jaxhp.plot import heatmap

        cols = self.columns()
        for axis in (x, y):
            if axis not in cols:
                raise ValueError(f"unknown axis {axis!r}; allowed: {', '.join(cols)}")
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        return heatmap(cols[x], cols[y], cols[metric], path, x=x, y=y, metric=metric)

    def plot_curves(self, path, *, top: int = 5, metric: str = "dev_accuracy") -> Path:
        """Train and dev cost curves of the ``top`` members."""
        from jaxhp.plot import curves

        rows = self.top(top, metric=metric)
        labels = [
            f"#{r['member']} λ={r['lambd']:.3g} kp={r.get('keep_prob', '·')!s:.4} "
            f"lr={r['learning_rate']:.3g}"
            for r in rows
        ]
        picked = [r["member"] for r in rows]
        return curves(self.history, picked, labels, path)
