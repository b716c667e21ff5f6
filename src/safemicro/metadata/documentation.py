"""Document a dataset or a release bundle: DDI Codebook 2.5, HTML codebook, Data Package.

``document(source, out_dir, study=..., plan=...)`` is what ``safemicro document`` runs::

    out_dir/
      ddi.xml              DDI Codebook 2.5 (validated against the shipped XSD when
                           xmlschema is installed)
      codebook.html        one self-contained page, a section per variable
      <stem>.csv           the data as CSV (whole-number columns written as integers)
      datapackage.json     Frictionless Data Package v2 describing the CSV

For a release bundle the tier, the weight, the SDC notes (external view only — never
seeds) and the small-cell threshold (the plan's k for a public use file) come from the
bundle's report; the data file's checksum is the bundle's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from safemicro.errors import SafemicroError
from safemicro.io import Dataset, read
from safemicro.metadata.model import Documentation, FileInfo
from safemicro.metadata.study import Study, load_study
from safemicro.metadata.summary import DEFAULT_MAX_CATEGORIES, summarize_dataset

__all__ = ["build_documentation", "document", "prefill"]


def _suffix(path: Path) -> str:
    return ".csv.gz" if path.name.endswith(".csv.gz") else path.suffix.lower()


def build_documentation(
    source: str | os.PathLike[str] | Dataset,
    *,
    study: Study | str | os.PathLike[str] | None = None,
    plan: Any = None,
    weight: str | None = None,
    tier: str | None = None,
    mask_below: int | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    prefill_ddi: str | os.PathLike[str] | None = None,
) -> Documentation:
    """Collect everything the outputs say. ``source`` is a data file, a release bundle
    folder or a :class:`Dataset`; ``plan`` (a Plan or a path) gives the weight, title and
    k when ``source`` is not a bundle (the tier only comes from a bundle or ``tier``). For a public use file the small-cell
    threshold defaults to the plan's k (``mask_below=0`` turns masking off)."""
    from safemicro.plan import Plan, load_plan

    if plan is not None and not isinstance(plan, Plan):
        plan = load_plan(plan)
    if study is None:
        # the study description may live in the plan (`study:` section)
        embedded = getattr(plan, "study", None) if plan is not None else None
        if embedded:
            from safemicro.metadata.study import study_from_mapping

            embedded = embedded.model_dump() if hasattr(embedded, "model_dump") else embedded
            study_obj = study_from_mapping(embedded, source=None)
        else:
            study_obj = Study()
    elif isinstance(study, Study):
        study_obj = study
    else:
        study_obj = load_study(study)
    study_src = None if study is None or isinstance(study, Study) else str(study)

    sdc: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    if isinstance(source, Dataset):
        ds = source
        name = Path(ds.source).name if ds.source else "data.csv"
        info = FileInfo(name=name, format=_suffix(Path(name)), sha256=None, n_records=ds.n, n_variables=len(ds.columns))
    else:
        path = Path(source)
        if path.is_dir():
            from safemicro.release import external_view, open_bundle

            bundle = open_bundle(path)
            ds, origin, report = bundle.dataset, bundle.origin, bundle.report
            sdc = external_view(report)
            info = FileInfo(
                name=origin["file"],
                format=origin["format"],
                sha256=origin["sha256"],
                n_records=ds.n,
                n_variables=len(ds.columns),
            )
        else:
            if not path.exists():
                raise SafemicroError("input file not found", file=str(path))
            ds = read(path)
            from safemicro.release import file_sha256

            info = FileInfo(
                name=path.name,
                format=_suffix(path),
                sha256=file_sha256(path),
                n_records=ds.n,
                n_variables=len(ds.columns),
            )
    info.label = ds.codebook.file_label

    if prefill_ddi is not None:
        ds, study_obj = prefill(ds, study_obj, prefill_ddi)
    study_obj.check_variables(ds.columns, study_src)

    # tier, weight, k, title: explicit argument > bundle report > plan > nothing
    rel_roles = (report or {}).get("release", {}).get("roles", {}) if report else {}
    if tier is None and report:
        # a plan's tier is that of the release it makes, not of the file given here
        tier = report.get("scenario", {}).get("tier")
    if weight is None:
        weight = rel_roles.get("weight") or (plan.roles.weight if plan is not None else None)
        if weight is not None and weight not in ds.columns:
            weight = None
    elif weight not in ds.columns:
        raise SafemicroError("--weight: not a column of the data", file=ds.source, column=weight)
    k = None
    if report:
        k = (report.get("targets") or {}).get("k")
    elif plan is not None:
        k = plan.targets.k
    if mask_below is None:
        mask_below = k if tier == "puf" and k and k > 1 else None
    elif mask_below <= 1:
        mask_below = None

    release_info = (report or {}).get("release_info") or (plan.release.model_dump() if plan is not None else {})
    stem = re.sub(r"\.(csv\.gz|[A-Za-z0-9]+)$", "", info.name)
    title = study_obj.title or release_info.get("title") or ds.codebook.file_label or stem
    idno = study_obj.safe_idno(stem)
    summaries = summarize_dataset(ds, weight=weight, max_categories=max_categories, mask_below=mask_below)
    return Documentation(
        dataset=ds,
        study=study_obj,
        summaries=summaries,
        file=info,
        idno=idno,
        title=title,
        tier=tier,
        weight=weight,
        sdc=sdc,
        mask_below=mask_below,
        unit=release_info.get("unit") or "",
        sampling=release_info.get("sampling") or "",
        date=study_obj.production_date or release_info.get("date") or "",
        version=study_obj.version,
    )


def prefill(ds: Dataset, study: Study, ddi_path: str | os.PathLike[str]) -> tuple[Dataset, Study]:
    """Fill what the data and the study description lack from an existing DDI file:
    variable labels, value labels, missing codes, measure levels (only for variables the
    data has and only where empty) and empty study fields (the study file wins)."""
    from safemicro.metadata.ddi import read_ddi

    imported = read_ddi(ddi_path)
    ds = ds.with_frame(ds.frame)
    for name, src in imported.codebook.variables.items():
        if name not in ds.columns:
            continue
        meta = ds.codebook.meta(name)
        if not meta.label and src.label:
            meta.label = src.label
        if not meta.value_labels and src.value_labels:
            meta.value_labels = dict(src.value_labels)
        if not meta.missing_values and not meta.missing_ranges:
            meta.missing_values = list(src.missing_values)
            meta.missing_ranges = list(src.missing_ranges)
        if meta.measure == "unknown" and src.measure != "unknown":
            meta.measure = src.measure
        if not meta.format and src.format:
            meta.format = src.format
    if not ds.codebook.file_label and imported.codebook.file_label:
        ds.codebook.file_label = imported.codebook.file_label
    merged = imported.study.model_dump()
    mine = study.model_dump(exclude_defaults=True)
    variables = {k: v for k, v in merged.pop("variables").items() if k in ds.columns}
    variables.update(mine.pop("variables", {}))
    merged.update(mine)
    merged["variables"] = variables
    return ds, Study.model_validate(merged)


def document(
    source: str | os.PathLike[str] | Dataset,
    out_dir: str | os.PathLike[str],
    *,
    outputs: tuple[str, ...] = ("ddi", "html", "datapackage"),
    validate: bool | None = None,
    **kwargs: Any,
) -> dict[str, Path]:
    """Write the documentation of ``source`` into the folder ``out_dir``; returns {output: path}.

    All files or none: they are written into a staging folder beside ``out_dir`` that
    replaces it only when every file is complete, so a failure leaves no partial set (and
    an earlier documentation folder stays as it was). ``out_dir`` must be new, empty or a
    folder safemicro wrote (checked before any work); it then holds exactly these files.
    ``validate``: check the DDI against the XSD (default: when xmlschema is installed);
    an invalid document is an error and nothing is written.
    """
    from safemicro.atomic import atomic_directory
    from safemicro.outputs import check_folder

    out = Path(out_dir)
    inputs = [kwargs.get(k) for k in ("study", "plan", "prefill_ddi")]
    check_folder(out, overwrite=True, inputs=[None if isinstance(source, Dataset) else source, *inputs])
    doc = build_documentation(source, **kwargs)
    xml = None
    if "ddi" in outputs:
        from safemicro.metadata.ddi import build_ddi, ddi_string, validate_ddi

        xml = ddi_string(build_ddi(doc))
        if validate is None:
            try:
                import xmlschema  # noqa: F401

                validate = True
            except ImportError:
                validate = False
        if validate:
            problems = validate_ddi(xml)
            if problems:
                raise SafemicroError(
                    "the DDI document is not valid against the DDI Codebook 2.5 schema (a bug; "
                    "please report it): " + "; ".join(problems[:3])
                )
    names: dict[str, str] = {}
    with atomic_directory(out, overwrite=True) as staging:
        if "datapackage" in outputs:
            from safemicro.metadata.datapackage import write_datapackage

            names.update({k: p.name for k, p in write_datapackage(doc, staging).items()})
        if xml is not None:
            (staging / "ddi.xml").write_text(xml, encoding="utf-8")
            names["ddi"] = "ddi.xml"
        if "html" in outputs:
            from safemicro.metadata.codebook_html import render_codebook

            (staging / "codebook.html").write_text(render_codebook(doc), encoding="utf-8")
            names["html"] = "codebook.html"
    return {k: out / name for k, name in names.items()}
