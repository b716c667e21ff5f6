"""The text encoding of a CSV file: the one given, else UTF-8, else detected.

Curators get CSV files from Excel and older systems in the Windows code page of the office
that made them (cp1252 in Western Europe, the Americas and much of Africa; cp1256 Arabic,
cp1251 Cyrillic, cp1250 Central European, cp1254 Turkish). A file that is not UTF-8 is
decoded with the encoding charset-normalizer finds among these common ones, and a warning
says which one was used, shows a sample of the text read that way, and names the
``--encoding`` option that overrides it. Nothing is decoded with replacement characters:
a file no candidate decodes cleanly is an error naming the option.
"""

from __future__ import annotations

import codecs
import re
import warnings

from safemicro.errors import SafemicroError

__all__ = ["CANDIDATES", "decode_text", "detect_encoding"]

# Common single-byte encodings of survey files, in order of preference when several read
# the file the same way or equally well (cp1252 is a superset of latin-1's letters).
CANDIDATES = (
    "cp1252", "cp1256", "cp1251", "cp1250", "cp1254", "cp1253", "cp1255", "cp1257",
    "iso8859_15", "latin_1", "iso8859_2", "iso8859_6", "koi8_r",
)  # fmt: skip
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))  # fmt: skip
OPTION = "--encoding"


def _rank(names: list[str]) -> tuple[int, str]:
    """The preferred name among equivalent encodings, and its place in CANDIDATES."""
    known = [n for n in names if n in CANDIDATES]
    best = min(known, key=CANDIDATES.index) if known else names[0]
    return (CANDIDATES.index(best) if best in CANDIDATES else len(CANDIDATES)), best


def detect_encoding(raw: bytes) -> str | None:
    """The most plausible of :data:`CANDIDATES` for ``raw`` (None when none fits): the
    least garbled reading, then the most coherent language, then the preference order."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw, cp_isolation=list(CANDIDATES), threshold=0.4))
    if not matches:
        return None
    least = min(m.chaos for m in matches)
    clean = [m for m in matches if m.chaos <= least + 0.02]
    most = max(m.coherence for m in clean)
    plausible = [m for m in clean if m.coherence >= most - 0.05]
    return min(_rank(list(m.could_be_from_charset)) for m in plausible)[1]


def _sample(text: str) -> str:
    """A few words around the first non-ASCII character, for the user to check."""
    m = re.search(r"[^\x00-\x7f]", text)
    if not m:
        return ""
    end = text.find("\n", m.start())
    line = text[text.rfind("\n", 0, m.start()) + 1 : end if end >= 0 else len(text)]
    cells = [c for c in re.split(r"[,;\t]", line) if re.search(r"[^\x00-\x7f]", c)]
    return (cells[0] if cells else line).strip()[:40]


def _position(raw: bytes, e: UnicodeDecodeError) -> tuple[str, int | None]:
    line = raw.count(b"\n", 0, e.start) + 1
    row = line - 1 if line > 1 else None
    where = "in the header" if row is None else f"at data row {row}"
    bad = raw[e.start : e.start + 4].hex(" ")
    return f"cannot decode byte offset {e.start} (line {line}, bytes {bad}) {where}", row


def _undecodable(raw: bytes, e: UnicodeDecodeError, file: str, before: str, after: str) -> SafemicroError:
    """The error for bytes that do not decode: ``before``, where they are, ``after``; naming the row."""
    what, row = _position(raw, e)
    return SafemicroError(before + what + after, file=file, row=row)


def decode_text(raw: bytes, file: str, encoding: str | None) -> str:
    """The text of a CSV file's bytes, without a leading byte-order mark.

    ``encoding`` given: exactly that, strictly. Otherwise a byte-order mark decides, then
    UTF-8, then :func:`detect_encoding` with a warning naming the encoding used.
    """
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError:
            raise SafemicroError(f"unknown encoding {encoding!r} (given with {OPTION})", file=file) from None
        except UnicodeDecodeError as e:
            raise _undecodable(
                raw,
                e,
                file,
                f"is not valid {encoding}: ",
                f"; give the right one with {OPTION} (or leave {OPTION} out to have it detected)",
            ) from None
    for bom, name in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(name)
            except UnicodeDecodeError as e:
                at = len(bom)  # the decoder counted from after the mark; the file counts it
                in_file = UnicodeDecodeError(e.encoding, raw, e.start + at, e.end + at, e.reason)
                raise _undecodable(
                    raw,
                    in_file,
                    file,
                    f"starts with a {name} byte-order mark but is not valid {name}: ",
                    f"; give the encoding with {OPTION}",
                ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        error = e
    found = detect_encoding(raw)
    if found is None:
        raise _undecodable(
            raw,
            error,
            file,
            "is not valid UTF-8 (",
            f") and its encoding could not be detected; give it with {OPTION}, e.g. {OPTION} cp1252",
        )
    text = raw.decode(found)
    sample = _sample(text)
    warnings.warn(
        f"{file}: not UTF-8; read as {found} (detected"
        + (f"; its first non-ASCII text reads {sample!r}" if sample else "")
        + f"); if that looks wrong, give the encoding with {OPTION} (e.g. {OPTION} cp1256)",
        UserWarning,
        stacklevel=4,
    )
    return text
