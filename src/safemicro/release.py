"""Anonymize a dataset with a release plan and write the release bundle (``safemicro.anonymize``).

``anonymize(data, plan)`` checks the plan against the data, measures the risk before,
runs the steps, measures risk and utility after and returns a :class:`Release`;
``Release.write(out_dir)`` writes the bundle all-or-nothing::

    survey.dta / survey.parquet      the released file in the input's format, plus the
                                     plan's ``release.copies`` (default Parquet; CSV when asked)
    report.json / report.html        internal report: steps, parameters, seeds, before/after
    external_report.html             for users: what was done, how to analyse; no seeds
    disclosure_risk_assessment.json|html   the filled approval form
    plan.lock.yaml                   the plan with every parameter and seed resolved
    row_map.csv                      internal: the input row of each released row (attacks)
    SHA256SUMS                       checksums of all the above (``sha256sum -c``)

The same data + plan + seed give byte-identical bundles: reports carry no clock time and
Stata/SPSS headers are stamped with the plan's review date (or a fixed date).

A public use file is derived from a scientific use file bundle by a second plan (nested
tiers): pass the SUF bundle folder as ``data``; a PUF plan on raw data is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from safemicro import __version__
from safemicro import release_bundle as private_io  # pseudonym tables, written outside the bundle
from safemicro.assess import Assessment, assess, validate_roles
from safemicro.atomic import atomic_directory
from safemicro.errors import SafemicroError
from safemicro.io import Dataset, from_frame, read, write
from safemicro.io.numbers import input_decimals, keep_perturbation, tidy_numbers
from safemicro.jsonable import json_ready
from safemicro.methods.base import ROW_ID
from safemicro.outputs import check_folder
from safemicro.pipeline import draw_seed, in_released_coding, prepare_steps, recoding_prefix, roles_after, run_steps
from safemicro.plan import Plan, load_plan
from safemicro.progress import progress
from safemicro.release_bundle import file_sha256, open_bundle, read_bundle, verify_bundle
from safemicro.release_population import population_after
from safemicro.release_rows import ROW_MAP, row_map_text
from safemicro.release_views import disclosure_risk_assessment, external_view

__all__ = [
    "Release",
    "anonymize",
    "assess_after",
    "disclosure_risk_assessment",
    "external_view",
    "open_bundle",
    "read_bundle",
    "verify_bundle",
]

BUNDLE_FORMATS = {".dta", ".sav", ".zsav", ".parquet", ".csv"}
DEFAULT_STAMP = datetime(2000, 1, 1)  # header time of Stata/SPSS files without a review date
# Parameters and details that would help undo a perturbation: internal report only.
SECRET_DETAILS = ("transition_matrix",)


@dataclass
class Release:
    """An anonymized dataset with everything needed to document and reproduce it."""

    dataset: Dataset
    plan: Plan  # the lock plan: resolved parameters and seeds
    report: dict[str, Any]
    risk_before: Assessment
    risk_after: Assessment
    stem: str = "release"
    format: str = ".csv"
    private_files: list[tuple[str, dict]] = field(default_factory=list)  # pseudonym tables, outside the bundle
    input_rows: np.ndarray | None = None  # the input row of each released row (internal)

    @property
    def targets_met(self) -> bool:
        return bool(self.report["targets_met"])

    def external(self) -> dict[str, Any]:
        """The part of the report users may see: no seeds, no perturbation parameters."""
        return external_view(self.report)

    def disclosure_risk_assessment(self) -> dict[str, Any]:
        return disclosure_risk_assessment(self.report, self.plan)

    def write(self, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> dict[str, Path]:
        """Write the bundle into ``out_dir`` (created; all files or none). Returns the paths."""
        return _write_bundle(self, Path(out_dir), overwrite=overwrite)


# -- running --------------------------------------------------------------------------------


def anonymize(
    data: Any,
    plan: Plan | str | os.PathLike[str],
    *,
    show_progress: bool | None = None,
) -> Release:
    """Apply ``plan`` to ``data`` (a path, a bundle folder, a Dataset or a frame).

    Nothing is written; call :meth:`Release.write` for the bundle. Raises
    :class:`SafemicroError` naming the step and column when the plan does not fit the data.
    """
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    dataset, origin = _load_input(data)
    if plan.scenario.tier == "puf" and origin.get("derived_from", {}).get("tier") not in ("suf", "puf"):
        raise SafemicroError(
            "a public use file (tier: puf) is derived from a scientific use file, never from raw "
            "data: run the SUF plan first, then this plan on the SUF bundle folder",
            file=dataset.source,
        )
    plan.check_columns(dataset.columns, dataset.source)
    validate_roles(dataset, plan.roles)
    for name in plan.utility.variables():
        if name not in dataset.columns:
            raise SafemicroError("utility: not a column of the data", file=dataset.source, column=name)
    seed = plan.seed if plan.seed is not None else draw_seed()
    steps = prepare_steps(plan, dataset.columns, seed=seed)

    with progress(len(steps) + 3, "risk before", enabled=show_progress) as advance:
        before = assess(dataset, plan=plan, suda=_suda_ok(plan.roles.keys))
        advance("anonymizing")
        tagged = dataset.with_frame(
            dataset.frame.with_columns(pl.int_range(0, dataset.n, dtype=pl.Int64).alias(ROW_ID))
        )
        prefix = recoding_prefix(steps)  # recodes first: their result is also the original in the release's coding
        coded_first, changes = run_steps(tagged, steps[:prefix], on_step=lambda s: advance(f"step {s.label}"))
        released_tagged, more = run_steps(coded_first, steps[prefix:], on_step=lambda s: advance(f"step {s.label}"))
        changes += more
        decimals = _precision(tagged, released_tagged, steps, changes)
        released_tagged = released_tagged.with_frame(tidy_numbers(released_tagged, decimals))
        advance("risk after")
        pop = population_after(plan, steps, changes)
        released, after_roles, after = assess_after(
            tagged, released_tagged, plan, changes, before=before, population=pop
        )
        advance("utility")
        from safemicro.utility import compare

        coded, recoded, new_coding = in_released_coding(tagged, steps, recoded=coded_first if prefix else None)
        utility = compare(
            tagged,
            released_tagged,
            roles=plan.roles,
            utility=plan.utility,
            coded=coded,
            recoded=recoded,
            new_coding=new_coding,
            key_tables=(before.key_table, after.key_table) if before.key_table and after.key_table else None,
            changes=changes,
        )

    lock = plan.model_copy(deep=True)
    lock.seed = seed
    lock.steps = [{s.spec.name: _lock_params(s, c)} for s, c in zip(steps, changes)]
    perturbed = [s.spec.name for s in steps if s.spec.perturbative]
    warnings_ = list(after.summary.get("warnings", []))
    if perturbed:
        warnings_.append(
            "perturbative methods were applied (" + ", ".join(dict.fromkeys(perturbed)) + "): "
            "frequency-based risk measures overstate or misstate the risk after them; "
            "check the release with an empirical attack"
        )
    checks = after.summary.get("checks", [])
    report = {
        "safemicro_version": __version__,
        "input": {**origin, "n_records": dataset.n, "n_variables": len(dataset.columns)},
        "scenario": plan.scenario.model_dump(),
        "targets": plan.targets.model_dump(),
        "roles": plan.roles.model_dump(),
        "release_info": plan.release.model_dump(),
        "seed": seed,
        "steps": [
            {
                "index": s.ctx.index,
                **c.to_dict(),
                "name": s.spec.name,
                "params": _lock_params(s, c),
                "description": s.spec.describe(s.params, c),
                "perturbative": s.spec.perturbative,
            }
            for s, c in zip(steps, changes)
        ],
        "risk_before": _stable(before.summary),
        "risk_after": _stable(after.summary),
        "checks": checks,
        "targets_met": all(c["passed"] is not False for c in checks),  # None: not applicable
        "utility": utility,
        "release": {
            "n_records": released.n,
            "variables": released.columns,
            "removed_variables": [c for c in dataset.columns if c not in released.columns],
            "roles": after_roles.model_dump(),
            # each float column at the input's decimals (0: integers), more where noise needs it
            "decimals": {c: d for c, d in decimals.items() if c in released.columns},
        },
        "warnings": warnings_,
    }
    report = json_ready(report)
    return Release(
        dataset=released,
        plan=lock,
        report=report,
        risk_before=before,
        risk_after=after,
        stem=origin.get("stem", "release"),
        format=origin.get("format", ".csv"),
        private_files=private_io.private_files(changes),
        input_rows=released_tagged.frame.get_column(ROW_ID).to_numpy(),
    )


def assess_after(
    tagged: Dataset,
    released_tagged: Dataset,
    plan: Plan,
    changes: list,
    *,
    suda: bool = True,
    before: Assessment | None = None,
    population: Dataset | None = None,
) -> tuple[Dataset, Any, Assessment]:
    """The released data (row id dropped), its roles after the steps (a subsample's new
    design weight included) and its assessment; numeric keys are compared with the
    original records row by row. ``tagged``/``released_tagged`` carry the row id; with the
    input's assessment ``before``, unchanged columns' distinct counts are not counted again."""
    released = released_tagged.with_frame(released_tagged.frame.drop(ROW_ID))
    after_roles = roles_after(plan.roles, released.columns)
    created = [c.details["weight"] for c in changes if c.details.get("weight_created")]
    if created and after_roles.weight is None:  # a subsample made the design weight
        after_roles = after_roles.model_copy(update={"weight": created[-1]})
    after = assess(
        released,
        roles=after_roles,
        alpha=plan.alpha,
        targets=plan.targets.model_dump(),
        scenario=plan.scenario.model_dump(),
        suda=suda and _suda_ok(after_roles.keys),
        original=_original_rows(tagged, released_tagged) if after_roles.numeric_keys else None,
        attribute=plan.attribute_disclosure,
        population=population,
        model_risk=plan.model_risk.model_dump() if plan.model_risk.enabled else False,
        known_distinct=None
        if before is None
        else {v["name"]: (tagged.frame.get_column(v["name"]), v["n_distinct"]) for v in before.summary["variables"]},
    )
    return released, after_roles, after


def _original_rows(tagged: Dataset, released_tagged: Dataset) -> Dataset:
    """The input records in the released file's order (numeric risk compares them row by row)."""
    rows = released_tagged.frame.get_column(ROW_ID).to_numpy()
    return tagged.with_frame(tagged.frame[rows])


def _precision(original: Dataset, released: Dataset, steps, changes) -> dict[str, int]:
    """Decimals of each released float column: the input's, more where a perturbative step
    changed it by less than rounding would (see :func:`keep_perturbation`)."""
    decimals = {c: d for c, d in input_decimals(original).items() if c in released.columns}
    rows = released.frame.get_column(ROW_ID).to_numpy()
    for step, change in zip(steps, changes):
        for name, n in change.changed.items() if step.spec.perturbative else ():
            if n and name in decimals and released.frame.schema[name].is_numeric():
                before = original.frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()[rows]
                after = released.frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()
                decimals[name] = keep_perturbation(decimals[name], before, after)
    return decimals


def _suda_ok(keys: list[str]) -> bool:
    return 0 < len(keys) <= 12


def _stable(summary: dict[str, Any]) -> dict[str, Any]:
    """The assess summary without clock times and with the input's file name instead of its
    path, so reruns (from any folder) give identical reports."""
    out = {k: v for k, v in summary.items() if k not in ("generated_at", "timings_seconds")}
    if out.get("source"):
        out["source"] = Path(out["source"]).name
    return out


def _lock_params(step, change) -> dict[str, Any]:
    """The step's parameters with role/target defaults made explicit (as the method used them)."""
    params = step.resolved_params()
    for name, value in params.items():
        if value is None and change.params.get(name) is not None:
            params[name] = change.params[name]
    if step.spec.random and "seed" in step.spec.params.model_fields:
        params["seed"] = change.seed if change.seed is not None else step.ctx.seed
    return params


def _load_input(data: Any) -> tuple[Dataset, dict[str, Any]]:
    """The dataset and what the report says about where it came from."""
    if isinstance(data, Dataset):
        return data, {"file": data.source and Path(data.source).name, "format": ".parquet", "stem": "release"}
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.is_dir():
            return read_bundle(path)
        if not path.exists():
            raise SafemicroError("input file not found", file=str(path))
        ds = read(path)
        fmt = "".join(path.suffixes[-2:]) if path.name.endswith(".csv.gz") else path.suffix.lower()
        stem = path.name[: -len(fmt)] if fmt else path.name
        return ds, {
            "file": path.name,
            "sha256": file_sha256(path),
            "format": fmt if fmt in BUNDLE_FORMATS else ".csv",
            "stem": stem,
        }
    return from_frame(data), {"file": None, "format": ".csv", "stem": "release"}


# -- bundles ----------------------------------------------------------------------------------


def _stamp(plan: Plan) -> datetime:
    if plan.release.date:
        try:
            return datetime.fromisoformat(plan.release.date)
        except ValueError:
            raise SafemicroError(f"release.date {plan.release.date!r} is not an ISO date (YYYY-MM-DD)") from None
    return DEFAULT_STAMP


def _write_bundle(release: Release, out: Path, *, overwrite: bool) -> dict[str, Path]:
    from safemicro.report.release_report import (
        render_disclosure_risk_assessment,
        render_external_report,
        render_internal_report,
    )

    check_folder(out, overwrite=overwrite)
    private = private_io.check_private_files(release.private_files, out)
    stamp = _stamp(release.plan)
    data_name = release.stem + release.format
    files = {"data": data_name}
    main = ".sav" if release.format == ".zsav" else release.format
    for fmt in release.plan.release.copies:  # Parquet by default; a CSV only when asked
        if "." + fmt != main:
            files[fmt] = release.stem + "." + fmt
    report = dict(release.report)
    report["release"] = {**report["release"], "files": files}
    dra = disclosure_risk_assessment(report, release.plan)
    with atomic_directory(out, overwrite=overwrite) as staging:
        decimals = release.report["release"].get("decimals")
        for name in files.values():
            write(release.dataset, staging / name, timestamp=stamp, report_as=out / name, decimals=decimals)
        texts = {
            "report.json": json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
            "report.html": render_internal_report(report),
            "external_report.html": render_external_report(external_view(report)),
            "disclosure_risk_assessment.json": json.dumps(dra, indent=2, ensure_ascii=False) + "\n",
            "disclosure_risk_assessment.html": render_disclosure_risk_assessment(dra),
            "plan.lock.yaml": "# Resolved plan: re-running it on the same input gives the same bundle.\n"
            "# Internal: it holds the seeds. Never publish it with the data.\n" + release.plan.to_yaml(),
            **({ROW_MAP: row_map_text(release.input_rows)} if release.input_rows is not None else {}),
        }
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
        names = sorted(p.name for p in staging.iterdir())
        sums = "".join(f"{file_sha256(staging / n)}  {n}\n" for n in names)
        (staging / "SHA256SUMS").write_text(sums, encoding="utf-8")
    private_io.write_private_files(private)
    return {n: out / n for n in [*names, "SHA256SUMS"]}
