"""Atomic file output: write beside the target, then rename over it.

A reader never sees a half-written file, and a failure leaves neither the target nor a
temporary file behind (an existing target stays as it was). Files get the usual
permissions (0666 less the umask), not mkstemp's private 0600. Only what
:mod:`safemicro.outputs` allows is ever replaced: a regular file, or a folder safemicro
wrote (every folder written here gets its marker).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from safemicro.outputs import check_file, check_folder, mark_folder


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_paths(paths, *, suffix: str = ".tmp") -> Iterator[list[Path]]:
    """Yield one temporary path next to each target; all are moved into place only if the
    block succeeds, so a set of outputs is written completely or not at all."""
    targets = [check_file(p) for p in paths]
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


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_frame_csv(path: str | os.PathLike[str], frame: pl.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)


@contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; it becomes ``path`` only if the block
    succeeds (an existing ``path`` is replaced only with ``overwrite`` and only if safemicro
    wrote it, after the new folder is complete). On failure nothing is left behind and
    ``path`` is untouched. The new folder holds safemicro's marker file."""
    target = check_folder(path, overwrite=overwrite)
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        yield staging
        mark_folder(staging)
        for p in staging.rglob("*"):
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~_UMASK)
        os.chmod(staging, 0o777 & ~_UMASK)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=parent))
            os.rmdir(old)
            os.replace(target, old)
        try:
            os.replace(staging, target)
        except OSError:
            if old is not None:
                os.replace(old, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
