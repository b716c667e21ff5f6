"""The node's hot path under load (issue 13, the p95 tail of the 65/30/5 mix).

Measured on the declared-tables bench: a fresh DP query waited on the embedded store's one
lock behind reads that only learned that the query was fresh, and the first DP query of a
node waited seconds for OpenDP's import while every other request queued behind it. These
tests pin the fixes: no SQL for a query id the embedded store never saved, no budget-row
probes once the rows exist, and OpenDP loaded before the node serves.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_budget_rows_are_probed_once_and_caps_still_hold(tmp_path):
    from safemicro.service.store import BudgetExceeded

    store = Store(f"duckdb:///{tmp_path / 'state.duckdb'}")
    caps = {("analyst", "ana"): 1.0, ("dataset", "*"): 1.5}
    seen = _statements(store)
    store.reserve("d", "ana", "q1", 0.5, caps)
    seen.clear()
    store.reserve("d", "ana", "q2", 0.5, caps)
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1  # the cap rows, read once; before: one probe per row as well
    try:
        store.reserve("d", "ana", "q3", 0.5, caps)
        raise AssertionError("the analyst cap of 1.0 was passed")
    except BudgetExceeded:
        pass
    assert store.budget("d", "ana") == {"analyst": 1.0, "dataset": 1.0}
    store.close()


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
