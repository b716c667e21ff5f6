"""k-anonymity on every combination of m keys (sdcMicro ``kAnon(combs=)``).

Reference: the definition re-derived with plain Polars group-bys (one per key subset) on
sdcMicro's testdata without missing keys; with missing keys the frequencies are sdcMicro's
freqCalc wildcards (tested against sdcMicro's outputs in test_risk_parity.py), here checked
on a hand-made case.
"""

from __future__ import annotations

from itertools import combinations

import polars as pl
import pytest
from tests.conftest import KV7, SDC_DATA

from safemicro.assess import assess
from safemicro.risk.kanon_combinations import combination_violations


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    return pl.read_csv(SDC_DATA / "testdata.csv").select(KV7).drop_nulls()


@pytest.mark.parametrize("m", [2, 3])
def test_equal_to_group_bys_per_subset(data, m):
    summary, first = combination_violations(data, KV7, 3, [m])
    violating = pl.Series([False] * data.height)
    per_subset = []
    for subset in combinations(KV7, m):
        fk = data.select(pl.len().over(list(subset))).to_series()
        violating = violating | (fk < 3)
        per_subset.append(int((fk < 3).sum()))
    assert summary[str(m)]["records_violating"] == int(violating.sum())
    assert summary[str(m)]["combinations"] == len(per_subset)
    assert summary[str(m)]["combinations_violated"] == sum(1 for n in per_subset if n)
    assert summary[str(m)]["worst"][0]["records_violating"] == max(per_subset)
    assert int((first == m).sum()) == int(violating.sum())


def test_missing_values_are_wildcards():
    # a missing sex matches both sexes: (1, None) is compatible with (1, 1) and (1, 2)
    df = pl.DataFrame({"camp": [1, 1, 1, 2], "sex": [1, 2, None, 1]})
    summary, first = combination_violations(df, ["camp", "sex"], 2, [2])
    assert summary["2"]["records_violating"] == 1 and first.tolist() == [0, 0, 0, 2]


def test_assess_checks_the_plan_target(data):
    result = assess(data, keys=KV7, targets={"k": 3, "k_combinations": [2], "max_global_risk": None})
    checks = {c["target"]: c for c in result.summary["checks"]}
    assert (
        checks["k = 3 on every 2-key combination"]["value"]
        == result.summary["k_anonymity"]["combinations"]["2"]["records_violating"]
    )
    assert "k_violated_at_m" in result.records.columns
    with pytest.raises(Exception, match="k_combinations"):
        assess(data, keys=KV7, targets={"k": 3, "k_combinations": [9]})
