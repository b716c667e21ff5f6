"""Inference: can the release be used to learn a secret attribute of a known person?

The scenario (Article 29 Working Party; Anonymeter): the intruder knows some facts about a
person who is in the original data (``aux_cols``: age, sex, region, ...) and wants a secret
one (income, legal status, a protection incident). They look the person up in the released
data and take the secret of the closest released record as their guess. A guess is right
when it equals the true value (categories) or lies within ``tolerance`` (5 %) of it
(numbers). The same attack on *control* records — real people the release was not made
from — measures what the release teaches about people in general (that is its purpose);
only the excess over it is a risk to the people in the data. The baseline guesses the
secret of a random released record.

Distances are Gower-like (:mod:`safemicro.attack.gower`). Numbers are treated as
numbers (``regression``) when they have more than 20 distinct values, unless told.
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
from safemicro.utility.tables import common_dtype

__all__ = ["InferenceEvaluator", "correct_guesses"]


def correct_guesses(guess: pl.Series, truth: pl.Series, regression: bool, tolerance: float = 0.05) -> np.ndarray:
    """Right guesses: equal values (missing = missing) or, for ``regression``, within
    ``tolerance`` of the true value (relative to its size; exact when it is 0)."""
    g, t = common_dtype(guess, truth)
    both_missing = (g.is_null() & t.is_null()).to_numpy()
    if regression:
        gv = g.cast(pl.Float64).fill_null(np.nan).to_numpy()
        tv = t.cast(pl.Float64).fill_null(np.nan).to_numpy()
        with np.errstate(invalid="ignore"):
            ok = np.abs(gv - tv) <= tolerance * np.abs(tv)
        return both_missing | np.nan_to_num(ok, nan=0).astype(bool)
    eq = (g == t).fill_null(False).to_numpy()
    return both_missing | eq


def _regression(s: pl.Series) -> bool:
    return s.dtype.is_numeric() and s.dtype != pl.Boolean and s.n_unique() > 20


class InferenceEvaluator(CountedAttack):
    """Inference risk of a secret column (see the module docstring for the scenario).

    >>> ev = InferenceEvaluator(ori, syn, ctl, aux_cols=["age", "sex"], secret="income").evaluate()  # doctest: +SKIP
    >>> ev.risk()                                                                              # doctest: +SKIP
    """

    def __init__(
        self,
        original: Any,
        synthetic: Any,
        control: Any | None = None,
        *,
        aux_cols: Sequence[str],
        secret: str,
        regression: bool | None = None,
        n_attacks: int = 500,
        tolerance: float = 0.05,
        numeric: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> None:
        if not aux_cols:
            raise SafemicroError("inference needs the columns the intruder knows (aux_cols)")
        if secret in aux_cols:
            raise SafemicroError("the secret cannot be one of the known columns", column=secret)
        self.aux_cols = list(aux_cols)
        self.secret = secret
        self._prepare((original, synthetic, control), [*aux_cols, secret], self.aux_cols, numeric, seed)
        if n_attacks < 1:
            raise SafemicroError(f"n_attacks must be at least 1, got {n_attacks}")
        self.n_attacks = int(n_attacks)
        self.regression = _regression(self.ori.get_column(secret)) if regression is None else bool(regression)
        self.tolerance = tolerance

    def _attack(self, space: GowerSpace, frame: int, data: pl.DataFrame) -> tuple[int, int]:
        rows = draw_rows(self.rng, data.height, self.n_attacks)
        nn, _ = space.neighbours(frame, rows, 0, k=1, use=self.aux_cols, rng=self.rng)
        guess = self.syn.get_column(self.secret).gather(pl.Series(nn[:, 0]))
        truth = data.get_column(self.secret).gather(pl.Series(rows))
        return int(correct_guesses(guess, truth, self.regression, self.tolerance).sum()), len(rows)

    def evaluate(self) -> InferenceEvaluator:
        space = GowerSpace([f.select(self.aux_cols) for f in self._frames()], self.aux_cols, self.numeric)
        self._attack_members_and_control(space)
        n_base = min(self.syn.height, self.n_attacks_)
        rows = draw_rows(self.rng, self.ori.height, n_base)
        guess = self.syn.get_column(self.secret).gather(pl.Series(self.rng.integers(0, self.syn.height, n_base)))
        truth = self.ori.get_column(self.secret).gather(pl.Series(rows))
        self.n_baseline_ = int(correct_guesses(guess, truth, self.regression, self.tolerance).sum())
        self.n_baseline_attacks_ = n_base
        self._evaluated = True
        return self

    def _baseline_total(self) -> int:
        return self.n_baseline_attacks_

    def results(self, confidence: float = 0.95) -> dict[str, Any]:
        return self._results(
            confidence,
            {
                "secret": self.secret,
                "aux_cols": self.aux_cols,
                "regression": self.regression,
                "tolerance": self.tolerance if self.regression else None,
            },
        )
