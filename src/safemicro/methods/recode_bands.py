"""Numeric bands as R's ``cut`` makes them (the definition sdcMicro's ``globalRecode``
uses): explicit breaks, equal width, quantiles or equal width on the log scale, with
value labels describing each band."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.methods.recode_common import (
    _as_number,
    _is_user_missing,
    _json_num,
    _label_key,
    _missing_mask,
    _new_meta,
    _whole,
)

BandMethod = Literal["explicit", "equal_width", "quantile", "log_equal_width"]


LabelStyle = Literal["range", "interval"]


def _fmt_g(x: float, digits: int) -> str:
    """A break as R's formatC(x, digits) prints it (C's %g; Inf as R spells it)."""
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    return "%.*g" % (digits, x)


@dataclass(frozen=True)
class Bands:
    """Intervals between sorted ``breaks`` with R ``cut`` semantics."""

    breaks: tuple[float, ...]
    right: bool = True
    include_lowest: bool = False

    @property
    def n(self) -> int:
        return len(self.breaks) - 1

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Band number 1..n of each value; 0 for NaN and values outside every band."""
        br = np.asarray(self.breaks, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        band = np.searchsorted(br, x, side="left" if self.right else "right")
        if self.include_lowest:
            if self.right:
                band[x == br[0]] = 1
            else:
                band[x == br[-1]] = self.n
        band[(band < 1) | (band > self.n) | np.isnan(x)] = 0
        return band

    def _closed(self, i: int) -> tuple[bool, bool]:
        """Whether band i (1-based) contains its lower and its upper break."""
        lo = (not self.right) or (self.include_lowest and i == 1)
        hi = self.right or (self.include_lowest and i == self.n)
        return lo, hi

    def interval_labels(self, dig_lab: int = 3) -> list[str]:
        """sdcMicro's labels, "(a,b]", with as many digits as R's cut needs to tell breaks apart."""
        for digits in range(dig_lab, max(12, dig_lab) + 1):
            text = [_fmt_g(b, digits) for b in self.breaks]
            if all(a != b for a, b in zip(text[:-1], text[1:])):
                break
        out = []
        for i in range(1, self.n + 1):
            lo, hi = self._closed(i)
            out.append(f"{'[' if lo else '('}{text[i - 1]},{text[i]}{']' if hi else ')'}")
        return out

    def whole_ranges(self) -> list[tuple[int | None, int | None]] | None:
        """The smallest and largest whole number in each band (None: unbounded).

        None when some band holds no whole number.
        """
        out = []
        for i in range(1, self.n + 1):
            lo_in, hi_in = self._closed(i)
            a, b = self.breaks[i - 1], self.breaks[i]
            first = None if math.isinf(a) else int(math.ceil(a) if lo_in else math.floor(a) + 1)
            last = None if math.isinf(b) else int(math.floor(b) if hi_in else math.ceil(b) - 1)
            if first is not None and last is not None and first > last:
                return None
            out.append((first, last))
        return out

    def range_labels(self) -> list[str] | None:
        """Plain labels for whole-number data: "15-24", "60 or more", "-1 to 15"."""
        ranges = self.whole_ranges()
        if ranges is None:
            return None
        out = []
        for first, last in ranges:
            if first is None and last is None:
                out.append("any value")
            elif first is None:
                out.append(f"{last} or less")
            elif last is None:
                out.append(f"{first} or more")
            elif first == last:
                out.append(str(first))
            elif first < 0 or last < 0:
                out.append(f"{first} to {last}")
            else:
                out.append(f"{first}-{last}")
        return out


def resolve_bands(
    x: np.ndarray,
    breaks: list[float] | int,
    *,
    method: BandMethod | None = None,
    right: bool = True,
    include_lowest: bool | None = None,
    variable: str | None = None,
) -> tuple[Bands, list[str]]:
    """Turn a ``breaks`` request into explicit :class:`Bands` for the observed values ``x``.

    A list is used as given (cut semantics, ``include_lowest`` off by default). A number
    b of breaks gives b bands computed from ``x`` (``include_lowest`` on by default):
    ``equal_width`` (sdcMicro "equidistant": from min-1 to max+1, rounded unless that
    makes breaks coincide), ``quantile`` (sdcMicro "equalAmount": quantiles of ``x``;
    coinciding breaks are merged into one instead of sdcMicro's random jitter) or
    ``log_equal_width`` (equal width on log x between its smallest and largest value).
    Returns the bands and notes for the change record.
    """
    notes: list[str] = []

    def fail(msg: str) -> SafemicroError:
        return SafemicroError(msg, column=variable)

    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    if isinstance(breaks, bool):
        raise fail("breaks must be a list of cut points or a number of bands")
    if isinstance(breaks, (int, np.integer)):
        b = int(breaks)
        method = method or "equal_width"
        if method == "explicit":
            raise fail("method 'explicit' needs a list of breaks, not a number of bands")
        if b < 1:
            raise fail(f"the number of bands must be at least 1, got {b}")
        if len(x) == 0:
            raise fail("no observed values to compute bands from")
        lo, hi = float(x.min()), float(x.max())
        if method == "equal_width":
            seq = np.linspace(lo - 1, hi + 1, b + 1)
            rounded = np.round(seq)
            br = rounded if len(np.unique(rounded)) == b + 1 else seq
        elif method == "quantile":
            q = np.quantile(x, np.linspace(0.0, 1.0, b + 1))
            br = np.unique(q)
            if len(br) < 2:
                raise fail("all observed values are equal, so quantile bands cannot separate them")
            if len(br) < b + 1:
                notes.append(
                    f"{b + 1 - len(br)} quantile break(s) coincided and were merged: "
                    f"{len(br) - 1} bands instead of {b} (sdcMicro would jitter the values at random)"
                )
        elif method == "log_equal_width":
            if lo <= 0:
                raise fail(f"log-scale bands need values above 0; the smallest value is {_json_num(lo)}")
            if lo == hi:
                raise fail("all observed values are equal, so log-scale bands cannot separate them")
            br = np.exp(np.linspace(math.log(lo), math.log(hi), b + 1))
            br[0], br[-1] = lo, hi
        else:
            raise fail(f"unknown banding method {method!r}")
        return Bands(tuple(float(v) for v in br), right, True if include_lowest is None else include_lowest), notes
    if method not in (None, "explicit"):
        raise fail(f"method {method!r} computes breaks from a number of bands; give breaks as a number")
    try:
        br = np.asarray([float(v) for v in breaks], dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(f"breaks must be numbers, got {breaks!r}") from None
    if len(br) < 2:
        raise fail("breaks need at least two cut points")
    if np.isnan(br).any():
        raise fail("breaks must not contain NaN")
    br = np.sort(br)
    if (np.diff(br) == 0).any():
        raise fail(f"breaks must be distinct, got {list(breaks)!r}")
    return Bands(tuple(float(v) for v in br), right, bool(include_lowest)), notes


def _band_recode(ds, variable, breaks, method, right, include_lowest, labels, codes):
    col = ds.frame.get_column(variable)
    if not col.dtype.is_numeric():
        raise SafemicroError(
            f"banding needs a numeric variable, but {variable!r} holds {col.dtype}; use map or hierarchy",
            column=variable,
        )
    miss = _missing_mask(ds, variable)
    x = col.cast(pl.Float64).fill_null(float("nan")).to_numpy().copy()
    x[miss] = np.nan
    bands, notes = resolve_bands(
        x, breaks, method=method, right=right, include_lowest=include_lowest, variable=variable
    )
    whole = _whole(x)
    ranges = bands.whole_ranges() if whole else None

    # codes
    if codes == "index":
        band_codes = np.arange(1, bands.n + 1, dtype=np.float64)
    elif codes == "lower":
        if ranges is not None:
            lows = [r[0] for r in ranges]
        else:
            lows = list(bands.breaks[:-1])
        if any(v is None or math.isinf(v) for v in lows):
            raise SafemicroError("codes='lower' needs a finite lower break for every band", column=variable)
        band_codes = np.asarray(lows, dtype=np.float64)
    else:
        raise SafemicroError(f"codes must be 'index' or 'lower', got {codes!r}", column=variable)
    for c in band_codes:
        if _is_user_missing(ds, variable, _as_number(float(c))):
            raise SafemicroError(
                f"band code {_as_number(float(c))} is also a user-missing code of {variable!r}; "
                "choose codes='lower' or give the missing values another code first",
                column=variable,
            )

    # labels
    if labels is None:
        style = "range" if ranges is not None else "interval"
    elif isinstance(labels, str):
        style = labels
        if style not in ("range", "interval"):
            raise SafemicroError(
                f"labels must be 'range', 'interval', a list or a mapping, got {labels!r}", column=variable
            )
        if style == "range" and ranges is None:
            raise SafemicroError(
                "labels='range' needs whole-number data and a whole number in every band; use 'interval'",
                column=variable,
            )
    else:
        style = "range" if ranges is not None else "interval"
    text = bands.range_labels() if style == "range" else bands.interval_labels()
    if isinstance(labels, (list, tuple)):
        if len(labels) != bands.n:
            raise SafemicroError(f"{len(labels)} labels given for {bands.n} bands", column=variable)
        text = [str(t) for t in labels]
        style = "explicit"
    elif isinstance(labels, dict):
        by_code = {_as_number(float(c)): i for i, c in enumerate(band_codes)}
        for key, t in labels.items():
            k = _as_number(key)
            if k not in by_code:
                raise SafemicroError(f"label given for {key!r}, which is not a band code", column=variable)
            text[by_code[k]] = str(t)

    # values
    band = bands.assign(x)
    inside = band > 0
    kept = col.cast(pl.Float64).fill_nan(None).to_numpy()[miss] if col.dtype.is_float() else None
    integral = _whole(band_codes) and (
        col.dtype.is_integer() or kept is None or _whole(np.asarray(kept, dtype=np.float64))
    )
    out_dtype = pl.Int64 if integral else pl.Float64
    if integral and col.dtype.is_integer() and col.dtype != pl.Int64:
        try:  # keep the variable's integer type when the codes fit it
            pl.Series(band_codes).cast(col.dtype, strict=True)
            out_dtype = col.dtype
        except Exception:
            pass
    coded = np.where(inside, band_codes[np.maximum(band - 1, 0)], np.nan)
    old = col.fill_nan(None) if col.dtype.is_float() else col
    new = pl.select(
        pl.when(pl.Series(miss))
        .then(old.cast(out_dtype))
        .when(pl.Series(inside))
        .then(pl.Series(coded, nan_to_null=True).cast(out_dtype))
        .otherwise(None)
        .alias(variable)
    ).to_series()
    frame = ds.frame.with_columns(new)
    out = ds.with_frame(frame)

    key = int if integral else float
    value_labels = {key(c): t for c, t in zip(band_codes, text)}
    for code, t in ds.codebook.meta(variable).value_labels.items():
        if _is_user_missing(ds, variable, code):
            value_labels.setdefault(_label_key(code) if integral else code, t)
    _new_meta(ds, out, variable, value_labels, dtype_changed=True, measure="ordinal", kind="banded")

    counts = np.bincount(band[inside], minlength=bands.n + 1)[1:]
    n_outside = int((~inside & ~miss).sum())
    if n_outside:
        notes.append(
            f"{n_outside} value(s) of {variable} fall outside every band and became missing "
            "(cut semantics; include_lowest or wider breaks keep them)"
        )
    details = {
        "kind": "bands",
        "breaks": [_json_num(b) for b in bands.breaks],
        "right": bands.right,
        "include_lowest": bands.include_lowest,
        "label_style": style,
        "bands": [
            {"code": _json_num(float(c)), "label": t, "count": int(n)} for c, t, n in zip(band_codes, text, counts)
        ],
        "outside": n_outside,
    }
    params = {
        "variable": variable,
        "breaks": [_json_num(b) for b in bands.breaks],
        "method": method or ("explicit" if not isinstance(breaks, int) else "equal_width"),
        "right": bands.right,
        "include_lowest": bands.include_lowest,
        "labels": style,
        "codes": codes,
    }
    if isinstance(breaks, int) and not isinstance(breaks, bool):
        params["n_bands"] = int(breaks)
    return out, params, details, notes
