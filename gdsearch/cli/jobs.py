"""``gdsearch run`` and ``gdsearch validate``: a job file checked, and run."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any

from gdsearch.cli.options import RESULTS_VARIABLE, json_flag, positive_int, print_json
from gdsearch.mlp.stopping import Status

if TYPE_CHECKING:
    from gdsearch.job.spec import JobSpec


def add_run(commands: Any) -> None:
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
        type=positive_int,
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
    json_flag(run)
    run.set_defaults(handler=_run)


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
        print_json(dataclasses.asdict(summary))
    else:
        print(
            f"{summary.path}: {summary.total} trials ({counts}); ran {summary.ran}, "
            f"{summary.skipped} already stored; {summary.wall_s:.1f} s "
            f"({'in this process' if summary.executor == 'local' else 'on Ray'})"
        )
    drawn = summary.landscapes
    if drawn is not None and not args.json:
        print(
            f"{summary.path}: landscapes of {drawn.chosen} trials; drew {drawn.drawn}, "
            f"{drawn.skipped} already stored; {drawn.wall_s:.1f} s"
        )
    if drawn is not None and drawn.failed:
        print(
            f"gdsearch: the landscapes of {drawn.failed} trials failed ({drawn.first_error}); "
            "run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    failed = summary.counts.get(Status.FAILED, 0)
    if failed:
        example = f" (e.g. {summary.first_error})" if summary.first_error else ""
        print(
            f"gdsearch: {failed} of {summary.total} trials failed{example}; their errors are "
            "in the trials table's error column; run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def add_validate(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check a job file and count its trials",
        description="Check a job file and its data, and print how many trials it expands to.",
    )
    validate.add_argument("job", help="the job file (TOML)")
    json_flag(validate)
    validate.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    from gdsearch.job.spec import load_job

    spec = load_job(args.job)
    X, Y = spec.load_data()
    train = spec.train
    held = len(spec.held_out(X, Y)[2] or ())
    if args.json:
        print_json(
            {
                "job": args.job,
                "name": spec.name,
                "trials": spec.n_trials,
                "mode": spec.mode,
                "axes": {key: len(axis) or None for key, axis in spec.axes.items()},
                "data": {
                    "dataset": spec.dataset,
                    "n_samples": X.shape[0],
                    "n_inputs": X.shape[1],
                    "n_outputs": Y.shape[1],
                    "held_out": held,
                },
                "train": dataclasses.asdict(train),
                "halving_rungs": spec.halving.rungs(train.epochs) if spec.halving else None,
                "bracket": dataclasses.asdict(spec.bracket) if spec.bracket else None,
            }
        )
        return 0
    print(
        f"{args.job}: OK — {spec.n_trials} trials ({_how(spec)}); data {spec.dataset}: "
        f"{X.shape[0]} samples{f' ({held} held out)' if held else ''}, {X.shape[1]} inputs, "
        f"{Y.shape[1]} outputs; {train.epochs} epochs{_stopping(spec)}"
    )
    return 0


def _how(spec: JobSpec) -> str:
    """How a job picks its trials: the grid's axes, random samples of them, or a bracket."""
    axes = " × ".join(f"{len(axis) or 'random'} {key}" for key, axis in spec.axes.items())
    if spec.sampling is not None:
        s = spec.sampling
        space = ", ".join(
            f"{key} ({axis.distribution} {axis.low:g}-{axis.high:g})"
            if axis.distribution
            else f"{key} ({len(axis)})"
            for key, axis in spec.axes.items()
        )
        return (
            f"proposed by {s.sampler} in batches of {s.batch}, minimising {s.objective}, "
            f"over {space}"
        )
    if spec.bracket is not None:
        b = spec.bracket
        return (
            f"{axes} in the first round, then {b.points} lr per group and round until the "
            f"bracket is {b.width:g} wide, at most {b.rounds} rounds"
        )
    return {"grid": axes, "random": f"{spec.samples} random samples of {axes}"}.get(spec.mode, "")


def _stopping(spec: JobSpec) -> str:
    """What stops or measures a job's trials besides its epochs."""
    train, said = spec.train, ""
    if spec.halving is not None:
        h = spec.halving
        rungs = ", ".join(map(str, h.rungs(train.epochs)))
        said += (
            f"; halving at epochs {rungs}, keeping the best 1/{h.reduction_factor} by {h.metric}"
        )
    if train.patience:
        said += f"; patience {train.patience} epochs"
    if train.sharpness_every:
        said += f"; sharpness every {train.sharpness_every} epochs"
    return said
