"""The pages (GET): Data, Roles, Risk, Methods, Utility; and the plan download.

Each page is a context builder over the project and the engine plus a template. The
Release, Attack and Synthetic pages register their builders from :mod:`.tasks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from safemicro.errors import SafemicroError
from safemicro.methods import STEPS
from safemicro.plaintext import first_paragraph
from safemicro.workbench import views

ROLE_CHOICES = ("other", "direct_id", "key", "numeric_key", "sensitive")
SINGLE_ROLES = ("weight", "household", "strata", "cluster")
CONTEXTS: dict[str, Callable[..., dict[str, Any]]] = {}


def page(name: str) -> Callable:
    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        CONTEXTS[name] = fn
        return fn

    return deco


def context(wb, name: str, *, lenient: bool = False, **kw: Any) -> dict[str, Any]:
    """The page's context; with ``lenient``, a failing computation leaves the page without it
    (the error itself is shown by the caller)."""
    try:
        if wb.project.data_path is None and name != "data":
            return {"no_data": True}
        return CONTEXTS[name](wb, **kw)
    except SafemicroError:
        if not lenient:
            raise
        return {"no_data": wb.project.data_path is None, "broken": True}


def _roles_of(plan) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, role in plan.roles.assignments():
        out[name] = f"{out[name]}, {role}" if name in out else role
    return out


@page("data")
def _data(wb) -> dict[str, Any]:
    if wb.project.data_path is None:
        return {"variables": None}
    ds = wb.project.dataset()
    table = wb.engine.memo(f"variables-{id(ds)}", lambda: views.variable_table(ds, {}))
    roles = _roles_of(wb.project.plan)
    return {"variables": [{**row, "role": roles.get(row["name"], "")} for row in table], "n_records": ds.n}


@page("roles")
def _roles(wb) -> dict[str, Any]:
    ds = wb.project.dataset()
    plan = wb.project.plan
    draft = wb.project.draft
    from safemicro.plan import Roles

    draft_roles = draft.roles if draft is not None else Roles()
    reasons = wb.project.state.get("reasons", {})
    rows = []
    for name in ds.columns:
        mine = [r for r in plan.roles.role_of(name) if r in ROLE_CHOICES]
        rows.append(
            {
                "name": name,
                "label": ds.codebook.meta(name).label or "",
                "role": mine[0] if mine else "other",
                "household_level": name in plan.roles.household_level,
                "draft": ", ".join(draft_roles.role_of(name)) or "other",
                "reason": reasons.get(name, ""),
            }
        )
    single_of = {getattr(plan.roles, r): r for r in SINGLE_ROLES if getattr(plan.roles, r)}
    return {
        "rows": rows,
        "columns": ds.columns,
        "choices": ROLE_CHOICES,
        "single": SINGLE_ROLES,
        "single_of": single_of,
    }


def _risk(wb, plan, upto=None, *, suda=False):
    return wb.engine.risk(wb.project.dataset(), plan, upto, suda=suda)


@page("risk")
def _risk_page(wb) -> dict[str, Any]:
    plan = wb.project.plan
    if not plan.roles.keys and not plan.roles.numeric_keys:
        return {"no_keys": True}
    suda = bool(wb.project.setting("suda", False))
    result = _risk(wb, plan, suda=suda)
    s = result.summary
    plots = ["risk", "violations", "household"] + (["suda"] if s.get("suda2") else [])
    return {"s": s, "plots": plots if result.key_table is not None else [], "suda": suda, "headline": views.headline(s)}


def risk_plot(wb, name: str) -> str:
    """One of the HTML report's SVG plots of the current risk (slow to draw: loaded apart)."""
    from safemicro.report.plots import risk as plots

    plan = wb.project.plan
    result = _risk(wb, plan, suda=bool(wb.project.setting("suda", False)))
    s = result.summary
    draw = {
        "risk": lambda: plots.risk_distribution_svg(result.records, target=plan.targets.max_individual_risk),
        "violations": lambda: plots.violations_by_k_svg(result.records, target_k=plan.targets.k),
        "suda": lambda: plots.suda_contribution_svg((s.get("suda2") or {}).get("attribute_contributions")),
        "household": lambda: plots.household_size_svg((s.get("household_risk") or {}).get("household_sizes")),
    }
    if name not in draw:
        raise SafemicroError(f"unknown plot {name!r}")
    return wb.engine.memo(f"plot-{name}-{id(result)}", lambda: draw[name]() or "")


def why_rare(wb, index: int) -> dict[str, Any]:
    """Which key variables make the ``index``-th riskiest key rare (on the current data)."""
    from safemicro.pipeline import roles_after
    from safemicro.risk.rarity import why_rare as rarity

    plan = wb.project.plan
    result = _risk(wb, plan, suda=bool(wb.project.setting("suda", False)))
    keys = result.summary["riskiest_keys"]
    if not 0 <= index < len(keys):
        raise SafemicroError(f"no riskiest key number {index + 1}")
    state = wb.engine.run(wb.project.dataset(), plan)
    roles = roles_after(plan.roles, state.dataset.columns)
    rows = rarity(state.dataset.analysis_frame(roles.keys), roles.keys, keys[index]["values"])
    return {"key": keys[index], "rows": rows, "index": index}


@page("methods")
def _methods(wb, form_step: str | None = None, edit: int | None = None) -> dict[str, Any]:
    project = wb.project
    plan = project.plan
    ds = project.dataset()
    state = wb.engine.run(ds, plan)
    steps = []
    from safemicro.pipeline import prepare_steps

    prepared = prepare_steps(plan, wb.engine.tagged(ds).columns, seed=plan.seed or 0)
    for i, (raw, prep, change) in enumerate(zip(plan.steps, prepared, state.changes)):
        ((name, params),) = raw.items()
        steps.append(
            {
                "index": i,
                "name": name,
                "params": params,
                "describe": prep.spec.describe(prep.params, change),
                "changed": {k: v for k, v in change.changed.items() if v},
                "suppressed": {k: v for k, v in change.suppressed.items() if v},
                "records": change.records_touched,
            }
        )
    compare = {}
    if plan.roles.keys:
        compare["original"] = views.headline(_risk(wb, plan, 0).summary)
        if project.state["undo"]:
            try:
                prev_plan = project.previous_plan()
                if prev_plan is not None and prev_plan.roles.keys:
                    compare["before last change"] = views.headline(_risk(wb, prev_plan).summary)
            except SafemicroError:
                pass
        compare["now"] = views.headline(_risk(wb, plan).summary)
    form = None
    if edit is not None and 0 <= edit < len(plan.steps):
        ((form_step, current),) = plan.steps[edit].items()
    else:
        current = None
    if form_step in STEPS:
        spec = STEPS[form_step]
        form = {
            "step": form_step,
            "fields": views.step_form(spec, current),
            "help": first_paragraph(spec.params.__doc__ or ""),
            "edit": edit,
        }
    return {
        "steps": steps,
        "compare": compare,
        "step_names": sorted(STEPS),
        "form": form,
        # the keys first: what a curator recodes
        "columns": sorted(
            (c for c in state.dataset.columns if not c.startswith("__")), key=lambda c: c not in plan.roles.keys
        ),
        "target_k": str(plan.targets.k),
    }


def alternatives(wb, text: str) -> dict[str, Any]:
    """Candidate next steps side by side: the risk after each (on top of the current steps)
    and the cells each changes; nothing is saved."""
    from safemicro.plan import Plan, parse_yaml

    pasted = parse_yaml(text, "alternatives")
    pasted = pasted if isinstance(pasted, list) else [pasted]
    try:
        candidates = Plan.model_validate({"steps": pasted}).steps
    except ValueError as exc:
        raise SafemicroError(f"not a list of steps: {str(exc).splitlines()[-1].strip()}") from None
    if not 1 <= len(candidates) <= 6:
        raise SafemicroError("give between 1 and 6 alternative steps, one per list item")
    plan, ds = wb.project.plan, wb.project.dataset()
    rows = []
    for step in candidates:
        trial = plan.model_copy(update={"steps": [*plan.steps, step]})
        state = wb.engine.run(ds, trial)
        change = state.changes[-1]
        rows.append(
            {
                "step": step,
                "yaml": yaml.safe_dump(step, default_flow_style=True, width=10**6, allow_unicode=True).strip(),
                "risk": views.headline(_risk(wb, trial).summary),
                "cells": sum(change.changed.values()),
                "records": change.records_touched,
            }
        )
    return {"rows": rows, "now": views.headline(_risk(wb, plan).summary), "target_k": str(plan.targets.k)}


def recode_editor(wb, variable: str) -> dict[str, Any]:
    """The values of ``variable`` as the current step list leaves them, with labels and counts."""
    plan = wb.project.plan
    state = wb.engine.run(wb.project.dataset(), plan)
    ds = state.dataset
    if variable not in ds.columns:
        raise SafemicroError("not a column of the data after the current steps", column=variable)
    vc = ds.frame.get_column(variable).value_counts(sort=True).head(60)
    labels = ds.codebook.meta(variable).value_labels
    rows = [
        {"value": v, "label": views._label(labels, v) or "", "count": int(c)}
        for v, c in vc.sort(variable, nulls_last=True).iter_rows()
        if v is not None
    ]
    return {"variable": variable, "rows": rows, "truncated": ds.frame.get_column(variable).n_unique() > 60}


@page("utility")
def _utility(wb) -> dict[str, Any]:
    plan = wb.project.plan
    if not plan.roles.keys and not plan.utility.variables():
        return {"utility": None, "utility_yaml": ""}
    result = wb.engine.utility(wb.project.dataset(), plan)
    return {
        "utility": result,
        "utility_yaml": yaml.safe_dump(plan.utility.model_dump(mode="json", exclude_defaults=True), sort_keys=False),
    }


def register(app: FastAPI, wb) -> None:
    for name in ("data", "roles", "risk", "utility"):

        def show(request: Request, _name: str = name) -> HTMLResponse:
            return wb.render(_name, context(wb, _name))

        app.add_api_route(f"/{name}", show, methods=["GET"], response_class=HTMLResponse)

    @app.get("/methods")
    def methods(step: str | None = None, edit: int | None = None) -> HTMLResponse:
        return wb.render("methods", context(wb, "methods", form_step=step, edit=edit))

    @app.get("/methods/recode")
    def recode(variable: str) -> HTMLResponse:
        ctx = recode_editor(wb, variable)
        return HTMLResponse(wb.env.get_template("recode_editor.html").render(**ctx))

    @app.post("/methods/alternatives")
    async def compare(request: Request) -> HTMLResponse:
        form = await request.form()
        ctx = alternatives(wb, str(form.get("yaml", "")))
        return HTMLResponse(wb.env.get_template("alternatives.html").render(**ctx))

    @app.get("/risk/plot/{name}")
    def plot(name: str) -> HTMLResponse:
        return HTMLResponse(risk_plot(wb, name))

    @app.get("/risk/why/{index}")
    def why(index: int) -> HTMLResponse:
        return HTMLResponse(wb.env.get_template("why_rare.html").render(**why_rare(wb, index)))

    @app.get("/plan.yaml")
    def plan_yaml() -> Response:
        return Response(
            wb.project.plan.to_yaml(),
            media_type="application/x-yaml",
            headers={"Content-Disposition": 'attachment; filename="plan.yaml"'},
        )

    @app.get("/api/state")
    def api_state() -> dict[str, Any]:
        p = wb.project
        return {"data": p.state.get("data"), "plan": p.plan.model_dump(mode="json"), "history": p.history()}

    @app.get("/api/risk")
    def api_risk() -> dict[str, Any]:
        plan = wb.project.plan
        if not plan.roles.keys:
            raise SafemicroError("no key variables yet: set them on the Roles page")
        return views.headline(_risk(wb, plan).summary)
