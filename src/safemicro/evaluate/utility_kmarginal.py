"""The NIST CRC (SDNist 2.4) k-marginal score: percentile or fixed-edge bins, then the
total variation distance of every pair (or group × pair) table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.evaluate.utility_quality import CONTINUOUS, _floats
from safemicro.keys import dense_ids
from safemicro.synth.safeguards import encode_together


def _percentile_bins(real: np.ndarray, synth: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """SDNist 2.4's binning of a number: real values by percentile rank, bin = ⌊n_bins·rank/n⌋
    (average rank of ties; the top value in the last bin); synthetic values into the real bin
    whose largest value is the first at least as large, above the last but one into the last.
    Missing values get bin −1."""
    r_ok, s_ok = ~np.isnan(real), ~np.isnan(synth)
    r_bins = np.full(len(real), -1, dtype=np.int64)
    s_bins = np.full(len(synth), -1, dtype=np.int64)
    values = real[r_ok]
    if len(values) == 0:
        return r_bins, s_bins
    from scipy.stats import rankdata

    pct = rankdata(values, method="average") / len(values)
    b = np.where(pct < 1, np.floor(n_bins * pct), n_bins - 1).astype(np.int64)
    r_bins[r_ok] = b
    labels = np.unique(b)
    upper = np.array([values[b == lab].max() for lab in labels])  # one per bin, not per record
    pos = np.searchsorted(upper[:-1], synth[s_ok], side="left")
    s_bins[s_ok] = labels[pos]
    return r_bins, s_bins


def _nist_density_edges(top: float = 52864.7) -> list[float]:
    """SDNist 2.4's DENSITY bins: 20 log-spaced bins from 10 to max + 500, the lowest eight
    replaced by [0, 150]."""
    logs = np.logspace(1.0, math.log10(top + 500), 21)
    return [0.0, 150.0, *map(float, logs[8:])]


NIST_CRC = {"group": "PUMA", "exclude": ("INDP",), "edges": {"DENSITY": _nist_density_edges()}}


def k_marginal(
    real: pl.DataFrame,
    synth: pl.DataFrame,
    kinds: Mapping[str, str],
    *,
    group: str | None = None,
    exclude: Sequence[str] = (),
    n_bins: int = 20,
    edges: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """The NIST CRC k-marginal score as SDNist 2.4 computes it (our own code).

    Numbers with more than ``n_bins`` distinct values are binned by their percentile rank in
    the real data (:func:`_percentile_bins`), or into the intervals (e_i, e_i+1] of
    ``edges[column]`` when given (values beyond them go to the end bins); other columns are
    taken as they are, missing as a category. For every pair of columns (all pairs, ``group`` and ``exclude`` left out)
    the real and synthetic shares of the cells of the (group ×) pair table are compared:
    score = 1000 · (1 − mean over pairs of TVD), TVD = ½·Σ|real share − synthetic share|.
    With ``group`` (SDNist: PUMA) the marginals are 3-way and ``groups`` gives each group's
    score, its TVD capped at the group's real share and scaled by it, as SDNist does.
    SDNist reports ``int(score)``; for NIST CRC data pass ``**NIST_CRC`` (PUMA groups, INDP
    left out, DENSITY on SDNist's log scale).
    """
    for name in [group, *exclude]:
        if name is not None and name not in real.columns:
            raise SafemicroError("the real data has no such column", column=name)
    names = [n for n in real.columns if n != group and n not in exclude and kinds.get(n) != "id"]
    cols: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    binned = []
    for name in names + ([group] if group else []):
        r, s = real.get_column(name), synth.get_column(name)
        fr = _floats(r) if kinds.get(name) in CONTINUOUS else None
        if fr is not None and edges and name in edges:
            cuts = np.asarray(edges[name], dtype=np.float64)
            r, s = (
                pl.Series(np.clip(np.searchsorted(cuts, x, side="left") - 1, 0, len(cuts) - 2)).set(
                    pl.Series(np.isnan(x)), None
                )
                for x in (fr, _floats(s))
            )
            binned.append(name)
        elif fr is not None and len(np.unique(fr[~np.isnan(fr)])) > n_bins:
            rb, sb = _percentile_bins(fr, _floats(s), n_bins)
            r, s = pl.Series(rb), pl.Series(sb)
            binned.append(name)
        (cr, cs), card = encode_together([r, s])
        cols[name] = (cr, cs, card)
    if group:
        gr, gs, gcard = cols[group]
    else:
        gr, gs, gcard = np.zeros(real.height, np.int64), np.zeros(synth.height, np.int64), 0
    pairs = list(combinations(names, 2)) if len(names) > 1 else [(names[0], names[0])] if names else []
    if not pairs or real.height == 0 or synth.height == 0:
        return {"score": None, "pairs": len(pairs), "group": group, "groups": None}
    n_groups = gcard + 1
    g_real = np.bincount(gr, minlength=n_groups) / real.height
    total, group_sum = 0.0, np.zeros(n_groups)
    for a, b in pairs:
        (ra, sa, ca), (rb, sb, cb) = cols[a], cols[b]
        cell_r = (gr * (ca + 1) + ra) * (cb + 1) + rb
        cell_s = (gs * (ca + 1) + sa) * (cb + 1) + sb
        ids, _ = dense_ids(np.concatenate([cell_r, cell_s]), n_groups * (ca + 1) * (cb + 1))
        size = int(ids.max()) + 1
        tr = np.bincount(ids[: len(cell_r)], minlength=size) / real.height
        ts = np.bincount(ids[len(cell_r) :], minlength=size) / synth.height
        diff = np.abs(tr - ts)
        total += diff.sum()
        if group:
            cell_group = np.zeros(size, np.int64)
            cell_group[ids] = np.concatenate([gr, gs])
            group_sum += np.minimum(np.bincount(cell_group, weights=diff, minlength=n_groups), g_real)
    mean = total / len(pairs)
    out: dict[str, Any] = {
        "score": float((2 - mean) * 500),
        "pairs": len(pairs),
        "group": group,
        "groups": None,
        "binned": binned,
    }
    if group:
        present, first = np.unique(gr, return_index=True)  # groups of the real data
        labels = real.get_column(group).cast(pl.String).gather(first).to_list()
        out["groups"] = {
            str(lab): float((1 - group_sum[g] / g_real[g] / len(pairs)) * 1000) for g, lab in zip(present, labels)
        }
    return out
