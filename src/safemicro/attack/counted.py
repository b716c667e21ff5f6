"""The tallies and results of the nearest-record attacks (inference, linkability), kept once.

Both keep their counts under the same names (``n_success_``, ``n_attacks_``, ``n_baseline_``,
``n_control_``, ``n_control_attacks_``) and end their ``results()`` with ``n_attacks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safemicro.attack.stats import AttackEvaluator, Tallies


class CountedAttack(AttackEvaluator):
    """An evaluator whose counts stand under the names above; the random guess is tried
    ``_baseline_total()`` times (by default as often as the attack)."""

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
