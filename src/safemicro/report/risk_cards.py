"""The risk report's headline cards and fact lists, each number with what it means and its target.

A reviewer reads a card in a second: the value, one line saying what it counts, and — only
when the plan sets a target for it and the checks table tests it — whether it meets it. A
number without a target says so rather than borrowing another measure's target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .format import (
    _num,
    _section,
    _status,
    fmt_er,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_prob,
    fmt_share,
    fmt_target_pct,
)

__all__ = ["MEANS"]

# What each number means, in one sentence a curator can act on.
MEANS = {
    "records": "Records (rows) in the file assessed.",
    "distinct-keys": "Different combinations of the key variables in the file; a combination held by "
    "one record (a sample unique) singles that person out to anyone who knows those keys.",
    "k": "Records whose combination of key values is shared by fewer than {k} records in the file "
    "(missing values match any value).",
    "global-risk": "Expected share of records an intruder matching on the key variables would "
    "re-identify correctly: the average individual risk.",
    "household-risk": "Expected share of records re-identified through any member of their household "
    "(one identified member reveals the whole household).",
    "max-risk": "Probability that the riskiest record is correctly re-identified by an intruder "
    "matching on the key variables (Benedetti-Franconi individual risk).",
    "above-0-1": "Records whose individual risk exceeds 0.1, the usual rule of thumb for high risk.",
    "risky": "Records whose risk stands out from the rest of the file: above the median plus two "
    "median absolute deviations and above 0.1.",
    "n_score_gt0": "Records that are special uniques: unique in the file on some small subset of the key variables.",
    "max_score": "SUDA score of the record with the most, and smallest, minimal sample uniques "
    "(sum over them of (number of keys − size)!): higher means more ways to single it out. Not a "
    "probability; it grows with the number of keys, so compare records within this file only.",
    "sum_score": "SUDA scores summed over all records: how many ways the file offers to single "
    "someone out. Compare before and after protection.",
    "max_dis": "DIS-SUDA score of the riskiest record: the SUDA score turned into an approximate "
    "probability of correct re-identification; read it against the individual-risk target.",
    "sum_dis": "DIS-SUDA scores summed over all records: roughly the expected number of special "
    "uniques correctly re-identified.",
    "n_records_with_outlier": "Records with at least one numeric key value far from the others "
    "(modified z-score above 3.5): such values are known locally and identify people.",
    "interval_disclosure": "Share of records whose every numeric key value lies within ± 5 % of a "
    "standard deviation of the released value (sdcMicro's dRisk). On a file not yet perturbed "
    "every record with all numeric keys present counts, so this is the baseline that noise or "
    "microaggregation must bring down; records with a missing numeric key are not counted.",
    "n_multivariate_outliers": "Records whose combination of numeric values is far from the bulk of the data "
    "by a robust (MCD) Mahalanobis distance: rare in the combination, even when no single value is extreme. "
    "mv_topcoding pulls them onto the tolerance ellipsoid.",
    "rmd_wrisk1": "sdcMicro's dRiskRMD (RMDID1w): intervals around the original values widen with each "
    "record's robust distance, so outliers, the easiest to re-identify, need more perturbation to be safe; "
    "the share of outlyingness whose released values all fall inside. 1 before perturbation; target max_rmd_risk.",
}
NO_TARGET = "no target in the plan"


def _mean_risk(sec: Mapping[str, Any]) -> tuple[float | None, float | None, Any]:
    """A mean-risk section's mean, its percentage (from the mean when not given) and the
    expected re-identifications."""
    mean = _num(sec.get("mean"))
    pct = _num(sec.get("percent"))
    if pct is None and mean is not None:
        pct = 100.0 * mean
    return mean, pct, sec.get("expected_reidentifications")


def _headline_cards(summary: Mapping[str, Any], n_records: float | None) -> list[dict[str, Any]]:
    targets = _section(summary, "targets") or {}
    target_k = _num(targets.get("k"))
    target_k = int(target_k) if target_k is not None else None
    max_global = _num(targets.get("max_global_risk"))
    max_indiv = _num(targets.get("max_individual_risk"))
    cards: list[dict[str, Any]] = []

    def card(label, value, sub="", status=None, note="", key=""):
        means = MEANS["k"].format(k=key[1:]) if key[:1] == "k" and key[1:].isdigit() else MEANS.get(key, "")
        if status not in ("pass", "fail") and key in ("global-risk", "household-risk", "max-risk") and not note:
            note = NO_TARGET
        cards.append(
            {"label": label, "value": value, "sub": sub, "status": status, "note": note, "key": key, "means": means}
        )

    card("Records", fmt_int(n_records), key="records")

    kan = _section(summary, "k_anonymity")
    if kan is not None:
        roles = _section(summary, "roles") or {}
        keys = roles.get("keys") if isinstance(roles.get("keys"), list) else []
        sub = f"of the {len(keys)} key variables" if len(keys) > 1 else ""
        if kan.get("n_sample_uniques") is not None:
            sub = f"{fmt_int(kan.get('n_sample_uniques'))} unique in the sample" + (f" · {sub}" if sub else "")
        card("Distinct key combinations", fmt_int(kan.get("n_distinct_keys")), sub=sub, key="distinct-keys")
        viol = kan.get("violations") if isinstance(kan.get("violations"), Mapping) else {}
        ks = [2, 3, 5]
        if target_k is not None and target_k not in ks and str(target_k) in viol:
            ks = sorted(ks + [target_k])
        for k in ks:
            count = viol.get(str(k), viol.get(k))
            if count is None:
                continue
            status = None
            note = ""
            if target_k is not None and k == target_k:
                status = _status(_num(count) == 0)
                note = "target"
            card(
                f"Records violating {k}-anonymity",
                fmt_int(count),
                sub=f"{fmt_share(count, n_records)} of records" if n_records else "",
                status=status,
                note=note,
                key=f"k{k}",
            )

    glob = _section(summary, "global_risk")
    if glob is not None:
        mean, pct, er = _mean_risk(glob)
        status = None
        note = ""
        if max_global is not None and mean is not None:
            status = _status(mean <= max_global)
            note = f"target ≤ {fmt_target_pct(max_global)}"
        card(
            "Global risk",
            fmt_pct(pct),
            sub=f"≈ {fmt_er(er)} expected re-identifications" if er is not None else "",
            status=status,
            note=note,
            key="global-risk",
        )

    hh = _section(summary, "household_risk")
    if hh is not None:
        _, pct, er = _mean_risk(hh)
        parts = []
        if er is not None:
            parts.append(f"≈ {fmt_er(er)} expected re-identifications")
        if hh.get("n_households") is not None:
            parts.append(f"{fmt_int(hh.get('n_households'))} households")
        # the plan's global-risk target is a person-level target: the checks do not test
        # household risk against it, so neither does the card
        status, note = None, NO_TARGET + " (the global-risk target is for persons)" if max_global is not None else ""
        card("Household risk", fmt_pct(pct), sub=" · ".join(parts), status=status, note=note, key="household-risk")

    ind = _section(summary, "individual_risk")
    if ind is not None:
        mx = _num(ind.get("max"))
        status = None
        note = ""
        if max_indiv is not None and mx is not None:
            status = _status(mx <= max_indiv)
            note = f"target ≤ {fmt_prob(max_indiv)}"
        sub = f"median {fmt_prob(ind.get('median'))}" if ind.get("median") is not None else ""
        if max_indiv is not None and _num(ind.get("n_above_target")) is not None:
            sub += (" · " if sub else "") + f"{fmt_int(ind.get('n_above_target'))} records above target"
        card("Highest individual risk", fmt_prob(mx), sub=sub, status=status, note=note, key="max-risk")
        above = _num(ind.get("n_above_0_1"))
        if ind.get("n_above_0_1") is not None:
            card(
                "Records with risk above 0.1",
                fmt_int(above),
                sub=f"{fmt_share(above, n_records)} of records" if n_records else "",
                status="warn" if above else None,
                note="look at these first" if above else "",
                key="above-0-1",
            )
        risky = _num(ind.get("n_risky"))
        if ind.get("n_risky") is not None:
            card(
                "Risky records",
                fmt_int(risky),
                sub="risk > median + 2·MAD and > 0.1",
                status="warn" if risky else None,
                key="risky",
            )
    return cards


def _suda(summary: Mapping[str, Any], n_records: float | None) -> dict[str, Any] | None:
    s = _section(summary, "suda2")
    if s is None:
        return None
    facts = []
    for key, label, fmt in (
        ("n_score_gt0", "Records with a special unique (score > 0)", fmt_int),
        ("max_score", "Highest SUDA score", fmt_num),
        ("sum_score", "Sum of SUDA scores", fmt_num),
        ("max_dis", "Highest DIS-SUDA score", fmt_prob),
        ("sum_dis", "Sum of DIS-SUDA scores", fmt_num),
    ):
        if s.get(key) is not None:
            extra = ""
            if key == "n_score_gt0" and n_records:
                extra = fmt_share(s.get(key), n_records) + " of records"
            facts.append({"label": label, "value": fmt(s.get(key)), "extra": extra, "means": MEANS.get(key, "")})
    dis_rows = []
    dis = s.get("dis_table")
    if isinstance(dis, Mapping):
        total = sum(_num(v) or 0 for v in dis.values()) or n_records
        for interval, count in dis.items():
            dis_rows.append({"interval": str(interval), "count": fmt_int(count), "share": fmt_share(count, total)})
    contrib = s.get("attribute_contributions")
    contrib_rows = []
    if isinstance(contrib, Mapping):
        for name, value in sorted(contrib.items(), key=lambda kv: -(_num(kv[1]) or 0)):
            contrib_rows.append({"name": str(name), "value": fmt_pct(value, 1)})
    levels = []
    lc = s.get("level_contributions")
    if isinstance(lc, Mapping):
        for name, table in lc.items():
            if not isinstance(table, Mapping):
                continue
            ordered = sorted(table.items(), key=lambda kv: -(_num(kv[1]) or 0))
            levels.append({"name": str(name), "levels": [(str(k), fmt_pct(v, 1)) for k, v in ordered]})
    return {"facts": facts, "dis_rows": dis_rows, "contrib_rows": contrib_rows, "levels": levels}


def _nested_table(section: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``{var: {measure: {stat: v}}}`` or ``{var: {stat: v}}`` as one flat table."""
    if not isinstance(section, Mapping) or not section:
        return None
    stats: list[str] = []
    rows: list[dict[str, Any]] = []
    for var, body in section.items():
        if not isinstance(body, Mapping):
            continue
        nested = any(isinstance(v, Mapping) for v in body.values())
        groups = [(m, b) for m, b in body.items() if isinstance(b, Mapping)] if nested else [("", body)]
        for measure, values in groups:
            for k in values:
                if str(k) not in stats:
                    stats.append(str(k))
            rows.append({"var": str(var), "measure": str(measure), "values": values})
    if not rows:
        return None
    for row in rows:
        vals = {str(k): v for k, v in row.pop("values").items()}
        row["cells"] = []
        for s in stats:
            v = vals.get(s)
            if isinstance(v, (list, tuple)):
                text = ", ".join(fmt_num(x) for x in v)
            elif isinstance(v, Mapping):
                text = "; ".join(f"{k}: {fmt_num(x)}" for k, x in v.items())
            else:
                text = fmt_num(v) if v is not None else ""
            row["cells"].append({"text": text, "num": v is None or _num(v) is not None})
        flags = [k for k in vals if k in ("n_eq1", "n_violating", "n_outliers") or k.startswith("n_records_above")]
        row["flag"] = any((_num(vals.get(k)) or 0) > 0 for k in flags)
    has_measure = any(r["measure"] for r in rows)
    numeric_cols = [all(r["cells"][i]["num"] for r in rows) for i in range(len(stats))]
    for r in rows:
        for cell, is_num in zip(r["cells"], numeric_cols):
            cell["num"] = is_num
    return {
        "stats": [{"name": s.replace("_", " "), "num": n} for s, n in zip(stats, numeric_cols)],
        "rows": rows,
        "has_measure": has_measure,
    }


NUMERIC_FACTS = {
    "n_records_with_outlier": ("Records with an outlying value", fmt_int),
    "interval_disclosure": ("Interval disclosure risk", fmt_prob),
    "linkage_disclosure": ("Record linkage risk (share of records whose nearest record is their own)", fmt_prob),
    "compared_with": ("Released values compared with", str),
    "n_multivariate_outliers": ("Multivariate outliers (robust MCD distance above the 97.5 % χ² quantile)", fmt_int),
    "rmd_risk1": ("RMD interval disclosure: share of records inside their robust intervals", fmt_prob),
    "rmd_wrisk1": ("RMD interval disclosure weighted by outlyingness (target max_rmd_risk)", fmt_prob),
    "rmd_wrisk2": ("RMD disclosure, records with a near released neighbour counted safe", fmt_prob),
    "robust_note": ("Robust measures", str),
}


def _numeric(section: Any) -> dict[str, Any] | None:
    """Numeric key risk: either ``{var: {stat: v}}`` or ``{"variables": {...}, scalars}``."""
    if not isinstance(section, Mapping) or not section:
        return None
    if isinstance(section.get("variables"), Mapping):
        table = _nested_table(section["variables"])
        facts = []
        for key, value in section.items():
            if key == "variables" or isinstance(value, (Mapping, list)) or value is None:
                continue
            label, fmt = NUMERIC_FACTS.get(key, (str(key).replace("_", " ").capitalize(), fmt_num))
            facts.append({"label": label, "value": fmt(value), "means": MEANS.get(key, "")})
    else:
        table, facts = _nested_table(section), []
    if table is None and not facts:
        return None
    return {"table": table, "facts": facts}
