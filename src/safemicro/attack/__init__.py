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
    "linkage": ("LinkageEvaluator", "combine_auxiliary"),
    "correspondence": ("release_identities",),
    "singling_out": ("SinglingOutEvaluator",),
    "linkability": ("LinkabilityEvaluator",),
    "inference": ("InferenceEvaluator",),
    "membership": ("MembershipEvaluator",),
    "privacy": ("privacy_attacks",),
    "simulate": ("simulate",),
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
