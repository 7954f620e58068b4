"""A live view of a result set: a page on 127.0.0.1 that follows a search while it runs.

``gdsearch serve RESULTS`` serves one page that asks for the state every second and redraws:
trials done of the job's total, diverged and failed so far, the run's status, the SSE curves and
the U-curve so far (the charts of :mod:`gdsearch.report.interactive`). It reads the committed
Parquet parts, as :func:`gdsearch.load_results` does, and never talks to the workers: a part,
once committed, never changes, so each is read once, when it appears, and kept: its trials rows,
and its history only at the epochs drawn (:class:`gdsearch.report.drawn.Drawn`, a few hundred
values a trial); a part that goes (a compaction, a repair, a fresh start) is dropped. So a
refresh reads only the new parts, memory grows with trials but not with epochs, and the page
keeps working while a run writes, after it is killed, and when it resumes, and costs the run
nothing.

Plotly's JavaScript is served from the installed package: the page fetches nothing beyond the
server it came from.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gdsearch.errors import GdsearchError, InputError, one_line
from gdsearch.report.drawn import (
    TRIAL_LINES,
    Curves,
    Drawn,
    epochs_to_draw,
    falls_early,
    medians_of,
)
from gdsearch.report.interactive import curves_figure, plotly, plotly_js
from gdsearch.report.interactive import ucurve_figure as ucurve
from gdsearch.results.resultset import dense_history
from gdsearch.results.schema import fill_implied
from gdsearch.results.store import ResultsStore

log = logging.getLogger("gdsearch")

POLL_MS = 1000
"""How often the page asks for the state."""


class LiveState:
    """The state of a result set as the page shows it, from the parts committed so far."""

    def __init__(self, location: str) -> None:
        self.store = ResultsStore(location)
        # Each part's trials rows, its history as drawn, and its held-out SSE as drawn (None
        # where the job holds nothing out).
        self.parts: dict[str, tuple[pa.Table, Drawn, Drawn | None]] = {}
        self.epochs = epochs_to_draw(0)  # the epochs drawn: of the longest trial's budget
        self.version = 0  # moves on whenever the set of parts changes
        self.figures: list[str] = []
        self.lock = threading.Lock()
        self.last: dict[str, Any] = {}

    def snapshot(self, since: int = -1) -> dict[str, Any]:
        """The state now; the charts only if they changed since ``since``."""
        with self.lock:
            try:
                self._refresh()
            except (GdsearchError, OSError, pa.ArrowException) as exc:  # a part went mid-read
                return {**self.last, "error": one_line(exc)}
            state = self._state()
            if since != self.version:
                state["figures"] = self.figures
            self.last = {k: v for k, v in state.items() if k != "figures"}
            return state

    def _refresh(self) -> None:
        """Read the parts committed since the last refresh, drop those gone; kept as they are
        until every new part is read, so a failed read leaves the state as it was."""
        names = self.store.committed("trials") if self.store.has_trials_dir() else []
        if list(self.parts) == names:
            return
        trials = {
            n: self.parts[n][0] if n in self.parts else self.store.read_part("trials", n)
            for n in names
        }
        budget = max((pc.max(t.column("epochs")).as_py() or 0 for t in trials.values()), default=0)
        epochs = epochs_to_draw(budget)
        kept = self.parts if np.array_equal(epochs, self.epochs) else {}  # else all drawn again
        self.parts = {
            n: (table, *(kept[n][1:] if n in kept else self._drawn(n, table, epochs)))
            for n, table in trials.items()
        }
        self.epochs = epochs
        self.version += 1
        self.figures = self._figures()

    def _drawn(
        self, name: str, trials: pa.Table, epochs: np.ndarray
    ) -> tuple[Drawn, Drawn | None]:
        """A part's history at the epochs drawn, and its held-out SSE likewise where it has
        some: one part's rows in memory at a time."""
        columns = self.store.history_columns([name])
        history = self.store.read_part("history", name, columns)
        ids = trials.column("trial_id").to_numpy(zero_copy_only=False)

        def drawn(column: str) -> Drawn:
            table = history.select(["trial_id", "epoch", column])
            block = dense_history(table.rename_columns(["trial_id", "epoch", "sse"]), ids)
            return Drawn.join([] if block is None else [Drawn.of(block, epochs)], epochs)

        return drawn("sse"), drawn("val_sse") if "val_sse" in columns else None

    def _tables(self) -> tuple[pd.DataFrame, Drawn, Drawn | None]:
        drawn = Drawn.join((p[1] for p in self.parts.values()), self.epochs)
        held = [p[2] for p in self.parts.values() if p[2] is not None]
        held_out = Drawn.join(held, self.epochs) if held else None
        if not self.parts:
            return pd.DataFrame(), drawn, None
        trials = fill_implied(pa.concat_tables([p[0] for p in self.parts.values()])).to_pandas()
        return trials.sort_values("trial_id", ignore_index=True), drawn, held_out

    def _figures(self) -> list[str]:
        trials, drawn, held_out = self._tables()
        if trials.empty:
            return []
        import plotly.io as pio

        figures = [
            pio.to_json(curves_figure(trials, self._curves(trials, drawn), selector=True)),
            pio.to_json(ucurve(trials)),
        ]
        if held_out is not None:
            curves = self._curves(trials, held_out)
            figures.append(
                pio.to_json(curves_figure(trials, curves, selector=True, what="Held-out SSE"))
            )
        return figures

    @staticmethod
    def _curves(trials: pd.DataFrame, drawn: Drawn) -> Curves:
        """A line per trial where there are few, else the medians over seeds."""
        last = int(drawn.last_epoch.max()) if len(drawn.trial_ids) else 0
        early = falls_early(drawn, last)
        if len(trials) <= TRIAL_LINES:
            return Curves(True, drawn.lines(), early)
        return Curves(False, medians_of(drawn, trials), early)

    def _state(self) -> dict[str, Any]:
        manifest = self.store.read_manifest()
        counts: dict[str, int] = {}
        for trials, *_ in self.parts.values():
            for status in trials.column("status").to_pylist():
                counts[status] = counts.get(status, 0) + 1
        return {
            "name": manifest.get("name", ""),
            "status": manifest.get("status", "not started"),
            "done": sum(counts.values()),
            "total": manifest.get("trials_total"),
            "counts": counts,
            "parts": len(self.parts),
            "version": self.version,
        }


def serve(location: str, host: str = "127.0.0.1", port: int = 8787) -> ThreadingHTTPServer:
    """A server of the live page for ``location``, bound but not yet serving (call its
    ``serve_forever``); ``port`` 0 takes a free one (``server.server_address`` says which)."""
    plotly()  # a one-line error now if Plotly is missing
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise InputError(f"--host: the live view serves this machine only, but got {host!r}")
    state = LiveState(location)
    script = plotly_js().encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/":
                self._send(PAGE.replace("{{poll}}", str(POLL_MS)).encode(), "text/html")
            elif url.path == "/plotly.min.js":
                self._send(script, "text/javascript")
            elif url.path == "/state.json":
                since = parse_qs(url.query).get("since", ["-1"])[0]
                body = json.dumps(state.snapshot(int(since) if since.isdigit() else -1))
                self._send(body.encode(), "application/json")
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("serve: " + format, *args)

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise InputError(f"--port {port}: cannot listen on {host} ({exc.strerror})") from None


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gdsearch live</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { font-family: system-ui, sans-serif; margin: 1.5em; }
h1 { font-size: 1.4em; } #count { font-size: 1.1em; } #error { color: #a00; }</style>
<script src="/plotly.min.js"></script></head>
<body><h1 id="name">gdsearch</h1>
<p id="count" data-done="0">waiting for the first part…</p><p id="error"></p>
<div id="curves"></div><div id="ucurve"></div><div id="held"></div>
<script>
let version = -1;
let group = null;  // the comparison group picked in the curves' menu, kept across updates
function keepGroup(fig) {
  const menu = (fig.layout.updatemenus || []).find((m) => m.name === "group");
  if (!menu || group === null) return;
  const at = menu.buttons.findIndex((b) => b.label === group);
  if (at < 0) return;
  menu.active = at;
  menu.buttons[at].args[0].visible.forEach((shown, j) => { fig.data[j].visible = shown; });
}
async function poll() {
  try {
    const reply = await fetch("/state.json?since=" + version);
    const state = await reply.json();
    document.getElementById("name").textContent = (state.name || "gdsearch") + " (live)";
    const counts = state.counts || {};
    const total = state.total == null ? "?" : state.total;
    const count = document.getElementById("count");
    count.dataset.done = state.done || 0;
    count.textContent = `${state.done || 0} of ${total} trials done · ` +
      `${counts.diverged || 0} diverged · ${counts.failed || 0} failed · run ${state.status}`;
    document.getElementById("error").textContent = state.error || "";
    if (state.figures) {
      version = state.version;
      ["curves", "ucurve", "held"].forEach((id, i) => {
        if (state.figures[i]) {
          const fig = JSON.parse(state.figures[i]);
          if (id !== "ucurve") keepGroup(fig);
          const div = document.getElementById(id);
          const first = !div.data;
          Plotly.react(id, fig.data, fig.layout, {displaylogo: false});
          if (id !== "ucurve" && first) {
            div.on("plotly_buttonclicked", (event) => {
              if (event.menu.name === "group") group = event.button.label;
            });
          }
        }
      });
    }
  } catch (error) {
    document.getElementById("error").textContent = "the server does not answer";
  }
  setTimeout(poll, {{poll}});
}
poll();
</script></body></html>
"""
