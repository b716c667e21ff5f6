"""The true identity of each released record, for scoring a linkage attack.

A release bundle does not line up row by row with its original: ``new_ids`` shuffles the
rows, sampling and record removal drop some. The bundle's internal row map
(:mod:`safemicro.release_rows`) says which input record each released row is; this module
reads it and picks the identities from the original the bundle was made from. Without a
row map the correspondence is unknown and the scoring is refused: scoring by position
would report a wrong re-identification rate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.release_rows import ROW_MAP, read_row_map

__all__ = ["bundle_folder", "release_identities"]

UNKNOWN = (
    "which original record each released row is is unknown: give the release bundle folder "
    f"(its internal {ROW_MAP} says it); scoring by position would be wrong after new_ids, "
    "sampling or record removal"
)


def bundle_folder(release: str | os.PathLike[str]) -> Path | None:
    """The bundle folder of ``release`` (the folder itself, or the folder holding the released
    file as its data or one of its copies); None when it is not part of a bundle."""
    path = Path(release)
    folder = path if path.is_dir() else path.parent
    report = folder / "report.json"
    if not report.is_file():
        return None
    try:
        files = json.loads(report.read_text(encoding="utf-8"))["release"]["files"]
    except (ValueError, KeyError, TypeError):
        return None
    return folder if path.is_dir() or path.name in files.values() else None


def release_identities(
    release: str | os.PathLike[str],
    original: Any,
    truth: str,
    *,
    original_file: str | None = None,
    encoding: str | None = None,
) -> pl.Series:
    """The ``truth`` column of ``original`` in the order of the released rows of ``release``.

    ``release`` is a bundle folder or a released file inside one; ``original`` the data the
    bundle was made from (a path, a bundle folder for a release derived from a scientific use
    file, a Dataset or a Polars frame). Raises :class:`SafemicroError` when the
    correspondence is unknown or ``original`` is not the bundle's input.
    """
    folder = bundle_folder(release)
    rows = read_row_map(folder) if folder is not None else None
    if rows is None:
        raise SafemicroError(UNKNOWN, file=str(release))
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    frame, file, digest = _original(original, original_file, encoding)
    expected = report.get("input", {})
    if frame.height != expected.get("n_records"):
        raise SafemicroError(
            f"the original has {frame.height} records but the release was made from {expected.get('n_records')}: "
            "give the file the release bundle was made from",
            file=file,
        )
    if digest is not None and expected.get("sha256") and digest != expected["sha256"]:
        made_from = expected.get("file")
        if expected.get("derived_from"):  # a public use file: its original is the SUF bundle
            made_from = f"the bundle {expected['derived_from'].get('bundle')}/ ({made_from})"
        raise SafemicroError(
            f"the original is not the file the release was made from ({made_from}, per its report): "
            "its rows may be in another order",
            file=file,
        )
    if truth not in frame.columns:
        raise SafemicroError("the original file has no identity column", file=file, column=truth)
    if rows.size and (rows.min() < 0 or rows.max() >= frame.height):
        raise SafemicroError(f"{ROW_MAP} names rows the original does not have", file=str(folder))
    return frame.get_column(truth)[rows]


def _original(original: Any, file: str | None, encoding: str | None) -> tuple[pl.DataFrame, str | None, str | None]:
    """The original as a frame, its file name and the SHA-256 the bundle's report would record."""
    if isinstance(original, (str, os.PathLike)):
        from safemicro.release_bundle import file_sha256, read_bundle

        path = Path(original)
        if path.is_dir():
            ds, origin = read_bundle(path)
            return ds.frame, str(path), origin["sha256"]
        if not path.is_file():
            raise SafemicroError("original file not found", file=str(path))
        from safemicro.io import read

        ds = read(path, **({"encoding": encoding} if encoding else {}))
        return ds.frame, str(path), file_sha256(path)
    frame = original.frame if hasattr(original, "frame") else original
    if not isinstance(frame, pl.DataFrame):
        frame = pl.from_pandas(frame)
    return frame, file or getattr(original, "source", None), None
