"""Benchmark gdsearch against what a user would write instead, and against itself.

    python benchmarks/bench.py               # every section
    python benchmarks/bench.py --speed       # the speed targets: trial-epochs, end to end,
                                             # Ray Tune, the kernel's compile, the targets
    python benchmarks/bench.py --quick       # W1 only, one run each, no Tune, no W1 x 16
    python benchmarks/bench.py --smoke       # every measurement once on tiny inputs (CI)
    python benchmarks/bench.py --loading     # load_results against pandas.read_parquet
    python benchmarks/bench.py --numerics    # each way gdsearch can train, per network
    python benchmarks/bench.py --reports     # report, report --interactive and show at scale
    python benchmarks/bench.py --landscapes  # gdsearch landscape on W1 against training W1
    python benchmarks/bench.py --samplers    # TPE, random and grid; TPE against Optuna's loop
    python benchmarks/bench.py --against TREE   # W1 with another source tree's gdsearch

W1 is jobs/moons_lr_init.toml (256 trials, 2-16-1 tanh, 1000 epochs); W1 x 16 the same job with
16 times the seeds (4,096 trials). The comparators (benchmarks/plain.py) are a plain numpy MLP
a user would write, in a loop and stacked, and Ray Tune running it (pip install -e
'.[bench]'); gdsearch's own code is never its own comparator. Every measurement runs in a fresh
process with one BLAS thread; each figure is a median of --runs; ratios are between rows of
one invocation. The sections live in benchmarks/: speed, storage, search, reports, landscapes,
samplers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for imports

from benchmarks import harness, landscapes, reports, samplers, search, speed, storage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--scale", type=int, default=16, help="W1 x SCALE is the large workload")
    parser.add_argument(
        "--tune-trials",
        type=int,
        default=32,
        help="W1 trials Ray Tune runs under its defaults (0: no Tune)",
    )
    parser.add_argument(
        "--load-repeats", type=int, default=15, help="loads of each kind per result set (median)"
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=100_000,
        help="trials of the reports' synthetic result set (0: none)",
    )
    sections = parser.add_mutually_exclusive_group()
    sections.add_argument("--speed", action="store_true", help="only the speed targets")
    sections.add_argument(
        "--quick", action="store_true", help="the speed section on W1 alone, one run each, no Tune"
    )
    sections.add_argument(
        "--smoke",
        action="store_true",
        help="every measurement once on tiny inputs: that the benchmark runs",
    )
    sections.add_argument("--loading", action="store_true", help="only the loading section")
    sections.add_argument("--numerics", action="store_true", help="only the numerics section")
    sections.add_argument("--reports", action="store_true", help="only the reports section")
    sections.add_argument(
        "--landscapes", action="store_true", help="only the loss-landscapes section"
    )
    sections.add_argument(
        "--samplers", action="store_true", help="only the model-based search section"
    )
    sections.add_argument(
        "--against",
        type=Path,
        metavar="TREE",
        help="only W1 with this tree's gdsearch against TREE's",
    )
    args = parser.parse_args(argv)
    print(f"machine: {harness.machine()}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if args.smoke:
            smoke(folder)
        elif args.loading:
            sets = {"W1": harness.child("gdsearch-run", str(harness.W1), "ray")}
            storage.loading({k: r["results"] for k, r in sets.items()}, args.load_repeats)
        elif args.numerics:
            search.numerics(folder, args.runs)
        elif args.reports:
            reports.reports(folder, args.runs, args.scale, args.synthetic, None)
        elif args.landscapes:
            landscapes.landscapes(folder, args.runs)
        elif args.samplers:
            samplers.samplers(folder, args.runs)
        elif args.against:
            search.against(args.against.resolve(), args.runs)
        elif args.quick or args.speed:
            quick = args.quick
            runs = 1 if quick and "--runs" not in sys.argv else args.runs
            ratios = speed.trial_epochs(folder, runs, reference=not quick)
            ratios |= speed.end_to_end(
                folder, runs, 0 if quick else args.scale, 0 if quick else args.tune_trials
            )
            if not quick:
                speed.cold_compile(folder, runs)
            speed.targets(ratios)
        else:
            everything(folder, args)
    return 0


def everything(folder: Path, args: argparse.Namespace) -> None:
    ratios = speed.trial_epochs(folder, args.runs)
    ratios |= speed.end_to_end(folder, args.runs, args.scale, args.tune_trials)
    speed.cold_compile(folder, args.runs)
    speed.targets(ratios)
    search.small_job(args.runs)
    search.halving(args.runs)
    search.update_rules(folder, args.runs)
    search.numerics(folder, args.runs)
    sets = {"W1": harness.child("gdsearch-run", str(harness.W1), "ray")["results"]}
    if args.scale > 1:
        large = harness.scaled_w1(args.scale, folder)
        sets[f"W1 x {args.scale}"] = harness.child("gdsearch-run", str(large), "ray")["results"]
    storage.loading(sets, args.load_repeats)
    storage.compaction(folder, args.runs)
    reports.reports(folder, args.runs, args.scale, args.synthetic, None)
    landscapes.landscapes(folder, args.runs)
    samplers.samplers(folder, args.runs)


def smoke(folder: Path) -> None:
    """Every kind of measurement once, on the seed job (and Tune on two of its trials): that
    the benchmark's code runs, not how fast. CI runs this."""
    from benchmarks.measures import write_inputs

    inputs = str(write_inputs(harness.SEED, folder / "seed.npz"))
    job = str(harness.SEED)
    for kind, extra in (
        ("populations", (job,)),
        ("plain-loop", (inputs,)),
        ("plain-stacked", (inputs,)),
        ("gdsearch-run", (job, "auto")),
    ):
        r = harness.child(kind, *extra)
        print(f"{kind}: {r['trials']} trials, {r['wall_s']:.2f} s")
    ran = harness.child("gdsearch-run", job, "auto")["results"]
    print(f"load: {harness.child('load', ran, '1')['rows']} rows")
    drawn = harness.cli_child(["landscape", ran, "--resolution", "5", "--no-progress"])
    print(f"landscape: {drawn['wall_s']:.2f} s")
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        print("tune: Ray Tune not installed (pip install -e '.[bench]'), skipped")
    else:
        r = harness.child("tune", inputs, "0", "1", "7")
        print(f"tune: {r['trials']} trials")
    harness.table("smoke", ["check", "result"], [["every measurement ran", "yes"]])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        from benchmarks.measures import run_measure

        run_measure(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
