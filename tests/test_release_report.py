"""The release bundle's HTML pages: internal report, external report, approval form.

The real report comes from ``anonymize`` on sdcMicro's testdata (local suppression at k = 3
in sdcMicro mode, PRAM, microaggregation); a hand-made report of the same shape covers the
edge cases (hostile labels, missing sections).
"""

from __future__ import annotations

import copy
import html
import re
import time

import numpy as np
import pytest

from conftest import KV7, SDC_DATA
from safemicro.plan import Plan
from safemicro.release import anonymize, disclosure_risk_assessment, external_view
from safemicro.report import plots
from safemicro.report.release_report import (
    render_disclosure_risk_assessment,
    render_external_report,
    render_internal_report,
    risk_histogram,
)
from test_report import CHROMIUM, _chromium, assert_self_contained

PLAN = f"""
roles:
  keys: [{", ".join(KV7)}]
  numeric_keys: [expend, income, savings]
  weight: sampling_weight
  household: ori_hid
utility:
  indicators:
    - {{variable: income, kind: mean, label: Mean income}}
    - {{variable: roof, kind: proportion, value: 4, by: urbrur}}
  regressions:
    - {{outcome: income, predictors: [sex, age]}}
release:
  title: Test survey
  unit: person
steps:
  - local_suppression: {{k: 3, method: sdcmicro}}
  - pram: {{variables: [hhcivil], keep: 0.9}}
  - microaggregation: {{variables: [expend, income, savings], k: 3}}
seed: 20240917
"""

# sdcMicro 5.8.1 localSuppression(k = 3) on the 7 keys (testdata_reference.json)
SUPPRESSED_K3 = {"urbrur": 0, "roof": 14, "walls": 4, "water": 40, "electcon": 6, "relat": 229, "sex": 0}


@pytest.fixture(scope="module")
def release():
    return anonymize(SDC_DATA / "testdata.csv", Plan.from_yaml(PLAN))


@pytest.fixture(scope="module")
def report(release) -> dict:
    return release.report


@pytest.fixture(scope="module")
def internal(report) -> str:
    return render_internal_report(report)


@pytest.fixture(scope="module")
def external(report) -> str:
    return render_external_report(external_view(report))


@pytest.fixture(scope="module")
def dra(release) -> str:
    return render_disclosure_risk_assessment(release.disclosure_risk_assessment())


@pytest.fixture
def quick_figures(monkeypatch):
    """Figures are built but not drawn: drawing is what costs time, and it is tested above."""
    monkeypatch.setattr(plots, "figure_to_svg", lambda fig, name, description=None: f'<svg data-plot="{name}"></svg>')


def _step_block(page: str, index: int) -> str:
    match = re.search(rf'<article class="step" data-step="{index}">(.*?)</article>', page, re.S)
    assert match, f"step {index} missing"
    return match.group(1)


def _row(page: str, label: str) -> list[str]:
    """The cells of the table row whose first cell starts with ``label``."""
    match = re.search(rf"<tr><td>{re.escape(label)}.*?</tr>", page, re.S)
    assert match, label
    return [html.unescape(c) for c in re.findall(r'<td class="num[^"]*">([^<]*)</td>', match.group(0))]


def _seeds(report: dict) -> set[str]:
    seeds = {report["seed"]} | {s["seed"] for s in report["steps"]}
    seeds |= {s["params"].get("seed") for s in report["steps"]}
    return {str(s) for s in seeds if s is not None}


# -- the internal report on a real release ----------------------------------------------------


def test_internal_lists_every_step_with_parameters_seed_and_counts(report, internal):
    assert [s["name"] for s in report["steps"]] == ["local_suppression", "pram", "microaggregation"]
    supp = _step_block(internal, 1)
    assert "local_suppression" in supp and "sdcmicro" in supp
    for var, n in SUPPRESSED_K3.items():
        assert re.search(rf'<td class="name">{var}</td><td class="num">{n}</td><td class="num">{n}</td>', supp), var
    assert report["steps"][0]["records_touched"] == 281
    assert "281" in supp and "293 <span>of which 293 suppressed</span>" in supp
    pram = _step_block(internal, 2)
    assert report["steps"][1]["seed"] is not None
    assert f"<code>{report['steps'][1]['seed']}</code>" in pram
    assert "perturbative" in pram
    for step in report["steps"]:
        block = _step_block(internal, step["index"])
        assert html.escape(step["description"], quote=False) in block
        for note in step["notes"]:
            assert html.escape(note, quote=False) in block
    assert f"Plan seed <b><code>{report['seed']}</code>" in internal


def test_internal_risk_before_after_side_by_side(report, internal):
    before, after = report["risk_before"], report["risk_after"]
    assert _row(internal, "Records violating 3-anonymity") == ["281", "0"]
    for k in ("2", "5"):
        expect = [f"{before['k_anonymity']['violations'][k]:,}", f"{after['k_anonymity']['violations'][k]:,}"]
        assert _row(internal, f"Records violating {k}-anonymity") == expect
    assert _row(internal, "Global risk")[1].endswith("%")
    assert _row(internal, "Household risk")
    assert _row(internal, "Expected re-identifications")
    assert _row(internal, "Highest individual risk")
    assert _row(internal, "Records with a special unique (SUDA score &gt; 0)") or before["suda2"] is None
    # the after column is green where the risk went down
    assert re.search(r'Records violating 3-anonymity.*?<td class="num better">0</td>', internal, re.S)


def test_internal_checks_and_banner(report, internal, quick_figures):
    assert report["checks"], "the plan has targets"
    for check in report["checks"]:
        assert html.escape(check["message"], quote=False) in internal
    badge = "pass" if report["targets_met"] else "fail"
    assert f'<div class="banner {badge}" id="targets-banner">' in internal
    failing = copy.deepcopy(report)
    failing["targets_met"] = False
    failing["checks"][0]["passed"] = False
    page = render_internal_report(failing)
    assert '<div class="banner fail" id="targets-banner">Targets NOT met' in page
    assert '<span class="status fail">fail</span>' in page


def test_internal_figures(internal):
    for name in ["violations-before-after", "changes-per-variable", "marginals", "quantiles"]:
        assert f'data-plot="{name}"' in internal, name
    assert 'data-plot="risk-overlay"' in internal or 'data-plot="risk-range"' in internal
    assert internal.count("<svg") == 5
    ids = re.findall(r'\sid="([^"]+)"', internal)
    assert len(ids) == len(set(ids))


def test_internal_utility(report, internal, reference):
    u = report["utility"]
    # MDAV k = 3 on the three numeric keys: sdcMicro's IL1s, eigen and dRisk, as printed
    sdc = reference["microaggregation"]
    assert u["numeric"]["il1s"] == pytest.approx(sdc["utility"]["il1s"], rel=1e-9)
    for label, value in [
        ("IL1s (scaled by the standard deviation)", sdc["utility"]["il1s"]),
        ("Eigenvalue change of the correlation matrix", sdc["utility"]["eigen"]),
        ("Interval disclosure risk", sdc["risk_numeric_dRisk"]),
    ]:
        shown = re.search(rf"<dt>{re.escape(label)}[^<]*</dt><dd>([^<]+)</dd>", internal).group(1)
        assert float(shown.replace(",", "")) == pytest.approx(value, rel=5e-3), label
    table = re.search(r'<table class="utility-indicators">.*?</table>', internal, re.S).group(0)
    assert table.count("<tr") == 1 + len(u["indicators"])
    assert "Mean income" in table and "urbrur = " in table
    reg = re.search(r'<table class="utility-regressions">.*?</table>', internal, re.S).group(0)
    assert reg.count("<tr") == 1 + len(u["regressions"][0]["coefficients"])
    # the categorical table lists the key variables with their suppressions
    cat = re.search(r'<table class="utility-variables categorical">.*?</table>', internal, re.S).group(0)
    assert re.search(r'<td class="name">relat</td><td>key</td><td class="num">[\d,]+</td><td class="num">229</td>', cat)


def test_external_has_no_seeds_or_perturbation_parameters(report, external, internal):
    seeds = _seeds(report)
    assert str(report["seed"]) in seeds and len(seeds) >= 2
    for seed in seeds:
        assert seed not in external, seed
    assert "seed" not in external.lower()
    assert "transition" not in external.lower() and "matrix" not in external.lower()
    # the internal page holds the very values that must not leak
    assert all(seed in internal for seed in seeds)


def test_external_says_what_was_done_and_how_to_analyse(report, external):
    for step in report["steps"]:
        assert html.escape(step["description"], quote=False) in external
    assert "293 values changed, 293 of them set to missing, 281 records affected" in external
    assert "not missing at random" in external
    assert "Some values were perturbed." in external
    assert "Every combination of the key variables" in external
    assert "expected to identify about" in external
    for anchor in ("about", "done", "risk", "analysis", "utility"):
        assert f'id="{anchor}"' in external
    assert "Mean income" in external


def test_disclosure_risk_assessment_form(release, report, dra):
    form = release.disclosure_risk_assessment()
    assert_self_contained(dra)
    for anchor in ("dataset", "tier", "identifiers", "scenario", "variables", "risk", "methods", "utility", "review"):
        assert f'id="{anchor}"' in dra, anchor
    assert "Test survey" in dra and "testdata.csv" in dra and form["dataset"]["input_sha256"] in dra
    # reviewer, date and residual risk statement are left blank to fill in
    for field in ("reviewer", "review-date"):
        assert re.search(rf'id="{field}"><span class="blank" data-blank></span>', dra), field
    assert '<div id="residual-risk" data-blank>' in dra
    assert "Signature of the reviewer" in dra
    assert _row(dra, "Records violating 3-anonymity") == ["281", "0"]
    assert ('<span class="status pass">pass</span>' if report["targets_met"] else "status fail") in dra
    for m in form["methods"]:
        assert f"<code>{m['method']}</code>" in dra
    for seed in _seeds(report):
        assert seed not in dra


def test_filled_form_has_no_blanks_where_filled(release):
    form = copy.deepcopy(release.disclosure_risk_assessment())
    form.update(reviewer="A. Curator", date="2026-11-22", residual_risk_statement="Low <enough>.")
    page = render_disclosure_risk_assessment(form)
    assert '<dd id="reviewer">A. Curator</dd>' in page
    assert '<dd id="review-date">2026-11-22</dd>' in page
    assert "Low &lt;enough&gt;." in page and '<div id="residual-risk" data-blank>' not in page


def test_pages_are_deterministic(report, internal, external, dra, release):
    again = copy.deepcopy(report)
    assert render_internal_report(again) == internal
    assert render_external_report(external_view(again)) == external
    assert render_disclosure_risk_assessment(copy.deepcopy(release.disclosure_risk_assessment())) == dra
    assert again == report  # rendering never mutates the report


def test_pages_are_self_contained(internal, external, dra):
    for page in (internal, external, dra):
        assert page.startswith("<!DOCTYPE html>") and page.count("</html>") == 1
        assert_self_contained(page)
        assert "<?xml" not in page


def test_internal_renders_fast(report, internal):
    t0 = time.process_time()  # templates are compiled by the fixture
    render_internal_report(report)
    # about 1.1 s of CPU on a quiet machine, 2.3 s at load 9; templates compiled again per
    # call, or figures drawn twice, would take it past the bound
    assert time.process_time() - t0 < 4.0


def test_bundle_pages_are_these_renderings(release, tmp_path):
    paths = release.write(tmp_path / "bundle")
    written = {name: p.read_text(encoding="utf-8") for name, p in paths.items() if name.endswith(".html")}
    assert set(written) == {"report.html", "external_report.html", "disclosure_risk_assessment.html"}
    for seed in _seeds(release.report):
        assert seed not in written["external_report.html"]
    assert "testdata.csv" in written["report.html"]  # the released file is named


# -- hand-made reports: edge cases -------------------------------------------------------------

EVIL = "<script>alert(1)</script>"


def make_report() -> dict:
    """A report of the shape ``anonymize`` builds, with hostile text in every free field."""
    rng = np.random.default_rng(3)
    risk = {
        "n_records": 100,
        "keys": ["a", EVIL],
        "alpha": 1.0,
        "k_anonymity": {"n_distinct_keys": 40, "n_sample_uniques": 12, "violations": {"2": 12, "3": 30, "5": 60}},
        "global_risk": {"mean": 0.05, "percent": 5.0, "expected_reidentifications": 5.0},
        "individual_risk": {
            "max": 0.5,
            "median": 0.02,
            "mad": 0.01,
            "n_above_0_1": 8,
            "n_risky": 3,
            "histogram": risk_histogram(rng.beta(0.5, 20, 100)),
        },
        "household_risk": {"percent": 9.0, "expected_reidentifications": 9.0, "n_households": 30},
        "suda2": {"n_score_gt0": 9, "max_dis": 0.2, "sum_dis": 1.1, "attribute_contributions": {EVIL: 50.0}},
        "l_diversity": {EVIL: {"distinct": {"n_eq1": 4}}},
        "checks": [],
    }
    after = copy.deepcopy(risk)
    after["k_anonymity"]["violations"] = {"2": 0, "3": 0, "5": 10}
    after["individual_risk"]["histogram"] = risk_histogram(rng.beta(0.5, 60, 100))
    checks = [{"target": "k = 3", "value": 0, "passed": True, "message": EVIL}]
    marginal = [
        {"kind": "value", "value": 2, "label": EVIL, "share_before": 0.4, "share_after": 0.38},
        {"kind": "value", "value": 1, "label": None, "share_before": 0.6, "share_after": 0.6},
        {"kind": "missing", "value": None, "label": "missing", "share_before": 0.0, "share_after": 0.02},
    ]
    side = {"estimate": 1.5, "se": 0.1, "lower": 1.3, "upper": 1.7, "n": 100}
    return {
        "safemicro_version": "0.1.0",
        "input": {"file": EVIL + ".csv", "sha256": "ab" * 32, "n_records": 100, "n_variables": 4},
        "scenario": {"description": EVIL, "tier": "puf"},
        "targets": {"k": 3, "max_global_risk": 0.01, "max_individual_risk": 0.2},
        "roles": {
            "direct_ids": ["name"],
            "keys": ["a", EVIL],
            "numeric_keys": ["x"],
            "sensitive": [],
            "weight": "w",
            "household": "h",
            "strata": None,
            "cluster": None,
            "ghost": {},
            "household_level": [],
        },
        "release_info": {"title": EVIL, "unit": EVIL, "sampling": "", "reviewer": "", "date": "", "residual_risk": ""},
        "seed": 8675309,
        "steps": [
            {
                "index": 1,
                "name": "local_suppression",
                "params": {"k": 3, "keys": ["a", EVIL]},
                "changed": {EVIL: 2},
                "suppressed": {EVIL: 2},
                "records_touched": 2,
                "seed": None,
                "details": {"note": EVIL},
                "notes": [EVIL],
                "description": EVIL,
                "perturbative": False,
            },
            {
                "index": 2,
                "name": "pram",
                "params": {"variables": ["a"], "keep": 0.8, "seed": 5551212},
                "changed": {"a": 7},
                "suppressed": {},
                "records_touched": 7,
                "seed": 5551212,
                "details": {"transition_matrix": [[0.8, 0.2], [0.2, 0.8]]},
                "notes": [],
                "description": "PRAM kept about 80 % of the values of a.",
                "perturbative": True,
            },
        ],
        "risk_before": risk,
        "risk_after": after,
        "checks": checks,
        "targets_met": True,
        "utility": {
            "design": {"variance": EVIL, "confidence_level": 0.95},
            "variables": [
                {
                    "variable": "a",
                    "role": "key",
                    "kind": "categorical",
                    "status": "kept",
                    "changed": 7,
                    "suppressed": 0,
                    "missing_before": 0,
                    "missing_after": 0,
                    "tvd": 0.02,
                    "hellinger": 0.03,
                    "categories_before": 2,
                    "categories_after": 2,
                    "marginal": marginal,
                },
                {
                    "variable": EVIL,
                    "role": "key",
                    "kind": "categorical",
                    "status": "kept",
                    "changed": 2,
                    "suppressed": 2,
                    "missing_before": 0,
                    "missing_after": 2,
                    "marginal": marginal,
                },
                {
                    "variable": "x",
                    "role": "numeric_key",
                    "kind": "numeric",
                    "status": "kept",
                    "changed": 0,
                    "suppressed": 0,
                    "mean_before": 10.0,
                    "mean_after": 10.0,
                    "quantile_probs": [0, 0.5, 1],
                    "quantiles_before": [1, 10, 20],
                    "quantiles_after": [1, 11, 19],
                },
                {"variable": "name", "role": "direct_id", "kind": "id", "status": "removed"},
            ],
            "numeric": {"variables": ["x"], "il1s": 1.5, "eigen": 0.01, "interval_disclosure": 0.3},
            "tables": [{"variables": ["a", EVIL], "status": "kept", "tvd": 0.1, "hellinger": 0.1}],
            "indicators": [
                {
                    "indicator": EVIL,
                    "variable": "a",
                    "kind": "proportion",
                    "value": 2,
                    "value_label": EVIL,
                    "by": None,
                    "before": side,
                    "after": side,
                    "difference": 0.0,
                    "relative_difference": 0.0,
                    "ci_overlap": 1.0,
                }
            ],
            "regressions": [
                {
                    "outcome": "x",
                    "predictors": [EVIL],
                    "kind": "linear",
                    "weighted": True,
                    "n_before": 100,
                    "n_after": 100,
                    "mean_ci_overlap": -0.5,
                    "coefficients": [
                        {
                            "term": EVIL,
                            "before": side,
                            "after": side,
                            "difference": 0.0,
                            "relative_difference": 0.0,
                            "ci_overlap": -0.5,
                        }
                    ],
                }
            ],
            "notes": [EVIL],
        },
        "release": {
            "n_records": 100,
            "variables": ["a", EVIL, "x"],
            "removed_variables": ["name"],
            "roles": {},
            "files": {"data": EVIL + ".csv"},
        },
        "warnings": [EVIL],
    }


def _pages(report: dict) -> dict[str, str]:
    return {
        "internal": render_internal_report(report),
        "external": render_external_report(external_view(report)),
        "dra": render_disclosure_risk_assessment(disclosure_risk_assessment(report, Plan())),
    }


def test_hostile_text_is_escaped_everywhere():
    pages = _pages(make_report())
    for name, page in pages.items():
        assert "<script" not in page.lower(), name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, name
        assert_self_contained(page)
    assert pages["internal"].count("<svg") == 5 and 'data-plot="risk-overlay"' in pages["internal"]


def test_hand_made_report_renders_every_part():
    pages = _pages(make_report())
    internal, external = pages["internal"], pages["external"]
    assert "8675309" in internal and "5551212" in internal and "transition_matrix" in internal
    assert "8675309" not in external and "5551212" not in external and "0.8, 0.2" not in external
    # negative interval overlap reads as disjoint, and is flagged
    assert '<tr class="flag"><td class="name">&lt;script&gt;' in internal and ">disjoint<" in internal
    assert "1.50 [1.30, 1.70]" in internal and "1.50 [1.30, 1.70]" in external
    assert "Public use file" in external
    assert "Direct identifiers" in pages["dra"] and "<code>name</code>" in pages["dra"]


@pytest.mark.parametrize(
    "section",
    [
        "safemicro_version",
        "input",
        "scenario",
        "targets",
        "roles",
        "release_info",
        "seed",
        "steps",
        "risk_before",
        "risk_after",
        "checks",
        "targets_met",
        "utility",
        "release",
        "warnings",
    ],
)
def test_internal_survives_missing_or_null_sections(section, quick_figures):
    for mode in ("missing", "none"):
        report = make_report()
        if mode == "missing":
            del report[section]
        else:
            report[section] = None
        page = render_internal_report(report)
        assert page.rstrip().endswith("</html>") and "<script" not in page.lower()


def test_minimal_inputs_render(quick_figures):
    assert "Anonymized release" in render_internal_report({})
    assert "No values were changed." in render_external_report({})
    blank = render_disclosure_risk_assessment({})
    assert blank.count("data-blank") >= 8  # an empty form to fill in by hand
    odd = make_report()
    odd["utility"] = {"variables": "oops", "indicators": [None, {"before": "x"}], "numeric": [1]}
    odd["steps"] = [None, {"changed": {"a": "many"}}]
    odd["risk_after"] = {"k_anonymity": {"violations": {"x": None}}, "individual_risk": {"histogram": {"edges": [1]}}}
    assert render_internal_report(odd).rstrip().endswith("</html>")


def test_risk_figure_falls_back_to_summary_statistics(quick_figures):
    report = make_report()
    for side in ("risk_before", "risk_after"):
        del report[side]["individual_risk"]["histogram"]
    page = render_internal_report(report)
    assert 'data-plot="risk-range"' in page and 'data-plot="risk-overlay"' not in page


def test_risk_histogram_bins():
    rng = np.random.default_rng(0)
    risk = np.concatenate([rng.uniform(0, 1, 500), [0.0, 1e-9, 1.0, np.nan]])
    hist = risk_histogram(risk)
    assert len(hist["edges"]) == len(hist["counts"]) + 1 == 49
    assert sum(hist["counts"]) == 503  # NaN dropped, 0 and 1e-9 in the first bin, 1 in the last
    assert hist["edges"][0] == pytest.approx(1e-6) and hist["edges"][-1] == 1.0
    assert hist["counts"][0] >= 2 and hist["counts"][-1] >= 1
    assert risk_histogram(risk) == hist


def test_before_after_plots_are_deterministic_and_skip_empty_input():
    b, a = {"2": 10, "3": 20}, {"2": 0, "3": 4}
    assert plots.violations_before_after_svg(b, a, target_k=3) == plots.violations_before_after_svg(b, a, target_k=3)
    assert plots.violations_before_after_svg({}, None) is None
    assert plots.changes_per_variable_svg({"a": 0}, {"a": 0}) is None
    assert plots.marginals_before_after_svg({"a": {"categories": [], "before": []}}) is None
    assert plots.quantiles_before_after_svg({"x": {"probs": [0.5], "before": "no"}}) is None
    assert plots.risk_overlay_svg({"edges": [0, 1], "counts": [1]}, None) is None  # log axis needs > 0


# -- a real browser -------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_pages_render_in_a_real_browser(tmp_path, report, internal, external, dra):
    expected = {
        "report.html": (internal, ["summary", "steps", "risk", "changes", "utility", "release"], 5),
        "external_report.html": (external, ["about", "done", "risk", "analysis", "utility"], 0),
        "disclosure_risk_assessment.html": (dra, ["dataset", "tier", "risk", "methods", "review"], 0),
    }
    for name, (page, sections, n_svg) in expected.items():
        path = tmp_path / name
        path.write_text(page, encoding="utf-8")
        dom = _chromium(["--dump-dom", path.as_uri()], tmp_path)
        assert dom.returncode == 0, dom.stderr[-2000:]
        text = dom.stdout
        for section in sections:
            assert re.search(rf'<section id="{section}"', text), (name, section)
        assert text.count("<svg") == n_svg, name
        assert "281" in text  # records violating 3-anonymity before, on every page
    png = tmp_path / "report.png"
    _chromium([f"--screenshot={png}", "--window-size=1100,3000", (tmp_path / "report.html").as_uri()], tmp_path)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
