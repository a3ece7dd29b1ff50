"""Solve the UFM with an activation (issue 38): minimize the SC loss over ``z_i = a(h_i)/||a(h_i)||``
with every pre-activation ``h_i`` free on the sphere ``||h_i|| = r``.

The loss sees only the directions, so the problem is the UFM with each ``z_i`` restricted to
the reachable set ``D_a(r)`` (``ufm.core.activations``: its theorems). What follows, per
activation (full batch, ``d >= k``; "theorem" = proved in ``ufm.core.activations`` or here,
"conjecture" = measured only):

- ``relu``: ``D`` is the closed orthant for every ``r``: the UFM+, optimum ``L*_OF`` at the OF
  (theorem, Kini et al.). Solved by ``ufm.solvers.solver.solve(..., nonneg=True)``, certified
  by the existing UFM+ certificate.
- ``none``, ``leaky_relu``, ``elu``, ``gelu``: ``D`` is the whole sphere for every ``r`` (and
  every slope): the problem IS the plain UFM and its optimum is the no-ReLU optimum, exactly,
  for every ``r`` (theorem). Solved by ``solve(..., nonneg=False)``, then the solution is mapped
  back to pre-activations ``h`` with ``||h|| = r`` and ``a(h)/||a(h)|| = z`` (``preimage``,
  the constructions of the proofs), and certified by the existing no-ReLU certificate (valid
  here since the feasible sets coincide). GELU's preimage needs values ``~exp(-r^2/(2p))``: in
  float64 it is realized up to ``r`` of about ``37 sqrt(p)`` (``p`` negative entries of the
  direction, tried in a few rotations of the solution); above that the report says so and
  keeps the best float64 point found.
- ``softplus``: ``D`` lies inside the open orthant with every entry ``>= b(r, d) > 0``
  (``softplus_entry_bound``), so every inner product is ``>= d b^2 > 0``. **Theorem**:
  ``L_softplus(r) > L*_OF`` for every finite ``r`` (per anchor of class ``c``:
  ``-mean_pos G/tau + log(sum_pos e^{G/tau} + sum_neg e^{G/tau}) >= log(n_c - 1 + sum_neg
  e^{(G - 1)/tau})`` by Jensen and ``G <= 1``, and ``sum_neg e^{(G-1)/tau} > (N - n_c)
  e^{-1/tau}`` when every negative has ``G > 0``; the closure of ``D`` keeps ``G >= d b^2``,
  so the infimum is attained and strict), and ``L_softplus(r) -> L*_OF`` as ``r -> inf``
  (the points ``h_c = r e_c`` have ``a(h_c)/||a(h_c)|| -> e_c``: ``softplus_of_point_loss``
  is their loss, an upper bound at every ``r``). A quantitative lower bound, for any
  configuration: ``softplus_lower_bound`` (inner products ``>= d b^2`` in the same per-anchor
  argument), strictly above ``L*_OF``. As ``r -> 0`` all directions tend to ``1/sqrt(d)`` and
  both bounds, hence the optimum, tend to ``N log(N - 1)`` (theorem). Conjectures (measured):
  the optimum is collapsed, and ``L_softplus`` decreases in ``r``. No certificate applies; the
  proven brackets are reported: ``max(L*_OF, softplus_lower_bound, sphere lower bound) <=
  L_softplus(r) <=`` the loss found ``<= softplus_of_point_loss``.

For every activation the no-ReLU (sphere) optimum is a lower bound (``D_a(r)`` is a subset of
the sphere): its proven value (``ufm.certificates.certification.certify(..., nonneg=False)``)
is reported as ``activation["sphere_lower_bound"]``.

Local search (all activations but ReLU, as a check and for softplus as the solve): L-BFGS
(``ufm.solvers.optim``) on unconstrained ``u`` with ``h = r u/||u||`` and the exact features
``ufm.core.activations.features``, over one vector per class (``method="classes"``, the
default: ``k x d`` unknowns whatever ``N``) or every sample (``"samples"``, ``N <=
SAMPLES_MAX``), from ``starts`` random starts (seeds ``seed, seed + 1, ...``) and two warm
starts: the OF (``u_c = e_c``, ``d >= k``) and the no-ReLU optimum mapped back through
``a^{-1}`` (where ``preimage`` exists). The best point is kept; the best over the random starts
alone is reported too (``activation["local_search"]``: what plain gradient search finds).

>>> res = solve_activation([3, 3], "leaky_relu", radius=2.0, seed=0, starts=1)
>>> res.status, res.activation["certificate_applies"], res.certificate["certified"]
('optimal', True, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.special import log_ndtr, ndtr

from ufm.core.activations import (GELU_ARGMIN, GELU_MIN, REACHABLE, REACHES_SPHERE,
                                  check_activation, features, softplus_entry_bound)
from ufm.core.checks import check_int
from ufm.core.closed_forms import collapsed_loss, of_loss
from ufm.core.gram_grad import value_and_grad_chunked
from ufm.core.loss import collapsed_scl_loss, scl_loss
from ufm.core.problem import Problem
from ufm.solvers import optim
from ufm.solvers.config import SolverConfig
from ufm.solvers.solver import SolveResult, _rel_gap, _status, point_metrics, solve

__all__ = ["solve_activation", "ActivationResult", "preimage", "realized_features",
           "softplus_of_point_loss", "softplus_lower_bound", "local_search", "SAMPLES_MAX",
           "PREDICTIONS"]

#: The local search over every sample holds S x N x N logits: up to this many samples.
SAMPLES_MAX = 2000
#: A realized direction within this (max-abs) of its target counts as the target.
REALIZE_TOL = 1e-9

#: What each activation's optimum is, and whether that is proved.
PREDICTIONS: dict[str, tuple[str, str]] = {
    "none": ("the no-ReLU optimum (the plain UFM)", "theorem"),
    "relu": ("the OF, L*_OF, for every r (the UFM+; Kini et al.)", "theorem"),
    "leaky_relu": ("the no-ReLU optimum exactly, for every r and slope (every direction is "
                   "reachable: a positively homogeneous bijection)", "theorem"),
    "elu": ("the no-ReLU optimum exactly, for every r (every direction is reachable: a "
            "continuous increasing bijection onto (-1, inf))", "theorem"),
    "gelu": ("the no-ReLU optimum exactly, for every r (every direction is reachable through "
             "the two branches of x Phi(x)); in float64 realizable up to r of about 37 sqrt(p)",
             "theorem"),
    "softplus": ("strictly above L*_OF for every finite r and tending to L*_OF as r -> inf "
                 "(theorem); collapsed and decreasing in r (conjecture, measured)",
                 "theorem + conjecture"),
}


@dataclass
class ActivationResult(SolveResult):
    """A ``SolveResult`` of the activation problem, with the pre-activations and what applies.

    ``z`` holds the features ``a(h_i)/||a(h_i)||`` realized from ``h`` in float64, ``loss`` is
    the SC loss at them. ``optimum`` is the proven optimum where one is known (``L*_OF`` for
    ReLU, the no-ReLU optimum for the activations that reach the whole sphere), ``None`` for
    softplus (bracketed in ``activation``).

    Attributes (besides ``SolveResult``'s):
      activation: ``name``, ``slope``, ``radius``, ``reachable`` (the set ``D_a(r)``),
        ``prediction`` and ``prediction_status`` (theorem / conjecture),
        ``certificate_applies`` and ``certificate_note``, ``sphere_lower_bound`` (proven, valid
        for every activation), ``of_loss`` (``L*_OF``), ``lower_bound`` (the best proven lower
        bound), ``upper_bound`` (the loss found), ``closed_form_upper_bound`` and
        ``closed_form_lower_bound`` (softplus: ``softplus_of_point_loss``,
        ``softplus_lower_bound``), ``entry_bound`` (softplus: ``b(r, d)``),
        ``realization_error`` (max-abs distance of the realized features to the target
        directions, where a target was mapped back) and ``local_search`` (the losses per
        start, the best over random starts, its Delta_GM_OF).
      h: ``N x d`` pre-activations, every row of norm ``r``.

    ``timing["solve_seconds"]`` is the whole call's wall clock, compilation included
    (``compile_seconds`` is 0: not measured apart).
    """

    activation: dict[str, Any] = field(default_factory=dict)
    h: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: ``SolveResult.to_dict()`` plus ``activation``.

        Returns:
          A dict of the report's fields.
        """
        out = super().to_dict()
        out["activation"] = self.activation
        return out


# ----------------------------------------------------------------------------- activations in NumPy


def _gelu_np(x: np.ndarray) -> np.ndarray:
    return x * ndtr(x)


def _bisect(f, lo: np.ndarray, hi: np.ndarray, iters: int = 100) -> np.ndarray:
    """Vectorized bisection for ``f(x) = 0`` with ``f(lo) <= 0 <= f(hi)`` (elementwise)."""
    lo, hi = np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        neg = f(mid) <= 0
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
    return 0.5 * (lo + hi)


def _gelu_inc_inv(y: np.ndarray) -> np.ndarray:
    """Inverse of GELU on its increasing branch ``[x*, inf) -> [m, inf)``. For ``y >= 0`` the
    root lies in ``[y, 2y]`` (``Phi`` in ``[1/2, 1]``), for ``m <= y < 0`` in
    ``[max(4.43 y, x*), 2y]`` (``Phi`` in ``[Phi(x*), 1/2]``, ``1/Phi(x*) < 4.43``)."""
    y = np.asarray(y, dtype=np.float64)
    lo = np.where(y >= 0, y, np.maximum(4.43 * y, GELU_ARGMIN))
    return _bisect(lambda x: _gelu_np(x) - y, lo, 2.0 * y, iters=80)


def _gelu_dec_inv_log(log_neg_y: np.ndarray) -> np.ndarray:
    """Inverse of GELU on its decreasing branch ``(-inf, x*]``, from ``log(-y)`` (so ``y`` may be
    below float64's range): the root of ``log(-x) + log Phi(x) = log(-y)``. The left end
    ``-sqrt(2 max(-log(-y), 0) + 2) - 1`` is below the root (Mills: ``Phi(x) <= phi(x)/|x|``)."""
    ell = np.asarray(log_neg_y, dtype=np.float64)
    lo = -np.sqrt(2.0 * np.maximum(-ell, 0.0) + 2.0) - 1.0
    return _bisect(lambda x: np.log(-x) + log_ndtr(x) - ell, lo, np.full_like(ell, GELU_ARGMIN), iters=80)


# ----------------------------------------------------------------------------- preimages


def _check_radius(radius: Any) -> float:
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.floating)) or not (
            math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    return float(radius)


def _elu_row(v: np.ndarray, r: float) -> np.ndarray:
    """ELU preimage of the direction ``v`` at radius ``r`` (Theorem 1's path), parametrized by the
    value ``s`` of the most negative coordinate(s): ``lam = -expm1(s)/mu`` (``mu = max |v_j|``
    over ``v_j < 0``), ``h_j = lam v_j`` (``v_j >= 0``), ``log1p(lam v_j)`` (``v_j < 0``);
    ``||h(s)||`` is continuous, 0 at ``s = 0`` and ``>= r`` at ``s = -r``."""
    if np.all(v >= 0):
        return r * v
    mu = float(-v.min())

    rho = np.where(v < 0, -v / mu, 0.0)  # in [0, 1]; 1 at the most negative coordinate(s)

    def h_of(s):
        lam = -np.expm1(s) / mu
        # log1p(lam v_j) = log(rho e^s + 1 - rho), summed in log space: exact s where rho = 1
        with np.errstate(divide="ignore"):
            neg = np.logaddexp(s[..., None] + np.log(rho), np.log1p(-rho))
        return np.where(v >= 0, lam[..., None] * v, neg)

    s = _bisect(lambda s: r - np.linalg.norm(h_of(s), axis=-1), np.array(-r), np.array(0.0))
    return h_of(np.atleast_1d(s))[0]


def _gelu_row(v: np.ndarray, r: float) -> np.ndarray:
    """GELU preimage of the direction ``v`` at radius ``r`` (Theorem 2's paths). For ``v >= 0``
    ``h_j = a^{-1}(lam v_j)`` with ``lam`` in ``[r/2, r]``. Otherwise, with ``lam`` in
    ``(0, |m|/mu]``: the ``q`` most negative coordinates on the decreasing branch and the rest
    on the increasing one (path ``B_q``; ``||h|| -> inf`` as ``lam -> 0``), tried for
    ``q = p, ..., 1`` (more coordinates on the far branch keep ``lam`` larger, so the values
    stay inside float64), then all on the increasing branch (path A, ``||h|| -> 0``)."""
    if np.all(v >= 0):
        lam = _bisect(lambda lam: np.linalg.norm(_gelu_inc_inv(lam[..., None] * v), axis=-1) - r,
                      np.array(r / 2), np.array(float(r)))
        return _gelu_inc_inv(lam * v)
    neg = np.flatnonzero(v < 0)
    order = neg[np.argsort(v[neg])]  # most negative first
    log_lam_max = math.log(-GELU_MIN) - math.log(-float(v.min()))

    def h_of(log_lam, far):
        log_lam = np.asarray(log_lam, dtype=np.float64)
        lam = np.exp(log_lam)
        near = _gelu_inc_inv(np.maximum(lam[..., None] * v, GELU_MIN))
        with np.errstate(divide="ignore"):
            log_v = np.where(far, np.log(np.where(far, np.abs(v), 1.0)), 0.0)
        far_x = _gelu_dec_inv_log(log_lam[..., None] + log_v)
        return np.where(far, far_x, near)

    def norm(log_lam, far):
        return np.linalg.norm(h_of(log_lam, far), axis=-1)

    for q in range(order.size, -1, -1):
        far = np.zeros(v.size, dtype=bool)
        far[order[:q]] = True
        at_max = float(norm(log_lam_max, far))
        if q > 0 and at_max > r:
            continue
        if q == 0 and at_max < r:  # cannot happen (path B_1 covers [N_A(lam_max), inf))
            break
        step, lo = 1.0, log_lam_max - 1.0
        # B_q: the norm grows as lam -> 0; A: it shrinks
        while (float(norm(lo, far)) < r) if q > 0 else (float(norm(lo, far)) > r):
            step *= 2.0
            lo = log_lam_max - step
            if step > 1e7:
                raise ValueError(f"no GELU preimage found at radius {r:g}")
        sign = 1.0 if q > 0 else -1.0
        log_lam = _bisect(lambda t: sign * (r - norm(t, far)), np.array(lo), np.array(log_lam_max))
        return h_of(np.atleast_1d(log_lam), far)[0]
    raise ValueError(f"no GELU preimage found at radius {r:g}")


def preimage(z: np.ndarray, activation: str, radius: float, slope: float | None = None) -> np.ndarray:
    """Pre-activations ``h`` with ``||h_i|| = r`` and ``a(h_i)/||a(h_i)|| = z_i`` (in exact
    arithmetic), row by row: the constructions of the proofs in ``ufm.core.activations``.

    ``none``: ``h = r z``; ``relu``: ``h = r z`` (``z >= 0``); ``leaky_relu``: ``h = r g/||g||``,
    ``g = a^{-1}(z)``; ``elu`` and ``gelu``: a one-parameter path solved by bisection for
    ``||h|| = r``. Softplus has no preimage of a direction with a zero entry (the OF) and is
    not offered. Identical rows are solved once.

    Args:
      z: ``N x d`` unit rows (non-negative for ``relu``).
      activation: one of ``none``, ``relu``, ``leaky_relu``, ``elu``, ``gelu``.
      radius: ``r``, a finite number ``> 0``.
      slope: Leaky ReLU's ``alpha`` (``check_activation``).

    Returns:
      ``N x d`` float64 pre-activations, each row of norm ``r``.

    Raises:
      ValueError: naming ``activation`` (softplus, unknown), ``slope``, ``radius``, or ``z``
        (not finite ``N x d``, a zero row, a negative entry with ``relu``).

    >>> h = preimage(np.array([[0.6, -0.8]]), "leaky_relu", 5.0, 0.5)
    >>> [round(float(v), 6) for v in h[0]]  # 5 (0.6, -1.6)/||(0.6, -1.6)||
    [1.755617, -4.681646]
    """
    activation, slope = check_activation(activation, slope)
    r = _check_radius(radius)
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or not np.all(np.isfinite(z)):
        raise ValueError(f"z must be a finite N x d array, got shape {z.shape}")
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("z has a zero row: a direction needs a nonzero row")
    z = z / norms
    if activation == "softplus":
        raise ValueError("activation 'softplus' has no preimage of a direction with a zero or "
                         "negative entry (its directions lie inside the open orthant)")
    if activation == "none":
        return r * z
    if activation == "relu":
        if np.any(z < -1e-12):
            raise ValueError("z has a negative entry: relu reaches only the non-negative orthant")
        return r * np.maximum(z, 0.0) / np.linalg.norm(np.maximum(z, 0.0), axis=1, keepdims=True)
    if activation == "leaky_relu":
        g = np.where(z >= 0, z, z / slope)
        return r * g / np.linalg.norm(g, axis=1, keepdims=True)
    rows, inverse = np.unique(z, axis=0, return_inverse=True)
    row = _elu_row if activation == "elu" else _gelu_row
    h = np.stack([row(v, r) for v in rows])
    return h[np.asarray(inverse).reshape(-1)]


def realized_features(h: np.ndarray, activation: str, slope: float | None = None) -> np.ndarray:
    """``a(h_i)/||a(h_i)||`` in float64 (``ufm.core.activations.features``), as NumPy.

    Args:
      h: ``N x d`` pre-activations.
      activation, slope: as ``ufm.core.activations.activation_fn``.

    Returns:
      ``N x d`` float64 unit rows (zero rows where ``a(h_i)`` is 0 in float64).
    """
    with jax.enable_x64(True):
        return np.asarray(features(jnp.asarray(h, dtype=jnp.float64), activation, slope))


def softplus_of_point_loss(counts: Sequence[int], tau: float, radius: float, d: int) -> float:
    """Loss of the softplus point nearest the OF along ``h_c = r e_c`` (collapsed): an upper bound
    on the softplus optimum at radius ``r`` (``d >= k``), tending to ``L*_OF`` as ``r -> inf``.

    With ``s = softplus(r)``, ``s0 = log 2``, the class vectors ``a(r e_c)/||a(r e_c)||`` have
    pairwise inner products ``c(r) = (2 s s0 + (d - 2) s0^2)/(s^2 + (d - 1) s0^2)``, so the loss
    is ``sum_c n_c log(n_c - 1 + (N - n_c) e^{(c(r) - 1)/tau})`` (``collapsed_loss``).

    Args:
      counts: ``k >= 2`` class sizes, each ``>= 2``.
      tau: temperature ``> 0``.
      radius: ``r > 0``.
      d: the dimension, an integer ``>= k``.

    Returns:
      The loss (float, sum convention).

    Raises:
      ValueError: naming ``radius``, ``d`` (below ``k``), ``counts`` or ``tau``.

    >>> of = of_loss([3, 3], 0.5)
    >>> bool(of < softplus_of_point_loss([3, 3], 0.5, 500.0, 2) < softplus_of_point_loss([3, 3], 0.5, 5.0, 2))
    True
    """
    r = _check_radius(radius)
    k = len(counts)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < k:
        raise ValueError(f"d must be an integer >= k = {k}, got {d!r}")
    s, s0 = float(np.logaddexp(0.0, r)), math.log(2.0)
    c = (2 * s * s0 + (d - 2) * s0 * s0) / (s * s + (d - 1) * s0 * s0)
    gram = np.full((k, k), c)
    np.fill_diagonal(gram, 1.0)
    return collapsed_loss(counts, tau, gram)


def softplus_lower_bound(counts: Sequence[int], tau: float, radius: float, d: int) -> float:
    """A proven lower bound on the softplus optimum at radius ``r``, any configuration of the N
    samples (collapsed or not), strictly above ``L*_OF``::

        L_softplus(r) >= sum_c n_c log(n_c - 1 + (N - n_c) e^{(g0 - 1)/tau}),  g0 = d b(r, d)^2

    with ``b`` = ``softplus_entry_bound``. Proof: every reachable entry is ``>= b``, so every
    inner product ``G_il >= g0``; per anchor ``i`` of class ``c`` (``m`` = mean of its positive
    inner products, ``<= 1``), Jensen gives ``log sum_l e^{G_il/tau} - m/tau >= log(n_c - 1 +
    e^{-m/tau} sum_neg e^{G_il/tau}) >= log(n_c - 1 + (N - n_c) e^{(g0 - 1)/tau})``. As
    ``r -> 0``, ``g0 -> 1`` and the bound tends to ``N log(N - 1)``, the limit of the optimum.

    Args:
      counts: ``k >= 2`` class sizes, each ``>= 2``.
      tau: temperature ``> 0``.
      radius: ``r > 0``.
      d: the dimension, an integer ``>= 1``.

    Returns:
      The bound (float, sum convention).

    Raises:
      ValueError: naming ``radius``, ``d``, ``counts`` or ``tau``.

    >>> bool(softplus_lower_bound([3, 3], 0.5, 2.0, 2) > of_loss([3, 3], 0.5))
    True
    """
    r = _check_radius(radius)
    g0 = d * softplus_entry_bound(r, int(d)) ** 2
    k = len(counts)
    gram = np.full((k, k), g0)
    np.fill_diagonal(gram, 1.0)
    return collapsed_loss(counts, tau, gram)


# ----------------------------------------------------------------------------- local search


_RUNNERS: dict = {}


def _runner(activation: str, slope: float | None, mode: str, memory: int):
    """Jitted, vmapped L-BFGS over starts ``u0`` (``S x rows x d``) for
    ``f(u) = L(features(r u/||u||))``; returns per start ``(u, f(u), ||u|| ||grad f||, steps)``."""
    key = (activation, slope, mode, memory)
    if key in _RUNNERS:
        return _RUNNERS[key]
    opt = optax.lbfgs(memory_size=memory)

    def loss(u, data):
        y, counts, tau, radius = data[:4]
        h = radius * u / jnp.linalg.norm(u, axis=1, keepdims=True)
        z = features(h, activation, slope)
        if mode == "classes":
            return collapsed_scl_loss(z, counts, tau)
        return scl_loss(z, y, tau, normalize=False)

    def grad_norm(s):
        return jnp.linalg.norm(jnp.linalg.norm(s.params, axis=1, keepdims=True) * optim.lbfgs_grad(s))

    def run_one(u0, data):
        max_steps, grad_abs, ftol, patience = data[4:]
        f = lambda u: loss(u, data)  # noqa: E731
        s0 = optim.lbfgs_init(opt, f, u0)

        def step(c):
            s, prev, stall = c
            new = optim.lbfgs_step(opt, f, s)
            value = optim.lbfgs_value(new)
            # a flat direction (far-saturated entries) can make the L-BFGS update 0/0: keep the
            # last finite iterate and stop there
            ok = jnp.isfinite(value) & jnp.all(jnp.isfinite(new.params))
            s = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, s)
            stall = jnp.where(ok, jnp.where(prev - value <= ftol * jnp.abs(prev), stall + 1, 0), patience)
            return s, jnp.where(ok, value, prev), stall

        def proceed(c):
            s, _, stall = c
            return (grad_norm(s) > grad_abs) & (stall < patience)

        (s, value, _), steps = optim.iterate(step, (s0, optim.lbfgs_value(s0), jnp.asarray(0)),
                                             max_steps=max_steps, proceed=proceed)
        return s.params, value, grad_norm(s), steps

    run = jax.jit(jax.vmap(run_one, in_axes=(0, None)))
    _RUNNERS[key] = run
    return run


def local_search(problem: Problem, activation: str, radius: float, starts: np.ndarray, *,
                 slope: float | None = None, method: str = "classes",
                 config: SolverConfig = SolverConfig()) -> dict[str, np.ndarray]:
    """L-BFGS on ``f(u) = L(a(r u/||u||)/||a(r u/||u||)||)`` from each start (module docstring).

    A run stops when ``||u|| ||grad f||`` (Frobenius over the rows) is at most
    ``config.grad_tol * N / tau``, when the loss decreased by less than ``config.ftol``
    (relative) over ``config.patience`` steps, or after ``config.sphere_steps`` steps; runs
    that stopped away from stationarity restart once from their unit rows (L-BFGS memory
    cleared: the rows of ``u`` drift in norm, the loss does not see it).

    Args:
      problem: a full-batch ``Problem`` (its ``d``, ``tau``, ``counts``).
      activation, slope: as ``ufm.core.activations.check_activation``.
      radius: ``r > 0``.
      starts: ``S x rows x d`` starting ``u`` (rows = ``k`` with ``method="classes"``, ``N``
        with ``"samples"``), nonzero rows.
      method: ``"classes"`` (one vector per class, collapsed loss) or ``"samples"``.
      config: ``SolverConfig`` (``sphere_steps``, ``lbfgs_memory``, ``grad_tol``, ``ftol``,
        ``patience``).

    Returns:
      ``{"u", "loss", "grad_norm", "steps"}`` per start (arrays with a leading ``S`` axis);
      ``loss`` is the float64 loss of the method's rows.
    """
    activation, slope = check_activation(activation, slope)
    r = _check_radius(radius)
    if method not in ("classes", "samples"):
        raise ValueError(f"method must be 'classes' or 'samples', got {method!r}")
    if method == "samples" and problem.n_samples > SAMPLES_MAX:
        raise ValueError(f"method 'samples' holds N x N logits per start: N <= {SAMPLES_MAX}, got "
                         f"N = {problem.n_samples}; use 'classes'")
    grad_abs = config.grad_tol * problem.n_samples / problem.tau
    run = _runner(activation, slope, method, config.lbfgs_memory)
    with jax.enable_x64(True):
        data = (jnp.asarray(problem.labels), jnp.asarray(problem.counts),
                jnp.asarray(problem.tau, jnp.float64), jnp.asarray(r, jnp.float64),
                jnp.asarray(config.sphere_steps), jnp.asarray(grad_abs, jnp.float64),
                jnp.asarray(config.ftol, jnp.float64), jnp.asarray(config.patience))
        u = jnp.asarray(starts, jnp.float64)
        u, loss, gnorm, steps = (np.asarray(x) for x in run(u, data))
        redo = ~(gnorm <= grad_abs)
        if np.any(redo):  # once more from the unit rows, memory cleared
            u1 = u / np.linalg.norm(u, axis=2, keepdims=True)
            u2, loss2, gnorm2, steps2 = (np.asarray(x) for x in run(jnp.asarray(u1), data))
            better = redo & (loss2 <= loss)
            u = np.where(better[:, None, None], u2, u)
            loss, gnorm = np.where(better, loss2, loss), np.where(better, gnorm2, gnorm)
            steps = steps + np.where(redo, steps2, 0)
    return {"u": u, "loss": loss, "grad_norm": gnorm, "steps": steps}


# ----------------------------------------------------------------------------- the solve


def _sample_loss(z: np.ndarray, problem: Problem) -> tuple[float, float]:
    """``(L(z), ||Riemannian gradient||_F)`` in float64 over all N samples."""
    with jax.enable_x64(True):
        loss, g = value_and_grad_chunked(jnp.asarray(z, jnp.float64), jnp.asarray(problem.labels),
                                         jnp.asarray(problem.counts), problem.tau, chunk=512,
                                         matmul_dtype=jnp.float64)
        residual = optim.residual_norm(jnp.asarray(z, jnp.float64), g, False)
    return float(loss), float(residual)


def _random_rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _centred_frame_rotation(target: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The rotation ``Q`` (Procrustes) taking the class vectors of ``target`` closest to the
    centred frame ``e_c - 1/k`` (rows normalized, zero-padded to ``d``), where each class vector
    has ``k - 1`` equal negative entries: the most coordinates GELU's far branch can share."""
    d = target.shape[1]
    v = target[np.searchsorted(labels, np.arange(k))]
    e = np.zeros((k, d))
    e[:, :k] = np.eye(k) - 1.0 / k
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    u, _, wt = np.linalg.svd(v.T @ e)
    return u @ wt


def _realize(target: np.ndarray, activation: str, r: float, slope: float | None, problem: Problem,
             seed: int, rotations: int = 8) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Map the sphere solution ``target`` back: ``(h, z, loss, error)`` with ``z`` realized from
    ``h``; for GELU, if float64 cannot realize it, rotations of ``target`` (the loss is rotation
    invariant) are tried, first towards the centred frame (``_centred_frame_rotation``), then
    ``-I`` and random ones, and the lowest loss kept."""
    best = None
    tries = rotations if activation == "gelu" else 0
    d = target.shape[1]
    for t in range(tries + 1):
        rotation = (np.eye(d) if t == 0 else
                    _centred_frame_rotation(target, problem.labels, problem.k) if t == 1 else
                    -np.eye(d) if t == 2 else _random_rotation(d, seed + t))
        rotated = target @ rotation
        h = preimage(rotated, activation, r, slope)
        z = realized_features(h, activation, slope)
        error = float(np.max(np.abs(z - rotated)))
        loss = _sample_loss(z, problem)[0] if np.all(np.linalg.norm(z, axis=1) > 0.5) else math.inf
        if best is None or (error <= REALIZE_TOL) > (best[3] <= REALIZE_TOL) or (
                (error <= REALIZE_TOL) == (best[3] <= REALIZE_TOL) and loss < best[2]):
            best = (h, z, loss, error)
        if error <= REALIZE_TOL:
            break
    return best


def solve_activation(
    counts: Sequence[int],
    activation: str = "relu",
    *,
    radius: float = 1.0,
    slope: float | None = None,
    tau: float = 0.1,
    d: int | None = None,
    seed: int = 0,
    starts: int = 4,
    method: str = "auto",
    config: SolverConfig = SolverConfig(),
    cert_method: str = "auto",
    cert_tol: float = 1e-6,
) -> ActivationResult:
    """Minimize the full-batch SC loss over ``z_i = a(h_i)/||a(h_i)||``, ``||h_i|| = r``.

    ``relu``: ``solve(..., nonneg=True)`` (exact, certified). ``none``, ``leaky_relu``,
    ``elu``, ``gelu``: ``solve(..., nonneg=False)`` (the exact answer: these reach the whole
    sphere), mapped back to ``h`` (``preimage``), checked by a local search and certified by
    the no-ReLU certificate. ``softplus``: local search only; no certificate applies, the
    proven brackets are reported (module docstring).

    Args:
      counts: samples per class (``k >= 2`` classes, each ``>= 2``).
      activation: one of ``ACTIVATIONS``.
      radius: ``r``, the norm of every pre-activation, a finite number ``> 0``.
      slope: Leaky ReLU's ``alpha`` in ``(0, 1)`` (default 0.01); only with ``leaky_relu``.
      tau: temperature (``Problem.create``).
      d: embedding dimension (default ``k``).
      seed: seed of the sphere solve and of the random starts (``seed + i``), an integer
        ``>= 0``.
      starts: random starts of the local search, an integer ``>= 1``.
      method: the sphere / UFM+ solve's method (``solve``: ``"auto"``, ``"samples"``,
        ``"classes"``); the local search runs over the class vectors unless it is
        ``"samples"``.
      config: ``SolverConfig`` of the solves.
      cert_method: the certificate's method (``ufm.certificates.certification.certify``).
      cert_tol: certified when ``(loss - bound)/|loss| <= cert_tol``.

    Returns:
      ``ActivationResult``.

    Raises:
      ValueError: naming ``activation``, ``slope``, ``radius``, ``starts``, ``seed``,
        ``method`` or a problem argument (``counts``, ``tau``, ``d``).

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960); Nocedal and
      Wright, "Numerical Optimization", 2nd ed. 2006, section 7.2 (L-BFGS); DESIGN.md
      sections 5 and 8.
    """
    from ufm.certificates.certification import certificate, certify

    activation, slope = check_activation(activation, slope)
    r = _check_radius(radius)
    problem = Problem.create(counts, tau=tau, nonneg=activation == "relu", d=d)
    seed = check_int("seed", seed, 0)
    starts = check_int("starts", starts, 1)
    if method not in ("auto", "samples", "classes"):
        raise ValueError(f"method must be 'auto', 'samples' or 'classes', got {method!r}")
    counts, k, d, tau, labels = problem.counts, problem.k, problem.d, problem.tau, problem.labels
    n = problem.n_samples
    search_method = "samples" if method == "samples" else "classes"
    t0 = time.perf_counter()
    warnings: list[str] = []
    name, status_of = PREDICTIONS[activation]
    info: dict[str, Any] = {"name": activation, "slope": slope, "radius": r,
                            "reachable": REACHABLE[activation], "prediction": name,
                            "prediction_status": status_of, "of_loss": of_loss(counts, tau)
                            if d >= k else None}

    # the sphere problem: its proven optimum bounds every activation's from below
    sphere = solve(problem.counts, d=d, tau=tau, nonneg=False, seed=seed, method=method, config=config)
    sphere_bound = certify(counts, tau, nonneg=False, method=cert_method, z=sphere.z)
    info["sphere_lower_bound"] = float(sphere_bound.lower_bound)
    info["sphere_optimum"] = sphere.optimum
    info["sphere_optimum_kind"] = sphere.optimum_kind

    cert = None
    h = None
    local = None
    if activation == "relu":
        base = solve(problem.counts, d=d, tau=tau, nonneg=True, seed=seed, method=method, config=config)
        z, loss, ref, ref_kind = base.z, base.loss, base.optimum, base.optimum_kind
        h = r * z
        status, grad_norm, attempts = base.status, base.metrics["grad_norm"], base.attempts
        warnings.extend(base.warnings)
        bound = certify(counts, tau, nonneg=True, method=cert_method, z=z)
        cert = certificate(loss, bound, cert_tol)
        info.update(certificate_applies=True,
                    certificate_note="the reachable set is the closed orthant: the UFM+ certificate applies")
        info["lower_bound"] = float(bound.lower_bound)
    elif activation == "none":  # the plain UFM: the sphere solve is the answer
        z, loss, ref, ref_kind = sphere.z, sphere.loss, sphere.optimum, sphere.optimum_kind
        h = r * z
        status, grad_norm, attempts = sphere.status, sphere.metrics["grad_norm"], sphere.attempts
        warnings.extend(sphere.warnings)
        cert = certificate(loss, sphere_bound, cert_tol)
        info.update(certificate_applies=True,
                    certificate_note="the reachable set is the sphere: the no-ReLU certificate applies")
        info["lower_bound"] = info["sphere_lower_bound"]
    else:
        warnings.extend(sphere.warnings)
        warm: list[np.ndarray] = []
        target_h = None
        if activation in REACHES_SPHERE:
            target_h, z_t, loss_t, error = _realize(sphere.z, activation, r, slope, problem, seed)
            info["realization_error"] = error
            if error > REALIZE_TOL:
                warnings.append(
                    f"the no-ReLU optimum (the exact optimum of {activation} at every r) was not "
                    f"realized in float64 at r = {r:g} (max error {error:.1e} in the features): "
                    "its preimage needs values below float64's range; the best float64 point "
                    "found is reported")
        rows = labels if search_method == "samples" else np.arange(k)
        if d >= k:
            warm.append(np.eye(k, d)[rows])  # the OF: u_c = e_c
        if target_h is not None:
            th = target_h if search_method == "samples" else target_h[np.searchsorted(labels, np.arange(k))]
            warm.append(th / r)
        rng_starts = [np.random.default_rng(seed + i).standard_normal((rows.size, d)) for i in range(starts)]
        local = local_search(problem, activation, r, np.stack(rng_starts + warm), slope=slope,
                             method=search_method, config=config)
        finite = np.isfinite(local["loss"]) & np.all(np.isfinite(local["u"]), axis=(1, 2))
        best_i = int(np.argmin(np.where(finite, local["loss"], np.inf)))
        u = local["u"][best_i]
        h_local = r * u / np.linalg.norm(u, axis=1, keepdims=True)
        if search_method == "classes":
            h_local = h_local[labels]
        z_local = realized_features(h_local, activation, slope)
        loss_local, _ = _sample_loss(z_local, problem)
        names = [f"random (seed {seed + i})" for i in range(starts)] + (["OF"] if d >= k else []) + (
            ["no-ReLU optimum mapped back"] if target_h is not None else [])
        rnd = int(np.argmin(np.where(finite, local["loss"], np.inf)[:starts]))
        u_r = local["u"][rnd]
        h_r = r * u_r / np.linalg.norm(u_r, axis=1, keepdims=True)
        z_r = realized_features(h_r[labels] if search_method == "classes" else h_r, activation, slope)
        info["local_search"] = {
            "method": search_method, "starts": names,
            "losses": [float(v) for v in local["loss"]],
            "grad_norms": [float(v) for v in local["grad_norm"]],
            "steps": [int(v) for v in local["steps"]],
            "best_start": names[best_i],
            "best_random_loss": float(local["loss"][rnd]),
            "best_random_delta_gm_of": point_metrics(z_r, labels, k, counts, tau, batched=False)["delta_gm_of"],
        }
        if target_h is not None and not loss_local < loss_t:
            h, z, loss = target_h, z_t, loss_t
        else:
            h, z, loss = h_local, z_local, loss_local
        attempts = len(names)
        if activation in REACHES_SPHERE:
            ref, ref_kind = sphere.optimum, sphere.optimum_kind
            bound = certify(counts, tau, nonneg=False, method=cert_method, z=z)
            cert = certificate(loss, bound, cert_tol)
            info.update(certificate_applies=True,
                        certificate_note="every direction is reachable (theorem): the no-ReLU "
                                         "certificate applies")
            info["lower_bound"] = max(float(bound.lower_bound), info["sphere_lower_bound"])
        else:  # softplus
            ref, ref_kind = None, None
            info.update(certificate_applies=False,
                        certificate_note="no certificate applies: the reachable set (inside the open "
                                         "orthant, entries >= b(r, d)) is neither the orthant nor the "
                                         "sphere; the proven brackets are reported instead")
            info["entry_bound"] = softplus_entry_bound(r, d)
            info["closed_form_lower_bound"] = softplus_lower_bound(counts, tau, r, d)
            lower = max(info["sphere_lower_bound"], info["closed_form_lower_bound"])
            if d >= k:
                lower = max(lower, info["of_loss"])
                info["closed_form_upper_bound"] = softplus_of_point_loss(counts, tau, r, d)
            info["lower_bound"] = lower
            if search_method == "classes":
                warnings.append("solved over one vector per class (collapse assumed, a conjecture for "
                                "softplus; --method samples solves every sample)")
        if activation in REACHES_SPHERE:
            _, grad_norm = _sample_loss(z, problem)
        else:
            grad_norm = float(local["grad_norm"][best_i])
        capped = int(local["steps"][best_i]) >= config.sphere_steps
        status = _status(_rel_gap(loss, ref), grad_norm <= config.grad_tol * n / tau,
                         "max_steps" if capped else "stalled", config.accept_tol)
    info["upper_bound"] = float(loss)
    metrics = {**point_metrics(z, labels, k, counts, tau, batched=False), "grad_norm": grad_norm,
               "grad_norm_rel": grad_norm * tau / n}
    cfg = {"k": int(k), "d": int(d), "tau": tau, "nonneg": activation == "relu", "seed": seed,
           "method": method, "n_samples": int(n), "batches": None, "activation": activation,
           "slope": slope, "radius": r, "starts": starts,
           "solver": {f: getattr(config, f) for f in config.__dataclass_fields__}}
    seconds = time.perf_counter() - t0
    return ActivationResult(
        config=cfg, counts=[int(c) for c in counts], loss=float(loss), optimum=ref,
        optimum_kind=ref_kind, rel_gap=_rel_gap(loss, ref), status=status, metrics=metrics,
        timing={"solve_seconds": seconds, "compile_seconds": 0.0, "reference_seconds": 0.0,
                "steps": int(sphere.timing["steps"]) + (0 if local is None else int(np.sum(local["steps"])))},
        attempts=attempts, z=np.asarray(z), labels=labels, certificate=cert, warnings=warnings,
        activation=info, h=np.asarray(h))

