"""What ``load_results`` loads of a result set: which trials, which history columns, which epochs.

A :class:`Query` is checked where it enters, before anything is read, and every bad argument is
an :class:`~gdsearch.errors.InputError` naming the argument and its value. Trials are selected
by a row filter in the form ``pandas.read_parquet`` and ``pyarrow.parquet.read_table`` take
(``[("lr", ">=", 0.1), ("init", "==", "xavier")]``), so that whoever knows one knows the other.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gdsearch.errors import InputError, one_line, shown
from gdsearch.results.schema import HELD_OUT_HISTORY, TRIALS_SCHEMA

KEYS = ("trial_id", "epoch")
"""The history columns that always come: together they identify a row and order the table."""
OPERATORS = ("==", "=", "!=", "<", "<=", ">", ">=", "in", "not in")
"""The comparisons of a filter tuple, as ``pyarrow.parquet.filters_to_expression`` reads them."""

Filter: TypeAlias = tuple[str, str, Any]
Filters: TypeAlias = Sequence[Filter] | Sequence[Sequence[Filter]] | pc.Expression


@dataclass(frozen=True)
class Query:
    """A checked selection of a result set.

    Attributes:
        where: the trials rows to keep (filters and trial_ids together), or None for all.
        trial_ids: the trial_ids asked for by name, or None.
        columns: the history columns to load, trial_id and epoch first; None: every column
            the result set stores (``val_sse`` too where its job holds data out).
        every: keep the history at epochs 0, every, 2·every, … and each trial's last epoch.
    """

    where: pc.Expression | None = None
    trial_ids: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    every: int = 1

    @classmethod
    def parse(
        cls,
        filters: Filters | None = None,
        trial_ids: Iterable[str] | None = None,
        columns: Sequence[str] | None = None,
        every: int | None = None,
    ) -> Query:
        """Check ``load_results``' selection arguments (its docstring says what they mean).

        Raises:
            InputError: an argument of the wrong form, a column that does not exist, a filter
                that cannot be compared with its column, an ``every`` below 1.
        """
        ids = _trial_ids(trial_ids)
        where = _filter_expression(filters)
        if ids is not None:
            chosen = pc.field("trial_id").isin(pa.array(ids, pa.string()))
            where = chosen if where is None else where & chosen
        return cls(where, ids, _columns(columns), _every(every))

    def select(self, trials: pa.Table, location: str) -> pa.Table:
        """The rows of the trials table this query keeps.

        Raises:
            InputError: a trial_id asked for that is not stored at ``location``.
        """
        if self.trial_ids is not None:
            stored = set(trials.column("trial_id").to_pylist())
            missing = [trial_id for trial_id in self.trial_ids if trial_id not in stored]
            if missing:
                raise InputError(f"trial_ids: not stored in {location}: {shown(missing)}")
        if self.where is None:
            return trials
        try:
            return trials.filter(self.where)
        except pa.ArrowException as exc:
            raise InputError(one_line(f"filters: {self.where}: {exc}")) from None


def _trial_ids(trial_ids: Iterable[str] | None) -> tuple[str, ...] | None:
    if trial_ids is None:
        return None
    if isinstance(trial_ids, str | bytes) or not isinstance(trial_ids, Iterable):
        raise InputError(f"trial_ids: a list of trial_id strings, but got {shown(trial_ids)}")
    ids = tuple(trial_ids)
    odd = [i for i in ids if not isinstance(i, str)]
    if odd:
        raise InputError(f"trial_ids: each must be a string, but got {shown(odd[0])}")
    return tuple(dict.fromkeys(ids))


def _filter_expression(filters: Filters | None) -> pc.Expression | None:
    """``filters`` as one expression on the trials table, checked against its columns."""
    if filters is None:
        return None
    if isinstance(filters, pc.Expression):
        _check_binds(filters, filters)
        return filters
    if isinstance(filters, str | bytes) or not isinstance(filters, Sequence) or not filters:
        raise InputError(
            "filters: a list of (column, op, value) tuples, a list of such lists, or a "
            f"pyarrow expression, but got {shown(filters)}"
        )
    flat = any(
        isinstance(item, tuple | list) and item and isinstance(item[0], str) for item in filters
    )
    disjunction = [filters] if flat else filters
    for conjunction in disjunction:
        if isinstance(conjunction, str | bytes) or not isinstance(conjunction, Sequence):
            raise InputError(f"filters: {shown(conjunction)} is not a list of tuples")
        if not conjunction:
            raise InputError(f"filters: an empty list of tuples in {shown(filters)}")
        for item in conjunction:
            _check_triple(item)
    return pq.filters_to_expression([[tuple(item) for item in c] for c in disjunction])


def _is_triple(item: object) -> bool:
    return isinstance(item, tuple | list) and len(item) == 3 and isinstance(item[0], str)


def _check_triple(item: object) -> None:
    """One (column, op, value) filter: its form, column, operator and value's type."""
    if not _is_triple(item):
        raise InputError(f"filters: {shown(item)} is not a (column, op, value) tuple")
    assert isinstance(item, tuple | list)
    column, op, value = item
    if column not in TRIALS_SCHEMA.names:
        raise InputError(
            f"filters: {shown(item)}: column {column!r} is not a trials column; they are "
            f"{', '.join(TRIALS_SCHEMA.names)}"
        )
    if op not in OPERATORS:
        raise InputError(
            f"filters: {shown(item)}: operator {op!r} is not one of {', '.join(OPERATORS)}"
        )
    collection = isinstance(value, Iterable) and not isinstance(value, str | bytes)
    if (op in ("in", "not in")) != collection:
        need = "a list of values" if op in ("in", "not in") else "one value"
        raise InputError(f"filters: {shown(item)}: {op!r} takes {need}, but got {shown(value)}")
    _check_binds(pq.filters_to_expression([tuple(item)]), item)


def _check_binds(expression: pc.Expression, shown_as: object) -> None:
    """Apply a filter to an empty trials table: a column that does not exist, or a value that
    cannot be compared with its column, fails here, before anything is read."""
    try:
        TRIALS_SCHEMA.empty_table().filter(expression)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InputError(f"filters: {shown(shown_as)}: {one_line(exc)}") from None


def _columns(columns: Sequence[str] | None) -> tuple[str, ...] | None:
    if columns is None:
        return None
    if isinstance(columns, str | bytes) or not isinstance(columns, Iterable):
        raise InputError(f"columns: a list of history column names, but got {shown(columns)}")
    columns = tuple(columns)
    for column in columns:
        if column not in HELD_OUT_HISTORY.names:
            raise InputError(
                f"columns: {shown(column)} is not a history column; they are "
                f"{', '.join(HELD_OUT_HISTORY.names)}"
            )
    return tuple(dict.fromkeys([*KEYS, *columns]))


def _every(every: int | None) -> int:
    if every is None:
        return 1
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise InputError(f"every: a whole number of epochs, at least 1, but got {shown(every)}")
    return int(every)
