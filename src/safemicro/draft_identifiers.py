"""Direct identifiers for :func:`safemicro.draft.draft_plan`: a column whose header words or
values (names, phone numbers, e-mail addresses, ID numbers, GPS coordinates, mostly unique
values) identify people by themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import polars as pl

from safemicro.draft_words import (
    _ADDRESS_WORDS,
    _ANSWER_WORDS,
    _DATE_RE,
    _DOB_WORDS,
    _EMAIL_RE,
    _EMAIL_WORDS,
    _GPS_WORDS,
    _ID_WORDS,
    _IDNO_RE,
    _KEY_WORDS,
    _MONEY_WORDS,
    _NAME_RE,
    _NAME_WORDS,
    _PHONE_RE,
    _PHONE_WORDS,
    _hit,
)

if TYPE_CHECKING:  # draft.py imports this module
    from safemicro.draft import _Col


def _share(c: _Col, pred: Callable[[str], bool], sample: int = 500) -> float:
    s = c.series.drop_nulls().cast(pl.String).head(sample).to_list()
    return sum(1 for v in s if pred(v)) / len(s) if s else 0.0


def _decimals(c: _Col, sample: int = 500) -> float:
    s = c.series.drop_nulls().head(sample).to_list()
    if not s:
        return 0.0
    counts = []
    for v in s:
        text = repr(float(v))
        counts.append(len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0)
    counts.sort()
    return float(counts[len(counts) // 2])


def _in_gps_range(c: _Col) -> bool:
    s = c.series.drop_nulls()
    return -180 <= float(s.min()) and float(s.max()) <= 180  # type: ignore[arg-type]


def _looks_like_name(v: str, *, words: int = 1) -> bool:
    """A personal name: ``words``+ words of letters, capitalised in scripts with case, and
    not a survey answer (yes/no, male/female, don't know)."""
    v = v.strip()
    if not _NAME_RE.match(v) or v.lower() in _ANSWER_WORDS:
        return False
    parts = v.split()
    return len(parts) >= words and all(p[0].isupper() or not p[0].isascii() for p in parts)


def _personal_values(c: _Col, *, name_header: bool) -> str | None:
    """What the values of a text column are when they identify people by themselves:
    names, phone numbers, e-mail addresses or ID numbers (most of a sample of values)."""
    if not c.is_string or not c.n_valid:
        return None
    if _share(c, lambda v: bool(_EMAIL_RE.match(v))) > 0.5:
        return "e-mail addresses"
    if (
        _share(
            c,
            lambda v: bool(_PHONE_RE.match(v)) and not _DATE_RE.match(v.strip()) and sum(ch.isdigit() for ch in v) >= 8,
        )
        > 0.5
    ):
        return "phone numbers"
    if (
        _share(
            c,
            lambda v: (
                bool(_IDNO_RE.match(v.strip())) and not _DATE_RE.match(v.strip()) and sum(ch.isdigit() for ch in v) >= 6
            ),
        )
        > 0.8
        and c.unique_ratio > 0.5
    ):
        return "ID numbers"
    # with a name header one word is enough ("Amina"); without, full names ("Amina Yusuf")
    if _share(c, lambda v: _looks_like_name(v, words=1 if name_header else 2)) > 0.8:
        return "personal names"
    return None


def _direct_identifier(c: _Col) -> str | None:
    t = c.tokens
    geo_or_group = _hit(
        t,
        {
            "camp",
            "site",
            "village",
            "district",
            "region",
            "country",
            "province",
            "settlement",
            "school",
            "org",
            "organisation",
            "organization",
            "agency",
            "partner",
            "file",
            "dataset",
            "variable",
            "enumerator",
            "team",
            "form",
        },
    )
    name_word = _hit(t, _NAME_WORDS) if not geo_or_group else None
    values = _personal_values(c, name_header=name_word is not None)
    # a column with a handful of values among many records cannot single anyone out by its
    # count alone (has_phone, mobile_money, name_known...): a header word is not enough
    # there, but values that are names, phone numbers or e-mails identify whatever their count
    few = c.n_valid >= 30 and c.n_unique <= 10
    if name_word and (not few or values == "personal names"):
        return f'person name (header word "{name_word}"' + (", names in the values)" if values else ")")
    if values in ("phone numbers", "e-mail addresses", "ID numbers"):
        return f"{values} in the values"
    if (
        values == "personal names"
        and not geo_or_group
        and not _hit(t, _KEY_WORDS)
        and (not few or c.unique_ratio > 0.2)
    ):
        return "personal names in the values"
    if few:
        return None
    if w := _hit(t, _PHONE_WORDS):
        return f'phone number (header word "{w}")'
    if w := _hit(t, _EMAIL_WORDS):
        return f'e-mail address (header word "{w}")'
    if w := _hit(t, _ADDRESS_WORDS):
        return f'address (header word "{w}")'
    if w := _hit(t, _DOB_WORDS):
        return f'date of birth (header word "{w}")'
    if _hit(t, {"birth", "naissance", "nacimiento", "born"}) and (
        _hit(t, {"date", "day", "fecha", "jour"}) or c.dtype in (pl.Date, pl.Datetime)
    ):
        return "date of birth (header words)"
    if w := _hit(t, _GPS_WORDS):
        if c.is_string or c.n_valid == 0 or (c.is_numeric and _in_gps_range(c)):
            return f'GPS coordinate (header word "{w}")'
    if (w := _hit(t, _ID_WORDS)) and not geo_or_group:
        if (c.n_unique >= 10 and c.unique_ratio >= 0.1) or c.unique_ratio >= 0.9:
            return f'identification number (header word "{w}", {c.n_unique} distinct values)'
    if c.dtype.is_float() and c.n_valid >= 20 and not _hit(t, _MONEY_WORDS):
        s = c.series.drop_nulls()
        lo, hi = float(s.min()), float(s.max())  # type: ignore[arg-type]
        if -180 <= lo and hi <= 180 and c.unique_ratio > 0.05 and c.n_unique > 20 and _decimals(c) >= 4:
            return f"looks like GPS coordinates (values in [{lo:.2f}, {hi:.2f}] with 4+ decimals)"
    if c.n_valid >= 20 and not _hit(t, _MONEY_WORDS) and not _hit(t, _KEY_WORDS):
        if c.is_string and c.unique_ratio > 0.8:
            return f"mostly unique text ({c.unique_ratio:.0%} distinct values)"
        if c.dtype.is_integer() and c.unique_ratio > 0.95:
            return f"mostly unique integers ({c.unique_ratio:.0%} distinct values): likely a record id"
    return None
