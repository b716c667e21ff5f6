"""Risk on every combination of m keys: k-anonymity per combination and mu-Argus unsafe cells.

A needs assessment carries dozens of keys; k-anonymity on all of them at once is out of
reach and also beside the point, since an intruder rarely knows more than a few. The two
measures here ask the question per combination of ``m`` keys instead:

- **k-anonymity on every m-combination** (sdcMicro ``kAnon(combs=m, strataVars=)``): for each
  combination, the records whose frequency on those keys alone is below ``k`` (missing values
  are wildcards as in ``freqCalc``; with strata, only records of the same stratum count).
- **unsafe cells** (mu-Argus, sdcMicro ``riskyCells(maxDim=, threshold=)``): for each
  combination of ``d = 1..max_dim`` keys, the number of cells of the d-way table whose
  unweighted count is at most the threshold of dimension ``d`` (a missing value is a
  category of its own there, as in sdcMicro).

Both marginalise the key table: each combination projects the distinct keys onto its
columns and adds their counts, so the cost grows with (combinations x distinct keys), never
with records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
import polars as pl

from safemicro.keys import KeyTable, build_key_table, dense_ids, encode_column, project_codes, wildcard_frequencies

__all__ = [
    "MAX_COMBINATIONS",
    "combination_checks",
    "combination_fk",
    "combination_summary",
    "kanon_combinations",
    "key_combinations",
    "risky_cells",
    "risky_cells_summary",
]

# A guard against asking for, say, all 10-combinations of 60 keys (7.5e10 tables).
MAX_COMBINATIONS = 200_000


def _cards(kt: KeyTable) -> list[int]:
    return [int(c.max()) if len(c) else 0 for c in kt.codes.T]


def _check_size(p: int, size: int, what: str) -> None:
    if not 1 <= size <= p:
        raise ValueError(f"{what} must lie between 1 and the number of keys ({p}), got {size}")
    if comb(p, size) > MAX_COMBINATIONS:
        raise ValueError(f"{comb(p, size)} combinations of {size} of {p} keys exceed the limit of {MAX_COMBINATIONS}")


def _marginal(kt: KeyTable, positions: list[int], cards: list[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense cell id per distinct key on the given columns, one representative row per cell."""
    proj = project_codes(kt.codes, np.asarray(positions), cards)
    space = int(proj.max()) + 1 if len(proj) else 1
    ids, _ = dense_ids(proj, space)
    n_cells = int(ids.max()) + 1 if len(ids) else 0
    rep = np.zeros(n_cells, dtype=np.int64)
    rep[ids] = np.arange(len(ids))
    return ids, rep, n_cells


def combination_fk(kt: KeyTable, positions: Sequence[int], cards: list[int] | None = None) -> np.ndarray:
    """fk of every distinct key of ``kt`` on the columns ``positions`` alone (wildcards and
    ``kt.alpha`` as in ``freqCalc``), from the key table, not the records."""
    cards = _cards(kt) if cards is None else cards
    ids, rep, n_cells = _marginal(kt, list(positions), cards)
    count = np.bincount(ids, weights=kt.count, minlength=n_cells)
    wsum = np.bincount(ids, weights=kt.weight_sum, minlength=n_cells)
    fk, _ = wildcard_frequencies(kt.codes[rep][:, list(positions)], count, wsum, kt.alpha)
    return fk[ids]


@dataclass
class CombinationKAnon:
    """k-anonymity on every combination of ``size`` keys.

    ``rows``: per combination, its keys, the records below k and the smallest fk.
    ``unsafe_key``: per distinct key of the key table, True when it is below k in at least
    one combination (broadcast with ``kt.record_key`` for records).
    """

    size: int
    k: int
    rows: list[dict]
    unsafe_key: np.ndarray
    n_records_unsafe: int

    def summary(self) -> dict:
        bad = [r for r in self.rows if r["n_violations"]]
        worst = sorted(bad, key=lambda r: -r["n_violations"])[:10]
        return {
            "size": self.size,
            "k": self.k,
            "n_combinations": len(self.rows),
            "n_combinations_violating": len(bad),
            "n_records_violating": self.n_records_unsafe,
            "worst": worst,
        }


def kanon_combinations(kt: KeyTable, size: int, k: int, *, fixed: int = 0) -> CombinationKAnon:
    """k-anonymity on every combination of ``size`` keys of ``kt``.

    ``fixed``: the last ``fixed`` columns of ``kt`` are strata (never missing): they are added
    to every combination, so frequencies count records of the same stratum only, as sdcMicro
    does with ``strataVars``.

    >>> import polars as pl
    >>> from safemicro.keys import build_key_table
    >>> df = pl.DataFrame({"a": [1, 1, 2, 2], "b": [1, 2, 1, 2], "c": [1, 1, 1, 2]})
    >>> r = kanon_combinations(build_key_table(df, ["a", "b", "c"]), 2, 2)
    >>> [(row["keys"], row["n_violations"]) for row in r.rows]
    [(['a', 'b'], 4), (['a', 'c'], 2), (['b', 'c'], 2)]
    """
    free = len(kt.keys) - fixed
    _check_size(free, size, "the combination size")
    cards = _cards(kt)
    extra = list(range(free, len(kt.keys)))
    unsafe = np.zeros(kt.n_keys, dtype=bool)
    rows = []
    for combo in combinations(range(free), size):
        fk = combination_fk(kt, [*combo, *extra], cards)
        low = fk < k - 1e-9
        unsafe |= low
        rows.append(
            {
                "keys": [kt.keys[j] for j in combo],
                "n_violations": int(kt.count[low].sum()),
                "fk_min": float(fk.min()) if len(fk) else 0.0,
            }
        )
    return CombinationKAnon(size, int(k), rows, unsafe, int(kt.count[unsafe].sum()))


def risky_cells(kt: KeyTable, thresholds: Sequence[int], *, max_dim: int | None = None) -> list[dict]:
    """Unsafe cells of every d-way table of the keys, d = 1..max_dim (mu-Argus; sdcMicro
    ``riskyCells(useIdentificationLevel=FALSE)``): cells whose unweighted count is at most
    ``thresholds[d - 1]`` (one threshold: the same for every dimension). A missing value is
    a category of its own.

    >>> import polars as pl
    >>> from safemicro.keys import build_key_table
    >>> df = pl.DataFrame({"a": [1, 1, 1, 2], "b": [1, 1, 2, 2]})
    >>> [(r["keys"], r["unsafe_cells"]) for r in risky_cells(build_key_table(df, ["a", "b"]), [1, 1])]
    [(['a'], 1), (['b'], 0), (['a', 'b'], 2)]
    """
    thresholds = [int(t) for t in thresholds]
    max_dim = len(thresholds) if max_dim is None else int(max_dim)
    if len(thresholds) == 1:
        thresholds = thresholds * max_dim
    if len(thresholds) != max_dim:
        raise ValueError(f"give one threshold or one per dimension ({max_dim}), got {len(thresholds)}")
    p = len(kt.keys)
    cards = _cards(kt)
    out = []
    for d in range(1, max_dim + 1):
        _check_size(p, d, "the table dimension")
        for combo in combinations(range(p), d):
            ids, _, n_cells = _marginal(kt, list(combo), cards)
            count = np.bincount(ids, weights=kt.count, minlength=n_cells)
            out.append(
                {
                    "keys": [kt.keys[j] for j in combo],
                    "unsafe_cells": int(np.count_nonzero(count <= thresholds[d - 1])),
                    "threshold": thresholds[d - 1],
                }
            )
    return out


def risky_cells_summary(rows: list[dict]) -> dict:
    """Per dimension: tables, tables with unsafe cells, unsafe cells in all; the ten worst tables."""
    dims: dict[int, dict] = {}
    for r in rows:
        d = dims.setdefault(len(r["keys"]), {"threshold": r["threshold"], "tables": 0, "unsafe_tables": 0, "cells": 0})
        d["tables"] += 1
        d["unsafe_tables"] += bool(r["unsafe_cells"])
        d["cells"] += r["unsafe_cells"]
    worst = sorted((r for r in rows if r["unsafe_cells"]), key=lambda r: -r["unsafe_cells"])[:10]
    return {"by_dimension": {str(d): v for d, v in dims.items()}, "worst": worst}


def combination_summary(
    kt: KeyTable,
    *,
    combs: Sequence[int] = (),
    k: int = 3,
    thresholds: Sequence[int] = (),
    strata: KeyTable | None = None,
) -> dict:
    """The assess summary's ``key_combinations`` section: k-anonymity on every combination
    of each size in ``combs`` (on ``strata``, the key table with the stratum as last column,
    when given) and the unsafe cells of every table up to ``len(thresholds)`` dimensions."""
    out: dict = {"k": int(k), "strata": strata.keys[-1] if strata is not None else None}
    table, fixed = (strata, 1) if strata is not None else (kt, 0)
    out["kanon"] = [kanon_combinations(table, int(m), int(k), fixed=fixed).summary() for m in combs]
    out["risky_cells"] = risky_cells_summary(risky_cells(kt, thresholds)) if thresholds else None
    return out


def key_combinations(
    kt: KeyTable, key_frame: pl.DataFrame, weights: np.ndarray | None, strata: pl.Series | None, targets: dict
) -> dict | None:
    """``combination_summary`` for the plan's targets (``combs``, ``risky_cells``, ``k``);
    with ``strata`` one more group-by builds the key table with the stratum as last column
    (missing strata form a stratum of their own)."""
    combs, thresholds = list(targets.get("combs") or []), list(targets.get("risky_cells") or [])
    if not combs and not thresholds:
        return None
    table = None
    if strata is not None and combs:
        stratum = pl.Series(strata.name, encode_column(strata)[0] + 1)
        frame = key_frame.with_columns(stratum)
        table = build_key_table(frame, [*kt.keys, strata.name], weights, alpha=kt.alpha)
    return combination_summary(kt, combs=combs, k=int(targets.get("k") or 3), thresholds=thresholds, strata=table)


def combination_checks(section: dict | None) -> list[dict]:
    """Target checks: no record below k in any m-combination; no unsafe cell in any table."""
    if not section:
        return []
    checks = []
    for r in section["kanon"]:
        v = r["n_records_violating"]
        checks.append(
            {
                "target": f"k = {r['k']} on every {r['size']} keys",
                "value": v,
                "passed": v == 0,
                "message": f"{v} records violate {r['k']}-anonymity on some combination of {r['size']} keys "
                f"({r['n_combinations_violating']} of {r['n_combinations']} combinations)",
            }
        )
    rc = section.get("risky_cells")
    if rc:
        v = sum(d["cells"] for d in rc["by_dimension"].values())
        checks.append(
            {
                "target": "no unsafe cells (mu-Argus)",
                "value": v,
                "passed": v == 0,
                "message": f"{v} cells at or below their dimension's threshold in the tables of up to "
                f"{len(rc['by_dimension'])} keys",
            }
        )
    return checks
