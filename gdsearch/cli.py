"""The ``gdsearch`` command: one function per subcommand, errors turned into exit codes once.

Exit codes: 0 success, 2 bad input (one line on stderr naming the key/file and the value),
1 a run that failed; ``status`` also says the submission's state (``STATUS_EXIT``).
Output is UTF-8 whatever the locale, like every file gdsearch reads or writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from gdsearch.errors import GdsearchError, InputError, one_line
from gdsearch.search.cluster import RAY_NEEDED, SHIP

MAX_MESSAGE_CHARS = 2000
"""An error line is cut here; the messages name user values shortened already, so it rarely is."""
STATUS_EXIT = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3, "PENDING": 4, "RUNNING": 4}
"""``gdsearch status``'s exit code by the submission's state (2 stays bad input)."""
RESULTS_VARIABLE = "GDSEARCH_RESULTS"


def _print_json(document: Any) -> None:
    """One JSON document on stdout (``--json``): NaN as null, times and paths as strings."""
    print(json.dumps(_plain(document), default=str, allow_nan=False))


def _plain(value: Any) -> Any:
    """Values JSON can hold: NaN and missing as None, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    pandas = sys.modules.get("pandas")  # pd.NA can only come from a pandas already loaded
    return None if pandas is not None and value is pandas.NA else value


def _run(args: argparse.Namespace) -> int:
    from gdsearch.search.driver import run_search

    summary = run_search(
        args.job,
        args.results_dir,
        address=args.address,
        fresh=args.fresh,
        show_progress=not args.no_progress,
        wait=args.wait,
        break_lock=args.break_lock,
        num_cpus=args.num_cpus,
        executor=args.executor,
        allow_numerics_change=args.allow_numerics_change,
    )
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    if args.json:
        _print_json(dataclasses.asdict(summary))
    else:
        print(
            f"{summary.path}: {summary.total} trials ({counts}); ran {summary.ran}, "
            f"{summary.skipped} already stored; {summary.wall_s:.1f} s "
            f"({'in this process' if summary.executor == 'local' else 'on Ray'})"
        )
    failed = summary.counts.get("failed", 0)
    if failed:
        example = f" (e.g. {summary.first_error})" if summary.first_error else ""
        print(
            f"gdsearch: {failed} of {summary.total} trials failed{example}; their errors are "
            "in the trials table's error column; run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def _validate(args: argparse.Namespace) -> int:
    from gdsearch.job.spec import load_job

    spec = load_job(args.job)
    X, Y = spec.load_data()
    axes = " × ".join(f"{len(axis) or 'random'} {key}" for key, axis in spec.axes.items())
    how = {"grid": axes, "random": f"{spec.samples} random samples of {axes}"}.get(spec.mode, "")
    if spec.bracket is not None:
        b = spec.bracket
        how = (f"{axes} in the first round, then {b.points} lr per group and round until the "
               f"bracket is {b.width:g} wide, at most {b.rounds} rounds")  # fmt: skip
    train = spec.train
    stopping = ""
    if spec.halving is not None:
        h = spec.halving
        rungs = ", ".join(map(str, h.rungs(train.epochs)))
        stopping += (
            f"; halving at epochs {rungs}, keeping the best 1/{h.reduction_factor} by {h.metric}"
        )
    if train.patience:
        stopping += f"; patience {train.patience} epochs"
    if train.sharpness_every:
        stopping += f"; sharpness every {train.sharpness_every} epochs"
    held = len(spec.held_out(X, Y)[2] or ())
    if args.json:
        _print_json({
            "job": args.job, "name": spec.name, "trials": spec.n_trials, "mode": spec.mode,
            "axes": {key: len(axis) or None for key, axis in spec.axes.items()},
            "data": {"dataset": spec.dataset, "n_samples": X.shape[0], "n_inputs": X.shape[1],
                     "n_outputs": Y.shape[1], "held_out": held},
            "train": dataclasses.asdict(train),
            "halving_rungs": spec.halving.rungs(train.epochs) if spec.halving else None,
            "bracket": dataclasses.asdict(spec.bracket) if spec.bracket else None,
        })  # fmt: skip
        return 0
    print(
        f"{args.job}: OK — {spec.n_trials} trials ({how}); data {spec.dataset}: "
        f"{X.shape[0]} samples{f' ({held} held out)' if held else ''}, {X.shape[1]} inputs, "
        f"{Y.shape[1]} outputs; {train.epochs} epochs"
        f"{stopping}"
    )
    return 0


def _compact(args: argparse.Namespace) -> int:
    from gdsearch.results.compact import compact_results

    report = compact_results(args.results, target_rows=args.target_rows, wait=args.wait)
    if args.json:
        _print_json(dataclasses.asdict(report))
        return 0
    settled = f"; settled {report.settled} files of an interrupted compaction" * bool(
        report.settled
    )
    print(f"{report.location}: {report.parts_before} parts -> {report.parts_after} "
          f"({report.history_rows:,} history rows){settled}")  # fmt: skip
    return 0


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


def _show(args: argparse.Namespace) -> int:
    from gdsearch.model.analysis import lr_summary
    from gdsearch.results.scan import open_results

    results = open_results(args.results)  # the trials table only
    trials = results.trials
    manifest = results.manifest
    counts = trials["status"].value_counts().to_dict()
    if args.json:
        rows = lr_summary(trials).to_dict(orient="records") if len(trials) else []
        _print_json({"name": manifest.get("name"), "status": manifest.get("status"),
                     "trials_total": manifest.get("trials_total"), "stored": len(trials),
                     "counts": counts, "rows": rows})  # fmt: skip
        return 0
    print(
        f"{manifest.get('name', args.results)}: {len(trials)} of "
        f"{manifest.get('trials_total', '?')} "
        f"trials stored ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), "
        f"{manifest.get('status', 'unknown')}"
    )
    failed = trials[trials["status"] == "failed"]
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


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gdsearch.report import build
    from gdsearch.results.scan import open_results
    from gdsearch.results.store import is_uri

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
    written = build(open_results(args.results), out, args.format, args.rank_by)
    print(written)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gdsearch.report.live import serve

    server = serve(args.results, args.host, args.port)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"gdsearch: the live view of {args.results} is at http://{host}:{port}/ "
          "(Ctrl-C stops it)", flush=True)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gdsearch.report import compare
    from gdsearch.results.scan import open_results

    print(compare([open_results(r) for r in args.results], Path(args.output)))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    submission_id = cluster.submit(
        args.job,
        args.address,
        args.results_dir,
        submission_id=args.submission_id,
        runtime_env=_json_object("--runtime-env-json", args.runtime_env_json),
        metadata=_json_object("--metadata-json", args.metadata_json),
        entrypoint_num_cpus=args.entrypoint_num_cpus,
        ship=args.ship,
    )
    print(submission_id)
    if args.no_wait:
        print(
            f"gdsearch: submitted; watch it with `gdsearch logs {submission_id} --follow`",
            file=sys.stderr,
        )
        return 0
    print("gdsearch: submitted; its log follows (Ctrl-C stops following, not the job)",
          file=sys.stderr)  # fmt: skip
    cluster.follow_logs(args.address, submission_id, sys.stdout.write)
    sys.stdout.flush()
    info = cluster.status(args.address, submission_id)
    print(f"{submission_id}: {info['status']}", file=sys.stderr)
    return STATUS_EXIT.get(info["status"], 1)


def _json_object(option: str, text: str | None) -> dict[str, Any] | None:
    """A JSON object given on the command line, or None; anything else is exit 2."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{option}: not JSON ({exc}), but got {text!r}") from None
    if not isinstance(value, dict):
        raise InputError(f"{option}: must be a JSON object, but got {text!r}")
    return value


def _status(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    info = cluster.status(args.address, args.submission_id)
    message = f" — {info['message']}" if info["message"] else ""
    if args.json:
        _print_json(info)
    else:
        print(f"{info['submission_id']}: {info['status']}{message}")
    return STATUS_EXIT.get(info["status"], 1)


def _logs(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    if args.follow:
        cluster.follow_logs(args.address, args.submission_id, sys.stdout.write)
    else:
        sys.stdout.write(cluster.logs(args.address, args.submission_id))
    sys.stdout.flush()
    return 0


def _stop(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    stopped = cluster.stop(args.address, args.submission_id)
    print(f"{args.submission_id}: {'stopping' if stopped else 'had already ended'}")
    return 0


def _requirements(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    print("\n".join(cluster.pinned_requirements()))
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    rows = cluster.jobs(args.address)
    if args.json:
        _print_json(rows[: args.limit])
        return 0
    if not rows:
        print("no submissions")
        return 0
    import pandas as pd

    table = pd.DataFrame(rows)
    table["start_time"] = pd.to_datetime(table["start_time"], unit="ms", utc=True).dt.strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table.head(args.limit).to_string(index=False))
    return 0


def _cluster_commands(commands: Any) -> None:
    def address(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--address",
            help="the cluster's job server, e.g. http://127.0.0.1:8265 "
            "(default: $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS)",
        )

    submit = commands.add_parser(
        "submit",
        help="submit a job to a Ray cluster (Ray Jobs API)",
        description="Check a job, send it and its data file to a Ray cluster's job server, "
        "print the submission id, and follow its log until it ends (as `ray job submit` "
        "does; --no-wait returns at once). The cluster runs `python -m gdsearch run` and writes "
        "to RESULTS_DIR, a path on a volume the cluster shares or a URI such as "
        "s3://bucket/prefix. gdsearch itself goes with the job (see --ship): the cluster needs "
        f"only Ray {RAY_NEEDED} and Python 3.10 or later.",
    )
    submit.add_argument("job", help="the job file (TOML)")
    address(submit)
    submit.add_argument(
        "--results-dir",
        default=os.environ.get(RESULTS_VARIABLE, "/results"),
        help="results location on the cluster (default: $GDSEARCH_RESULTS, else /results)",
    )
    submit.add_argument("--submission-id", help="the id to give it (default: Ray makes one)")
    submit.add_argument(
        "--runtime-env-json", help="more of Ray's runtime env, e.g. '{\"env_vars\": {...}}'"
    )
    submit.add_argument("--metadata-json", help="more metadata to record, a JSON object")
    submit.add_argument(
        "--entrypoint-num-cpus", type=float, help="CPUs reserved for the driver (default: 0)"
    )
    submit.add_argument(
        "--ship",
        choices=SHIP,
        default="all",
        help="what to send of gdsearch in Ray's runtime env: all (the package and its pinned "
        "dependencies, for a cluster with only Ray and Python; the default), code (the package; "
        "the nodes have the libraries) or none (the nodes' image has gdsearch)",
    )
    submit.add_argument(
        "--no-wait",
        action="store_true",
        help="print the id and return (default: follow the log until the job ends, and exit "
        "with its state, as `gdsearch status` does)",
    )
    submit.set_defaults(handler=_submit)
    for name, handler, text, description in (
        ("status", _status, "a submission's state",
         "Print a submission's state. The exit code says it: 0 succeeded, 1 failed, 3 stopped, "
         "4 pending or running (2 is bad input, as everywhere)."),
        ("logs", _logs, "a submission's driver log", "Print a submission's driver log."),
        ("stop", _stop, "stop a submission", "Stop a submission that is pending or running."),
    ):  # fmt: skip
        sub = commands.add_parser(name, help=text, description=description)
        sub.add_argument("submission_id", help="the id `gdsearch submit` printed (raysubmit_…)")
        address(sub)
        if name == "logs":
            sub.add_argument("--follow", "-f", action="store_true", help="stream until it ends")
        if name == "status":
            _json_flag(sub)
        sub.set_defaults(handler=handler)
    listing = commands.add_parser(
        "jobs", help="recent submissions and their states", description="List submissions."
    )
    address(listing)
    listing.add_argument("--limit", type=int, default=50, help="rows to print at most")
    _json_flag(listing)
    listing.set_defaults(handler=_jobs)
    pins = commands.add_parser(
        "requirements",
        help="gdsearch's dependencies pinned as installed here, for a cluster's runtime env",
        description="Print gdsearch's dependencies (but Ray) pinned to the versions installed "
        "here, one pip requirement a line: what `gdsearch submit` ships, and what a recipe in "
        "deploy/ lists under its runtime env's pip.",
    )
    pins.set_defaults(handler=_requirements)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdsearch",
        description="Search learning rates, inits and architectures of small MLPs on Ray.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a search job (embedded local Ray, or --address / RAY_ADDRESS)",
        description="Run a search job and store its results under RESULTS_DIR/NAME. "
        "Trials already stored there are skipped, so running again resumes.",
    )
    run.add_argument("job", help="the job file (TOML)")
    run.add_argument(
        "--results-dir",
        default=os.environ.get(RESULTS_VARIABLE, "results"),
        help="root of result sets, a folder or a URI (default: $GDSEARCH_RESULTS, else results)",
    )
    run.add_argument(
        "--address",
        help="Ray cluster to join, HEAD:6379 or ray://HEAD:10001 (default: $RAY_ADDRESS, else "
        "an embedded local Ray)",
    )
    run.add_argument(
        "--num-cpus",
        type=_positive_int,
        help="cores of the embedded Ray (default: all; not with a cluster)",
    )
    run.add_argument(
        "--executor",
        choices=("auto", "local", "ray"),
        default="auto",
        help="where to train: local (in this process), ray, or auto (the default: in this "
        "process when no cluster is named and the job is a few seconds of work, else on Ray); "
        "the numbers are the same",
    )
    run.add_argument(
        "--fresh", action="store_true", help="delete stored results of this job first"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--wait",
        action="store_true",
        help="if another run writes to the same results, wait for it (default: refuse)",
    )
    run.add_argument(
        "--break-lock",
        action="store_true",
        help="take the results' lock from a run on another host that is gone",
    )
    run.add_argument(
        "--allow-numerics-change",
        action="store_true",
        help="add to results whose trials were computed with other numerics (default: refuse)",
    )
    _json_flag(run)
    run.set_defaults(handler=_run)

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
        type=_positive_int,
        default=4_000_000,
        help="history rows of a compacted part at most (default: 4,000,000)",
    )
    compact.add_argument("--wait", action="store_true", help="wait for a run writing there")
    _json_flag(compact)
    compact.set_defaults(handler=_compact)

    validate = commands.add_parser(
        "validate",
        help="check a job file and count its trials",
        description="Check a job file and its data, and print how many trials it expands to.",
    )
    validate.add_argument("job", help="the job file (TOML)")
    _json_flag(validate)
    validate.set_defaults(handler=_validate)

    show = commands.add_parser(
        "show",
        help="per-learning-rate summary of a result set",
        description="Print, for each init, architecture, activation and learning rate: trials, "
        "median and best final SSE of those that trained to the end, and how many diverged "
        "or were pruned.",
    )
    show.add_argument("results", help="a results directory, e.g. results/seed-sine")
    show.add_argument("--max-rows", type=int, default=500, help="rows to print at most")
    _json_flag(show)
    show.set_defaults(handler=_show)

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

    comparison = commands.add_parser(
        "compare",
        help="put two or more result sets side by side in one HTML file",
        description="Final SSE against learning rate and each group's best SSE curve for every "
        "result set on the same axes, and their summaries in one table.",
    )
    comparison.add_argument("results", nargs="+", help="two or more results directories or URIs")
    comparison.add_argument("-o", "--output", default="compare.html", help="the HTML file")
    comparison.set_defaults(handler=_compare)
    _cluster_commands(commands)
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead (README: --json)"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, but got {text!r}")
    return value


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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    _utf8_output()
    args = _parser().parse_args(argv)
    logging.basicConfig(format="gdsearch: %(message)s", stream=sys.stderr)
    logging.getLogger("gdsearch").setLevel(logging.INFO)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
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


def console() -> None:
    """The ``gdsearch`` command: :func:`main`, then exit without the final garbage collection
    over every object the process made (numba's compiler alone makes a quarter of a second's
    worth); the objects stay as they are, and the process ends."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
