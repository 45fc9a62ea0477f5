"""Models as ``(init, apply)`` pairs: built-in ones and adapters for Flax and Equinox."""

from jaxhp.models._model import Model
from jaxhp.models.cnn import cnn
from jaxhp.models.equinox import from_equinox
from jaxhp.models.flax import from_flax

__all__ = ["Model", "cnn", "from_equinox", "from_flax"]
