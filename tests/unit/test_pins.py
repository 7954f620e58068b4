"""What a change of the code must not change: trial ids, histories, and stored result sets.

The trial ids were computed with gdsearch 0.1.0; the portable histories' digest with the first
version of the portable numerics (``numerics.PORTABLE_VERSION`` 1), which moved the histories'
last bits once, on purpose; the BLAS path's digest with 0.1.0 again. A refactor that moves a
single bit of a history, or renames one key of a trial's identity, fails here.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info

from gdsearch.job.spec import load_job, parse_job
from gdsearch.search.unit import train_unit
from tests.conftest import REPO

TRIAL_IDS = {
    "seed_sine": (13, "f7bab56b3c55c73b72191e3092421d640547f4ca0bfdb336f065d662af888445"),
    "moons_lr_init": (256, "2428273950ec62c9f3c7155a5406566f7abba81eeb08fb90282820c3295400c4"),
    "iris_arch": (150, "d14a57be78ece4b19aa9aa82d1b6aea61cd1bc81d4ae538117c05af5162af81f"),
    "moons_halving": (256, "2428273950ec62c9f3c7155a5406566f7abba81eeb08fb90282820c3295400c4"),
    "sine_bracket": (10, "3b2fb1f4a044aee1b086d3398e5df9caab61cd318a2db91bf74b683acb21d7b6"),
}
MOONS_HISTORY = (185013, "683d76687ae02563016c988839c029bf2d8f146e13486d0d17e086aa80692e34")
"""The portable path's (history rows, sha256 of trial_id, epoch and sse in trial_id order): the
same on every machine, so there is no skip."""
MOONS_HISTORY_BLAS = {
    # OpenBLAS kernel → the same for numerics = "blas", the arithmetic of 0.1.0. Its last bits
    # follow the kernel OpenBLAS picks for the CPU (and numpy's SIMD targets), so the pin is
    # kept per kernel.
    "SkylakeX": (185013, "273112df212489a2ceccf2f1b10611b481ccda7e6dc02e3c538594d8aec652c5"),
}


@pytest.mark.parametrize("job", sorted(TRIAL_IDS))
def test_shipped_jobs_keep_their_trial_ids(job: str) -> None:
    ids = sorted(t.trial_id for t in load_job(REPO / "jobs" / f"{job}.toml").trials())
    assert (len(ids), hashlib.sha256(",".join(ids).encode()).hexdigest()) == TRIAL_IDS[job]


def _history_digest(history: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(history["trial_id"].str.cat().encode())
    digest.update(history["epoch"].to_numpy(np.int32).tobytes())
    digest.update(history["sse"].to_numpy(np.float64).tobytes())
    return digest.hexdigest()


def _moons_history(numerics: str) -> tuple[int, str]:
    path = REPO / "jobs" / "moons_lr_init.toml"
    spec = parse_job(
        path.read_text().replace("[train]", f'[train]\nnumerics = "{numerics}"'), str(path)
    )
    X, Y = spec.load_data()
    parts = [
        train_unit(X, Y, [t for t in spec.trials() if t.init == init])[1]
        for init in ("zeros", "normal", "xavier", "he")
    ]
    history = pd.concat([p.to_pandas() for p in parts])
    history = history.sort_values(["trial_id", "epoch"], ignore_index=True)
    return len(history), _history_digest(history)


def test_moons_lr_init_histories_are_bit_identical_to_the_pinned_digest_on_every_machine() -> None:
    assert _moons_history("portable") == MOONS_HISTORY


def test_moons_lr_init_blas_histories_are_bit_identical_to_0_1_on_the_pinned_kernel() -> None:
    kernel = next(
        (i.get("architecture") for i in threadpool_info() if i["internal_api"] == "openblas"), None
    )
    if kernel not in MOONS_HISTORY_BLAS:
        pytest.skip(f"no digest pinned for OpenBLAS kernel {kernel!r}")
    assert _moons_history("blas") == MOONS_HISTORY_BLAS[kernel]
