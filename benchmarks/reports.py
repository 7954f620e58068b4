"""Reports and `show` on growing result sets: each command's whole process, wall time and peak
RSS."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import W1, cli_child, median_cli, scaled_w1


def synthetic_results(folder: Path, trials: int, epochs: int, per_part: int = 1000) -> Path:
    """A result set of ``trials`` trials x ``epochs`` epochs written straight through the store:
    4 init schemes x trials / 400 learning rates x 100 seeds, SSE curves a·exp(−k·t) + c with
    noise, the largest rates diverging. Nothing is trained; the shape is a real search's."""
    import hashlib

    import numpy as np
    import pyarrow as pa

    from gdsearch.analysis.trajectory import trajectory
    from gdsearch.results.schema import HISTORY_SCHEMA, TRIALS_SCHEMA
    from gdsearch.results.store import ResultsStore

    seeds, inits = 100, ["zeros", "normal", "xavier", "he"]
    lrs = np.geomspace(1e-3, 3.0, max(1, trials // (seeds * len(inits))))
    store = ResultsStore(folder / f"synthetic-{trials}")
    store.prepare("")
    rng = np.random.default_rng(0)
    grid = [(init, lr, seed) for init in inits for lr in lrs for seed in range(seeds)][:trials]
    t = np.arange(epochs + 1)
    for start in range(0, len(grid), per_part):
        chunk = grid[start : start + per_part]
        K = len(chunk)
        lr = np.array([c[1] for c in chunk])
        rate = np.minimum(lr, 1.0) * rng.uniform(0.5, 1.5, K)  # (K,)
        sse = (50 * np.exp(-rate[:, None] * t) + rng.uniform(1, 5, K)[:, None]) * (
            1 + 0.01 * rng.standard_normal((K, epochs + 1))
        )  # (K, epochs + 1)
        diverged = np.where(lr > 1.5, rng.integers(5, 50, K), -1)
        lengths = np.where(diverged >= 0, diverged, epochs + 1)
        sse[t[None, :] >= lengths[:, None]] = np.nan
        ids = [hashlib.sha256(repr(c).encode()).hexdigest() for c in chunk]
        metrics = trajectory(sse)
        rows, cols = np.nonzero(~np.isnan(sse))
        history = pa.Table.from_arrays(
            [
                pa.array(ids).take(pa.array(rows)),
                pa.array(cols.astype(np.int32)),
                pa.array(sse[rows, cols]),
            ],
            schema=HISTORY_SCHEMA,
        )
        table = {
            "trial_id": ids,
            "lr": lr,
            "init": [c[0] for c in chunk],
            "hidden": ["16"] * K,
            "activation": ["tanh"] * K,
            "batch_size": [0] * K,
            "seed": [c[2] for c in chunk],
            "epochs": [epochs] * K,
            "status": np.where(diverged >= 0, "diverged", "ok"),
            "final_sse": sse[np.arange(K), lengths - 1],
            "min_sse": np.nanmin(sse, axis=1),
            "diverged_epoch": pa.array(diverged.astype(np.int32), mask=diverged < 0),
            "node": [""] * K,
            "wall_s": np.zeros(K),
            "momentum": np.zeros(K),
            "nesterov": [False] * K,
            "weight_decay": np.zeros(K),
            "lr_schedule": ["constant"] * K,
            "warmup_epochs": [0] * K,
            **{
                name: values.astype(np.int32) if name.endswith("_epoch") else values
                for name, values in metrics.items()
            },
        }
        for name in TRIALS_SCHEMA.names:  # settings this search leaves unset
            table.setdefault(name, pa.nulls(K, TRIALS_SCHEMA.field(name).type))
        store.write_part(pa.Table.from_pydict(table, schema=TRIALS_SCHEMA), history)
    store.write_manifest(
        {"name": f"synthetic-{trials}", "status": "complete", "trials_total": trials}
    )
    return Path(store.location)


def reports(folder: Path, runs: int, scale: int, synthetic: int, against: Path | None) -> None:
    """gdsearch report, report --interactive and show on W1, W1 x SCALE and a synthetic set of
    SYNTHETIC trials x 1,000 epochs: wall time and peak RSS of each command's whole process
    (median of runs)."""
    sets = []
    for label, job in (("W1", W1), (f"W1 x {scale}", scaled_w1(scale, folder))):
        spec_name = "moons-lr-init" if label == "W1" else f"moons-lr-init-x{scale}"
        results = folder / "results"
        cli_child(["run", str(job), "--results-dir", str(results), "--no-progress"])
        sets.append((label, results / spec_name))
    if synthetic:
        sets.append(
            (f"synthetic {synthetic:,} x 1,000 epochs", synthetic_results(folder, synthetic, 1000))
        )
    print(f"\nReports and show on growing result sets (whole processes; median of {runs} runs)\n")
    head = "| result set | history rows | command | wall s | peak RSS MiB | RSS × W1 |"
    if against:
        head += " before: wall s | before: peak RSS MiB |"
    print(head)
    print("|---|---:|---|---:|---:|---:|" + ("---:|---:|" if against else ""))
    import pyarrow.parquet as pq

    base: dict[str, float] = {}
    for label, path in sets:
        rows = sum(
            pq.ParquetFile(p).metadata.num_rows for p in (path / "history").glob("*.parquet")
        )
        commands = {
            "report": ["report", str(path), "-o", str(folder / "r.html")],
            "report --interactive": [
                "report",
                str(path),
                "--interactive",
                "-o",
                str(folder / "r-interactive.html"),
            ],
            "show": ["show", str(path)],
        }
        for kind, command in commands.items():
            r = median_cli(command, runs)
            base.setdefault(kind, r["peak_rss_mib"])
            rss = r["peak_rss_mib"]
            line = (
                f"| {label} | {rows:,} | {kind} | {r['wall_s']:.2f} | {rss:.0f} | "
                f"{rss / base[kind]:.2f} |"
            )
            if against and not label.startswith("synthetic"):
                old = median_cli(command, runs, against)
                line += f" {old['wall_s']:.2f} | {old['peak_rss_mib']:.0f} |"
            elif against:
                line += " | |"
            print(line, flush=True)
