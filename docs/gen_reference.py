"""Write the reference pages at build time (mkdocs-gen-files runs this script; mkdocs.yml).

- ``reference/job-file.md``: every table and key of a job file, its type, default and rule,
  read from the tables that check job files (``gdsearch.job.spec``: ``TRAIN_SETTINGS``,
  ``BRACKET_SETTINGS``, ``HALVING_SETTINGS``, ``DATA_SETTINGS``, ``TRAIN_AXES``, ``HOME``,
  ``SECTION_KEYS``; ``gdsearch.job.space.AXIS_CHECKS``; the data sets' options from
  ``gdsearch.data``). Where a rule lives in a check rather than in a table, the page quotes the
  error that check raises for a value that breaks it, so the words are the code's own.
- ``reference/cli.md``: every subcommand of ``gdsearch``, from ``gdsearch.cli.parser()``.

``python docs/gen_reference.py`` prints both pages, for a look without building the site.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import os
import re
import runpy
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import griffe
import tomli_w

from gdsearch.cli import parser
from gdsearch.cli.options import RESULTS_VARIABLE
from gdsearch.data import DATASETS, check_options, dataset_options, files
from gdsearch.errors import DataError, JobError
from gdsearch.job import limits, space, spec
from gdsearch.job.space import AXIS_CHECKS, CONTINUOUS_AXES
from gdsearch.job.trial import Trial
from gdsearch.mlp.config import TrainConfig
from gdsearch.mlp.inits import DEFAULT_SCALE

markdown: Callable[[str], str] = runpy.run_path(str(Path(__file__).with_name("griffe_rst.py")))[
    "markdown"
]  # docstrings' reST roles as Markdown, as on the API pages

MINIMAL = {"job": {"name": "reference"}, "data": {"dataset": "sine"}, "search": {"lr": [0.1]}}
"""The smallest job there is; each probe below changes one thing of it."""
PROBES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("job", "name"): {"job": {"name": "-"}},
    ("job", "seed"): {"job": {"seed": -1}},
    ("data", "dataset"): {"data": {"dataset": "?"}},
    ("search", "mode"): {"search": {"mode": "?"}},
    ("search", "samples"): {"search": {"mode": "random", "samples": 0}},
    ("search", "scheduler"): {"search": {"scheduler": "?"}},
    ("search", "min_epochs"): {"search": {"scheduler": "halving", "min_epochs": 0}},
}
"""Keys whose rule is a check of its own rather than a ``Setting``: a value that breaks it."""
ONLY_WITH = {
    **{key: 'with `mode = "bracket"`' for key in spec.BRACKET_SETTINGS},
    **{key: 'with `scheduler = "halving"`' for key in spec.HALVING_SETTINGS},
    "samples": 'with `mode = "random"`',
}
TOML_TYPES = {int: "integer", float: "float", str: "string", bool: "boolean"}
LIMITS = [
    ("job file", limits, "MAX_JOB_BYTES", " bytes"),
    ("parts of a dotted key", limits, "MAX_KEY_PARTS", ""),
    ("trials (grid product, or `samples`)", limits, "MAX_TRIALS", ""),
    ("points of one range (`num`)", space, "MAX_RANGE_POINTS", ""),
    ("epochs", limits, "MAX_EPOCHS", ""),
    ("hidden layers", space, "MAX_DEPTH", ""),
    ("width of a hidden layer", space, "MAX_WIDTH", ""),
    ("weights and biases of one network", limits, "MAX_PARAMETERS", ""),
    ("activations of one forward pass (samples × widths after the input)", limits,
     "MAX_ACTIVATIONS", ""),
    ("samples", files, "MAX_SAMPLES", ""),
    ("data values (samples × (inputs + outputs))", files, "MAX_DATA_VALUES", ""),
    ("data file", files, "MAX_FILE_BYTES", " bytes"),
    ("columns of a data file", files, "MAX_FILE_COLUMNS", ""),
    ("header line of a CSV file", files, "MAX_HEADER_BYTES", " bytes"),
    ("metadata of a Parquet file", files, "MAX_FOOTER_BYTES", " bytes"),
    ("`bracket_points`", limits, "MAX_BRACKET_POINTS", ""),
    ("`bracket_rounds`", limits, "MAX_BRACKET_ROUNDS", ""),
]  # fmt: skip
"""What is bounded, and the constant that bounds it (in its module)."""


# --- Formatting -------------------------------------------------------------------------------


def toml(value: Any) -> str:
    """A value as a job file writes it: `"tanh"`, `1e-06`, `[[]]`, `true`."""
    return "—" if value is None else f"`{_toml_value(value)}`"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split(" = ", 1)[1].strip()


def toml_type(hint: Any) -> str:
    """A Python annotation as TOML types: `int` → integer, `list[str] | None` → array..."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(
            toml_type(arg) for arg in typing.get_args(hint) if arg is not type(None)
        )
    if origin in (list, tuple):
        return f"array of {plural(toml_type(typing.get_args(hint)[0]))}"
    return TOML_TYPES[hint]


def plural(kind: str) -> str:
    """A type in the plural: integer → integers, array of integers → arrays of integers."""
    head, _, tail = kind.partition(" of ")
    return f"{head}s of {tail}" if tail else f"{kind}s"


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: outside code spans, no emphasis or HTML."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    for i in range(0, len(parts), 2):  # the even parts lie outside code spans
        parts[i] = re.sub(r"([_*])", r"\\\1", parts[i]).replace("<", "&lt;")
    return "`".join(parts)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, without the columns that are empty in every row."""
    keep = [i for i in range(len(header)) if any(row[i] for row in rows)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join(cell(row[i]) for i in keep) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rule_text(message: str) -> str:
    """The rule in an error: what follows "must be" (or the names after "valid:")."""
    if "; valid: " in message:
        return "one of " + ", ".join(
            f"`{name}`" for name in message.split("; valid: ")[1].split(", ")
        )
    match = re.search(r"(?:must (?:be |lie )?|needs )(.*?)(?:, but got .*)?$", message)
    assert match, f"no rule in {message!r}"
    rule = match.group(1)
    rule = re.sub(r'"halving"|"random"', lambda m: f"`{m.group(0)}`", rule)
    return rule.split(" = [")[0]  # min_epochs: "[1, epochs) = [1, 100)" names the probe's epochs


# --- Reading the code's rules -----------------------------------------------------------------


def merged(patch: dict[str, dict[str, Any]], drop: tuple[str, str] | None = None) -> str:
    """``MINIMAL`` with ``patch`` applied (and one key dropped), as TOML."""
    doc = copy.deepcopy(MINIMAL)
    for section, values in patch.items():
        doc.setdefault(section, {}).update(values)
    if drop:
        del doc[drop[0]][drop[1]]
    return tomli_w.dumps(doc)


def refusal(text: str) -> str:
    """The message ``parse_job`` refuses a job with; a probe that passes has gone stale."""
    try:
        spec.parse_job(text)
    except JobError as exc:
        return str(exc)
    raise AssertionError(f"a probe of docs/gen_reference.py is accepted now:\n{text}")


def probed_rule(section: str, key: str) -> str:
    return rule_text(refusal(merged(PROBES[section, key])))


def required(section: str, key: str) -> bool:
    if key not in MINIMAL.get(section, {}):
        return False
    return f"[{section}] {key}: missing" in refusal(merged({}, drop=(section, key)))


def axis_rule(key: str) -> str:
    """An axis value's rule, from its check in ``AXIS_CHECKS``."""
    try:
        AXIS_CHECKS[key](key, None)
    except JobError as exc:
        return rule_text(str(exc))
    raise AssertionError(f"AXIS_CHECKS[{key!r}] accepts None")


def option_rules(name: str, option: str, hint: Any) -> str:
    """A data set option's rules: those ``check_options`` states for values of its type."""
    probes = {int: [-1, 10**12], float: [-1.0, 1e12]}.get(hint, [])
    rules: list[str] = []
    for probe in probes:
        try:
            check_options(name, {option: probe})
        except DataError as exc:
            rule = rule_text(str(exc))
            rules += [rule] if rule not in rules else []
    return "; ".join(rules)


def attribute_docs(cls: type) -> dict[str, str]:
    """A class's Google-style ``Attributes:`` section, by name (``a, b: text`` gives both)."""
    out = {}
    for section in _sections(cls):
        if section.kind is griffe.DocstringSectionKind.attributes:
            for item in section.value:
                for name in item.name.split(", "):
                    out[name] = markdown(" ".join(item.description.split()))
    return out


def argument_docs(function: Callable[..., Any]) -> dict[str, str]:
    """A function's Google-style ``Args:`` section, by name."""
    return {
        item.name: markdown(" ".join(item.description.split()))
        for section in _sections(function)
        if section.kind is griffe.DocstringSectionKind.parameters
        for item in section.value
    }


def _sections(obj: Any) -> list[griffe.DocstringSection]:
    """An object's Google-style docstring, parsed (types are in the signature, not here)."""
    docstring = griffe.Docstring(inspect.getdoc(obj) or "", parser="google")
    return docstring.parse(warnings=False)


def summary(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return markdown(" ".join(doc.split("\n\n")[0].split()))


# --- The job file page ------------------------------------------------------------------------


def setting_rows(section: str, settings: dict[str, spec.Setting]) -> list[list[str]]:
    """Rows for keys declared as ``Setting`` (type, default, rule)."""
    notes = attribute_docs(TrainConfig) if section == "train" else {}
    rows = []
    for key, setting in settings.items():
        rule = setting.rule or probed_rule(section, key)
        if key in ONLY_WITH:
            rule += f"; only {ONLY_WITH[key]}"
        default = "required" if setting.default is None else toml(setting.default)
        rows.append(
            [f"`{key}`", TOML_TYPES[setting.kind], default, rule, notes.get(setting.field, "")]
        )
    return rows


def axis_fixed_rows(section: str) -> list[list[str]]:
    """Rows for the axes whose home is this table: fixed here, or searched in [search]."""
    hints = {
        **typing.get_type_hints(Trial),
        **typing.get_type_hints(TrainConfig),
    }
    notes = attribute_docs(TrainConfig)
    rows = []
    for key in (k for k, home in spec.HOME.items() if home == section):
        default = spec.DEFAULTS[key]
        if key == "init_scale":
            default_text = "per scheme: " + ", ".join(
                f"{scheme} {value}" for scheme, value in DEFAULT_SCALE.items()
            )
        else:
            default_text = toml(default)
        note = notes.get(key, "")
        note = (note + " " if note else "") + "May be searched instead, as an axis in [search]."
        rows.append([f"`{key}`", toml_type(hints[key]), default_text, axis_rule(key), note])
    return rows


def job_section() -> str:
    """``[job]``: its keys are fields of ``JobSpec``, their defaults those of the smallest job."""
    smallest = spec.parse_job(merged({}))
    hints = typing.get_type_hints(spec.JobSpec)
    rows = []
    for key in sorted(spec.SECTION_KEYS["job"], key=list(hints).index):
        rule = probed_rule("job", key) if ("job", key) in PROBES else "any text"
        default = "required" if required("job", key) else toml(getattr(smallest, key))
        rows.append([f"`{key}`", toml_type(hints[key]), default, rule])
    return "## [job]\n\n" + table(["key", "type", "default", "rule"], rows)


def data_section() -> str:
    out = ["## [data]\n"]
    rows = [
        [
            "`dataset`",
            "string",
            "required" if required("data", "dataset") else "",
            probed_rule("data", "dataset"),
            "the data set; the rest of the table is its options (below)",
        ],
        *setting_rows("data", spec.DATA_SETTINGS),
    ]
    out.append(table(["key", "type", "default", "rule", "what"], rows))
    seeded = spec.parse_job(merged({"job": {"seed": 12345}, "data": {"dataset": "moons"}}))
    seed_default = (
        "the job's seed" if seeded.data_kwargs().get("seed") == 12345 else "0"
    )  # JobSpec.data_kwargs gives generated data the job seed unless the table names one
    for name, loader in DATASETS.items():
        hints = typing.get_type_hints(loader)
        notes = argument_docs(loader)
        rows = []
        for option, default in dataset_options(name).items():
            if option == "seed":
                default_text = seed_default
            elif default is inspect.Parameter.empty:
                default_text = "required"
            else:
                default_text = toml(default)
            rows.append(
                [
                    f"`{option}`",
                    toml_type(hints[option]),
                    default_text,
                    option_rules(name, option, hints[option]),
                    notes.get(option, ""),
                ]
            )
        out.append(f'### `dataset = "{name}"`\n\n{summary(loader)}\n')
        out.append(table(["option", "type", "default", "rule", "what"], rows))
    return "\n".join(out)


def search_section() -> str:
    settings = {
        "mode": spec.Setting("mode", str, "grid"),
        "samples": spec.Setting("samples", int, 0),
        "scheduler": spec.Setting("scheduler", str, "none"),
        **spec.BRACKET_SETTINGS,
        **spec.HALVING_SETTINGS,
        **spec.SAMPLER_SETTINGS,
    }
    rows = []
    for key, setting in settings.items():
        rule = setting.rule or probed_rule("search", key)
        if key in ONLY_WITH:
            rule += f"; only {ONLY_WITH[key]}"
        default = "required" if setting.default is None else toml(setting.default)
        if key == "samples":
            default = 'required with `mode = "random"`'
        rows.append([f"`{key}`", TOML_TYPES[setting.kind], default, rule])
    assert set(settings) | set(AXIS_CHECKS) == spec.SECTION_KEYS["search"], "a key is missing"
    hints = {**typing.get_type_hints(Trial), **typing.get_type_hints(TrainConfig)}
    axes = []
    for key in AXIS_CHECKS:
        if required("search", key):
            default = "required"
        elif key == "init_scale":
            default = "per scheme (see [model])"
        else:
            default = toml([spec.DEFAULTS[key]])
            try:
                AXIS_CHECKS[key](key, spec.DEFAULTS[key])
            except JobError:  # a value no axis may take: the setting is off
                default += " (off)"
        kind = f"array of {plural(toml_type(hints[key]))}"
        if key in CONTINUOUS_AXES:
            kind += ", or a range"
        home = f"[{spec.HOME[key]}]" if key in spec.HOME else "—"
        axes.append([f"`{key}`", kind, default, axis_rule(key), home])
    return (
        "## [search]\n\n### Settings\n\n"
        + table(["key", "type", "default", "rule"], rows)
        + "\n### Axes\n\nEvery other key of `[search]` is an axis: a list of values (each "
        "checked by the rule below), and the grid is the product of the axes. An axis not "
        "given takes its default (or the value fixed in its home table, where it has one; "
        "not both). Axes with range forms ("
        + ", ".join(f"`{key}`" for key in CONTINUOUS_AXES)
        + ") also take `{ log = [lo, hi], num = N }` and `{ linear = [lo, hi], num = N }`, "
        "both ends included, and in random mode `{ loguniform = [lo, hi] }` and "
        "`{ uniform = [lo, hi] }`; any axis takes `{ choice = [...] }`.\n\n"
        + table(["key", "type", "default", "rule (each value)", "or fixed in"], axes)
    )


def job_file_page() -> str:
    header = ["key", "type", "default", "rule", "what"]
    model = axis_fixed_rows("model")
    train = setting_rows("train", spec.TRAIN_SETTINGS) + axis_fixed_rows("train")
    documented = {
        "job": spec.SECTION_KEYS["job"],
        "model": {row[0].strip("`") for row in model},
        "train": {row[0].strip("`") for row in train},
    }
    for section, keys in documented.items():
        assert keys == spec.SECTION_KEYS[section], f"[{section}]: {keys} against the code"
    parts = [
        "# Job file keys\n",
        '!!! note "Generated"\n    This page is written when the site is built, by '
        "`docs/gen_reference.py`, from the tables that check job files "
        "(`gdsearch/job/spec.py`, `gdsearch/job/space.py`) and the data sets' signatures "
        "(`gdsearch/data`). A rule is quoted from the check that enforces it. "
        "[Job files](../jobs.md) explains what the keys do together.\n",
        "A job file has five tables, and two more where it asks for them: `[landscape]` (loss "
        "landscapes) and `[lr_range]` (the learning-rate range test); "
        "any other table or key is an error that names it. "
        "A number where a float is asked may be written as an integer.\n",
        job_section(),
        data_section(),
        "## [model]\n\n" + table(header, model),
        "## [train]\n\n" + table(header, train),
        search_section(),
        "## [landscape]\n\nOptional: after the run, draw the loss landscapes of the job's trials "
        "([Loss landscapes](../landscapes.md)); without the table, none are drawn.\n\n"
        + table(header, setting_rows("landscape", spec.LANDSCAPE_SETTINGS)),
        "## [lr_range]\n\nOptional: after the run, the learning-rate range test of each "
        "comparison group and seed ([Job files](../jobs.md#the-learning-rate-range-test)); "
        "an empty table takes fast.ai's defaults.\n\n"
        + table(header, setting_rows("lr_range", spec.LR_RANGE_SETTINGS)),
        "## Limits\n\nEach is checked before the work it guards starts.\n\n"
        + table(
            ["what", "at most", "constant"],
            [
                [what, f"{getattr(module, name):,}{unit}", f"`{module.__name__}.{name}`"]
                for what, module, name, unit in LIMITS
            ],
        ),
    ]
    return "\n".join(parts)


# --- The command-line page --------------------------------------------------------------------


class _Formatter(argparse.HelpFormatter):
    """Usage lines as wide as the page's code blocks, whatever the terminal is."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=72)


def _subcommands(top: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise AssertionError("gdsearch's parser has no subcommands")


def _argument_row(action: argparse.Action) -> list[str]:
    if action.option_strings:
        name = ", ".join(action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or (
                "{" + ",".join(action.choices) + "}" if action.choices else action.dest.upper()
            )
            name += f" {metavar}"
    else:
        name = action.metavar or action.dest
        if action.nargs == "+":
            name += f" [{name} ...]"
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        default = ""
    else:
        default = f"`{action.default}`"
    help_text = action.help or ""
    if "%(" in help_text:
        help_text = help_text % {**vars(action), "prog": ""}
    if action.choices and action.nargs != 0:
        help_text += " (one of " + ", ".join(f"`{c}`" for c in action.choices) + ")"
    return [f"`{name}`", default, help_text.strip()]


def cli_page() -> str:
    saved = os.environ.pop(RESULTS_VARIABLE, None)  # defaults as a fresh shell has them
    try:
        top = parser()
    finally:
        if saved is not None:
            os.environ[RESULTS_VARIABLE] = saved
    top.formatter_class = _Formatter
    commands = _subcommands(top)
    helps = {choice.dest: choice.help or "" for choice in commands._choices_actions}
    parts = [
        "# Command line\n",
        '!!! note "Generated"\n    This page is written when the site is built, by '
        "`docs/gen_reference.py`, from `gdsearch.cli.parser()`. "
        "[Command-line conventions](../command-line.md) covers exit codes, `--json` and "
        "addresses.\n",
        f"{top.description}\n",
        "```text\n" + top.format_usage() + "```\n",
        table(["command", "does"], [[f"[`{n}`](#{n})", helps[n]] for n in commands.choices]),
    ]
    for name, sub in commands.choices.items():
        sub.formatter_class = _Formatter
        rows = [
            _argument_row(action)
            for action in sub._actions
            if not isinstance(action, argparse._HelpAction)
        ]
        parts += [
            f"## {name}\n",
            f"{sub.description or helps[name]}\n",
            "```text\n" + sub.format_usage() + "```\n",
            table(["argument", "default", "what"], rows) if rows else "No arguments.\n",
        ]
    return "\n".join(parts)


PAGES = {"reference/job-file.md": job_file_page, "reference/cli.md": cli_page}


def main() -> None:
    import mkdocs_gen_files

    for path, page in PAGES.items():
        with mkdocs_gen_files.open(path, "w") as handle:
            handle.write(page())
        mkdocs_gen_files.set_edit_path(path, "gen_reference.py")


if __name__ == "<run_path>":  # mkdocs-gen-files runs the script so
    main()
elif __name__ == "__main__":
    for page in PAGES.values():
        print(page())
