"""What both local-suppression algorithms share: the checked input, key tables of the
current values with missing values as wildcards, and household-level spreading."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from pydantic import ValidationError

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import combine_codes, dense_ids, encode_column, wildcard_frequencies
from safemicro.plan import Roles
from safemicro.roles import validate_roles

Importance = Sequence[str] | Mapping[str, float] | None


Safe = Callable[[np.ndarray, np.ndarray], np.ndarray]


_EPS = 1e-9


def k_safe(k: float) -> Safe:
    """The k-anonymity test fk ≥ k (within rounding); its ``threshold`` lets the optimal
    engine run its compiled kernels."""
    threshold = k - _EPS

    def safe(fk: np.ndarray, Fk: np.ndarray) -> np.ndarray:
        return fk >= threshold

    safe.threshold = threshold  # type: ignore[attr-defined]
    return safe


_MAX_KEYS = 62  # suppression patterns are bit masks in an int64


@dataclass
class _Input:
    keys: list[str]
    codes: np.ndarray  # (n, m) int64 codes of the key values, 0 = missing (user-missing too)
    weights: np.ndarray  # sampling weights (ones when none)
    weighted: bool
    household: np.ndarray | None  # dense household ids 0..H-1
    household_bits: int  # mask of the household-level keys
    # records per row (None: one record per row); rows are then distinct keys of a key
    # table, ``weights`` their summed weights (the out-of-core engines, safemicro.scale)
    counts: np.ndarray | None = None


def _error(message: str, ds: Dataset, column: str | None = None) -> SafemicroError:
    return SafemicroError(message, file=ds.source, column=column)


def _prepare(
    ds: Dataset,
    keys: Sequence[str],
    weight: str | None,
    household: str | None,
    household_level: Sequence[str],
) -> _Input:
    if isinstance(keys, str):
        keys = [keys]
    keys = list(keys or [])
    level = [v for v in household_level if v in keys]
    if household is None and level:
        raise _error("household_level keys need a household id (household=...)", ds)
    try:
        roles = Roles(keys=keys, weight=weight, household=household, household_level=level)
    except ValidationError as exc:
        raise _error(exc.errors()[0]["msg"].removeprefix("Value error, "), ds) from None
    validate_roles(ds, roles)
    if len(keys) > _MAX_KEYS:
        raise _error(f"local suppression handles at most {_MAX_KEYS} key variables, got {len(keys)}", ds)
    codes = np.column_stack([encode_column(ds.analysis_column(name))[0] for name in keys]).astype(np.int64)
    if weight is not None:
        w = ds.frame.get_column(weight).cast(pl.Float64).to_numpy()
    else:
        w = np.ones(ds.n)
    hh = None
    if household is not None:
        hh = encode_column(ds.frame.get_column(household))[0] - 1
    bits = sum(1 << keys.index(v) for v in level)
    return _Input(keys, codes, w, weight is not None, hh, bits)


def _importance_names(
    importance: Importance, keys: list[str], ds: Dataset
) -> Sequence[str] | Mapping[str, float] | None:
    """Check the importance argument: key names (most important first) or {key: weight}."""
    if importance is None:
        return None
    if isinstance(importance, str):
        importance = [importance]
    names = list(importance.keys()) if isinstance(importance, Mapping) else list(importance)
    for name in names:
        if name not in keys:
            raise _error(f"importance names {name!r}, which is not a key variable", ds, column=str(name))
    if len(set(names)) != len(names):
        raise _error("importance lists a key variable twice", ds)
    if isinstance(importance, Mapping):
        for name, value in importance.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise _error(f"importance weight of {name!r} must be a positive number, got {value!r}", ds, column=name)
    return importance


def _plain(importance: Importance) -> list[str] | dict[str, float] | None:
    """The importance as JSON-friendly parameters."""
    if importance is None:
        return None
    return dict(importance) if isinstance(importance, Mapping) else list(importance)


def _group(codes: np.ndarray, extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of the distinct rows of ``codes`` (plus an extra column) and one
    representative row index per id."""
    n, m = codes.shape
    cols = [codes[:, j] for j in range(m)]
    cards = [int(c.max()) if n else 0 for c in cols]
    if extra is not None:
        cols.append(extra)
        cards.append(int(extra.max()) if n else 0)
    combined, space = combine_codes(cols, cards)
    ids, _ = dense_ids(combined, space)
    rep = np.zeros(int(ids.max()) + 1 if n else 0, dtype=np.int64)
    rep[ids] = np.arange(n)
    return ids, rep


def _record_fk(codes: np.ndarray, weights: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """fk and Fk per record with missing codes (0) as wildcards."""
    ids, rep = _group(codes)
    count = np.bincount(ids, minlength=len(rep)).astype(np.float64)
    wsum = np.bincount(ids, weights=weights, minlength=len(rep))
    fk, Fk = wildcard_frequencies(codes[rep], count, wsum, alpha)
    return fk[ids], Fk[ids]


def _masked(codes: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Codes with the masked positions set to missing (0)."""
    bits = np.int64(1) << np.arange(codes.shape[1], dtype=np.int64)
    return np.where((masks[:, None] & bits) != 0, 0, codes)


def _spread(masks: np.ndarray, inp: _Input) -> np.ndarray:
    """Household-level suppressions extended to every member of the household."""
    if inp.household is None or not inp.household_bits:
        return masks
    bits = np.int64(1) << np.arange(len(inp.keys), dtype=np.int64)
    observed = (inp.codes != 0) @ bits
    spread = np.zeros_like(masks)
    for j in range(len(inp.keys)):
        if inp.household_bits >> j & 1:
            hit = np.bincount(inp.household, weights=(masks >> j) & 1) > 0
            spread |= np.where(hit[inp.household], bits[j], 0)
    return masks | (spread & observed)
