"""Evaluation of synthetic data: sdmetrics-compatible quality, pMSE, k-marginal, TSTR,
the privacy section, the JSON result and the HTML page."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from conftest import NIST, SD2011
from safemicro.errors import SafemicroError
from safemicro.evaluate import NIST_CRC, column_kinds, evaluate, render_evaluation_html, write_evaluation_html
from safemicro.evaluate.columns import analysis_series
from safemicro.evaluate.utility import k_marginal, pmse, quality, tstr
from safemicro.io import Dataset, from_frame, read

QI = ["sex", "age", "region", "placesize", "edu", "marital"]
# sdmetrics' single-table report is deprecated but still the reference the anchor study used
pytestmark = pytest.mark.filterwarnings("ignore:The single table quality report is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def sd():
    ds = read(SD2011)
    rng = np.random.default_rng(1)
    perm = rng.permutation(ds.n)
    train, holdout = ds.with_frame(ds.frame[perm[:4000]]), ds.with_frame(ds.frame[perm[4000:]])
    marg = pl.DataFrame({c: train.frame[c].gather(rng.integers(0, 4000, 4000)) for c in ds.columns})
    copies = train.frame[rng.integers(0, 4000, 4000)]
    return ds, train, holdout, ds.with_frame(marg), ds.with_frame(copies)


def analysis(ds: Dataset, kinds) -> pl.DataFrame:
    return pl.DataFrame([analysis_series(ds.frame[c], kinds[c]) for c in ds.columns])


# -- sdmetrics compatibility ---------------------------------------------------------------------


def _sdmetrics_report(real: pd.DataFrame, synth: pd.DataFrame, meta: dict, thresholds: bool):
    sdm = pytest.importorskip("sdmetrics.reports.single_table")
    report = sdm.QualityReport()
    if not thresholds:
        report.real_correlation_threshold = 0
        report.real_association_threshold = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate(real, synth, meta, verbose=False)
    return report


def _compare_with_sdmetrics(real: pl.DataFrame, synth: pl.DataFrame, kinds: dict, meta: dict, thresholds: bool):
    ours = quality(
        real, synth, kinds, **({} if thresholds else {"correlation_threshold": 0, "association_threshold": 0})
    )
    report = _sdmetrics_report(real.to_pandas(), synth.to_pandas(), meta, thresholds)
    props = dict(zip(report.get_properties()["Property"], report.get_properties()["Score"]))
    assert ours["score"] == pytest.approx(report.get_score(), abs=1e-6)
    assert ours["column_shapes"] == pytest.approx(props["Column Shapes"], abs=1e-6)
    assert ours["column_pair_trends"] == pytest.approx(props["Column Pair Trends"], abs=1e-6)
    shapes = report.get_details("Column Shapes")
    mine = {c["column"]: c["score"] for c in ours["columns"]}
    for _, row in shapes.iterrows():
        if math.isnan(row["Score"]):
            assert mine[row["Column"]] is None
        else:
            assert mine[row["Column"]] == pytest.approx(row["Score"], abs=1e-9)
    pairs = {tuple(p["columns"]): p for p in ours["pairs"]}
    details = report.get_details("Column Pair Trends")
    assert len(details) == len(pairs)
    for _, row in details.iterrows():
        p = pairs[(row["Column 1"], row["Column 2"])]
        assert p["metric"] == row["Metric"]
        assert p["counted"] == (row["Meets Threshold?"] is True)
        if p["counted"]:
            if math.isnan(row["Score"]):
                assert p["score"] is None
            else:
                assert p["score"] == pytest.approx(row["Score"], abs=1e-9)
    return ours


@pytest.mark.parametrize("thresholds", [True, False])
def test_quality_equals_sdmetrics_on_sd2011(sd, thresholds):
    ds, train, holdout, marg, _ = sd
    kinds = column_kinds(ds)
    meta = {"columns": {c: {"sdtype": "numerical" if k == "numeric" else "categorical"} for c, k in kinds.items()}}
    ours = _compare_with_sdmetrics(analysis(train, kinds), analysis(marg, kinds), kinds, meta, thresholds)
    if thresholds:  # the anchor study's independent-marginals number on 35 columns: 0.863
        assert 0.85 < ours["score"] < 0.88 and ours["pairs_counted"] > 20


def test_quality_equals_sdmetrics_with_dates_booleans_constants_and_empty_columns():
    def frame(seed: int) -> pl.DataFrame:
        r = np.random.default_rng(seed)
        x = r.normal(size=600)
        return pl.DataFrame(
            {
                "d": pl.Series(r.integers(18_000, 19_000, 600)).cast(pl.Date),
                "b": r.random(600) < 0.3 + 0.1 * seed,
                "const": np.ones(600),
                "empty": pl.Series([None] * 600, dtype=pl.Float64),
                "x": np.where(r.random(600) < 0.1, np.nan, x),
                "y": x * (0.6 + 0.1 * seed) + r.normal(size=600),
                "c": r.choice(["a", "b", "c", "d"], 600, p=[0.4, 0.3, 0.2, 0.1]),
                "e": np.where(x > 0, "pos", r.choice(["neg", None], 600)),
            }
        )

    real, synth = frame(1), frame(2)
    kinds = column_kinds(from_frame(real))
    assert kinds == {
        "d": "datetime",
        "b": "categorical",
        "const": "numeric",
        "empty": "numeric",
        "x": "numeric",
        "y": "numeric",
        "c": "categorical",
        "e": "categorical",
    }
    sdtype = {"datetime": "datetime", "numeric": "numerical", "categorical": "categorical"}
    meta = {"columns": {c: {"sdtype": sdtype[k]} for c, k in kinds.items()}}
    meta["columns"]["d"]["datetime_format"] = "%Y-%m-%d"
    pd_real, pd_synth = real.to_pandas(), synth.to_pandas()
    for f in (pd_real, pd_synth):
        f["d"] = pd.to_datetime(f["d"])
    ar = pl.DataFrame([analysis_series(real[c], kinds[c]) for c in real.columns])
    sy = pl.DataFrame([analysis_series(synth[c], kinds[c]) for c in synth.columns])
    for thresholds in (True, False):
        ours = quality(
            ar, sy, kinds, **({} if thresholds else {"correlation_threshold": 0, "association_threshold": 0})
        )
        report = _sdmetrics_report(pd_real, pd_synth, meta, thresholds)
        assert ours["score"] == pytest.approx(report.get_score(), abs=1e-6)
        shapes = dict(zip(report.get_details("Column Shapes")["Column"], report.get_details("Column Shapes")["Score"]))
        for c in ours["columns"]:
            assert (c["score"] is None) == math.isnan(shapes[c["column"]])
            if c["score"] is not None:
                assert c["score"] == pytest.approx(shapes[c["column"]], abs=1e-9)


def test_quality_is_one_for_identical_data(sd):
    ds, train, *_ = sd
    kinds = column_kinds(ds)
    a = analysis(train, kinds)
    q = quality(a, a, kinds)
    assert q["score"] == pytest.approx(1.0) and q["column_shapes"] == pytest.approx(1.0)


# -- pMSE ---------------------------------------------------------------------------------------------


def test_pmse_small_for_two_halves_large_for_a_shuffled_copy(sd):
    ds = sd[0]
    kinds = column_kinds(ds)
    a = analysis(ds, kinds)
    perm = np.random.default_rng(4).permutation(ds.n)
    first, second = a[perm[:2500]], a[perm[2500:]]
    shuffled = pl.DataFrame(
        {c: second[c].gather(np.random.default_rng(i).permutation(2500)) for i, c in enumerate(second.columns)}
    )
    same = pmse(first, second, kinds, seed=1, n_perm=5)
    broken = pmse(first, shuffled, kinds, seed=1, n_perm=5)
    assert same["ratio"] < 1.5 and same["pmse"] < 0.015
    assert broken["ratio"] > 2.5 and broken["pmse"] > 2 * same["pmse"]
    assert pmse(first, second, kinds, seed=1, n_perm=5) == same  # deterministic


# -- k-marginal ---------------------------------------------------------------------------------------


def test_k_marginal_is_1000_for_identical_data(sd):
    ds = sd[0]
    kinds = column_kinds(ds)
    a = analysis(ds, kinds)
    assert k_marginal(a, a, kinds)["score"] == pytest.approx(1000.0)
    grouped = k_marginal(a, a, kinds, group="region")
    assert grouped["score"] == pytest.approx(1000.0)
    assert all(v == pytest.approx(1000.0) for v in grouped["groups"].values())
    assert len(grouped["groups"]) == 16


def _nist_variants(real: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Three deterministic 'synthetic' versions of the all-text NIST CRC frame."""
    n = real.height
    rng = np.random.default_rng(7)
    boot = real[rng.integers(0, n, n)]
    marg = pl.DataFrame({c: real[c].gather(rng.integers(0, n, n)) for c in real.columns})
    half = real[np.sort(rng.permutation(n)[: n // 2])]
    age = (half["AGEP"].cast(pl.Int64).to_numpy() + rng.integers(-3, 4, half.height)).clip(0, 120)
    inc = half["PINCP"]
    num = inc.replace("N", None).cast(pl.Float64) * 1.3 + 100
    noisy = half.with_columns(
        AGEP=pl.Series(age).cast(pl.String),
        PINCP=pl.when(inc == "N").then(pl.lit("N")).otherwise(num.cast(pl.String)),
        PWGTP=(half["PWGTP"].cast(pl.Int64) * 2).cast(pl.String),
    )
    return {"boot": boot, "marg": marg, "noisy": noisy}


# SDNist 2.4 on the same files (KMarginal on its binned data, PUMA groups; unique exact match)
SDNIST = {
    "boot": (
        952.1064910113902,
        {
            "25-00503": 903.9150504667746,
            "25-00703": 923.0862305396466,
            "25-01000": 886.7474322019777,
            "25-01300": 894.3266582464802,
            "25-02800": 898.5007834701087,
        },
        0.6355,
    ),
    "marg": (
        805.3178591559519,
        {
            "25-00503": 604.6826736481911,
            "25-00703": 670.108359549353,
            "25-01000": 629.6166296166294,
            "25-01300": 630.0870621583317,
            "25-02800": 640.8519905452421,
        },
        0.0,
    ),
    "noisy": (
        885.287055970839,
        {
            "25-00503": 781.7986611090059,
            "25-00703": 812.5890672474524,
            "25-01000": 772.0093174638629,
            "25-01300": 784.986357369431,
            "25-02800": 786.0993811914058,
        },
        0.0,
    ),
}


def test_k_marginal_and_unique_exact_match_equal_sdnist_on_nist_crc(tmp_path):
    path = NIST / "ma2019.csv"
    real = read(path)
    kinds = column_kinds(real)
    assert kinds["PINCP"] == "numeric" and kinds["NOC"] == "categorical"  # text with the literal N
    text = pl.read_csv(path, infer_schema_length=0)
    from safemicro.synth.safeguards import exact_match_rates

    for name, frame in _nist_variants(text).items():
        frame.write_csv(tmp_path / f"{name}.csv")
        synth = read(tmp_path / f"{name}.csv")
        km = k_marginal(analysis(real, kinds), analysis(synth, kinds), kinds, **NIST_CRC)
        score, groups, uem = SDNIST[name]
        assert km["score"] == pytest.approx(score, abs=1e-6)
        assert km["groups"] == pytest.approx(groups, abs=1e-6)
        assert round(exact_match_rates(synth.frame, real.frame)["unique_exact_match"], 4) == uem


# -- TSTR --------------------------------------------------------------------------------------------


def test_tstr_copies_match_real_and_marginals_fall_to_the_baseline(sd):
    ds, train, holdout, marg, _ = sd
    kinds = column_kinds(ds)
    tr, te = analysis(train, kinds), analysis(holdout, kinds)
    same = tstr(tr, tr, te, kinds, "englang", seed=3)
    assert same["train_real"] == same["train_synthetic"]
    assert same["train_real"]["accuracy"] > same["baseline_accuracy"] + 0.05
    poor = tstr(tr, analysis(marg, kinds), te, kinds, "englang", seed=3)
    assert poor["train_synthetic"]["accuracy"] < same["train_real"]["accuracy"] - 0.05
    reg = tstr(tr, analysis(marg, kinds), te, kinds, "income", seed=3)
    assert reg["kind"] == "regression" and reg["train_synthetic"]["r2"] < reg["train_real"]["r2"]
    with pytest.raises(SafemicroError) as err:
        tstr(tr, tr, te, kinds, "nope")
    assert err.value.column == "nope"


# -- evaluate() end to end ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results(sd):
    ds, train, holdout, marg, copies = sd
    small = dict(keys=QI, target="englang", seed=7, n_boot=30, n_perm=3, attacks=150, secrets=["income", "socprof"])
    return {
        "copies": evaluate(train, copies, holdout=holdout, **small),
        "marginals": evaluate(train, marg, holdout=holdout, **small),
        "fresh": evaluate(
            ds.with_frame(train.frame[:3000]), ds.with_frame(train.frame[3000:]), holdout=holdout, **small
        ),
    }


def test_evaluate_flags_copies_and_not_fresh_data(results):
    copies, fresh = results["copies"], results["fresh"]

    def copy_checks(r):
        return {c["check"]: c["passed"] for c in r["summary"]["privacy_checks"] if "risk" not in c["check"]}

    checks = copy_checks(copies)
    assert copies["summary"]["privacy_passed"] is False
    assert len(checks) == 4 and not any(checks.values())  # every copy check fires on copies
    fresh_checks = copy_checks(fresh)
    # fresh real data pass every distance check; replicated uniques are a filter's job
    assert [v for k, v in fresh_checks.items() if "replicated" not in k] == [True, True, True]
    assert copies["privacy"]["exact_matches"]["synth_in_train"] == 1.0
    assert copies["utility"]["quality"]["score"] > 0.97


def test_evaluate_result_is_json_and_deterministic(sd, results):
    ds, train, holdout, marg, _ = sd
    r = results["marginals"]
    text = json.dumps(r, allow_nan=False)
    again = evaluate(
        train,
        marg,
        holdout=holdout,
        keys=QI,
        target="englang",
        seed=7,
        n_boot=30,
        n_perm=3,
        attacks=150,
        secrets=["income", "socprof"],
    )
    r.pop("timings"), again.pop("timings")
    assert json.loads(text) | {"timings": None} == r | {"timings": None}
    assert again == r
    u = r["utility"]
    assert set(u) == {"quality", "columns", "pmse", "k_marginal", "tstr"}
    assert {c["column"] for c in u["columns"]} == set(ds.columns)
    assert 0.85 < r["summary"]["quality"] < 0.88 and r["summary"]["pmse_ratio"] > 3
    assert r["privacy"]["q_delta"]["passed"]


def test_attack_suite_flags_copies_and_not_fresh_data(results):
    """The attacks, with the holdout as control: copies leak, fresh real records do not."""
    copies, fresh = results["copies"], results["fresh"]
    for r in (copies, fresh):
        a = r["privacy"]["attacks"]
        assert a["aux_cols"] == QI and set(a["inference"]) == {"income", "socprof"}
        assert set(r["summary"]["attacks"]) >= {
            "singling out, univariate",
            "singling out, multivariate",
            "linkability",
            "inference: income",
            "membership",
        }
    risk = copies["summary"]["attacks"]
    assert risk["singling out, univariate"] > 0.5 and risk["membership"] > 0.5 and risk["inference: socprof"] > 0.3
    failed = {c["check"] for c in copies["summary"]["privacy_checks"] if c.get("status") == "fail"}
    assert {
        "singling-out risk (univariate) at most 0.1",
        "membership-inference risk at most 0.1",
        "inference risk of income at most 0.1",
    } <= failed
    attack_checks = [c for c in fresh["summary"]["privacy_checks"] if "risk" in c["check"]]
    assert attack_checks and all(c["status"] != "fail" for c in attack_checks)
    assert all(v < 0.1 for k, v in fresh["summary"]["attacks"].items() if k != "singling out, multivariate")


def test_attacks_need_a_holdout_and_can_be_skipped(sd):
    ds, train, holdout, marg, _ = sd
    small = dict(keys=QI, seed=1, n_boot=10, n_perm=2)
    no_holdout = evaluate(ds.with_frame(train.frame[:600]), ds.with_frame(marg.frame[:600]), **small)
    assert "attacks" not in no_holdout["privacy"] and no_holdout["summary"]["attacks"] is None
    assert any("attack suite needs one" in n for n in no_holdout["notes"])
    skipped = evaluate(
        ds.with_frame(train.frame[:600]),
        ds.with_frame(marg.frame[:600]),
        holdout=ds.with_frame(holdout.frame[:300]),
        attacks=0,
        **small,
    )
    assert "attacks" not in skipped["privacy"] and not any("attack" in n for n in skipped["notes"])
    with pytest.raises(SafemicroError) as err:
        evaluate(train, marg, holdout=holdout, secrets=["nope"], **small)
    assert err.value.column == "nope"


def test_html_page(tmp_path, results):
    r = results["copies"]
    path = write_evaluation_html(r, tmp_path / "evaluation.html")
    html = path.read_text()
    assert html == render_evaluation_html(r)  # same result, same bytes
    for anchor in (
        'id="summary"',
        'id="columns"',
        'id="pairs"',
        'id="models"',
        'id="privacy"',
        'data-plot="column-scores"',
        'data-plot="marginals"',
        'data-plot="quantiles"',
        'data-plot="dcr"',
        'data-plot="q-delta"',
        "banner fail",
        'id="attacks"',
        'data-plot="attacks"',
        "inference: socprof",
    ):
        assert anchor in html
    low = html.lower()  # self-contained: nothing loaded from elsewhere
    assert "<link" not in low and "<script" not in low
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", low)
    assert 'class="banner pass"' in render_evaluation_html(
        results["fresh"] | {"summary": results["fresh"]["summary"] | {"privacy_passed": True}}
    )


def test_evaluate_bad_input_and_odd_columns(sd):
    ds = sd[0]
    base = ds.frame[:400]
    with pytest.raises(SafemicroError, match="lacks a column") as err:
        evaluate(ds.with_frame(base), ds.with_frame(base.drop("age")))
    assert err.value.column == "age"
    with pytest.raises(SafemicroError, match="key variable") as err:
        evaluate(ds.with_frame(base), ds.with_frame(base), keys=["nope"])
    with pytest.raises(SafemicroError, match="unknown column kind"):
        evaluate(ds.with_frame(base), ds.with_frame(base), kinds={"age": "text"})
    with pytest.raises(SafemicroError, match="must be a Dataset"):
        evaluate(base, ds.with_frame(base))

    rng = np.random.default_rng(0)
    n = 300

    def odd(seed: int) -> Dataset:
        r = np.random.default_rng(seed)
        return from_frame(
            pl.DataFrame(
                {
                    "missing": pl.Series([None] * n, dtype=pl.Int64),
                    "const": ["same"] * n,
                    "many": [f"id{v}" for v in r.permutation(10_000)[:n]],
                    "when": pl.Series(r.integers(0, 10**6, n) * 10**9).cast(pl.Datetime("ns")),
                    "one": ["rare"] + ["common"] * (n - 1),
                    "x": r.normal(size=n),
                }
            )
        )

    r = evaluate(odd(1), odd(2), keys=["const", "one"], target="one", seed=1, n_boot=10, n_perm=2)
    assert r["data"]["kinds"]["many"] == "id" and r["data"]["kinds"]["when"] == "datetime"
    assert any("many" in note for note in r["notes"])
    json.dumps(r, allow_nan=False)
    tiny = from_frame(pl.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
    t = evaluate(tiny, tiny, seed=1)
    assert "error" in t["privacy"]["q_delta"] and any("Q_δ" in note for note in t["notes"])
    del rng
