"""Reading a DDI Codebook 2.x file back: study fields, variable and value labels, missing
codes, measure levels and question texts, to pre-fill a new release's documentation.
Read with ``defusedxml`` (no entity expansion, no external resources)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safemicro.errors import SafemicroError
from safemicro.io import Codebook, VariableMeta
from safemicro.metadata.ddi_xml import SDC_SUBJECT
from safemicro.metadata.study import Access, Country, Dates, Person, Study, VariableDoc


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
    study.authors = _persons(findall(cit, "rspStmt/AuthEnty"), "affiliation")
    study.producers = _persons(findall(cit, "prodStmt/producer"), "abbr", "affiliation", "role")
    study.funders = _persons(findall(cit, "prodStmt/fundAg"), "abbr", "role")
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
    study.data_collectors = _persons(findall(dc, "dataCollector"), "abbr", "affiliation")
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
        contact=None
        if contact is None or not _t(contact)
        else Person(name=_t(contact), affiliation=contact.get("affiliation", ""), email=contact.get("email", "")),
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


def _persons(elements: list[ET.Element], *attrs: str) -> list[Person]:
    """A :class:`Person` per element with text: the text is the name, ``attrs`` the XML attributes kept."""
    return [Person(name=_t(e), **{a: e.get(a, "") for a in attrs}) for e in elements if _t(e)]


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
