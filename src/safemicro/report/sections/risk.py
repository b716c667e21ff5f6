"""The risk section: the same measures before and after, the SUDA contributions, the risk figure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from safemicro.risk.attribute_checks import ATTRIBUTE_TARGETS

from .. import plots
from ..format import RULE_HIGH_RISK, _num, fmt_er, fmt_int, fmt_num, fmt_pct, fmt_prob, fmt_target_pct
from ..risk_cards import MEANS
from .common import _get, _map, _svg, _violations


def _risk_rows(
    before: Mapping[str, Any], after: Mapping[str, Any], target_k: Any, targets: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Side-by-side rows; ``lower`` rows are better when they go down. The headline measures
    say what they mean and their target (the same words as the risk report's cards)."""
    rows: list[dict[str, Any]] = []
    targets = targets or {}

    def target(key: str, fmt) -> str:
        value = _num(targets.get(key))
        return f" Target: at most {fmt(value)}." if value is not None else " No target in the plan."

    def row(label, path, fmt, lower=True, note="", means=""):
        b, a = _get(before, *path), _get(after, *path)
        if b is None and a is None:
            return
        nb, na = _num(b), _num(a)
        trend = ""
        if lower and nb is not None and na is not None and nb != na:
            trend = "better" if na < nb else "worse"
        rows.append(
            {
                "label": label,
                "before": fmt(b) if b is not None else "–",
                "after": fmt(a) if a is not None else "–",
                "trend": trend,
                "note": note,
                "means": means,
            }
        )

    row("Records", ("n_records",), fmt_int, lower=False)
    row("Distinct key combinations", ("k_anonymity", "n_distinct_keys"), fmt_int, lower=False)
    row("Sample uniques (fk = 1)", ("k_anonymity", "n_sample_uniques"), fmt_int)
    ks = sorted(set(_violations(before)) | set(_violations(after)), key=lambda k: _num(k) or 0)
    for k in ks:
        row(
            f"Records violating {k}-anonymity",
            ("k_anonymity", "violations", k),
            fmt_int,
            note="target" if str(target_k) == k else "",
        )
    for label, path, fmt, means in (
        (
            "Global risk",
            ("global_risk", "percent"),
            fmt_pct,
            MEANS["global-risk"] + target("max_global_risk", fmt_target_pct),
        ),
        ("Expected re-identifications", ("global_risk", "expected_reidentifications"), fmt_er, ""),
        (
            "Household risk",
            ("household_risk", "percent"),
            fmt_pct,
            MEANS["household-risk"] + " No target in the plan (the global-risk target is for persons).",
        ),
        ("Expected re-identifications (households)", ("household_risk", "expected_reidentifications"), fmt_er, ""),
        (
            "Highest individual risk",
            ("individual_risk", "max"),
            fmt_prob,
            MEANS["max-risk"] + target("max_individual_risk", fmt_prob),
        ),
        ("Median individual risk", ("individual_risk", "median"), fmt_prob, ""),
        ("Records with risk above 0.1", ("individual_risk", "n_above_0_1"), fmt_int, ""),
        ("Records above the individual-risk target", ("individual_risk", "n_above_target"), fmt_int, ""),
        ("Risky records (above median + 2·MAD and 0.1)", ("individual_risk", "n_risky"), fmt_int, ""),
        ("Records with a special unique (SUDA score > 0)", ("suda2", "n_score_gt0"), fmt_int, ""),
        ("Highest DIS-SUDA score", ("suda2", "max_dis"), fmt_prob, MEANS["max_dis"]),
        ("Sum of DIS-SUDA scores", ("suda2", "sum_dis"), fmt_num, MEANS["sum_dis"]),
        (
            "τ1 (modRisk)",
            ("model_risk", "loglinear", "tau1"),
            fmt_er,
            "Log-linear model, main effects: expected sample uniques that are also unique in the population.",
        ),
        (
            "τ2 (modRisk)",
            ("model_risk", "loglinear", "tau2"),
            fmt_er,
            "Log-linear model, main effects: expected correct matches when every sample unique is linked to "
            "the population.",
        ),
        (
            "Estimated population uniques (Dankar et al.'s rule)",
            ("model_risk", "population_uniqueness", "dankar"),
            fmt_er,
            "Keys held by one person in the whole population, estimated from the sample (as ARX does).",
        ),
    ):
        row(label, path, fmt, means=means)
    sens = list(dict.fromkeys([*_map(before.get("l_diversity")), *_map(after.get("l_diversity"))]))
    for s in sens:
        row(f"Records in groups where {s} takes one value (l = 1)", ("l_diversity", s, "distinct", "n_eq1"), fmt_int)
    attr = list(dict.fromkeys([*_map(before.get("attribute_disclosure")), *_map(after.get("attribute_disclosure"))]))
    for s in attr:
        for key, (measure, _, name, means) in ATTRIBUTE_TARGETS.items():
            row(
                f"{name} of {s}",
                ("attribute_disclosure", s, measure),
                fmt_num,
                means=means.format(s=s) + "." + target(key, fmt_num),
            )
    row(
        "Records with an outlying numeric key value",
        ("numeric_risk", "n_records_with_outlier"),
        fmt_int,
        means=MEANS["n_records_with_outlier"],
    )
    row(
        "Interval disclosure: share of records whose numeric keys all lie within ±5 % sd of the released values",
        ("numeric_risk", "interval_disclosure"),
        fmt_prob,
    )
    row(
        "Record linkage: share of records whose nearest released record on the numeric keys is their own",
        ("numeric_risk", "linkage_disclosure"),
        fmt_prob,
    )
    if before.get("k_anonymity") is None and after.get("k_anonymity") is None:
        rows.insert(
            1,
            {
                "label": "k-anonymity, individual, global and household risk",
                "before": "not applicable",
                "after": "not applicable",
                "trend": "",
                "note": "no categorical key variables",
                "means": "",
            },
        )
    return rows


def _suda_contributions(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, str]]:
    b = _map(_get(before, "suda2", "attribute_contributions"))
    a = _map(_get(after, "suda2", "attribute_contributions"))
    names = sorted(dict.fromkeys([*b, *a]), key=lambda n: -(_num(b.get(n)) or 0))
    return [
        {"name": n, "before": fmt_pct(b.get(n), 1) if n in b else "–", "after": fmt_pct(a.get(n), 1) if n in a else "–"}
        for n in names
    ]


def _risk_figure(before: Mapping[str, Any], after: Mapping[str, Any], target: float | None) -> Markup | None:
    hb = _get(before, "individual_risk", "histogram")
    ha = _get(after, "individual_risk", "histogram")
    svg = plots.risk_overlay_svg(hb, ha, target=target, rule=RULE_HIGH_RISK) if hb or ha else None
    if svg is None:
        svg = plots.risk_range_svg(
            _get(before, "individual_risk"), _get(after, "individual_risk"), target=target, rule=RULE_HIGH_RISK
        )
    return _svg(svg)
