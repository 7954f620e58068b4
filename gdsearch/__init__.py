"""gdsearch: how gradient descent behaves under each learning rate, init and architecture.

Fans a grid (or sample) of small numpy MLP trainings out over Ray and stores every epoch's sum
of squared errors as Parquet tables that load straight into pandas.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gdsearch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from gdsearch.driver import RunSummary, run_search
from gdsearch.errors import GdsearchError
from gdsearch.spec import JobSpec, load_job
from gdsearch.store import Results, load_results

__all__ = [
    "GdsearchError",
    "JobSpec",
    "Results",
    "RunSummary",
    "__version__",
    "load_job",
    "load_results",
    "run_search",
]
