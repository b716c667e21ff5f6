"""The key table: distinct quasi-identifier combinations with their counts.

Almost every disclosure-risk measure depends only on the distinct combinations of the key
variables, their sample count ``fk`` and weighted count ``Fk``. We encode each key column as
small integer codes (0 = missing), fold the columns into one integer per record, and count
with ``np.bincount`` (or a sort when the code space is large). Everything after that works on
the key table, whose size is the number of distinct keys, not the number of records.

Missing values are wildcards exactly as sdcMicro's ``freqCalc`` defines them (see
``SDCMICRO_SEMANTICS.md``): two keys are compatible when they agree wherever both are
observed, and compatible keys contribute to each other's frequencies with weight 1 or
``alpha``. The wildcard counts are computed between groups of keys sharing a missing-value
pattern, so the cost grows with (number of patterns)² × (distinct keys), never with records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

# Code spaces up to this size are counted with a dense bincount; larger ones are sorted.
BINCOUNT_LIMIT = 1 << 24
_INT64_SAFE = 1 << 62


def encode_column(series: pl.Series) -> tuple[np.ndarray, int]:
    """Integer codes 1..card for the observed values of a column, 0 for missing.

    Codes follow the sort order of the values, so they are stable across row orders.
    NaN counts as missing.
    """
    s = series
    if s.dtype.is_float():
        s = s.fill_nan(None)
    missing = s.is_null().to_numpy()
    if s.dtype.is_integer() or s.dtype == pl.Boolean or (s.dtype.is_float() and _whole(s)):
        values = s.cast(pl.Int64).fill_null(0).to_numpy()
        if missing.all():
            return np.zeros(len(s), dtype=np.int64), 0
        observed = values[~missing]
        lo, hi = int(observed.min()), int(observed.max())
        if hi - lo < max(4 * len(s), 1 << 16):
            present = np.zeros(hi - lo + 1, dtype=np.int64)
            present[observed - lo] = 1
            remap = np.cumsum(present)  # value -> dense code 1..card
            codes = np.where(missing, 0, remap[np.clip(values - lo, 0, hi - lo)])
            return codes.astype(np.int64), int(remap[-1])
    ranks = s.rank("dense").fill_null(0).to_numpy().astype(np.int64)
    return ranks, int(ranks.max()) if len(ranks) else 0


def _whole(s: pl.Series) -> bool:
    """A float column holding only whole numbers that fit an int64 exactly."""
    x = s.drop_nulls()
    if x.len() == 0:
        return True
    lo, hi = x.min(), x.max()
    return bool(abs(lo) < 2**52 and abs(hi) < 2**52 and (x == x.floor()).all())


def dense_ids(codes: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """Map integer codes in [0, space) to dense ids 0..K-1 (in code order).

    Returns ``(ids, distinct_codes)``.
    """
    if space <= min(BINCOUNT_LIMIT, max(1 << 20, 16 * len(codes))):
        seen = np.zeros(space, dtype=bool)
        seen[codes] = True
        distinct = np.flatnonzero(seen)
        lookup = np.cumsum(seen) - 1
        return lookup[codes], distinct
    distinct, ids = np.unique(codes, return_inverse=True)
    return ids.ravel(), distinct


def combine_codes(columns: list[np.ndarray], cards: list[int]) -> tuple[np.ndarray, int]:
    """Fold per-column codes (0..card) into one integer per row, injectively.

    Uses mixed radix while it fits in 62 bits, re-densifying the running code otherwise.
    Returns the combined codes and the size of their code space.
    """
    n = len(columns[0]) if columns else 0
    acc = np.zeros(n, dtype=np.int64)
    space = 1
    for codes, card in zip(columns, cards):
        radix = card + 1
        if space * radix >= _INT64_SAFE:
            acc, distinct = dense_ids(acc, space)
            space = max(len(distinct), 1)
        acc = acc * radix + codes
        space *= radix
    return acc, space


@dataclass
class KeyTable:
    """Distinct key combinations, their frequencies and the record -> key index.

    Attributes
    ----------
    keys
        the key variable names.
    codes
        (K, m) integer codes of each distinct key (0 = missing).
    labels
        per key variable, the observed values in code order (code c is ``labels[j][c-1]``).
    count
        records with exactly this key (missing positions included), length K.
    weight_sum
        sum of weights of those records.
    fk, Fk
        sample and weighted frequencies with missing values as wildcards.
    record_key
        for each record, the row of its key in the table (None when an out-of-core engine
        built the table and the records stayed where they are).
    alpha
        the weight given to compatible keys with missing values.
    """

    keys: list[str]
    codes: np.ndarray
    labels: list[pl.Series]
    count: np.ndarray
    weight_sum: np.ndarray
    fk: np.ndarray
    Fk: np.ndarray
    record_key: np.ndarray | None
    alpha: float
    weighted: bool

    @property
    def n_records(self) -> int:
        return int(self.count.sum()) if self.record_key is None else len(self.record_key)

    @property
    def n_keys(self) -> int:
        return len(self.count)

    @property
    def has_missing(self) -> bool:
        return bool((self.codes == 0).any())

    def record_fk(self) -> np.ndarray:
        return self.fk[self.record_key]

    def record_Fk(self) -> np.ndarray:
        return self.Fk[self.record_key]

    def values(self) -> pl.DataFrame:
        """The distinct keys as a frame of their original values (null = missing)."""
        cols = {}
        for j, name in enumerate(self.keys):
            codes = self.codes[:, j]
            observed = self.labels[j]
            idx = pl.Series(np.where(codes == 0, 0, codes - 1))
            vals = observed.gather(idx) if len(observed) else pl.Series(name, [None] * len(codes))
            cols[name] = pl.select(pl.when(pl.Series(codes == 0)).then(None).otherwise(vals)).to_series()
        return pl.DataFrame(cols)


def _observed_values(series: pl.Series, codes: np.ndarray, card: int) -> pl.Series:
    """The distinct observed values of a column, ordered by their code."""
    if card == 0:
        return series.head(0)
    rep = np.zeros(card, dtype=np.int64)
    rows = np.flatnonzero(codes)
    rep[codes[rows] - 1] = rows
    return series.gather(pl.Series(rep))


def build_key_table(
    frame: pl.DataFrame,
    keys: list[str],
    weights: np.ndarray | None = None,
    *,
    alpha: float = 1.0,
) -> KeyTable:
    """Build the key table of ``frame`` on ``keys`` (nulls and NaN are missing values).

    ``weights`` are the sampling weights per record (``None``: unweighted, Fk = fk).
    Integer-like keys of small range are folded into one code per record in a single
    multi-threaded Polars pass (value - min + 1, 0 = missing); the per-column dense codes
    are then derived on the distinct keys only, which gives the same table, in the same
    order, as encoding every column densely first.
    """
    if not keys:
        raise ValueError("at least one key variable is needed")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must lie in [0, 1]")
    n = frame.height
    folded = _fold_raw(frame, keys)
    if folded is not None:
        record_key, codes, labels = folded
        n_keys = len(codes)
    else:
        record_key, codes, labels = fold_keys(frame, keys)
        n_keys = len(codes)
    count = np.bincount(record_key, minlength=n_keys).astype(np.float64)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    weight_sum = np.bincount(record_key, weights=w, minlength=n_keys)
    return table_from_counts(
        keys, codes, labels, count, weight_sum, record_key, alpha=alpha, weighted=weights is not None
    )


def table_from_counts(
    keys: list[str],
    codes: np.ndarray,
    labels: list[pl.Series],
    count: np.ndarray,
    weight_sum: np.ndarray,
    record_key: np.ndarray | None,
    *,
    alpha: float,
    weighted: bool,
) -> KeyTable:
    """The key table of distinct keys with their counts: wildcard frequencies added."""
    fk, Fk = wildcard_frequencies(codes, count, weight_sum, alpha)
    return KeyTable(
        keys=list(keys),
        codes=codes,
        labels=labels,
        count=count,
        weight_sum=weight_sum,
        fk=fk,
        Fk=Fk,
        record_key=record_key,
        alpha=alpha,
        weighted=weighted,
    )


def fold_keys(frame: pl.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray, list[pl.Series]]:
    """Row -> key index, the distinct keys' codes and the labels, from dense per-column
    codes (NaN and null both code 0, so rows differing only in those share a key)."""
    n = frame.height
    col_codes, cards, labels = [], [], []
    for name in keys:
        codes, card = encode_column(frame.get_column(name))
        col_codes.append(codes)
        cards.append(card)
        labels.append(_observed_values(frame.get_column(name), codes, card))
    combined, space = combine_codes(col_codes, cards)
    record_key, _ = dense_ids(combined, space)
    n_keys = int(record_key.max()) + 1 if n else 0
    rep = np.zeros(n_keys, dtype=np.int64)
    rep[record_key] = np.arange(n)  # any record of a key is a representative
    codes = np.column_stack([c[rep] for c in col_codes]) if n_keys else np.zeros((0, len(keys)), np.int64)
    return record_key, codes, labels


def _fold_raw(frame: pl.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray, list[pl.Series]] | None:
    """The fast path of :func:`build_key_table` when every key is integer-like (integers,
    booleans, whole floats) with a small range; ``None`` otherwise."""
    n = frame.height
    if n == 0:
        return None
    cols = {}
    for name in keys:
        s = frame.get_column(name)
        if not (s.dtype.is_integer() or s.dtype == pl.Boolean or s.dtype.is_float()):
            return None
        c = pl.col(name).fill_nan(None) if s.dtype.is_float() else pl.col(name)
        cols[name] = c
    stats = frame.select(
        *[c.cast(pl.Float64).min().alias(f"{i}lo") for i, c in enumerate(cols.values())],
        *[c.cast(pl.Float64).max().alias(f"{i}hi") for i, c in enumerate(cols.values())],
        *[
            (c == c.floor()).all().alias(f"{i}whole")
            for i, (name, c) in enumerate(cols.items())
            if frame.schema[name].is_float()
        ],
    ).row(0, named=True)
    los, spans = [], []
    space = 1
    for i in range(len(keys)):
        lo, hi = stats[f"{i}lo"], stats[f"{i}hi"]
        if lo is None:  # all missing
            lo = hi = 0.0
        if stats.get(f"{i}whole") is False or abs(lo) >= 2**52 or abs(hi) >= 2**52:
            return None
        span = int(hi) - int(lo) + 1
        if span - 1 >= max(4 * n, 1 << 16):
            return None
        space *= span + 1
        if space >= _INT64_SAFE:
            return None
        los.append(int(lo))
        spans.append(span)
    acc = pl.lit(0, dtype=pl.Int64)
    for c, lo, span in zip(cols.values(), los, spans):
        code = c.cast(pl.Int64) - (lo - 1)
        acc = acc * (span + 1) + code.fill_null(0)
    combined = frame.select(acc.alias("c")).to_series().to_numpy()
    record_key, distinct = dense_ids(combined, space)
    raw = np.empty((len(distinct), len(keys)), dtype=np.int64)
    rest = distinct.copy()
    for j in range(len(keys) - 1, -1, -1):
        rest, raw[:, j] = np.divmod(rest, spans[j] + 1)
    codes = np.zeros_like(raw)
    labels = []
    for j, name in enumerate(keys):
        present = np.unique(raw[:, j][raw[:, j] != 0])
        codes[:, j] = np.where(raw[:, j] == 0, 0, np.searchsorted(present, raw[:, j]) + 1)
        values = pl.Series(name, present + (los[j] - 1), dtype=pl.Int64)
        labels.append(values.cast(frame.schema[name]))
    return record_key, codes, labels


def project_codes(codes: np.ndarray, positions: np.ndarray, cards: list[int] | None = None) -> np.ndarray:
    """One integer per row identifying the row's codes on the given columns (injective
    within one call). ``cards``: the code-space size of every column of ``codes``
    (default: the largest code of each projected column)."""
    if len(positions) == 0:
        return np.zeros(len(codes), dtype=np.int64)
    cols = [codes[:, j] for j in positions]
    if cards is None:
        sizes = [int(c.max()) if len(c) else 0 for c in cols]
    else:
        sizes = [cards[j] for j in positions]
    return combine_codes(cols, sizes)[0]


def wildcard_frequencies(
    codes: np.ndarray, count: np.ndarray, weight_sum: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """fk and Fk per distinct key with missing codes (0) as wildcards (sdcMicro freqCalc).

    - complete key: identical + alpha * compatible keys with some (not all) missing;
    - key with some missing: identical + compatible complete keys (weight 1)
      + alpha * other compatible keys with missing values, all-missing included;
    - all-missing key: every record.
    With a single key variable, complete keys get + alpha * the missing records.
    """
    fk = count.copy()
    Fk = weight_sum.copy()
    n_keys, m = codes.shape
    if n_keys == 0:
        return fk, Fk
    missing = codes == 0
    if not missing.any():
        return fk, Fk
    pattern = (missing * (1 << np.arange(m, dtype=np.int64))).sum(axis=1)
    full = (1 << m) - 1
    patterns = np.unique(pattern)
    members = {int(p): np.flatnonzero(pattern == p) for p in patterns}
    cards = [int(c.max()) for c in codes.T]
    projections: dict[int, np.ndarray] = {}  # every key projected once per set of shared columns

    def factor(pa: int, pb: int) -> float:
        if pa == 0:  # complete key receiving
            if pb == full:
                return alpha if m == 1 else 0.0
            return alpha
        return 1.0 if pb == 0 else alpha

    for pa, rows_a in members.items():
        if pa == full:
            fk[rows_a] = count.sum()
            Fk[rows_a] = weight_sum.sum()
            continue
        for pb, rows_b in members.items():
            if pb == pa:
                continue  # same pattern: compatible means identical, already counted
            f = factor(pa, pb)
            if f == 0.0:
                continue
            both = np.flatnonzero(((pa | pb) >> np.arange(m) & 1) == 0)
            if len(both) == 0:
                fk[rows_a] += f * count[rows_b].sum()
                Fk[rows_a] += f * weight_sum[rows_b].sum()
                continue
            shared = int(pa | pb)
            if shared not in projections:
                projections[shared] = project_codes(codes, both, cards)
            proj = projections[shared]
            proj_a, proj_b = proj[rows_a], proj[rows_b]
            uniq, inv = np.unique(proj_b, return_inverse=True)
            cnt_b = np.bincount(inv.ravel(), weights=count[rows_b], minlength=len(uniq))
            w_b = np.bincount(inv.ravel(), weights=weight_sum[rows_b], minlength=len(uniq))
            pos = np.searchsorted(uniq, proj_a)
            pos_c = np.minimum(pos, len(uniq) - 1)
            hit = uniq[pos_c] == proj_a
            fk[rows_a] += f * np.where(hit, cnt_b[pos_c], 0.0)
            Fk[rows_a] += f * np.where(hit, w_b[pos_c], 0.0)
    return fk, Fk
