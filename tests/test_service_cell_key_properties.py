"""Every answer of the cell key mode, for generated queries over persons and over households (groupings, margins, one-value
filters, time windows, counts, crosstabs, sums and means), is the cell key method applied
to exactly the records the query selects, one contribution per unit: each cell of the grid, margins included, equals
``cell_key_counts`` / ``cell_key_magnitudes`` on those records and the node's keys, or is
suppressed exactly when the perturbed count is below the threshold; and a filter naming
several (not all) values is refused."""

from __future__ import annotations

import itertools
import json

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safemicro.service.cell_key import (
    cell_key_counts,
    cell_key_magnitudes,
    generate_ptable,
    ptable_lookup,
    record_keys,
)
from service_support import displacement_records, token, write_config

DIMS = ["province", "district", "month", "group", "sex"]
THRESHOLD = 5
PTABLE = generate_ptable(2, 1.0).select("pcv", "ckey", "pvalue")  # the nodes' (max_perturbation 2, variance 1)


@pytest.fixture(scope="module", params=["persons", "households"])
def node(request, tmp_path_factory):
    """The fixture's records as units, and grouped three by three into households whose
    members differ in district, group, sex and month (a household spans cells)."""
    from safemicro.service.config import load_config
    from safemicro.service.node import Node

    folder = tmp_path_factory.mktemp(f"cellkey_{request.param}")
    people = displacement_records().with_columns(hh=pl.format("h{}", pl.int_range(pl.len()) // 3))
    path = write_config(folder, "duckdb:///:memory:", data=people)
    cfg = yaml.safe_load(path.read_text())
    policy = {"threshold": THRESHOLD, "protection": "cell_key", "cell_key": {"seed": 99, "max_perturbation": 2}}
    unit = "hh" if request.param == "households" else "person_id"
    cfg["datasets"] = {"displaced": {**cfg["datasets"]["displaced"], "unit": unit, "policy": policy}}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    n = Node(load_config(path))
    yield n, n.authenticate(token(folder), "/v1/query")
    n.close()


def test_keys_belong_to_units_in_the_order_they_first_appear(node):
    n, _ = node
    records = n.records["displaced"]
    units = records["_unit"].unique(maintain_order=True)
    keys = dict(zip(units.to_list(), record_keys(units.len(), 99).tolist(), strict=True))
    assert records["_rkey"].to_list() == [keys[u] for u in records["_unit"].to_list()]
    assert n.unit_is_record["displaced"] == (units.len() == records.height)


@st.composite
def queries(draw, values: dict[str, list[str]]) -> dict:
    by = draw(st.lists(st.sampled_from(DIMS), max_size=2, unique=True))
    kinds = ["count", "sum", "mean"] + (["crosstab"] if len(by) == 2 else [])
    q: dict = {"dataset": "displaced", "kind": draw(st.sampled_from(kinds)), "by": by, "margins": draw(st.booleans())}
    if q["kind"] in ("sum", "mean"):
        q["measure"] = "income"
    filters = {}
    for d in (d for d in DIMS if d not in by and d != "month"):
        choice = draw(st.sampled_from(["none", "one", "all"]))
        if choice != "none":
            filters[d] = values[d] if choice == "all" else [draw(st.sampled_from(values[d]))]
    if filters:
        q["filters"] = filters
    if "month" not in by and draw(st.booleans()):
        m = draw(st.sampled_from(values["month"]))
        q["time"] = {"start": m, "end": m}
    return q


def _expected(node, q: dict) -> dict[tuple, float | int | None]:
    """The definitions on the selected records: grid cell (None = summed over) -> value."""
    records = node.records["displaced"]
    values = node.values["displaced"]
    where = {d: v for d, v in q.get("filters", {}).items()}
    if "time" in q:
        where["month"] = [q["time"]["start"]]
    for d, v in where.items():
        records = records.filter(pl.col(d).is_in(v))
    by = q["by"]
    levels = [list(c) for r in range(len(by), -1, -1) for c in itertools.combinations(by, r)] if q["margins"] else [by]
    if not by:
        levels = [[]]
    assert np.array_equal(node._luts["displaced"], ptable_lookup(PTABLE))  # the node's own ptable
    out = {}
    for level in levels:
        keys = level or ["_all"]
        # one contribution per unit and cell: its key and its records' total
        keyed = (
            records.with_columns(_all=pl.lit(1))
            .group_by([*keys, "_unit"])
            .agg(pl.col("_rkey").first(), pl.col("_mkey_income").first(), pl.col("income").sum())
        )
        counts = cell_key_counts(keyed, keys, "_rkey", PTABLE, threshold=THRESHOLD)
        found = {tuple(r[k] for k in keys): r["count"] for r in counts.iter_rows(named=True)}
        sums = {}
        if q["kind"] in ("sum", "mean"):
            m = cell_key_magnitudes(keyed, keys, "income", "_mkey_income")
            sums = {tuple(r[k] for k in keys): r["total"] for r in m.iter_rows(named=True)}
        grid = itertools.product(*[where.get(d, values[d]) for d in level]) if level else [(1,)]
        for combo in grid:
            count = found.get(tuple(combo))
            value = count
            if count is not None and q["kind"] == "sum":
                value = round(sums[tuple(combo)], 2)
            elif count is not None and q["kind"] == "mean":
                value = round(sums[tuple(combo)] / count, 2)
            cell = tuple(dict(zip(level, combo)).get(d) for d in by)
            out[cell] = value
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_cell_is_the_method_on_the_selected_records(node, data):
    from safemicro.service.queries import Query

    n, who = node
    q = data.draw(queries(n.values["displaced"]))
    cells = json.loads(n.query(who, Query.model_validate(q)))["cells"]
    want = _expected(n, q)
    got = {tuple(c[d] for d in q["by"]): c["value"] for c in cells}
    assert got == want, q
    for c in cells:
        assert (c["status"], c["rule"]) == (
            ("released", "cell_key") if c["value"] is not None else ("suppressed", "threshold")
        )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_filter_of_several_but_not_all_values_is_refused(node, data):
    from safemicro.service.queries import Query
    from safemicro.service.refusal import Refusal

    n, who = node
    values = n.values["displaced"]
    d = data.draw(st.sampled_from(["district", "group", "month"]))
    picked = data.draw(st.lists(st.sampled_from(values[d]), min_size=2, max_size=len(values[d]) - 1, unique=True))
    q: dict = {"dataset": "displaced", "kind": data.draw(st.sampled_from(["count", "sum"])), "by": []}
    if q["kind"] == "sum":
        q["measure"] = "income"
    if d == "month":
        months = sorted(picked)
        start, end = months[0], months[-1]
        if [m for m in values["month"] if start <= m <= end] == values["month"]:
            return  # the whole span: allowed
        q["time"] = {"start": start, "end": end}
    else:
        q["filters"] = {d: picked}
    with pytest.raises(Refusal) as e:
        n.query(who, Query.model_validate(q))
    assert e.value.status == 422 and f"one value of {d!r}" in e.value.message
