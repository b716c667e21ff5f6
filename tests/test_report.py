"""Tests for the self-contained HTML risk report (safemicro.report)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from safemicro.report import plots, render_risk_report, write_risk_report
from safemicro.report.format import fmt_int, fmt_num, fmt_pct, fmt_prob

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)

KEYS = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


def make_records(n: int = 4580, n_households: int = 1000, seed: int = 7) -> pl.DataFrame:
    """A household-survey-like per-record risk frame: fk, Fk, risk, hh_risk, SUDA, l-div."""
    rng = np.random.default_rng(seed)
    hid = np.sort(rng.integers(0, n_households, n))
    frame = pl.DataFrame(
        {
            "hid": hid,
            "urbrur": rng.choice([1, 2], n, p=[0.7, 0.3]),
            "roof": rng.choice([1, 2, 3, 4, 9], n, p=[0.5, 0.3, 0.15, 0.04, 0.01]),
            "walls": rng.choice([1, 2, 3], n, p=[0.6, 0.3, 0.1]),
            "water": rng.choice(np.arange(1, 9), n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02]),
            "sex": rng.choice([1, 2], n),
            "w": rng.gamma(2.0, 450.0, n).round(2) + 20.0,
        }
    )
    keys = ["urbrur", "roof", "walls", "water", "sex"]
    frame = frame.with_columns(
        pl.len().over(keys).alias("fk"),
        pl.col("w").sum().over(keys).alias("Fk"),
    )
    p = (frame["fk"] / frame["Fk"]).to_numpy()
    fk = frame["fk"].to_numpy()
    # the Benedetti-Franconi closed form for fk = 1, a cruder fk/Fk elsewhere (test data only)
    risk = np.where(fk == 1, p / (1 - p) * -np.log(p), p)
    risk = np.clip(risk, 1e-6, 1.0)
    frame = frame.with_columns(pl.Series("risk", risk))
    frame = frame.with_columns(
        (1 - (1 - pl.col("risk")).product().over("hid")).alias("hh_risk"),
        pl.Series("suda_score", np.where(fk == 1, rng.integers(1, 720, n), 0)).cast(pl.Float64),
        pl.Series("dis_suda", np.where(fk == 1, rng.uniform(0, 0.7, n), 0.0)),
        pl.Series("ldiv_electcon", rng.integers(1, 4, n)),
    )
    return frame.select("fk", "Fk", "risk", "hh_risk", "suda_score", "dis_suda", "ldiv_electcon")


def make_summary() -> dict:
    variables = [
        {"name": "urbrur", "role": "key", "label": "Area of residence (urban/rural)", "n_distinct": 2, "n_missing": 0},
        {"name": "roof", "role": "key", "label": "Main material of the roof", "n_distinct": 5, "n_missing": 0},
        {"name": "walls", "role": "key", "label": "Main material of the walls", "n_distinct": 3, "n_missing": 12},
        {"name": "water", "role": "key", "label": "Main source of drinking water", "n_distinct": 8, "n_missing": 0},
        {"name": "sex", "role": "key", "label": "Sex of the individual", "n_distinct": 2, "n_missing": 0},
        {
            "name": "relat",
            "role": "key",
            "label": "Relationship to head <script>alert(1)</script>",
            "n_distinct": 9,
            "n_missing": 3,
        },
        {
            "name": "income",
            "role": "numeric_key",
            "label": "Household income (USD/month)",
            "n_distinct": 3120,
            "n_missing": 1530,
        },
        {"name": "electcon", "role": "sensitive", "label": "Electricity connection", "n_distinct": 3, "n_missing": 0},
        {"name": "sampling_weight", "role": "weight", "label": None, "n_distinct": 1023, "n_missing": 0},
        {"name": "ori_hid", "role": "household", "label": "Household id", "n_distinct": 1000, "n_missing": 0},
        {"name": "phone", "role": "direct_id", "label": "Phone number of the head", "n_distinct": 998, "n_missing": 2},
    ]
    return {
        "safemicro_version": "0.1.0",
        "source": "data/sdcmicro/testdata.dta",
        "generated_at": "2025-03-14 10:22 UTC",
        "n_records": 4580,
        "roles": {
            "keys": ["urbrur", "roof", "walls", "water", "sex", "relat"],
            "numeric_keys": ["income"],
            "sensitive": ["electcon"],
            "weight": "sampling_weight",
            "household": "ori_hid",
            "direct_ids": ["phone"],
            "strata": None,
            "cluster": None,
        },
        "variables": variables,
        "scenario": {
            "description": "Nosy neighbour: a camp resident knows the dwelling "
            "(roof, walls, water) and the household composition of "
            "their neighbours, and can match them in the file.",
            "tier": "puf",
        },
        "targets": {"k": 3, "max_global_risk": 0.01, "max_individual_risk": 0.05},
        "alpha": 1.0,
        "k_anonymity": {"n_distinct_keys": 1063, "violations": {"2": 157, "3": 281, "5": 458}},
        "global_risk": {
            "mean": 0.00235,
            "expected_reidentifications": 10.78,
            "percent": 0.235,
            "threshold": None,
            "max_global_risk": 0.01,
        },
        "household_risk": {
            "mean": 0.00871,
            "expected_reidentifications": 39.9,
            "percent": 0.871,
            "n_households": 1000,
            "household_sizes": {
                "1": 120,
                "2": 200,
                "3": 230,
                "4": 190,
                "5": 120,
                "6": 70,
                "7": 40,
                "8": 20,
                "10": 6,
                "14": 4,
            },
        },
        "individual_risk": {"max": 0.0465, "n_above_0_1": 0, "n_risky": 0, "median": 0.0011, "mad": 0.0009},
        "riskiest_keys": [
            {
                "values": {"urbrur": 1, "roof": 9, "walls": 3, "water": 8, "sex": 2, "relat": 7},
                "fk": 1,
                "Fk": 100.0,
                "risk": 0.0465,
                "n_records": 1,
            },
            {
                "values": {"urbrur": 2, "roof": 4, "walls": 3, "water": 7, "sex": 1, "relat": None},
                "fk": 1,
                "Fk": 118.5,
                "risk": 0.0402,
                "n_records": 1,
            },
            {
                "values": {"urbrur": 1, "roof": 4, "walls": 2, "water": 8, "sex": 1, "relat": 9},
                "fk": 2,
                "Fk": 1234.25,
                "risk": 0.0016,
                "n_records": 2,
            },
        ],
        "suda2": {
            "n_score_gt0": 157,
            "sum_score": 4890,
            "max_score": 720,
            "sum_dis": 9.83,
            "max_dis": 0.678,
            "dis_table": {
                "== 0": 4423,
                "(0.0, 0.1]": 122,
                "(0.1, 0.2]": 21,
                "(0.2, 0.3]": 9,
                "(0.3, 0.4]": 3,
                "(0.4, 0.5]": 1,
                "> 0.5": 1,
            },
            "attribute_contributions": {
                "urbrur": 12.04,
                "roof": 21.7,
                "walls": 15.2,
                "water": 30.6,
                "sex": 5.1,
                "relat": 15.36,
            },
            "level_contributions": {"urbrur": {"1": 79.9, "2": 20.1}, "roof": {"1": 20.0, "9": 80.0}},
        },
        "l_diversity": {
            "electcon": {
                "distinct": {"min": 1, "mean": 2.37, "n_eq1": 579, "n_lt2": 579},
                "entropy": {"min": 1.0, "mean": 1.91, "n_eq1": 579, "n_lt2": 812},
                "recursive": {"c": 2, "l": 2, "n_violating": 640},
            }
        },
        "numeric_risk": {"income": {"n_outliers": 12, "outlier_rule": "> p99 + 3·IQR", "max": 125000.0, "p99": 8450.5}},
        "checks": [
            {"target": "k=3", "value": 281, "passed": False, "message": "281 records violate 3-anonymity"},
            {
                "target": "max_global_risk=0.01",
                "value": 0.00235,
                "passed": True,
                "message": "global risk 0.235 % is below 1 %",
            },
        ],
    }


@pytest.fixture(scope="module")
def records() -> pl.DataFrame:
    return make_records()


@pytest.fixture(scope="module")
def html(records) -> str:
    return render_risk_report(make_summary(), records)


def assert_self_contained(page: str) -> None:
    low = page.lower()
    assert "<link" not in low
    assert "<script" not in low
    assert "<iframe" not in low
    assert "<img" not in low
    assert not re.search(r"""\bsrc\s*=\s*["']?\s*(https?:)?//""", low)
    assert "@import" not in low
    # url(...) may only point inside the document (SVG clip paths use url(#id))
    for m in re.finditer(r"url\(\s*([^)]*)\)", low):
        assert m.group(1).strip("'\" ").startswith("#"), m.group(0)
    # no href to anything but an in-page anchor
    for m in re.finditer(r"""\bhref\s*=\s*["']([^"']*)["']""", low):
        assert m.group(1).startswith("#"), m.group(0)


def test_formatters():
    assert fmt_int(4580) == "4,580"
    assert fmt_int(1234567.0) == "1,234,567"
    assert fmt_int(None) == "–"
    assert fmt_pct(0.235) == "0.235 %"
    assert fmt_pct(12.04) == "12.04 %"
    assert fmt_prob(0.0465) == "0.0465"
    assert fmt_prob(0.00001) == "< 0.0001"
    assert fmt_prob(0) == "0"
    assert fmt_prob(0.05) == "0.05"
    assert fmt_prob(0.00235) == "0.00235"
    assert fmt_pct(0) == "0 %"
    assert fmt_num(10.78) == "10.8"
    assert fmt_num(0.00235) == "0.00235"
    assert fmt_num(1234.25) == "1,234"
    assert fmt_num(2.37) == "2.37"
    assert fmt_num(float("nan")) == "nan"  # not a number we can format: shown as is


def test_page_is_one_self_contained_document(html):
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<html") == 1 and html.count("</html>") == 1
    assert "<style>" in html
    assert_self_contained(html)
    # inline SVG, never an XML prolog or DOCTYPE pasted inside the page
    assert "<?xml" not in html
    assert "<!DOCTYPE svg" not in html


def test_headline_numbers_formatted(html):
    for text in [
        "4,580",
        "1,063",
        "157",
        "281",
        "458",
        "0.235 %",
        "10.78 expected re-identifications",
        "0.871 %",
        "1,000 households",
        "0.0465",
        "data/sdcmicro/testdata.dta",
        "2025-03-14 10:22 UTC",
        "0.1.0",
        "PUF",
    ]:
        assert text in html, text
    # k = 3 is the target and 281 records violate it: that card is marked as failing
    card = re.search(r'<div class="card fail" data-card="k3">.*?</div>\s*</div>', html, re.S)
    assert card and "281" in card.group(0)
    assert 'class="card pass" data-card="global-risk"' in html
    assert 'class="card pass" data-card="max-risk"' in html
    assert 'class="card" data-card="k2"' in html  # no target at k = 2: neutral


def test_sections_present(html):
    for anchor in [
        "headline",
        "variables",
        "scenario",
        "risk",
        "riskiest",
        "suda",
        "ldiversity",
        "numeric",
        "glossary",
    ]:
        assert f'id="{anchor}"' in html, anchor
    assert "Nosy neighbour" in html
    assert "Benedetti" in html
    # riskiest keys: columns, suppressed value, Fk
    assert "118.5" in html and "1,234" in html and "∗ (missing/suppressed)" in html
    # SUDA DIS table and facts
    assert "(0.1, 0.2]" in html and "4,423" in html and "0.678" in html
    # l-diversity and numeric risk
    assert "579" in html and "2.37" in html and "n eq1" in html
    assert "125,000" in html and "8,450" in html and "&gt; p99 + 3·IQR" in html
    # checks
    assert "281 records violate 3-anonymity" in html
    # direct identifiers are called out
    assert "must be removed before any release" in html


def test_all_plots_inline_svg(html):
    assert html.count("<svg") == 4
    for name in ["risk-distribution", "violations-by-k", "suda-contribution", "household-sizes"]:
        assert f'data-plot="{name}"' in html, name
    # ids of the different figures never collide
    ids = re.findall(r'\sid="([^"]+)"', html)
    svg_ids = [i for i in ids if not i.isalpha()]
    assert len(svg_ids) == len(set(svg_ids))


def test_violations_by_k_from_records(records, html):
    rows = plots.violations_by_k(records)
    assert [k for k, _ in rows] == list(range(1, 11))
    fk = records["fk"].to_numpy()
    for k, count in rows:
        assert count == int((fk < k).sum())
    assert rows[0][1] == 0
    counts = [c for _, c in rows]
    assert counts == sorted(counts)
    assert f"{rows[4][1]:,}" in html


def test_labels_are_escaped(html):
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_hostile_names_escaped_everywhere(records):
    summary = make_summary()
    evil = '<img src="http://x/y.png">'
    summary["source"] = evil
    summary["scenario"]["description"] = "</div><script>bad()</script>"
    summary["riskiest_keys"][0]["values"]["relat"] = "<b>7</b>"
    summary["suda2"]["attribute_contributions"]["$x$<evil>"] = 3.0
    summary["l_diversity"]["<i>x</i>"] = {"distinct": {"min": 1}}
    page = render_risk_report(summary, records, title="<h1>t</h1>")
    assert evil not in page and "<script" not in page.lower() and "<b>7</b>" not in page
    assert "&lt;h1&gt;t&lt;/h1&gt;" in page
    assert_self_contained(page)


@pytest.mark.parametrize(
    "section",
    [
        "scenario",
        "targets",
        "k_anonymity",
        "global_risk",
        "household_risk",
        "individual_risk",
        "riskiest_keys",
        "suda2",
        "l_diversity",
        "numeric_risk",
        "checks",
        "variables",
        "roles",
        "alpha",
        "generated_at",
        "source",
        "safemicro_version",
    ],
)
def test_each_section_may_be_none_or_missing(records, section):
    for mode in ("none", "missing"):
        summary = make_summary()
        if mode == "none":
            summary[section] = None
        else:
            del summary[section]
        page = render_risk_report(summary, records)
        assert_self_contained(page)
        assert "</html>" in page


def test_none_sections_are_omitted(records):
    summary = make_summary()
    for section in [
        "scenario",
        "targets",
        "household_risk",
        "riskiest_keys",
        "suda2",
        "l_diversity",
        "numeric_risk",
        "checks",
    ]:
        summary[section] = None
    page = render_risk_report(summary, records)
    for anchor in ["scenario", "riskiest", "suda", "ldiversity", "numeric"]:
        assert f'id="{anchor}"' not in page, anchor
    assert "Households by size" not in page and 'data-card="household-risk"' not in page
    # only the two record-level figures remain
    assert page.count("<svg") == 2
    # without targets nothing is coloured pass/fail
    assert 'class="card pass"' not in page and 'class="card fail"' not in page
    assert "Checks against the targets" not in page


def test_minimal_inputs():
    page = render_risk_report({}, None)
    assert_self_contained(page)
    assert page.count("<svg") == 0
    assert "No per-record risk" in page
    page = render_risk_report({"n_records": 0}, pl.DataFrame({"fk": [], "Fk": [], "risk": []}))
    assert page.count("<svg") == 0
    # odd types do not crash the page
    odd = make_summary()
    odd["k_anonymity"] = {"n_distinct_keys": "many", "violations": None}
    odd["riskiest_keys"] = [None, {"values": None, "fk": None}]
    odd["suda2"] = {"attribute_contributions": {"a": "x"}, "dis_table": "oops"}
    odd["household_risk"] = {"household_sizes": {"1": None, "big": 3}}
    odd["checks"] = "nope"
    page = render_risk_report(odd, pl.DataFrame({"fk": [1, 1, 2], "risk": [0.0, None, 0.2]}))
    assert "</html>" in page


def test_records_without_optional_columns():
    frame = pl.DataFrame(
        {
            "fk": [1, 2, 2, 5, 5, 5, 5, 5],
            "Fk": [3.0, 40, 40, 90, 90, 90, 90, 90],
            "risk": [0.5, 0.03, 0.03, 0.01, 0.01, 0.01, 0.01, 0.01],
        }
    )
    page = render_risk_report({"n_records": 8}, frame)
    assert page.count("<svg") == 2
    assert 'data-plot="risk-distribution"' in page


def test_rendering_is_deterministic(records):
    assert render_risk_report(make_summary(), records) == render_risk_report(make_summary(), records)


def test_summary_not_mutated(records):
    summary = make_summary()
    before = copy.deepcopy(summary)
    render_risk_report(summary, records)
    assert summary == before


def test_write_is_atomic(tmp_path, records):
    target = tmp_path / "out" / "risk_report.html"
    returned = write_risk_report(target, make_summary(), records, title="Camp survey 2024")
    assert Path(returned) == target
    text = target.read_text(encoding="utf-8")
    assert "Camp survey 2024" in text and "4,580" in text
    assert [p.name for p in target.parent.iterdir()] == ["risk_report.html"]
    # overwriting replaces the file and leaves no temporary behind
    write_risk_report(target, {"n_records": 1}, None)
    assert "Camp survey 2024" not in target.read_text(encoding="utf-8")
    assert [p.name for p in target.parent.iterdir()] == ["risk_report.html"]


def test_write_failure_leaves_no_temp(tmp_path, monkeypatch, records):
    import safemicro.report.risk_report as rr

    target = tmp_path / "r.html"
    target.write_text("old", encoding="utf-8")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(rr.os, "replace", boom)
    with pytest.raises(OSError):
        write_risk_report(target, make_summary(), records)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def _chromium(args: list[str], tmp_path: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_renders_in_a_real_browser(tmp_path, records):
    page = write_risk_report(tmp_path / "risk_report.html", make_summary(), records)
    url = page.resolve().as_uri()
    png = tmp_path / "risk_report.png"
    proc = _chromium([f"--screenshot={png}", "--window-size=1280,4000", url], tmp_path)
    assert png.exists(), proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000, len(data)  # a blank page is a few kB
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 4000)

    dom = _chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    for number in ["4,580", "1,063", "281", "0.235 %", "0.0465", "0.871 %"]:
        assert number in text, number
    assert text.count("<svg") == 4
    assert "<script>alert(1)</script>" not in text


def test_assess_shapes_numeric_variables_warnings_labels(records):
    """Shapes the assess module writes: numeric_risk.variables, warnings, value labels."""
    summary = make_summary()
    summary["numeric_risk"] = {
        "variables": {
            "income": {
                "n_outliers": 0,
                "outlier_rule": "modified z-score > 3.5",
                "min": 2897.484,
                "median": 50750000.0,
                "p99": 99100000.0,
                "max": 100000000.0,
                "n_missing": 0,
            }
        },
        "interval_disclosure": 1.0,
        "n_records_with_outlier": 0,
    }
    summary["warnings"] = ["weights below 1: 3 keys have Fk < fk"]
    summary["riskiest_keys"][0]["labels"] = {"urbrur": "Urban <area>"}
    summary["k_anonymity"]["n_sample_uniques"] = 157
    summary["individual_risk"]["n_above_target"] = 2
    page = render_risk_report(summary, records)
    assert "50,750,000" in page and "modified z-score &gt; 3.5" in page
    assert "Interval disclosure risk" in page and "Records with an outlying value" in page
    assert "weights below 1: 3 keys have Fk &lt; fk" in page
    assert "1 · Urban &lt;area&gt;" in page
    assert "157 unique in the sample" in page
    assert "2 records above target" in page
    assert_self_contained(page)


def test_no_scenario_still_names_the_keys(records):
    summary = make_summary()
    summary["scenario"] = None
    summary["targets"] = None
    page = render_risk_report(summary, records)
    assert "No disclosure scenario was recorded" in page
    assert "urbrur, roof, walls, water, sex, relat" in page
    assert "meets target" not in page  # no legend without coloured cards


def test_each_report_package_has_a_template_environment_of_its_own():
    """The attack and evaluation reports used to set the loader of the one shared jinja
    environment, each call wrapping the last (a chain that grew with every report rendered,
    and a template name resolving to whichever report ran last). Each package now has its
    own environment, built once, and the release reports' is left as it was."""
    from jinja2 import TemplateNotFound

    from safemicro.attack.report import _env as attack_env
    from safemicro.evaluate.report import _env as evaluate_env
    from safemicro.report.format import template_environment

    base = template_environment()
    loader = base.loader
    for _ in range(3):
        attack, evaluation = attack_env(), evaluate_env()
    assert attack is attack_env() and evaluation is evaluate_env() and attack is not evaluation
    assert template_environment() is base and base.loader is loader
    assert attack.get_template("attack.html") and evaluation.get_template("evaluation.html")
    assert attack.get_template("page_head.html")  # the shared templates stay reachable
    with pytest.raises(TemplateNotFound):
        evaluation.get_template("attack.html")
    with pytest.raises(TemplateNotFound):
        base.get_template("evaluation.html")
