"""What the commands share: option types, ``--json`` and the one JSON document it prints."""

from __future__ import annotations

import argparse
import json
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
