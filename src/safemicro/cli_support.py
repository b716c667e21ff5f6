"""What every `safemicro` command shares: the consoles and the one-line error handling."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from safemicro.errors import SafemicroError
from safemicro.outputs import check_outputs  # noqa: F401 - every command's output check, one rule

err = Console(stderr=True)
out = Console()


def friendly(fn: Callable) -> Callable:
    """Turn SafemicroError (and stray library errors) into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings(record=True) as caught:
                try:
                    return fn(*args, **kwargs)
                finally:
                    for w in caught:  # one line each, not Python's two-line warning format
                        err.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False, soft_wrap=True)
        except SafemicroError as e:
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as e:  # a bug of ours: still no traceback for the user
            err.print(
                f"[bold red]internal error:[/] {type(e).__name__}: {escape(str(e))} "
                "(please report it; set SAFEMICRO_DEBUG=1 for details)",
                highlight=False,
                soft_wrap=True,
            )
            if os.environ.get("SAFEMICRO_DEBUG"):
                raise
            raise typer.Exit(1) from None

    return wrapper


def command_group(help: str | None = None, **settings: Any) -> typer.Typer:
    """A Typer app configured as every `safemicro` command group: click's plain help (typer's
    rich help imports rich's Markdown and traceback modules, ~0.1 s, which alone would break
    `safemicro --help` in 0.2 s: tests/test_startup.py), the help when called without a
    command, no shell-completion options and no rich tracebacks."""
    options: dict[str, Any] = dict(
        add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None
    )
    return typer.Typer(help=help, **{**options, **settings})


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def write_all(jobs: list[tuple[Path, Callable[[Path], None]]]) -> None:
    """Write every output or none: each goes to a temporary file beside its target first."""
    from safemicro.atomic import atomic_paths

    current: Path | None = None
    try:
        with atomic_paths([target for target, _ in jobs]) as staged:
            for (current, write), tmp in zip(jobs, staged):  # noqa: B007 (read in the except)
                write(tmp)
            current = None
    except OSError as e:
        where = current or e.filename
        raise SafemicroError(f"cannot write output: {e.strerror or e}", file=str(where)) from None
