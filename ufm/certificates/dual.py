"""Dual certificate: a proven lower bound on the SC loss (DESIGN.md section 5), in float64.

**The bound.** Each anchor row ``r`` of the loss (an anchor ``i`` with a positive in a batch
``B``) pays ``lse_{l in B, l != i}(G_il / tau) - <W_r, G_i> / tau`` with ``W_r`` the positive
weights ``1/(n_{B,y_i} - 1)``. For ANY probability vector ``p_r`` on ``B \\ {i}``, Fenchel's
inequality for log-sum-exp gives ``lse(x) >= <p_r, x> + H(p_r)`` (entropy ``H``), so for every
``G'`` feasible for the relaxation::

    L(G') >= sum_r H(p_r) + <F_p, G'>,    F_p = sum_r (p_r - W_r) e_i^T / tau   (N x N)

Split the symmetric part of ``F_p`` as ``C + diag(lambda) + M`` with ``M >= 0`` entrywise (ReLU
only) and any ``lambda``. On the feasible set ``diag G' = 1``, ``tr G' = N``, ``G' PSD`` (and
``G' >= 0`` with ReLU), ``<C, G'> >= N min(0, lambda_min(C))`` and ``<M, G'> >= 0``, hence::

    L* >= sum_r H(p_r) + sum_i lambda_i + N min(0, lambda_min(C)).

It is valid for every choice of ``p``, ``lambda`` and ``M``; the choice only sets how tight it
is. The point ``G`` (a solver's embeddings, or a conic solver's approximate optimum) supplies
the choice: ``p_r`` = the softmax of row ``r`` of ``G / tau``, ``M_il = max(F_il, 0)`` where
``G_il <= m_tol`` (the pairs a ReLU pins at 0) and ``lambda_i = ((F - M) G)_ii`` (from the KKT
condition ``C G = 0``). At an exact optimum the bound equals the optimal loss.

**Rounding.** The softmax rows are computed in floating point, so they do not sum exactly to
1; the bound is applied to the exactly normalized rows ``p_r = P_r / sigma_r`` (``sigma_r`` the
exact sum of the stored row), whose entropy is ``H_raw(P_r) / sigma_r + log sigma_r``. What
separates the stored ``C`` from the exact symmetric ``F_p - diag(lambda) - M`` is bounded
entrywise and charged at ``sum |Delta|`` (``|G'_il| <= 1``). Every sum is enclosed by
``ufm.certificates.rigorous.sum_bounds``, ``lambda_min(C)`` is bounded below by a Cholesky factorization with
its residual (``ufm.certificates.rigorous.psd_lower_bound``), and each final operation rounds down. So
``lower_bound`` is a bound whatever produced the point, including a conic solver that stopped
early.

**Structure.** For the full batch an optimal ``G`` of the relaxation can be taken class-block
(``G_ij = A_{y_i y_j}``, ``i != j``; DESIGN.md section 5), and the bound at a class-block point
needs only ``k x k`` work: ``C`` has the eigenvalues ``C_ii - B_cc`` on vectors summing to 0
within class ``c`` and those of ``diag(C_ii - B_cc) + D^{1/2} B D^{1/2}`` (``B`` the block
values of ``C``, ``D = diag(n_c)``). ``class_dual_bound`` does this for any ``N``; the full-batch
``dual_bound`` takes the class-block average of the point's Gram matrix (``O(N d)``).

References: Kini et al., ICLR 2024 (arXiv 2306.07960) for the problem; Boyd and Vandenberghe,
*Convex Optimization* (2004), sections 3.3 and 5.2 (conjugate of log-sum-exp, weak duality).

>>> z = np.eye(2)[[0, 0, 1, 1]]
>>> cert = dual_bound(z, [0, 0, 1, 1], tau=1.0, nonneg=True)
>>> from ufm.core.closed_forms import of_loss
>>> bool(cert.lower_bound <= of_loss([2, 2], 1.0)), round(cert.lower_bound, 9)
(True, 2.205778856)
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from ufm.core.batching import Batching
from ufm.certificates.bound import Bound
from ufm.core.checks import check_bool, check_rows, check_tau
from ufm.core.problem import Problem
from ufm.core.labels import check_counts
from ufm.certificates.rigorous import (LIBM_ULPS, TINY, U, down, gamma, psd_lower_bound, sum_bounds, up)

#: The class-level certificate's float64 rounding analysis holds for N below this.
CLASS_MAX_N = 2 ** 26

__all__ = ["CLASS_MAX_N", "dual_bound", "gram_dual_bound", "class_dual_bound", "class_gram_of_point",
           "class_block_means", "polish_class_gram", "polish_gram"]

#: Tolerances below which an entry of the point counts as pinned at 0 under ReLU (tried in turn).
PINNING_TOLERANCES = (1e-8, 1e-6, 1e-4, 1e-3)

# Each stored entropy term -m P log P carries the log's error plus two products.
_ENTROPY_REL = (LIBM_ULPS + 3) * U


def _entropy_lower(p: np.ndarray, mult: np.ndarray | None, axis: int = 1):
    """Per row: a lower bound on ``H(p_r)`` for the exactly normalized rows ``p_r = P_r /
    sigma_r``, and the interval ``[sigma_lo, sigma_hi]`` of the exact row sums.

    ``mult`` gives each stored entry a multiplicity (the number of samples it stands for).
    """
    m = np.ones_like(p) if mult is None else mult
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    mass = m * p
    s_lo, s_hi = sum_bounds(mass, rel=U if mult is not None else 0.0, axis=axis)
    h_lo, _ = sum_bounds(-(mass * logp), rel=_ENTROPY_REL, axis=axis)
    h_lo = np.maximum(h_lo, 0.0)  # the exact H_raw is >= 0 (every stored P <= 1)
    log_s = np.log(s_lo)
    log_lo = down(log_s - up(2.0 * LIBM_ULPS * U * np.abs(log_s) + TINY))
    return down(down(h_lo / s_hi) + log_lo), s_lo, s_hi


def _deviation(s_lo, s_hi, per_entry_rel: float):
    """Upper bound, per row, on ``tau * sum_l |F_exact - F_stored|`` over the row's entries:
    ``|sigma - 1|`` (normalizing the stored softmax row) plus ``per_entry_rel (sigma + 1)``
    (rounding of ``(P - W) / tau``, its accumulation and symmetrization; ``sum W = 1``)."""
    dev = np.maximum(s_hi - 1.0, 1.0 - s_lo)
    return up(up(dev) + up(per_entry_rel * (s_hi + 1.0)))


def _pinning_tolerances(m_tol: float | None, nonneg: bool) -> tuple[float, ...]:
    """The pinning tolerances tried (each gives a valid bound; the largest bound is kept): a
    conic solver leaves entries that matter little to the loss (minority-minority pairs) at
    ~1e-6 instead of 0, so one fixed tolerance can miss them."""
    if not nonneg:
        return (0.0,)
    return (float(m_tol),) if m_tol is not None else PINNING_TOLERANCES


def _assemble(entropy_lo: float, lam_lo: float, lam_min: float, n: int, delta_hi: float) -> float:
    """``H + sum(lambda) + N min(0, lambda_min) - sum|Delta|``, each step rounded down."""
    x = down(entropy_lo + lam_lo)
    x = down(x + down(float(n) * min(0.0, lam_min)))
    return down(x - delta_hi)


# ----------------------------------------------------------------------------- class-block


def class_gram_of_point(z: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Class-block average ``A`` of ``G = Z Z^T``, from the class sums in ``O(N d)``.

    ``A_cc'`` = mean of ``<z_i, z_j>`` over ``y_i = c, y_j = c'``, ``i != j`` (so ``A_cc``
    averages the within-class off-diagonal entries).

    Args:
      z: ``N x d`` real array (rows used as given).
      labels: ``(N,)`` integer array in ``0..k-1``, each class with >= 2 samples (not
        checked).
      k: the number of classes.

    Returns:
      The symmetric ``k x k`` float64 ``A``.

    >>> class_gram_of_point(np.eye(2)[[0, 0, 1, 1]], np.array([0, 0, 1, 1]), 2)
    array([[1., 0.],
           [0., 1.]])
    """
    z = np.asarray(z, dtype=np.float64)
    onehot = np.zeros((labels.size, k))
    onehot[np.arange(labels.size), labels] = 1.0
    n = onehot.sum(axis=0)
    sums = onehot.T @ z
    a = (sums @ sums.T) / np.outer(n, n)
    sq = onehot.T @ np.sum(z * z, axis=1)
    within = (np.sum(sums * sums, axis=1) - sq) / (n * (n - 1.0))
    a[np.diag_indices(k)] = within
    return 0.5 * (a + a.T)


def _class_softmax(a: np.ndarray, n: np.ndarray, tau: float):
    """At the class-block point ``A``: each anchor class's softmax ``p`` over the k sample
    types (per sample; ``mult`` samples of each type), the loss, and the symmetrized block
    values ``f`` of the gradient ``F``: within ``(p_cc - 1/(n_c - 1))/tau``, cross
    ``(p_cc' + p_c'c)/(2 tau)``. (``dL/dA_cc' = 2 n_c n_c' f_cc'`` for ``c != c'``.)"""
    k = n.size
    mult = np.tile(n, (k, 1))
    mult[np.diag_indices(k)] = n - 1.0
    logits = a / tau
    top = np.max(logits, axis=1, keepdims=True)
    e = np.exp(logits - top)
    z_row = np.sum(mult * e, axis=1, keepdims=True)
    p = e / z_row
    loss = float(np.sum(n * (top[:, 0] + np.log(z_row[:, 0]) - np.diag(logits))))
    x = p.copy()
    x[np.diag_indices(k)] -= 1.0 / (n - 1.0)
    x = x / tau
    return p, mult, loss, 0.5 * (x + x.T)


def _lbfgs_polish(loss_of_h, h0: np.ndarray, max_iter: int) -> np.ndarray:
    """Minimize ``loss_of_h`` (a JAX function of ``h``, float64) from ``h0`` by scipy's L-BFGS-B
    with the JAX value and gradient; returns the unit rows ``h / ||h||`` of the end point."""
    import jax
    from scipy.optimize import minimize

    shape = h0.shape
    with jax.enable_x64(True):
        vg = jax.jit(jax.value_and_grad(loss_of_h))

        def fun(flat):
            value, grad = vg(jax.numpy.asarray(flat.reshape(shape)))
            return float(value), np.asarray(grad, dtype=np.float64).ravel()

        res = minimize(fun, h0.ravel(), jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "gtol": 1e-13, "ftol": 0.0, "maxcor": 30})
    h = res.x.reshape(shape)
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def polish_class_gram(class_gram: np.ndarray, counts: Sequence[int], tau: float, *,
                      max_iter: int = 500) -> np.ndarray:
    """A collapsed class-level point near ``class_gram``, polished to a stationary point.

    Stationary for the collapsed loss (``ufm.core.loss.collapsed_scl_loss``: class vectors
    ``v_c`` on the unit sphere, ``A = V V^T``, ``A_cc = 1``), by L-BFGS (scipy) on
    ``v_c = h_c / ||h_c||`` with the JAX value and gradient of that loss (the project's one
    loss implementation, reused).

    A conic solver leaves the class-level ``A`` accurate only to about the square root of its
    tolerance in the directions the loss hardly sees, and the dual certificate at such a point
    loses that error to first order; at the polished point it is as tight as at a solver's.
    Used for the full-batch problem without ReLU (under ReLU the snapped OF is exact). The
    polished point is only a choice: the bound computed there is proven whatever it is.

    Args:
      class_gram: ``k x k`` starting point (any real matrix; symmetrized, its PSD part used).
      counts: samples per class, each >= 2 (not checked).
      tau: temperature > 0 (not checked).
      max_iter: L-BFGS iterations, >= 1.

    Returns:
      The polished ``A`` (``k x k``, unit diagonal, PSD up to rounding).

    References:
      Burer and Monteiro, "A nonlinear programming algorithm for solving semidefinite
      programs via low-rank factorization", Math. Programming 2003
      (factor polishing, here at full rank ``k``); Nocedal and Wright, "Numerical
      Optimization", 2nd ed., Springer 2006, section 7.2 (L-BFGS).
    """
    from ufm.core.loss import collapsed_scl_loss, normalize

    n = np.asarray(counts, dtype=np.int64)
    a0 = 0.5 * (np.asarray(class_gram, dtype=np.float64) + np.asarray(class_gram).T)
    np.fill_diagonal(a0, 1.0)
    w, vec = np.linalg.eigh(a0)
    h0 = vec * np.sqrt(np.clip(w, 0.0, None))
    h0 += 1e-12 * (np.linalg.norm(h0, axis=1, keepdims=True) == 0)
    v = _lbfgs_polish(lambda h: collapsed_scl_loss(normalize(h), n, tau), h0, max_iter)
    out = v @ v.T
    np.fill_diagonal(out, 1.0)
    return out


def class_block_means(g: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Class-block averages of an ``N x N`` matrix ``g`` (the ``A`` of a class-block point).

    The within-class blocks average their off-diagonal entries (DESIGN.md section 5).

    Args:
      g: ``N x N`` real matrix.
      labels: ``(N,)`` integer array in ``0..k-1``, each class with >= 2 samples (not
        checked).
      k: the number of classes.

    Returns:
      The ``k x k`` float64 block means.

    >>> class_block_means(np.kron(np.eye(2), np.ones((2, 2))), np.array([0, 0, 1, 1]), 2)
    array([[1., 0.],
           [0., 1.]])
    """
    onehot = np.eye(k)[labels]
    n = onehot.sum(axis=0)
    sums = onehot.T @ g @ onehot
    diag_sums = onehot.T @ np.diag(g)
    out = sums / np.outer(n, n)
    out[np.diag_indices(k)] = (np.diag(sums) - diag_sums) / (n * (n - 1.0))
    return out


def class_dual_bound(class_gram: np.ndarray, counts: Sequence[int], tau: float, *,
                     nonneg: bool, m_tol: float | None = None) -> Bound:
    """The dual certificate of the FULL-BATCH problem at a class-block point, in ``O(k^3)``.

    The point is ``G_ij = A_{y_i y_j}`` (``i != j``), for any ``N`` (module docstring).

    Args:
      class_gram: ``k x k`` symmetric ``A`` (``A_cc`` within-class, ``A_cc'`` cross-class).
      counts: samples per class (each >= 2).
      tau: temperature > 0.
      nonneg: use the ``G >= 0`` constraint (UFM+) through ``M``.
      m_tol: entries ``A_cc' <= m_tol`` count as pinned at 0 (ReLU); default: each of
        ``PINNING_TOLERANCES`` in turn, keeping the largest bound.

    Returns:
      ``Bound`` with ``method="dual"``, ``solver="cholesky"``; ``loss`` is the loss at the
      point, ``lambda_min`` the proven lower bound on ``lambda_min(C)``.

    Raises:
      ValueError: naming ``counts`` (also N >= 2^26), ``tau`` or ``class_gram`` (not a
        finite ``k x k`` matrix) when it is outside its range.

    References:
      Boyd and Vandenberghe, "Convex Optimization", Cambridge University Press 2004,
      sections 3.3 and 5.2 (log-sum-exp conjugate, weak duality);
      Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002:
      rounding error bounds (``gamma_n``, Cholesky); DESIGN.md section 5.

    >>> from ufm.core.closed_forms import of_loss
    >>> b = class_dual_bound(np.eye(3), [4, 4, 2], 0.5, nonneg=True)
    >>> bool(b.lower_bound <= of_loss([4, 4, 2], 0.5) < b.lower_bound * (1 + 1e-12))
    True
    """
    t0 = time.perf_counter()
    n = check_counts(counts).astype(np.float64)
    tau = check_tau(tau)
    k = n.size
    a = np.asarray(class_gram, dtype=np.float64)
    if a.shape != (k, k) or not np.all(np.isfinite(a)):
        raise ValueError(f"class_gram must be a finite {k} x {k} matrix, got shape {a.shape}")
    a = 0.5 * (a + a.T)
    big_n = int(n.sum())
    if big_n >= CLASS_MAX_N:
        raise ValueError(f"counts: N = {big_n} is too large for the class-level certificate "
                         f"(its rounding analysis needs N < 2**26 = {CLASS_MAX_N})")

    p, mult, loss, f = _class_softmax(a, n, tau)
    h_lo, s_lo, s_hi = _entropy_lower(p, mult)
    entropy_lo = sum_bounds(n * h_lo, rel=U)[0]
    delta = _deviation(s_lo, s_hi, 2.0 * (gamma(3) + 6 * U))
    delta_hi = up(sum_bounds(n * delta, rel=4 * U)[1] / down(tau))
    bound, lam_min = -math.inf, -math.inf
    for tol in _pinning_tolerances(m_tol, nonneg):
        m = np.where(a <= tol, np.maximum(f, 0.0), 0.0) if nonneg else np.zeros_like(f)
        b = f - m  # C's block values, exact: each entry is f, or f - f = 0
        lam = np.sum((n[None, :] - np.eye(k)) * b * a, axis=1)  # (n_c - 1) B_cc A_cc, n_c' B_cc' A_cc'
        e_diag = -lam  # C_ii (exact negation)
        within = down(e_diag - np.diag(b))  # eigenvalues on within-class zero-sum vectors
        kmat = np.sqrt(np.outer(n, n)) * b
        kmat[np.diag_indices(k)] = (e_diag - np.diag(b)) + n * np.diag(b)
        err = 3.0 * U * np.abs(kmat)
        err[np.diag_indices(k)] = 4.0 * U * (np.abs(e_diag) + (n + 1.0) * np.abs(np.diag(b)))
        err_norm = up(2.0 * math.sqrt(sum_bounds(err * err, rel=3 * U)[1]))
        lmin = min(float(np.min(within)), down(psd_lower_bound(kmat) - err_norm))
        value = _assemble(entropy_lo, sum_bounds(n * lam, rel=U)[0], lmin, big_n, delta_hi)
        if value > bound or not np.isfinite(bound):
            bound, lam_min = value, lmin
    return Bound(lower_bound=bound, method="dual", solver="cholesky", status="optimal",
                 seconds=time.perf_counter() - t0, ok=bool(np.isfinite(bound)), class_gram=a,
                 loss=loss, lambda_min=lam_min)


# ----------------------------------------------------------------------------- dense


def _dense_softmax(g: np.ndarray, y: np.ndarray, tau: float, batch_list: list):
    """At the point ``g``: the symmetrized gradient ``F`` (zero diagonal), the loss, and each
    row's entropy lower bound and deviation (``_entropy_lower``, ``_deviation``). One softmax
    per batch over its anchors' rows."""
    n = g.shape[0]
    f = np.zeros((n, n))
    ent_parts, dev_parts, loss = [], [], 0.0
    for b in batch_list:
        if b.size < 2:
            continue
        yb = y[b]
        same = (yb[:, None] == yb[None, :]) & ~np.eye(b.size, dtype=bool)
        n_pos = same.sum(axis=1)
        anchors = n_pos > 0
        if not np.any(anchors):
            continue
        s = g[np.ix_(b, b)] / tau
        np.fill_diagonal(s, -np.inf)
        s = s[anchors]
        top = np.max(s, axis=1, keepdims=True)
        e = np.exp(s - top)
        r = np.sum(e, axis=1, keepdims=True)
        p = e / r
        w = same[anchors] / n_pos[anchors, None]
        h_lo, s_lo, s_hi = _entropy_lower(p, None)
        ent_parts.append(h_lo)
        dev_parts.append(_deviation(s_lo, s_hi, 2.0 * (gamma(len(batch_list) + 3) + 6 * U)))
        s_fin = np.where(np.isfinite(s), s, 0.0)
        loss += float(np.sum(top[:, 0] + np.log(r[:, 0]) - np.sum(w * s_fin, axis=1)))
        rows = b[anchors]
        np.add.at(f, (rows[:, None], b[None, :]), (p - w) / tau)
    f = 0.5 * (f + f.T)
    np.fill_diagonal(f, 0.0)
    return f, loss, ent_parts, dev_parts


def polish_gram(g: np.ndarray, labels: Sequence[int], tau: float, *,
                batches: Sequence[Sequence[int]] | None = None, max_iter: int = 1000) -> np.ndarray:
    """A point ``V V^T`` (unit rows ``V``, no sign constraint) near ``g``, polished.

    Polished to a stationary point of the loss by L-BFGS (scipy) on ``v_i = h_i / ||h_i||``
    with the JAX value and gradient of ``ufm.core.loss.scl_loss`` (the project's one loss
    implementation, reused). The dense counterpart of
    ``polish_class_gram``, for conic solutions of the N x N relaxation without ReLU; only a
    choice of point: the bound computed there is proven whatever it is.

    Args:
      g: ``N x N`` real starting point (symmetrized; its PSD part, rows normalized, is used).
      labels: class of each sample, integers ``0..k-1`` (not checked).
      tau: temperature > 0 (not checked).
      batches: the batching (``None``: full batch), as for ``Batching.coerce``.
      max_iter: L-BFGS iterations, >= 1.

    Returns:
      The polished ``N x N`` Gram matrix (unit diagonal).

    Raises:
      ValueError: naming ``batches`` when it is not a valid batching of the N samples.

    References:
      Burer and Monteiro, "A nonlinear programming algorithm for solving semidefinite
      programs via low-rank factorization", Math. Programming 2003
      (factor polishing, here at full rank ``N``); Nocedal and Wright, "Numerical
      Optimization", 2nd ed., Springer 2006, section 7.2 (L-BFGS).
    """
    from ufm.core.loss import normalize, scl_loss

    y = np.asarray(labels, dtype=np.int64)
    n = y.size
    padded = None if batches is None else Batching.coerce(batches, n).padded()
    w, vec = np.linalg.eigh(0.5 * (g + g.T))
    # all N columns (Burer-Monteiro at full rank: no rank limit keeps it off the relaxation's
    # optimum); the null directions start at a tiny scale, not at 0, so they can grow
    h0 = vec * np.sqrt(np.clip(w, 1e-8 * max(float(w.max()), 1e-300), None))
    v = _lbfgs_polish(lambda h: scl_loss(normalize(h), y, tau, batches=padded, normalize=False),
                      h0, max_iter)
    out = v @ v.T
    np.fill_diagonal(out, 1.0)
    return out


def gram_dual_bound(g: np.ndarray, labels: Sequence[int], tau: float, *, nonneg: bool,
                    batches: Sequence[Sequence[int]] | None = None, m_tol: float | None = None) -> Bound:
    """The dual certificate at any symmetric ``N x N`` point ``g``, any batching; ``O(N^3)``.

    ``g`` may be, e.g., a conic solver's approximate optimum, which need not be feasible.

    Args:
      g: ``N x N`` finite real matrix (symmetrized first).
      labels: class of each sample, integers ``0..k-1`` with every class present.
      tau: temperature > 0.
      nonneg: use ``G >= 0`` (UFM+) through ``M``.
      batches: list of index lists (repeats count repeatedly); ``None`` = the full batch.
      m_tol: entries ``g_il <= m_tol`` count as pinned at 0 (ReLU); default: each of
        ``PINNING_TOLERANCES`` in turn, keeping the largest bound.

    Returns:
      ``Bound`` (``method="dual"``, ``solver="cholesky"``): ``lower_bound`` is
      ``sum_r H(p_r) + sum(lambda) + N min(0, lambda_min(C))`` less the rounding charge
      (module docstring), ``loss`` the loss at ``g``, ``lambda_min`` the proven bound on
      ``lambda_min(C)``.

    Raises:
      ValueError: naming ``g`` (not ``N x N``, one row per label, finite), ``labels``,
        ``tau`` or ``batches`` when it is outside its range.

    References:
      Boyd and Vandenberghe, "Convex Optimization", Cambridge University Press 2004,
      sections 3.3 and 5.2 (log-sum-exp conjugate, weak duality);
      Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002:
      rounding error bounds (``gamma_n``, Cholesky); DESIGN.md section 5.

    >>> g = np.kron(np.eye(2), np.ones((2, 2)))  # collapse + OF for [2, 2]
    >>> round(gram_dual_bound(g, [0, 0, 1, 1], 1.0, nonneg=True).lower_bound, 9)
    2.205778856
    """
    t0 = time.perf_counter()
    (g, y), tau = check_rows(g, labels, "g"), check_tau(tau)
    n = g.shape[0]
    if g.shape != (n, n):
        raise ValueError(f"g must be N x N, got shape {g.shape}")
    g = 0.5 * (g + g.T)
    batch_list = list(Batching.full(n) if batches is None else Batching.coerce(batches, n))
    f, loss, ent_parts, dev_parts = _dense_softmax(g, y, tau, batch_list)
    if ent_parts:
        entropy_lo = sum_bounds(np.concatenate(ent_parts))[0]
        delta_hi = up(sum_bounds(np.concatenate(dev_parts), rel=4 * U)[1] / down(tau))
    else:
        entropy_lo, delta_hi = 0.0, 0.0
    bound, lam_min = -math.inf, -math.inf
    for tol in _pinning_tolerances(m_tol, nonneg):
        m = np.where(g <= tol, np.maximum(f, 0.0), 0.0) if nonneg else np.zeros_like(f)
        np.fill_diagonal(m, 0.0)
        c = f - m  # exact: each entry is f, or f - f = 0
        lam = np.einsum("il,il->i", c, g)
        c[np.diag_indices(n)] = -lam
        lmin = psd_lower_bound(c)
        value = _assemble(entropy_lo, sum_bounds(lam)[0], lmin, n, delta_hi)
        if value > bound or not np.isfinite(bound):
            bound, lam_min = value, lmin
    return Bound(lower_bound=bound, method="dual", solver="cholesky", status="optimal",
                 seconds=time.perf_counter() - t0, ok=bool(np.isfinite(bound)),
                 class_gram=class_block_means(g, y, int(y.max()) + 1), gram=None, loss=loss, lambda_min=lam_min)


# ----------------------------------------------------------------------------- from a point


def dual_bound(z: np.ndarray, labels: Sequence[int] | Problem, tau: float | None = None, *,
               nonneg: bool | None = None, batches: Sequence[Sequence[int]] | None = None,
               m_tol: float | None = None) -> Bound:
    """The dual certificate from a point ``z`` (``N x d`` embeddings), any batching.

    Rows of ``z`` are normalized (under ``nonneg`` negative entries are clipped first; a row
    with no direction becomes the uniform unit vector): the bound holds at any point, a better
    point makes it tighter. Full batch: ``class_dual_bound`` at the class-block average of
    ``z z^T`` (``O(N d + k^3)``); with batches: ``gram_dual_bound`` at ``z z^T`` (``O(N^3)``).

    Args:
      z: ``N x d`` finite array, one row per label.
      labels: class of each sample (each class with >= 2 samples), or a ``Problem`` (validated
        already, samples in class order; then ``tau``, ``nonneg`` and ``batches`` come from it).
      tau: temperature > 0.
      nonneg: UFM+ (ReLU), ``True`` or ``False``.
      batches: list of index lists; ``None`` = the full batch.
      m_tol: pinned-entry tolerance (see ``gram_dual_bound``).

    Returns:
      ``Bound`` with ``method="dual"``: a proven lower bound on the optimal loss (valid for
      every ``d``), the tighter the closer ``z z^T`` is to an optimum of the relaxation.

    Raises:
      ValueError: naming ``z``, ``labels``, ``counts``, ``tau``, ``nonneg`` or ``batches``
        when it is outside its range, or for a ``Problem`` passed with ``tau``, ``nonneg``
        or ``batches``.

    References:
      Boyd and Vandenberghe, "Convex Optimization", Cambridge University Press 2004,
      sections 3.3 and 5.2 (log-sum-exp conjugate, weak duality);
      Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002:
      rounding error bounds (``gamma_n``, Cholesky); DESIGN.md section 5.
    """
    t0 = time.perf_counter()
    if isinstance(labels, Problem):
        if tau is not None or nonneg is not None or batches is not None:
            raise ValueError("pass either a Problem or labels, tau, nonneg and batches, not both")
        problem = labels
        z, y = check_rows(z, problem.labels, "z")
        tau, nonneg, batches = problem.tau, problem.nonneg, problem.batching
    else:
        (z, y), tau = check_rows(z, labels, "z"), check_tau(tau)
        nonneg = check_bool("nonneg", nonneg)
    if nonneg:
        z = np.maximum(z, 0.0)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = np.where(norms > 0, z / np.where(norms > 0, norms, 1.0), 1.0 / np.sqrt(z.shape[1]))
    if batches is None:
        counts = np.bincount(y)
        out = class_dual_bound(class_gram_of_point(z, y, counts.size), counts, tau,
                               nonneg=nonneg, m_tol=m_tol)
    else:
        out = gram_dual_bound(z @ z.T, y, tau, nonneg=nonneg, batches=batches, m_tol=m_tol)
    out.seconds = time.perf_counter() - t0
    return out
