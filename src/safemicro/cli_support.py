"""What every `safemicro` command shares: the consoles and the one-line error handling."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from safemicro.errors import SafemicroError

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


def split_list(value: Optional[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def check_outputs(inputs: list[Path], outputs: list[Optional[Path]]) -> None:
    """Refuse output paths that cannot work before any work is done: a folder, an input
    file, the same file twice (absent optional outputs are skipped)."""
    outs = [p for p in outputs if p]
    for p in outs:
        if p.is_dir():
            raise SafemicroError("is a directory; give a file name for the output", file=str(p))
        if p.exists() and any(i.exists() and p.resolve() == i.resolve() for i in inputs):
            raise SafemicroError("output would overwrite an input file", file=str(p))
    if len({p.resolve() for p in outs}) < len(outs):
        raise SafemicroError("the same output file is given twice", file=str(outs[-1]))
