"""The workbench's web application: FastAPI + Jinja2 pages, htmx for partial updates.

:func:`create_app` builds the app for one project folder. Every request must carry the
per-launch token (``?token=`` on the first visit, then a same-site cookie, or the
``X-Workbench-Token`` header for scripts); without it the answer is 403 and nothing runs.
Handlers are thin: they call the project (state), the engine (library calls) and render a
page; a :class:`SafemicroError` becomes the same page with the message and a 4xx status,
the state unchanged.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

from safemicro.errors import SafemicroError
from safemicro.workbench.engine import Engine
from safemicro.workbench.jobs import Jobs
from safemicro.workbench.project import Project

HERE = Path(__file__).parent
PAGES = ("data", "roles", "risk", "methods", "utility", "attack", "release", "synthetic")
TITLES = {
    "data": "Data",
    "roles": "Roles",
    "risk": "Risk",
    "methods": "Methods",
    "utility": "Utility",
    "attack": "Attack test",
    "release": "Release",
    "synthetic": "Synthetic",
}
MAX_UPLOAD_MB = 2048


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Workbench:
    """What the handlers share: the project, the engine, the jobs, the templates."""

    def __init__(self, project: Project, *, max_upload_mb: int = MAX_UPLOAD_MB) -> None:
        self.project = project
        self.engine = Engine()
        self.jobs = Jobs()
        self.max_upload = max_upload_mb * 1024 * 1024
        # the page head is the reports' (safemicro/report/templates/page_head.html)
        loader = ChoiceLoader([FileSystemLoader(HERE / "templates"), PackageLoader("safemicro.report", "templates")])
        self.env = Environment(loader=loader, autoescape=select_autoescape(["html"]))
        self.env.filters["yaml"] = lambda v: yaml.safe_dump(v, sort_keys=False, allow_unicode=True).strip()
        self.env.filters["pct"] = lambda v, d=2: f"{v:.{d}f} %" if _number(v) else "–"
        self.env.filters["num"] = lambda v: (f"{v:,}" if isinstance(v, int) else f"{v:,.4g}") if _number(v) else "–"

    def render(
        self,
        page: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        message: str = "",
        error: str = "",
    ) -> HTMLResponse:
        project = self.project
        plan = project.plan
        html = self.env.get_template(f"{page}.html").render(
            page=page,
            pages=PAGES,
            titles=TITLES,
            data_name=project.state.get("data"),
            plan=plan,
            plan_yaml=plan.to_yaml(),
            history=project.history(),
            can_redo=bool(project.state.get("redo")),
            message=message,
            error=error,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["HX-Push-Url"] = f"/{page}"
        return response


def _token_guard(app: FastAPI, token: str, cookie: str) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next):
        given = (
            request.query_params.get("token")
            or request.headers.get("x-workbench-token")
            or request.cookies.get(cookie)
            or ""
        )
        if not secrets.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse(
                "403: this workbench needs its access token: open the URL that `safemicro workbench` printed "
                "(it ends in ?token=...)",
                status_code=403,
            )
        if "token" in request.query_params and request.method == "GET":
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response: Response = RedirectResponse(target, status_code=303)
            response.set_cookie(cookie, token, httponly=True, samesite="strict")
            return response
        return await call_next(request)


def create_app(
    project_dir: str | Path,
    token: str,
    *,
    port: int = 0,
    max_upload_mb: int = MAX_UPLOAD_MB,
) -> FastAPI:
    """The workbench app on ``project_dir`` (created when missing), guarded by ``token``."""
    from safemicro.workbench import actions, pages, tasks

    if len(token) < 16:
        raise SafemicroError("the workbench token must be at least 16 characters")
    project = Project(project_dir)
    wb = Workbench(project, max_upload_mb=max_upload_mb)
    app = FastAPI(title="safemicro workbench", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.wb = wb
    _token_guard(app, token, f"safemicro_workbench_{port}")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SafemicroError)
    async def _user_error(request: Request, exc: SafemicroError):
        if request.url.path.startswith("/api/"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": str(exc)}, status_code=400)
        if request.headers.get("hx-target"):  # a part of the page asked: the message goes there
            from html import escape

            return HTMLResponse(f'<div class="flash error" role="alert" id="error">{escape(str(exc))}</div>', 400)
        page = request.headers.get("x-workbench-page") or "data"
        page = page if page in PAGES else "data"
        return wb.render(page, pages.context(wb, page, lenient=True), status=400, error=str(exc))

    @app.get("/")
    def index():
        return RedirectResponse("/data" if project.state.get("data") is None else "/risk", status_code=303)

    pages.register(app, wb)
    actions.register(app, wb)
    tasks.register(app, wb)
    return app


def new_token() -> str:
    """A random per-launch token (like Jupyter's)."""
    return secrets.token_urlsafe(24)
