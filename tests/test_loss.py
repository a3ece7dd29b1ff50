"""SC loss (ufm.core.loss), hand-written Gram gradient (ufm.core.gram_grad) and closed forms
(ufm.core.closed_forms), all checked against the brute-force loops of tests/reference.py."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.core import gram_grad
from reference import brute_scl_loss, unit_rows

RTOL = 1e-10


# ----------------------------------------------------------------------------- problem makers


def random_problem(seed, *, n_range=(5, 20), d_range=(2, 6), k_range=(2, 4)):
    """Random labels (every class present, some possibly singletons) and random h."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    d = int(rng.integers(d_range[0], d_range[1] + 1))
    k = int(rng.integers(k_range[0], k_range[1] + 1))
    labels = np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])
    rng.shuffle(labels)
    h = rng.normal(size=(n, d)) * rng.uniform(0.3, 3.0, size=(n, 1))
    return rng, labels.astype(np.int64), h


def random_batches(rng, labels):
    """Batches of varying sizes: sizes 1 and 2, a batch with an anchor lacking a positive,
    indices repeated across batches, plus random ones."""
    n = labels.size
    batches = [[int(rng.integers(n))]]  # size 1: no anchor has a positive
    batches.append([int(i) for i in rng.choice(n, size=2, replace=False)])  # size 2
    # one sample of class a with two of class b: the lone class-a sample has no positive
    classes, cnt = np.unique(labels, return_counts=True)
    multi = classes[cnt >= 2]
    if multi.size:
        b = int(multi[0])
        two_b = [int(i) for i in np.flatnonzero(labels == b)[:2]]
        lone = [int(i) for i in np.flatnonzero(labels != b)[:1]]
        batches.append(lone + two_b)
    for _ in range(int(rng.integers(2, 5))):
        size = int(rng.integers(1, n + 1))
        batches.append([int(i) for i in rng.choice(n, size=size, replace=False)])
    batches.append(batches[-1][::-1])  # the same indices again (an epoch repeat), other order
    return batches


def _scl(h, labels, tau, batches, normalize, reduction):
    return ufm.scl_loss(h, labels, tau, batches=batches, normalize=normalize, reduction=reduction)


def _scl_both(h, labels, tau, batches, normalize):
    return _scl(h, labels, tau, batches, normalize, "sum"), _scl(h, labels, tau, batches, normalize, "mean")


# Module-level jitted functions (one compile cache shared by all tests; batches static as a
# tuple of tuples, tau traced): eager op-by-op dispatch would recompile every primitive per shape.
_JIT_LOSS = jax.jit(_scl_both, static_argnums=(3, 4))
_JIT_VG = jax.jit(jax.value_and_grad(_scl), static_argnums=(3, 4, 5))


def _static(batches):
    return None if batches is None else tuple(tuple(int(i) for i in b) for b in batches)


def scl(h, labels, tau, *, batches=None, normalize=True, reduction="sum", dtype=jnp.float64):
    """Jitted ``ufm.scl_loss`` value (float64 unless ``dtype`` says otherwise)."""
    assert reduction in ("sum", "mean")
    with jax.enable_x64(dtype == jnp.float64):
        total, mean = _JIT_LOSS(jnp.asarray(h, dtype=dtype), jnp.asarray(labels), tau,
                                _static(batches), normalize)
        return float(total if reduction == "sum" else mean)


def scl_vg(h, labels, tau, *, batches=None, normalize=True, reduction="sum", dtype=jnp.float64):
    """Jitted value and gradient of ``ufm.scl_loss`` in ``h``."""
    with jax.enable_x64(dtype == jnp.float64):
        v, g = _JIT_VG(jnp.asarray(h, dtype=dtype), jnp.asarray(labels), tau,
                       _static(batches), normalize, reduction)
        assert g.dtype == dtype
        return float(v), np.asarray(g)




# ----------------------------------------------------------------------------- scl_loss values

SEEDS = list(range(6))
TAUS = [0.05, 0.1, 1.0]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_scl_loss_full_batch_matches_brute(seed, tau, reduction):
    _, labels, h = random_problem(seed)
    got = scl(h, labels, tau, reduction=reduction)
    want = brute_scl_loss(h, labels, tau, reduction=reduction)
    assert got == pytest.approx(want, rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_scl_loss_batched_matches_brute(seed, tau, reduction):
    rng, labels, h = random_problem(100 + seed)
    batches = random_batches(rng, labels)
    assert any(len(b) == 1 for b in batches) and any(len(b) == 2 for b in batches)
    got = scl(h, labels, tau, batches=batches, reduction=reduction)
    want = brute_scl_loss(h, labels, tau, batches=batches, reduction=reduction)
    assert got == pytest.approx(want, rel=RTOL, abs=1e-12)
    # batching really changes the value here (guards against ignoring `batches`)
    full = brute_scl_loss(h, labels, tau, reduction=reduction)
    assert abs(full - want) > 1e-8 * max(1.0, abs(full))


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_scl_loss_padded_batches_array(seed):
    """A padded (-1 = empty) integer array is the same family of batches as the list."""
    rng, labels, h = random_problem(200 + seed)
    batches = random_batches(rng, labels)
    width = max(len(b) for b in batches)
    padded = np.full((len(batches), width), -1, dtype=np.int64)
    for r, b in enumerate(batches):
        padded[r, : len(b)] = b
    assert (padded == -1).any()
    with jax.enable_x64(True):
        yj = jnp.asarray(labels)
        f = jax.jit(lambda x: [ufm.scl_loss(x, yj, 0.1, batches=padded, reduction=r) for r in ("sum", "mean")])
        got = [float(v) for v in f(jnp.asarray(h))]
    for g, r in zip(got, ("sum", "mean")):
        want = brute_scl_loss(h, labels, 0.1, batches=batches, reduction=r)
        assert g == pytest.approx(want, rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("batched", [False, True])
def test_scl_loss_normalize_false(seed, tau, batched):
    rng, labels, h = random_problem(300 + seed)
    batches = random_batches(rng, labels) if batched else None
    z = unit_rows(h)
    # unit rows: normalize=False gives the same as normalize=True and as the brute loss
    got_unit = scl(z, labels, tau, batches=batches, normalize=False)
    want_unit = brute_scl_loss(z, labels, tau, batches=batches, normalize=False)
    assert got_unit == pytest.approx(want_unit, rel=RTOL, abs=1e-12)
    assert scl(h, labels, tau, batches=batches) == pytest.approx(want_unit, rel=1e-9, abs=1e-12)
    # non-unit rows are used as given (raw inner products)
    got_raw = scl(h, labels, tau, batches=batches, normalize=False)
    want_raw = brute_scl_loss(h, labels, tau, batches=batches, normalize=False)
    assert got_raw == pytest.approx(want_raw, rel=RTOL, abs=1e-12)
    assert abs(want_raw - want_unit) > 1e-6 * abs(want_unit)


def test_scl_loss_small_hand_example():
    """Two classes on two orthogonal axes, tau = 1: 4 * log(1 + 2/e) by hand."""
    h = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = np.array([0, 0, 1, 1])
    # each anchor: one positive (<.,.> = 1), two negatives (0): -log(e/(e + 2)) = log(1 + 2/e)
    want = 4 * np.log(1 + 2 / np.e)
    assert scl(h, y, 1.0) == pytest.approx(want, rel=1e-12)
    assert brute_scl_loss(h, y, 1.0) == pytest.approx(want, rel=1e-12)


def test_scl_loss_anchor_without_positive_is_still_a_negative():
    """Sample 2 (class 1, alone) adds nothing as an anchor but enters the others' denominators."""
    h = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    y = np.array([0, 0, 1])
    tau = 0.5
    g01 = 0.6
    # anchor 0: positive 1, negative 2 (<z0,z2> = 0); anchor 1: positive 0, negative 2 (0.8)
    a0 = -(g01 / tau) + np.log(np.exp(g01 / tau) + np.exp(0.0))
    a1 = -(g01 / tau) + np.log(np.exp(g01 / tau) + np.exp(0.8 / tau))
    assert scl(h, y, tau) == pytest.approx(a0 + a1, rel=1e-12)
    assert scl(h, y, tau, reduction="mean") == pytest.approx((a0 + a1) / 2, rel=1e-12)
    assert brute_scl_loss(h, y, tau) == pytest.approx(a0 + a1, rel=1e-12)


def test_scl_loss_jit_same_value():
    rng, labels, h = random_problem(7)
    batches = random_batches(rng, labels)
    want_full = brute_scl_loss(h, labels, 0.1)
    want_b = brute_scl_loss(h, labels, 0.1, batches=batches, reduction="mean")
    with jax.enable_x64(True):
        hj = jnp.asarray(h)
        yj = jnp.asarray(labels)
        f_full = jax.jit(lambda x: ufm.scl_loss(x, yj, 0.1))
        f_b = jax.jit(lambda x: ufm.scl_loss(x, yj, 0.1, batches=batches, reduction="mean"))
        got_full, got_b = float(f_full(hj)), float(f_b(hj))
        eager_full = float(ufm.scl_loss(hj, yj, 0.1))
    assert got_full == pytest.approx(want_full, rel=RTOL)
    assert got_b == pytest.approx(want_b, rel=RTOL)
    assert got_full == pytest.approx(eager_full, rel=1e-12)


@pytest.mark.parametrize("bad", ["avg", "SUM", "none", ""])
def test_scl_loss_bad_reduction(bad):
    h = jnp.ones((4, 2))
    with pytest.raises(ValueError):
        ufm.scl_loss(h, jnp.array([0, 0, 1, 1]), 0.1, reduction=bad)


@pytest.mark.parametrize("tau", [0, 0.0, -0.1, float("nan"), float("inf"), np.float32(0), "0.1"])
def test_losses_reject_a_bad_temperature(tau):
    """A number tau <= 0 or non-finite is an error, not a silent NaN or a sign-flipped loss."""
    h = jnp.eye(4)[:, :2] + 0.1
    y = jnp.array([0, 0, 1, 1])
    for fn, kw in ((ufm.scl_loss, {}), (ufm.scl_loss, {"batches": [[0, 1, 2, 3]]}), (ufm.gram_loss, {})):
        with pytest.raises(ValueError, match="tau must be a finite number > 0"):
            fn(h @ h.T if fn is ufm.gram_loss else h, y, tau, **kw)
    for fn in (ufm.of_loss, ufm.etf_loss):
        with pytest.raises(ValueError, match="tau must be a finite number > 0"):
            fn([2, 2], tau)
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        ufm.batched_of_loss([0, 0, 1, 1], [[0, 1, 2, 3]], tau)


def test_losses_reject_mismatched_labels():
    h = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="one label per row"):
        ufm.scl_loss(h, jnp.array([0, 0, 1]), 0.1)
    with pytest.raises(ValueError, match="one label per row"):
        ufm.scl_loss(h, jnp.array([[0, 0, 1, 1]]), 0.1)
    with pytest.raises(ValueError, match="N x d"):
        ufm.scl_loss(jnp.ones(4), jnp.array([0, 0, 1, 1]), 0.1)
    with pytest.raises(ValueError, match="N x N"):
        ufm.gram_loss(jnp.ones((4, 3)), jnp.array([0, 0, 1, 1]), 0.1)


def test_traced_tau_is_not_checked_but_works():
    """Under jit/grad tau is a tracer: the shapes are still checked, the value cannot be."""
    h = jnp.eye(4)[:, :2] + 0.1
    y = jnp.array([0, 0, 1, 1])
    eager = float(ufm.scl_loss(h, y, 0.3))
    assert float(jax.jit(lambda t: ufm.scl_loss(h, y, t))(0.3)) == pytest.approx(eager, rel=1e-6)
    assert np.isfinite(float(jax.grad(lambda t: ufm.scl_loss(h, y, t))(0.3)))


# ----------------------------------------------------------------------------- gradients


def _fd_directional(fun, x, v, eps=1e-5):
    return (fun(x + eps * v) - fun(x - eps * v)) / (2 * eps)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tau", [0.1, 1.0])
@pytest.mark.parametrize("batched", [False, True])
def test_scl_loss_grad_matches_brute_fd(seed, tau, batched):
    rng, labels, h = random_problem(400 + seed, n_range=(5, 12))
    batches = random_batches(rng, labels) if batched else None
    _, grad = scl_vg(h, labels, tau, batches=batches)
    assert grad.dtype == np.float64
    fun = lambda x: brute_scl_loss(x, labels, tau, batches=batches)  # noqa: E731
    for _ in range(4):
        v = rng.normal(size=h.shape)
        fd = _fd_directional(fun, h, v)
        assert np.sum(grad * v) == pytest.approx(fd, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("seed", range(2))
def test_scl_loss_grad_every_coordinate(seed):
    """Full gradient, coordinate by coordinate, normalize=True, mean reduction."""
    rng, labels, h = random_problem(450 + seed, n_range=(6, 8), d_range=(3, 3))
    tau = 0.2
    _, grad = scl_vg(h, labels, tau, reduction="mean")
    fun = lambda x: brute_scl_loss(x, labels, tau, reduction="mean")  # noqa: E731
    fd = np.zeros_like(h)
    for idx in itertools.product(range(h.shape[0]), range(h.shape[1])):
        e = np.zeros_like(h)
        e[idx] = 1.0
        fd[idx] = _fd_directional(fun, h, e)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- gram_grad


GRAM_SHAPES = [(13, 4, 4), (8, 3, 3)]  # (N, d, k): N % chunk != 0 for chunks 3 and 7


def _gram_problem(seed, with_singleton=False):
    """Unit rows with labels in 0..k-1; two fixed shapes only (keeps the jit cache small)."""
    rng = np.random.default_rng(500 + seed)
    n, d, k = GRAM_SHAPES[seed % len(GRAM_SHAPES)]
    if with_singleton:  # class k-1 has one sample: never an anchor with a positive
        base = np.concatenate([[k - 1], np.arange(k - 1), np.arange(k - 1)])
        labels = np.concatenate([base, rng.integers(0, k - 1, size=n - base.size)])
    else:
        base = np.concatenate([np.arange(k), np.arange(k)])
        labels = np.concatenate([base, rng.integers(0, k, size=n - base.size)])
    rng.shuffle(labels)
    counts = np.bincount(labels, minlength=k)
    assert (counts.min() == 1) == with_singleton
    return rng, labels, counts, unit_rows(rng.normal(size=(n, d)))


def _gram_call(fn, z, labels, counts, tau, mm, **kw):
    with jax.enable_x64(True):
        loss, grad = fn(
            jnp.asarray(z, dtype=jnp.float64), jnp.asarray(labels, dtype=jnp.int32),
            jnp.asarray(counts), tau, matmul_dtype=mm, **kw,
        )
        return float(loss), np.asarray(grad, dtype=np.float64)


GRAM_FNS = [
    ("full", gram_grad.value_and_grad, {}),
    ("chunk1", gram_grad.value_and_grad_chunked, {"chunk": 1}),
    ("chunk3", gram_grad.value_and_grad_chunked, {"chunk": 3}),
    ("chunk7", gram_grad.value_and_grad_chunked, {"chunk": 7}),
    ("chunk64", gram_grad.value_and_grad_chunked, {"chunk": 64}),
]


# (function, seed) pairs: the unchunked one on both shapes, the chunked ones on the 13-row shape
# (seed 2 has a singleton class); every compile is per shape, so this keeps the suite fast.
GRAM_CASES = [(g, seed) for g in GRAM_FNS for seed in ((0, 1, 2) if g[0] == "full" else (0, 2))]


@pytest.mark.parametrize("name,fn,kw,seed", [(*g, sd) for g, sd in GRAM_CASES],
                         ids=[f"{g[0]}-seed{sd}" for g, sd in GRAM_CASES])
@pytest.mark.parametrize("tau", [0.002, 0.05, 0.5])
def test_gram_grad_float64_matches_brute(name, fn, kw, seed, tau):
    """Both softmax paths (one shared shift when 2/tau fits exp's range, row maxima otherwise)
    against the brute loss and its finite differences."""
    rng, labels, counts, z = _gram_problem(seed, with_singleton=(seed == 2))
    assert labels.size < 64
    loss, grad = _gram_call(fn, z, labels, counts, tau, jnp.float64, **kw)
    fun = lambda x: brute_scl_loss(x, labels, tau, normalize=False)  # noqa: E731
    assert loss == pytest.approx(fun(z), rel=RTOL)
    eps = min(1e-5, 1e-4 * tau)
    for _ in range(3):
        v = rng.normal(size=z.shape)
        fd = _fd_directional(fun, z, v, eps=eps)
        assert np.sum(grad * v) == pytest.approx(fd, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name,fn,kw", [GRAM_FNS[0], GRAM_FNS[2]], ids=["full", "chunk3"])
@pytest.mark.parametrize("tau", [0.002, 0.5])
@pytest.mark.parametrize("forced", [False, True], ids=["row-maxima", "shift-as-fits"])
def test_gram_grad_traced_tau(name, fn, kw, tau, forced):
    """tau as a (traced) float64 array instead of a Python float: by default the row maxima;
    with ``shared_shift=shared_shift_fits(tau)`` (as the solver passes it) the shared shift at
    tau = 0.5 and the row maxima at 0.002 (2/tau beyond float64 exp's range)."""
    rng, labels, counts, z = _gram_problem(2, with_singleton=True)
    if forced:
        kw = {**kw, "shared_shift": gram_grad.shared_shift_fits(tau, jnp.float64)}
        assert kw["shared_shift"] == (tau == 0.5)
    with jax.enable_x64(True):
        t = jnp.asarray(tau, dtype=jnp.float64)
        assert t.dtype == jnp.float64
        loss, grad = _gram_call(fn, z, labels, counts, t, jnp.float64, **kw)
        with_float = _gram_call(fn, z, labels, counts, tau, jnp.float64, **kw)
    assert loss == pytest.approx(brute_scl_loss(z, labels, tau, normalize=False), rel=RTOL)
    np.testing.assert_allclose(grad, with_float[1], rtol=1e-9, atol=1e-9 / tau)


@pytest.mark.parametrize("name,fn,kw", GRAM_FNS[:3], ids=[g[0] for g in GRAM_FNS[:3]])
def test_gram_grad_every_coordinate(name, fn, kw):
    _, labels, counts, z = _gram_problem(3, with_singleton=True)  # N = 8, d = 3
    tau = 0.3
    loss, grad = _gram_call(fn, z, labels, counts, tau, jnp.float64, **kw)
    fun = lambda x: brute_scl_loss(x, labels, tau, normalize=False)  # noqa: E731
    fd = np.zeros_like(z)
    for idx in itertools.product(range(z.shape[0]), range(z.shape[1])):
        e = np.zeros_like(z)
        e[idx] = 1.0
        fd[idx] = _fd_directional(fun, z, e)
    assert loss == pytest.approx(fun(z), rel=RTOL)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,fn,kw,seed", [(*g, sd) for g, sd in GRAM_CASES if sd != 2],
                         ids=[f"{g[0]}-seed{sd}" for g, sd in GRAM_CASES if sd != 2])
def test_gram_grad_float32_matmul_close(name, fn, kw, seed):
    _, labels, counts, z = _gram_problem(seed)
    tau = 0.1
    loss, grad = _gram_call(fn, z, labels, counts, tau, jnp.float32, **kw)
    loss64, grad64 = _gram_call(fn, z, labels, counts, tau, jnp.float64, **kw)
    want = brute_scl_loss(z, labels, tau, normalize=False)
    assert loss == pytest.approx(want, rel=1e-5)
    assert np.linalg.norm(grad - grad64) <= 1e-4 * np.linalg.norm(grad64)


@pytest.mark.parametrize("seed", range(2))
def test_gram_grad_equals_autodiff_of_scl_loss(seed):
    """Two independent routes to the same Euclidean gradient (unit rows, normalize=False)."""
    _, labels, counts, z = _gram_problem(seed)
    tau = 0.1
    loss, grad = _gram_call(gram_grad.value_and_grad, z, labels, counts, tau, jnp.float64)
    _, g_auto = scl_vg(z, labels, tau, normalize=False)
    np.testing.assert_allclose(grad, g_auto, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- float32 stability


def _collapsed_h(labels, d, rng):
    k = int(labels.max()) + 1
    u = unit_rows(rng.normal(size=(k, d)))
    return u[labels]


@pytest.mark.parametrize("tau", [0.01, 0.005])
def test_float32_small_tau_finite(tau):
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
    n, d = labels.size, 4
    cases = {
        "random": rng.normal(size=(n, d)),
        "collapsed": _collapsed_h(labels, d, rng),
        "of": np.eye(d)[labels],
        "all_same": np.ones((n, d)),
    }
    batches = [[0, 3, 5, 9], [0, 1, 3, 4, 5], [2, 6, 7, 8, 10], [9, 10], [4]]
    # batch [0, 3, 5, 9] holds one sample of each class: nobody has a positive
    for name, h in cases.items():
        for kw in ({}, {"batches": batches}, {"batches": batches, "reduction": "mean"}):
            loss, g = scl_vg(h, labels, tau, dtype=jnp.float32, **kw)
            assert g.dtype == np.float32
            assert np.isfinite(loss), (name, kw)
            assert np.all(np.isfinite(np.asarray(g))), (name, kw)
            want = brute_scl_loss(h, labels, tau, **kw)
            assert float(loss) == pytest.approx(want, rel=1e-3, abs=2e-3 * n), (name, kw)


def _zero_row_problem():
    rng = np.random.default_rng(4)
    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    h = rng.normal(size=(7, 3))
    h[3] = 0.0
    return labels, h


ZERO_ROW_KW = [{}, {"batches": [[0, 1, 3], [2, 3, 4, 5, 6]]}]


@pytest.mark.parametrize("tau", [0.01, 0.005])
@pytest.mark.parametrize("kw", ZERO_ROW_KW, ids=["full", "batched"])
def test_float32_zero_row_loss_no_nan(tau, kw):
    labels, h = _zero_row_problem()
    loss = scl(h, labels, tau, dtype=jnp.float32, **kw)
    assert np.isfinite(loss)
    # the zero row acts as the zero vector (all its inner products 0), as in the brute loss
    want = brute_scl_loss(h, labels, tau, **kw)
    assert loss == pytest.approx(want, rel=1e-3, abs=1e-2)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kw", ZERO_ROW_KW, ids=["full", "batched"])
def test_zero_row_gradient_no_nan(dtype, kw):
    """ufm.core.loss.normalize promises "a zero row stays zero, without NaN"; that must hold for the
    gradient too, or one dead feature poisons every optimizer step."""
    labels, h = _zero_row_problem()
    loss, g = scl_vg(h, labels, 0.01, dtype=dtype, **kw)
    assert np.isfinite(loss)
    assert not np.any(np.isnan(g)), f"NaN gradient rows: {np.flatnonzero(np.isnan(g).any(1))}"
    # the other rows' gradient is unaffected by the zero row's treatment
    assert np.all(np.isfinite(np.delete(g, 3, axis=0)))


@pytest.mark.parametrize("tau", [0.03, 0.01, 0.005])
def test_float32_gram_grad_small_tau_finite(tau):
    """float32 matmul, small tau (0.03 still takes the one-shared-shift path, 0.01 and 0.005 the
    row-maxima path): finite and close to the brute loss, including an antipodal configuration
    where whole rows of logits sit at -1/tau."""
    rng = np.random.default_rng(5)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    counts = np.bincount(labels)
    e = np.eye(3)
    antipodal = np.array([e[0], e[0], e[0], -e[0], -e[0], e[1], -e[1], e[1]])
    configs = {"random": unit_rows(rng.normal(size=(8, 3))), "of": e[labels], "antipodal": antipodal}
    for name, z in configs.items():
        want = brute_scl_loss(z, labels, tau, normalize=False)
        for fn, kw in ((gram_grad.value_and_grad, {}), (gram_grad.value_and_grad_chunked, {"chunk": 3})):
            loss, g = fn(jnp.asarray(z, dtype=jnp.float32), jnp.asarray(labels, dtype=jnp.int32),
                         jnp.asarray(counts), tau, **kw)
            assert np.isfinite(float(loss)) and np.all(np.isfinite(np.asarray(g))), name
            assert float(loss) == pytest.approx(want, rel=1e-4, abs=1e-3), name


# ----------------------------------------------------------------------------- closed forms

IMBALANCED = [[5, 5, 2, 2], [7, 3, 2, 5], [10, 2], [3, 3, 3], [2, 9, 4], [12, 6, 3, 2, 2]]


@pytest.mark.parametrize("counts", IMBALANCED)
@pytest.mark.parametrize("tau", [0.02, 0.1, 0.5, 2.0])
@pytest.mark.parametrize("extra_dims", [0, 2])
def test_of_loss_equals_brute_at_orthogonal_frame(counts, tau, extra_dims):
    k = len(counts)
    labels = np.repeat(np.arange(k), counts)
    z = np.eye(k + extra_dims)[labels]
    want = brute_scl_loss(z, labels, tau)
    assert ufm.of_loss(counts, tau) == pytest.approx(want, rel=1e-10)
    # and the formula of DESIGN.md section 4, term by term
    n = np.asarray(counts, dtype=float)
    formula = np.sum(n * np.log(n - 1 + (n.sum() - n) * np.exp(-1 / tau)))
    assert ufm.of_loss(counts, tau) == pytest.approx(formula, rel=1e-10)


def _etf_vectors(k):
    v = np.eye(k) - np.ones((k, k)) / k
    return unit_rows(v)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("n_per", [2, 3, 5])
@pytest.mark.parametrize("tau", [0.05, 0.1, 1.0])
def test_etf_loss_equals_brute_at_simplex_etf(k, n_per, tau):
    counts = [n_per] * k
    labels = np.repeat(np.arange(k), counts)
    u = _etf_vectors(k)
    gram = u @ u.T
    np.testing.assert_allclose(gram[~np.eye(k, dtype=bool)], -1.0 / (k - 1), atol=1e-14)
    want = brute_scl_loss(u[labels], labels, tau)
    assert ufm.etf_loss(counts, tau) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("counts", IMBALANCED)
def test_etf_loss_imbalanced_equals_brute(counts):
    k = len(counts)
    labels = np.repeat(np.arange(k), counts)
    u = _etf_vectors(k)
    assert ufm.etf_loss(counts, 0.1) == pytest.approx(brute_scl_loss(u[labels], labels, 0.1), rel=1e-10)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("tau", [0.02, 0.1, 1.0])
def test_collapsed_loss_random_class_gram(seed, tau):
    rng = np.random.default_rng(600 + seed)
    k = int(rng.integers(2, 6))
    d = int(rng.integers(1, 6))
    counts = [int(c) for c in rng.integers(2, 8, size=k)]
    labels = np.repeat(np.arange(k), counts)
    u = unit_rows(rng.normal(size=(k, d)))
    a = u @ u.T
    want = brute_scl_loss(u[labels], labels, tau)
    assert ufm.collapsed_loss(counts, tau, a) == pytest.approx(want, rel=1e-10)
    # permuting the samples does not change the brute value (labels travel with rows)
    perm = rng.permutation(labels.size)
    assert brute_scl_loss(u[labels][perm], labels[perm], tau) == pytest.approx(want, rel=1e-12)


def test_of_is_below_etf_for_imbalanced_under_any_tau():
    """Sanity of the closed forms' ordering: both are brute values, the OF has orthogonal
    (cos 0) negatives, the ETF has cos -1/(k-1) < 0 negatives, so the ETF loss is lower."""
    for counts in IMBALANCED:
        for tau in (0.05, 0.1, 1.0):
            assert ufm.etf_loss(counts, tau) < ufm.of_loss(counts, tau)


@pytest.mark.parametrize("counts", [[1, 3], [3], [2, 0, 2]])
def test_closed_forms_reject_bad_counts(counts):
    with pytest.raises(ValueError):
        ufm.of_loss(counts, 0.1)
