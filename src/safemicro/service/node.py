"""The node: one data provider's records, protection, ledger, budgets and audit log.

`Node.query` is the whole answering pipeline, independent of HTTP: authorise the grant
against the node's policy, validate against the catalogue, serve a stored release or
compute the protected table (SDC: threshold, dominance, p %, secondary suppression, then
the differencing ledger shared by every analyst and every node process; DP: OpenDP noise
with budgets reserved before and committed after), store it, and log request, decision
and release to the hash-chained audit log. Refusals carry a status and a message that
never states a group size or a cell.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import contextmanager
from typing import Any

import polars as pl

from safemicro.service import quantiles
from safemicro.service.audit import AuditLog, sign_release
from safemicro.service.audit import canonical_json as audit_json
from safemicro.service.audit_watch import AuditBroken, ChainWatch
from safemicro.service.blas import hold_one_blas_thread, release_blas_threads
from safemicro.service.config import (
    DatasetConfig,
    ServiceConfig,
    declared_values,
    describe,
    frame_version,
    prepare_records,
)
from safemicro.service.node_cell_key import _CellKeyTables, public_mode
from safemicro.service.node_dp import _DPTables
from safemicro.service.node_tables import _DeclaredTables, service_policy
from safemicro.service.population import (
    check_aligned,
    one_record_per_unit,
    open_ledgers,
    populations,
    quota_ledger,
    stored_requests,
)
from safemicro.service.quantiles import cell_keys
from safemicro.service.queries import Query, QueryError, cell_predicate, check_against
from safemicro.service.refusal import Refusal, not_available
from safemicro.service.store import Store
from safemicro.service.tokens import (
    Principal,
    TokenError,
    VerifiedTokens,
    load_private_key,
    load_public_key,
    public_pem,
    verify_token,
)
from safemicro.service.value_grid import filtered, grid_codes

CELL_COLUMNS = ("value", "status", "rule", "lower", "upper", "rounded_to", "noise_scale", "noise_variance")
MAGNITUDES = ("sum", "mean", "quantile")  # also judged record by record, not only unit by unit


def record_ledger(dataset: str) -> str:
    """Name of a dataset's record-level ledger (magnitude releases) in the store."""
    return f"{dataset}#records"


def canonical_json(obj: Any) -> str:
    """The service's canonical JSON (audit's, with non-ASCII escaped for HTTP bodies)."""
    return audit_json(obj, ascii=True)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Node(_DPTables, _CellKeyTables, _DeclaredTables):
    """The service state of one data provider; thread-safe."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.issuer_key = load_public_key(cfg.issuer_public_key)
        self.signing_key = load_private_key(cfg.signing_key)
        self.public_pem = public_pem(self.signing_key.public_key())
        self.key_id = digest(self.public_pem)[:16]
        self.tokens = VerifiedTokens()  # tokens whose signature and claims were checked once
        self.audit = AuditLog(cfg.audit_log)
        self.watch = ChainWatch(cfg.audit_log)  # a log that does not verify stops the start
        self.halted: str | None = None  # why the node stopped serving (a broken audit chain)
        self.store = Store(cfg.database)
        self.policy_hash = digest(canonical_json(describe(cfg)))[:32]
        self.records: dict[str, pl.DataFrame] = {}
        self.values: dict[str, dict[str, list[str]]] = {}
        self.versions: dict[str, str] = {}
        self.guards: dict[str, Any] = {}
        self.locks: dict[str, threading.Lock] = {}
        self._qid_locks = [threading.Lock() for _ in range(64)]
        self.ledger_seq: dict[str, int] = {}  # last ledger request this process has in its guard
        self.populations = populations(cfg)  # refuses the same units served twice without one ledger
        for name, ds in cfg.datasets.items():
            self._load(name, ds)
        self.unit_is_record = {name: one_record_per_unit(f) for name, f in self.records.items()}
        for pop in {id(p): p for p in self.populations.values()}.values():
            lock = threading.Lock()  # one lock per population: its members share ledger and budget
            for member in pop.members:
                self.locks[member] = lock
            check_aligned(
                pop, self.records, {d: str(cfg.datasets[d].file or cfg.datasets[d].table) for d in pop.members}
            )
            if pop.sdc:
                for ledger, (guard, seq) in open_ledgers(pop, self.records, cfg, self.store).items():
                    self.guards[ledger] = guard
                    self.ledger_seq[ledger] = seq
        self.audit.append(
            "start",
            {
                "policy_hash": self.policy_hash,
                "key_id": self.key_id,
                "datasets": {n: self.versions[n] for n in cfg.datasets},
            },
        )
        self._precompute_tables()  # declared tables: protected once, jointly (see .tables)
        self.codes = grid_codes(cfg, self.records, self.values, self.unit_is_record)  # see .value_grid
        if any(ds.dp.enabled for ds in cfg.datasets.values()):
            self._warm_dp()
        hold_one_blas_thread()  # until close(): set here, in the thread that opens the node

    def _load(self, name: str, ds: DatasetConfig) -> None:
        from safemicro import io

        if ds.file is not None:
            raw = io.read(ds.file).frame
            source = str(ds.file)
        else:
            raw = self.store.read_table(ds.table)
            source = f"table {ds.table}"
        frame = prepare_records(raw, ds, source=source)
        version = frame_version(frame)
        self.store.load_raw(name, frame, version)
        self.records[name] = self._keyed(name, frame, ds) if ds.answered_by_cell_key else frame
        self.values[name] = declared_values(frame, ds)
        self.versions[name] = version

    def close(self) -> None:
        self.store.close()
        release_blas_threads()

    # ----- authentication and authorisation

    def authenticate(self, token: str | None, path: str) -> Principal:
        try:
            principal = verify_token(
                token or "",
                self.issuer_key,
                audience=self.cfg.audience,
                max_minutes=self.cfg.max_token_minutes,
                is_revoked=self.store.is_revoked,
                verified=self.tokens,
            )
        except TokenError as e:
            self.audit.append("auth", {"path": path, "decision": "refused", "status": e.status, "reason": e.message})
            raise
        if self.halted is not None:
            self.audit.append(
                "auth",
                {
                    "path": path,
                    "decision": "refused",
                    "status": 503,
                    "reason": "node halted",
                    "subject": principal.subject,
                    "jti": principal.jti,
                },
            )
            raise Refusal(503, "this node has stopped serving: its audit log failed an integrity check")
        return principal

    def known_principal(self, token: str | None) -> Principal | None:
        """The principal of a token :meth:`authenticate` accepted before, when all that can
        change about it is checked without I/O (the embedded store's revocation list is in
        memory) and still holds: for the event loop, no thread hop. Else None: the caller
        runs :meth:`authenticate` (which also logs a refusal)."""
        if not token or self.halted is not None or self.store.postgres:
            return None
        principal = self.tokens.valid(token, time.time())
        if principal is None or self.store.is_revoked(principal.jti):
            return None
        return principal

    def checkpoint(self) -> dict:
        """Verify the audit chain (what was appended since the last check, and that nothing
        before changed), then sign the verified head. A broken chain halts the node: every
        later request is refused (503) and the provider's server log says why."""
        try:
            self.watch.check()
        except AuditBroken as e:
            import logging

            self.halted = str(e)
            logging.getLogger("safemicro.service").critical("%s", e)
            self.audit.append("alarm", {"reason": str(e)})
            raise Refusal(503, "this node has stopped serving: its audit log failed an integrity check") from None
        seq, head = self.watch.head
        body = {"seq": seq, "hash": head}
        return {**body, "signature": sign_release(audit_json(body).encode("utf-8"), self.signing_key)}

    def authorise(self, principal: Principal, q: Query, ds: DatasetConfig) -> None:
        """The token's grant intersected with the node's config must cover the whole query."""
        grant = principal.grant_for(q.dataset, "query")
        if grant is None:  # answered as an unknown dataset is: names cannot be probed
            raise not_available(q.dataset, "no query grant")
        if q.kind not in grant.queries:
            raise Refusal(403, f"token does not grant {q.kind!r} queries on {q.dataset!r}")
        if q.kind not in ds.queries:  # the node's policy narrows every grant
            raise Refusal(403, f"this node does not offer {q.kind!r} queries on {q.dataset!r}")
        used = set(q.by) | set(q.filters)
        if q.time is not None:
            used |= {n for n, d in ds.dimensions.items() if d.kind == "time"}
        if "*" not in grant.dimensions:
            missing = sorted(used - set(grant.dimensions))
            if missing:
                raise Refusal(403, f"token does not grant dimension(s) {', '.join(missing)} on {q.dataset!r}")
        if q.measure is not None and "*" not in grant.measures and q.measure not in grant.measures:
            raise Refusal(403, f"token does not grant measure {q.measure!r} on {q.dataset!r}")

    # ----- answering

    def query(self, principal: Principal, q: Query) -> str:
        """The signed-to-be response body of an allowed query, or a Refusal."""
        who = {"subject": principal.subject, "org": principal.organisation, "jti": principal.jti}
        ds = self.cfg.datasets.get(q.dataset)
        version = self.versions.get(q.dataset, "")
        qid = q.query_id(version)
        # written now, on disk with this request's last entry (its release or refusal)
        self.audit.append("request", {**who, "query": json.loads(q.canonical()), "query_id": qid}, durable=False)
        try:
            if ds is None:
                raise not_available(q.dataset, "unknown dataset")
            self.authorise(principal, q, ds)
            try:
                where = check_against(q, ds, self.values[q.dataset])
            except QueryError as e:
                raise Refusal(422, e.message, e.field) from None
            if ds.tables is not None:  # a lookup in the set protected at start-up
                body, cached = self._answer_declared(q, ds, where, qid), "precomputed"
            elif not ds.answered_by_cell_key and (body := self.store.cached_release(qid)) is not None:
                cached = True  # (cell key answers are not stored: computing one is as cheap)
            else:
                cached = False
                body = self._answer(principal, q, ds, where, qid)
        except Refusal as r:
            self.audit.append(
                "decision",
                {
                    **who,
                    "query_id": qid,
                    "decision": "refused",
                    "status": r.status,
                    "reason": r.message,
                    "detail": r.detail,
                },
            )
            raise
        except BaseException:
            self.audit.sync()  # whatever answers the error, the request entry is on disk first
            raise
        release = self.audit.append("release", {**who, "query_id": qid, "digest": digest(body), "cached": cached})
        return body[:-1] + f',"audit_seq":{int(release["seq"])}}}'

    def _answer(self, principal: Principal, q: Query, ds: DatasetConfig, where: dict, qid: str) -> str:
        records = self.records[q.dataset]  # unfiltered: DP and cell key answer on codes (.value_grid)
        if ds.dp.enabled:
            return self._answer_dp(principal, q, ds, records, where, qid)
        if ds.answered_by_cell_key:
            return self._answer_cell_key(principal, q, ds, records, where, qid)
        records = filtered(records, where)
        table = self._protected_table(q, ds, records, where)
        released, suppressed = [], []
        everyone = next(iter(ds.dimensions))
        for cell in table.iter_rows(named=True):
            if cell["rule"] == quantiles.RULE:
                continue  # hides a quantile, not the cell's size or total: nothing for the ledger
            # "everyone" spelled as all values of one dimension (the guard's `{}` is not used)
            pred = cell_predicate(where, q.by, cell) or {everyone: {"in": self.values[q.dataset][everyone]}}
            (released if cell["status"] == "released" else suppressed).append(pred)
        # the ledger covers the population (every dataset over these units), not the dataset
        pop = self.populations[q.dataset]
        quota = quota_ledger(pop.ledger) if q.kind == "quantile" else None
        if quota is not None:  # which records each released quantile covers (see .quantiles)
            keys = cell_keys(self.records[q.dataset], released, ds.measures[q.measure].column)
        released, suppressed = pop.remap(q.dataset, released), pop.remap(q.dataset, suppressed)
        ledgers = [pop.ledger] + ([record_ledger(pop.ledger)] if q.kind in MAGNITUDES else [])
        # one record per unit: the record ledger holds a subset of the unit ledger's cells over
        # the same entities, so whatever it would refuse the unit ledger refuses (see .population)
        checked = ledgers[:1] if self.unit_is_record[q.dataset] else ledgers
        with self.locks[q.dataset]:
            with self._ledger_section(pop.ledger) as c:
                again = self.store.cached_release(qid, c)
                if again is not None:
                    return again
                for ledger in ledgers + ([quota] if quota else []):
                    self._catch_up(c, ledger)
                if quota is not None and self.guards[quota].exceeded(keys, q.quantile):
                    raise Refusal(
                        409,
                        "refused: a cell of this query already had its "
                        f"{self.guards[quota].limit} distinct quantile levels released (by any "
                        "analyst); levels released before are answered again",
                    )
                verdict = next(
                    (
                        v
                        for v in (
                            self.guards[ledger].check(released, suppressed=suppressed, locate=False)
                            for ledger in checked
                        )
                        if not v.ok
                    ),
                    None,
                )
                if verdict is not None:
                    # the analyst learns that the query was refused and why in general terms,
                    # never the size of the group or which cell (that would itself disclose)
                    public = {
                        "small_cell": "a released cell would hold fewer than the threshold",
                        "small_group": "a group below the threshold would be determined by differencing",
                        "suppressed_recoverable": "a suppressed cell would become recoverable",
                        "suppressed_narrowed": "a suppressed cell could be bounded too narrowly",
                        "too_fine": "the ledger would have to follow too many regions of these dimensions",
                        "undecided": "the ledger could not decide in time that no protected group would be revealed",
                    }
                    raise Refusal(
                        409,
                        "refused: combined with earlier releases on these units (this dataset or "
                        "another over the same population) by any analyst, "
                        f"{public.get(verdict.kind, 'a protected group would be revealed')}",
                        detail=verdict.reason,
                    )
                body = self._body(q, qid, table, mode="sdc", epsilon=0.0)
                with self._writing(c) as w:
                    seqs = {
                        ledger: self.store.record_cells(w, ledger, qid, principal.subject, released, suppressed)
                        for ledger in ledgers
                    }
                    if quota is not None:
                        entries = self.guards[quota].entries(keys, q.quantile)
                        if entries:
                            seqs[quota] = self.store.record_cells(w, quota, qid, principal.subject, entries, [])
                    self.store.save_release(w, qid, q.dataset, body)
            for ledger, seq in seqs.items():
                if ledger == quota:
                    self.guards[quota].replay([{"released": entries}])
                else:
                    self.guards[ledger].commit(released, suppressed=suppressed)
                self.ledger_seq[ledger] = seq
            self._log_released(principal, qid, table.height, suppressed=len(suppressed))
        return body

    @contextmanager
    def _ledger_section(self, dataset: str):
        """Where a ledger decision is taken (under the dataset's thread lock). PostgreSQL: one
        transaction holding the dataset's advisory lock, so other node processes wait and
        this one first catches up with what they recorded. The embedded store has one
        process: no transaction while the guard decides (the store's lock would stop every
        other query, DP and cached answers included, for the length of the check); None."""
        if not self.store.postgres:
            yield None
            return
        with self.store.transaction() as c:
            self.store.lock_ledger(c, dataset)  # other node processes wait here
            yield c

    @contextmanager
    def _writing(self, c):
        """The decision's transaction, or a short one of its own in the embedded store."""
        if c is not None:
            yield c
            return
        with self.store.transaction() as w:
            yield w

    def _query_lock(self, qid: str) -> threading.Lock:
        """One of 64 locks by query id: identical concurrent queries are answered once."""
        return self._qid_locks[int(qid[:8], 16) % len(self._qid_locks)]

    def _catch_up(self, c, dataset: str) -> None:
        """Add to the guard what other processes sharing the database released since."""
        if c is None:  # one process: nothing recorded elsewhere
            return
        newer = self.store.ledger_after(c, dataset, self.ledger_seq[dataset])
        if newer:
            self.guards[dataset].replay(stored_requests(newer))
            self.ledger_seq[dataset] = newer[-1]["seq"]

    def _protected_table(self, q: Query, ds: DatasetConfig, records: pl.DataFrame, where: dict) -> pl.DataFrame:
        """Every cell of the requested grid (empty ones too, as small ones: see .presence),
        protected; quantiles under the rule of .quantiles."""
        from safemicro.service import protection
        from safemicro.service.presence import ALL, full_grid

        policy = service_policy(ds)
        margins = q.margins and bool(q.by)
        by = list(q.by) or [ALL]  # one overall cell: tabulate by a constant so every step sees a dimension
        values = {ALL: ["all"], **{d: where.get(d, self.values[q.dataset][d]) for d in q.by}}
        if not q.by:
            records = records.with_columns(pl.lit("all").alias(ALL))
        cells = protection.cell_statistics(records, by, q.measure, "_unit", margins=margins)
        cells = full_grid(cells, by, values, margins=margins, magnitude=q.measure is not None)
        if q.kind == "quantile":
            m = ds.measures[q.measure]
            step = quantiles.granularity(m.lower, m.upper, m.granularity)
            ranks = quantiles.cell_values(
                records, by, q.measure, q.quantile, ds.policy.threshold, step, margins=margins, unit="_unit"
            )
            cells = cells.join(ranks.drop("rank_ok"), on=by, how="left", nulls_equal=True)
            table = protection.protect(cells, by, q.statistic, policy, margins=margins)
            table = quantiles.mark_rank_rule(table, ranks, by)
        else:
            table = protection.protect(cells, by, q.statistic, policy, margins=margins)
        return table if q.by else table.drop(ALL)

    def _body(self, q: Query, qid: str, table: pl.DataFrame, *, mode: str, epsilon: float) -> str:
        cols = [*q.by, *[c for c in CELL_COLUMNS if c in table.columns]]
        return canonical_json(self._envelope(q, qid, table.select(cols).to_dicts(), mode=mode, epsilon=epsilon))

    def _log_released(self, principal: Principal, qid: str, cells: int, **extra: Any) -> None:
        """The audit's "decision" entry of a released answer; ``extra`` is what its mode adds
        (on disk with the "release" entry that :meth:`query` writes next)."""
        self.audit.append(
            "decision",
            {"subject": principal.subject, "query_id": qid, "decision": "released", "cells": cells, **extra},
            durable=False,
        )

    # ----- catalogue, budget, revocation

    def catalogue(self, principal: Principal) -> dict:
        out = {}
        for name, ds in self.cfg.datasets.items():
            grant = principal.grant_for(name, "catalogue")
            if grant is None:
                continue
            dims = [d for d in ds.dimensions if "*" in grant.dimensions or d in grant.dimensions]
            out[name] = {
                "queries": [k for k in ds.queries if k in grant.queries],
                "dimensions": {
                    d: {
                        "kind": ds.dimensions[d].kind,
                        "parent": ds.dimensions[d].parent,
                        "values": self.values[name][d],
                    }
                    for d in dims
                },
                "measures": [m for m in ds.measures if "*" in grant.measures or m in grant.measures],
                "threshold": ds.policy.threshold,
                **({"quantiles": self._quantile_rule(ds)} if "quantile" in ds.queries else {}),
                **public_mode(ds),
                **({"tables": [t.model_dump() for t in ds.tables]} if ds.tables is not None else {}),
            }
        self.audit.append("catalogue", {"subject": principal.subject, "jti": principal.jti})
        return {"audience": self.cfg.audience, "policy_hash": self.policy_hash, "datasets": out}

    @staticmethod
    def _quantile_rule(ds: DatasetConfig) -> dict:
        """The public quantile rule (see .quantiles): levels, quota, rounding per measure."""
        return {
            "levels": ds.policy.quantiles,
            "max_per_cell": ds.policy.max_quantiles_per_cell,
            "granularity": {m: quantiles.granularity(v.lower, v.upper, v.granularity) for m, v in ds.measures.items()},
        }

    def budget(self, principal: Principal, dataset: str) -> dict:
        ds = self.cfg.datasets.get(dataset)
        if ds is None or principal.grant_for(dataset, "budget") is None:
            raise not_available(dataset, "unknown dataset" if ds is None else "no budget grant")
        spent = self.store.budget(self.populations[dataset].budget_key(dataset), principal.subject)
        self.audit.append("budget", {"subject": principal.subject, "jti": principal.jti, "dataset": dataset})
        return {
            "dataset": dataset,
            "mode": "dp" if ds.dp.enabled else "sdc",
            "analyst": {"spent": spent["analyst"], "cap": ds.dp.analyst_budget},
            "dataset_total": {"spent": spent["dataset"], "cap": ds.dp.dataset_budget},
        }

    def revoke(self, principal: Principal, jti: str, reason: str) -> dict:
        if principal.grant_for("*", "revoke") is None:
            raise Refusal(403, "token does not grant revocation")
        added = self.store.revoke(jti, reason)
        self.audit.append(
            "token", {"action": "revoke", "jti": jti, "by": principal.subject, "reason": reason, "new": added}
        )
        return {"jti": jti, "revoked": True, "new": added}
