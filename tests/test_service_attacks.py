"""Named attacks through the real server's HTTP API, each blocked.

Every attack is first shown to work on the raw records (the premise: each query alone
passes the threshold, their difference isolates fewer than 10 people), then run against the
server, which must refuse the disclosing query (409) or answer it only in a form that does
not disclose (suppressed cells, a cached DP answer, an exhausted budget).
"""

from __future__ import annotations

import polars as pl
import pytest

from service_support import Server, displacement_records, post_query, token, write_config

T = 10


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attacks")
    cfg = write_config(folder, f"duckdb:///{folder / 'state.duckdb'}", dp_budget=(2.0, 3.0))
    s = Server(cfg).start()
    yield s, folder
    s.stop()


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    return displacement_records().with_columns(month=pl.col("arrival").str.slice(0, 7), group=pl.col("status"))


def count(people: pl.DataFrame, **where) -> int:
    f = people
    for col, vals in where.items():
        f = f.filter(pl.col(col).is_in(list(vals)))
    return f.height


def total(resp) -> float | None:
    cells = resp.json()["cells"]
    assert len(cells) == 1
    return cells[0]["value"] if cells[0]["status"] == "released" else None


def test_differencing_by_overlapping_time_windows(node, people):
    s, folder = node
    tok = token(folder, subject="tw")
    months = sorted(people["month"].unique())
    # a group whose last month holds 1..9 people while both windows hold 10 or more
    for district in ["D11", "D12", "D21", "D22"]:
        for status in ["refugee", "idp", "host", "returnee"]:
            short = count(people, district=[district], group=[status], month=months[:-1])
            long = count(people, district=[district], group=[status], month=months)
            if short >= T and 0 < long - short < T:
                break
        else:
            continue
        break
    else:
        pytest.fail("premise: no group with a small last month")
    base = {"dataset": "displaced", "kind": "count", "filters": {"district": [district], "group": [status]}}
    first = post_query(s.url, tok, {**base, "time": {"start": months[0], "end": months[-2]}})
    assert first.status_code == 200 and total(first) == short
    second = post_query(s.url, tok, {**base, "time": {"start": months[0], "end": months[-1]}})
    assert second.status_code == 409, second.text
    assert '"cells"' not in second.text
    assert not any(ch.isdigit() for ch in second.json()["error"])  # no group size, no cell index
    # the provider's audit log keeps the guard's full reason
    import json

    refused = [json.loads(x) for x in (folder / "audit.jsonl").read_text().splitlines()]
    refused = [e["payload"] for e in refused if e["kind"] == "decision" and e["payload"].get("status") == 409]
    assert refused and refused[-1]["detail"] and refused[-1]["subject"] == "tw"


def test_differencing_by_adding_one_category(node, people):
    s, folder = node
    tok = token(folder, subject="cat")
    three = ["refugee", "idp", "host"]
    for district in ["D11", "D12", "D21", "D22"]:
        for sex in ["f", "m"]:
            without = count(people, district=[district], group=three, sex=[sex])
            everyone = count(people, district=[district], sex=[sex])
            if without >= T and 0 < everyone - without < T:
                break
        else:
            continue
        break
    else:
        pytest.fail("premise: no group with fewer than 10 returnees")
    base = {"dataset": "displaced", "kind": "count", "filters": {"district": [district], "sex": [sex]}}
    first = post_query(s.url, tok, base)
    assert first.status_code == 200 and total(first) == everyone
    second = post_query(s.url, tok, {**base, "filters": {**base["filters"], "group": three}})
    assert second.status_code == 409, second.text


def test_differencing_by_geography_nesting(node, people):
    """Province P1 minus its large districts D11 and D12 would give D13 (9 people)."""
    s, folder = node
    tok = token(folder, subject="geo")
    assert 0 < count(people, district=["D13"]) < T, "premise"
    first = post_query(
        s.url,
        tok,
        {"dataset": "displaced", "kind": "count", "by": ["province"], "margins": False, "filters": {"sex": ["m"]}},
    )
    assert first.status_code == 200
    p1 = next(c for c in first.json()["cells"] if c["province"] == "P1")
    assert p1["status"] == "released"
    second = post_query(
        s.url,
        tok,
        {
            "dataset": "displaced",
            "kind": "count",
            "by": ["district"],
            "margins": False,
            "filters": {"district": ["D11", "D12"], "sex": ["m"]},
        },
    )
    assert second.status_code == 409, second.text
    # asking for every district at once is fine: D13 comes back suppressed with a partner
    third = post_query(
        s.url, tok, {"dataset": "displaced", "kind": "count", "by": ["district"], "filters": {"sex": ["f"]}}
    )
    assert third.status_code == 200
    cells = {c["district"]: c for c in third.json()["cells"]}
    assert cells["D13"]["status"] == "suppressed"
    assert sum(c["status"] == "suppressed" for c in cells.values()) >= 2


def test_two_colluding_analysts(node, people):
    """Alice asks one half of a differencing attack, Bob the other: the ledger is global."""
    s, folder = node
    alice = token(folder, subject="alice", organisation="org-a")
    bob = token(folder, subject="bob", organisation="org-b")
    four = ["refugee", "idp", "host", "returnee"]
    three = four[:3]
    district = "D11"
    a = count(people, district=[district], group=four, month=["2024-05"])
    b = count(people, district=[district], group=three, month=["2024-05"])
    assert b >= T and 0 < a - b < T, "premise"
    base = {"dataset": "displaced", "kind": "count", "time": {"start": "2024-05", "end": "2024-05"}}
    r = post_query(s.url, alice, {**base, "filters": {"district": [district]}})
    assert r.status_code == 200 and total(r) == a
    r = post_query(s.url, bob, {**base, "filters": {"district": [district], "group": three}})
    assert r.status_code == 409, r.text


def test_averaging_repeated_dp_queries(node, people):
    """The same DP query asked again and again returns the same noisy answer and spends the
    budget once; reformulations spend budget until the analyst's cap refuses them."""
    s, folder = node
    tok = token(folder, subject="avg")
    body = {"dataset": "displaced_dp", "kind": "count", "filters": {"district": ["D13"]}}
    answers = {total(post_query(s.url, tok, body)) for _ in range(25)}
    assert len(answers) == 1
    import httpx

    spent = httpx.get(s.url + "/v1/budget/displaced_dp", headers={"Authorization": f"Bearer {tok}"}).json()
    assert spent["analyst"]["spent"] == pytest.approx(0.5)
    # reformulations of the same count: different query ids, each one spends epsilon
    variants = [
        {**body, "filters": {"district": ["D13"], "sex": ["f", "m"]}},
        {**body, "filters": {"district": ["D13"], "group": ["refugee", "idp", "host", "returnee"]}},
        {**body, "filters": {"district": ["D13"]}, "time": {"start": "2024-01", "end": "2024-06"}},
        {**body, "filters": {"district": ["D13"], "province": ["P1"]}},
        {**body, "filters": {"district": ["D13", "D13"], "sex": ["m", "f"], "province": ["P1"]}},
    ]
    codes = [post_query(s.url, tok, v).status_code for v in variants]
    assert codes.count(200) == 3 and codes[3:] == [403, 403], codes  # 4 x 0.5 = the cap of 2.0
    r = post_query(s.url, tok, variants[-1])
    assert "budget" in r.json()["error"]


def test_colluding_analysts_share_the_dataset_budget(node):
    """Many analysts cannot pool their caps beyond the dataset-wide cap (3.0 here)."""
    s, folder = node
    answered = 0
    for i in range(5):
        tok = token(folder, subject=f"ring-{i}")
        for month in ["2024-01", "2024-02"]:
            r = post_query(
                s.url,
                tok,
                {
                    "dataset": "displaced_dp",
                    "kind": "count",
                    "by": ["group"],
                    "time": {"start": month, "end": month},
                    "filters": {"sex": [["f", "m"][i % 2]]},
                },
            )
            answered += r.status_code == 200
            assert r.status_code in (200, 403)
    import httpx

    b = httpx.get(
        s.url + "/v1/budget/displaced_dp", headers={"Authorization": f"Bearer {token(folder, subject='ring-0')}"}
    ).json()
    assert b["dataset_total"]["spent"] <= 3.0 + 1e-9
    assert answered * 0.5 <= 3.0


def test_dominant_contributor_is_not_released(node, people):
    """One person's income (400 000 where others have hundreds) dominates a small sum: dominance/p % suppress it."""
    s, folder = node
    tok = token(folder, subject="dom")
    rich = people.row(0, named=True)
    r = post_query(
        s.url,
        tok,
        {
            "dataset": "displaced",
            "kind": "sum",
            "measure": "income",
            "by": ["group"],
            "filters": {"district": [rich["district"]], "month": [rich["month"]], "sex": [rich["sex"]]},
        },
    )
    assert r.status_code == 200, r.text
    cell = next(c for c in r.json()["cells"] if c["group"] == rich["status"])
    assert cell["status"] == "suppressed" and cell["value"] is None
