"""Declared tables (safemicro.service.tables) through the real server on 127.0.0.1: answers
are lookups in one jointly protected set; empty and small cells look the same in every
table; anything undeclared is refused; every request is audited.

The reference for the values is the raw file tabulated with polars here; the reference for
what an attacker can infer is an LP written here from the published answers alone
(scipy's linprog), with the relations an analyst knows: every declared table's margins,
tables sharing a margin, districts summing to their province, and what the published
rule says (a threshold cell holds 0 to 9 people; any other suppressed cell, 10 or more).
"""

from __future__ import annotations

import itertools
import json

import httpx
import numpy as np
import polars as pl
import pytest
import yaml
from scipy.optimize import linprog

from safemicro.errors import SafemicroError
from service_support import Server, displacement_records, make_keys, post_query, token

T = 10
TABLES = [
    {"by": ["district", "group"], "measures": ["income"]},
    ["district", "sex"],
    ["province", "sex"],
    ["month", "group"],
]
BYS = [t["by"] if isinstance(t, dict) else t for t in TABLES]


def config(folder, *, extra: dict | None = None) -> dict:
    dims = {
        "province": {"kind": "admin", "column": "province"},
        "district": {"kind": "admin", "column": "district", "parent": "province"},
        "month": {"kind": "time", "column": "arrival", "bin": "month"},
        "group": {"kind": "category", "column": "status", "values": ["refugee", "idp", "host", "returnee"]},
        "sex": {"kind": "category", "column": "sex", "values": ["f", "m", "x"]},  # nobody is "x"
    }
    base = {
        "file": "people.csv",
        "unit": "person_id",
        "dimensions": dims,
        "measures": {"income": {"column": "income", "lower": 0, "upper": 1_000_000}},
    }
    return {
        "audience": "node-test",
        "database": f"duckdb:///{folder / 'state.duckdb'}",
        "issuer_public_key": "issuer.pub",
        "signing_key": "node.key",
        "audit_log": "audit.jsonl",
        "datasets": {
            "tabled": {**base, "policy": {"threshold": T}, "tables": TABLES},
            "tabled_dp": {**base, "queries": ["count"], "dp": {"enabled": True, "epsilon_per_query": 1.0}},
            **(extra or {}),
        },
    }


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    make_keys(folder)
    displacement_records().write_csv(folder / "people.csv")
    (folder / "service.yaml").write_text(yaml.safe_dump(config(folder)))
    s = Server(folder / "service.yaml").start(timeout=90)
    yield s, folder, token(folder)
    s.stop()


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    return displacement_records().with_columns(month=pl.col("arrival").str.slice(0, 7), group=pl.col("status"))


@pytest.fixture(scope="module")
def answers(node) -> dict[tuple, list[dict]]:
    s, _, tok = node
    out = {}
    for by in BYS:
        r = post_query(s.url, tok, {"dataset": "tabled", "kind": "count", "by": by})
        assert r.status_code == 200, r.text
        out[tuple(by)] = r.json()["cells"]
    return out


def key(cell: dict, by) -> frozenset:
    return frozenset((d, cell[d]) for d in by if cell[d] is not None)


def test_answers_are_the_true_counts_protected_in_every_table(answers, people):
    grids = {"sex": ["f", "m", "x"], "group": ["refugee", "idp", "host", "returnee"]}
    seen: dict[frozenset, tuple] = {}
    empty = small = 0
    for by, cells in answers.items():
        truth = {}
        for r in range(len(by) + 1):  # every level, margins included, from the raw records
            for level in itertools.combinations(by, r):
                if level:
                    for row in people.group_by(list(level)).len().iter_rows():
                        truth[frozenset(zip(level, row[:-1]))] = row[-1]
                else:
                    truth[frozenset()] = people.height
        full = 1
        for d in by:
            full *= len(grids.get(d, people.get_column(d).unique()))
        assert sum(1 for c in cells if all(c[d] is not None for d in by)) == full  # the full grid
        for c in cells:
            k = key(c, by)
            n = truth.get(k, 0)
            look = (c["status"], c["rule"], c["value"], c["lower"], c["upper"])
            assert seen.setdefault(k, look) == look, f"{sorted(k)} differs between tables"
            if n < T:  # 0 and 1..9 alike: threshold, no value, the rule's interval
                assert look == ("suppressed", "threshold", None, 0.0, T - 1.0), (sorted(k), n, c)
                empty += n == 0
                small += n > 0
            elif c["status"] == "released":
                assert c["value"] == n
            else:
                assert c["rule"] in ("secondary", "dominance", "p_percent") and c["value"] is None
    assert empty >= 3 and small >= 3  # the data has both kinds (sex "x", district D13)


def test_an_attacker_cannot_tell_empty_from_small_across_all_tables(answers, people):
    cells: dict[frozenset, dict] = {}
    tables: list[tuple[str, ...]] = []
    for by, cs in answers.items():
        tables.append(by)
        for c in cs:
            cells[key(c, by)] = c
    index = {k: i for i, k in enumerate(cells)}
    rows = []

    def relation(parent: frozenset, kids: list[frozenset]) -> None:
        if all(k in index for k in kids):
            r = np.zeros(len(index))
            r[index[parent]] = 1.0
            for k in kids:
                r[index[k]] -= 1.0
            rows.append(r)

    values = {d: sorted({v for k in cells for dd, v in k if dd == d}) for by in tables for d in by}
    province_of = dict(people.select("district", "province").unique().iter_rows())
    for k in cells:
        dims = {d for d, _ in k}
        for by in tables:  # margins of every table holding this cell
            if dims <= set(by):
                for d in set(by) - dims:
                    relation(k, [k | {(d, v)} for v in values[d]])
        for d, v in k:  # a province is the sum of its districts
            if d == "province":
                rest = k - {(d, v)}
                relation(k, [rest | {("district", x)} for x, p in province_of.items() if p == v])
    a_eq = np.array(rows)
    bounds = []
    for k, c in cells.items():
        if c["status"] == "released":
            bounds.append((c["value"], c["value"]))
        elif c["rule"] == "threshold":
            bounds.append((0, T - 1))
        else:
            bounds.append((T, None))
    truth = {k: people.filter(*[pl.col(d) == v for d, v in k]).height if k else people.height for k in cells}
    checked = 0
    for k, c in cells.items():
        if c["rule"] != "threshold":
            continue
        i = index[k]
        obj = np.zeros(len(index))
        obj[i] = 1.0
        lo = linprog(obj, A_eq=a_eq, b_eq=np.zeros(len(rows)), bounds=bounds, method="highs")
        hi = linprog(-obj, A_eq=a_eq, b_eq=np.zeros(len(rows)), bounds=bounds, method="highs")
        assert lo.status == 0 and hi.status == 0
        # presence cannot be proven (0 is possible) nor absence (1 or more is possible)
        assert lo.fun < 1e-6, (sorted(k), truth[k], lo.fun)
        assert -hi.fun >= 1 - 1e-6, (sorted(k), truth[k], -hi.fun)
        checked += 1
    assert checked >= 6


def test_sub_tables_filters_and_measures_are_lookups(node, answers):
    s, _, tok = node
    full = {key(c, ("district", "group")): c for c in answers[("district", "group")]}
    r = post_query(
        s.url,
        tok,
        {"dataset": "tabled", "kind": "count", "by": ["group", "district"], "filters": {"district": ["D11"]}},
    )
    assert r.status_code == 200, r.text
    cells = r.json()["cells"]
    assert {(c["district"], c["group"]) for c in cells} == {
        ("D11", g) for g in ("refugee", "idp", "host", "returnee")
    } | {("D11", None)}
    for c in cells:
        assert {k: v for k, v in c.items()} == {**full[key(c, ("district", "group"))], **{"group": c["group"]}}
    sub = post_query(s.url, tok, {"dataset": "tabled", "kind": "count", "by": ["district"]}).json()["cells"]
    assert [c["value"] for c in sub] == [full[key(c, ("district",))]["value"] for c in sub]
    m = post_query(s.url, tok, {"dataset": "tabled", "kind": "mean", "measure": "income", "by": ["district", "group"]})
    assert m.status_code == 200, m.text
    status = {key(c, ("district", "group")): c["status"] for c in m.json()["cells"]}
    assert status == {k: c["status"] for k, c in full.items()}  # one pattern for every statistic
    cat = httpx.get(s.url + "/v1/catalogue", headers={"Authorization": f"Bearer {tok}"}).json()["datasets"]
    assert [t["by"] for t in cat["tabled"]["tables"]] == BYS and "quantile" not in cat["tabled"]["queries"]
    dp = post_query(s.url, tok, {"dataset": "tabled_dp", "kind": "count", "by": ["group"]})
    assert dp.status_code == 200 and dp.json()["mode"] == "dp", dp.text


@pytest.mark.parametrize(
    "body, field, says",
    [
        ({"kind": "count", "by": ["district", "month"]}, "by", "declared: [district, group]"),
        ({"kind": "count", "by": ["district"], "filters": {"sex": ["f"]}}, "filters", "needs that dimension"),
        ({"kind": "count", "by": ["month"], "time": {"start": "2024-01", "end": "2024-02"}}, None, None),
        ({"kind": "count", "by": ["group"], "time": {"start": "2024-01", "end": "2024-02"}}, "filters", "month"),
        ({"kind": "sum", "measure": "income", "by": ["province", "sex"]}, "by", "sum of 'income'"),
        ({"kind": "quantile", "measure": "income", "quantile": 0.5, "by": ["district"]}, None, "not offer 'quantile'"),
    ],
)
def test_undeclared_tables_and_free_filters_are_refused(node, body, field, says):
    s, _, tok = node
    r = post_query(s.url, tok, {"dataset": "tabled", **body})
    if says is None:
        assert r.status_code == 200, r.text
        return
    assert r.status_code == (403 if body["kind"] == "quantile" else 422), r.text
    assert says in r.json()["error"]
    assert r.json().get("field") == field


def test_every_request_is_audited(node):
    s, folder, tok = node
    log = folder / "audit.jsonl"

    def per_request() -> dict[str, int]:
        kinds: dict[str, int] = {}
        for line in log.read_text().splitlines():
            e = json.loads(line)
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        return kinds

    before = per_request()
    sent = [
        {"dataset": "tabled", "kind": "count", "by": ["sex"]},
        {"dataset": "tabled", "kind": "count", "by": ["sex"]},
        {"dataset": "tabled", "kind": "count", "by": ["sex", "month"]},
        {"dataset": "tabled", "kind": "count", "by": ["nope"]},
    ]
    for q in sent:
        post_query(s.url, tok, q)
    bad = httpx.post(s.url + "/v1/query", json=sent[0], headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
    after = per_request()
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert grew.get("request", 0) + grew.get("auth", 0) + grew.get("rejected", 0) == len(sent) + 1
    assert grew.get("release", 0) == 2  # the two answers (lookups)
    assert grew.get("decision", 0) == 2  # the two refusals
    releases = [json.loads(x) for x in log.read_text().splitlines()][-20:]
    assert any(e["kind"] == "release" and e["payload"]["cached"] == "precomputed" for e in releases)
    assert sum(1 for line in log.read_text().splitlines() if '"kind":"tables"' in line) == 1


def test_declared_tables_and_another_suppressed_dataset_over_the_same_units_are_refused(tmp_path):
    from safemicro.service.config import load_config
    from safemicro.service.node import Node

    make_keys(tmp_path)
    displacement_records(n=200).write_csv(tmp_path / "people.csv")
    cfg = config(tmp_path)
    free = {k: v for k, v in cfg["datasets"]["tabled"].items() if k != "tables"}
    cfg["datasets"]["free"] = free
    (tmp_path / "service.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SafemicroError, match="declares tables but shares its units with 'free'"):
        Node(load_config(tmp_path / "service.yaml"))
    cfg["datasets"]["tabled"]["tables"] = [["province", "district"]]
    del cfg["datasets"]["free"]
    (tmp_path / "service.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SafemicroError, match="'district' nests in 'province'"):
        load_config(tmp_path / "service.yaml")
