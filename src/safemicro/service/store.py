"""The service's state in one database through SQLAlchemy: DuckDB embedded, PostgreSQL by URL.

Tables:
- `raw_<dataset>`: the answering records (unit, dimensions, clamped measures), loaded from
  the configured file or read from a provider's table; only the engine reads it.
- `sm_datasets`: version (content hash) of each loaded dataset.
- `sm_released_cells`: the differencing ledger, one row per released or suppressed cell as
  a JSON predicate, across all analysts, numbered per request; replayed into the guard at
  start-up, and decisions take a per-dataset advisory lock on PostgreSQL and first catch up
  with what other processes recorded, so several node processes may share one database.
- `sm_releases`: released answers by query id, so an identical query gets the identical
  bytes (no averaging of repeated DP answers, no second budget spend).
- `sm_revoked`: revoked token ids.
- `sm_budgets` / `sm_budget_ledger`: DP budgets per (dataset, analyst) and per dataset.
  A reservation locks the cap rows (`SELECT ... FOR UPDATE` in PostgreSQL) and is committed
  or cancelled after the query, so concurrent clients can never overspend; the embedded
  store (one process) holds reservations in memory under a thread lock and writes the spend
  with the release (see :mod:`.store_budget`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
import sqlalchemy as sa

from safemicro.errors import SafemicroError
from safemicro.service.store_budget import BudgetExceeded, MemoryBudgets, _StoreBudgets
from safemicro.service.store_group import GroupCommit

__all__ = ["BudgetExceeded", "Store"]

_SAVE_RELEASE = sa.text("INSERT INTO sm_releases (query_id, dataset, body, created) VALUES (:q, :d, :b, :t)")


def _table(
    meta: sa.MetaData, name: str, key: dict[str, Any], *, indexed: tuple[str, ...] = (), **columns: Any
) -> sa.Table:
    """A table of the store: the ``key`` columns make its primary key, every other column is
    required (NOT NULL), and those named in ``indexed`` have an index."""
    return sa.Table(
        name,
        meta,
        *(sa.Column(c, t, primary_key=True) for c, t in key.items()),
        *(sa.Column(c, t, nullable=False, index=True if c in indexed else None) for c, t in columns.items()),
    )


class Store(_StoreBudgets):
    """All persistent state of a node; thread-safe."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")
        if not (self.postgres or url.startswith("duckdb")):
            raise SafemicroError(f"database URL must start with duckdb:/// or postgresql://, got {url.split(':')[0]!r}")
        if self.postgres and url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        try:
            if self.postgres:
                self.engine = sa.create_engine(url, pool_size=8, max_overflow=24, pool_pre_ping=True)
            else:
                self.engine = sa.create_engine(url, poolclass=sa.pool.StaticPool)
            with self.engine.connect():
                pass
        except Exception as e:
            raise SafemicroError(f"cannot open the database: {type(e).__name__}: {str(e).splitlines()[0]}") from None
        # DuckDB allows one writer per process and its connections are not thread-safe:
        # every transaction of the embedded store runs under this lock.
        self._lock = threading.RLock() if not self.postgres else None
        self._on_commit: list = []  # what runs once the embedded store's current transaction commits
        self.meta = sa.MetaData()
        self.datasets = _table(
            self.meta, "sm_datasets", {"name": sa.String(64)}, version=sa.String(64), loaded_at=sa.Float
        )
        self.cells = _table(
            self.meta,
            "sm_released_cells",
            {"id": sa.String(40)},
            indexed=("dataset", "seq"),
            # a dataset's ledger name: the dataset, or "<dataset>#records" for the record-level one
            dataset=sa.String(80),
            seq=sa.BigInteger,  # per ledger, one per request
            query_id=sa.String(64),
            status=sa.String(16),
            predicate=sa.Text,
            subject=sa.String(200),
            created=sa.Float,
        )
        self.releases = _table(
            self.meta, "sm_releases", {"query_id": sa.String(64)}, dataset=sa.String(64), body=sa.Text, created=sa.Float
        )
        self.revoked = _table(
            self.meta, "sm_revoked", {"jti": sa.String(200)}, reason=sa.String(500), revoked_at=sa.Float
        )
        self.budgets = _table(
            self.meta,
            "sm_budgets",
            {"dataset": sa.String(64), "scope": sa.String(16), "scope_id": sa.String(200)},
            cap=sa.Float,
            spent=sa.Float,
        )
        self.ledger = _table(
            self.meta,
            "sm_budget_ledger",
            {"reservation": sa.String(40)},
            dataset=sa.String(64),
            subject=sa.String(200),
            query_id=sa.String(64),
            amount=sa.Float,
            state=sa.String(16),  # reserved | committed | cancelled
            created=sa.Float,
        )
        with self.transaction() as c:
            self.meta.create_all(c)
        # Released answers never change: remember them. The embedded store has one process,
        # so its revocation list can live in memory too (PostgreSQL is asked every time, as
        # `safemicro token revoke --config` may write to it while the node runs).
        self._releases: dict[str, str] = {}
        self._revoked: set[str] | None = None
        # The embedded store also knows every stored query id (a superset: an id is added
        # when its release is written, before the commit), so a fresh query needs no read
        # under the store's lock to learn that it is fresh; and the budget rows that exist.
        self._saved: set[str] | None = None
        self._budget_rows: set[tuple[str, str, str]] | None = None
        self._memory: MemoryBudgets | None = None
        self._group: GroupCommit | None = None
        if not self.postgres:
            with self.transaction() as c:
                self._revoked = {r.jti for r in c.execute(sa.select(self.revoked.c.jti))}
                self._saved = {r.query_id for r in c.execute(sa.select(self.releases.c.query_id))}
                b = self.budgets.c
                stored = {
                    (r[0], r[1], r[2]): float(r[3])
                    for r in c.execute(sa.select(b.dataset, b.scope, b.scope_id, b.spent))
                }
            self._budget_rows = set(stored)
            self._memory = MemoryBudgets(stored)
            self._group = GroupCommit(self._lock, self.transaction, self._write_dp_releases)

    # ----- plumbing

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction (serialised in the embedded store)."""
        if self._lock is None:
            with self.engine.begin() as c:
                yield c
            return
        with self._lock:
            outer, self._on_commit = self._on_commit, []
            try:
                with self.engine.begin() as c:
                    yield c
                done = self._on_commit
            finally:
                self._on_commit = outer
            for f in done:  # committed: what waited for it (see .store_budget)
                f()

    def close(self) -> None:
        self.engine.dispose()

    # ----- raw data

    def raw_table(self, dataset: str, frame: pl.DataFrame) -> sa.Table:
        cols = [
            sa.Column(name, sa.Float if dtype.is_numeric() else sa.String(200), nullable=False)
            for name, dtype in frame.schema.items()
        ]
        return sa.Table(f"raw_{dataset}", sa.MetaData(), *cols)

    def load_raw(self, dataset: str, frame: pl.DataFrame, version: str) -> bool:
        """Write the answering records of `dataset` unless this version is there already."""
        with self.transaction() as c:
            row = c.execute(sa.select(self.datasets.c.version).where(self.datasets.c.name == dataset)).first()
            exists = sa.inspect(c).has_table(f"raw_{dataset}")
            if row is not None and row.version == version and exists:
                return False
            table = self.raw_table(dataset, frame)
            table.drop(c, checkfirst=True)
            table.create(c)
            self._bulk_insert(c, table, frame)
            c.execute(sa.delete(self.datasets).where(self.datasets.c.name == dataset))
            c.execute(sa.insert(self.datasets).values(name=dataset, version=version, loaded_at=time.time()))
            return True

    def _bulk_insert(self, c: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
        """Rows in bulk: DuckDB reads the Arrow table, PostgreSQL takes COPY."""
        raw = c.connection.driver_connection
        cols = ", ".join(f'"{name}"' for name in frame.columns)
        if self.postgres:
            with raw.cursor().copy(f'COPY "{table.name}" ({cols}) FROM STDIN') as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)
            return
        raw.register("_sm_load", frame.to_arrow())
        try:
            c.execute(sa.text(f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} FROM _sm_load'))
        finally:
            raw.unregister("_sm_load")

    def read_table(self, table: str) -> pl.DataFrame:
        """A provider's own table (dataset source `table:`) as a frame."""
        with self.transaction() as c:
            if not sa.inspect(c).has_table(table):
                raise SafemicroError(f"table {table!r} not found in the database")
            # no reflection (duckdb-engine cannot reflect under SQLAlchemy 2.1); the name is
            # checked against the config's name pattern before it gets here
            result = c.execute(sa.text(f'SELECT * FROM "{table}"'))
            names = list(result.keys())
            rows = result.fetchall()
        return pl.DataFrame([tuple(r) for r in rows], schema=names, orient="row", infer_schema_length=None)

    def read_raw(self, dataset: str) -> pl.DataFrame:
        return self.read_table(f"raw_{dataset}")

    # ----- differencing ledger

    def lock_ledger(self, c: sa.Connection, dataset: str) -> None:
        """Serialise ledger decisions on `dataset` across processes until `c` commits
        (a PostgreSQL advisory lock; the embedded store is one process under one lock)."""
        if self.postgres:
            key = int.from_bytes(
                hashlib.sha256(f"safemicro-ledger:{dataset}".encode()).digest()[:8], "big", signed=True
            )
            c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def record_cells(
        self, c: sa.Connection, dataset: str, query_id: str, subject: str, released: list[dict], suppressed: list[dict]
    ) -> int:
        """Store one request's cells under the next sequence number of the dataset (call
        with the ledger locked); the sequence number."""
        seq = (
            int(
                c.execute(
                    sa.select(sa.func.coalesce(sa.func.max(self.cells.c.seq), 0)).where(self.cells.c.dataset == dataset)
                ).scalar()
            )
            + 1
        )
        now = time.time()
        rows = [
            {
                "id": uuid.uuid4().hex,
                "dataset": dataset,
                "seq": seq,
                "query_id": query_id,
                "status": status,
                "predicate": json.dumps(p, sort_keys=True),
                "subject": subject,
                "created": now,
            }
            for status, preds in (("released", released), ("suppressed", suppressed))
            for p in preds
        ]
        if rows:
            c.execute(sa.insert(self.cells), rows)
        return seq

    def ledger_after(self, c: sa.Connection | None, dataset: str, after: int = 0) -> list[dict]:
        """Recorded cells of a dataset with a sequence number above `after`, oldest first:
        {"seq", "status", "predicate", "query_id", "subject"}."""
        cl = self.cells.c
        q = (
            sa.select(cl.seq, cl.status, cl.predicate, cl.query_id, cl.subject)
            .where(cl.dataset == dataset, cl.seq > after)
            .order_by(cl.seq, cl.id)
        )
        if c is None:
            with self.transaction() as conn:
                rows = conn.execute(q).all()
        else:
            rows = c.execute(q).all()
        return [
            {
                "seq": int(r.seq),
                "status": r.status,
                "predicate": json.loads(r.predicate),
                "query_id": r.query_id,
                "subject": r.subject,
            }
            for r in rows
        ]

    def ledger_history(self, dataset: str) -> list[dict]:
        """Every recorded cell of a dataset, oldest first."""
        return self.ledger_after(None, dataset, 0)

    # ----- cached releases

    def cached_release(self, query_id: str, c: sa.Connection | None = None) -> str | None:
        """The stored answer of a query id (inside the caller's transaction when `c` is given)."""
        body = self._releases.get(query_id)
        if body is not None:
            return body
        if self._saved is not None and query_id not in self._saved:
            return None  # never written by this (the only) process: nothing to read
        q = sa.select(self.releases.c.body).where(self.releases.c.query_id == query_id)
        if c is None:
            with self.transaction() as conn:
                row = conn.execute(q).first()
        else:
            row = c.execute(q).first()
        if row is None:
            return None
        if len(self._releases) < 100_000:
            self._releases[query_id] = row.body
        return row.body

    def save_release(self, c: sa.Connection, query_id: str, dataset: str, body: str) -> None:
        if self._saved is not None:
            self._saved.add(query_id)  # before the insert: a rolled-back id only costs a read
        # text, not Core: duckdb-engine has no compiled-statement cache, Core compiles every time
        c.execute(_SAVE_RELEASE, {"q": query_id, "d": dataset, "b": body, "t": time.time()})

    # ----- revocation

    def revoke(self, jti: str, reason: str = "") -> bool:
        """Add a token id to the revocation list; False if it was there already."""
        with self.transaction() as c:
            if c.execute(sa.select(self.revoked.c.jti).where(self.revoked.c.jti == jti)).first():
                return False
            c.execute(sa.insert(self.revoked).values(jti=jti, reason=reason[:500], revoked_at=time.time()))
        if self._revoked is not None:
            self._revoked.add(jti)
        return True

    def is_revoked(self, jti: str) -> bool:
        if self._revoked is not None:
            return jti in self._revoked
        with self.transaction() as c:
            return c.execute(sa.select(self.revoked.c.jti).where(self.revoked.c.jti == jti)).first() is not None
