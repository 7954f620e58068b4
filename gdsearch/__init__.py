"""gdsearch: how gradient descent behaves under each learning rate, init and architecture.

Fans a grid (or sample) of small numpy MLP trainings out over Ray and stores every epoch's sum
of squared errors as Parquet tables that load straight into pandas.

The package is cut by layer, each layer importing only from those below it:

- the maths, four packages: ``data`` (data sets and the held-out split), ``mlp`` (the network,
  its training, the compiled kernel, the update rules, the numerics, the sharpness meter),
  ``stability`` (predicted limits, the edge of stability) and ``analysis`` (how each learning
  rate converged);
- ``job``: job files, trials and their training configs;
- ``results``: the Parquet store, its lock, manifest and repair;
- ``search``: planning, the executor loop and its policies, Ray, the driver, the Jobs client;
- ``report``: figures, documents, the interactive report and the live view;

and ``cli`` on top. The public names below load on first use, so that a Ray worker importing
one module of the package does not pay for the driver's imports.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"  # pyproject.toml reads it here, and a copy shipped to a cluster has it

if sys.version_info < (3, 10):  # noqa: UP036 - a cluster node's Python, where gdsearch is shipped
    raise SystemExit("gdsearch needs Python 3.10 or later; this is " + sys.version.split()[0])

from gdsearch import _compat

_compat.install()  # gdsearch.model.* imports as before, with one warning

if TYPE_CHECKING:
    from gdsearch.errors import GdsearchError
    from gdsearch.job.mapping import job_from_dict
    from gdsearch.job.spec import JobSpec, load_job
    from gdsearch.mlp.config import TrainConfig
    from gdsearch.mlp.stopping import Status
    from gdsearch.results.loading import load_results, open_results
    from gdsearch.results.repair import RepairReport, repair_results
    from gdsearch.results.resultset import Results, ResultSet
    from gdsearch.search.driver import RunSummary, run_search

_HOMES = {
    "GdsearchError": "gdsearch.errors",
    "JobSpec": "gdsearch.job.spec",
    "RepairReport": "gdsearch.results.repair",
    "ResultSet": "gdsearch.results.resultset",
    "Results": "gdsearch.results.resultset",
    "RunSummary": "gdsearch.search.driver",
    "Status": "gdsearch.mlp.stopping",
    "TrainConfig": "gdsearch.mlp.config",
    "job_from_dict": "gdsearch.job.mapping",
    "load_job": "gdsearch.job.spec",
    "load_results": "gdsearch.results.loading",
    "open_results": "gdsearch.results.loading",
    "repair_results": "gdsearch.results.repair",
    "run_search": "gdsearch.search.driver",
}

__all__ = [
    "GdsearchError",
    "JobSpec",
    "RepairReport",
    "ResultSet",
    "Results",
    "RunSummary",
    "Status",
    "TrainConfig",
    "__version__",
    "job_from_dict",
    "load_job",
    "load_results",
    "open_results",
    "repair_results",
    "run_search",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'gdsearch' has no attribute {name!r}")
