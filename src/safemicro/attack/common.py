"""Input checks and sampling shared by the release-level attacks (Article 29 WP scenarios)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.record_linkage.inputs import _frame, _kind
from safemicro.errors import SafemicroError

__all__ = ["prepare_frames", "draw_rows"]


def prepare_frames(
    original: Any, synthetic: Any, control: Any | None, columns: Sequence[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None, list[str]]:
    """The three frames as Polars on the same columns (those of ``original`` by default).

    ``synthetic`` is the released data (synthetic or anonymized); ``control`` real records
    that were not used to make it. Empty frames, missing columns and type mismatches are
    errors that name the frame and the column.
    """
    files = {
        "original": getattr(original, "source", None),
        "released": getattr(synthetic, "source", None),
        "control": getattr(control, "source", None),
    }
    ori = _frame(original, "original")
    syn = _frame(synthetic, "released")
    ctl = None if control is None else _frame(control, "control")
    cols = list(columns) if columns is not None else list(ori.columns)
    if not cols:
        raise SafemicroError("no columns to attack on")
    for what, frame in (("original", ori), ("released", syn), ("control", ctl)):
        if frame is None:
            continue
        if frame.height == 0:
            raise SafemicroError(f"the {what} data has no records", file=files[what])
        for c in cols:
            if c not in frame.columns:
                raise SafemicroError(f"the {what} data has no such column", file=files[what], column=c)
            if _kind(frame.schema[c]) != _kind(ori.schema[c]):
                raise SafemicroError(
                    f"type mismatch: {_kind(ori.schema[c])} in the original data, "
                    f"{_kind(frame.schema[c])} in the {what} data",
                    file=files[what],
                    column=c,
                )
    keep = lambda f: None if f is None else f.select(cols)  # noqa: E731
    return keep(ori), keep(syn), keep(ctl), cols


def draw_rows(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` distinct rows of ``n`` at random (all of them, shuffled, if size ≥ n)."""
    return rng.permutation(n)[: min(size, n)]
