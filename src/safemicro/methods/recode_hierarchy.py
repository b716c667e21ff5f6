"""Category merges (``map={6: 9, 7: 9}``) and ARX-style hierarchies (for each original value
its generalisation at level 1, 2, ...), read from a table or a CSV file."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.recode_common import (
    _as_number,
    _is_user_missing,
    _json_num,
    _missing_mask,
    _new_meta,
)


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
    new_col = pl.select(pl.when(pl.Series(miss)).then(base).otherwise(replaced).alias(variable)).to_series()
    out = ds.with_frame(ds.frame.with_columns(new_col))

    present = set(col.filter(pl.Series(~miss)).unique().to_list())
    unused = [o for o in olds if o not in present]
    notes = []
    if unused:
        notes.append(f"map codes not found in {variable}: {', '.join(map(str, unused[:10]))}")

    old_labels = ds.codebook.meta(variable).value_labels
    given = {
        (_coerce_value(k, target, variable, "label code") if target.is_numeric() else k): str(t)
        for k, t in (labels or {}).items()
    }
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
