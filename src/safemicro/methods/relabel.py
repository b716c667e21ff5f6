"""The variable label of a recoded variable says what it now holds.

After banding, "Age in completed years" would describe values that are no longer ages in
years; the label becomes "Age in completed years (banded: 0-14, 15-24, 25-44, 45-64, …)",
and a later recode replaces that note instead of adding a second one.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["recoded_label"]

RECODED_MARK = re.compile(r" \((?:banded|grouped|top-coded|bottom-coded): [^()]*\)$")
LABELS_SHOWN = 4  # category labels quoted in a recoded variable's label


def _fmt_code(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def recoded_label(label: str | None, variable: str, kind: str, labels: dict) -> str:
    """``"Age in completed years (banded: 0-14, 15-24, …)"``: the variable label saying what
    the recoded variable now holds (an earlier recode's note is replaced, not repeated)."""
    base = RECODED_MARK.sub("", label) if label else variable
    if kind == "grouped" and label and label != base and label[len(base) :].startswith(" (banded:"):
        kind = "banded"  # bands merged into broader bands are still bands
    names = [str(v) for v in labels.values()]
    shown = ", ".join(names[:LABELS_SHOWN]) + (", …" if len(names) > LABELS_SHOWN else "")
    return f"{base} ({kind}: {shown})" if shown else base
