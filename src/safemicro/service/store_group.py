"""Group commit of DP releases in the embedded store: every release waiting is written in
one transaction, by whichever request gets the store first.

Why: DuckDB spends about a millisecond of CPU per statement, and the embedded store runs
every transaction under one lock. Under 20 clients a DP release held that lock ~13 ms (three
statements and a commit, stretched by threads waiting for the interpreter), the lock was
busy all the time, and a fresh DP query waited ~200 ms for it (measured on the example
survey, issue 13). Leader and followers, as databases commit their logs: a release joins the
queue, then takes the store lock; if the holder before it wrote it already, it is done,
else it writes the whole queue — its own and all that joined meanwhile — in one transaction
of three statements (four when new and existing cap rows mix) however many releases it
holds. A release still returns only once the transaction holding it committed; a failed
transaction fails every release in it (each caller cancels its reservation, as after any
failure).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa


@dataclass
class Pending:
    """One DP release waiting for its commit."""

    dataset: str
    query_id: str
    body: str
    reservation: str
    done: bool = False
    error: BaseException | None = None


class GroupCommit:
    """Leader/follower batching of :class:`Pending` releases under the store's lock."""

    def __init__(self, lock: threading.RLock, transaction: Callable, write: Callable) -> None:
        self._lock = lock  # the embedded store's transaction lock
        self._transaction = transaction
        self._write = write  # write(connection, [Pending, ...]) inside one transaction
        self._queue: list[Pending] = []
        self._queue_lock = threading.Lock()

    def submit(self, item: Pending) -> None:
        """Return once ``item`` is committed (raise what failed its transaction)."""
        with self._queue_lock:
            self._queue.append(item)
        with self._lock:
            if not item.done:  # nobody took it yet: write everything waiting
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    with self._transaction() as c:
                        self._write(c, batch)
                except BaseException as e:
                    for p in batch:
                        p.error = e
                for p in batch:
                    p.done = True
        if item.error is not None:
            raise item.error


def insert_rows(table: str, columns: tuple[str, ...], rows: list[tuple]) -> tuple[sa.TextClause, dict]:
    """One INSERT statement for many rows (text, not Core: duckdb-engine has no compiled-
    statement cache) and its parameters."""
    params, values = {}, []
    for n, row in enumerate(rows):
        names = [f"{c}{n}" for c in columns]
        params |= dict(zip(names, row))
        values.append("(" + ", ".join(f":{x}" for x in names) + ")")
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(values)}"
    return sa.text(sql), params
