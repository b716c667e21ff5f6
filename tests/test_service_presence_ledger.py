"""Empty and small groups look the same across queries, not only within one answer.

A started node (DuckDB, the displacement survey of tests/service_support.py) is attacked
over HTTP: a district's count, then the same district without one status or one month.
If the part left out holds 1..9 people the second release would isolate them (refused
since the ledger exists); if it holds nobody, the second release would equal the first and
say so — the ledger must refuse that too (safemicro.service.differencing_space), or the
analyst tells "nobody" from "a few" by which of the two is refused. Independent oracles
(tests/service_oracle.py, the value space written out point by point) check that no
released combination bounds an empty region to 0 or determines a small one.
"""

from __future__ import annotations

import itertools

import polars as pl
import pytest

from service_oracle import empty_regions_bounded, small_group_determined
from service_support import Server, displacement_records, post_query, token, write_config

T = 10
GROUPS = ["refugee", "idp", "host", "returnee"]
MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
PARENT = {"D11": "P1", "D12": "P1", "D13": "P1", "D21": "P2", "D22": "P2"}


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    return displacement_records().with_columns(month=pl.col("arrival").str.slice(0, 7)).rename({"status": "group"})


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("presence_ledger")
    s = Server(write_config(folder, f"duckdb:///{folder / 'state.duckdb'}")).start()
    yield s, folder
    s.stop()


def grid() -> pl.DataFrame:
    """Every possible point of the value space: a district lies in its province."""
    rows = [
        {"province": PARENT[d], "district": d, "month": m, "group": g, "sex": s}
        for d, m, g, s in itertools.product(PARENT, MONTHS, GROUPS, ["f", "m"])
    ]
    return pl.DataFrame(rows)


def _pair(people: pl.DataFrame, dim: str, values: list[str], size) -> tuple[dict, str] | None:
    """Filters (a district, and a value of one more dimension) holding at least 2T people,
    and a value of ``dim`` of which they hold ``size`` people."""
    other = {"group": ("month", MONTHS), "month": ("group", GROUPS)}[dim]
    for d, o in itertools.product(sorted(PARENT), other[1]):
        base = people.filter((pl.col("district") == d) & (pl.col(other[0]) == o))
        for v in values:
            if base.height >= 2 * T and size(base.filter(pl.col(dim) == v).height):
                return {"district": [d], other[0]: [o]}, v
    return None


@pytest.mark.parametrize("dim,values", [("group", GROUPS), ("month", MONTHS)])
def test_leaving_out_nobody_is_refused_like_leaving_out_a_few(node, people, dim, values):
    s, folder = node
    empty = _pair(people, dim, values, lambda n: n == 0)
    small = _pair(people, dim, values, lambda n: 0 < n < T)
    assert empty and small, "premise: the survey has an empty and a small district × value"
    outcomes = {}
    for name, (base, v) in (("empty", empty), ("small", small)):
        tok = token(folder, subject=f"{name}-{dim}")  # two analysts: the ledger is shared anyway
        whole = post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "filters": base})
        assert whole.status_code == 200 and whole.json()["cells"][0]["status"] == "released"
        rest = [x for x in values if x != v]
        outcomes[name] = post_query(
            s.url, tok, {"dataset": "displaced", "kind": "count", "filters": {**base, dim: rest}}
        ).status_code
        # asked directly, the left-out cell is suppressed with the same interval either way
        direct = post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "filters": {**base, dim: [v]}})
        assert direct.status_code in (200, 409)
        if direct.status_code == 200:
            (cell,) = direct.json()["cells"]
            assert cell["status"] == "suppressed" and (cell["lower"], cell["upper"]) == (0, T - 1)
    assert outcomes == {"empty": 409, "small": 409}, outcomes


def test_no_release_bounds_an_empty_region(node, people):
    """After the attacks above and a few tables, the oracle over the value space written out
    point by point finds no empty region proved empty and no small union determined."""
    s, folder = node
    tok = token(folder, subject="tables")
    released: list[dict] = []
    asks = [
        {"dataset": "displaced", "kind": "crosstab", "by": ["district", "group"]},
        {"dataset": "displaced", "kind": "count", "by": ["month"], "filters": {"district": ["D22"]}},
        {"dataset": "displaced", "kind": "count", "by": ["sex"], "filters": {"group": ["returnee"]}},
        {"dataset": "displaced", "kind": "crosstab", "by": ["province", "month"]},
    ]
    for q in asks:
        r = post_query(s.url, tok, q)
        assert r.status_code in (200, 409)
        if r.status_code != 200:
            continue
        for cell in r.json()["cells"]:
            if cell["status"] != "released":
                continue
            pred = {d: {"in": v} for d, v in q.get("filters", {}).items()}
            pred.update({d: {"in": [cell[d]]} for d in q.get("by", []) if cell[d] is not None})
            released.append(pred or {"sex": {"in": ["f", "m"]}})
    assert len(released) > 10
    records = people.select("province", "district", "month", "group", "sex")
    assert empty_regions_bounded(released, records, grid()) == []
    assert small_group_determined(released, records, T, grid=grid()) is None
