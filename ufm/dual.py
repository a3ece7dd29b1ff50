"""Dual certificate: a rigorous lower bound on the SC loss from any point ``Z`` (DESIGN.md s. 5).

The loss ``f`` is convex in ``G = Z Z^T``. For every ``G'`` feasible for the relaxation
(``G' PSD``, ``diag G' = 1``, and ``G' >= 0`` under ReLU), with ``F = grad f(G)``::

    f(G') >= f(G) + <F, G' - G>.

Write ``F = C + diag(lambda) + M`` with ``M >= 0`` entrywise (``M = 0`` without ReLU). Then
``<F, G'> = <C, G'> + sum(lambda) + <M, G'> >= N min(0, lambda_min(C)) + sum(lambda)``, since
``tr G' = N`` and ``<M, G'> >= 0``. Hence, for ANY ``lambda`` and ``M >= 0``::

    f* >= f(G) - <F, G> + sum(lambda) + N min(0, lambda_min(C)).

The choice only affects tightness. From the KKT conditions at ``Z`` (``C Z = 0``):
``M_il = max(F_il, 0)`` where ``G_il <= m_tol`` (pairs the ReLU pins at 0) and
``lambda_i = <((F - M) Z)_i, z_i>``. At an exact optimum ``C`` is PSD and the bound equals
``f(G)``. Cost: one gradient and one symmetric eigenvalue (``scipy.linalg.eigh``, lowest only).

>>> import numpy as np
>>> z = np.eye(2)[[0, 0, 1, 1]]
>>> cert = dual_bound(z, [0, 0, 1, 1], tau=1.0, nonneg=True)
>>> round(cert.lower_bound, 6), round(cert.loss, 6)  # 4 log(1 + 2/e), the OF optimum
(2.205779, 2.205779)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ufm.checks import check_rows, check_tau
from ufm.loss import gram_loss

__all__ = ["DualBound", "dual_bound", "gram_dual_bound"]


@dataclass
class DualBound:
    """Lower bound from the dual certificate and its ingredients."""

    lower_bound: float
    loss: float
    lambda_min: float  # lowest eigenvalue of C (negative part is charged N times)
    seconds: float
    method: str = "dual"
    solver: str = "eigh"
    status: str = "optimal"

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.lower_bound))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower_bound": self.lower_bound,
            "loss": self.loss,
            "lambda_min": self.lambda_min,
            "seconds": self.seconds,
            "method": self.method,
            "solver": self.solver,
            "status": self.status,
        }


def _full_batch_grad(g: np.ndarray, labels: Sequence[int], tau: float) -> tuple[float, np.ndarray]:
    """Full-batch loss and ``dL/dG`` (not symmetrized), NumPy float64.

    ``dL/dG_il = (w_i P_il - W_il) / tau`` with ``P`` the row softmax over ``l != i``,
    ``W_il = [y_l = y_i, l != i] / (n_{y_i} - 1)`` and ``w_i = [n_{y_i} >= 2]``.
    """
    y = np.asarray(labels, dtype=np.int64)
    n = y.size
    s = g / tau
    np.fill_diagonal(s, -np.inf)
    m = s.max(axis=1, keepdims=True)
    e = np.exp(s - m)
    r = e.sum(axis=1, keepdims=True)
    counts = np.bincount(y)
    w = (counts[y] >= 2).astype(np.float64)
    same = (y[:, None] == y[None, :]) & ~np.eye(n, dtype=bool)
    wpos = same / np.maximum(counts[y] - 1, 1)[:, None]
    lse = (m + np.log(r))[:, 0]
    np.fill_diagonal(s, 0.0)
    value = float(np.sum(w * (lse - np.sum(wpos * s, axis=1))))
    grad = (w[:, None] * (e / r) - wpos) / tau
    return value, grad


def _batched_grad(g, labels, tau, batches) -> tuple[float, np.ndarray]:
    """Batched loss and ``dL/dG`` by autodiff of ``gram_loss`` (float64)."""
    with jax.enable_x64(True):
        y = jnp.asarray(np.asarray(labels))
        fn = jax.jit(jax.value_and_grad(lambda gg: gram_loss(gg, y, tau, batches=batches)))
        value, grad = fn(jnp.asarray(g))
        return float(value), np.asarray(grad)


def dual_bound(
    z: np.ndarray,
    labels: Sequence[int],
    tau: float,
    *,
    nonneg: bool,
    batches: Sequence[Sequence[int]] | None = None,
    m_tol: float = 1e-6,
) -> DualBound:
    """Rigorous lower bound on the relaxation (so on UFM / UFM+) from the point ``z`` (N x d).

    Rows of ``z`` are normalized first; under ``nonneg`` negative entries are clipped first
    (the bound holds whatever point it is computed at; a better point gives a tighter bound).
    """
    t0 = time.perf_counter()
    (z, _), tau = check_rows(z, labels, "z"), check_tau(tau)
    if nonneg:
        z = np.maximum(z, 0.0)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    # a row with no positive entry (or a zero row) has no direction: any feasible point will
    # do for the bound, so take the uniform non-negative unit vector
    z = np.where(norms > 0, z / np.where(norms > 0, norms, 1.0), 1.0 / np.sqrt(z.shape[1]))
    out = _bound(z @ z.T, labels, tau, nonneg, batches, m_tol, lambda c: np.einsum("id,id->i", c @ z, z))
    out.seconds = time.perf_counter() - t0
    return out


def gram_dual_bound(
    g: np.ndarray,
    labels: Sequence[int],
    tau: float,
    *,
    nonneg: bool,
    batches: Sequence[Sequence[int]] | None = None,
    m_tol: float = 1e-6,
) -> DualBound:
    """The same rigorous bound from any symmetric ``N x N`` matrix ``g`` (e.g. a conic solver's
    approximate optimum, which need not be exactly feasible); ``lambda = diag((F - M) g)``.

    >>> g = np.kron(np.eye(2), np.ones((2, 2)))  # collapse + OF for [2, 2]
    >>> round(gram_dual_bound(g, [0, 0, 1, 1], 1.0, nonneg=True).lower_bound, 6)
    2.205779
    """
    t0 = time.perf_counter()
    (g, _), tau = check_rows(g, labels, "g"), check_tau(tau)
    if g.shape[0] != g.shape[1]:
        raise ValueError(f"g must be N x N, got shape {g.shape}")
    g = 0.5 * (g + g.T)
    out = _bound(g, labels, tau, nonneg, batches, m_tol, lambda c: np.einsum("il,li->i", c, g))
    out.seconds = time.perf_counter() - t0
    return out


def _bound(g, labels, tau, nonneg, batches, m_tol, diag_cg) -> DualBound:
    """``f(G) - <F, G> + sum(lambda) + N min(0, lambda_min(C))`` with KKT multipliers."""
    n = g.shape[0]
    value, grad = _full_batch_grad(g, labels, tau) if batches is None else _batched_grad(g, labels, tau, batches)
    f = 0.5 * (grad + grad.T)
    np.fill_diagonal(f, 0.0)
    m = np.zeros_like(f)
    if nonneg:
        pinned = g <= m_tol
        np.fill_diagonal(pinned, False)
        m = np.where(pinned, np.maximum(f, 0.0), 0.0)
    lam = diag_cg(f - m)
    c = f - m
    c[np.diag_indices(n)] -= lam
    lam_min = float(scipy.linalg.eigh(c, eigvals_only=True, subset_by_index=[0, 0])[0])
    # <F, G> and sum(lambda) in float64; the eigenvalue's own error is ~1e-16 * ||C||.
    bound = value - float(np.sum(f * g)) + float(np.sum(lam)) + n * min(0.0, lam_min)
    return DualBound(lower_bound=bound, loss=value, lambda_min=lam_min, seconds=0.0)
