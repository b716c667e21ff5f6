"""The codebook as JSON (stored in Parquet metadata and read back): value types survive."""

from __future__ import annotations

import json
import math
from typing import Any

from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.io.readers_common import _MEASURES


def _scalar_out(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": repr(v)}
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def _scalar_in(v: Any) -> Any:
    if isinstance(v, dict) and "float" in v:
        return float(v["float"])
    return v


def codebook_to_json(codebook: Codebook) -> str:
    """Serialise a codebook; value types (int/float/str) survive the trip."""
    variables = []
    for name, m in codebook.variables.items():
        variables.append(
            {
                "name": name,
                "label": m.label,
                "value_labels": [[_scalar_out(k), v] for k, v in m.value_labels.items()],
                "missing_values": [_scalar_out(v) for v in m.missing_values],
                "missing_ranges": [[_scalar_out(lo), _scalar_out(hi)] for lo, hi in m.missing_ranges],
                "measure": m.measure,
                "format": m.format,
            }
        )
    doc = {
        "version": 1,
        "file_label": codebook.file_label,
        "notes": list(codebook.notes),
        "variables": variables,
        "extended_missing": {
            col: [[int(r), code] for r, code in sorted(rows.items())] for col, rows in codebook.extended_missing.items()
        },
    }
    return json.dumps(doc, ensure_ascii=False)


def codebook_from_json(text: str) -> Codebook:
    doc = json.loads(text)
    cb = Codebook(file_label=doc.get("file_label"), notes=list(doc.get("notes") or []))
    for v in doc.get("variables", []):
        measure = v.get("measure") or "unknown"
        cb.variables[v["name"]] = VariableMeta(
            name=v["name"],
            label=v.get("label"),
            value_labels={_scalar_in(k): lab for k, lab in v.get("value_labels", [])},
            missing_values=[_scalar_in(x) for x in v.get("missing_values", [])],
            missing_ranges=[(_scalar_in(lo), _scalar_in(hi)) for lo, hi in v.get("missing_ranges", [])],
            measure=measure if measure in _MEASURES else "unknown",
            format=v.get("format"),
        )
    for col, rows in (doc.get("extended_missing") or {}).items():
        cb.extended_missing[col] = {int(r): str(code) for r, code in rows}
    return cb
