"""The release bundle's HTML pages: internal report, external report, approval form.

``anonymize`` builds a JSON-friendly report; these functions turn it (or the views
derived from it) into self-contained, printable pages in the style of the risk report:

* :func:`render_internal_report` — ``report.html`` for the curator: every step with its
  parameters, seed and changes, risk before/after, checks, utility, figures, warnings.
* :func:`render_external_report` — ``external_report.html`` for users, from
  ``external_view(report)``: what was done in words, residual risk, how to analyse the
  file validly. It shows nothing that would help undo a perturbation (no seed, no matrix).
* :func:`render_disclosure_risk_assessment` — the filled approval form, with blanks for
  what a reviewer still has to fill in and a signature line.

Everything is read defensively (a missing section is left out) and rendered with
autoescaping; the same input gives the same bytes (no clock, deterministic SVG).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safemicro.risk.individual import risk_histogram

from . import plots
from .format import _num, fmt_int, template_environment
from .sections.common import (
    _checks,
    _list,
    _map,
    _names,
    _params,
    _svg,
    _target_lines,
    _tier,
    _violations,
)
from .sections.dra import _dra_context
from .sections.external import _external_context
from .sections.risk import _risk_figure, _risk_rows, _suda_contributions
from .sections.steps import _internal_steps, _totals
from .sections.utility import _plot_marginals, _plot_quantiles, _quantile_rows, _utility

__all__ = [
    "render_internal_report",
    "render_external_report",
    "render_disclosure_risk_assessment",
    "risk_histogram",
]

MAX_PANELS = 8  # numeric variables drawn in the quantile figure


# ---------------------------------------------------------------------------------------
# the three pages
# ---------------------------------------------------------------------------------------


def _internal_context(report: Mapping[str, Any]) -> dict[str, Any]:
    before, after = _map(report.get("risk_before")), _map(report.get("risk_after"))
    targets = _map(report.get("targets"))
    info, source = _map(report.get("release_info")), _map(report.get("input"))
    release = _map(report.get("release"))
    target_k = targets.get("k")
    target_ind = _num(targets.get("max_individual_risk"))
    steps = report.get("steps")
    utility = _map(report.get("utility"))
    rows = _list(utility.get("variables"))
    roles = _map(report.get("roles"))
    net = [r for r in rows if isinstance(r, Mapping) and r.get("status") == "kept"]
    if net:  # cells that differ from the input, per variable
        suppressed = {str(r.get("variable")): r.get("suppressed") for r in net}
        changed = {str(r.get("variable")): r.get("changed") for r in net}
    else:  # no utility section: the steps' own counts
        suppressed, changed = _totals(steps, "suppressed"), _totals(steps, "changed")
    numeric = _names(roles.get("numeric_keys")) or [
        str(r.get("variable")) for r in net if r.get("quantiles_before") is not None
    ]
    figures = {
        "risk": _risk_figure(before, after, target_ind),
        "violations": _svg(
            plots.violations_before_after_svg(
                _violations(before), _violations(after), target_k=int(_num(target_k)) if _num(target_k) else None
            )
        ),
        "changes": _svg(plots.changes_per_variable_svg(suppressed, changed)),
        "marginals": _svg(plots.marginals_before_after_svg(_plot_marginals(rows, _names(roles.get("keys"))))),
        "quantiles": _svg(plots.quantiles_before_after_svg(_plot_quantiles(rows, numeric[:MAX_PANELS]))),
    }
    met = report.get("targets_met")
    return {
        "title": str(info.get("title") or source.get("file") or "Anonymized release"),
        "version": report.get("safemicro_version"),
        "input": {
            "file": source.get("file"),
            "sha256": source.get("sha256"),
            "records": fmt_int(source.get("n_records")) if source.get("n_records") is not None else None,
            "variables": fmt_int(source.get("n_variables")) if source.get("n_variables") is not None else None,
            "derived_from": _params(source.get("derived_from")),
        },
        "tier": _tier(_map(report.get("scenario")).get("tier")),
        "scenario": str(_map(report.get("scenario")).get("description") or ""),
        "seed": None if report.get("seed") is None else str(report.get("seed")),
        "reviewer": str(info.get("reviewer") or ""),
        "date": str(info.get("date") or ""),
        "targets": _target_lines(targets),
        "targets_met": met if isinstance(met, bool) else None,
        "checks": _checks(report.get("checks")),
        "risk_rows": _risk_rows(before, after, target_k, targets),
        "keys_before": _names(before.get("keys")),
        "keys_after": _names(after.get("keys")),
        "suda_contributions": _suda_contributions(before, after),
        "steps": _internal_steps(steps),
        "utility": _utility(utility),
        "quantiles": _quantile_rows(rows, numeric),
        "changes_net": bool(net),
        "figures": figures,
        "release": {
            "records": fmt_int(release.get("n_records")) if release.get("n_records") is not None else None,
            "variables": _names(release.get("variables")),
            "removed": _names(release.get("removed_variables")),
            "files": _params(release.get("files")),
            "decimals": _decimals_text(_map(release.get("decimals"))),
        },
        "warnings": [str(w) for w in _list(report.get("warnings")) if w],
    }


def _decimals_text(decimals: Mapping[str, Any]) -> str:
    """``"codes and whole numbers (a, b) as integers; income to 2 decimals"``."""
    whole = [n for n, d in decimals.items() if d == 0]
    groups: dict[int, list[str]] = {}
    for n, d in decimals.items():
        if isinstance(d, int) and d > 0:
            groups.setdefault(d, []).append(n)
    parts = [f"{', '.join(whole)} as integers"] if whole else []
    parts += [f"{', '.join(names)} to {d} decimal{'s' if d != 1 else ''}" for d, names in sorted(groups.items())]
    return "; ".join(parts)


def render_internal_report(report: dict) -> str:
    """``report.html``: the replicable account of a release, for the curator only.

    ``report`` is the dict ``anonymize`` builds (``Release.report``); any section may be
    missing. The page holds seeds and parameters: never publish it with the data.
    """
    context = _internal_context(report if isinstance(report, Mapping) else {})
    return template_environment().get_template("release_internal.html").render(**context)


# -- external ---------------------------------------------------------------------------


def render_external_report(view: dict) -> str:
    """``external_report.html``: for the users of the released file (no seeds, no parameters).

    ``view`` is ``external_view(report)``. The page explains what was done, the risk left
    and how to analyse the file validly, with the key indicators before and after.
    """
    context = _external_context(view if isinstance(view, Mapping) else {})
    return template_environment().get_template("release_external.html").render(**context)


# -- disclosure risk assessment form ---------------------------------------------------------


def render_disclosure_risk_assessment(dra: dict) -> str:
    """The filled disclosure risk assessment form as a printable page.

    ``dra`` is ``disclosure_risk_assessment(report, plan)``; fields still to be filled by
    the reviewer (reviewer, date, residual risk statement, decision) are printed as blanks.
    """
    context = _dra_context(dra if isinstance(dra, Mapping) else {})
    return template_environment().get_template("release_dra.html").render(**context)
