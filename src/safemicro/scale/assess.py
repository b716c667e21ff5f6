"""``assess`` through an engine: every record-level summary computed from the key table.

Each record has the risk of its key, so a record-level statistic is the same statistic
over the distinct keys with their record counts as frequencies: medians (numpy's rule,
the mean of the two middle records when n is even), k-violation counts, the histogram,
the global risk. Household risk is the one step that needs the records again (a group-by
on the household id through the engine). The numbers equal :func:`safemicro.assess.assess`
on the same data (tests/test_engine.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import polars as pl

from safemicro import __version__
from safemicro.assess import DEFAULT_KS, Assessment, _riskiest_keys
from safemicro.assess_checks import target_checks as _checks
from safemicro.engine import Engine, Source, check_columns, get_engine, key_table_from_counts
from safemicro.engine.table import raw_key_ids, source_name
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.jsonable import json_ready
from safemicro.plan import Plan, Roles
from safemicro.progress import progress
from safemicro.risk import individual_risk, record_threshold
from safemicro.risk.individual import risk_histogram, weighted_median


def assess_source(
    source: Source,
    *,
    engine: str | Engine = "duckdb",
    keys: Sequence[str] | None = None,
    weight: str | None = None,
    household: str | None = None,
    sensitive: Sequence[str] = (),
    suda: bool = False,
    roles: Roles | None = None,
    plan: Plan | None = None,
    alpha: float | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    max_global_risk: float = 0.01,
    targets: dict[str, Any] | None = None,
    top: int = 10,
    show_progress: bool | None = None,
    model_risk: bool | dict[str, Any] = False,
) -> Assessment:
    """Assess ``source`` (a Parquet/CSV path, a frame, a SQL table, a Spark DataFrame)
    through ``engine``: k-anonymity, individual, global and household risk; with ``suda``
    SUDA2 (on the key table), with ``sensitive`` variables l-diversity (one group-by of the
    keys and the variable each).

    The per-record frame is not materialised (``records`` is empty); every summary number
    equals the in-memory :func:`safemicro.assess.assess`.
    """
    eng = get_engine(engine) if isinstance(engine, str) else engine
    if plan is not None:
        roles = roles or plan.roles
        alpha = plan.alpha if alpha is None else alpha
        targets = targets or plan.targets.model_dump()
    alpha = 1.0 if alpha is None else alpha
    roles = roles or Roles(keys=list(keys or []), weight=weight, household=household, sensitive=list(sensitive))
    if not roles.keys:
        raise SafemicroError("the out-of-core engines need categorical key variables", file=source_name(source))
    unsupported = [r for r in ("numeric_keys",) if getattr(roles, r)]
    if unsupported:
        raise SafemicroError(
            f"engine {eng.name}: {', '.join(unsupported)} are measured by the in-memory engine only",
            file=source_name(source),
        )
    check_columns(eng, source, [c for c in (*roles.keys, roles.weight, roles.household, *roles.sensitive) if c])
    ks = sorted({int(k) for k in (*DEFAULT_KS, *ks, *([targets["k"]] if targets and targets.get("k") else []))})
    timings: dict[str, float] = {}
    steps = 2 + bool(roles.household) + bool(suda) + bool(roles.sensitive)
    with progress(steps, f"key table ({eng.name})", enabled=show_progress) as advance:
        t0 = time.perf_counter()
        kc = eng.key_counts(source, list(roles.keys), roles.weight, household=roles.household)
        kt = key_table_from_counts(kc, list(roles.keys), alpha=alpha, weighted=roles.weight is not None)
        timings["key_table"] = time.perf_counter() - t0
        advance("individual and global risk")
        t0 = time.perf_counter()
        summary = _summary(kt, roles, alpha, ks, max_global_risk, targets, source)
        key_risk = individual_risk(kt.fk, kt.Fk, weighted=roles.weight is not None)
        timings["risk"] = time.perf_counter() - t0
        if model_risk:  # τ1/τ2, population uniqueness, exact risk: all from the key table
            from safemicro.risk.model_risk import model_risk_summary

            t0 = time.perf_counter()
            opts = model_risk if isinstance(model_risk, dict) else {}
            summary["model_risk"] = model_risk_summary(kt, roles.weight is not None, opts)
            timings["model_risk"] = time.perf_counter() - t0
        if roles.household:
            advance("household risk")
            t0 = time.perf_counter()
            raw_risk = individual_risk(
                *_raw_frequencies(kc, kt), weighted=roles.weight is not None
            )  # per raw row of kc
            with np.errstate(divide="ignore"):
                log_keep = np.log1p(-raw_risk)
            sizes, s = eng.household_log_keep(source, list(roles.keys), roles.household, kc.values, log_keep)
            hh = -np.expm1(s)
            n = sizes.sum()
            size_counts = np.bincount(sizes)
            er = float((hh * sizes).sum())
            summary["household_risk"] = {
                "mean": er / n,
                "expected_reidentifications": er,
                "percent": float(100 * er / n),
                "n_households": int(len(sizes)),
                "household_sizes": {str(i): int(c) for i, c in enumerate(size_counts) if c},
            }
            timings["household_risk"] = time.perf_counter() - t0
        if suda:
            advance("SUDA2")
            t0 = time.perf_counter()
            summary["suda2"] = _suda2(kt, source)
            timings["suda2"] = time.perf_counter() - t0
        if roles.sensitive:
            from safemicro.risk.ldiversity import ldiversity_from_pairs

            advance("l-diversity")
            t0 = time.perf_counter()
            summary["l_diversity"] = {
                s: ldiversity_from_pairs(eng.value_counts(source, list(roles.keys), s), list(roles.keys), s)
                for s in roles.sensitive
            }
            timings["l_diversity"] = time.perf_counter() - t0
        advance("done")
    summary["riskiest_keys"] = _riskiest_keys(Dataset(kt.values().head(0)), kt, key_risk, top)
    summary["variables"] = [
        {"name": name, "role": role, "label": None, "n_distinct": None, "n_missing": None}
        for name, role in roles.assignments()
    ]
    summary["checks"] = _checks(summary, targets)
    summary["timings_seconds"] = {k: round(v, 4) for k, v in timings.items()}
    summary["engine"] = eng.name
    return Assessment(summary=json_ready(summary), records=pl.DataFrame(), key_table=kt)


def _suda2(kt, source) -> dict[str, Any]:
    """SUDA2's summary from the key table, or a clear error when its grouping of the
    records differs from SUDA2's (keys with fractions, or holding SUDA2's -999 code)."""
    from safemicro.risk.suda2_keys import suda2_key_summary

    found = suda2_key_summary(kt)
    if found is None:
        raise SafemicroError(
            "SUDA2 out of core needs integer or text keys without the value -999 (use --engine polars)",
            file=source_name(source),
        )
    return found


def _raw_frequencies(kc, kt) -> tuple[np.ndarray, np.ndarray]:
    """fk and Fk for every raw row of the key counts (NaN and null rows share a key)."""
    ids = raw_key_ids(kc, kt.keys)
    return kt.fk[ids], kt.Fk[ids]


def _summary(kt, roles: Roles, alpha: float, ks, max_global_risk: float, targets, source) -> dict[str, Any]:
    weighted = roles.weight is not None
    r = individual_risk(kt.fk, kt.Fk, weighted=weighted)
    c = kt.count
    n = float(c.sum())
    er = float((r * c).sum())
    med = weighted_median(r, c)
    mad = 1.4826 * weighted_median(np.abs(r - med), c)
    risky = (r > med + 2 * mad) & (r > 0.1)
    summary: dict[str, Any] = {
        "safemicro_version": __version__,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "source": source_name(source),
        "n_records": int(n),
        "keys": list(roles.keys),
        "roles": roles.model_dump(),
        "alpha": alpha,
        "scenario": None,
        "targets": targets,
        "k_anonymity": {
            "n_distinct_keys": kt.n_keys,
            "n_sample_uniques": int(c[kt.fk == 1].sum()),
            "violations": {str(k): int(c[kt.fk < k].sum()) for k in ks},
        },
        "global_risk": {
            "mean": er / n,
            "expected_reidentifications": er,
            "percent": 100.0 * er / n,
            "threshold": record_threshold(r, max_global_risk, c),
            "max_global_risk": max_global_risk,
        },
        "individual_risk": {
            "max": float(r.max()),
            "median": med,
            "mad": float(mad),
            "n_above_0_1": int(c[r > 0.1].sum()),
            "n_risky": int(c[risky].sum()),
            "histogram": risk_histogram(r, c),
        },
        "household_risk": None,
        "model_risk": None,
        "suda2": None,
        "l_diversity": None,
        "numeric_risk": None,
        "missing_in_keys": {name: int(c[kt.codes[:, j] == 0].sum()) for j, name in enumerate(kt.keys)},
        "warnings": [],
    }
    if weighted and (kt.Fk < kt.fk).any():
        summary["warnings"].append(
            f"weights below 1: {int((kt.Fk < kt.fk).sum())} keys have Fk < fk; individual risk "
            "assumes weights are inverse inclusion probabilities (>= 1), so those keys get 1/fk"
        )
    if targets and targets.get("max_individual_risk") is not None:
        summary["individual_risk"]["n_above_target"] = int(c[r > targets["max_individual_risk"]].sum())
    return summary
