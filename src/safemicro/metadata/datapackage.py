"""Frictionless Data Package v2 for a CSV release: ``<stem>.csv`` + ``datapackage.json``.

Value labels become ``categories`` (``{value, label}``, with ``categoriesOrdered`` for
ordinal variables) and user-missing codes labelled ``missingValues`` — the v2 features
that carry SPSS/Stata labels into a tool-neutral release. The Table Schema allows
categories on ``integer`` and ``string`` fields only, so float columns whose values are
all whole numbers are written as integers (the CSV beside the descriptor is written
here, from the released data, for that reason); labels of other float columns are kept
in the field description. Stata extended missing values (``.a``-``.z``) are empty cells
in a CSV, labelled as such.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from safemicro.atomic import write_bytes, write_text
from safemicro.io.writers import csv_bytes
from safemicro.metadata.model import Documentation
from safemicro.metadata.summary import _extended_letter, format_code

__all__ = ["datapackage_descriptor", "write_datapackage", "PROFILE"]

PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
RESOURCE_PROFILE = "https://datapackage.org/profiles/2.0/dataresource.json"
SCHEMA_PROFILE = "https://datapackage.org/profiles/2.0/tableschema.json"


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return s or "data"


def csv_frame(doc: Documentation) -> pl.DataFrame:
    """The released frame as the CSV holds it: whole-number float columns as Int64."""
    frame = doc.dataset.frame
    casts = []
    for name, dtype in frame.schema.items():
        if dtype.is_float():
            col = frame.get_column(name)
            finite = col.drop_nulls().drop_nans() if col.len() else col
            if (
                0 < finite.len() == col.drop_nulls().len()
                and ((finite % 1) == 0).all()
                and (finite.abs() < 2**53).all()
            ):
                casts.append(pl.col(name).fill_nan(None).cast(pl.Int64))
    return frame.with_columns(casts) if casts else frame


def _field_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "number"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Datetime:
        return "datetime"
    if dtype == pl.Time:
        return "time"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "string"
    return "any"


def _cell_text(value: Any, dtype: pl.DataType) -> str | None:
    """How ``value`` appears in the CSV of a column of ``dtype`` (None: cannot appear)."""
    try:
        return pl.Series([value]).cast(dtype).cast(pl.String)[0]
    except Exception:  # noqa: BLE001 - a code that does not fit the column type
        return None


def datapackage_descriptor(doc: Documentation, frame: pl.DataFrame, csv_name: str, csv_bytes: bytes) -> dict[str, Any]:
    """The ``datapackage.json`` content for ``frame`` written as ``csv_name``."""
    fields = []
    vdocs = doc.study.variables
    for name, dtype in frame.schema.items():
        meta = doc.dataset.codebook.meta(name)
        ftype = _field_type(dtype)
        field: dict[str, Any] = {"name": name, "type": ftype}
        label = (vdocs[name].label if name in vdocs and vdocs[name].label else None) or meta.label
        if label:
            field["title"] = label
        description = []
        if name in vdocs and vdocs[name].question:
            description.append(vdocs[name].question)
        missing: list[dict[str, str]] = [{"value": "", "label": "system missing"}]
        for code in meta.missing_values:
            text = _cell_text(code, dtype)
            if text is not None and text not in [m["value"] for m in missing]:
                missing.append({"value": text, "label": str(meta.value_labels.get(code, "user-missing"))})
        ext_labels = [
            str(lab) for code, lab in meta.value_labels.items() if ftype != "string" and _extended_letter(code)
        ]
        if ext_labels:
            missing[0]["label"] = "system missing or " + "; ".join(ext_labels)
        if meta.missing_ranges:
            description.append(
                "Missing ranges: "
                + ", ".join(f"{format_code(lo)} to {format_code(hi)}" for lo, hi in meta.missing_ranges)
            )
        field["missingValues"] = missing
        cats = []
        missing_texts = {m["value"] for m in missing}
        for code, lab in meta.value_labels.items():
            if ftype != "string" and _extended_letter(code):
                continue
            text = _cell_text(code, dtype)
            if text is None or text in missing_texts:
                continue
            if ftype == "integer":
                cats.append({"value": int(text), "label": str(lab)})
            elif ftype == "string":
                cats.append({"value": text, "label": str(lab)})
        if cats:
            field["categories"] = sorted(cats, key=lambda c: (isinstance(c["value"], str), c["value"]))
            if meta.measure == "ordinal":
                field["categoriesOrdered"] = True
        elif meta.value_labels and ftype == "number":
            description.append(
                "Value labels: " + "; ".join(f"{format_code(k)} = {v}" for k, v in meta.value_labels.items())
            )
        if description:
            field["description"] = "\n".join(description)
        fields.append(field)
    resource = {
        "$schema": RESOURCE_PROFILE,
        "name": _slug(Path(csv_name).stem),
        "path": csv_name,
        "type": "table",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "bytes": len(csv_bytes),
        "hash": "sha256:" + hashlib.sha256(csv_bytes).hexdigest(),
        "schema": {"$schema": SCHEMA_PROFILE, "fields": fields, "missingValues": [""]},
    }
    if doc.file.label:
        resource["title"] = doc.file.label
    package: dict[str, Any] = {
        "$schema": PROFILE,
        "name": _slug(doc.idno),
        "id": doc.idno,
        "title": doc.title,
    }
    if doc.study.abstract:
        package["description"] = doc.study.abstract
    if doc.version:
        package["version"] = doc.version
    if doc.study.keywords:
        package["keywords"] = list(doc.study.keywords)
    contributors = [{"title": a.name, "roles": ["author"]} for a in doc.study.authors]
    contributors += [{"title": p.name, "roles": ["producer"]} for p in doc.study.producers]
    if contributors:
        package["contributors"] = contributors
    package["resources"] = [resource]
    return package


def write_datapackage(doc: Documentation, out_dir: Path) -> dict[str, Path]:
    """Write ``<stem>.csv`` and ``datapackage.json`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"\.(csv\.gz|[A-Za-z0-9]+)$", "", doc.file.name) or "data"
    csv_path = out_dir / f"{stem}.csv"
    frame = csv_frame(doc)
    data = csv_bytes(doc.dataset.with_frame(frame), file=str(csv_path))
    write_bytes(csv_path, data)
    descriptor = datapackage_descriptor(doc, frame, csv_path.name, data)
    json_path = out_dir / "datapackage.json"
    write_text(json_path, json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n")
    return {"csv": csv_path, "datapackage": json_path}
