"""Rotate an embedding towards the non-negative orthant (the SC loss is rotation invariant).

``orthant_rotation(z, labels)`` returns the orthogonal ``Q`` (d x d) that maps the normalized
class means ``M`` (k x d) as close as possible to coordinate axes (orthogonal Procrustes):
``Q = argmin_{Q^T Q = I} ||M Q - T||_F = U V^T`` with ``U S V^T = svd(M^T T)``, where row ``c``
of the target ``T`` is the axis ``e_{c mod d}``. ``project_orthant_sphere`` is the Euclidean
projection onto ``{z >= 0, ||z|| = 1}`` row by row: ``max(v, 0)/||max(v, 0)||``, or the axis
of the largest entry when no entry is positive.

>>> import numpy as np
>>> z = np.array([[0.6, 0.8], [-0.8, 0.6]])
>>> q = orthant_rotation(z, [0, 1])
>>> np.round(z @ q, 6) + 0.0
array([[1., 0.],
       [0., 1.]])
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ufm.core.geometry import class_means, normalize_rows

__all__ = ["orthant_rotation", "rotate_to_orthant", "project_orthant_sphere"]


def orthant_rotation(z: np.ndarray, labels: Sequence[int], k: int | None = None) -> np.ndarray:
    """Orthogonal ``Q`` taking class ``c``'s normalized mean close to the axis ``e_{c mod d}``.

    Orthogonal Procrustes: ``Q = argmin_{Q^T Q = I} ||M Q - T||_F = U V^T`` with
    ``U S V^T = svd(M^T T)``.

    Args:
      z: ``N x d`` finite embeddings (rows normalized first).
      labels: integer labels ``0..k-1`` (every class present unless ``k`` is given).
      k: the number of classes (``max(labels) + 1`` by default).

    Returns:
      The ``d x d`` orthogonal ``Q`` (float64); ``z @ Q`` has the same loss as ``z``.

    Raises:
      ValueError: naming ``z``, ``labels`` or ``k`` (``ufm.core.geometry.class_means``).

    References:
      Schoenemann, "A generalized solution of the orthogonal Procrustes problem",
      Psychometrika 1966.
    """
    m = normalize_rows(class_means(normalize_rows(z), labels, k))
    k, d = m.shape
    target = np.zeros((k, d))
    target[np.arange(k), np.arange(k) % d] = 1.0
    u, _, vt = np.linalg.svd(m.T @ target)
    return u @ vt


def rotate_to_orthant(z: np.ndarray, labels: Sequence[int], k: int | None = None) -> np.ndarray:
    """``z @ Q`` for an orthogonal ``Q`` solving ``orthant_rotation``'s Procrustes problem, in
    ``O(N d k)`` memory and time: for ``d > 2k`` the class means and the target axes span at
    most ``2k`` dimensions, ``Q`` rotates that span (the ``2k x 2k`` Procrustes solution, the same
    optimal value as the ``d x d`` one) and is the identity on its complement, so no ``d x d``
    matrix is formed (``d`` may be 100,000). For ``d <= 2k`` it is ``z @ orthant_rotation(...)``.

    Args:
      z, labels, k: as in ``orthant_rotation``.

    Returns:
      The rotated ``N x d`` float64 rows (same loss as ``z``).
    """
    z = np.asarray(z, dtype=np.float64)
    m = normalize_rows(class_means(normalize_rows(z), labels, k))
    k, d = m.shape
    if d <= 2 * k:
        return z @ orthant_rotation(z, labels, k)
    target = np.zeros((k, d))
    target[np.arange(k), np.arange(k)] = 1.0
    basis, _ = np.linalg.qr(np.vstack([m, target]).T)  # d x 2k, orthonormal columns
    u, _, vt = np.linalg.svd((m @ basis).T @ (target @ basis))
    zb = z @ basis
    return z + (zb @ (u @ vt) - zb) @ basis.T


@jax.jit
def project_orthant_sphere(v: jax.Array) -> jax.Array:
    """Row-wise projection onto the non-negative part of the unit sphere.

    ``max(v, 0)/||max(v, 0)||``, or the axis of the largest entry when no entry is positive.

    Args:
      v: ``N x d`` floating array.

    Returns:
      ``N x d`` unit rows with non-negative entries (``v``'s dtype).
    """
    pos = jnp.maximum(v, 0.0)
    norm = jnp.linalg.norm(pos, axis=1, keepdims=True)
    axis = jax.nn.one_hot(jnp.argmax(v, axis=1), v.shape[1], dtype=v.dtype)
    return jnp.where(norm > 0, pos / jnp.where(norm > 0, norm, 1.0), axis)
