"""Bounds on job input: what one job may ask for, and checks that run before the costly work.

A job file comes from a user and may be hostile or simply wrong by orders of magnitude: a
megabyte dotted key that would hold the TOML parser for minutes, a network of a billion weights,
a million-epoch grid. Each bound is checked where the input enters, with a message naming it.
"""

from __future__ import annotations

import itertools

from gdsearch.errors import JobError, shown
from gdsearch.mlp.network import layer_sizes

MAX_JOB_BYTES = 1 << 20
MAX_KEY_PARTS = 32
"""A dotted TOML key (``a.b.c``) may have this many parts: the parser's time grows with the
square of a key's length, so a 100 kB key would hold it for minutes."""
MAX_TRIALS = 1_000_000
MAX_EPOCHS = 1_000_000
MAX_PARAMETERS = 10_000_000
"""Weights and biases of one network (80 MB as float64, and as much again for its gradient)."""
MAX_ACTIVATIONS = 100_000_000
"""Samples × the widths of every layer after the input: what one trial's forward pass holds."""
MAX_BRACKET_POINTS = 64
MAX_BRACKET_ROUNDS = 50


def check_network_size(
    hidden: tuple[int, ...], x_shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> None:
    """Refuse a network too large to train: its parameters, or one forward pass's values."""
    sizes = layer_sizes(x_shape[1], hidden, y_shape[1])
    parameters = sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))
    where = (
        f"[search] hidden: {shown(list(hidden))} with {sizes[0]} inputs and {sizes[-1]} outputs"
    )
    if parameters > MAX_PARAMETERS:
        raise JobError(
            f"{where} has {parameters:,} weights and biases, more than the "
            f"{MAX_PARAMETERS:,} allowed"
        )
    activations = x_shape[0] * sum(sizes[1:])
    if activations > MAX_ACTIVATIONS:
        raise JobError(
            f"{where} on {x_shape[0]:,} samples holds {activations:,} activations per pass, "
            f"more than the {MAX_ACTIVATIONS:,} allowed"
        )


def longest_dotted_key(text: str) -> tuple[int, int]:
    """The most parts of a dotted key in this TOML text, and its line (an upper bound)."""
    # Dots between two separators, outside strings and comments: a key's parts, or a number's
    # one dot. Cheap enough to run before the parser, which a long key would hold for minutes.
    if text.count(".") < MAX_KEY_PARTS:
        return 1, 1
    most, most_line, dots, line, i = 0, 1, 0, 1, 0
    while i < len(text):
        char = text[i]
        if char == ".":
            dots += 1
            if dots > most:
                most, most_line = dots, line
        elif char in "=,[]{}\n":
            dots = 0
            if char == "\n":
                line += 1
        elif char == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif char in "\"'":
            end = _string_end(text, i)
            line += text.count("\n", i, end)
            i = end
            continue
        i += 1
    return most + 1, most_line


def _string_end(text: str, start: int) -> int:
    """Where the TOML string opening at ``start`` ends (past its closing quotes)."""
    quote = text[start]
    delimiter = quote * 3 if text.startswith(quote * 3, start) else quote
    i = start + len(delimiter)
    while True:
        end = text.find(delimiter, i)
        if end < 0:
            return len(text)
        escapes = 0
        while quote == '"' and text[end - 1 - escapes] == "\\":
            escapes += 1
        if escapes % 2 == 0:
            return end + len(delimiter)
        i = end + 1
