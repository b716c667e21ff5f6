"""Risk of the continuous key variables of a dataset: outliers, interval and linkage disclosure.

Used by :func:`safemicro.assess.assess` for ``roles.numeric_keys``, with or without
categorical keys (business and establishment surveys have none). Values are read as
numbers with their special codes and missing values left out
(:meth:`safemicro.io.Dataset.numeric_column`). Before anonymization the data is compared
with itself (every record is disclosed: interval and linkage disclosure are 1); after it,
the released values are compared with the ``original`` ones, row for row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from safemicro.io import Dataset
from safemicro.risk.numeric import interval_disclosure, linkage_disclosure, outliers
from safemicro.risk.numeric_robust import multivariate_outliers, rmd_disclosure, robust_distances

__all__ = ["OUTLIER_RULE", "numeric_key_risk", "robust_checks"]

OUTLIER_RULE = "modified z-score 0.6745·|x − median|/MAD > 3.5"


def _matrix(ds: Dataset, names: list[str]) -> np.ndarray:
    return np.column_stack([ds.numeric_column(n).fill_null(np.nan).to_numpy() for n in names])


def numeric_key_risk(
    dataset: Dataset, names: list[str], records: dict[str, Any], original: Dataset | None = None, robust: bool = False
) -> dict[str, Any]:
    """The numeric-risk summary; adds one ``outlier_<name>`` flag column per key to ``records``.

    ``original`` holds the same records in the same order before anonymization. ``robust``
    adds the MCD multivariate outliers and the RMD interval disclosure
    (:mod:`safemicro.risk.numeric_robust`) and a ``multivariate_outlier`` column.
    """
    x = _matrix(dataset, names)
    variables = {}
    for j, name in enumerate(names):
        col = x[:, j]
        flags = outliers(col)
        records[f"outlier_{name}"] = flags
        ok = col[~np.isnan(col)]
        codes = dataset.special_codes(name)
        variables[name] = {
            "n_outliers": int(flags.sum()),
            "outlier_rule": OUTLIER_RULE,
            "min": float(ok.min()) if len(ok) else None,
            "median": float(np.median(ok)) if len(ok) else None,
            "p99": float(np.percentile(ok, 99)) if len(ok) else None,
            "max": float(ok.max()) if len(ok) else None,
            "n_missing": int(np.isnan(col).sum()),
            "special_codes": codes or [],
        }
    if original is not None and original.n != dataset.n:
        raise ValueError("the original data must hold the same records as the released data")
    xo = x if original is None else _matrix(original, names)
    robust_part = _robust(xo, x, records) if robust else {}
    return robust_part | {
        "variables": variables,
        "compared_with": "itself" if original is None else "original",
        "interval_disclosure": interval_disclosure(xo, x),
        "linkage_disclosure": linkage_disclosure(xo, x),
        "n_records_with_outlier": int(np.any([records[f"outlier_{n}"] for n in names], axis=0).sum()),
    }


def _robust(xo: np.ndarray, x: np.ndarray, records: dict[str, Any]) -> dict[str, Any]:
    """MCD outliers of the original values and RMD disclosure of the released ones."""
    try:
        _, _, d2 = robust_distances(xo)
    except ValueError as e:
        return {"robust_note": f"robust measures not computed: {e}"}
    flags = multivariate_outliers(d2, xo.shape[1])
    records["multivariate_outlier"] = flags
    rmd = rmd_disclosure(xo, x, d2)
    return {
        "n_multivariate_outliers": int(flags.sum()),
        "rmd_risk1": rmd["risk1"],
        "rmd_wrisk1": rmd["wrisk1"],
        "rmd_wrisk2": rmd["wrisk2"],
    }


def robust_checks(summary: dict[str, Any], targets: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``max_rmd_risk`` target check (on the d²-weighted RMD interval disclosure)."""
    limit = (targets or {}).get("max_rmd_risk")
    v = (summary.get("numeric_risk") or {}).get("rmd_wrisk1")
    if limit is None or v is None:
        return []
    return [
        {
            "target": f"RMD interval disclosure ≤ {limit:g}",
            "value": v,
            "passed": v <= limit,
            "message": f"{100 * v:.2f}% of the numeric records' outlyingness lies within their robust intervals",
        }
    ]
