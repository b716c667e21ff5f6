"""Atomic file output: write beside the target, then rename over it.

A reader never sees a half-written file, and a failure leaves neither the target nor a
temporary file behind (an existing target stays as it was). Files get the usual
permissions (0666 less the umask), not mkstemp's private 0600.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import polars as pl


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_paths(paths, *, suffix: str = ".tmp") -> Iterator[list[Path]]:
    """Yield one temporary path next to each target; all are moved into place only if the
    block succeeds, so a set of outputs is written completely or not at all."""
    targets = [Path(p) for p in paths]
    staged: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
            os.close(fd)
            staged.append(Path(name))
        yield staged
        for tmp, target in zip(staged, targets):
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, target)
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only on success.

    ``suffix`` lets writers that look at the extension (pyreadstat) see the right one.
    """
    with atomic_paths([path], suffix=suffix) as (tmp,):
        yield tmp


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_frame_csv(path: str | os.PathLike[str], frame: pl.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)
