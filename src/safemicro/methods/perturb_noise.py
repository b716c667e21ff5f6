"""The noise variants of ``add_noise`` beyond additive and correlated noise.

Each works on the (n, p) matrix of the records observed on every variable and returns the
noise to add (masked − original), so :mod:`safemicro.methods.perturb` writes it back as it
does for the other methods (integers rounded, never onto a user-missing code).

- **restricted** (sdcMicro ``addNoise(method="restr")``, the linear transformation of
  noise of Kim 1986 and Brand 2002 made exact): z = x + e with e ~ N(0, amount·Σ), then
  x' = x̄ + (z − z̄)·S_z^(−1/2)·S_x^(1/2) (symmetric roots; S the sample covariances).
  The masked records have *exactly* the original mean vector and covariance matrix; with
  a small ``amount`` the transformation is close to the identity, so x' ≈ x + e.
  Kim's c·z + (1 − c)·x̄ keeps them in expectation only.
- **ROMM**, random orthogonal matrix masking (Ting, Fienberg & Trottini 2008): the records
  are cut at random into blocks of ``block`` (the last blocks up to 2·block − 1); each block
  X_b becomes A_b·X_b with A_b a random orthogonal matrix that fixes the vector of ones,
  A = H·diag(1, Q)·H (H the Householder reflection exchanging 1/√m and e₁, so its other
  columns span the complement of 1; Q the orthogonal QR factor, R's diagonal made
  positive, of I + ρ·G with G an (m−1)×(m−1) standard normal matrix, ρ = √(amount/(m − 1))). As Aᵀ1 = 1 and AᵀA = I, each block keeps its sums and its
  cross-products, so the file keeps its mean vector and covariance matrix *exactly*; the
  perturbation of a record is a random combination of its block's centred records, with
  covariance close to amount·Σ.
- **outdect** (sdcMicro ``addNoise(method="outdect")``: more noise on outliers): a record is
  an outlier when its robust (MCD) squared Mahalanobis distance exceeds the χ²(p)
  quantile ``alpha``, or when one of its values lies more than Φ⁻¹((1 + alpha)/2) robust
  standard deviations (1.4826·MAD) from the variable's median (a variable whose MAD is 0
  flags nothing univariately; without an MCD fit, only the univariate rule applies). Outliers get independent
  noise of sd ``outlier_amount``·sd(x), other records ``amount``·sd(x) (sdcMicro: only
  outliers, i.e. amount 0).
"""

from __future__ import annotations

import numpy as np

__all__ = ["restricted_noise", "romm_noise", "outliers"]

_BATCH = 256  # ROMM blocks whose matrices are drawn and applied at once


def _sym_root(cov: np.ndarray, inverse: bool) -> np.ndarray:
    """S^(1/2) or its pseudo-inverse (eigenvalues below a relative tolerance count as 0)."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    keep = vals > max(vals.max(initial=0.0), 0.0) * 1e-12
    roots = np.zeros_like(vals)
    roots[keep] = (1.0 / np.sqrt(vals[keep])) if inverse else np.sqrt(vals[keep])
    return (vecs * roots) @ vecs.T


def restricted_noise(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Noise that leaves the mean vector and covariance matrix of ``x`` exactly as they are."""
    if len(x) < 2 or amount == 0:
        return np.zeros_like(x)
    cov_x = np.atleast_2d(np.cov(x, rowvar=False))
    root = _sym_root(amount * cov_x, inverse=False)
    z = x + rng.standard_normal(x.shape) @ root
    cov_z = np.atleast_2d(np.cov(z, rowvar=False))
    masked = x.mean(axis=0) + (z - z.mean(axis=0)) @ _sym_root(cov_z, inverse=True) @ _sym_root(cov_x, inverse=False)
    return masked - x


def romm_blocks(n: int, block: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Rows cut at random into blocks of ``block`` to 2·block − 1 (one block below 2·block)."""
    perm = rng.permutation(n)
    count = max(n // block, 1)
    sizes = np.full(count, n // count)
    sizes[: n - sizes.sum()] += 1
    return np.split(perm, np.cumsum(sizes)[:-1])


def _householder(m: int) -> np.ndarray:
    """u of the reflection H = I − 2uuᵀ/(uᵀu) that exchanges 1/√m and e₁ (m ≥ 2)."""
    u = np.full(m, 1.0 / np.sqrt(m))
    u[0] -= 1.0
    return u


def romm_rotations(m: int, count: int, rho: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` random (m−1)×(m−1) orthogonal Q: the QR factor of I + ρ·G with R's diagonal > 0."""
    q, r = np.linalg.qr(np.eye(m - 1) + rho * rng.standard_normal((count, m - 1, m - 1)))
    return q * np.where(np.diagonal(r, axis1=1, axis2=2) < 0, -1.0, 1.0)[:, None, :]


def romm_apply(xb: np.ndarray, q: np.ndarray) -> np.ndarray:
    """A·X_b for blocks ``xb`` (count, m, p) with A = H·diag(1, Q)·H: orthogonal, A·1 = 1."""
    m = xb.shape[1]
    u = _householder(m)
    scale = 2.0 / (u @ u)

    def reflect(y: np.ndarray) -> np.ndarray:
        return y - scale * u[None, :, None] * np.einsum("m,cmp->cp", u, y)[:, None, :]

    hx = reflect(xb)
    hx[:, 1:] = q @ hx[:, 1:]
    return reflect(hx)


def romm_matrix(m: int, q: np.ndarray) -> np.ndarray:
    """The m×m matrix A of one block (for tests and reading)."""
    return romm_apply(np.eye(m)[None], q[None])[0]


def romm_noise(x: np.ndarray, amount: float, block: int, rng: np.random.Generator) -> np.ndarray:
    """A·X − X block by block (see the module docstring); blocks of one size in batches."""
    noise = np.zeros_like(x)
    if len(x) < 2 or amount == 0:
        return noise
    blocks = romm_blocks(len(x), block, rng)
    for m in sorted({len(b) for b in blocks}):
        same = [b for b in blocks if len(b) == m]
        rho = np.sqrt(amount / max(m - 1, 1))
        for start in range(0, len(same), _BATCH):
            rows = np.stack(same[start : start + _BATCH])  # (count, m)
            q = romm_rotations(m, len(rows), rho, rng)
            noise[rows] = romm_apply(x[rows], q) - x[rows]
    return noise


def outliers(x: np.ndarray, alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per row: multivariate (robust distance) and univariate (robust z) outlier flags, and
    whether the MCD could be fitted. Rows with a missing value are judged on what they have:
    univariately only."""
    from scipy.stats import chi2, norm

    from safemicro.risk.numeric_robust import robust_distances

    multi = np.zeros(len(x), dtype=bool)
    fitted = True
    try:
        _, _, d2 = robust_distances(x, seed=seed)
        multi = np.nan_to_num(d2, nan=-1.0) > chi2.ppf(alpha, x.shape[1])
    except ValueError:
        fitted = False
    cut = norm.ppf((1.0 + alpha) / 2.0)
    uni = np.zeros(len(x), dtype=bool)
    for j in range(x.shape[1]):
        v = x[:, j]
        ok = ~np.isnan(v)
        if not ok.any():
            continue
        med = np.median(v[ok])
        s = 1.4826 * np.median(np.abs(v[ok] - med))
        if s > 0:
            uni[ok] |= np.abs(v[ok] - med) > cut * s
    return multi, uni, fitted
