"""The evaluation as one self-contained HTML page (inline CSS and SVG, nothing fetched).

Built from the JSON-friendly result of :func:`safemicro.evaluate.evaluate` alone, in the
style of the release reports (same stylesheet, same figure helpers); the same result gives
the same bytes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib import rc_context
from matplotlib.ticker import FuncFormatter

from safemicro import __version__
from safemicro.atomic import write_text
from safemicro.report import plots
from safemicro.report.format import template_environment
from safemicro.report.plots import _RC, AMBER, BLUE, GREY, INK, RED, _new_figure, _plain, figure_to_svg
from safemicro.report.plots.style import _finish

__all__ = ["render_evaluation_html", "write_evaluation_html"]

REAL, SYNTH, HOLD = GREY, BLUE, AMBER
WORST = 8  # columns drawn in the distribution figures
WORST_PAIRS = 15


def _env():
    return template_environment("safemicro.evaluate")


# -- formatting ---------------------------------------------------------------------------------


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}f}"


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def _svg(markup: str | None) -> Markup | None:
    return Markup(markup) if markup else None


# -- figures ------------------------------------------------------------------------------------


def column_scores_svg(columns: list[Mapping[str, Any]]) -> str | None:
    """Horizontal bars: each column's shape score (1 = same distribution), worst at the top."""
    rows = [(c["column"], c["score"], c["metric"]) for c in columns if c.get("score") is not None]
    if not rows:
        return None
    rows.sort(key=lambda r: -r[1])
    y = np.arange(len(rows))
    colours = [BLUE if m == "TVComplement" else plots.TEAL for _, _, m in rows]
    with rc_context(_RC):
        fig = _new_figure(6.8, max(2.0, 0.9 + 0.2 * len(rows)))
        ax = fig.add_subplot()
        ax.barh(y, [r[1] for r in rows], color=colours, height=0.7)
        ax.set_yticks(y, [_plain(r[0]) for r in rows], fontsize=7.5)
        lo = min(r[1] for r in rows)
        ax.set_xlim(max(0.0, min(0.8, lo - 0.05)), 1.0)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("score: 1 − TVD (categorical, blue) or 1 − KS (numeric, teal)")
        ax.set_title("Column shapes: how closely each column's distribution is reproduced", loc="left")
        return figure_to_svg(fig, "column-scores", "Per-column shape scores")


def _worst(columns, kind_test, n=WORST):
    rows = [c for c in columns if c.get("score") is not None and kind_test(c) and c.get("distribution")]
    return sorted(rows, key=lambda c: c["score"])[:n]


def _worst_multiples(columns, metric: str, draw, name: str, description: str) -> str | None:
    """Small multiples of the worst columns scored by ``metric``; ``draw(ax, column, distribution)``
    draws one panel; None when no column has one."""
    rows = _worst(columns, lambda c: c["metric"] == metric)
    if not rows:
        return None
    with rc_context(_RC):
        fig, axes = plots._small_multiples(len(rows))
        for ax, c in zip(axes.flat, rows):
            draw(ax, c, c["distribution"])
        fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside upper right", ncols=2)
        return figure_to_svg(fig, name, description)


def _marginal_panel(ax, c: Mapping[str, Any], d: Mapping[str, Any]) -> None:
    x = np.arange(len(d["categories"]))
    ax.bar(x - 0.2, [100 * v for v in d["real"]], width=0.4, color=REAL, label="real")
    ax.bar(x + 0.2, [100 * v for v in d["synth"]], width=0.4, color=SYNTH, label="synthetic")
    tilt = len(x) > 4 or max((len(s) for s in d["categories"]), default=0) > 8
    ax.set_xticks(
        x,
        [_plain(plots._short(s)) for s in d["categories"]],
        fontsize=7,
        rotation=40 if tilt else 0,
        ha="right" if tilt else "center",
    )
    ax.set_title(f"{_plain(c['column'])}  (TVD {c['distance']:.3f})", loc="left", fontsize=9)
    ax.set_ylabel("% of records", fontsize=7.5)
    ax.grid(axis="x", visible=False)


def _quantile_panel(ax, c: Mapping[str, Any], d: Mapping[str, Any]) -> None:
    p = 100 * np.asarray(d["probs"])
    ax.plot(p, d["real"], "o-", color=REAL, linewidth=2.2, markersize=4, label="real")
    ax.plot(p, d["synth"], "s--", color=SYNTH, linewidth=1.3, markersize=3, label="synthetic")
    ax.set_title(f"{_plain(c['column'])}  (KS {c['distance']:.3f})", loc="left", fontsize=9)
    ax.set_xlabel("percentile", fontsize=7.5)
    ax.yaxis.set_major_formatter(FuncFormatter(plots._value_fmt))


def marginals_svg(columns: list[Mapping[str, Any]]) -> str | None:
    """Small multiples: category shares, real (grey) and synthetic (blue), worst columns."""
    return _worst_multiples(
        columns, "TVComplement", _marginal_panel, "marginals", "Category shares, real and synthetic"
    )


def quantiles_svg(columns: list[Mapping[str, Any]]) -> str | None:
    """Small multiples: percentiles of the numeric columns, real and synthetic, worst first."""
    return _worst_multiples(
        columns, "KSComplement", _quantile_panel, "quantiles", "Percentiles of numeric columns, real and synthetic"
    )


def dcr_svg(dcr: Mapping[str, Any] | None) -> str | None:
    """Histogram of distances to the closest training record: synthetic and holdout records."""
    hist = (dcr or {}).get("histogram")
    if not hist:
        return None
    edges = np.asarray(hist["edges"])
    with rc_context(_RC):
        fig = _new_figure(6.8, 3.0)
        ax = fig.add_subplot()
        s = np.asarray(hist["synthetic"], dtype=float)
        ax.stairs(100 * s / max(s.sum(), 1), edges, fill=True, color=SYNTH, alpha=0.55, label="synthetic")
        if hist.get("holdout") is not None:
            h = np.asarray(hist["holdout"], dtype=float)
            ax.stairs(100 * h / max(h.sum(), 1), edges, color=INK, linewidth=1.5, label="holdout (fresh real)")
        p05 = (dcr.get("holdout_to_train") or {}).get("p05")
        if p05 is not None:
            ax.axvline(p05, color=RED, linestyle="--", linewidth=1.2, label="holdout 5th percentile")
        ax.set_xlabel("distance to the closest training record (L1 on the encoded records)")
        ax.set_ylabel("% of records")
        ax.set_title("Distance to closest record", loc="left")
        ax.legend(loc="upper right")
        ax.grid(axis="x", visible=False)
        return figure_to_svg(fig, "dcr", "Distance to the closest training record")


def q_delta_svg(qd: Mapping[str, Any] | None) -> str | None:
    """The bootstrap null of Q_δ, its threshold and the synthetic data's value."""
    if not qd or not qd.get("null"):
        return None
    null = np.asarray(qd["null"], dtype=float)
    value, tau = qd["q_delta"], qd["threshold"]
    lo, hi = min(null.min(), value), max(null.max(), value)
    pad = 0.05 * (hi - lo or 1e-3)
    with rc_context(_RC):
        fig = _new_figure(6.8, 2.8)
        ax = fig.add_subplot()
        ax.hist(
            null,
            bins=25,
            range=(lo - pad, hi + pad),
            color=GREY,
            edgecolor="white",
            linewidth=0.4,
            label="null: real rows as synthetic",
        )
        ax.axvline(tau, color=AMBER, linewidth=1.6, label=f"threshold (95 %) {tau:.4f}")
        ax.axvline(value, color=RED if value > tau else BLUE, linewidth=2.2, label=f"synthetic {value:.4f}")
        return _finish(
            fig,
            ax,
            "Qδ: synthetic data against its bootstrap null",
            "q-delta",
            "Q delta and its bootstrap null distribution",
            xlabel="Qδ",
            ylabel="bootstrap rounds",
        )


def attacks_svg(rows: list[tuple[str, str, Mapping[str, Any]]]) -> str | None:
    """Risk of each attack with its 95 % interval, and the random-guess baseline's risk."""
    if not rows:
        return None
    names = [name for _, name, _ in rows][::-1]
    risk = np.array([r["risk"] for _, _, r in rows][::-1], dtype=float)
    ci = np.array([r.get("ci") or [r["risk"], r["risk"]] for _, _, r in rows][::-1], dtype=float)
    base = [((r.get("baseline_risk") or {}).get("risk")) for _, _, r in rows][::-1]
    from safemicro.evaluate import ATTACK_RISK_LIMIT

    with rc_context(_RC):
        fig = _new_figure(6.8, 0.45 * len(rows) + 1.2)
        ax = fig.add_subplot()
        y = np.arange(len(rows))
        ax.barh(y, risk, color=[RED if v > ATTACK_RISK_LIMIT else BLUE for v in risk], height=0.55)

        ax.errorbar(risk, y, xerr=[risk - ci[:, 0], ci[:, 1] - risk], fmt="none", ecolor=INK, capsize=3, linewidth=1.0)
        by = [(b, i) for i, b in enumerate(base) if b is not None]
        if by:
            ax.scatter(
                [b for b, _ in by], [i for _, i in by], marker="|", s=160, color=AMBER, zorder=3, label="random guess"
            )
        ax.axvline(ATTACK_RISK_LIMIT, color=GREY, linestyle="--", linewidth=1.0, label="limit")
        ax.set_yticks(y, [_plain(n) for n in names])
        ax.set_xlim(0, max(0.25, float(np.nanmax(ci[:, 1])) * 1.1))
        from matplotlib.patches import Patch

        handles, _ = ax.get_legend_handles_labels()
        handles += [
            Patch(color=BLUE, label=f"risk at most {ATTACK_RISK_LIMIT}"),
            Patch(color=RED, label=f"risk above {ATTACK_RISK_LIMIT}"),
        ]
        return _finish(
            fig,
            ax,
            "Attack risks with 95 % intervals",
            "attacks",
            "Risk of each attack with its confidence interval",
            xlabel="risk = (attack − control) / (1 − control)",
            quiet_grid="y",
            handles=handles,
        )


# -- page context --------------------------------------------------------------------------------


def _cards(result: Mapping[str, Any]) -> list[dict[str, str]]:
    s = result.get("summary") or {}
    priv = result.get("privacy") or {}
    cards = []
    if s.get("quality") is not None:
        cards.append(
            {
                "label": "Quality (sdmetrics-style, 0–1)",
                "value": _num(s["quality"]),
                "sub": f"shapes {_num(s.get('column_shapes'))} · pairs {_num(s.get('column_pair_trends'))}",
                "status": "",
            }
        )
    if s.get("pmse_ratio") is not None:
        cards.append(
            {
                "label": "pMSE ratio to its null (≈ 1 is good)",
                "value": _num(s["pmse_ratio"], 2),
                "sub": f"pMSE {_num(s.get('pmse'), 4)}",
                "status": "",
            }
        )
    if s.get("k_marginal") is not None:
        cards.append(
            {
                "label": "NIST CRC k-marginal (0–1000)",
                "value": f"{s['k_marginal']:.0f}",
                "sub": "1000 · (1 − mean TVD of 2-way marginals)",
                "status": "",
            }
        )
    qd = priv.get("q_delta") or {}
    if qd.get("q_delta") is not None:
        cards.append(
            {
                "label": "Q_δ (copying signal)",
                "value": _num(qd["q_delta"], 4),
                "sub": f"threshold {_num(qd['threshold'], 4)}",
                "status": "pass" if qd["passed"] else "fail",
                "note": "below threshold" if qd["passed"] else "above threshold",
            }
        )
    ru = priv.get("replicated_uniques") or {}
    if ru:
        ref = f" · holdout {_pct(ru['holdout_share'])}" if ru.get("holdout_share") is not None else ""
        cards.append(
            {
                "label": "Replicated uniques on the keys",
                "value": _num(ru["count"]),
                "sub": f"{_pct(ru['share'], 2)} of synthetic rows{ref}",
                "status": "pass" if ru["count"] == 0 else "fail",
                "note": "none" if ru["count"] == 0 else "present",
            }
        )
    em = priv.get("exact_matches") or {}
    if em.get("synth_in_train") is not None:
        ref = em.get("holdout_in_train")
        ok = ref is None or em["synth_in_train"] <= ref
        cards.append(
            {
                "label": "Synthetic rows equal to a training row",
                "value": _pct(em["synth_in_train"], 2),
                "sub": f"holdout rows: {_pct(ref, 2)}" if ref is not None else "no holdout",
                "status": "pass" if ok else "fail",
                "note": "" if ref is None else ("at most the natural rate" if ok else "above the natural rate"),
            }
        )
    return [{"status": "", "note": ""} | c for c in cards]


def _context(result: Mapping[str, Any], title: str) -> dict[str, Any]:
    from safemicro.evaluate import ATTACK_RISK_LIMIT, _attack_rows

    util = result.get("utility") or {}
    priv = result.get("privacy") or {}
    attacks = priv.get("attacks") or {}
    attack_rows = _attack_rows(attacks)
    data = result.get("data") or {}
    columns = list(util.get("columns") or [])
    quality = util.get("quality") or {}
    pairs = [p for p in quality.get("pairs") or [] if p.get("counted") and p.get("score") is not None]
    pairs.sort(key=lambda p: p["score"])
    km = util.get("k_marginal") or {}
    return {
        "title": title,
        "version": __version__,
        "data": data,
        "seed": result.get("seed"),
        "summary": result.get("summary") or {},
        "cards": _cards(result),
        "quality": quality,
        "columns": sorted(columns, key=lambda c: (c["score"] is None, c["score"] if c["score"] is not None else 0)),
        "worst_pairs": pairs[:WORST_PAIRS],
        "pmse": util.get("pmse") or {},
        "k_marginal": km,
        "k_groups": sorted((km.get("groups") or {}).items()),
        "tstr": util.get("tstr") or [],
        "privacy": priv,
        "checks": (result.get("summary") or {}).get("privacy_checks") or [],
        "notes": result.get("notes") or [],
        "attacks": attacks,
        "attack_rows": [{"name": name, "r": r} for _, name, r in attack_rows],
        "attack_limit": ATTACK_RISK_LIMIT,
        "figures": {
            "attacks": _svg(attacks_svg(attack_rows)),
            "columns": _svg(column_scores_svg(columns)),
            "marginals": _svg(marginals_svg(columns)),
            "quantiles": _svg(quantiles_svg(columns)),
            "dcr": _svg(dcr_svg(priv.get("dcr"))),
            "q_delta": _svg(q_delta_svg(priv.get("q_delta"))),
        },
        "num": _num,
        "pct": _pct,
    }


def render_evaluation_html(result: Mapping[str, Any], *, title: str = "Synthetic data evaluation") -> str:
    """The evaluation result as one HTML document."""
    return _env().get_template("evaluation.html").render(**_context(result, title))


def write_evaluation_html(result: Mapping[str, Any], path: str | os.PathLike[str], **kw: Any) -> Path:
    """Render the evaluation and write it atomically to ``path``."""
    target = Path(path)
    write_text(target, render_evaluation_html(result, **kw))
    return target
