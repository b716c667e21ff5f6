"""The cell key method: equal to ONS's cell-key-perturbation (PyPI, the reference) on the
same data, record keys and ptable; same cell, same perturbation; generated ptables keep
their declared maximum perturbation and variance."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import SDC_DATA
from safemicro.service.cell_key import cell_key_counts, generate_ptable, record_keys

ons = pytest.importorskip("cell_key_perturbation.create_perturbed_table")
ons_ptable = pytest.importorskip("cell_key_perturbation.utils.generate_test_ptable")


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    df = pl.read_csv(SDC_DATA / "testdata.csv").select("urbrur", "water", "relat", "roof")
    df = pl.concat([df] * 3)  # counts above 750 use the ptable's cycle rows
    return df.with_columns(pl.Series("rk", record_keys(df.height, seed=7)))


@pytest.mark.parametrize(("geog", "tab"), [(["urbrur"], ["water", "relat"]), ([], ["roof"])])
def test_equal_to_ons_package(data, geog, tab):
    pt = ons_ptable.generate_ptable_10_5_rule()
    ref = ons.create_perturbed_table(data.to_pandas(), pt, geog, tab, "rk", threshold=10)
    ref = pl.from_pandas(ref[ref.pre_sdc_count > 0]).sort(geog + tab)
    ours = cell_key_counts(data, geog + tab, "rk", pl.from_pandas(pt), threshold=10).sort(geog + tab)
    assert ours["pre_sdc_count"].max() > 750
    for col in ["pre_sdc_count", "ckey", "pvalue", "count"]:
        assert ours[col].cast(pl.Int64).to_list() == ref[col].cast(pl.Int64).to_list(), col


def test_same_cell_same_perturbation_in_overlapping_tables(data):
    pt = generate_ptable(3, 1.0, max_pcv=100)
    a = cell_key_counts(data, ["urbrur", "water"], "rk", pt, threshold=0)
    # the same cells asked again inside a query on a subset that keeps them whole
    b = cell_key_counts(data.filter(pl.col("urbrur") == 1), ["urbrur", "water"], "rk", pt, threshold=0)
    joined = a.join(b, on=["urbrur", "water"], suffix="_b")
    assert joined.height == b.height > 0
    assert joined["count"].to_list() == joined["count_b"].to_list()
    assert (a["pvalue"] != 0).any()


def test_generated_ptable_declared_d_and_v():
    pt = generate_ptable(4, 2.0, max_pcv=60, key_range=1024)
    by = pt.group_by("pcv").agg(
        pl.col("pvalue").min().alias("lo"),
        pl.col("pvalue").max().alias("hi"),
        pl.col("pvalue").mean().alias("mean"),
        (pl.col("pvalue").cast(pl.Float64) ** 2).mean().alias("var"),
    )
    assert by["hi"].max() <= 4 and by["lo"].min() >= -4
    assert (by["lo"] >= -by["pcv"]).all()  # never a negative count
    big = by.filter(pl.col("pcv") >= 10)
    np.testing.assert_allclose(big["mean"].to_numpy(), 0, atol=0.01)
    np.testing.assert_allclose(big["var"].to_numpy(), 2.0, atol=0.05)
