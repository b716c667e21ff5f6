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
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only on success.

    ``suffix`` lets writers that look at the extension (pyreadstat) see the right one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_frame_csv(path: str | os.PathLike[str], frame: pl.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)
