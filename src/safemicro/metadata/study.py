"""The study description: what DDI's ``stdyDscr`` says, written by the curator as YAML.

The release plan (:mod:`safemicro.plan`) forbids unknown sections, so the study
description lives in its own file (``--study study.yaml``); a top-level ``study:`` key is
accepted, so the same text can later move into the plan unchanged::

    study:
      idno: UNHCR_XYZ_2026_SUF_v01
      title: Example displacement survey 2026
      authors: [{name: UNHCR, affiliation: Statistics and Demographics Section}]
      abstract: ...
      countries: [{name: Uganda, code: UGA}]
      collection_dates: {start: 2026-02-01, end: 2026-03-15}
      sampling: stratified two-stage cluster sample ...
      variables:
        age: {question: "How old was [NAME] at the last birthday?", universe: all members}

Every field is optional; what is missing is filled from the plan and the data
(title, unit of analysis, sampling) or left out of the DDI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from safemicro.errors import SafemicroError
from safemicro.plan import column_hint, parse_yaml, read_text_file, validation_error

__all__ = ["Study", "Person", "Dates", "Access", "VariableDoc", "load_study", "study_from_mapping"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Person(_Strict):
    """An author, producer, funder or contact."""

    name: str
    affiliation: str = ""
    abbr: str = ""
    role: str = ""
    email: str = ""


class Country(_Strict):
    name: str
    code: str = Field("", description="ISO 3166 alpha-3 code")


class Dates(_Strict):
    start: str = ""
    end: str = ""


class Access(_Strict):
    """Terms users accept (DDI ``dataAccs/useStmt``); defaults come from the release tier."""

    conditions: str = ""
    confidentiality: str = ""
    citation: str = ""
    disclaimer: str = ""
    contact: Person | None = None
    location: str = Field("", description="where the data are held (e.g. the library URL)")


class VariableDoc(_Strict):
    """What the questionnaire says about one variable (DDI ``var`` children)."""

    label: str = Field("", description="replaces the variable label of the file")
    question: str = ""
    pre_question: str = ""
    instructions: str = Field("", description="interviewer instructions")
    universe: str = ""
    concept: str = ""
    notes: str = ""


class Study(_Strict):
    """Study-level metadata. Text fields are plain text (no markup)."""

    idno: str = ""
    title: str = ""
    alt_title: str = ""
    authors: list[Person] = Field(default_factory=list)
    producers: list[Person] = Field(default_factory=list)
    funders: list[Person] = Field(default_factory=list)
    copyright: str = ""
    production_date: str = ""
    version: str = ""
    abstract: str = ""
    keywords: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    countries: list[Country] = Field(default_factory=list)
    geographic_coverage: str = ""
    geographic_unit: str = ""
    analysis_unit: str = ""
    universe: str = ""
    data_kind: str = ""
    time_period: Dates = Field(default_factory=Dates)
    collection_dates: Dates = Field(default_factory=Dates)
    data_collectors: list[Person] = Field(default_factory=list)
    sampling: str = ""
    collection_mode: str = ""
    research_instrument: str = ""
    weighting: str = ""
    cleaning: str = ""
    response_rate: str = ""
    sampling_error: str = ""
    access: Access = Field(default_factory=Access)
    repository: str = Field("", description="NADA collection (repositoryid)")
    variables: dict[str, VariableDoc] = Field(default_factory=dict)

    def check_variables(self, columns: list[str], source: str | None = None) -> None:
        """Raise a :class:`SafemicroError` for a documented variable the data does not have."""
        for name in self.variables:
            if name not in columns:
                raise SafemicroError(
                    f"study variables: {name!r} is not a variable of the released data{column_hint(name, columns)}",
                    file=source,
                    column=name,
                )

    def safe_idno(self, fallback: str) -> str:
        """The study ID as NADA accepts it in a URL path (letters, digits, - _ .)."""
        raw = self.idno or fallback
        cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("_.-")
        return cleaned or "study"


def study_from_mapping(data: Any, source: str | None = None) -> Study:
    """Validate a parsed YAML mapping (with or without a top-level ``study:`` key)."""
    if data is None:
        data = {}
    # YAML turns 2026-02-01 into a date (in a study file and in a plan's `study:` section
    # alike): keep dates as the text the curator wrote
    data = _dates_to_text(data)
    if isinstance(data, dict) and set(data) == {"study"}:
        data = data["study"] or {}
    if not isinstance(data, dict):
        raise SafemicroError(
            f"a study description must be a mapping of fields (title, idno, ...), got {type(data).__name__}",
            file=source,
        )
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, "study description", source) from None


def load_study(path: str | os.PathLike[str]) -> Study:
    """Read and validate a study description YAML file."""
    p = Path(path)
    text = read_text_file(p, "study description not found", "cannot read the study description")
    return study_from_mapping(parse_yaml(text, str(p)), source=str(p))


def _dates_to_text(obj: Any) -> Any:
    import datetime as _dt

    if isinstance(obj, dict):
        return {k: _dates_to_text(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_dates_to_text(v) for v in obj]
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    return obj
