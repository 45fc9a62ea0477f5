"""Equinox modules as :class:`jaxhp.models.Model` pairs.

The contract: the module's ``__call__`` takes an input and, optionally, the keywords ``key``
and ``hparams`` that ``Model.apply`` receives. ``key`` is a PRNG key while training and None
when evaluating; ``hparams`` is the member's :class:`jaxhp.HParams`. By Equinox convention a
module maps one example (``per_example=True``): the adapter vmaps it over the batch and hands
each example its own key from ``jax.random.split(key, m)``, so masks differ across
examples. Dropout reads its keep probability from the hparams::

    class Net(eqx.Module):
        hidden: eqx.nn.Linear
        out: eqx.nn.Linear

        def __call__(self, x, *, key=None, hparams=None):
            h = jax.nn.relu(self.hidden(x))
            if key is not None:
                h = jaxhp.dropout(key, h, hparams.keep_prob)
            return self.out(h)

``eqx.nn.Dropout`` takes a static ``p``, so a swept keep_prob cannot reach it;
``run_sweep`` warns when a swept keep_prob axis does nothing. Params are
the module's float arrays (``eqx.partition(module, eqx.is_inexact_array)``), a pytree shaped
like the module; everything else stays fixed.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxhp.models._adapter import build, call_keywords, check_library, import_extra, is_factory
from jaxhp.models._model import Model


def from_equinox(module: Any, *, per_example: bool = True) -> Model:
    """An Equinox module as a :class:`Model`.

    Args:
      module: an ``eqx.Module``, whose current params ``init`` returns for every key; or a
        function ``key -> eqx.Module`` (e.g. ``lambda key: eqx.nn.MLP(64, 10, 32, 2,
        key=key)``), so each seed gets its own init.
      per_example: True when the module maps one example (Equinox's convention; the
        adapter vmaps it over the batch), False when it takes the whole batch (m, ...).
        jaxhp's images are NHWC, so one example is (H, W, C): an ``eqx.nn.Conv2d`` module
        transposes it to (C, H, W) first.

    Returns:
      A :class:`Model`.

    Raises:
      ImportError: equinox is not installed (``pip install 'jaxhp[equinox]'``).
      TypeError: ``module`` is neither an ``eqx.Module`` nor a function returning one.
      ValueError: the module has no float arrays to train, or holds state
        (``eqx.nn.StateIndex``: BatchNorm's running statistics).
    """
    check_library(module, "equinox", "from_equinox", "from_flax(module, sample_x)")
    eqx = import_extra("equinox", "equinox", "from_equinox")
    factory = module if is_factory(module, eqx.Module) else None
    template = (
        module
        if factory is None
        else build(factory, "from_equinox", "lambda key: Net(..., key=key)")
    )
    if not isinstance(template, eqx.Module):
        raise TypeError(
            f"from_equinox takes an eqx.Module or a function key -> eqx.Module, got {template!r}"
        )
    _check_stateless(eqx, template)
    params, static = eqx.partition(template, eqx.is_inexact_array)
    if not jax.tree.leaves(params):
        raise ValueError(f"the Equinox module {type(template).__name__} has no float arrays")
    keywords = call_keywords(type(template).__call__)
    takes_key = "key" in keywords(True, None)

    def init(key):
        if factory is None:
            return params
        return eqx.partition(factory(key), eqx.is_inexact_array)[0]

    init.ignores_key = factory is None  # a module instance: one init for every seed

    def apply(params, x, *, key=None, hparams=None):
        net = eqx.combine(params, static)
        if not per_example:
            try:
                return net(x, **keywords(key, hparams))
            except (TypeError, ValueError) as err:
                if not _runs_on(net, x, keywords(None, hparams), per_example=True):
                    raise
                raise _batching_hint(
                    err,
                    f"from_equinox(per_example=False) calls the module on the whole batch, of "
                    f"shape {tuple(x.shape)}; leave per_example=True (the default) for a module "
                    "that maps one example",
                ) from err
        try:
            if key is None or not takes_key:
                return jax.vmap(lambda example: net(example, **keywords(None, hparams)))(x)
            keys = jax.random.split(key, x.shape[0])
            return jax.vmap(lambda example, k: net(example, **keywords(k, hparams)))(x, keys)
        except (TypeError, ValueError) as err:
            if not _runs_on(net, x, keywords(None, hparams), per_example=False):
                raise  # not a batching mistake: the module's own error stands
            raise _batching_hint(
                err,
                f"from_equinox calls the module on one example at a time, of shape "
                f"{tuple(x.shape[1:])}; give per_example=False for a module that takes the "
                "whole batch",
            ) from err

    return Model(init=init, apply=apply)


def _runs_on(net, x, kwargs: dict, *, per_example: bool) -> bool:
    """Whether ``net`` runs on the batch ``x`` one example at a time (``per_example``) or
    whole: the other way round from how it was given, when it failed."""
    one = lambda batch: net(batch, **kwargs)  # noqa: E731
    try:
        jax.eval_shape(jax.vmap(one) if per_example else one, x)
    except Exception:  # noqa: BLE001 - any failure: not a module for that layout
        return False
    return True


def _batching_hint(err: Exception, hint: str) -> Exception:
    """The module's own first line, then how from_equinox called it and what to give."""
    said = str(err).splitlines()[0] if str(err) else type(err).__name__
    return (ValueError if isinstance(err, ValueError) else TypeError)(f"{said} ({hint})")


def _check_stateless(eqx, module) -> None:
    """A module with ``eqx.nn.State`` (BatchNorm, SpectralNorm) is called as
    ``module(x, state)`` and returns a new state, which a pure (init, apply) pair cannot
    carry: refuse it here rather than fail inside the first trace."""
    is_state = lambda leaf: isinstance(leaf, eqx.nn.StateIndex)  # noqa: E731
    if any(is_state(leaf) for leaf in jax.tree.leaves(module, is_leaf=is_state)):
        raise ValueError(
            f"the Equinox module {type(module).__name__} holds state (eqx.nn.StateIndex, e.g. "
            "BatchNorm's running statistics); from_equinox supports modules called as "
            "module(x) whose only arrays are parameters"
        )
