"""Membership inference: can the release tell whether a known person was in the data?

The scenario: the intruder holds a person's full record and wonders whether that person
took part in the survey (being in a survey of, say, people with a protection incident is
itself sensitive). They measure how close the closest released (synthetic) record is: a
record very close to someone suggests the generator saw them. The attack is tried on
real *members* (records the release was made from) and on *non-members* (the holdout
control set): the intruder flags a person as a member when their distance to the closest
released record (DCR, Gower-like) is at most the median DCR of all the people tried.

* the risk is (members flagged − non-members flagged)/(1 − non-members flagged), the
  residual form shared by every attack here, with its interval;
* the AUC of the DCR as a membership score (0.5: no better than chance), with the
  Hanley–McNeil interval, summarises every possible threshold;
* the baseline flags people at random (half of them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import norm, rankdata

from safemicro.attack.common import draw_rows, prepare_frames
from safemicro.attack.gower import GowerSpace, numeric_columns
from safemicro.attack.stats import AttackEvaluator, Tallies
from safemicro.errors import SafemicroError

__all__ = ["MembershipEvaluator", "auc_with_ci"]


def auc_with_ci(pos: np.ndarray, neg: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """AUC of scores (higher = more likely a member) by Mann–Whitney, ties counted half,
    with the Hanley & McNeil (1982) standard error."""
    n1, n0 = len(pos), len(neg)
    ranks = rankdata(np.concatenate([pos, neg]))
    auc = float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = math.sqrt(max(auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2), 0.0) / (n1 * n0))
    z = float(norm.ppf(0.5 * (1 + confidence)))
    return {"auc": auc, "ci": [max(0.0, auc - z * se), min(1.0, auc + z * se)], "se": se}


class MembershipEvaluator(AttackEvaluator):
    """Distance-based membership inference against a holdout (see the module docstring).

    >>> ev = MembershipEvaluator(train, synthetic, holdout).evaluate()   # doctest: +SKIP
    >>> ev.risk(), ev.results()["auc"]                                  # doctest: +SKIP
    """

    def __init__(
        self,
        original: Any,
        synthetic: Any,
        control: Any,
        *,
        n_attacks: int = 500,
        columns: Sequence[str] | None = None,
        numeric: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> None:
        if control is None:
            raise SafemicroError("membership inference needs a holdout (control) set of non-members")
        self.ori, self.syn, self.ctl, self.columns = prepare_frames(original, synthetic, control, columns)
        if n_attacks < 1:
            raise SafemicroError(f"n_attacks must be at least 1, got {n_attacks}")
        self.n_attacks = int(n_attacks)
        self.numeric = list(numeric) if numeric is not None else numeric_columns(self.ori, self.columns)
        self.rng = np.random.default_rng(seed)
        self._evaluated = False

    def evaluate(self) -> MembershipEvaluator:
        assert self.ctl is not None
        n = min(self.n_attacks, self.ori.height, self.ctl.height)
        space = GowerSpace([self.syn, self.ori, self.ctl], self.columns, self.numeric)
        members = draw_rows(self.rng, self.ori.height, n)
        others = draw_rows(self.rng, self.ctl.height, n)
        d_in = space.neighbours(1, members, 0, k=1)[1][:, 0]
        d_out = space.neighbours(2, others, 0, k=1)[1][:, 0]
        self.threshold_ = float(np.median(np.concatenate([d_in, d_out])))
        self.n_ = n
        self.n_success_ = int((d_in <= self.threshold_ + 1e-12).sum())
        self.n_control_ = int((d_out <= self.threshold_ + 1e-12).sum())
        self.n_baseline_ = n / 2  # flagging at random: half of the members, in expectation
        self.auc_ = auc_with_ci(-d_in, -d_out)
        self.dcr_ = {
            "members_median": float(np.median(d_in)),
            "non_members_median": float(np.median(d_out)),
            "members_zero_share": float((d_in == 0).mean()),
            "non_members_zero_share": float((d_out == 0).mean()),
        }
        self._evaluated = True
        return self

    def _tallies(self) -> Tallies:
        return Tallies(self.n_success_, self.n_, self.n_baseline_, self.n_, self.n_control_, self.n_)

    def results(self, confidence: float = 0.95) -> dict[str, Any]:
        out = self._summary(confidence)
        out.update({"n_attacks": self.n_, "threshold": self.threshold_, "auc": self.auc_, "dcr": self.dcr_})
        return out
