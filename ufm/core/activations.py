"""Activations in the UFM (issue 38, DESIGN.md section 8): ``z = a(h)/||a(h)||`` with ``||h|| = r``.

Every row of the embeddings is a feature ``z_i = a(h_i)/||a(h_i)||`` of a pre-activation
``h_i`` that is free on the sphere of radius ``r`` (the scale a network sets). The loss sees
only the directions, so what an activation ``a`` (applied entrywise) decides is its set of
reachable directions::

    D_a(r) = { a(h)/||a(h)|| : h in R^d, ||h|| = r, a(h) != 0 }  (a subset of S^{d-1})

and the problem is the UFM with every ``z_i`` restricted to ``D_a(r)``. The activations, by name
(``ACTIVATIONS``), and what they reach (``d >= 1``, every ``r > 0``; proofs below):

- ``none`` (``a(x) = x``): ``D = S^{d-1}``, the plain UFM.
- ``relu`` (``max(x, 0)``): ``D = S^{d-1} cap R^d_+``, the closed orthant, boundary included
  (``h = r u`` reaches any non-negative unit ``u``): the UFM+, whose optimum is the OF.
- ``leaky_relu`` (``x`` for ``x >= 0``, ``alpha x`` below, ``0 < alpha < 1``; ``slope``):
  ``D = S^{d-1}``.
- ``elu`` (``x`` for ``x > 0``, ``e^x - 1`` below): ``D = S^{d-1}``.
- ``gelu`` (``x Phi(x)``, ``Phi`` the standard normal CDF; the exact form, not the tanh
  approximation): ``D = S^{d-1}``.
- ``softplus`` (``log(1 + e^x)``): ``D`` lies in the open orthant, and more precisely every
  entry of every reachable direction is at least ``softplus_entry_bound(r, d)
  = softplus(-r) / (r + sqrt(d) log 2) > 0``; the OF is approached as ``r -> infinity``,
  never attained.

**Theorem 1 (monotone activations reach every direction).** Let ``a: R -> R`` be continuous
and strictly increasing with ``a(0) = 0`` (identity, Leaky ReLU, ELU; also tanh, SELU). Then
``D_a(r) = S^{d-1}`` for every ``r > 0``. Proof: ``a`` maps ``R`` onto an open interval
``(m, M)`` with ``m < 0 < M`` and has a continuous increasing inverse with ``a^{-1}(y) -> -inf``
as ``y -> m`` and ``+inf`` as ``y -> M``. For a unit ``u``, let ``lam_max = sup{lam > 0 : lam u
in (m, M)^d}`` and ``N(lam) = ||a^{-1}(lam u)||`` on ``[0, lam_max)``: continuous,
``N(0) = 0``, and ``N(lam) -> inf`` as ``lam -> lam_max`` (some coordinate ``lam u_j`` tends
to an end of ``(m, M)``, finite or infinite, where ``a^{-1}`` tends to ``-inf`` or ``+inf``).
By the intermediate value theorem some ``lam`` gives ``N(lam) = r``; then ``h = a^{-1}(lam u)``
has ``||h|| = r`` and ``a(h)/||a(h)|| = u``. For Leaky ReLU (positively homogeneous) the
preimage is explicit: ``h = r g/||g||`` with ``g = a^{-1}(u)`` (``u_j`` for ``u_j >= 0``,
``u_j/alpha`` below), since ``a(c g) = c a(g)`` for ``c > 0``. Hence the problem with such an
activation IS the plain UFM, for every ``r``, and its optimum is the no-ReLU optimum exactly.
In particular the minimum of ELU (``-1``, not attained) bounds ``a(h)``, not the direction:
``h = -r e_1`` gives ``z = -e_1``.

**Theorem 2 (GELU reaches every direction).** ``a(x) = x Phi(x)`` is not monotone: it
decreases on ``(-inf, x*]`` and increases on ``[x*, inf)``, ``x* = GELU_ARGMIN = -0.75179``,
with minimum ``m = GELU_MIN = -0.16997`` and ``a(x) -> 0-`` as ``x -> -inf``; ``a(x) = 0`` only
at ``0``. Still ``D_a(r) = S^{d-1}`` for every ``r > 0``. Proof: for ``u >= 0`` as in Theorem 1
on ``[0, inf)``. Otherwise let ``j0`` be a most negative coordinate, ``lam_max = |m|/|u_j0|``;
for ``lam in (0, lam_max]`` take every coordinate on the increasing branch (path A) or ``j0``
on the decreasing branch ``(-inf, x*]`` and the others on the increasing one (path B). Both
give ``a(h) = lam u``; they meet at ``lam_max`` (``h_j0 = x*``); along A, ``||h|| -> 0`` as
``lam -> 0``, along B ``||h|| -> inf`` (``h_j0 -> -inf``). The concatenated path is continuous,
so every ``r`` is hit. The preimage uses values ``|a(h_j)|`` as small as about
``exp(-r^2/(2p))`` (``p`` coordinates on the decreasing branch), so in float64 (smallest normal
``2.2e-308``) it is representable only up to ``r`` of about ``37 sqrt(p)``; for larger ``r``
the exact optimum (the plain UFM's) exists but no float64 point of this form realizes it, and a
gradient method sees vanishing derivatives (``a'(x) = Phi(x) + x phi(x)``) there.

**Proposition 3 (softplus).** For ``||h|| = r``: each ``h_j >= -r`` so ``a(h_j) >=
softplus(-r)``, and ``softplus(x) <= log 2 + max(x, 0)`` gives ``||a(h)|| <= sqrt(d) log 2 +
||h_+|| <= sqrt(d) log 2 + r``; hence ``min_j z_j >= softplus(-r)/(r + sqrt(d) log 2)``. Every
inner product of two reachable directions is then at least ``d b^2 > 0``, so no two are
orthogonal and the OF (which needs orthogonal class vectors) is not reachable at any finite
``r``. Conversely ``a(r u)/r -> u`` for any ``u >= 0`` as ``r -> inf`` (``0 <= softplus(x) -
max(x, 0) <= log 2``), so ``D_a(r)`` approaches the closed orthant. As ``r -> 0``,
``a(h) = log 2 + h/2 + O(r^2)`` and ``D_a(r)`` shrinks to the single direction ``1/sqrt(d)``.

References:
  Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive Loss:
  The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the UFM+ (ReLU) and its OF
  optimum; Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)", arXiv:1606.08415;
  Clevert, Unterthiner, Hochreiter, "Fast and Accurate Deep Network Learning by Exponential
  Linear Units (ELUs)", ICLR 2016; DESIGN.md section 8.

>>> import jax.numpy as jnp
>>> [round(float(v), 4) for v in apply_activation(jnp.array([-1.0, 0.0, 2.0]), "leaky_relu", 0.1)]
[-0.1, 0.0, 2.0]
>>> [round(float(v), 4) for v in features(jnp.array([[-3.0, 0.0]]), "elu")[0]]  # z = -e_1
[-1.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_SLOPE",
    "GELU_ARGMIN",
    "GELU_MIN",
    "REACHES_SPHERE",
    "REACHES_ORTHANT",
    "REACHABLE",
    "check_activation",
    "activation_fn",
    "apply_activation",
    "features",
    "softplus_entry_bound",
]

#: The activations by name (``none``: the identity, the plain UFM).
ACTIVATIONS = ("relu", "softplus", "leaky_relu", "gelu", "elu", "none")
#: Leaky ReLU's default negative slope ``alpha``.
DEFAULT_SLOPE = 0.01
#: ``x*``, the minimizer of GELU ``x Phi(x)``: the root of ``Phi(x) + x phi(x) = 0``.
GELU_ARGMIN = -0.7517915246935644
#: GELU's minimum ``x* Phi(x*)``.
GELU_MIN = -0.16997120747990366
#: Activations whose reachable set is the whole sphere for every ``r`` (Theorems 1 and 2).
REACHES_SPHERE = ("none", "leaky_relu", "elu", "gelu")
#: Activations whose reachable set is the closed non-negative orthant for every ``r``.
REACHES_ORTHANT = ("relu",)
#: One line per activation: its reachable set ``D_a(r)`` and whether that is proved.
REACHABLE = {
    "none": "the whole sphere (the plain UFM) for every r",
    "relu": "the closed non-negative orthant (UFM+) for every r",
    "leaky_relu": "the whole sphere for every r (theorem: a positively homogeneous bijection)",
    "elu": "the whole sphere for every r (theorem: a continuous increasing bijection onto (-1, inf) "
           "with a(0) = 0)",
    "gelu": "the whole sphere for every r (theorem: both branches of x Phi(x)); in float64 "
            "realizable up to r of about 37 sqrt(p), p = negative entries of the direction",
    "softplus": "inside the open orthant: every entry >= softplus(-r)/(r + sqrt(d) log 2) "
                "(theorem); tends to the closed orthant as r -> inf and to 1/sqrt(d) as r -> 0",
}


def check_activation(name: str, slope: float | None = None) -> tuple[str, float | None]:
    """Validate an activation name and its slope.

    Args:
      name: one of ``ACTIVATIONS``.
      slope: Leaky ReLU's ``alpha`` in ``(0, 1)`` (default ``DEFAULT_SLOPE``); must be ``None``
        for every other activation.

    Returns:
      ``(name, slope)`` with the slope filled in for ``leaky_relu`` (``None`` otherwise).

    Raises:
      ValueError: naming ``activation`` (unknown) or ``slope`` (out of range, or given for an
        activation without one).

    >>> check_activation("leaky_relu")
    ('leaky_relu', 0.01)
    >>> check_activation("gelu", 0.1)
    Traceback (most recent call last):
    ...
    ValueError: slope applies to leaky_relu only, got slope=0.1 with activation 'gelu'
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    if name != "leaky_relu":
        if slope is not None:
            raise ValueError(f"slope applies to leaky_relu only, got slope={slope!r} with activation {name!r}")
        return name, None
    if slope is None:
        return name, DEFAULT_SLOPE
    if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not 0.0 < float(slope) < 1.0:
        raise ValueError(f"slope must be a number in (0, 1), got {slope!r}")
    return name, float(slope)


def _gelu(x: jax.Array) -> jax.Array:
    # x Phi(x) through ndtr, accurate in the far left tail (1 + erf(x/sqrt 2) cancels to 0 there)
    return x * ndtr(x)


def _elu(x: jax.Array) -> jax.Array:
    # expm1 of min(x, 0): no overflow (and no inf * 0 in the gradient) for large x
    return jnp.where(x > 0, x, jnp.expm1(jnp.minimum(x, 0.0)))


def activation_fn(name: str, slope: float | None = None) -> Callable[[jax.Array], jax.Array]:
    """The entrywise activation ``a`` by name (JAX, jit-able, differentiable).

    ``relu: max(x, 0)``; ``softplus: log(1 + e^x)``; ``leaky_relu: x (x >= 0), slope x
    (x < 0)``; ``gelu: x Phi(x)`` (exact, through the normal CDF); ``elu: x (x > 0), e^x - 1
    (x <= 0)``; ``none: x``.

    Args:
      name: one of ``ACTIVATIONS``.
      slope: Leaky ReLU's ``alpha`` (``check_activation``).

    Returns:
      ``a``, a function of an array (entrywise).

    Raises:
      ValueError: as ``check_activation``.

    >>> float(activation_fn("gelu")(jnp.array(-10.0))) < 0  # float32: 1 + erf(x/sqrt 2) would be 0
    True
    """
    name, slope = check_activation(name, slope)
    if name == "relu":
        return jax.nn.relu
    if name == "softplus":
        return jax.nn.softplus
    if name == "leaky_relu":
        return lambda x: jnp.where(x >= 0, x, slope * x)
    if name == "gelu":
        return _gelu
    if name == "elu":
        return _elu
    return lambda x: x


def apply_activation(h: jax.Array, name: str, slope: float | None = None) -> jax.Array:
    """``a(h)`` entrywise (``activation_fn``).

    Args:
      h: an array of pre-activations.
      name, slope: as ``activation_fn``.

    Returns:
      ``a(h)``, an array of ``h``'s shape.
    """
    return activation_fn(name, slope)(jnp.asarray(h))


def features(h: jax.Array, name: str, slope: float | None = None) -> jax.Array:
    """The UFM features ``z_i = a(h_i)/||a(h_i)||`` row by row.

    Scaled by the row's largest ``|a(h_i)|`` first (held constant in the gradient, which does
    not change the direction), so rows whose entries are tiny (GELU far left) do not underflow
    when squared. A row with ``a(h_i) = 0`` gives ``z_i = 0``.

    Args:
      h: ``N x d`` pre-activations (the rows need not have norm ``r``; the direction is
        what counts).
      name, slope: as ``activation_fn``.

    Returns:
      ``N x d`` unit rows (zero rows where ``a(h_i) = 0``).

    >>> z = features(jnp.array([[1.0, -1.0]]), "relu")
    >>> [float(v) for v in z[0]]
    [1.0, 0.0]
    """
    w = apply_activation(h, name, slope)
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(w), axis=-1, keepdims=True))
    w = w / jnp.where(scale > 0, scale, 1.0)
    # after scaling a nonzero row has norm >= 1: the tiny shift only keeps a zero row at 0
    norm = jnp.sqrt(jnp.sum(w * w, axis=-1, keepdims=True) + 1e-300)
    return w / norm


def softplus_entry_bound(radius: float, d: int) -> float:
    """Lower bound on every entry of a softplus direction at radius ``r`` (Proposition 3)::

        min_j z_j >= b(r, d) = softplus(-r) / (r + sqrt(d) log 2)

    for every ``h`` with ``||h|| = r`` and ``z = softplus(h)/||softplus(h)||``. Positive for
    every finite ``r`` (so the OF is not reachable), ``~ e^{-r}/r`` as ``r -> inf``.

    Args:
      radius: ``r > 0``.
      d: the dimension, an integer ``>= 1``.

    Returns:
      ``b(r, d)`` (float).

    Raises:
      ValueError: naming ``radius`` or ``d`` when out of range.

    >>> round(softplus_entry_bound(1.0, 4), 6)  # log(1 + e^-1) / (1 + 2 log 2)
    0.131275
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (
            math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")
    softplus_neg = math.log1p(math.exp(-radius))
    return softplus_neg / (radius + math.sqrt(d) * math.log(2.0))
