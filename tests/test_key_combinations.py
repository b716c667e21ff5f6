"""k-anonymity on every m-combination of keys, mu-Argus unsafe cells, and local suppression
to k on all m-combinations (sdcMicro kAnon(combs=, strataVars=), riskyCells)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import polars as pl
import pytest

from conftest import SDC_DATA, SDC_REF
from safemicro.assess import assess
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.keys import build_key_table
from safemicro.methods import suppress_combinations
from safemicro.pipeline import prepare_steps, run_steps
from safemicro.plan import Plan
from safemicro.risk.combinations import combination_fk, kanon_combinations, risky_cells

KEYS = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


@pytest.fixture(scope="module")
def suppressed() -> pl.DataFrame:
    """sdcMicro's testdata after its localSuppression(k=3): 7 keys with missing values, and
    sdcMicro's fk after (alpha 1, 0.5, 0)."""
    return pl.read_csv(SDC_REF / "testdata_localSuppression_k3.csv")


@pytest.mark.parametrize(("alpha", "column"), [(1.0, "fk_after"), (0.5, "fk_after_alpha05"), (0.0, "fk_after_alpha0")])
def test_all_keys_combination_equals_sdcmicro_fk(suppressed, alpha, column):
    # Reference: sdcMicro 5.8.1's freqCalc fk with NA wildcards (SDC_REF), the combination of all 7 keys.
    kt = build_key_table(suppressed, KEYS, alpha=alpha)
    fk = combination_fk(kt, range(len(KEYS)))[kt.record_key]
    np.testing.assert_allclose(fk, suppressed[column].to_numpy())


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_marginalised_fk_equals_records_group_by(suppressed, alpha):
    # Independent path: the key table built from the records on the 3 keys alone.
    kt = build_key_table(suppressed, KEYS, alpha=alpha)
    for combo in [(0, 1, 2), (1, 3, 5), (4, 5, 6)]:
        names = [KEYS[j] for j in combo]
        direct = build_key_table(suppressed, names, alpha=alpha).record_fk()
        np.testing.assert_allclose(combination_fk(kt, combo)[kt.record_key], direct)


def test_kanon_combinations_hand_checked():
    # a,b all distinct (4 records below 2); a,c and b,c each two singletons.
    df = pl.DataFrame({"a": [1, 1, 2, 2], "b": [1, 2, 1, 2], "c": [1, 1, 1, 2]})
    r = kanon_combinations(build_key_table(df, ["a", "b", "c"]), 2, 2)
    assert [row["n_violations"] for row in r.rows] == [4, 2, 2]
    assert r.n_records_unsafe == 4
    assert kanon_combinations(build_key_table(df, ["a", "b", "c"]), 1, 2).n_records_unsafe == 1  # c = 2


def test_kanon_within_strata_equals_per_stratum_tables():
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    strata = "hhcivil"
    frame = df.select(KEYS).with_columns(df[strata])
    table = build_key_table(frame, [*KEYS, strata])
    r = kanon_combinations(table, 2, 5, fixed=1)
    for row, combo in zip(r.rows, combinations(KEYS, 2)):
        fk = build_key_table(df, [*combo, strata]).record_fk()
        assert row["n_violations"] == int((fk < 5).sum())


def test_risky_cells_sdcmicro_test_suite_values():
    # Reference: sdcMicro's own tests (tests/testthat/test_riskyCells.R) on testdata2.
    df = pl.read_csv(SDC_DATA / "testdata2.csv")
    kt = build_key_table(df, df.columns[:5])
    assert risky_cells(kt, [50, 25, 10, 5])[0]["unsafe_cells"] == 1
    assert risky_cells(kt, [10], max_dim=3)[0]["unsafe_cells"] == 0
    kt7 = build_key_table(df, KEYS)
    assert risky_cells(kt7, [20, 10, 5])[0]["unsafe_cells"] == 0
    assert len(risky_cells(kt, [50, 25, 10, 5])) == 5 + 10 + 10 + 5


def test_risky_cells_equal_record_counts(suppressed):
    # Independent path: Polars group-by on the records, a missing value as its own category.
    kt = build_key_table(suppressed, KEYS)
    rows = risky_cells(kt, [20, 10, 5])
    for row in rows:
        counts = suppressed.group_by(row["keys"]).len()["len"]
        assert row["unsafe_cells"] == int((counts <= row["threshold"]).sum()), row["keys"]


def test_assess_reports_combinations_and_checks():
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    a = assess(df, keys=KEYS, targets={"k": 3, "combs": [2], "risky_cells": [20, 10]})
    section = a.summary["key_combinations"]
    assert section["kanon"][0]["n_combinations"] == 21
    assert section["risky_cells"]["by_dimension"]["2"]["tables"] == 21
    names = [c["target"] for c in a.summary["checks"]]
    assert "k = 3 on every 2 keys" in names and "no unsafe cells (mu-Argus)" in names
    assert assess(df, keys=KEYS).summary["key_combinations"] is None


def _violations(frame: pl.DataFrame, m: int, k: int, strata: str | None = None) -> int:
    """Records below k on some m-combination, from the records (independent of the method)."""
    bad = np.zeros(frame.height, dtype=bool)
    for combo in combinations(KEYS, m):
        names = [*combo, strata] if strata else list(combo)
        bad |= build_key_table(frame, names).record_fk() < k
    return int(bad.sum())


@pytest.mark.parametrize(("m", "k", "strata"), [(3, 3, None), (2, 5, "hhcivil")])
def test_suppress_combinations_meets_k_on_every_combination(m, k, strata):
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    if strata:
        df = df.with_columns(pl.col(strata).fill_null(0))
    before = _violations(df, m, k, strata)
    res = suppress_combinations(Dataset(df), keys=KEYS, combs=m, k=k, strata=strata)
    out = res.dataset.frame
    assert before > 0
    assert _violations(out, m, k, strata) == 0
    assert res.change.details["n_records_violating_after"] == 0
    assert 0 < res.change.details["cells_suppressed"] < before * m
    if strata:
        assert out[strata].equals(df[strata])  # strata are never suppressed


def test_suppress_combinations_plan_step_and_errors():
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    plan = Plan.from_yaml(
        "roles: {keys: [urbrur, roof, walls, water, electcon, relat, sex]}\n"
        "targets: {k: 2}\n"
        "steps:\n  - local_suppression_combs: {combs: [3]}\n"
    )
    out, changes = run_steps(Dataset(df), prepare_steps(plan, df.columns, seed=1))
    assert changes[0].details["n_records_violating_after"] == 0
    assert _violations(out.frame, 3, 2) == 0
    with pytest.raises(SafemicroError, match="between 1 and the number of keys"):
        suppress_combinations(Dataset(df), keys=KEYS, combs=8, k=2)
    with pytest.raises(SafemicroError, match="one k or one per combination size"):
        suppress_combinations(Dataset(df), keys=KEYS, combs=[3, 2], k=[2, 3, 4])
    with pytest.raises(SafemicroError, match="not in the data"):
        suppress_combinations(Dataset(df), keys=KEYS, combs=2, strata="nope")


def test_risk_report_shows_combinations(tmp_path):
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    a = assess(df, keys=KEYS, targets={"k": 3, "combs": [2], "risky_cells": [20, 10]})
    a.write_html(tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert 'id="combinations"' in html and "riskyCells" in html
    n = a.summary["key_combinations"]["kanon"][0]["n_records_violating"]
    assert f"{n:,}" in html or str(n) in html
