"""``gdsearch report``, ``serve`` and ``compare``: a result set read as pictures and tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gdsearch.errors import InputError


def add_report(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="learning-rate report: figures and tables in one HTML (or Markdown) file",
        description="Write a report of a result set: a summary per comparison group (best lr, "
        "critical bracket, predicted limit 2/λ_max, divergences), SSE curves per learning rate, "
        "final SSE against learning rate, epochs to tolerance, and the tables. HTML is one "
        "self-contained file; --format md writes Markdown with PNG files beside it.",
    )
    report.add_argument("results", help="a results directory or URI")
    report.add_argument("--format", choices=["html", "md"], default="html")
    report.add_argument("-o", "--output", help="the report file (default: RESULTS/report.FORMAT)")
    report.add_argument(
        "--rank-by",
        choices=["final_sse", "final_val_sse", "min_val_sse"],
        help="what picks each group's best lr: the final SSE on the data trained on, or on the "
        "held-out data, or the lowest held-out SSE (default: final_val_sse where the job holds "
        "data out, else final_sse)",
    )
    report.add_argument(
        "--interactive",
        action="store_true",
        help="write one self-contained HTML file of interactive charts instead (hover, zoom, "
        "log/linear, parallel coordinates; default: RESULTS/report-interactive.html); needs "
        "gdsearch[interactive]",
    )
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from gdsearch.report import build
    from gdsearch.results.files import is_uri
    from gdsearch.results.loading import open_results

    if args.output is None and is_uri(args.results):
        raise InputError(
            f"-o: needed for a report of {args.results!r}, which is not a local folder"
        )
    if args.interactive:
        from gdsearch.report.interactive import plotly, write_interactive

        plotly()  # a one-line error before anything is loaded, if Plotly is missing
        out = Path(args.output or Path(args.results) / "report-interactive.html")
        print(write_interactive(open_results(args.results), out))
        return 0
    out = Path(args.output or Path(args.results) / f"report.{args.format}")
    print(build(open_results(args.results), out, args.format, args.rank_by))
    return 0


def add_serve(commands: Any) -> None:
    live = commands.add_parser(
        "serve",
        help="a live view of a result set in the browser, updated as a run writes",
        description="Serve a page on this machine that shows a result set as it grows: trials "
        "done, diverged and failed so far, the SSE curves and the final SSE against learning "
        "rate. It reads the stored Parquet parts, never the workers, so it follows a run "
        "that writes, is killed and resumes. Needs gdsearch[interactive].",
    )
    live.add_argument("results", help="a results directory or URI, e.g. results/moons-lr-init")
    live.add_argument("--port", type=int, default=8787, help="0 takes a free port (default 8787)")
    live.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (the default) or ::1")
    live.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from gdsearch.report.live import serve

    server = serve(args.results, args.host, args.port)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(
        f"gdsearch: the live view of {args.results} is at http://{host}:{port}/ (Ctrl-C stops it)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def add_compare(commands: Any) -> None:
    comparison = commands.add_parser(
        "compare",
        help="put two or more result sets side by side in one HTML file",
        description="Final SSE against learning rate and each group's best SSE curve for every "
        "result set on the same axes, and their summaries in one table.",
    )
    comparison.add_argument("results", nargs="+", help="two or more results directories or URIs")
    comparison.add_argument("-o", "--output", default="compare.html", help="the HTML file")
    comparison.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from gdsearch.report import compare
    from gdsearch.results.loading import open_results

    print(compare([open_results(r) for r in args.results], Path(args.output)))
    return 0
