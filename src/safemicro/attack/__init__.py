"""Empirical disclosure testing: linkage (mosaic), singling out, linkability, inference, membership.

One evaluator per attack scenario, each told in plain words in its docstring; ``evaluate()``
runs it and returns the evaluator, ``risk()`` gives the estimate with its 95 % interval,
``results()`` a JSON-ready dict with the random-guess baseline and the control:

* :class:`LinkageEvaluator` — link auxiliary files (one or several: the mosaic) to a release
  by exact keys, Gower distance or Fellegi–Sunter; true match rate, precision, re-identified
  (:func:`release_identities`: the original identities of a bundle's rows, from its row map);
* :class:`SinglingOutEvaluator`, :class:`LinkabilityEvaluator`,
  :class:`InferenceEvaluator` — the Article 29 WP risks, risk = (attack − control)/(1 − control);
* :class:`MembershipEvaluator` — distance-based membership inference against a holdout;
* :func:`privacy_attacks` — all of the last four in one call (synthetic-data evaluation);
* :func:`simulate` — the simulation study: population → survey → release plan → intruder.

Names are imported on first use, so ``import safemicro.attack`` stays cheap.
"""

from __future__ import annotations

from safemicro.lazy import lazy_exports

_EXPORTS = {
    "LinkageEvaluator": "safemicro.attack.linkage",
    "combine_auxiliary": "safemicro.attack.linkage",
    "release_identities": "safemicro.attack.correspondence",
    "SinglingOutEvaluator": "safemicro.attack.singling_out",
    "LinkabilityEvaluator": "safemicro.attack.linkability",
    "InferenceEvaluator": "safemicro.attack.inference",
    "MembershipEvaluator": "safemicro.attack.membership",
    "privacy_attacks": "safemicro.attack.privacy",
    "simulate": "safemicro.attack.simulate",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
