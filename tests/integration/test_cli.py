"""The command line as a script sees it: --version, every --help, one meaning per address
variable, GDSEARCH_RESULTS, and UTF-8 whatever the locale."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gdsearch.cli import STATUS_EXIT
from gdsearch.cli import parser as _parser
from tests.conftest import REPO, Cli

COMMANDS = sorted(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


@pytest.fixture
def ray_tmp() -> Iterator[str]:
    """A Ray temp dir short enough for its socket paths (about 100 characters at most)."""
    path = tempfile.mkdtemp(prefix="gdsr-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_version_names_gdsearch_ray_and_python(cli: Cli) -> None:
    done = cli.run(["--version"])
    assert done.returncode == 0
    assert done.stdout.startswith("gdsearch ") and "Ray 2." in done.stdout


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_help_reads_right(cli: Cli, command: str) -> None:
    done = cli.run([command, "--help"] if command else ["--help"])
    text = done.stdout
    assert done.returncode == 0 and text.startswith(f"usage: gdsearch {command}".rstrip())
    assert "Show or change" not in text and "  " in text
    description = text.split("\n\n")[1]  # usage, then the description
    assert description.strip().endswith(".") or not command, description


def test_a_job_servers_url_in_ray_address_is_refused_by_run_in_one_line(
    cli: Cli, tmp_path: Path
) -> None:
    done = cli.run(
        ["run", "jobs/seed_sine.toml", "--results-dir", str(tmp_path / "r")],
        {"RAY_ADDRESS": "http://127.0.0.1:8265"},
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "job server's URL" in lines[0]
    assert not (tmp_path / "r").exists()  # refused before anything was touched


def test_a_cluster_address_in_ray_address_is_refused_by_the_job_commands(cli: Cli) -> None:
    done = cli.run(["status", "raysubmit_x"], {"RAY_ADDRESS": "127.0.0.1:6379"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1
    assert "RAY_API_SERVER_ADDRESS" in lines[0] and "'127.0.0.1:6379'" in lines[0]


def test_num_cpus_is_for_the_embedded_ray_only(cli: Cli, tmp_path: Path) -> None:
    done = cli.run(
        [
            "run",
            "jobs/seed_sine.toml",
            "--num-cpus",
            "1",
            "--address",
            "127.0.0.1:6379",
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert done.returncode == 2 and "--num-cpus 1: only for the embedded Ray" in done.stderr
    assert cli.run(["run", "jobs/seed_sine.toml", "--num-cpus", "0"]).returncode == 2


def test_validate_json_has_the_documented_shape(cli: Cli) -> None:
    done = cli.run(["validate", "jobs/moons_halving.toml", "--json"])
    document = json.loads(done.stdout)
    assert done.returncode == 0 and document["trials"] == 256
    assert document["axes"] == {"lr": 16, "init": 4, "hidden": 1, "seed": 4}
    assert document["data"] == {
        "dataset": "moons",
        "n_samples": 200,
        "n_inputs": 2,
        "n_outputs": 1,
        "held_out": 0,
    }
    assert document["halving_rungs"] == [30, 90, 270, 810] and document["train"]["epochs"] == 1000


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--runtime-env-json", "{not json", "--runtime-env-json: not JSON"),
        ("--metadata-json", "[1, 2]", "--metadata-json: must be a JSON object"),
        ("--runtime-env-json", '{"working_dir": "/elsewhere"}', "working_dir is the job"),
    ],
)
def test_submit_options_are_checked_before_anything_is_sent(
    cli: Cli, option: str, value: str, said: str
) -> None:
    done = cli.run(
        [
            "submit",
            "jobs/seed_sine.toml",
            "--address",
            "http://127.0.0.1:9",
            "--results-dir",
            "/results",
            option,
            value,
        ]
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and said in lines[0]


def test_status_exit_codes_tell_the_states_apart() -> None:
    assert STATUS_EXIT["SUCCEEDED"] == 0 and 2 not in STATUS_EXIT.values()
    assert len({STATUS_EXIT[s] for s in ("SUCCEEDED", "FAILED", "STOPPED", "RUNNING")}) == 4


@pytest.mark.ray
def test_run_writes_under_gdsearch_results_and_caps_its_cpus(
    cli: Cli, tmp_path: Path, ray_tmp: str
) -> None:
    env = {"GDSEARCH_RESULTS": str(tmp_path), "RAY_TMPDIR": ray_tmp}
    done = cli.run(
        [
            "run",
            "jobs/seed_sine.toml",
            "--num-cpus",
            "1",
            "--no-progress",
            "--json",
            "--executor",
            "ray",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["total"] == summary["ran"] == 13 and summary["counts"] == {
        "ok": 10,
        "diverged": 3,
    }
    shown = json.loads(cli.run(["show", str(tmp_path / "seed-sine"), "--json"]).stdout)
    assert shown["stored"] == 13 and len(shown["rows"]) == 13 and shown["status"] == "complete"
    assert {row["diverged"] for row in shown["rows"]} == {0, 1}
    assert (tmp_path / "seed-sine" / "manifest.json").is_file()
    manifest = (tmp_path / "seed-sine" / "manifest.json").read_text(encoding="utf-8")
    assert '"cpus": 1' in manifest


@pytest.mark.ray
def test_the_cli_works_in_a_c_locale_without_utf8_mode(
    cli: Cli, tmp_path: Path, ray_tmp: str
) -> None:
    """Text with λ and — read and written as UTF-8, whatever the locale says."""
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "RAY_TMPDIR": ray_tmp}
    job = tmp_path / "λ-job.toml"  # a name the C locale cannot spell: passed through as given
    sine = (REPO / "jobs" / "seed_sine.toml").read_text(encoding="utf-8")
    job.write_text(sine.replace("epochs = 20000", "epochs = 200") + "# λ_max — ×\n", "utf-8")
    validated = cli.run(["validate", str(job)], env)
    assert validated.returncode == 0, validated.stderr
    assert "OK — 13 trials" in validated.stdout
    plain = tmp_path / "job.toml"  # Ray itself cannot start a driver from such a path there
    shutil.copy(job, plain)
    ran = cli.run(
        ["run", str(plain), "--results-dir", str(tmp_path), "--no-progress", "--num-cpus", "1"],
        env,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    reported = cli.run(["report", str(tmp_path / "seed-sine")], env)
    assert reported.returncode == 0, reported.stderr[-2000:]
    assert (
        (tmp_path / "seed-sine" / "report.html").read_text(encoding="utf-8").endswith("</html>\n")
    )
    assert "# λ_max — ×" in (tmp_path / "seed-sine" / "job.toml").read_text(encoding="utf-8")
    shown = cli.run(["show", str(tmp_path / "seed-sine")], env)
    assert shown.returncode == 0 and "seed-sine: 13 of 13" in shown.stdout


def test_a_reader_that_stops_early_ends_the_command_quietly(cli: Cli) -> None:
    """`gdsearch validate … | head -0`: the pipe closes before anything is written."""
    reading = cli.start(["validate", "jobs/seed_sine.toml"])
    assert reading.stdout is not None and reading.stderr is not None
    reading.stdout.close()  # the reader is gone before the command writes its line
    assert reading.wait(timeout=120) == 141
    assert reading.stderr.read() == ""  # no traceback, no "Exception ignored"
