"""Building blocks of the attack evaluators, checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from safemicro.attack import InferenceEvaluator, LinkabilityEvaluator, MembershipEvaluator, SinglingOutEvaluator
from safemicro.attack.gower import GowerSpace
from safemicro.attack.membership import auc_with_ci
from safemicro.attack.singling_out import EQ, GE, GT, LE, LT, NE, NOT_NULL, NULL, _count
from safemicro.attack.stats import residual_risk, wilson
from safemicro.errors import SafemicroError


def test_wilson_and_residual_match_anonymeter_formulas():
    confidence = pytest.importorskip("anonymeter.stats.confidence")
    for n, s in ((500, 0), (500, 37), (120, 119), (1000, 500)):
        ours, ref = wilson(s, n), confidence.success_rate(n, s, 0.95)
        assert ours.value == pytest.approx(ref.value, abs=1e-12)
        assert ours.error == pytest.approx(ref.error, abs=1e-12)
    a, c = wilson(180, 500), wilson(120, 500)
    ref = confidence.residual_success(
        confidence.success_rate(500, 180, 0.95), confidence.success_rate(500, 120, 0.95)
    ).to_risk()
    r = residual_risk(a, c)
    assert r.value == pytest.approx(ref.value) and r.ci == pytest.approx(ref.ci)


def test_wilson_by_hand():
    r = wilson(10, 100)
    z = 1.959963984540054
    centre = (10 + z * z / 2) / (100 + z * z)
    half = z / (100 + z * z) * math.sqrt(10 * 90 / 100 + z * z / 4)
    assert (r.value, r.error) == pytest.approx((centre, half))


def test_predicate_counts_equal_polars():
    rng = np.random.default_rng(5)
    n = 300
    x = np.column_stack([rng.integers(0, 5, n).astype(float), rng.normal(size=n).round(1)])
    x[rng.random((n, 2)) < 0.1] = np.nan
    frame = pl.DataFrame({"a": x[:, 0], "b": x[:, 1]}).fill_nan(None)
    ops_all = [EQ, NE, GT, LT, GE, LE, NULL, NOT_NULL]
    cols = rng.integers(0, 2, (200, 2))
    ops = rng.choice(ops_all, (200, 2))
    vals = np.where(cols == 0, rng.integers(0, 5, (200, 2)), rng.normal(size=(200, 2)).round(1)).astype(float)
    counts = _count(x, cols, ops, vals)
    assert (_count(x, cols, ops, vals, cap=2) == np.minimum(counts, 2)).all()  # the search's early stop
    name = ["a", "b"]
    expr = {
        EQ: lambda c, v: pl.col(c) == v,
        NE: lambda c, v: pl.col(c) != v,
        GT: lambda c, v: pl.col(c) > v,
        LT: lambda c, v: pl.col(c) < v,
        GE: lambda c, v: pl.col(c) >= v,
        LE: lambda c, v: pl.col(c) <= v,
        NULL: lambda c, v: pl.col(c).is_null(),
        NOT_NULL: lambda c, v: pl.col(c).is_not_null(),
    }
    for i in range(200):
        e = expr[ops[i, 0]](name[cols[i, 0]], vals[i, 0]) & expr[ops[i, 1]](name[cols[i, 1]], vals[i, 1])
        assert counts[i] == frame.select(e.fill_null(False).sum()).item(), i


def test_gower_contributions():
    a = pl.DataFrame({"age": [20.0, None, 50.0], "sex": ["m", "f", None]})
    b = pl.DataFrame({"age": [30.0, None, 60.0], "sex": ["m", None, "f"]})
    g = GowerSpace([a, b], ["age", "sex"], ["age"])
    d = g.contributions(0, np.arange(3), 1)
    # ages scaled by the range 20..60 = 40; both missing: 0, one missing: 1
    assert d[0, 0, 0] == pytest.approx(0.25) and d[0, 2, 0] == pytest.approx(1.0)
    assert d[1, 1, 0] == 0.0 and d[1, 0, 0] == 1.0
    # categories: equal 0, different 1, missing is a category of its own
    assert d[0, 0, 1] == 0 and d[0, 2, 1] == 1 and d[2, 1, 1] == 0 and d[2, 0, 1] == 1
    idx, dist = g.neighbours(0, np.arange(3), 1, k=1)
    assert idx[:, 0].tolist() == [0, 1, 1]  # ties (rows 1 and 2 for the second query): the first


def test_auc_equals_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    pos, neg = rng.integers(0, 5, 80).astype(float), rng.integers(0, 4, 90).astype(float)
    ours = auc_with_ci(pos, neg)
    assert ours["auc"] == pytest.approx(roc_auc_score(np.r_[np.ones(80), np.zeros(90)], np.r_[pos, neg]))
    assert ours["ci"][0] < ours["auc"] < ours["ci"][1]


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    n = 600
    f = pl.DataFrame(
        {
            "age": rng.integers(15, 90, n),
            "sex": rng.choice(["f", "m"], n),
            "region": rng.integers(1, 9, n),
            "job": rng.choice(["a", "b", "c", "d"], n),
        }
    )
    return f[:300], f[300:]


def test_copied_release_is_risky_and_fresh_release_is_not(small):
    """A release that copies the original records: high risks; a fresh sample: risks ≈ 0."""
    ori, fresh = small
    ctl = fresh[:150]
    other = fresh[150:]
    for release, risky in ((ori, True), (other, False)):
        so = SinglingOutEvaluator(ori, release, ctl, n_attacks=100, seed=1).evaluate("multivariate").risk()
        li = (
            LinkabilityEvaluator(
                ori, release, ctl, aux_cols=(["age", "sex"], ["region", "job"]), n_attacks=100, n_neighbors=5, seed=1
            )
            .evaluate()
            .risk()
        )
        inf = (
            InferenceEvaluator(
                ori, release, ctl, aux_cols=["age", "sex", "region"], secret="job", n_attacks=100, seed=1
            )
            .evaluate()
            .risk()
        )
        mem = MembershipEvaluator(ori, release, ctl, n_attacks=100, seed=1).evaluate().risk()
        if risky:
            assert so.ci[0] > 0.2 and li.ci[0] > 0.2 and inf.ci[0] > 0.3 and mem.ci[0] > 0.3
        else:
            assert so.ci[0] == 0 and li.ci[0] == 0 and inf.ci[0] == 0 and mem.ci[0] == 0


def test_bad_input(small):
    ori, fresh = small
    with pytest.raises(SafemicroError, match="released data has no such column") as e:
        SinglingOutEvaluator(ori, fresh.drop("job"), fresh)
    assert e.value.column == "job"
    with pytest.raises(SafemicroError, match="control data has no records"):
        InferenceEvaluator(ori, fresh, fresh.head(0), aux_cols=["age"], secret="job")
    with pytest.raises(SafemicroError, match="type mismatch") as e:
        LinkabilityEvaluator(ori, fresh.with_columns(pl.col("age").cast(pl.String)), fresh, aux_cols=(["age"], ["sex"]))
    assert e.value.column == "age"
    with pytest.raises(SafemicroError, match="secret cannot be one of the known"):
        InferenceEvaluator(ori, fresh, fresh, aux_cols=["age", "job"], secret="job")
    with pytest.raises(SafemicroError, match="holdout"):
        MembershipEvaluator(ori, fresh, None)
    with pytest.raises(RuntimeError, match="evaluate"):
        SinglingOutEvaluator(ori, fresh, fresh).risk()
