"""Agreement with anonymeter 1.1 (the reference implementation) on SD2011 synthetic data.

The release is made with safemicro's CART synthesizer from 1 000 SD2011 records, plus 600
of those records copied as they are (a leaky release, so that every risk is clearly above
zero, where anonymeter's interval is two-sided); 1 000 other records are the control.
Both tools attack the same frames with 500 attacks. Our point estimate — the mean of three
runs with different seeds, since each run draws its own targets and predicates — must lie
within anonymeter's 95 % interval.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

anonymeter = pytest.importorskip("anonymeter.evaluators")

from safemicro.attack import InferenceEvaluator, LinkabilityEvaluator, SinglingOutEvaluator, privacy_attacks  # noqa: E402
from safemicro.io import read  # noqa: E402
from safemicro.synth.cart import CartSynthesizer  # noqa: E402

SD2011 = Path(__file__).resolve().parent / "data" / "sd2011" / "SD2011.csv"
# numbers without missing values (anonymeter's distance is undefined on one-sided NaN) and
# categories with missing values written "NA" (its label encoder cannot sort None with text)
COLUMNS = [
    "sex",
    "age",
    "agegr",
    "placesize",
    "region",
    "edu",
    "socprof",
    "marital",
    "ls",
    "trust",
    "smoke",
    "englang",
    "nofriend",
]
AUX = (["sex", "age", "region", "placesize"], ["edu", "marital", "socprof", "englang"])
KNOWN = ["sex", "age", "region", "placesize", "edu", "marital"]
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def frames():
    ds = read(SD2011)
    f = ds.frame.select(COLUMNS)
    f = f.with_columns([pl.col(c).fill_null("NA") for c in COLUMNS if f.schema[c] == pl.String])
    perm = np.random.default_rng(7).permutation(f.height)
    ori, ctl = f[perm[:1000]], f[perm[1000:2000]]
    syn = CartSynthesizer().fit(ds.with_frame(ori), seed=1).sample(1400, seed=1).frame
    syn = pl.concat([syn, ori.sample(600, seed=3)])
    return ori, syn, ctl


def _inside(ours: list[float], reference) -> None:
    mean = float(np.mean(ours))
    lo, hi = reference.ci
    assert lo <= mean <= hi, f"ours {mean:.3f} (runs {np.round(ours, 3)}) outside anonymeter's [{lo:.3f}, {hi:.3f}]"


@pytest.mark.parametrize("mode", ["univariate", "multivariate"])
def test_singling_out_agrees(frames, mode):
    ori, syn, ctl = frames
    ours = [SinglingOutEvaluator(ori, syn, ctl, n_attacks=500, seed=s).evaluate(mode).risk().value for s in SEEDS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = anonymeter.SinglingOutEvaluator(
            ori=ori.to_pandas(), syn=syn.to_pandas(), control=ctl.to_pandas(), n_attacks=500, seed=1
        ).evaluate(mode=mode)
        _inside(ours, ref.risk())  # (anonymeter warns when the attack does not beat its baseline)
    if mode == "multivariate":
        assert ref.risk().value > 0.05  # the copies make the risk real


def test_linkability_agrees(frames):
    ori, syn, ctl = frames
    ours = [
        LinkabilityEvaluator(ori, syn, ctl, aux_cols=AUX, n_neighbors=10, seed=s).evaluate().risk().value for s in SEEDS
    ]
    np.random.seed(0)  # anonymeter draws its targets from numpy's global generator
    ref = anonymeter.LinkabilityEvaluator(
        ori=ori.to_pandas(), syn=syn.to_pandas(), control=ctl.to_pandas(), aux_cols=AUX, n_neighbors=10, n_attacks=500
    ).evaluate(n_jobs=1)
    _inside(ours, ref.risk())
    assert ref.risk().value > 0.1


def test_inference_agrees(frames):
    ori, syn, ctl = frames
    ours = [
        InferenceEvaluator(ori, syn, ctl, aux_cols=KNOWN, secret="socprof", seed=s).evaluate().risk().value
        for s in SEEDS
    ]
    np.random.seed(0)
    ref = anonymeter.InferenceEvaluator(
        ori=ori.to_pandas(),
        syn=syn.to_pandas(),
        control=ctl.to_pandas(),
        aux_cols=KNOWN,
        secret="socprof",
        n_attacks=500,
    ).evaluate(n_jobs=1)
    _inside(ours, ref.risk())
    assert ref.risk().value > 0.2


def test_privacy_attacks_shape(frames):
    """The one-call summary for the synthetic-data evaluation: every risk with its interval."""
    import json

    ori, syn, ctl = frames
    out = privacy_attacks(ori, syn, ctl, n_attacks=200, secret="socprof", aux_cols=KNOWN, seed=1)
    json.dumps(out, allow_nan=False)
    for r in (
        out["singling_out"]["univariate"],
        out["singling_out"]["multivariate"],
        out["linkability"],
        out["inference"]["socprof"],
        out["membership"],
    ):
        assert 0.0 <= r["ci"][0] <= r["risk"] <= r["ci"][1] <= 1.0
        assert r["control_rate"] is not None and r["baseline_rate"]["n_total"] > 0
    assert out["linkability"]["aux_cols"] == [KNOWN[:3], KNOWN[3:]]
    assert out["linkability"]["n_neighbors"] == 10
    assert out["inference_max"]["secret"] == "socprof"
    # 600 of the 1 600 released records are copies of members: membership shows
    assert out["membership"]["auc"]["auc"] > 0.6
    assert out["membership"]["risk"] > 0.1
