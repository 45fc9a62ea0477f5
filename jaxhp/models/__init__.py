"""Models as ``Model(init, apply)`` pairs of pure functions (see :class:`Model`)."""

from jaxhp.models._model import Model
from jaxhp.models.mlp import mlp

__all__ = ["Model", "mlp"]
