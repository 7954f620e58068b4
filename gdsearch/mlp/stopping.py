"""How a trial in training stops: its status, the codes of its state, and the patience rule.

Both the numpy loop (:mod:`gdsearch.mlp.population`) and the compiled kernel
(:mod:`gdsearch.mlp.kernel`) read them from here.
"""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """A trial's status, as the trials table stores it (its value, a plain string).

    A ``str`` subclass: ``trials["status"] == Status.DIVERGED`` selects the diverged trials.
    """

    RUNNING = "running"
    """Still training (a population's state, never stored)."""
    OK = "ok"
    """Trained every epoch."""
    DIVERGED = "diverged"
    """Stopped by the divergence limit: its SSE broke ``divergence_factor`` × the first one."""
    PLATEAUED = "plateaued"
    """Stopped by the patience rule."""
    PRUNED = "pruned"
    """Stopped by a scheduler at a rung."""
    FAILED = "failed"
    """Its work unit raised an error; the history up to then, if any, is kept."""

    def __str__(self) -> str:
        return self.value


STATUS_CODES = (Status.RUNNING, Status.OK, Status.DIVERGED, Status.PLATEAUED, Status.PRUNED)
"""A trial's state in a population, by code (the kernel keeps codes, not strings)."""
RUNNING, OK, DIVERGED, PLATEAUED, PRUNED = range(len(STATUS_CODES))
PATIENCE_SPIKE = 0.1
"""A rise of the SSE above (1 + this) × the patience rule's reference restarts the rule there:
at the edge of stability the loss spikes and recovers, which is not a plateau."""
