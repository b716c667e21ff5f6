"""How numbers are written to text: integers as integers, decimals at the input's precision.

SPSS and Stata store every number as a double, so a code 2 reads back as 2.0 and a noisy
income as 3334458.8666666667. Written as they are, a CSV says ``2.0`` where the curator
typed 2 and shows sixteen digits nobody measured. :func:`input_decimals` finds a numeric
column's precision from its display format (SPSS ``F8.2``, Stata ``%9.2f``) or, without
one, from its values; :func:`tidy_numbers` rounds float columns to it and writes whole
ones as integers. The values decide first: SPSS files often carry a default ``F8.2`` on
codes and on weights with more decimals, so a format only caps values that have more
decimals than :data:`MAX_DECIMALS` (computed values, such as noise added to a measurement).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import polars as pl

from safemicro.io.dataset import Dataset

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MAX_DECIMALS", "format_decimals", "input_decimals", "keep_perturbation", "tidy_numbers"]

MAX_DECIMALS = 6  # more decimals than this: the values are measurements, keep them as they are
_SPSS = re.compile(r"^[A-Z]+(\d+)(?:\.(\d+))?$", re.I)  # F8.2, COMMA10.1, DOLLAR12.2
_STATA = re.compile(r"^%-?0?(\d+)\.(\d+)([fgec])c?$", re.I)  # %9.2f, %8.0g, %10.0gc


def format_decimals(fmt: str | None) -> int | None:
    """Decimals a display format fixes (``F8.2`` → 2, ``%9.0f`` → 0); None for general
    formats (Stata ``%g``) and text formats, which fix none."""
    if not fmt:
        return None
    m = _STATA.match(fmt)
    if m:
        return int(m.group(2)) if m.group(3).lower() == "f" else None
    m = _SPSS.match(fmt)
    if m and fmt[:1].upper() != "A":
        return int(m.group(2) or 0)
    return None


def _value_decimals(s: pl.Series) -> int | None:
    """The fewest decimals (0..MAX_DECIMALS) that write every value of ``s`` exactly."""
    import numpy as np  # here: reading a file (safemicro.io) needs no NumPy, see safemicro.cli

    x = s.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return None
    scale = np.maximum(1.0, np.abs(x))
    for d in range(MAX_DECIMALS + 1):
        if np.all(np.abs(np.round(x, d) - x) <= 1e-9 * scale):
            return d
    return None


def input_decimals(ds: Dataset) -> dict[str, int]:
    """Per float column of ``ds``: the decimals its values are given to (0: whole numbers);
    for values with more than :data:`MAX_DECIMALS` decimals, the format's, if it fixes any."""
    out: dict[str, int] = {}
    for name, dtype in ds.frame.schema.items():
        if not dtype.is_float():
            continue
        d = _value_decimals(ds.frame.get_column(name))
        if d is None:
            d = format_decimals(ds.codebook.meta(name).format)
        if d is not None:
            out[name] = d
    return out


def tidy_numbers(ds: Dataset, decimals: dict[str, int] | None = None) -> pl.DataFrame:
    """The frame with float columns rounded to their decimals and whole ones as integers.

    ``decimals`` (e.g. the input's, from :func:`input_decimals`) says how far to round;
    without it a column is only written as integers when its values are whole and it has
    value labels (codes) or a format without decimals. Other columns are left as they are.
    """
    decimals = decimals or {}
    columns = []
    for name, dtype in ds.frame.schema.items():
        s = ds.frame.get_column(name)
        if dtype.is_float():
            meta = ds.codebook.meta(name)
            d = decimals.get(name)
            if d is None and (meta.value_labels or format_decimals(meta.format) == 0) and _value_decimals(s) == 0:
                d = 0
            if d is not None:
                s = s.round(d)
                finite = s.drop_nulls().drop_nans()
                if (
                    d == 0
                    and finite.len() == s.drop_nulls().len()
                    and finite.abs().max() is not None
                    and finite.abs().max() < 2**53
                ):
                    s = s.fill_nan(None).cast(pl.Int64)
                elif d == 0 and s.drop_nulls().len() == 0:
                    s = s.cast(pl.Int64)
        columns.append(s)
    return pl.DataFrame(columns) if columns else ds.frame


def keep_perturbation(decimals: int, original: np.ndarray, released: np.ndarray, *, share: float = 0.01) -> int:
    """Decimals for a perturbed column: at least the input's, and enough that rounding moves
    a value by at most ``share`` of the typical (median) perturbation, so rounding to the
    input's precision never undoes noise (an income of 42 with noise 0.3 is not written 42).

    ``original`` and ``released`` are the same records' values (NaN: missing).
    """
    import numpy as np

    ok = ~(np.isnan(original) | np.isnan(released))
    change = np.abs(released[ok] - original[ok])
    change = change[change > 0]
    if len(change) == 0:
        return decimals
    typical = float(np.median(change))
    need = int(np.ceil(-np.log10(2 * share * typical))) if typical > 0 else decimals
    return max(decimals, min(need, 15))
