"""Attribute disclosure measures: t-closeness, δ-disclosure, β-likeness, (α,k)-anonymity.

References: pycanon 1.3.6 (PyPI; CSIC, Apache-2.0) on sdcMicro's testdata with the same
keys and sensitive variables — equality to 1e-12; the t-closeness paper's own example (Li,
Li & Venkatasubramanian 2007, salary 3k–11k: ordered EMD 0.375 and 0.167); and a
hand-checked hierarchical EMD on a three-leaf tree.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from tests.conftest import SDC_DATA

from safemicro.risk.attribute import attribute_disclosure

pycanon = pytest.importorskip("pycanon.anonymity", reason="pycanon is the reference (pip install --no-deps pycanon)")

KEYS = ["urbrur", "roof", "sex"]


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    df = pl.read_csv(SDC_DATA / "testdata.csv").select([*KEYS, "hhcivil", "water", "walls"]).drop_nulls()
    return df.with_columns(pl.col("hhcivil").cast(pl.String).alias("civil_text"))


@pytest.mark.parametrize("sensitive, distance", [("civil_text", "equal"), ("water", "ordered"), ("walls", "ordered")])
def test_equal_to_pycanon(data, sensitive, distance):
    pdf = data.to_pandas()
    ours = attribute_disclosure(data, KEYS, [sensitive], distance={sensitive: distance}).variables[sensitive]
    assert ours["t_closeness"] == pytest.approx(pycanon.t_closeness(pdf, KEYS, [sensitive]), abs=1e-12)
    assert ours["delta_disclosure"] == pytest.approx(pycanon.delta_disclosure(pdf, KEYS, [sensitive]), abs=1e-12)
    assert ours["beta_likeness"] == pytest.approx(pycanon.basic_beta_likeness(pdf, KEYS, [sensitive]), abs=1e-12)
    assert ours["beta_likeness_enhanced"] == pytest.approx(
        pycanon.enhanced_beta_likeness(pdf, KEYS, [sensitive]), abs=1e-12
    )
    alpha, k = pycanon.alpha_k_anonymity(pdf, KEYS, [sensitive])
    assert ours["alpha"] == pytest.approx(alpha, abs=1e-12) and ours["k"] == k


def test_the_papers_salary_example():
    # Li et al. 2007, Table 3/4: P = salaries 3k..11k; Q1 = {3k, 4k, 5k}: 0.375; Q2 = {6k, 8k, 11k}: 0.167
    df = pl.DataFrame({"zip": [1, 1, 1, 2, 2, 2, 3, 3, 3], "salary": [3, 4, 5, 6, 8, 11, 7, 9, 10]})
    r = attribute_disclosure(df, ["zip"], "salary", distance={"salary": "ordered"})
    t = r.per_record["t_salary"].to_numpy()
    assert t[0] == pytest.approx(0.375) and t[3] == pytest.approx(1.5 / 9)
    assert r.variables["salary"]["t_closeness"] == pytest.approx(0.375)


def test_hierarchical_emd_by_hand():
    # leaves a, b under X; c under Y; root. p = (1/3, 1/3, 1/3).
    # {a}: a +2/3, b -1/3, c -1/3 -> X: ½·min(2/3, 1/3) = 1/6; root: 1·min(1/3, 1/3) = 1/3; total 1/2
    # {b, c}: a -1/3, b +1/6, c +1/6 -> X: ½·1/6 = 1/12; root: 1·1/6; total 1/4
    df = pl.DataFrame({"g": [1, 2, 2], "v": ["a", "b", "c"]})
    tree = {"a": ["X"], "b": ["X"], "c": ["Y"]}
    r = attribute_disclosure(df, ["g"], "v", distance={"v": "hierarchical"}, hierarchies={"v": tree})
    assert r.per_record["t_v"].to_list() == pytest.approx([0.5, 0.25, 0.25])
    # a full path with its own root gives the same tree
    rooted = {k: [*v, "all"] for k, v in tree.items()}
    same = attribute_disclosure(df, ["g"], "v", distance={"v": "hierarchical"}, hierarchies={"v": rooted})
    assert same.per_record["t_v"].to_list() == pytest.approx([0.5, 0.25, 0.25])
    # a flat hierarchy (every leaf its own branch under the root) is the equal distance
    flat = attribute_disclosure(
        df, ["g"], "v", distance={"v": "hierarchical"}, hierarchies={"v": {"a": ["a"], "b": ["b"], "c": ["c"]}}
    )
    equal = attribute_disclosure(df, ["g"], "v", distance={"v": "equal"})
    assert flat.per_record["t_v"].to_list() == pytest.approx(equal.per_record["t_v"].to_list())


def test_targets_count_records_in_groups_above_them():
    df = pl.DataFrame({"g": [1, 1, 2, 2, 2, 2], "s": ["x", "x", "x", "y", "y", "y"]})
    targets = {"t_closeness": 0.3, "delta_disclosure": 0.5, "beta_likeness": 0.9, "max_sensitive_share": 0.7}
    v = attribute_disclosure(df, ["g"], "s", targets=targets).variables["s"]
    # p = (1/2, 1/2); group 1: q = (1, 0): t = ½, δ = ln 2, β = 1, α = 1; group 2: q = (1/4, 3/4)
    assert v["t_closeness"] == pytest.approx(0.5) and v["delta_disclosure"] == pytest.approx(np.log(2))
    assert v["n_records_above_t"] == 2 and v["n_records_above_alpha"] == 6  # group 2: 3/4 > 0.7 too
    assert v["n_records_above_beta"] == 2
    # enhanced cap for p = ½: min(0.9, ln 2 = 0.693); group 2's gain on y is 0.5 < 0.693
    assert v["n_records_above_beta_enhanced"] == 2
    assert v["n_records_above_delta"] == 6  # group 2: |ln(1/4 ÷ 1/2)| = 0.69 > 0.5


def test_missing_sensitive_values_are_left_out_and_bad_settings_refused():
    df = pl.DataFrame({"g": [1, 1, 2], "s": ["x", None, "y"]})
    v = attribute_disclosure(df, ["g"], "s").variables["s"]
    assert v["k"] == 1 and v["t_closeness"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="hierarchy"):
        attribute_disclosure(df, ["g"], "s", distance={"s": "hierarchical"})
    with pytest.raises(ValueError, match="not in the hierarchy"):
        attribute_disclosure(df, ["g"], "s", distance={"s": "hierarchical"}, hierarchies={"s": {"x": ["A"]}})
    with pytest.raises(ValueError, match="distance must be"):
        attribute_disclosure(df, ["g"], "s", distance={"s": "manhattan"})


def test_assess_and_the_risk_report(tmp_path, data):
    from safemicro.assess import assess

    # through assess: hhcivil is an unlabelled number, so its default distance is ordered, as pycanon's
    targets = {"k": 3, "t_closeness": 0.2, "beta_likeness": 1.0}
    result = assess(data, keys=KEYS, sensitive=["hhcivil"], targets=targets)
    v = result.summary["attribute_disclosure"]["hhcivil"]
    assert v["distance"] == "ordered"
    assert v["t_closeness"] == pytest.approx(pycanon.t_closeness(data.to_pandas(), KEYS, ["hhcivil"]), abs=1e-12)
    assert result.records["t_hhcivil"].max() == pytest.approx(v["t_closeness"])
    checks = {c["target"]: c for c in result.summary["checks"]}
    t_check = checks["t-closeness ≤ 0.2"]
    assert t_check["passed"] is (v["n_records_above_t"] == 0) and t_check["value"] == pytest.approx(v["t_closeness"])
    assert "enhanced cap" in checks["β-likeness ≤ 1"]["message"]
    result.write_html(tmp_path / "risk.html")
    html = (tmp_path / "risk.html").read_text()
    assert "Attribute disclosure of sensitive variables" in html and "t-closeness at most 0.2" in html


def test_a_plan_hierarchy_is_read_and_a_bad_one_named(tmp_path):
    from safemicro.assess import assess
    from safemicro.errors import SafemicroError
    from safemicro.plan import AttributeDisclosure

    df = pl.DataFrame({"g": [1, 2, 2], "v": ["a", "b", "c"]})
    (tmp_path / "tree.csv").write_text("a,X\nb,X\nc,Y\n")
    settings = AttributeDisclosure(distance={"v": "hierarchical"}, hierarchy={"v": str(tmp_path / "tree.csv")})
    result = assess(df, keys=["g"], sensitive=["v"], attribute=settings)
    assert result.summary["attribute_disclosure"]["v"]["t_closeness"] == pytest.approx(0.5)
    bad = AttributeDisclosure(distance={"v": "hierarchical"}, hierarchy={"v": {"a": ["X"]}})
    with pytest.raises(SafemicroError, match="not in the hierarchy"):
        assess(df, keys=["g"], sensitive=["v"], attribute=bad)
