"""gdsearch: how gradient descent behaves under each learning rate, init and architecture.

Fans a grid (or sample) of small numpy MLP trainings out over Ray and stores every epoch's sum
of squared errors as Parquet tables that load straight into pandas.

The public names load on first use, so that a Ray worker importing one module of the package
does not pay for the driver's imports.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("gdsearch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from gdsearch.driver import RunSummary, run_search
    from gdsearch.errors import GdsearchError
    from gdsearch.repair import RepairReport, repair_results
    from gdsearch.spec import JobSpec, load_job
    from gdsearch.store import Results, load_results

_HOMES = {
    "GdsearchError": "gdsearch.errors",
    "JobSpec": "gdsearch.spec",
    "RepairReport": "gdsearch.repair",
    "Results": "gdsearch.store",
    "RunSummary": "gdsearch.driver",
    "load_job": "gdsearch.spec",
    "load_results": "gdsearch.store",
    "repair_results": "gdsearch.repair",
    "run_search": "gdsearch.driver",
}

__all__ = [
    "GdsearchError",
    "JobSpec",
    "RepairReport",
    "Results",
    "RunSummary",
    "__version__",
    "load_job",
    "load_results",
    "repair_results",
    "run_search",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'gdsearch' has no attribute {name!r}")
