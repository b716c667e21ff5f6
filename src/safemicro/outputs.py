"""Where safemicro may write: the one rule every output goes through, checked before any work.

An output only ever replaces

* a regular file (a symbolic link is followed: the file it points to is replaced, the link
  stays), or
* a folder that safemicro wrote itself: every folder it writes (release bundle,
  documentation, NADA dry run, demo) holds the marker file :data:`MARKER`.

Anything else -- a character or block device (``/dev/null``), a named pipe, a socket, a
link to one of them or to nothing, a folder of someone else's files, the input itself or a
folder holding it -- is refused with one clear :class:`SafemicroError`. The atomic writers
(:mod:`safemicro.atomic`) apply the same rule when they write, so the library is as safe as
the command line; the commands call it first, so a bad output fails in a second, not after
the whole job.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from safemicro.errors import SafemicroError

__all__ = ["MARKER", "MARKER_TEXT", "check_file", "check_folder", "check_outputs", "mark_folder"]

MARKER = ".safemicro"
MARKER_TEXT = (
    "This folder was written by safemicro. safemicro replaces it as a whole when asked to\n"
    "write here again; it never replaces a folder without this file.\n"
)


def _what(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _stat(p: Path) -> os.stat_result | None:
    """The status of what ``p`` names, links followed; None when nothing is there."""
    if not os.path.lexists(p):
        return None
    try:
        return os.stat(p)
    except FileNotFoundError:
        raise SafemicroError("is a symbolic link to nothing; give another output path", file=str(p)) from None
    except OSError as e:
        raise SafemicroError(f"cannot check the output path: {e.strerror or e}", file=str(p)) from None


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def check_file(path: str | os.PathLike[str]) -> Path:
    """Refuse an output file path that is not absent or a regular file; return the path to
    replace (a symbolic link resolved to the file it points to)."""
    p = Path(path)
    st = _stat(p)
    if st is None:
        return p
    if stat.S_ISDIR(st.st_mode):
        raise SafemicroError("is a folder; give a file name for the output", file=str(p))
    if not stat.S_ISREG(st.st_mode):
        link = " (through a symbolic link)" if p.is_symlink() else ""
        raise SafemicroError(
            f"is {_what(st.st_mode)}{link}, not a regular file: safemicro writes only new or "
            "regular files; give another output path",
            file=str(p),
        )
    return _real(p)


def is_ours(folder: Path) -> bool:
    """Whether ``folder`` holds safemicro's marker file."""
    return (folder / MARKER).is_file()


def check_folder(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """Refuse an output folder safemicro may not fill: not a folder, a non-empty folder
    safemicro did not write, one it wrote without ``overwrite``, or one that is or holds an
    input. Returns the folder to replace (a symbolic link resolved)."""
    p = Path(path)
    st = _stat(p)
    real = p
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise SafemicroError(
                f"exists and is {_what(st.st_mode)}, not a folder; give a new folder for the output", file=str(p)
            )
        real = _real(p)
    target = real.resolve()
    for i in inputs:
        if i is None or not os.path.lexists(i):
            continue
        src = Path(i).resolve()
        if src == target or target in src.parents:
            raise SafemicroError(f"the output folder would replace the input {i}", file=str(p))
    if st is not None and any(real.iterdir()):
        if not is_ours(real):
            raise SafemicroError(
                f"folder is not empty and was not written by safemicro (it has no {MARKER} file); "
                "safemicro never replaces other files: give a new or empty folder",
                file=str(p),
            )
        if not overwrite:
            raise SafemicroError(
                "output folder is not empty: it holds an earlier safemicro output (use --overwrite to replace it)",
                file=str(p),
            )
    return real


def mark_folder(folder: str | os.PathLike[str]) -> None:
    """Write safemicro's marker into ``folder`` (a folder it is writing)."""
    (Path(folder) / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def check_outputs(
    inputs: Iterable[str | os.PathLike[str] | None],
    outputs: Iterable[str | os.PathLike[str] | None] = (),
    *,
    folders: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
) -> None:
    """Every check of a command's outputs, before it reads or computes anything: each file
    output is absent or a regular file and is not an input, each folder output is one
    safemicro may fill, and no output is named twice (absent optional outputs are skipped)."""
    ins = [Path(i) for i in inputs if i]
    outs = [Path(p) for p in outputs if p]
    dirs = [Path(p) for p in folders if p]
    for p in outs:
        check_file(p)
        if p.exists() and any(i.exists() and p.resolve() == i.resolve() for i in ins):
            raise SafemicroError("output would overwrite an input file", file=str(p))
    for d in dirs:
        check_folder(d, overwrite=overwrite, inputs=ins)
    every = [*outs, *dirs]
    resolved = [p.resolve() for p in every]
    if len(set(resolved)) < len(resolved):
        raise SafemicroError("the same output is given twice", file=str(every[-1]))
    for p, rp in zip(outs, resolved):
        for d in dirs:
            if d.resolve() in rp.parents:
                raise SafemicroError("output file is inside an output folder that is replaced as a whole", file=str(p))
