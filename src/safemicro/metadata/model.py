"""What every metadata output is built from: the released data, its summaries, the study
description and the public part of the release report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safemicro.io import Dataset
from safemicro.metadata.study import Study
from safemicro.metadata.summary import VariableSummary

__all__ = ["FileInfo", "Documentation", "TIER_NAMES", "sdc_notes_by_variable"]

TIER_NAMES = {
    "puf": "Public use file",
    "suf": "Scientific use file (licensed)",
    "enclave": "Data enclave file",
}


@dataclass
class FileInfo:
    """The documented data file."""

    name: str
    format: str  # ".dta", ".sav", ".csv", ...
    sha256: str | None
    n_records: int
    n_variables: int
    label: str | None = None


@dataclass
class Documentation:
    """Everything the DDI, the HTML codebook and the Data Package say.

    ``sdc`` is the *external* view of a release bundle's report
    (:func:`safemicro.release.external_view`): methods in words, counts, residual risk —
    never seeds or perturbation parameters.
    """

    dataset: Dataset
    study: Study
    summaries: list[VariableSummary]
    file: FileInfo
    idno: str
    title: str
    tier: str | None = None
    weight: str | None = None
    sdc: dict[str, Any] | None = None
    mask_below: int | None = None
    unit: str = ""
    sampling: str = ""
    date: str = ""
    version: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self, name: str) -> VariableSummary:
        for s in self.summaries:
            if s.name == name:
                return s
        raise KeyError(name)


def sdc_notes_by_variable(sdc: dict[str, Any] | None) -> dict[str, list[str]]:
    """{variable: ["what was done to it", ...]} from the external report's steps."""
    out: dict[str, list[str]] = {}
    if not sdc:
        return out
    for step in sdc.get("steps", []):
        changed = step.get("changed") or {}
        suppressed = step.get("suppressed") or {}
        for var in dict.fromkeys([*changed, *suppressed]):
            n_changed = int(changed.get(var) or 0)
            n_suppr = int(suppressed.get(var) or 0)
            if not n_changed and not n_suppr:
                continue
            counts = f"{n_changed} values changed" if n_changed != n_suppr else f"{n_suppr} values suppressed"
            if n_suppr and n_changed != n_suppr:
                counts += f", {n_suppr} suppressed"
            out.setdefault(var, []).append(
                f"{step.get('name')}: {step.get('description', '').strip()} ({counts} in this variable)"
            )
    return out
