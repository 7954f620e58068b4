"""Damaged results: parts written by a real run, then truncated, overwritten or orphaned. Loading
names the bad file; `gdsearch repair` drops it and its partner; the next run trains exactly
those trials again, and the tables equal those of a run that was never damaged."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import gdsearch
from gdsearch.cli import main
from gdsearch.errors import ResultsError
from gdsearch.results.repair import repair_results
from tests.conftest import SMALL_JOB

pytestmark = pytest.mark.ray

VARYING = ["node", "wall_s"]  # where and how fast a trial ran: the only columns runs may differ in


def comparable(results: gdsearch.Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials (without node and wall_s) and history tables, in a fixed order."""
    return results.trials.drop(columns=VARYING), results.history


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("job") / "small.toml"
    path.write_text(SMALL_JOB)
    return path


@pytest.fixture(scope="module")
def reference(local_ray: None, job: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The result set of one uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    assert gdsearch.run_search(job, root, show_progress=False).ran == 32
    return root / "small"


@pytest.fixture
def damaged_copy(reference: Path, tmp_path: Path) -> Path:
    """A copy of the reference result set (its real parts) to damage; returns results/small."""
    target = tmp_path / "results" / "small"
    shutil.copytree(reference, target)
    return target


def first_part(results: Path, kind: str) -> Path:
    return sorted((results / kind).glob("part-*.parquet"))[0]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_page_bytes(path: Path) -> None:
    """Flip 4 bytes inside the last column's data page, as a bad disk block would."""
    metadata = pq.read_metadata(path)
    chunk = metadata.row_group(0).column(metadata.num_columns - 1)
    start = min(o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o)
    end = start + chunk.total_compressed_size  # a data page's values end its column chunk
    data = bytearray(path.read_bytes())
    data[end - 8 : end - 4] = bytes(b ^ 0xFF for b in data[end - 8 : end - 4])
    path.write_bytes(bytes(data))


def zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "trials-part-truncated": ("trials", truncate),
    "history-part-truncated": ("history", truncate),
    "history-part-bytes-flipped-in-a-page": ("history", flip_page_bytes),
    "trials-part-bytes-flipped-in-a-page": ("trials", flip_page_bytes),
    "trials-part-zeroed": ("trials", zero),
    "history-part-empty": ("history", lambda path: path.write_bytes(b"")),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_part_is_named_on_load_then_repaired_and_rerun_to_the_same_tables(
    reference: Path,
    damaged_copy: Path,
    job: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
) -> None:
    kind, spoil = DAMAGE[damage]
    part = first_part(damaged_copy, kind)
    partner = damaged_copy / ("history" if kind == "trials" else "trials") / part.name
    lost = len(pd.read_parquet(reference / "trials" / part.name))
    spoil(part)

    with pytest.raises(ResultsError, match=part.name) as info:
        gdsearch.load_results(damaged_copy)
    assert "gdsearch repair" in str(info.value)
    capsys.readouterr()
    # show reads the trials parts only; report reads every history part too
    out = str(damaged_copy / "report.html")
    assert (
        main(
            ["show", str(damaged_copy)]
            if kind == "trials"
            else ["report", str(damaged_copy), "-o", out]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(part) in err

    assert main(["repair", str(damaged_copy)]) == 0
    out = capsys.readouterr().out
    assert f"dropped {part}: unreadable" in out
    assert f"dropped {partner}: its {kind} part is unreadable" in out
    assert f"{32 - lost} of 32 trials stored" in out
    assert not part.exists() and not partner.exists()
    assert len(gdsearch.load_results(damaged_copy).trials) == 32 - lost

    again = gdsearch.run_search(job, damaged_copy.parent, show_progress=False)
    assert (again.ran, again.skipped) == (lost, 32 - lost)
    repaired, intact = gdsearch.load_results(damaged_copy), gdsearch.load_results(reference)
    for got, want in zip(comparable(repaired), comparable(intact), strict=True):
        pd.testing.assert_frame_equal(got, want)
    assert repaired.manifest["status"] == "complete"
    trials_first = [str(damaged_copy / k / part.name) for k in ("trials", "history")]
    assert repaired.manifest["repairs"][0]["dropped"] == trials_first


def test_orphans_of_a_run_killed_between_two_writes_are_dropped_and_rerun(
    reference: Path, damaged_copy: Path, job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A history part whose trials part never came, a trials part whose history is gone."""
    history_only = first_part(damaged_copy, "trials")
    history_only.unlink()
    trials_only = sorted((damaged_copy / "history").glob("part-*.parquet"))[-1]
    trials_only.unlink()
    assert main(["repair", str(damaged_copy), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would drop" in out and (damaged_copy / "history" / history_only.name).exists()
    assert main(["repair", str(damaged_copy)]) == 0
    out = capsys.readouterr().out
    assert f"history/{history_only.name}: its trials part is missing" in out
    assert f"trials/{trials_only.name}: its history part is missing" in out
    assert sorted(p.name for p in (damaged_copy / "trials").iterdir()) == sorted(
        p.name for p in (damaged_copy / "history").iterdir()
    )
    gdsearch.run_search(job, damaged_copy.parent, show_progress=False)
    repaired, intact = gdsearch.load_results(damaged_copy), gdsearch.load_results(reference)
    for got, want in zip(comparable(repaired), comparable(intact), strict=True):
        pd.testing.assert_frame_equal(got, want)


def test_temporary_files_are_invisible_to_every_reader_and_repair_drops_them(
    reference: Path, damaged_copy: Path
) -> None:
    """A whole, valid part under a temporary name would be read if readers saw such names."""
    for kind in ("trials", "history"):
        part = first_part(damaged_copy, kind)
        shutil.copy(part, part.parent / f".tmp-0123abcd-{part.name}")  # a finished write
        (part.parent / ".tmp-4567ef89-part-x.parquet").write_bytes(part.read_bytes()[:100])
    loaded, intact = gdsearch.load_results(damaged_copy), gdsearch.load_results(reference)
    pd.testing.assert_frame_equal(loaded.history, intact.history)
    for kind in ("trials", "history"):
        plain = pd.read_parquet(damaged_copy / kind)  # pandas alone, as promised
        assert len(plain) == len(getattr(intact, kind))
    report = repair_results(damaged_copy)
    assert len(report.dropped) == 4 and report.stored == 32
    assert all("did not finish" in item.reason for item in report.dropped)
    assert not list(damaged_copy.rglob(".tmp-*"))


def test_repair_of_an_intact_result_set_changes_nothing(
    damaged_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in damaged_copy.rglob("*") if p.is_file()}
    assert main(["repair", str(damaged_copy)]) == 0
    assert "nothing to repair; 32 of 32 trials stored" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in damaged_copy.rglob("*") if p.is_file()} == before


def test_repair_of_a_folder_without_results_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["repair", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "no results here" in err
