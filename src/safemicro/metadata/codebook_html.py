"""The HTML codebook: one self-contained page per dataset, a section per variable.

Each section shows the label, type and measure, valid/missing counts (weighted too when
a weight is known), summary statistics, the categories with unweighted and weighted
frequencies and a bar per category, missing codes, what statistical disclosure control
did to the variable, and for continuous variables a small weighted histogram (inline
SVG). In a public use codebook (``Documentation.mask_below``) category counts below the
threshold read ``< k`` and histogram bins holding fewer records are left out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from safemicro import __version__
from safemicro.metadata.model import TIER_NAMES, Documentation, sdc_notes_by_variable
from safemicro.metadata.summary import VariableSummary

__all__ = ["render_codebook", "histogram_svg"]

MAX_ROWS_SHOWN = 60  # category rows in a section; the DDI keeps up to max_categories


def _env() -> Environment:
    return Environment(
        loader=ChoiceLoader(
            [PackageLoader("safemicro.metadata", "templates"), PackageLoader("safemicro.report", "templates")]
        ),
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _fmt(v: Any, decimals: int | None = None) -> str:
    if v is None:
        return "–"
    x = float(v)
    if not math.isfinite(x):
        return "–"
    if x.is_integer() and abs(x) < 1e15 and decimals is None:
        return f"{int(x):,}"
    if decimals is None:
        ax = abs(x)
        decimals = 0 if ax >= 1000 else 1 if ax >= 100 else 2 if ax >= 1 else 4
    return f"{x:,.{decimals}f}"


def histogram_svg(
    values: np.ndarray, weights: np.ndarray | None, name: str, mask_below: int | None
) -> tuple[str | None, int]:
    """A small weighted histogram as inline SVG, and the number of bins left out because
    they hold fewer than ``mask_below`` records."""
    from matplotlib import rc_context

    from safemicro.report.plots import _RC, BLUE, _new_figure, figure_to_svg

    values = values[np.isfinite(values)]
    if values.size < 2 or values.min() == values.max():
        return None, 0
    edges = np.histogram_bin_edges(values, bins=min(30, max(5, int(np.sqrt(values.size)))))
    counts, _ = np.histogram(values, bins=edges)
    wcounts, _ = (
        np.histogram(values, bins=edges, weights=weights) if weights is not None else (counts.astype(float), None)
    )
    hidden = 0
    if mask_below:
        small = (counts > 0) & (counts < mask_below)
        hidden = int(small.sum())
        wcounts = np.where(small, 0.0, wcounts)
    with rc_context(_RC):
        fig = _new_figure(4.2, 1.6)
        ax = fig.add_subplot()
        ax.bar(edges[:-1], wcounts, width=np.diff(edges), align="edge", color=BLUE, linewidth=0)
        ax.set_yticks([])
        ax.grid(False)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="x", labelsize=7)
    what = "weighted " if weights is not None else ""
    return figure_to_svg(fig, f"hist-{name}", f"{what}distribution of {name}"), hidden


def _var_view(
    s: VariableSummary, index: int, doc: Documentation, sdc_notes: list[str], weights: np.ndarray | None
) -> dict[str, Any]:
    vdoc = doc.study.variables.get(s.name)
    label = (vdoc.label if vdoc and vdoc.label else None) or s.label or ""
    weighted = doc.weight is not None and not s.is_weight
    cats = []
    biggest = max([(c.wfreq if weighted else c.freq) or 0 for c in s.categories if not c.missing] or [0])
    for c in s.categories[:MAX_ROWS_SHOWN]:
        share = (
            ((c.wfreq if weighted else c.freq) or 0) / biggest if biggest and not c.missing and not c.masked else 0.0
        )
        cats.append(
            {
                "code": c.code_text,
                "label": c.label or "",
                "missing": c.missing,
                "freq": f"< {doc.mask_below}" if c.masked else _fmt(c.freq),
                "wfreq": "–" if c.masked or c.wfreq is None else _fmt(c.wfreq, 0),
                "percent": "" if c.percent is None else f"{c.percent:.1f} %",
                "bar": round(100 * share, 1),
                "masked": c.masked,
            }
        )
    more = len(s.categories) - MAX_ROWS_SHOWN
    stats = []
    names = {"min": "Minimum", "max": "Maximum", "mean": "Mean", "medn": "Median", "stdev": "Std. deviation"}
    for key, title in names.items():
        if key in s.stats:
            stats.append(
                {
                    "name": title,
                    "value": _fmt(s.stats[key], s.decimals),
                    "weighted": _fmt(s.wstats[key], 2) if key in s.wstats else "",
                }
            )
    chart = None
    hidden_bins = 0
    if not s.discrete and s.kind == "numeric" and s.stats and not s.is_weight:
        col = doc.dataset.analysis_column(s.name).cast(float, strict=False).to_numpy()
        ok = np.isfinite(col)
        svg, hidden_bins = histogram_svg(col[ok], None if weights is None else weights[ok], f"v{index}", doc.mask_below)
        chart = Markup(svg) if svg else None
    missing = [str(c) for c in s.missing_codes] + [f"{lo} to {hi}" for lo, hi in s.missing_ranges]
    return {
        "anchor": f"v{index}",
        "name": s.name,
        "label": label,
        "type": ("numeric" if s.kind == "numeric" else "text") + (", discrete" if s.discrete else ", continuous"),
        "measure": s.measure,
        "format": s.format or "",
        "valid": _fmt(s.n_valid),
        "invalid": _fmt(s.n_invalid),
        "wvalid": _fmt(s.w_valid, 0) if weighted and s.w_valid is not None else "",
        "winvalid": _fmt(s.w_invalid, 0) if weighted and s.w_invalid is not None else "",
        "is_weight": s.is_weight,
        "question": vdoc.question if vdoc else "",
        "universe": vdoc.universe if vdoc else "",
        "instructions": vdoc.instructions if vdoc else "",
        "concept": vdoc.concept if vdoc else "",
        "var_notes": ([vdoc.notes] if vdoc and vdoc.notes else []),
        "missing_codes": ", ".join(missing),
        "categories": cats,
        "more_categories": max(0, more),
        "weighted": weighted,
        "stats": stats,
        "notes": list(s.notes),
        "sdc": sdc_notes,
        "chart": chart,
        "hidden_bins": hidden_bins,
    }


def render_codebook(doc: Documentation) -> str:
    """The codebook page as HTML text (deterministic: no clock time)."""
    from safemicro.metadata.ddi import _sdc_study_notes

    weights = None
    if doc.weight:
        weights = (
            doc.dataset.analysis_column(doc.weight).cast(float, strict=False).fill_null(0.0).fill_nan(0.0).to_numpy()
        )
    per_var = sdc_notes_by_variable(doc.sdc)
    variables = [_var_view(s, i + 1, doc, per_var.get(s.name, []), weights) for i, s in enumerate(doc.summaries)]
    st = doc.study
    facts = [
        ("Study ID", doc.idno),
        ("Abstract", st.abstract),
        ("Countries", ", ".join(c.name for c in st.countries)),
        ("Geographic coverage", st.geographic_coverage),
        ("Unit of analysis", st.analysis_unit or doc.unit),
        ("Universe", st.universe),
        ("Time period", " – ".join(x for x in (st.time_period.start, st.time_period.end) if x)),
        ("Data collection", " – ".join(x for x in (st.collection_dates.start, st.collection_dates.end) if x)),
        ("Sampling", st.sampling or doc.sampling),
        ("Mode of data collection", st.collection_mode),
        ("Weighting", st.weighting or (f"use the weight variable {doc.weight}" if doc.weight else "")),
        ("Response rate", st.response_rate),
        ("Authors", "; ".join(a.name for a in st.authors)),
        ("Producers", "; ".join(p.name for p in st.producers)),
        ("Access", TIER_NAMES.get(doc.tier or "", "")),
        ("Conditions of use", st.access.conditions),
        ("Citation", st.access.citation),
    ]
    page = (
        _env()
        .get_template("codebook.html")
        .render(
            version=__version__,
            title=doc.title,
            tier=doc.tier,
            tier_name=TIER_NAMES.get(doc.tier or "", ""),
            file=doc.file,
            weight=doc.weight,
            facts=[(k, v) for k, v in facts if v],
            sdc_notes=_sdc_study_notes(doc),
            mask_below=doc.mask_below,
            variables=variables,
            fmt=_fmt,
        )
    )
    return page
