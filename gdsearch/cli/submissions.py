"""``gdsearch submit``, ``status``, ``logs``, ``stop``, ``jobs`` and ``requirements``: jobs sent
to a Ray cluster's job server (the Ray Jobs API), and followed there."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gdsearch.cli.options import RESULTS_VARIABLE, json_flag, json_object, print_json
from gdsearch.search.cluster import RAY_NEEDED, SHIP

STATUS_EXIT = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3, "PENDING": 4, "RUNNING": 4}
"""``gdsearch status``'s exit code by the submission's state (2 stays bad input)."""


def _address(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--address",
        help="the cluster's job server, e.g. http://127.0.0.1:8265 "
        "(default: $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS)",
    )


def _submission(commands: Any, name: str, text: str, description: str) -> argparse.ArgumentParser:
    """A command about one submission: its id and the cluster's address."""
    sub: argparse.ArgumentParser = commands.add_parser(name, help=text, description=description)
    sub.add_argument("submission_id", help="the id `gdsearch submit` printed (raysubmit_…)")
    _address(sub)
    return sub


def add_submit(commands: Any) -> None:
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
    _address(submit)
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
        default="auto",
        help="what to send of gdsearch in Ray's runtime env: auto (the default: a short probe "
        "job asks every node for its packages; the package only where all of them have "
        "gdsearch's pinned dependencies, else the package and those dependencies, which each "
        "node then installs), all (the package and its pinned dependencies, for a cluster "
        "with only Ray and Python), code (the package; the nodes have the libraries) or none "
        "(the nodes' image has gdsearch)",
    )
    submit.add_argument(
        "--no-wait",
        action="store_true",
        help="print the id and return (default: follow the log until the job ends, and exit "
        "with its state, as `gdsearch status` does)",
    )
    submit.set_defaults(handler=_submit)


def _submit(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    submission_id = cluster.submit(
        args.job,
        args.address,
        args.results_dir,
        submission_id=args.submission_id,
        runtime_env=json_object("--runtime-env-json", args.runtime_env_json),
        metadata=json_object("--metadata-json", args.metadata_json),
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
    print(
        "gdsearch: submitted; its log follows (Ctrl-C stops following, not the job)",
        file=sys.stderr,
    )
    cluster.follow_logs(args.address, submission_id, sys.stdout.write)
    sys.stdout.flush()
    info = cluster.status(args.address, submission_id)
    print(f"{submission_id}: {info['status']}", file=sys.stderr)
    return STATUS_EXIT.get(info["status"], 1)


def add_status(commands: Any) -> None:
    status = _submission(
        commands,
        "status",
        "a submission's state",
        "Print a submission's state. The exit code says it: 0 succeeded, 1 failed, 3 stopped, "
        "4 pending or running (2 is bad input, as everywhere).",
    )
    json_flag(status)
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    info = cluster.status(args.address, args.submission_id)
    message = f" — {info['message']}" if info["message"] else ""
    if args.json:
        print_json(info)
    else:
        print(f"{info['submission_id']}: {info['status']}{message}")
    return STATUS_EXIT.get(info["status"], 1)


def add_logs(commands: Any) -> None:
    logs = _submission(
        commands, "logs", "a submission's driver log", "Print a submission's driver log."
    )
    logs.add_argument("--follow", "-f", action="store_true", help="stream until it ends")
    logs.set_defaults(handler=_logs)


def _logs(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    if args.follow:
        cluster.follow_logs(args.address, args.submission_id, sys.stdout.write)
    else:
        sys.stdout.write(cluster.logs(args.address, args.submission_id))
    sys.stdout.flush()
    return 0


def add_stop(commands: Any) -> None:
    stop = _submission(
        commands, "stop", "stop a submission", "Stop a submission that is pending or running."
    )
    stop.set_defaults(handler=_stop)


def _stop(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    stopped = cluster.stop(args.address, args.submission_id)
    print(f"{args.submission_id}: {'stopping' if stopped else 'had already ended'}")
    return 0


def add_jobs(commands: Any) -> None:
    listing = commands.add_parser(
        "jobs", help="recent submissions and their states", description="List submissions."
    )
    _address(listing)
    listing.add_argument("--limit", type=int, default=50, help="rows to print at most")
    json_flag(listing)
    listing.set_defaults(handler=_jobs)


def _jobs(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    rows = cluster.jobs(args.address)
    if args.json:
        print_json(rows[: args.limit])
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


def add_requirements(commands: Any) -> None:
    pins = commands.add_parser(
        "requirements",
        help="gdsearch's dependencies pinned as installed here, for a cluster's runtime env",
        description="Print gdsearch's dependencies (but Ray) pinned to the versions installed "
        "here, one pip requirement a line: what `gdsearch submit` ships, and what a recipe in "
        "deploy/ lists under its runtime env's pip.",
    )
    pins.set_defaults(handler=_requirements)


def _requirements(args: argparse.Namespace) -> int:
    from gdsearch.search import cluster

    print("\n".join(cluster.pinned_requirements()))
    return 0
