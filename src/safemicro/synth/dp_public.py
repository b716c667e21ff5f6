"""What is public about each column of :class:`~safemicro.synth.dp.DPSynthesizer`: the
user's domains and bounds, the codebook's value labels and the schema, and what the DP
guarantee does not cover (a mixin: the settings live on the synthesizer)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset, VariableMeta
from safemicro.synth.dp_columns import _Column, _grid, _numeric_spec
from safemicro.synth.dp_domain import parent_ids
from safemicro.synth.schema import ColumnSpec, Schema, infer_schema


class _PublicColumns:
    """The public description of columns (a mixin of the DP synthesizer)."""

    def _column(self, spec: ColumnSpec, values: pl.Series, meta: VariableMeta) -> _Column:
        """What is public about one column: the user's domain or bounds, the codebook's
        labels, else the schema (categories seen in the data: released above a threshold)."""
        name = spec.name
        if name in self.domains:
            domain = self.domains[name]
            cats = pl.Series(name, [v for v in domain if v is not None], dtype=spec.dtype, strict=False)
            outside = ~values.is_in(cats.drop_nulls().to_list()) & (values.is_not_null() if None in domain else True)
            if outside.any():
                row = int(outside.arg_true()[0])
                raise SafemicroError(
                    f"value {values[row]!r} is not in the public domain given for the column", column=name, row=row
                )
            spec = ColumnSpec(name, "categorical", spec.dtype, [], None in domain, categories=cats.to_list())
            return _Column(spec, "discrete", n_labels=spec.n_codes)
        if name in self.bounds:
            spec = _numeric_spec(spec)
        if spec.kind in ("constant", "id"):
            return _Column(spec, spec.kind)
        if spec.kind == "numeric":
            if spec.integral and spec.number_format == "float":  # whole numbers written as "5000.0"
                spec = replace(spec, number_format="int")  # integers stay integers
            col = _Column(spec, "numeric", n_labels=spec.n_states - 1, integer=bool(spec.integral))
            if name in self.bounds:
                col.edges = _grid(*self.bounds[name], col.integer)
            return col
        # the codebook's value labels and missing codes are a public list of categories
        cats = list(spec.categories or [])
        listed = list(meta.value_labels) + list(meta.missing_values)
        key = pl.String if spec.dtype in (pl.Categorical,) or isinstance(spec.dtype, pl.Enum) else spec.dtype
        listed = pl.Series(listed, dtype=key, strict=False).drop_nulls().unique(maintain_order=True).to_list()
        cats += [v for v in listed if v not in set(cats)]
        public = np.array([v in set(listed) for v in cats] + [True])  # the missing cell is public
        if public.all() or name == self.by:
            spec = replace(spec, categories=cats)
            return _Column(spec, "discrete", n_labels=spec.n_codes, public=bool(public.all()))
        had = spec.has_missing
        spec = replace(spec, categories=cats, has_missing=True)  # the last resort of hidden categories
        return _Column(spec, "discrete", n_labels=spec.n_codes, public=False, public_cells=public, had_missing=had)

    def _notes(self, cols: list[_Column]) -> list[str]:
        """What the DP guarantee does not cover, in plain words."""

        def named(what: list[str]) -> str:
            return ", ".join(what[:12]) + (f" and {len(what) - 12} more" if len(what) > 12 else "")

        notes = [
            "column kinds, special codes and which columns have missing values come from the "
            "schema (inferred from the data unless given) and are treated as public"
        ]
        by = [c.name for c in cols if c.name == self.by and c.kind == "discrete" and not c.public]
        if by:
            notes.append(
                f"the categories of {by[0]} (by) were taken from the data and are not protected "
                "(pass domains= to declare a public list)"
            )
        text = [c.name for c in cols if c.spec.kind == "text" and c.name not in self.domains]
        if text:
            notes.append(f"{named(text)}: many distinct values; rare ones are merged and drawn by their noisy counts")
        for kind, what in (
            ("constant", "copied as is (the value is not protected)"),
            ("id", "replaced by new sequential ids"),
        ):
            names = [c.name for c in cols if c.kind == kind]
            if names:
                notes.append(f"{named(names)}: {what}")
        return notes

    def _parents(self, c: _Column) -> np.ndarray | None:
        """Parent ids of a hierarchy child's fine cells (None for other columns)."""
        if c.name not in self.hierarchies or c.kind != "discrete":
            return None
        return parent_ids(list(c.spec.categories or []), self.hierarchies[c.name][1], c.n_fine)


def _schema(ds: Dataset, schema: Schema | None) -> Schema:
    """The given schema (checked against the data) or the inferred one."""
    if schema is None:
        return infer_schema(ds)
    missing = [c for c in ds.columns if c not in schema.columns]
    if missing:
        raise SafemicroError("the schema does not describe this column", column=missing[0])
    return Schema(columns={c: schema.columns[c] for c in ds.columns}, notes=list(schema.notes))
