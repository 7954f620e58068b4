"""Shared fixtures: a real local Ray instance of this test run's own, small job files, and the
command line run as a user runs it.

The tests come in three tiers: ``tests/unit`` (no Ray, no process started; the maths, the job
format, the store and the reports, in under a minute), ``tests/integration`` (a local Ray, the
command line in processes of its own, an S3 server on loopback, notebooks, the docs' examples)
and ``tests/system`` (clusters of several nodes, browsers, processes killed mid-run).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
JOBS = REPO / "jobs"


class Cli:
    """``gdsearch ARGS`` as a user runs it: ``python -m gdsearch`` in a process of its own, in the
    repository, without the RAY_ADDRESS or GDSEARCH_ variables of the environment it runs from
    (``env`` adds to what is left, or replaces it whole with ``inherit=False``)."""

    def environment(
        self, env: Mapping[str, str] | None = None, inherit: bool = True
    ) -> dict[str, str]:
        """The environment a command runs in."""
        base = {
            k: v
            for k, v in (os.environ.items() if inherit else ())
            if not k.startswith(("RAY_ADDRESS", "GDSEARCH_"))
        }
        return {**base, **(env or {})}

    def run(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        inherit: bool = True,
        cwd: Path = REPO,
        timeout: float = 300,
        text: bool = True,
    ) -> subprocess.CompletedProcess[Any]:
        """Run a command to its end; its output captured (as bytes with ``text=False``)."""
        return subprocess.run(
            [sys.executable, "-m", "gdsearch", *args],
            env=self.environment(env, inherit),
            cwd=cwd,
            capture_output=True,
            text=text,
            timeout=timeout,
            check=False,
        )

    def start(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, *, cwd: Path = REPO
    ) -> subprocess.Popen[str]:
        """Start a command (``serve``, a run to be killed); its stdout piped as text."""
        return subprocess.Popen(
            [sys.executable, "-m", "gdsearch", *args],
            env=self.environment(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli() -> Cli:
    """The command line, run as a user runs it (:class:`Cli`)."""
    return Cli()


@pytest.fixture(scope="session")
def ray_temp_dir() -> Iterator[Path]:
    """A short temp dir of our own (Ray's socket paths must stay under ~100 characters)."""
    path = Path(tempfile.mkdtemp(prefix="gdsr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def local_ray(ray_temp_dir: Path) -> Iterator[None]:
    """Start a local Ray (2 CPUs, own temp dir, free ports) once; stop only that one."""
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(ray_temp_dir / "ray"),
        logging_level=logging.WARNING,
    )
    yield
    ray.shutdown()


SMALL_JOB = """
[job]
name = "small"
seed = 7

[data]
dataset = "moons"
n_samples = 60
noise = 0.2

[train]
epochs = 60

[search]
lr = [0.01, 0.1, 1.0, 40.0]
init = ["normal", "xavier"]
hidden = [[], [5]]
seed = [0, 1]
"""


@pytest.fixture
def small_job(tmp_path: Path) -> Path:
    """A 32-trial job that runs in a second, some of whose learning rates diverge."""
    path = tmp_path / "small.toml"
    path.write_text(SMALL_JOB)
    return path
