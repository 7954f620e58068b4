"""How each learning rate converged: metrics, per-lr summaries, the critical lr (public home).

The code lives in the maths layer, :mod:`gdsearch.model.analysis`.
"""

from __future__ import annotations

from gdsearch.model.analysis import *  # noqa: F403
from gdsearch.model.analysis import __all__ as __all__
