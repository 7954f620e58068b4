"""A one-line progress bar for a search: trials done of total, diverged and failed, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Draws ``[#####-----] 128/256 trials  12 diverged  ETA 0:03`` on a terminal.

    On a terminal the line is redrawn in place at most ten times a second; elsewhere (a log
    file, CI) a line is printed at most every ``every_s`` seconds, and at the end.
    """

    def __init__(self, total: int, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.total = total
        self.done = 0
        self.diverged = 0
        self.failed = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = 0.1 if self.tty else every_s
        self.start = time.monotonic()
        self.last_drawn = -float("inf")

    def update(self, done: int, diverged: int, failed: int = 0) -> None:
        """Add ``done`` finished trials, ``diverged`` and ``failed`` of them, and redraw if due."""
        self.done += done
        self.diverged += diverged
        self.failed += failed
        now = time.monotonic()
        if now - self.last_drawn >= self.every_s or self.done >= self.total:
            self.last_drawn = now
            self._draw(now)

    def close(self) -> None:
        """Finish the line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """The text of the bar as it stands."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        fraction = self.done / self.total if self.total else 1.0
        filled = round(30 * fraction)
        if self.done and self.done < self.total:
            eta = _clock(elapsed * (self.total - self.done) / self.done)
        else:
            eta = "--:--" if self.done < self.total else _clock(elapsed)
        label = "ETA" if self.done < self.total else "took"
        failed = f"{self.failed} failed  " if self.failed else ""
        return (
            f"[{'#' * filled}{'-' * (30 - filled)}] {self.done}/{self.total} trials  "
            f"{self.diverged} diverged  {failed}{label} {eta}"
        )

    def _draw(self, now: float) -> None:
        if self.tty:
            self.stream.write("\r" + self.line(now))
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
