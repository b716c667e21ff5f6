"""What the copy safeguards share: a frame or a dataset taken alike, the column check, and
one code space for a column taken from several frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import encode_column
from safemicro.utility.tables import common_dtypes

Frame = pl.DataFrame | Dataset


def _frame(data: Frame) -> pl.DataFrame:
    return data.frame if isinstance(data, Dataset) else data


def _check_columns(columns: Sequence[str], **frames: pl.DataFrame) -> None:
    for what, frame in frames.items():
        for name in columns:
            if name not in frame.columns:
                raise SafemicroError(f"the {what} data has no such column", column=name)


# -- shared encoding of several frames ------------------------------------------------------


def encode_together(parts: list[pl.Series]) -> tuple[list[np.ndarray], int]:
    """Codes 1..card of one column taken from several frames (0 = missing), one code space."""
    aligned = common_dtypes(parts)
    codes, card = encode_column(pl.concat([p.rename("v") for p in aligned]))
    return np.split(codes, np.cumsum([len(p) for p in parts])[:-1]), card
