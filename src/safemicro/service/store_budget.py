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


_LEDGER_ROW = sa.text(
    "INSERT INTO sm_budget_ledger (reservation, dataset, subject, query_id, amount, state, created) "
    "VALUES (:r, :d, :s, :q, :a, 'committed', :t)"
)


class _StoreBudgets:
    """The budget part of :class:`~safemicro.service.store.Store` (tables `sm_budgets` and
    `sm_budget_ledger`): PostgreSQL reserves in row-locked transactions, the embedded store
    in :class:`MemoryBudgets`."""

    budgets: sa.Table
    ledger: sa.Table
    _memory: MemoryBudgets | None
    _budget_rows: set[tuple[str, str, str]] | None
    _on_commit: list

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

    def commit_reservation(self, c: sa.Connection, reservation: str) -> None:
        """Mark a reservation spent (inside the caller's release transaction)."""
        if self._memory is not None:
            self._store_held(c, reservation)
            return
        c.execute(
            sa.update(self.ledger)
            .where(self.ledger.c.reservation == reservation, self.ledger.c.state == "reserved")
            .values(state="committed")
        )

    def _store_held(self, c: sa.Connection, reservation: str) -> None:
        """The embedded store's commit: the held amount written as spent, in one statement
        per new cap row and one for the existing ones, and its ledger row "committed"."""
        held = self._memory.get(reservation)
        if held is None:
            raise RuntimeError("no such budget reservation (cancelled or committed already)")
        rows = [(held.dataset, s, i) for s, i in sorted(held.caps)]
        new = [k for k in rows if k not in self._budget_rows]
        for dataset, scope, scope_id in new:
            cap = held.caps[(scope, scope_id)]
            c.execute(
                sa.insert(self.budgets).values(
                    dataset=dataset, scope=scope, scope_id=scope_id, cap=cap, spent=held.amount
                )
            )
        # text, not Core, for the statements of every release: duckdb-engine has no compiled-
        # statement cache (~0.5 ms of CPU each); one UPDATE for the existing cap rows
        old = [k for k in rows if k not in new]
        if old:
            params = {"a": held.amount, "d": held.dataset}
            cases, which = [], []
            for n, (_, scope, scope_id) in enumerate(old):
                params |= {f"s{n}": scope, f"i{n}": scope_id, f"c{n}": held.caps[(scope, scope_id)]}
                cases.append(f"WHEN scope = :s{n} AND scope_id = :i{n} THEN :c{n}")
                which.append(f"(scope = :s{n} AND scope_id = :i{n})")
            c.execute(
                sa.text(
                    f"UPDATE sm_budgets SET spent = spent + :a, cap = CASE {' '.join(cases)} ELSE cap END "
                    f"WHERE dataset = :d AND ({' OR '.join(which)})"
                ),
                params,
            )
        c.execute(
            _LEDGER_ROW,
            {
                "r": reservation,
                "d": held.dataset,
                "s": held.subject,
                "q": held.query_id,
                "a": held.amount,
                "t": time.time(),
            },
        )

        def settled() -> None:
            self._memory.settle(reservation)
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
