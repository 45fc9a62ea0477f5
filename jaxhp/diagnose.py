"""Bias/variance diagnosis and the course's basic recipe (COURSE.md points 3 and 4).

With Bayes error as the reference: avoidable bias = train error − Bayes error; variance =
dev error − train error, or train-dev error − train error when a train-dev set (held out
from the training distribution) is given, in which case data mismatch = dev − train-dev.
Each gap counts as "high" when it exceeds ``threshold`` (absolute error rate, default 0.02:
the course's 15%/16% case is high bias only, 0.5%/1% is fine); a gap equal to it, up to
float32 rounding (2 examples in 100), is not.

A run that did not train has no meaningful bias or variance: a diverged one gets "learning
rate too high / diverging", one whose train error sits at chance level "not learning", and
nothing else. A negative gap
is noise around 0 and is reported as about 0, with a note.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from jaxhp import _checks, _warn
from jaxhp.records import History

THRESHOLD = 0.02  # the default gap that counts as "high": 2 points of error rate
DIVERGING = "learning rate too high / diverging"
NOT_LEARNING = "not learning (train error at chance level)"

# Error rates come from float32 accuracies, which put up to ~1e-7 of rounding on a gap: a
# gap of exactly the threshold (2 examples in 100) must read the same whichever way it
# rounded, so comparisons with a threshold allow this much.
_ROUNDING = 1e-6
_BELOW_PRINT = 5e-5  # a negative gap smaller than this prints as 0.00%: rounding, not a gap


def gap_exceeds(gap: float, threshold: float) -> bool:
    """``gap > threshold`` beyond float32 rounding (a gap equal to it is not above it)."""
    return gap > threshold + _ROUNDING


ADVICE = {
    "diverging": (
        "Learning rate too high / diverging: the cost became non-finite, so the run "
        "stopped where it last was finite. Lower the learning rate (try 10x smaller). Bias "
        "and variance are not assessed until the run trains."
    ),
    "not learning": (
        "Not learning: the train error sits at chance level although the cost stayed "
        "finite. Look at the cost curve: if it rose or jumped about, lower the learning rate "
        "(try 10x smaller); if it fell, but slowly, train longer or raise the learning rate; "
        "if it hardly moved, the units may be dead or stuck from the start: try other seeds "
        "or another initialisation (zeros cannot break symmetry), and check the labels. Bias "
        "and variance are not assessed until the run trains."
    ),
    "high bias": (
        "High avoidable bias: use a bigger or deeper network, train longer (more steps, a "
        "better optimiser or learning rate), or try another architecture. More data will "
        "not fix bias."
    ),
    "high variance": (
        "High variance: get more training data, regularise more (raise lambd, lower "
        "keep_prob, augment the data, stop early), or try another architecture."
    ),
    "data mismatch": (
        "Data mismatch: the dev set differs from the training distribution. Make training "
        "data more like dev/test (collect or synthesise similar examples) and analyse dev "
        "errors by hand."
    ),
    "fine": (
        "Bias and variance are both low. Confirm on the test set; with a big network, much "
        "data and good regularisation there is no bias/variance trade-off to make."
    ),
}


class Diagnosis(NamedTuple):
    """A bias/variance reading.

    ``verdict`` is one of ``"high bias"``, ``"high variance"``, ``"high bias and high
    variance"``, ``"data mismatch"`` (possibly combined with the others by ``" + "``),
    ``"fine"``, ``"learning rate too high / diverging"`` or ``"not learning (train error at
    chance level)"`` (alone: a run that did not train has no bias/variance reading);
    ``advice`` holds one recipe line per problem.

    ``avoidable_bias``, ``variance`` and ``data_mismatch`` are the measured gaps and may be
    negative (noise around 0); ``str()`` reports a negative gap as about 0 and ``notes``
    says why. ``bayes_error_given`` is False when Bayes error took its default of 0.
    """

    train_error: float
    dev_error: float
    bayes_error: float
    train_dev_error: float | None
    avoidable_bias: float
    variance: float
    data_mismatch: float | None
    problems: tuple[str, ...]
    verdict: str
    advice: tuple[str, ...]
    notes: tuple[str, ...] = ()
    bayes_error_given: bool = True
    bayes_note: str | None = None  # where the Bayes error came from, shown after it

    def __str__(self) -> str:
        bayes = f"assumed Bayes error {self.bayes_error:.2%}"
        if self.bayes_note:
            bayes += f" ({self.bayes_note})"
        elif not self.bayes_error_given:
            bayes += " (the default: pass bayes_error, your estimate of human-level error)"
        errors = f"train error {self.train_error:.2%}, dev error {self.dev_error:.2%}"
        if np.isnan(self.train_error):  # diverged at its first evaluation
            errors = "train and dev error not measured (no finite evaluation)"
        parts = [f"{errors}, {bayes}"]
        if {"diverging", "not learning"} & set(self.problems):
            parts.append("avoidable bias and variance: not assessed (the run did not train)")
        else:
            gaps = [("avoidable bias", self.avoidable_bias), ("variance", self.variance)]
            if self.data_mismatch is not None:
                gaps.append(("data mismatch", self.data_mismatch))
            parts.append(", ".join(f"{name} {_gap(value)}" for name, value in gaps))
        parts += [f"verdict: {self.verdict}", *(f"note: {n}" for n in self.notes), *self.advice]
        return "\n".join(parts)


def _gap(value: float) -> str:
    """A gap as a signed percentage; a negative one reads as about 0 (see the notes)."""
    return "about 0" if value < 0 else f"{value:+.2%}"


def _error_rate(name: str, value, *, below_one: bool = False) -> float:
    """``value`` checked as an error rate: in [0, 1], or [0, 1) where ``below_one``."""
    value = _checks.check_number(name, value)
    if not (0.0 <= value < 1.0 if below_one else 0.0 <= value <= 1.0):
        allowed = "[0, 1)" if below_one else "[0, 1]"
        why = (  # the Bayes error: the best possible classifier's
            ": a task that even the best possible classifier always gets wrong has nothing "
            "to diagnose"
            if value == 1.0
            else ""
        )
        raise ValueError(f"{name} must be an error rate in {allowed}, got {value!r}{why}")
    return value


def _flag(name: str, value) -> bool:
    is_bool = isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_
    if not is_bool or np.ndim(value) != 0:
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _errors_of(result: Any) -> tuple[float, float, bool]:
    """(train error, dev error, did it diverge) from the last evaluation of a TrainResult."""
    history = getattr(result, "history", None)
    if not all(hasattr(history, f) for f in History._fields):
        raise TypeError(
            "result must be a jaxhp.TrainResult (or pass train_error= and dev_error=), got "
            f"{type(result).__name__}"
        )
    train_accuracy = np.asarray(history.train_accuracy)
    if train_accuracy.ndim != 1:
        raise ValueError(
            f"result holds {train_accuracy.shape[0]} runs (a sweep); diagnose one member "
            "with results.diagnosis(member), or all with results.diagnose()"
        )
    if np.array_equal(history.train_cost, history.dev_cost) and np.array_equal(
        train_accuracy, history.dev_accuracy
    ):
        raise ValueError(
            "result's dev history repeats its train history at every evaluation (fit without "
            "dev data, or with the training set as dev): its variance cannot be read; fit "
            "with Data(train, dev), or pass train_error= and dev_error="
        )
    costs = np.concatenate([np.asarray(history.train_cost), np.asarray(history.dev_cost)])
    diverged = bool(np.asarray(getattr(result, "diverged", False))) or not np.isfinite(costs).all()
    dev_accuracy = np.asarray(history.dev_accuracy)
    row = returned_params_row(result)
    return 1.0 - float(train_accuracy[row]), 1.0 - float(dev_accuracy[row]), diverged


def _unmeasured(*errors) -> bool:
    """NaN error rates: a run that diverged before any finite evaluation (Python, NumPy or
    JAX scalars alike)."""
    return any(
        not isinstance(e, (str, bytes, bool))
        and np.ndim(e) == 0
        and np.issubdtype(np.asarray(e).dtype, np.floating)
        and np.isnan(e)
        for e in errors
    )


def check_reference(bayes_error, threshold) -> tuple[float | None, float]:
    """``bayes_error`` (None or an error rate in [0, 1)) and ``threshold`` (a gap between
    error rates, in (0, 1)), checked; :func:`diagnose` and :func:`jaxhp.learning_curve`
    (before it trains) call it."""
    bayes = None if bayes_error is None else _error_rate("bayes_error", bayes_error, below_one=True)
    threshold = _checks.check_number("threshold", threshold)
    if not 0 < threshold < 1:
        raise ValueError(
            f"threshold must be a gap between error rates in (0, 1), e.g. 0.02 for 2 points, "
            f"got {threshold!r}"
        )
    return bayes, threshold


def at_chance(train_error: float, chance_error: float, threshold: float = THRESHOLD) -> bool:
    """Whether ``train_error`` sits at chance level: within ``threshold`` of
    ``chance_error``, and within a tenth of it (with rare positives, chance 3%, a 1% train
    error has cut the errors by two thirds: that is learning)."""
    return not gap_exceeds(chance_error - train_error, min(threshold, chance_error / 10))


def above_chance(
    bayes_error: float, chance_error: float, threshold: float = THRESHOLD
) -> str | None:
    """Why ``bayes_error`` cannot be right, or None: above ``chance_error`` (always guessing
    the most frequent class) by more than ``threshold``, where the best possible classifier
    never does worse than guessing (a chance error measured on a sample may read a little
    low). The CLI refuses such a ``--bayes-error`` before training."""
    if not gap_exceeds(bayes_error - chance_error, threshold):
        return None
    return (
        f"bayes_error {bayes_error:.2%} is above the chance error {chance_error:.2%} (always "
        f"guessing the most frequent class) by more than {threshold:g}, but the best possible "
        "classifier never does worse than guessing"
    )


def returned_params_row(result: Any) -> int:
    """The history row of a :class:`jaxhp.TrainResult` measured on the params it returns:
    the best evaluation's when they are its best params (``restore_best``), else the last
    finite one (a diverged run returns the params before), else the last row (-1)."""
    history = result.history
    measured = np.flatnonzero(
        np.isfinite(np.asarray(history.train_accuracy))
        & np.isfinite(np.asarray(history.dev_accuracy))
    )
    last = int(measured[-1]) if measured.size else -1
    params, best = getattr(result, "params", None), getattr(result, "best_params", None)
    if params is None or best is None:
        return last
    (leaves, tree), (best_leaves, best_tree) = (jax.tree.flatten(t) for t in (params, best))
    if tree != best_tree or not all(map(np.array_equal, leaves, best_leaves)):
        return last
    rows = np.flatnonzero(np.asarray(history.step) == np.asarray(result.best_step))
    return int(rows[0]) if rows.size and rows[0] in measured else last


def majority_error(y) -> float:
    """The chance-level error rate: that of always predicting the most frequent class.

    Args:
      y: labels (m,) (class ids or 0/1) or (m, k) one-hot.

    Returns:
      ``1 − (count of the most frequent class) / m``; pass it as ``chance_error``.
    """
    labels = _checks.as_numeric("y", y)
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = np.argmax(labels, axis=1)
    labels = labels.reshape(-1)
    if labels.size == 0:
        raise ValueError("y has 0 labels")
    if not np.isfinite(labels).all():
        raise ValueError(f"y must be finite labels: {int(np.sum(~np.isfinite(labels)))} are not")
    _, counts = np.unique(labels, return_counts=True)
    return 1.0 - counts.max() / labels.size


def diagnose(
    result=None,
    *,
    train_error: float | None = None,
    dev_error: float | None = None,
    bayes_error: float | None = None,
    train_dev_error: float | None = None,
    threshold: float = THRESHOLD,
    chance_error: float | None = None,
    diverged: bool = False,
) -> Diagnosis:
    """Diagnose bias, variance and data mismatch from error rates.

    Before any bias/variance verdict, a run that did not train is called "learning rate
    too high / diverging" when ``diverged`` (or the result's flag, or a non-finite cost in
    its history), and "not learning" when its train error sits at ``chance_error``
    (:func:`at_chance`: within ``threshold`` of it, and within a tenth of it).

    Args:
      result: optional :class:`jaxhp.TrainResult`; the train/dev accuracies recorded for
        the params it returns give the error rates (1 − accuracy): the best evaluation's
        under ``restore_best``, else the last; its ``diverged`` flag and costs count.
      train_error, dev_error: error rates in [0, 1] (required without ``result``).
      bayes_error: the unavoidable error (≈ human error), in [0, 1); None assumes 0 and
        says so in the output.
      train_dev_error: error on a held-out slice of the training distribution; separates
        variance from data mismatch.
      threshold: a gap above this is "high", in (0, 1) (0.02: 2 points).
      chance_error: the error of guessing, e.g. 0.5 for balanced binary labels or
        :func:`majority_error` of the dev labels. None skips the chance check (then a
        "high bias" at a train error of about 50% or more gets a note that it may be
        guessing). The check is also skipped when ``bayes_error`` is itself within
        ``threshold`` of chance (a note then says that no classifier beats guessing on this
        data). A ``bayes_error`` above it by more than ``threshold`` is read as it, with a
        note.
      diverged: True when the run's cost exploded (e.g. ``TrainResult.diverged`` or
        ``SweepResults.diverged[member]``); its error rates may then be NaN (a run that
        diverged before any finite evaluation measured none).

    Returns:
      A :class:`Diagnosis`.

    Raises:
      TypeError: a result that is not a TrainResult, or rates that are not numbers.
      ValueError: rates outside [0, 1], a threshold outside (0, 1), both a result and
        rates, or missing rates.

    Warns:
      UserWarning: when ``bayes_error`` is above the train error (the model fits the
        training set better than the assumed unavoidable error: the estimate is too high,
        or the model memorises noise); avoidable bias then reads as about 0.

    Example:
      >>> diagnose(train_error=0.01, dev_error=0.11).verdict
      'high variance'
    """
    diverged = _flag("diverged", diverged)
    if result is not None:
        if train_error is not None or dev_error is not None:
            raise ValueError("pass either result or train_error/dev_error, not both")
        train_error, dev_error, result_diverged = _errors_of(result)
        diverged = diverged or result_diverged
    if train_error is None or dev_error is None:
        raise ValueError("diagnose needs train_error and dev_error, or a TrainResult")
    if diverged and _unmeasured(train_error, dev_error):
        train = dev = float("nan")  # diverged at its first evaluation: nothing was measured
    else:
        train = _error_rate("train_error", train_error)
        dev = _error_rate("dev_error", dev_error)
    bayes_given = bayes_error is not None
    chance = None if chance_error is None else _error_rate("chance_error", chance_error)
    # the CLI's --bayes-error allows the same [0, 1)
    bayes, threshold = check_reference(bayes_error, threshold)
    bayes = 0.0 if bayes is None else bayes
    capped = None if chance is None else above_chance(bayes, chance, threshold)
    if capped:  # e.g. the generator's Bayes error against a small dev set's chance error
        bayes = chance
    train_dev = None if train_dev_error is None else _error_rate("train_dev_error", train_dev_error)
    bias = train - bayes
    if train_dev is None:
        variance, mismatch = dev - train, None
    else:
        variance, mismatch = train_dev - train, dev - train_dev

    failure = _failure(diverged, train, bayes, chance, threshold)
    if failure is not None:
        problem, note = failure
        problems, notes = [problem], [note]
    else:
        problems = _problems(bias, variance, mismatch, threshold)
        notes = _negative_gap_notes(bias, variance, mismatch)
        if chance is None and "high bias" in problems and not gap_exceeds(0.5 - train, threshold):
            # guessing gets 50% on balanced binary labels: bias, or no learning at all?
            notes.append(
                f"train error {train:.2%} is as high as guessing on balanced binary labels: "
                "if it is at chance level, the run is not learning (a learning rate too high "
                "or too low, dead units) rather than biased; pass chance_error="
                "majority_error(y_dev) (from jaxhp.diagnose import majority_error) to tell"
            )
        if capped:
            notes.append(f"{capped}: read as {chance:.2%}")
        elif bayes_given and chance is not None and not gap_exceeds(chance - bayes, threshold):
            notes.append(
                f"the Bayes error {bayes:.2%} is at chance level ({chance:.2%}): no classifier "
                "does better than guessing on this data, so no cure brings the dev error "
                "below chance"
            )
        if bias < -_BELOW_PRINT:
            _warn.warn(
                f"bayes_error {bayes:.2%} is above train_error {train:.2%}: either the Bayes "
                "estimate is too high or the model memorises noise; avoidable bias reads as 0"
            )
    return Diagnosis(
        train,
        dev,
        bayes,
        train_dev,
        bias,
        variance,
        mismatch,
        tuple(problems),
        _verdict(problems),
        tuple(ADVICE[p] for p in problems) or (ADVICE["fine"],),
        tuple(notes),
        bayes_given,
    )


def _failure(diverged: bool, train: float, bayes: float, chance, threshold: float):
    """(problem, note) when the run did not train, else None: it diverged, or its train
    error is at chance level while the task itself is not (Bayes error below chance)."""
    if diverged and np.isnan(train):
        return "diverging", (
            "the run diverged before its first evaluation, so nothing was measured; if it "
            "does so at any learning rate, its cost may be non-finite from the start: "
            "jaxhp.train.finite_at_start(key, hparams, data, config) tells, and then the "
            "model's init or apply, or the data, are the cause"
        )
    if diverged:
        return "diverging", "the run diverged (its cost became non-finite)"
    near_chance = chance is not None and at_chance(train, chance, threshold)
    if near_chance and gap_exceeds(chance - bayes, threshold):
        return "not learning", f"train error {train:.2%} is at chance level ({chance:.2%})"
    return None


def _problems(bias: float, variance: float, mismatch: float | None, threshold: float) -> list:
    problems = []
    if gap_exceeds(bias, threshold):
        problems.append("high bias")
    if gap_exceeds(variance, threshold):
        problems.append("high variance")
    if mismatch is not None and gap_exceeds(mismatch, threshold):
        problems.append("data mismatch")
    return problems


def _verdict(problems: list) -> str:
    if problems == ["diverging"]:
        return DIVERGING
    if problems == ["not learning"]:
        return NOT_LEARNING
    if problems[:2] == ["high bias", "high variance"]:
        return " + ".join(["high bias and high variance", *problems[2:]])
    return " + ".join(problems) or "fine"


def _negative_gap_notes(bias: float, variance: float, mismatch: float | None) -> list[str]:
    """Why a gap that cannot truly be negative was measured below 0, and read as about 0."""
    notes = []
    tiny = _BELOW_PRINT
    if bias < -tiny:
        notes.append(
            f"train error is {-bias:.2%} below the assumed Bayes error: avoidable bias read "
            "as 0 (sampling noise of a small set, a Bayes error set too high, or a model that "
            "memorises noise)"
        )
    if variance < -tiny:
        held_out = "dev" if mismatch is None else "train-dev"
        notes.append(
            f"{held_out} error is {-variance:.2%} below train error: variance read as 0 "
            "(sampling noise of a small set)"
        )
    if mismatch is not None and mismatch < -tiny:
        notes.append(f"dev error is {-mismatch:.2%} below train-dev error: data mismatch read as 0")
    return notes
