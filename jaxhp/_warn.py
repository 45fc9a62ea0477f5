"""jaxhp's warnings, attributed to the user's line: the first frame outside jaxhp and JAX
(JAX's tracing runs jaxhp's code when a user jits ``fit``), however deep the call that
warns. Python 3.12's ``skip_file_prefixes`` does the same; this works on 3.10 too."""

from __future__ import annotations

import os
import sys
import warnings

import jax

_LIBRARIES = tuple(
    os.path.dirname(os.path.abspath(module_file)) + os.sep
    for module_file in (__file__, jax.__file__)  # jaxhp/_warn.py and jax/__init__.py
)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` at the first caller outside jaxhp and JAX."""
    frame, level = sys._getframe(1), 2  # level 2: the caller of warn()
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARIES):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
