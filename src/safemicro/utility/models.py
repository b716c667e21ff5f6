"""Regressions users will fit, compared before and after release.

Linear models are weighted least squares (``numpy.linalg.lstsq``), logistic models are
fitted by iteratively reweighted least squares; both take the survey weights as pseudo-
likelihood weights. Coefficient standard errors are design-based: each record's score
A⁻¹·xᵢ·rᵢ (A the weighted information matrix, rᵢ the residual) goes through the same
with-replacement ultimate-cluster variance as the estimates (:mod:`.design`) — the
"sandwich" estimator. Categorical predictors are dummy coded with their first category
(in the original data) as the reference.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.plan import Regression
from safemicro.utility.design import Design, z_value
from safemicro.utility.estimates import comparison
from safemicro.utility.tables import joint_codes, value_label

__all__ = ["compare_regression", "fit_regression"]


def fit_regression(
    y: np.ndarray,
    X: np.ndarray,
    design: Design,
    *,
    kind: str = "linear",
    max_iter: int = 50,
    tol: float = 1e-10,
) -> dict[str, Any]:
    """Coefficients and their design-based covariance; rows with a NaN are left out.

    Columns with no variation among the rows used (a category absent from the data) are
    not estimable: their coefficient and variance are NaN. Returns {"coef", "cov", "n",
    "converged"}.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = ~(np.isnan(y) | np.isnan(X).any(axis=1)) & (design.weights > 0)
    rows = np.flatnonzero(ok)
    p = X.shape[1]
    coef, cov = np.full(p, np.nan), np.full((p, p), np.nan)
    out = {"coef": coef, "cov": cov, "n": int(len(rows)), "converged": True}
    if len(rows) == 0:
        return out
    Xr, yr, w = X[rows], y[rows], design.weights[rows]
    keep = _independent((Xr * w[:, None]).T @ Xr)
    Xr = Xr[:, keep]
    if kind == "linear":
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(Xr * sw[:, None], yr * sw, rcond=None)[0]
        info = (Xr * w[:, None]).T @ Xr
        resid = yr - Xr @ beta
    elif kind == "logistic":
        beta = np.zeros(len(keep))
        out["converged"] = False
        for _ in range(max_iter):
            mu = 1.0 / (1.0 + np.exp(-np.clip(Xr @ beta, -35, 35)))
            info = (Xr * (w * mu * (1 - mu))[:, None]).T @ Xr
            step = np.linalg.lstsq(info, Xr.T @ (w * (yr - mu)), rcond=None)[0]
            beta = beta + step
            if np.max(np.abs(step)) <= tol * (1.0 + np.max(np.abs(beta))):
                out["converged"] = True
                break
        mu = 1.0 / (1.0 + np.exp(-np.clip(Xr @ beta, -35, 35)))
        info = (Xr * (w * mu * (1 - mu))[:, None]).T @ Xr
        resid = yr - mu
    else:
        raise SafemicroError(f"unknown regression kind {kind!r} (use linear or logistic)")
    inv = np.linalg.pinv(info)
    scores = np.zeros((len(y), len(keep)))
    scores[rows] = (Xr * resid[:, None]) @ inv
    coef[keep] = beta
    cov[np.ix_(keep, keep)] = design.covariance(scores)
    return out


def _independent(gram: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Columns kept in order while each adds something the earlier ones do not explain.

    Drops constant columns (explained by the intercept), absent categories and dummies made
    redundant when a categorical predictor's reference category is missing.
    """
    keep: list[int] = []
    for j in range(gram.shape[0]):
        g = gram[j, j]
        if keep:
            k = np.array(keep)
            g = g - gram[j, k] @ np.linalg.lstsq(gram[np.ix_(k, k)], gram[k, j], rcond=None)[0]
        if g > tol * max(gram[j, j], 1e-300):
            keep.append(j)
    return np.array(keep, dtype=np.int64)


def _is_categorical(name: str, ds_b: Dataset, ds_a: Dataset | None) -> bool:
    if not ds_b.frame.schema[name].is_numeric():
        return True
    if ds_b.codebook.meta(name).value_labels and not ds_b.special_codes(name):
        return True
    return ds_a is not None and name in ds_a.columns and not ds_a.frame.schema[name].is_numeric()


def _floats(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Float64).fill_null(np.nan).to_numpy()


def _term(name: str, value: Any, ds_b: Dataset, ds_a: Dataset | None) -> str:
    """``urbrur=2 · rural``: a category's term, whole codes without ``.0``, with its label."""
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    label = value_label(value, name, *([ds_b, ds_a] if ds_a is not None else [ds_b]))
    return f"{name}={text}" + (f" · {label}" if label not in (None, "") and str(label) != text else "")


def _predictors(
    reg: Regression, ds_b: Dataset, ds_a: Dataset | None, notes: list[str]
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Term names and the design matrices (intercept first) of both sides."""
    n_b, n_a = ds_b.n, (ds_a.n if ds_a is not None else 0)
    terms = ["(Intercept)"]
    cols_b, cols_a = [np.ones(n_b)], [np.ones(n_a)]
    for name in reg.predictors:
        before = ds_b.analysis_column(name)
        after = ds_a.analysis_column(name) if ds_a is not None else before.head(0)
        if not _is_categorical(name, ds_b, ds_a):
            terms.append(name)
            cols_b.append(_floats(ds_b.numeric_column(name)))  # special codes are not numbers
            cols_a.append(_floats(ds_a.numeric_column(name)) if ds_a is not None else _floats(after))
            continue
        jc = joint_codes(before, after)
        seen = np.flatnonzero(np.bincount(jc.before, minlength=jc.card + 1)[1:]) + 1
        reference = int(seen[0]) if len(seen) else 1
        if ds_a is not None and not np.array_equal(
            seen, np.flatnonzero(np.bincount(jc.after, minlength=jc.card + 1)[1:]) + 1
        ):
            notes.append(
                f"regression of {reg.outcome}: {name} has other categories in the release (recoded, "
                "suppressed or sampled away); coefficients of categories on one side only are not compared"
            )
        for code in range(1, jc.card + 1):
            if code == reference:
                continue
            terms.append(_term(name, jc.values[code - 1], ds_b, ds_a))
            for codes, cols in ((jc.before, cols_b), (jc.after, cols_a)):
                cols.append(np.where(codes == 0, np.nan, (codes == code).astype(np.float64)))
    return terms, np.column_stack(cols_b), (np.column_stack(cols_a) if ds_a is not None else None)


def _outcome(reg: Regression, ds_b: Dataset, ds_a: Dataset | None, notes: list[str]):
    """The outcome as floats (0/1 for logistic models) on both sides (None: not comparable)."""
    name = reg.outcome
    before = ds_b.analysis_column(name)
    after = ds_a.analysis_column(name) if ds_a is not None else None
    if reg.kind == "linear":
        if not before.dtype.is_numeric():
            raise SafemicroError(
                f"linear regression of {name!r}: the outcome must be numeric, found {before.dtype}", column=name
            )
        if after is not None and not after.dtype.is_numeric():
            notes.append(f"regression of {name}: the outcome is no longer numeric in the release; not compared")
            after = None
        return _floats(before), (None if after is None else _floats(after))
    jc = joint_codes(before, after if after is not None else before.head(0))
    seen = np.flatnonzero(np.bincount(jc.before, minlength=jc.card + 1)[1:]) + 1
    values = jc.values.to_list()
    if len(seen) != 2:
        raise SafemicroError(
            f"logistic regression of {name!r}: the outcome must have two values, found {len(seen)}", column=name
        )
    one = int(seen[1])
    if values[one - 1] not in (1, True):
        notes.append(f"regression of {name}: the model is for {name} = {values[one - 1]!r}")

    def code(codes: np.ndarray) -> np.ndarray:
        return np.where(codes == 0, np.nan, (codes == one).astype(np.float64))

    y_a = None
    if after is not None:
        extra = np.setdiff1d(np.unique(jc.after), np.concatenate([[0], seen]))
        if len(extra):
            notes.append(f"regression of {name}: the outcome has other values in the release; not compared")
        else:
            y_a = code(jc.after)
    return code(jc.before), y_a


def _coef_side(fit: dict | None, j: int, z: float) -> dict[str, Any] | None:
    if fit is None:
        return None
    est, var = fit["coef"][j], fit["cov"][j, j]
    if not (math.isfinite(est) and math.isfinite(var)):
        return {"estimate": None, "se": None, "lower": None, "upper": None}
    se = math.sqrt(max(var, 0.0))
    return {"estimate": float(est), "se": se, "lower": float(est - z * se), "upper": float(est + z * se)}


def compare_regression(
    reg: Regression,
    before: tuple[Dataset, Design],
    after: tuple[Dataset, Design],
    *,
    level: float = 0.95,
) -> tuple[dict[str, Any], list[str]]:
    """Fit ``reg`` on both sides; coefficients with CIs, differences and interval overlap."""
    (ds_b, des_b), (ds_a, des_a) = before, after
    notes: list[str] = []
    names = [reg.outcome, *reg.predictors]
    for name in names:
        if name not in ds_b.columns:
            raise SafemicroError(f"regression names {name!r}, which is not a column of the original data", column=name)
    missing = [n for n in names if n not in ds_a.columns]
    if missing:
        notes.append(f"regression of {reg.outcome}: {', '.join(missing)} removed in the release; not compared")
    side_a = None if missing else ds_a
    if not reg.weighted:
        des_b = replace(des_b, weights=np.ones(des_b.n))
        des_a = replace(des_a, weights=np.ones(des_a.n))
    y_b, y_a = _outcome(reg, ds_b, side_a, notes)
    terms, X_b, X_a = _predictors(reg, ds_b, side_a, notes)
    fit_b = fit_regression(y_b, X_b, des_b, kind=reg.kind)
    fit_a = fit_regression(y_a, X_a, des_a, kind=reg.kind) if y_a is not None and X_a is not None else None
    for label, fit in (("original", fit_b), ("release", fit_a)):
        if fit is not None and not fit["converged"]:
            notes.append(f"regression of {reg.outcome}: the logistic fit on the {label} did not converge")
    z = z_value(level)
    coefficients = [
        {"term": term} | comparison(_coef_side(fit_b, j, z), _coef_side(fit_a, j, z)) for j, term in enumerate(terms)
    ]
    overlaps = [c["ci_overlap"] for c in coefficients if c["ci_overlap"] is not None]
    return {
        "outcome": reg.outcome,
        "predictors": list(reg.predictors),
        "kind": reg.kind,
        "weighted": reg.weighted,
        "n_before": fit_b["n"],
        "n_after": None if fit_a is None else fit_a["n"],
        "coefficients": coefficients,
        "mean_ci_overlap": float(np.mean(overlaps)) if overlaps else None,
    }, notes
