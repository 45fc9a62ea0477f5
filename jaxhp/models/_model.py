"""The model interface: a pair of pure functions, as in stax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Model(NamedTuple):
    """A model as two pure functions.

    Attributes:
      init: ``init(key) -> params``, any pytree of arrays.
      apply: ``apply(params, x, *, key, hparams) -> logits`` of shape (m, n_out). ``key`` is a
        PRNG key during training and None at evaluation (dropout off); ``hparams`` is the
        member's :class:`jaxhp.HParams` (read names by attribute, e.g. ``hparams.keep_prob``).
        A row's logits must depend on that row alone (no batch statistics): an evaluation
        applies the model once to the train and dev rows together.
    """

    init: Callable[[Any], Any]
    apply: Callable[..., Any]
