"""The quantile rule counts households, not persons, when the unit is a household.

Rule 2 of safemicro.service.quantiles answers a quantile only with at least T (the
threshold) records at or below its rank and T above it. With household units, T persons
below the median can be the members of two or three households: the answer then speaks
about those households. The node must count distinct units on each side. Hand-built case
(T = 10): 24 persons in 4 households with low incomes, 16 single-person households with
high ones; 40 persons, 20 households. The median's rank is 20: 20 persons below it, but
from 4 households only, so the median is suppressed (rule ``quantile_rank``); with person
units the same records release it.
"""

from __future__ import annotations

import polars as pl
import pytest
import yaml

from service_support import Server, make_keys, node_config, post_query, token

T = 10


def _records() -> pl.DataFrame:
    low = [(f"h{h}", f"h{h}-{i}", 100.0 + 10 * h + i) for h in range(4) for i in range(6)]
    high = [(f"s{j}", f"s{j}-0", 2000.0 + 10 * j) for j in range(16)]
    rows = low + high
    return pl.DataFrame(
        {
            "hhid": [r[0] for r in rows],
            "person_id": [r[1] for r in rows],
            "camp": ["A"] * len(rows),
            "income": [r[2] for r in rows],
        }
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantile-units")
    make_keys(folder)
    _records().write_csv(folder / "people.csv")
    _records().drop("hhid").write_csv(folder / "persons.csv")  # other content: other units for the node
    base = {
        "file": "people.csv",
        "dimensions": {"camp": {"kind": "category", "column": "camp"}},
        "measures": {"income": {"column": "income", "lower": 0, "upper": 5000, "granularity": 10}},
        "queries": ["count", "quantile"],
        "policy": {"threshold": T, "secondary": False},
    }
    datasets = {
        "households": {**base, "unit": "hhid"},
        # the same records counted as persons (a file without the household id)
        "persons": {**base, "file": "persons.csv", "unit": "person_id"},
    }
    cfg = node_config(folder, datasets)
    (folder / "service.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    s = Server(folder / "service.yaml").start()
    yield s, token(folder, subject="q-units")
    s.stop()


def _median(url: str, tok: str, dataset: str) -> dict:
    r = post_query(url, tok, {"dataset": dataset, "kind": "quantile", "measure": "income", "quantile": 0.5})
    assert r.status_code == 200, r.text
    (cell,) = r.json()["cells"]
    return cell


def test_household_units_count_households_on_each_side_of_the_rank(node):
    s, tok = node
    cell = _median(s.url, tok, "households")
    assert (cell["status"], cell["rule"], cell["value"]) == ("suppressed", "quantile_rank", None)


def test_person_units_release_the_same_median(node):
    s, tok = node
    x = sorted(_records()["income"].to_list())
    cell = _median(s.url, tok, "persons")
    assert cell["status"] == "released"
    # the rule's value, by hand: the mean of ranks 11..30 (k = 20, T = 10) rounded to 10
    assert cell["value"] == round(sum(x[10:30]) / 20 / 10) * 10


def test_enough_households_on_both_sides_release_it(node):
    s, tok = node
    # the upper quartile: rank 30, 10 persons above (10 households), and below it 4
    # households plus 6 singles = 10 households: released
    r = post_query(s.url, tok, {"dataset": "households", "kind": "quantile", "measure": "income", "quantile": 0.75})
    assert r.status_code == 200, r.text
    assert r.json()["cells"][0]["status"] == "released"
