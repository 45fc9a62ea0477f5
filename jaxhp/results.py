"""SweepResults: the per-member table of a sweep, its ranking, exports and plots."""

from __future__ import annotations

import csv
import io
import json
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxhp import _checks
from jaxhp.checkpoint import _atomic_write
from jaxhp.diagnose import THRESHOLD, diagnose
from jaxhp.records import History, HParams

_MAXIMISE = ("train_accuracy", "dev_accuracy", "best_dev_accuracy")
_MINIMISE = ("train_cost", "dev_cost", "best_dev_cost")
METRICS = _MAXIMISE + _MINIMISE
_SUMMARISED = (
    "train_accuracy",
    "dev_accuracy",
    "dev_cost",
    "best_train_accuracy",
    "best_dev_accuracy",
    "best_dev_cost",
)


def _pooled_seed_std(rows: list[dict], live_counts: list[int], metric: str) -> float:
    """The seeds' std of ``metric``, pooled by degrees of freedom over the better half of
    the ranked ``rows`` at the best row's rung that have two values or more (rows in rank
    order; ``live_counts``: how many values each row's mean and std are of); 0 where no
    row has two values."""
    rung = rows[0].get("rung", 0)
    seeded = [
        (row[f"{metric}_std"], n)
        for row, n in zip(rows, live_counts)
        if n > 1 and np.isfinite(row[f"{metric}_mean"]) and row.get("rung", 0) == rung
    ]
    better = seeded[: -(-len(seeded) // 2)]
    if not better:
        return 0.0
    dof = np.asarray([n - 1 for _, n in better], np.float64)
    variance = np.asarray([std for std, _ in better], np.float64) ** 2
    return _plain_float(np.float32(np.sqrt((dof * variance).sum() / dof.sum())))


def tie_break(metric: str) -> str:
    """The column that orders members whose ``metric`` is equal: the dev cost of the same
    evaluation (``best_dev_cost`` for the ``best_*`` metrics), or the dev accuracy when the
    metric is itself that dev cost."""
    _check_metric(metric)
    best = metric.startswith("best_")
    if metric in ("dev_cost", "best_dev_cost"):
        return "best_dev_accuracy" if best else "dev_accuracy"
    return "best_dev_cost" if best else "dev_cost"


def _check_metric(metric: Any) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    return metric


def short_float(value) -> str:
    """The shortest decimal text that reads back as the same float32 (``0.3``, not
    ``0.30000001192092896``); ``nan``/``inf``/``-inf`` for non-finite values."""
    return str(np.float32(value))


def _ranking_key(values: np.ndarray, metric: str) -> np.ndarray:
    """Smaller is better; NaN last."""
    values = np.asarray(values, np.float64)
    keyed = -values if metric in _MAXIMISE else values
    return np.where(np.isnan(keyed), np.inf, keyed)


@dataclass
class SweepResults:
    """Results of :func:`jaxhp.run_sweep`, one entry per member, in the space's order.

    The table (:meth:`columns`, :meth:`table`, :meth:`to_csv`) has one row per member:

    - ``member``: the member's position in the search space.
    - ``seed``: the member's seed; its key is ``jaxhp.sweep.member_key(meta["seed"], seed)``.
    - one column per hyperparameter (``lambd``, ``keep_prob``, ``learning_rate``, ...); a
      per-layer value becomes ``keep_prob_1``, ``keep_prob_2``, ...; then the static axes.
    - ``train_cost``: J (cross-entropy + L2 term) on the whole training set, dropout off, at
      the last evaluation.
    - ``dev_cost``: dev cross-entropy (no L2 term) at the last evaluation.
    - ``train_accuracy``, ``dev_accuracy``: at the last evaluation.
    - ``best_step``: the step of the evaluation whose params are the member's best params
      (the last dev-cost improvement larger than ``TrainConfig.min_delta``).
    - ``best_train_accuracy``, ``best_dev_cost``, ``best_dev_accuracy``: that evaluation's
      values, so they always agree with ``best_step``. NaN when no evaluation improved.
    - ``stop_step``: updates applied before the member stopped (early stop, divergence).
    - ``diverged``: its cost became non-finite; such members are never ranked.
    - ``rung`` (successive halving only): the last rung the member trained in, from 0;
      ``stop_step`` is then the steps it trained.

    Ranking (:meth:`best`, :meth:`top`, :meth:`summary`): by a declared ``metric``, by
    default :attr:`default_metric` (accuracies are maximised, costs minimised), then by the
    :func:`tie_break` column (the dev cost of the same evaluation), then by member index.
    After successive halving, members that reached a later rung rank first (a member
    stopped at an early rung was measured after fewer steps).

    Attributes:
      hparams: :class:`HParams` of numpy arrays with a leading member axis.
      seeds: (N,) member seeds.
      history: :class:`History` with (N, n_evals) arrays.
      stop_step, best_step: (N,) ints. diverged: (N,) bools.
      meta: how the sweep ran (chunk size, memory estimate, devices, seconds, ...).
        ``meta["m_dev"]`` / ``meta["m_train"]``, when present, set the resolution of
        :meth:`summary`; ``meta["chance_error"]`` (the error of guessing the majority dev
        class) lets the diagnosis call members at chance level "not learning".
      static: per-member values of static axes (e.g. ``layer_sizes``), shown as columns.
        ``meta["label_columns"]`` names static columns that label members rather than
        configure them (an Optuna study's ``trial``): the plots leave them out.
      rung: (N,) ints, each member's last halving rung (None for a full sweep);
        ``meta["rungs"]`` then lists each rung's ``step``, ``evaluation`` and ``members``.
    """

    hparams: HParams
    seeds: np.ndarray
    history: History
    stop_step: np.ndarray
    best_step: np.ndarray
    diverged: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    static: dict[str, list] = field(default_factory=dict)
    rung: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.seeds)

    def __repr__(self) -> str:
        """One line: the size, the swept columns and the best point (not the arrays)."""
        n_evals = np.shape(self.history.step)[-1] if np.ndim(self.history.step) else 1
        head = (
            f"SweepResults({_count(len(self), 'member')}, {_count(n_evals, 'evaluation')}, "
            f"columns {', '.join(self.hparam_names())}"
        )
        metric = self.default_metric
        try:
            best = self.summary(metric)[0]
        except ValueError:
            return head + ")"
        point = ", ".join(f"{n}={best[n]}" for n in self.hparam_names())
        return f"{head}; best {point}: {metric} {best[f'{metric}_mean']:.4f})"

    def __str__(self) -> str:
        """``print(results)``: the ranked table of :meth:`summary_text`."""
        return self.summary_text()

    def summary_text(self, metric: str | None = None, *, top: int | None = 10) -> str:
        """The ranked table ``jaxhp sweep`` prints, of the ``top`` best configurations by
        ``metric`` (default :attr:`default_metric`; None: all): their values, seeds, mean
        ± std of the metrics over the live seeds, and which are within noise of the best
        (:meth:`summary`).

        Raises:
          ValueError: an unknown metric, or ``top`` not a positive int or None.
        """
        if top is not None and (
            isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1
        ):
            raise ValueError(f"top must be a positive int or None, got {top!r}")
        metric = metric or self.default_metric
        rows = self.summary(metric)
        return format_summary(rows if top is None else rows[: int(top)], self, metric)

    # ---- the table -------------------------------------------------------------------
    def _hparam_columns(self) -> dict[str, np.ndarray]:
        columns = {}
        for name, value in self.hparams._asdict().items():
            value = np.asarray(value)
            if value.ndim <= 1:
                columns[name] = np.broadcast_to(value, (len(self),))
            else:
                for layer in range(value.shape[1]):
                    columns[f"{name}_{layer + 1}"] = value[:, layer]
        return columns

    def _static_columns(self) -> dict[str, np.ndarray]:
        columns = {}
        for name, values in self.static.items():
            column = np.empty(len(values), dtype=object)
            column[:] = _static_texts(values)
            columns[name] = column
        return columns

    def member_index(self, member) -> int:
        """``member`` as a row index (any integer scalar in [0, len(self))).

        Raises:
          ValueError: naming the allowed range (and, for a list, how to pick one).
        """
        n = len(self)
        try:
            i = None if isinstance(member, bool) else operator.index(member)
        except TypeError:
            i = None
        if i is None or not 0 <= i < n:
            several = isinstance(member, (list, tuple, np.ndarray)) and np.size(member) > 1
            hint = " (pick one of a configuration's members, e.g. members[0])" if several else ""
            raise ValueError(
                f"member must be a row of the results, an int in [0, {n}), got {member!r}{hint}"
            )
        return i

    def member_hparams(self, member) -> HParams:
        """One member's hyperparameters, as ``jaxhp.fit`` takes them (``hparams`` holds
        every member's, with a leading member axis)."""
        i = self.member_index(member)
        return HParams._make(self.hparams._fields, (np.asarray(v)[i] for v in self.hparams))

    def hparam_names(self) -> list[str]:
        """The columns that define a configuration (hyperparameters and static axes)."""
        return [*self._hparam_columns(), *self._static_columns()]

    def _best_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Each member's history row at ``best_step``, and whether there is one."""
        dev = np.asarray(self.history.dev_cost)
        steps = np.broadcast_to(np.asarray(self.history.step), dev.shape)
        match = steps == np.asarray(self.best_step)[:, None]
        return np.argmax(match, axis=1), match.any(axis=1)

    def columns(self) -> dict[str, np.ndarray]:
        """The table as columns: name -> (N,) array (see the class docstring)."""
        h, members = self.history, np.arange(len(self))
        row, found = self._best_rows()

        def at_best(values):
            picked = np.asarray(values)[members, row]
            return np.where(found, picked, np.asarray(np.nan, picked.dtype))

        train_m, dev_m = self._accuracy_rows()
        h = h._replace(
            train_accuracy=_exact_fraction(h.train_accuracy, train_m),
            dev_accuracy=_exact_fraction(h.dev_accuracy, dev_m),
        )
        return {
            "member": members,
            "seed": np.asarray(self.seeds),
            **self._hparam_columns(),
            **self._static_columns(),
            "train_cost": np.asarray(h.train_cost)[:, -1],
            "dev_cost": np.asarray(h.dev_cost)[:, -1],
            "train_accuracy": np.asarray(h.train_accuracy)[:, -1],
            "dev_accuracy": np.asarray(h.dev_accuracy)[:, -1],
            "best_step": np.asarray(self.best_step),
            "best_train_accuracy": at_best(h.train_accuracy),
            "best_dev_cost": at_best(h.dev_cost),
            "best_dev_accuracy": at_best(h.dev_accuracy),
            "stop_step": np.asarray(self.stop_step),
            "diverged": np.asarray(self.diverged),
            **({} if self.rung is None else {"rung": np.asarray(self.rung)}),
        }

    def _accuracy_rows(self) -> tuple[int | None, int | None]:
        """The row counts that the train and dev accuracies are fractions of (None where
        unknown or weighted). Without dev data the dev columns repeat the train ones."""
        if self.meta.get("train_weighted", True):
            train = None
        else:
            train = self.meta.get("m_train") or None
        dev = self.meta.get("m_dev") or None
        return train, dev if self.meta.get("m_dev") else train

    def table(self) -> list[dict[str, Any]]:
        """One dict per member (see the class docstring for the columns). float32 values
        are given as the shortest float that reads back as the stored float32."""
        cols = self.columns()
        return [{k: _plain(v, i) for k, v in cols.items()} for i in range(len(self))]

    def _order(self, metric: str) -> list[int]:
        cols = self.columns()
        primary = _ranking_key(cols[_check_metric(metric)], metric)
        secondary = _ranking_key(cols[tie_break(metric)], tie_break(metric))
        usable = ~np.asarray(self.diverged, bool) & np.isfinite(primary)
        order = np.lexsort((np.arange(len(self)), secondary, primary, -self._rungs()))
        return [int(i) for i in order if usable[i]]

    def _rungs(self) -> np.ndarray:
        """Each member's halving rung (0 for every member of a full sweep)."""
        return np.zeros(len(self), np.int64) if self.rung is None else np.asarray(self.rung)

    @property
    def default_metric(self) -> str:
        """``meta["metric"]`` when the run chose one (``jaxhp sweep --metric``, a tune's
        ``best_dev_cost``: :func:`jaxhp.cli.load_run` records it), else the dev accuracy of
        the params each member keeps: ``best_dev_accuracy`` when the sweep restored its
        best params (``meta["restore_best"]``, as early stopping does), else
        ``dev_accuracy`` (the last evaluation's)."""
        if self.meta.get("metric") in METRICS:
            return self.meta["metric"]
        return "best_dev_accuracy" if self.meta.get("restore_best") else "dev_accuracy"

    def top(self, k: int = 5, *, metric: str | None = None) -> list[dict[str, Any]]:
        """The k best members that did not diverge, best first (ranked by ``metric``, then
        by its :func:`tie_break` column, then by member index).

        Raises:
          TypeError: a metric name in ``k``'s place (``top(3, metric="dev_cost")``).
          ValueError: ``k`` not a positive int, or an unknown metric.
        """
        if isinstance(k, str):
            raise TypeError(f"top(k, *, metric=...) takes the metric by name: top(metric={k!r})")
        _checks.check_positive_int("k", k)
        metric = metric or self.default_metric
        rows = self.table()
        return [rows[i] for i in self._order(metric)[:k]]

    def best(self, metric: str | None = None) -> dict[str, Any]:
        """The top member by ``metric`` (then its :func:`tie_break` column), among those
        that did not diverge.

        Raises:
          ValueError: for an unknown metric, or when every member diverged.
        """
        order = self._order(metric or self.default_metric)
        if not order:
            raise ValueError("every member of the sweep diverged; lower the learning rate")
        return self.table()[order[0]]

    @property
    def diverged_members(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.diverged)]

    # ---- configurations across seeds -------------------------------------------------
    def summary(
        self, metric: str | None = None, *, resolution: float | None = None
    ) -> list[dict[str, Any]]:
        """One row per configuration (members that differ only in their seed), best first.

        Each row holds the configuration's columns, ``members``, ``seeds`` (their count),
        ``diverged`` (how many of them diverged), and for each of ``train_accuracy``,
        ``dev_accuracy``, ``dev_cost`` and their ``best_`` columns (at each member's best
        evaluation) its mean and sample std over the members that did not diverge
        (``dev_accuracy_mean``, ``dev_accuracy_std``, ...; std NaN with one seed). Rows are
        ranked by the mean of ``metric``, then by the mean of its :func:`tie_break` column.

        ``within_noise`` marks the rows whose mean ``metric`` differs from the best row's by
        less than ``noise``, one level for every row, so the marks follow the gap: the
        larger of the seeds' std of ``metric`` pooled (by degrees of freedom) over the
        better half of the ranked rows with two live seeds or more (the worse half is left
        out, as configurations that barely learn scatter far more from seed to seed) and,
        for an accuracy, the set's resolution (one example: ``1 / meta["m_dev"]``
        for dev accuracies, ``1 / meta["m_train"]`` for train accuracy), or ``resolution``
        if given. The best row itself is within noise, as is a row tied with it (gap 0,
        even where no noise is known: one seed of a cost). ``gap`` is the best mean minus this
        row's (costs: this row's minus the best), so it is >= 0.

        After successive halving, a row summarises its members at their highest ``rung``
        (also a column), and rows from later rungs rank first; a row from an earlier rung
        than the best row's has ``gap`` NaN and is not within noise (it was measured
        after fewer steps). Rows without a mean (every member diverged) come last.

        Raises:
          ValueError: an unknown metric, or a negative resolution.
        """
        metric = _check_metric(metric or self.default_metric)
        if resolution is None:
            resolution = self._resolution(metric)
        elif not (resolution >= 0):
            raise ValueError(f"resolution must be >= 0, got {resolution!r}")
        cols = self.columns()
        names = self.hparam_names()
        groups: dict[tuple, list[int]] = {}
        for i in range(len(self)):
            groups.setdefault(tuple(_plain(cols[n], i) for n in names), []).append(i)
        ok = ~np.asarray(self.diverged, bool)
        rung = self._rungs()
        rows, live_counts = [], []  # live: the members each row's metric is a mean of
        seed_of = np.asarray(self.seeds)
        train_m, dev_m = self._accuracy_rows()
        rows_of = {  # accuracies are hits / m: their means are taken over exact fractions
            name: (dev_m if "dev" in name else train_m) if "accuracy" in name else None
            for name in cols
        }
        for key, members in groups.items():
            # a random search over a list can draw a point twice with the same seed: one run
            distinct = list({int(seed_of[i]): i for i in reversed(members)}.values())[::-1]
            top_rung = max(rung[i] for i in distinct)
            live = [i for i in distinct if ok[i] and rung[i] == top_rung]
            row = dict(zip(names, key))
            row.update(members=members, seeds=len(distinct), diverged=int((~ok[distinct]).sum()))
            if self.rung is not None:
                row["rung"] = int(top_rung)
            for name in dict.fromkeys((*_SUMMARISED, metric, tie_break(metric))):
                values = np.asarray(cols[name], np.float64)[live]
                values = values[np.isfinite(values)]
                mean = values.mean() if values.size else np.nan
                if rows_of[name] and values.size:  # hits: 0.96 and 0.97 tie 0.965 twice
                    hits = np.round(values * rows_of[name])
                    values, mean = hits / rows_of[name], hits.sum() / (hits.size * rows_of[name])
                # as float32 (the metrics' precision): 0.89, not 0.8899999856948853
                row[f"{name}_mean"] = _plain_float(np.float32(mean))
                # one value has no sample std: NaN, not 0 ("no spread")
                std = values.std(ddof=1) if values.size > 1 else np.nan
                row[f"{name}_std"] = _plain_float(np.float32(std))
                if name == metric:
                    live_counts.append(values.size)
            rows.append(row)
        primary = _ranking_key([r[f"{metric}_mean"] for r in rows], metric)
        secondary = _ranking_key([r[f"{tie_break(metric)}_mean"] for r in rows], tie_break(metric))
        reached = [-r.get("rung", 0) for r in rows]
        unranked = ~np.isfinite([r[f"{metric}_mean"] for r in rows])  # every member diverged
        order = np.lexsort((np.arange(len(rows)), secondary, primary, reached, unranked))
        rows, live_counts = [rows[i] for i in order], [live_counts[i] for i in order]
        best = rows[0]
        sign = 1.0 if metric in _MAXIMISE else -1.0
        noise = max(resolution, _pooled_seed_std(rows, live_counts, metric))
        for row in rows:
            gap = sign * (best[f"{metric}_mean"] - row[f"{metric}_mean"])
            row["noise"] = noise
            if row.get("rung", 0) < best.get("rung", 0):
                gap = float("nan")  # measured after fewer steps: not comparable
            row["gap"] = gap
            # float32 metrics: a gap equal to the noise must not pass for smaller; a tie
            # with the best is within noise of it even where no noise is known (one seed
            # of a cost)
            row["within_noise"] = bool(np.isfinite(gap) and (gap <= 0 or gap < noise * (1 - 1e-4)))
        best["within_noise"] = bool(np.isfinite(best[f"{metric}_mean"]))
        return rows

    def _resolution(self, metric: str) -> float:
        if "accuracy" not in metric:
            return 0.0
        size = self.meta.get("m_train" if metric == "train_accuracy" else "m_dev")
        return 1.0 / size if size else 0.0

    # ---- diagnosis -------------------------------------------------------------------
    def _diagnosis(self, columns: dict, members, bayes_error, threshold: float):
        members = np.asarray([self.member_index(m) for m in np.atleast_1d(members).tolist()])
        diverged = np.asarray(columns["diverged"], bool)[members]
        live = members[~diverged] if not diverged.all() else members
        kept = "best_" if self.meta.get("restore_best") else ""  # the params the member keeps
        note = None
        if bayes_error is None and self.meta.get("bayes_error") is not None:
            # the run's own, where it recorded one (jaxhp.cli.load_run), and where it came from
            bayes_error, note = self.meta["bayes_error"], self.meta.get("bayes_note")

        def accuracy(name: str) -> float:
            # a diverged member's last evaluation has NaN accuracies: its best one's instead
            values = np.asarray(columns[kept + name], np.float64)[live]
            best = np.asarray(columns["best_" + name], np.float64)[live]
            return float(np.mean(np.where(np.isnan(values), best, values)))

        diagnosis = diagnose_errors(
            accuracy("train_accuracy"),
            accuracy("dev_accuracy"),
            bayes_error=bayes_error,
            threshold=threshold,
            diverged=bool(diverged.any()),
            chance_error=self.meta.get("chance_error"),
        )
        return diagnosis._replace(bayes_note=note) if note else diagnosis

    def diagnose(
        self, bayes_error: float | None = None, *, threshold: float = THRESHOLD
    ) -> list[dict]:
        """The table with each member's error rates, avoidable bias (train − Bayes),
        variance (dev − train) and verdict (see :func:`jaxhp.diagnose`); :meth:`diagnosis`
        gives one configuration's full diagnosis, with advice. ``bayes_error`` None: the
        run's own, ``meta["bayes_error"]`` (:func:`jaxhp.cli.load_run` sets the one the
        command assumed), else 0 (said in the diagnosis)."""
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

    def diagnosis(
        self, member=None, bayes_error: float | None = None, *, threshold: float = THRESHOLD
    ):
        """The full :class:`jaxhp.diagnose.Diagnosis` (with advice) of one member, of a
        configuration given as its members (e.g. ``summary()[1]["members"]``: the mean
        error rates of those that did not diverge), or by default of the best
        configuration (``summary()[0]``). The error rates are those of the params each
        member keeps: at its best evaluation when the sweep restored its best params
        (``meta["restore_best"]``), else at its last (for a diverged member, whose last
        evaluation has no accuracy: at its best). :meth:`diagnose` gives every
        member's error rates and verdict as a table instead; ``bayes_error`` as there."""
        if member is None:
            member = self.summary()[0]["members"]
        return self._diagnosis(self.columns(), member, bayes_error, threshold)

    # ---- exports ---------------------------------------------------------------------
    def to_csv(self, path) -> Path:
        """The table as CSV; float32 values as their shortest round-tripping text."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = self.columns()
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(cols)
        for i in range(len(self)):
            writer.writerow(_cell(v, i) for v in cols.values())
        _atomic_write(path, text.getvalue().encode())  # never a half-written table
        return path

    def to_json(self, path, *, config: dict | None = None) -> Path:
        """The table, the histories, the run's meta data and (when given) the ``config``
        that reproduces the sweep, as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "config": config or {},
            "meta": self.meta,
            "members": self.table(),
            "history": {
                k: np.vectorize(_plain_float, otypes=[object])(np.asarray(v)).tolist()
                if np.asarray(v).dtype == np.float32
                else np.asarray(v).tolist()
                for k, v in self.history._asdict().items()
            },
            "layout": self._layout(),
        }
        _atomic_write(path, json.dumps(payload, indent=1).encode())
        return path

    def _layout(self) -> dict:
        """What :meth:`from_json` needs beyond the table: each hyperparameter's shape and
        dtype, the histories' dtypes, and the static values that are plain data."""
        return {
            "hparams": {
                name: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                for name, v in self.hparams._asdict().items()
            },
            "history": {k: str(np.asarray(v).dtype) for k, v in self.history._asdict().items()},
            "arrays": {
                name: str(np.asarray(getattr(self, name)).dtype)
                for name in ("seeds", "stop_step", "best_step", "diverged", "rung")
                if getattr(self, name) is not None
            },
            "static": {
                name: [_as_json(v, text) for v, text in zip(values, _static_texts(values))]
                for name, values in self.static.items()
            },
        }

    @classmethod
    def from_json(cls, path) -> SweepResults:
        """The results that :meth:`to_json` wrote to ``path`` (``jaxhp sweep`` and ``jaxhp
        tune`` write them as results.json): table, histories (float32 exactly) and meta,
        ready for :meth:`summary`, the plots and :func:`jaxhp.sweep.refit`. A static value
        that is not plain data (a function as the optimizer, say) comes back as its table
        text; refit refuses such members. :func:`jaxhp.cli.load_run` also rebuilds the
        data and config of a ``jaxhp sweep`` or ``jaxhp tune`` run.

        Raises:
          ValueError: ``path`` is not JSON that :meth:`to_json` wrote (naming what is not).
        """
        path = Path(path)
        try:
            payload = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            hint = "" if path.suffix == ".json" else " (give the results.json a sweep wrote)"
            raise ValueError(f"cannot read results from {path}: {err}{hint}") from err
        expected = ("meta", "members", "history", "layout")
        missing = [k for k in expected if k not in payload] if isinstance(payload, dict) else None
        if missing is None or missing:
            raise ValueError(
                f"{path} is not a results.json written by SweepResults.to_json of this jaxhp "
                f"(missing {missing or 'everything: not a JSON object'}); older files hold no "
                "layout: run the sweep again"
            )
        rows, layout = payload["members"], payload["layout"]
        n = len(rows)
        dtypes = {"seeds": "int64", "stop_step": "int32", "best_step": "int32", "rung": "int64"}
        dtypes.update(layout.get("arrays", {}))

        def column(name, dtype):
            return np.asarray([row[name] for row in rows], dtype)

        hparams = {}
        for name, spec in layout["hparams"].items():
            shape, dtype = tuple(spec["shape"]), spec["dtype"]
            if len(shape) <= 1:  # one value per member, or one for the whole sweep
                hparams[name] = column(name, dtype) if shape else np.asarray(rows[0][name], dtype)
            else:  # one value per layer: columns name_1, name_2, ...
                layers = [column(f"{name}_{k + 1}", dtype) for k in range(shape[1])]
                hparams[name] = np.stack(layers, axis=1).reshape(shape)
        static = {
            name: [_from_json(v) for v in values] for name, values in layout["static"].items()
        }
        # members whose static value was a Python object (a function): only its text is left;
        # a file read and written again keeps them marked
        texts = {
            name: [i for i, v in enumerate(values) if isinstance(v, dict) and "text" in v]
            for name, values in layout["static"].items()
        }
        for name, members in (payload["meta"].get("static_as_text") or {}).items():
            texts[name] = sorted(set(texts.get(name, [])) | set(members))
        history = History(
            **{k: np.asarray(v, layout["history"][k]) for k, v in payload["history"].items()}
        )
        return cls(
            hparams=HParams._make(hparams, hparams.values()),
            seeds=column("seed", dtypes["seeds"]),
            history=history,
            stop_step=column("stop_step", dtypes["stop_step"]),
            best_step=column("best_step", dtypes["best_step"]),
            diverged=column("diverged", bool),
            meta={
                **payload["meta"],
                "read_from": str(path),
                "static_as_text": {k: v for k, v in texts.items() if v},
            },
            static=static,
            rung=column("rung", dtypes["rung"]) if n and "rung" in rows[0] else None,
        )

    def refuse_static_text(self, members, fix: str) -> None:
        """Raise ValueError where one of ``members`` has a static value that came back from
        a results.json as its text (a function the sweep trained with), which nothing can
        train with again; ``fix`` says what to do instead."""
        labels = self.meta.get("label_columns", [])  # e.g. an Optuna study's trial numbers
        for name, texts in (self.meta.get("static_as_text") or {}).items():
            i = next((int(i) for i in members if i in texts), None)
            if i is not None and name not in labels:
                raise ValueError(
                    f"member {i}'s {name} came back from {self.meta.get('read_from')} as its "
                    f"name ({self.static[name][i]!r}), not the object the sweep trained with "
                    f"(a function): {fix}"
                )

    def to_pandas(self):
        """The table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("to_pandas needs pandas: pip install pandas") from err
        return pd.DataFrame(self.columns())

    # ---- plots (drawn by jaxhp.plot) -------------------------------------------------
    def plot_heatmap(
        self, path, *, x: str | None = None, y: str | None = None, metric: str | None = None
    ) -> Path:
        """Mean ``metric`` over members sharing (x, y) (see :func:`jaxhp.plot.heatmap`)."""
        from jaxhp.plot import heatmap

        return heatmap(self, path, x=x, y=y, metric=metric)

    def plot_rungs(self, path) -> Path:
        """Every member's dev cost and the rungs of a halving sweep (see
        :func:`jaxhp.plot.rungs_figure`)."""
        from jaxhp.plot import rungs

        return rungs(self, path)

    def plot_curves(self, path, *, top: int = 5, metric: str | None = None) -> Path:
        """Cost and accuracy curves of the ``top`` members (see :func:`jaxhp.plot.curves`)."""
        from jaxhp.plot import curves

        return curves(self, path, top=top, metric=metric)


def diagnose_errors(
    train_accuracy: float,
    dev_accuracy: float,
    *,
    bayes_error: float | None = None,
    threshold: float = THRESHOLD,
    diverged: bool = False,
    chance_error: float | None = None,
):
    """:func:`jaxhp.diagnose` of accuracies, with whether the run diverged and the error of
    guessing (``chance_error``). ``bayes_error`` None lets it assume 0 and say so."""
    return diagnose(
        train_error=1 - train_accuracy,
        dev_error=1 - dev_accuracy,
        bayes_error=bayes_error,
        threshold=threshold,
        diverged=diverged,
        chance_error=chance_error,
    )


def _plain_data(value) -> bool:
    """Can ``value`` go to JSON and come back equal (layer sizes, a batch size, a name)?"""
    if isinstance(value, (tuple, list)):
        return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    plain = (str, bool, int, float, np.bool_, np.integer, np.floating)
    return value is None or isinstance(value, plain)


def _as_json(value, text):
    """A static value for results.json: layer sizes as ``{"tuple": [...]}``, a Python
    object that JSON cannot hold (a function) as ``{"text": its table text}``."""
    if not _plain_data(value):
        return {"text": text}
    if isinstance(value, (tuple, list)):
        return {"tuple": [int(v) for v in value]}
    return value.item() if isinstance(value, np.generic) else value


def _from_json(value):
    if isinstance(value, dict):
        return tuple(value["tuple"]) if "tuple" in value else value["text"]
    return value


def _static_texts(values: list) -> list:
    """Each static value's cell; distinct values that read the same (two lambdas as
    optimizers, both ``<lambda>``) are told apart as ``<lambda>#1``, ``<lambda>#2``."""
    distinct: list = []  # in order of appearance
    position = [_position(value, distinct) for value in values]
    names = [_static_text(v) for v in distinct]
    texts = [
        f"{name}#{names[:k].count(name) + 1}" if names.count(name) > 1 else name
        for k, name in enumerate(names)
    ]
    return [texts[k] for k in position]


def _position(value, distinct: list) -> int:
    """Where ``value`` is in ``distinct`` (appended when new): the same object, or an
    equal one of the same type (layer sizes given twice)."""
    for k, seen in enumerate(distinct):
        if value is seen or (type(value) is type(seen) and value == seen):
            return k
    distinct.append(value)
    return len(distinct) - 1


def _static_text(value):
    """A static axis value as a table cell: layer sizes as ``2-8-1``, ``None`` (full-batch
    batch_size, say) as ``"None"``, a function by its name, a model as ``Model``."""
    if hasattr(value, "_fields"):  # a Model(init, apply): two models are Model#1, Model#2
        return type(value).__name__
    if isinstance(value, (tuple, list)):
        return "-".join(map(str, value))
    if value is None:
        return "None"
    if np.isscalar(value):
        return value
    return getattr(value, "__name__", None) or repr(value)


def _exact_fraction(accuracy, m: int | None) -> np.ndarray:
    """An accuracy over m rows is hits / m exactly, but a float32 mean rounds it (194/200
    comes out as 0.96999997): the nearest k / m, rounded once to float32, reads 0.97."""
    accuracy = np.asarray(accuracy)
    if m is None:
        return accuracy
    return (np.round(accuracy.astype(np.float64) * m) / m).astype(accuracy.dtype)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _plain_float(value) -> float:
    return float(short_float(value))


def _plain(column: np.ndarray, i: int):
    """Row i of a column as a plain Python value (float32 as its shortest float)."""
    value = column[i]
    if isinstance(value, np.floating) and value.dtype == np.float32:
        return _plain_float(value)
    return value.item() if isinstance(value, np.generic) else value


def _cell(column: np.ndarray, i: int):
    value = column[i]
    if isinstance(value, np.floating) and value.dtype == np.float32:
        return short_float(value)
    return value.item() if isinstance(value, np.generic) else value


def format_summary(rows: list[dict], results: SweepResults, metric: str) -> str:
    """``rows`` of :meth:`SweepResults.summary` as the ranked table ``jaxhp sweep`` prints:
    each configuration's values, seeds (and rung), the metrics' mean ± std over its live
    seeds, and whether it is within noise of the best."""
    names = results.hparam_names()
    kept = "best_" if results.meta.get("restore_best") else ""  # the params members keep
    shown = [metric, *(kept + m for m in ("dev_accuracy", "train_accuracy", "dev_cost"))]
    shown = list(dict.fromkeys(shown))
    rungs = results.rung is not None
    header = [f"{'rank':>4}", *(f"{n:>13}" for n in names), f"{'seeds':>5}"]
    header += [f"{'rung':>4}"] if rungs else []
    header += [f"{m:>19}" for m in shown] + ["  within noise of best"]
    lines = [" ".join(header)]
    for rank, row in enumerate(rows, start=1):
        cells = [f"{rank:>4}", *(f"{number_text(row[n]):>13}" for n in names), f"{row['seeds']:>5}"]
        cells += [f"{row['rung']:>4}"] if rungs else []
        if row["diverged"] == row["seeds"]:
            cells.append(f"{'every seed diverged':>19}")
            lines.append(" ".join(cells))
            continue
        cells += [_mean_cell(row, m) for m in shown]
        if row["within_noise"]:
            cells.append("  yes")
        elif row.get("rung", 0) < rows[0].get("rung", 0):  # fewer steps: not comparable
            cells.append("  (stopped at an earlier rung)")
        if row["diverged"]:
            seeds = f"{row['diverged']} seed{'' if row['diverged'] == 1 else 's'}"
            cells.append(f"({seeds} diverged, not in the mean)")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def _mean_cell(row: dict, metric: str) -> str:
    """The mean over the live seeds, and their std when there are two or more."""
    mean = f"{row[metric + '_mean']:>9.4f}"
    if row["seeds"] - row["diverged"] < 2:
        return f"{mean} {'':<9}"
    return f"{mean} ± {row[metric + '_std']:<7.4f}"


def number_text(value) -> str:
    """A hyperparameter value as the table shows it: 4 significant digits, a per-layer
    tuple as 0.8/0.9."""
    if isinstance(value, tuple):
        return "/".join(number_text(v) for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)
