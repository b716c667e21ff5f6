"""Both files coded on the linking columns, and what the intruder gets per listed person."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.gower import range_scaled
from safemicro.attack.stats import wilson
from safemicro.errors import SafemicroError
from safemicro.keys import encode_column
from safemicro.utility.tables import common_dtype


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
        columns=list(on),
        numeric=is_num,
        r_codes=np.column_stack(r_codes),
        a_codes=np.column_stack(a_codes),
        cards=cards,
        r_num=np.column_stack(r_num),
        a_num=np.column_stack(a_num),
    )


def _distinct(*arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of the stacked columns: (representative rows, inverse, counts)."""
    stacked = np.column_stack(arrays)
    _, first, inverse, counts = np.unique(stacked, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return first, inverse.ravel(), counts


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
        raise SafemicroError(
            "identity repeated in the released file: true identities must be unique per record",
            column=release_ids.name,
            row=int(dup) + 1,
        )
    left = pl.DataFrame({"id": r, "row": pl.int_range(0, len(r), eager=True)})
    mapped = pl.DataFrame({"id": a}).join(left, on="id", how="left", maintain_order="left")
    return mapped.get_column("row").fill_null(-1).to_numpy().astype(np.int64)
