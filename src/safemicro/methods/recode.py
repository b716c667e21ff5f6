"""Global recoding (numeric bands, category merges, user hierarchies) and top/bottom coding.

Global recoding replaces every value of a variable by a coarser one, the same way in every
record, so the released variable is a function of the original and analysis stays simple.

* **Bands** follow R's ``cut`` exactly (the definition sdcMicro's ``globalRecode`` uses):
  right-closed ``(a,b]`` unless ``right=False``; a value on the outermost break is inside
  only with ``include_lowest``; values outside every band become missing (counted in the
  change record). A number of breaks gives equal-width bands (sdcMicro "equidistant"),
  quantile bands ("equalAmount"; coinciding breaks are merged, not jittered) or equal
  width on the log scale ("logEqui"). The output holds integer codes with value labels
  describing each band, so Stata/SPSS releases stay readable.
* **Merges** (``map={6: 9, 7: 9}``) and **hierarchies** (ARX-style: for each original value
  its generalisation at level 1, 2, ...) recode categories.
* **Top/bottom coding** replaces values strictly above (below) a threshold.

User-missing codes and missing cells are never recoded; they stay as they are.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import model_validator

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.base import Change, MethodResult, StepContext, StepParams, count_changes, register
from safemicro.methods.relabel import _fmt_code, recoded_label

__all__ = ["global_recode", "top_bottom_code", "Bands", "resolve_bands", "read_hierarchy"]

BandMethod = Literal["explicit", "equal_width", "quantile", "log_equal_width"]
LabelStyle = Literal["range", "interval"]

# -- bands -------------------------------------------------------------------------------


def _fmt_g(x: float, digits: int) -> str:
    """A break as R's formatC(x, digits) prints it (C's %g; Inf as R spells it)."""
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    return "%.*g" % (digits, x)


def _json_num(x: float) -> float | int | str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return int(x) if float(x).is_integer() else float(x)


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


# -- helpers -------------------------------------------------------------------------------


def _check_column(ds: Dataset, variable: str) -> None:
    if variable not in ds.columns:
        raise SafemicroError(f"there is no column {variable!r} to recode", column=variable)
    if ds.frame.schema[variable] == pl.Null:
        raise SafemicroError("every value is missing: there is nothing to recode", column=variable)


def _missing_mask(ds: Dataset, variable: str) -> np.ndarray:
    return ds.frame.select(ds.missing_expr(variable).fill_null(True)).to_series().to_numpy()


def _is_user_missing(ds: Dataset, variable: str, value: Any) -> bool:
    meta = ds.codebook.meta(variable)
    try:
        if value in meta.missing_values:
            return True
        return any(lo <= value <= hi for lo, hi in meta.missing_ranges)
    except TypeError:
        return False


def _whole(values: np.ndarray) -> bool:
    v = values[~np.isnan(values)]
    return bool(np.all(v == np.floor(v))) and bool(np.all(np.abs(v) < 2**53))


def _as_number(v: Any) -> Any:
    """A number stays a number; numeric text becomes a number; anything else stays as is."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return int(v) if float(v).is_integer() else float(v)
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return v
        if math.isfinite(f):
            return int(f) if f.is_integer() else f
    return v


def _label_key(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _new_meta(ds: Dataset, out: Dataset, variable: str, labels: dict, *, dtype_changed: bool, measure=None,
              kind: str = "grouped", shown: list[str] | None = None):
    """Set the recoded variable's labels (a new dict: metadata dicts are shared after with_frame)
    and say in its variable label what it now holds (``shown``: the words quoted, default
    the category labels)."""
    meta = out.codebook.meta(variable)
    meta.value_labels = dict(labels)
    if shown or labels:
        meta.label = recoded_label(meta.label, variable, kind, dict(enumerate(shown)) if shown else labels)
    if dtype_changed:
        meta.format = None
    if measure is not None:
        meta.measure = measure


# -- numeric bands ----------------------------------------------------------------------


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
            raise SafemicroError(f"labels must be 'range', 'interval', a list or a mapping, got {labels!r}", column=variable)
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
            {"code": _json_num(float(c)), "label": t, "count": int(n)}
            for c, t, n in zip(band_codes, text, counts)
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


# -- category merges and hierarchies ---------------------------------------------------------


def _coerce_value(v: Any, dtype: pl.DataType, variable: str, what: str) -> Any:
    if dtype == pl.String or dtype == pl.Categorical or dtype == pl.Enum:
        return str(v)
    if dtype.is_numeric():
        n = _as_number(v)
        if isinstance(n, (int, float)):
            return n
        raise SafemicroError(
            f"{what} {v!r} is text but {variable!r} is numeric; use numeric codes (and labels for their text)",
            column=variable,
        )
    if dtype == pl.Boolean:
        return bool(v)
    return v


def _apply_map(
    ds: Dataset,
    variable: str,
    mapping: dict,
    labels: dict | None,
    *,
    new_labels: dict | None = None,
) -> tuple[Dataset, dict, list[str]]:
    """Replace values by ``mapping`` (other values unchanged) outside missing cells.

    Labels: ``new_labels`` replaces all labels (kept: user-missing codes' labels); otherwise
    merged codes lose their labels and a new code gets ``labels[code]``, its existing label,
    or the merged codes' labels joined by " / ".
    """
    col = ds.frame.get_column(variable)
    dtype = col.dtype
    pairs = []
    for old, new in mapping.items():
        o = _coerce_value(old, dtype, variable, "map code")
        n = _coerce_value(new, dtype, variable, "new code")
        for v, what in ((o, "recode"), (n, "create")):
            if _is_user_missing(ds, variable, v):
                raise SafemicroError(
                    f"cannot {what} user-missing code {v!r} of {variable!r}: missing codes stay as they are",
                    column=variable,
                )
        pairs.append((o, n))
    olds = [o for o, _ in pairs]
    news = [n for _, n in pairs]
    if len(set(olds)) != len(olds):
        raise SafemicroError("the map lists a code twice", column=variable)
    target = dtype
    if dtype.is_integer() and any(isinstance(n, float) for n in news):
        target = pl.Float64
    elif dtype.is_integer():
        try:
            pl.Series(news + olds).cast(dtype, strict=True)
        except Exception:
            target = pl.Int64
    miss = _missing_mask(ds, variable)
    base = col.cast(target)
    replaced = base.replace(pl.Series(olds).cast(target), pl.Series(news).cast(target))
    new_col = pl.select(
        pl.when(pl.Series(miss)).then(base).otherwise(replaced).alias(variable)
    ).to_series()
    out = ds.with_frame(ds.frame.with_columns(new_col))

    present = set(col.filter(pl.Series(~miss)).unique().to_list())
    unused = [o for o in olds if o not in present]
    notes = []
    if unused:
        notes.append(f"map codes not found in {variable}: {', '.join(map(str, unused[:10]))}")

    old_labels = ds.codebook.meta(variable).value_labels
    given = {(_coerce_value(k, target, variable, "label code") if target.is_numeric() else k): str(t)
             for k, t in (labels or {}).items()}
    if new_labels is not None:
        value_labels = {k: t for k, t in old_labels.items() if _is_user_missing(ds, variable, k)}
        value_labels.update(new_labels)
    else:
        value_labels = dict(old_labels)
        moved = {o for o, n in pairs if o != n}
        for o in moved - set(news):
            value_labels.pop(o, None)
        for n in dict.fromkeys(news):
            sources = [o for o, t in pairs if t == n]
            if n in old_labels and n not in moved:
                continue  # merged into an existing category: keep its label
            merged = [old_labels[o] for o in sources if o in old_labels]
            if merged:
                value_labels[n] = " / ".join(dict.fromkeys(merged))
            elif n in moved:
                value_labels.pop(n, None)
    value_labels.update(given)
    _new_meta(ds, out, variable, value_labels, dtype_changed=target != dtype)

    merges = {}
    for o, n in pairs:
        if o != n:
            merges.setdefault(n, []).append(o)
    details = {
        "kind": "map",
        "merges": [
            {"into": _json_val(n), "from": [_json_val(o) for o in os_], "label": value_labels.get(n)}
            for n, os_ in merges.items()
        ],
        "unused": [_json_val(o) for o in unused],
    }
    return out, details, notes


def _json_val(v: Any) -> Any:
    if isinstance(v, float):
        return _json_num(v)
    return v


def read_hierarchy(hierarchy: Any, *, variable: str | None = None) -> dict[Any, list[Any]]:
    """A hierarchy as {original value: [level 1, level 2, ...]}.

    Accepts that mapping (a scalar for a one-level hierarchy), a list of rows
    ``[original, level 1, ...]``, or the path of an ARX-style CSV file (one row per
    original value, ``;`` or ``,`` separated, no header). Every row must have the same
    number of levels.
    """
    if isinstance(hierarchy, (str, Path)):
        path = Path(hierarchy)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise SafemicroError(f"cannot read hierarchy file {str(path)!r}: {exc}", column=variable) from None
        first = text.splitlines()[0] if text.strip() else ""
        delim = ";" if ";" in first else ","
        rows = [r for r in csv.reader(text.splitlines(), delimiter=delim) if r and any(c.strip() for c in r)]
        hierarchy = [[c.strip() for c in r] for r in rows]
    if isinstance(hierarchy, dict):
        out = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in hierarchy.items()}
    elif isinstance(hierarchy, (list, tuple)):
        out = {}
        for row in hierarchy:
            if not isinstance(row, (list, tuple)) or len(row) < 2:
                raise SafemicroError(
                    f"each hierarchy row needs the original value and at least one level, got {row!r}",
                    column=variable,
                )
            if row[0] in out:
                raise SafemicroError(f"the hierarchy lists {row[0]!r} twice", column=variable)
            out[row[0]] = list(row[1:])
    else:
        raise SafemicroError("a hierarchy must be a mapping, a list of rows or a CSV file path", column=variable)
    if not out:
        raise SafemicroError("the hierarchy is empty", column=variable)
    heights = {len(v) for v in out.values()}
    if len(heights) != 1 or 0 in heights:
        raise SafemicroError("every hierarchy row must have the same number of levels (at least one)", column=variable)
    return out


def _hierarchy_map(ds: Dataset, variable: str, hierarchy: Any, level: int) -> tuple[dict, dict | None, int]:
    """The {original: generalised} map of one hierarchy level, and labels when codes are new."""
    table = read_hierarchy(hierarchy, variable=variable)
    height = len(next(iter(table.values())))
    if not 0 <= level <= height:
        raise SafemicroError(f"level must lie between 0 and {height} for this hierarchy, got {level}", column=variable)
    col = ds.frame.get_column(variable)
    numeric = col.dtype.is_numeric()
    coerce = (lambda v: _as_number(v)) if numeric else str
    table = {coerce(k): v for k, v in table.items()}
    miss = _missing_mask(ds, variable)
    observed = col.filter(pl.Series(~miss)).unique().to_list()
    if numeric:
        observed = [_as_number(v) for v in observed]
    lacking = [v for v in observed if v not in table]
    if lacking:
        raise SafemicroError(
            f"the hierarchy has no row for {len(lacking)} observed value(s) of {variable}, e.g. "
            + ", ".join(repr(v) for v in sorted(lacking, key=str)[:5]),
            column=variable,
        )
    if level == 0:
        return {}, None, height
    gen = {k: v[level - 1] for k, v in table.items()}
    if not numeric:
        return {k: str(v) for k, v in gen.items()}, None, height
    nums = {k: _as_number(v) for k, v in gen.items()}
    if all(isinstance(v, (int, float)) for v in nums.values()):
        return nums, None, height
    # text generalisations of a numeric variable: new codes 1..m with the text as labels
    texts = list(dict.fromkeys(str(v) for v in gen.values()))
    code_of, code = {}, 0
    for t in texts:
        code += 1
        while _is_user_missing(ds, variable, code):
            code += 1
        code_of[t] = code
    return {k: code_of[str(v)] for k, v in gen.items()}, {c: t for t, c in code_of.items()}, height


# -- the method --------------------------------------------------------------------------


def global_recode(
    ds: Dataset,
    *,
    variable: str,
    breaks: list[float] | int | None = None,
    method: BandMethod | None = None,
    right: bool = True,
    include_lowest: bool | None = None,
    map: dict | None = None,
    hierarchy: Any = None,
    level: int = 1,
    labels: LabelStyle | list[str] | dict | None = None,
    codes: Literal["index", "lower"] = "index",
) -> MethodResult:
    """Recode ``variable`` globally: numeric bands, a category merge, or a hierarchy level.

    Give exactly one of:

    * ``breaks`` - cut points (R ``cut`` semantics: right-closed unless ``right=False``,
      the outermost break inside only with ``include_lowest``; values outside all bands
      become missing) or a number of bands (``method`` equal_width, the default, quantile
      or log_equal_width). The result holds band codes (``codes="index"``: 1, 2, ...;
      ``"lower"``: the smallest value of each band) labelled "15-24" for whole-number data
      or "(14,24]" otherwise (``labels="range"``/``"interval"``, a list, or {code: text}).
    * ``map`` - {old code: new code}; other values are kept. ``labels`` {new code: text}.
    * ``hierarchy`` - for each original value its generalisations (see
      :func:`read_hierarchy`) and the ``level`` to apply (1 = first generalisation).

    Missing cells and user-missing codes are left as they are.
    """
    _check_column(ds, variable)
    given = [n for n, v in (("breaks", breaks), ("map", map), ("hierarchy", hierarchy)) if v is not None]
    if len(given) != 1:
        raise SafemicroError(
            "give exactly one of breaks, map or hierarchy"
            + (f" (got {' and '.join(given)})" if given else ""),
            column=variable,
        )
    notes: list[str] = []
    if breaks is not None:
        out, params, details, notes = _band_recode(
            ds, variable, breaks, method, right, include_lowest, labels, codes
        )
    elif map is not None:
        if not isinstance(map, dict) or not map:
            raise SafemicroError("map must be a non-empty mapping {old code: new code}", column=variable)
        if labels is not None and not isinstance(labels, dict):
            raise SafemicroError("with map, labels must be a mapping {new code: text}", column=variable)
        out, details, notes = _apply_map(ds, variable, map, labels)
        params = {"variable": variable, "map": {str(k): _json_val(v) for k, v in map.items()}}
        if labels:
            params["labels"] = {str(k): str(v) for k, v in labels.items()}
    else:
        if labels is not None and not isinstance(labels, dict):
            raise SafemicroError("with a hierarchy, labels must be a mapping {code: text}", column=variable)
        mapping, code_labels, height = _hierarchy_map(ds, variable, hierarchy, level)
        if mapping:
            out, details, notes = _apply_map(ds, variable, mapping, labels, new_labels=code_labels)
        else:
            out, details = ds.with_frame(ds.frame), {"kind": "map", "merges": [], "unused": []}
            notes.append("hierarchy level 0 keeps the original values")
        details["kind"] = "hierarchy"
        details["level"] = level
        details["height"] = height
        details["categories"] = int(
            out.frame.filter(~out.missing_expr(variable).fill_null(True)).get_column(variable).n_unique()
        )
        params = {"variable": variable, "hierarchy": "user hierarchy", "level": level}
    coding = (ds.codebook.meta(variable).value_labels, out.codebook.meta(variable).value_labels)
    changed, suppressed, touched = count_changes(ds.frame, out.frame, [variable], {variable: coding})
    change = Change(
        method="global_recode",
        params=params,
        changed=changed,
        suppressed=suppressed,
        records_touched=touched,
        details=details,
        notes=notes,
    )
    return MethodResult(out, change)


def top_bottom_code(
    ds: Dataset,
    *,
    variable: str,
    value: float,
    replacement: float | None = None,
    kind: Literal["top", "bottom"] = "top",
    label: str | None = None,
) -> MethodResult:
    """Replace values strictly above (``kind="top"``) or below (``"bottom"``) ``value``.

    ``replacement`` defaults to ``value``. When the variable has value labels (or
    ``label`` is given) the replacement code is labelled, e.g. "10 or more", and labels of
    codes that no longer occur are dropped. Missing and user-missing cells stay as they are.
    """
    _check_column(ds, variable)
    if kind not in ("top", "bottom"):
        raise SafemicroError(f"kind must be 'top' or 'bottom', got {kind!r}", column=variable)
    col = ds.frame.get_column(variable)
    if not col.dtype.is_numeric():
        raise SafemicroError(f"top/bottom coding needs a numeric variable, {variable!r} holds {col.dtype}", column=variable)
    for name, v in (("value", value), ("replacement", replacement)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise SafemicroError(f"{name} must be a finite number, got {v!r}", column=variable)
    value = _as_number(value)
    replacement = value if replacement is None else _as_number(replacement)
    if _is_user_missing(ds, variable, replacement):
        raise SafemicroError(
            f"replacement {replacement} is a user-missing code of {variable!r}; it would make values missing",
            column=variable,
        )
    miss = pl.Series(_missing_mask(ds, variable))
    c = pl.col(variable)
    hit = ds.frame.select(((c > value) if kind == "top" else (c < value)).fill_null(False)).to_series() & ~miss
    target = col.dtype
    if col.dtype.is_integer():
        if isinstance(replacement, float):
            target = pl.Float64
        else:
            try:
                pl.Series([replacement]).cast(col.dtype, strict=True)
            except Exception:
                target = pl.Int64
    new = pl.select(
        pl.when(hit).then(pl.lit(replacement).cast(target)).otherwise(col.cast(target)).alias(variable)
    ).to_series()
    out = ds.with_frame(ds.frame.with_columns(new))

    old_labels = ds.codebook.meta(variable).value_labels
    value_labels = dict(old_labels)
    if old_labels or label is not None:
        gone = set(col.filter(hit).unique().to_list()) - {replacement}
        for code in list(value_labels):
            if _as_number(code) in gone and not _is_user_missing(ds, variable, code):
                value_labels.pop(code)
        if label is None:
            base = old_labels.get(replacement, str(replacement))
            more, than = ("more", "above") if kind == "top" else ("less", "below")
            if replacement == value:
                label = f"{base} or {more}"
            elif (replacement > value) == (kind == "top"):
                label = f"{than} {value}"
            else:
                label = f"{base} or {than} {value}"
        value_labels[_label_key(replacement)] = label
    _new_meta(ds, out, variable, value_labels, dtype_changed=target != col.dtype,
              kind=f"{kind}-coded", shown=[label] if label else [f"at {_fmt_code(replacement)}"])

    changed, suppressed, touched = count_changes(ds.frame, out.frame, [variable])
    n_coded = int(hit.sum())
    change = Change(
        method="top_bottom_code",
        params={"variable": variable, "value": value, "replacement": replacement, "kind": kind},
        changed=changed,
        suppressed=suppressed,
        records_touched=touched,
        details={"kind": kind, "n_coded": n_coded, "label": value_labels.get(_label_key(replacement))},
    )
    return MethodResult(out, change)


# -- plan steps ------------------------------------------------------------------------------


class RecodeParams(StepParams):
    """``recode``: bands (``breaks``), a merge (``map``) or a ``hierarchy`` level of one variable."""

    variable: str
    breaks: list[float] | int | None = None
    method: BandMethod | None = None
    right: bool = True
    include_lowest: bool | None = None
    map: dict[Any, Any] | None = None
    hierarchy: dict[Any, Any] | list[list[Any]] | str | None = None
    level: int = 1
    labels: LabelStyle | list[str] | dict[Any, str] | None = None
    codes: Literal["index", "lower"] = "index"

    @model_validator(mode="after")
    def _one_kind(self) -> "RecodeParams":
        given = [n for n in ("breaks", "map", "hierarchy") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of breaks, map or hierarchy" + (f" (got {' and '.join(given)})" if given else "")
            )
        if self.breaks is None and self.labels is not None and not isinstance(self.labels, dict):
            raise ValueError("with map or hierarchy, labels must be a mapping {code: text}")
        if self.map is not None and not self.map:
            raise ValueError("map must not be empty")
        if self.level < 0:
            raise ValueError("level must be 0 or more")
        return self

    def reads(self, ctx: StepContext) -> list[str]:
        return [self.variable]

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def _short_list(items: list[str], limit: int = 8) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[: limit - 2]) + ", …, " + ", ".join(items[-2:])


def _describe_recode(params: RecodeParams, change: Change) -> str:
    d = change.details
    var = params.variable
    if d.get("kind") == "bands":
        text = f"{var} was grouped into {len(d['bands'])} bands ({_short_list([b['label'] for b in d['bands']])})."
        if d.get("outside"):
            text += f" {d['outside']} values outside all bands became missing."
        return text
    if d.get("kind") == "hierarchy":
        return (
            f"{var} was generalised to level {d['level']} of {d['height']} of the supplied hierarchy; "
            f"{d['categories']} categories remain."
        )
    parts = []
    for m in d.get("merges", []):
        label = f" ({m['label']})" if m.get("label") else ""
        parts.append(f"{', '.join(map(str, m['from']))} into {m['into']}{label}")
    if not parts:
        return f"{var} was left unchanged by the category merge (none of its codes occur)."
    return f"Categories of {var} were merged: {'; '.join(parts)}."


@register("recode", RecodeParams, _describe_recode)
def _recode_step(ds: Dataset, params: RecodeParams, ctx: StepContext) -> MethodResult:
    return global_recode(ds, **params.kwargs())


class TopBottomParams(StepParams):
    """``topcode``/``bottomcode``: values beyond ``value`` become ``replacement`` (default: value)."""

    variable: str
    value: float
    replacement: float | None = None
    label: str | None = None

    def reads(self, ctx: StepContext) -> list[str]:
        return [self.variable]


def _describe_tb(kind: str):
    def describe(params: TopBottomParams, change: Change) -> str:
        p = change.params
        where = "above" if kind == "top" else "below"
        n = change.details.get("n_coded", 0)
        return (
            f"Values of {params.variable} {where} {p['value']} were set to {p['replacement']} "
            f"({kind} coding; {n} records)."
        )

    return describe


@register("topcode", TopBottomParams, _describe_tb("top"))
def _topcode_step(ds: Dataset, params: TopBottomParams, ctx: StepContext) -> MethodResult:
    return top_bottom_code(ds, kind="top", **params.model_dump())


@register("bottomcode", TopBottomParams, _describe_tb("bottom"))
def _bottomcode_step(ds: Dataset, params: TopBottomParams, ctx: StepContext) -> MethodResult:
    return top_bottom_code(ds, kind="bottom", **params.model_dump())
