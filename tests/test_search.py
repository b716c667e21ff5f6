"""Recode search: the chosen node is the least-loss minimal anonymous node of the lattice."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.io.dataset import Codebook, VariableMeta
from safemicro.keys import build_key_table
from safemicro.methods import STEPS, global_recode, recode_search
from safemicro.methods import search as search_mod
from safemicro.methods.base import StepContext
from safemicro.methods.search import search_levels
from safemicro.plan import Roles, Targets

KEYS = ["urbrur", "water", "relat", "sex", "age"]
HIER = {
    "water": [{1: 1, 2: 1, 3: 3, 4: 3, 5: 5, 6: 5, 7: 5, 9: 5}, {v: 1 for v in (1, 2, 3, 4, 5, 6, 7, 9)}],
    "relat": [{4: 9, 5: 9, 6: 9, 7: 9, 8: 9}, {3: 9, 4: 9, 5: 9, 6: 9, 7: 9, 8: 9}],
    "age": [
        {"breaks": [0, 10, 20, 30, 40, 50, 60, 100], "right": False},
        {"breaks": [0, 20, 40, 60, 100], "right": False},
        {"breaks": [0, 20, 60, 100], "right": False},
    ],
}


def brute_force(ds: Dataset, keys, hierarchies, k, max_suppression, loss):
    """Recode the records for every node, recount, and pick the best minimal anonymous node."""
    names = [v for v in keys if v in hierarchies]
    limit = math.floor(max_suppression * ds.n + 1e-9)
    info = {}
    for node in itertools.product(*[range(len(hierarchies[v]) + 1) for v in names]):
        cur = ds
        for v, level in zip(names, node):
            if level:
                cur = global_recode(cur, variable=v, **_kwargs(hierarchies[v][level - 1])).dataset
        kt = build_key_table(cur.analysis_frame(keys), keys)
        suppress = int((kt.record_fk() < k).sum())
        if loss == "entropy":
            value = 0.0
            for v in names:
                pair = pl.DataFrame({"o": ds.analysis_column(v), "g": cur.analysis_column(v)}).drop_nulls()
                pair = pair.with_columns(pl.len().over("o").alias("nv"), pl.len().over("g").alias("nc"))
                value += float(np.log2(pair["nc"].to_numpy() / pair["nv"].to_numpy()).sum())
        elif loss == "precision":
            value = sum(lv / len(hierarchies[v]) for v, lv in zip(names, node)) / len(names)
        else:
            value = float((kt.count**2).sum())
        info[node] = (suppress <= limit, suppress, value)
    minimal = []
    for node, (anon, _, _) in info.items():
        preds = [node[:i] + (node[i] - 1,) + node[i + 1 :] for i in range(len(node)) if node[i]]
        if anon and not any(info[p][0] for p in preds):
            minimal.append(node)
    best = min(minimal, key=lambda n: (info[n][2], info[n][1], sum(n), n)) if minimal else None
    as_dict = lambda n: {v: (dict(zip(names, n)).get(v, 0)) for v in keys}  # noqa: E731
    return (as_dict(best) if best else None), info.get(best), sorted(map(tuple, minimal))


def _kwargs(level):
    if isinstance(level, dict) and ("breaks" in level or "map" in level):
        return level
    return {"map": level}


@pytest.mark.parametrize(
    "max_suppression,loss",
    [(0.01, "entropy"), (0.03, "entropy"), (0.03, "precision"), (0.05, "discernibility"), (0.1, "entropy")],
)
def test_search_finds_brute_force_optimum(testdata, max_suppression, loss):
    ds = Dataset(testdata)
    res = search_levels(ds, keys=KEYS, hierarchies=HIER, k=3, max_suppression=max_suppression, loss=loss)
    best, (anon, suppress, value), minimal = brute_force(ds, KEYS, HIER, 3, max_suppression, loss)
    assert res.meets_target and anon
    assert res.levels == best
    assert res.records_to_suppress == suppress
    assert res.loss == pytest.approx(value, rel=1e-9)
    names = [v for v in KEYS if v in HIER]
    assert sorted(tuple(m[v] for v in names) for m in res.minimal_nodes) == minimal
    assert res.nodes == 36 and res.evaluated < res.nodes  # monotonicity pruning


def test_pruning_evaluates_fewer_nodes_than_exhaustive(testdata):
    ds = Dataset(testdata)
    pruned = search_levels(ds, keys=KEYS, hierarchies=HIER, k=3, max_suppression=0.03)
    full = search_levels(ds, keys=KEYS, hierarchies=HIER, k=3, max_suppression=0.03, exhaustive=True)
    assert full.evaluated == full.nodes == 36
    assert pruned.evaluated <= full.nodes // 2
    assert pruned.pruned == pruned.nodes - pruned.evaluated
    assert pruned.levels == full.levels and pruned.minimal_nodes == full.minimal_nodes


def test_recode_search_applies_levels_and_is_k_anonymous(testdata):
    ds = Dataset(testdata)
    before = ds.frame.clone()
    res = recode_search(ds, keys=KEYS, hierarchies=HIER, k=3, max_suppression=0.03)
    search = res.change.details["search"]
    # the recoded file before suppression has exactly the predicted violations
    recoded = ds
    for v, level in search["levels"].items():
        if level:
            recoded = global_recode(recoded, variable=v, **_kwargs(HIER[v][level - 1])).dataset
    kt = build_key_table(recoded.analysis_frame(KEYS), KEYS)
    assert int((kt.record_fk() < 3).sum()) == search["records_to_suppress"] > 0
    # after local suppression every record is in a key of 3 or more
    out = res.dataset
    kt = build_key_table(out.analysis_frame(KEYS), KEYS)
    assert kt.record_fk().min() >= 3
    assert res.change.details["suppression"] is not None
    assert sum(res.change.suppressed.values()) > 0
    assert out.columns == ds.columns and ds.frame.equals(before)
    for v in ("water", "relat", "age"):
        if search["levels"][v]:
            assert res.change.details["recodes"][v]["level"] == search["levels"][v]
    again = recode_search(ds, keys=KEYS, hierarchies=HIER, k=3, max_suppression=0.03)
    assert again.dataset.frame.equals(out.frame)


def test_no_node_meets_target_uses_most_general_levels(testdata):
    ds = Dataset(testdata)
    res = search_levels(ds, keys=KEYS, hierarchies=HIER, k=3, max_suppression=0.0)
    assert not res.meets_target and res.minimal_nodes == []
    assert res.levels == {"urbrur": 0, "water": 2, "relat": 2, "sex": 0, "age": 3}
    assert res.records_to_suppress > 0


def test_missing_values_are_wildcards_in_the_search():
    rng = np.random.default_rng(5)
    n = 400
    age = rng.integers(0, 80, n).astype(float)
    age[rng.random(n) < 0.05] = np.nan
    region = rng.integers(1, 7, n)
    region[rng.random(n) < 0.05] = 99  # user-missing
    frame = pl.DataFrame({"age": age, "region": region, "sex": rng.integers(1, 3, n)})
    ds = Dataset(frame, Codebook(variables={"region": VariableMeta("region", missing_values=[99])}))
    hier = {
        "age": [
            {"breaks": [0, 10, 20, 30, 40, 50, 60, 70, 80], "right": False},
            {"breaks": [0, 40, 80], "right": False},
        ],
        "region": [{1: 1, 2: 1, 3: 3, 4: 3, 5: 5, 6: 5}],
    }
    keys = ["age", "region", "sex"]
    for k in (2, 3, 5):
        res = search_levels(ds, keys=keys, hierarchies=hier, k=k, max_suppression=0.05)
        full = search_levels(ds, keys=keys, hierarchies=hier, k=k, max_suppression=0.05, exhaustive=True)
        assert res.levels == full.levels and res.minimal_nodes == full.minimal_nodes
        cur = ds
        for v, level in res.levels.items():
            if level:
                cur = global_recode(cur, variable=v, **_kwargs(hier[v][level - 1])).dataset
        kt = build_key_table(cur.analysis_frame(keys), keys)
        assert int((kt.record_fk() < k).sum()) == res.records_to_suppress
        assert (cur.frame["region"] == 99).sum() == (ds.frame["region"] == 99).sum()


def test_max_risk_counts_as_violation(testdata):
    ds = Dataset(testdata)
    plain = search_levels(ds, keys=KEYS, hierarchies=HIER, k=2, max_suppression=0.03, weight="sampling_weight")
    risky = search_levels(
        ds, keys=KEYS, hierarchies=HIER, k=2, max_suppression=0.03, weight="sampling_weight", max_risk=0.2
    )
    full = search_levels(
        ds,
        keys=KEYS,
        hierarchies=HIER,
        k=2,
        max_suppression=0.03,
        weight="sampling_weight",
        max_risk=0.2,
        exhaustive=True,
    )
    assert risky.levels == full.levels
    assert risky.loss >= plain.loss


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 7), st.one_of(st.none(), st.integers(0, 3))),
        min_size=10,
        max_size=120,
    ),
    depth=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 1)),
    k=st.integers(2, 4),
    max_suppression=st.sampled_from([0.0, 0.05, 0.2]),
    loss=st.sampled_from(["entropy", "precision", "discernibility"]),
)
def test_flash_equals_exhaustive_search(data, depth, k, max_suppression, loss):
    frame = pl.DataFrame(data, schema={"a": pl.Int64, "b": pl.Int64, "c": pl.Int64}, orient="row")
    ds = Dataset(frame)
    hier = {}
    for name, d in zip(["a", "b", "c"], depth):
        if d:  # nested: each level halves the values
            hier[name] = [{v: v >> lv for v in range(8)} for lv in range(1, d + 1)]
    if not hier:
        hier = {"a": [{v: 0 for v in range(8)}]}
    keys = ["a", "b", "c"]
    res = search_levels(ds, keys=keys, hierarchies=hier, k=k, max_suppression=max_suppression, loss=loss)
    full = search_levels(
        ds, keys=keys, hierarchies=hier, k=k, max_suppression=max_suppression, loss=loss, exhaustive=True
    )
    assert res.levels == full.levels
    assert res.minimal_nodes == full.minimal_nodes
    assert res.records_to_suppress == full.records_to_suppress
    assert res.evaluated <= full.evaluated


def test_bad_hierarchies_are_clear_errors(testdata, monkeypatch):
    ds = Dataset(testdata)
    with pytest.raises(SafemicroError, match="nested"):
        search_levels(ds, keys=["age"], hierarchies={"age": [[-1, 10, 20, 100], [-1, 15, 100]]})
    with pytest.raises(SafemicroError, match="outside every band"):
        search_levels(ds, keys=["age"], hierarchies={"age": [[0, 10, 20, 100]]})  # age 0 not in (0,10]
    with pytest.raises(SafemicroError, match="not a key"):
        search_levels(ds, keys=["sex"], hierarchies={"age": [[-1, 100]]})
    with pytest.raises(SafemicroError, match="no column"):
        search_levels(ds, keys=["nope"], hierarchies={})
    with pytest.raises(SafemicroError, match="levels"):
        search_levels(ds, keys=["age"], hierarchies={"age": []})
    monkeypatch.setattr(search_mod, "MAX_NODES", 10)
    with pytest.raises(SafemicroError, match="lattice"):
        search_levels(ds, keys=KEYS, hierarchies=HIER)


def test_arx_hierarchy_file_as_key_hierarchy(testdata, tmp_path):
    path = tmp_path / "relat.csv"
    rows = [f"{v};{v if v <= 3 else 9};{1 if v <= 2 else 9}" for v in range(1, 10)]
    path.write_text("\n".join(rows) + "\n")
    ds = Dataset(testdata)
    keys = ["relat", "sex", "urbrur"]
    res = search_levels(ds, keys=keys, hierarchies={"relat": str(path)}, k=5, max_suppression=0.0)
    assert res.heights["relat"] == 2 and res.meets_target
    # level 1 keeps relat 1-3 and merges 4-9; 5-anonymity without suppression needs level 2
    assert res.levels["relat"] == 2 and res.minimal_nodes == [{"relat": 2, "sex": 0, "urbrur": 0}]
    level1 = global_recode(ds, variable="relat", hierarchy=str(path), level=1).dataset
    assert (build_key_table(level1.frame, keys).record_fk() < 5).sum() > 0
    assert (
        build_key_table(
            global_recode(ds, variable="relat", hierarchy=str(path), level=2).dataset.frame, keys
        ).record_fk()
        >= 5
    ).all()


def test_plan_step_defaults_from_roles_and_targets(testdata):
    ds = Dataset(testdata)
    spec = STEPS["recode_search"]
    ctx = StepContext(
        roles=Roles(keys=KEYS, weight="sampling_weight"),
        targets=Targets(k=3),
        alpha=1.0,
        seed=1,
        index=1,
        columns=tuple(ds.columns),
    )
    params = spec.params.model_validate({"hierarchies": HIER, "max_suppression": 0.03})
    params.check(ctx)
    assert set(params.reads(ctx)) == set(KEYS) | {"sampling_weight"}
    res = spec.run(ds, params, ctx)
    assert res.change.params["k"] == 3 and res.change.params["weight"] == "sampling_weight"
    text = spec.describe(params, res.change)
    assert "3-anonymity" in text and "seed" not in text
    bad = spec.params.model_validate({"hierarchies": {"income": [[0, 1e9]]}})
    with pytest.raises(ValueError, match="not a key"):
        bad.check(ctx)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        spec.params.model_validate({"hierarchies": HIER, "max_suppression": 1.5})


def test_survey_step_with_households_and_importance():
    from safemicro.examples import generate_survey

    ds = generate_survey(n_households=300, seed=7)
    keys = ["camp", "origin", "hh_size", "relationship", "sex", "age"]
    roles = Roles(keys=keys, weight="weight", household="hhid", household_level=["camp", "origin", "hh_size"])
    ctx = StepContext(roles=roles, targets=Targets(k=3), alpha=1.0, seed=1, index=1, columns=tuple(ds.columns))
    spec = STEPS["recode_search"]
    params = spec.params.model_validate(
        {
            "hierarchies": {
                "age": [[-1, 4, 9, 14, 17, 24, 34, 44, 59, 200], [-1, 17, 59, 200]],
                "hh_size": [[0, 2, 4, 6, 9, 100], [0, 4, 100]],
                "origin": [{6: 9, 7: 9, 8: 9}, {3: 9, 4: 9, 5: 9, 6: 9, 7: 9, 8: 9}],
            },
            "max_suppression": 0.25,  # six person and household keys: many rare combinations
            "importance": ["hh_size", "camp", "origin", "relationship", "sex", "age"],
        }
    )
    params.check(ctx)
    res = spec.run(ds, params, ctx)
    out = res.dataset
    kt = build_key_table(out.analysis_frame(keys), keys, out.frame["weight"].to_numpy())
    assert kt.record_fk().min() >= 3
    # household-level keys stay constant within households
    for v in roles.household_level:
        assert out.frame.group_by("hhid").agg(pl.col(v).n_unique()).get_column(v).max() == 1
    search = res.change.details["search"]
    assert search["meets_target"] and search["evaluated"] < search["nodes"] == 27
    assert out.codebook.meta("age").value_labels  # band labels travel with the data
