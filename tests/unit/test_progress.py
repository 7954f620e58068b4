"""The progress bar: what it says as a search goes, on a stream that is not a terminal."""

from __future__ import annotations

import io

from gdsearch.search.progress import Progress


def _frames(stream: io.StringIO) -> list[str]:
    return [frame.strip() for frame in stream.getvalue().split("\r") if frame.strip()]


def test_the_bar_counts_trials_and_says_how_many_diverged_and_failed() -> None:
    stream = io.StringIO()
    progress = Progress(13, stream)
    progress.update(5, 1)
    progress.update(8, 2, 1)
    progress.close()
    frames = _frames(stream)
    assert frames[0].startswith("0%") and "0/13 trials, 0 diverged [" in frames[0]
    assert "13/13 trials, 3 diverged, 1 failed [" in frames[-1]
    assert frames[-1].startswith("100%")
    assert (progress.done, progress.diverged, progress.failed) == (13, 3, 1)


def test_a_log_gets_a_line_only_every_few_seconds_and_at_the_end() -> None:
    stream = io.StringIO()
    progress = Progress(100, stream)
    for _ in range(100):
        progress.update(1, 0)
    progress.close()
    frames = _frames(stream)
    assert len(frames) == 2  # the start and the end, not 100 lines
    assert "100/100 trials, 0 diverged" in frames[-1]


def test_a_total_that_grows_is_shown_at_once() -> None:
    """Bracket mode plans its rounds as it goes; the loop sets the total each time."""
    stream = io.StringIO()
    progress = Progress(10, stream)
    progress.update(10, 2)
    progress.total = 16
    assert progress.total == 16
    assert "10/16 trials, 2 diverged" in _frames(stream)[-1]
    assert "10/16 trials" in progress.line()
    progress.update(6, 0)
    progress.close()
    assert "16/16 trials, 2 diverged" in _frames(stream)[-1]
