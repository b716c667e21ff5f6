"""The aggregate service with `protection: cell_key` (real server on 127.0.0.1, DuckDB):
a repeated query and a differenced pair gain nothing, the seed never leaves the provider,
and every released count equals the cell key method on the node's record keys."""

from __future__ import annotations

import polars as pl
import pytest
import yaml

from safemicro.service.cell_key import cell_key_counts, generate_ptable, record_keys
from service_support import Server, displacement_records, post_query, token, write_config

SEED = 424242


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cellkey")
    cfg_path = write_config(folder, f"duckdb:///{folder / 'state.duckdb'}")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["datasets"] = {"displaced": cfg["datasets"]["displaced"]}
    cfg["datasets"]["displaced"]["policy"] = {
        "threshold": 5,
        "protection": "cell_key",
        "cell_key": {"seed": SEED, "max_perturbation": 3, "variance": 1.5},
    }
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    s = Server(cfg_path).start()
    yield s, folder
    s.stop()


def _cells(r) -> pl.DataFrame:
    assert r.status_code == 200, r.text
    return pl.DataFrame(r.json()["cells"])


def test_counts_are_the_cell_key_method_on_the_providers_keys(node):
    s, folder = node
    tok = token(folder)
    r = post_query(s.url, tok, {"dataset": "displaced", "kind": "crosstab", "by": ["district", "group"]})
    assert r.json()["mode"] == "cell_key" and str(SEED) not in r.text
    got = _cells(r).filter(pl.col("district").is_not_null() & pl.col("group").is_not_null())
    people = displacement_records().rename({"status": "group"})
    people = people.with_columns(pl.Series("rk", record_keys(people.height, SEED)))
    want = cell_key_counts(people, ["district", "group"], "rk", generate_ptable(3, 1.5), threshold=5)
    joined = got.join(want, on=["district", "group"], how="left")
    assert joined["value"].to_list() == joined["count"].to_list()
    assert (joined["pvalue"].fill_null(0) != 0).any()  # some cells were perturbed


def test_repeated_and_differenced_queries_gain_nothing(node):
    s, folder = node
    tok = token(folder)
    q = {"dataset": "displaced", "kind": "count", "by": ["district"], "margins": False}
    first = post_query(s.url, tok, q)
    assert _cells(first).to_dicts() == _cells(post_query(s.url, token(folder, "bob"), q)).to_dicts()
    # a differenced pair: all groups vs all groups but one, per district; the same cells
    # (district x group) come back with the same perturbation whatever the filter
    groups = ["refugee", "idp", "host", "returnee"]
    a = _cells(post_query(s.url, tok, {**q, "kind": "crosstab", "by": ["district", "group"]}))
    b = _cells(
        post_query(s.url, tok, {**q, "kind": "crosstab", "by": ["district", "group"], "filters": {"group": groups[:3]}})
    )
    both = a.join(b, on=["district", "group"], suffix="_b")
    assert both.height == 5 * 3
    assert both["value"].to_list() == both["value_b"].to_list()
    # the difference of two totals is the returnees' count plus two unknown perturbations
    # (each within D = 3), the same every time they are asked: averaging cannot remove them
    t1 = _cells(post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "by": []}))
    t2 = _cells(
        post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "by": [], "filters": {"group": groups[:3]}})
    )
    t1b = _cells(post_query(s.url, token(folder, "carol"), {"dataset": "displaced", "kind": "count", "by": []}))
    assert t1["value"][0] == t1b["value"][0]
    people = displacement_records()
    assert t1["value"][0] - t2["value"][0] in range(
        (people["status"] == "returnee").sum() - 6, (people["status"] == "returnee").sum() + 7
    )


def test_sums_refused_and_seed_required(node, tmp_path):
    s, folder = node
    r = post_query(s.url, token(folder), {"dataset": "displaced", "kind": "sum", "measure": "income", "by": []})
    assert r.status_code == 422 and "cell key" in r.text
    from safemicro.service.config import Policy

    with pytest.raises(ValueError, match="needs a cell_key section"):
        Policy(protection="cell_key")
