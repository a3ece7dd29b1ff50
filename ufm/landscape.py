"""Plain local runs of the SC loss for the landscape study (issue 6): no restarts, no tricks.

``local_run`` minimizes the SC loss ``L(Z)`` (``ufm.loss.scl_loss``, sum convention) from ONE
random start and reports where it ends. Unlike ``ufm.solve`` it knows nothing about the
optimum: no closed-form stopping rule, no restart from a new seed, no rotation towards the
orthant. Whether the end point is a global minimizer is for the caller to check (against
``ufm.certify``'s lower bound).

Start: ``h_0 ~ N(0, I)`` (``N x d``, float64) from ``jax.random.PRNGKey(seed)``.

- **Without ReLU** (unit sphere per row): L-BFGS (``optax.lbfgs``, zoom line search) on
  ``f(h) = L(h / ||h||)`` (row-wise normalization). Stationarity is measured by the Riemannian
  gradient ``r_i = (I - z_i z_i^T) g_i`` with ``g = dL/dZ`` at ``z_i = h_i/||h_i||``; it equals
  ``||h_i|| df/dh_i``, so the run stops when ``||r||_F <= gtol`` or after ``steps`` iterations.
- **With ReLU** (``Z >= 0``, unit rows): projected gradient ``z <- P(z - a g)``, ``P`` the
  row-wise projection ``max(v, 0)/||max(v, 0)||`` onto ``{z >= 0, ||z|| = 1}``, from
  ``P(h_0)``. A step is accepted on the sufficient-decrease test
  ``L(z+) <= L(z) + <g, z+ - z> + ||z+ - z||^2 / (2a)``; then ``a <- 1.5 a``, else ``a <- a/2``.
  Stationarity (KKT on the set, per row ``lambda_i = <g_i, z_i>``):
  ``r_ij = g_ij - lambda_i z_ij`` where ``z_ij > 0`` and ``min(g_ij, 0)`` where ``z_ij = 0``
  (a zero entry may only have a non-negative gradient). The run stops when ``||r||_F <= gtol``,
  after ``steps`` iterations (accepted or not), or when the step falls below ``1e-14``.

Each problem shape ``(N, d, tau, nonneg, batches)`` compiles once (the labels are a traced
argument); ``local_runs`` runs a list of seeds one after the other on the compiled run
(sequential beats ``jax.vmap`` here: a vmapped loop runs every lane until the slowest stops,
and the runs that get stuck under ReLU take 100x the median number of steps).

>>> res = local_run([3, 3, 3], d=3, tau=0.5, nonneg=False, seed=0)
>>> from ufm.closed_forms import etf_loss
>>> abs(res.loss - etf_loss([3, 3, 3], 0.5)) < 1e-9, res.grad_norm < 1e-6
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ufm.checks import check_tau
from ufm.labels import check_counts, labels_from_counts
from ufm.loss import pad_batches, scl_loss
from ufm.rotation import project_orthant_sphere

__all__ = ["LocalRun", "local_run", "local_runs", "kkt_residual"]

DEFAULT_STEPS = 5000
DEFAULT_GTOL = 1e-8
_A_MIN = 1e-14
_A_MAX = 1e6


@dataclass(frozen=True)
class LocalRun:
    """End point of one local run.

    Attributes:
      loss: ``scl_loss`` of ``z`` (float64).
      z: ``N x d`` unit rows (non-negative with ReLU).
      steps: iterations taken (L-BFGS steps; projected-gradient trials with ReLU).
      grad_norm: Frobenius norm of the stationarity residual (Riemannian gradient / KKT).
    """

    loss: float
    z: np.ndarray = field(repr=False)
    steps: int
    grad_norm: float


def _loss_fn(tau: float, padded: np.ndarray | None):
    """``L(z, y)`` for rows used as given (no normalization), full batch or ``padded`` batches."""
    batches = None if padded is None else padded

    def loss(z, y):
        return scl_loss(z, y, tau, batches=batches, normalize=False)

    return loss


def kkt_residual(z: jax.Array, g: jax.Array, nonneg: bool) -> jax.Array:
    """Stationarity residual at unit rows ``z`` with Euclidean gradient ``g`` (see module doc)."""
    lam = jnp.sum(g * z, axis=1, keepdims=True)
    tangent = g - lam * z
    if not nonneg:
        return tangent
    return jnp.where(z > 0, tangent, jnp.minimum(g, 0.0))


@lru_cache(maxsize=32)
def _runner(n: int, k: int, d: int, tau: float, nonneg: bool, batches_key: bytes | None,
            batches_shape: tuple[int, int] | None, gtol: float, n_lanes: int | None = None):
    """Jitted ``run(h0, y, max_steps) -> (z, loss, steps, grad_norm)`` (vmapped over ``h0``
    when ``n_lanes`` is given)."""
    padded = None
    if batches_key is not None:
        padded = np.frombuffer(batches_key, dtype=np.int64).reshape(batches_shape)
    loss = _loss_fn(tau, padded)
    vg_z = jax.value_and_grad(loss)

    def run_sphere(h0, y, max_steps):
        def f(h):
            return loss(h / jnp.linalg.norm(h, axis=1, keepdims=True), y)

        opt = optax.lbfgs()
        vag = optax.value_and_grad_from_state(f)

        def res_norm(h, g_h):  # ||h_i|| df/dh_i is the Riemannian gradient at z_i
            return jnp.linalg.norm(jnp.linalg.norm(h, axis=1, keepdims=True) * g_h)

        def cond(carry):
            h, state, it, rn = carry
            return (it < max_steps) & (rn > gtol)

        def body(carry):
            h, state, it, _ = carry
            value, grad = vag(h, state=state)
            updates, state = opt.update(grad, state, h, value=value, grad=grad, value_fn=f)
            h = optax.apply_updates(h, updates)
            g_new = optax.tree_utils.tree_get(state, "grad")
            return h, state, it + 1, res_norm(h, g_new)

        state = opt.init(h0)
        _, g0 = jax.value_and_grad(f)(h0)
        h, _, it, _ = jax.lax.while_loop(cond, body, (h0, state, jnp.asarray(0), res_norm(h0, g0)))
        return h / jnp.linalg.norm(h, axis=1, keepdims=True), it

    def run_orthant(h0, y, max_steps):
        z0 = project_orthant_sphere(h0)
        f0, g0 = vg_z(z0, y)

        def cond(carry):
            z, f, g, a, it = carry
            rn = jnp.linalg.norm(kkt_residual(z, g, True))
            return (it < max_steps) & (rn > gtol) & (a > _A_MIN)

        def body(carry):
            z, f, g, a, it = carry
            z_new = project_orthant_sphere(z - a * g)
            f_new, g_new = vg_z(z_new, y)
            diff = z_new - z
            model = f + jnp.sum(g * diff) + jnp.sum(diff * diff) / (2.0 * a)
            ok = (f_new <= model) & (f_new <= f) & jnp.isfinite(f_new)
            z = jnp.where(ok, z_new, z)
            f = jnp.where(ok, f_new, f)
            g = jnp.where(ok, g_new, g)
            a = jnp.where(ok, jnp.minimum(1.5 * a, _A_MAX), 0.5 * a)
            return z, f, g, a, it + 1

        z, _, _, _, it = jax.lax.while_loop(cond, body, (z0, f0, g0, jnp.asarray(1e-2 * tau), jnp.asarray(0)))
        return z, it

    def run(h0, y, max_steps):
        z, it = (run_orthant if nonneg else run_sphere)(h0, y, max_steps)
        value, g = vg_z(z, y)
        return z, value, it, jnp.linalg.norm(kkt_residual(z, g, nonneg))

    if n_lanes is not None:
        run = jax.vmap(run, in_axes=(0, None, None))
    return jax.jit(run)


def _prepare(counts, d, tau, batches):
    counts = check_counts(counts)
    tau = check_tau(tau)
    d = int(d)
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    labels = labels_from_counts(counts)
    if batches is None:
        key, shape = None, None
    else:
        padded = pad_batches(batches, labels.size).astype(np.int64)
        key, shape = padded.tobytes(), padded.shape
    return counts, labels, d, float(tau), key, shape


def local_runs(
    counts: Sequence[int],
    *,
    d: int,
    tau: float,
    nonneg: bool,
    seeds: Sequence[int],
    steps: int = DEFAULT_STEPS,
    batches: Sequence[Sequence[int]] | None = None,
    gtol: float = DEFAULT_GTOL,
) -> list[LocalRun]:
    """``local_run`` for every seed in ``seeds`` (one compilation for all)."""
    return [local_run(counts, d=d, tau=tau, nonneg=nonneg, seed=s, steps=steps, batches=batches, gtol=gtol)
            for s in seeds]


def _start(seed: int, n: int, d: int) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (n, d), dtype=jnp.float64)


def local_run(
    counts: Sequence[int],
    *,
    d: int,
    tau: float,
    nonneg: bool,
    seed: int,
    steps: int = DEFAULT_STEPS,
    batches: Sequence[Sequence[int]] | None = None,
    gtol: float = DEFAULT_GTOL,
) -> LocalRun:
    """One plain local run from the Gaussian start of ``seed`` (see the module docstring).

    Args:
      counts: samples per class (labels laid out class by class).
      d: embedding dimension.
      tau: temperature.
      nonneg: add the ReLU constraint ``Z >= 0`` (projected gradient); else L-BFGS on the sphere.
      seed: the start ``h_0 ~ N(0, I)``.
      steps: iteration cap.
      batches: list of index lists (default: the full batch).
      gtol: stop when the stationarity residual's Frobenius norm is at most this.
    """
    counts, labels, d, tau, key, shape = _prepare(counts, d, tau, batches)
    with jax.enable_x64(True):
        run = _runner(labels.size, counts.size, d, tau, bool(nonneg), key, shape, float(gtol), None)
        z, value, it, rn = run(_start(int(seed), labels.size, d), jnp.asarray(labels), jnp.asarray(int(steps)))
        return LocalRun(float(value), np.asarray(z), int(it), float(rn))
