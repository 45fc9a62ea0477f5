"""Flax modules (linen and NNX) as :class:`jaxhp.models.Model` pairs.

The contract: the module's ``__call__`` takes the batch ``x`` (m, ...) and, optionally, the
keywords ``key`` and ``hparams`` that ``Model.apply`` receives. ``key`` is a PRNG key while
training and None when evaluating; ``hparams`` is the member's :class:`jaxhp.HParams`. Dropout
reads its keep probability from the hparams and its randomness from the key::

    class Net(nn.Module):  # linen
        @nn.compact
        def __call__(self, x, *, key=None, hparams=None):
            h = nn.relu(nn.Dense(32)(x))
            if key is not None:
                h = jaxhp.dropout(key, h, hparams.keep_prob)
            return nn.Dense(10)(h)

A second dropout in the same call uses ``jax.random.fold_in(key, 1)``. linen's
``nn.Dropout`` and NNX's ``nnx.Dropout`` take a static rate, so a swept keep_prob cannot
reach them; ``run_sweep`` warns when a swept keep_prob axis does nothing. linen's
``nn.Dropout(rate)(h, deterministic=key is None)`` still works: while training, ``apply``
hands the module ``rngs={"dropout": key}``.
Params are the module's ``"params"`` collection (linen) or its ``nnx.Param`` state (NNX):
float arrays only, a pytree that ``jax.grad`` and ``vmap`` take as it is.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxhp import _warn
from jaxhp.models._adapter import build, call_keywords, check_library, import_extra, is_factory
from jaxhp.models._model import Model


def from_flax(module: Any, sample_x: Any = None) -> Model:
    """A Flax linen or NNX module as a :class:`Model`.

    Args:
      module: a ``flax.linen.Module``; an ``nnx.Module``, whose current params
        ``init`` returns for every key; or a function ``key -> nnx.Module`` (e.g.
        ``lambda key: Net(rngs=nnx.Rngs(key))``), so each seed gets its own init.
      sample_x: for linen, a batch of inputs that ``module.init`` traces (its first row is
        used); ignored for NNX.

    Returns:
      A :class:`Model`. linen's ``init`` calls the module with ``key=None`` and the default
      ``HParams()``.

    Raises:
      ImportError: flax is not installed (``pip install 'jaxhp[flax]'``).
      TypeError: ``module`` is not a Flax module or a function returning an NNX module.
      ValueError: linen without ``sample_x``; a module with no params or with mutable
        state besides them (BatchNorm statistics), which a pure (init, apply) pair cannot
        carry.
    """
    check_library(module, "flax", "from_flax", "from_equinox(module)")
    linen = import_extra("flax.linen", "flax", "from_flax")
    nnx = import_extra("flax.nnx", "flax", "from_flax")
    if isinstance(module, linen.Module):
        return _from_linen(module, sample_x)
    if isinstance(module, nnx.Module) or is_factory(module, nnx.Module):
        return _from_nnx(module, nnx)
    raise TypeError(
        "from_flax takes a flax.linen.Module, an nnx.Module or a function key -> nnx.Module, "
        f"got {module!r}"
    )


def _from_linen(module, sample_x) -> Model:
    if sample_x is None:
        raise ValueError(
            f"from_flax needs sample_x for the linen module {type(module).__name__}: a batch of "
            "inputs like the training data, e.g. from_flax(module, x_train[:1])"
        )
    from jaxhp.records import HParams  # here: jaxhp.records imports jaxhp.models

    sample = jnp.asarray(sample_x)[:1]
    keywords = call_keywords(type(module).__call__)

    def variables(key):
        return module.init(key, sample, **keywords(None, HParams()))

    try:
        collections = jax.eval_shape(variables, jax.random.key(0))
    except (TypeError, ValueError) as err:
        if type(err) not in (TypeError, ValueError):  # JAX's own errors explain themselves
            raise
        said = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise type(err)(
            f"{said} (from_flax initialises {type(module).__name__} on sample_x, of shape "
            f"{tuple(sample.shape)} and dtype {sample.dtype.name}: give a batch like the "
            "training x, e.g. x_train[:1]; integer ids for an embedding)"
        ) from err
    if "params" not in collections:
        raise ValueError(f"the linen module {type(module).__name__} has no params to train")
    extra = sorted(set(collections) - {"params"})
    if extra:
        raise ValueError(
            f"the linen module {type(module).__name__} has variables {extra} besides 'params' "
            "(e.g. BatchNorm's batch_stats); from_flax supports modules whose only "
            "variables are params"
        )

    def init(key):
        return variables(key)["params"]

    def apply(params, x, *, key=None, hparams=None):
        rngs = None if key is None else {"dropout": key}  # for linen's own nn.Dropout
        return module.apply({"params": params}, x, rngs=rngs, **keywords(key, hparams))

    return Model(init=init, apply=apply)


def _from_nnx(module, nnx) -> Model:
    factory = module if is_factory(module, nnx.Module) else None
    template = (
        module
        if factory is None
        else build(factory, "from_flax", "lambda key: Net(..., rngs=nnx.Rngs(key))")
    )
    if not isinstance(template, nnx.Module):
        raise TypeError(
            f"from_flax's function must return an nnx.Module for a key, got {template!r}"
        )
    name = type(template).__name__
    graphdef, params, rngs, other = nnx.split(template, nnx.Param, nnx.RngState, ...)
    if not jax.tree.leaves(params):
        raise ValueError(f"the NNX module {name} has no nnx.Param to train")
    if jax.tree.leaves(other):
        raise ValueError(
            f"the NNX module {name} has state besides nnx.Param and rngs (e.g. BatchNorm "
            "statistics); from_flax supports modules whose only variables are params"
        )
    if jax.tree.leaves(rngs):
        _warn.warn(
            f"the NNX module {name} holds nnx.Rngs (e.g. in nnx.Dropout): every call starts "
            "that stream afresh, so its masks repeat at every step and ignore a swept "
            "keep_prob; use jaxhp.dropout(key, x, hparams.keep_prob) with the key __call__ "
            "receives"
        )
    keywords = call_keywords(type(template).__call__)

    def init(key):
        if factory is None:
            return params
        return nnx.split(factory(key), nnx.Param, ...)[1]

    init.ignores_key = factory is None  # a module instance: one init for every seed

    def apply(params, x, *, key=None, hparams=None):
        # A trace-local copy of the rng state: NNX refuses to update state from outside.
        net = nnx.merge(graphdef, params, jax.tree.map(jnp.copy, rngs), other)
        return net(x, **keywords(key, hparams))

    return Model(init=init, apply=apply)
