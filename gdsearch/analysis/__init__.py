"""How each learning rate converged: metrics, per-lr summaries, the critical lr.

- :mod:`~gdsearch.analysis.convergence`: each trial's metrics and class, the per-lr
  convergence table, the critical learning rate and its bracket;
- :mod:`~gdsearch.analysis.comparison`: what a comparison group is;
- :mod:`~gdsearch.analysis.trajectory`: what a trial's own history says of it;
- :mod:`~gdsearch.analysis.histories`: histories read block by block, SSE curves over seeds;
- :mod:`~gdsearch.analysis.ranking`: the best rate, and ties within a tolerance.
"""

from __future__ import annotations

from gdsearch.analysis.convergence import (
    DEFAULT_TOLERANCE,
    GROUP,
    LATE_FRACTION,
    OSCILLATION_SHARE,
    PLATEAU_GAIN,
    RANK_BY,
    STOPPED_EARLY,
    TELLING,
    bracket,
    check_rank,
    converged_above,
    convergence_table,
    critical_lr,
    default_rank,
    holds_out,
    lr_summary,
    refine,
    sse_curves,
    trial_metrics,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "GROUP",
    "LATE_FRACTION",
    "OSCILLATION_SHARE",
    "PLATEAU_GAIN",
    "RANK_BY",
    "STOPPED_EARLY",
    "TELLING",
    "bracket",
    "check_rank",
    "converged_above",
    "convergence_table",
    "critical_lr",
    "default_rank",
    "holds_out",
    "lr_summary",
    "refine",
    "sse_curves",
    "trial_metrics",
]
