"""Bias/variance diagnosis and the course's basic recipe (COURSE.md points 3 and 4).

With Bayes error as the reference: avoidable bias = train error − Bayes error; variance =
dev error − train error, or train-dev error − train error when a train-dev set (held out
from the training distribution) is given, in which case data mismatch = dev − train-dev.
Each gap counts as "high" when it exceeds ``threshold`` (absolute error rate, default 0.02:
the course's 15%/16% case is high bias only, 0.5%/1% is fine).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

ADVICE = {
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
    """A bias/variance reading. ``verdict`` is one of ``"high bias"``, ``"high variance"``,
    ``"high bias and high variance"``, ``"data mismatch"`` (possibly combined with the
    others by ``" + "``) or ``"fine"``; ``advice`` holds one recipe line per problem."""

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

    def __str__(self) -> str:
        parts = [
            f"train error {self.train_error:.2%}, dev error {self.dev_error:.2%}, "
            f"Bayes error {self.bayes_error:.2%}",
            f"avoidable bias {self.avoidable_bias:+.2%}, variance {self.variance:+.2%}"
            + ("" if self.data_mismatch is None else f", data mismatch {self.data_mismatch:+.2%}"),
            f"verdict: {self.verdict}",
            *self.advice,
        ]
        return "\n".join(parts)


def _error_rate(name: str, value) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be an error rate in [0, 1], got {value!r}")
    return value


def diagnose(
    result=None,
    *,
    train_error: float | None = None,
    dev_error: float | None = None,
    bayes_error: float = 0.0,
    train_dev_error: float | None = None,
    threshold: float = 0.02,
) -> Diagnosis:
    """Diagnose bias, variance and data mismatch from error rates.

    Args:
      result: optional :class:`jaxhp.TrainResult`; its last recorded train/dev accuracies
        give the error rates (1 − accuracy).
      train_error, dev_error: error rates in [0, 1] (required without ``result``).
      bayes_error: the unavoidable error (≈ human error), in [0, 1].
      train_dev_error: error on a held-out slice of the training distribution; separates
        variance from data mismatch.
      threshold: a gap above this is "high".

    Returns:
      A :class:`Diagnosis`.

    Example:
      >>> diagnose(train_error=0.01, dev_error=0.11).verdict
      'high variance'
    """
    if result is not None:
        history = result.history
        train_error = 1.0 - float(np.asarray(history.train_accuracy)[-1])
        dev_error = 1.0 - float(np.asarray(history.dev_accuracy)[-1])
    if train_error is None or dev_error is None:
        raise ValueError("diagnose needs train_error and dev_error, or a TrainResult")
    train = _error_rate("train_error", train_error)
    dev = _error_rate("dev_error", dev_error)
    bayes = _error_rate("bayes_error", bayes_error)
    if not (threshold > 0):
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    bias = train - bayes
    if train_dev_error is None:
        variance, mismatch = dev - train, None
    else:
        train_dev = _error_rate("train_dev_error", train_dev_error)
        variance, mismatch = train_dev - train, dev - train_dev
    problems = []
    if bias > threshold:
        problems.append("high bias")
    if variance > threshold:
        problems.append("high variance")
    if mismatch is not None and mismatch > threshold:
        problems.append("data mismatch")
    if problems[:2] == ["high bias", "high variance"]:
        verdict = " + ".join(["high bias and high variance", *problems[2:]])
    else:
        verdict = " + ".join(problems) or "fine"
    advice = tuple(ADVICE[p] for p in problems) or (ADVICE["fine"],)
    return Diagnosis(
        train,
        dev,
        bayes,
        None if train_dev_error is None else train_dev,
        bias,
        variance,
        mismatch,
        tuple(problems),
        verdict,
        advice,
    )
