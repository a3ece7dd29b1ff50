"""Cross-entropy under the unconstrained features model (Graf et al., ICML 2021; DESIGN.md s. 4).

The comparison problem for the SC loss: features ``z_i`` with ``||z_i|| <= rho_Z``, class weights
``W`` (k x d, no bias) and

    CE(Z, W) = 1/N sum_i -log( exp(<w_{y_i}, z_i>) / sum_c exp(<w_c, z_i>) ),
    minimize  CE(Z, W) + lam ||W||_F^2.

Closed forms (balanced classes):

- lower bound: ``CE(Z, W) >= log(1 + (K-1) exp(-rho_Z sqrt(K)/(K-1) ||W||_F))`` for all Z, W
  (``ce_lower_bound``), with equality at collapse onto an ETF of radius rho_Z and weights on the
  aligned ETF;
- with the L2 term the minimizer is that configuration with every weight row of norm ``r_W``,
  the root of ``2 lam r_W (exp(K/(K-1) rho_Z r_W) + K - 1) - rho_Z = 0`` (``ce_weight_radius``).

``solve_ce`` minimizes the regularized problem with L-BFGS (``ufm.solvers.optim.lbfgs_step``: optax, zoom
line search; stopping on the gradient norm, ``tol``) in float64, the features
parametrized on the sphere of radius ``rho_Z`` (``z = rho_Z h/||h||``), where the minimizers lie;
a term ``sum_i (||h_i||^2 - 1)^2`` fixes the free scale of ``h`` without changing ``z``.

>>> r = ce_weight_radius(4, rho_z=1.0, lam=0.01)
>>> round(2 * 0.01 * r * (math.exp(4 / 3 * r) + 3) - 1.0, 12)
0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.optimize import brentq

from ufm.solvers import optim
from ufm.core.labels import check_counts, labels_from_counts

__all__ = ["CEResult", "ce_loss", "ce_lower_bound", "ce_weight_radius", "ce_optimum", "solve_ce"]


def ce_loss(z: jax.Array, w: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy ``1/N sum_i -log softmax(W z_i)_{y_i}`` (log-sum-exp safe).

    Args:
      z: ``N x d`` features.
      w: ``k x d`` class weights (no bias).
      labels: ``(N,)`` integer labels in ``0..k-1`` (not checked).

    Returns:
      The mean cross-entropy, a 0-d JAX array.

    References:
      Graf, Hofer, Niethammer, Kwitt, "Dissecting Supervised Contrastive Learning",
      ICML 2021 (CE under the unconstrained features model).
    """
    logits = z @ w.T
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, labels[:, None], 1)[:, 0])


def ce_lower_bound(k: int, rho_z: float, w_fro: float) -> float:
    """CE's minimum over ``||z_i|| <= rho_Z`` at fixed ``||W||_F`` (balanced classes)::

        log(1 + (K-1) exp(-rho_Z sqrt(K)/(K-1) ||W||_F))

    Args:
      k: the number of classes ``K``, an integer ``>= 2`` (not checked).
      rho_z: the feature radius ``rho_Z > 0``.
      w_fro: ``||W||_F >= 0``.

    Returns:
      The bound (float); attained at collapse onto an ETF with the weights on the aligned ETF.

    References:
      Graf, Hofer, Niethammer, Kwitt, "Dissecting Supervised Contrastive Learning",
      ICML 2021 (the CE lower bound and its equality case).
    """
    return math.log1p((k - 1) * math.exp(-rho_z * math.sqrt(k) / (k - 1) * w_fro))


def ce_weight_radius(k: int, rho_z: float, lam: float) -> float:
    """Root ``r_W`` of ``2 lam r (exp(K/(K-1) rho_Z r) + K - 1) - rho_Z = 0`` (unique, > 0).

    The weight-row norm of the L2-regularized CE optimum (balanced classes).

    Args:
      k: the number of classes ``K``, ``>= 2``.
      rho_z: the feature radius ``rho_Z > 0``.
      lam: the L2 weight ``lam > 0`` on ``||W||_F^2``.

    Returns:
      ``r_W`` (float), found by Brent's method to about machine precision.

    Raises:
      ValueError: unless ``k >= 2``, ``rho_z > 0`` and ``lam > 0``.

    References:
      DESIGN.md section 4 (minimizing ``ce_lower_bound`` plus ``lam K r^2`` over ``r``).
    """
    if k < 2 or rho_z <= 0 or lam <= 0:
        raise ValueError("need k >= 2, rho_z > 0 and lam > 0")

    def f(r: float) -> float:
        return 2 * lam * r * (math.exp(k / (k - 1) * rho_z * r) + k - 1) - rho_z

    hi = rho_z / (2 * lam * k)  # f(hi) >= 0 since exp(.) >= 1
    return brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)


def ce_optimum(k: int, rho_z: float, lam: float) -> float:
    """Optimal value ``log(1 + (K-1) e^{-K/(K-1) rho_Z r_W}) + lam K r_W^2`` (balanced).

    Args:
      k: the number of classes ``K``, ``>= 2``.
      rho_z: the feature radius ``rho_Z > 0``.
      lam: the L2 weight ``lam > 0``.

    Returns:
      The minimum of ``CE(Z, W) + lam ||W||_F^2`` (float), ``r_W = ce_weight_radius(...)``.

    Raises:
      ValueError: unless ``k >= 2``, ``rho_z > 0`` and ``lam > 0``.

    References:
      Graf, Hofer, Niethammer, Kwitt, "Dissecting Supervised Contrastive Learning",
      ICML 2021 (the bound); DESIGN.md section 4.
    """
    r = ce_weight_radius(k, rho_z, lam)
    return ce_lower_bound(k, rho_z, math.sqrt(k) * r) + lam * k * r * r


@dataclass
class CEResult:
    """Solution of the regularized CE problem: features, weights and their summaries.

    Attributes:
      z: ``N x d`` features of norm ``rho_Z``.
      w: ``k x d`` class weights.
      labels: class of each row of ``z`` (class by class).
      loss: ``CE + lam ||W||_F^2``.
      ce: the cross-entropy alone.
      r_w: mean row norm of ``W``.
      steps: L-BFGS iterations taken.
    """

    z: np.ndarray
    w: np.ndarray
    labels: np.ndarray
    loss: float  # CE + lam ||W||_F^2
    ce: float
    r_w: float  # mean row norm of W
    steps: int


def solve_ce(
    counts: Sequence[int],
    *,
    d: int,
    rho_z: float = 1.0,
    lam: float = 5e-3,
    seed: int = 0,
    steps: int = 3000,
    tol: float = 1e-10,
) -> CEResult:
    """Minimize ``CE(Z, W) + lam ||W||_F^2`` over ``||z_i|| = rho_Z`` and ``W`` (float64).

    Args:
      counts: samples per class, each >= 2 (labels laid out class by class).
      d: feature dimension, ``>= 1``.
      rho_z: feature radius ``> 0``.
      lam: L2 weight on ``W``, ``> 0``.
      seed: seeds the Gaussian start (``jax.random.PRNGKey(seed)``).
      steps: L-BFGS iteration cap.
      tol: stop when the gradient norm is at most this.

    Returns:
      ``CEResult``.

    Raises:
      ValueError: naming ``counts`` when it is outside its range; otherwise unless
        ``d >= 1``, ``rho_z > 0`` and ``lam > 0``.

    References:
      Graf, Hofer, Niethammer, Kwitt, "Dissecting Supervised Contrastive Learning",
      ICML 2021 (the problem);
      Nocedal and Wright, "Numerical Optimization", 2nd ed., Springer 2006: L-BFGS
      (section 7.2) with a zoom line search (chapter 3).

    >>> res = solve_ce([5, 5, 5], d=3, rho_z=1.0, lam=0.01)
    >>> abs(res.loss - ce_optimum(3, 1.0, 0.01)) < 1e-8
    True
    """
    counts = check_counts(counts)
    labels = labels_from_counts(counts)
    k, n = counts.size, labels.size
    if d < 1 or rho_z <= 0 or lam <= 0:
        raise ValueError("need d >= 1, rho_z > 0 and lam > 0")
    with jax.enable_x64(True):
        y = jnp.asarray(labels)

        def objective(params):
            h, w = params
            sq = jnp.sum(h * h, axis=1, keepdims=True)
            z = rho_z * h / jnp.sqrt(sq)
            # the loss sees only h's direction; the scale term (zero at ||h_i|| = 1, no effect on
            # the optimal z) keeps ||h_i|| near 1, where grad_h is grad_z's tangent part, so
            # stopping on ||grad|| means stationarity in z (not a norm blow-up)
            return ce_loss(z, w, y) + lam * jnp.sum(w * w) + jnp.sum((sq - 1.0) ** 2)

        k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
        params = (jax.random.normal(k1, (n, d), jnp.float64), 0.1 * jax.random.normal(k2, (k, d), jnp.float64))
        opt = optax.lbfgs()

        @jax.jit
        def run(params):
            state, done = optim.iterate(
                lambda s: optim.lbfgs_step(opt, objective, s), optim.lbfgs_init(opt, objective, params),
                max_steps=steps, proceed=lambda s: optax.tree_utils.tree_norm(optim.lbfgs_grad(s)) > tol)
            return state.params, done

        params, done = run(params)
        done = int(done)
        h, w = params
        z = rho_z * h / jnp.linalg.norm(h, axis=1, keepdims=True)
        ce = float(ce_loss(z, w, y))
        w_np = np.asarray(w)
        return CEResult(
            z=np.asarray(z), w=w_np, labels=labels, loss=ce + lam * float(np.sum(w_np**2)), ce=ce,
            r_w=float(np.mean(np.linalg.norm(w_np, axis=1))), steps=done,
        )
