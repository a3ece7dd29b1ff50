"""Float64 arithmetic with proven error bounds: the building blocks of every reported lower bound.

A certificate is a proof, so a bound computed in floating point must stay a bound after
rounding. This module gives the three pieces the dual certificates need, each with its error
analysis (IEEE 754 double precision, round to nearest, unit roundoff ``u = 2^-53``,
``gamma_n = n u / (1 - n u)``; Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd
ed., SIAM 2002, Lemma 3.1 and Section 3.5):

- ``down(x)`` / ``up(x)``: the neighbouring float below / above. Applied to the round-to-nearest
  result of ONE operation on floats, they give a float on the safe side of the exact result
  (rounding to nearest moves by at most half a spacing; the neighbour is a whole spacing away).
- ``sum_bounds(terms, rel=0)``: an interval ``[lo, hi]`` holding the exact sum of the true terms
  when each float term carries a relative error ``<= rel``. Any summation order of ``n`` terms
  errs by at most ``gamma_{n-1} sum |t|`` (Higham eq. 3.5), whatever NumPy's order is.
- ``psd_lower_bound(C)``: a proven lower bound on ``lambda_min(C)`` of a symmetric float matrix,
  from a Cholesky factorization of the shifted matrix and its residual (below).

Assumptions, stated once: additions, multiplications, divisions and square roots are correctly
rounded (IEEE 754); ``exp`` and ``log`` (NumPy's, or the C library's) err by at most
``LIBM_ULPS`` units in the last place, a generous margin over the <= 4 ulp that NumPy and glibc
document; matrix products use conventional (not Strassen-like) summation, as BLAS does; no
underflow below the normal range changes a result by more than the absolute slack ``TINY``.

>>> lo, hi = sum_bounds(np.full(10, 0.1))
>>> lo <= 1.0 <= hi, hi - lo < 1e-14
(True, True)
>>> 0.999 < psd_lower_bound(np.array([[2.0, 1.0], [1.0, 2.0]])) <= 1.0  # lambda_min = 1
True
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

__all__ = ["U", "LIBM_ULPS", "TINY", "gamma", "down", "up", "sum_bounds", "psd_lower_bound",
           "psd_lower_bound_gershgorin"]

#: Unit roundoff of float64 (round to nearest).
U = 2.0 ** -53
#: Assumed worst error of exp and log in units in the last place (see the module docstring).
LIBM_ULPS = 16
#: Absolute slack for subnormal effects (far below every quantity the bounds add up).
TINY = 1e-300


def gamma(n: int) -> float:
    """``gamma_n = n u / (1 - n u)`` (Higham, Lemma 3.1), rounded up; needs ``n u < 1/2``.

    >>> gamma(0), gamma(1) > 2.0 ** -53
    (0.0, True)
    """
    if n <= 0:
        return 0.0
    nu = float(n) * U
    if nu >= 0.5:
        raise ValueError(f"gamma_n needs n u < 1/2, got n = {n}")
    return up(up(nu) / down(1.0 - nu))


def down(x):
    """The float below ``x`` (elementwise for arrays; ``-inf`` stays): a lower bound of the
    exact result of the single round-to-nearest operation that produced ``x``."""
    out = np.nextafter(x, -np.inf)
    return float(out) if np.ndim(out) == 0 else out


def up(x):
    """The float above ``x`` (elementwise for arrays): an upper bound of the exact result of one
    rounded operation."""
    out = np.nextafter(x, np.inf)
    return float(out) if np.ndim(out) == 0 else out


def sum_bounds(terms: np.ndarray, rel: float = 0.0, axis: int | None = None):
    """Interval ``[lo, hi]`` that holds ``sum_i t_i`` for any true terms ``t_i`` with
    ``|t_i - terms_i| <= rel |terms_i|``.

    The computed sum ``s`` of ``n`` floats errs by at most ``gamma_{n-1} sum |terms|`` (any
    order), and the terms' own errors add ``rel sum |terms|``. The float ``a`` computed for
    ``sum |terms|`` is itself at most ``a / (1 - gamma_n)`` below the exact one, so with
    ``gamma_n, rel <= 1/4`` the total error is at most ``e = (2 gamma_n + 2 rel) a``; ``e`` is
    doubled once more to cover the rounding of its own computation.

    Args:
      terms: float array.
      rel: relative error bound of each term (e.g. a few ``U`` for terms that are products).
      axis: sum along this axis (arrays of bounds come back); ``None`` sums everything.

    Returns:
      ``(lo, hi)`` with ``lo <= exact sum <= hi`` (floats, or arrays with ``axis``).

    >>> sum_bounds(np.array([1.0, 2.0 ** -60]))[1] > 1.0
    True
    """
    x = np.asarray(terms, dtype=np.float64)
    if axis is None:
        x = x.ravel()
        axis = 0
    n = x.shape[axis] if x.ndim else 1
    if rel > 0.25:
        raise ValueError(f"rel must be <= 1/4, got {rel}")
    with np.errstate(invalid="ignore"):
        s = np.sum(x, axis=axis)
        a = np.sum(np.abs(x), axis=axis)
        e = up(2.0 * up(up(2.0 * gamma(max(n, 1)) + 2.0 * rel) * a)) + TINY
        lo, hi = down(s - e), up(s + e)
    bad = ~np.isfinite(s) | ~np.isfinite(a)
    if np.ndim(lo) == 0:
        return (-math.inf, math.inf) if bool(bad) else (float(lo), float(hi))
    return np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi)


def _residual_bound(a: np.ndarray, low: np.ndarray) -> float:
    """Upper bound on ``||A - L L^T||_2`` for float ``A`` and its computed Cholesky factor ``L``.

    ``P = fl(L L^T)`` errs by ``|P - L L^T| <= gamma_n |L| |L|^T`` entrywise (conventional
    matrix product), and ``|L| |L|^T`` has Frobenius norm at most ``||L||_F^2`` (Cauchy-Schwarz
    on each entry). ``R = fl(A - P)`` is the exact difference times ``(1 + d)``, ``|d| <= u``.
    So ``||A - L L^T||_2 <= ||A - L L^T||_F <= ||R||_F / (1 - u) + gamma_n ||L||_F^2``; both
    norms are sums of non-negative squares, bounded above by ``sum_bounds``.
    """
    n = a.shape[0]
    r = a - low @ low.T
    r_ss = sum_bounds(r * r, rel=3 * U)[1]  # squares: one rounding each, plus R's own (1+d)^2
    l_ss = sum_bounds(low * low, rel=U)[1]
    r_norm = up(up(math.sqrt(r_ss)) * (1.0 + 4 * U))
    return up(r_norm + up(up(2.0 * gamma(n + 1)) * l_ss))


def psd_lower_bound(c: np.ndarray, *, max_tries: int = 30) -> float:
    """A proven lower bound on the smallest eigenvalue of the symmetric float matrix ``c``.

    With a shift ``t >= 0`` and ``A = fl(c + t I)`` (only the diagonal rounds: ``c + t I =
    A + D``, ``|D_ii| <= u |A_ii|``), a Cholesky factor ``L`` of ``A`` computed in floating
    point, and ``E = A - L L^T`` (bounded by ``_residual_bound``), Weyl's inequality gives::

        lambda_min(c) = lambda_min(A + D) - t >= lambda_min(L L^T) - ||E||_2 - ||D||_2 - t
                      >= -(t + ||E||_2 + u max_i |A_ii|)

    since ``L L^T`` is PSD. The shift starts at a small multiple of ``n u max|c|`` (enough when
    ``c`` is PSD up to rounding, as at a certified optimum) and, if the factorization fails, at
    ``-mu`` plus a margin, with ``mu`` the smallest eigenvalue reported by LAPACK (only a
    guess: the bound never relies on it). If every factorization fails, Gershgorin's bound is
    returned, which needs no factorization.

    Args:
      c: symmetric ``n x n`` float64 matrix (as stored; it must be exactly symmetric).
      max_tries: factorization attempts before falling back to Gershgorin.

    Returns:
      A float ``<= lambda_min(c)``; at most ``0`` up to the shift (the method proves ``c + tI``
      PSD, it does not measure a positive ``lambda_min``), or the Gershgorin bound if larger.

    >>> psd_lower_bound(np.zeros((3, 3))) <= 0.0
    True
    """
    c = np.asarray(c, dtype=np.float64)
    n = c.shape[0]
    if c.ndim != 2 or c.shape != (n, n) or not np.array_equal(c, c.T):
        raise ValueError("c must be an exactly symmetric square matrix")
    if not np.all(np.isfinite(c)):
        return -math.inf
    gersh = psd_lower_bound_gershgorin(c)
    scale = float(np.max(np.abs(c))) if n else 0.0
    if scale == 0.0:
        return min(0.0, gersh)
    t = 8.0 * (n + 1) * U * scale
    tried_eig = False
    best = gersh
    for _ in range(max_tries):
        a = c.copy()
        a[np.diag_indices(n)] += t
        try:
            low = scipy.linalg.cholesky(a, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            low = None
        if low is not None and np.all(np.isfinite(low)):
            diag_err = up(U * float(np.max(np.abs(np.diag(a)))) * (1.0 + 4 * U))
            total = up(up(t + _residual_bound(a, low)) + diag_err)
            return max(best, -total)
        if not tried_eig:
            tried_eig = True
            mu = float(scipy.linalg.eigh(c, eigvals_only=True, subset_by_index=[0, 0],
                                         check_finite=False)[0])
            t = max(t, -mu + t) if np.isfinite(mu) else 2.0 * t
        else:
            t *= 4.0
    return best


def psd_lower_bound_gershgorin(c: np.ndarray) -> float:
    """Gershgorin's bound ``lambda_min(c) >= min_i (c_ii - sum_{j != i} |c_ij|)``, rounded down.

    >>> psd_lower_bound_gershgorin(np.array([[2.0, 1.0], [1.0, 2.0]]))  # doctest: +ELLIPSIS
    0.99999999...
    """
    c = np.asarray(c, dtype=np.float64)
    n = c.shape[0]
    off = np.abs(c).sum(axis=1) - np.abs(np.diag(c))  # rounding covered by the margin below
    row_abs = np.abs(c).sum(axis=1)
    margin = 2.0 * gamma(n + 2) * row_abs + TINY
    return down(float(np.min(np.diag(c) - off - margin)))
