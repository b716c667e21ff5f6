"""Concurrent analysts racing on overlapping queries through the real server (issue 13).

Twenty clients, each with its own token, send shuffled overlaps of the same attack
material at once — nested time windows per district, categories added one at a time,
districts against their province — so fresh decisions, cached answers and the ledger
race. Afterwards, over everything that was released: no released cell holds 1..9 people,
no set of 1..9 people has a count determined by all released cells together (an
independent MILP oracle), no suppressed cell is pinned down, identical queries got
identical answers, the audit log holds one entry per request, and the ledger in the
database replays into a guard that accepts every recorded request in order.
"""

from __future__ import annotations

import json
import random
import threading

import httpx
import polars as pl

from service_support import Server, displacement_records, post_query, token, write_config
from test_service_properties import VALUES, Oracle, T


def attack_queries() -> list[dict]:
    months = VALUES["month"]
    out = []
    for d in VALUES["district"]:
        for k in range(1, 7):  # nested windows: consecutive ones differ by one month
            out.append(
                {
                    "dataset": "displaced",
                    "kind": "count",
                    "by": ["group"],
                    "filters": {"district": [d]},
                    "time": {"start": months[0], "end": months[k - 1]},
                }
            )
    groups = VALUES["group"]
    for k in range(1, 5):  # one category added at a time
        out.append({"dataset": "displaced", "kind": "count", "by": ["district"], "filters": {"group": groups[:k]}})
        out.append(
            {
                "dataset": "displaced",
                "kind": "count",
                "by": ["district", "sex"],
                "filters": {"group": groups[:k]},
                "margins": False,
            }
        )
    for p in VALUES["province"]:
        out.append({"dataset": "displaced", "kind": "count", "by": ["sex"], "filters": {"province": [p]}})
    out.append({"dataset": "displaced", "kind": "count", "by": ["district"]})
    out.append({"dataset": "displaced", "kind": "crosstab", "by": ["district", "group"]})
    return out


def test_racing_clients_release_no_small_difference(tmp_path):
    cfg = write_config(tmp_path, f"duckdb:///{tmp_path / 'state.duckdb'}")
    server = Server(cfg).start()
    pool = attack_queries()
    results: list[tuple[dict, int, dict | None]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def client(i: int) -> None:
        tok = token(tmp_path, subject=f"analyst{i}")
        mine = random.Random(i).sample(pool, 12)  # overlaps with the other clients' picks
        barrier.wait()
        with httpx.Client(timeout=120) as h:
            for q in mine:
                r = post_query(server.url, tok, q, h)
                with lock:
                    results.append((q, r.status_code, r.json()))

    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    finally:
        server.stop()
    assert len(results) == 20 * 12
    assert {code for _, code, _ in results} <= {200, 409}, [b for _, c, b in results if c not in (200, 409)][:3]
    released = [(q, body) for q, code, body in results if code == 200]
    assert len(released) > 40 and any(code == 409 for _, code, _ in results)  # both outcomes raced

    # identical queries: identical answers (one decision, then the stored release)
    by_id: dict[str, str] = {}
    for _, body in released:
        cells = json.dumps(body["cells"], sort_keys=True)
        assert by_id.setdefault(body["query_id"], cells) == cells

    # every released cell against the records, and all of them together
    oracle = Oracle()
    seen = set()
    for q, body in released:
        if body["query_id"] not in seen:
            seen.add(body["query_id"])
            oracle.add(q, body["cells"])  # asserts: released cells are 0 or >= T and exact
    from service_oracle import small_group_determined

    everyone = [p or {"sex": {"in": VALUES["sex"]}} for p in oracle.predicates]
    assert small_group_determined(everyone, oracle.people, T) is None
    oracle.check_unrecoverable(limit=40)

    # the audit log: one request/auth/rejected entry per request, and the chain verifies
    from safemicro.service.audit import verify

    log = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert sum(e["kind"] in ("request", "auth", "rejected") for e in log) == len(results)
    assert verify(tmp_path / "audit.jsonl").ok

    # the ledger in the database: exactly the released fresh queries, and it replays cleanly
    from safemicro.service.config import load_config
    from safemicro.service.differencing import DifferencingGuard
    from safemicro.service.population import stored_requests
    from safemicro.service.store import Store

    store = Store(load_config(cfg).database)
    try:
        history = store.ledger_history("displaced")
    finally:
        store.close()
    assert {row["query_id"] for row in history} == set(seen)
    people = displacement_records().with_columns(month=pl.col("arrival").str.slice(0, 7), group=pl.col("status"))
    frame = people.select(pl.col("person_id").alias("_unit"), *[pl.col(d) for d in VALUES])
    guard = DifferencingGuard(frame, T, unit="_unit")
    for request in stored_requests(history):
        verdict = guard.check(request["released"], suppressed=request["suppressed"], locate=False)
        assert verdict.ok, verdict.reason
        guard.commit(request["released"], suppressed=request["suppressed"])


def test_racing_dp_queries_spend_exactly_what_was_released(tmp_path):
    """Twenty clients race distinct DP queries (and repeats of them) against a dataset cap
    of ten answers. The embedded store holds reservations in memory until the release
    commits (see safemicro.service.store_budget): exactly ten distinct answers are released,
    every other fresh query is refused 403, repeats get the stored bytes without spending,
    and the stored spend (cap rows, ledger, the budget endpoint) is exactly ten answers."""
    from safemicro.service.store import Store

    cfg = write_config(tmp_path, f"duckdb:///{tmp_path / 'state.duckdb'}", dp_budget=(100.0, 5.0))
    server = Server(cfg).start()
    queries = [
        {"dataset": "displaced_dp", "kind": kind, "by": by, "filters": {"sex": sexes}}
        | ({"measure": "income"} if kind == "sum" else {})
        for kind in ("count", "sum")
        for by in (["province"], ["group"], ["month"], ["province", "group"])
        for sexes in (["f"], ["m"], ["f", "m"])
    ]  # 24 distinct queries, each sent by several clients
    answers: dict[str, set[str]] = {}
    codes: list[int] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        tok = token(tmp_path, subject=f"analyst{i % 4}")
        order = random.Random(i).sample(queries, len(queries))
        with httpx.Client(timeout=60) as h:
            for q in order[:12]:
                r = post_query(server.url, tok, q, h)
                with lock:
                    codes.append(r.status_code)
                    if r.status_code == 200:
                        body = r.json()
                        body.pop("audit_seq")
                        answers.setdefault(json.dumps(q, sort_keys=True), set()).add(json.dumps(body))

    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        budget = httpx.get(
            server.url + "/v1/budget/displaced_dp", headers={"Authorization": f"Bearer {token(tmp_path)}"}
        ).json()
    finally:
        server.stop()
    assert set(codes) <= {200, 403} and len(codes) == 240
    assert len(answers) == 10  # the cap: 5.0 / 0.5
    assert all(len(bodies) == 1 for bodies in answers.values())  # repeats: the same bytes
    assert budget["dataset_total"]["spent"] == 5.0
    store = Store(f"duckdb:///{tmp_path / 'state.duckdb'}")
    try:
        assert sum(store.ledger_totals("displaced_dp").values()) == 5.0
        assert store.budget("displaced_dp", "nobody")["dataset"] == 5.0
    finally:
        store.close()
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert sum(e["kind"] == "request" for e in entries) == 240
    assert sum(e["kind"] == "decision" and e["payload"].get("epsilon") == 0.5 for e in entries) == 10
