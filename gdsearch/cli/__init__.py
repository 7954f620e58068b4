"""The ``gdsearch`` command: one module per group of subcommands, each parser beside its
handler, errors turned into exit codes once (:func:`main`).

- :mod:`~gdsearch.cli.jobs`: ``run``, ``validate``;
- :mod:`~gdsearch.cli.stored`: ``show``, ``compact``, ``repair``;
- :mod:`~gdsearch.cli.landscapes`: ``landscape``;
- :mod:`~gdsearch.cli.reports`: ``report``, ``compare``, ``serve``;
- :mod:`~gdsearch.cli.submissions`: ``submit``, ``status``, ``logs``, ``stop``, ``jobs``,
  ``requirements``.

Exit codes: 0 success, 2 bad input (one line on stderr naming the key/file and the value),
1 a run that failed; ``status`` also says the submission's state (``STATUS_EXIT``).
Output is UTF-8 whatever the locale, like every file gdsearch reads or writes.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable

from gdsearch.cli import jobs, landscapes, reports, stored, submissions
from gdsearch.cli.submissions import STATUS_EXIT
from gdsearch.errors import GdsearchError, one_line

__all__ = ["STATUS_EXIT", "console", "main", "parser"]

MAX_MESSAGE_CHARS = 2000
"""An error line is cut here; the messages name user values shortened already, so it rarely is."""
COMMANDS = (
    jobs.add_run,
    jobs.add_validate,
    stored.add_show,
    reports.add_report,
    reports.add_compare,
    reports.add_serve,
    stored.add_compact,
    stored.add_repair,
    landscapes.add_landscape,
    submissions.add_submit,
    submissions.add_status,
    submissions.add_logs,
    submissions.add_stop,
    submissions.add_jobs,
    submissions.add_requirements,
)
"""Each subcommand's parser, in the order ``gdsearch --help`` lists them."""


def parser() -> argparse.ArgumentParser:
    """The whole command line's parser."""
    top = argparse.ArgumentParser(
        prog="gdsearch",
        description="Search learning rates, inits and architectures of small MLPs on Ray.",
    )
    top.add_argument("--version", action="version", version=_version())
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    _utf8_output()
    args = parser().parse_args(argv)
    logging.basicConfig(format="gdsearch: %(message)s", stream=sys.stderr)
    logging.getLogger("gdsearch").setLevel(logging.INFO)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # here, where a closed pipe is caught below
        return code
    except GdsearchError as exc:
        message = one_line(str(exc), limit=MAX_MESSAGE_CHARS)  # whatever the message held
        print(f"gdsearch: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "gdsearch: interrupted; finished work units are stored, run again to resume",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # `gdsearch show … | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush
        return 141  # as a shell reports a writer ended by SIGPIPE


def console() -> None:
    """The ``gdsearch`` command: :func:`main`, then exit without the final garbage collection
    over every object the process made (numba's compiler alone makes a quarter of a second's
    worth); the objects stay as they are, and the process ends."""
    code = main()
    gc.freeze()
    sys.exit(code)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from gdsearch import __version__

    try:
        ray = version("ray")
    except PackageNotFoundError:  # pragma: no cover - Ray is a dependency
        ray = "not installed"
    return f"gdsearch {__version__} (Ray {ray}, Python {sys.version.split()[0]})"


def _utf8_output() -> None:
    """Write UTF-8 to stdout and stderr even under a C locale (λ, —, × are in our text)."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors="surrogateescape")  # paths as given
