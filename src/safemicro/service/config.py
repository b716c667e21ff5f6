"""The service configuration (YAML): where data and state live, what analysts may ask.

A provider writes one YAML file; :func:`load_config` validates it with pydantic and
resolves relative paths against the file's folder. :func:`load_records` turns a declared
dataset into the frame the service answers from: one column per declared dimension
(named after the dimension, time already binned), the unit column and the clamped
measures; nothing else of the raw file is kept.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from safemicro.errors import SafemicroError

NAME = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"
QUERY_KINDS = ("count", "sum", "mean", "quantile", "crosstab")
TIME_BINS = ("day", "week", "month", "quarter", "year")
# output and internal column names a dimension or measure may not take
RESERVED = (
    "value",
    "status",
    "rule",
    "lower",
    "upper",
    "rounded_to",
    "noise_scale",
    "noise_variance",
    "n",
    "total",
    "top1",
    "top2",
    "top3",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dimension(_Strict):
    """A declared dimension: an admin unit (optionally nested in a parent), a time bin or a category."""

    kind: Literal["admin", "time", "category"]
    column: str
    parent: str | None = None  # admin only: the coarser admin dimension this one nests in
    bin: Literal["day", "week", "month", "quarter", "year"] = "month"  # time only
    values: list[str] | None = None  # declared values; taken from the data when absent


class Measure(_Strict):
    """A numeric column that sums, means and quantiles may use, clamped to [lower, upper]."""

    column: str
    lower: float
    upper: float
    # published rounding unit of quantile answers (None: derived from the bounds, see
    # safemicro.service.quantiles.granularity)
    granularity: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Measure:
        if not self.lower < self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


class MagnitudePerturbation(_Strict):
    """Top-contributor perturbation of sums and means (safemicro.service.cell_key): the
    ``len(weights)`` largest contributions of a cell move its total by up to ``percent`` of
    themselves (times their weight), never by less than ``separation`` of that."""

    percent: float = Field(0.25, gt=0, le=1)
    weights: list[float] = Field(default_factory=lambda: [1.0, 0.5], min_length=1, max_length=5)
    separation: float = Field(0.2, ge=0, lt=1)

    @model_validator(mode="after")
    def _descending(self) -> MagnitudePerturbation:
        w = self.weights
        if w[0] != 1.0 or any(b > a or b <= 0 for a, b in zip(w, w[1:], strict=False)):
            raise ValueError("weights: 1 first, then weights in (0, 1] in descending order")
        return self


class CellKey(_Strict):
    """Cell key perturbation (safemicro.service.cell_key): the record keys come from
    ``seed`` (the provider's secret; not in the published policy hash); the count ptable is
    a CSV (pcv, ckey, pvalue) or generated with maximum perturbation D and variance V; sums
    and means are perturbed as ``magnitudes`` says."""

    seed: int = Field(ge=0)
    ptable: Path | None = None
    max_perturbation: int = Field(3, ge=1, le=50)
    variance: float = Field(1.0, gt=0)
    key_range: int = Field(256, ge=16, le=1 << 20)
    magnitudes: MagnitudePerturbation = Field(default_factory=MagnitudePerturbation)
    # "single": a filter or time window names one value (or all of them), so the tables that
    # contain a person are few and their perturbations cannot be averaged away; "any": any
    # subset (dozens to hundreds of distinct tables around one person: see the README)
    filters: Literal["single", "any"] = "single"


class Policy(_Strict):
    """Output protection of one dataset (the names follow safemicro.service.protection)."""

    threshold: int = Field(10, ge=2)
    dominance_n: int = Field(2, ge=1)
    dominance_k: float = Field(85.0, gt=0, le=100)
    p_percent: float = Field(10.0, ge=0, le=100)
    secondary: bool = True
    secondary_method: Literal["heuristic", "optimal"] = "heuristic"  # optimal: MILP, moderate tables
    rounding_base: int | None = Field(None, ge=2)
    max_dimensions: int = Field(3, ge=1, le=4)
    # also refuse releases that would narrow a suppressed cell's interval, across all earlier
    # releases, below this width (LP per suppressed cell: slower); None = exact recovery only
    ledger_protection_width: float | None = Field(None, gt=0)
    # time budget of the ledger's exact search for small groups, per request: a search not
    # finished in time refuses the request (fail closed) and is counted by the guard
    ledger_search_seconds: float = Field(3.0, gt=0, le=60)
    # the public set of quantile levels analysts may ask (no extremes: min and max are never
    # released) and how many distinct ones one set of records may have released, by anyone
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.25, 0.5, 0.75, 0.9], min_length=1, max_length=9)
    max_quantiles_per_cell: int = Field(3, ge=1, le=9)
    protection: Literal["threshold", "cell_key"] = "threshold"
    cell_key: CellKey | None = None

    @model_validator(mode="after")
    def _cell_key(self) -> Policy:
        if self.protection == "cell_key" and self.cell_key is None:
            raise ValueError("protection 'cell_key' needs a cell_key section (seed, ptable or D and V)")
        return self

    @field_validator("quantiles")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        for q in v:
            if not 0.05 <= q <= 0.95:
                raise ValueError(f"quantile level {q} must lie in [0.05, 0.95] (extremes are never released)")
        if len(set(v)) != len(v):
            raise ValueError("a quantile level appears twice")
        return sorted(v)


class DP(_Strict):
    """Differential-privacy mode: every count/sum/mean is noised and spends epsilon."""

    enabled: bool = False
    mechanism: Literal["laplace", "gaussian"] = "laplace"
    epsilon_per_query: float = Field(0.5, gt=0)
    delta: float = Field(1e-7, ge=0, lt=1)
    analyst_budget: float = Field(2.0, gt=0)
    dataset_budget: float = Field(5.0, gt=0)


class DeclaredTable(_Strict):
    """A table the provider declares (``tables:``): its dimensions (answered on their full
    declared grid, with margins) and the measures whose sums and means it offers."""

    by: list[str] = Field(min_length=1, max_length=4)
    measures: list[str] = Field(default_factory=list)


class DatasetConfig(_Strict):
    """One dataset: its source (a file read by safemicro.io, or a table of the store).

    ``kind: mobility`` declares a per-subscriber table of safemicro.mobility (one row per
    subscriber): its threshold defaults to 16 (FlowKit's redaction of 15 and below) and its
    ledger protection width to 5; only counts and crosstabs (metrics come in declared bins);
    and daily location columns (``day_*``) or daily time bins, the input of trajectory
    recovery, are refused unless the dataset is served with DP."""

    kind: Literal["records", "mobility"] = "records"
    file: Path | None = None
    table: str | None = None
    # datasets over the same units (persons, households) name one population and share one
    # differencing ledger; undeclared, datasets read from the same file form one population
    population: str | None = Field(None, pattern=NAME)
    unit: str | None = None  # the column identifying a contributor (person, household)
    dimensions: dict[str, Dimension]
    measures: dict[str, Measure] = Field(default_factory=dict)
    queries: list[Literal["count", "sum", "mean", "quantile", "crosstab"]] = list(QUERY_KINDS)
    policy: Policy = Field(default_factory=Policy)
    dp: DP = Field(default_factory=DP)
    # declared-tables mode (safemicro.service.tables): only these tables (and sub-tables of
    # them) are answered, from one jointly protected set computed at start-up
    tables: list[DeclaredTable] | None = None

    @field_validator("tables", mode="before")
    @classmethod
    def _table_lists(cls, v: Any) -> Any:
        """A table may be written as its list of dimensions: ``[camp, sex]``."""
        return [{"by": t} if isinstance(t, list) else t for t in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _source_and_names(self) -> DatasetConfig:
        if (self.file is None) == (self.table is None):
            raise ValueError("give exactly one of 'file' or 'table'")
        if self.table is not None and not re.match(NAME, self.table):
            raise ValueError(f"table name {self.table!r} must match {NAME}")
        for name, dim in self.dimensions.items():
            if not re.match(NAME, name):
                raise ValueError(f"dimension name {name!r} must match {NAME}")
            if name in RESERVED:
                raise ValueError(f"dimension name {name!r} is reserved for output columns ({', '.join(RESERVED)})")
            if dim.parent is not None:
                if dim.kind != "admin":
                    raise ValueError(f"dimension {name!r}: only admin dimensions have a parent")
                parent = self.dimensions.get(dim.parent)
                if parent is None or parent.kind != "admin":
                    raise ValueError(f"dimension {name!r}: parent {dim.parent!r} is not an admin dimension")
        for name in self.measures:
            if not re.match(NAME, name):
                raise ValueError(f"measure name {name!r} must match {NAME}")
            if name in self.dimensions:
                raise ValueError(f"{name!r} is both a dimension and a measure")
            if name in RESERVED:
                raise ValueError(f"measure name {name!r} is reserved for output columns")
        times = [n for n, d in self.dimensions.items() if d.kind == "time"]
        if len(times) > 1:
            raise ValueError(f"at most one time dimension, got {times}")
        if self.kind == "mobility":
            self._mobility()
        if self.tables is not None:
            self._declared_tables()
        elif self.answered_by_cell_key:
            self._without_quantiles("the cell key method offers count, sum, mean and crosstab, not quantile")
        return self

    @property
    def answered_by_cell_key(self) -> bool:
        """Answers perturbed by the cell key method (DP, when enabled, takes precedence)."""
        return self.policy.protection == "cell_key" and not self.dp.enabled

    def _without_quantiles(self, why: str) -> None:
        """A mode without quantiles: left out of the default kinds, refused when listed."""
        if "queries" not in self.model_fields_set:
            self.queries = [k for k in self.queries if k != "quantile"]
        if "quantile" in self.queries:
            raise ValueError(why)

    def _declared_tables(self) -> None:
        """Declared tables name declared dimensions and measures; the mode is SDC only."""
        if not self.tables:
            raise ValueError("'tables' declares no table")
        if self.dp.enabled or self.policy.protection != "threshold":
            raise ValueError("declared tables are protected by suppression: not with dp or cell_key")
        self._without_quantiles("declared tables offer count, sum, mean and crosstab, not quantile")
        for t in self.tables:
            for d in t.by:
                if d not in self.dimensions:
                    raise ValueError(f"table {t.by}: {d!r} is not a declared dimension")
            if len(set(t.by)) != len(t.by):
                raise ValueError(f"table {t.by}: a dimension appears twice")
            for d in t.by:  # the grid of a unit and its parent would show impossible pairs as cells
                up = self.dimensions[d].parent
                while up is not None:
                    if up in t.by:
                        raise ValueError(f"table {t.by}: {d!r} nests in {up!r}; declare them in separate tables")
                    up = self.dimensions[up].parent
            for m in t.measures:
                if m not in self.measures:
                    raise ValueError(f"table {t.by}: {m!r} is not a declared measure")

    def _mobility(self) -> None:
        """The defaults and refusals of a mobility dataset (see the class docstring)."""
        if self.unit is None:
            raise ValueError("a mobility dataset needs 'unit' (the subscriber column): one contribution each")
        if "queries" not in self.model_fields_set:
            self.queries = ["count", "crosstab"]
        extra = sorted(set(self.queries) - {"count", "crosstab"})
        if extra:
            raise ValueError(
                f"a mobility dataset offers counts and crosstabs only, not {extra} (metrics are released in declared bins)"
            )
        if self.measures:
            raise ValueError("a mobility dataset declares no measures (metrics are released in declared bins)")
        if "threshold" not in self.policy.model_fields_set:
            self.policy.threshold = 16
        if "ledger_protection_width" not in self.policy.model_fields_set:
            self.policy.ledger_protection_width = 5.0
        if not self.dp.enabled:
            for name, dim in self.dimensions.items():
                daily = dim.column.startswith("day_") or (dim.kind == "time" and dim.bin == "day")
                if daily:
                    raise ValueError(
                        f"dimension {name!r}: daily locations and daily bins of a mobility dataset are served only "
                        "with DP (dp.enabled), as they are the input of trajectory recovery"
                    )


class ServiceConfig(_Strict):
    """The whole file: identity, keys, storage, audit log, limits and datasets."""

    audience: str = "safemicro"
    database: str = "duckdb:///safemicro-state.duckdb"
    issuer_public_key: Path  # Ed25519 public key (PEM) of the token issuer the node trusts
    signing_key: Path  # Ed25519 private key (PEM) the node signs responses with
    audit_log: Path = Path("audit.jsonl")
    max_token_minutes: int = Field(720, ge=1)
    max_body_bytes: int = Field(16384, ge=256)
    datasets: dict[str, DatasetConfig]

    @field_validator("datasets")
    @classmethod
    def _names(cls, v: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
        if not v:
            raise ValueError("declare at least one dataset")
        for name in v:
            if not re.match(NAME, name):
                raise ValueError(f"dataset name {name!r} must match {NAME}")
        return v

    def time_dimension(self, dataset: str) -> str | None:
        return next((n for n, d in self.datasets[dataset].dimensions.items() if d.kind == "time"), None)


def load_config(path: str | Path) -> ServiceConfig:
    """Read and validate a service YAML; relative paths are relative to the file."""
    p = Path(path)
    if not p.is_file():
        raise SafemicroError("service config not found", file=str(p))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SafemicroError(f"not valid YAML: {e}", file=str(p)) from None
    if not isinstance(raw, dict):
        raise SafemicroError("expected a mapping at the top level", file=str(p))
    try:
        cfg = ServiceConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise SafemicroError(f"{where}: {first['msg']} ({e.error_count()} problem(s))", file=str(p)) from None
    base = p.resolve().parent
    cfg.issuer_public_key = _rel(base, cfg.issuer_public_key)
    cfg.signing_key = _rel(base, cfg.signing_key)
    cfg.audit_log = _rel(base, cfg.audit_log)
    for ds in cfg.datasets.values():
        if ds.file is not None:
            ds.file = _rel(base, ds.file)
        if ds.policy.cell_key is not None and ds.policy.cell_key.ptable is not None:
            ds.policy.cell_key.ptable = _rel(base, ds.policy.cell_key.ptable)
    if cfg.database.startswith("duckdb:///") and not cfg.database.startswith("duckdb:///:memory:"):
        db = Path(cfg.database[len("duckdb:///") :])
        cfg.database = "duckdb:///" + str(_rel(base, db))
    return cfg


def _rel(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else base / p


def prepare_records(raw: pl.DataFrame, ds: DatasetConfig, *, source: str) -> pl.DataFrame:
    """The answering frame of a dataset: `_unit`, one column per dimension, clamped measures.

    Raises SafemicroError naming the column and row of the first bad value (an undeclared
    category, a date that cannot be binned, an admin unit in two parents, a missing unit).
    """
    cols: dict[str, pl.Series] = {}
    needed = [d.column for d in ds.dimensions.values()] + [m.column for m in ds.measures.values()]
    if ds.unit:
        needed.append(ds.unit)
    for c in needed:
        if c not in raw.columns:
            raise SafemicroError(f"column not in the data (have {', '.join(raw.columns[:20])})", file=source, column=c)
    if ds.unit:
        unit = raw[ds.unit]
        _no_nulls(unit, source, ds.unit)
        cols["_unit"] = unit.cast(pl.String)
    else:
        cols["_unit"] = pl.Series("_unit", [str(i) for i in range(raw.height)])
    for name, dim in ds.dimensions.items():
        s = raw[dim.column]
        _no_nulls(s, source, dim.column)
        if dim.kind == "time":
            s = _time_bins(s, dim.bin, source, dim.column)
        else:
            s = s.cast(pl.String)
        if dim.values is not None:
            bad = ~s.is_in(dim.values)
            if bad.any():
                row = int(bad.arg_true()[0])
                raise SafemicroError(
                    f"value {s[row]!r} is not among the declared values of dimension {name!r}",
                    file=source,
                    column=dim.column,
                    row=row + 1,
                )
        cols[name] = s.alias(name)
    for name, m in ds.measures.items():
        s = raw[m.column]
        if not s.dtype.is_numeric():
            try:
                s = s.cast(pl.Float64, strict=True)
            except Exception:
                raise SafemicroError("measure is not numeric", file=source, column=m.column) from None
        _no_nulls(s, source, m.column)
        cols[name] = s.cast(pl.Float64).clip(m.lower, m.upper).alias(name)
    frame = pl.DataFrame(cols)
    for name, dim in ds.dimensions.items():
        if dim.parent:
            pairs = frame.select(name, dim.parent).unique()
            dup = pairs.filter(pl.col(name).is_duplicated())
            if dup.height:
                unit = dup[name][0]
                row = int((frame[name] == unit).arg_true()[0])
                raise SafemicroError(
                    f"admin unit {unit!r} lies in more than one {dim.parent!r} unit; nesting must be strict",
                    file=source,
                    column=dim.column,
                    row=row + 1,
                )
    return frame


def _no_nulls(s: pl.Series, source: str, column: str) -> None:
    if s.null_count():
        row = int(s.is_null().arg_true()[0])
        raise SafemicroError(
            "missing value (the service needs complete dimensions, units and measures)",
            file=source,
            column=column,
            row=row + 1,
        )


def _time_bins(s: pl.Series, bin: str, source: str, column: str) -> pl.Series:
    """ISO labels of aligned bins: 2024-03-15 (day), 2024-W11, 2024-03, 2024-Q1, 2024."""
    if s.dtype == pl.String:
        parsed = s.str.to_date(strict=False)
        if parsed.null_count():
            # already-binned labels such as 2024-03 are accepted for a month bin
            if bin == "month" and s.str.contains(r"^\d{4}-\d{2}$").all():
                return s
            row = int(parsed.is_null().arg_true()[0])
            raise SafemicroError(f"not an ISO date: {s[row]!r}", file=source, column=column, row=row + 1)
        s = parsed
    elif s.dtype == pl.Datetime or isinstance(s.dtype, pl.Datetime):
        s = s.dt.date()
    elif s.dtype != pl.Date:
        raise SafemicroError(f"a time dimension needs dates, got {s.dtype}", file=source, column=column)
    if bin == "day":
        return s.dt.strftime("%Y-%m-%d")
    if bin == "week":
        return s.dt.iso_year().cast(pl.String) + "-W" + s.dt.week().cast(pl.String).str.zfill(2)
    if bin == "month":
        return s.dt.strftime("%Y-%m")
    if bin == "quarter":
        return s.dt.year().cast(pl.String) + "-Q" + s.dt.quarter().cast(pl.String)
    return s.dt.year().cast(pl.String)


def frame_version(frame: pl.DataFrame) -> str:
    """A short content hash of the answering frame (ledgers are kept per dataset, across versions)."""
    h = hashlib.sha256()
    h.update(",".join(f"{c}:{t}" for c, t in frame.schema.items()).encode())
    h.update(frame.sort(frame.columns).write_ipc(None).getvalue())
    return h.hexdigest()[:16]


def declared_values(frame: pl.DataFrame, ds: DatasetConfig) -> dict[str, list[str]]:
    """Values of each dimension: the declared list, else the sorted distinct values."""
    out: dict[str, list[str]] = {}
    for name, dim in ds.dimensions.items():
        out[name] = list(dim.values) if dim.values is not None else sorted(frame[name].unique().to_list())
    return out


def describe(cfg: ServiceConfig) -> dict[str, Any]:
    """A stable description of the policy part of the config (hashed into every release)."""
    return {
        name: {
            **({"kind": ds.kind} if ds.kind != "records" else {}),
            "population": ds.population,
            "dimensions": {k: v.model_dump(exclude={"values"}) for k, v in ds.dimensions.items()},
            "measures": {k: v.model_dump() for k, v in ds.measures.items()},
            "queries": ds.queries,
            "policy": ds.policy.model_dump(mode="json", exclude={"cell_key": {"seed"}}),
            "dp": ds.dp.model_dump(),
            **({"tables": [t.model_dump() for t in ds.tables]} if ds.tables is not None else {}),
        }
        for name, ds in cfg.datasets.items()
    }
