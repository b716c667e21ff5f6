"""Exact linkage at scale: a register of tens of millions of rows against a release.

The same attack as ``exact`` (candidates agree on every linking column, a missing value on
either side is a wildcard, the intruder picks one candidate at random), blocked on the key
table so that no step is per record in memory:

1. one streaming pass joins the register to the release on the identity (for scoring only)
   and counts register records per (register key, true released key) pair; one group-by
   gives the release's distinct keys with their record counts and first row;
2. distinct register keys are matched to distinct released keys, one join per pair of
   missing-value patterns, summing the released records per compatible key;
3. the summary is weighted by the pair counts; per-record claims are written, when asked
   for, by a streaming join of the register with the per-key outcome (``claims_out``).

Memory: the distinct keys and pairs (thousands to a few million rows), never a per-record
array of the register. Numbers equal :func:`safemicro.attack.linkage.link_records` with
``method="exact"`` record for record (tests/test_linkage_blocked.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.record_linkage.exact import _pattern
from safemicro.attack.stats import wilson
from safemicro.engine.polars_engine import PolarsEngine
from safemicro.engine.table import Source, source_name
from safemicro.errors import SafemicroError
from safemicro.keys import encode_column
from safemicro.keys import project_codes as _project
from safemicro.progress import progress
from safemicro.utility.tables import common_dtype

_ENGINE = PolarsEngine(streaming=True)


@dataclass
class BlockedLinkage:
    """Outcome per (register key, true released key) pair; see :meth:`summary`."""

    on: list[str]
    pairs: pl.DataFrame  # a-keys, r-keys, __in, __n, __ai, __ri
    n_candidates: np.ndarray  # per distinct register key
    claimed: np.ndarray  # per distinct register key: first released row among the candidates
    true_in_best: np.ndarray  # per pair
    n_register_keys: int
    n_release_keys: int
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self, threshold: float = 0.5, confidence_level: float = 0.95) -> dict[str, Any]:
        """The fields of :meth:`LinkOutcome.summary`, from the pair counts."""
        n = self.pairs["__n"].to_numpy().astype(np.float64)
        count = self.n_candidates[self.pairs["__ai"].to_numpy()]
        in_rel = self.pairs["__in"].fill_null(False).to_numpy()
        with np.errstate(divide="ignore"):
            conf = np.where(count > 0, 1.0 / count, 0.0)
        correct = np.where(self.true_in_best & (count > 0), conf, 0.0)
        claims = count > 0
        sure = claims & (conf >= threshold - 1e-12)
        n_in = int(n[in_rel].sum())
        ec = float((n * correct).sum())
        n_claims = int(n[claims].sum())
        n_sure = int(n[sure].sum())
        sure_correct = float((n * correct)[sure].sum())
        out: dict[str, Any] = {
            "method": "exact",
            "n_auxiliary": int(n.sum()),
            "n_in_release": n_in,
            "n_claims": n_claims,
            "expected_correct": ec,
            "true_match_rate": ec / n_in if n_in else None,
            "precision": float((n * correct)[claims].sum() / n_claims) if n_claims else None,
            "threshold": threshold,
            "reidentified": n_sure,
            "reidentified_correct": sure_correct,
            "reidentified_precision": sure_correct / n_sure if n_sure else None,
            "max_claim_success": float(correct[claims].max()) if claims.any() else None,
        }
        if n_in:
            out["true_match_rate_ci"] = list(wilson(float((n * correct)[in_rel].sum()), n_in, confidence_level).ci)
        out["n_register_keys"] = self.n_register_keys
        out["n_release_keys"] = self.n_release_keys
        out["n_key_pairs"] = self.pairs.height
        return out


def _akeys(on: Sequence[str]) -> list[str]:
    return [f"__a{j}" for j in range(len(on))]


def _rkeys(on: Sequence[str]) -> list[str]:
    return [f"__r{j}" for j in range(len(on))]


def _keyed(lf: pl.LazyFrame, on: Sequence[str], names: list[str], schema) -> list[pl.Expr]:
    """Key columns renamed, NaN folded into missing (as ``encode_column`` does)."""
    out = []
    for c, name in zip(on, names):
        e = pl.col(c)
        if schema[c].is_float():
            e = e.fill_nan(None)
        out.append(e.alias(name))
    return out


def _id_exprs(rel_schema, reg_schema, truth: str, release_truth: str) -> tuple[pl.Expr, pl.Expr]:
    r_t, a_t = rel_schema[release_truth], reg_schema[truth]
    if r_t == a_t or (r_t.is_integer() and a_t.is_integer()):
        return pl.col(release_truth).cast(r_t if r_t == a_t else pl.Int64).alias("__id"), pl.col(truth).cast(
            r_t if r_t == a_t else pl.Int64
        ).alias("__id")
    return pl.col(release_truth).cast(pl.String).alias("__id"), pl.col(truth).cast(pl.String).alias("__id")


def _collect(lf: pl.LazyFrame, source: Source) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SafemicroError(str(exc).strip().splitlines()[0], file=source_name(source)) from None


def _check(schema, names: Sequence[str], source: Source) -> None:
    for c in names:
        if c not in schema:
            raise SafemicroError("no such column", file=source_name(source), column=c)


def _inputs(release: Source, register: Source, on: list[str], truth: str, release_truth: str):
    rel_lf, reg_lf = _ENGINE.scan(release), _ENGINE.scan(register)
    try:
        rel_schema, reg_schema = rel_lf.collect_schema(), reg_lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SafemicroError(str(exc).strip().splitlines()[0], file=source_name(release)) from None
    _check(rel_schema, [*on, release_truth], release)
    _check(reg_schema, [*on, truth], register)
    rid, aid = _id_exprs(rel_schema, reg_schema, truth, release_truth)
    rel = rel_lf.with_row_index("__row").select("__row", rid, *_keyed(rel_lf, on, _rkeys(on), rel_schema))
    reg = reg_lf.select(aid, *_keyed(reg_lf, on, _akeys(on), reg_schema))
    return rel, reg


def link_exact_blocked(
    release: Source,
    register: Source,
    on: Sequence[str],
    *,
    truth: str,
    release_truth: str | None = None,
    claims_out: str | Path | None = None,
    show_progress: bool | None = None,
) -> BlockedLinkage:
    """Exact linkage of every record of ``register`` to ``release`` on ``on``, blocked on
    the key table (see the module docstring). ``truth``: the identity column of the
    register, ``release_truth`` that of the release (default: the same name), for scoring.
    ``claims_out``: a Parquet file for the per-record claims (register row, identity,
    candidates, confidence, claimed released row, whether the true record is among them)."""
    on = list(on)
    if not on:
        raise SafemicroError("no linking columns")
    release_truth = release_truth or truth
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    rel, reg = _inputs(release, register, on, truth, release_truth)
    ak, rk = _akeys(on), _rkeys(on)
    steps = 4 if claims_out is not None else 3
    with progress(steps, "linkage: release keys", enabled=show_progress) as advance:
        dup = _collect(rel.select(pl.len().alias("n"), pl.col("__id").n_unique().alias("u")), release)
        if dup["n"][0] != dup["u"][0]:
            first = _collect(rel.filter(pl.col("__id").is_duplicated()).select("__row").head(1), release)
            raise SafemicroError(
                "identity repeated in the released file: true identities must be unique per record",
                file=source_name(release),
                column=release_truth,
                row=int(first[0, 0]) + 1,
            )
        r_keys = _collect(rel.group_by(rk).agg(pl.len().alias("__n"), pl.col("__row").min().alias("__first")), release)
        r_keys = r_keys.sort("__first").with_row_index("__ri")
        advance("linkage: register × release pairs")
        t["release_keys"] = time.perf_counter() - t0
        joined = reg.join(rel.select("__id", *rk, pl.lit(True).alias("__in")), on="__id", how="left")
        pairs = _collect(joined.group_by([*ak, *rk, "__in"]).agg(pl.len().alias("__n")), register)
        a_keys = pairs.group_by(ak).agg(pl.col("__n").sum()).sort(ak, nulls_last=False).with_row_index("__ai")
        pairs = pairs.join(a_keys.select(*ak, "__ai"), on=ak, how="left", nulls_equal=True)
        pairs = pairs.join(r_keys.select(*rk, "__ri"), on=rk, how="left", nulls_equal=True)
        pairs = pairs.with_columns(pl.when(pl.col("__in")).then(pl.col("__ri")).otherwise(-1).alias("__ri"))
        pairs = pairs.sort("__ai", "__ri")
        advance("linkage: matching keys")
        t["pairs"] = time.perf_counter() - t0 - t["release_keys"]
        a_codes, r_codes, cards = _codes(a_keys, r_keys, on)
        count, claimed = _match_keys(
            a_codes, r_codes, cards, r_keys["__n"].to_numpy().astype(np.float64), r_keys["__first"].to_numpy()
        )
        ai, ri = pairs["__ai"].to_numpy(), pairs["__ri"].to_numpy()
        ok = np.zeros(len(ai), dtype=bool)
        has = ri >= 0
        a, r = a_codes[ai[has]], r_codes[ri[has]]
        ok[has] = ((a == 0) | (r == 0) | (a == r)).all(axis=1)
        out = BlockedLinkage(on, pairs, count, claimed, ok & (count[ai] > 0), a_keys.height, r_keys.height)
        advance("linkage: per-record claims")
        t["match"] = time.perf_counter() - t0 - t["release_keys"] - t["pairs"]
        if claims_out is not None:
            _write_claims(out, rel, reg, a_keys, r_keys, claims_out, truth)
            advance("done")
    t["total"] = time.perf_counter() - t0
    out.timings = t
    return out


def _codes(a_keys: pl.DataFrame, r_keys: pl.DataFrame, on: list[str]):
    """Both sides' distinct keys in one code space per column (0 = missing)."""
    n_a = a_keys.height
    a_cols, r_cols, cards = [], [], []
    for j in range(len(on)):
        a, r = common_dtype(a_keys[f"__a{j}"], r_keys[f"__r{j}"])
        codes, card = encode_column(pl.concat([a.rename("v"), r.rename("v")]))
        a_cols.append(codes[:n_a])
        r_cols.append(codes[n_a:])
        cards.append(card)
    shape = (0, len(on))
    a_codes = np.column_stack(a_cols) if n_a else np.zeros(shape, dtype=np.int64)
    r_codes = np.column_stack(r_cols) if r_keys.height else np.zeros(shape, dtype=np.int64)
    return a_codes, r_codes, cards


def _match_keys(a_codes, r_codes, cards, r_count, r_first) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct register key: released records compatible with it, and the first
    released row among them in the order ``exact`` claims (patterns ascending, then row)."""
    n_a, m = a_codes.shape
    count = np.zeros(n_a, dtype=np.float64)
    claimed = np.full(n_a, -1, dtype=np.int64)
    pat_r, pat_a = _pattern(r_codes), _pattern(a_codes)
    bits = np.arange(m)
    for pa in np.unique(pat_a):
        ia = np.flatnonzero(pat_a == pa)
        for pr in np.unique(pat_r):
            ir = np.flatnonzero(pat_r == pr)
            both = bits[(((int(pa) | int(pr)) >> bits) & 1) == 0]
            proj_r = _project(r_codes[ir], both, cards)
            proj_a = _project(a_codes[ia], both, cards)
            uniq, inv = np.unique(proj_r, return_inverse=True)
            cnt = np.bincount(inv.ravel(), weights=r_count[ir], minlength=len(uniq))
            first = np.full(len(uniq), np.iinfo(np.int64).max)
            np.minimum.at(first, inv.ravel(), r_first[ir])
            pos = np.minimum(np.searchsorted(uniq, proj_a), len(uniq) - 1)
            hit = uniq[pos] == proj_a
            count[ia] += np.where(hit, cnt[pos], 0)
            take = hit & (claimed[ia] < 0)
            claimed[ia[take]] = first[pos[take]]
    return count, claimed


def _write_claims(out: BlockedLinkage, rel, reg, a_keys, r_keys, path, truth: str) -> None:
    """Per register record, in register order: streaming joins that give each record its
    register key and true released key (as row numbers), then the pair outcome."""
    from safemicro.atomic import atomic_path

    ak, rk = _akeys(out.on), _rkeys(out.on)
    ai = out.pairs["__ai"].to_numpy()
    count = out.n_candidates[ai]
    with np.errstate(divide="ignore"):
        conf = np.where(count > 0, 1.0 / count, 0.0)
    po = out.pairs.select("__ai", "__ri").with_columns(
        pl.Series("n_candidates", count),
        pl.Series("confidence", conf),
        pl.Series("claimed_row", out.claimed[ai]),
        pl.Series("true_in_best", out.true_in_best),
    )
    rel_ri = rel.select("__id", *rk).join(r_keys.lazy().select(*rk, "__ri"), on=rk, how="left", nulls_equal=True)
    lf = (
        reg.with_row_index("register_row")
        .join(a_keys.lazy().select(*ak, "__ai"), on=ak, how="left", nulls_equal=True, maintain_order="left")
        .join(rel_ri.select("__id", "__ri"), on="__id", how="left", maintain_order="left")
        .with_columns(pl.col("__ri").fill_null(-1))
        .join(po.lazy(), on=["__ai", "__ri"], how="left", maintain_order="left")
        .select(
            "register_row", pl.col("__id").alias(truth), "n_candidates", "confidence", "claimed_row", "true_in_best"
        )
    )
    with atomic_path(path) as tmp:
        lf.sink_parquet(str(tmp))
