"""Population-uniqueness estimators from the sample frequency-of-frequencies (as ARX offers).

Input: ``c[j]`` = number of keys seen j times in the sample (j >= 1), sample size n and
sampling fraction π (population N = n/π). Each returns the estimated number of
population uniques (keys of population frequency 1) among the sampled keys' population.

- Zayatz (1991): P(F=1 | f=1) = p_1 h_1 / Σ_i p_i h_i, with p_i = c_i/Σc the share of
  keys of size i (taken as the population's) and h_i the hypergeometric probability that a
  population key of size i shows once in a sample of n from N; uniques = c_1 · P · N/n
  (the sampled population uniques scaled up to the population, as Dankar et al. state it).
- Pitman (Hoshino 2001): the two-parameter Pitman sampling formula fitted to c by maximum
  likelihood (θ > -α, 0 <= α < 1); uniques = Γ(θ+1)/Γ(θ+α)·N^α, Hoshino's large-N form of
  the expected singletons among N, E[K_{N,1}] = N·(θ+α)_{N-1}/(θ+1)_{N-1}.
- SNB (Chen & Keller-McNulty 1998): F = 1 + NegBin(α, p) over K population keys
  (K by Shlosser's estimator), each record sampled with probability π; α and p solve
  E[c_1] = c_1, E[c_2] = c_2; uniques = K·p^α.
- Dankar et al. (2012) decision rule: Pitman when π <= 0.1 (Zayatz when Pitman does not
  converge); above, the smaller of Zayatz and SNB (Zayatz when SNB does not converge).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.special import gammaln


def frequency_of_frequencies(fk: np.ndarray) -> np.ndarray:
    """``c[j]`` = number of keys with sample frequency j (c[0] = 0)."""
    return np.bincount(np.asarray(fk, dtype=np.int64))


def _sizes(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    j = np.nonzero(c)[0]
    j = j[j > 0]
    return j, np.asarray(c, dtype=np.float64)[j]


def zayatz(c: np.ndarray, pi: float) -> float:
    j, cj = _sizes(c)
    n = float((j * cj).sum())
    N = n / pi
    # log h_i up to a constant: log i + log C(N-i, n-1)
    log_h = np.log(j) + gammaln(N - j + 1) - gammaln(n) - gammaln(N - j - n + 2)
    log_h = np.where(N - j - n + 2 > 0, log_h, -np.inf)
    w = cj * np.exp(log_h - log_h.max())
    c1 = float(c[1]) if len(c) > 1 else 0.0
    return c1 * float(w[j == 1].sum() / w.sum()) / pi if c1 else 0.0


def pitman_fit(c: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (θ, α) of Pitman's sampling formula for the partition ``c``."""
    j, cj = _sizes(c)
    n, K = float((j * cj).sum()), float(cj.sum())
    i = np.arange(1, int(K))

    def nll(par):
        theta, alpha = par
        if not 0.0 <= alpha < 1.0 or theta <= -alpha:
            return np.inf
        ll = np.log(theta + i * alpha).sum() - (gammaln(theta + n) - gammaln(theta + 1))
        ll += (cj * (gammaln(j - alpha) - gammaln(1 - alpha))).sum()
        return -ll

    best = min(
        (
            optimize.minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 4000})
            for x0 in ([K / 2, 0.5], [K, 0.1], [1.0, 0.9])
        ),
        key=lambda r: r.fun,
    )
    if not np.isfinite(best.fun):
        raise ValueError("Pitman's model did not converge")
    return float(best.x[0]), float(best.x[1])


def pitman_uniques(theta: float, alpha: float, N: float, *, exact: bool = False) -> float:
    """Hoshino's Γ(θ+1)/Γ(θ+α)·N^α, or (``exact``) E[K_{N,1}] = N·Γ(θ+1)Γ(θ+α+N-1)/(Γ(θ+α)Γ(θ+N))."""
    if exact:
        log_u = np.log(N) + gammaln(theta + 1) + gammaln(theta + alpha + N - 1)
        log_u -= gammaln(theta + alpha) + gammaln(theta + N)
    else:
        log_u = gammaln(theta + 1) - gammaln(theta + alpha) + alpha * np.log(N)
    return float(np.exp(log_u))


def pitman(c: np.ndarray, pi: float) -> float:
    j, cj = _sizes(c)
    theta, alpha = pitman_fit(c)
    N = float((j * cj).sum()) / pi
    u = pitman_uniques(theta, alpha, N)
    if alpha <= 0 or not 0 <= u <= N:
        raise ValueError("Pitman's model gives no estimate (alpha = 0 or out of range)")
    return u


def shlosser(c: np.ndarray, pi: float) -> float:
    """Shlosser's estimate of the number of distinct keys in the population."""
    j, cj = _sizes(c)
    q = 1.0 - pi
    den = (j * pi * q ** (j - 1) * cj).sum()
    return float(cj.sum() + (c[1] if len(c) > 1 else 0) * (q**j * cj).sum() / den) if den > 0 else float(cj.sum())


def snb_expected(alpha: float, p: float, pi: float) -> tuple[float, float]:
    """P(f=1), P(f=2) per population key when F = 1 + NegBin(α, p) and records are kept with π.

    From the generating function G(s) = s·(p/(1-(1-p)s))^α at s = 1-π:
    P(f=1) = π G'(s), P(f=2) = π²/2 G''(s).
    """
    s = 1.0 - pi
    d = 1.0 - (1.0 - p) * s
    r = (1.0 - p) / d
    h_a = (p / d) ** alpha
    g1 = h_a * (1.0 + s * alpha * r)
    g2 = alpha * r * h_a * (2.0 + s * r * (alpha + 1.0))
    return pi * g1, pi**2 / 2.0 * g2


def snb(c: np.ndarray, pi: float, K: float | None = None) -> float:
    c1 = float(c[1]) if len(c) > 1 else 0.0
    c2 = float(c[2]) if len(c) > 2 else 0.0
    K = shlosser(c, pi) if K is None else K
    if c1 == 0 or c2 == 0:
        raise ValueError("the SNB model needs keys seen once and twice")

    def eqs(par):
        a, p = np.exp(par[0]), 1.0 / (1.0 + np.exp(-par[1]))
        e1, e2 = snb_expected(a, p, pi)
        return [np.log(K * e1 / c1), np.log(K * e2 / c2)]

    sol = optimize.root(eqs, [0.0, 0.0], method="hybr")
    if not sol.success or np.max(np.abs(eqs(sol.x))) > 1e-6:
        raise ValueError("the SNB model did not converge")
    a, p = np.exp(sol.x[0]), 1.0 / (1.0 + np.exp(-sol.x[1]))
    return float(K * p**a)


def population_uniqueness(fk: np.ndarray, pi: float) -> dict:
    """All estimators on the keys' sample frequencies ``fk`` (one per key), with Dankar's choice.

    Counts are population uniques; ``*_share`` divides by the population size N = n/π.
    """
    if not 0.0 < pi <= 1.0:
        raise ValueError(f"the sampling fraction must lie in (0, 1], got {pi}")
    c = frequency_of_frequencies(fk)
    N = float((np.arange(len(c)) * c).sum()) / pi
    out: dict = {"sampling_fraction": pi, "population_size": N, "sample_uniques": int(c[1]) if len(c) > 1 else 0}
    for name, fn in (("zayatz", zayatz), ("pitman", pitman), ("snb", snb)):
        try:
            out[name] = fn(c, pi) if pi < 1.0 else float(out["sample_uniques"])
        except (ValueError, FloatingPointError):
            out[name] = None
    if pi <= 0.1:
        chosen = "pitman" if out["pitman"] is not None else "zayatz"
    else:
        chosen = "snb" if out["snb"] is not None and out["snb"] < out["zayatz"] else "zayatz"
    out["dankar"] = 0.0 if out["sample_uniques"] == 0 else out[chosen]
    out["dankar_model"] = chosen
    for name in ("zayatz", "pitman", "snb", "dankar"):
        out[f"{name}_share"] = out[name] / N if out[name] is not None and N else None
    return out
