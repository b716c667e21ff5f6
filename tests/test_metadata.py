"""safemicro.metadata: DDI Codebook 2.5 (XSD-valid, round trip, bad input), HTML codebook
(sections, masking, real browser), Data Package v2 (frictionless), CLI `document`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import safemicro
from conftest import SDC_DATA
from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.examples import SURVEY_PLAN, SURVEY_PUF_PLAN, generate_survey
from safemicro.io import Codebook, Dataset, VariableMeta, read, write
from safemicro.metadata.codebook_html import render_codebook
from safemicro.metadata.datapackage import write_datapackage
from safemicro.metadata.ddi import (
    DDI_NS,
    SCHEMA_DIR,
    build_ddi,
    ddi_string,
    read_ddi,
    validate_ddi,
    write_ddi,
    xml_text,
)
from safemicro.metadata.documentation import build_documentation, document
from safemicro.metadata.study import Study, VariableDoc, load_study
from safemicro.metadata.summary import summarize_dataset
from safemicro.outputs import MARKER

N = f"{{{DDI_NS}}}"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
STUDY_YAML = """\
study:
  idno: SAFEMICRO-EXAMPLE-2026-PUF
  title: Example displacement survey 2026 (synthetic)
  authors: [{name: safemicro example team, affiliation: nowhere}]
  producers: [{name: UNHCR (fictional), abbr: UNHCR, role: producer}]
  abstract: "A synthetic household survey of refugees in eight sites – made up, for testing."
  keywords: [refugees, households]
  countries: [{name: Utopia, code: UTO}]
  collection_dates: {start: 2026-02-01, end: 2026-03-15}
  sampling: Stratified two-stage cluster sample of households.
  collection_mode: Computer-assisted personal interview (CAPI)
  access: {citation: "Example survey 2026, safemicro."}
  variables:
    age: {question: "How old is [NAME]? (completed years)", universe: all household members}
    sex: {question: "Is [NAME] male or female?"}
"""


# -------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("metadata")


@pytest.fixture(scope="module")
def survey_file(work) -> Path:
    path = work / "survey.dta"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write(generate_survey(n_households=300, seed=7), path)
    return path


@pytest.fixture(scope="module")
def bundles(work, survey_file) -> dict[str, Path]:
    """SUF from the raw file, PUF nested on the SUF: the anonymization issue's bundles."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suf = safemicro.anonymize(survey_file, SURVEY_PLAN, show_progress=False)
        suf.write(work / "suf")
        puf = safemicro.anonymize(work / "suf", SURVEY_PUF_PLAN, show_progress=False)
        puf.write(work / "puf")
    return {"suf": work / "suf", "puf": work / "puf"}


@pytest.fixture(scope="module")
def study_file(work) -> Path:
    p = work / "study.yaml"
    p.write_text(STUDY_YAML, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def puf_docs(work, bundles, study_file) -> Path:
    out = work / "puf_docs"
    document(bundles["puf"], out, study=study_file)
    return out


def _vars(root: ET.Element) -> dict[str, ET.Element]:
    return {v.get("name"): v for v in root.iter(N + "var")}


# -------------------------------------------------------------------------- DDI validity


def test_example_survey_ddi_is_valid(work, survey_file, study_file):
    out = work / "raw_docs"
    paths = document(survey_file, out, outputs=("ddi",), study=study_file, plan=SURVEY_PLAN)
    assert validate_ddi(paths["ddi"]) == []
    root = ET.parse(paths["ddi"]).getroot()
    assert root.tag == N + "codeBook" and root.get("version") == "2.5"
    ds = read(survey_file)
    variables = _vars(root)
    assert list(variables) == ds.columns  # every variable, in file order
    # weighted and unweighted frequencies of a labelled variable, checked independently
    sex = variables["sex"]
    w = ds.frame.get_column("weight").to_numpy()
    for cat in sex.findall(N + "catgry"):
        code = int(cat.find(N + "catValu").text)
        mask = ds.frame.get_column("sex").to_numpy() == code
        stats = {(s.get("type"), s.get("wgtd", "not-wgtd")): float(s.text) for s in cat.findall(N + "catStat")}
        assert stats[("freq", "not-wgtd")] == mask.sum()
        assert stats[("freq", "wgtd")] == pytest.approx(w[mask].sum(), abs=1e-3)
        assert stats[("percent", "wgtd")] == pytest.approx(100 * w[mask].sum() / w.sum(), abs=1e-3)
    # the generator's user-missing 98/99 are Stata extended missing .a/.b in the .dta file:
    # categories with missing="Y", their labels and counts
    prot = variables["protection_incident"]
    missing = {c.find(N + "catValu").text: c for c in prot.findall(N + "catgry") if c.get("missing") == "Y"}
    assert set(missing) == {".a", ".b"}
    assert missing[".b"].find(N + "labl").text == "Refused"
    letters = list(ds.codebook.extended_missing["protection_incident"].values())
    assert int(missing[".b"].find(N + "catStat").text) == letters.count("b") > 0
    # the question text from the study description, the weight flagged, a checksum
    assert variables["age"].find(f"{N}qstn/{N}qstnLit").text.startswith("How old is [NAME]?")
    assert variables["weight"].get("wgt") == "wgt"
    assert variables["age"].get("wgt-var") == variables["weight"].get("ID")
    fp = root.find(f"{N}fileDscr/{N}fileTxt/{N}dataFingerprint/{N}digitalFingerprintValue").text
    import hashlib

    assert fp == hashlib.sha256(survey_file.read_bytes()).hexdigest()
    assert root.find(f"{N}stdyDscr/{N}citation/{N}titlStmt/{N}IDNo").text == "SAFEMICRO-EXAMPLE-2026-PUF"
    # a raw file is not a release: the plan's tier is not claimed for it
    assert root.find(f"{N}stdyDscr/{N}dataAccs/{N}setAvail/{N}avlStatus") is None
    assert root.find(f"{N}stdyDscr/{N}dataAccs/{N}useStmt/{N}confDec") is None


def test_testdata_ddi_is_valid(work):
    paths = document(SDC_DATA / "testdata.csv", work / "td_docs", outputs=("ddi",), weight="sampling_weight")
    assert validate_ddi(paths["ddi"]) == []
    root = ET.parse(paths["ddi"]).getroot()
    v = _vars(root)
    assert len(v) == 15
    assert v["income"].get("intrvl") == "contin"  # many distinct values: statistics, no categories
    assert v["income"].find(N + "catgry") is None
    mean = {
        s.get("wgtd", "not-wgtd"): float(s.text) for s in v["income"].findall(N + "sumStat") if s.get("type") == "mean"
    }
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    assert mean["not-wgtd"] == pytest.approx(df["income"].mean(), rel=1e-6)
    assert mean["wgtd"] == pytest.approx(np.average(df["income"], weights=df["sampling_weight"]), rel=1e-6)
    assert v["urbrur"].get("intrvl") == "discrete"  # few whole-number codes: categories
    assert len(v["urbrur"].findall(N + "catgry")) == df["urbrur"].n_unique()


@pytest.mark.parametrize("tier", ["suf", "puf"])
def test_bundle_ddi_is_valid_and_has_sdc_notes_without_seeds(bundles, work, tier):
    out = work / f"{tier}_ddi"
    paths = document(bundles[tier], out, outputs=("ddi",))
    assert validate_ddi(paths["ddi"]) == []
    text = paths["ddi"].read_text(encoding="utf-8")
    report = json.loads((bundles[tier] / "report.json").read_text(encoding="utf-8"))
    root = ET.fromstring(text)
    notes = [n.text for n in root.iter(N + "notes") if n.get("subject") == "Statistical disclosure control"]
    assert any("local_suppression" in n for n in notes)
    assert "seed" not in text.lower()
    assert str(report["seed"]) not in text
    assert root.find(f"{N}stdyDscr/{N}dataAccs/{N}setAvail/{N}avlStatus").text.startswith(
        {"suf": "Scientific", "puf": "Public"}[tier]
    )
    # the removed direct identifiers are not documented as variables
    assert not {"head_name", "phone", "gps_lat"} & set(_vars(root))
    # file checksum is the bundle's data file
    data = bundles[tier] / report["release"]["files"]["data"]
    import hashlib

    assert hashlib.sha256(data.read_bytes()).hexdigest() in text


def test_puf_ddi_masks_small_cells(puf_docs, bundles):
    root = ET.parse(puf_docs / "ddi.xml").getroot()
    ds = read(bundles["puf"] / "survey.dta")
    k = json.loads((bundles["puf"] / "report.json").read_text())["targets"]["k"]
    masked = 0
    for var in root.iter(N + "var"):
        name = var.get("name")
        col = ds.frame.get_column(name)
        for cat in var.findall(N + "catgry"):
            freq = [
                s
                for s in cat.findall(N + "catStat")
                if s.get("type") == "freq" and s.get("wgtd", "not-wgtd") == "not-wgtd"
            ]
            value = cat.find(N + "catValu").text
            if value.startswith("."):
                continue
            true_n = (
                int((col.cast(pl.Float64) == float(value)).sum())
                if col.dtype.is_numeric()
                else int((col == value).sum())
            )
            if 0 < true_n < k:
                assert not freq and "Fewer than" in cat.find(N + "txt").text
                masked += 1
            elif freq:
                assert int(freq[0].text) == true_n
    assert masked >= 1  # the example PUF has rare categories (e.g. relationship "Parent")
    income = {s.get("type") for s in _vars(root)["income"].findall(N + "sumStat")}
    assert "mean" in income and not {"min", "max"} & income  # extremes are single records


def test_an_invalid_document_fails_validation(work):
    ds = Dataset(pl.DataFrame({"a": [1, 2, 2]}))
    doc = build_documentation(ds)
    root = build_ddi(doc)
    assert validate_ddi(root) == []
    var = next(root.iter(N + "var"))
    ET.SubElement(var, N + "bogus").text = "not in DDI"  # unknown element
    problems = validate_ddi(root)
    assert problems and any("bogus" in p for p in problems)
    var.remove(var.find(N + "bogus"))
    del var.attrib["name"]  # the one required attribute of var
    assert validate_ddi(root)
    stdy = root.find(N + "stdyDscr")
    root.remove(stdy)  # stdyDscr is required
    assert validate_ddi(root)
    bad = work / "bad.xml"
    bad.write_text(f'<codeBook xmlns="{DDI_NS}" version="2.5"><docDscr/></codeBook>', encoding="utf-8")
    assert validate_ddi(bad)


def test_schema_is_shipped_and_offline():
    assert (SCHEMA_DIR / "codebook.xsd").is_file() and (SCHEMA_DIR / "README.md").is_file()
    assert (
        "CC BY 4.0" in (SCHEMA_DIR / "README.md").read_text()
        or "Creative Commons" in (SCHEMA_DIR / "README.md").read_text()
    )
    # every import/include/redefine points inside the folder (xml.xsd quotes an http URL
    # only in its documentation)
    xs = "{http://www.w3.org/2001/XMLSchema}"
    for xsd in SCHEMA_DIR.rglob("*.xsd"):
        root = ET.parse(xsd).getroot()
        for tag in ("import", "include", "redefine"):
            for e in root.iter(xs + tag):
                loc = e.get("schemaLocation")
                assert loc and not loc.startswith("http") and (xsd.parent / loc).is_file(), (xsd, loc)


# -------------------------------------------------------------------------- round trip, import


def test_round_trip_labels_and_categories(work, survey_file):
    ds = read(survey_file)
    doc = build_documentation(survey_file, plan=SURVEY_PLAN)
    path = write_ddi(doc, work / "rt.xml")
    imported = read_ddi(path)
    for name in ds.columns:
        src, back = ds.codebook.meta(name), imported.codebook.variables[name]
        assert back.label == src.label, name
        assert back.value_labels == src.value_labels, name
        assert back.measure == src.measure or src.measure == "unknown", name


def test_ddi_rebuilt_from_its_own_import_is_identical(work):
    """Write DDI, import it onto the bare data, write again: the variable descriptions agree."""
    ds = generate_survey(n_households=150, seed=9)  # user-missing codes, no extended missing
    study = Study(variables={"age": VariableDoc(question="How old?", universe="everyone")})
    first = write_ddi(build_documentation(ds, study=study, weight="weight"), work / "first.xml")
    bare = Dataset(ds.frame)
    second = build_ddi(build_documentation(bare, prefill_ddi=first, weight="weight"))
    one = ET.parse(first).getroot().find(N + "dataDscr")
    two = second.find(N + "dataDscr")

    def canon(e: ET.Element) -> tuple:
        return (e.tag, sorted(e.attrib.items()), (e.text or "").strip(), [canon(c) for c in e])

    assert len(one) == len(ds.columns)
    for a, b in zip(one, two):
        assert canon(a) == canon(b), a.get("name")


def test_round_trip_user_missing_and_stata_extended_missing(work):
    frame = pl.DataFrame(
        {"q": [1, 2, 98, 99, 1, None], "s": ["a", "b", "b", "zz", "a", "a"], "x": [0.5, 1.25, 2.0, 3.0, 99.0, 1.0]}
    )
    cb = Codebook()
    cb.variables["q"] = VariableMeta(
        "q", "Question", {1: "Yes", 2: "No", 98: "Don't know", 99: "Refused", "c": "Skipped"}, [98, 99], [], "nominal"
    )
    cb.variables["s"] = VariableMeta("s", "Text codes", {"a": "Alpha", "b": "Beta"}, ["zz"], [], "nominal")
    cb.variables["x"] = VariableMeta("x", "Amount", {}, [], [(90.0, 100.0)], "scale")
    cb.extended_missing["q"] = {5: "c"}
    ds = Dataset(frame, cb)
    doc = build_documentation(ds)
    root = build_ddi(doc)
    assert validate_ddi(root) == []
    path = work / "missing.xml"
    path.write_text(ddi_string(root), encoding="utf-8")
    back = read_ddi(path).codebook.variables
    assert back["q"].value_labels == cb.variables["q"].value_labels
    assert back["q"].missing_values == [98, 99]
    assert back["s"].value_labels == {"a": "Alpha", "b": "Beta"} and back["s"].missing_values == ["zz"]
    assert back["x"].missing_ranges == [(90, 100)] and back["x"].measure == "scale"
    q = _vars(root)["q"]
    ext = [c for c in q.findall(N + "catgry") if c.find(N + "catValu").text == ".c"][0]
    assert ext.get("missing") == "Y" and ext.find(N + "catStat").text == "1"


def test_prefill_from_existing_ddi(work, survey_file, study_file):
    doc = build_documentation(survey_file, study=study_file, plan=SURVEY_PLAN)
    old = write_ddi(doc, work / "old.xml")
    bare = read(survey_file)
    plain = Dataset(bare.frame)  # no labels at all
    filled = build_documentation(plain, prefill_ddi=old, study=Study(abstract="new abstract"))
    assert filled.study.title == "Example displacement survey 2026 (synthetic)"
    assert filled.study.abstract == "new abstract"  # the study description wins
    assert filled.study.variables["age"].question.startswith("How old")
    assert filled.dataset.codebook.meta("camp").value_labels == bare.codebook.meta("camp").value_labels
    assert filled.dataset.codebook.meta("age").label == "Age in completed years"


def test_read_ddi_refuses_entity_bombs_and_non_ddi(work):
    bomb = work / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        f'<codeBook xmlns="{DDI_NS}">&b;</codeBook>',
        encoding="utf-8",
    )
    with pytest.raises(SafemicroError, match="unsafe XML"):
        read_ddi(bomb)
    other = work / "other.xml"
    other.write_text("<html/>", encoding="utf-8")
    with pytest.raises(SafemicroError, match="not a DDI Codebook"):
        read_ddi(other)
    broken = work / "broken.xml"
    broken.write_text("<codeBook>", encoding="utf-8")
    with pytest.raises(SafemicroError, match="not well-formed"):
        read_ddi(broken)


# -------------------------------------------------------------------------- bad input


def test_unknown_variable_in_study_yaml_is_a_clear_error(work, survey_file):
    p = work / "bad_study.yaml"
    p.write_text("study:\n  title: x\n  variables:\n    agee: {question: 'How old?'}\n", encoding="utf-8")
    with pytest.raises(SafemicroError) as e:
        build_documentation(survey_file, study=p)
    assert e.value.column == "agee" and "did you mean 'age'" in str(e.value) and str(p) in str(e.value)
    p.write_text("study:\n  titel: x\n", encoding="utf-8")
    with pytest.raises(SafemicroError, match="titel: unknown field"):
        load_study(p)
    p.write_text("study: [1, 2\n", encoding="utf-8")
    with pytest.raises(SafemicroError, match="invalid YAML at line"):
        load_study(p)


def test_non_ascii_and_control_characters_give_valid_xml(work):
    labels = {
        1: "Réfugié·e — 난민 — لاجئ",
        2: "Tab\tand\r\nnewline",
        3: 'bell\x07 & <tag> "quote"',
        4: "\ud800 lone surrogate",
    }
    frame = pl.DataFrame({"v": [1, 2, 3, 4, 1], "ñame": ["ü", "ß", "ü", "ü", "ß"]})
    cb = Codebook()
    cb.variables["v"] = VariableMeta("v", "Variable «v» ✓ \x00null", labels, [], [], "nominal")
    cb.variables["ñame"] = VariableMeta("ñame", "Nom ü", {"ü": "U umlaut"}, [], [], "nominal")
    ds = Dataset(frame, cb)
    study = Study(title="Enquête sur les réfugiés \x1b[31m", variables={"ñame": VariableDoc(question="¿Cómo?")})
    doc = build_documentation(ds, study=study)
    root = build_ddi(doc)
    text = ddi_string(root)
    assert validate_ddi(text) == []
    path = work / "unicode.xml"
    path.write_bytes(text.encode("utf-8"))
    back = read_ddi(path)
    assert back.codebook.variables["v"].value_labels == {k: xml_text(v) for k, v in labels.items()}
    assert back.codebook.variables["v"].value_labels[1] == labels[1]  # non-ASCII kept as is
    assert back.codebook.variables["ñame"].value_labels == {"ü": "U umlaut"}
    assert back.study.title == "Enquête sur les réfugiés \ufffd[31m"
    html = render_codebook(doc)
    assert "Réfugié·e" in html and "&lt;tag&gt;" in html


def test_ten_thousand_categories_are_truncated_with_a_note(work):
    n = 10_000
    frame = pl.DataFrame({"code": np.arange(n), "w": np.ones(n)})
    cb = Codebook()
    cb.variables["code"] = VariableMeta(
        "code", "Occupation (10 000 codes)", {i: f"occupation {i}" for i in range(n)}, [], [], "nominal"
    )
    ds = Dataset(frame, cb)
    doc = build_documentation(ds, weight="w", max_categories=200)
    root = build_ddi(doc)
    assert validate_ddi(root) == []
    var = _vars(root)["code"]
    assert len(var.findall(N + "catgry")) == 200
    notes = [x.text for x in var.findall(N + "notes")]
    assert any("9800 further categories" in t for t in notes), notes
    html = render_codebook(doc)
    assert "more categories are listed in the DDI file" in html and "9800 further categories" in html


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    label=st.text(max_size=40),
    value_label=st.text(min_size=1, max_size=20),
    title=st.text(max_size=30),
    name=st.text(min_size=1, max_size=12),
)
def test_xml_escaping_property(label, value_label, title, name):
    """Any text in any label, variable name or study field gives well-formed, schema-valid
    DDI whose labels and names read back as what :func:`xml_text` keeps."""
    cb = Codebook()
    cb.variables[name] = VariableMeta(name, label or None, {1: value_label}, [], [], "nominal")
    ds = Dataset(pl.DataFrame({name: [1, 1, 2]}), cb)
    doc = build_documentation(ds, study=Study(title=title, abstract=label))
    text = ddi_string(build_ddi(doc))
    root = ET.fromstring(text.encode("utf-8"))  # well-formed
    assert validate_ddi(text) == []
    var = next(root.iter(N + "var"))
    assert var.get("name") == xml_text(name)
    lab = var.find(N + "labl")
    if label:
        assert lab is not None and (lab.text or "") == xml_text(label)
    cat = [c for c in var.findall(N + "catgry") if c.find(N + "catValu").text == "1"][0]
    assert (cat.find(N + "labl").text or "") == xml_text(value_label)


def test_dates_booleans_categoricals_and_empty_columns(work):
    import datetime as dt

    import frictionless

    frame = pl.DataFrame(
        {
            "d": [dt.date(2020, 1, 1), dt.date(2020, 1, 2), None],
            "b": [True, False, None],
            "n": pl.Series([None, None, None], dtype=pl.Float64),
            "c": pl.Series(["x", "y", "x"], dtype=pl.Categorical),
            "t": [dt.datetime(2020, 1, 1, 3), None, dt.datetime(2021, 1, 1)],
        }
    )
    paths = document(Dataset(frame, source=str(work / "odd.parquet")), work / "odd", validate=True)
    root = ET.parse(paths["ddi"]).getroot()
    assert validate_ddi(root) == []
    assert root.find(f"{N}fileDscr/{N}fileTxt/{N}fileType").text == "Parquet"
    v = _vars(root)
    assert [s.text for s in v["n"].findall(N + "sumStat")] == ["0", "3"]  # all missing
    report = frictionless.validate(str(paths["datapackage"]))
    assert report.valid, report.flatten(["type", "note"])
    types = {
        f["name"]: f["type"] for f in json.loads(paths["datapackage"].read_text())["resources"][0]["schema"]["fields"]
    }
    assert types == {"d": "date", "b": "boolean", "n": "number", "c": "string", "t": "datetime"}


# -------------------------------------------------------------------------- summaries


def test_summaries_match_an_independent_computation():
    ds = generate_survey(n_households=200, seed=3)  # user-missing 98/99 as codes (not .dta)
    sums = {s.name: s for s in summarize_dataset(ds, weight="weight")}
    w = ds.frame["weight"].to_numpy()
    inc = ds.frame["income"].to_numpy().astype(float)
    ok = np.isfinite(inc)
    s = sums["income"]
    assert s.n_valid == ok.sum() and s.n_invalid == (~ok).sum()
    assert s.stats["mean"] == pytest.approx(inc[ok].mean())
    assert s.stats["medn"] == pytest.approx(np.median(inc[ok]))
    assert s.wstats["mean"] == pytest.approx(np.average(inc[ok], weights=w[ok]))
    dis = sums["disability"]  # 98 = don't know is user-missing
    d = ds.frame["disability"].to_numpy()
    assert dis.n_invalid == int((d == 98).sum() + ds.frame["disability"].is_null().sum())
    cat98 = [c for c in dis.categories if c.value == 98][0]
    assert cat98.missing and cat98.freq == int((d == 98).sum())
    assert sum(c.percent for c in dis.categories if not c.missing) == pytest.approx(100.0)


# -------------------------------------------------------------------------- HTML codebook


def test_codebook_has_a_section_per_variable_and_masks_small_cells(puf_docs, bundles):
    html = (puf_docs / "codebook.html").read_text(encoding="utf-8")
    ds = read(bundles["puf"] / "survey.dta")
    assert html.count('<section class="variable"') == len(ds.columns)
    for name in ds.columns:
        assert f'data-variable="{name}"' in html
    assert "&lt; 5" in html  # masked counts of the PUF (k = 5)
    assert "Small cells masked" in html
    assert "<script" not in html
    assert 'src="http' not in html and 'href="http' not in html and "@import" not in html  # loads nothing
    assert "<svg" in html  # histograms of continuous variables
    assert "seed" not in html.lower()


def test_suf_codebook_shows_every_count(bundles, work):
    doc = build_documentation(bundles["suf"])
    assert doc.mask_below is None
    html = render_codebook(doc)
    assert "&lt; 3" not in html and "Small cells masked" not in html


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`; `make browser`)")
def test_codebook_renders_in_headless_chromium(work, survey_file, study_file):
    out = work / "browser"
    paths = document(survey_file, out, outputs=("html",), study=study_file, plan=SURVEY_PLAN)
    url = paths["html"].resolve().as_uri()
    profile = work / "chromium-profile"
    profile.mkdir(exist_ok=True)
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
    png = out / "codebook.png"
    proc = subprocess.run(
        [*base, f"--screenshot={png}", "--window-size=1280,3000", url], capture_output=True, text=True, timeout=120
    )
    assert png.exists(), proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    ds = read(survey_file)
    # the browser built one section per variable
    assert dom.stdout.count('class="variable"') == len(ds.columns)
    for name in ds.columns:
        assert f'data-variable="{name}"' in dom.stdout


# -------------------------------------------------------------------------- Data Package


def test_datapackage_validates_with_frictionless(puf_docs, bundles):
    import frictionless

    report = frictionless.validate(str(puf_docs / "datapackage.json"))
    assert report.valid, report.flatten(["type", "note", "rowNumber", "fieldName"])[:5]
    dp = json.loads((puf_docs / "datapackage.json").read_text(encoding="utf-8"))
    assert dp["$schema"] == "https://datapackage.org/profiles/2.0/datapackage.json"
    fields = {f["name"]: f for f in dp["resources"][0]["schema"]["fields"]}
    ds = read(bundles["puf"] / "survey.dta")
    assert list(fields) == ds.columns
    assert {c["value"]: c["label"] for c in fields["camp"]["categories"]} == ds.codebook.meta("camp").value_labels
    assert fields["income"]["type"] == "number" and "categories" not in fields["income"]
    # Stata extended missing (don't know/refused) are empty cells, labelled
    assert "Don't know" in fields["protection_incident"]["missingValues"][0]["label"]


def test_datapackage_user_missing_codes_and_whole_floats(work):
    import frictionless

    frame = pl.DataFrame({"q": [1.0, 2.0, 98.0, None], "t": ["x", "y", "x", "y"], "z": [0.5, 1.5, 2.5, 3.5]})
    cb = Codebook()
    cb.variables["q"] = VariableMeta("q", "Q", {1.0: "Yes", 2.0: "No", 98.0: "Don't know"}, [98.0], [], "ordinal")
    cb.variables["t"] = VariableMeta("t", "T", {"x": "Ex"}, [], [], "nominal")
    ds = Dataset(frame, cb, source=str(work / "spss_like.sav"))
    doc = build_documentation(ds)
    paths = write_datapackage(doc, work / "dp")
    report = frictionless.validate(str(paths["datapackage"]))
    assert report.valid, report.flatten(["type", "note"])
    dp = json.loads(paths["datapackage"].read_text())
    q = dp["resources"][0]["schema"]["fields"][0]
    assert q["type"] == "integer" and q["categoriesOrdered"] is True
    assert q["categories"] == [{"value": 1, "label": "Yes"}, {"value": 2, "label": "No"}]
    assert {"value": "98", "label": "Don't know"} in q["missingValues"]
    assert paths["csv"].read_text().splitlines()[1].startswith("1,x,0.5")
    # the hash taken while writing is that of the file on disk (hashlib on the file)
    data = paths["csv"].read_bytes()
    assert dp["resources"][0]["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert dp["resources"][0]["bytes"] == len(data)
    resource = frictionless.Resource(
        str(paths["csv"]),
        schema=frictionless.Schema.from_descriptor(
            {
                "fields": [
                    {"name": "q", "type": "integer", "missingValues": ["", "98"]},
                    {"name": "t", "type": "string"},
                    {"name": "z", "type": "number"},
                ]
            }
        ),
    )
    rows = resource.read_rows()
    assert [r["q"] for r in rows] == [1, 2, None, None]


# -------------------------------------------------------------------------- CLI


def test_cli_document_and_errors(work, bundles, study_file, puf_docs):
    runner = CliRunner()
    out = work / "cli_docs"
    res = runner.invoke(app, ["document", str(bundles["puf"]), "--out", str(out), "--study", str(study_file)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"ddi.xml", "codebook.html", "datapackage.json", "survey.csv", MARKER}
    assert validate_ddi(out / "ddi.xml") == []
    for name in ("ddi.xml", "codebook.html", "datapackage.json", "survey.csv"):  # same input, same bytes
        assert (out / name).read_bytes() == (puf_docs / name).read_bytes(), name
    bad = work / "bad2.yaml"
    bad.write_text("variables:\n  nosuchvar: {question: x}\n", encoding="utf-8")
    res = runner.invoke(app, ["document", str(bundles["puf"]), "--out", str(work / "never"), "--study", str(bad)])
    assert res.exit_code == 2 and "nosuchvar" in res.output and "Traceback" not in res.output
    assert not (work / "never").exists()
    res = runner.invoke(app, ["document", str(bundles["puf"]), "--out", str(work / "never"), "--only", "pdf"])
    assert res.exit_code == 2 and "unknown output" in res.output


def test_plan_study_section_keeps_dates_as_written():
    """Unquoted dates in a plan's `study:` section read as the text written, as in a study file."""
    from safemicro.metadata.study import study_from_mapping
    from safemicro.plan import Plan

    plan = Plan.from_yaml("study:\n  title: T\n  collection_dates: {start: 2026-02-01, end: 2026-03-15}\n")
    study = study_from_mapping(plan.study)
    assert (study.collection_dates.start, study.collection_dates.end) == ("2026-02-01", "2026-03-15")
    with pytest.raises(SafemicroError, match=r"invalid study description: titel: unknown field"):
        study_from_mapping({"titel": "T"})
