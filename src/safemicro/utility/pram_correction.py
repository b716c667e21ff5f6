"""Proportions of post-randomised (PRAM) variables: the unbiased estimate and its full variance.

PRAM replaces a category k by l with probability p_kl (the transition matrix P, kept in the
internal report). The released proportions λ̂ estimate λ = P'π, not π, and their naive
interval only has the sampling variance. The moment estimator of Kooiman, Willenborg &
Gouweleeuw (1997) and Gouweleeuw et al. (1998) inverts the matrix, π̂ = (P')⁻¹ λ̂, with
variance (P')⁻¹ V(λ̂) P⁻¹ where V(λ̂) includes the misclassification.

It is computed here by linearisation: with Q = (P')⁻¹, record i released in category l
scores z_ik = Q[k, l], and π̂_k is the weighted mean of z_ik. Its design-based variance (the
ultimate-cluster estimator of :mod:`safemicro.utility.design`) covers the sampling and the
PRAM variance, since PRAM draws are independent between PSUs (one draw per record or per
household); under simple random sampling it is exactly Q·V̂(λ̂)·Q' (see the test for a
hand-checked case). With a matrix per stratum, each record uses its stratum's Q.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.io.dataset import Dataset
from safemicro.utility.design import Design
from safemicro.utility.estimates import estimate

__all__ = ["pram_matrices", "pram_corrector", "corrected_proportions", "public_indicators", "UNDERSTATED"]

CORRECTED = "after_pram_corrected"  # the key of an indicator row's corrected estimate

UNDERSTATED = (
    "{title}: {var} was post-randomised (PRAM); the interval computed on the release ignores "
    "the misclassification variance PRAM adds and understates the uncertainty"
)


def pram_matrices(changes: Sequence[Any] | None) -> dict[str, list[dict[str, Any]] | None]:
    """Per PRAMed variable, the transition matrices its step recorded (None: prammed twice,
    so one matrix does not describe the release)."""
    out: dict[str, list[dict[str, Any]] | None] = {}
    for c in changes or []:
        if getattr(c, "method", None) != "pram":
            continue
        for var, matrices in (c.details.get("transition_matrix") or {}).items():
            out[var] = None if var in out else matrices
    return out


def public_indicators(rows: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Indicator rows for users: without the corrected estimates, which together with the
    naive ones would tell the transition matrix (kept internal, like the matrix itself)."""
    return None if rows is None else [{k: v for k, v in r.items() if k != CORRECTED} for r in rows]


def pram_corrector(changes: Sequence[Any] | None) -> Callable[..., tuple[Any, str] | None] | None:
    """What :func:`safemicro.utility.estimates.compare_indicator` calls for a proportion:
    None for a variable that was not PRAMed, else (corrected estimates or None, note)."""
    pram = pram_matrices(changes)
    if not pram:
        return None

    def correct(indicator, title, ds_a, des_a, dom_a, categories, level) -> tuple[Any, str] | None:
        var, by = indicator.variable, indicator.by
        if var not in pram:
            return None
        why = f"the domain variable {by} was post-randomised too" if by in pram else None
        est = None
        if why is None:
            est, why = corrected_proportions(ds_a, var, categories, pram[var], des_a, dom_a, level=level)
        note = UNDERSTATED.format(title=title, var=var)
        if est is None:
            return None, note + f"; no corrected estimate: {why}"
        return est, note + (
            "; after_pram_corrected is the unbiased estimate (P')⁻¹·λ̂ with an interval that "
            "includes the PRAM variance (Kooiman et al. 1997)"
        )

    return correct


def corrected_proportions(
    released: Dataset,
    var: str,
    categories: Sequence[Any],
    matrices: list[dict[str, Any]] | None,
    design: Design,
    domain: np.ndarray | None,
    *,
    level: float = 0.95,
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The PRAM-corrected proportion of each of ``categories`` (per domain), as
    :func:`safemicro.utility.estimates.estimate` returns them (shape (D, C)), or None and
    why the correction is not possible."""
    if not matrices:
        return None, "its transition matrix is not known (stored for no stratum, or several PRAM steps)"
    values = released.analysis_column(var)
    n = released.n
    observed = values.is_not_null().to_numpy()
    which = np.full(n, -1, dtype=np.int64)  # the matrix (stratum) of each record
    for s, m in enumerate(matrices):
        rows = np.ones(n, dtype=bool)
        for col, v in (m.get("stratum") or {}).items():
            if col not in released.columns:
                return None, f"the PRAM stratum variable {col!r} is not in the release"
            rows &= (released.frame.get_column(col) == v).fill_null(False).to_numpy()
        which[rows & (which < 0)] = s
    if (observed & (which < 0)).any():
        return None, "some records are in strata whose transition matrix was not stored"
    z = np.full((len(categories), n), np.nan)
    for s, m in enumerate(matrices):
        src, dst = list(m["from"]), list(m["to"])
        p = np.asarray(m["matrix"], dtype=np.float64)
        if src != dst or p.shape != (len(src), len(src)):
            return None, "its transition matrix is not square over the observed categories"
        if np.linalg.cond(p) > 1e8:
            return None, "its transition matrix cannot be inverted"
        q = np.linalg.inv(p.T)
        rows = np.flatnonzero(observed & (which == s))
        lookup = pl.DataFrame({"v": pl.Series(dst, dtype=values.dtype), "i": np.arange(len(dst))})
        pos = pl.DataFrame({"v": values.gather(rows)}).join(lookup, on="v", how="left", maintain_order="left")
        col = pos.get_column("i")
        if col.null_count():
            return None, "the release has categories its transition matrix does not have"
        col = col.to_numpy()
        for c, value in enumerate(categories):
            k = src.index(value) if value in src else None
            z[c, rows] = 0.0 if k is None else q[k, col]
    parts = [estimate(z[c], design, kind="mean", domain=domain, level=level) for c in range(len(categories))]
    return {key: np.stack([p[key] for p in parts], axis=-1) for key in parts[0]}, None
