"""Long work as background jobs: the release bundle (+ documentation, NADA dry run), the
linkage attack on the current release, and synthesis with its evaluation.

Each job calls the library exactly as the CLI would (``safemicro.anonymize`` on the
project's copy of the data with the current plan, so the bundle has the same bytes as
``safemicro anonymize FILE --plan plan.yaml``) and writes into ``results/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse

from safemicro.errors import SafemicroError
from safemicro.workbench.pages import context, page

RELEASE = "release"
DOCS = "docs"
NADA = "nada"
SYNTH = "synthetic"


def _listing(folder: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return []
    return [
        {"name": p.name, "size": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".")
    ]


def _job_view(wb, kind: str) -> dict[str, Any] | None:
    job = wb.jobs.latest(kind)
    if job is None:
        return None
    return {
        "id": job.id,
        "state": job.state,
        "stage": job.stage,
        "percent": round(100 * job.fraction),
        "message": job.message,
        "seconds": round(job.seconds, 1),
    }


@page("release")
def _release(wb) -> dict[str, Any]:
    res = wb.project.results
    report = res / RELEASE / "report.json"
    summary = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None
    return {
        "job": _job_view(wb, "release"),
        "files": _listing(res / RELEASE),
        "docs": _listing(res / DOCS),
        "nada": _listing(res / NADA),
        "report": summary,
        "sums": (res / RELEASE / "SHA256SUMS").read_text() if (res / RELEASE / "SHA256SUMS").is_file() else "",
    }


@page("attack")
def _attack(wb) -> dict[str, Any]:
    path = wb.project.results / "attack.json"
    return {
        "job": _job_view(wb, "attack"),
        "attack": json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None,
    }


@page("synthetic")
def _synthetic(wb) -> dict[str, Any]:
    path = wb.project.results / SYNTH / "evaluation.json"
    return {
        "job": _job_view(wb, "synthesis"),
        "files": _listing(wb.project.results / SYNTH),
        "evaluation": json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None,
    }


def release_job(wb, document: bool):
    project = wb.project
    data, plan = project.data_path, project.plan

    def work(tick) -> dict[str, Any]:
        from safemicro.release import anonymize

        tick("anonymizing (risk before, steps, risk after, utility)", 0.05)
        release = anonymize(data, plan)
        tick("writing the bundle", 0.6)
        release.write(project.results / RELEASE, overwrite=True)
        if document:
            from safemicro.metadata.documentation import document as run_document
            from safemicro.metadata.nada import plan_publication, write_requests

            tick("documenting (DDI, codebook, Data Package)", 0.75)
            run_document(project.results / RELEASE, project.results / DOCS)
            tick("NADA dry run", 0.9)
            pub = plan_publication(project.results / DOCS, bundle=project.results / RELEASE)
            write_requests(pub, project.results / NADA, overwrite=True)
        return {"targets_met": release.targets_met}

    return work


def attack_job(wb):
    """Exact-key linkage with the sample's own key values in the release's coding: the
    nosy neighbour who knows every respondent's keys (a worst case)."""
    project = wb.project
    plan, dataset = project.plan, project.dataset()

    def work(tick) -> dict[str, Any]:
        from safemicro.attack.linkage import LinkageEvaluator
        from safemicro.methods.base import ROW_ID
        from safemicro.pipeline import in_released_coding, prepare_steps, roles_after

        tick("running the steps", 0.1)
        state = wb.engine.run(dataset, plan)
        tagged = wb.engine.tagged(dataset)
        coded, _, _ = in_released_coding(tagged, prepare_steps(plan, tagged.columns, seed=plan.seed or 0))
        keys = roles_after(plan.roles, state.dataset.columns).keys
        if not keys:
            raise SafemicroError("no key variables left in the release: nothing to link on")
        tick("linking", 0.3)
        aux = coded.frame.select([ROW_ID, *keys]).rename({ROW_ID: "__person"})
        release = state.dataset.frame.drop(ROW_ID)
        ids = state.dataset.frame.get_column(ROW_ID).rename("__person")
        ev = LinkageEvaluator(release.select(keys), aux, truth="__person", on=keys, release_ids=ids).evaluate()
        tick("risk promised", 0.8)
        promised = wb.engine.risk(dataset, plan).summary["global_risk"]
        result = {"linkage": ev.results(), "promised": promised, "keys": keys, "n_release": release.height}
        from safemicro.atomic import write_text

        write_text(project.results / "attack.json", json.dumps(result, indent=1, default=str, allow_nan=True))
        return result

    return work


def synth_job(wb):
    project = wb.project
    plan, dataset = project.plan, project.dataset()

    def work(tick) -> dict[str, Any]:
        from safemicro.evaluate import evaluate
        from safemicro.io import write
        from safemicro.synth.synthesis import synthesize

        tick("synthesizing (sequential CART)", 0.05)
        syn = synthesize(dataset, plan=plan, seed=plan.seed)
        tick("evaluating (utility, attacks)", 0.6)
        real = dataset.with_frame(dataset.frame.drop([c for c in plan.roles.direct_ids if c in dataset.columns]))
        keys = [k for k in plan.roles.keys if k in syn.dataset.columns] or None
        ev = evaluate(real, syn.dataset, keys=keys, seed=plan.seed, n_boot=20, n_perm=2, attacks=200)
        tick("writing", 0.95)
        out = project.results / SYNTH
        out.mkdir(parents=True, exist_ok=True)
        suffix = (
            project.data_path.suffix if project.data_path.suffix in (".dta", ".sav", ".csv", ".parquet") else ".csv"
        )
        write(syn.dataset, out / f"synthetic{suffix}")
        from safemicro.atomic import write_text

        write_text(out / "synthesis.json", json.dumps(syn.report, indent=1, default=str))
        write_text(out / "evaluation.json", json.dumps(ev, indent=1, default=str))
        return {}

    return work


def register(app: FastAPI, wb) -> None:
    for name in ("release", "attack", "synthetic"):

        def show(request: Request, _name: str = name) -> HTMLResponse:
            return wb.render(_name, context(wb, _name))

        app.add_api_route(f"/{name}", show, methods=["GET"], response_class=HTMLResponse)

    starters = {
        "release": lambda form: release_job(wb, form.get("document") == "on"),
        "attack": lambda form: attack_job(wb),
        "synthesis": lambda form: synth_job(wb),
    }
    page_of = {"release": "release", "attack": "attack", "synthesis": "synthetic"}

    @app.post("/jobs/{kind}")
    async def start(kind: str, request: Request) -> HTMLResponse:
        if kind not in starters:
            raise SafemicroError(f"unknown job {kind!r}")
        if wb.project.data_path is None:
            raise SafemicroError("no data yet: upload or open a file on the Data page")
        form = dict(await request.form())
        wb.jobs.start(kind, starters[kind](form))
        return wb.render(page_of[kind], context(wb, page_of[kind]), message=f"{kind} started")

    @app.get("/jobs/{kind}/status")
    def status(kind: str) -> HTMLResponse:
        view = _job_view(wb, kind)
        html = wb.env.get_template("job.html").render(job=view, kind=kind)
        response = HTMLResponse(html)
        if view and view["state"] != "running":
            response.headers["HX-Refresh"] = "true"  # reload the page: the results are there now
        return response

    @app.post("/jobs/{kind}/cancel")
    def cancel(kind: str) -> HTMLResponse:
        job = wb.jobs.latest(kind)
        if job is None or job.state != "running":
            raise SafemicroError(f"no {kind} job is running")
        job.cancel.set()
        return wb.render(page_of[kind], context(wb, page_of[kind]), message=f"{kind}: cancelling")

    folders = {"release": RELEASE, "docs": DOCS, "nada": NADA, "synthetic": SYNTH}

    @app.get("/files/{where}/{name}")
    def download(where: str, name: str) -> FileResponse:
        if where not in folders:
            raise SafemicroError(f"unknown folder {where!r}")
        folder = wb.project.results / folders[where]
        allowed = {p["name"]: folder / p["name"] for p in _listing(folder)}
        if name not in allowed:  # only a file the listing shows: never a path from the browser
            raise SafemicroError("no such file", file=name)
        return FileResponse(allowed[name], filename=name)
