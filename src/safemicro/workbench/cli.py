"""`safemicro workbench`: the command that starts the curator workbench."""

from __future__ import annotations

from pathlib import Path

import typer

from safemicro.cli_support import err, friendly


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def workbench(
        file: Path | None = typer.Argument(
            None, help="data file to open (SAV, DTA, CSV, Parquet, ...); copied, never modified"
        ),
        project: Path | None = typer.Option(
            None, "--project", help="project folder (default: FILE's stem + .workbench next to it)"
        ),
        port: int = typer.Option(0, "--port", help="TCP port (default: a free one)"),
        host: str = typer.Option(
            "127.0.0.1", "--host", help="address to listen on; every request still needs the token"
        ),
        no_browser: bool = typer.Option(False, "--no-browser", help="print the URL, do not open a browser"),
        max_upload_mb: int = typer.Option(2048, "--max-upload-mb", min=1, help="largest upload accepted"),
    ) -> None:
        """Open the curator workbench in the browser: data, roles, risk, methods, utility, attack, release."""
        from safemicro.workbench.server import prepare, project_folder, serve

        folder = project_folder(file, project)
        done = prepare(file, folder)
        err.print(f"project {folder}: {done}", highlight=False, markup=False)
        serve(
            folder,
            host=host,
            port=port,
            open_browser=not no_browser,
            max_upload_mb=max_upload_mb,
            announce=lambda text: err.print(text, highlight=False, markup=False, soft_wrap=True),
        )
