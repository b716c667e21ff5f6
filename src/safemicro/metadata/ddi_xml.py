"""The DDI Codebook 2.5 namespace, XML-safe text, element helpers, and validation against
the official schema shipped in ``schemas/`` (shared by writing and reading DDI)."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path
from typing import Any

from safemicro.errors import SafemicroError

DDI_NS = "ddi:codebook:2_5"


SCHEMA_DIR = Path(__file__).with_name("schemas")


SDC_SUBJECT = "Statistical disclosure control"


_N = f"{{{DDI_NS}}}"


# XML 1.0 Char production, complemented
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: Any) -> str:
    """``value`` as text XML 1.0 can hold: invalid characters become U+FFFD and CR/CRLF
    become LF (what any XML parser would turn them into anyway)."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVALID_XML.sub("\ufffd", text)


def _el(parent: ET.Element, tag: str, text: Any = None, **attrs: Any) -> ET.Element:
    e = ET.SubElement(
        parent,
        _N + tag,
        {k.replace("_", "-") if k in ("wgt_var",) else k: xml_text(v) for k, v in attrs.items() if v not in (None, "")},
    )
    if text is not None:
        e.text = xml_text(text)
    return e


def _maybe(parent: ET.Element, tag: str, text: Any, **attrs: Any) -> ET.Element | None:
    if text in (None, "") or (isinstance(text, str) and not text.strip()):
        return None
    return _el(parent, tag, text, **attrs)


def _num(v: float | int | None) -> str:
    """A number as DDI text: whole numbers without decimals, others to 6 significant decimals."""
    if v is None:
        return ""
    f = float(v)
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.6f}".rstrip("0").rstrip(".")


@lru_cache(maxsize=1)
def _schema():
    try:
        import xmlschema
    except ImportError:  # pragma: no cover - xmlschema is in the test extra
        raise SafemicroError("validating DDI needs the xmlschema package (pip install xmlschema)") from None
    return xmlschema.XMLSchema(str(SCHEMA_DIR / "codebook.xsd"))


def validate_ddi(source: str | os.PathLike[str] | ET.Element) -> list[str]:
    """Problems found by validating against the DDI Codebook 2.5 XSD (empty list: valid).

    ``source`` is a file path, XML text or an element. Offline: the schema and everything
    it imports come from :data:`SCHEMA_DIR`.
    """
    schema = _schema()
    if isinstance(source, ET.Element):
        source = ET.tostring(source, encoding="unicode")
    elif isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("<")):
        source = str(source)
    return [
        f"{e.path}: {e.reason}" if getattr(e, "path", None) else str(e.reason or e) for e in schema.iter_errors(source)
    ]
