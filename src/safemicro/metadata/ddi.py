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
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from safemicro import __version__
from safemicro.atomic import write_text
from safemicro.errors import SafemicroError
from safemicro.io import Codebook, VariableMeta
from safemicro.metadata.model import TIER_NAMES, Documentation, sdc_notes_by_variable
from safemicro.metadata.study import Access, Country, Dates, Person, Study, VariableDoc
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

DDI_NS = "ddi:codebook:2_5"
SCHEMA_DIR = Path(__file__).with_name("schemas")
SDC_SUBJECT = "Statistical disclosure control"
_N = f"{{{DDI_NS}}}"

# XML 1.0 Char production, complemented
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: Any) -> str:
    """``value`` as text XML 1.0 can hold: invalid characters become U+FFFD and CR/CRLF
    become LF (what any XML parser would turn them into anyway)."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVALID_XML.sub("\ufffd", text)


def _el(parent: ET.Element, tag: str, text: Any = None, **attrs: Any) -> ET.Element:
    e = ET.SubElement(parent, _N + tag, {k.replace("_", "-") if k in ("wgt_var",) else k: xml_text(v) for k, v in attrs.items() if v not in (None, "")})
    if text is not None:
        e.text = xml_text(text)
    return e


def _maybe(parent: ET.Element, tag: str, text: Any, **attrs: Any) -> ET.Element | None:
    if text in (None, "") or (isinstance(text, str) and not text.strip()):
        return None
    return _el(parent, tag, text, **attrs)


def _num(v: float | int | None) -> str:
    """A number as DDI text: whole numbers without decimals, others to 6 significant decimals."""
    if v is None:
        return ""
    f = float(v)
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.6f}".rstrip("0").rstrip(".")


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
        out.append(
            f"Category counts below {doc.mask_below} are not shown in this documentation "
            "(small cells masked)."
        )
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
        "categories with missing=\"Y\" and in invalrng.",
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


# ----------------------------------------------------------------------------- validation


@lru_cache(maxsize=1)
def _schema():
    try:
        import xmlschema
    except ImportError:  # pragma: no cover - xmlschema is in the test extra
        raise SafemicroError(
            "validating DDI needs the xmlschema package (pip install xmlschema)"
        ) from None
    return xmlschema.XMLSchema(str(SCHEMA_DIR / "codebook.xsd"))


def validate_ddi(source: str | os.PathLike[str] | ET.Element) -> list[str]:
    """Problems found by validating against the DDI Codebook 2.5 XSD (empty list: valid).

    ``source`` is a file path, XML text or an element. Offline: the schema and everything
    it imports come from :data:`SCHEMA_DIR`.
    """
    schema = _schema()
    if isinstance(source, ET.Element):
        source = ET.tostring(source, encoding="unicode")
    elif isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("<")):
        source = str(source)
    return [f"{e.path}: {e.reason}" if getattr(e, "path", None) else str(e.reason or e) for e in schema.iter_errors(source)]


# ----------------------------------------------------------------------------- reading


@dataclass
class ImportedDDI:
    """What a DDI file says, in safemicro's terms."""

    study: Study
    codebook: Codebook
    file_name: str | None = None
    n_records: int | None = None
    sdc_notes: list[str] = field(default_factory=list)


def _t(e: ET.Element | None) -> str:
    if e is None:
        return ""
    return "".join(e.itertext()).strip()


def _code_value(text: str, numeric: bool) -> Any:
    """A catValu as the codebook keeps it: numbers for numeric variables, 'a' for '.a'."""
    text = text.strip()
    if numeric:
        if len(text) == 2 and text[0] == "." and "a" <= text[1] <= "z":
            return text[1]
        try:
            f = float(text)
        except ValueError:
            return text
        return int(f) if f == int(f) else f
    return text


def read_ddi(path: str | os.PathLike[str]) -> ImportedDDI:
    """Read a DDI Codebook 2.5 (or 2.x without namespace) file: study fields, variable
    labels, value labels, missing codes, measure levels and question texts."""
    from defusedxml import ElementTree as SafeET
    from defusedxml.common import DefusedXmlException

    p = Path(path)
    try:
        tree = SafeET.parse(str(p))
    except FileNotFoundError:
        raise SafemicroError("DDI file not found", file=str(p)) from None
    except DefusedXmlException as exc:
        raise SafemicroError(f"DDI file refused (unsafe XML: {type(exc).__name__})", file=str(p)) from None
    except ET.ParseError as exc:
        raise SafemicroError(f"not well-formed XML: {exc}", file=str(p)) from None
    root = tree.getroot()
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if root.tag.split("}")[-1] != "codeBook":
        raise SafemicroError(f"not a DDI Codebook document (root element {root.tag!r})", file=str(p))
    q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)

    def find(e: ET.Element | None, pth: str) -> ET.Element | None:
        if e is None:
            return None
        return e.find("/".join(q(x) for x in pth.split("/")))

    def findall(e: ET.Element | None, pth: str) -> list[ET.Element]:
        if e is None:
            return []
        return e.findall("/".join(q(x) for x in pth.split("/")))

    sd = find(root, "stdyDscr")
    cit = find(sd, "citation")
    study = Study()
    study.title = _t(find(cit, "titlStmt/titl"))
    study.alt_title = _t(find(cit, "titlStmt/altTitl"))
    study.idno = _t(find(cit, "titlStmt/IDNo"))
    study.authors = [Person(name=_t(a), affiliation=a.get("affiliation", "")) for a in findall(cit, "rspStmt/AuthEnty") if _t(a)]
    study.producers = [
        Person(name=_t(a), abbr=a.get("abbr", ""), affiliation=a.get("affiliation", ""), role=a.get("role", ""))
        for a in findall(cit, "prodStmt/producer")
        if _t(a)
    ]
    study.funders = [Person(name=_t(a), abbr=a.get("abbr", ""), role=a.get("role", "")) for a in findall(cit, "prodStmt/fundAg") if _t(a)]
    study.copyright = _t(find(cit, "prodStmt/copyright"))
    study.production_date = _t(find(cit, "prodStmt/prodDate"))
    study.version = _t(find(cit, "verStmt/version"))
    info = find(sd, "stdyInfo")
    study.keywords = [_t(k) for k in findall(info, "subject/keyword") if _t(k)]
    study.topics = [_t(k) for k in findall(info, "subject/topcClas") if _t(k)]
    study.abstract = _t(find(info, "abstract"))
    sumd = find(info, "sumDscr")
    study.time_period = _dates(findall(sumd, "timePrd"))
    study.collection_dates = _dates(findall(sumd, "collDate"))
    study.countries = [Country(name=_t(n), code=n.get("abbr", "")) for n in findall(sumd, "nation") if _t(n)]
    study.geographic_coverage = _t(find(sumd, "geogCover"))
    study.geographic_unit = _t(find(sumd, "geogUnit"))
    study.analysis_unit = _t(find(sumd, "anlyUnit"))
    study.universe = _t(find(sumd, "universe"))
    study.data_kind = _t(find(sumd, "dataKind"))
    dc = find(sd, "method/dataColl")
    study.data_collectors = [Person(name=_t(a), abbr=a.get("abbr", ""), affiliation=a.get("affiliation", "")) for a in findall(dc, "dataCollector") if _t(a)]
    study.sampling = _t(find(dc, "sampProc"))
    study.collection_mode = _t(find(dc, "collMode"))
    study.research_instrument = _t(find(dc, "resInstru"))
    study.weighting = _t(find(dc, "weight"))
    study.cleaning = _t(find(dc, "cleanOps"))
    study.response_rate = _t(find(sd, "method/anlyInfo/respRate"))
    study.sampling_error = _t(find(sd, "method/anlyInfo/EstSmpErr"))
    sdc_notes = [_t(n) for n in findall(sd, "method/notes") if n.get("subject") == SDC_SUBJECT]
    use = find(sd, "dataAccs/useStmt")
    contact = find(use, "contact")
    study.access = Access(
        conditions=_t(find(use, "conditions")),
        confidentiality=_t(find(use, "confDec")),
        citation=_t(find(use, "citReq")),
        disclaimer=_t(find(use, "disclaimer")),
        contact=None if contact is None or not _t(contact) else Person(name=_t(contact), affiliation=contact.get("affiliation", ""), email=contact.get("email", "")),
        location=_t(find(sd, "dataAccs/setAvail/accsPlac")),
    )

    cb = Codebook()
    fd = find(root, "fileDscr/fileTxt")
    cb.file_label = _t(find(fd, "fileCont")) or None
    n_rec = _t(find(fd, "dimensns/caseQnty"))
    variables: dict[str, VariableDoc] = {}
    for var in findall(root, "dataDscr/var"):
        name = var.get("name")
        if not name:
            continue
        fmt = find(var, "varFormat")
        numeric = fmt is None or fmt.get("type", "numeric") == "numeric"
        meta = VariableMeta(name=name)
        labl = find(var, "labl")
        meta.label = ("".join(labl.itertext()) or None) if labl is not None else None
        nature = var.get("nature")
        if nature in ("nominal", "ordinal"):
            meta.measure = nature
        elif var.get("intrvl") == "contin":
            meta.measure = "scale"
        if fmt is not None and fmt.get("formatname"):
            meta.format = fmt.get("formatname")
        for item in findall(var, "invalrng/item"):
            if item.get("VALUE") is not None:
                meta.missing_values.append(_code_value(item.get("VALUE"), numeric))
        for rng in findall(var, "invalrng/range"):
            if rng.get("min") is not None and rng.get("max") is not None:
                meta.missing_ranges.append((_code_value(rng.get("min"), numeric), _code_value(rng.get("max"), numeric)))
        for cat in findall(var, "catgry"):
            value = _t(find(cat, "catValu"))
            label = find(cat, "labl")
            if value and label is not None:
                meta.value_labels[_code_value(value, numeric)] = "".join(label.itertext())
        cb.variables[name] = meta
        qstn = find(var, "qstn")
        vd = VariableDoc(
            question=_t(find(qstn, "qstnLit")),
            pre_question=_t(find(qstn, "preQTxt")),
            instructions=_t(find(qstn, "ivuInstr")),
            universe=_t(find(var, "universe")),
            concept=_t(find(var, "concept")),
        )
        if vd != VariableDoc():
            variables[name] = vd
    study.variables = variables
    return ImportedDDI(
        study=study,
        codebook=cb,
        file_name=_t(find(fd, "fileName")) or None,
        n_records=int(n_rec) if n_rec.isdigit() else None,
        sdc_notes=sdc_notes,
    )


def _dates(elements: list[ET.Element]) -> Dates:
    d = Dates()
    for e in elements:
        value = e.get("date") or _t(e)
        event = e.get("event", "single")
        if event == "end":
            d.end = value
        else:
            d.start = value
            if event == "single":
                d.end = d.end or ""
    return d
