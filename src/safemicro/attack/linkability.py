"""Linkability: can the release be used to tie together two files about the same person?

The scenario (Article 29 Working Party; Anonymeter): the intruder holds two files about the
same people — one with some columns (say age, sex, region), the other with other columns
(education, marital status, occupation) — but no common identifier. They look up each
record of both files in the released data: if a record of the first file and one of the
second have the same nearest released record (or share one among their ``n_neighbors``
nearest), the intruder concludes they are the same person. The attack is simulated by
splitting real records column-wise in two; success means the two halves of a person were
linked. The same attack on *control* records, not used for the release, measures what any
data of this kind would allow; the baseline links halves through random released records.

Distances are Gower-like (:mod:`safemicro.attack.gower`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.common import draw_rows
from safemicro.attack.counted import CountedAttack
from safemicro.attack.gower import GowerSpace
from safemicro.errors import SafemicroError

__all__ = ["LinkabilityEvaluator"]


def _linked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows where the two neighbour sets (k columns each) share a released record."""
    return (a[:, :, None] == b[:, None, :]).any(axis=(1, 2))


class LinkabilityEvaluator(CountedAttack):
    """Linkability risk of a release (see the module docstring for the scenario).

    ``aux_cols``: the columns of the intruder's two files, ``(first, second)``.

    >>> ev = LinkabilityEvaluator(ori, syn, ctl, aux_cols=(["age", "sex"], ["edu", "marital"])).evaluate()  # doctest: +SKIP
    >>> ev.risk()                                                                                  # doctest: +SKIP
    """

    def __init__(
        self,
        original: Any,
        synthetic: Any,
        control: Any | None = None,
        *,
        aux_cols: tuple[Sequence[str], Sequence[str]],
        n_attacks: int = 500,
        n_neighbors: int = 1,
        numeric: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> None:
        if len(aux_cols) != 2 or not aux_cols[0] or not aux_cols[1]:
            raise SafemicroError("linkability needs two non-empty lists of columns (the intruder's two files)")
        self.aux_cols = (list(aux_cols[0]), list(aux_cols[1]))
        columns = list(dict.fromkeys(self.aux_cols[0] + self.aux_cols[1]))
        self._prepare((original, synthetic, control), columns, columns, numeric, seed)
        if n_attacks < 1 or n_neighbors < 1:
            raise SafemicroError("n_attacks and n_neighbors must be at least 1")
        self.n_attacks = int(n_attacks)
        self.n_neighbors = int(min(n_neighbors, self.syn.height))

    def _attack(self, space: GowerSpace, frame: int, data: pl.DataFrame) -> tuple[int, int]:
        rows = draw_rows(self.rng, data.height, self.n_attacks)
        a, _ = space.neighbours(frame, rows, 0, k=self.n_neighbors, use=self.aux_cols[0], rng=self.rng)
        b, _ = space.neighbours(frame, rows, 0, k=self.n_neighbors, use=self.aux_cols[1], rng=self.rng)
        return int(_linked(a, b).sum()), len(rows)

    def evaluate(self) -> LinkabilityEvaluator:
        space = GowerSpace(self._frames(), self.columns, self.numeric)
        self._attack_members_and_control(space)
        n = self.syn.height
        rand = lambda: np.argsort(self.rng.random((self.n_attacks_, n)), axis=1)[:, : self.n_neighbors]  # noqa: E731
        if n > 20_000:  # sampling without replacement per row, cheaply for large files
            rand = lambda: np.stack(  # noqa: E731
                [self.rng.choice(n, self.n_neighbors, replace=False) for _ in range(self.n_attacks_)]
            )
        self.n_baseline_ = int(_linked(rand(), rand()).sum())
        self._evaluated = True
        return self

    def results(self, confidence: float = 0.95) -> dict[str, Any]:
        return self._results(
            confidence, {"aux_cols": [self.aux_cols[0], self.aux_cols[1]], "n_neighbors": self.n_neighbors}
        )
