"""Gradient checking: centred finite differences per leaf, with kinks, the working
precision and a Taylor-remainder second opinion (see :mod:`jaxhp.gradcheck._check`)."""

from jaxhp.gradcheck._check import (
    BANDS,
    CHECKS,
    DEFAULT_MEMORY_BUDGET,
    MODES,
    OPTIONS,
    grad_check,
    locate,
    path_name,
    verdict,
)
from jaxhp.gradcheck._precision import Precision, precision_of
from jaxhp.gradcheck._report import GradCheckReport, Kink, LeafCheck

__all__ = [
    "BANDS",
    "CHECKS",
    "DEFAULT_MEMORY_BUDGET",
    "MODES",
    "OPTIONS",
    "GradCheckReport",
    "Kink",
    "LeafCheck",
    "Precision",
    "grad_check",
    "locate",
    "path_name",
    "precision_of",
    "verdict",
]
