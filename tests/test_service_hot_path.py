"""The node's hot path under load (issue 13, the p95 tail of the 65/30/5 mix).

Measured on the declared-tables bench: a fresh DP query waited on the embedded store's one
lock behind reads that only learned that the query was fresh, and the first DP query of a
node waited seconds for OpenDP's import while every other request queued behind it. These
tests pin the fixes: no SQL for a query id the embedded store never saved, no SQL for a
budget reservation in the embedded store, and OpenDP loaded before the node serves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from safemicro.service.store import Store


def _statements(store: Store) -> list[str]:
    seen: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_a_fresh_query_id_costs_no_read_in_the_embedded_store(tmp_path):
    url = f"duckdb:///{tmp_path / 'state.duckdb'}"
    store = Store(url)
    seen = _statements(store)
    assert store.cached_release("f" * 64) is None
    assert seen == []  # before: one SELECT under the store's lock per fresh query
    with store.transaction() as c:
        store.save_release(c, "a" * 64, "d", '{"x":1}')
    assert store.cached_release("a" * 64) == '{"x":1}'
    try:  # a release whose transaction rolls back is not there afterwards
        with store.transaction() as c:
            store.save_release(c, "b" * 64, "d", '{"x":2}')
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert store.cached_release("b" * 64) is None
    store.close()
    again = Store(url)  # ids saved before a restart are known again
    seen = _statements(again)
    assert again.cached_release("a" * 64) == '{"x":1}'
    assert len(seen) == 1
    assert again.cached_release("c" * 64) is None and len(seen) == 1
    again.close()


def test_embedded_reservations_run_no_sql_and_the_stored_spend_matches_releases(tmp_path):
    """A reservation of the embedded store is held in memory (before: a transaction of its
    own, four statements and a commit, ~10 ms of CPU under the store's one lock per fresh DP
    query); the spend reaches the database with the release, only if that commits."""
    from safemicro.service.store import BudgetExceeded

    url = f"duckdb:///{tmp_path / 'state.duckdb'}"
    store = Store(url)
    caps = {("analyst", "ana"): 1.0, ("dataset", "*"): 1.5}
    seen = _statements(store)
    r1 = store.reserve("d", "ana", "q1", 0.5, caps)
    r2 = store.reserve("d", "ana", "q2", 0.5, caps)
    assert seen == []
    with pytest.raises(BudgetExceeded, match="analyst"):
        store.reserve("d", "ana", "q3", 0.5, caps)  # held amounts count against the caps
    assert store.budget("d", "ana") == {"analyst": 1.0, "dataset": 1.0}
    with pytest.raises(RuntimeError, match="rolled back"):  # the release fails: nothing stored
        with store.transaction() as c:
            store.commit_reservation(c, r2)
            raise RuntimeError("rolled back")
    store.cancel_reservation(r2)  # as the node does when a release fails
    assert store.budget("d", "ana") == {"analyst": 0.5, "dataset": 0.5}
    with store.transaction() as c:
        store.commit_reservation(c, r1)
    store.cancel_reservation(r1)  # committed: stays spent
    assert store.budget("d", "ana") == {"analyst": 0.5, "dataset": 0.5}
    bob = store.reserve("d", "bob", "q4", 0.5, {("analyst", "bob"): 1.0, ("dataset", "*"): 1.5})
    with store.transaction() as c:
        store.commit_reservation(c, bob)
    with pytest.raises(BudgetExceeded, match="dataset"):
        store.reserve("d", "carl", "q5", 0.6, {("analyst", "carl"): 1.0, ("dataset", "*"): 1.5})
    store.close()
    again = Store(url)  # what was committed is what the database holds
    assert again.budget("d", "ana") == {"analyst": 0.5, "dataset": 1.0}
    assert again.budget("d", "bob") == {"analyst": 0.5, "dataset": 1.0}
    assert again.ledger_totals("d") == {"ana": 0.5, "bob": 0.5}
    with again.transaction() as c:
        rows = c.execute(sa.text("SELECT scope, scope_id, cap, spent FROM sm_budgets ORDER BY scope, scope_id")).all()
    assert [tuple(r) for r in rows] == [
        ("analyst", "ana", 1.0, 0.5),
        ("analyst", "bob", 1.0, 0.5),
        ("dataset", "*", 1.5, 1.0),
    ]
    with pytest.raises(BudgetExceeded, match="dataset"):
        again.reserve("d", "carl", "q5", 0.6, {("analyst", "carl"): 1.0, ("dataset", "*"): 1.5})
    again.close()


def test_dp_releases_waiting_for_the_embedded_store_commit_together(tmp_path):
    """Group commit (safemicro.service.store_group): releases that queue while the store is
    busy are written by the first of them to get it, in one transaction of three statements;
    each returns only then, stored and spent. A transaction that fails fails every release
    in it and stores none; the callers cancel, and the spend is as if they never came."""
    import threading
    import time

    url = f"duckdb:///{tmp_path / 'state.duckdb'}"
    store = Store(url)
    caps = {("analyst", "ana"): 10.0, ("dataset", "*"): 10.0}

    def release_all(queries: list[str], reservations: list[str]) -> tuple[list, list[str]]:
        errors: list[BaseException | None] = [None] * len(queries)

        def one(i: int) -> None:
            try:
                store.save_dp_release("d", queries[i], f'{{"n":{i}}}', reservations[i])
            except BaseException as e:  # noqa: BLE001 - collected for the assertions
                errors[i] = e
                store.cancel_reservation(reservations[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(queries))]
        with store._lock:  # the store is busy: every release queues behind it
            for t in threads:
                t.start()
            while len(store._group._queue) < len(queries):
                time.sleep(0.001)
            seen = _statements(store)
        for t in threads:
            t.join()
        return errors, seen

    queries = [f"{i:064x}" for i in range(8)]
    errors, seen = release_all(queries, [store.reserve("d", "ana", q, 0.5, caps) for q in queries])
    assert errors == [None] * 8
    assert len(seen) == 3  # one INSERT each for the answers, the new cap rows and the spend's ledger rows
    assert all(store.cached_release(q) == f'{{"n":{i}}}' for i, q in enumerate(queries))
    assert store.budget("d", "ana") == {"analyst": 4.0, "dataset": 4.0}

    more = [f"{i:064x}" for i in range(8, 12)]
    reservations = [store.reserve("d", "ana", q, 0.5, caps) for q in more]
    store.cancel_reservation(reservations[2])  # a release that cannot commit fails its batch
    errors, seen = release_all(more, reservations)
    assert all(isinstance(e, RuntimeError) for e in errors) and len(seen) == 1  # rolled back after the answers
    assert all(store.cached_release(q) is None for q in more)
    assert store.budget("d", "ana") == {"analyst": 4.0, "dataset": 4.0}

    mixed = [f"{i:064x}" for i in range(12, 16)]
    who = ["ana", "bob", "ana", "bob"]
    reservations = [
        store.reserve("d", w, q, 0.25, {("analyst", w): 10.0, ("dataset", "*"): 10.0}) for w, q in zip(who, mixed)
    ]
    errors, seen = release_all(mixed, reservations)
    assert errors == [None] * 4 and len(seen) == 4  # and one UPDATE for ana's and the dataset's rows
    assert store.budget("d", "bob") == {"analyst": 0.5, "dataset": 5.0}
    store.close()
    again = Store(url)
    assert again.ledger_totals("d") == {"ana": 4.5, "bob": 0.5}
    assert again.budget("d", "ana") == {"analyst": 4.5, "dataset": 5.0}
    again.close()


def test_a_dp_node_loads_opendp_before_it_serves(tmp_path):
    """In a fresh interpreter: building a node with a DP dataset imports OpenDP (1-5 s)
    then, not in the first DP query that every concurrent request would wait behind."""
    here = Path(__file__).resolve().parent
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(here)!r})
        from pathlib import Path
        from service_support import write_config
        from safemicro.service.config import load_config
        from safemicro.service.node import Node
        cfg = write_config(Path({str(tmp_path)!r}), "duckdb:///{tmp_path / "state.duckdb"}")
        assert "opendp" not in sys.modules
        Node(load_config(cfg)).close()
        print("opendp" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_each_answer_waits_for_one_disk_flush_that_covers_all_its_audit_entries(tmp_path, monkeypatch):
    """A query's "request" (and "decision") entries are written, then flushed by the one
    fsync its "release" or refusal waits for: one disk flush per answer instead of two or
    three (each 3 ms or more, the largest wait of a cached answer under load), and nothing
    the query logged is left unflushed when it returns."""
    import os

    from safemicro.service.config import load_config
    from safemicro.service.node import Node
    from safemicro.service.queries import Query
    from safemicro.service.refusal import Refusal
    from service_support import token, write_config

    cfg = write_config(tmp_path, f"duckdb:///{tmp_path / 'state.duckdb'}")
    node = Node(load_config(cfg))
    who = node.authenticate(token(tmp_path), "/v1/query")
    flushes: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushes.append(fd), real(fd))[1])
    queries = [
        {"dataset": "displaced", "kind": "count", "by": ["province"]},  # protected, ledger, stored
        {"dataset": "displaced", "kind": "count", "by": ["province"]},  # the stored answer again
        {"dataset": "displaced_dp", "kind": "count", "by": ["province"]},  # DP: budget, noise, stored
        {"dataset": "nowhere", "kind": "count", "by": ["province"]},  # refused
    ]
    for i, q in enumerate(queries, start=1):
        try:
            node.query(who, Query.model_validate(q))
        except Refusal:
            pass
        assert len(flushes) == i, q
        assert node.audit._sync.synced == node.audit._sync.written  # everything written is on disk
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    expected = ["request", "decision", "release", "request", "release"]  # protected, then stored
    expected += ["request", "decision", "release", "request", "decision"]  # DP, then refused
    assert kinds[-10:] == expected
    node.close()


def test_an_open_node_holds_one_blas_thread_for_its_request_threads(tmp_path):
    """The ledger's and protection's dense products are small: one BLAS thread. The limit is
    process-wide and threadpoolctl (3.8 and later) ignores one set from any thread but the
    first that set one, so a node sets it in the thread that opens it, and a request's
    worker thread sees it. The first node opened sets it, the last one closed restores the
    limit from before. In a process of its own: the limit is the process's."""
    here = Path(__file__).resolve().parent
    code = textwrap.dedent(
        f"""
        import sys, threading
        sys.path.insert(0, {str(here)!r})
        from pathlib import Path
        import scipy.linalg
        from threadpoolctl import threadpool_info, threadpool_limits
        from service_support import write_config
        from safemicro.service.blas import hold_one_blas_thread, release_blas_threads
        from safemicro.service.config import load_config
        from safemicro.service.node import Node

        def blas():
            return sorted({{m["num_threads"] for m in threadpool_info() if m["user_api"] == "blas"}})

        def in_a_worker():
            seen = []
            worker = threading.Thread(target=lambda: seen.append(blas()))
            worker.start()
            worker.join()
            return seen[0]

        seen = {{}}
        with threadpool_limits(limits=2, user_api="blas"):
            seen["before"] = blas()
            node = Node(load_config(write_config(Path({str(tmp_path)!r}), "duckdb:///{tmp_path / "state.duckdb"}")))
            seen["open"] = in_a_worker()
            hold_one_blas_thread()  # a second node opened
            node.close()
            seen["one still open"] = in_a_worker()
            release_blas_threads()
            seen["all closed"] = in_a_worker()
        print(seen)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # the CLI's setting stays out
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"), OPENBLAS_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    expected = {"before": [2], "open": [1], "one still open": [1], "all closed": [2]}
    assert run.stdout.strip().splitlines()[-1] == str(expected)
