"""What the commands share: option types, ``--json`` and the one JSON document it prints."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from gdsearch.errors import InputError

RESULTS_VARIABLE = "GDSEARCH_RESULTS"
"""The environment variable that sets the default results location."""


def json_flag(parser: argparse.ArgumentParser) -> None:
    """Give a command ``--json``."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )


def print_json(document: Any) -> None:
    """One JSON document on stdout (``--json``): NaN as null, times and paths as strings."""
    print(json.dumps(plain(document), default=str, allow_nan=False))


def plain(value: Any) -> Any:
    """Values JSON can hold: NaN and missing as None, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    pandas = sys.modules.get("pandas")  # pd.NA can only come from a pandas already loaded
    return None if pandas is not None and value is pandas.NA else value


def positive_int(text: str) -> int:
    """An option's integer value, at least 1 (argparse names the option otherwise)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, but got {text!r}")
    return value


def json_object(option: str, text: str | None) -> dict[str, Any] | None:
    """A JSON object given on the command line, or None; anything else is exit 2."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{option}: not JSON ({exc}), but got {text!r}") from None
    if not isinstance(value, dict):
        raise InputError(f"{option}: must be a JSON object, but got {text!r}")
    return value


_COMPARISONS = ("not in", "in", "==", "!=", "<=", ">=", "=", "<", ">")


def where_clause(text: str) -> tuple[str, str, Any]:
    """``COLUMN OP VALUE`` (``lr >= 0.01``, ``init == xavier``, ``init in xavier,he``) as the
    filter tuple ``load_results`` takes: the value read as JSON where it is JSON (a number, a
    quoted string, a list), else as the text itself; ``in`` and ``not in`` take a JSON list or
    values separated by commas. A clause of any other form is exit 2 (argparse names it)."""
    for op in _COMPARISONS:
        if op.isalpha() or " " in op:  # a word: spaces around it
            pattern = rf"^\s*([A-Za-z_]\w*)\s+{op}\s+(.+?)\s*$"
        else:
            pattern = rf"^\s*([A-Za-z_]\w*)\s*{re.escape(op)}\s*(.+?)\s*$"
        found = re.match(pattern, text)
        if found is None or found.group(2)[0] in "=<>!":  # `lr <> 3`, or `<` of `<=`
            continue
        column, raw = found.groups()
        if op in ("in", "not in"):
            value = _json_or_text(raw)
            if not isinstance(value, list):
                value = [_json_or_text(part.strip()) for part in raw.split(",") if part.strip()]
            return column, op, value
        return column, op, _json_or_text(raw)
    raise argparse.ArgumentTypeError(
        "must be COLUMN OP VALUE with OP one of ==, !=, <, <=, >, >=, in, not in, "
        f"but got {text!r}"
    )


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw
