"""Plain local runs of the SC loss for the landscape study (issue 6): no restarts, no tricks.

``local_run`` minimizes the SC loss ``L(Z)`` (``ufm.core.loss.scl_loss``, sum convention) from ONE
random start and reports where it ends. Unlike ``ufm.solve`` it knows nothing about the
optimum: no closed-form stopping rule, no restart from a new seed, no rotation towards the
orthant. Whether the end point is a global minimizer is for the caller to check (against
``ufm.certify``'s lower bound).

Start: ``h_0 ~ N(0, I)`` (``N x d``, float64) from ``jax.random.PRNGKey(seed)``. The methods are
``ufm.solvers.optim``'s (the solver's), run plainly inside one ``lax.while_loop`` (``optim.iterate``):

- **Without ReLU** (unit sphere per row): L-BFGS (``optax.lbfgs``, zoom line search) on
  ``f(h) = L(h / ||h||)`` (``optim.sphere_loss``, ``optim.lbfgs_step``). Stationarity is measured
  by the Riemannian gradient ``r_i = (I - z_i z_i^T) g_i`` with ``g = dL/dZ`` at
  ``z_i = h_i/||h_i||``; it equals ``||h_i|| df/dh_i``, so the run stops when ``||r||_F <= gtol``
  or after ``steps`` iterations.
- **With ReLU** (``Z >= 0``, unit rows): plain projected gradient (``optim.pg_step`` without
  momentum) ``z <- P(z - a g)``, ``P`` the row-wise projection ``max(v, 0)/||max(v, 0)||`` onto
  ``{z >= 0, ||z|| = 1}``, from ``P(h_0)``. A step is accepted on the sufficient-decrease test
  ``L(z+) <= L(z) + <g, z+ - z> + ||z+ - z||^2 / (2a)`` (and ``L(z+) <= L(z)``); then
  ``a <- 1.5 a``, else ``a <- a/2``. Stationarity (KKT on the set, per row
  ``lambda_i = <g_i, z_i>``, ``optim.kkt_residual``):
  ``r_ij = g_ij - lambda_i z_ij`` where ``z_ij > 0`` and ``min(g_ij, 0)`` where ``z_ij = 0``
  (a zero entry may only have a non-negative gradient). The run stops when ``||r||_F <= gtol``,
  after ``steps`` iterations (accepted or not), or when the step falls below ``1e-14``.

Each problem shape ``(N, d, tau, nonneg, batches)`` compiles once (the labels are a traced
argument); ``local_runs`` runs a list of seeds one after the other on the compiled run
(sequential beats ``jax.vmap`` here: a vmapped loop runs every lane until the slowest stops,
and the runs that get stuck under ReLU take 100x the median number of steps).

>>> res = local_run([3, 3, 3], d=3, tau=0.5, nonneg=False, seed=0)
>>> from ufm.core.closed_forms import etf_loss
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

from ufm.solvers import optim
from ufm.core.loss import scl_loss
from ufm.core.problem import Problem, as_problem
from ufm.solvers.optim import kkt_residual

__all__ = ["LocalRun", "local_run", "local_runs", "kkt_residual"]

DEFAULT_STEPS = 5000
DEFAULT_GTOL = 1e-8
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


@lru_cache(maxsize=32)
def _runner(n: int, k: int, d: int, tau: float, nonneg: bool, batches_key: bytes | None,
            batches_shape: tuple[int, int] | None, gtol: float, n_lanes: int | None = None):
    """Jitted ``run(h0, y, max_steps) -> (z, loss, steps, grad_norm)`` (vmapped over ``h0``
    when ``n_lanes`` is given), on ``ufm.solvers.optim``'s steps and while-loop driver."""
    padded = None
    if batches_key is not None:
        padded = np.frombuffer(batches_key, dtype=np.int64).reshape(batches_shape)
    loss = _loss_fn(tau, padded)
    vg_z = jax.value_and_grad(loss)

    def run_sphere(h0, y, max_steps):
        f = optim.sphere_loss(lambda z: vg_z(z, y))
        opt = optax.lbfgs()
        state, it = optim.iterate(
            lambda s: optim.lbfgs_step(opt, f, s), optim.lbfgs_init(opt, f, h0), max_steps=max_steps,
            proceed=lambda s: optim.sphere_residual_norm(s.params, optim.lbfgs_grad(s)) > gtol)
        return state.params / jnp.linalg.norm(state.params, axis=1, keepdims=True), it

    def run_orthant(h0, y, max_steps):
        vg = lambda z: vg_z(z, y)  # noqa: E731
        state, it = optim.iterate(
            lambda s: optim.pg_step(vg, s, momentum=False, growth=1.5, slack=0.0, a_max=_A_MAX)[0],
            optim.pg_init(vg, h0, 1e-2 * tau), max_steps=max_steps,
            proceed=lambda s: (optim.residual_norm(s.x, s.gx, True) > gtol) & (s.a > optim.A_MIN))
        return state.x, it

    def run(h0, y, max_steps):
        z, it = (run_orthant if nonneg else run_sphere)(h0, y, max_steps)
        value, g = vg_z(z, y)
        return z, value, it, optim.residual_norm(z, g, nonneg)

    if n_lanes is not None:
        run = jax.vmap(run, in_axes=(0, None, None))
    return jax.jit(run)


def _prepare(problem: Problem):
    """The run's static pieces from a validated ``Problem`` (no re-check)."""
    labels = problem.labels
    if problem.batching is None:
        key, shape = None, None
    else:
        padded = problem.batching.padded()
        key, shape = padded.tobytes(), padded.shape
    return problem.counts, labels, problem.d, problem.tau, key, shape


def _problem(counts, d, tau, nonneg, batches) -> Problem:
    """``counts`` if it is a ``Problem``, else one built (validated once) from the arguments."""
    if isinstance(counts, Problem):
        return as_problem(counts, tau=tau, nonneg=nonneg, batches=batches,
                          d=None if d is None else d)
    if d is None or tau is None or nonneg is None:
        raise ValueError("d, tau and nonneg are required with counts (or pass a Problem)")
    return Problem.create(counts, tau=tau, nonneg=nonneg, d=d, batches=batches)


def local_runs(
    counts: Sequence[int] | Problem,
    *,
    d: int | None = None,
    tau: float | None = None,
    nonneg: bool | None = None,
    seeds: Sequence[int],
    steps: int = DEFAULT_STEPS,
    batches: Sequence[Sequence[int]] | None = None,
    gtol: float = DEFAULT_GTOL,
) -> list[LocalRun]:
    """``local_run`` for every seed in ``seeds`` (one compilation for all).

    Args:
      counts, d, tau, nonneg, steps, batches, gtol: as for ``local_run``.
      seeds: the seeds, one run each (run one after the other).

    Returns:
      One ``LocalRun`` per seed, in order.

    Raises:
      ValueError: as for ``local_run``.
    """
    problem = _problem(counts, d, tau, nonneg, batches)  # validated once for every seed
    return [local_run(problem, seed=s, steps=steps, gtol=gtol) for s in seeds]


def _start(seed: int, n: int, d: int) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (n, d), dtype=jnp.float64)


def local_run(
    counts: Sequence[int] | Problem,
    *,
    d: int | None = None,
    tau: float | None = None,
    nonneg: bool | None = None,
    seed: int,
    steps: int = DEFAULT_STEPS,
    batches: Sequence[Sequence[int]] | None = None,
    gtol: float = DEFAULT_GTOL,
) -> LocalRun:
    """One plain local run from the Gaussian start of ``seed`` (see the module docstring).

    Args:
      counts: samples per class, each >= 2 (labels laid out class by class), or a ``Problem``
        (validated already; then ``d``, ``tau``, ``nonneg`` and ``batches`` come from it).
      d: embedding dimension, an integer >= 1.
      tau: temperature, a finite number > 0.
      nonneg: add the ReLU constraint ``Z >= 0`` (projected gradient); else L-BFGS on the sphere.
      seed: the start ``h_0 ~ N(0, I)`` (``jax.random.PRNGKey(seed)``), an integer.
      steps: iteration cap, an integer >= 0.
      batches: list of index lists (default: the full batch).
      gtol: stop when the stationarity residual's Frobenius norm is at most this (>= 0).

    Returns:
      ``LocalRun``: the end point, its loss, the steps taken and its residual norm.

    Raises:
      ValueError: naming ``counts``, ``tau``, ``d`` or ``batches`` when it is outside its
        range.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., Springer 2006: L-BFGS
      (section 7.2) with a zoom line search (chapter 3); the KKT conditions (chapter 12).
    """
    problem = _problem(counts, d, tau, nonneg, batches)
    counts, labels, d, tau, key, shape = _prepare(problem)
    with jax.enable_x64(True):
        run = _runner(labels.size, counts.size, d, tau, problem.nonneg, key, shape, float(gtol), None)
        z, value, it, rn = run(_start(int(seed), labels.size, d), jnp.asarray(labels), jnp.asarray(int(steps)))
        return LocalRun(float(value), np.asarray(z), int(it), float(rn))
