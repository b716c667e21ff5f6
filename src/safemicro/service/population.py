"""Populations: datasets over the same units share one differencing ledger and one budget.

The differencing ledger protects people, not dataset names. Two datasets served from the
same file under different dimensions (``camp × sex`` on one, ``camp × sex × origin`` on the
other) describe the same persons: a count of 369 on one and 368 on the other, asked by two
analysts, isolate one person if each dataset keeps its own ledger. So every dataset belongs
to a *population*: the one it declares (``population:`` in the config), else the file it is
read from (datasets over one file form one population without saying so). The datasets of a
population are answered against one ledger whose records carry every member's dimensions
(column ``dataset:dimension``), so a cell of one dataset and a cell of another are compared
as the sets of people they cover; their DP members share one budget.

At start-up the node refuses to serve the same units twice without a shared population:
two datasets whose files have identical content, or that read the same file or database
table, must declare the same population. A shared SDC ledger needs the members' records in
the same order (same units, row by row); the node checks that too. A DP member needs no
ledger entry: its answers are ε-DP whatever else the analyst knows, including every exact
release of the SDC members, so they add at most ε per answer to what the ledger allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from safemicro.errors import SafemicroError

__all__ = ["Population", "populations", "check_aligned", "open_ledgers", "stored_requests"]


@dataclass
class Population:
    """The datasets over one set of units and where their shared state lives."""

    name: str  # declared name, or the source it was derived from
    key: str  # the store's name for what the members share ("pop:...")
    members: list[str] = field(default_factory=list)
    sdc: list[str] = field(default_factory=list)  # members answered under the differencing ledger
    dp: list[str] = field(default_factory=list)  # members answered with noise and budgets
    cell_key: list[str] = field(default_factory=list)  # members perturbed by their record keys

    @property
    def shared(self) -> bool:
        return len(self.sdc) > 1

    @property
    def ledger(self) -> str:
        """The SDC ledger's name: the only SDC member's own (so that ledgers kept before
        populations existed stay valid), else the population's."""
        return self.key if self.shared else self.sdc[0]

    def column(self, dataset: str, dimension: str) -> str:
        """The ledger's column for one member's dimension."""
        return f"{dataset}:{dimension}" if self.shared else dimension

    def remap(self, dataset: str, predicates: list[Mapping[str, Any]]) -> list[dict]:
        """A member's cell predicates over the shared ledger's columns."""
        if not self.shared:
            return [dict(p) for p in predicates]
        return [{self.column(dataset, k): v for k, v in p.items()} for p in predicates]

    def budget_key(self, dataset: str) -> str:
        """Where a DP member's spending is kept: shared by every DP member of the population."""
        return self.key if len(self.dp) > 1 else dataset

    def ledger_frame(self, frames: Mapping[str, pl.DataFrame], dimensions: Mapping[str, list[str]]) -> pl.DataFrame:
        """The records the ledger reasons over: the unit and every SDC member's dimensions."""
        first = frames[self.sdc[0]]
        cols = [first.get_column("_unit")]
        for d in self.sdc:
            cols += [frames[d].get_column(dim).alias(self.column(d, dim)) for dim in dimensions[d]]
        return pl.DataFrame(cols)


def _content_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def populations(cfg) -> dict[str, Population]:
    """The population of every dataset of a service config (dataset name -> Population).

    Raises SafemicroError when two datasets are over the same units (same file, same file
    content, same table) without sharing a population.
    """
    identity: dict[str, str] = {}
    sources: dict[str, list[tuple[str, str]]] = {}  # dataset -> [(kind of sameness, key)]
    hashes: dict[Path, str] = {}
    for name, ds in cfg.datasets.items():
        if ds.file is not None:
            path = Path(ds.file).resolve()
            keys = [("the same file", str(path))]
            if path.is_file():
                if path not in hashes:
                    hashes[path] = _content_hash(path)
                keys.append(("files with identical content", hashes[path]))
            derived = f"file {path}"
        else:
            keys = [("the same table", str(ds.table))]
            derived = f"table {ds.table}"
        sources[name] = keys
        identity[name] = f"population {ds.population}" if ds.population else derived
    names = list(cfg.datasets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            same = [why for why, key in sources[a] if (why, key) in sources[b]]
            if same and identity[a] != identity[b]:
                pa, pb = cfg.datasets[a].population, cfg.datasets[b].population
                declared = (
                    f"they declare populations {pa!r} and {pb!r}"
                    if pa and pb
                    else f"only {a if pa else b!r} declares a population"
                    if pa or pb
                    else "they declare no population"
                )
                raise SafemicroError(
                    f"datasets {a!r} and {b!r} are over the same units ({same[0]}) but {declared}; give both the same "
                    "`population:` so that they share one differencing ledger (separate ledgers would let analysts "
                    "difference one dataset against the other)",
                    file=str(cfg.datasets[a].file or cfg.datasets[a].table),
                )
    out: dict[str, Population] = {}
    groups: dict[str, Population] = {}
    for name, ds in cfg.datasets.items():
        pop = groups.get(identity[name])
        if pop is None:
            pop = groups[identity[name]] = Population(name=ds.population or identity[name], key=name)
        pop.members.append(name)
        (pop.dp if ds.dp.enabled else pop.cell_key if ds.answered_by_cell_key else pop.sdc).append(name)
        out[name] = pop
    for pop in groups.values():
        _one_perturbation(pop, cfg)
    for key, pop in groups.items():
        declared = cfg.datasets[pop.members[0]].population
        # fits the store's name columns (64 characters for budgets, 80 for ledgers)
        pop.key = "pop:" + (
            declared if declared and len(declared) <= 48 else hashlib.sha256(key.encode()).hexdigest()[:24]
        )
    return out


def _one_perturbation(pop: Population, cfg) -> None:
    """Cell key members of a population perturb each cell once: not beside exact releases
    of the same units (an exact value shows the perturbation of its cell), and all with the
    same keys and tables (two perturbations of one cell could be averaged)."""
    if not pop.cell_key:
        return
    first = pop.cell_key[0]
    where = str(cfg.datasets[first].file or cfg.datasets[first].table)
    if pop.sdc:
        raise SafemicroError(
            f"datasets {first!r} (cell key) and {pop.sdc[0]!r} (suppression) are over the same units: the exact "
            "values of one would show the perturbations of the other; protect both by the cell key method, or serve "
            "one of them with dp",
            file=where,
        )
    settings = {d: cfg.datasets[d].policy.cell_key.model_dump_json() for d in pop.cell_key}
    other = next((d for d in pop.cell_key if settings[d] != settings[first]), None)
    if other is not None:
        raise SafemicroError(
            f"datasets {first!r} and {other!r} are over the same units with different cell_key settings: two "
            "perturbations of the same cell could be averaged away; give them the same seed, ptable and magnitudes",
            file=where,
        )


def check_aligned(pop: Population, frames: Mapping[str, pl.DataFrame], sources: Mapping[str, str]) -> None:
    """Members that share state hold the same units row by row: the SDC members of a
    shared population (one ledger compares their cells) and its cell key members (their
    record keys are drawn row by row)."""
    for members, needs in (
        (pop.sdc if pop.shared else [], "one differencing ledger"),
        (pop.cell_key, "one set of record keys"),
    ):
        for other in members[1:]:
            units, theirs = frames[members[0]].get_column("_unit"), frames[other].get_column("_unit")
            if theirs.len() != units.len() or not theirs.equals(units):
                raise SafemicroError(
                    f"datasets {members[0]!r} and {other!r} share population {pop.name!r} but their records differ "
                    f"({units.len()} and {theirs.len()} rows, or other units or order); {needs} needs the same "
                    "records in the same order: read both from one file or table",
                    file=sources[other],
                )


def record_ledger(ledger: str) -> str:
    """Name of a ledger's record-level twin (magnitude releases) in the store."""
    return f"{ledger}#records"


def open_ledgers(pop: Population, frames: Mapping[str, pl.DataFrame], cfg, store) -> dict[str, tuple]:
    """The differencing guards of a population's SDC members, replayed from the store:
    ledger name -> (guard, last sequence number replayed).

    Two guards: one over distinct units (counts: a household with several records is one
    contributor) and one over records (sums, means, quantiles: two releases over the same
    households can differ by one person's records). The strictest member policy applies.
    A shared population also replays what its members recorded in ledgers of their own
    before they were declared together.
    """
    from safemicro.service.differencing import DifferencingGuard

    dims = {d: list(cfg.datasets[d].dimensions) for d in pop.sdc}
    frame = pop.ledger_frame(frames, dims)
    threshold = max(cfg.datasets[d].policy.threshold for d in pop.sdc)
    widths = [w for d in pop.sdc if (w := cfg.datasets[d].policy.ledger_protection_width) is not None]
    budget = min(cfg.datasets[d].policy.ledger_search_seconds for d in pop.sdc)
    columns = [c for c in frame.columns if c != "_unit"]
    space = ledger_space(pop, frames, cfg, frame)
    out = {}
    for ledger, select, unit in (
        (pop.ledger, [*columns, "_unit"], "_unit"),
        (record_ledger(pop.ledger), columns, None),
    ):
        guard = DifferencingGuard(
            frame.select(select),
            threshold,
            unit=unit,
            protection_width=max(widths) if widths else None,
            space=space,
            search_seconds=budget,
        )
        if not pop.shared and store.ledger_history(ledger.replace(pop.ledger, pop.key, 1)):
            raise SafemicroError(
                f"population {pop.name!r} has releases recorded while several datasets shared its ledger; serve "
                "them again (a ledger cannot forget what was released)",
                file=str(pop.sdc[0]),
            )
        if pop.shared:
            for d in pop.sdc:
                own = ledger.replace(pop.ledger, d, 1)
                guard.replay(
                    [{k: pop.remap(d, v) for k, v in r.items()} for r in stored_requests(store.ledger_history(own))]
                )
        history = store.ledger_history(ledger)
        guard.replay(stored_requests(history))
        out[ledger] = (guard, history[-1]["seq"] if history else 0)
    from safemicro.service.quantiles import QuantileQuota

    quota = QuantileQuota(min(cfg.datasets[d].policy.max_quantiles_per_cell for d in pop.sdc))
    if pop.shared:  # keys name records, not dimensions: members' own quotas carry over as they are
        for d in pop.sdc:
            quota.replay(stored_requests(store.ledger_history(quota_ledger(d))))
    history = store.ledger_history(quota_ledger(pop.ledger))
    quota.replay(stored_requests(history))
    out[quota_ledger(pop.ledger)] = (quota, history[-1]["seq"] if history else 0)
    return out


def one_record_per_unit(frame: pl.DataFrame) -> bool:
    """Does every unit of an answering frame have exactly one record? Then the record-level
    ledger is implied by the unit ledger: same entities and sizes, and its cells (sums, means,
    quantiles) are a subset of the unit ledger's (every release), so a span, a small group or
    a narrowed interval it holds, the unit ledger holds too."""
    return bool(frame.get_column("_unit").is_unique().all())


def ledger_space(pop: Population, frames: Mapping[str, pl.DataFrame], cfg, frame: pl.DataFrame):
    """The value space of a population's ledger (see .differencing_space): every member's
    declared values; a dimension read from the same column the same way by two members is
    one coordinate; an admin unit lies in its declared parent."""
    from safemicro.service.config import declared_values
    from safemicro.service.differencing_space import ValueSpace

    values, same, parent = {}, {}, {}
    for d in pop.sdc:
        ds = cfg.datasets[d]
        declared = declared_values(frames[d], ds)
        for name, dim in ds.dimensions.items():
            col = pop.column(d, name)
            values[col] = declared[name]
            same[col] = (dim.column, dim.kind, dim.bin if dim.kind == "time" else None)
            if dim.parent is not None:
                parent[col] = pop.column(d, dim.parent)
    return ValueSpace.build(values, same=same, parent=parent, observed=frame, mass=max(1, frame.height))


def quota_ledger(ledger: str) -> str:
    """Name of the ledger of quantile levels released per set of records."""
    return f"{ledger}#quantiles"


def stored_requests(history: list[dict]) -> list[dict]:
    """Stored ledger rows grouped back into requests, oldest first."""
    out: list[dict] = []
    last = None
    for row in history:
        if row["seq"] != last:
            out.append({"released": [], "suppressed": []})
            last = row["seq"]
        out[-1]["released" if row["status"] == "released" else "suppressed"].append(row["predicate"])
    return out
