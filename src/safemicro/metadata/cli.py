"""Command-line commands of this package, added to the main `safemicro` app by `register`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to `app` (filled in by the package's issue)."""
