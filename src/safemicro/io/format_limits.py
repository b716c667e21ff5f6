"""Fit a dataset's names and metadata into the limits of SPSS and Stata files.

Every reader's output must be writable in every format. CSV and Parquet hold anything;
SPSS and Stata have limits (IBM SPSS Statistics and Stata 14+ documentation; ReadStat
enforces them or truncates silently):

============================  ==========================  ==========================
                              SPSS (.sav)                 Stata (.dta, format 118)
============================  ==========================  ==========================
variable name                 64 bytes, a letter first,   32 characters, a letter or
                              letters digits . _ $ # @,   ``_`` first, letters digits
                              no reserved word, unique    ``_``, no reserved word
                              ignoring case
variable label                256 bytes                   80 characters
value label                   120 bytes                   32,000 bytes
file label                    64 bytes                    80 characters
notes                         lines of 80 bytes           not written by ReadStat
user-missing string code      8 bytes                     (no user-missing codes)
============================  ==========================  ==========================

:func:`fit_format` returns a copy with invalid names replaced (the old name becomes the
variable label when there is none), texts cut at a character boundary with "…", SPSS
notes wrapped into 80-byte lines, and a list of what changed for one warning.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import replace
from typing import Literal

from safemicro.io.dataset import Codebook, Dataset, VariableMeta

__all__ = ["fit_bytes", "fit_chars", "fit_format"]

Kind = Literal["sav", "dta"]

_SPSS_RESERVED = {"ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"}
_STATA_RESERVED = {
    "_all",
    "_b",
    "byte",
    "_coef",
    "_cons",
    "double",
    "float",
    "if",
    "in",
    "int",
    "long",
    "_n",
    "_N",
    "_pi",
    "_pred",
    "_rc",
    "_skip",
    "strL",
    "using",
    "with",
}
_ELLIPSIS = "…"

# (name bytes or chars, variable label, value label, file label) per format
_LIMITS = {
    "sav": {"name": 64, "label": 256, "value_label": 120, "file_label": 64, "note_line": 80, "string_missing": 8},
    "dta": {"name": 32, "label": 80, "value_label": 32000, "file_label": 80},
}


def fit_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes at a character boundary, ending in "…"."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(_ELLIPSIS.encode("utf-8"))
    return data[:room].decode("utf-8", errors="ignore") + _ELLIPSIS


def _cut_bytes(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def fit_chars(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…"."""
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _valid_name(name: str, kind: Kind) -> str:
    if kind == "sav":
        new = re.sub(r"[^\w.$#@]", "_", name)
        if not new or not new[0].isalpha():
            new = "v" + new
        if new.endswith("."):
            new = new[:-1] + "_"
        if new.upper() in _SPSS_RESERVED:
            new += "_"
        return _cut_bytes(new, 64)
    new = re.sub(r"\W", "_", name)
    if not new or not (new[0].isalpha() or new[0] == "_"):
        new = "v" + new
    if new in _STATA_RESERVED or re.fullmatch(r"str\d+", new):
        new += "_"
    return new[:32]


def _unique(name: str, used: set[str], kind: Kind) -> str:
    fold = str.lower if kind == "sav" else (lambda s: s)
    candidate, i = name, 1
    while fold(candidate) in used:
        i += 1
        suffix = f"_{i}"
        base = name[: 32 - len(suffix)] if kind == "dta" else _cut_bytes(name, 64 - len(suffix))
        candidate = base + suffix
    used.add(fold(candidate))
    return candidate


def _names(columns: list[str], kind: Kind) -> dict[str, str]:
    """Old name -> new name for every column (valid names are kept as they are)."""
    used: set[str] = set()
    fold = str.lower if kind == "sav" else (lambda s: s)
    valid = {c: _valid_name(c, kind) == c for c in columns}
    for c in columns:  # valid names keep their name; renamed ones avoid them
        if valid[c] and fold(c) not in used:
            used.add(fold(c))
        else:
            valid[c] = False
    return {c: c if valid[c] else _unique(_valid_name(c, kind), used, kind) for c in columns}


def fit_format(ds: Dataset, kind: Kind) -> tuple[Dataset, list[str]]:
    """A copy of ``ds`` that fits the SPSS (``"sav"``) or Stata (``"dta"``) limits, and what changed."""
    lim = _LIMITS[kind]
    fit = (lambda t, n: fit_bytes(t, n)) if kind == "sav" else (lambda t, n: fit_chars(t, n))
    changes: list[str] = []
    names = _names(ds.frame.columns, kind)
    renamed = {old: new for old, new in names.items() if old != new}
    if renamed:
        changes.append("renamed to valid names: " + ", ".join(f"{o!r} → {n!r}" for o, n in renamed.items()))
    variables: dict[str, VariableMeta] = {}
    long_labels, long_values, long_codes = [], [], []
    for old, new in names.items():
        m = ds.codebook.meta(old)
        label = m.label if m.label or old == new else old
        if label and fit(label, lim["label"]) != label:
            long_labels.append(new)
            label = fit(label, lim["label"])
        values = {}
        for code, text in m.value_labels.items():
            text = str(text)
            short = fit_bytes(text, lim["value_label"])
            if short != text and new not in long_values:
                long_values.append(new)
            values[code] = short
        missing = list(m.missing_values)
        if kind == "sav" and "string_missing" in lim:
            keep = [v for v in missing if not isinstance(v, str) or len(v.encode("utf-8")) <= lim["string_missing"]]
            if len(keep) != len(missing):
                long_codes.append(new)
            missing = keep
        variables[new] = replace(
            m, name=new, label=label, value_labels=values, missing_values=missing, missing_ranges=list(m.missing_ranges)
        )
    if long_labels:
        changes.append(f"variable labels cut to {_limit_text(kind, lim['label'])}: " + ", ".join(long_labels))
    if long_values:
        changes.append(f"value labels cut to {lim['value_label']} bytes: " + ", ".join(long_values))
    if long_codes:
        changes.append(
            f"user-missing string codes longer than {lim['string_missing']} bytes dropped: " + ", ".join(long_codes)
        )
    file_label = ds.codebook.file_label
    if file_label and fit(file_label, lim["file_label"]) != file_label:
        changes.append(f"file label cut to {_limit_text(kind, lim['file_label'])}")
        file_label = fit(file_label, lim["file_label"])
    notes = _notes(ds.codebook.notes, kind, changes)
    cb = Codebook(
        variables=variables,
        file_label=file_label,
        extended_missing={names[k]: dict(v) for k, v in ds.codebook.extended_missing.items() if k in names},
        notes=notes,
    )
    frame = ds.frame.rename(renamed) if renamed else ds.frame
    return Dataset(frame=frame, codebook=cb, source=ds.source), changes


def _limit_text(kind: Kind, n: int) -> str:
    return f"{n} bytes" if kind == "sav" else f"{n} characters"


def _notes(notes: list[str], kind: Kind, changes: list[str]) -> list[str]:
    """SPSS: every note wrapped into lines of at most 80 bytes; Stata: none (ReadStat cannot)."""
    if not notes:
        return []
    if kind == "dta":
        changes.append(f"{len(notes)} note(s) not written (the Stata writer cannot store notes)")
        return []
    lines: list[str] = []
    for note in notes:
        for paragraph in str(note).splitlines() or [""]:
            for line in textwrap.wrap(paragraph, 80, break_long_words=True) or [""]:
                while len(line.encode("utf-8")) > 80:  # multi-byte characters: wrap by bytes
                    head = _cut_bytes(line, 80)
                    lines.append(head)
                    line = line[len(head) :]
                lines.append(line)
    return lines
