"""Jobs given as Python mappings: a job file's tables as dicts, checked as the file would be.

:func:`job_from_dict` writes the mapping as TOML text and reads that text with
:func:`gdsearch.job.spec.parse_job`, so a mapping meets every rule of a job file and a mistake
gets the same message, naming the key and the value. The text is the job's ``source``: the
results keep it as their job copy (``job.toml``), and a report reads the job again from it.

TOML holds strings, integers, floats, booleans, dates and times, arrays and tables. A mapping
may give arrays as lists or tuples, and numbers as numpy scalars or arrays (a notebook's
``np.geomspace(1e-3, 1e-1, 13)``); anything else (None, a set, an object) is refused where it
stands, before any text is written.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from gdsearch.errors import JobError, shown
from gdsearch.job.limits import MAX_JOB_BYTES
from gdsearch.job.spec import JobSpec, load_job, parse_job

SOURCE = "<dict>"
"""How messages name a job given as a mapping (a job file is named by its path); a data file's
relative ``path`` is taken from the current directory."""
SCALARS = (str, int, float, bool, datetime.date, datetime.time)
"""The values TOML holds besides arrays and tables (``datetime`` is a ``date``)."""


def job_from_dict(mapping: Mapping[str, Any]) -> JobSpec:
    """Check a job given as a mapping of the job file's tables.

    The mapping has the tables and keys of a TOML job file (docs/jobs.md)::

        job = gdsearch.job_from_dict({
            "job": {"name": "sine-lr", "seed": 0},
            "data": {"dataset": "sine"},
            "train": {"epochs": 2000},
            "search": {"lr": {"log": [1e-3, 1e-1], "num": 13}, "init": ["normal"]},
        })

    Args:
        mapping: ``{"job": {...}, "data": {...}, "model": {...}, "train": {...},
            "search": {...}}``; tables and keys as in a job file.

    Returns:
        The checked :class:`JobSpec`; its ``source`` is the mapping written as TOML.

    Raises:
        JobError: a value TOML cannot hold, or a rule of job files broken; the message names
            the key and the value, as for a job file.
    """
    if not isinstance(mapping, Mapping):
        raise JobError(f"{SOURCE}: a job is a mapping of tables, but got {shown(mapping)}")
    try:
        document = _plain(mapping, ())
    except RecursionError:
        raise JobError(f"{SOURCE}: nested too deeply (or holds itself)") from None
    try:
        text = tomli_w.dumps(document)
    except RecursionError:
        raise JobError(f"{SOURCE}: nested too deeply") from None
    if len(text.encode("utf-8")) > MAX_JOB_BYTES:
        raise JobError(
            f"{SOURCE}: more than {MAX_JOB_BYTES:,} bytes as TOML, the most a job file may have"
        )
    return parse_job(text, SOURCE)


def read_job(job: JobSpec | Mapping[str, Any] | str | Path) -> JobSpec:
    """A job as :func:`gdsearch.run_search` takes it: checked already, a mapping of tables
    (:func:`job_from_dict`), or the path of a job file (:func:`gdsearch.job.spec.load_job`)."""
    if isinstance(job, JobSpec):
        return job
    if isinstance(job, Mapping):
        return job_from_dict(job)
    return load_job(job)


def _plain(value: Any, where: tuple[str | int, ...]) -> Any:
    """The value with mappings as dicts, arrays as lists and numpy numbers as Python's; a value
    TOML cannot hold is refused, naming where it is."""
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise JobError(
                    f"{SOURCE}: {_where(where)}: keys must be strings, but got {shown(key)}"
                )
        return {key: _plain(item, (*where, key)) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(item, (*where, index)) for index, item in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, SCALARS):
        raise JobError(
            f"{SOURCE}: {_where(where)}: TOML cannot hold {shown(value)} "
            f"(a {type(value).__name__})"
        )
    return value


def _where(path: tuple[str | int, ...]) -> str:
    """``("search", "lr", "log", 1)`` → ``[search] lr.log[1]``, as a job file's messages say."""
    if not path:
        return "the job"
    head, rest = f"[{path[0]}]", ""
    for part in path[1:]:
        rest += f"[{part}]" if isinstance(part, int) else f"{'.' if rest else ''}{part}"
    return f"{head} {rest}" if rest else head
