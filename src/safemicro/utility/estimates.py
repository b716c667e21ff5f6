"""Design-based estimates (means, proportions, totals) and their before/after comparison.

Each indicator a user will compute (``plan.utility.indicators``) is estimated on the
original and on the released data with a confidence interval from the survey design (see
:mod:`safemicro.utility.design`), and compared by the difference, the relative difference
and Karr et al.'s (2006) interval overlap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.jsonable import json_value
from safemicro.plan import Indicator
from safemicro.utility.design import Design, ratio_estimates, z_value
from safemicro.utility.tables import joint_codes, value_label

__all__ = ["ci_overlap", "compare_indicator", "comparison", "estimate"]


def estimate(
    values,
    design: Design,
    *,
    kind: str = "mean",
    domain: np.ndarray | None = None,
    n_categories: int | None = None,
    level: float = 0.95,
) -> dict[str, np.ndarray]:
    """Weighted estimates with design-based standard errors and normal-theory intervals.

    ``values``: numbers with NaN for missing (mean, total), or category codes 1..C with 0
    for missing (proportion; ``n_categories`` = C). ``domain``: codes 1..D per record, 0
    outside every domain (None: the whole sample). Returns arrays of shape (D,) — (D, C)
    for proportions — under "estimate", "se", "lower", "upper" and "n" (records used).
    """
    y = np.asarray(values)
    if len(y) != design.n:
        raise SafemicroError(f"{len(y)} values for a design of {design.n} records")
    dom = np.ones(len(y), dtype=np.int64) if domain is None else np.asarray(domain, dtype=np.int64)
    n_dom = int(dom.max(initial=0)) if domain is not None else 1
    if kind == "proportion":
        codes = y.astype(np.int64)
        c = int(codes.max(initial=0)) if n_categories is None else n_categories
        rows = np.flatnonzero((codes > 0) & (dom > 0))
        d = dom[rows] - 1
        group = d * c + codes[rows] - 1
        est, var = ratio_estimates(
            design, rows, np.ones(len(rows)), group, n_dom * c, np.arange(n_dom * c) // max(c, 1), d, n_dom
        )
        n = np.repeat(np.bincount(d, minlength=n_dom), c)
        shape: tuple[int, ...] = (n_dom, c)
    elif kind in ("mean", "total"):
        y = y.astype(np.float64)
        rows = np.flatnonzero(~np.isnan(y) & (dom > 0))
        d = dom[rows] - 1
        if kind == "total":
            est, var = ratio_estimates(design, rows, y[rows], d, n_dom)
        else:  # centring keeps the variance sums from cancelling digits
            w = design.weights[rows]
            centre = float(np.average(y[rows], weights=w)) if w.sum() > 0 else 0.0
            est, var = ratio_estimates(design, rows, y[rows] - centre, d, n_dom, np.arange(n_dom), d, n_dom)
            est = est + centre
        n = np.bincount(d, minlength=n_dom)
        shape = (n_dom,)
    else:
        raise SafemicroError(f"unknown estimate kind {kind!r} (use mean, proportion or total)")
    se = np.sqrt(var)
    z = z_value(level)
    return {
        "estimate": est.reshape(shape),
        "se": se.reshape(shape),
        "lower": (est - z * se).reshape(shape),
        "upper": (est + z * se).reshape(shape),
        "n": n.reshape(shape),
    }


def ci_overlap(lower1: float, upper1: float, lower2: float, upper2: float) -> float | None:
    """Karr et al.'s interval overlap ½·[(U − L)/(u1 − l1) + (U − L)/(u2 − l2)].

    [L, U] is the intersection; 1 for identical intervals, 0 when they just touch, negative
    when they are apart (more so the farther). None when an interval has no width and the
    two are not identical, or a bound is undefined.
    """
    bounds = (lower1, upper1, lower2, upper2)
    if any(b is None or not math.isfinite(b) for b in bounds):
        return None
    if lower1 == lower2 and upper1 == upper2:
        return 1.0
    w1, w2 = upper1 - lower1, upper2 - lower2
    if w1 <= 0 or w2 <= 0:
        return None
    inter = min(upper1, upper2) - max(lower1, lower2)
    return 0.5 * (inter / w1 + inter / w2)


def _num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _side(est: dict[str, np.ndarray] | None, idx: tuple) -> dict[str, Any] | None:
    if est is None:
        return None
    n = int(est["n"][idx])
    if n == 0:
        return {"estimate": None, "se": None, "lower": None, "upper": None, "n": 0}
    return {k: _num(est[k][idx]) for k in ("estimate", "se", "lower", "upper")} | {"n": n}


def comparison(before: dict | None, after: dict | None) -> dict[str, Any]:
    """Difference, relative difference and interval overlap of two estimate dicts."""
    out: dict[str, Any] = {
        "before": before,
        "after": after,
        "difference": None,
        "relative_difference": None,
        "ci_overlap": None,
    }
    if not before or not after or before["estimate"] is None or after["estimate"] is None:
        return out
    diff = after["estimate"] - before["estimate"]
    out["difference"] = diff
    out["relative_difference"] = diff / abs(before["estimate"]) if before["estimate"] != 0 else None
    if None not in (before["lower"], before["upper"], after["lower"], after["upper"]):
        out["ci_overlap"] = ci_overlap(before["lower"], before["upper"], after["lower"], after["upper"])
    return out


def _matches(values: pl.Series, wanted: Any, ds: Dataset, name: str) -> np.ndarray:
    """Positions in ``values`` equal to ``wanted`` as a value, as text, or as its value label."""
    vals = values.to_list()
    hit = [v == wanted or str(v) == str(wanted) for v in vals]
    if not any(hit):
        hit = [value_label(v, name, ds) == str(wanted) for v in vals]
    return np.flatnonzero(hit)


def compare_indicator(
    indicator: Indicator,
    before: tuple[Dataset, Design],
    after: tuple[Dataset, Design],
    *,
    level: float = 0.95,
    pram: Callable[..., tuple[Any, str] | None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per estimate of ``indicator`` (per category and domain), and notes.

    The variable must exist in the original; when the release lacks it (or the domain
    variable), or a mean's variable is no longer numeric, the "after" side is None.
    ``pram``: the PRAM correction (:func:`safemicro.utility.pram_correction.pram_corrector`);
    a proportion of a PRAMed variable also gets the corrected estimate with its wider
    interval (``after_pram_corrected``; None when it cannot be computed) and a note.
    """
    (ds_b, des_b), (ds_a, des_a) = before, after
    var, by = indicator.variable, indicator.by
    notes: list[str] = []
    title = indicator.label or (f"{indicator.kind} of {var}" + (f" by {by}" if by else ""))
    for name in [var] + ([by] if by else []):
        if name not in ds_b.columns:
            raise SafemicroError(
                f"indicator {title!r} names {name!r}, which is not a column of the original data", column=name
            )
    has_after = all(name in ds_a.columns for name in [var] + ([by] if by else []))
    if not has_after:
        notes.append(f"{title}: not computable on the release ({var if var not in ds_a.columns else by} removed)")

    yb = ds_b.analysis_column(var)
    ya = ds_a.analysis_column(var) if has_after else yb.head(0)

    # domains, coded jointly so that the same category has the same code on both sides
    dom_b = dom_a = None
    domains: list[Any] = [None]
    if by:
        db = ds_b.analysis_column(by)
        jd = joint_codes(db, ds_a.analysis_column(by) if has_after else db.head(0))
        dom_b, dom_a = jd.before, jd.after
        domains = jd.values.to_list()

    categories: list[Any] = [None]
    corrected: Any = False  # False: the variable was not PRAMed
    if indicator.kind == "proportion":
        jc = joint_codes(yb, ya)
        categories = jc.values.to_list()
        kwargs = {"kind": "proportion", "n_categories": jc.card, "level": level}
        est_b = estimate(jc.before, des_b, domain=dom_b, **kwargs)
        est_a = estimate(jc.after, des_a, domain=dom_a, **kwargs) if has_after else None
        if pram is not None and has_after:
            found = pram(indicator, title, ds_a, des_a, dom_a, categories, level)
            if found is not None:
                corrected, note = found
                notes.append(note)
        if indicator.value is not None:
            pick = _matches(jc.values, indicator.value, ds_b, var)
            if len(pick) == 0:
                raise SafemicroError(f"indicator {title!r}: {indicator.value!r} is not a value of {var!r}", column=var)
            cat_idx = pick[:1]
        else:
            cat_idx = np.arange(jc.card)
    else:
        if not yb.dtype.is_numeric():
            raise SafemicroError(
                f"indicator {title!r}: a {indicator.kind} needs a numeric variable, {var!r} is {yb.dtype} "
                "(use kind: proportion)",
                column=var,
            )
        kwargs = {"kind": indicator.kind, "level": level}
        est_b = estimate(yb.cast(pl.Float64).fill_null(np.nan).to_numpy(), des_b, domain=dom_b, **kwargs)
        est_a = None
        if has_after and ya.dtype.is_numeric():
            est_a = estimate(ya.cast(pl.Float64).fill_null(np.nan).to_numpy(), des_a, domain=dom_a, **kwargs)
        elif has_after:
            notes.append(f"{title}: {var} is no longer numeric in the release ({ya.dtype}); not compared")
        cat_idx = None

    rows: list[dict[str, Any]] = []
    for d, dom_value in enumerate(domains):
        for c in cat_idx if cat_idx is not None else [None]:
            idx = (d, c) if c is not None else (d,)
            b, a = _side(est_b, idx), _side(est_a, idx)
            if c is not None and indicator.value is None and _zero(b) and _zero(a):
                continue  # a category absent on both sides of this domain
            row: dict[str, Any] = {
                "indicator": title,
                "variable": var,
                "kind": indicator.kind,
                "value": json_value(categories[c]) if c is not None else None,
                "value_label": value_label(categories[c], var, ds_b, ds_a) if c is not None else None,
                "by": by,
                "domain": json_value(dom_value),
                "domain_label": value_label(dom_value, by, ds_b, ds_a) if by else None,
            }
            rows.append(row | comparison(b, a))
            if corrected is not False:
                rows[-1]["after_pram_corrected"] = _side(corrected, idx)
    return rows, notes


def _zero(side: dict | None) -> bool:
    return side is None or side["estimate"] is None or side["estimate"] == 0
