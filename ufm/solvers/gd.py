"""Plain projected gradient descent with ONE fixed step for every temperature (issue 38, section 2).

How fast does the geometry come, and how does the temperature change it? ``gd_epochs`` runs the
plainest method there is on the full-batch UFM+ (ReLU) problem from a random start,

    z_i <- P(z_i - eta * grad_i L),   P(v) = max(v, 0) / ||max(v, 0)||  (row-wise),

with the same step ``eta`` for every ``tau`` (no line search, no momentum, no restart: one
epoch = one full-batch step on the sum-convention loss ``L``, whose gradient in one row is
``O(1/tau)`` whatever ``N``), and records the first epoch at which ``Delta_GM_OF`` (DESIGN.md section 4) falls to each
threshold. ``of_kkt_slopes`` says why small temperatures are slow (the closed form below).

**Why: the OF under ReLU is a vertex, held by first-order slopes.** At the collapsed OF point
(``z_i = e_{y_i}``) every other coordinate of every row sits at 0, so there is no tangent
direction inside the face and no Hessian to speak of: what holds the OF (and what pulls a
nearby point onto it) are the KKT slopes, the gradient entries ``g_{i c'}`` of the coordinates
pinned at 0. With ``D_c = (n_c - 1) e^{1/tau} + N - n_c`` (the softmax denominator of an anchor
of class ``c`` at the OF), the gradient of ``L`` at the OF is, for a sample ``i`` of class
``c`` and a coordinate ``c' != c``::

    g_{i c'} = n_{c'} / tau * (1 / D_c + 1 / D_{c'})              (> 0: a strict vertex)

(the rows ``l`` of class ``c'`` add ``(p_il + p_li) / tau`` with ``p = 1 / D`` and no positive
weight; ``(Q + Q^T) Z / tau`` is the gradient of the sum loss, ``Q = softmax - positives``).
So ``g ~ (n_{c'} / (n_c tau)) e^{-1/tau}`` for small ``tau``: exponentially small. A
projected step snaps a coordinate to 0 once it is below ``eta g``, and until then moves it by
about ``eta g`` an epoch; a start that has collapsed within classes with cross-class entries
``delta`` therefore needs on the order of ``delta / (eta g_min)`` more epochs, growing like
``tau e^{1/tau}``. That is the measured trend (``figures/temperature.py``): at tau = 1 and 0.5
the geometry comes in tens to hundreds of epochs, below tau ~ 0.1 the count explodes and at
tau = 0.05 the OF is not reached in 20,000 epochs. (This explains the slow final approach; the
early, within-class collapse is fast at every tau.)

**Where small tau stops pinning the geometry at all** (``closed_forms.cosine_sensitivity``): the
loss's relative slope in the class-mean cosines is of order ``e^{-1/tau}`` too; below
``tau ~ 0.027`` it falls under float64's resolution (``2^-53 ~ 1.1e-16``, and ``e^{-1/0.027}
~ 8e-17``), and no float64 method can see the cosines through the loss value any more.

References: Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960) (the OF under ReLU);
Nocedal and Wright, "Numerical Optimization", 2nd ed., Springer 2006, chapter 12 (KKT).

>>> import numpy as np
>>> s = of_kkt_slopes([4, 2], 1.0)
>>> bool(np.all(s[~np.eye(2, dtype=bool)] > 0))
True
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ufm.core.checks import check_int, check_tau
from ufm.core.gram_grad import value_and_grad as gram_value_and_grad
from ufm.core.labels import check_counts, labels_from_counts
from ufm.solvers.rotation import project_orthant_sphere

__all__ = ["of_kkt_slopes", "gd_epochs", "DEFAULT_STEP", "DEFAULT_THRESHOLDS"]

#: The one step of ``gd_epochs`` (on the sum-convention loss L), the same for every tau.
DEFAULT_STEP = 0.05
#: Delta_GM_OF thresholds whose first epochs ``gd_epochs`` records.
DEFAULT_THRESHOLDS = (0.1, 0.01)


def of_kkt_slopes(counts: Sequence[int], tau: float) -> np.ndarray:
    """KKT slopes of the sum-convention loss ``L`` at the collapsed OF (module docstring).

    ``S[c, c'] = n_{c'} / tau (1/D_c + 1/D_{c'})`` for ``c != c'`` is the gradient entry of
    every sample of class ``c`` in coordinate ``c'`` (pinned at 0); the diagonal holds the
    radial component ``<g_i, z_i> = -2 (N - n_c) / (tau D_c)``.

    Args:
      counts: samples per class (each >= 2).
      tau: temperature > 0.

    Returns:
      The ``k x k`` float64 matrix ``S``.

    Raises:
      ValueError: naming ``counts`` or ``tau`` when outside its range.

    >>> s = of_kkt_slopes([3, 3], 0.5)
    >>> d = 2 * np.exp(2.0) + 3
    >>> bool(np.isclose(s[0, 1], 3 / 0.5 * 2 / d))
    True
    """
    n = check_counts(counts).astype(np.float64)
    tau = check_tau(tau)
    big_n = n.sum()
    # D_c = (n_c - 1) e^{1/tau} + N - n_c, scaled by e^{-1/tau} to stay finite at small tau
    d_scaled = (n - 1.0) + (big_n - n) * np.exp(-1.0 / tau)  # D_c e^{-1/tau}
    inv_d = np.exp(-1.0 / tau) / d_scaled  # 1 / D_c
    s = n[None, :] / tau * (inv_d[:, None] + inv_d[None, :])
    s[np.diag_indices(n.size)] = -2.0 * (big_n - n) * inv_d / tau
    return s


@partial(jax.jit, static_argnames=("k", "max_epochs"))
def _run(z0, labels, counts, tau, step, thresholds, k: int, max_epochs: int):
    """``lax.while_loop`` of projected steps; returns (first epochs per threshold, -1 if not
    reached; final Delta_GM_OF; final loss; epochs run). ``delta`` is ``geometry.delta_gm(...,
    "of")`` of the class means, in JAX so that it runs inside the loop."""
    onehot = jax.nn.one_hot(labels, k, dtype=z0.dtype)
    eye = jnp.eye(k, dtype=z0.dtype) / jnp.sqrt(k)

    def delta(z):
        means = onehot.T @ z / counts[:, None]
        m = means / jnp.maximum(jnp.linalg.norm(means, axis=1, keepdims=True), 1e-300)
        g = m @ m.T
        return jnp.linalg.norm(g / jnp.linalg.norm(g) - eye)

    def record(hits, epoch, dz):
        return jnp.where((hits < 0) & (dz <= thresholds), epoch, hits)

    def cond(carry):
        _, hits, epoch = carry
        return (epoch < max_epochs) & jnp.any(hits < 0)

    def body(carry):
        z, hits, epoch = carry
        _, g = gram_value_and_grad(z, labels, counts, tau, matmul_dtype=jnp.float64)
        z = project_orthant_sphere(z - step * g)
        epoch = epoch + 1
        return z, record(hits, epoch, delta(z)), epoch

    hits0 = record(-jnp.ones(thresholds.shape, jnp.int32), 0, delta(z0))
    z, hits, epochs = jax.lax.while_loop(cond, body, (z0, hits0, jnp.asarray(0)))
    loss, _ = gram_value_and_grad(z, labels, counts, tau, matmul_dtype=jnp.float64)
    return hits, delta(z), loss, epochs


def gd_epochs(counts: Sequence[int], tau: float, *, d: int | None = None, step: float = DEFAULT_STEP,
              seed: int = 0, max_epochs: int = 20_000,
              thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict:
    """Epochs of plain projected gradient descent (UFM+, full batch) to each ``Delta_GM_OF``
    threshold, from the random start ``P(h)``, ``h ~ N(0, I)`` (``numpy`` ``default_rng(seed)``).

    One epoch: ``Z <- P(Z - step * grad L)`` (module docstring), the same ``step`` for every
    ``tau``.

    Args:
      counts: samples per class (each >= 2).
      tau: temperature, in ``[1e-6, 1e6]``.
      d: embedding dimension (default ``k``), ``>= k``.
      step: the step on ``L`` (sum convention), a finite number > 0.
      seed: the start, an integer >= 0.
      max_epochs: the cap, an integer >= 1.
      thresholds: the ``Delta_GM_OF`` levels, each in ``(0, 2)``.

    Returns:
      ``{"epochs": {threshold: first epoch or None}, "delta_gm_of": final, "loss": final
      L, "of_loss": L*_OF, "epochs_run": ..., "config": ...}``.

    Raises:
      ValueError: naming the argument outside its range.

    >>> r = gd_epochs([6, 6, 3], 0.5, d=6, seed=0, max_epochs=5000)
    >>> r["epochs"][0.01] is not None and r["delta_gm_of"] <= 0.01
    True
    """
    from ufm.core.closed_forms import of_loss

    n = check_counts(counts)
    tau = check_tau(tau)
    k = n.size
    d = k if d is None else check_int("d", d, k)
    seed = check_int("seed", seed, 0)
    max_epochs = check_int("max_epochs", max_epochs, 1)
    if not (isinstance(step, (int, float)) and np.isfinite(step) and step > 0):
        raise ValueError(f"step must be a finite number > 0, got {step!r}")
    th = np.asarray(thresholds, dtype=np.float64)
    if th.ndim != 1 or th.size == 0 or np.any(~(th > 0)) or np.any(~(th < 2)):
        raise ValueError(f"thresholds must be numbers in (0, 2), got {list(thresholds)!r}")
    labels = labels_from_counts(n)
    h = np.random.default_rng(seed).standard_normal((labels.size, d))
    with jax.enable_x64(True):
        z0 = project_orthant_sphere(jnp.asarray(h))
        hits, dz, loss, epochs = _run(z0, jnp.asarray(labels), jnp.asarray(n), jnp.asarray(tau),
                                      jnp.asarray(float(step)), jnp.asarray(th), k, max_epochs)
        hits = np.asarray(hits)
    return {
        "epochs": {float(t): (None if int(e) < 0 else int(e)) for t, e in zip(th, hits)},
        "delta_gm_of": float(dz),
        "loss": float(loss),
        "of_loss": of_loss(n, tau),
        "epochs_run": int(epochs),
        "config": {"counts": [int(c) for c in n], "tau": tau, "d": d, "step": float(step),
                   "seed": seed, "max_epochs": max_epochs},
    }
