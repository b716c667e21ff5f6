"""The changes (POST): upload, roles, steps (add, edit, move, remove, recode), undo/redo.

Each handler builds the new plan from the form and hands it to the project, which
validates it against the data and runs its steps (through the engine) before saving: a
change that fails leaves the state as it was and the page shows why (status 400).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from safemicro.errors import SafemicroError
from safemicro.methods import STEPS
from safemicro.plan import Plan
from safemicro.workbench.pages import ROLE_CHOICES, SINGLE_ROLES, context
from safemicro.workbench.project import safe_filename


def trial(wb):
    """Run a candidate plan's steps; any failure becomes a :class:`SafemicroError`."""

    def run(plan: Plan) -> None:
        try:
            wb.engine.run(wb.project.dataset(), plan)
        except SafemicroError:
            raise
        except Exception as exc:  # a method's own error on this data
            raise SafemicroError(f"the step failed on this data: {exc}") from None

    return run


async def _upload(request: Request, wb, field: str = "file") -> tuple[Path, str]:
    """The uploaded file saved under the project (size-checked); its browser-given name is
    used only as a name, never as a path."""
    length = int(request.headers.get("content-length") or 0)
    if length > wb.max_upload + 65536:
        raise SafemicroError(f"upload too large ({length / 2**20:.0f} MB; limit {wb.max_upload / 2**20:.0f} MB)")
    form = await request.form()
    upload = form.get(field)
    if upload is None or not hasattr(upload, "read"):
        raise SafemicroError("no file was chosen")
    name = upload.filename or "upload"
    tmp_dir = wb.project.folder / "uploads"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
    size = 0
    with open(fd, "wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > wb.max_upload:
                out.close()
                Path(tmp).unlink(missing_ok=True)
                raise SafemicroError(f"upload too large (limit {wb.max_upload / 2**20:.0f} MB)", file=name)
            out.write(chunk)
    return Path(tmp), name


def _step_index(wb, index: int) -> int:
    if not 0 <= index < len(wb.project.plan.steps):
        raise SafemicroError(f"there is no step {index + 1}")
    return index


def _params(form: dict[str, Any], step: str) -> dict[str, Any]:
    from safemicro.workbench.views import parse_step_form

    if step not in STEPS:
        raise SafemicroError(f"unknown step {step!r}")
    try:
        return parse_step_form(STEPS[step], form)
    except ValueError as exc:
        raise SafemicroError(str(exc), step=step) from None


def roles_from_form(form: dict[str, Any], columns: list[str], plan: Plan) -> dict[str, Any]:
    """The plan fields the Roles form sets: roles, tier and targets."""
    lists: dict[str, list[str]] = {r: [] for r in ROLE_CHOICES}
    for name in columns:
        role = form.get(f"role_{name}", "other")
        if role not in ROLE_CHOICES:
            raise SafemicroError(f"unknown role {role!r}", column=name)
        lists[role].append(name)
    roles: dict[str, Any] = {
        "direct_ids": lists["direct_id"],
        "keys": lists["key"],
        "numeric_keys": lists["numeric_key"],
        "sensitive": lists["sensitive"],
        "household_level": [c for c in columns if form.get(f"hhlevel_{c}")],
        "ghost": {g: k for g, k in plan.roles.ghost.items() if k in lists["key"] + lists["numeric_key"]},
    }
    for single in SINGLE_ROLES:
        value = form.get(single) or None
        if value is not None and value not in columns:
            raise SafemicroError("not a column of the data", column=value)
        roles[single] = value
    targets: dict[str, Any] = {}
    for name, cast in (("k", int), ("max_global_risk", float), ("max_individual_risk", float)):
        raw = (form.get(name) or "").strip()
        try:
            targets[name] = cast(raw) if raw else (plan.targets.k if name == "k" else None)
        except ValueError:
            raise SafemicroError(f"targets.{name}: not a number: {raw!r}") from None
    tier = form.get("tier") or plan.scenario.tier
    scenario = {**plan.scenario.model_dump(), "tier": tier, "description": form.get("scenario", "")}
    return {"roles": roles, "targets": targets, "scenario": scenario}


def register(app: FastAPI, wb) -> None:
    project = wb.project

    def done(page: str, message: str, **kw: Any) -> HTMLResponse:
        return wb.render(page, context(wb, page, **kw), message=message)

    @app.post("/upload")
    async def upload(request: Request) -> HTMLResponse:
        tmp, name = await _upload(request, wb)
        try:
            safe_filename(name)
            ds = project.import_file(tmp, name)
        finally:
            tmp.unlink(missing_ok=True)
        wb.engine.clear()
        return done("data", f"imported {safe_filename(name)}: {ds.n:,} records, {len(ds.columns)} variables")

    @app.post("/open-plan")
    async def open_plan(request: Request) -> HTMLResponse:
        tmp, name = await _upload(request, wb)
        try:
            text = tmp.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SafemicroError("a plan is a UTF-8 YAML text file", file=name) from None
        finally:
            tmp.unlink(missing_ok=True)
        plan = project.open_plan(text, Path(name).name, trial(wb))
        return done("methods", f"opened {Path(name).name}: {len(plan.steps)} steps replayed")

    @app.post("/roles/draft")
    def accept_draft() -> HTMLResponse:
        draft = project.draft
        if draft is None:
            raise SafemicroError("no draft: import a data file first")
        keep = {"roles": draft.roles, "targets": draft.targets, "scenario": draft.scenario}
        project.change(keep, "accepted the draft roles", trial(wb))
        return done("roles", "draft roles accepted")

    @app.post("/roles")
    async def set_roles(request: Request) -> HTMLResponse:
        form = dict(await request.form())
        update = roles_from_form(form, project.dataset().columns, project.plan)
        project.change(update, "changed roles and targets", trial(wb))
        return done("roles", "roles saved")

    @app.post("/steps/add")
    async def add_step(request: Request) -> HTMLResponse:
        form = dict(await request.form())
        step = form.get("step", "")
        params = _params(form, step)
        plan = project.plan
        project.change({"steps": [*plan.steps, {step: params}]}, f"added {step}", trial(wb))
        return done("methods", f"added step {len(plan.steps) + 1}: {step}")

    @app.post("/steps/{index}/edit")
    async def edit_step(index: int, request: Request) -> HTMLResponse:
        form = dict(await request.form())
        index = _step_index(wb, index)
        steps = list(project.plan.steps)
        ((step, _),) = steps[index].items()
        steps[index] = {step: _params(form, step)}
        project.change({"steps": steps}, f"edited step {index + 1} ({step})", trial(wb))
        return done("methods", f"step {index + 1} ({step}) changed")

    @app.post("/steps/{index}/move")
    async def move_step(index: int, request: Request) -> HTMLResponse:
        form = await request.form()
        index = _step_index(wb, index)
        steps = list(project.plan.steps)
        to = index - 1 if form.get("direction") == "up" else index + 1
        if not 0 <= to < len(steps):
            raise SafemicroError("the step cannot move further")
        steps[index], steps[to] = steps[to], steps[index]
        project.change({"steps": steps}, f"moved step {index + 1} to {to + 1}", trial(wb))
        return done("methods", f"step {index + 1} moved to {to + 1}")

    @app.post("/steps/{index}/delete")
    def delete_step(index: int) -> HTMLResponse:
        index = _step_index(wb, index)
        steps = list(project.plan.steps)
        ((step, _),) = steps.pop(index).items()
        project.change({"steps": steps}, f"removed step {index + 1} ({step})", trial(wb))
        return done("methods", f"removed step {index + 1} ({step})")

    @app.post("/steps/paste")
    async def paste_steps(request: Request) -> HTMLResponse:
        from safemicro.plan import parse_yaml

        form = await request.form()
        pasted = parse_yaml(str(form.get("yaml", "")), "pasted step")
        pasted = pasted if isinstance(pasted, list) else [pasted]
        plan = project.plan
        try:
            steps = Plan.model_validate({"steps": pasted}).steps
        except ValueError as exc:
            raise SafemicroError(f"not a step: {str(exc).splitlines()[-1].strip()}") from None
        if not steps:
            raise SafemicroError("nothing pasted: write a step such as recode: {variable: age, breaks: [0, 18, 200]}")
        names = ", ".join(next(iter(s)) for s in steps)
        project.change({"steps": [*plan.steps, *steps]}, f"added {names} (pasted)", trial(wb))
        return done("methods", f"added {names}")

    @app.post("/recode")
    async def recode(request: Request) -> HTMLResponse:
        form = dict(await request.form())
        variable = form.get("variable", "")
        mapping, labels = _recode_map(form)
        if not mapping:
            raise SafemicroError("no value was given a new code", column=variable)
        params: dict[str, Any] = {"variable": variable, "map": mapping}
        if labels:
            params["labels"] = labels
        plan = project.plan
        project.change({"steps": [*plan.steps, {"recode": params}]}, f"added recode of {variable}", trial(wb))
        return done("methods", f"added step {len(plan.steps) + 1}: recode of {variable}")

    @app.post("/undo")
    def undo() -> HTMLResponse:
        what = project.undo()
        return done("methods", f"undone: {what}")

    @app.post("/redo")
    def redo() -> HTMLResponse:
        what = project.redo()
        return done("methods", f"redone: {what}")

    @app.post("/settings/suda")
    async def suda(request: Request) -> HTMLResponse:
        form = await request.form()
        project.set_setting("suda", form.get("suda") == "on")
        return done("risk", "SUDA2 " + ("on" if form.get("suda") == "on" else "off"))

    @app.post("/utility")
    async def utility(request: Request) -> HTMLResponse:
        from safemicro.plan import parse_yaml

        form = await request.form()
        data = parse_yaml(str(form.get("utility", "")), "utility") or {}
        if not isinstance(data, dict):
            raise SafemicroError("the utility section is a mapping (indicators, regressions, tables)")
        project.change({"utility": data}, "changed the utility measures", trial(wb))
        return done("utility", "utility measures saved")

    @app.post("/api/steps")
    async def api_add_step(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise SafemicroError("the body must be JSON: {step: name, params: {...}}") from None
        if not isinstance(body, dict) or not isinstance(body.get("params", {}), dict):
            raise SafemicroError("the body must be JSON: {step: name, params: {...}}")
        step = str(body.get("step", ""))
        plan = project.plan
        project.change({"steps": [*plan.steps, {step: body.get("params", {})}]}, f"added {step}", trial(wb))
        return {"steps": project.plan.model_dump(mode="json")["steps"]}

    @app.post("/api/undo")
    def api_undo() -> dict[str, Any]:
        return {"undone": project.undo(), "steps": project.plan.model_dump(mode="json")["steps"]}


def _recode_map(form: dict[str, Any]) -> tuple[dict[Any, Any], dict[Any, str]]:
    """``{old: new}`` and ``{new: label}`` from the recode editor's rows (``from_i``,
    ``to_i``, ``label_i``); values are read as YAML so numbers stay numbers."""
    import yaml

    mapping: dict[Any, Any] = {}
    labels: dict[Any, str] = {}
    i = 0
    while f"from_{i}" in form:
        old, new = str(form[f"from_{i}"]).strip(), str(form.get(f"to_{i}", "")).strip()
        i += 1
        if not new:
            continue
        try:
            old_v, new_v = yaml.safe_load(old), yaml.safe_load(new)
        except yaml.YAMLError:
            raise SafemicroError(f"not a value: {new!r}") from None
        if old_v != new_v:
            mapping[old_v] = new_v
        label = str(form.get(f"label_{i - 1}", "")).strip()
        if label:
            labels[new_v] = label
    return mapping, labels
