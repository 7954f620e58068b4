"""A Griffe extension for the API pages: the reStructuredText markup of gdsearch's docstrings as
Markdown, so that they read the same in the code and on the site.

The docstrings are Google style with reST inline markup: roles such as
``:func:`~gdsearch.mlp.train``` and literal blocks introduced by ``::``. mkdocstrings renders
docstrings as Markdown, where both would show as typed; this turns a role into inline code (the
last part of the name after ``~``, as Sphinx shows it), an inline literal into Markdown's, and
``text::`` into ``text:``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]*?)(?:\s*<([^>]+)>)?`")
"""``:role:`target```, ``:role:`~target``` or ``:role:`title <target>```."""
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", flags=re.MULTILINE)
LITERAL = re.compile(r"``([^`]+)``")
"""reST's inline literal, which Markdown writes with one backtick."""
TYPED_ITEM = re.compile(r"^(\s*)`([\w.]+)`:", flags=re.MULTILINE)
"""A Google section's item that starts with a role, ``:class:`Results`: ...``: its type."""


def _role(match: re.Match[str]) -> str:
    short, text, target = match.group(1), match.group(2).strip(), match.group(3)
    if target:  # a title of its own
        return f"`{text}`"
    return f"`{text.rsplit('.', 1)[-1] if short else text}`"


def markdown(text: str) -> str:
    """A docstring's reST roles, inline literals and ``::`` as Markdown."""
    text = LITERAL.sub(r"`\1`", ROLE.sub(_role, text))
    return TYPED_ITEM.sub(r"\1\2:", LITERAL_BLOCK.sub(":", text))


class RstMarkup(griffe.Extension):
    """Rewrite every loaded object's docstring with :func:`markdown`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
