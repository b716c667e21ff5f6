"""Pairwise linkage within blocks: Gower-like distance and Fellegi–Sunter (EM for m and u)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.record_linkage.encoding import LinkOutcome, _distinct, _Encoded
from safemicro.keys import combine_codes, encode_column
from safemicro.utility.tables import common_dtype

CHUNK = 2_000_000  # pair comparisons computed at a time


def _blocks(release: pl.DataFrame, aux: pl.DataFrame, block: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Block id per row of both files (0 = some blocking value missing: a wildcard block)."""
    n_r = release.height
    if not block:
        return np.ones(n_r, dtype=np.int64), np.ones(aux.height, dtype=np.int64)
    cols, cards, missing = [], [], np.zeros(n_r + aux.height, dtype=bool)
    for name in block:
        r, a = common_dtype(release.get_column(name), aux.get_column(name))
        codes, card = encode_column(pl.concat([r.rename("v"), a.rename("v")]))
        cols.append(codes)
        cards.append(card)
        missing |= codes == 0
    combined, _ = combine_codes(cols, cards)
    _, ids = np.unique(combined, return_inverse=True)
    ids = ids.ravel() + 1
    ids[missing] = 0
    return ids[:n_r], ids[n_r:]


def _pairs(r_block: np.ndarray, a_block: np.ndarray, r_rows: np.ndarray, a_rows: np.ndarray):
    """Yield (aux rows, release rows) of candidate pairs, block by block, in chunks.

    ``r_rows``/``a_rows`` are the distinct-row representatives; a release row in the
    wildcard block 0 is a candidate for every auxiliary row, an auxiliary row in block 0
    for every released row.
    """
    rb, ab = r_block[r_rows], a_block[a_rows]
    r_idx_all = np.arange(len(r_rows))
    wild_r = r_idx_all[rb == 0]
    for b in np.unique(ab):
        ai = np.flatnonzero(ab == b)
        ri = r_idx_all if b == 0 else np.concatenate([np.flatnonzero(rb == b), wild_r])
        if len(ri) == 0:
            continue
        step = max(1, CHUNK // max(len(ri), 1))
        for s in range(0, len(ai), step):
            yield ai[s : s + step], ri


def _pair_view(enc: _Encoded, a_rep: np.ndarray, r_rep: np.ndarray, ai: np.ndarray, ri: np.ndarray):
    """Observed and agreement masks (len(ai), len(ri), m) and numeric gaps for the pairs."""
    A = enc.a_codes[a_rep[ai]][:, None, :]
    R = enc.r_codes[r_rep[ri]][None, :, :]
    observed = (A > 0) & (R > 0)
    gap = np.abs(enc.a_num[a_rep[ai]][:, None, :] - enc.r_num[r_rep[ri]][None, :, :])
    return A, R, observed, gap


def _distance_chunk(enc: _Encoded, a_rep, r_rep, ai, ri) -> np.ndarray:
    A, R, observed, gap = _pair_view(enc, a_rep, r_rep, ai, ri)
    num = np.array(enc.numeric)
    d = np.where(num, np.where(np.isnan(gap), 0.0, np.minimum(gap, 1.0)), (A != R).astype(np.float64))
    return np.where(observed, d, 0.0).sum(axis=2) / len(enc.columns)


def _agreement_chunk(enc: _Encoded, a_rep, r_rep, ai, ri, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    A, R, observed, gap = _pair_view(enc, a_rep, r_rep, ai, ri)
    num = np.array(enc.numeric)
    agree = np.where(num, np.nan_to_num(gap, nan=np.inf) <= tolerance, A == R) & observed
    return agree, observed


def _pattern_ids(agree: np.ndarray, observed: np.ndarray) -> np.ndarray:
    m = agree.shape[-1]
    w = 1 << np.arange(m, dtype=np.int64)
    return (agree * w).sum(axis=-1) + ((observed * w).sum(axis=-1) << m)


def fellegi_sunter_em(
    patterns: np.ndarray,
    weights: np.ndarray,
    m: int,
    *,
    p0: float = 0.01,
    iterations: int = 500,
    tol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray, float]:
    """m- and u-probabilities of agreement per column and the match share p, by EM.

    ``patterns``: distinct comparison patterns (agree bits | observed bits << m) with their
    pair counts ``weights``. Conditional independence between columns given match status;
    columns unobserved in a pair drop out of its likelihood. ``p0`` starts the match share
    (at most one match per auxiliary record: auxiliary records / pairs is the natural start),
    the m-probabilities start at 0.95 and the u-probabilities at the agreement rates of all
    pairs (nearly all of them non-matches). The match share never exceeds ``p0``: without that
    bound EM drifts to any other latent structure of the comparisons (correlated columns).
    """
    bits = np.arange(m)
    agree = ((patterns[:, None] >> bits) & 1).astype(np.float64)
    obs = ((patterns[:, None] >> (bits + m)) & 1).astype(np.float64)
    total = weights.sum()
    u = np.clip((weights[:, None] * agree).sum(0) / np.maximum((weights[:, None] * obs).sum(0), 1), 1e-4, 0.5)
    mm = np.full(m, 0.95)
    p = p_max = float(np.clip(p0, 1e-9, 0.5))
    for _ in range(iterations):
        log_m = obs * (agree * np.log(mm) + (1 - agree) * np.log1p(-mm))
        log_u = obs * (agree * np.log(u) + (1 - agree) * np.log1p(-u))
        lm = np.log(p) + log_m.sum(1)
        lu = np.log1p(-p) + log_u.sum(1)
        g = 1.0 / (1.0 + np.exp(np.clip(lu - lm, -700, 700)))
        wg, wn = weights * g, weights * (1 - g)
        p_new = float(np.clip(wg.sum() / total, 1e-9, p_max))
        m_new = np.clip((wg[:, None] * agree).sum(0) / np.maximum((wg[:, None] * obs).sum(0), 1e-12), 1e-6, 1 - 1e-6)
        u_new = np.clip((wn[:, None] * agree).sum(0) / np.maximum((wn[:, None] * obs).sum(0), 1e-12), 1e-6, 1 - 1e-6)
        done = abs(p_new - p) < tol and np.abs(m_new - mm).max() < tol and np.abs(u_new - u).max() < tol
        p, mm, u = p_new, m_new, u_new
        if done:
            break
    if (mm - u).mean() < 0:  # label switch: the "match" class must agree more
        mm, u, p = u, mm, 1 - p
    return mm, u, p


def _pairwise(
    enc: _Encoded,
    truth: np.ndarray,
    r_block: np.ndarray,
    a_block: np.ndarray,
    method: str,
    *,
    tolerance: float,
    max_distance: float | None,
) -> tuple[LinkOutcome, dict[str, Any]]:
    n_a = len(enc.a_codes)
    num_key = np.where(np.isnan(enc.r_num), -1.0, enc.r_num)
    r_rep, r_inv, r_cnt = _distinct(r_block, enc.r_codes, num_key)
    a_rep, a_inv, _ = _distinct(a_block, enc.a_codes, np.where(np.isnan(enc.a_num), -1.0, enc.a_num))
    n_da = len(a_rep)
    best = np.full(n_da, np.inf if method == "distance" else -np.inf)
    n_best = np.zeros(n_da)
    n_cand = np.zeros(n_da)
    total = np.zeros(n_da)  # Fellegi–Sunter: Σ count·LR over candidates
    claim = np.full(n_da, -1, dtype=np.int64)
    info: dict[str, Any] = {}
    m = len(enc.columns)

    if method == "fellegi_sunter":
        counts: dict[int, float] = {}
        a_cnt = np.bincount(a_inv, minlength=n_da).astype(np.float64)
        for ai, ri in _pairs(r_block, a_block, r_rep, a_rep):
            ids = _pattern_ids(*_agreement_chunk(enc, a_rep, r_rep, ai, ri, tolerance))
            w = a_cnt[ai][:, None] * r_cnt[ri][None, :]
            uniq, inv = np.unique(ids.ravel(), return_inverse=True)
            sums = np.bincount(inv.ravel(), weights=w.ravel())
            for pid, s in zip(uniq.tolist(), sums.tolist()):
                counts[pid] = counts.get(pid, 0.0) + s
        pats = np.array(sorted(counts), dtype=np.int64)
        n_pairs = float(sum(counts.values()))
        mm, uu, p = fellegi_sunter_em(
            pats, np.array([counts[k] for k in pats.tolist()]), m, p0=min(n_a, len(enc.r_codes)) / max(n_pairs, 1.0)
        )
        prior = float(min(1.0, p * n_pairs / max(n_a, 1)))
        info = {
            "m": dict(zip(enc.columns, mm.tolist())),
            "u": dict(zip(enc.columns, uu.tolist())),
            "match_share": p,
            "candidate_pairs": n_pairs,
            "match_prior": prior,
        }
        w_agree, w_dis = np.log(mm / uu), np.log((1 - mm) / (1 - uu))

    def score(ai, ri):
        if method == "distance":
            return _distance_chunk(enc, a_rep, r_rep, ai, ri)
        agree, observed = _agreement_chunk(enc, a_rep, r_rep, ai, ri, tolerance)
        return np.where(observed, np.where(agree, w_agree, w_dis), 0.0).sum(axis=2)

    for ai, ri in _pairs(r_block, a_block, r_rep, a_rep):
        s = score(ai, ri)
        c = r_cnt[ri][None, :]
        if method == "distance":
            if max_distance is not None:
                s = np.where(s <= max_distance + 1e-12, s, np.inf)
            top = s.min(axis=1)
            better = top < best[ai] - 1e-12
            tie = np.abs(s - top[:, None]) <= 1e-12
        else:
            top = s.max(axis=1)
            better = top > best[ai] + 1e-9
            tie = np.abs(s - top[:, None]) <= 1e-9
            shift = np.where(np.isfinite(best[ai]), np.maximum(best[ai], top), top)
            # running Σ count·exp(score) kept relative to the best score so far
            total[ai] = total[ai] * np.exp(np.where(np.isfinite(best[ai]), best[ai] - shift, 0.0)) + (
                c * np.exp(s - shift[:, None])
            ).sum(axis=1)
        k_top = (tie * c).sum(axis=1)
        same = np.abs(top - best[ai]) <= 1e-9
        n_best[ai] = np.where(better, k_top, np.where(same, n_best[ai] + k_top, n_best[ai]))
        first = ri[np.argmax(tie, axis=1)]
        claim[ai] = np.where(better | (claim[ai] < 0) & np.isfinite(top), first, claim[ai])
        best[ai] = np.where(better, top, best[ai])
        n_cand[ai] += c.sum()

    finite = np.isfinite(best)
    n_best = np.where(finite, n_best, 0.0)
    if method == "distance":
        conf = np.where(n_best > 0, 1.0 / np.maximum(n_best, 1), 0.0)
        info = {"max_distance": max_distance}
    else:
        q = prior / np.maximum(n_cand, 1)
        # P(best is the match) = q·LR* / (q·Σ LR + 1 − prior), with scores relative to LR*
        conf = np.where(finite, q / (q * total + (1 - prior)), 0.0)
    # the true pair's score, compared with the best
    has = truth >= 0
    true_in = np.zeros(n_a, dtype=bool)
    if has.any():
        rows_a = np.flatnonzero(has)
        ta = a_inv[rows_a]
        tr = r_inv[truth[rows_a]]
        blocks_ok = (a_block[rows_a] == r_block[truth[rows_a]]) | (a_block[rows_a] == 0) | (r_block[truth[rows_a]] == 0)
        t_scores = np.empty(len(rows_a))
        for s0 in range(0, len(rows_a), 50_000):
            sl = slice(s0, s0 + 50_000)
            ai_, ri_ = ta[sl], tr[sl]
            A = enc.a_codes[a_rep[ai_]]
            R = enc.r_codes[r_rep[ri_]]
            obs = (A > 0) & (R > 0)
            gap = np.abs(enc.a_num[a_rep[ai_]] - enc.r_num[r_rep[ri_]])
            num = np.array(enc.numeric)
            if method == "distance":
                d = np.where(num, np.where(np.isnan(gap), 0.0, np.minimum(gap, 1.0)), (A != R).astype(float))
                t_scores[sl] = np.where(obs, d, 0.0).sum(axis=1) / m
            else:
                agree = np.where(num, np.nan_to_num(gap, nan=np.inf) <= tolerance, A == R) & obs
                t_scores[sl] = np.where(obs, np.where(agree, w_agree, w_dis), 0.0).sum(axis=1)
        b = best[ta]
        if method == "distance":
            hit = t_scores <= b + 1e-12
        else:
            hit = t_scores >= b - 1e-9
        true_in[rows_a] = hit & blocks_ok & np.isfinite(b)
    out = LinkOutcome(
        method,
        n_cand[a_inv],
        n_best[a_inv],
        conf[a_inv],
        true_in & (n_best[a_inv] > 0),
        has,
        np.where(claim[a_inv] >= 0, r_rep[np.maximum(claim[a_inv], 0)], -1),
    )
    return out, info
