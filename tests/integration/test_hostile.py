"""Hostile input: each bad job or data file ends `gdsearch run` with exit code 2 and one line
naming the key or file and the value, before anything starts, and leaves every stored byte of
the results as it was. Also: a data file edited in place is refused, not resumed onto."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import gdsearch
from gdsearch.cli import main
from gdsearch.data import data_digest
from gdsearch.job.spec import load_job
from tests.conftest import REPO, SMALL_JOB

pytestmark = pytest.mark.ray

MOONS = 'dataset = "moons"\nn_samples = 60\nnoise = 0.2'


def job_text(
    *, name: str = '"small"', data: str = MOONS, train: str = "epochs = 60", search: str = ""
) -> str:
    """A job on the stored result set's name unless told otherwise; ``search`` adds axes."""
    return (
        f"[job]\nname = {name}\nseed = 7\n\n[data]\n{data}\n\n[train]\n{train}\n\n"
        f"[search]\nlr = [0.01, 0.1]\n{search}\n"
    )


def on_file(name: str, content: str | bytes) -> Callable[[Path], Path]:
    """A case whose job reads the data file ``name`` holding ``content``."""

    def write(folder: Path) -> Path:
        data = folder / name
        data.write_bytes(content.encode() if isinstance(content, str) else content)
        job = folder / "job.toml"
        job.write_text(job_text(data=f'dataset = "file"\npath = "{name}"\ntarget = "y"'))
        return job

    return write


def job_file(content: str | bytes) -> Callable[[Path], Path]:
    """A case that is a job file alone."""

    def write(folder: Path) -> Path:
        job = folder / "job.toml"
        job.write_bytes(content.encode() if isinstance(content, str) else content)
        return job

    return write


def sparse_csv_over_1_gib(folder: Path) -> Path:
    """A data file of 1 GiB and a byte (sparse: it takes no room on the disk)."""
    write = on_file("huge.csv", "x,y\n1,2\n")
    job = write(folder)
    os.truncate(folder / "huge.csv", (1 << 30) + 1)
    return job


def device_as_csv(folder: Path) -> Path:
    """A data "file" that is /dev/zero: endless, were it read."""
    job = on_file("zeros.csv", "")(folder)
    (folder / "zeros.csv").unlink()
    (folder / "zeros.csv").symlink_to("/dev/zero")
    return job


def wide_parquet(folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    job = on_file("wide.parquet", b"")(folder)
    columns = {f"c{i}": pa.array([1.0]) for i in range(20_000)}
    pq.write_table(pa.table({**columns, "y": pa.array([0.0])}), folder / "wide.parquet")
    return job


def wide_csv() -> str:
    names = ",".join(f"c{i}" for i in range(1_000_000))
    return f"{names},y\n" + ",".join(["1"] * 1_000_001) + "\n"


def many_classes_csv() -> str:
    return "x,y\n" + "".join(f"{i},label{i}\n" for i in range(20_000))


SEEDS_10 = "seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "grid-of-1e9-trials": (
        job_file(
            job_text(
                search="lr = { log = [1e-4, 1.0], num = 10000 }\n"
                f"init_scale = {{ linear = [0.1, 1.0], num = 10000 }}\n{SEEDS_10}"
            ).replace("lr = [0.01, 0.1]\n", "")
        ),
        ("[search] the grid", "1,000,000,000 trials"),
    ),
    "random-search-of-1e9-samples": (
        job_file(job_text(search='mode = "random"\nsamples = 1000000000')),
        ("[search] samples", "1000000000"),
    ),
    "epochs-1e12": (job_file(job_text(train="epochs = 1000000000000")), ("[train] epochs",)),
    "sixteen-layers-of-4096": (
        job_file(job_text(search=f"hidden = [[{', '.join(['4096'] * 16)}]]")),
        ("[search] hidden", "251,7", "weights and biases"),
    ),
    "layer-a-million-wide": (
        job_file(job_text(search="hidden = [[1000000]]")),
        ("[search] hidden", "[1000000]"),
    ),
    "activations-of-two-million-samples": (
        job_file(job_text(data=MOONS.replace("60", "2000000"), search="hidden = [[64]]")),
        ("[search] hidden", "2,000,000 samples"),
    ),
    "name-escapes-the-results-root": (job_file(job_text(name='"../../etc"')), ("'../../etc'",)),
    "name-is-an-absolute-path": (job_file(job_text(name='"/tmp/x"')), ("[job] name", "'/tmp/x'")),
    "name-is-dot-dot": (job_file(job_text(name='".."')), ("[job] name", "'..'")),
    "toml-arrays-nested-5000-deep": (
        job_file(job_text(search="hidden = " + "[" * 5000 + "]" * 5000)),
        ("not valid TOML", "nested too deeply"),
    ),
    "toml-inline-tables-nested-5000-deep": (
        job_file(job_text(search="seed = " + "{a = " * 5000 + "1" + "}" * 5000)),
        ("not valid TOML", "nested too deeply"),
    ),
    "toml-dotted-key-of-100001-parts": (
        job_file(job_text(search="init." + ".".join(["a"] * 100_000) + " = 1")),
        ("line 15", "dotted key of 100,001 parts"),
    ),
    "toml-string-of-900-kB": (
        job_file(job_text(name='"' + "x" * 900_000 + '/"')),
        ("[job] name", "'xxxxxxxx", "...", "xxx/'"),
    ),
    "toml-array-of-150000-values": (
        job_file(job_text(search="seed = [" + "0, " * 150_000 + "-1]")),
        ("[search] seed", "but got -1"),
    ),
    "toml-file-over-1-MiB": (
        job_file(job_text() + "# " + "x" * (1 << 20)),
        ("more than 1,048,576 bytes",),
    ),
    "job-file-of-binary-garbage": (job_file(bytes(range(256)) * 64), ("not UTF-8",)),
    "data-nan": (
        on_file("nan.csv", "a,b,y\n1,2,0\n3,,1\n5,6,0\n"),
        ("nan.csv", "'b' row 1", "nan"),
    ),
    "data-text-in-a-number-column": (
        on_file("text.csv", "a,b,y\n1,2,0\n3,abc,1\n"),
        ("text.csv", "column 'b'", "'abc'"),
    ),
    "data-ragged-rows": (
        on_file("ragged.csv", "a,b,y\n1,2,0\n3,4,1,9\n5,6,0\n"),
        ("ragged.csv", "line 3"),
    ),
    "data-empty-file": (on_file("empty.csv", ""), ("empty.csv", "cannot be read")),
    "data-header-only": (on_file("header.csv", "a,b,y\n"), ("header.csv", "no rows")),
    "data-a-million-columns": (
        on_file("wide.csv", wide_csv()),
        ("wide.csv", "columns, more than the 10,000 allowed"),
    ),
    "data-binary-garbage": (
        on_file("garbage.csv", bytes(range(255, -1, -1)) * 64),
        ("garbage.csv", "cannot be read"),
    ),
    "data-file-over-1-GiB": (sparse_csv_over_1_gib, ("huge.csv", "1,073,741,825 bytes")),
    "data-file-that-is-dev-zero": (device_as_csv, ("/dev/zero", "not a regular file")),
    "data-parquet-of-20001-columns": (
        wide_parquet,
        ("wide.parquet", "20,001 columns, more than the 10,000 allowed"),
    ),
    "data-parquet-that-is-not-parquet": (
        on_file("table.parquet", "a,y\n1,0\n2,1\n"),
        ("table.parquet", "not a Parquet file"),
    ),
    "data-20000-one-hot-classes": (
        on_file("labels.csv", many_classes_csv()),
        ("labels.csv", "20,000 classes", "100,000,000 values"),
    ),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` by its bytes' sha256, and every directory."""
    return {
        str(path.relative_to(root)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "directory"
        )
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def stored(local_ray: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results root holding one real run of the small job (name "small")."""
    folder = tmp_path_factory.mktemp("stored")
    job = folder / "small.toml"
    job.write_text(SMALL_JOB)
    root = folder / "results"
    summary = gdsearch.run_search(job, root, show_progress=False)
    assert summary.ran == 32
    return root


def test_the_cases_cover_every_kind_of_hostile_input_the_issue_names() -> None:
    kinds = ("grid", "epochs", "layer", "name", "toml", "nan", "text", "ragged", "empty")
    kinds += ("header", "million-columns", "garbage", "not-parquet")
    for kind in kinds:
        assert any(kind in case for case in CASES), kind


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_exits_2_with_one_line_and_changes_no_stored_byte(
    stored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    write, fragments = CASES[case]
    job = write(tmp_path)
    before = snapshot(stored)
    capsys.readouterr()
    started = time.perf_counter()
    code = main(["run", str(job), "--results-dir", str(stored), "--no-progress"])
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err[:2000]
    assert lines[0].startswith(f"gdsearch: error: {job}: ")
    assert len(lines[0]) < 600, lines[0][:2000]
    for fragment in fragments:
        assert fragment in lines[0]
    assert elapsed < 10.0  # refused before any expansion, training or full read
    assert snapshot(stored) == before


SUBPROCESS_CASES = (
    "grid-of-1e9-trials",
    "name-escapes-the-results-root",
    "toml-dotted-key-of-100001-parts",
    "data-a-million-columns",
    "data-parquet-that-is-not-parquet",
)


def test_hostile_input_through_the_command_line_leaves_results_byte_for_byte(
    stored: Path, tmp_path: Path
) -> None:
    """The real command in fresh processes: exactly one stderr line, nothing else printed."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    before = snapshot(stored)
    assert "small/manifest.json" in before and any("/trials/part-" in p for p in before)
    for case in SUBPROCESS_CASES:
        write, fragments = CASES[case]
        folder = tmp_path / case
        folder.mkdir()
        job = write(folder)
        command = [sys.executable, "-m", "gdsearch.cli", "run", str(job)]
        run = subprocess.run(
            [*command, "--results-dir", str(stored)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2, (case, run.stderr[-2000:])
        assert run.stdout == ""
        assert len(run.stderr.splitlines()) == 1, (case, run.stderr[-2000:])
        for fragment in fragments:
            assert fragment in run.stderr, case
    assert snapshot(stored) == before


# --- a data file edited in place ------------------------------------------------------------


def test_data_file_edited_in_place_is_refused_and_fresh_starts_over(
    local_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "points.csv"
    data.write_text("x,y\n" + "".join(f"{i / 10},{(i / 10) ** 2}\n" for i in range(20)))
    job = tmp_path / "fit.toml"
    job.write_text(
        '[job]\nname = "fit"\n\n[data]\ndataset = "file"\npath = "points.csv"\ntarget = "y"\n\n'
        "[train]\nepochs = 20\n\n[search]\nlr = [0.01, 0.1]\nhidden = [[], [3]]\n"
    )
    root = tmp_path / "results"
    assert gdsearch.run_search(job, root, show_progress=False).ran == 4
    ids = [t.trial_id for t in load_job(job).trials()]
    before = snapshot(root)

    data.write_text(data.read_text().replace("0.5,0.25", "0.5,0.26"))  # one value, same path
    assert [t.trial_id for t in load_job(job).trials()] == ids  # ids alone cannot tell
    capsys.readouterr()
    code = main(["run", str(job), "--results-dir", str(root), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "data contents" in err and "--fresh" in err and str(root / "fit") in err
    assert snapshot(root) == before

    again = gdsearch.run_search(job, root, fresh=True, show_progress=False)
    assert (again.ran, again.skipped) == (4, 0)
    manifest = gdsearch.load_results(again.path).manifest
    assert manifest["compat"]["data_sha256"] == data_digest(*load_job(job).load_data())


def test_results_of_a_version_that_recorded_no_data_digest_still_resume(
    stored: Path, tmp_path: Path
) -> None:
    """A manifest without data_sha256 is compared on what it has, and gains the digest."""
    import shutil

    root = tmp_path / "results"
    shutil.copytree(stored, root)
    manifest_path = root / "small" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    digest = manifest["compat"].pop("data_sha256")
    manifest_path.write_text(json.dumps(manifest))
    job = tmp_path / "small.toml"
    job.write_text(SMALL_JOB)
    summary = gdsearch.run_search(job, root, show_progress=False)
    assert (summary.ran, summary.skipped) == (0, 32)
    assert json.loads(manifest_path.read_text())["compat"]["data_sha256"] == digest
