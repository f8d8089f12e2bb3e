"""Hyperbolic geometry (the Poincaré ball) as pure functions; see :mod:`.poincare`."""

from . import poincare

__all__ = ["poincare"]
