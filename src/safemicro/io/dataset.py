"""`Dataset`: a Polars frame plus the codebook that travels with it.

The frame keeps the values exactly as read (user-missing codes included, so nothing is
lost on a round trip); the codebook says which codes are missing, what the labels are and
how each variable is measured. Analysis code asks :meth:`Dataset.analysis_column` for a
column where the user-missing codes have become nulls.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import polars as pl

Measure = Literal["nominal", "ordinal", "scale", "unknown"]


@dataclass
class VariableMeta:
    """What the source file said about one variable."""

    name: str
    label: str | None = None
    value_labels: dict[Any, str] = field(default_factory=dict)
    missing_values: list[Any] = field(default_factory=list)  # discrete user-missing codes
    missing_ranges: list[tuple[Any, Any]] = field(default_factory=list)  # inclusive (lo, hi)
    measure: Measure = "unknown"
    format: str | None = None  # the source format string (e.g. %8.0g, F8.2)


@dataclass
class Codebook:
    """Variable metadata in column order, plus file-level metadata."""

    variables: dict[str, VariableMeta] = field(default_factory=dict)
    file_label: str | None = None
    # Stata extended missing values (.a-.z) and similar: {column: {row: code}}; the frame
    # holds null there, this keeps the letter so a round trip restores it.
    extended_missing: dict[str, dict[int, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def meta(self, name: str) -> VariableMeta:
        if name not in self.variables:
            self.variables[name] = VariableMeta(name=name)
        return self.variables[name]


@dataclass
class Dataset:
    """A frame and its codebook; `source` is the file it came from (for error messages)."""

    frame: pl.DataFrame
    codebook: Codebook = field(default_factory=Codebook)
    source: str | None = None

    def __post_init__(self) -> None:
        for name in self.frame.columns:
            self.codebook.meta(name)

    @property
    def columns(self) -> list[str]:
        return self.frame.columns

    @property
    def n(self) -> int:
        return self.frame.height

    def with_frame(self, frame: pl.DataFrame) -> Dataset:
        """A new Dataset with another frame and a copy of this codebook (never mutates self).

        Labels and missing-code lists are copied too, so a method may edit them in place.
        """
        cb = replace(
            self.codebook,
            variables={
                k: replace(
                    v,
                    value_labels=dict(v.value_labels),
                    missing_values=list(v.missing_values),
                    missing_ranges=list(v.missing_ranges),
                )
                for k, v in self.codebook.variables.items()
                if k in frame.columns
            },
            extended_missing={k: dict(v) for k, v in self.codebook.extended_missing.items() if k in frame.columns},
        )
        return Dataset(frame=frame, codebook=cb, source=self.source)

    def missing_expr(self, name: str) -> pl.Expr:
        """Boolean expression: the cell is missing (null, NaN or a user-missing code)."""
        col = pl.col(name)
        meta = self.codebook.meta(name)
        dtype = self.frame.schema[name]
        cond = col.is_null()
        if dtype.is_float():
            cond = cond | col.is_nan()
        if meta.missing_values:
            # compare in one type: polars will not mix Int and Float in is_in
            if dtype.is_numeric():
                codes = [
                    float(v) for v in meta.missing_values if isinstance(v, (int, float)) and not isinstance(v, bool)
                ]
                cond = cond | col.cast(pl.Float64).is_in(codes)
            else:
                cond = cond | col.cast(pl.String).is_in([str(v) for v in meta.missing_values])
        for lo, hi in meta.missing_ranges:
            cond = cond | col.is_between(lo, hi)
        return cond

    def analysis_column(self, name: str) -> pl.Series:
        """The column with every kind of missing value turned into null.

        Without user-missing codes that is the column itself (NaN made null): no pass over
        the records, which matters when every step and measure asks for the keys again.
        """
        meta = self.codebook.meta(name)
        if not meta.missing_values and not meta.missing_ranges:
            s = self.frame.get_column(name)
            return s.fill_nan(None) if s.dtype.is_float() and s.is_nan().any() else s
        return self.frame.select(
            pl.when(self.missing_expr(name)).then(None).otherwise(pl.col(name)).alias(name)
        ).to_series()

    def analysis_frame(self, names: list[str]) -> pl.DataFrame:
        return pl.DataFrame([self.analysis_column(n) for n in names])

    def special_codes(self, name: str) -> list[Any] | None:
        """The codes of a numeric variable with labelled special codes, else None.

        See :mod:`safemicro.io.special_codes`: income with −9 "Refused" is numeric with
        the code −9, not a categorical variable.
        """
        from safemicro.io.special_codes import special_codes

        return special_codes(self.frame.get_column(name), self.codebook.meta(name))

    def numeric_column(self, name: str) -> pl.Series:
        """The column's numbers as Float64, codes and missing values as null."""
        from safemicro.io.special_codes import numeric_part

        return numeric_part(self.frame.get_column(name), self.codebook.meta(name)).alias(name)
