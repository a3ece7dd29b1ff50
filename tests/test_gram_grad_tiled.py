"""The tiled (upper block triangle) path of ``ufm.core.gram_grad.value_and_grad`` (issue 37).

From ``N >= 1024`` rows ``value_and_grad`` forms only the diagonal blocks and the strips right
of them (``_n_blocks``); the small-``N`` tests in ``test_loss.py`` run it as one block. Here it
is compared with independent float64 references: the NumPy loss ``numpy_full_batch_loss`` and
autodiff of ``ufm.core.loss.scl_loss``, at small temperatures (0.03 keeps the shared exp
shift, 0.01 takes the row maxima), ``N`` not a multiple of the block size, and imbalanced classes
(one with a single sample: an anchor without a positive).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reference import numpy_full_batch_loss, unit_rows
from ufm.core import gram_grad
from ufm.core.loss import scl_loss

# class proportions: balanced, one dominant class, a long tail with a singleton class
IMBALANCES = {
    "balanced": [1, 1, 1, 1],
    "dominant": [20, 2, 1, 1],
    "singleton": [30, 8, 4, 2, 1, 0],  # the 0 becomes one sample: a class with no positive
}


def _labels(n, props, rng):
    props = np.asarray(props, dtype=float)
    k = props.size
    if props.min() == 0:  # last class: exactly one sample
        rest = _labels(n - 1, props[:-1], rng)
        labels = np.concatenate([rest, [k - 1]])
    else:
        labels = rng.choice(k, size=n, p=props / props.sum())
        labels[: 2 * k] = np.tile(np.arange(k), 2)  # every class at least twice
    rng.shuffle(labels)
    return labels


def _problem(n, d, imbalance, seed=0):
    """Unit rows pulled toward their class direction (a realistic spread of logits)."""
    rng = np.random.default_rng(seed)
    labels = _labels(n, IMBALANCES[imbalance], rng)
    counts = np.bincount(labels)
    means = unit_rows(rng.normal(size=(counts.size, d)))
    z = unit_rows(means[labels] + 0.7 * rng.normal(size=(n, d)) / np.sqrt(d))
    return z, labels, counts


# one compile per shape (labels and tau traced)
_REF_GRAD = jax.jit(jax.grad(lambda a, y, tau: scl_loss(a, y, tau, normalize=False)))


def _reference(z, labels, tau):
    """float64 loss (NumPy) and gradient (autodiff of ``scl_loss``) of rows used as given."""
    with jax.enable_x64(True):
        grad = np.asarray(_REF_GRAD(jnp.asarray(z, dtype=jnp.float64), jnp.asarray(labels),
                                    jnp.asarray(tau, dtype=jnp.float64)))
    return numpy_full_batch_loss(z, labels, tau), grad


def test_block_choice():
    assert gram_grad._n_blocks(1023) == 1  # below 1024 rows: one dense block, as before
    assert gram_grad._n_blocks(1283) == 2
    assert gram_grad._n_blocks(2048) == 4
    assert gram_grad._n_blocks(100_000) == 4
    bounds = gram_grad._block_bounds(1283, 2)
    assert bounds == [(0, 642), (642, 1283)]  # the last block shorter: 1283 is not a multiple


@pytest.mark.parametrize("imbalance", sorted(IMBALANCES))
@pytest.mark.parametrize("tau", [0.01, 0.03, 0.1, 1.0])
def test_tiled_float32_matches_float64_reference(imbalance, tau):
    """The public float32 path at N = 1283 (two blocks of 642 and 641 rows)."""
    n = 1283
    z, labels, counts = _problem(n, 16, imbalance, seed=int(100 * tau))
    assert gram_grad._n_blocks(n) == 2
    assert gram_grad.shared_shift_fits(tau) == (tau != 0.01)
    loss, grad = gram_grad.value_and_grad(jnp.asarray(z, dtype=jnp.float32),
                                          jnp.asarray(labels, dtype=jnp.int32), jnp.asarray(counts), tau)
    assert grad.dtype == jnp.float32
    loss, grad = float(loss), np.asarray(grad, dtype=np.float64)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # float32 rows: the reference takes the same float32-rounded rows
    want_loss, want_grad = _reference(np.asarray(z, dtype=np.float32).astype(np.float64), labels, tau)
    assert loss == pytest.approx(want_loss, rel=2e-6)
    assert np.linalg.norm(grad - want_grad) <= 1e-5 * np.linalg.norm(want_grad)


@pytest.mark.parametrize("tau", [0.03, 0.3])
def test_tiled_float64_rows_float32_matmul(tau):
    """As the solver calls it: float64 rows, float32 N x N work, loss kept in float64."""
    z, labels, counts = _problem(1283, 16, "singleton", seed=7)
    want_loss, want_grad = _reference(z, labels, tau)
    with jax.enable_x64(True):
        loss, grad = gram_grad.value_and_grad(jnp.asarray(z), jnp.asarray(labels), jnp.asarray(counts), tau)
        assert grad.dtype == jnp.float64
        loss, grad = float(loss), np.asarray(grad)
    # float32 row sums: ~1e-7 relative at tau = 0.03 (5e-9 at 0.3), as the dense kernel had
    assert loss == pytest.approx(want_loss, rel=5e-7)
    assert np.linalg.norm(grad - want_grad) <= 1e-5 * np.linalg.norm(want_grad)


@pytest.mark.parametrize("n_blocks", [2, 3, 5])
@pytest.mark.parametrize("shared_shift", [True, False], ids=["shared-shift", "row-maxima"])
@pytest.mark.parametrize("imbalance", sorted(IMBALANCES))
def test_tiled_float64_exact(n_blocks, shared_shift, imbalance):
    """float64 N x N work, small N in 2, 3 or 5 blocks (37 = 5 x 8 - 3: the last block shorter),
    both softmax paths: the reference to ~1e-12."""
    z, labels, counts = _problem(37, 5, imbalance, seed=n_blocks)
    for tau in (0.03, 0.5):
        want_loss, want_grad = _reference(z, labels, tau)
        with jax.enable_x64(True):
            loss, grad = gram_grad._value_and_grad(
                jnp.asarray(z), jnp.asarray(labels), jnp.asarray(counts), tau, jnp.dtype(jnp.float64),
                shared_shift, n_blocks)
            loss, grad = float(loss), np.asarray(grad)
        assert loss == pytest.approx(want_loss, rel=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-10 / tau)


@pytest.mark.parametrize("tau", [0.03, 0.01])
def test_tiled_float32_collapsed_small_tau(tau):
    """Collapsed classes at small tau: each anchor's row sum is dominated by its same-class
    neighbours (logit 1/tau) over off-class terms near e^(-2/tau); the self pair (also 1/tau)
    must be masked exactly, not subtracted, or the float32 row sums cancel."""
    rng = np.random.default_rng(3)
    labels = _labels(1100, IMBALANCES["dominant"], rng)
    counts = np.bincount(labels)
    frame = unit_rows(rng.normal(size=(counts.size, 8)))
    z = unit_rows(frame[labels] + 1e-3 * rng.normal(size=(labels.size, 8)))
    z = np.asarray(z, dtype=np.float32).astype(np.float64)
    want_loss, want_grad = _reference(z, labels, tau)
    loss, grad = gram_grad.value_and_grad(jnp.asarray(z, dtype=jnp.float32),
                                          jnp.asarray(labels, dtype=jnp.int32), jnp.asarray(counts), tau)
    loss, grad = float(loss), np.asarray(grad, dtype=np.float64)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(want_loss, rel=1e-5)
    # near collapse the gradient is a small difference of terms of size ~2/tau: float32 resolves
    # it to ~1e-6 of that scale (the dense kernel: the same, 6e-7 / 1e-6 at tau = 0.03 / 0.01)
    assert np.max(np.abs(grad - want_grad)) <= 5e-6 * 2.0 / tau


def test_tiled_traced_tau():
    """A JAX-array tau (row maxima) gives the Python-float result (shared shift)."""
    z, labels, counts = _problem(1283, 16, "balanced", seed=11)
    args = (jnp.asarray(z, dtype=jnp.float32), jnp.asarray(labels, dtype=jnp.int32), jnp.asarray(counts))
    l0, g0 = gram_grad.value_and_grad(*args, 0.1)
    l1, g1 = gram_grad.value_and_grad(*args, jnp.asarray(0.1, dtype=jnp.float32))
    assert float(l1) == pytest.approx(float(l0), rel=1e-6)
    assert float(jnp.linalg.norm(g1 - g0)) <= 1e-5 * float(jnp.linalg.norm(g0))
