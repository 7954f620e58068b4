"""The ``gdsearch`` command: one function per subcommand, errors turned into exit codes once.

Exit codes: 0 success, 2 bad input (one line on stderr naming the key/file and the value),
1 a run that failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import pandas as pd

from gdsearch.errors import GdsearchError


def _run(args: argparse.Namespace) -> int:
    from gdsearch.driver import run_search

    summary = run_search(
        args.job,
        args.results_dir,
        address=args.address,
        fresh=args.fresh,
        show_progress=not args.no_progress,
    )
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    print(
        f"{summary.path}: {summary.total} trials ({counts}); ran {summary.ran}, "
        f"{summary.skipped} already stored; {summary.wall_s:.1f} s"
    )
    return 1 if summary.counts.get("failed") else 0


def _validate(args: argparse.Namespace) -> int:
    from gdsearch.spec import load_job

    spec = load_job(args.job)
    X, Y = spec.load_data()
    axes = " × ".join(f"{len(axis) or 'random'} {key}" for key, axis in spec.axes.items())
    how = axes if spec.mode == "grid" else f"{spec.samples} random samples of {axes}"
    print(
        f"{args.job}: OK — {spec.n_trials} trials ({how}); data {spec.dataset}: "
        f"{X.shape[0]} samples, {X.shape[1]} inputs, {Y.shape[1]} outputs; {spec.epochs} epochs"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from gdsearch.analysis import lr_summary
    from gdsearch.store import load_results

    results = load_results(args.results)
    trials = results.trials
    manifest = results.manifest
    counts = trials["status"].value_counts().to_dict()
    print(
        f"{manifest.get('name', args.results)}: {len(trials)} of "
        f"{manifest.get('trials_total', '?')} "
        f"trials stored ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), "
        f"{manifest.get('status', 'unknown')}"
    )
    if trials.empty:
        return 0
    table = lr_summary(trials)
    with pd.option_context("display.width", 200, "display.max_rows", args.max_rows):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdsearch",
        description="Search learning rates, inits and architectures of small MLPs on Ray.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a search job (embedded local Ray, or --address / RAY_ADDRESS)",
        description="Run a search job and store its results under RESULTS_DIR/NAME. "
        "Trials already stored there are skipped, so running again resumes.",
    )
    run.add_argument("job", help="the job file (TOML)")
    run.add_argument(
        "--results-dir", default="results", help="root of result sets (default: results)"
    )
    run.add_argument(
        "--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)"
    )
    run.add_argument(
        "--fresh", action="store_true", help="delete stored results of this job first"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    validate = commands.add_parser(
        "validate",
        help="check a job file and count its trials",
        description="Check a job file and its data, and print how many trials it expands to.",
    )
    validate.add_argument("job", help="the job file (TOML)")
    validate.set_defaults(handler=_validate)

    show = commands.add_parser(
        "show",
        help="per-learning-rate summary of a result set",
        description="Print, for each init, architecture, activation and learning rate: trials, "
        "median and best final SSE of those that did not diverge, and how many diverged.",
    )
    show.add_argument("results", help="a results directory, e.g. results/seed-sine")
    show.add_argument("--max-rows", type=int, default=500, help="rows to print at most")
    show.set_defaults(handler=_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(format="gdsearch: %(message)s", stream=sys.stderr)
    logging.getLogger("gdsearch").setLevel(logging.INFO)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except GdsearchError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message held
        print(f"gdsearch: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "gdsearch: interrupted; finished work units are stored, run again to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
