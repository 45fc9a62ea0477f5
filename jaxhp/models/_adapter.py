"""What the Flax and Equinox adapters share: the calling contract and lazy imports.

A module joins a sweep by accepting, beside its input, the two keywords that
:class:`jaxhp.models.Model`'s ``apply`` receives: ``key`` (a PRNG key while training, None
when evaluating) and ``hparams`` (the member's :class:`jaxhp.HParams`). A module's call may
take either, both or neither; the adapters pass only what it accepts.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import jax


def import_extra(module: str, extra: str, caller: str):
    """Import ``module`` or raise an ImportError naming the jaxhp extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{caller} needs {module.split('.')[0]}: pip install 'jaxhp[{extra}]'"
        ) from err


def call_keywords(call: Callable) -> Callable[[Any, Any], dict]:
    """A function ``(key, hparams) -> kwargs`` giving ``call`` the keywords it accepts
    (both when it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(call).parameters
    except (TypeError, ValueError):  # a builtin or C callable: pass nothing it might refuse
        parameters = {}
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    takes_key = var_keyword or "key" in parameters
    takes_hparams = var_keyword or "hparams" in parameters

    def keywords(key, hparams) -> dict:
        kwargs = {}
        if takes_key:
            kwargs["key"] = key
        if takes_hparams:
            kwargs["hparams"] = hparams
        return kwargs

    return keywords


def check_library(obj: Any, expected: str, caller: str, instead: str) -> None:
    """A module of the other library (an Equinox module given to from_flax, or a Flax one
    to from_equinox) is named as such, not called as a factory."""
    for library, words in (("equinox", "an Equinox"), ("flax", "a Flax")):
        if library != expected and any(
            getattr(c, "__module__", "").split(".")[0] == library for c in type(obj).__mro__
        ):
            raise TypeError(
                f"{caller} got {words} module ({type(obj).__name__}): use jaxhp.models.{instead}"
            )


def is_factory(obj: Any, module_type: type) -> bool:
    """Whether ``obj`` is a function ``key -> module`` rather than a module."""
    return callable(obj) and not isinstance(obj, module_type)


def build(factory: Callable, caller: str, example: str) -> Any:
    """``factory(key)``; a factory that fails on a key is told how jaxhp calls it."""
    try:
        return factory(jax.random.key(0))
    except Exception as err:  # noqa: BLE001 - any failure: the call convention is the likely cause
        raise TypeError(
            f"{caller} calls its function with a PRNG key (jax.random.key) and expects a "
            f"module back; calling it failed with {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''} (write it as {example})"
        ) from err
