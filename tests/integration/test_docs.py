"""The documentation runs: every code block of README.md and docs/ is executed, in order, in a
scratch folder that holds jobs/, data/ and the results of two small jobs (docs/contributing.md,
"This site", says what each kind of block must do). A block that cannot run here carries an
explicit ``<!-- skip: next "why" -->``. Beside that, the pages that restate the code (the
results tables, the package layout, the generated references) are held equal to it.
"""

from __future__ import annotations

import copy
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import tomli_w

from tests.conftest import REPO, Cli

sybil = pytest.importorskip("sybil")
from sybil import Document, Example  # noqa: E402
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
MINIMAL_JOB = {"job": {"name": "example"}, "data": {"dataset": "sine"}, "search": {"lr": [0.1]}}
"""What a TOML fragment on a page is completed with before it is checked as a job."""
NAMED_FILE = re.compile(r"#\s*(\S+\.toml)\s*$")
COMMAND_TIMEOUT_S = 300


# --- Evaluating blocks ------------------------------------------------------------------------


def _gdsearch(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """A ``gdsearch`` command line, run as its own process in the current folder."""
    return Cli().run(argv, cwd=Path.cwd(), timeout=COMMAND_TIMEOUT_S)


def _command(line: str, example: Example) -> list[str]:
    argv = shlex.split(line, comments=True)
    if argv[:1] != ["gdsearch"]:
        raise AssertionError(
            f"{example.path}, line {example.line}: only gdsearch commands run here, but got "
            f'{line!r}; mark the block <!-- skip: next "why" --> if it cannot run'
        )
    return argv[1:]


def _lines(source: str) -> Iterator[str]:
    """A shell block's commands: one a line, a trailing backslash joining the next."""
    joined = source.replace("\\\n", " ")
    for line in joined.splitlines():
        if shlex.split(line, comments=True):
            yield line


def run_bash(example: Example) -> str | None:
    """Each ``gdsearch …`` line of a bash block must exit 0."""
    for line in _lines(str(example.parsed)):
        done = _gdsearch(_command(line, example))
        if done.returncode != 0:
            return f"{line!r} exited {done.returncode}:\n{done.stderr[-2000:]}"
    return None


def run_console(example: Example) -> str | None:
    """Each ``$ gdsearch …`` line must exit 0, or 2 printing the error line the block shows."""
    commands: list[tuple[str, list[str]]] = []
    for line in str(example.parsed).splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    for line, shown in commands:
        done = _gdsearch(_command(line, example))
        errors = [out for out in shown if out.startswith("gdsearch: error:")]
        if errors:
            if done.returncode != 2 or errors[0] not in done.stderr.splitlines():
                got = f"exit {done.returncode}:\n{done.stderr}"
                return f"{line!r}: expected exit 2 and {errors[0]!r}, got {got}"
        elif done.returncode != 0:
            return f"{line!r} exited {done.returncode}:\n{done.stderr[-2000:]}"
    return None


def _merged(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for table, values in fragment.items():
        merged.setdefault(table, {}).update(values)
    return merged


def run_toml(example: Example) -> str | None:
    """A job file (or a fragment of one, completed) must pass the job checks; a block that
    names its file in its first line is written there for the commands after it."""
    from gdsearch.job.spec import parse_job

    text = str(example.parsed)
    named = NAMED_FILE.match(text.splitlines()[0]) if text.strip() else None
    if named:
        Path(named.group(1)).write_text(text)
        return None
    document = _merged(MINIMAL_JOB, tomllib.loads(text))
    parse_job(tomli_w.dumps(document), str(Path.cwd() / "jobs" / "example.toml"))
    return None


def parsers() -> list[Any]:
    """Fresh parsers for one page (the skip parser keeps state per page)."""
    return [
        SkipParser(),
        PythonCodeBlockParser(),
        CodeBlockParser("bash", run_bash),
        CodeBlockParser("console", run_console),
        CodeBlockParser("toml", run_toml),
    ]


# --- The scratch folder -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jobs/, data/ and the results of the seed and moons jobs, trained in this process."""
    import gdsearch

    root = tmp_path_factory.mktemp("docs-workspace")
    for folder in ("jobs", "data"):
        shutil.copytree(REPO / folder, root / folder)
    for job in ("seed_sine.toml", "moons_lr_init.toml"):
        gdsearch.run_search(
            root / "jobs" / job, root / "results", executor="local", show_progress=False
        )
    return root


@pytest.fixture
def page_folder(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the workspace of this page's own, as the current folder."""
    folder = tmp_path / "work"
    shutil.copytree(workspace, folder)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for variable in ("GDSEARCH_RESULTS", "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(variable, raising=False)
    return folder


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_code_block_on_the_page_runs(page: Path, page_folder: Path) -> None:
    document = Document.parse(str(page), *parsers())
    document.namespace["__name__"] = "docs_example"
    ran, skipped = 0, []
    for example in document.examples():
        try:
            example.evaluate()
        except unittest.SkipTest as why:
            skipped.append(f"line {example.line}: {why}")
        else:
            ran += 0 if _is_skip_directive(example) else 1
    print(f"{page.name}: {ran} blocks ran, {len(skipped)} skipped", *skipped, sep="\n  ")


def _is_skip_directive(example: Example) -> bool:
    return isinstance(example.parsed, tuple)  # the skip parser's (action, reason)


# --- Pages that restate the code --------------------------------------------------------------

ARROW_TYPES = {
    pa.string(): "string",
    pa.float64(): "float64",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.bool_(): "bool",
}


def _table_after(text: str, heading: str) -> dict[str, str]:
    """The first Markdown table under a heading: its first column → its second."""
    lines = text.split(f"\n{heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[start + 2 :]:  # past the header and its rule
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    return rows


def test_the_results_page_lists_every_column_with_its_type() -> None:
    from gdsearch.results.schema import (
        HELD_OUT_HISTORY,
        LANDSCAPE_SCHEMA,
        LANDSCAPE_TRIALS_SCHEMA,
        LR_RANGE_SCHEMA,
        SHARPNESS_SCHEMA,
        TRIALS_SCHEMA,
    )

    text = (DOCS / "results.md").read_text()
    for heading, schema in (
        ("## trials", TRIALS_SCHEMA),
        ("## history", HELD_OUT_HISTORY),
        ("## sharpness", SHARPNESS_SCHEMA),
        ("## landscapes", LANDSCAPE_SCHEMA),
        ("## landscape_trials", LANDSCAPE_TRIALS_SCHEMA),
        ("## lr_range", LR_RANGE_SCHEMA),
    ):
        documented = _table_after(text, heading)
        assert documented == {f.name: ARROW_TYPES[f.type] for f in schema}, heading


def test_the_layout_in_contributing_lists_every_module() -> None:
    text = (DOCS / "contributing.md").read_text()
    listed, folder = set(), ""
    for line in text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0].splitlines():
        if heading := re.fullmatch(r"\*\*`(gdsearch/[\w/]*)`\*\*", line):
            folder = heading.group(1)
        elif item := re.match(r"- `([\w.]+\.py)` — \S", line):
            listed.add(folder + item.group(1))
    package = {str(p.relative_to(REPO)) for p in (REPO / "gdsearch").rglob("*.py")}
    assert listed == package


def test_the_reference_pages_cover_every_key_and_command() -> None:
    from gdsearch.cli import COMMANDS, parser
    from gdsearch.job.space import AXIS_CHECKS
    from gdsearch.job.spec import SECTION_KEYS

    reference = runpy.run_path(str(DOCS / "gen_reference.py"), run_name="gen_reference")
    job_page, cli_page = reference["job_file_page"](), reference["cli_page"]()
    for section, keys in SECTION_KEYS.items():
        assert f"## [{section}]" in job_page
        for key in keys or ():
            assert f"| `{key}` |" in job_page, (section, key)
    assert all(f"| `{key}` |" in job_page for key in AXIS_CHECKS)
    commands = reference["_subcommands"](parser())
    assert len(commands.choices) == len(COMMANDS)
    for name in commands.choices:
        assert f"\n## {name}\n" in cli_page


def test_readme_stays_a_front_door() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for command in (
        "pip install -e '.[test]' && gdsearch run jobs/moons_lr_init.toml --executor ray",
        "pip install -e '.[test]' && pytest",
    ):
        assert any(line.startswith(command) for line in text.splitlines()), command
