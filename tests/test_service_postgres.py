"""The service against a real PostgreSQL started by the test run (initdb/pg_ctl in a temp dir).

Skipped only when the PostgreSQL server binaries are not installed (`make postgres`).
"""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import pytest
import yaml

from service_support import Postgres, Server, displacement_records, post_query, postgres_bin, token, write_config

pytestmark = pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL server binaries (initdb, pg_ctl) not installed; run `make postgres`"
)


@pytest.fixture(scope="module")
def pg():
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def node(pg, tmp_path_factory):
    """A node on PostgreSQL with a file dataset and one read from a provider's own table."""
    import psycopg

    folder = tmp_path_factory.mktemp("pgnode")
    url = pg.create_database("node")
    people = displacement_records()
    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=sm dbname=node", autocommit=True) as c:
        c.execute(
            "CREATE TABLE registrations (person_id text, province text, district text, arrival date, "
            "status text, sex text, income double precision)"
        )
        with c.cursor().copy("COPY registrations FROM STDIN") as cp:
            for row in people.iter_rows():
                cp.write_row(row)
    cfg_path = write_config(folder, url)
    cfg = yaml.safe_load(cfg_path.read_text())
    table_ds = dict(cfg["datasets"]["displaced"])
    table_ds.pop("file")
    cfg["datasets"]["registry"] = {**table_ds, "table": "registrations"}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    s = Server(cfg_path).start()
    yield s, folder, pg, cfg_path
    s.stop()


def sql(pg, query: str):
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=sm dbname=node") as c:
        return c.execute(query).fetchall()


def test_answers_from_postgres_match_the_records(node):
    s, folder, pg, _ = node
    tok = token(folder)
    people = displacement_records()
    truth = dict(people.group_by("district").len().iter_rows())
    for dataset in ("displaced", "registry"):
        r = post_query(s.url, tok, {"dataset": dataset, "kind": "count", "by": ["district"]})
        assert r.status_code == 200, r.text
        cells = {c["district"]: c for c in r.json()["cells"]}
        for d, n in truth.items():
            assert cells[d]["value"] == (n if cells[d]["status"] == "released" else None)
        assert cells["D13"]["status"] == "suppressed"
    # the state lives in PostgreSQL: raw tables, ledger, releases
    assert sql(pg, "SELECT count(*) FROM raw_displaced")[0][0] == people.height
    assert sql(pg, "SELECT count(*) FROM raw_registry")[0][0] == people.height
    assert sql(pg, "SELECT count(DISTINCT query_id) FROM sm_released_cells")[0][0] == 2
    months = sql(pg, "SELECT DISTINCT month FROM raw_registry ORDER BY 1")
    assert [m[0] for m in months][:2] == ["2024-01", "2024-02"]  # dates binned from a date column


def test_revocation_through_the_database_and_ledger_survives_restart(node):
    """`safemicro token revoke --config` writes the list while the node runs; a differencing
    attack split across a restart is still refused (the ledger is replayed)."""
    s, folder, pg, cfg_path = node
    victim = token(folder, subject="victim")
    assert post_query(s.url, victim, {"dataset": "displaced", "kind": "count"}).status_code == 200
    r = subprocess.run(
        [sys.executable, "-m", "safemicro.cli", "token", "revoke", victim, "--config", str(cfg_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    r = post_query(s.url, victim, {"dataset": "displaced", "kind": "count"})
    assert r.status_code == 401 and "revoked" in r.json()["error"]
    tok = token(folder, subject="patient")
    first = post_query(
        s.url,
        tok,
        {"dataset": "registry", "kind": "count", "by": ["province"], "margins": False, "filters": {"sex": ["m"]}},
    )
    assert first.status_code == 200
    s.stop()
    s.start()
    second = post_query(
        s.url,
        tok,
        {
            "dataset": "registry",
            "kind": "count",
            "by": ["district"],
            "margins": False,
            "filters": {"district": ["D11", "D12"], "sex": ["m"]},
        },
    )
    assert second.status_code == 409, second.text
    r = post_query(s.url, victim, {"dataset": "displaced", "kind": "count"})
    assert r.status_code == 401


def test_budgets_hold_under_20_concurrent_clients(node):
    s, folder, pg, _ = node
    analysts = [f"pg{i}" for i in range(4)]
    toks = {a: token(folder, subject=a) for a in analysts}
    codes: list[tuple[str, int]] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        who = analysts[i % 4]
        with httpx.Client(timeout=60) as h:
            for k in range(3):
                # 60 different queries (no cached answers)
                body = {
                    "dataset": "displaced_dp",
                    "kind": "count",
                    "by": ["group"],
                    "time": {"start": "2024-01" if i < 10 else "2024-02", "end": ["2024-04", "2024-05", "2024-06"][k]},
                    "filters": {
                        "sex": [["f", "m"][(i // 5) % 2]],
                        "district": [["D11", "D12", "D21", "D22", "D13"][i % 5]],
                    },
                }
                r = post_query(s.url, toks[who], body, h)
                with lock:
                    codes.append((who, r.status_code))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert {c for _, c in codes} <= {200, 403}
    ok = [w for w, c in codes if c == 200]
    # dataset cap 5.0 / 0.5 = 10 answers; analyst cap 2.0 / 0.5 = 4 each (4 analysts: 16 > 10)
    assert len(ok) == 10 and max(ok.count(a) for a in analysts) <= 4
    rows = sql(pg, "SELECT scope, sum(spent) FROM sm_budgets WHERE dataset = 'displaced_dp' GROUP BY scope")
    spent = dict(rows)
    assert spent["dataset"] == pytest.approx(5.0) and spent["analyst"] == pytest.approx(5.0)
    ledger = sql(pg, "SELECT state, count(*) FROM sm_budget_ledger WHERE dataset = 'displaced_dp' GROUP BY state")
    assert dict(ledger) == {"committed": 10}


def test_row_locks_hold_across_connection_pools(pg):
    """20 threads, each with its own engine (as separate processes would have), reserve from
    the same caps: the row locks never let the total pass a cap."""
    from safemicro.service.store import BudgetExceeded, Store

    url = pg.create_database("locks")
    Store(url).close()  # create the tables once
    granted: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        store = Store(url)
        try:
            for k in range(5):
                who = f"w{i % 3}"
                try:
                    rid = store.reserve("d", who, f"q{i}-{k}", 0.25, {("analyst", who): 2.0, ("dataset", "*"): 3.0})
                except BudgetExceeded:
                    continue
                with store.transaction() as c:
                    store.commit_reservation(c, rid)
                with lock:
                    granted.append(who)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(granted) == 12  # 3.0 / 0.25
    assert all(granted.count(w) <= 8 for w in set(granted))
    check = Store(url)
    try:
        assert sum(check.ledger_totals("d").values()) == pytest.approx(3.0)
        assert check.budget("d", "w0")["dataset"] == pytest.approx(3.0)
    finally:
        check.close()


def test_two_node_processes_share_one_ledger(node):
    """Two server processes on the same database: a differencing attack split between them
    (Alice asks node A, Bob node B, B started before Alice's release) is still refused."""
    s, folder, pg, cfg_path = node
    second = Server(cfg_path, "--workers", "2").start()  # itself two processes
    try:
        alice, bob = token(folder, subject="alice2"), token(folder, subject="bob2")
        first = post_query(
            s.url,
            alice,
            {
                "dataset": "displaced",
                "kind": "count",
                "by": ["province"],
                "margins": False,
                "filters": {"group": ["refugee"]},
            },
        )
        assert first.status_code == 200, first.text
        r = post_query(
            second.url,
            bob,
            {
                "dataset": "displaced",
                "kind": "count",
                "by": ["district"],
                "margins": False,
                "filters": {"district": ["D11", "D12"], "group": ["refugee"]},
            },
        )
        assert r.status_code == 409, r.text
        # the released answer is shared too: the same query on node B gets node A's bytes
        again = post_query(
            second.url,
            bob,
            {
                "dataset": "displaced",
                "kind": "count",
                "by": ["province"],
                "margins": False,
                "filters": {"group": ["refugee"]},
            },
        )
        assert again.status_code == 200
        assert {**again.json(), "audit_seq": 0} == {**first.json(), "audit_seq": 0}
    finally:
        second.stop()


def test_two_worker_processes_protect_declared_tables_once(pg, tmp_path):
    """Declared tables on PostgreSQL with `--workers 2`: both processes start together, the
    protected set is stored once (the second finds it, or loses the insert race and reads
    the first's), and every answer, whichever process gives it, comes from that one set."""
    url = pg.create_database("tables2")
    cfg_path = write_config(tmp_path, url)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["datasets"] = {
        "tabled": {**cfg["datasets"]["displaced"], "tables": [["district", "group"], ["month", "province"]]}
    }
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    s = Server(cfg_path, "--workers", "2").start()
    try:
        tok = token(tmp_path)
        q = {"dataset": "tabled", "kind": "count", "by": ["district", "group"]}
        answers = [post_query(s.url, tok, {**q, "margins": bool(i % 2)}) for i in range(24)]
        assert all(r.status_code == 200 for r in answers), answers[0].text
        for margins in (False, True):
            bodies = {str(r.json()["cells"]) for r in answers[int(margins) :: 2]}
            assert len(bodies) == 1  # one protected set, whichever process answered
    finally:
        s.stop()
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=sm dbname=tables2") as c:
        stored = c.execute("SELECT count(*) FROM sm_releases WHERE dataset = 'tabled'").fetchone()[0]
    assert stored == 1
    starts = [line for line in (tmp_path / "audit.jsonl").read_text().splitlines() if '"kind":"tables"' in line]
    assert len(starts) == 2  # each process logged the set it serves
