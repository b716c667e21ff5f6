"""Model-based risk for samples: modRisk's τ1/τ2, ARX's population-uniqueness estimators and
the exact individual risk. References are named in each test."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import binom, nbinom
from sklearn.linear_model import PoissonRegressor

from conftest import SDC_DATA, SDC_REF
from safemicro.assess import assess
from safemicro.risk.individual import individual_risk
from safemicro.risk.individual_exact import individual_risk_exact
from safemicro.risk.loglinear import fit_loglinear
from safemicro.risk.model_risk import tau_measures
from safemicro.risk.uniqueness import pitman_fit, pitman_uniques, shlosser, snb, snb_expected, zayatz


def _nbinom_series(f: float, p: float) -> float:
    """E(1/F | f) summed term by term over F - f ~ NegBin(f, p) (Benedetti & Franconi's definition)."""
    m = np.arange(0, int(nbinom.ppf(1 - 1e-14, f, p)) + 10)
    return float((nbinom.pmf(m, f, p) / (f + m)).sum())


@pytest.mark.parametrize("f,p", [(1, 0.01), (2, 0.05), (3, 0.01), (5, 0.5), (50, 0.001), (176, 0.01), (1000, 0.3)])
def test_exact_individual_risk_matches_the_series(f, p):
    # reference: the defining series, summed with scipy's negative binomial pmf
    got = individual_risk_exact(np.array([float(f)]), np.array([f / p]))[0]
    assert got == pytest.approx(_nbinom_series(f, p), rel=1e-6)


def test_exact_equals_sdcmicro_approx_where_the_approximation_is_exact():
    # reference: sdcMicro 5.8.1 measure_risk rk (approx method) on testdata, 7 keys; for
    # fk = 1 and 2 its formulas are the exact ones, so method="exact" must give the same
    ref = pl.read_csv(SDC_REF / "testdata_measure_risk_7keys.csv")
    fk, Fk = ref["fk"].to_numpy().astype(float), ref["Fk"].to_numpy().astype(float)
    small = fk <= 2
    exact = individual_risk_exact(fk[small], Fk[small])
    np.testing.assert_allclose(exact, ref["risk"].to_numpy()[small], rtol=1e-12)
    big = fk > 2  # above 2 the approximation differs, by less than 1 % here
    np.testing.assert_allclose(individual_risk_exact(fk[big], Fk[big]), individual_risk(fk[big], Fk[big]), rtol=1e-2)
    assert individual_risk_exact(np.array([1.0]), np.array([100.0]), qual=0.5)[0] == pytest.approx(
        0.5 * exact[fk[small] == 1][0]
    )


def _glm_fit(codes, counts, levels, two_way):
    """Reference: sklearn PoissonRegressor (alpha=0) on the one-hot full cross-classification."""
    grid = np.array(np.meshgrid(*[np.arange(1, L + 1) for L in levels], indexing="ij")).reshape(len(levels), -1).T
    y = np.zeros(len(grid))
    index = {tuple(g): i for i, g in enumerate(grid)}
    for c, n in zip(codes, counts, strict=True):
        y[index[tuple(c)]] = n
    cols = [(grid[:, j] == lv).astype(float) for j, L in enumerate(levels) for lv in range(2, L + 1)]
    if two_way:
        for a in range(len(levels)):
            for b in range(a + 1, len(levels)):
                for la in range(2, levels[a] + 1):
                    for lb in range(2, levels[b] + 1):
                        cols.append(((grid[:, a] == la) & (grid[:, b] == lb)).astype(float))
    model = PoissonRegressor(alpha=0, max_iter=10000, tol=1e-12).fit(np.array(cols).T, y)
    mu = model.predict(np.array(cols).T)
    return np.array([mu[index[tuple(c)]] for c in codes])


CODES = np.array([[1, 1, 1], [1, 2, 1], [2, 1, 2], [2, 2, 2], [1, 1, 2], [2, 3, 1], [1, 3, 2], [2, 2, 1]])
COUNTS = np.array([5.0, 1, 3, 1, 2, 4, 1, 6])


@pytest.mark.parametrize("two_way", [False, True])
def test_loglinear_fit_equals_poisson_glm(two_way):
    fit = fit_loglinear(CODES, COUNTS, [2, 3, 2], interactions=2 if two_way else 1)
    np.testing.assert_allclose(fit.mu, _glm_fit(CODES, COUNTS, [2, 3, 2], two_way), rtol=1e-4)


def test_main_effects_tau_by_hand():
    # reference: the independence model by hand. Keys (a, b): counts (1,1)=1, (1,2)=3, (2,1)=2,
    # (2,2)=2; n = 8, row margins 4/4, column margins 3/5: μ(1,1) = 8·(4/8)(3/8) = 1.5.
    # Only (1,1) is a sample unique; weight 10 there, so π = 0.1 and x = λ(1-π) = 1.5·9 = 13.5.
    fit = fit_loglinear(np.array([[1, 1], [1, 2], [2, 1], [2, 2]]), np.array([1.0, 3, 2, 2]), [2, 2])
    assert fit.mu[0] == pytest.approx(1.5)
    r1, r2 = tau_measures(fit.mu[:1], np.array([0.1]))
    assert r1[0] == pytest.approx(math.exp(-13.5))
    assert r2[0] == pytest.approx((1 - math.exp(-13.5)) / 13.5)


def test_zayatz_by_hand():
    # reference: Zayatz (1991) by hand with exact binomial coefficients: n = 4, N = 8, two keys
    # seen once and one seen twice; h_i = C(i,1)C(N-i,n-1)/C(N,n); population uniques are
    # s1·P(F=1|f=1)·N/n (Dankar et al. 2012, appendix A)
    h1 = 1 * math.comb(7, 3) / math.comb(8, 4)
    h2 = 2 * math.comb(6, 3) / math.comb(8, 4)
    expected = 2 * (2 / 3 * h1) / (2 / 3 * h1 + 1 / 3 * h2) * 8 / 4
    assert zayatz(np.array([0, 2, 1]), 0.5) == pytest.approx(expected)


def test_pitman_uniques_reduces_to_ewens_and_hoshino_is_its_limit():
    # reference: Ewens (α = 0) expected singletons N·θ/(θ+N-1); Hoshino's Γ(θ+1)/Γ(θ+α)·N^α
    # is the large-N limit of the exact expectation
    assert pitman_uniques(3.5, 0.0, 1000.0, exact=True) == pytest.approx(1000 * 3.5 / (3.5 + 999))
    assert pitman_uniques(40.0, 0.4, 1e8) == pytest.approx(pitman_uniques(40.0, 0.4, 1e8, exact=True), rel=1e-5)


def test_dankar_rule_picks_by_sampling_fraction():
    # reference: Dankar et al. (2012): Pitman at π <= 0.1, else the smaller of Zayatz and SNB
    from safemicro.risk.uniqueness import population_uniqueness

    fk = np.repeat(np.arange(1, 9), [300, 120, 60, 30, 15, 8, 4, 2])
    low = population_uniqueness(fk, 0.05)
    assert low["dankar_model"] == "pitman" and low["dankar"] == low["pitman"]
    high = population_uniqueness(fk, 0.3)
    assert high["dankar"] == min(v for v in (high["zayatz"], high["snb"]) if v is not None)


def _pitman_loglik(c, theta, alpha):
    """Pitman's sampling formula written as products (Pitman 1995), for the reference grid."""
    sizes = [j for j, cj in enumerate(c) for _ in range(cj)]
    K, n = len(sizes), sum(sizes)
    ll = sum(math.log(theta + i * alpha) for i in range(1, K))
    ll -= sum(math.log(theta + i) for i in range(1, n))
    ll += sum(sum(math.log(i - alpha) for i in range(1, j)) for j in sizes)
    return ll


def test_pitman_fit_is_the_likelihood_maximum():
    # reference: a brute-force grid over (θ, α) of the likelihood written as products
    c = np.array([0, 30, 12, 6, 3, 2, 1, 0, 1])
    theta, alpha = pitman_fit(c)
    best = max(_pitman_loglik(c, t, a) for t in np.linspace(0.5, 60, 120) for a in np.linspace(0, 0.95, 96))
    assert _pitman_loglik(c, theta, alpha) >= best - 1e-9


def test_snb_recovers_its_parameters():
    # reference: P(f=1), P(f=2) summed term by term (binomial thinning of F = 1 + NegBin(α, p))
    alpha, p, pi, K = 0.7, 0.2, 0.1, 5000.0
    F = 1 + np.arange(0, 2000)
    pF = nbinom.pmf(F - 1, alpha, p)
    e1, e2 = (pF * binom.pmf(1, F, pi)).sum(), (pF * binom.pmf(2, F, pi)).sum()
    assert snb_expected(alpha, p, pi) == pytest.approx((e1, e2), rel=1e-9)
    assert snb(np.array([0, K * e1, K * e2]), pi, K=K) == pytest.approx(K * p**alpha, rel=1e-6)


def test_shlosser_by_hand():
    # reference: Shlosser's estimator by hand: d + c1·Σq^j c_j / Σ j π q^(j-1) c_j, π = 0.5
    got = shlosser(np.array([0, 4, 2]), 0.5)
    assert got == pytest.approx(6 + 4 * (0.5 * 4 + 0.25 * 2) / (1 * 0.5 * 4 + 2 * 0.5 * 0.5 * 2))


@pytest.fixture(scope="module")
def testdata():
    return pl.read_csv(SDC_DATA / "testdata.csv")


def test_assess_model_risk_is_opt_in(testdata):
    keys = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]
    plain = assess(testdata, keys=keys, weight="sampling_weight")
    assert plain.summary["model_risk"] is None
    s = assess(testdata, keys=keys, weight="sampling_weight", model_risk=True).summary["model_risk"]
    n_uniques = plain.summary["k_anonymity"]["n_sample_uniques"]
    assert s["loglinear"]["n_sample_uniques"] == n_uniques == 157  # sdcMicro freqCalc n1
    assert 0 < s["loglinear"]["tau2"] <= n_uniques and 0 <= s["loglinear"]["tau1"] <= s["loglinear"]["tau2"]
    assert s["population_uniqueness"]["sampling_fraction"] == pytest.approx(0.01)  # weights are 100
    assert s["population_uniqueness"]["dankar_model"] == "pitman"
    assert s["individual_risk_exact"]["max"] == pytest.approx(0.0465168705655363)  # sdcMicro max rk


def test_cli_model_risk_writes_the_report_section(testdata, tmp_path):
    # the CLI flag reaches assess, and the HTML report explains the numbers
    from typer.testing import CliRunner

    from safemicro.cli import app

    src = tmp_path / "t.csv"
    testdata.write_csv(src)
    out, html = tmp_path / "s.json", tmp_path / "r.html"
    args = ["assess", str(src), "--keys", "urbrur,roof,walls,water,electcon,relat,sex", "--weight", "sampling_weight"]
    result = CliRunner().invoke(app, [*args, "--model-risk", "--json", str(out), "--html", str(html)])
    assert result.exit_code == 0, result.output
    import json

    summary = json.loads(out.read_text())
    assert summary["model_risk"]["loglinear"]["n_sample_uniques"] == 157
    page = html.read_text()
    assert "Model-based risk for samples" in page and "Pitman (Hoshino 2001)" in page
    without = tmp_path / "r0.html"
    assert CliRunner().invoke(app, [*args, "--html", str(without)]).exit_code == 0
    assert "Model-based risk for samples" not in without.read_text()


def test_model_risk_at_scale_equals_in_memory(testdata, tmp_path):
    # the out-of-core engine builds the same key table, so the same numbers
    from safemicro.scale import assess_source

    keys = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]
    src = tmp_path / "t.parquet"
    testdata.write_parquet(src)
    opts = {"interactions": 2}
    mem = assess(testdata, keys=keys, weight="sampling_weight", model_risk=opts).summary["model_risk"]
    big = assess_source(src, engine="duckdb", keys=keys, weight="sampling_weight", model_risk=opts).summary
    for part in ("loglinear", "loglinear_two_way", "individual_risk_exact"):
        assert big["model_risk"][part] == pytest.approx(mem[part])
    assert big["model_risk"]["population_uniqueness"] == pytest.approx(mem["population_uniqueness"])


def test_plan_option_turns_model_risk_on(testdata):
    # the plan's model_risk section reaches assess (and so the release's before/after risk)
    from safemicro.plan import Plan

    roles = {"keys": ["urbrur", "roof", "walls", "water", "sex"], "weight": "sampling_weight"}
    off = assess(testdata, plan=Plan(roles=roles)).summary["model_risk"]
    plan = Plan(roles=roles, model_risk={"enabled": True, "interactions": 2, "sampling_fraction": 0.2, "qual": 0.5})
    on = assess(testdata, plan=plan).summary["model_risk"]
    assert off is None
    assert on["loglinear_two_way"]["model"] == "two-way interactions"
    assert on["population_uniqueness"]["sampling_fraction"] == 0.2
    assert on["individual_risk_exact"]["max"] == pytest.approx(0.5 * 0.0465168705655363)


def test_anonymize_measures_model_risk_before_and_after():
    # end to end: a plan on sdcMicro's testdata with model_risk enabled; the internal report
    # shows τ1/τ2 and Dankar's estimate before and after (recoding lowers them)
    from safemicro.plan import Plan
    from safemicro.release import anonymize
    from safemicro.report.release_report import render_internal_report

    plan = Plan(
        roles={"keys": ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"], "weight": "sampling_weight"},
        model_risk={"enabled": True},
        steps=[{"recode": {"variable": "water", "map": {2: 1, 3: 1, 5: 4, 6: 4, 7: 4, 8: 4, 9: 4}}}],
    )
    rel = anonymize(SDC_DATA / "testdata.csv", plan)
    before = rel.report["risk_before"]["model_risk"]["loglinear"]
    after = rel.report["risk_after"]["model_risk"]["loglinear"]
    assert after["n_sample_uniques"] < before["n_sample_uniques"] and after["tau2"] < before["tau2"]
    page = render_internal_report(rel.report)
    assert "τ1 (modRisk)" in page and "Dankar et al.&#39;s rule" in page


def test_main_effects_tau_by_hand_three_keys():
    # reference: the independence model by hand on the 3-key toy above (n = 23): the sample
    # unique (1, 2, 1) has margins 9, 8 and 16, so μ = 23·(9/23)(8/23)(16/23) = 1152/529;
    # with weight 50 (π = 1/50), x = λ(1-π) = μ·49
    fit = fit_loglinear(CODES, COUNTS, [2, 3, 2])
    mu = fit.mu[1]
    assert mu == pytest.approx(1152 / 529)
    r1, r2 = tau_measures(np.array([mu]), np.array([1 / 50]))
    x = 1152 / 529 * 49
    assert r1[0] == pytest.approx(math.exp(-x)) and r2[0] == pytest.approx((1 - math.exp(-x)) / x)


def test_many_keys_main_effects_without_the_full_table():
    # 30 keys of 5 levels: 5^30 cells. Main effects are read at the observed keys (reference:
    # the independence formula, recomputed here with a product of margins); two-way refuses
    rng = np.random.default_rng(3)
    codes = rng.integers(1, 6, size=(200, 30))
    counts = np.ones(200)
    fit = fit_loglinear(codes, counts, [5] * 30)
    margins = [np.bincount(codes[:, j], minlength=6) / 200 for j in range(30)]
    expected = 200 * np.prod([margins[j][codes[:, j]] for j in range(30)], axis=0)
    np.testing.assert_allclose(fit.mu, expected, rtol=1e-10)
    with pytest.raises(ValueError, match="cells"):
        fit_loglinear(codes, counts, [5] * 30, interactions=2)
