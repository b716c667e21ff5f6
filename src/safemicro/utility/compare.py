"""The utility section of the report: how much the released data differ from the original.

:func:`compare` lines the released rows up with the original ones (through the hidden row
id when both frames carry it, else by position), then measures, per variable, the cells
changed and suppressed and the distance between the distributions; for the numeric keys
the record-level information loss (IL1, IL1s, eigen, interval disclosure); two-way tables;
and the indicators and regressions the plan names, with design-based intervals.

Cell-wise measures (changed, suppressed, records changed, numeric loss) use the matched
rows; distributional ones (marginals, tables, estimates, regressions) compare the whole
original with the whole release, so rows dropped by subsampling count as a loss too.
Distributions are compared as they are: after a recode the categories differ and the
distances say how far apart the two codings are, which the notes point out.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.jsonable import json_value
from safemicro.keys import KeyTable
from safemicro.methods.base import ROW_ID, cells_differ, same_values
from safemicro.plan import Roles, Utility
from safemicro.utility.design import Design, make_design
from safemicro.utility.estimates import compare_indicator
from safemicro.utility.info_loss import table_info_loss
from safemicro.utility.key_codes import key_joint_codes, key_pair_distances, narrow, per_record
from safemicro.utility.models import compare_regression
from safemicro.utility.numeric import QUANTILE_PROBS, numeric_loss, quantiles
from safemicro.utility.pram_correction import pram_corrector
from safemicro.utility.tables import (
    JointCodes,
    common_dtype,
    distances,
    joint_codes,
    pair_distances,
    value_label,
)

__all__ = ["compare"]

CATEGORICAL_MAX = 30  # numeric columns without a role: at most this many values = categorical
TEXT_MAX = 1000  # text columns without a role: more distinct values = identifier-like


# -- rows -------------------------------------------------------------------------------


def _align(original: Dataset, released: Dataset) -> tuple[np.ndarray | None, str]:
    """Original row of each released row (None: the same rows in the same order)."""
    if ROW_ID in original.columns and ROW_ID in released.columns:
        ids = original.frame.get_column(ROW_ID).cast(pl.Int64, strict=False)
        rel = released.frame.get_column(ROW_ID).cast(pl.Int64, strict=False)
        fast = _positions(ids, rel)
        if fast is not None:
            return fast
        for what, s, ds in (("original", ids, original), ("released", rel, released)):
            if s.null_count():
                raise SafemicroError(
                    f"the {what} data has rows without a row id",
                    column=ROW_ID,
                    file=ds.source,
                    row=int(np.argmax(s.is_null().to_numpy())) + 1,
                )
            if s.is_duplicated().any():
                raise SafemicroError(
                    f"the {what} data has duplicated row ids",
                    column=ROW_ID,
                    file=ds.source,
                    row=int(np.argmax(s.is_duplicated().to_numpy())) + 1,
                )
        lookup = pl.DataFrame({"id": ids, "pos": pl.int_range(original.n, eager=True, dtype=pl.Int64)})
        pos = pl.DataFrame({"id": rel}).join(lookup, on="id", how="left", maintain_order="left")["pos"]
        if pos.null_count():
            raise SafemicroError(
                "a released row has a row id the original does not have",
                column=ROW_ID,
                file=released.source,
                row=int(np.argmax(pos.is_null().to_numpy())) + 1,
            )
        idx = pos.to_numpy()
        if len(idx) == original.n and np.array_equal(idx, np.arange(original.n)):
            return None, "row id"
        return idx, "row id"
    if original.n != released.n:
        raise SafemicroError(
            f"the release has {released.n} rows and the original {original.n}; without the row id "
            f"column {ROW_ID!r} in both, rows can only be compared when they correspond one to one"
        )
    return None, "position"


def _positions(ids: pl.Series, rel: pl.Series) -> tuple[np.ndarray | None, str] | None:
    """The usual case without a join: the original's row ids are 0..n-1 in order (as
    ``anonymize`` tags them), so a released row id is its original position. None when
    that does not hold or a released id is missing, repeated or unknown (the general
    path then says which row)."""
    n = ids.len()
    if ids.null_count() or rel.null_count() or not np.array_equal(ids.to_numpy(), np.arange(n)):
        return None
    idx = rel.to_numpy()
    if len(idx) and (idx.min() < 0 or idx.max() >= n or np.bincount(idx, minlength=n).max() > 1):
        return None
    if len(idx) == n and np.array_equal(idx, np.arange(n)):
        return None, "row id"
    return idx, "row id"


def _take(s: pl.Series, idx: np.ndarray | None) -> pl.Series:
    return s if idx is None else s.gather(idx)


def _weights(ds: Dataset, name: str) -> np.ndarray:
    w = ds.analysis_column(name)
    if not w.dtype.is_numeric():
        raise SafemicroError(f"weight must be numeric, found {w.dtype}", column=name, file=ds.source)
    arr = w.cast(pl.Float64).fill_null(np.nan).to_numpy()
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise SafemicroError(
            "weight is missing" if np.isnan(arr[row]) else f"weight must be non-negative, found {arr[row]}",
            column=name,
            file=ds.source,
            row=row + 1,
        )
    return arr


# -- variables --------------------------------------------------------------------------


def _kind(name: str, roles: Roles, ds: Dataset) -> str:
    """How a variable is compared: id (counts only), numeric or categorical."""
    if name in roles.direct_ids or name in (roles.household, roles.cluster):
        return "id"
    if name in roles.numeric_keys or name == roles.weight:
        return "numeric"
    if name in roles.keys or name in roles.sensitive or name in roles.ghost or name == roles.strata:
        return "categorical"
    s = ds.frame.get_column(name)
    if s.dtype.is_numeric():
        if ds.special_codes(name):  # income with -9 "Refused": numeric with special codes
            return "numeric"
        if ds.codebook.meta(name).value_labels or _at_most(s, CATEGORICAL_MAX):
            return "categorical"
        return "numeric"
    return "categorical" if _at_most(s, TEXT_MAX) else "id"


def _at_most(s: pl.Series, limit: int) -> bool:
    """``s.n_unique() <= limit``, answered from the first rows when they already hold more."""
    head = s.head(max(64 * limit, 10_000))
    if head.len() < s.len() and head.n_unique() > limit:
        return False
    return s.n_unique() <= limit


def _numbers(ds: Dataset, name: str) -> pl.Series:
    """A numeric variable's numbers (special codes and missing values null); others as analysed."""
    return ds.numeric_column(name) if ds.frame.schema[name].is_numeric() else ds.analysis_column(name)


def _role(name: str, roles: Roles) -> str:
    found = roles.role_of(name)
    return found[0] if found else "other"


def _cells(a: pl.Series, b: pl.Series, labels: tuple[dict, dict] | None = None) -> tuple[np.ndarray, int]:
    """Cells that differ and cells newly missing: the steps' own rule (:func:`cells_differ`)."""
    differ, suppressed = cells_differ(a, b, labels)
    return differ, int(suppressed.sum())


def _marginal(jc: JointCodes, counts: dict[str, np.ndarray], top: int, name: str, dsets) -> list[dict]:
    """The largest categories before/after (shares), then missing and the rest, for plots."""
    shares = {k: (v / v.sum() if v.sum() > 0 else v) for k, v in counts.items()}
    size = np.maximum(shares["before"], shares["after"])[1:]
    order = np.argsort(-size, kind="stable")
    order = order[size[order] > 0]
    head, rest = order[:top] + 1, order[top:] + 1

    def row(kind: str, value: Any, label: str | None, codes) -> dict:
        out = {"kind": kind, "value": value, "label": label}
        for k, v in shares.items():
            out[f"share_{k}"] = float(v[codes].sum())
        out["count_before"] = int(counts["before"][codes].sum())
        out["count_after"] = int(counts["after"][codes].sum())
        return out

    values = jc.values.to_list()
    rows = [row("value", json_value(values[c - 1]), value_label(values[c - 1], name, *dsets), [c]) for c in head]
    if counts["before"][0] or counts["after"][0]:
        rows.append(row("missing", None, "missing", [0]))
    if len(rest):
        rows.append(row("other", None, f"{len(rest)} other categories", rest))
    return rows


def _categorical_row(jc, w_b, w_a, top, name, dsets) -> dict[str, Any]:
    cb, ca = jc.counts()
    counts = {"before": cb, "after": ca}
    out: dict[str, Any] = dict(distances(cb, ca))
    if w_b is not None:
        wb, wa = jc.counts(w_b, w_a)
        wd = distances(wb, wa)
        out |= {"tvd_weighted": wd["tvd"], "hellinger_weighted": wd["hellinger"]}
        counts |= {"weighted_before": wb, "weighted_after": wa}
    else:
        out |= {"tvd_weighted": None, "hellinger_weighted": None}
    seen_b, seen_a = cb[1:] > 0, ca[1:] > 0
    out |= {
        "categories_before": int(seen_b.sum()),
        "categories_after": int(seen_a.sum()),
        "categories_differ": bool((seen_b != seen_a).any()),
        "marginal": _marginal(jc, counts, top, name, dsets),
    }
    return out


def _numeric_row(before: pl.Series, after: pl.Series) -> dict[str, Any]:
    out: dict[str, Any] = {}
    same = same_values(before, after)
    for side, s in (("before", before), ("after", after)):
        if side == "after" and same:  # an unchanged variable: its statistics once
            out |= {f"{stat}_after": out[f"{stat}_before"] for stat in ("mean", "sd", "quantiles")}
            continue
        ok = s.dtype.is_numeric()
        v = s.cast(pl.Float64).fill_null(np.nan).to_numpy() if ok else None
        obs = v[~np.isnan(v)] if ok else np.empty(0)
        out[f"mean_{side}"] = json_value(float(obs.mean())) if len(obs) else None
        out[f"sd_{side}"] = json_value(float(obs.std(ddof=1))) if len(obs) > 1 else None
        out[f"quantiles_{side}"] = quantiles(obs) if ok else None
    out["quantile_probs"] = list(QUANTILE_PROBS)
    return out


# -- the whole section ------------------------------------------------------------------


def _design(ds: Dataset, roles: Roles, weights: np.ndarray | None, fallback: Dataset, idx) -> Design:
    """The design of ``ds``; strata/cluster columns it lacks come from ``fallback`` rows ``idx``."""

    def column(name: str | None):
        if name is None:
            return None
        if name in ds.columns:
            return ds.analysis_column(name)
        return _take(fallback.analysis_column(name), idx)

    return make_design(weights, column(roles.strata), column(roles.cluster), n=ds.n)


def compare(
    original: Dataset,
    released: Dataset,
    *,
    roles: Roles,
    utility: Utility | None = None,
    level: float = 0.95,
    top: int = 10,
    coded: Dataset | None = None,
    recoded: list[str] | tuple[str, ...] = (),
    new_coding: list[str] | tuple[str, ...] = (),
    key_tables: tuple[KeyTable, KeyTable] | None = None,
    changes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The JSON-friendly utility section comparing ``released`` with ``original``.

    ``roles`` describe the original (weight, strata and cluster give the survey design;
    keys give the default two-way tables; numeric keys the numeric loss). ``utility`` adds
    the plan's indicators, regressions and extra tables. ``top`` categories per variable
    are kept for plots. ``rows.records_changed`` counts released records with a changed
    value outside the identifiers (direct ids, household and cluster ids).

    ``coded`` is the original in the release's coding (the plan's recodes applied to it,
    nothing else, same rows) and ``recoded`` the variables it recodes: their distributions
    and tables compare ``coded`` with the release, so a banded age is compared band by band
    and the distances show what the other steps changed; cells changed still count against
    the original values (for the ``new_coding`` variables, by what they say: value labels).
    ``key_tables``: the key tables of ``original`` and ``released`` (the risk assessments'):
    the keys' codes and two-way tables come from them (:mod:`safemicro.utility.key_codes`).
    ``changes``: the steps' changes; PRAM's transition matrices correct the indicators'
    proportions of PRAMed variables (:mod:`safemicro.utility.pram_correction`).
    """
    utility = utility or Utility()
    roles.check_columns([c for c in original.columns if c != ROW_ID], original.source)
    for name in utility.variables():
        if name not in original.columns:
            raise SafemicroError(f"utility names {name!r}, which is not a column of the original data", column=name)
    idx, aligned_by = _align(original, released)
    notes: list[str] = []
    recoded = [n for n in recoded if coded is not None and n in coded.columns]
    tables = key_tables if idx is None else None  # the key tables' records are the matched rows

    def encoded(name: str, before: pl.Series, after: pl.Series) -> JointCodes:
        found = key_joint_codes(tables, name, before, after) if tables and name not in recoded else None
        if found is not None:
            return found
        jc = joint_codes(before, after)
        before_codes = narrow(jc.before, jc.card)
        after_codes = before_codes if jc.after is jc.before else narrow(jc.after, jc.card)
        return JointCodes(before_codes, after_codes, jc.values, jc.card)

    cols_o = [c for c in original.columns if c != ROW_ID]
    cols_r = [c for c in released.columns if c != ROW_ID]
    kept = [c for c in cols_o if c in set(cols_r)]

    w_o = _weights(original, roles.weight) if roles.weight else None
    w_r = None
    if w_o is not None:
        if roles.weight in released.columns:
            w_r = _weights(released, roles.weight)
        else:
            w_r = w_o if idx is None else w_o[idx]
            notes.append(f"the release has no weight column {roles.weight!r}: its rows keep their original weights")

    in_coding = coded if coded is not None else original  # distributions: in the release's coding
    dsets = (in_coding, released)
    variables: list[dict[str, Any]] = []
    codes: dict[str, JointCodes] = {}
    paired = set(roles.keys) | {n for pair in utility.tables for n in pair}
    touched = np.zeros(released.n, dtype=bool)
    numeric_cols: list[str] = []
    for name in cols_o:
        base = {"variable": name, "role": _role(name, roles), "kind": _kind(name, roles, original)}
        if name not in kept:
            variables.append(base | {"status": "removed"})
            continue
        full = original.analysis_column(name)
        after = released.analysis_column(name)
        coding = (original.codebook.meta(name).value_labels, released.codebook.meta(name).value_labels)
        differ, suppressed = _cells(_take(full, idx), after, coding if name in new_coding else None)
        dist = in_coding.analysis_column(name) if name in recoded else full
        if base["kind"] != "id":  # new household ids alone do not make a record changed
            touched |= differ
        row = base | {
            "status": "kept",
            "changed": int(differ.sum()),
            "suppressed": suppressed,
            "missing_before": int(full.null_count()),
            "missing_after": int(after.null_count()),
        }
        if base["kind"] == "categorical":
            jc = encoded(name, dist, after)
            row |= _categorical_row(jc, w_o, w_r, top, name, dsets)
            if name in paired:  # the two-way tables need it again; the others are freed now
                codes[name] = jc
            del jc
            if name in recoded:
                notes.append(
                    f"{name}: recoded by the plan; its distribution and tables compare the original "
                    "mapped through the same recode with the release, so the distances show what the "
                    "other steps (suppression, perturbation) changed"
                )
            elif row["categories_differ"]:
                notes.append(
                    f"{name}: the categories differ before and after (recoded, suppressed or sampled "
                    "away); the distances compare the two codings as they are"
                )
        elif base["kind"] == "numeric":
            before = in_coding if name in recoded else original
            row |= _numeric_row(_numbers(before, name), _numbers(released, name))
            if name in roles.numeric_keys:
                if after.dtype.is_numeric() and full.dtype.is_numeric():
                    numeric_cols.append(name)
                else:
                    notes.append(f"{name}: no longer numeric in the release; left out of the numeric loss")
        variables.append(row)
    for name in cols_r:
        if name not in set(cols_o):
            variables.append({"variable": name, "role": "other", "kind": None, "status": "added"})

    numeric: dict[str, Any] = {"variables": numeric_cols}
    if numeric_cols:

        def matrix(ds: Dataset, rows) -> np.ndarray:
            return np.column_stack(
                [_take(_numbers(ds, c), rows).cast(pl.Float64).fill_null(np.nan).to_numpy() for c in numeric_cols]
            )

        numeric |= numeric_loss(matrix(original, idx), matrix(released, None))

    two_way = _tables(in_coding, released, roles, utility, codes, w_o, w_r, kept, encoded)

    before = (original, _design(original, roles, w_o, original, None))
    after = (released, _design(released, roles, w_r, original, idx))
    if before[1].single_psu_strata:
        notes.append(f"{before[1].single_psu_strata} strata have a single PSU; they add nothing to the variances")
    indicators: list[dict[str, Any]] = []
    correct = pram_corrector(changes)
    for ind in utility.indicators:
        rows, more = compare_indicator(ind, before, after, level=level, pram=correct)
        indicators += rows
        notes += more
    regressions: list[dict[str, Any]] = []
    for reg in utility.regressions:
        result, more = compare_regression(reg, before, after, level=level)
        regressions.append(result)
        notes += more

    return {
        "rows": {
            "original": original.n,
            "released": released.n,
            "aligned_by": aligned_by,
            "records_changed": int(touched.sum()),
        },
        "design": {
            "weight": roles.weight,
            "strata": roles.strata,
            "cluster": roles.cluster,
            "variance": "Taylor linearisation, with-replacement ultimate-cluster approximation"
            if roles.strata or roles.cluster
            else (
                "weighted simple random sampling with replacement"
                if roles.weight
                else "simple random sampling with replacement"
            ),
            "confidence_level": level,
            "strata_count": len(before[1].n_psu),
            "psu_count": before[1].n_psus,
            "single_psu_strata": before[1].single_psu_strata,
        },
        "variables": variables,
        "numeric": numeric,
        "tables": two_way,
        "indicators": indicators,
        "regressions": regressions,
        "notes": notes,
    }


def _tables(original, released, roles, utility, codes, w_o, w_r, kept, encoded) -> list[dict[str, Any]]:
    """Two-way table distances for the plan's pairs and every pair of keys."""
    pairs: list[tuple[str, str]] = []
    for pair in utility.tables:
        if len(pair) != 2:
            raise SafemicroError(f"utility.tables entries must name two variables, got {pair!r}")
        pairs.append((pair[0], pair[1]))
    pairs += list(combinations(roles.keys, 2))
    out, seen = [], set()
    for a, b in pairs:
        if frozenset((a, b)) in seen or a == b:
            continue
        seen.add(frozenset((a, b)))
        if a not in kept or b not in kept:
            out.append({"variables": [a, b], "status": "removed"})
            continue
        for name in (a, b):
            if name not in codes:
                codes[name] = encoded(name, original.analysis_column(name), released.analysis_column(name))
        found = key_pair_distances(codes[a], codes[b], weights_before=w_o, weights_after=w_r)
        out.append(
            {"variables": [a, b], "status": "kept"}
            | (
                found
                or pair_distances(per_record(codes[a]), per_record(codes[b]), weights_before=w_o, weights_after=w_r)
            )
            | {"info_loss": _info_loss(original, released, [a, b])}
        )
    return out


def _info_loss(original: Dataset, released: Dataset, names: list[str]) -> dict[str, Any]:
    """sdcMicro's table-based information loss (absD, relabsD, abssqrtD) of one table."""
    pairs = [common_dtype(original.analysis_column(n), released.analysis_column(n)) for n in names]
    before = pl.DataFrame([p[0].alias(n) for p, n in zip(pairs, names)])
    after = pl.DataFrame([p[1].alias(n) for p, n in zip(pairs, names)])
    return table_info_loss(before, after, names)
