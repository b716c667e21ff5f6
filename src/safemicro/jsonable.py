"""Strict JSON from results: numpy scalars to Python, NaN/inf to null, anything exotic to text.

Every JSON the package writes (assess summaries, release and synthesis reports, utility and
evaluation results) goes through :func:`json_ready`, so ``json.dumps(..., allow_nan=False)``
never fails on a result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["json_ready", "json_value"]


def json_value(v: Any) -> Any:
    """A scalar as JSON: NaN/inf become None, numpy scalars Python ones, exotic values text."""
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


def json_ready(obj: Any) -> Any:
    """``obj`` with every mapping, sequence and array made JSON-friendly, recursively."""
    t = type(obj)  # the plain types first: the audit log walks every entry's payload
    if t is str or t is int or t is bool or obj is None:
        return obj
    if t is float:
        return obj if math.isfinite(obj) else None
    if t is dict:
        return {str(k): json_ready(v) for k, v in obj.items()}
    if t is list:
        return [json_ready(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_ready(v) for v in obj.tolist()]
    return json_value(obj)
