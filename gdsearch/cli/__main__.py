"""``python -m gdsearch.cli``: the command line, as ``python -m gdsearch``."""

from gdsearch.cli import console

console()
