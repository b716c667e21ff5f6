"""Disclosure-risk assessment: one call from data and roles to every measure.

``assess`` validates the roles against the data, builds the key table once and derives
k-anonymity, individual / global / household risk, SUDA2, l-diversity and numeric-key
risk from it. The result carries a JSON-ready ``summary`` and a per-record frame in input
order; the CLI and the reports are thin shells over it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import ValidationError

from safemicro import __version__
from safemicro.assess_checks import target_checks as _checks
from safemicro.assess_inputs import load_population
from safemicro.background import Background
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.jsonable import json_ready, json_value
from safemicro.keys import KeyTable, build_key_table, encode_column
from safemicro.plan import AttributeDisclosure, Plan, Roles
from safemicro.progress import progress
from safemicro.risk import individual as measures
from safemicro.risk.attribute import attribute_disclosure
from safemicro.risk.combinations import key_combinations
from safemicro.risk.individual import risk_histogram, weighted_median
from safemicro.risk.numeric_keys import numeric_key_risk
from safemicro.risk.population import population_risk
from safemicro.roles import validate_roles as validate_roles

DEFAULT_KS = (2, 3, 5)


@dataclass
class Assessment:
    """The result of :func:`assess`: a JSON-ready summary and one row per input record;
    ``ids`` are the columns that join a record back to the input (the 1-based row number,
    the household id when there is one)."""

    summary: dict[str, Any]
    records: pl.DataFrame
    key_table: KeyTable | None  # None: no categorical keys (continuous-only data)
    ids: pl.DataFrame | None = None

    def write_json(self, path: str | Path) -> None:
        from safemicro.atomic import write_text

        write_text(path, json.dumps(self.summary, indent=2, allow_nan=False) + "\n")

    def write_records(self, path: str | Path) -> None:
        from safemicro.atomic import write_frame_csv

        ids = (
            self.ids
            if self.ids is not None
            else pl.DataFrame({"row": pl.int_range(1, self.records.height + 1, eager=True)})
        )
        write_frame_csv(path, pl.concat([ids, self.records.drop(ids.columns, strict=False)], how="horizontal"))

    def write_html(self, path: str | Path, *, title: str | None = None) -> None:
        from safemicro.report.risk_report import write_risk_report

        kwargs = {"title": title} if title else {}
        write_risk_report(path, self.summary, self.records, **kwargs)


def _riskiest_keys(dataset: Dataset, kt: KeyTable, key_risk: np.ndarray, top: int) -> list[dict]:
    order = np.lexsort((kt.fk, -key_risk))[:top]
    values = kt.values()[order.tolist()]
    out = []
    for i, idx in enumerate(order):
        row = {name: json_value(values.get_column(name)[i]) for name in kt.keys}
        labels = {}
        for name, value in row.items():
            vl = dataset.codebook.meta(name).value_labels
            if value is not None and vl:
                label = vl.get(value, vl.get(float(value)) if isinstance(value, (int, float)) else None)
                if label is not None:
                    labels[name] = label
        out.append(
            {
                "values": row,
                "labels": labels,
                "fk": float(kt.fk[idx]),
                "Fk": float(kt.Fk[idx]),
                "risk": float(key_risk[idx]),
                "n_records": int(kt.count[idx]),
            }
        )
    return out


def _count_distinct(frame: pl.DataFrame, known: dict[str, tuple[pl.Series, int]] | None) -> Background[list[int]]:
    """The distinct count of every column, counted in a thread while the key table is built
    (Polars counts without the GIL; the three continuous columns of a million records take
    a tenth of a second of sorting)."""
    # distinct counts known for a column equal to this one (the input of a release, for the
    # variables no step changed) are not counted again: a hash of every value costs seconds
    # per column at tens of millions of records, the comparison one cheap pass
    reuse = {
        name: n
        for name, (column, n) in (known or {}).items()
        if name in frame.columns and frame.get_column(name).equals(column, check_dtypes=True, null_equal=True)
    }
    todo = [c for c in frame.columns if c not in reuse]

    def count() -> list[int]:
        counted = dict(zip(todo, frame.select(pl.col(todo).n_unique()).row(0))) if todo else {}
        return [reuse[c] if c in reuse else counted[c] for c in frame.columns]

    return Background(count)


def _variables(dataset: Dataset, roles: Roles, counts: list[int]) -> list[dict[str, Any]]:
    frame = dataset.frame
    role_of: dict[str, str] = {}
    for name, role in roles.assignments():
        role_of.setdefault(name, role)
    out = []
    for name, n_distinct in zip(frame.columns, counts):
        out.append(
            {
                "name": name,
                "role": role_of.get(name, "other"),
                "label": dataset.codebook.meta(name).label,
                "n_distinct": int(n_distinct),
                "n_missing": int(dataset.analysis_column(name).null_count()) if name in role_of else None,
            }
        )
    return out


def assess(
    data,
    *,
    keys: Sequence[str] | None = None,
    numeric_keys: Sequence[str] = (),
    sensitive: Sequence[str] = (),
    weight: str | None = None,
    household: str | None = None,
    household_level: Sequence[str] = (),
    roles: Roles | None = None,
    plan: Plan | None = None,
    alpha: float | None = None,
    suda: bool = False,
    model_risk: bool | dict[str, Any] = False,
    ks: Sequence[int] = DEFAULT_KS,
    max_global_risk: float = 0.01,
    targets: dict[str, Any] | None = None,
    scenario: dict[str, Any] | None = None,
    top: int = 10,
    show_progress: bool | None = None,
    original: Dataset | None = None,
    known_distinct: dict[str, tuple[pl.Series, int]] | None = None,
    attribute: AttributeDisclosure | None = None,
    population: Dataset | str | Path | None = None,
    robust: bool = False,
) -> Assessment:
    """Assess the disclosure risk of ``data`` (a Dataset, Polars or pandas frame).

    Roles come from ``plan`` (a release plan), ``roles``, or the keyword arguments.
    Without categorical keys (continuous-only data such as business surveys) the
    k-anonymity, individual, global and household measures are not applicable: they are
    ``None`` in the summary and only the numeric-key risk is measured. ``original``: the
    data ``data`` was released from, row for row; numeric-key interval and linkage
    disclosure compare the released values with it (without it, with themselves).
    ``known_distinct``: ``{column: (values, distinct count)}`` already counted (the input's,
    when assessing a release); a column equal to its ``values`` is not counted again.
    ``attribute``: the distances (and hierarchies) of the sensitive variables for
    t-closeness (default: the plan's, else ordered for ordinal/scale variables, equal otherwise).
    ``population`` (or the plan's ``population:`` file): the population the data was drawn
    from; adds k-map and δ-presence (:mod:`safemicro.risk.population`). ``robust`` (or a
    ``max_rmd_risk`` target): MCD outliers and RMD disclosure of the numeric keys.
    ``model_risk``: also τ1/τ2, population uniqueness and exact risk (:mod:`safemicro.risk.model_risk`).

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"sex": [1, 1, 2, 2], "age": [30, 30, 40, 50]})
    >>> assess(df, keys=["sex", "age"]).summary["k_anonymity"]["violations"]["2"]
    2
    """
    if isinstance(data, Dataset):
        dataset = data
    else:
        from safemicro.io import from_frame

        dataset = from_frame(data)
    if plan is not None:
        roles = roles or plan.roles
        attribute = attribute or plan.attribute_disclosure
        model_risk = model_risk or (plan.model_risk.model_dump() if plan.model_risk.enabled else False)
        alpha = plan.alpha if alpha is None else alpha
        targets = targets or plan.targets.model_dump()
        scenario = scenario or plan.scenario.model_dump()
    alpha = 1.0 if alpha is None else alpha
    if roles is None:
        try:
            roles = Roles(
                keys=list(keys or []),
                numeric_keys=list(numeric_keys),
                sensitive=list(sensitive),
                weight=weight,
                household=household,
                household_level=list(household_level),
            )
        except ValidationError as e:
            raise SafemicroError(e.errors()[0]["msg"].removeprefix("Value error, "), file=dataset.source) from None
    if not 0.0 <= alpha <= 1.0:
        raise SafemicroError(f"alpha must lie between 0 and 1, got {alpha}")
    validate_roles(dataset, roles)
    robust = robust or (targets or {}).get("max_rmd_risk") is not None
    ks = sorted({int(k) for k in (*DEFAULT_KS, *ks, *([targets["k"]] if targets and targets.get("k") else []))})
    timings: dict[str, float] = {}
    steps = 2 + bool(roles.household) + bool(suda) + bool(roles.sensitive) + bool(roles.numeric_keys)

    if not roles.keys:
        return _assess_numeric_only(dataset, roles, alpha, scenario, targets, original, robust)

    counting = _count_distinct(dataset.frame, known_distinct)
    with progress(steps, "building the key table", enabled=show_progress) as advance:
        t0 = time.perf_counter()
        key_frame = dataset.analysis_frame(roles.keys)
        w = dataset.frame.get_column(roles.weight).cast(pl.Float64).to_numpy() if roles.weight else None
        kt = build_key_table(key_frame, roles.keys, w, alpha=alpha)
        timings["key_table"] = time.perf_counter() - t0
        advance("individual and global risk")

        t0 = time.perf_counter()
        key_risk = measures.individual_risk(kt.fk, kt.Fk, weighted=roles.weight is not None)
        risk = key_risk[kt.record_key]
        fk = kt.record_fk()
        records: dict[str, Any] = {"fk": fk, "Fk": kt.record_Fk(), "risk": risk}
        g = measures.global_risk(risk)
        # the record-level statistics below are taken on the distinct keys with their record
        # counts (the same numbers: every record has its key's risk), not on n records
        count = kt.count
        key_risky = measures.risky_records(key_risk, counts=count)
        records["risky"] = key_risky[kt.record_key]
        med = weighted_median(key_risk, count)
        summary: dict[str, Any] = {
            "safemicro_version": __version__,
            "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "source": dataset.source,
            "n_records": dataset.n,
            "keys": roles.keys,
            "roles": roles.model_dump(),
            "alpha": alpha,
            "scenario": scenario,
            "targets": targets,
            "k_anonymity": {
                "n_distinct_keys": kt.n_keys,
                "n_sample_uniques": int(count[kt.fk == 1].sum()),
                "violations": {str(k): v for k, v in measures.k_anonymity_violations(kt.fk, ks, counts=count).items()},
            },
            "global_risk": {
                "mean": g.mean,
                "expected_reidentifications": g.expected_reidentifications,
                "percent": g.percent,
                "threshold": measures.record_threshold(key_risk, max_global_risk, kt.count),
                "max_global_risk": max_global_risk,
            },
            "individual_risk": {
                "max": float(key_risk.max()),
                "median": med,
                "mad": float(1.4826 * weighted_median(np.abs(key_risk - med), count)),
                "n_above_0_1": int(count[key_risk > 0.1].sum()),
                "n_risky": int(count[key_risky].sum()),
                "histogram": risk_histogram(key_risk, count),
            },
            "household_risk": None,
            "model_risk": None,
            "suda2": None,
            "l_diversity": None,
            "attribute_disclosure": None,
            "numeric_risk": None,
            "missing_in_keys": {name: int(count[kt.codes[:, j] == 0].sum()) for j, name in enumerate(kt.keys)},
        }
        warnings = []
        if roles.weight and (kt.Fk < kt.fk).any():
            warnings.append(
                f"weights below 1: {int((kt.Fk < kt.fk).sum())} keys have Fk < fk; individual risk "
                "assumes weights are inverse inclusion probabilities (>= 1), so those keys get 1/fk"
            )
        summary["warnings"] = warnings
        if targets and targets.get("max_individual_risk") is not None:
            summary["individual_risk"]["n_above_target"] = int(count[key_risk > targets["max_individual_risk"]].sum())
        timings["risk"] = time.perf_counter() - t0
        advance("household risk" if roles.household else "reports")

        if roles.household:
            t0 = time.perf_counter()
            # household ids are never missing (validated), so codes are 1..H
            hid = encode_column(dataset.frame.get_column(roles.household))[0] - 1
            hh = measures.household_risk(risk, hid)
            records["hh_risk"] = hh
            sizes = np.bincount(hid)
            size_counts = np.bincount(sizes)
            summary["household_risk"] = {
                "mean": float(hh.mean()),
                "expected_reidentifications": float(hh.sum()),
                "percent": float(100 * hh.mean()),
                "n_households": int(len(sizes)),
                "household_sizes": {str(s): int(c) for s, c in enumerate(size_counts) if c},
            }
            timings["household_risk"] = time.perf_counter() - t0
            advance("SUDA2" if suda else "l-diversity")

        if model_risk:
            from safemicro.risk.model_risk import model_risk_summary

            t0 = time.perf_counter()
            opts = model_risk if isinstance(model_risk, dict) else {}
            summary["model_risk"] = model_risk_summary(kt, roles.weight is not None, opts)
            timings["model_risk"] = time.perf_counter() - t0
        if suda:
            from safemicro.risk.suda2_keys import suda2_keys

            t0 = time.perf_counter()
            result = suda2_keys(kt, key_frame)
            records["suda_score"] = result.score
            records["dis_suda"] = result.dis
            summary["suda2"] = result.summary()
            timings["suda2"] = time.perf_counter() - t0
            advance("l-diversity")

        ldiv_frame = None
        if roles.sensitive:
            from safemicro.risk.ldiversity import ldiversity

            t0 = time.perf_counter()
            sens = dataset.analysis_frame(roles.sensitive)
            result = ldiversity(pl.concat([key_frame, sens], how="horizontal"), roles.keys, roles.sensitive)
            ldiv_frame = result.per_record
            summary["l_diversity"] = result.summary()
            from safemicro.methods.target_classes import attribute_settings  # the methods package: only here

            try:
                attr = attribute_disclosure(
                    pl.concat([key_frame, sens], how="horizontal"),
                    roles.keys,
                    roles.sensitive,
                    **attribute_settings(dataset, roles.sensitive, attribute),
                    targets=targets,
                )
            except ValueError as exc:
                raise SafemicroError(f"attribute_disclosure: {exc}", file=dataset.source) from None
            ldiv_frame = pl.concat([ldiv_frame, attr.per_record], how="horizontal")
            summary["attribute_disclosure"] = attr.summary()
            timings["l_diversity"] = time.perf_counter() - t0
            advance("numeric keys")

        if roles.numeric_keys:
            t0 = time.perf_counter()
            summary["numeric_risk"] = numeric_key_risk(dataset, roles.numeric_keys, records, original, robust)
            timings["numeric_risk"] = time.perf_counter() - t0
            advance("done")

        t0 = time.perf_counter()
        strata = dataset.frame.get_column(roles.strata) if roles.strata else None
        summary["key_combinations"] = key_combinations(kt, key_frame, w, strata, targets or {})
        timings["key_combinations"] = time.perf_counter() - t0

        population = load_population(population, plan)
        if population is not None:
            t0 = time.perf_counter()
            summary["population"], per_record = population_risk(
                key_frame,
                population.analysis_frame([c for c in roles.keys if c in population.frame.columns]),
                roles.keys,
                k=(targets or {}).get("k"),
                delta_min=(targets or {}).get("delta_min"),
                delta_max=(targets or {}).get("delta_max"),
                source=population.source,
            )
            records.update(per_record)
            timings["population"] = time.perf_counter() - t0

    record_frame = pl.DataFrame(records)
    if ldiv_frame is not None:
        record_frame = pl.concat([record_frame, ldiv_frame], how="horizontal")
    summary["riskiest_keys"] = _riskiest_keys(dataset, kt, key_risk, top)
    summary["variables"] = _variables(dataset, roles, counting.result())
    summary["checks"] = _checks(summary, targets)
    summary["timings_seconds"] = {k: round(v, 4) for k, v in timings.items()}
    return Assessment(summary=json_ready(summary), records=record_frame, key_table=kt, ids=_ids(dataset, roles))


def _ids(dataset: Dataset, roles: Roles) -> pl.DataFrame:
    """What joins a per-record risk back to the input: its row number (1-based, as in the
    error messages) and the household id. Direct identifiers are left out on purpose."""
    ids = pl.DataFrame({"row": pl.int_range(1, dataset.n + 1, eager=True)})
    if roles.household and roles.household != "row":
        ids = ids.with_columns(dataset.frame.get_column(roles.household))
    return ids


def _assess_numeric_only(
    dataset: Dataset,
    roles: Roles,
    alpha: float,
    scenario: dict[str, Any] | None,
    targets: dict[str, Any] | None,
    original: Dataset | None,
    robust: bool = False,
) -> Assessment:
    """Continuous-only data: numeric-key risk; the frequency-based measures do not apply."""
    t0 = time.perf_counter()
    records: dict[str, Any] = {}
    warnings = [
        (
            "no categorical key variables: k-anonymity, individual, global and household "
            "risk, SUDA2 and l-diversity do not apply; the risk is that of the numeric keys"
        )
    ]
    summary: dict[str, Any] = {
        "safemicro_version": __version__,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "source": dataset.source,
        "n_records": dataset.n,
        "keys": [],
        "roles": roles.model_dump(),
        "alpha": alpha,
        "scenario": scenario,
        "targets": targets,
        "k_anonymity": None,
        "global_risk": None,
        "individual_risk": None,
        "household_risk": None,
        "suda2": None,
        "l_diversity": None,
        "attribute_disclosure": None,
        "numeric_risk": numeric_key_risk(dataset, roles.numeric_keys, records, original, robust),
        "missing_in_keys": {},
        "not_applicable": ["k_anonymity", "global_risk", "individual_risk", "household_risk", "suda2", "l_diversity"],
        "warnings": warnings,
        "riskiest_keys": [],
        "variables": _variables(dataset, roles, _count_distinct(dataset.frame, None).result()),
    }
    summary["checks"] = _checks(summary, targets)
    summary["timings_seconds"] = {"numeric_risk": round(time.perf_counter() - t0, 4)}
    return Assessment(
        summary=json_ready(summary), records=pl.DataFrame(records), key_table=None, ids=_ids(dataset, roles)
    )
