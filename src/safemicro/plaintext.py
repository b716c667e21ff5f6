"""Docstrings (reStructuredText) as plain text for the terminal.

The docstrings are written for the API documentation: ````code````, ``:func:`name```,
```text <link>`_``, ``**strong**``. A curator reading ``safemicro steps`` should see the
words, not the markup.

>>> rst_to_plain("``topcode``: values beyond ``value``; see :func:`~safemicro.methods.recode.topcode`.")
'topcode: values beyond value; see topcode.'
>>> rst_to_plain("*Post-randomise* the `keys <https://example.org>`_ (**PRAM**)::")
'Post-randomise the keys (PRAM):'
"""

from __future__ import annotations

import re

__all__ = ["first_paragraph", "rst_to_plain"]

_ROLE = re.compile(r":[\w.+-]+(?::[\w.+-]+)*:`(?P<body>[^`]+)`")
_LINK = re.compile(r"`(?P<text>[^`<]+?)\s*<[^`>]*>`__?")
_REF = re.compile(r"`(?P<text>[^`]+)`__?")
_LITERAL = re.compile(r"``(?P<text>.+?)``")
_DEFAULT_ROLE = re.compile(r"(?<![\w`])`(?P<text>[^`]+)`(?![\w`])")
_STRONG = re.compile(r"\*\*(?P<text>\S(?:.*?\S)?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?P<text>[^\s*](?:[^*]*?[^\s*])?)\*(?![\w*])")


def _role(m: re.Match[str]) -> str:
    body = m.group("body").strip()
    explicit = re.fullmatch(r"(?P<text>.+?)\s*<[^<>]+>", body)
    if explicit:  # :ref:`words <target>`
        return explicit.group("text")
    if body.startswith("~"):  # :func:`~a.b.c` shows c
        return body[1:].rsplit(".", 1)[-1]
    return body.lstrip("!")


def rst_to_plain(text: str) -> str:
    """``text`` with the inline reStructuredText markup removed (roles, literals, links,
    emphasis) and a paragraph-ending ``::`` shown as ``:``."""
    out = _ROLE.sub(_role, text)
    out = _LINK.sub(lambda m: m.group("text"), out)
    out = _LITERAL.sub(lambda m: m.group("text"), out)
    out = _REF.sub(lambda m: m.group("text"), out)
    out = _DEFAULT_ROLE.sub(lambda m: m.group("text"), out)
    out = _STRONG.sub(lambda m: m.group("text"), out)
    out = _EMPHASIS.sub(lambda m: m.group("text"), out)
    return re.sub(r"(?<=\S)::$", ":", re.sub(r"\s+::$", "", out, flags=re.MULTILINE), flags=re.MULTILINE)


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line, as plain text."""
    lines = []
    for line in (doc or "").strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return rst_to_plain(" ".join(lines))
