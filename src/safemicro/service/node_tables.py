"""The node's declared-tables mode: protect every declared table once at start-up (cached in
the store by a hash of data and policy), answer queries by lookup, refuse anything else.

Why no query of this mode needs the differencing ledger: see :mod:`.tables`.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import exc as sa_exc

from safemicro.errors import SafemicroError
from safemicro.service.config import DatasetConfig
from safemicro.service.queries import Query
from safemicro.service.refusal import Refusal
from safemicro.service.tables import LEVEL, Table, content_hash, level_key, protect_tables, union_cells, union_dims

CELLS = ("value", "status", "rule", "lower", "upper", "rounded_to", "noise_scale", "noise_variance")


class _DeclaredTables:
    """Mixin of :class:`~safemicro.service.node.Node` for datasets with ``tables:``."""

    def _precompute_tables(self) -> None:
        """Protect the declared tables of every such dataset (or read them from the store)."""
        self.declared: dict[str, dict[str, dict[str, list[dict]]]] = {}
        for name, ds in self.cfg.datasets.items():
            if ds.tables is None:
                continue
            pop = self.populations[name]
            others = [d for d in pop.sdc if d != name]
            if others:
                raise SafemicroError(
                    f"dataset {name!r} declares tables but shares its units with {others[0]!r}, also answered with "
                    "suppression: the tables are protected as one fixed set, so another suppressed dataset over the "
                    "same people could be differenced against it; serve these units once (a DP dataset may share them)",
                    file=str(ds.file or ds.table),
                )
            tables = [Table(tuple(t.by), tuple(t.measures)) for t in ds.tables]
            key = content_hash(self.versions[name], self.policy_hash, tables)
            body = self.store.cached_release(key)
            started = time.perf_counter()
            if body is None:
                body = json.dumps(self._protect_declared(name, ds, tables), separators=(",", ":"))
                try:
                    with self.store.transaction() as w:
                        self.store.save_release(w, key, name, body)
                except sa_exc.IntegrityError:  # another worker process stored the same set first
                    body = self.store.cached_release(key) or body
            stored = json.loads(body)
            self.declared[name] = {stat: _by_level(rows) for stat, rows in stored.items()}
            count = stored["count"]
            self.audit.append(
                "tables",
                {
                    "dataset": name,
                    "key": key,
                    "digest": _sha(body),
                    "cells": len(count),
                    "suppressed": sum(r["status"] != "released" for r in count),
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )

    def _protect_declared(self, name: str, ds: DatasetConfig, tables: list[Table]) -> dict[str, list[dict]]:
        measures = sorted({m for t in tables for m in t.measures})
        records = self.records[name]
        policy = service_policy(ds)
        cells = union_cells(records, tables, self.values[name], measures)
        dims = union_dims(tables)
        nests = {}
        for d in dims:
            parent = ds.dimensions[d].parent
            if parent in dims:
                pairs = records.select(d, parent).unique()
                nests[d] = (parent, dict(zip(pairs.get_column(d).to_list(), pairs.get_column(parent).to_list())))
        out = protect_tables(cells, dims, measures, policy, nests)
        return {stat: t.to_dicts() for stat, t in out.items()}

    def _answer_declared(self, q: Query, ds: DatasetConfig, where: dict, qid: str) -> str:
        """The cells of the precomputed protected set that the query selects, or a 422
        naming the declared tables."""
        tables = ds.tables or []
        names = "; ".join("[" + ", ".join(t.by) + "]" for t in tables)
        stat = "count" if q.kind in ("count", "crosstab") else f"{q.kind}:{q.measure}"
        fits = [t for t in tables if set(q.by) <= set(t.by) and (q.measure is None or q.measure in t.measures)]
        if q.kind == "quantile" or not fits:
            what = f"{q.kind} of {q.measure!r}" if q.measure else q.kind
            raise Refusal(
                422,
                f"dataset {q.dataset!r} answers only its declared tables and their sub-tables; {what} by "
                f"[{', '.join(q.by)}] is not one of them (declared: {names})",
                "by",
            )
        loose = sorted(set(where) - set(q.by))
        if loose:
            raise Refusal(
                422,
                f"dataset {q.dataset!r} answers only whole rows of its declared tables: a filter or time window on "
                f"{', '.join(loose)} needs that dimension in 'by' (declared: {names})",
                "filters",
            )
        by = list(q.by)
        wanted = [[d for d in by if d in c] for c in _subsets(by)] if q.margins else [by]
        rows: list[dict] = []
        for level in wanted:
            for r in self.declared[q.dataset][stat].get(level_key(level), []):
                if all(r[d] in vals for d, vals in where.items()):
                    rows.append({**{d: r[d] for d in by}, **{c: r[c] for c in CELLS}})
        rows.sort(key=lambda r: tuple((r[d] is None, r[d] or "") for d in by))
        return self._encoded(q, qid, rows, mode="sdc")  # the rows were read back from JSON

    def _encoded(self, q: Query, qid: str, rows: list[dict], *, mode: str, epsilon: float = 0.0) -> str:
        """An answer's bytes from cells of plain Python values (strings, ints, finite floats,
        None): the C encoder with the canonical settings gives the bytes of canonical_json
        without its slow walk."""
        return json.dumps(
            self._envelope(q, qid, rows, mode=mode, epsilon=epsilon),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )

    def _envelope(self, q: Query, qid: str, cells: list[dict], *, mode: str, epsilon: float) -> dict:
        """An answer: the query, its identity, the dataset version and policy, the cells."""
        return {
            "query_id": qid,
            "dataset": q.dataset,
            "dataset_version": self.versions[q.dataset],
            "query": json.loads(q.canonical()),
            "policy_hash": self.policy_hash,
            "key_id": self.key_id,
            "mode": mode,
            "epsilon": epsilon,
            "released_at": int(time.time()),
            "cells": cells,
        }


def service_policy(ds: DatasetConfig):
    """The protection policy of a dataset's answers (empty cells hidden as small ones): each
    rule the dataset's policy sets under the rule's own name (threshold, dominance, p %,
    secondary suppression and its method, rounding base)."""
    from dataclasses import fields

    from safemicro.service.protection import ProtectionPolicy

    rules = {
        f.name: getattr(ds.policy, f.name) for f in fields(ProtectionPolicy) if f.name in type(ds.policy).model_fields
    }
    return ProtectionPolicy(**{**rules, "hide_presence": True})


def _subsets(by: list[str]) -> list[set[str]]:
    import itertools

    return [set(c) for r in range(len(by), -1, -1) for c in itertools.combinations(by, r)]


def _by_level(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r[LEVEL], []).append(r)
    return out


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
