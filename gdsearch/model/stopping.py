"""How a trial in training stops: the codes of its state, and a constant of the patience rule.

Both the numpy loop (:mod:`gdsearch.model.population`) and the compiled kernel
(:mod:`gdsearch.model.kernel`) read them from here.
"""

from __future__ import annotations

STATUS_CODES = ("running", "ok", "diverged", "plateaued", "pruned")
"""A trial's state in a population, by code: still training; trained every epoch; stopped by
the divergence limit; stopped by the patience rule; stopped by a scheduler."""
RUNNING, OK, DIVERGED, PLATEAUED, PRUNED = range(len(STATUS_CODES))
PATIENCE_SPIKE = 0.1
"""A rise of the SSE above (1 + this) × the patience rule's reference restarts the rule there:
at the edge of stability the loss spikes and recovers, which is not a plateau."""
