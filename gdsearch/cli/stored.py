"""``gdsearch show``, ``compact`` and ``repair``: a stored result set summed up, merged, mended."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from gdsearch.cli.options import json_flag, positive_int, print_json
from gdsearch.mlp.stopping import Status


def add_show(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="per-learning-rate summary of a result set",
        description="Print, for each init, architecture, activation and learning rate: trials, "
        "median and best final SSE of those that trained to the end, and how many diverged "
        "or were pruned.",
    )
    show.add_argument("results", help="a results directory, e.g. results/seed-sine")
    show.add_argument("--max-rows", type=int, default=500, help="rows to print at most")
    json_flag(show)
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    from gdsearch.analysis.convergence import lr_summary
    from gdsearch.results.loading import open_results

    results = open_results(args.results)  # the trials table only
    trials = results.trials
    manifest = results.manifest
    counts = trials["status"].value_counts().to_dict()
    if args.json:
        rows = lr_summary(trials).to_dict(orient="records") if len(trials) else []
        print_json(
            {
                "name": manifest.get("name"),
                "status": manifest.get("status"),
                "trials_total": manifest.get("trials_total"),
                "stored": len(trials),
                "counts": counts,
                "rows": rows,
            }
        )
        return 0
    print(
        f"{manifest.get('name', args.results)}: {len(trials)} of "
        f"{manifest.get('trials_total', '?')} "
        f"trials stored ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), "
        f"{manifest.get('status', 'unknown')}"
    )
    failed = trials[trials["status"] == Status.FAILED]
    if len(failed):
        errors = failed["error"].value_counts()
        print(
            f"{len(failed)} failed ({errors.index[0]!s}"
            f"{f'; and {len(errors) - 1} other errors' if len(errors) > 1 else ''}); "
            "running the job again retries them"
        )
    if trials.empty:
        return 0
    table = lr_summary(trials)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_rows", args.max_rows):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0


def add_compact(commands: Any) -> None:
    compact = commands.add_parser(
        "compact",
        help="merge a result set's many small parts into few large ones",
        description="Merge the Parquet parts of a result set (one per work unit, many after a "
        "long run or many resumes) into parts of about TARGET_ROWS history rows, sorted by "
        "trial and epoch, so that loading opens few files. Safe against a kill at any point: "
        "the next run, compaction or repair settles an interrupted one.",
    )
    compact.add_argument("results", help="a results directory or URI, e.g. results/seed-sine")
    compact.add_argument(
        "--target-rows",
        type=positive_int,
        default=4_000_000,
        help="history rows of a compacted part at most (default: 4,000,000)",
    )
    compact.add_argument("--wait", action="store_true", help="wait for a run writing there")
    json_flag(compact)
    compact.set_defaults(handler=_compact)


def _compact(args: argparse.Namespace) -> int:
    from gdsearch.results.compact import compact_results

    report = compact_results(args.results, target_rows=args.target_rows, wait=args.wait)
    if args.json:
        print_json(dataclasses.asdict(report))
        return 0
    settled = ""
    if report.settled:
        settled = f"; settled {report.settled} files of an interrupted compaction"
    print(
        f"{report.location}: {report.parts_before} parts -> {report.parts_after} "
        f"({report.history_rows:,} history rows){settled}"
    )
    return 0


def add_repair(commands: Any) -> None:
    repair = commands.add_parser(
        "repair",
        help="drop damaged or half-written parts of a result set, so a run trains them again",
        description="Check every Parquet part of a result set (footer, schema, page "
        "checksums) and drop unreadable parts, parts whose partner is missing and files left "
        "by interrupted writes; the next `gdsearch run` of the job trains their trials again. "
        "Frees the lock of a run that is gone.",
    )
    repair.add_argument("results", help="a results directory or URI, e.g. results/seed-sine")
    repair.add_argument("--dry-run", action="store_true", help="report, drop nothing")
    repair.set_defaults(handler=_repair)


def _repair(args: argparse.Namespace) -> int:
    from gdsearch.results.repair import repair_results

    report = repair_results(args.results, dry_run=args.dry_run)
    for item in report.dropped:
        print(f"{'would drop' if report.dry_run else 'dropped'} {item.path}: {item.reason}")
    verb = "would be dropped" if report.dry_run else "dropped"
    what = f"{len(report.dropped)} files {verb}" if report.dropped else "nothing to repair"
    stored = f"{report.stored} of {'?' if report.total is None else report.total} trials stored"
    missing = (report.total or 0) - report.stored
    if missing > 0:
        stored += f"; the next `gdsearch run` of the job trains the other {missing}"
    print(f"{report.location}: {what}; {stored}")
    return 0
