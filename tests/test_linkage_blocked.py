"""Exact linkage blocked on the key table equals the in-memory exact linkage record for record.

Reference: :func:`safemicro.attack.linkage.link_records` (``exact``), itself checked against
brute force in tests/test_attack_linkage.py. Data: sdcMicro's testdata (raw, after k = 3
local suppression, with an intruder register holding missing values and extra people) and
random small files with missing values and NaN.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import KV7
from safemicro.attack.linkage import LinkageEvaluator, link_records
from safemicro.attack.record_linkage.blocked import link_exact_blocked
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.methods import local_suppression


@pytest.fixture(scope="module")
def people(testdata) -> pl.DataFrame:
    return testdata.with_row_index("pid").with_columns(pl.col("pid").cast(pl.Int64))


@pytest.fixture(scope="module")
def register(people) -> pl.DataFrame:
    """The intruder's register: everybody's 7 keys, 10 % of cells unknown, 500 people not
    in the release, in shuffled order."""
    rng = np.random.default_rng(3)
    reg = people.select(["pid", *KV7])
    extra = reg.sample(500, seed=4).with_columns(pl.col("pid") + 1_000_000)
    reg = pl.concat([reg, extra]).sample(fraction=1.0, shuffle=True, seed=5)
    return reg.with_columns(
        [pl.when(pl.Series(rng.random(reg.height) < 0.1)).then(None).otherwise(pl.col(c)).alias(c) for c in KV7]
    )


def _same(release, register, on, truth, tmp_path, threshold=0.5):
    ev = LinkageEvaluator(release, register, truth=truth, on=on, threshold=threshold).evaluate(drivers=False)
    ref = ev.outcome_
    out = link_exact_blocked(release, register, on, truth=truth, claims_out=tmp_path / "claims.parquet")
    got = pl.read_parquet(tmp_path / "claims.parquet").sort("register_row")
    assert got["register_row"].to_list() == list(range(register.height))
    assert np.array_equal(got["n_candidates"].to_numpy(), ref.n_candidates)
    assert np.array_equal(got["confidence"].to_numpy(), ref.confidence)
    assert np.array_equal(got["claimed_row"].to_numpy(), ref.claimed)
    assert np.array_equal(got["true_in_best"].to_numpy(), ref.true_in_best & (ref.n_best > 0))
    expected = ref.summary(threshold)
    summary = out.summary(threshold)
    for k, v in expected.items():
        assert summary[k] == (pytest.approx(v, rel=1e-12) if isinstance(v, (float, list)) else v), k
    return summary


def test_raw_release_equals_in_memory(people, register, tmp_path):
    s = _same(people, register, KV7, "pid", tmp_path)
    assert s["n_auxiliary"] == register.height and s["n_in_release"] == people.height
    assert s["n_register_keys"] < register.height


def test_k3_release_with_suppressions_equals_in_memory(people, register, tmp_path):
    ls = local_suppression(Dataset(people), keys=KV7, k=3).dataset.frame
    assert ls.select(pl.col(KV7).null_count()).sum_horizontal()[0] > 0
    s = _same(ls, register, KV7, "pid", tmp_path, threshold=0.3)
    assert s["precision"] <= 1 / 3 + 1e-9


def test_parquet_files_and_string_ids(people, register, tmp_path):
    rel = people.with_columns(pl.col("pid").cast(pl.String))
    rel.write_parquet(tmp_path / "release.parquet")
    register.write_parquet(tmp_path / "register.parquet")
    ref = LinkageEvaluator(rel, register, truth="pid", on=KV7).evaluate(drivers=False).outcome_.summary(0.5)
    got = link_exact_blocked(tmp_path / "release.parquet", tmp_path / "register.parquet", KV7, truth="pid").summary()
    assert got["expected_correct"] == pytest.approx(ref["expected_correct"], rel=1e-12)
    assert got["reidentified"] == ref["reidentified"]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(1, 40), st.sampled_from([0.0, 0.2, 0.5]))
def test_random_files_equal_in_memory(seed, n_r, n_a, missing):
    rng = np.random.default_rng(seed)

    def frame(n, ids):
        cols = {c: rng.integers(1, 4, n).astype(float) for c in ("a", "b", "c")}
        f = pl.DataFrame(cols).with_columns(
            [pl.when(pl.Series(rng.random(n) < missing)).then(None).otherwise(pl.col(c)).alias(c) for c in cols]
        )
        # NaN is missing too
        f = f.with_columns(
            pl.when(pl.Series(rng.random(n) < missing / 2)).then(np.nan).otherwise(pl.col("a")).alias("a")
        )
        return f.with_columns(pl.Series("id", ids))

    release = frame(n_r, np.arange(n_r))
    aux = frame(n_a, rng.integers(-1, n_r + 3, n_a))
    truth = np.where(aux["id"].to_numpy() < n_r, aux["id"].to_numpy(), -1)
    ref, _ = link_records(release, aux, ["a", "b", "c"], truth_rows=np.where(truth < 0, -1, truth))
    with tempfile.TemporaryDirectory() as tmp:
        out = link_exact_blocked(release, aux, ["a", "b", "c"], truth="id", claims_out=Path(tmp) / "c.parquet")
        got = pl.read_parquet(Path(tmp) / "c.parquet").sort("register_row")
    assert np.array_equal(got["n_candidates"].to_numpy(), ref.n_candidates)
    assert np.array_equal(got["claimed_row"].to_numpy(), ref.claimed)
    assert np.array_equal(got["true_in_best"].to_numpy(), ref.true_in_best & (ref.n_best > 0))
    s = out.summary()
    assert s["expected_correct"] == pytest.approx(float(ref.expected_correct.sum()), rel=1e-12, abs=1e-12)
    assert s["n_claims"] == int(ref.claims.sum())
    assert s["reidentified"] == ref.summary(0.5)["reidentified"]


def test_repeated_release_identity_names_row(people, register):
    rel = pl.concat([people, people.head(1)])
    with pytest.raises(SafemicroError, match="identity repeated") as e:
        link_exact_blocked(rel, register, KV7, truth="pid")
    assert e.value.row == 1


def test_missing_column_is_named(people, register):
    with pytest.raises(SafemicroError, match="no such column"):
        link_exact_blocked(people, register, [*KV7, "nope"], truth="pid")


def test_cli_link_register(people, register, tmp_path):
    import json

    from typer.testing import CliRunner

    from safemicro.cli import app

    people.write_parquet(tmp_path / "release.parquet")
    register.write_csv(tmp_path / "register.csv")
    args = ["attack", "link-register", str(tmp_path / "release.parquet"), str(tmp_path / "register.csv")]
    args += ["--id", "pid", "--on", ",".join(KV7), "--json", str(tmp_path / "r.json")]
    res = CliRunner().invoke(app, [*args, "--claims", str(tmp_path / "claims.parquet")])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "r.json").read_text())
    ref = LinkageEvaluator(people, register, truth="pid", on=KV7).evaluate(drivers=False).outcome_.summary(0.5)
    assert got["expected_correct"] == pytest.approx(ref["expected_correct"], rel=1e-12)
    assert pl.read_parquet(tmp_path / "claims.parquet").height == register.height
    bad = CliRunner().invoke(app, [*args[:4], "--id", "nope", "--on", "roof"])
    assert bad.exit_code != 0 and "no such column" in bad.output and "Traceback" not in bad.output
