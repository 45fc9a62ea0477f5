"""Optuna's samplers on vmapped batches: ask ``batch_size`` trials, train them as one sweep.

Optuna evaluates one trial at a time; jaxhp trains many configurations in one compiled
program. :func:`optimize` joins the two: it asks the study's sampler (TPE, CMA-ES, random,
...) for a batch of trials, trains the batch with :func:`jaxhp.run_sweep`, and tells Optuna
each member's dev cost. Optuna's storage, plots and analysis then work on the study as on
any other.

Contract:
  - The objective is the dev cost (cross-entropy without the L2 term) at the member's best
    evaluation, so the study must minimise. Without dev data it is the train cost.
  - Each trial's user attributes hold ``dev_accuracy`` and ``train_accuracy`` (at its best
    evaluation, as the objective), ``best_step``, ``stop_step`` and ``diverged`` (and, with
    ``keep_history=True``, ``history``: its evaluations, which :func:`study_results` reads
    back). A diverged member is told as FAIL. Every value a distribution can draw must be
    one its hyperparameter allows (checked before any trial is asked).
  - Trials are marked with the user attribute ``jaxhp`` = True. Marked trials left RUNNING
    by a killed process are trained again on the next call (with the params Optuna stored),
    so a study in an RDB storage (``sqlite:///study.db``) resumes with nothing lost. Do not
    run two ``optimize`` calls on one study at the same time: each would re-train the
    other's running trials.
"""

from __future__ import annotations

import difflib
import json
import keyword
import math
import numbers
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxhp import _checks, _warn
from jaxhp.records import Data, History, HParams, TrainConfig
from jaxhp.results import SweepResults
from jaxhp.space import Space

MARK = "jaxhp"  # user attribute that marks the trials this module asked for


def _optuna():
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "jaxhp.integrations.optuna needs optuna: pip install 'jaxhp[optuna]'"
        ) from err
    return optuna


SAMPLERS = ("tpe", "cmaes", "random")


def create_study(
    *,
    storage: str | None = None,
    study_name: str | None = None,
    sampler: str = "tpe",
    seed: int | None = None,
):
    """An Optuna study that minimises the dev cost, created or (with ``storage``) resumed.

    Args:
      storage: None (in memory) or an RDB URL such as ``sqlite:///study.db``; an existing
        study of the same name in it is loaded, so a killed run resumes.
      study_name: the study's name in ``storage`` (Optuna picks one when None).
      sampler: ``"tpe"``, ``"cmaes"`` or ``"random"``.
      seed: the sampler's seed.

    Raises:
      ValueError: an unknown sampler, or a storage that cannot be opened.
    """
    optuna = _optuna()
    _checks.check_choice("sampler", sampler, SAMPLERS)
    if sampler == "cmaes":
        try:
            import cmaes  # noqa: F401 - Optuna's CmaEsSampler needs it at its first sample
        except ImportError as err:
            raise ImportError("sampler='cmaes' needs cmaes: pip install 'jaxhp[optuna]'") from err
    if storage is not None:
        _check_sqlite_folder(storage)
    try:
        return optuna.create_study(
            storage=storage,
            study_name=study_name,
            sampler=make_sampler(sampler, seed),
            direction="minimize",
            load_if_exists=storage is not None,
        )
    except Exception as err:  # SQLAlchemy and Optuna raise many kinds; name the URL
        if storage is None:
            raise
        raise ValueError(
            f"storage {storage!r} cannot be opened ({type(err).__name__}: "
            f"{str(err).splitlines()[0]}); give an RDB URL such as sqlite:///study.db in a "
            "writable folder"
        ) from err


def _check_sqlite_folder(storage) -> None:
    """A SQLite URL whose file lies in a folder that does not exist: said before SQLite's
    own "unable to open database file"."""
    if not isinstance(storage, str) or not storage.startswith("sqlite:"):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(storage).database
    except ArgumentError:
        return  # create_study names the URL
    if not database or database == ":memory:":
        return
    folder = Path(database).parent
    if not folder.is_dir():
        how = (
            ""
            if folder.is_absolute()
            else " (sqlite:/// takes a path relative to the working folder, sqlite://// an "
            "absolute one)"
        )
        raise ValueError(
            f"storage {storage!r} names the file {database}, whose folder {folder} does not "
            f"exist{how}: create the folder, or give another path"
        )


def make_sampler(name: str, seed: int | None = None):
    """Optuna's sampler called ``name`` (one of :data:`SAMPLERS`), seeded."""
    optuna = _optuna()
    _checks.check_choice("sampler", name, SAMPLERS)
    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "random": optuna.samplers.RandomSampler,
    }
    return samplers[name](seed=seed)


def _hparam_names(base: HParams) -> tuple[str, ...]:
    return tuple(base._fields)


def _check_distributions(distributions: Any, names: tuple[str, ...]) -> dict:
    optuna = _optuna()
    if not isinstance(distributions, Mapping) or not distributions:
        raise TypeError(
            "distributions must be a non-empty dict {hyperparameter name: optuna "
            f"distribution}}, got {distributions!r}"
        )
    checked = {}
    for name, dist in distributions.items():
        identifier = isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
        if name not in names and not identifier:  # a new identifier is checked later
            close = difflib.get_close_matches(str(name), names, n=1)
            if close:
                hint = f"did you mean {close[0]!r}?"
            else:  # no keyword argument can carry it
                hint = "hyperparameter names must be Python identifiers that are not keywords"
            raise ValueError(
                f"distributions names {name!r}, which is no hyperparameter; known names: "
                f"{', '.join(names)} ({hint})"
            )
        if not isinstance(dist, optuna.distributions.BaseDistribution):
            raise TypeError(
                f"distributions[{name!r}] must be an optuna distribution (FloatDistribution, "
                f"IntDistribution, CategoricalDistribution), got {dist!r}"
            )
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            bad = [c for c in dist.choices if not _is_number(c)]
            if bad:
                raise ValueError(
                    f"distributions[{name!r}] is categorical with non-numeric choices {bad!r}; "
                    "hyperparameters are numbers (use a static axis for other choices)"
                )
        _check_range(name, dist)
        checked[name] = dist
    return checked


def _check_range(name: str, dist) -> None:
    """Every value the distribution can draw must be one the hyperparameter allows (its
    ends, or its choices: each allowed range is an interval), before any trial is asked:
    a bad draw would fail its batch and leave its trials to be retrained. A continuous
    range's own ends are never drawn in practice: learning_rate in [0, 1] is fine."""
    if hasattr(dist, "choices"):
        ends = [(value, value) for value in dist.choices]
    elif isinstance(dist, _optuna().distributions.FloatDistribution) and dist.step is None:
        low, high = np.float32(dist.low), np.float32(dist.high)  # as trained: float32
        ends = list(zip((dist.low, dist.high), (np.nextafter(low, high), np.nextafter(high, low))))
    else:
        ends = [(dist.low, dist.low), (dist.high, dist.high)]
    for shown, value in ends:
        try:  # as trained: in float32 (1 - 1e-8 is 1.0 there)
            HParams(**{name: np.float32(value)}).validate()
        except ValueError as err:
            allowed = str(err).split(", got")[0]
            raise ValueError(
                f"distributions[{name!r}] = {dist!r} draws values near {shown!r}, but {allowed}"
            ) from None


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _check_study(study: Any):
    optuna = _optuna()
    if not isinstance(study, optuna.Study):
        raise TypeError(f"study must be an optuna.Study (optuna.create_study(...)), got {study!r}")
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ValueError(
            "study must minimise a single objective (the dev cost): "
            "optuna.create_study(direction='minimize')"
        )


def stale_trials(study, distributions: Mapping[str, Any]) -> list:
    """Trials this module asked for that a killed process left RUNNING, as live trials:
    those whose params all lie in ``distributions`` (a trial drawn from other ranges, say
    the invalid ones that failed its batch, is not trained again)."""
    optuna = _optuna()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return [
        optuna.trial.Trial(study, t._trial_id)
        for t in running
        if t.user_attrs.get(MARK) and _drawn_from(t.params, distributions)
    ]


def _drawn_from(params: Mapping[str, Any], distributions: Mapping[str, Any]) -> bool:
    """Whether a trial's params could come from ``distributions``: the same names, each
    value inside its distribution."""
    if set(params) != set(distributions):
        return False
    for name, dist in distributions.items():
        try:
            if not dist._contains(dist.to_internal_repr(params[name])):
                return False
        except ValueError:  # a categorical value not among the choices
            return False
    return True


def _ask(study, distributions: dict, n: int) -> list:
    trials = [study.ask(distributions) for _ in range(n)]
    for trial in trials:
        trial.set_user_attr(MARK, True)
    return trials


def _tell(study, trials: list, results: SweepResults, keep_history: bool, base: HParams):
    """Each trial's objective (the dev cost at its best evaluation), its metrics, and what
    ``sweep.refit`` needs to train it again: its base seed and hyperparameters, the config
    and the data it was trained on."""
    recorded = {
        "seed": int(results.meta["seed"]),
        "base": _base_record(base),
        "train_config": results.meta["train_config"],
        "data_digest": results.meta["data_digest"],
        "vmap_width": int(results.meta["vmap_width"]),  # one static group: its width
        "devices": results.meta["devices"],  # a refit splits over devices as they did
        # the resolution and chance level study_results' summary and diagnosis read
        "m_train": int(results.meta["m_train"]),
        "m_dev": int(results.meta["m_dev"]),
        "chance_error": float(results.meta["chance_error"]),
    }
    fail = _optuna().trial.TrialState.FAIL
    for i, (trial, row) in enumerate(zip(trials, results.table())):
        trial.set_user_attr("dev_accuracy", float(row["best_dev_accuracy"]))
        trial.set_user_attr("train_accuracy", float(row["best_train_accuracy"]))
        trial.set_user_attr("best_step", int(row["best_step"]))
        trial.set_user_attr("stop_step", int(row["stop_step"]))
        trial.set_user_attr("diverged", bool(row["diverged"]))
        for name, value in recorded.items():
            trial.set_user_attr(name, value)
        if keep_history:  # float32 -> float -> JSON -> float32 reads back exactly
            history = {k: np.asarray(v[i]).tolist() for k, v in results.history._asdict().items()}
            trial.set_user_attr("history", history)
        value = float(row["best_dev_cost"])
        if row["diverged"] or not math.isfinite(value):
            study.tell(trial, state=fail)
        else:
            study.tell(trial, value)


def optimize(
    study: Any,
    distributions: Mapping[str, Any],
    data: Data,
    config: TrainConfig,
    *,
    n_trials: int,
    batch_size: int = 16,
    seed: int = 0,
    base: HParams | None = None,
    keep_history: bool = False,
    **sweep_options: Any,
):
    """Run ``n_trials`` trials of ``study``, ``batch_size`` at a time, each batch one sweep.

    Args:
      study: an ``optuna.Study`` that minimises (``direction='minimize'``), with any sampler
        and storage.
      distributions: ``{name: optuna distribution}``, e.g. ``{"lambd":
        FloatDistribution(1e-4, 1, log=True)}``. Names are hyperparameters that the
        model, the optimizer or the loss reads (``base``'s or new ones, such as
        ``momentum`` for ``optimizer="momentum"``).
      data: :class:`jaxhp.Data` with dev data (the objective).
      config: :class:`jaxhp.TrainConfig` shared by every trial.
      n_trials: trials to complete in this call (trials resumed from a killed run count).
      batch_size: trials trained together; every batch compiles to the same program (the
        last one is padded), so only the first batch compiles.
      seed: base seed of the sweeps; every trial uses member seed 0, so trials differ only
        in their hyperparameters.
      base: values of the hyperparameters the distributions leave out (``HParams()``).
      keep_history: also store each trial's evaluations (user attribute ``history``), so
        that :func:`study_results` can rebuild the full results table from the study.
      **sweep_options: passed to :func:`jaxhp.run_sweep` (``devices``, ``memory_budget``, ...).

    Returns:
      The study.

    Raises:
      TypeError/ValueError: a study that does not minimise one objective, distributions that
        are not optuna distributions or name what nothing reads, categorical choices that are
        not numbers, ``n_trials`` or ``batch_size`` < 1.
    """
    from jaxhp.sweep import run_sweep  # run_sweep imports this package's siblings

    _check_study(study)
    _checks.check_positive_int("n_trials", n_trials)
    _checks.check_positive_int("batch_size", batch_size)
    base = HParams() if base is None else base
    distributions = _check_distributions(distributions, _hparam_names(base))
    traced = _with_new_names(base, distributions, data, config)
    for option in ("chunk_size", "checkpoint", "progress"):
        if option in sweep_options:
            raise ValueError(f"optimize sets run_sweep's {option!r} itself; leave it out")
    if "schedule" in sweep_options:  # Optuna would be told a cut trial's cost as final
        raise ValueError(
            "optimize trains every trial to config.steps; leave schedule out (successive "
            "halving is run_sweep's, over a space of its own)"
        )

    width = {k: sweep_options.get(k) for k in ("vmap_width", "devices")}
    record = _record(data, config, seed, base, traced, width)  # checked before any trial
    _check_same_training(study, lambda: record, searched=set(distributions))
    if len(data) < 2 or data[1] is None:  # a Data, or a (train, dev, test) tuple
        _warn.warn(
            "data has no dev set: the objective is the train cross-entropy, so the study "
            "rewards fitting the training set, not generalising"
        )
    queue = stale_trials(study, distributions)
    done = 0
    while done < n_trials:
        take = min(batch_size, n_trials - done)
        batch = queue[:take]
        queue = queue[take:]
        batch += _ask(study, distributions, take - len(batch))
        members = [{name: float(t.params[name]) for name in distributions} for t in batch]
        with warnings.catch_warnings():  # said above, once
            warnings.filterwarnings("ignore", message="data has no dev set")
            results = run_sweep(
                Space(members, repeats=True),  # a sampler may ask for one point twice
                data,
                config,
                seed=seed,
                base=base,
                chunk_size=batch_size,
                progress=False,
                **sweep_options,
            )
        _tell(study, batch, results, keep_history, base)
        done += len(batch)
    return study


def _with_new_names(base: HParams, distributions: dict, data: Data, config: TrainConfig):
    """``base`` with each searched name it lacks (``momentum`` for an optimizer factory
    that reads ``hp.momentum``), at its distribution's first value, for tracing the model
    before any trial is asked (the trials' records keep ``base`` as given); a new name that
    neither the model, the optimizer nor the loss reads is a typo, refused then (as
    ``run_sweep`` refuses such an axis)."""
    from jaxhp import train
    from jaxhp.records import read_names
    from jaxhp.sweep import _names_read, _reader_hint

    new = [name for name in distributions if name not in base._fields]
    if not new:
        return base
    first = {name: _first_value(distributions[name]) for name in new}
    extended = HParams(**base._asdict(), **first)
    with warnings.catch_warnings(), read_names() as read:  # run_sweep gives them, once
        warnings.simplefilter("ignore")
        train.check_inputs(extended, data, config)
    read = _names_read(config, read)
    for name in new:
        if name not in read:
            known = ", ".join(map(repr, sorted(read)))
            close = difflib.get_close_matches(name, sorted(read | set(base._fields)), n=1)
            fix = f" (did you mean {close[0]!r}?)" if close else f", or {_reader_hint(name)}"
            raise ValueError(
                f"distributions names {name!r}, which neither the model, the optimizer nor "
                f"the loss reads (they read {known}); check its spelling{fix}"
            )
    return extended


def _first_value(dist) -> float:
    """A value the distribution can draw: its low end, or its first choice."""
    return float(dist.choices[0] if hasattr(dist, "choices") else dist.low)


def _record(
    data: Data, config: TrainConfig, seed: int, base: HParams, traced: HParams, width: dict
) -> dict:
    """What :func:`_tell` will record on each trial of this call, before any training;
    ``traced``: ``base`` with every searched name, to trace the model with."""
    from jaxhp.records import config_record
    from jaxhp.sweep import _sweep_width, held_data_digest

    with warnings.catch_warnings():  # run_sweep gives them, once
        warnings.simplefilter("ignore")
        # traced holds every searched name (checked); the digest needs no sampled value
        digest = held_data_digest(data, traced, config, config)
        vmap_width = _sweep_width(config, data, traced, **width)
    return {
        "seed": int(seed),
        "base": _base_record(base),
        "train_config": config_record(config),
        "data_digest": digest,
        "vmap_width": vmap_width,  # it sets the trials' rounding; a refit needs it
    }


def _check_same_training(study, record_of_this_call, searched: set = frozenset()) -> None:
    """The study's finished trials must have been trained as this call trains: one study
    holds one sampler's view of one objective, so trials of another config, data, seed or
    base hyperparameters would mislead it (and :func:`study_results`); a base value of a
    name this call or a trial ``searched`` is never trained with, so it is not compared.
    ``record_of_this_call()`` (a model trace and a digest of the data) runs only when some
    trial has a record to compare."""
    recorded = [t for t in finished_trials(study) if "train_config" in t.user_attrs]
    if not recorded:
        return
    record = record_of_this_call()
    for trial in recorded:
        unused = searched | set(trial.params)
        same = {name: _same for name in record} | {
            "base": lambda a, b: _same_values(_without(a, unused), _without(b, unused))
        }  # base: as float32
        theirs = {name: trial.user_attrs.get(name) for name in record}
        differ = [
            name
            for name in record
            if theirs[name] is not None and not same[name](record[name], theirs[name])
        ]
        if differ:
            raise ValueError(
                f"trial {trial.number} of the study was trained with "
                f"{_difference(differ[0], record[differ[0]], theirs[differ[0]])}; a study "
                "holds one training setup: use the same one, or a new study "
                "(create_study(study_name=...))"
            )


def _same(ours, theirs) -> bool:
    """Equal as JSON, which is how a storage keeps them (a tuple reads back as a list)."""
    return json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)


def _difference(name: str, ours, theirs) -> str:
    """How the trials' ``theirs`` differs from this call's ``ours``, as words."""
    if name == "data_digest":
        return "other data (the train and dev arrays differ)"
    if isinstance(ours, dict) and isinstance(theirs, dict):
        keys = [k for k in {**theirs, **ours} if not _same(ours.get(k), theirs.get(k))]
        parts = ", ".join(f"{k} {theirs.get(k)!r} (here {ours.get(k)!r})" for k in keys)
        return f"another {'config' if name == 'train_config' else name}: {parts}"
    return f"another {name}: {theirs!r} (here {ours!r})"


def finished_trials(study) -> list:
    """The trials :func:`optimize` asked for and told (COMPLETE or FAIL), by number."""
    optuna = _optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False, states=states) if t.user_attrs.get(MARK)]


def study_results(study, config: TrainConfig, *, base: HParams | None = None) -> SweepResults:
    """The study's trials as a :class:`jaxhp.SweepResults` table, one member per trial.

    Only the trials that :func:`optimize` told with ``keep_history=True`` can be rebuilt
    (they carry their evaluations); the ``trial`` column gives each member's trial number.
    The table ranks by the study's objective (``meta["metric"]`` is ``best_dev_cost``), and
    knows the dev set's size and chance level where the trials recorded them.
    Every member has seed 0, as in :func:`optimize`; ``meta["seed"]`` is the base seed
    ``optimize`` was given (None where unknown: trials told by calls with different seeds,
    or by a jaxhp that did not record it).

    Args:
      study: the ``optuna.Study``.
      config: the :class:`jaxhp.TrainConfig` the trials were trained with (its hidden layer
        count shapes a per-layer keep_prob).
      base: the values of the hyperparameters the trials did not sample, as given to
        :func:`optimize`.

    Raises:
      ValueError: when no trial of the study carries its history.
    """
    _check_study(study)
    trials = [t for t in finished_trials(study) if "history" in t.user_attrs]
    if not trials:
        raise ValueError(
            "the study has no trial told by optimize(..., keep_history=True), so no "
            "evaluations to tabulate; run optimize with keep_history=True (each trial's "
            "final metrics are in trial.user_attrs either way: dev_accuracy, best_step, ...)"
        )
    base = _study_base(trials, base)
    _check_config(trials, config)
    members = [{k: float(v) for k, v in t.params.items()} for t in trials]
    hparams, seeds = Space(members, repeats=True).compile(config.n_hidden, base)
    attrs = [t.user_attrs for t in trials]
    history = History(
        **{
            name: np.stack([np.asarray(a["history"][name], dtype) for a in attrs])
            for name, dtype in _history_dtypes(config).items()
        }
    )
    # The trial number is a configuration column: each trial is one row of the summary.
    return SweepResults(
        hparams=hparams,
        seeds=np.zeros_like(seeds),
        history=history,
        stop_step=np.asarray([a["stop_step"] for a in attrs], np.int32),
        best_step=np.asarray([a["best_step"] for a in attrs], np.int32),
        diverged=np.asarray([a["diverged"] for a in attrs], bool),
        meta={
            "members": len(trials),
            "seed": _common(trials, "seed"),
            "train_config": _common(trials, "train_config"),
            "data_digest": _common(trials, "data_digest"),
            "vmap_width": _common(trials, "vmap_width"),  # None: unknown
            "vmap_width_given": _common(trials, "vmap_width"),  # refit trains at it
            "devices": _common(trials, "devices"),
            "m_train": _common(trials, "m_train"),
            "m_dev": _common(trials, "m_dev"),
            "chance_error": _common(trials, "chance_error"),
            "metric": "best_dev_cost",  # the study's objective: rank as the study does
            "label_columns": ["trial"],
        },
        static={"trial": [t.number for t in trials]},
    )


def _common(trials, name: str):
    """The value of user attribute ``name`` that every trial holds, or None where it is
    unknown: trials told by calls that differed in it, or by a jaxhp that did not record it
    (the base seed, the config, the data digest, the base hyperparameters)."""
    values = [t.user_attrs.get(name) for t in trials]
    return values[0] if None not in values and all(v == values[0] for v in values) else None


def _base_record(base: HParams) -> dict:
    return {name: np.asarray(value).tolist() for name, value in base._asdict().items()}


def _without(record: dict, names: set) -> dict:
    return {name: value for name, value in record.items() if name not in names}


def _same_values(a: dict, b: dict) -> bool:
    """The same names with the same values as float32 (0.1 given as a Python float or as
    np.float32 is one value: that is how it trains)."""
    as32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
    return a.keys() == b.keys() and all(np.array_equal(as32(a[k]), as32(b[k])) for k in a)


def _study_base(trials, base: HParams | None) -> HParams:
    """The base hyperparameters ``optimize`` was given: as recorded on the trials, and
    ``base`` must agree with the record."""
    recorded = _common(trials, "base")
    if base is None:
        if recorded is None:
            return HParams()
        return HParams(**{k: np.asarray(v, np.float32) if isinstance(v, list) else v
                          for k, v in recorded.items()})  # fmt: skip
    searched = {name for t in trials for name in t.params}  # their base values go unused
    given = _without(_base_record(base), searched)
    if recorded is not None and not _same_values(given, _without(recorded, searched)):
        raise ValueError(
            f"base is not what optimize was given for these trials: {_base_record(base)}, "
            f"the trials' {recorded}; leave base out to use theirs"
        )
    return base


def _check_config(trials, config: TrainConfig) -> None:
    """``config`` must be the one the trials were trained with (where they recorded it)."""
    from jaxhp.records import config_record

    ours = config_record(config)
    for trial in trials:
        theirs = trial.user_attrs.get("train_config")
        if theirs is not None and not _same(ours, theirs):
            raise ValueError(
                f"trial {trial.number} was trained with "
                f"{_difference('train_config', ours, theirs)}; pass the config the study's "
                "trials were trained with"
            )


def _history_dtypes(config: TrainConfig) -> dict:
    """The dtypes a sweep's history has: int32 steps, metrics in the config's dtype."""
    return {
        name: np.int32 if name == "step" else np.dtype(config.dtype) for name in History._fields
    }
