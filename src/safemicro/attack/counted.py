"""The set-up, tallies and results of the nearest-record attacks (inference, linkability), kept once.

Both prepare the three frames, the numeric columns and the random generator alike, attack
the training records (frame 1 of the distance space) and the control records (frame 2), keep
their counts under the same names (``n_success_``, ``n_attacks_``, ``n_baseline_``,
``n_control_``, ``n_control_attacks_``) and end their ``results()`` with ``n_attacks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.common import prepare_frames
from safemicro.attack.gower import GowerSpace, numeric_columns
from safemicro.attack.stats import AttackEvaluator, Tallies


class CountedAttack(AttackEvaluator):
    """An evaluator whose counts stand under the names above; the random guess is tried
    ``_baseline_total()`` times (by default as often as the attack)."""

    def _prepare(
        self,
        frames: tuple[Any, Any, Any | None],
        columns: Sequence[str],
        known: Sequence[str],
        numeric: Sequence[str] | None,
        seed: int | None,
    ) -> None:
        """The original, synthetic and control frames on ``columns``; the numeric columns
        among those the intruder knows (unless given); the random generator."""
        self.ori, self.syn, self.ctl, self.columns = prepare_frames(*frames, columns)
        self.numeric = list(numeric) if numeric is not None else numeric_columns(self.ori, known)
        self.rng = np.random.default_rng(seed)
        self._evaluated = False

    def _frames(self) -> list[pl.DataFrame]:
        """The frames of the distance space: synthetic (0), original (1), control (2) if any."""
        return [self.syn, self.ori] + ([self.ctl] if self.ctl is not None else [])

    def _attack(self, space: GowerSpace, frame: int, data: pl.DataFrame) -> tuple[int, int]:
        """Successes and attacks against the records of ``data``, frame ``frame`` of ``space``."""
        raise NotImplementedError

    def _attack_members_and_control(self, space: GowerSpace) -> None:
        self.n_success_, self.n_attacks_ = self._attack(space, 1, self.ori)
        self.n_control_, self.n_control_attacks_ = (
            (None, None) if self.ctl is None else self._attack(space, 2, self.ctl)
        )

    def _baseline_total(self) -> int:
        return self.n_attacks_

    def _tallies(self) -> Tallies:
        return Tallies(
            self.n_success_,
            self.n_attacks_,
            self.n_baseline_,
            self._baseline_total(),
            self.n_control_,
            self.n_control_attacks_,
        )

    def _results(self, confidence: float, details: Mapping[str, Any]) -> dict[str, Any]:
        """The common summary, then ``details``, then the number of attacks."""
        out = self._summary(confidence)
        out.update({**details, "n_attacks": self.n_attacks_})
        return out
