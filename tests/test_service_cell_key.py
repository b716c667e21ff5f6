"""The aggregate service with `protection: cell_key` (real server on 127.0.0.1, DuckDB):
a repeated query and a differenced pair gain nothing, the seed never leaves the provider,
and every released count, sum and mean equals the cell key method on the node's record
keys; a sum differenced down to one person, or a dominant contributor's own total, does not
give back anyone's value."""

from __future__ import annotations

import json

import httpx
import polars as pl
import pytest
import yaml

from safemicro.service.cell_key import (
    cell_key_counts,
    cell_key_magnitudes,
    generate_ptable,
    magnitude_keys,
    record_keys,
)
from service_support import Server, displacement_records, post_query, token, write_config

SEED = 424242
PTABLE = generate_ptable(3, 1.5)  # the nodes' (max_perturbation 3, variance 1.5)


def _serve(folder, **cell_key) -> Server:
    cfg_path = write_config(folder, f"duckdb:///{folder / 'state.duckdb'}")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["datasets"] = {"displaced": cfg["datasets"]["displaced"]}
    cfg["datasets"]["displaced"]["policy"] = {
        "threshold": 5,
        "protection": "cell_key",
        "cell_key": {"seed": SEED, "max_perturbation": 3, "variance": 1.5, **cell_key},
    }
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return Server(cfg_path).start()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Filters of any values: the whole query space, to check the perturbations."""
    folder = tmp_path_factory.mktemp("cellkey")
    s = _serve(folder, filters="any")
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
    want = cell_key_counts(people, ["district", "group"], "rk", PTABLE, threshold=5)
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


def _perturbed_people() -> pl.DataFrame:
    """The fixture's records with the node's keys."""
    people = displacement_records().rename({"status": "group"}).with_columns(month=pl.col("arrival").str.slice(0, 7))
    return people.with_columns(
        pl.Series("rk", record_keys(people.height, SEED)),
        pl.Series("mk", magnitude_keys(people.height, SEED, "income")),
    )


def _defined(people: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    """Count, sum and mean of income by ``dims`` computed here from the definitions."""
    keys = dims or ["_all"]
    people = people.with_columns(_all=pl.lit(1))
    counts = cell_key_counts(people, keys, "rk", PTABLE, threshold=5)
    sums = cell_key_magnitudes(people, keys, "income", "mk")
    cells = counts.join(sums, on=keys).with_columns(mean=pl.col("total") / pl.col("count"))
    return cells.drop("_all") if not dims else cells


def test_every_level_is_the_cell_key_method_on_the_providers_keys(node):
    """Counts, sums and means, cells and every margin: the node sums its finest cells into
    the margins; here each level is computed from the records, as the definitions say."""
    s, folder = node
    tok = token(folder)
    people = _perturbed_people()
    by = ["district", "group"]
    for kind, column in (("count", "count"), ("sum", "total"), ("mean", "mean")):
        q = {"dataset": "displaced", "kind": kind, "by": by} | ({"measure": "income"} if kind != "count" else {})
        r = post_query(s.url, tok, q)
        assert str(SEED) not in r.text
        got = _cells(r)
        for dims in (by, ["district"], ["group"], []):
            level = got.filter(*[pl.col(d).is_not_null() if d in dims else pl.col(d).is_null() for d in by])
            want = _defined(people, dims)
            joined = (
                level.join(want, on=dims, how="left")
                if dims
                else level.hstack(want.select(*{"count", column}, "perturbation"))
            )
            released = joined.filter(pl.col("count").is_not_null())
            assert released["value"].round(2).to_list() == released[column].round(2).to_list(), (kind, dims)
            assert joined.filter(pl.col("count").is_null())["value"].is_null().all()
            if kind != "count":
                assert (released["perturbation"].abs() > 0).all()
        hidden = got.filter(pl.col("value").is_null())  # perturbed count below the threshold
        assert hidden.height > 0 and (hidden["status"] == "suppressed").all()


def test_a_sum_differenced_down_to_one_person_does_not_give_back_their_value(node):
    """Two windows that differ by one person (the only host in D12 who arrived in June):
    the difference of the two sums is that person's income plus two perturbations, each
    drawn from its own cell's key, the same at every asking."""
    s, folder = node
    people = _perturbed_people()
    cell = people.filter((pl.col("district") == "D12") & (pl.col("group") == "host"))
    target = cell.filter(pl.col("month") == "2024-06")
    assert target.height == 1
    base = {"dataset": "displaced", "kind": "sum", "measure": "income", "by": []}
    base["filters"] = {"district": ["D12"], "group": ["host"]}
    wide = _cells(post_query(s.url, token(folder), {**base, "time": {"start": "2024-01", "end": "2024-06"}}))
    narrow = _cells(post_query(s.url, token(folder, "bob"), {**base, "time": {"start": "2024-01", "end": "2024-05"}}))
    estimate = wide["value"][0] - narrow["value"][0]
    truth = target["income"][0]
    # the answers are the definition on exactly these two sets of records
    for answer, rows in ((wide, cell), (narrow, cell.filter(pl.col("month") != "2024-06"))):
        assert answer["value"][0] == round(cell_key_magnitudes(rows, [], "income", "mk")["total"][0], 2)
    assert abs(estimate - truth) > 10  # the income's published granularity
    again = _cells(post_query(s.url, token(folder, "carol"), {**base, "time": {"start": "2024-01", "end": "2024-06"}}))
    assert again["value"][0] == wide["value"][0]  # asking again cannot average the perturbation away


def test_the_dominant_contributor_cannot_read_the_rest_of_its_cell(node):
    """p00000 (income 400 000) knows its own value; its cell's published total minus that
    value misses the other 164 people's total by at least p * s of 400 000 less the second
    contributor's term (the dominance attack of the p % rule): ten times what the
    second-largest contributor earns, so no one else's income can be read off."""
    s, folder = node
    people = _perturbed_people()
    cell = people.filter((pl.col("district") == "D21") & (pl.col("group") == "refugee"))
    others = cell.filter(pl.col("person_id") != "p00000")
    q = {"dataset": "displaced", "kind": "sum", "measure": "income", "by": ["district", "group"], "margins": False}
    r = _cells(post_query(s.url, token(folder), q))
    total = r.filter((pl.col("district") == "D21") & (pl.col("group") == "refugee"))["value"][0]
    second = others["income"].max()
    assert abs((total - 400_000) - others["income"].sum()) >= 0.25 * 0.2 * 400_000 - 0.25 * 0.5 * second
    assert 0.25 * 0.2 * 400_000 - 0.25 * 0.5 * second > 10 * second


def test_quantiles_refused_and_seed_required(node, tmp_path):
    s, folder = node
    q = {"dataset": "displaced", "kind": "quantile", "measure": "income", "quantile": 0.5, "by": []}
    r = post_query(s.url, token(folder), q)
    assert r.status_code == 403 and "does not offer 'quantile'" in r.text  # not among its kinds
    cat = httpx.get(f"{s.url}/v1/catalogue", headers={"Authorization": f"Bearer {token(folder)}"}).json()
    entry = cat["datasets"]["displaced"]
    assert "quantile" not in entry["queries"] and "quantiles" not in entry
    assert entry["mode"] == "cell_key" and str(SEED) not in json.dumps(cat)
    assert entry["cell_key"] == {
        "filters": "any",  # this fixture's; the default is "single"
        "counts": {"max_perturbation": 3, "variance": 1.5},
        "magnitudes": {"percent": 0.25, "weights": [1.0, 0.5], "separation": 0.2},
    }
    from safemicro.service.config import DatasetConfig, Policy

    dataset = {"file": "x.csv", "unit": "u", "dimensions": {"d": {"kind": "category", "column": "d"}}}
    with pytest.raises(ValueError, match="cell key method offers count, sum, mean and crosstab"):
        DatasetConfig.model_validate(
            {**dataset, "queries": ["count", "quantile"], "policy": {"protection": "cell_key", "cell_key": {"seed": 1}}}
        )

    with pytest.raises(ValueError, match="needs a cell_key section"):
        Policy(protection="cell_key")
    with pytest.raises(ValueError, match="descending"):
        Policy(protection="cell_key", cell_key={"seed": 1, "magnitudes": {"weights": [1.0, 0.2, 0.5]}})


def test_cell_key_shares_its_units_only_with_the_same_keys_or_with_dp(tmp_path):
    """Beside exact releases of the same people a perturbation shows itself (exact minus
    perturbed), and two different perturbations of one cell can be averaged: the node
    refuses to start with either. The same keys twice, or a DP copy, start."""
    from safemicro.errors import SafemicroError
    from safemicro.service.config import load_config
    from safemicro.service.node import Node

    cfg_path = write_config(tmp_path, "duckdb:///:memory:")
    cfg = yaml.safe_load(cfg_path.read_text())
    ck = {"threshold": 5, "protection": "cell_key", "cell_key": {"seed": SEED}}
    plain = {**cfg["datasets"]["displaced"], "population": "people"}
    keyed = {**plain, "policy": ck}

    def start(**datasets):
        cfg["datasets"] = datasets
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        Node(load_config(cfg_path)).close()

    with pytest.raises(SafemicroError, match="exact values of one would show the perturbations"):
        start(a=keyed, b=plain)
    other_seed = {**plain, "policy": {**ck, "cell_key": {"seed": SEED + 1}}}
    with pytest.raises(SafemicroError, match="different cell_key settings"):
        start(a=keyed, b=other_seed)
    start(a=keyed, b=dict(keyed))
    dp = {"enabled": True, "epsilon_per_query": 0.5, "analyst_budget": 5.0, "dataset_budget": 10.0}
    start(a=keyed, b={**plain, "queries": ["count", "sum", "mean"], "dp": dp})


def test_a_bad_ptable_stops_the_start_naming_file_column_and_row(tmp_path):
    from safemicro.errors import SafemicroError
    from safemicro.service.config import load_config
    from safemicro.service.node import Node

    cfg_path = write_config(tmp_path, "duckdb:///:memory:")
    cfg = yaml.safe_load(cfg_path.read_text())
    good = generate_ptable(2, 1.0).select("pcv", "ckey", "pvalue")
    cases = {
        "no_pvalue.csv": (good.drop("pvalue"), "no column"),
        "negative.csv": (
            good.with_columns(pvalue=pl.when(pl.col("pcv") == 1).then(-3).otherwise("pvalue")),
            "negative",
        ),
        "text.csv": (good.with_columns(pl.col("pvalue").cast(pl.String) + "x"), "whole numbers"),
    }
    for name, (table, message) in cases.items():
        table.write_csv(tmp_path / name)
        policy = {"threshold": 5, "protection": "cell_key", "cell_key": {"seed": SEED, "ptable": name}}
        cfg["datasets"] = {"displaced": {**cfg["datasets"].get("displaced", {}), "policy": policy}}
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        with pytest.raises(SafemicroError, match=message) as e:
            Node(load_config(cfg_path))
        assert name in str(e.value)
        if name == "negative.csv":
            assert "pvalue" in str(e.value) and "row 1" in str(e.value)


def test_by_default_a_filter_names_one_value_so_pairs_around_one_person_are_few(tmp_path):
    """Averaging many tables that differ by the same person would undo the perturbation
    (README: an age within 1-3 years from 50-300 pairs built from filter subsets and
    windows). By default a filter or window names one value or all of them: the windows of
    the differencing test above, and a filter of two groups, are refused (422, naming the
    rule); one value, every value, and grouping by a dimension are answered."""
    s = _serve(tmp_path)
    try:
        tok = token(tmp_path)
        base = {"dataset": "displaced", "kind": "sum", "measure": "income", "by": []}
        base["filters"] = {"district": ["D12"], "group": ["host"]}
        narrow = post_query(s.url, tok, {**base, "time": {"start": "2024-01", "end": "2024-05"}})
        assert narrow.status_code == 422 and "one value of 'month'" in narrow.text
        two = post_query(s.url, tok, {**base, "filters": {"district": ["D12"], "group": ["host", "idp"]}})
        assert two.status_code == 422 and "one value of 'group'" in two.text
        with_margin = {**base, "by": ["group"], "filters": {"district": ["D12"], "group": ["host", "idp"]}}
        assert post_query(s.url, tok, with_margin).status_code == 422  # its margin would be host + idp
        for ok in (
            {**base, "time": {"start": "2024-01", "end": "2024-06"}},  # every month
            {**base, "time": {"start": "2024-06", "end": "2024-06"}},  # one month
            {**base, "by": ["month"]},
            {**base, "filters": {"group": ["refugee", "idp", "host", "returnee"]}},
            # several values of a grouping dimension without margins only pick cells
            {**base, "by": ["group"], "margins": False, "filters": {"district": ["D12"], "group": ["host", "idp"]}},
        ):
            assert post_query(s.url, tok, ok).status_code == 200, ok
    finally:
        s.stop()
