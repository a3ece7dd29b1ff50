"""Independent brute-force references for the tests (plain Python / NumPy, float64).

Nothing here imports ``ufm``: these are written straight from DESIGN.md section 2 with explicit
loops, so the tests compare the package against the definition and not against itself.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["batched_of_value", "brute_scl_loss", "numpy_full_batch_loss", "unit_rows"]


def _logsumexp(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def brute_scl_loss(h, labels, tau, batches=None, normalize=True, reduction="sum"):
    """SC loss, sum convention (DESIGN.md section 2), by explicit loops.

    ``L = sum_B sum_{i in B, n_{B,y_i} >= 2} 1/(n_{B,y_i}-1) sum_{j in B, j != i, y_j = y_i}
    -log( exp(<z_i,z_j>/tau) / sum_{l in B, l != i} exp(<z_i,z_l>/tau) )``.

    Anchors without a positive in their batch add 0 (they still act as negatives).
    ``reduction="mean"`` divides by the number of (batch, anchor) pairs that have a positive.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(reduction)
    h = np.asarray(h, dtype=np.float64)
    y = [int(v) for v in np.asarray(labels).ravel()]
    n = h.shape[0]
    rows = []
    for i in range(n):
        v = [float(x) for x in h[i]]
        if normalize:
            nrm = math.sqrt(sum(x * x for x in v))
            v = [x / nrm for x in v] if nrm > 0 else v
        rows.append(v)

    def dot(a, b):
        return sum(p * q for p, q in zip(rows[a], rows[b]))

    if batches is None:
        batches = [list(range(n))]
    total = 0.0
    n_anchors = 0
    for batch in batches:
        batch = [int(b) for b in batch]
        for pos_i, i in enumerate(batch):
            positives = [j for pos_j, j in enumerate(batch) if pos_j != pos_i and y[j] == y[i]]
            if not positives:
                continue
            n_anchors += 1
            others = [dot(i, l) / tau for pos_l, l in enumerate(batch) if pos_l != pos_i]
            lse = _logsumexp(others)
            term = 0.0
            for j in positives:
                term += -(dot(i, j) / tau - lse)
            total += term / len(positives)
    if reduction == "mean":
        return total / max(n_anchors, 1)
    return total


def unit_rows(h):
    """Rows of ``h`` scaled to unit norm (float64)."""
    h = np.asarray(h, dtype=np.float64)
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def numpy_full_batch_loss(z, labels, tau):
    """Vectorized float64 full-batch SC loss of rows ``z`` used as given (normalize=False).

    Same definition as ``brute_scl_loss`` (checked against it in the tests), fast enough for
    N in the thousands.
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(labels).ravel()
    n = z.shape[0]
    s = z @ z.T / tau
    np.fill_diagonal(s, -np.inf)
    m = s.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
    same = (y[:, None] == y[None, :]) & ~np.eye(n, dtype=bool)
    n_pos = same.sum(axis=1)
    has = n_pos > 0
    pos_mean = np.where(same, s, 0.0).sum(axis=1) / np.maximum(n_pos, 1)
    return float(np.sum((lse - pos_mean)[has]))


def batched_of_value(labels, batches, tau) -> float:
    """The batched loss at collapse onto an orthogonal frame, by a loop over batches and classes:
    sum_B sum_{c: n_{B,c} >= 2} n_{B,c} log(n_{B,c} - 1 + (|B| - n_{B,c}) e^{-1/tau})."""
    labels = np.asarray(labels)
    total = 0.0
    for b in batches:
        yb = labels[np.asarray(b, dtype=np.int64)]
        for c in np.unique(yb):
            nb = int(np.sum(yb == c))
            if nb >= 2:
                total += nb * math.log(nb - 1 + (len(b) - nb) * math.exp(-1.0 / tau))
    return total


def reshuffled_batches(n, batch_size, epochs, seed):
    """Batches of a fresh permutation of ``range(n)`` each epoch (numpy ``default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        out += [perm[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    return out
