"""Linkage (mosaic) attack: can an intruder holding other files find people in the release?

The intruder holds one or more *auxiliary* files — a registration list, a distribution list,
another survey — with some columns in common with the released file, and tries to link each
auxiliary person to the released record that is theirs. Three ways of linking:

* ``exact``: candidates are the released records that agree with the auxiliary record on
  every shared column; a missing value on either side (a suppressed cell, an unknown fact)
  is a wildcard, as in sdcMicro's frequency counts. The intruder picks one candidate at
  random, so a claim is right with probability 1/(number of candidates). Vectorised on the
  key-table codes: one join per pair of missing-value patterns, never a loop over records.
* ``distance``: Gower-like distance (categorical: 0 if equal, 1 if not; numeric: absolute
  difference over the range of both files; missing: 0), averaged over the columns; the
  intruder claims one of the nearest released records. Blocked on exact columns.
* ``fellegi_sunter``: probabilistic record linkage. Agreement patterns of candidate pairs
  (within blocks) are counted on distinct rows; the m- and u-probabilities of agreement per
  column are estimated by EM under conditional independence; each pair gets the likelihood
  ratio Π(m/u)^γ((1−m)/(1−u))^(1−γ), and the confidence of the best candidate is its
  posterior share, with the no-match alternative weighted by the estimated match prior.

Several auxiliary files are combined on the intruder's identifier first (the *mosaic*):
what one list lacks another may hold.

Scoring uses the true identities (for evaluation only; the intruder never sees them): per
auxiliary person, whether the true record is among the best candidates, giving the
expected number of correct claims, the **true match rate** (correct claims over auxiliary
people who are in the release), the **precision** of claims, and the people
**re-identified** with confidence at least ``threshold``. The same is computed the other
way round, from each released record to the listed people (``release_side``): the
expected number of released records re-identified, the quantity sdcMicro's global risk
estimates from frequencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.gower import range_scaled
from safemicro.attack.stats import Rate, Risk, residual_risk, wilson
from safemicro.errors import SafemicroError
from safemicro.keys import combine_codes, encode_column
from safemicro.utility.tables import common_dtype

__all__ = ["LinkageEvaluator", "LinkOutcome", "combine_auxiliary", "link_records", "METHODS"]

METHODS = ("exact", "distance", "fellegi_sunter")
CHUNK = 2_000_000  # pair comparisons computed at a time
FK_CLASSES = ((1, 1, "1"), (2, 2, "2"), (3, 4, "3-4"), (5, 9, "5-9"), (10, None, "10+"))


def _frame(data: Any, what: str) -> pl.DataFrame:
    from safemicro.io.dataset import Dataset

    if isinstance(data, Dataset):
        return data.frame
    if isinstance(data, pl.DataFrame):
        return data
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pl.from_pandas(data)
    except ImportError:  # pragma: no cover
        pass
    raise SafemicroError(f"the {what} data must be a Polars or pandas frame, got {type(data).__name__}")


def _source(data: Any) -> str | None:
    return getattr(data, "source", None)


def _kind(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal():
        return "date/time"
    return "text"


def check_inputs(
    release: pl.DataFrame,
    aux: pl.DataFrame,
    on: Sequence[str],
    *,
    release_file: str | None = None,
    aux_file: str | None = None,
) -> None:
    """Empty files, linking columns missing from either file and type mismatches are errors."""
    if release.height == 0:
        raise SafemicroError("the released file has no records", file=release_file)
    if aux.height == 0:
        raise SafemicroError("the auxiliary file has no records", file=aux_file)
    if not on:
        raise SafemicroError("the auxiliary file shares no column with the release to link on", file=aux_file)
    for name in on:
        if name not in aux.columns:
            raise SafemicroError("the auxiliary file has no such column", file=aux_file, column=name)
        if name not in release.columns:
            raise SafemicroError("the auxiliary column is not in the released file", file=release_file, column=name)
        kr, ka = _kind(release.schema[name]), _kind(aux.schema[name])
        if kr != ka:
            bad = aux.get_column(name)
            row = None
            if ka == "text" and kr == "number":  # name the first value that is not a number
                parsed = bad.cast(pl.Float64, strict=False)
                idx = np.flatnonzero((parsed.is_null() & bad.is_not_null()).to_numpy())
                row = int(idx[0]) + 1 if len(idx) else None
            raise SafemicroError(
                f"type mismatch: {kr} in the release, {ka} in the auxiliary file",
                file=aux_file, column=name, row=row,
            )
        if release.get_column(name).null_count() == release.height:
            raise SafemicroError("the column is missing for every released record", file=release_file, column=name)


def combine_auxiliary(frames: Sequence[pl.DataFrame], on: str, *, files: Sequence[str | None] | None = None) -> pl.DataFrame:
    """The mosaic: auxiliary files joined on the intruder's identifier ``on`` (full join).

    A column held by several files takes the first file's value where it has one, else the
    next file's. Identifiers repeated within a file are an error (a list names a person once).
    """
    files = list(files) if files is not None else [None] * len(frames)
    out: pl.DataFrame | None = None
    for frame, file in zip(frames, files):
        if on not in frame.columns:
            raise SafemicroError("the auxiliary file has no identifier column", file=file, column=on)
        if frame.height == 0:
            raise SafemicroError("the auxiliary file has no records", file=file)
        dup = frame.get_column(on).is_duplicated().to_numpy()
        if dup.any():
            raise SafemicroError("identifier repeated in the auxiliary file", file=file, column=on,
                                 row=int(np.flatnonzero(dup)[0]) + 1)
        if out is None:
            out = frame
            continue
        shared = [c for c in frame.columns if c in out.columns and c != on]
        for c in shared:
            if _kind(out.schema[c]) != _kind(frame.schema[c]):
                raise SafemicroError(f"type mismatch between auxiliary files: {_kind(out.schema[c])} "
                                     f"and {_kind(frame.schema[c])}", file=file, column=c)
        left_id, right_id = common_dtype(out.get_column(on), frame.get_column(on))
        right = frame.with_columns(right_id.alias(on)).rename({c: f"{c}__right" for c in shared})
        joined = out.with_columns(left_id.alias(on)).join(right, on=on, how="full", coalesce=True)
        fixes = []
        for c in shared:
            a, b = common_dtype(joined.get_column(c), joined.get_column(f"{c}__right"))
            fixes.append(pl.Series(c, a).fill_null(pl.Series(b)) if a.dtype == b.dtype else a)
        out = joined.with_columns(fixes).drop([f"{c}__right" for c in shared])
    assert out is not None
    return out


# -- encoding -------------------------------------------------------------------------------


@dataclass
class _Encoded:
    """Both files on the linking columns: categorical codes (0 = missing) and scaled numbers."""

    columns: list[str]
    numeric: list[bool]
    r_codes: np.ndarray  # (n_r, m) int codes, 0 = missing
    a_codes: np.ndarray
    cards: list[int]
    r_num: np.ndarray  # (n_r, m) values / range, NaN = missing (numeric columns only)
    a_num: np.ndarray


def _encode(release: pl.DataFrame, aux: pl.DataFrame, on: Sequence[str], numeric: Sequence[str]) -> _Encoded:
    n_r = release.height
    r_codes, a_codes, cards, r_num, a_num, is_num = [], [], [], [], [], []
    for name in on:
        r, a = common_dtype(release.get_column(name), aux.get_column(name))
        both = pl.concat([r.rename("v"), a.rename("v")])
        codes, card = encode_column(both)
        r_codes.append(codes[:n_r])
        a_codes.append(codes[n_r:])
        cards.append(card)
        if name in numeric:
            x = range_scaled(both)
            r_num.append(x[:n_r])
            a_num.append(x[n_r:])
            is_num.append(True)
        else:
            r_num.append(np.full(n_r, np.nan))
            a_num.append(np.full(aux.height, np.nan))
            is_num.append(False)
    return _Encoded(
        columns=list(on), numeric=is_num,
        r_codes=np.column_stack(r_codes), a_codes=np.column_stack(a_codes), cards=cards,
        r_num=np.column_stack(r_num), a_num=np.column_stack(a_num),
    )


def _pattern(codes: np.ndarray) -> np.ndarray:
    """Missing-value pattern of each row as a bit mask (bit j set: column j missing)."""
    m = codes.shape[1]
    return ((codes == 0) * (1 << np.arange(m, dtype=np.int64))).sum(axis=1)


def _project(codes: np.ndarray, positions: np.ndarray, cards: list[int]) -> np.ndarray:
    if len(positions) == 0:
        return np.zeros(len(codes), dtype=np.int64)
    return combine_codes([codes[:, j] for j in positions], [cards[j] for j in positions])[0]


def _distinct(*arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of the stacked columns: (representative rows, inverse, counts)."""
    stacked = np.column_stack(arrays)
    _, first, inverse, counts = np.unique(stacked, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return first, inverse.ravel(), counts


# -- outcome ----------------------------------------------------------------------------------


@dataclass
class LinkOutcome:
    """What the intruder gets per auxiliary record, and whether it is right.

    ``n_candidates``: released records the intruder could not rule out; ``n_best``: those
    tied at the best score (the intruder claims one of them at random); ``confidence``: the
    intruder's probability that the claim is right (0 without a claim); ``true_in_best``:
    the true record is among the best (so the claim is right with probability 1/n_best);
    ``in_release``: the person is in the release at all.
    """

    method: str
    n_candidates: np.ndarray
    n_best: np.ndarray
    confidence: np.ndarray
    true_in_best: np.ndarray
    in_release: np.ndarray
    claimed: np.ndarray  # a released row among the best (-1: no claim)

    @property
    def expected_correct(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.true_in_best & (self.n_best > 0), 1.0 / self.n_best, 0.0)

    @property
    def claims(self) -> np.ndarray:
        return self.n_best > 0

    def summary(self, threshold: float, confidence_level: float = 0.95) -> dict[str, Any]:
        correct = self.expected_correct
        n_aux = len(correct)
        n_in = int(self.in_release.sum())
        claims = self.claims
        sure = claims & (self.confidence >= threshold - 1e-12)
        out: dict[str, Any] = {
            "method": self.method,
            "n_auxiliary": n_aux,
            "n_in_release": n_in,
            "n_claims": int(claims.sum()),
            "expected_correct": float(correct.sum()),
            "true_match_rate": float(correct.sum() / n_in) if n_in else None,
            "precision": float(correct[claims].sum() / claims.sum()) if claims.any() else None,
            "threshold": threshold,
            "reidentified": int(sure.sum()),
            "reidentified_correct": float(correct[sure].sum()),
            "reidentified_precision": float(correct[sure].sum() / sure.sum()) if sure.any() else None,
            "max_claim_success": float((correct[claims] * 1.0).max()) if claims.any() else None,
        }
        if n_in:
            r = wilson(correct[self.in_release].sum(), n_in, confidence_level)
            out["true_match_rate_ci"] = list(r.ci)
        return out


def _truth_rows(release_ids: pl.Series | None, aux_ids: pl.Series | None, n_aux: int) -> np.ndarray:
    """Row of each auxiliary person's true released record (-1: not in the release)."""
    if release_ids is None or aux_ids is None:
        return np.full(n_aux, -1, dtype=np.int64)
    r, a = common_dtype(release_ids, aux_ids)
    if r.is_duplicated().any():
        dup = np.flatnonzero(r.is_duplicated().to_numpy())[0]
        raise SafemicroError("identity repeated in the released file: true identities must be "
                             "unique per record", column=release_ids.name, row=int(dup) + 1)
    left = pl.DataFrame({"id": r, "row": pl.int_range(0, len(r), eager=True)})
    mapped = pl.DataFrame({"id": a}).join(left, on="id", how="left", maintain_order="left")
    return mapped.get_column("row").fill_null(-1).to_numpy().astype(np.int64)


def _compatible_rows(enc: _Encoded, truth: np.ndarray) -> np.ndarray:
    """Auxiliary rows whose true released record agrees with them wherever both are observed."""
    ok = np.zeros(len(truth), dtype=bool)
    has = truth >= 0
    a = enc.a_codes[has]
    r = enc.r_codes[truth[has]]
    ok[has] = ((a == 0) | (r == 0) | (a == r)).all(axis=1)
    return ok


def _exact(enc: _Encoded, truth: np.ndarray) -> LinkOutcome:
    n_a = len(enc.a_codes)
    m = enc.a_codes.shape[1]
    count = np.zeros(n_a, dtype=np.float64)
    claimed = np.full(n_a, -1, dtype=np.int64)
    pat_r, pat_a = _pattern(enc.r_codes), _pattern(enc.a_codes)
    rows_r = {int(p): np.flatnonzero(pat_r == p) for p in np.unique(pat_r)}
    rows_a = {int(p): np.flatnonzero(pat_a == p) for p in np.unique(pat_a)}
    bits = np.arange(m)
    for pa, ia in rows_a.items():
        for pr, ir in rows_r.items():
            both = bits[(((pa | pr) >> bits) & 1) == 0]
            proj_r = _project(enc.r_codes[ir], both, enc.cards)
            proj_a = _project(enc.a_codes[ia], both, enc.cards)
            uniq, first, cnt = np.unique(proj_r, return_index=True, return_counts=True)
            pos = np.minimum(np.searchsorted(uniq, proj_a), len(uniq) - 1)
            hit = uniq[pos] == proj_a
            count[ia] += np.where(hit, cnt[pos], 0)
            take = hit & (claimed[ia] < 0)
            claimed[ia[take]] = ir[first[pos[take]]]
    true_in = _compatible_rows(enc, truth)
    with np.errstate(divide="ignore"):
        conf = np.where(count > 0, 1.0 / count, 0.0)
    return LinkOutcome("exact", count, count.copy(), conf, true_in & (count > 0), truth >= 0, claimed)


# -- pairwise methods (distance, Fellegi–Sunter) ------------------------------------------------


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
    patterns: np.ndarray, weights: np.ndarray, m: int, *, p0: float = 0.01, iterations: int = 500,
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
        mm, uu, p = fellegi_sunter_em(pats, np.array([counts[k] for k in pats.tolist()]), m,
                                      p0=min(n_a, len(enc.r_codes)) / max(n_pairs, 1.0))
        prior = float(min(1.0, p * n_pairs / max(n_a, 1)))
        info = {"m": dict(zip(enc.columns, mm.tolist())), "u": dict(zip(enc.columns, uu.tolist())),
                "match_share": p, "candidate_pairs": n_pairs, "match_prior": prior}
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
                c * np.exp(s - shift[:, None])).sum(axis=1)
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
    out = LinkOutcome(method, n_cand[a_inv], n_best[a_inv], conf[a_inv], true_in & (n_best[a_inv] > 0),
                      has, np.where(claim[a_inv] >= 0, r_rep[np.maximum(claim[a_inv], 0)], -1))
    return out, info


def link_records(
    release: pl.DataFrame,
    aux: pl.DataFrame,
    on: Sequence[str],
    *,
    truth_rows: np.ndarray | None = None,
    method: str = "exact",
    numeric: Sequence[str] = (),
    block: Sequence[str] = (),
    tolerance: float = 0.0,
    max_distance: float | None = None,
) -> tuple[LinkOutcome, dict[str, Any]]:
    """Link every auxiliary record to the release on ``on`` (see the module docstring).

    ``truth_rows``: per auxiliary record the row of its true released record (-1 if none).
    Returns the per-record outcome and method details (m/u probabilities for Fellegi–Sunter).
    """
    if method not in METHODS:
        raise SafemicroError(f"unknown linkage method {method!r}; use one of {', '.join(METHODS)}")
    truth = np.full(aux.height, -1, dtype=np.int64) if truth_rows is None else np.asarray(truth_rows, dtype=np.int64)
    enc = _encode(release, aux, list(on), list(numeric) if method != "exact" else [])
    if method == "exact":
        return _exact(enc, truth), {}
    r_block, a_block = _blocks(release, aux, list(block))
    return _pairwise(enc, truth, r_block, a_block, method, tolerance=tolerance, max_distance=max_distance)


def _default_numeric(release: pl.DataFrame, on: Sequence[str]) -> list[str]:
    """Columns compared as numbers by the distance methods: floats with fractions or more
    than 20 distinct values; other columns are categories."""
    out = []
    for name in on:
        s = release.get_column(name)
        if s.dtype.is_numeric() and s.dtype != pl.Boolean and s.n_unique() > 20:
            out.append(name)
    return out


def _fk_class(fk: np.ndarray) -> np.ndarray:
    labels = np.full(len(fk), "", dtype=object)
    for lo, hi, label in FK_CLASSES:
        sel = (fk >= lo) if hi is None else (fk >= lo) & (fk <= hi)
        labels[sel] = label
    return labels


class LinkageEvaluator:
    """Linkage attack on a released file with one or more auxiliary files (the mosaic).

    The scenario: an intruder holds lists of named people — a registration extract, a
    distribution list, another survey — that share some columns with the released file
    (site, household size, age, sex, ...). Joining the lists on the names, they try to find
    each listed person's record in the release, by exact agreement, by closeness or by
    probabilistic record linkage. The release is risky when many claims are right.

    True identities (``truth``: the identity column of the auxiliary files, and the same
    identities for the released records, as a column or as ``release_ids``) are used for
    scoring only. The baseline is an intruder who picks a released record at random.
    With ``household`` and ``aux_household`` (the household columns of the two files) the
    intruder also knows each listed household's whole composition and looks for released
    households of that size whose members all fit (see
    :func:`safemicro.attack.simulate.household_attack`).

    >>> ev = LinkageEvaluator(release, aux, truth="person_id").evaluate()   # doctest: +SKIP
    >>> ev.results()["true_match_rate"], ev.risk()                          # doctest: +SKIP
    """

    def __init__(
        self,
        release: Any,
        auxiliary: Any,
        *,
        truth: str,
        on: Sequence[str] | None = None,
        release_ids: Sequence[Any] | pl.Series | None = None,
        method: str = "exact",
        block: Sequence[str] = (),
        numeric: Sequence[str] | None = None,
        tolerance: float = 0.0,
        max_distance: float | None = None,
        threshold: float = 0.5,
        by: Sequence[str] = (),
        household: str | None = None,
        aux_household: str | None = None,
    ) -> None:
        if method not in METHODS:
            raise SafemicroError(f"unknown linkage method {method!r}; use one of {', '.join(METHODS)}")
        if not 0.0 < threshold <= 1.0:
            raise SafemicroError(f"threshold must lie in (0, 1], got {threshold}")
        self.release_file = _source(release)
        self.release = _frame(release, "released")
        auxes = list(auxiliary) if isinstance(auxiliary, (list, tuple)) else [auxiliary]
        if not auxes:
            raise SafemicroError("at least one auxiliary file is needed")
        self.aux_files = [_source(a) for a in auxes]
        frames = [_frame(a, "auxiliary") for a in auxes]
        for f, file in zip(frames, self.aux_files):
            if f.height == 0:
                raise SafemicroError("the auxiliary file has no records", file=file)
            if truth not in f.columns:
                raise SafemicroError("the auxiliary file has no identity column", file=file, column=truth)
        self.files_used = [[c for c in f.columns if c != truth and c in self.release.columns] for f in frames]
        self.aux = frames[0] if len(frames) == 1 else combine_auxiliary(frames, truth, files=self.aux_files)
        self.truth = truth
        not_keys = {truth, household, aux_household} - {None}
        if on is None:
            on = [c for c in self.aux.columns if c not in not_keys and c in self.release.columns]
        self.on = list(on)
        for c in self.on:
            if c in not_keys:
                raise SafemicroError("identity and household columns cannot be linking columns", column=c)
        check_inputs(self.release, self.aux, self.on, release_file=self.release_file,
                     aux_file=self.aux_files[0] if len(frames) == 1 else None)
        if release_ids is None:
            if truth not in self.release.columns:
                raise SafemicroError("the released file has no identity column for scoring (give the original "
                                     "file with the identities row by row: release_ids, --original)",
                                     file=self.release_file, column=truth)
            ids = self.release.get_column(truth)
        else:
            ids = pl.Series(truth, release_ids) if not isinstance(release_ids, pl.Series) else release_ids
            if len(ids) != self.release.height:
                raise SafemicroError(f"{len(ids)} identities for {self.release.height} released records",
                                     file=self.release_file)
        self.release_ids = ids.rename(truth)
        self.method = method
        self.block = list(block)
        for b in self.block:
            for f, file in ((self.release, self.release_file), (self.aux, None)):
                if b not in f.columns:
                    raise SafemicroError("no such blocking column", file=file, column=b)
        self.numeric = list(numeric) if numeric is not None else _default_numeric(self.release, self.on)
        self.tolerance = tolerance
        self.max_distance = max_distance
        self.threshold = threshold
        self.by = list(by)
        for b in self.by:
            if b not in self.aux.columns:
                raise SafemicroError("no such column in the auxiliary file", column=b)
        if (household is None) != (aux_household is None):
            raise SafemicroError("the household attack needs the household column of both files")
        if household is not None:
            if household not in self.release.columns:
                raise SafemicroError("no such household column in the released file", file=self.release_file,
                                     column=household)
            if aux_household not in self.aux.columns:
                raise SafemicroError("no such household column in the auxiliary file", column=aux_household)
        self.household, self.aux_household = household, aux_household
        self._evaluated = False

    def _run(self, on: Sequence[str]) -> tuple[LinkOutcome, dict[str, Any]]:
        return link_records(
            self.release, self.aux, on, truth_rows=self.truth_rows_, method=self.method,
            numeric=[c for c in self.numeric if c in on], block=self.block,
            tolerance=self.tolerance, max_distance=self.max_distance,
        )

    def evaluate(self, *, drivers: bool = True) -> "LinkageEvaluator":
        """Run the attack; with ``drivers`` also once without each linking column (which
        columns the successful links depend on)."""
        self.truth_rows_ = _truth_rows(self.release_ids, self.aux.get_column(self.truth), self.aux.height)
        self.outcome_, self.details_ = self._run(self.on)
        # the other direction: each released record against the listed people
        back = _truth_rows(self.aux.get_column(self.truth), self.release_ids, self.release.height)
        self.reverse_, _ = link_records(
            self.aux, self.release, self.on, truth_rows=back, method=self.method,
            numeric=[c for c in self.numeric if c in self.on], block=self.block,
            tolerance=self.tolerance, max_distance=self.max_distance,
        )
        self.drivers_: list[dict[str, Any]] = []
        base = self.outcome_.summary(self.threshold)
        if drivers and len(self.on) > 1:
            for col in self.on:
                rest = [c for c in self.on if c != col]
                s = self._run(rest)[0].summary(self.threshold)
                self.drivers_.append({
                    "variable": col,
                    "correct_lost": base["expected_correct"] - s["expected_correct"],
                    "reidentified_lost": base["reidentified"] - s["reidentified"],
                    "true_match_rate_without": s["true_match_rate"],
                })
            self.drivers_.sort(key=lambda d: -d["correct_lost"])
        self.households_ = None
        if self.household is not None:
            from safemicro.attack.simulate import household_attack

            truth = "__safemicro_truth"
            rel = self.release.select(self.household, *self.on).with_columns(self.release_ids.alias(truth))
            aux = self.aux.select(self.aux_household, *self.on, pl.col(self.truth).alias(truth))
            if self.aux_household == self.household:
                aux = aux.rename({self.aux_household: "__safemicro_listed_hh"})
            self.households_ = household_attack(
                rel, aux, self.on, household=self.household, truth=truth,
                intruder_household="__safemicro_listed_hh" if self.aux_household == self.household else self.aux_household)
        self._evaluated = True
        return self

    def _check(self) -> None:
        if not self._evaluated:
            raise RuntimeError("call evaluate() first")

    def risk(self, confidence: float = 0.95) -> Risk:
        """True match rate among auxiliary people who are in the release, with its Wilson
        interval (no control set: the records behind a release are the people in it)."""
        self._check()
        o = self.outcome_
        n_in = int(o.in_release.sum())
        if n_in == 0:
            return Risk(0.0, (0.0, 0.0))
        return residual_risk(wilson(o.expected_correct[o.in_release].sum(), n_in, confidence), None)

    def baseline(self, confidence: float = 0.95) -> Rate | None:
        """Random guess: one released record drawn at random is the right one with 1/N."""
        self._check()
        n_in = int(self.outcome_.in_release.sum())
        return wilson(n_in / self.release.height, n_in, confidence) if n_in else None

    def groups(self) -> list[dict[str, Any]]:
        """Re-identification by group of auxiliary people: by the frequency class of their
        released key (how many released records share it) and by each ``by`` column."""
        self._check()
        o = self.outcome_
        rows = np.flatnonzero(o.in_release)
        out: list[dict[str, Any]] = []
        if len(rows) == 0:
            return out
        correct = o.expected_correct
        sure = o.claims & (o.confidence >= self.threshold - 1e-12)
        from safemicro.keys import build_key_table

        kt = build_key_table(self.release, self.on)
        fk = kt.record_fk()[self.truth_rows_[rows]]
        labels = {"released key frequency (fk)": _fk_class(fk)}
        for b in self.by:
            labels[b] = self.aux.get_column(b).cast(pl.String).fill_null("(missing)").to_numpy()[rows]
        for what, lab in labels.items():
            order = [c[2] for c in FK_CLASSES] if what.startswith("released key") else sorted(set(lab.tolist()))
            for g in order:
                sel = rows[lab == g]
                if len(sel) == 0:
                    continue
                out.append({"by": what, "group": str(g), "n": int(len(sel)),
                            "true_match_rate": float(correct[sel].mean()),
                            "reidentified": int(sure[sel].sum())})
        return out

    def release_side(self, confidence: float = 0.95) -> dict[str, Any]:
        """The attack seen from the released records (the intruder names released records):
        per record, the listed people compatible with it; a pick among them is right with
        1/(their number) when the record's person is listed. ``expected_correct`` is the
        expected number of released records re-identified — what sdcMicro's global risk
        (Σ 1/F_k) estimates when the list covers the population."""
        self._check()
        r = self.reverse_.summary(self.threshold, confidence)
        n = self.release.height
        one = self.reverse_.n_best == 1
        return {
            "n_released": n,
            "n_listed_in_release": r["n_in_release"],
            "expected_correct": r["expected_correct"],
            "reidentification_rate": r["expected_correct"] / n,
            "reidentification_rate_ci": list(wilson(r["expected_correct"], n, confidence).ci),
            "n_claims": r["n_claims"],
            "precision": r["precision"],
            "reidentified": r["reidentified"],
            "reidentified_correct": r["reidentified_correct"],
            "reidentified_precision": r["reidentified_precision"],
            "one_candidate": int(one.sum()),
            "one_candidate_correct": int((one & self.reverse_.true_in_best).sum()),
        }

    def results(self, confidence: float = 0.95) -> dict[str, Any]:
        """JSON-ready summary: rates, re-identifications, baseline, drivers, groups, and the
        same attack seen from the released records (``release_side``)."""
        self._check()
        s = self.outcome_.summary(self.threshold, confidence)
        r = self.risk(confidence)
        base = self.baseline(confidence)
        return {
            "kind": "linkage",
            **s,
            "linking_columns": self.on,
            "auxiliary_files": [{"file": f, "columns": cols} for f, cols in zip(self.aux_files, self.files_used)],
            "numeric_columns": self.numeric if self.method != "exact" else [],
            "block": self.block,
            "risk": r.value,
            "ci": list(r.ci),
            "baseline_rate": None if base is None else base.to_dict(),
            "details": self.details_,
            "drivers": self.drivers_,
            "groups": self.groups(),
            "release_side": self.release_side(confidence),
            "households": self.households_,
        }
