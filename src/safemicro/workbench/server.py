"""Start the workbench: pick the project folder, import the file, serve on 127.0.0.1 with a token."""

from __future__ import annotations

import socket
import webbrowser
from pathlib import Path

from safemicro.errors import SafemicroError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def project_folder(file: Path | None, project: Path | None) -> Path:
    """``--project`` when given, else ``<file stem>.workbench`` next to the file, else
    ``./safemicro-workbench``."""
    if project is not None:
        return project
    if file is not None:
        return file.parent / f"{file.name.split('.')[0]}.workbench"
    return Path("safemicro-workbench")


def prepare(file: Path | None, project_dir: Path) -> str:
    """Open (or create) the project and import ``file`` unless the project already holds that
    file: a second launch continues where the first stopped. Returns what was done."""
    from safemicro.workbench.project import Project, safe_filename

    project = Project(project_dir)
    if file is None:
        return "opened" if project.data_path else "new project"
    if not file.is_file():
        raise SafemicroError("data file not found", file=str(file))
    if project.data_path is not None and project.data_path.name == safe_filename(file.name):
        from safemicro.release_bundle import file_sha256

        if file_sha256(file) != file_sha256(project.data_path):
            raise SafemicroError(
                f"the project {project_dir} holds another version of this file: give a new --project "
                "folder to start again on this one (the project keeps its copy and its plan)",
                file=str(file),
            )
        return "continued"
    project.import_file(file)
    return "imported"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(
    project_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    open_browser: bool = True,
    max_upload_mb: int = 2048,
    announce=print,
) -> None:
    """Run the workbench server until interrupted (uvicorn, one process)."""
    import uvicorn

    from safemicro.workbench.app import create_app, new_token

    token = token or new_token()
    port = port or free_port()
    app = create_app(project_dir, token, port=port, max_upload_mb=max_upload_mb)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/?token={token}"
    announce(f"safemicro workbench on {project_dir}\nopen: {url}")
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(app, host=host, port=port, log_level="warning")
