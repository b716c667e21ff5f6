"""Which input record each released row is: the bundle's internal row map (``row_map.csv``).

``new_ids`` shuffles the rows, sampling and record removal drop some. The pipeline carries
each input row's position (``ROW_ID``) through every step; the bundle keeps it, per released
row, in an internal file that is never published (it would undo the shuffle) so that an
empirical attack can score a release against the original records it was made from
(``safemicro attack link --original``) instead of assuming they line up row by row.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError

__all__ = ["ROW_MAP", "row_map_text", "read_row_map"]

ROW_MAP = "row_map.csv"
_COLUMNS = ("release_row", "input_row")


def row_map_text(input_rows: np.ndarray) -> str:
    """The CSV text: released row ``i`` (0-based) came from row ``input_rows[i]`` of the input."""
    rows = np.asarray(input_rows, dtype=np.int64)
    frame = pl.DataFrame({_COLUMNS[0]: np.arange(len(rows), dtype=np.int64), _COLUMNS[1]: rows})
    return frame.write_csv()


def read_row_map(folder: str | os.PathLike[str]) -> np.ndarray | None:
    """The input row of each released row of the bundle in ``folder`` (None: no row map kept)."""
    path = Path(folder) / ROW_MAP
    if not path.is_file():
        return None
    try:
        frame = pl.read_csv(io.BytesIO(path.read_bytes()), schema={c: pl.Int64 for c in _COLUMNS})
    except (pl.exceptions.PolarsError, ValueError) as e:
        raise SafemicroError(f"unreadable row map: {e}", file=str(path)) from None
    if frame.null_count().sum_horizontal().item() or not np.array_equal(
        frame.get_column(_COLUMNS[0]).to_numpy(), np.arange(frame.height)
    ):
        raise SafemicroError("row map is damaged (release_row must count 0, 1, 2, ...)", file=str(path))
    return frame.get_column(_COLUMNS[1]).to_numpy()
