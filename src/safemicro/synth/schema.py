"""What each column is, for synthesis: its kind, its special codes, and an exact encoding.

A synthesizer models numbers and category codes, but a release must look exactly like its
input: the same columns in the same order, the same dtypes, special codes such as ``-8``
("not applicable") or a literal ``N`` kept as themselves, and missing values where they
were. :func:`infer_schema` decides per column (from the dtype, the codebook and the values):

- ``categorical``: few distinct values (strings, booleans, labelled or nominal numbers,
  numbers with at most :data:`SMALL_NUMERIC` distinct values, numeric-looking string codes);
- ``numeric``: numbers, dates and times, and strings holding numbers; special codes
  (user-missing codes of the codebook, negative sentinels such as ``-8``, NaN, non-numeric
  tokens such as ``N``) and missing values are modelled as a separate *state*. A number
  with a few labelled codes (income with −9 "Refused") is numeric with those codes
  (:mod:`safemicro.io.special_codes`), not categorical;
- ``text``: a categorical with more than ``max_categories`` distinct values;
- ``id``: direct identifiers and household ids (from the roles), strings whose values are
  all distinct, whole numbers numbering the rows; synthesizers give them new values;
- ``constant``: one value (or entirely missing).

:meth:`Schema.encode` turns a frame into model columns (category codes, numeric values and
states) and :meth:`Schema.decode` turns model columns back; ``decode(encode(f)) == f``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset, VariableMeta
from safemicro.io.special_codes import special_codes
from safemicro.plan import Roles

__all__ = ["ColumnSpec", "Schema", "infer_schema", "state_name", "SMALL_NUMERIC", "MAX_CATEGORIES"]

Kind = Literal["categorical", "numeric", "constant", "id", "text"]

# Numbers with at most this many distinct regular values are modelled as categories.
SMALL_NUMERIC = 15
# Categoricals with more distinct values than this are high-cardinality ("text").
MAX_CATEGORIES = 300
_EXACT_FLOAT = 2.0**53  # larger whole numbers do not survive a trip through Float64


def state_name(column: str) -> str:
    """Name of the encoded column holding a numeric column's state (regular/special/missing)."""
    return f"{column}::state"


@dataclass
class ColumnSpec:
    """How one column is modelled and restored.

    ``special_values`` are codes kept as their own category and restored exactly (numeric
    columns: state 1..S in this order; missing values are state S+1). ``categories`` are
    the distinct non-missing values of a categorical or text column, in code order.
    ``integral``: numbers are whole (rounded on decode). ``number_format`` is "int" or
    "float" for numbers stored as strings. ``ordered``: category codes follow a meaningful
    order (numbers, ordinal measures). ``value`` is the value of a constant column.
    """

    name: str
    kind: Kind
    dtype: pl.DataType
    special_values: list[Any] = field(default_factory=list)
    has_missing: bool = False
    categories: list[Any] | None = None
    integral: bool = False
    number_format: str | None = None
    ordered: bool = False
    value: Any = None

    @property
    def n_codes(self) -> int:
        """Categorical/text: number of codes (categories, plus one for missing)."""
        return len(self.categories or []) + int(self.has_missing)

    @property
    def n_states(self) -> int:
        """Numeric: number of states (regular, each special code, missing)."""
        return 1 + len(self.special_values) + int(self.has_missing)


@dataclass
class Schema:
    """Column specs in the input's column order, plus notes for the report."""

    columns: dict[str, ColumnSpec]
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def __getitem__(self, name: str) -> ColumnSpec:
        return self.columns[name]

    def encoded_names(self, name: str) -> list[str]:
        """The encoded columns of one input column."""
        spec = self.columns[name]
        if spec.kind == "numeric" and spec.n_states > 1:
            return [name, state_name(name)]
        return [name]

    def encode(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Model columns for the schema's columns present in ``frame`` (in schema order).

        categorical/text -> Int32 code (missing = last code); numeric -> Float64 value (null
        unless regular) and, if it has special codes or missing values, an Int32 state;
        id/constant columns pass through unchanged. A value the schema has not seen (a new
        category, a non-numeric string) raises a :class:`SafemicroError` naming column and row.
        """
        unknown = [c for c in frame.columns if c not in self.columns]
        if unknown:
            raise SafemicroError("column is not in the synthesis schema", column=unknown[0])
        out: list[pl.Series] = []
        for name, spec in self.columns.items():
            if name in frame.columns:
                out.extend(_encode_column(spec, frame.get_column(name)))
        return pl.DataFrame(out)

    def decode(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Columns of the input type back from model columns (those present, in schema order)."""
        out = []
        for name, spec in self.columns.items():
            if name in frame.columns:
                out.append(_decode_column(spec, frame))
        return pl.DataFrame(out)


# -- inference ----------------------------------------------------------------------------


def infer_schema(ds: Dataset, *, roles: Roles | None = None, max_categories: int = MAX_CATEGORIES) -> Schema:
    """Infer how to model each column of ``ds`` (see the module docstring)."""
    if max_categories < 2:
        raise SafemicroError("max_categories must be at least 2")
    ids: set[str] = set()
    if roles is not None:
        roles.check_columns(ds.columns, ds.source)
        ids = set(roles.direct_ids) | ({roles.household} if roles.household else set())
    schema = Schema(columns={})
    for name in ds.columns:
        spec = _infer_column(
            ds.frame.get_column(name), ds.codebook.meta(name), name in ids, max_categories, schema.notes
        )
        schema.columns[name] = spec
    return schema


def _infer_column(s: pl.Series, meta: VariableMeta, is_id: bool, max_categories: int, notes: list[str]) -> ColumnSpec:
    name, dtype = s.name, s.dtype
    if is_id:
        return ColumnSpec(name, "id", dtype, has_missing=s.null_count() > 0)
    if dtype.is_nested() or dtype in (pl.Object, pl.Binary):
        raise SafemicroError(f"cannot synthesize a column of type {dtype}", column=name)
    if s.n_unique() <= 1:
        value = s[0] if len(s) else None
        if len(s) and s.null_count() == len(s):
            notes.append(f"{name}: entirely missing, kept missing")
        return ColumnSpec(name, "constant", dtype, has_missing=value is None, value=value)
    has_missing = s.null_count() > 0
    if dtype == pl.Boolean:
        cats = s.drop_nulls().unique().sort().to_list()
        return _discrete(name, dtype, cats, has_missing, max_categories, ordered=True)
    if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        cats = s.drop_nulls().unique().cast(pl.String).sort().to_list()
        return _discrete(name, dtype, cats, has_missing, max_categories, ordered=False)
    if dtype.is_temporal():
        notes.append(f"{name}: {dtype} modelled as a number and restored")
        specials = [v for v in _missing_codes(s, meta)]
        return ColumnSpec(name, "numeric", dtype, specials, has_missing, integral=True)
    if dtype.is_numeric():
        return _infer_number(s, meta, max_categories, has_missing)
    if dtype == pl.String:
        return _infer_string(s, meta, max_categories, has_missing)
    raise SafemicroError(f"cannot synthesize a column of type {dtype}", column=name)


def _discrete(
    name: str,
    dtype: pl.DataType,
    cats: list[Any],
    has_missing: bool,
    max_categories: int,
    *,
    ordered: bool,
    specials: list[Any] = (),
) -> ColumnSpec:
    """A categorical column, or text when it has too many values; specials are categories too."""
    kind: Kind = "text" if len(cats) > max_categories else "categorical"
    return ColumnSpec(name, kind, dtype, list(specials), has_missing, categories=cats, ordered=ordered)


def _missing_codes(s: pl.Series, meta: VariableMeta) -> list[Any]:
    """The codebook's user-missing codes (discrete and ranges) that occur in ``s``."""
    present: list[Any] = []
    values = s.drop_nulls()
    if values.dtype.is_float():
        values = values.filter(values.is_not_nan())
    for code in meta.missing_values:
        try:
            hit = (values == code).any()
        except Exception:  # a code of another type (e.g. a string code on a numeric column)
            hit = False
        if hit:
            present.append(values.filter(values == code)[0])
    for lo, hi in meta.missing_ranges:
        present.extend(values.filter(values.is_between(lo, hi)).unique().sort().to_list())
    return sorted(set(present), key=lambda v: (str(type(v)), v))


def _sentinels(values: pl.Series) -> list[Any]:
    """Negative code-like values (-1..-9, -99, -98, -999, ...) below otherwise non-negative data."""
    neg = values.filter(values < 0)
    if neg.len() == 0 or neg.len() == values.len():
        return []
    distinct = neg.unique().sort().to_list()
    if len(distinct) > 3:
        return []
    for v in distinct:
        if v != int(v) or v < -99999:
            return []
        digits = str(-int(v))
        if not (len(digits) == 1 or set(digits[:-1]) == {"9"}):
            return []
    return distinct


def _infer_number(s: pl.Series, meta: VariableMeta, max_categories: int, has_missing: bool) -> ColumnSpec:
    name, dtype = s.name, s.dtype
    values = s.drop_nulls()
    specials = _missing_codes(s, meta)
    has_nan = bool(dtype.is_float() and values.is_nan().any())
    if has_nan:
        values = values.filter(values.is_not_nan())
    codes = special_codes(s, meta)
    if codes is not None:  # numeric with labelled special codes: codes are states, the rest numbers
        return _with_codes(s, values, codes, specials, has_nan, has_missing)
    labelled = bool(meta.value_labels) or meta.measure in ("nominal", "ordinal")
    regular = values.filter(~values.is_in(specials)) if specials else values
    if not labelled:
        specials = sorted(set(specials) | set(_sentinels(regular)))
        regular = values.filter(~values.is_in(specials)) if specials else values
    n_regular = regular.n_unique()
    whole = bool(regular.len() == 0 or (regular == regular.floor()).all()) if dtype.is_float() else True
    too_big = bool(regular.len() and regular.abs().max() >= _EXACT_FLOAT)
    if not has_nan and (labelled or n_regular <= SMALL_NUMERIC or too_big):
        cats = values.unique().sort().to_list()
        if too_big and not has_missing and _all_distinct(values, len(s)):
            return ColumnSpec(name, "id", dtype)
        ordered = meta.measure != "nominal" or not meta.value_labels
        return _discrete(name, dtype, cats, has_missing, max_categories, ordered=ordered, specials=specials)
    if dtype.is_integer() and not has_missing and not specials and _numbers_rows(regular):
        return ColumnSpec(name, "id", dtype)
    if has_nan:
        specials = specials + [float("nan")]
    return ColumnSpec(name, "numeric", dtype, specials, has_missing, integral=whole)


def _with_codes(
    s: pl.Series, values: pl.Series, codes: list[Any], missing: list[Any], has_nan: bool, has_missing: bool
) -> ColumnSpec:
    """A numeric spec whose labelled codes (and user-missing codes, sentinels) are states."""
    specials = sorted(set(codes) | set(missing))
    regular = values.filter(~values.is_in(specials))
    specials = sorted(set(specials) | set(_sentinels(regular)))
    regular = values.filter(~values.is_in(specials))
    whole = bool(regular.len() == 0 or (regular == regular.floor()).all()) if s.dtype.is_float() else True
    if has_nan:
        specials = specials + [float("nan")]
    return ColumnSpec(s.name, "numeric", s.dtype, specials, has_missing, integral=whole)


def _all_distinct(values: pl.Series, n: int) -> bool:
    """Every row has its own value (and there are enough rows for that to mean an id)."""
    return n >= 20 and values.len() == n and values.n_unique() == n


def _numbers_rows(values: pl.Series) -> bool:
    """Distinct whole numbers filling a contiguous range: a row number."""
    n = values.len()
    return n >= 20 and values.n_unique() == n and int(values.max()) - int(values.min()) == n - 1


def _infer_string(s: pl.Series, meta: VariableMeta, max_categories: int, has_missing: bool) -> ColumnSpec:
    name, dtype = s.name, s.dtype
    values = s.drop_nulls()
    distinct = values.unique()
    parsed = distinct.cast(pl.Float64, strict=False)
    numeric = distinct.filter(parsed.is_not_null() & parsed.is_finite())
    tokens = distinct.filter(~(parsed.is_not_null() & parsed.is_finite())).sort().to_list()
    fmt = _number_format(numeric) if numeric.len() and len(tokens) <= 3 else None
    if fmt is not None:
        nums = numeric.cast(pl.Float64)
        if fmt == "int" and not tokens and _all_distinct(values, len(s)) and _numbers_rows(nums):
            return ColumnSpec(name, "id", dtype)
        order = numeric.gather(nums.arg_sort()).to_list()
        if (fmt == "int" and len(order) <= max_categories) or len(order) <= SMALL_NUMERIC:
            codes = [c for c in dict.fromkeys(str(v) for v in meta.missing_values) if c in set(order + tokens)]
            return _discrete(name, dtype, order + tokens, has_missing, max_categories, ordered=True, specials=codes)
        if nums.abs().max() < _EXACT_FLOAT:
            codes = [c for c in dict.fromkeys(str(v) for v in meta.missing_values) if c in set(order)]
            whole = bool((nums == nums.floor()).all())
            return ColumnSpec(name, "numeric", dtype, tokens + codes, has_missing, integral=whole, number_format=fmt)
    if _all_distinct(values, len(s)):
        return ColumnSpec(name, "id", dtype)
    cats = distinct.sort().to_list()
    codes = [c for c in dict.fromkeys(str(v) for v in meta.missing_values) if c in set(cats)]
    return _discrete(name, dtype, cats, has_missing, max_categories, ordered=meta.measure == "ordinal", specials=codes)


def _number_format(strings: pl.Series) -> str | None:
    """ "int" or "float" if every string is exactly how polars writes that number back."""
    as_int = strings.cast(pl.Int64, strict=False)
    if as_int.null_count() == 0 and (as_int.cast(pl.String) == strings).all():
        return "int"
    as_float = strings.cast(pl.Float64, strict=False)
    if (as_float.cast(pl.String) == strings).all():
        return "float"
    return None


# -- encoding -----------------------------------------------------------------------------


def _bad_value(spec: ColumnSpec, bad: pl.Series, what: str) -> SafemicroError:
    row = int(bad.arg_true()[0])
    return SafemicroError(what, column=spec.name, row=row)


def _encode_column(spec: ColumnSpec, s: pl.Series) -> list[pl.Series]:
    name = spec.name
    if spec.kind in ("id", "constant"):
        return [s]
    if spec.kind in ("categorical", "text"):
        key = s.cast(pl.String) if (s.dtype == pl.Categorical or isinstance(s.dtype, pl.Enum)) else s
        cats = pl.Series(spec.categories, dtype=key.dtype)
        codes = key.replace_strict(cats, pl.Series(np.arange(len(cats), dtype=np.int32)), default=None)
        bad = codes.is_null() & s.is_not_null()
        if bad.any():
            raise _bad_value(spec, bad, f"value {s.filter(bad)[0]!r} was not in the data the synthesizer learnt")
        if s.null_count():
            if not spec.has_missing:
                raise _bad_value(spec, s.is_null(), "missing value, but the data the synthesizer learnt had none")
            codes = codes.fill_null(len(cats))
        return [codes.cast(pl.Int32).alias(name)]
    # numeric
    state = np.zeros(len(s), dtype=np.int32)
    if spec.dtype == pl.String:
        value = s.cast(pl.Float64, strict=False)
    elif spec.dtype.is_temporal():
        value = s.to_physical().cast(pl.Float64)
    else:
        value = s.cast(pl.Float64)
    for i, code in enumerate(spec.special_values, start=1):
        if isinstance(code, float) and np.isnan(code):
            hit = value.is_nan().fill_null(False)
        else:
            hit = (s == code).fill_null(False)
        state[hit.to_numpy()] = i
    null = s.is_null().to_numpy()
    if null.any():
        if not spec.has_missing:
            raise _bad_value(spec, s.is_null(), "missing value, but the data the synthesizer learnt had none")
        state[null] = len(spec.special_values) + 1
    regular = pl.Series(state == 0)
    bad = regular & (value.is_null() | ~value.is_finite())
    if bad.any():
        raise _bad_value(spec, bad, f"value {s.filter(bad)[0]!r} is neither a number nor a known code")
    out = [pl.select(pl.when(regular).then(value)).to_series().alias(name)]
    if spec.n_states > 1:
        out.append(pl.Series(state_name(name), state))
    return out


def _decode_column(spec: ColumnSpec, frame: pl.DataFrame) -> pl.Series:
    name = spec.name
    s = frame.get_column(name)
    if spec.kind in ("id", "constant"):
        return s
    if spec.kind in ("categorical", "text"):
        cats = pl.Series(name, spec.categories)
        codes = s.cast(pl.Int64)
        idx = pl.select(pl.when(codes < len(cats)).then(codes)).to_series()
        out = cats.gather(idx)
        if spec.dtype == pl.Categorical or isinstance(spec.dtype, pl.Enum):
            out = out.cast(spec.dtype)
        return out.cast(spec.dtype).alias(name)
    value = s.cast(pl.Float64)
    if spec.integral:
        value = value.round(0).cast(pl.Int64)
    if spec.number_format == "int":
        value = value.cast(pl.Int64).cast(pl.String)
    elif spec.number_format == "float":
        value = value.cast(pl.Float64).cast(pl.String)
    else:
        value = value.cast(spec.dtype)
    if spec.n_states == 1:
        return value.alias(name)
    state = frame.get_column(state_name(name))
    expr = pl.when(pl.lit(state) == 0).then(pl.lit(value))
    for i, code in enumerate(spec.special_values, start=1):
        expr = expr.when(pl.lit(state) == i).then(pl.lit(code, dtype=spec.dtype))
    return pl.select(expr.otherwise(None).cast(spec.dtype).alias(name)).to_series()
