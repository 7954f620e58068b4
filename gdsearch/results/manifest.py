"""A result set's manifest: what was run, on what, and whether new trials may join it.

``manifest.json`` records the job (its document and file), the compatibility key, the data's
shape, the cluster, every run's timings and the counts by status. The compatibility key
(:meth:`gdsearch.job.spec.JobSpec.compat_key`) holds the settings every stored trial must share
and the data's digest; a run whose key differs from the stored one is refused.

Numerics: each stored trial records what computed it (the trials table's ``numerics``, a
:func:`gdsearch.mlp.numerics.label`), and the manifest how many trials each recorded. A run
that would add trials computed otherwise than the stored ones is refused, unless asked to
(``allow_change``): their histories could differ in the last bits, and comparisons across them
would measure the machines. Trials stored before numerics were recorded (gdsearch 0.1, which
had only the BLAS path) are :data:`UNRECORDED`: not compared, as keys a manifest did not
record yet are not, so such a result set resumes; where it then holds trials of both, the
report says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gdsearch import __version__
from gdsearch.errors import ResultsError, shown
from gdsearch.job.spec import JobSpec
from gdsearch.results.store import ResultsStore

RECORDED_SINCE_0_1 = (
    "job_seed",
    "data",
    "epochs",
    "grad_scale",
    "divergence_factor",
    "data_sha256",
)
"""Compatibility keys that every manifest records. A key missing from an older manifest is not
compared. Every other key is recorded only when its setting is on, so there a missing key means
off: a new setting needs no entry here."""


def check_compatible(store: ResultsStore, wanted: dict[str, Any], fresh: bool) -> None:
    """Refuse to add trials to results computed under other settings or on other data."""
    if fresh or not store.exists():
        return
    stored = store.read_manifest().get("compat")
    if stored is None:
        return
    changed = sorted(
        k
        for k in wanted.keys() | stored.keys()
        if (k in stored or k not in RECORDED_SINCE_0_1) and stored.get(k) != wanted.get(k)
    )
    if not changed:
        return
    differences = [
        "data contents (the data changed since they were stored: sha256 "
        f"{str(stored[k])[:12]}… then, {wanted[k][:12]}… now)"
        if k == "data_sha256"
        else f"{k} (stored {shown(stored.get(k, 'off'))}, now {shown(wanted.get(k, 'off'))})"
        for k in changed
    ]
    raise ResultsError(
        f"{store.location}: holds results of this job name with other "
        f"{'; '.join(differences)}; run with --fresh to start over, or give the job another "
        "[job] name"
    )


UNRECORDED = "unrecorded (stored before numerics were recorded: BLAS)"
"""What a trial stored without a ``numerics`` value counts as."""


def numerics_counts(labels: Iterable[Any]) -> dict[str, int]:
    """How many trials each numerics label computed, from the trials table's ``numerics``
    column (null: :data:`UNRECORDED`)."""
    counts: dict[str, int] = {}
    for value in labels:
        key = value if isinstance(value, str) else UNRECORDED
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def mixed_numerics(counts: dict[str, int]) -> str | None:
    """A warning where a result set holds trials computed with more than one numerics."""
    if len(counts) < 2:
        return None
    listed = "; ".join(f"{n} by {label}" for label, n in counts.items())
    return (
        f"this result set mixes numerics, so its histories may differ in the last bits by "
        f"where they were computed, not only by their settings: {listed}"
    )


def check_numerics(store: ResultsStore, wanted: str, allow_change: bool) -> None:
    """Refuse to add trials computed with numerics ``wanted`` to results computed otherwise.

    Raises:
        ResultsError: a stored trial records another numerics, and ``allow_change`` is off.
    """
    if allow_change or not store.exists() or not store.has_trials_dir():
        return
    stored = numerics_counts(store.read_table("trials", ["numerics"]).column(0).to_pylist())
    other = sorted(label for label in stored if label not in (wanted, UNRECORDED))
    if other:
        raise ResultsError(
            f"{store.location}: holds trials computed with numerics {shown(other[0])}, and this "
            f"run computes {shown(wanted)}: their histories could differ in the last bits; run "
            "with --allow-numerics-change to add to them anyway (the report will say they "
            "mix), or with --fresh to start over"
        )


def new_manifest(
    spec: JobSpec,
    compat: dict[str, Any],
    previous: dict[str, Any],
    started_at: str,
    cluster: dict[str, Any],
    X: np.ndarray,
    Y: np.ndarray,
    total: int,
) -> dict[str, Any]:
    """The manifest of a run that starts now, carrying on ``previous`` runs' history."""
    return {
        "format": 1,
        "gdsearch_version": __version__,
        "name": spec.name,
        "job_file": spec.path,
        # where the job's relative data paths resolve, for loading its data from anywhere
        "job_dir": str((Path(spec.path).parent if spec.path else Path.cwd()).resolve()),
        "spec": spec.document,
        "compat": compat,
        "data_shape": {
            "n_samples": int(X.shape[0]),
            "n_inputs": int(X.shape[1]),
            "n_outputs": int(Y.shape[1]),
            # samples set aside and measured on, never trained on ([data] validation)
            **({"held_out": len(spec.held_out(X, Y)[2] or ())} if spec.validation else {}),
        },
        "trials_total": total,
        "created_at": previous.get("created_at", started_at),
        "started_at": started_at,
        "cluster": cluster,
        "runs": previous.get("runs", []),
        **({"repairs": previous["repairs"]} if "repairs" in previous else {}),
    }


def now() -> str:
    """The time in UTC, as the manifest writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
