"""DDI Codebook 2.5 XML: write it from a :class:`Documentation`, validate it against the
official schema shipped in ``schemas/``, and read one back to pre-fill labels and study
fields.

Written with the standard library (``xml.etree``); every text and attribute passes
through :func:`xml_text`, which drops characters XML 1.0 cannot carry (control
characters, lone surrogates, U+FFFE/U+FFFF) and normalises line ends, so no label can
make the document invalid. Files are read with ``defusedxml`` (no entity expansion, no
external resources).

Where the SDC information goes (DDI has no dedicated element): the methods applied, in
words, in ``stdyDscr/method/notes`` (subject "Statistical disclosure control") and the
access tier in ``dataAccs``; per variable, what was done to it in ``var/notes`` with the
same subject; small cells of a public use codebook are omitted from ``catStat`` and said
so in ``catgry/txt``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from safemicro import __version__
from safemicro.atomic import write_text
from safemicro.metadata.ddi_read import ImportedDDI, read_ddi
from safemicro.metadata.ddi_xml import (
    _N,
    DDI_NS,
    SCHEMA_DIR,
    SDC_SUBJECT,
    _el,
    _maybe,
    _num,
    validate_ddi,
    xml_text,
)
from safemicro.metadata.model import TIER_NAMES, Documentation, sdc_notes_by_variable
from safemicro.metadata.study import Study, VariableDoc
from safemicro.metadata.summary import Category, VariableSummary, format_code

__all__ = [
    "DDI_NS",
    "SCHEMA_DIR",
    "build_ddi",
    "ddi_string",
    "write_ddi",
    "validate_ddi",
    "read_ddi",
    "ImportedDDI",
    "xml_text",
]


# ----------------------------------------------------------------------------- writing


def build_ddi(doc: Documentation) -> ET.Element:
    """The ``codeBook`` element (namespace ``ddi:codebook:2_5``, version 2.5)."""
    ET.register_namespace("", DDI_NS)
    study = doc.study
    root = ET.Element(_N + "codeBook", {"version": "2.5", "ID": _xml_id("DDI_" + doc.idno)})
    _doc_dscr(root, doc)
    _stdy_dscr(root, doc, study)
    _file_dscr(root, doc)
    _data_dscr(root, doc, study)
    return root


def _xml_id(text: str) -> str:
    """An xs:ID (NCName) built from ``text``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    if not cleaned or not (cleaned[0].isalpha() or cleaned[0] == "_"):
        cleaned = "_" + cleaned
    return cleaned


def _doc_dscr(root: ET.Element, doc: Documentation) -> None:
    d = _el(root, "docDscr")
    cit = _el(d, "citation")
    ts = _el(cit, "titlStmt")
    _el(ts, "titl", f"DDI Codebook for: {doc.title}")
    _el(ts, "IDNo", "DDI_" + doc.idno)
    ps = _el(cit, "prodStmt")
    for p in doc.study.producers:
        _el(ps, "producer", p.name, abbr=p.abbr, affiliation=p.affiliation, role=p.role)
    if doc.date:
        _el(ps, "prodDate", doc.date, date=doc.date)
    _el(ps, "software", "safemicro", version=__version__)


def _stdy_dscr(root: ET.Element, doc: Documentation, study: Study) -> None:
    sd = _el(root, "stdyDscr")
    cit = _el(sd, "citation")
    ts = _el(cit, "titlStmt")
    _el(ts, "titl", doc.title)
    _maybe(ts, "altTitl", study.alt_title)
    _el(ts, "IDNo", doc.idno)
    if study.authors:
        rsp = _el(cit, "rspStmt")
        for a in study.authors:
            _el(rsp, "AuthEnty", a.name, affiliation=a.affiliation)
    if study.producers or study.copyright or study.production_date or study.funders:
        ps = _el(cit, "prodStmt")
        for p in study.producers:
            _el(ps, "producer", p.name, abbr=p.abbr, affiliation=p.affiliation, role=p.role)
        _maybe(ps, "copyright", study.copyright)
        if study.production_date:
            _el(ps, "prodDate", study.production_date, date=study.production_date)
        for f in study.funders:
            _el(ps, "fundAg", f.name, abbr=f.abbr, role=f.role)
    if doc.version:
        vs = _el(cit, "verStmt")
        _el(vs, "version", doc.version)

    info = _el(sd, "stdyInfo")
    if study.keywords or study.topics:
        subj = _el(info, "subject")
        for k in study.keywords:
            _el(subj, "keyword", k)
        for t in study.topics:
            _el(subj, "topcClas", t)
    _maybe(info, "abstract", study.abstract)
    sumd = _el(info, "sumDscr")
    for tag, dates in (("timePrd", study.time_period), ("collDate", study.collection_dates)):
        if dates.start and dates.end and dates.start != dates.end:
            _el(sumd, tag, dates.start, date=dates.start, event="start")
            _el(sumd, tag, dates.end, date=dates.end, event="end")
        elif dates.start or dates.end:
            one = dates.start or dates.end
            _el(sumd, tag, one, date=one, event="single")
    for c in study.countries:
        _el(sumd, "nation", c.name, abbr=c.code)
    _maybe(sumd, "geogCover", study.geographic_coverage)
    _maybe(sumd, "geogUnit", study.geographic_unit)
    _maybe(sumd, "anlyUnit", study.analysis_unit or doc.unit)
    _maybe(sumd, "universe", study.universe)
    _maybe(sumd, "dataKind", study.data_kind)

    method = _el(sd, "method")
    dc = _el(method, "dataColl")
    for p in study.data_collectors:
        _el(dc, "dataCollector", p.name, abbr=p.abbr, affiliation=p.affiliation)
    _maybe(dc, "sampProc", study.sampling or doc.sampling)
    _maybe(dc, "collMode", study.collection_mode)
    _maybe(dc, "resInstru", study.research_instrument)
    weighting = study.weighting or (f"Use the weight variable {doc.weight}." if doc.weight else "")
    _maybe(dc, "weight", weighting)
    _maybe(dc, "cleanOps", study.cleaning)
    for text in _sdc_study_notes(doc):
        _el(method, "notes", text, subject=SDC_SUBJECT)
    if study.response_rate or study.sampling_error:
        anly = _el(method, "anlyInfo")
        _maybe(anly, "respRate", study.response_rate)
        _maybe(anly, "EstSmpErr", study.sampling_error)

    acc = _el(sd, "dataAccs")
    avail = _el(acc, "setAvail")
    _maybe(avail, "accsPlac", study.access.location)
    tier_name = TIER_NAMES.get(doc.tier or "", "")
    _maybe(avail, "avlStatus", tier_name)
    use = _el(acc, "useStmt")
    _maybe(use, "confDec", study.access.confidentiality or _default_confidentiality(doc.tier))
    c = study.access.contact
    if c is not None:
        _el(use, "contact", c.name, affiliation=c.affiliation, email=c.email)
    _maybe(use, "citReq", study.access.citation)
    _maybe(use, "conditions", study.access.conditions or _default_conditions(doc.tier))
    _maybe(use, "disclaimer", study.access.disclaimer)


def _default_confidentiality(tier: str | None) -> str:
    if tier is None:
        return ""
    return (
        "The file was anonymized with statistical disclosure control methods before release "
        "(see the method notes); direct identifiers were removed."
    )


def _default_conditions(tier: str | None) -> str:
    return {
        "puf": "Public use file: available to anyone who accepts the terms of use; no attempt "
        "may be made to identify any person, household or organisation.",
        "suf": "Licensed file (scientific use): available to registered researchers of a bona "
        "fide institution under a signed data access agreement.",
        "enclave": "Available only in a data enclave (secure access) with output checking.",
    }.get(tier or "", "")


def _sdc_study_notes(doc: Documentation) -> list[str]:
    """Study-level SDC notes: the methods in words and the residual risk (public numbers)."""
    sdc = doc.sdc
    if not sdc:
        return []
    out = []
    tier = TIER_NAMES.get(sdc.get("tier") or doc.tier or "", "")
    head = f"{tier}: " if tier else ""
    removed = sdc.get("removed_variables") or []
    if removed:
        out.append(f"{head}variables removed before release: {', '.join(removed)}.")
    for step in sdc.get("steps", []):
        if step.get("description"):
            out.append(f"Step {step.get('index')} ({step.get('name')}): {step['description']}")
    risk = sdc.get("risk_after") or {}
    ka = risk.get("k_anonymity") or {}
    gr = risk.get("global_risk") or {}
    keys = risk.get("keys") or []
    if keys:
        parts = [f"Key variables assumed known to an intruder: {', '.join(keys)}."]
        viol = ka.get("violations") or {}
        if viol:
            parts.append(
                "Records in key combinations shared by fewer than k records after anonymization: "
                + ", ".join(f"k={k}: {v}" for k, v in viol.items())
                + "."
            )
        if gr.get("percent") is not None:
            parts.append(f"Estimated global re-identification risk: {gr['percent']:.3f} %.")
        out.append(" ".join(parts))
    for w in sdc.get("warnings") or []:
        out.append(f"Note for analysis: {w}")
    if doc.mask_below:
        out.append(f"Category counts below {doc.mask_below} are not shown in this documentation (small cells masked).")
    return out


def _file_dscr(root: ET.Element, doc: Documentation) -> None:
    f = doc.file
    fd = _el(root, "fileDscr", ID="F1", URI=f.name)
    ft = _el(fd, "fileTxt")
    _el(ft, "fileName", f.name)
    if f.sha256:
        fp = _el(ft, "dataFingerprint", type="dataFile")
        _el(fp, "digitalFingerprintValue", f.sha256)
        _el(fp, "algorithmSpecification", "SHA-256")
    _maybe(ft, "fileCont", f.label)
    dim = _el(ft, "dimensns")
    _el(dim, "caseQnty", f.n_records)
    _el(dim, "varQnty", f.n_variables)
    _el(ft, "fileType", _FILE_TYPES.get(f.format, f.format.lstrip(".").upper() or "data"))
    if doc.tier:
        _el(ft, "ProcStat", f"{TIER_NAMES.get(doc.tier, doc.tier)}, anonymized with safemicro {__version__}.")
    _el(
        ft,
        "dataMsng",
        "System missing values are empty; user-missing codes are listed per variable as "
        'categories with missing="Y" and in invalrng.',
    )


_FILE_TYPES = {
    ".dta": "Stata",
    ".sav": "SPSS",
    ".zsav": "SPSS (compressed)",
    ".csv": "CSV",
    ".csv.gz": "CSV (gzip)",
    ".parquet": "Parquet",
    ".sas7bdat": "SAS",
}


def _data_dscr(root: ET.Element, doc: Documentation, study: Study) -> None:
    dd = _el(root, "dataDscr")
    ids = {s.name: f"V{i + 1}" for i, s in enumerate(doc.summaries)}
    wid = ids.get(doc.weight) if doc.weight else None
    per_var_sdc = sdc_notes_by_variable(doc.sdc)
    for s in doc.summaries:
        _var(dd, s, ids[s.name], wid, study.variables.get(s.name), per_var_sdc.get(s.name, []), doc.mask_below)


_NATURE = {"nominal": "nominal", "ordinal": "ordinal"}


def _var(
    dd: ET.Element,
    s: VariableSummary,
    vid: str,
    wid: str | None,
    vdoc: VariableDoc | None,
    sdc_notes: list[str],
    mask_below: int | None,
) -> None:
    attrs: dict[str, Any] = {"ID": vid, "name": s.name, "files": "F1", "intrvl": "discrete" if s.discrete else "contin"}
    if s.is_weight:
        attrs["wgt"] = "wgt"
    elif wid:
        attrs["wgt-var"] = wid
    if s.decimals is not None:
        attrs["dcml"] = str(s.decimals)
    if s.measure in _NATURE:
        attrs["nature"] = _NATURE[s.measure]
    attrs["representationType"] = "numeric" if s.kind == "numeric" else "text"
    if s.discrete and (any(c.label for c in s.categories)):
        attrs["representationType"] = "code"
    v = ET.SubElement(dd, _N + "var", {k: xml_text(val) for k, val in attrs.items()})
    label = (vdoc.label if vdoc and vdoc.label else None) or s.label
    if label:  # written as it is, even if only blanks
        _el(v, "labl", label)
    if vdoc and (vdoc.question or vdoc.pre_question or vdoc.instructions):
        q = _el(v, "qstn")
        _maybe(q, "preQTxt", vdoc.pre_question)
        _maybe(q, "qstnLit", vdoc.question)
        _maybe(q, "ivuInstr", vdoc.instructions)
    if s.missing_codes or s.missing_ranges:
        inv = _el(v, "invalrng")
        for code in s.missing_codes:
            _el(inv, "item", VALUE=format_code(code))
        for lo, hi in s.missing_ranges:
            _el(inv, "range", min=format_code(lo), max=format_code(hi))
    if vdoc:
        _maybe(v, "universe", vdoc.universe)
    # statistics
    _el(v, "sumStat", s.n_valid, type="vald")
    _el(v, "sumStat", s.n_invalid, type="invd")
    if wid and s.w_valid is not None and not s.is_weight:
        _el(v, "sumStat", _num(s.w_valid), type="vald", wgtd="wgtd", **{"wgt-var": wid})
        _el(v, "sumStat", _num(s.w_invalid), type="invd", wgtd="wgtd", **{"wgt-var": wid})
    for key in ("min", "max", "mean", "medn", "stdev"):
        if key in s.stats:
            _el(v, "sumStat", _num(s.stats[key]), type=key)
    for key in ("mean", "stdev"):
        if key in s.wstats and wid:
            _el(v, "sumStat", _num(s.wstats[key]), type=key, wgtd="wgtd", **{"wgt-var": wid})
    for c in s.categories:
        _catgry(v, c, wid, mask_below)
    _maybe(v, "concept", vdoc.concept if vdoc else None)
    vf = _el(v, "varFormat", type="numeric" if s.kind == "numeric" else "character")
    if s.format:
        vf.set("formatname", xml_text(s.format))
    for note in s.notes:
        _el(v, "notes", note)
    for note in sdc_notes:
        _el(v, "notes", note, subject=SDC_SUBJECT)
    if vdoc and vdoc.notes:
        _el(v, "notes", vdoc.notes)


def _catgry(v: ET.Element, c: Category, wid: str | None, mask_below: int | None) -> None:
    cat = _el(v, "catgry", missing="Y" if c.missing else None)
    _el(cat, "catValu", c.code_text)
    if c.label:
        _el(cat, "labl", c.label)
    if c.masked:
        _el(cat, "txt", f"Fewer than {mask_below} records: count not shown (small cell).")
        return
    _el(cat, "catStat", c.freq, type="freq")
    if wid and c.wfreq is not None:
        _el(cat, "catStat", _num(c.wfreq), type="freq", wgtd="wgtd", **{"wgt-var": wid})
    if c.percent is not None:
        attrs = {"wgtd": "wgtd", "wgt-var": wid} if wid else {}
        _el(cat, "catStat", _num(round(c.percent, 4)), type="percent", **attrs)


def ddi_string(root: ET.Element) -> str:
    """The document as UTF-8 XML text with a declaration, indented."""
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def write_ddi(doc: Documentation, path: str | os.PathLike[str]) -> Path:
    """Write the DDI XML of ``doc`` to ``path`` atomically."""
    write_text(path, ddi_string(build_ddi(doc)))
    return Path(path)
