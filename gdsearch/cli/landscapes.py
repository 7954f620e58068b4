"""``gdsearch landscape``: the loss landscapes of stored trials, drawn and stored."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from gdsearch.cli.options import json_flag, positive_int, print_json, where_clause


def add_landscape(commands: Any) -> None:
    from gdsearch.mlp.landscape import LandscapeSettings

    default = LandscapeSettings()
    landscape = commands.add_parser(
        "landscape",
        help="draw the SSE around chosen trials' weights, with their descent on it",
        description="Train chosen trials of a result set again from their seeds and store, for "
        "each, the SSE on four slices through weight space: the line from its initial to its "
        "final weights, a 2-D slice along two filter-normalised random directions, the plane "
        "of its path (with the path on it) and its sharpest direction. By default each "
        "comparison group's smallest, best and largest stable rate of its first seed. Trials "
        "whose landscape is stored are skipped, so running again resumes.",
    )
    landscape.add_argument("results", help="a results directory or URI, e.g. results/moons")
    chosen = landscape.add_mutually_exclusive_group()
    chosen.add_argument("--trials", nargs="+", metavar="TRIAL_ID", help="these trials")
    chosen.add_argument("--all", action="store_true", help="every stored trial that did not fail")
    landscape.add_argument(
        "--where",
        type=where_clause,
        action="append",
        metavar="'COLUMN OP VALUE'",
        help="the trials whose columns match, as load_results' filters (repeat: all must "
        "hold), e.g. --where 'lr >= 0.01' --where 'init in xavier,he'; with --trials, those of "
        "them that match",
    )
    landscape.add_argument(
        "--resolution",
        type=positive_int,
        default=default.resolution,
        help=f"points along each axis of every grid, odd (default {default.resolution})",
    )
    landscape.add_argument(
        "--span",
        type=float,
        default=default.span,
        help="the random slice's half-width, in filter-normalised units "
        f"(default {default.span:g})",
    )
    landscape.add_argument(
        "--line",
        type=float,
        nargs=2,
        metavar=("FROM", "TO"),
        default=list(default.line),
        help="the line's ends in α, 0 the initial and 1 the final weights "
        f"(default {default.line[0]:g} {default.line[1]:g})",
    )
    landscape.add_argument(
        "--biases", action="store_true", help="give biases a direction in the random slice too"
    )
    landscape.add_argument(
        "--sharpest-span",
        type=float,
        default=default.sharpest_span,
        help="half-width along the sharpest direction, in units of weight "
        f"(default {default.sharpest_span:g})",
    )
    landscape.add_argument(
        "--margin",
        type=float,
        default=default.margin,
        help="the path plane's grid beyond the path, a share of its extent "
        f"(default {default.margin:g})",
    )
    landscape.add_argument(
        "--path-points",
        type=positive_int,
        default=default.path_points,
        help=f"epochs of the path kept at most (default {default.path_points})",
    )
    landscape.add_argument(
        "--fresh", action="store_true", help="delete the stored landscapes first"
    )
    landscape.add_argument(
        "--executor",
        choices=("auto", "local", "ray"),
        default="auto",
        help="where to draw: local, ray, or auto (in this process when no cluster is named "
        "and the work is a few seconds)",
    )
    landscape.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS)")
    landscape.add_argument(
        "--num-cpus", type=positive_int, help="cores of the embedded Ray (default: all)"
    )
    landscape.add_argument("--no-progress", action="store_true", help="no progress bar")
    landscape.add_argument(
        "--wait", action="store_true", help="wait for a run writing there (default: refuse)"
    )
    json_flag(landscape)
    landscape.set_defaults(handler=_landscape)


def _landscape(args: argparse.Namespace) -> int:
    from gdsearch.errors import InputError
    from gdsearch.mlp.landscape import LandscapeSettings
    from gdsearch.search.landscapes import draw_landscapes

    settings = LandscapeSettings(
        resolution=args.resolution,
        span=args.span,
        line=(args.line[0], args.line[1]),
        biases=args.biases,
        sharpest_span=args.sharpest_span,
        margin=args.margin,
        path_points=args.path_points,
    )
    if args.all and args.where:
        raise InputError("--all: every stored trial, but --where chooses some; drop one of them")
    summary = draw_landscapes(
        args.results,
        trial_ids=args.trials,
        filters=[("status", "!=", "failed")] if args.all else args.where,
        settings=settings,
        fresh=args.fresh,
        executor=args.executor,
        address=args.address,
        num_cpus=args.num_cpus,
        show_progress=not args.no_progress,
        wait=args.wait,
    )
    if args.json:
        print_json(dataclasses.asdict(summary))
    else:
        print(
            f"{summary.path}: landscapes of {summary.chosen} trials; drew {summary.drawn}, "
            f"{summary.skipped} already stored; {summary.wall_s:.1f} s "
            f"({'in this process' if summary.executor == 'local' else 'on Ray'})"
        )
    if summary.failed:
        print(
            f"gdsearch: the landscapes of {summary.failed} trials failed "
            f"({summary.first_error}); run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0
