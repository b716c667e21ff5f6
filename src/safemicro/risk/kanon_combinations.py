"""k-anonymity on every combination of m keys (sdcMicro ``kAnon(combs=)``).

Needs assessments carry dozens of keys; full-key k-anonymity then makes nearly everyone
unique and suppression destroys the file. An intruder rarely knows all of them: the
scenario sdcMicro's ``combs`` argument encodes is one who knows *some* m of the keys. For
each m, every m-subset of the keys gets its own key table (sample frequencies with missing
values as wildcards, :func:`~safemicro.keys.build_key_table`), and a record violates
k-anonymity "at m" when it is in a key group smaller than k for at least one of them.
"""

from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Any

import numpy as np
import polars as pl

from safemicro.keys import build_key_table

__all__ = ["combination_violations", "MAX_COMBINATIONS"]

MAX_COMBINATIONS = 2000  # key subsets per call: more is refused (choose a smaller m)


def combination_violations(
    frame: pl.DataFrame, keys: list[str], k: int, sizes: list[int], *, alpha: float = 1.0, top: int = 5
) -> tuple[dict[str, Any], np.ndarray]:
    """Per size m: records violating ``k`` in some m-key combination, and the worst combinations.

    Returns the JSON-ready summary and, per record, the smallest m at which it violates k
    (0: at none of the sizes).

    >>> df = pl.DataFrame({"a": [1, 1, 2], "b": [1, 2, 2], "c": [1, 1, 1]})
    >>> summary, _ = combination_violations(df, ["a", "b", "c"], 2, [1])
    >>> summary["1"]["records_violating"], summary["1"]["combinations"]
    (2, 3)
    """
    first = np.zeros(frame.height, dtype=np.int64)
    out: dict[str, Any] = {}
    for m in sorted({int(s) for s in sizes}):
        if not 1 <= m <= len(keys):
            raise ValueError(f"combination size {m} must lie between 1 and the number of keys ({len(keys)})")
        if comb(len(keys), m) > MAX_COMBINATIONS:
            raise ValueError(f"{comb(len(keys), m)} combinations of {m} keys: more than {MAX_COMBINATIONS}")
        violating = np.zeros(frame.height, dtype=bool)
        worst = []
        for subset in combinations(keys, m):
            fk = build_key_table(frame, list(subset), alpha=alpha).record_fk()
            bad = fk < k
            violating |= bad
            worst.append((int(bad.sum()), list(subset)))
        first[(first == 0) & violating] = m
        worst.sort(key=lambda t: -t[0])
        out[str(m)] = {
            "combinations": len(worst),
            "records_violating": int(violating.sum()),
            "combinations_violated": int(sum(1 for n, _ in worst if n)),
            "worst": [{"keys": ks, "records_violating": n} for n, ks in worst[:top] if n],
        }
    return out, first
