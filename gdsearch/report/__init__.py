"""The report layer: matplotlib figures, shown inline in a notebook or gathered into one
self-contained HTML or Markdown file.

``panels`` holds the shared plotting (group labels, the facet grid, each learning rate's line
style, figures made without pyplot), ``scales`` the axis scales chosen from the data,
``figures`` each figure (a function of a result set returning a Figure), ``landscapes`` the
loss-landscape figures of ``gdsearch landscape``'s tables, ``theory`` the
predicted limits set beside the measurements, and ``document`` the report and the comparison of
result sets. It reads result sets through pandas and never imports Ray.
"""

from __future__ import annotations

from gdsearch.report.document import FORMATS, build, compare, summary_table
from gdsearch.report.figures import (
    PATH_EPOCHS,
    figure_curves,
    figure_edge_ratio,
    figure_epochs_to_tolerance,
    figure_final_vs_lr,
    figure_linear,
    figure_sharpness,
)
from gdsearch.report.landscapes import (
    figure_landscape_lines,
    figure_landscape_paths,
    figure_sharpest,
)
from gdsearch.report.panels import FACET_COLUMNS
from gdsearch.report.theory import predicted_limits

__all__ = [
    "FACET_COLUMNS",
    "FORMATS",
    "PATH_EPOCHS",
    "build",
    "compare",
    "figure_curves",
    "figure_edge_ratio",
    "figure_epochs_to_tolerance",
    "figure_final_vs_lr",
    "figure_landscape_lines",
    "figure_landscape_paths",
    "figure_linear",
    "figure_sharpest",
    "figure_sharpness",
    "predicted_limits",
    "summary_table",
]
