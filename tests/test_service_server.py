"""The real server on 127.0.0.1 with the embedded DuckDB store: answers, protection flags,
bad requests, OpenAPI, signed responses, the client, the audit chain and kill -9."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time

import httpx
import polars as pl
import pytest
from cryptography.hazmat.primitives import serialization

from safemicro.client import Client, ServiceError
from service_oracle import smoothed_quantile
from service_support import Server, displacement_records, post_query, token, write_config


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    cfg = write_config(
        folder,
        f"duckdb:///{folder / 'state.duckdb'}",
        copies=("d_sum", "d_mean", "d_quantile", "d_cross", "d_same", "d_combine"),
    )
    s = Server(cfg).start()
    yield s, folder
    s.stop()


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    return displacement_records().with_columns(month=pl.col("arrival").str.slice(0, 7), group=pl.col("status"))


def auth(tok: str) -> dict:
    return {"Authorization": f"Bearer {tok}"}


def true_counts(people: pl.DataFrame, by: list[str]) -> dict:
    return {tuple(r[:-1]): r[-1] for r in people.group_by(by).len().iter_rows()}


def test_health_keys_and_openapi(node):
    s, folder = node
    assert httpx.get(s.url + "/v1/health").json()["status"] == "ok"
    pem = httpx.get(s.url + "/v1/keys").json()["public_key"]
    assert pem.strip() == (folder / "node.pub").read_text().strip()
    spec = httpx.get(s.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    # the whole surface: no endpoint that could return records
    assert set(spec["paths"]) == {
        "/v1/health",
        "/v1/keys",
        "/v1/catalogue",
        "/v1/query",
        "/v1/budget/{dataset}",
        "/v1/admin/revocations",
        "/v1/audit/checkpoint",
    }
    q = spec["components"]["schemas"]["Query"]
    assert set(q["properties"]["kind"]["enum"]) == {"count", "sum", "mean", "quantile", "crosstab"}
    assert q.get("additionalProperties") is False
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert spec["paths"]["/v1/query"]["post"]["security"] == [{"HTTPBearer": []}]
    try:
        from openapi_spec_validator import validate
    except ImportError:
        return
    validate(spec)


def test_counts_match_the_records_and_are_protected(node, people):
    s, folder = node
    c = Client(s.url, token(folder))
    t = c.query("displaced", "count", by=["district", "group"])
    truth = true_counts(people, ["district", "group"])
    inner = t.filter(pl.col("district").is_not_null() & pl.col("group").is_not_null())
    assert inner.height == 5 * 4  # every declared combination, none dropped
    for row in inner.iter_rows(named=True):
        n = truth.get((row["district"], row["group"]), 0)
        if row["status"] == "released":
            assert row["value"] == n and (n == 0 or n >= 10)
        else:
            assert row["value"] is None and row["rule"] in ("threshold", "secondary")
            if row["rule"] == "threshold":
                assert 1 <= n < 10
            lower = 0 if row["lower"] is None else row["lower"]
            upper = float("inf") if row["upper"] is None else row["upper"]  # None = unbounded
            assert lower <= n <= upper
    # D13 (9 people) is suppressed in its margin too, and some other cell with it
    d13 = t.filter((pl.col("district") == "D13") & pl.col("group").is_null())
    assert d13["status"][0] == "suppressed"
    total = t.filter(pl.col("district").is_null() & pl.col("group").is_null())
    assert total["value"][0] == people.height
    assert c.last.meta["mode"] == "sdc" and c.last.meta["audit_seq"] > 0


def test_sum_mean_quantile_and_filters(node, people):
    s, folder = node
    c = Client(s.url, token(folder))
    clamped = people.with_columns(pl.col("income").clip(0, 1_000_000))
    t = c.query("d_sum", "sum", by=["province"], measure="income", filters={"sex": ["f"]})
    truth = clamped.filter(pl.col("sex") == "f").group_by("province").agg(pl.col("income").sum())
    for prov, total in truth.iter_rows():
        row = t.filter(pl.col("province") == prov).row(0, named=True)
        if row["status"] == "released":
            assert row["value"] == pytest.approx(total)
    m = c.query("d_mean", "mean", by=["group"], measure="income", time=("2024-01", "2024-03"))
    sub = clamped.filter(pl.col("month") <= "2024-03")
    for st, mean in sub.group_by("group").agg(pl.col("income").mean()).iter_rows():
        row = m.filter(pl.col("group") == st).row(0, named=True)
        if row["status"] == "released":
            assert row["value"] == pytest.approx(mean)
    qt = c.query("d_quantile", "quantile", measure="income", quantile=0.5, by=["province"])
    for prov, incomes in clamped.group_by("province").agg(pl.col("income")).iter_rows():
        row = qt.filter(pl.col("province") == prov).row(0, named=True)
        # the smoothed, rounded median of the quantile rule (issue 13), granularity 10
        assert row["status"] == "released" and row["value"] == pytest.approx(smoothed_quantile(incomes, 0.5, 10, 10))
    x = c.query("d_cross", "crosstab", by=["province", "sex"], pandas=True)
    assert {"province", "sex", "value", "status"} <= set(x.columns)


def test_bad_requests_are_4xx_with_a_message(node):
    s, folder = node
    tok = token(folder)
    cases = [
        ({"dataset": "displaced", "kind": "count", "by": ["nationality"]}, 422, "unknown dimension"),
        ({"dataset": "displaced", "kind": "count", "by": ["province; DROP TABLE raw_displaced"]}, 422, "dimension"),
        ({"dataset": "displaced", "kind": "count", "filters": {"group": ["x' OR '1'='1"]}}, 422, "declared value"),
        ({"dataset": "displaced", "kind": "count", "filters": {"group": ["stateless"]}}, 422, "declared value"),
        ({"dataset": "displaced", "kind": "count", "time": {"start": "2024-05", "end": "2024-02"}}, 422, "window"),
        ({"dataset": "displaced", "kind": "count", "time": {"start": "1999-01", "end": "2024-02"}}, 422, "time bin"),
        ({"dataset": "displaced", "kind": "sum"}, 422, "measure"),
        ({"dataset": "displaced", "kind": "sum", "measure": "person_id"}, 422, "unknown measure"),
        ({"dataset": "displaced", "kind": "count", "sql": "select * from raw_displaced"}, 422, "sql"),
        ({"dataset": "nowhere", "kind": "count"}, 404, "no dataset 'nowhere' is available"),
        ({"dataset": "displaced", "kind": "records"}, 422, "kind"),
        ({"dataset": "displaced", "kind": "count", "by": "province"}, 422, "by"),
        ([1, 2, 3], 422, "body"),
    ]
    for body, status, words in cases:
        r = post_query(s.url, tok, body)
        assert r.status_code == status, (body, r.text)
        assert words in r.json()["error"], (body, r.text)
        assert '"cells"' not in r.text and "p0" not in r.text
    h = {**auth(tok), "content-type": "application/json"}
    r = httpx.post(s.url + "/v1/query", content=b'{"dataset": "displaced", "kind": ', headers=h)
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    r = httpx.post(s.url + "/v1/query", content=b"\xff\xfe garbage", headers=h)
    assert r.status_code in (400, 422)
    huge = {"dataset": "displaced", "kind": "count", "filters": {"group": ["refugee"] * 200_000}}
    r = post_query(s.url, tok, huge)
    assert r.status_code == 413 and "larger than" in r.json()["error"]

    def chunks():
        yield b'{"dataset": "displaced", "kind": "count", "pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    r = httpx.post(s.url + "/v1/query", content=chunks(), headers=h)
    assert r.status_code == 413
    r = httpx.get(s.url + "/v1/budget/nowhere", headers=auth(tok))
    assert r.status_code == 404


def test_every_response_is_signed(node):
    s, folder = node
    key = serialization.load_pem_public_key((folder / "node.pub").read_bytes())
    for r in (
        post_query(s.url, token(folder), {"dataset": "displaced", "kind": "count", "by": ["sex"]}),
        post_query(s.url, "garbage", {"dataset": "displaced", "kind": "count"}),
        post_query(s.url, token(folder), {"dataset": "displaced", "kind": "count", "pad": "x" * 20000}),
        httpx.get(s.url + "/v1/health"),
        httpx.get(s.url + "/nowhere"),
    ):
        key.verify(base64.b64decode(r.headers["x-safemicro-signature"]), r.content)
    # the client refuses a body that does not match its signature
    c = Client(s.url, token(folder), public_key=(folder / "issuer.pub").read_text())  # wrong key pinned
    with pytest.raises(Exception, match="signature"):
        c.query("displaced", "count", by=["sex"])


def test_identical_query_gets_identical_bytes(node):
    s, folder = node
    body = {"dataset": "d_same", "kind": "count", "by": ["group"], "filters": {"sex": ["m", "f"]}}
    a = post_query(s.url, token(folder, subject="a"), body).json()
    b = post_query(s.url, token(folder, subject="b"), {**body, "filters": {"sex": ["f", "m"]}}).json()
    assert a.pop("audit_seq") < b.pop("audit_seq")
    assert a == b


def test_client_errors_are_clear(node):
    s, folder = node
    c = Client(s.url, token(folder))
    with pytest.raises(ServiceError) as e:
        c.query("displaced", "count", by=["nationality"])
    assert e.value.status == 422 and "unknown dimension" in str(e.value)
    cat = c.catalogue()
    assert cat["datasets"]["displaced"]["dimensions"]["district"]["parent"] == "province"
    assert cat["datasets"]["displaced_dp"]["mode"] == "dp"


def audit_verify(log) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "safemicro.cli", "audit", "verify", str(log)], capture_output=True, text=True, timeout=60
    )


def test_audit_chain_verifies_and_tampering_is_detected(node, tmp_path):
    s, folder = node
    post_query(s.url, token(folder), {"dataset": "displaced", "kind": "count", "by": ["province"]})
    post_query(s.url, "not-a-token", {"dataset": "displaced", "kind": "count"})
    log = folder / "audit.jsonl"
    r = audit_verify(log)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = log.read_bytes().splitlines(keepends=True)
    kinds = [json.loads(x)["kind"] for x in lines]
    assert {"start", "request", "decision", "release", "auth"} <= set(kinds)
    from safemicro.service.audit import verify

    copy = tmp_path / "copy.jsonl"
    for i in (0, 1, len(lines) // 2, len(lines) - 1):  # any byte of any entry: a spread of both
        line = lines[i]
        for pos in sorted({0, 1, len(line) // 3, len(line) // 2, len(line) - 3, len(line) - 2}):
            tampered = bytearray(line)
            tampered[pos] = ord("7") if tampered[pos] != ord("7") else ord("8")
            copy.write_bytes(b"".join(lines[:i] + [bytes(tampered)] + lines[i + 1 :]))
            report = verify(copy)
            assert not report.ok and report.first_bad_line == i + 1, (i, pos)
    copy.write_bytes(b"".join(lines[:3] + lines[4:]))  # a deleted entry
    assert not verify(copy).ok
    copy.write_bytes(b"".join(lines[:2] + [lines[3], lines[2]] + lines[4:]))  # two swapped
    assert not verify(copy).ok
    r = audit_verify(copy)  # the CLI says where
    assert r.returncode == 1 and "line 3" in r.stderr


def test_kill9_under_load_loses_no_committed_entry(tmp_path):
    """kill -9 while 20 clients query; after a restart the chain verifies and every answer a
    client received is in the log with the digest of what it received."""
    cfg = write_config(tmp_path, f"duckdb:///{tmp_path / 'state.duckdb'}")
    server = Server(cfg).start()
    tok = token(tmp_path)
    got: list[dict] = []
    stop = threading.Event()
    dims = ["province", "group", "sex", "month"]

    def client(i: int):
        with httpx.Client(timeout=30) as h:
            k = 0
            while not stop.is_set():
                k += 1
                body = {
                    "dataset": "displaced",
                    "kind": "count",
                    "by": [dims[(i + k) % 4]],
                    "filters": {"sex": ["f", "m"][: 1 + (k % 2)]},
                }
                try:
                    r = post_query(server.url, tok, body, h)
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    got.append(r.json())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    checkpoint = httpx.get(server.url + "/v1/audit/checkpoint", headers=auth(tok), timeout=30).json()
    deadline = time.monotonic() + 60  # a loaded machine answers slowly: kill once answers flow
    while len(got) <= 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    server.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(got) > 5
    restarted = Server(cfg).start()
    try:
        assert post_query(restarted.url, tok, {"dataset": "displaced", "kind": "count"}).status_code == 200
    finally:
        restarted.stop()
    log = tmp_path / "audit.jsonl"
    (tmp_path / "checkpoint.json").write_text(json.dumps(checkpoint))
    witnessed = [
        sys.executable,
        "-m",
        "safemicro.cli",
        "audit",
        "verify",
        str(log),
        "--checkpoint",
        str(tmp_path / "checkpoint.json"),
        "--key",
        str(tmp_path / "node.pub"),
    ]
    r = subprocess.run(witnessed, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # a log cut back before the witnessed head fails, even though its chain is intact
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[: checkpoint["seq"]]))
    r = subprocess.run(witnessed, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "truncated" in r.stderr
    log.write_bytes(b"".join(lines))
    entries = {e["seq"]: e for e in map(json.loads, log.read_text().splitlines())}
    from safemicro.service.node import canonical_json, digest

    for answer in got:
        entry = entries[answer.pop("audit_seq")]
        assert entry["kind"] == "release" and entry["payload"]["query_id"] == answer["query_id"]
        assert entry["payload"]["digest"] == digest(canonical_json(answer))


def test_combining_two_providers(node, tmp_path):
    """Provider B runs its own node on other records; the client adds the two protected
    tables: released cells add up, suppressed ones give intervals that hold the truth."""
    from safemicro.client import combine

    s, folder = node
    other = displacement_records(n=900, seed=11)
    cfg_b = write_config(tmp_path, f"duckdb:///{tmp_path / 'b.duckdb'}", data=other, copies=("d_combine",))
    b = Server(cfg_b).start()
    try:
        query = dict(kind="count", by=["district"])
        a_table = Client(s.url, token(folder)).query("d_combine", **query)
        b_table = Client(b.url, token(tmp_path)).query("d_combine", **query)
    finally:
        b.stop()
    both = combine([a_table, b_table], ["district"])
    truth = {**{k: 0 for k in ["D11", "D12", "D13", "D21", "D22"]}}
    for frame in (displacement_records(), other):
        for d, n in frame.group_by("district").len().iter_rows():
            truth[d] += n
    for row in both.filter(pl.col("district").is_not_null()).iter_rows(named=True):
        n = truth[row["district"]]
        if row["status"] == "released":
            assert row["value"] == n
        else:
            assert row["value"] is None
            assert (row["lower"] or 0) <= n <= (row["upper"] if row["upper"] is not None else float("inf"))
    d13 = both.filter(pl.col("district") == "D13").row(0, named=True)
    assert d13["status"] in ("partial", "suppressed")


def test_config_errors_name_file_column_and_row(tmp_path):
    from safemicro.errors import SafemicroError
    from safemicro.service.config import load_config, prepare_records

    cfg_path = write_config(tmp_path, f"duckdb:///{tmp_path / 'x.duckdb'}")
    cfg = load_config(cfg_path)
    ds = cfg.datasets["displaced"]
    bad = displacement_records(50).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("stateless")).otherwise(pl.col("status")).alias("status")
    )
    with pytest.raises(SafemicroError, match=r"column 'status', row 8: value 'stateless' is not among"):
        prepare_records(bad, ds, source="people.csv")
    crossed = displacement_records(50).with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("P9")).otherwise(pl.col("province")).alias("province")
    )
    with pytest.raises(SafemicroError, match="more than one 'province'"):
        prepare_records(crossed, ds, source="people.csv")
    (tmp_path / "broken.yaml").write_text(
        "datasets: {d: {file: a.csv, dimensions: {value: {kind: category, column: x}}}}"
    )
    with pytest.raises(SafemicroError, match="broken.yaml"):
        load_config(tmp_path / "broken.yaml")
    r = subprocess.run(
        [sys.executable, "-m", "safemicro.cli", "serve", str(tmp_path / "broken.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "safemicro.cli", "serve", str(cfg_path), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "PostgreSQL" in r.stderr


def test_parquet_stata_and_spss_sources(tmp_path):
    """Datasets load through safemicro.io: the same records from Parquet, Stata and SPSS give
    the same answering frame as from CSV."""
    from safemicro import io
    from safemicro.service.config import load_config, prepare_records

    cfg = load_config(write_config(tmp_path, f"duckdb:///{tmp_path / 'x.duckdb'}"))
    ds = cfg.datasets["displaced"]
    frames = []
    for ext in ("csv", "parquet", "dta", "sav"):
        path = tmp_path / f"people2.{ext}"
        io.write(io.from_frame(displacement_records(300)), path)
        frames.append(prepare_records(io.read(path).frame, ds, source=str(path)))
    assert all(frames[0].equals(f) for f in frames[1:])


def test_households_count_once_and_the_ledger_uses_units(tmp_path):
    """With `unit: household` a cell's n is its number of households: 5 households of 4
    people (20 records) stay below a threshold of 10; differencing is judged in households."""
    import yaml

    from safemicro.service.config import load_config
    from safemicro.service.node import Node, Refusal
    from safemicro.service.queries import Query
    from safemicro.service.tokens import Grant, Principal

    rows = []
    for h in range(60):
        district = "D13" if h < 5 else ["D11", "D12"][h % 2]
        for m in range(4):
            rows.append(
                {
                    "hh": f"h{h}",
                    "person_id": f"h{h}p{m}",
                    "province": "P1",
                    "district": district,
                    "arrival": "2024-01-10",
                    "status": "idp",
                    "sex": "fm"[m % 2],
                    "income": 100.0,
                }
            )
    data = pl.DataFrame(rows)
    cfg_path = write_config(tmp_path, f"duckdb:///{tmp_path / 'h.duckdb'}", data=data, copies=("fresh",))
    cfg = yaml.safe_load(cfg_path.read_text())
    for name in ("displaced", "fresh"):
        cfg["datasets"][name]["unit"] = "hh"
    cfg_path.write_text(yaml.safe_dump(cfg))
    node = Node(load_config(cfg_path))
    who = Principal("a", "a", "j", 0, (Grant(dataset="*", queries=["count"], dimensions=["*"]),))
    try:
        cells = json.loads(node.query(who, Query(dataset="displaced", kind="count", by=["district"])))["cells"]
        households = dict(data.group_by("district").agg(pl.col("hh").n_unique()).iter_rows())
        released = [c for c in cells if c["status"] == "released" and c["district"] is not None]
        assert released and all(c["value"] == households[c["district"]] for c in released)  # not people
        total = next(c for c in cells if c["district"] is None)
        assert total["value"] == 60
        d13 = next(c for c in cells if c["district"] == "D13")
        assert d13["status"] == "suppressed" and d13["rule"] == "threshold"
        # on a fresh ledger: everyone (60 households) minus D11 and D12 would give D13's 5
        # households (20 records: a record-level check would let it through)
        node.query(who, Query(dataset="fresh", kind="count"))
        with pytest.raises(Refusal) as e:
            node.query(who, Query(dataset="fresh", kind="count", filters={"district": ["D11", "D12"]}))
        assert e.value.status == 409
    finally:
        node.close()


def test_magnitudes_are_also_judged_record_by_record(tmp_path):
    """Two sums over the same households that differ by one person's records: the unit-level
    ledger sees no difference in households, the record-level one refuses the second. (The
    two household counts themselves are equal, which says that no household arrived in
    February only — an empty group, refused as a small one: see .differencing_space.)"""
    import yaml

    from safemicro.service.config import load_config
    from safemicro.service.node import Node, Refusal
    from safemicro.service.queries import Query
    from safemicro.service.tokens import Grant, Principal

    rows = []
    for h in range(30):
        for m in range(3):
            # the third member of household h0 is the only one who arrived in February
            month = "2024-02-10" if (h == 0 and m == 2) else "2024-01-10"
            rows.append(
                {
                    "hh": f"h{h}",
                    "person_id": f"h{h}p{m}",
                    "province": "P1",
                    "district": "D11",
                    "arrival": month,
                    "status": "idp",
                    "sex": "fm"[m % 2],
                    "income": 100.0 + h + m,
                }
            )
    data = pl.DataFrame(rows)
    cfg_path = write_config(tmp_path, f"duckdb:///{tmp_path / 'm.duckdb'}", data=data)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["datasets"]["displaced"]["unit"] = "hh"
    cfg_path.write_text(yaml.safe_dump(cfg))
    node = Node(load_config(cfg_path))
    who = Principal("a", "a", "j", 0, (Grant(dataset="*", queries=["count", "sum"], dimensions=["*"], measures=["*"]),))
    jan = {"start": "2024-01", "end": "2024-01"}
    both = {"start": "2024-01", "end": "2024-02"}
    try:
        # counts of households: both windows hold the same 30 households, so no small group,
        # but equal counts would prove that no household arrived in February only
        cells = json.loads(node.query(who, Query(dataset="displaced", kind="count", time=jan)))["cells"]
        assert [c["value"] for c in cells if c["status"] == "released"][-1] == 30
        with pytest.raises(Refusal) as e:
            node.query(who, Query(dataset="displaced", kind="count", time=both))
        assert e.value.status == 409
        first = json.loads(node.query(who, Query(dataset="displaced", kind="sum", measure="income", time=jan)))
        assert first["cells"][-1]["status"] == "released"
        with pytest.raises(Refusal) as e:  # the difference would be one person's income
            node.query(who, Query(dataset="displaced", kind="sum", measure="income", time=both))
        assert e.value.status == 409
    finally:
        node.close()
