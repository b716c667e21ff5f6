"""Privacy of synthetic data: does it repeat the real records it was made from?

Everything is measured against a *holdout* — real records the synthesizer never saw — so
that each rate has its natural reference: fresh real data also sit at some distance from the
training data and also share some records and key combinations with it.

* distance to closest record (DCR) of synthetic and holdout records to the training data,
  and the share of synthetic records closer than the holdout's 5th percentile (≈ 0.05 when
  nothing is copied);
* Q_δ against its bootstrap threshold (:func:`safemicro.synth.safeguards.q_delta_check`);
* replicated uniques on the key variables, against the holdout's rate;
* exact-match rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.synth.safeguards import (
    exact_match_rates,
    nearest_distances,
    q_delta_check,
    replicated_uniques,
)

__all__ = ["dcr_summary", "replicated_unique_rates", "privacy"]

TAIL = 0.05  # DCR tail: share of synthetic records closer than the holdout's 5th percentile
HIST_BINS = 30


def _stats(d: np.ndarray) -> dict[str, float | None]:
    if len(d) == 0:
        return {"n": 0, "min": None, "p05": None, "median": None, "mean": None, "zero_share": None}
    return {
        "n": int(len(d)),
        "min": float(d.min()),
        "p05": float(np.quantile(d, TAIL)),
        "median": float(np.median(d)),
        "mean": float(d.mean()),
        "zero_share": float((d == 0).mean()),
    }


def dcr_summary(
    train: pl.DataFrame,
    synth: pl.DataFrame,
    holdout: pl.DataFrame | None,
    kinds: Mapping[str, str],
) -> dict[str, Any]:
    """DCR of synthetic (and holdout) records to the training data, in one embedding."""
    queries = [synth] if holdout is None else [synth, holdout]
    dists = nearest_distances(train, *queries, kinds=kinds)
    d_s = dists[0]
    out: dict[str, Any] = {
        "synth_to_train": _stats(d_s),
        "holdout_to_train": None,
        "tail_share": None,
        "tail_expected": TAIL,
        "histogram": None,
    }
    finite = d_s[np.isfinite(d_s)]
    if holdout is not None:
        d_h = dists[1]
        out["holdout_to_train"] = _stats(d_h)
        if len(d_h) and len(d_s):
            out["tail_share"] = float((d_s <= np.quantile(d_h, TAIL)).mean())
        finite = np.concatenate([finite, d_h[np.isfinite(d_h)]])
    if len(finite):
        edges = np.histogram_bin_edges(finite, bins=HIST_BINS)
        hist = {"edges": [float(e) for e in edges], "synthetic": [int(c) for c in np.histogram(d_s, edges)[0]]}
        if holdout is not None:
            hist["holdout"] = [int(c) for c in np.histogram(dists[1], edges)[0]]
        out["histogram"] = hist
    return out


def replicated_unique_rates(
    train: pl.DataFrame, synth: pl.DataFrame, holdout: pl.DataFrame | None, keys: Sequence[str]
) -> dict[str, Any]:
    """Replicated uniques of the synthetic data and, as the natural rate, of the holdout."""
    mask = replicated_uniques(train, synth, keys)
    out: dict[str, Any] = {
        "keys": list(keys),
        "count": int(mask.sum()),
        "share": float(mask.mean()) if len(mask) else None,
        "holdout_count": None,
        "holdout_share": None,
    }
    if holdout is not None:
        ref = replicated_uniques(train, holdout, keys)
        out["holdout_count"] = int(ref.sum())
        out["holdout_share"] = float(ref.mean()) if len(ref) else None
    return out


def privacy(
    raw: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None],
    analysis: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None],
    kinds: Mapping[str, str],
    *,
    keys: Sequence[str] | None,
    n_boot: int = 100,
    seed: int | None = None,
) -> dict[str, Any]:
    """The privacy section: DCR, Q_δ, replicated uniques and exact matches.

    ``raw`` frames (values as released) serve the exact comparisons; ``analysis`` frames
    (numbers parsed) and the distance ``kinds`` serve the distances.
    """
    train, synth, holdout = raw
    a_train, a_synth, a_holdout = analysis
    dkinds = {n: ("numeric" if k in ("numeric", "datetime") else "categorical") for n, k in kinds.items() if k != "id"}
    q_delta = None
    if dkinds:
        try:
            q_delta = q_delta_check(a_train, a_synth, a_holdout, n_boot=n_boot, seed=seed, kinds=dkinds)
        except SafemicroError as e:  # too few records for the bootstrap
            q_delta = {"error": e.message}
    return {
        "dcr": dcr_summary(a_train, a_synth, a_holdout, dkinds) if dkinds else None,
        "q_delta": q_delta,
        "replicated_uniques": replicated_unique_rates(train, synth, holdout, keys) if keys else None,
        "exact_matches": exact_match_rates(synth, train, holdout),
    }
