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
