"""Stability theory: the largest learning rate gradient descent survives (public home).

The code lives in the maths layer, :mod:`gdsearch.model.stability`.
"""

from __future__ import annotations

from gdsearch.model.stability import *  # noqa: F403
from gdsearch.model.stability import __all__ as __all__
