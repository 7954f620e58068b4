"""The unit tier: the maths, the job format, the store and the reports, with no Ray and no
process started (``pytest tests/unit``, under a minute). Every test here is held to that."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_process_and_no_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that starts a process or Ray: it belongs in tests/integration."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a unit test started a process; it belongs in tests/integration")

    def ray_up() -> bool:
        ray = sys.modules.get("ray")
        return ray is not None and ray.is_initialized()

    before = ray_up()  # a whole-suite run's integration tests may have started it
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    yield
    if ray_up() and not before:
        pytest.fail("a unit test started Ray; it belongs in tests/integration")
