"""The progress of a search: trials done of total, how many diverged and failed, time left.

Drawn by ``tqdm.auto``: a widget in Jupyter (with ipywidgets installed), a bar redrawn in place
on a terminal. Where stderr is neither (a log file, CI), the bar is written at most every
``LOG_EVERY_S`` seconds and at the end, so a long run's log stays short. ``show_progress=False``
(``--no-progress``) draws nothing.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm.auto import tqdm

LOG_EVERY_S = 5.0
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} trials{postfix} [{elapsed}<{remaining}]"
"""``  23%|██▎       | 3/13 trials, 1 diverged [00:02<00:06]``: tqdm puts ", " before the
postfix."""


class Progress:
    """A search's progress bar; the executor loop moves it on as parts are stored.

    Args:
        total: the trials planned so far (settable: bracket mode plans rounds as it goes).
        stream: where a text bar is drawn; stderr by default (a widget draws in the notebook).
    """

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        stream = stream if stream is not None else sys.stderr
        self.diverged = 0
        self.failed = 0
        self._bar = tqdm(
            total=total,
            file=stream,
            bar_format=BAR_FORMAT,
            dynamic_ncols=True,
            postfix=self._counts(),
        )
        widget = hasattr(self._bar, "container")
        self._bar.mininterval = 0.1 if widget or stream.isatty() else LOG_EVERY_S

    @property
    def total(self) -> int:
        """The trials planned so far."""
        return int(self._bar.total)

    @total.setter
    def total(self, value: int) -> None:
        if value == self._bar.total:
            return
        self._bar.total = value
        widget = getattr(self._bar, "container", None)
        if widget is not None:  # the notebook widget keeps its own maximum (tqdm's reset)
            widget.children[1].max = value
        self._bar.refresh()

    @property
    def done(self) -> int:
        """The trials stored so far."""
        return int(self._bar.n)

    def update(self, done: int, diverged: int, failed: int = 0) -> None:
        """Add ``done`` stored trials, ``diverged`` and ``failed`` of them; redraw if due."""
        self.diverged += diverged
        self.failed += failed
        self._bar.set_postfix_str(self._counts(), refresh=False)
        self._bar.update(done)

    def close(self) -> None:
        """Draw the bar as it ends and leave it in place."""
        self._bar.close()

    def line(self) -> str:
        """The text of the bar as it stands."""
        return str(self._bar)

    def _counts(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.diverged} diverged{failed}"
