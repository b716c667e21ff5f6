"""The closed query catalogue: what an analyst may ask, validated before anything runs.

A query names a dataset, a kind (count, sum, mean, quantile, crosstab), the declared
dimensions to group by, optional category filters and an aligned time window. Nothing
else is accepted: unknown fields, undeclared dimensions or values, free text that is not a
declared value are refused with a message saying which field is wrong. Every output cell
is also described as a predicate over the records (`{"dim": {"in": [...]}}`), which is
what the differencing ledger stores.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from safemicro.service.config import DatasetConfig

TOKEN = r"^[A-Za-z0-9_][A-Za-z0-9_.:/ -]{0,63}$"  # declared names and values; never SQL text


class QueryError(Exception):
    """A query that is well-formed JSON but not allowed by the catalogue (answered 422)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class TimeWindow(BaseModel):
    """An inclusive range of aligned time bins, e.g. {"start": "2024-01", "end": "2024-03"}."""

    model_config = ConfigDict(extra="forbid")
    start: str = Field(pattern=TOKEN)
    end: str = Field(pattern=TOKEN)


class Query(BaseModel):
    """One query of the catalogue."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
    kind: Literal["count", "sum", "mean", "quantile", "crosstab"]
    by: list[str] = Field(default_factory=list, max_length=4)
    measure: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
    quantile: float | None = Field(None, gt=0, lt=1)
    filters: dict[str, list[str]] = Field(default_factory=dict, max_length=8)
    time: TimeWindow | None = None
    margins: bool = True

    @field_validator("by")
    @classmethod
    def _by_names(cls, v: list[str]) -> list[str]:
        import re

        for name in v:
            if not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,62}$", name):
                raise ValueError(f"{name[:40]!r} is not a dimension name")
        if len(set(v)) != len(v):
            raise ValueError("a dimension appears twice in 'by'")
        return v

    @field_validator("filters")
    @classmethod
    def _filter_values(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        import re

        for name, values in v.items():
            if not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,62}$", name):
                raise ValueError(f"{name[:40]!r} is not a dimension name")
            if not values or len(values) > 200:
                raise ValueError(f"filter {name!r} needs 1 to 200 values")
            for value in values:
                if not re.match(TOKEN, value):
                    raise ValueError(f"filter {name!r}: {value[:40]!r} is not a declared value")
        return v

    @model_validator(mode="after")
    def _shape(self) -> Query:
        if self.kind in ("sum", "mean", "quantile") and self.measure is None:
            raise ValueError(f"a {self.kind} query needs a 'measure'")
        if self.kind in ("count", "crosstab") and self.measure is not None:
            raise ValueError(f"a {self.kind} query takes no 'measure'")
        if self.kind == "quantile" and self.quantile is None:
            raise ValueError("a quantile query needs 'quantile' between 0 and 1")
        if self.kind != "quantile" and self.quantile is not None:
            raise ValueError("'quantile' is only for quantile queries")
        if self.kind == "crosstab" and len(self.by) < 2:
            raise ValueError("a crosstab needs at least two dimensions in 'by'")
        return self

    def canonical(self) -> str:
        """The query as canonical JSON (sorted keys, sorted filter values): its identity."""
        d = self.model_dump(mode="json")
        d["filters"] = {k: sorted(set(v)) for k, v in sorted(d["filters"].items())}
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def query_id(self, dataset_version: str) -> str:
        return hashlib.sha256(f"{dataset_version}|{self.canonical()}".encode()).hexdigest()[:32]

    @property
    def statistic(self) -> str:
        return "count" if self.kind == "crosstab" else self.kind


def check_against(query: Query, ds: DatasetConfig, values: dict[str, list[str]]) -> dict[str, list[str]]:
    """Check a query against its dataset's declarations; return the record filter as
    {dimension: allowed values} (filters plus the time window expanded to its bins)."""
    if query.kind not in ds.queries:
        raise QueryError(f"query kind {query.kind!r} is not offered for dataset {query.dataset!r}", "kind")
    if len(query.by) > ds.policy.max_dimensions:
        raise QueryError(f"at most {ds.policy.max_dimensions} dimensions in 'by'", "by")
    for name in query.by:
        if name not in ds.dimensions:
            raise QueryError(f"unknown dimension {name!r}; declared: {', '.join(ds.dimensions)}", "by")
    if query.measure is not None and query.measure not in ds.measures:
        known = ", ".join(ds.measures) or "none"
        raise QueryError(f"unknown measure {query.measure!r}; declared: {known}", "measure")
    if query.kind == "quantile" and not any(abs(query.quantile - lv) < 1e-12 for lv in ds.policy.quantiles):
        # a public set of levels (no sweep, no extremes): see safemicro.service.quantiles
        levels = ", ".join(f"{lv:g}" for lv in ds.policy.quantiles)
        raise QueryError(f"quantile {query.quantile:g} is not offered; levels: {levels}", "quantile")
    where: dict[str, list[str]] = {}
    for name, wanted in query.filters.items():
        if name not in ds.dimensions:
            raise QueryError(f"unknown dimension {name!r} in 'filters'", "filters")
        known = set(values[name])
        for v in wanted:
            if v not in known:
                raise QueryError(f"{v!r} is not a declared value of dimension {name!r}", "filters")
        where[name] = sorted(set(wanted))
    if query.time is not None:
        tdim = next((n for n, d in ds.dimensions.items() if d.kind == "time"), None)
        if tdim is None:
            raise QueryError(f"dataset {query.dataset!r} has no time dimension", "time")
        bins = values[tdim]
        for end in (query.time.start, query.time.end):
            if end not in bins:
                raise QueryError(f"{end!r} is not a time bin of {tdim!r} (bins such as {bins[0]!r})", "time")
        if query.time.start > query.time.end:
            raise QueryError("time window starts after it ends", "time")
        window = [b for b in bins if query.time.start <= b <= query.time.end]
        if tdim in where:
            window = sorted(set(window) & set(where[tdim]))
        where[tdim] = window
    return where


def cell_predicate(where: dict[str, list[str]], dims: list[str], cell: dict) -> dict:
    """The records one output cell covers: the query's filter and the cell's own values
    (a margin, value None, leaves its dimension unconstrained beyond the filter)."""
    pred = {name: {"in": list(vals)} for name, vals in where.items()}
    for d in dims:
        v = cell.get(d)
        if v is None:
            continue
        if d in pred and v not in pred[d]["in"]:
            pred[d] = {"in": []}
        else:
            pred[d] = {"in": [v]}
    return pred
