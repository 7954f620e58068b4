"""The one family of errors gdsearch raises on purpose."""

from __future__ import annotations

import reprlib


class GdsearchError(Exception):
    """Base class of every error gdsearch raises deliberately."""

    exit_code = 1


class InputError(GdsearchError):
    """Bad input from the user: a job file, an option, a data file. The CLI exits with 2."""

    exit_code = 2


class JobError(InputError):
    """A job file that breaks a rule; the message names the file, the key and the value."""


class DataError(InputError):
    """A data set that cannot be used; the message names the file or data set and the value."""


class ResultsError(InputError):
    """A results location that cannot be read or written as asked."""


class RunError(GdsearchError):
    """A search that started but could not finish. The CLI exits with 1."""


def shown(value: object, width: int = 100) -> str:
    """``repr(value)`` cut to a readable size, for error messages about values from user files.

    A job or data file may hold a megabyte string or a list nested a thousand deep; the message
    names it with its ends and elides the middle, so it still fits on one line.
    """
    short = reprlib.Repr()
    short.maxlevel = 4
    short.maxstring = short.maxother = width
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    return short.repr(value)


MAX_LINE_CHARS = 500
"""Where :func:`one_line` cuts a message by default (an error column's value, a log line)."""


def one_line(
    what: BaseException | str,
    *,
    last_line: bool = False,
    with_type: bool = False,
    limit: int = MAX_LINE_CHARS,
) -> str:
    """A message as one line of at most ``limit`` characters (cut with "…").

    Args:
        what: an exception (its message, or its type's name where the message is empty) or text.
        last_line: keep only the message's last line: a Ray task error carries the worker's
            traceback above the error itself.
        with_type: put the exception's type in front, as ``ValueError: …``.
        limit: the most characters kept.
    """
    text = str(what)
    if last_line:
        lines = text.strip().splitlines()
        text = lines[-1] if lines else ""
    line = " ".join(text.split())
    if isinstance(what, BaseException):
        name = type(what).__name__
        line = f"{name}: {line}" if with_type and line else (line or name)
    return line if len(line) <= limit else line[: limit - 1] + "…"
