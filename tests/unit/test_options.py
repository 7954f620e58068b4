"""The command line's shared option types: a ``--where`` clause read as load_results' filter."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from gdsearch.cli.options import where_clause


@pytest.mark.parametrize(
    "text, clause",
    [
        ("lr >= 0.01", ("lr", ">=", 0.01)),
        ("lr>1e-2", ("lr", ">", 0.01)),
        ("seed<2", ("seed", "<", 2)),
        ("seed <= 2", ("seed", "<=", 2)),
        ("init == xavier", ("init", "==", "xavier")),
        ("init=he", ("init", "=", "he")),
        ("status != failed", ("status", "!=", "failed")),
        ('hidden == "16"', ("hidden", "==", "16")),
        ("init in xavier, he", ("init", "in", ["xavier", "he"])),
        ('init not in ["zeros"]', ("init", "not in", ["zeros"])),
        ("lr in 0.1,1", ("lr", "in", [0.1, 1])),
        ("  index in 1 ", ("index", "in", [1])),
    ],
)
def test_a_where_clause_reads_as_a_filter_tuple(text: str, clause: tuple[str, str, Any]) -> None:
    assert where_clause(text) == clause


@pytest.mark.parametrize("text", ["lr", ">= 3", "lr ~ 3", "lr >", "1lr == 3", "lr <> 3"])
def test_a_clause_of_another_form_is_refused_by_name(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must be COLUMN OP VALUE") as refused:
        where_clause(text)
    assert repr(text) in str(refused.value)
