"""Success rates of attacks and the residual risk, with 95 % confidence intervals.

An attack is a series of Bernoulli trials (each guess is right or wrong). Its success rate
is estimated with the Wilson score interval (Wilson 1927), which stays sensible near 0 and 1
and for small samples; the point estimate is the interval's centre, as Anonymeter reports
it. The privacy risk compares the attack on the records behind the release with the same
attack on a holdout (control) set of records that were never used::

    risk = (attack − control) / (1 − control)

so that what the release teaches about *everybody* (population-level patterns, which is its
purpose) is not counted as a leak about the people in it. The error of the ratio is
propagated to first order from the two rates' errors; values and bounds are kept in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy.stats import norm

__all__ = ["Rate", "Risk", "Tallies", "AttackEvaluator", "wilson", "residual_risk", "attack_summary"]


@dataclass(frozen=True)
class Rate:
    """A success rate: the Wilson centre ``value`` and the half width ``error`` of its interval."""

    value: float
    error: float
    n_success: float
    n_total: int

    @property
    def ci(self) -> tuple[float, float]:
        return (max(0.0, self.value - self.error), min(1.0, self.value + self.error))

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "error": self.error,
            "ci": list(self.ci),
            "n_success": self.n_success,
            "n_total": self.n_total,
        }


@dataclass(frozen=True)
class Risk:
    """A privacy risk in [0, 1] with its confidence interval."""

    value: float
    ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"risk": self.value, "ci": list(self.ci)}


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(norm.ppf(0.5 * (1.0 + confidence)))


def wilson(n_success: float, n_total: int, confidence: float = 0.95) -> Rate:
    """Wilson score estimate of a success rate: centre (s + z²/2)/(n + z²) and half width
    z/(n + z²)·√(s(n − s)/n + z²/4). ``n_success`` may be fractional (an expected count)."""
    if n_total <= 0:
        raise ValueError("a success rate needs at least one trial")
    s = min(max(float(n_success), 0.0), float(n_total))
    z = _z(confidence)
    z2 = z * z
    denom = n_total + z2
    centre = (s + 0.5 * z2) / denom
    error = z / denom * math.sqrt(s * (n_total - s) / n_total + 0.25 * z2)
    return Rate(value=centre, error=error, n_success=s, n_total=int(n_total))


def _bound(value: float, error: float) -> Risk:
    clip = lambda x: min(max(x, 0.0), 1.0)  # noqa: E731
    return Risk(value=clip(value), ci=(clip(value - error), clip(value + error)))


def residual_risk(attack: Rate, control: Rate | None) -> Risk:
    """(attack − control)/(1 − control) with first-order error propagation, bounded to [0, 1].

    Without a control the risk is the attack's success rate itself.
    """
    if control is None:
        return _bound(attack.value, attack.error)
    gap = 1.0 - control.value
    if gap <= 0:
        return Risk(value=float("nan"), ci=(float("nan"), float("nan")))
    value = (attack.value - control.value) / gap
    d_attack = 1.0 / gap
    d_control = (attack.value - 1.0) / gap**2
    error = math.sqrt((attack.error * d_attack) ** 2 + (control.error * d_control) ** 2)
    return _bound(value, error)


def attack_summary(
    n_attacks: int,
    n_success: float,
    n_baseline: float,
    n_control: float | None,
    *,
    n_baseline_attacks: int | None = None,
    n_control_attacks: int | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """JSON-ready result of one attack: rates of the attack, the random-guess baseline and
    the control, the risk with its interval, and whether the attack beat the baseline."""
    attack = wilson(n_success, n_attacks, confidence)
    baseline = wilson(n_baseline, n_baseline_attacks or n_attacks, confidence)
    control = None if n_control is None else wilson(n_control, n_control_attacks or n_attacks, confidence)
    risk = residual_risk(attack, control)
    return {
        "risk": risk.value,
        "ci": list(risk.ci),
        "confidence": confidence,
        "attack_rate": attack.to_dict(),
        "baseline_rate": baseline.to_dict(),
        "control_rate": None if control is None else control.to_dict(),
        "baseline_risk": _bound(baseline.value, baseline.error).to_dict(),
        "beats_baseline": bool(attack.value > baseline.value),
    }


@dataclass(frozen=True)
class Tallies:
    """The counts behind one attack: successes and trials of the attack, the random guess and
    the control (``None`` without one). Counts may be expected values (fractional)."""

    success: float
    total: int
    baseline: float
    baseline_total: int
    control: float | None = None
    control_total: int | None = None


class AttackEvaluator:
    """What the evaluators share: ``risk()`` and the common part of ``results()``, both from
    the subclass's :meth:`_tallies` once ``evaluate()`` has run."""

    _evaluated = False

    def _tallies(self) -> Tallies:
        raise NotImplementedError

    def _check(self) -> None:
        if not self._evaluated:
            raise RuntimeError("call evaluate() first")

    def risk(self, confidence: float = 0.95, baseline: bool = False) -> Risk:
        """(attack − control)/(1 − control) with its interval; ``baseline``: the random guesser's rate."""
        self._check()
        t = self._tallies()
        if baseline:
            return residual_risk(wilson(t.baseline, t.baseline_total, confidence), None)
        control = None if t.control is None else wilson(t.control, t.control_total, confidence)
        return residual_risk(wilson(t.success, t.total, confidence), control)

    def _summary(self, confidence: float) -> dict[str, Any]:
        self._check()
        t = self._tallies()
        return attack_summary(
            t.total,
            t.success,
            t.baseline,
            t.control,
            n_baseline_attacks=t.baseline_total,
            n_control_attacks=t.control_total,
            confidence=confidence,
        )
