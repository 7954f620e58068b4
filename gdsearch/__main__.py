"""``python -m gdsearch``: the command line, where no ``gdsearch`` script is installed (a Ray
cluster that runs a shipped copy of the package)."""

from gdsearch.cli import console

console()
