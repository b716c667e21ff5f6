"""Attack results as a self-contained HTML page (inline CSS and SVG) and as JSON.

Three kinds of result, each a JSON-ready dict: a linkage attack
(:meth:`LinkageEvaluator.results`, ``kind: "linkage"``), the Article 29 WP attacks
(:func:`privacy_attacks`, ``kind: "attacks"``) and the simulation study (:func:`simulate`,
``kind: "simulation"``). Figures: success against the random-guess baseline (and the
frequency-based promise, for the simulation), risk by record group, and the variables that
drive successful links. The page is built from the dict alone: the same result gives the
same bytes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safemicro import __version__
from safemicro.attack.report_figures import _bars, _driver_figure, _group_figure
from safemicro.jsonable import json_ready
from safemicro.report.format import template_environment
from safemicro.report.plots import AMBER, BLUE, GREY, RED

__all__ = ["render_attack_html", "write_attack_outputs"]


def _env():
    return template_environment("safemicro.attack")


def _pct(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{100 * x:.{digits}f} %"


def _num(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) >= 10):
        return f"{int(x):,}"
    return f"{x:,.{digits}f}"


def _ci(ci: Any) -> str:
    return "–" if not ci else f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f} %"


# -- contexts per kind -------------------------------------------------------------------------


def _group_table(groups: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "title": "Re-identification by group",
        "header": ["Group", "People in release", "Re-identified (expected)", "Confident claims"],
        "rows": [
            [f"{g['by']}: {g['group']}", _num(g["n"]), _pct(g["true_match_rate"]), _num(g["reidentified"])]
            for g in groups
        ],
    }


def _driver_table(drivers: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "title": "Variables driving the links",
        "header": ["Variable", "Correct links lost without it", "Confident claims lost", "Match rate without it"],
        "rows": [
            [d["variable"], _num(d["correct_lost"]), _num(d["reidentified_lost"]), _pct(d["true_match_rate_without"])]
            for d in drivers
        ],
    }


def _linkage(r: Mapping[str, Any]) -> dict[str, Any]:
    side = r.get("release_side") or {}
    base = (r.get("baseline_rate") or {}).get("value")
    cards = [
        {
            "label": "Listed people found (true match rate)",
            "value": _pct(r["true_match_rate"]),
            "sub": f"95 % CI {_ci(r.get('true_match_rate_ci'))}; random guess {_pct(base, 3)}",
            "status": "fail" if (r["true_match_rate"] or 0) > 0.05 else "pass",
        },
        {
            "label": "Claims that are right (precision)",
            "value": _pct(r["precision"]),
            "sub": f"{_num(r['n_claims'])} claims",
        },
        {
            "label": f"Confident claims (confidence ≥ {r['threshold']:g})",
            "value": _num(r["reidentified"]),
            "sub": f"{_num(r['reidentified_correct'])} right (expected)",
        },
        {
            "label": "Released records re-identified",
            "value": _pct(side.get("reidentification_rate")),
            "sub": f"{_num(side.get('expected_correct'))} of {_num(side.get('n_released'))} (expected); {_num(side.get('one_candidate'))} with a single candidate",
        },
    ]
    hh = r.get("households")
    if hh:
        cards.append(
            {
                "label": "Released households re-identified by their composition",
                "value": _pct(hh["share_of_released_households_reidentified"]),
                "sub": f"{_num(hh['reidentified_households_correct'])} of {_num(hh['n_released_households'])}; "
                f"{_num(hh['reidentified_households'] - hh['reidentified_households_correct'])} wrong single matches",
                "status": "fail" if (hh["share_of_released_households_reidentified"] or 0) > 0.05 else None,
            }
        )
    fig = _bars(
        ["true match rate", "precision", "released records"],
        {
            "attack": [r["true_match_rate"], r["precision"], side.get("reidentification_rate")],
            "random guess": [base, base, None],
        },
        [BLUE, GREY],
        "success (%)",
        "success",
        "attack success against the random-guess baseline",
    )
    sections = [
        {
            "id": "success",
            "title": "Success against the baseline",
            "lead": "",
            "figures": [
                {
                    "svg": fig,
                    "caption": "Share of listed people whose claimed record is theirs, share of claims that are right, and share of released records re-identified, against an intruder who picks a released record at random.",
                }
            ],
            "tables": [],
        }
    ]
    g = _group_figure({"attack": r.get("groups", [])}, "groups")
    sections.append(
        {
            "id": "groups",
            "title": "Risk by record group",
            "lead": "",
            "figures": [
                {"svg": g, "caption": "People re-identified by how many released records share their released key."}
            ]
            if g
            else [],
            "tables": [_group_table(r.get("groups", []))],
        }
    )
    if r.get("drivers"):
        d = _driver_figure({"attack": r["drivers"]}, "drivers")
        sections.append(
            {
                "id": "drivers",
                "title": "Variables driving links",
                "lead": "Each linking variable left out in turn: the correct re-identifications that depend on it.",
                "figures": [
                    {
                        "svg": d,
                        "caption": "Correct re-identifications lost when the intruder does not know the variable.",
                    }
                ]
                if d
                else [],
                "tables": [_driver_table(r["drivers"])],
            }
        )
    meta = [
        {"label": "Method", "value": r["method"]},
        {"label": "Listed people", "value": _num(r["n_auxiliary"])},
        {"label": "Linking on", "value": ", ".join(r["linking_columns"])},
    ]
    return {
        "cards": cards,
        "sections": sections,
        "meta": meta,
        "lead": "An intruder holding the auxiliary file(s) links each listed person to the release. Identities are used for scoring only.",
        "notes": [
            "Missing values (suppressed cells, unknown facts) are wildcards.",
            "Counts of correct claims are expected values: among tied candidates the intruder picks one at random.",
        ],
    }


def _attacks(r: Mapping[str, Any]) -> dict[str, Any]:
    items = []
    for mode in ("univariate", "multivariate"):
        if r.get("singling_out", {}).get(mode):
            items.append((f"singling out ({mode})", r["singling_out"][mode]))
    if r.get("linkability"):
        items.append(("linkability", r["linkability"]))
    for s, v in (r.get("inference") or {}).items():
        items.append((f"inference: {s}", v))
    if r.get("membership"):
        items.append(("membership", r["membership"]))
    cards = [
        {
            "label": name,
            "value": _pct(v["risk"]),
            "sub": f"95 % CI {_ci(v['ci'])}",
            "status": "fail" if v["ci"][0] > 0.05 else "pass",
        }
        for name, v in items[:8]
    ]
    labels = [n.replace("singling out ", "SO ").replace("inference: ", "inf. ") for n, _ in items]
    fig = _bars(
        labels,
        {
            "attack": [v["attack_rate"]["value"] for _, v in items],
            "control": [(v.get("control_rate") or {}).get("value") for _, v in items],
            "random guess": [v["baseline_rate"]["value"] for _, v in items],
        },
        [BLUE, AMBER, GREY],
        "success (%)",
        "success",
        "attack, control and baseline success",
        errors={"attack": [tuple(v["attack_rate"]["ci"]) for _, v in items]},
    )
    table = {
        "title": "",
        "header": ["Attack", "Risk", "95 % CI", "Attack success", "Control success", "Random guess", "Attacks"],
        "rows": [
            [
                n,
                _pct(v["risk"]),
                _ci(v["ci"]),
                _pct(v["attack_rate"]["value"]),
                _pct((v.get("control_rate") or {}).get("value")),
                _pct(v["baseline_rate"]["value"]),
                _num(v["attack_rate"]["n_total"]),
            ]
            for n, v in items
        ],
    }
    sections = [
        {
            "id": "success",
            "title": "Success against baseline and control",
            "lead": "Risk = (attack − control)/(1 − control): what the release reveals about the people it was made from beyond what it reveals about anybody.",
            "figures": [
                {
                    "svg": fig,
                    "caption": "Success of each attack on the original records (with its 95 % interval), of the same attack on the control records, and of a random guess.",
                }
            ],
            "tables": [table],
        }
    ]
    meta = [
        {"label": "Original", "value": _num(r.get("n_original"))},
        {"label": "Released", "value": _num(r.get("n_synthetic"))},
        {"label": "Control", "value": _num(r.get("n_control"))},
    ]
    return {
        "cards": cards,
        "sections": sections,
        "meta": meta,
        "lead": "Singling out, linkability, inference (Article 29 Working Party) and membership inference, each against a holdout control.",
        "notes": list(r.get("notes", [])),
    }


def _simulation(r: Mapping[str, Any]) -> dict[str, Any]:
    rels = r["releases"]
    names = [e["name"] for e in rels]
    freq = [e["frequency"]["global_risk_percent"] / 100 for e in rels]
    meas = [e["measured"]["reidentification_rate"] for e in rels]
    errs = [
        tuple(e["measured"]["reidentification_rate_ci"]) if e["measured"].get("reidentification_rate_ci") else None
        for e in rels
    ]
    hh = [(e.get("households") or {}).get("share_of_released_households_reidentified") for e in rels]
    base = [1.0 / max(e["measured"]["n_listed"], 1) for e in rels]
    fig = _bars(
        names,
        {
            "frequency-based global risk": freq,
            "measured re-identification": meas,
            "households re-identified": hh,
            "random guess": base,
        },
        [GREY, BLUE, RED, "#c0c8d0"],
        "released records (%)",
        "success",
        "promised against measured re-identification",
        errors={"measured re-identification": errs},
    )
    worst = max(
        rels, key=lambda e: e["measured"]["reidentification_rate"] - e["frequency"]["global_risk_percent"] / 100
    )
    cards = [
        {
            "label": f"{e['name']}: measured (promised)",
            "value": _pct(e["measured"]["reidentification_rate"]),
            "sub": f"frequency-based global risk {e['frequency']['global_risk_percent']:.2f} %",
            "status": "fail"
            if e["measured"]["reidentification_rate"] > e["frequency"]["global_risk_percent"] / 100
            else None,
        }
        for e in rels
    ]
    table = {
        "title": "",
        "header": [
            "Release",
            "Records",
            "Global risk (frequency)",
            "Expected re-id. (frequency)",
            "Measured re-id. rate",
            "95 % CI",
            "Expected re-id. (measured)",
            "Single-candidate records (right)",
            "Listed people found",
            "Households re-identified",
        ],
        "rows": [
            [
                e["name"],
                _num(e["n_released"]),
                f"{e['frequency']['global_risk_percent']:.2f} %",
                _num(e["frequency"]["expected_reidentifications"]),
                _pct(e["measured"]["reidentification_rate"]),
                _ci(e["measured"].get("reidentification_rate_ci")),
                _num(e["measured"]["expected_reidentifications"]),
                f"{_num(e['measured']['records_with_one_candidate'])} ({_num(e['measured']['records_with_one_candidate_correct'])})",
                _pct(e["measured"]["true_match_rate"]),
                _pct((e.get("households") or {}).get("share_of_released_households_reidentified")),
            ]
            for e in rels
        ],
    }
    g = _group_figure({e["name"]: e["groups"] for e in rels}, "groups")
    d = _driver_figure({e["name"]: e["drivers"] for e in rels}, "drivers")
    sections = [
        {
            "id": "success",
            "title": "Promised against measured",
            "lead": "Frequency-based global risk is what the release plan promised (sdcMicro's expected re-identifications over the records); the measured rate is the expected share of released records an intruder holding the population list names correctly.",
            "figures": [
                {
                    "svg": fig,
                    "caption": "Per release: frequency-based global risk, measured re-identification of records (95 % interval), households re-identified by their composition, and a random guess.",
                }
            ],
            "tables": [table],
        },
        {
            "id": "groups",
            "title": "Risk by record group",
            "lead": "",
            "figures": [
                {
                    "svg": g,
                    "caption": "Listed people found in each release, by how many released records share their released key.",
                }
            ]
            if g
            else [],
            "tables": [_group_table(e["groups"]) | {"title": e["name"]} for e in rels],
        },
        {
            "id": "drivers",
            "title": "Variables driving links",
            "lead": "Each key left out of the intruder's knowledge in turn.",
            "figures": [{"svg": d, "caption": "Correct re-identifications lost without each variable, per release."}]
            if d
            else [],
            "tables": [_driver_table(e["drivers"]) | {"title": e["name"]} for e in rels if e["drivers"]],
        },
    ]
    pop, smp, itr = r["population"], r["sample"], r["intruder"]
    meta = [
        {"label": "Population", "value": f"{_num(pop['n_records'])} people"},
        {"label": "Sample", "value": f"{_num(smp['n_records'])} people ({smp['fraction']:.0%} of households)"},
        {"label": "Intruder coverage", "value": f"{itr['coverage']:.0%}"},
        {"label": "Key errors", "value": f"{itr['error_rate']:.0%}"},
    ]
    banner = None
    if worst["measured"]["reidentification_rate"] > worst["frequency"]["global_risk_percent"] / 100:
        banner = {
            "status": "fail",
            "text": f"The frequency-based risk understates what an intruder achieves ({worst['name']}).",
            "detail": f"Promised {worst['frequency']['global_risk_percent']:.2f} % of records re-identified; measured {_pct(worst['measured']['reidentification_rate'])}.",
        }
    return {
        "cards": cards,
        "sections": sections,
        "meta": meta,
        "banner": banner,
        "lead": f"From a population of {_num(pop['n_records'])} people a survey sample is drawn ({smp['design']}), each release plan is applied, and an intruder holding a population list links it back.",
        "notes": list(r.get("notes", [])),
    }


def render_attack_html(result: Mapping[str, Any], *, title: str | None = None) -> str:
    """The result (``kind``: linkage, attacks or simulation) as one HTML document."""
    kind = result.get("kind")
    build = {"linkage": _linkage, "attacks": _attacks, "simulation": _simulation}.get(kind)
    if build is None:
        raise ValueError(f"unknown attack result kind {kind!r}")
    ctx = {"banner": None, **build(result)}
    ctx["cards"] = [{"status": None, "sub": "", **c} for c in ctx["cards"]]
    for sec in ctx["sections"]:
        sec.setdefault("lead", "")
        sec["tables"] = [{"title": "", **t} for t in sec["tables"]]
    default = {"linkage": "Linkage attack", "attacks": "Privacy attacks", "simulation": "Disclosure simulation study"}[
        kind
    ]
    return _env().get_template("attack.html").render(title=title or default, version=__version__, **ctx)


def write_attack_outputs(
    result: Mapping[str, Any],
    *,
    json_path: str | os.PathLike[str] | None = None,
    html_path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> list[Path]:
    """Write the JSON and/or HTML report, all or nothing (each staged beside its target,
    renamed into place only when every one is complete). Returns the paths written."""
    from safemicro.atomic import atomic_paths

    texts: list[tuple[Path, str]] = []
    if json_path:
        texts.append((Path(json_path), json.dumps(json_ready(result), indent=2, allow_nan=False) + "\n"))
    if html_path:
        texts.append((Path(html_path), render_attack_html(result, title=title)))
    with atomic_paths([p for p, _ in texts]) as staged:
        for (_, text), tmp in zip(texts, staged):
            tmp.write_text(text, encoding="utf-8")
    return [p for p, _ in texts]
