"""Evaluate synthetic data against the real data it was made from: utility and privacy.

>>> result = evaluate(train, synth, holdout=holdout, keys=["sex", "age", "region"],
...                   target="englang", seed=1)                     # doctest: +SKIP
>>> write_evaluation_html(result, "evaluation.html")                # doctest: +SKIP

``evaluate`` returns a JSON-friendly dict (numbers, strings, lists; None for "not measured"):

* ``utility``: sdmetrics-style quality (column shapes, column pair trends, overall), the
  per-column table (TVD or KS distance, missing shares, distributions for the figures),
  propensity-score pMSE and its ratio to the null, the NIST CRC k-marginal score, and
  train-on-synthetic/test-on-real for each target;
* ``privacy``: DCR against the holdout, Q_δ against its bootstrap threshold, replicated
  uniques on the keys, exact-match rates, and the attack suite (``attacks``: singling out,
  linkability, inference, membership with the holdout as control);
* ``summary``: the headline numbers and whether each privacy check passed;
* ``notes``: what was left out and why.

The holdout should be real records the synthesizer never saw (e.g. a 20 % split kept back
before fitting). Without it the privacy rates have no natural reference, Q_δ compares with
training rows outside its sample (as REaLTabFormer's critic does) and the
train-on-synthetic test uses a 20 % split of the real data — which the synthesizer saw.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.jsonable import json_ready
from safemicro.methods.base import rng_for
from safemicro.utility.tables import value_label

from .columns import analysis_series, column_kinds, float_values, missing_share
from .privacy import privacy
from .report import render_evaluation_html, write_evaluation_html
from .utility import NIST_CRC, k_marginal, pmse, quality, tstr

__all__ = ["evaluate", "write_evaluation_html", "render_evaluation_html", "column_kinds", "NIST_CRC"]

QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
TOP_CATEGORIES = 12
TSTR_TEST_SHARE = 0.2
ATTACK_RISK_LIMIT = 0.10  # excess attack success over the holdout control that we flag


def _check(real: Dataset, other: Dataset, what: str) -> None:
    for name in real.columns:
        if name not in other.columns:
            raise SafemicroError(f"the {what} data lacks a column of the real data", column=name, file=other.source)
    extra = [c for c in other.columns if c not in real.columns]
    if extra:
        raise SafemicroError(f"the {what} data has a column the real data lacks", column=extra[0], file=other.source)


def _names(value: str | Sequence[str] | None, what: str, columns: list[str]) -> list[str]:
    names = [] if value is None else [value] if isinstance(value, str) else list(value)
    for name in names:
        if name not in columns:
            raise SafemicroError(f"{what} is not a column of the real data", column=name)
    return names


def _analysis(ds: Dataset, kinds: Mapping[str, str], real: Dataset) -> pl.DataFrame:
    """The columns as the measures read them; a number with special codes (the real data's
    codebook says which) is read without its codes, whatever file the other side came from."""
    from safemicro.io.special_codes import numeric_part

    cols = []
    for n in kinds:
        s = ds.frame.get_column(n)
        codes = real.special_codes(n) if kinds[n] == "numeric" and s.dtype.is_numeric() else None
        if codes:
            s = numeric_part(s, real.codebook.meta(n), codes=codes)
        cols.append(analysis_series(s, kinds[n]).rename(n))
    return pl.DataFrame(cols)


def _distribution(name: str, kind: str, r: pl.Series, s: pl.Series, datasets) -> dict[str, Any]:
    """What the figures draw: top categories' shares, or quantiles of a number."""
    if kind == "categorical":
        counts = pl.DataFrame(
            {"v": pl.concat([r.cast(pl.String), s.cast(pl.String)]), "side": ["real"] * r.len() + ["synth"] * s.len()}
        )
        table = counts.group_by("v", "side").len().pivot("side", index="v", values="len").fill_null(0)
        for side in ("real", "synth"):
            if side not in table.columns:
                table = table.with_columns(pl.lit(0).alias(side))
        table = table.sort(["real", "synth"], descending=True).head(TOP_CATEGORIES)
        cats = []
        for v in table.get_column("v").to_list():
            label = value_label(v, name, *datasets) if v is not None else None
            cats.append("(missing)" if v is None else f"{v} {label}" if label else str(v))
        return {
            "categories": cats,
            "real": [c / max(r.len(), 1) for c in table.get_column("real").to_list()],
            "synth": [c / max(s.len(), 1) for c in table.get_column("synth").to_list()],
        }
    xr, xs = float_values(r), float_values(s)
    if len(xr) == 0 or len(xs) == 0:
        return {}
    return {
        "probs": list(QUANTILES),
        "real": [float(v) for v in np.quantile(xr, QUANTILES)],
        "synth": [float(v) for v in np.quantile(xs, QUANTILES)],
    }


def evaluate(
    real: Dataset,
    synth: Dataset,
    *,
    holdout: Dataset | None = None,
    keys: Sequence[str] | None = None,
    target: str | Sequence[str] | None = None,
    seed: int | None = None,
    kinds: Mapping[str, str] | None = None,
    group: str | None = None,
    n_boot: int = 100,
    n_perm: int = 10,
    attacks: int = 500,
    secrets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Utility and privacy of ``synth`` against ``real`` (the data the synthesizer was fitted on).

    ``keys``: key variables for replicated uniques; ``target``: column(s) for
    train-on-synthetic/test-on-real; ``kinds``: column kinds overriding the inferred ones
    (:func:`column_kinds`); ``group``: a geography for the k-marginal's 3-way marginals
    (SDNist uses PUMA); ``n_boot``/``n_perm``: bootstrap rounds for the Q_δ threshold and
    permutations for the pMSE null; ``attacks``: attacks per scenario of the attack suite
    (:func:`safemicro.attack.privacy_attacks`: singling out, linkability, inference,
    membership, the holdout as control and the keys as what the intruder knows), 0 to skip
    it; ``secrets``: the sensitive columns the inference attack guesses (default: up to ten
    columns that are not keys). Deterministic given ``seed``.
    """
    for ds, what in ((real, "real"), (synth, "synthetic"), (holdout, "holdout")):
        if ds is not None and not isinstance(ds, Dataset):
            raise SafemicroError(f"the {what} data must be a Dataset (see safemicro.io.from_frame)")
    _check(real, synth, "synthetic")
    if holdout is not None:
        _check(real, holdout, "holdout")
    keys = _names(keys, "a key variable", real.columns)
    secrets = _names(secrets, "a sensitive variable", real.columns)
    targets = _names(target, "the target", real.columns)
    if group is not None:
        _names(group, "the k-marginal group", real.columns)
    kinds = column_kinds(real, kinds)
    _, seed = rng_for(seed)
    seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(4)]
    notes: list[str] = []
    skipped = [n for n, k in kinds.items() if k == "id"]
    if skipped:
        notes.append(f"Left out of the distributional and distance measures as identifiers: {', '.join(skipped)}.")
    used = {n: k for n, k in kinds.items() if k != "id"}
    a_real, a_synth = _analysis(real, used, real), _analysis(synth, used, real)
    a_hold = _analysis(holdout, used, real) if holdout is not None else None
    timings: dict[str, float] = {}

    t = time.perf_counter()
    q = quality(a_real, a_synth, used)
    timings["quality"] = time.perf_counter() - t
    columns = []
    for row in q["columns"]:
        name = row["column"]
        r, s = a_real.get_column(name), a_synth.get_column(name)
        columns.append(
            row
            | {
                "distance": None if row["score"] is None else 1.0 - row["score"],
                "distance_name": "KS" if row["metric"] == "KSComplement" else "TVD",
                "missing_real": missing_share(r),
                "missing_synth": missing_share(s),
                "distribution": _distribution(name, row["kind"], r, s, (real, synth)),
            }
        )

    t = time.perf_counter()
    prop = pmse(a_real, a_synth, used, n_perm=n_perm, seed=seeds[0])
    timings["pmse"] = time.perf_counter() - t
    t = time.perf_counter()
    km = k_marginal(a_real, a_synth, used, group=group)
    timings["k_marginal"] = time.perf_counter() - t

    t = time.perf_counter()
    tstr_rows = []
    if targets:
        if a_hold is not None:
            train_part, test_part = a_real, a_hold
        else:
            rng = np.random.default_rng(seeds[1])
            perm = rng.permutation(a_real.height)
            cut = int(round(a_real.height * (1 - TSTR_TEST_SHARE)))
            train_part, test_part = a_real[perm[:cut]], a_real[perm[cut:]]
            notes.append(
                "No holdout: train-on-synthetic is tested on a 20 % split of the real data, "
                "which the synthesizer saw, so it is optimistic."
            )
        for name in targets:
            tstr_rows.append(tstr(train_part, a_synth, test_part, used, name, seed=seeds[1]))
    else:
        notes.append("No target given: train-on-synthetic/test-on-real was not run.")
    timings["tstr"] = time.perf_counter() - t

    t = time.perf_counter()
    priv = privacy(
        (real.frame, synth.frame, None if holdout is None else holdout.frame),
        (a_real, a_synth, a_hold),
        used,
        keys=keys,
        n_boot=n_boot,
        seed=seeds[2],
    )
    if priv["q_delta"] and "error" in priv["q_delta"]:
        notes.append(f"Q_δ not computed: {priv['q_delta']['error']}")
    timings["privacy"] = time.perf_counter() - t
    if not keys:
        notes.append("No key variables given: replicated uniques were not counted.")
    if holdout is None:
        notes.append(
            "No holdout: privacy rates have no natural reference, and Q_δ compares "
            "with training rows outside its sample."
        )

    t = time.perf_counter()
    if attacks and holdout is not None:
        priv["attacks"] = _attacks(real, synth, holdout, list(used), keys, secrets, attacks, seeds[3])
        notes.extend(f"Attacks: {n}" for n in priv["attacks"].get("notes") or [])
    elif attacks:
        notes.append("No holdout: the attack suite needs one as its control and was not run.")
    timings["attacks"] = time.perf_counter() - t

    summary = _summary(q, prop, km, tstr_rows, priv)
    result = {
        "data": {
            "real": {"rows": real.n, "file": real.source},
            "synthetic": {"rows": synth.n, "file": synth.source},
            "holdout": None if holdout is None else {"rows": holdout.n, "file": holdout.source},
            "columns": len(real.columns),
            "kinds": kinds,
            "keys": keys,
            "targets": targets,
        },
        "summary": summary,
        "utility": {
            "quality": {k: v for k, v in q.items() if k != "columns"},
            "columns": columns,
            "pmse": prop,
            "k_marginal": km,
            "tstr": tstr_rows,
        },
        "privacy": priv,
        "notes": notes,
        "seed": seed,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    return json_ready(result)


def _attacks(
    real: Dataset,
    synth: Dataset,
    holdout: Dataset,
    columns: list[str],
    keys: list[str],
    secrets: list[str],
    n_attacks: int,
    seed: int,
) -> dict[str, Any]:
    """The attack suite, the keys as the intruder's knowledge and each secret guessed in turn."""
    from safemicro.attack import privacy_attacks

    frames = [d.frame.select(columns) for d in (real, synth, holdout)]
    known = [k for k in keys if k in columns] or None
    return privacy_attacks(
        *frames,
        n_attacks=n_attacks,
        aux_cols=known,
        seed=seed,
        secret=[s for s in secrets if s in columns and s not in (known or [])] or None,
    )


def _attack_rows(attacks: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(check label, short name, result) for each attack that ran."""
    so = attacks.get("singling_out") or {}
    rows = [
        ("singling-out risk (univariate)", "singling out, univariate", so.get("univariate")),
        ("singling-out risk (multivariate)", "singling out, multivariate", so.get("multivariate")),
        ("linkability risk", "linkability", attacks.get("linkability")),
    ]
    for secret, r in (attacks.get("inference") or {}).items():
        rows.append((f"inference risk of {secret}", f"inference: {secret}", r))
    rows.append(("membership-inference risk", "membership", attacks.get("membership")))
    return [(label, name, r) for label, name, r in rows if r and r.get("risk") is not None]


def _summary(q, prop, km, tstr_rows, priv) -> dict[str, Any]:
    """Headline numbers, and pass/fail for each privacy check that has a reference."""
    qd = priv.get("q_delta") or {}
    ru = priv.get("replicated_uniques") or {}
    em = priv.get("exact_matches") or {}
    dcr = priv.get("dcr") or {}
    checks = []
    if qd and "error" not in qd:
        checks.append(
            {
                "check": "Q_δ at most its bootstrap threshold",
                "value": qd["q_delta"],
                "reference": qd["threshold"],
                "passed": qd["passed"],
            }
        )
    if ru:
        checks.append(
            {
                "check": "no replicated uniques on the keys",
                "value": ru["count"],
                "reference": 0,
                "passed": ru["count"] == 0,
            }
        )
    if em.get("holdout_in_train") is not None:
        checks.append(
            {
                "check": "exact copies of training rows no more frequent than for the holdout",
                "value": em["synth_in_train"],
                "reference": em["holdout_in_train"],
                "passed": em["synth_in_train"] <= em["holdout_in_train"],
            }
        )
    if dcr.get("tail_share") is not None:
        # three standard errors of a share estimated from both samples (one-sided, ~0.1 %)
        n_s, n_h = dcr["synth_to_train"]["n"], dcr["holdout_to_train"]["n"]
        p = dcr["tail_expected"]
        margin = 3 * math.sqrt(p * (1 - p) * (1 / max(n_s, 1) + 1 / max(n_h, 1)))
        checks.append(
            {
                "check": "synthetic records no closer to the training data than fresh ones "
                "(share below the holdout's 5th percentile of DCR)",
                "value": dcr["tail_share"],
                "reference": dcr["tail_expected"] + margin,
                "passed": dcr["tail_share"] <= dcr["tail_expected"] + margin,
            }
        )
    attacks = priv.get("attacks") or {}
    for label, name, r in _attack_rows(attacks):
        if name == "singling out, multivariate":
            continue  # no fixed reference: compare with baselines (see the README)
        lower = (r.get("ci") or [r["risk"]])[0]
        # fail when the whole interval lies above the limit; a point estimate above it whose
        # interval reaches below is a warning (more attacks or a look at that variable)
        status = "pass" if r["risk"] <= ATTACK_RISK_LIMIT else "fail" if lower > ATTACK_RISK_LIMIT else "warn"
        checks.append(
            {
                "check": f"{label} at most {ATTACK_RISK_LIMIT}",
                "value": r["risk"],
                "reference": ATTACK_RISK_LIMIT,
                "passed": status != "fail",
                "status": status,
                "ci": r.get("ci"),
            }
        )
    return {
        "quality": q["score"],
        "column_shapes": q["column_shapes"],
        "column_pair_trends": q["column_pair_trends"],
        "pmse": prop.get("pmse"),
        "pmse_ratio": prop.get("ratio"),
        "k_marginal": km.get("score"),
        "tstr": [
            {
                "target": r["target"],
                **({"real": r["train_real"], "synthetic": r["train_synthetic"]} if "train_real" in r else {}),
            }
            for r in tstr_rows
        ],
        "attacks": {name: r["risk"] for _, name, r in _attack_rows(attacks)} or None,
        "privacy_checks": checks,
        "privacy_passed": all(c["passed"] for c in checks) if checks else None,
        "privacy_warnings": [c["check"] for c in checks if c.get("status") == "warn"],
    }
