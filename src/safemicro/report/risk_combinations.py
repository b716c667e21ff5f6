"""The risk report's "key combinations" section: k-anonymity on every m-combination of keys
and mu-Argus unsafe cells per table, from the assess summary's ``key_combinations``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .format import fmt_int


def combinations_context(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Rows for the template, or None when the measure was not asked for."""
    section = summary.get("key_combinations") if isinstance(summary, Mapping) else None
    if not isinstance(section, Mapping):
        return None
    kanon = [
        {
            "size": r.get("size"),
            "k": r.get("k"),
            "combinations": f"{fmt_int(r.get('n_combinations_violating'))} of {fmt_int(r.get('n_combinations'))}",
            "records": fmt_int(r.get("n_records_violating")),
            "flag": bool(r.get("n_records_violating")),
            "worst": ", ".join("+".join(w.get("keys", [])) for w in (r.get("worst") or [])[:3]),
        }
        for r in section.get("kanon") or []
        if isinstance(r, Mapping)
    ]
    rc = section.get("risky_cells") if isinstance(section.get("risky_cells"), Mapping) else None
    cells = (
        [
            {
                "dim": d,
                "threshold": v.get("threshold"),
                "tables": f"{fmt_int(v.get('unsafe_tables'))} of {fmt_int(v.get('tables'))}",
                "cells": fmt_int(v.get("cells")),
                "flag": bool(v.get("cells")),
            }
            for d, v in (rc.get("by_dimension") or {}).items()
            if isinstance(v, Mapping)
        ]
        if rc
        else []
    )
    return {"strata": section.get("strata"), "kanon": kanon, "cells": cells}
