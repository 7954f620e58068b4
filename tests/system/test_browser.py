"""The interactive report and the live view in a real browser: Debian's chromium, driven by
Playwright. No console errors, no request beyond this machine, a trial's lr on hover, and a live
trial count that rises while a run writes, survives a killed run and ends when it resumes."""

from __future__ import annotations

import itertools
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import JOBS, Cli

playwright = pytest.importorskip("playwright.sync_api")
pytest.importorskip("plotly")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)"
)

LIVE_JOB = """
[job]
name = "live"
seed = 3

[data]
dataset = "moons"
n_samples = 200

[train]
epochs = 40000

[search]
lr = { log = [1e-3, 3.0], num = 8 }
hidden = [[2], [3], [4], [5], [6], [7], [8], [9]]
seed = [0, 1]
"""
"""Eight layer shapes make eight work units in the process, each about a second in the compiled
kernel: parts land one at a time while the page watches."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Watched:
    """A page and what it did: console errors, and every URL it asked for."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1200, "height": 1600})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else 0)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def foreign(self) -> list[str]:
        """Requests that left this machine."""
        return [
            u
            for u in self.requests
            if not (
                u.startswith(("file:", "data:", "blob:"))
                or urlparse(u).hostname in ("127.0.0.1", "localhost")
            )
        ]

    def hover_text(self, chart: str, point: int) -> str:
        dots = self.page.locator(f"{chart} .scatterlayer .trace .points path")
        box = dots.nth(point).bounding_box()
        assert box is not None
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        self.page.wait_for_selector(f"{chart} .hoverlayer .hovertext")
        return str(self.page.locator(f"{chart} .hoverlayer").text_content())


def test_the_interactive_report_hovers_zooms_toggles_and_fetches_nothing(
    cli: Cli, browser: Any, tmp_path: Path
) -> None:
    ran = cli.run(
        ["run", str(JOBS / "seed_sine.toml"), "--results-dir", str(tmp_path), "--no-progress"]
    )
    assert ran.returncode == 0, ran.stderr
    made = cli.run(["report", str(tmp_path / "seed-sine"), "--interactive"])
    assert made.returncode == 0, made.stderr
    report = Path(made.stdout.strip())
    assert report.name == "report-interactive.html" and report.stat().st_size > 1_000_000
    watched = Watched(browser)
    watched.page.goto(report.as_uri())
    watched.page.wait_for_selector("#chart-1 .scatterlayer .trace .points path")
    text = watched.hover_text("#chart-1", 0)  # the U-curve's first trial
    assert "lr 0.001" in text and "init normal" in text and "seed 0" in text and "status" in text
    assert watched.page.evaluate("document.getElementById('chart-1').layout.yaxis.type") == "log"
    watched.page.get_by_text("y linear").last.click()
    watched.page.wait_for_function(
        "document.getElementById('chart-1').layout.yaxis.type === 'linear'"
    )
    assert watched.page.locator("#chart-2 .parcoords").count() == 1  # parallel coordinates
    assert watched.errors == [] and watched.foreign() == []


def _count(watched: Watched) -> int:
    return int(watched.page.locator("#count").get_attribute("data-done") or 0)


def test_the_live_view_follows_a_run_that_writes_is_killed_and_resumes(
    cli: Cli, browser: Any, tmp_path: Path
) -> None:
    job = tmp_path / "live.toml"
    job.write_text(LIVE_JOB, encoding="utf-8")
    results = tmp_path / "results" / "live"
    server = cli.start(["serve", str(results), "--port", "0"])
    run: subprocess.Popen[str] | None = None
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split(" is at ")[1].split()[0]
        assert urlparse(url).hostname == "127.0.0.1"
        watched = Watched(browser)
        watched.page.goto(url)
        watched.page.wait_for_function("document.getElementById('count').textContent.length > 0")
        assert _count(watched) == 0  # nothing stored yet, and the page says so
        run = cli.start(
            [
                "run",
                str(job),
                "--results-dir",
                str(results.parent),
                "--no-progress",
                "--executor",
                "local",
            ]
        )
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not seen or seen[-1] < 48):
            seen.append(_count(watched))
            time.sleep(0.25)
        assert 0 < seen[-1] < 128, seen  # some parts landed, the run still goes on
        run.send_signal(signal.SIGKILL)  # killed mid-run
        run.wait()
        killed_at = _count(watched)
        time.sleep(2.5)  # the page keeps answering, and keeps what is stored
        assert _count(watched) >= killed_at
        assert watched.page.locator("#error").text_content() == ""
        run = cli.start(
            [
                "run",
                str(job),
                "--results-dir",
                str(results.parent),
                "--no-progress",
                "--executor",
                "local",
            ]
        )
        assert run.wait(timeout=300) == 0
        watched.page.wait_for_function(
            "document.getElementById('count').dataset.done === '128'", timeout=30_000
        )
        watched.page.wait_for_function(
            "document.getElementById('count').textContent.includes('run complete')",
            timeout=30_000,
        )
        rising = [b for a, b in itertools.pairwise(seen) if b > a]
        assert rising, f"the count never rose while the run wrote: {seen}"
        watched.page.wait_for_selector("#ucurve .scatterlayer .trace .points path")
        assert "lr " in watched.hover_text("#ucurve", 0)
        assert watched.errors == [] and watched.foreign() == []
    finally:
        for process in (run, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
