"""Models as ``Model(init, apply)`` pairs of pure functions: the course's MLP and CNN, and
adapters for Flax and Equinox modules (see :class:`Model`)."""

from jaxhp.models._model import Model
from jaxhp.models.cnn import cnn
from jaxhp.models.equinox import from_equinox
from jaxhp.models.flax import from_flax
from jaxhp.models.mlp import mlp

__all__ = ["Model", "cnn", "from_equinox", "from_flax", "mlp"]
