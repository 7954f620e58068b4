"""Data sets: built-in generators and files, as X (n, d) and Y (n, k) float64 (public home).

The code lives in the maths layer, :mod:`gdsearch.model.datasets`.
"""

from __future__ import annotations

from gdsearch.model.datasets import *  # noqa: F403
from gdsearch.model.datasets import __all__ as __all__
