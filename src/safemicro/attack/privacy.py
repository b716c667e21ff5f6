"""All release-level attacks in one call, for the evaluation of synthetic (or anonymized) data.

:func:`privacy_attacks` runs singling out (univariate and multivariate), linkability,
inference and membership inference of ``synthetic`` against the ``original`` records it was
made from, each with the ``control`` (holdout) records as the reference, and returns one
JSON-ready dict.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.common import prepare_frames
from safemicro.attack.inference import InferenceEvaluator
from safemicro.attack.linkability import LinkabilityEvaluator
from safemicro.attack.membership import MembershipEvaluator
from safemicro.attack.singling_out import SinglingOutEvaluator
from safemicro.errors import SafemicroError
from safemicro.jsonable import json_ready

__all__ = ["privacy_attacks", "MAX_SECRETS"]

MAX_SECRETS = 10  # inference attacks run when no secret is named


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n)]


def privacy_attacks(
    original: pl.DataFrame,
    synthetic: pl.DataFrame,
    control: pl.DataFrame | None,
    *,
    n_attacks: int = 500,
    secret: str | Sequence[str] | None = None,
    aux_cols: list[str] | None = None,
    seed: int = 0,
    n_neighbors: int = 10,
) -> dict[str, Any]:
    """Singling out, linkability, inference and membership risks of ``synthetic``.

    ``original``: the records the release was made from; ``control``: real records it was
    not made from (a holdout; ``None`` gives raw attack rates and no membership test).
    ``aux_cols``: what the intruder knows (default: every column but ``secret``); the
    linkability attack splits them into two files (first half, second half) and links two
    halves when they share one of their ``n_neighbors`` nearest released records (10: with
    few columns per half, ties at distance 0 are common and a single neighbour would miss
    even released copies); the inference
    attack guesses ``secret`` (one column or several, each in turn) from them, or, without a
    secret, each column the intruder does
    not know (when ``aux_cols`` is given) or else each column from all the others, at most
    :data:`MAX_SECRETS` of them in column order. Every risk is
    (attack − control)/(1 − control) with a 95 % Wilson-based interval (see
    :mod:`safemicro.attack.stats`).
    """
    ori, syn, ctl, columns = prepare_frames(original, synthetic, control)
    named = [secret] if isinstance(secret, str) else list(secret or [])
    for c in named:
        if c not in columns:
            raise SafemicroError("the secret is not a column of the original data", column=c)
    if aux_cols is not None:
        for c in aux_cols:
            if c not in columns:
                raise SafemicroError("auxiliary column not in the original data", column=c)
    known = [c for c in (aux_cols if aux_cols is not None else columns) if c not in named]
    if named:
        secrets = [(c, known) for c in named]
    elif aux_cols is not None and [c for c in columns if c not in known]:
        secrets = [(c, known) for c in columns if c not in known]
    else:
        secrets = [(c, [k for k in known if k != c]) for c in known]
    notes = []
    if len(secrets) > MAX_SECRETS:
        notes.append(f"inference run on the first {MAX_SECRETS} of {len(secrets)} candidate secrets")
        secrets = secrets[:MAX_SECRETS]
    seeds = iter(_seeds(seed, 6 + len(secrets)))
    out: dict[str, Any] = {
        "kind": "attacks",
        "n_attacks": n_attacks,
        "columns": columns,
        "aux_cols": known,
        "n_original": ori.height,
        "n_synthetic": syn.height,
        "n_control": None if ctl is None else ctl.height,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        so = {}
        for mode in ("univariate", "multivariate"):
            ev = SinglingOutEvaluator(
                ori, syn, ctl, n_attacks=n_attacks, n_cols=min(3, len(columns)), seed=next(seeds)
            ).evaluate(mode)
            so[mode] = ev.results()
        out["singling_out"] = so
        if len(known) >= 2:
            half = math.ceil(len(known) / 2)
            out["linkability"] = (
                LinkabilityEvaluator(
                    ori,
                    syn,
                    ctl,
                    aux_cols=(known[:half], known[half:]),
                    n_attacks=n_attacks,
                    n_neighbors=n_neighbors,
                    seed=next(seeds),
                )
                .evaluate()
                .results()
            )
        else:
            next(seeds)
            out["linkability"] = None
            notes.append("linkability needs at least two known columns")
        inference = {}
        for s, k in secrets:
            if not k:
                continue
            inference[s] = (
                InferenceEvaluator(ori, syn, ctl, aux_cols=k, secret=s, n_attacks=n_attacks, seed=next(seeds))
                .evaluate()
                .results()
            )
        out["inference"] = inference
        if inference:
            worst = max(inference, key=lambda s: inference[s]["risk"])
            out["inference_max"] = {"secret": worst, "risk": inference[worst]["risk"], "ci": inference[worst]["ci"]}
        else:
            out["inference_max"] = None
        out["membership"] = (
            None
            if ctl is None
            else MembershipEvaluator(ori, syn, ctl, n_attacks=n_attacks, seed=next(seeds)).evaluate().results()
        )
        if ctl is None:
            notes.append("no control set: risks are raw attack success rates, and membership is not tested")
    out["notes"] = notes
    return json_ready(out)
