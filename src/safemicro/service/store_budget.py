"""DP budget reservations of the embedded (one-process) store, held in memory until release.

Why not in the database: DuckDB spends 1-3 ms of CPU per statement and a disk flush per
commit, all under the embedded store's one lock. A reservation written as a transaction of
its own (read the cap rows, raise two, add a ledger row, commit) cost every fresh DP query
about 10 ms of CPU and 20 ms of that lock (measured on the example survey, issue 13). The
embedded store has one process, so a thread lock orders reservations just as the rows'
locks do in PostgreSQL: the amount is checked against the caps and held here, and reaches
the database once, in the transaction that stores the release (the spent rows raised and a
"committed" ledger row). A crash in between loses only reservations whose answers never
left the node, so the stored spend is never above or below what was released. Like the
store's other in-memory caches (saved query ids, revocations) this assumes one open
embedded store per database file, as one node process has.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from safemicro.service.store_group import GroupCommit, Pending, insert_rows


class BudgetExceeded(Exception):
    """A reservation that would take a cap past its limit."""

    def __init__(self, scope: str, cap: float, spent: float, amount: float) -> None:
        super().__init__(f"{scope} privacy budget exhausted: {spent:g} of {cap:g} spent, this query needs {amount:g}")
        self.scope = scope


@dataclass(frozen=True)
class Held:
    """One reservation not yet committed or cancelled."""

    dataset: str
    subject: str
    query_id: str
    amount: float
    caps: dict[tuple[str, str], float]


class MemoryBudgets:
    """Spent amounts per (dataset, scope, scope id): stored spend plus reservations held."""

    def __init__(self, stored: dict[tuple[str, str, str], float]) -> None:
        self.lock = threading.Lock()
        self.spent: dict[tuple[str, str, str], float] = dict(stored)
        self.held: dict[str, Held] = {}

    def reserve(
        self, dataset: str, subject: str, query_id: str, amount: float, caps: dict[tuple[str, str], float]
    ) -> str:
        """Hold `amount` on every cap, or raise BudgetExceeded (and hold nothing) if one would
        be passed; the reservation id."""
        with self.lock:
            for scope, scope_id in sorted(caps):
                spent = self.spent.get((dataset, scope, scope_id), 0.0)
                if spent + amount > caps[(scope, scope_id)] + 1e-12:
                    raise BudgetExceeded(scope, caps[(scope, scope_id)], spent, amount)
            for scope, scope_id in caps:
                key = (dataset, scope, scope_id)
                self.spent[key] = self.spent.get(key, 0.0) + amount
            reservation = uuid.uuid4().hex
            self.held[reservation] = Held(dataset, subject, query_id, amount, dict(caps))
        return reservation

    def get(self, reservation: str) -> Held | None:
        with self.lock:
            return self.held.get(reservation)

    def settle(self, reservation: str) -> None:
        """The reservation's spend is stored: keep it in `spent`, stop holding it."""
        with self.lock:
            self.held.pop(reservation, None)

    def cancel(self, reservation: str) -> None:
        """Give a held amount back (nothing was released); settled ones stay spent."""
        with self.lock:
            held = self.held.pop(reservation, None)
            if held is None:
                return
            for scope, scope_id in held.caps:
                key = (held.dataset, scope, scope_id)
                self.spent[key] = self.spent.get(key, 0.0) - held.amount

    def budget(self, dataset: str, subject: str) -> dict[str, float]:
        """Spent (committed or held) by an analyst and on the whole dataset."""
        with self.lock:
            return {
                "analyst": self.spent.get((dataset, "analyst", subject), 0.0),
                "dataset": self.spent.get((dataset, "dataset", "*"), 0.0),
            }


class _StoreBudgets:
    """The budget part of :class:`~safemicro.service.store.Store` (tables `sm_budgets` and
    `sm_budget_ledger`): PostgreSQL reserves in row-locked transactions, the embedded store
    in :class:`MemoryBudgets`."""

    budgets: sa.Table
    ledger: sa.Table
    _memory: MemoryBudgets | None
    _budget_rows: set[tuple[str, str, str]] | None
    _on_commit: list
    _group: GroupCommit | None
    _saved: set[str] | None

    def reserve(
        self, dataset: str, subject: str, query_id: str, amount: float, caps: dict[tuple[str, str], float]
    ) -> str:
        """Reserve `amount` on every (scope, scope_id) cap atomically; the reservation id.

        Raises BudgetExceeded (and changes nothing) if any cap would be passed.
        """
        if self._memory is not None:
            return self._memory.reserve(dataset, subject, query_id, amount, caps)
        # PostgreSQL: the cap rows locked in a fixed order (no deadlock between reservations)
        reservation = uuid.uuid4().hex
        keys = sorted(caps)
        with self.transaction() as c:
            for scope, scope_id in keys:
                self._ensure_budget_row(c, dataset, scope, scope_id, caps[(scope, scope_id)])
            b = self.budgets.c
            cond = sa.or_(*[sa.and_(b.scope == s, b.scope_id == i) for s, i in keys])
            q = sa.select(self.budgets).where(b.dataset == dataset, cond).order_by(b.scope, b.scope_id)
            rows = {(r.scope, r.scope_id): r for r in c.execute(q.with_for_update()).all()}
            for key in keys:
                cap = caps[key]
                spent = rows[key].spent
                if spent + amount > cap + 1e-12:
                    raise BudgetExceeded(key[0], cap, spent, amount)
            for scope, scope_id in keys:
                c.execute(
                    sa.update(self.budgets)
                    .where(b.dataset == dataset, b.scope == scope, b.scope_id == scope_id)
                    .values(spent=b.spent + amount, cap=caps[(scope, scope_id)])
                )
            c.execute(
                sa.insert(self.ledger).values(
                    reservation=reservation,
                    dataset=dataset,
                    subject=subject,
                    query_id=query_id,
                    amount=amount,
                    state="reserved",
                    created=time.time(),
                )
            )
        return reservation

    def _ensure_budget_row(self, c: sa.Connection, dataset: str, scope: str, scope_id: str, cap: float) -> None:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        values = dict(dataset=dataset, scope=scope, scope_id=scope_id, cap=cap, spent=0.0)
        c.execute(pg_insert(self.budgets).values(**values).on_conflict_do_nothing())

    def save_dp_release(self, dataset: str, query_id: str, body: str, reservation: str) -> str | None:
        """Store a DP answer and spend its reservation in one commit; the body another
        process stored for the same query first (then this one is not stored: the caller
        cancels its reservation), else None. The embedded store commits the releases
        waiting together (:mod:`.store_group`)."""
        if self._group is not None:
            self._group.submit(Pending(dataset, query_id, body, reservation))
            return None
        with self.transaction() as c:
            self.lock_ledger(c, dataset)
            earlier = self.cached_release(query_id, c)
            if earlier is None:
                self.commit_reservation(c, reservation)
                self.save_release(c, query_id, dataset, body)
        return earlier

    def _write_dp_releases(self, c: sa.Connection, batch: list[Pending]) -> None:
        """The embedded store's group commit: the answers and their spending, in one statement each."""
        for p in batch:
            self._saved.add(p.query_id)  # before the insert: a rolled-back id only costs a read
        now = time.time()
        sql, params = insert_rows(
            "sm_releases",
            ("query_id", "dataset", "body", "created"),
            [(p.query_id, p.dataset, p.body, now) for p in batch],
        )
        c.execute(sql, params)
        self._store_held(c, [p.reservation for p in batch])

    def commit_reservation(self, c: sa.Connection, reservation: str) -> None:
        """Mark a reservation spent (inside the caller's release transaction)."""
        if self._memory is not None:
            self._store_held(c, [reservation])
            return
        c.execute(
            sa.update(self.ledger)
            .where(self.ledger.c.reservation == reservation, self.ledger.c.state == "reserved")
            .values(state="committed")
        )

    def _store_held(self, c: sa.Connection, reservations: list[str]) -> None:
        """The embedded store's commit: the held amounts written as spent — one statement for
        the new cap rows, one for the existing ones — and their ledger rows "committed"."""
        held = [self._memory.get(r) for r in reservations]
        if any(h is None for h in held):
            raise RuntimeError("no such budget reservation (cancelled or committed already)")
        spent: dict[tuple[str, str, str], float] = {}
        caps: dict[tuple[str, str, str], float] = {}
        for h in held:
            for (scope, scope_id), cap in sorted(h.caps.items()):
                key = (h.dataset, scope, scope_id)
                spent[key] = spent.get(key, 0.0) + h.amount
                caps[key] = cap
        new = [k for k in spent if k not in self._budget_rows]
        if new:
            c.execute(
                *insert_rows(
                    "sm_budgets",
                    ("dataset", "scope", "scope_id", "cap", "spent"),
                    [(*k, caps[k], spent[k]) for k in new],
                )
            )
        old = [k for k in spent if k not in new]
        if old:
            params: dict = {}
            amounts, limits, which = [], [], []
            for n, key in enumerate(old):
                params |= dict(zip((f"d{n}", f"s{n}", f"i{n}", f"a{n}", f"c{n}"), (*key, spent[key], caps[key])))
                match = f"(dataset = :d{n} AND scope = :s{n} AND scope_id = :i{n})"
                amounts.append(f"WHEN {match} THEN :a{n}")
                limits.append(f"WHEN {match} THEN :c{n}")
                which.append(match)
            c.execute(
                sa.text(
                    f"UPDATE sm_budgets SET spent = spent + CASE {' '.join(amounts)} ELSE 0 END, "
                    f"cap = CASE {' '.join(limits)} ELSE cap END WHERE {' OR '.join(which)}"
                ),
                params,
            )
        now = time.time()
        c.execute(
            *insert_rows(
                "sm_budget_ledger",
                ("reservation", "dataset", "subject", "query_id", "amount", "state", "created"),
                [(r, h.dataset, h.subject, h.query_id, h.amount, "committed", now) for r, h in zip(reservations, held)],
            )
        )

        def settled() -> None:
            for r in reservations:
                self._memory.settle(r)
            self._budget_rows.update(new)

        self._on_commit.append(settled)

    def cancel_reservation(self, reservation: str) -> None:
        """Give a reserved amount back (the query failed before anything was released)."""
        if self._memory is not None:
            self._memory.cancel(reservation)
            return
        with self.transaction() as c:
            row = c.execute(
                sa.select(self.ledger).where(
                    self.ledger.c.reservation == reservation, self.ledger.c.state == "reserved"
                )
            ).first()
            if row is None:
                return
            b = self.budgets.c
            c.execute(
                sa.select(self.budgets).where(b.dataset == row.dataset).order_by(b.scope, b.scope_id).with_for_update()
            )
            for scope, scope_id in (("analyst", row.subject), ("dataset", "*")):
                c.execute(
                    sa.update(self.budgets)
                    .where(b.dataset == row.dataset, b.scope == scope, b.scope_id == scope_id)
                    .values(spent=b.spent - row.amount)
                )
            c.execute(sa.update(self.ledger).where(self.ledger.c.reservation == reservation).values(state="cancelled"))

    def budget(self, dataset: str, subject: str) -> dict[str, float]:
        """Spent amounts (committed or reserved) of an analyst and of the whole dataset."""
        if self._memory is not None:
            return self._memory.budget(dataset, subject)
        b = self.budgets.c
        with self.transaction() as c:
            rows = c.execute(
                sa.select(b.scope, b.scope_id, b.spent).where(
                    b.dataset == dataset,
                    sa.or_(sa.and_(b.scope == "analyst", b.scope_id == subject), b.scope == "dataset"),
                )
            ).all()
        out = {"analyst": 0.0, "dataset": 0.0}
        for r in rows:
            out[r.scope] = float(r.spent)
        return out

    def ledger_totals(self, dataset: str) -> dict[str, float]:
        """Committed spend per analyst from the ledger (independent of the cap rows; for checks)."""
        with self.transaction() as c:
            rows = c.execute(
                sa.select(self.ledger.c.subject, sa.func.sum(self.ledger.c.amount))
                .where(self.ledger.c.dataset == dataset, self.ledger.c.state != "cancelled")
                .group_by(self.ledger.c.subject)
            ).all()
        return {r[0]: float(r[1]) for r in rows}
