"""Shared fixtures: a real local Ray instance of this test run's own, and small job files."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JOBS = REPO / "jobs"


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
