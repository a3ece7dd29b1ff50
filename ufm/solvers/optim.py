"""The first-order methods every minimizer of the toolkit runs (``ufm.solvers.solver``, ``ufm.solvers.landscape``,
``ufm.solvers.ce``), written once, as pure functions that work both one jitted call at a time from a
Python loop and inside ``jax.lax.while_loop`` (and ``jax.vmap``).

Methods
-------
1. **L-BFGS on the sphere** (or on any pytree objective): ``optax.lbfgs`` with its zoom line
   search. On the sphere the unknowns are ``h`` (``N x d``) with ``z = h/||h||`` row by row, and
   ``sphere_loss(vg)`` is ``f(h) = L(normalize(h))`` with the gradient
   ``df/dh_i = (g_i - <g_i, z_i> z_i) / ||h_i||`` (``g = dL/dZ`` from ``vg``) as its custom VJP.
   ``lbfgs_init`` stores the value and gradient at the start in the optimizer state (so the first
   step does not recompute them and the state always holds the gradient at its ``params``);
   ``lbfgs_step`` is one iteration (state in, state out).
2. **Accelerated projected gradient on {Z >= 0, unit rows}** (the non-negative part of the
   sphere, UFM+): ``z <- P(y - a g(y))`` with ``P(v) = max(v, 0)/||max(v, 0)||`` per row
   (``ufm.solvers.rotation.project_orthant_sphere``) from the extrapolated point
   ``y = P(x + beta (x - x_prev))`` (FISTA momentum ``t' = (1 + sqrt(1 + 4 t^2))/2``,
   ``beta = (t - 1)/t'``). A trial is accepted on the sufficient-decrease test
   ``L(z) <= L(y) + <g(y), z - y> + ||z - y||^2/(2a) + slack |L(y)|`` and if it does not raise the
   loss above the current iterate's; then ``a <- min(growth a, a_max)``. A trial failing the test
   halves ``a`` (backtracking); one passing it but raising the loss restarts the momentum
   (function-value restart: ``t = 1``, ``y = x``) and halves ``a``. ``momentum=False`` is the
   plain projected gradient (``y = x`` always). ``pg_step`` is one trial; its event code says
   which of ``ACCEPT``, ``RESTART``, ``BACKTRACK`` happened, ``VANISHED`` when a rejected trial
   left the step below ``A_MIN`` (no step decreases the loss at working precision).
3. **Stationarity**: ``kkt_residual(z, g, nonneg)``: on the sphere the Riemannian gradient
   ``r_i = g_i - <g_i, z_i> z_i``; on {Z >= 0, unit rows} the KKT residual of the projected
   problem with multiplier ``lambda_i = <g_i, z_i>``: ``r_ij = g_ij - lambda_i z_ij`` where
   ``z_ij > 0`` and ``min(g_ij, 0)`` where ``z_ij = 0`` (a zero entry may only have a
   non-negative gradient). ``residual_norm`` is its Frobenius norm. Through the ``h``
   parametrization ``r_i = ||h_i|| df/dh_i`` (``sphere_residual_norm``), read off the L-BFGS
   state at no cost.

Drivers: ``iterate`` runs ``state <- step(state)`` in ``lax.while_loop`` while a jittable
``proceed(state)`` holds and fewer than ``max_steps`` steps ran (``ufm.solvers.landscape``, ``ufm.solvers.ce``);
``run_python`` runs a jitted step from Python, counting every non-backtracking step and asking
``observe`` after each (``ufm.solvers.solver``: progress callbacks, stopping rules, resets).

>>> import jax.numpy as jnp
>>> z = jnp.array([[1.0, 0.0], [0.0, 1.0]])
>>> g = jnp.array([[2.0, 1.0], [3.0, -1.0]])
>>> kkt_residual(z, g, nonneg=False).tolist()
[[0.0, 1.0], [3.0, 0.0]]
>>> kkt_residual(z, g, nonneg=True).tolist()  # z_01 = 0 with g_01 > 0 is a KKT point
[[0.0, 0.0], [0.0, 0.0]]
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ufm.solvers.rotation import project_orthant_sphere

__all__ = [
    "sphere_loss", "LBFGSState", "lbfgs_init", "lbfgs_step", "lbfgs_value", "lbfgs_grad",
    "PGState", "pg_init", "pg_step", "ACCEPT", "RESTART", "BACKTRACK", "VANISHED", "A_MIN",
    "kkt_residual", "residual_norm", "sphere_residual_norm", "iterate", "run_python",
]

A_MIN = 1e-14  # projected gradient: a step below this is no step at working precision
ACCEPT, RESTART, BACKTRACK, VANISHED = 0, 1, 2, 3

ValueAndGrad = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


# ----------------------------------------------------------------------------- stationarity


def kkt_residual(z: jax.Array, g: jax.Array, nonneg: bool) -> jax.Array:
    """Stationarity residual at unit rows ``z`` with Euclidean gradient ``g`` (module doc, 3).

    With ``lambda_i = <g_i, z_i>``: ``r_i = g_i - lambda_i z_i`` on the sphere; under
    ``nonneg``, ``r_ij = g_ij - lambda_i z_ij`` where ``z_ij > 0`` and ``min(g_ij, 0)`` where
    ``z_ij = 0``. Zero exactly at a first-order (KKT) point.

    Args:
      z: ``N x d`` unit rows (non-negative under ``nonneg``).
      g: ``N x d`` Euclidean gradient ``dL/dZ`` at ``z``.
      nonneg: the constraint set ``{Z >= 0, unit rows}`` (``True``) or unit rows (``False``).

    Returns:
      The ``N x d`` residual.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., Springer 2006, chapter 12
      (first-order optimality conditions).
    """
    lam = jnp.sum(g * z, axis=1, keepdims=True)
    tangent = g - lam * z
    if not nonneg:
        return tangent
    return jnp.where(z > 0, tangent, jnp.minimum(g, 0.0))


def residual_norm(z: jax.Array, g: jax.Array, nonneg: bool) -> jax.Array:
    """Frobenius norm of ``kkt_residual(z, g, nonneg)``.

    Args:
      z, g, nonneg: as for ``kkt_residual``.

    Returns:
      The norm, a 0-d array (``>= 0``).
    """
    return jnp.linalg.norm(kkt_residual(z, g, nonneg))


def sphere_residual_norm(h: jax.Array, grad_h: jax.Array) -> jax.Array:
    """Frobenius norm of the Riemannian gradient at ``z = h/||h||`` from ``df/dh``.

    For ``f(h) = L(h/||h||)``: ``r_i = ||h_i|| df/dh_i``, read off the L-BFGS state at no cost.

    Args:
      h: ``N x d`` rows with nonzero norms.
      grad_h: ``df/dh`` at ``h`` (``N x d``).

    Returns:
      ``||r||_F``, a 0-d array (equal to ``residual_norm(z, g, False)``).
    """
    return jnp.linalg.norm(jnp.linalg.norm(h, axis=1, keepdims=True) * grad_h)


# ----------------------------------------------------------------------------- L-BFGS


def sphere_loss(vg: ValueAndGrad) -> Callable[[jax.Array], jax.Array]:
    """``f(h) = L(normalize(h))`` with the tangent gradient as its custom VJP.

    Per row, ``df/dh_i = (g_i - <g_i, z_i> z_i) / ||h_i||`` with ``z = h/||h||`` and
    ``g = dL/dZ`` from ``vg`` (one ``vg`` call gives both value and gradient).

    Args:
      vg: ``vg(z) -> (L(z), dL/dZ)`` at unit rows ``z`` (``N x d``).

    Returns:
      ``f``, differentiable once in reverse mode (``jax.grad`` / ``value_and_grad``); rows of
      ``h`` must be nonzero.
    """

    @jax.custom_vjp
    def f(h):
        return fwd(h)[0]

    def fwd(h):
        norm = jnp.linalg.norm(h, axis=1, keepdims=True)
        z = h / norm
        loss, g = vg(z)
        return loss, (g - jnp.sum(g * z, axis=1, keepdims=True) * z) / norm

    def bwd(g, ct):
        return (ct * g,)

    f.defvjp(fwd, bwd)
    return f


class LBFGSState(NamedTuple):
    """Iterate of ``lbfgs_step``.

    Attributes:
      params: the parameters (a pytree).
      opt_state: the ``optax.lbfgs`` state, which holds the value and gradient at ``params``
        (``lbfgs_value``, ``lbfgs_grad``).
    """

    params: Any
    opt_state: Any


def _strong(tree):
    """Strongly typed leaves (a step returns them so), so one compilation serves every step."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def lbfgs_init(opt: optax.GradientTransformationExtraArgs, f: Callable, params) -> LBFGSState:
    """State at ``params`` with ``f``'s value and gradient there stored for the first step.

    Args:
      opt: an ``optax.lbfgs(...)`` transformation.
      f: the objective, a scalar function of ``params`` (differentiable by ``jax.grad``).
      params: the start (a pytree).

    Returns:
      The ``LBFGSState`` at ``params``.
    """
    value, grad = jax.value_and_grad(f)(params)
    state = optax.tree_utils.tree_set(opt.init(params), value=value, grad=grad)
    return LBFGSState(params, _strong(state))


def lbfgs_step(opt: optax.GradientTransformationExtraArgs, f: Callable, state: LBFGSState) -> LBFGSState:
    """One L-BFGS iteration (direction, zoom line search, update) on ``f``.

    Args:
      opt: the ``optax.lbfgs(...)`` transformation ``state`` was built with.
      f: the objective (as for ``lbfgs_init``).
      state: the current ``LBFGSState``.

    Returns:
      The next ``LBFGSState`` (its value and gradient stored by the line search).

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., Springer 2006: L-BFGS
      (section 7.2) and the zoom line search for the Wolfe conditions (chapter 3).
    """
    params, opt_state = state
    value, grad = optax.value_and_grad_from_state(f)(params, state=opt_state)
    updates, opt_state = opt.update(grad, opt_state, params, value=value, grad=grad, value_fn=f)
    return LBFGSState(optax.apply_updates(params, updates), opt_state)


def lbfgs_value(state: LBFGSState) -> jax.Array:
    """``f(state.params)`` (stored by the line search).

    Args:
      state: an ``LBFGSState``.

    Returns:
      The value, a 0-d array.
    """
    return optax.tree_utils.tree_get(state.opt_state, "value")


def lbfgs_grad(state: LBFGSState):
    """``grad f(state.params)`` (stored by the line search).

    Args:
      state: an ``LBFGSState``.

    Returns:
      The gradient, a pytree like ``state.params``.
    """
    return optax.tree_utils.tree_get(state.opt_state, "grad")


# ----------------------------------------------------------------------------- projected gradient


class PGState(NamedTuple):
    """Iterate of ``pg_step``.

    Attributes:
      x, fx, gx: the current iterate, its loss and Euclidean gradient.
      x_prev: the previous iterate (for the momentum).
      y, fy, gy: the point the next trial steps from, its loss and gradient.
      t: the FISTA momentum parameter (1: no momentum).
      a: the step size.
    """

    x: jax.Array
    fx: jax.Array
    gx: jax.Array
    x_prev: jax.Array
    y: jax.Array
    fy: jax.Array
    gy: jax.Array
    t: jax.Array
    a: jax.Array


def pg_init(vg: ValueAndGrad, z: jax.Array, a0) -> PGState:
    """State at ``P(z)`` (projected onto {z >= 0, unit rows}) with step ``a0``, no momentum.

    Args:
      vg: ``vg(z) -> (L(z), dL/dZ)``.
      z: ``N x d`` start (any real rows; projected first).
      a0: the first step size, ``> 0``.

    Returns:
      The ``PGState`` (``t = 1``, ``y = x_prev = x``).
    """
    x = project_orthant_sphere(z)
    fx, gx = vg(x)
    one = jnp.ones((), dtype=x.dtype)
    return PGState(x, fx, gx, x, x, fx, gx, one, jnp.asarray(a0, dtype=x.dtype))


def _t_next(t):
    return 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))


def pg_step(vg: ValueAndGrad, s: PGState, *, momentum: bool = True, growth: float = 1.25,
            slack: float = 1e-12, a_max: float = float("inf")) -> tuple[PGState, jax.Array]:
    """One trial of the (accelerated) projected gradient (module doc, 2).

    The trial ``z = P(y - a g(y))`` is accepted when
    ``L(z) <= L(y) + <g(y), z - y> + ||z - y||^2/(2a) + slack |L(y)|`` and ``L(z) <= L(x)``.

    Args:
      vg: ``vg(z) -> (L(z), dL/dZ)``.
      s: the current ``PGState``.
      momentum: FISTA extrapolation (``False``: plain projected gradient, ``y = x``).
      growth: step growth factor after an accepted trial, ``>= 1``.
      slack: relative slack of the sufficient-decrease test, ``>= 0``.
      a_max: the largest step, ``> 0``.

    Returns:
      ``(state, event)``: the new ``PGState`` and the event code (``ACCEPT``, ``RESTART``,
      ``BACKTRACK`` or ``VANISHED``).

    References:
      Beck and Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear
      Inverse Problems", SIAM J. Imaging Sciences 2009: the momentum sequence and the
      backtracking test (here on a non-convex set, as a heuristic); O'Donoghue and Candes,
      "Adaptive Restart for Accelerated Gradient Schemes", Found. Comput. Math. 2015: the
      function-value restart.
    """
    x_new = project_orthant_sphere(s.y - s.a * s.gy)
    f_new, g_new = vg(x_new)
    diff = x_new - s.y
    model = s.fy + jnp.sum(s.gy * diff) + jnp.sum(diff * diff) / (2.0 * s.a) + slack * jnp.abs(s.fy)
    sufficient = f_new <= model
    accept = sufficient & (f_new <= s.fx)
    overshoot = sufficient & ~accept  # momentum overshoot: restart from x without momentum
    x = jnp.where(accept, x_new, s.x)
    fx = jnp.where(accept, f_new, s.fx)
    gx = jnp.where(accept, g_new, s.gx)
    x_prev = jnp.where(sufficient, s.x, s.x_prev)
    t = jnp.where(accept, _t_next(s.t), jnp.where(overshoot, jnp.ones_like(s.t), s.t))
    a = jnp.where(accept, jnp.minimum(growth * s.a, a_max), 0.5 * s.a)
    if momentum:
        beta = (t - 1.0) / _t_next(t)

        def extrapolate(_):
            y = project_orthant_sphere(x + beta * (x - x_prev))
            return (y, *vg(y))

        y, fy, gy = jax.lax.cond(accept & (beta > 0), extrapolate, lambda _: (x, fx, gx), None)
        keep = ~sufficient  # a backtrack steps again from the same y
        y, fy, gy = (jnp.where(keep, s.y, y), jnp.where(keep, s.fy, fy), jnp.where(keep, s.gy, gy))
    else:
        y, fy, gy = x, fx, gx
    event = jnp.where(accept, ACCEPT, jnp.where(a < A_MIN, VANISHED,
                                                 jnp.where(overshoot, RESTART, BACKTRACK)))
    return PGState(x, fx, gx, x_prev, y, fy, gy, t, a), event


# ----------------------------------------------------------------------------- drivers


def iterate(step: Callable[[Any], Any], state, *, max_steps, proceed: Callable[[Any], jax.Array]):
    """``state <- step(state)`` repeated in a ``lax.while_loop``.

    The loop runs while ``steps < max_steps`` and ``proceed(state)`` holds.

    Args:
      step: ``state -> state`` (jittable; same structure and dtypes out as in).
      state: the initial state.
      max_steps: step cap (an integer, possibly traced).
      proceed: jittable ``state -> bool`` scalar; the loop stops when it is false.

    Returns:
      ``(state, steps)``, ``steps`` a 0-d integer array.
    """

    def cond(carry):
        s, it = carry
        return (it < max_steps) & proceed(s)

    def body(carry):
        s, it = carry
        return step(s), it + 1

    return jax.lax.while_loop(cond, body, (state, jnp.asarray(0)))


def run_python(step: Callable[[Any], tuple[Any, Any]], state, max_steps: int,
               observe: Callable[[Any, int, int], tuple[Any, str | None]]) -> tuple[Any, str, int]:
    """Python loop over a (jitted) ``state, event = step(state)``.

    A ``BACKTRACK`` trial is not a step; after every other event
    ``observe(state, event, steps)`` returns ``(state, reason)`` and the loop ends on a
    reason.

    Args:
      step: ``state -> (state, event)``, ``event`` one of the event codes.
      state: the initial state.
      max_steps: cap on the counted (non-backtracking) steps, an integer.
      observe: ``(state, event, steps) -> (state, reason)``; a truthy ``reason`` ends the loop.

    Returns:
      ``(state, reason, steps)``, reason ``"max_steps"`` when the cap ends it.
    """
    steps = 0
    while steps < max_steps:
        state, event = step(state)
        event = int(event)
        if event == BACKTRACK:
            continue
        steps += 1
        state, reason = observe(state, event, steps)
        if reason:
            return state, reason, steps
    return state, "max_steps", steps
