"""The API contract of the core math functions (ufm.core.loss, ufm.core.labels, ufm.core.geometry,
ufm.core.closed_forms, ufm.core.checks): a bad tau, labels, batch index or feature shape is a ValueError
that names the argument (never a silent NaN, a clamped index or an empty class); traced values
are excepted; correct inputs still agree with the closed forms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.core.checks import check_labels, is_traced
from reference import brute_scl_loss

Y = np.array([0, 0, 1, 1, 2, 2])
TAU = 0.1


def _h(seed: int = 0, n: int = 6, d: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _losses():
    """(name, call(h_or_g, labels, **kw)) for the loss functions that take labels and tau."""
    return [
        ("scl_loss", lambda h, y, **kw: ufm.scl_loss(h, y, **kw)),
        ("gram_loss", lambda h, y, **kw: ufm.gram_loss(np.asarray(h) @ np.asarray(h).T, y, **kw)),
    ]


# ----------------------------------------------------------------------------- tau


@pytest.mark.parametrize("tau", [jnp.array(0.0), jnp.array(-0.1), np.array(0.0), np.array(-0.1),
                                 jnp.array(jnp.nan), np.array(np.inf), jnp.array([0.1]), jnp.array(True)])
@pytest.mark.parametrize("name,fn", _losses())
def test_concrete_array_tau_is_checked(name, fn, tau):
    """Before, a JAX array tau skipped the check: tau = 0 gave NaN and tau = -0.1 a finite
    57.49."""
    with pytest.raises(ValueError, match=r"tau must be a finite number > 0"):
        fn(_h(), Y, tau=tau)


def test_concrete_array_tau_gives_the_float_value():
    h = _h()
    want = float(ufm.scl_loss(h, Y, 0.25))
    assert float(ufm.scl_loss(h, Y, jnp.array(0.25))) == pytest.approx(want, rel=1e-6)
    assert float(ufm.scl_loss(h, Y, np.array(0.25))) == pytest.approx(want, rel=1e-6)
    assert float(ufm.scl_loss(h, Y, np.float32(0.25))) == pytest.approx(want, rel=1e-6)


def test_traced_tau_is_not_checked():
    """Inside jit/grad/vmap tau is a tracer: no value to check, documented as such."""
    h = _h()
    want = float(ufm.scl_loss(h, Y, 0.3))
    assert float(jax.jit(lambda t: ufm.scl_loss(h, Y, t))(0.3)) == pytest.approx(want, rel=1e-6)
    vm = jax.vmap(lambda t: ufm.scl_loss(h, Y, t))(jnp.array([0.3, 0.6]))
    assert float(vm[0]) == pytest.approx(want, rel=1e-6)
    assert np.isfinite(float(jax.grad(lambda t: ufm.scl_loss(h, Y, t))(0.3)))
    for fn in (ufm.scl_loss, ufm.gram_loss):
        assert "traced values are not checked" in " ".join(fn.__doc__.lower().split())


def test_is_traced_sees_tracers_only():
    seen = []
    jax.jit(lambda x: seen.append(is_traced(x)) or x)(jnp.ones(2))
    assert seen == [True]
    assert not is_traced(jnp.ones(2)) and not is_traced(np.ones(2)) and not is_traced(0.1)


# ----------------------------------------------------------------------------- labels with gaps


@pytest.mark.parametrize("labels", [[0, 0, 5, 5, 9, 9], [0, 0, 1, 1, 3, 3]])
def test_labels_that_skip_a_class_are_errors(labels):
    """Before, [0,0,5,5,9,9] created 7 empty classes with zero means (nc1 72.08 instead of
    1.26)."""
    z = _h()
    calls = [
        lambda: ufm.scl_loss(z, labels),
        lambda: ufm.gram_loss(z @ z.T, labels),
        lambda: ufm.class_means(z, labels),
        lambda: ufm.class_mean_gram(z, labels),
        lambda: ufm.nc1(z, labels),
        lambda: ufm.counts_from_labels(labels),
        lambda: ufm.batched_of_loss(labels, [[0, 1, 2, 3, 4, 5]], TAU),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"labels must be integers 0\.\.k-1 with every class present"):
            call()
    with pytest.raises(ValueError, match=r"labels .*\[0, 1, 3\].*class 2 absent"):
        check_labels([0, 1, 3])


def test_relabelled_labels_give_the_intended_values():
    z = _h(1)
    gapped, dense = [0, 0, 5, 5, 9, 9], [0, 0, 1, 1, 2, 2]
    want = ufm.nc1(z, dense)
    assert 0 < want < 10  # the review's 1.26-like value, not the empty-class 72.08
    # with num_classes / k the loss (which only compares labels) is the same ...
    assert float(ufm.scl_loss(z, gapped, num_classes=10)) == pytest.approx(
        float(ufm.scl_loss(z, dense)), rel=1e-6)
    assert float(ufm.gram_loss(z @ z.T, gapped, num_classes=10)) == pytest.approx(
        float(ufm.gram_loss(z @ z.T, dense)), rel=1e-6)
    assert ufm.batched_of_loss(gapped, [[0, 1, 2, 3], [2, 3, 4, 5]], TAU, num_classes=10) == pytest.approx(
        ufm.batched_of_loss(dense, [[0, 1, 2, 3], [2, 3, 4, 5]], TAU), rel=1e-12)
    # ... class means and counts give the empty classes a zero mean / a zero count ...
    means = ufm.class_means(z, gapped, 10)
    assert means.shape == (10, 3) and np.all(means[[1, 2, 3, 4, 6, 7, 8]] == 0)
    assert np.allclose(means[[0, 5, 9]], ufm.class_means(z, dense), atol=0)
    assert ufm.counts_from_labels(gapped, k=10).tolist() == [2, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    # ... and nc1 / class_mean_gram, which need every class, say which one is empty.
    with pytest.raises(ValueError, match=r"labels leave class 1 of k = 10 empty; nc1"):
        ufm.nc1(z, gapped, 10)
    with pytest.raises(ValueError, match=r"labels leave class 1 of k = 10 empty; class_mean_gram"):
        ufm.class_mean_gram(z, gapped, 10)


def test_num_classes_bounds_the_labels():
    z = _h()
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1 for num_classes = 2, got label 2"):
        ufm.scl_loss(z, Y, num_classes=2)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1 for k = 2"):
        ufm.nc1(z, Y, 2)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1 for k = 2"):
        ufm.counts_from_labels(Y, k=2)
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 1"):
        ufm.scl_loss(z, Y, num_classes=0)
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 1"):
        ufm.batched_of_loss(Y, [[0, 1]], TAU, num_classes=2.5)


def test_traced_labels_are_not_checked():
    """A mini-batch inside jit may miss classes: traced labels are used as they are."""
    z = _h()
    gapped = jnp.array([0, 0, 5, 5, 9, 9])
    got = float(jax.jit(lambda y: ufm.scl_loss(z, y))(gapped))
    assert got == pytest.approx(float(ufm.scl_loss(z, Y)), rel=1e-6)


# ----------------------------------------------------------------------------- batch indices


@pytest.mark.parametrize("name,fn", _losses())
def test_out_of_range_and_float_batch_indices(name, fn):
    """Before, a JAX array of batches was passed unchecked (99 clamped to 5) and a float index
    1.9 became 1."""
    z = _h()
    with pytest.raises(ValueError, match=r"batches hold index 99, outside \[0, 6\)"):
        fn(z, Y, batches=jnp.array([[0, 1, 99, 2]]))
    with pytest.raises(ValueError, match=r"batches hold index -3, outside \[0, 6\)"):
        fn(z, Y, batches=np.array([[0, 1, -3, 2]]))
    with pytest.raises(ValueError, match=r"batches must hold integer sample indices in \[0, 6\)"):
        fn(z, Y, batches=[[0, 1.9, 2]])
    with pytest.raises(ValueError, match=r"batches must hold integer sample indices in \[0, 6\)"):
        fn(z, Y, batches=np.array([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"batches\[0\] holds index -1, outside \[0, 6\)"):
        fn(z, Y, batches=[[0, 1, -1]])  # -1 pads only in the padded array form


def test_batched_of_loss_checks_its_batches():
    with pytest.raises(ValueError, match=r"batches\[1\] holds index 4, outside \[0, 4\)"):
        ufm.batched_of_loss([0, 0, 1, 1], [[0, 1], [2, 4]], TAU)
    with pytest.raises(ValueError, match=r"batches must hold integer"):
        ufm.batched_of_loss([0, 0, 1, 1], [[0, 1.9]], TAU)
    with pytest.raises(ValueError, match=r"batches must be a list of index lists or a 2-D"):
        ufm.batched_of_loss([0, 0, 1, 1], np.array([0, 1, 2, 3]), TAU)


def test_padding_keeps_working():
    z = _h()
    lists = [[0, 1, 2, 3], [2, 3, 4], [5]]
    padded = ufm.core.loss.pad_batches(lists, 6)
    assert padded.tolist() == [[0, 1, 2, 3], [2, 3, 4, -1], [5, -1, -1, -1]]
    want = brute_scl_loss(z, Y, TAU, batches=lists)
    for b in (lists, padded, jnp.asarray(padded)):
        assert float(ufm.scl_loss(z, Y, TAU, batches=b)) == pytest.approx(want, rel=1e-5)
    traced = jax.jit(lambda b: ufm.scl_loss(z, Y, TAU, batches=b))(jnp.asarray(padded))
    assert float(traced) == pytest.approx(want, rel=1e-5)
    assert ufm.batched_of_loss(Y, padded, TAU) == pytest.approx(ufm.batched_of_loss(Y, lists, TAU), rel=1e-12)


# ----------------------------------------------------------------------------- fractional labels


@pytest.mark.parametrize("labels", [[0.5, 0.5, 1.5, 1.5, 2.5, 2.5], [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]])
def test_float_labels_are_errors(labels):
    """Before, [0.5, 0.5, 1.5, 1.5] gave loss 0.0. Float labels are rejected even when exactly
    integral (one rule everywhere: cast them to int first)."""
    z = _h()
    calls = [
        lambda: ufm.scl_loss(z, labels),
        lambda: ufm.scl_loss(z, jnp.asarray(labels)),
        lambda: ufm.gram_loss(z @ z.T, labels),
        lambda: ufm.class_mean_gram(z, labels),
        lambda: ufm.nc1(z, labels),
        lambda: ufm.counts_from_labels(labels),
        lambda: ufm.batched_of_loss(labels, [[0, 1, 2, 3]], TAU),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"labels must be non-negative integers"):
            call()


# ----------------------------------------------------------------------------- feature width


def test_zero_width_features_are_errors():
    """Before, scl_loss(zeros((6, 0)), y) returned 9.657."""
    with pytest.raises(ValueError, match=r"^h must be N x d with N >= 1 and d >= 1"):
        ufm.scl_loss(jnp.zeros((6, 0)), Y)
    with pytest.raises(ValueError, match=r"^h must be N x d"):
        ufm.scl_loss(jnp.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match=r"^g must be N x N with N >= 1"):
        ufm.gram_loss(jnp.zeros((0, 0)), np.zeros(0, dtype=int))
    for fn in (ufm.class_means, ufm.class_mean_gram, ufm.nc1):
        with pytest.raises(ValueError, match=r"^z must have d >= 1 columns"):
            fn(np.zeros((6, 0)), Y)


# ----------------------------------------------------------------------------- low-level errors


def test_bad_types_name_their_argument():
    """String labels, a 1-D batches array and a one-class ETF used to end in JAX/NumPy errors
    or a ZeroDivisionError that named no argument."""
    z = _h()
    for labels in (["a", "a", "b", "b", "c", "c"], [True, True, False, False, True, False]):
        with pytest.raises(ValueError, match=r"^labels must be non-negative integers"):
            ufm.scl_loss(z, labels)
        with pytest.raises(ValueError, match=r"^labels must be non-negative integers"):
            ufm.nc1(z, labels)
    for batches in (jnp.array([0, 1, 2]), np.array([0, 1, 2]), [0, 1, 2], "012"):
        with pytest.raises(ValueError, match=r"^batches must be a list of index lists or a 2-D padded int array"):
            ufm.scl_loss(z, Y, batches=batches)
    with pytest.raises(ValueError, match=r"^batches is empty"):
        ufm.scl_loss(z, Y, batches=np.zeros((0, 3), dtype=int))
    for fn in (ufm.etf_loss, ufm.of_loss):
        with pytest.raises(ValueError, match=r"^counts needs at least 2 classes \(a 1-D list of k >= 2"):
            fn([5], TAU)
        with pytest.raises(ValueError, match=r"^counts must be integers >= 2"):
            fn(["a", "b"], TAU)
    with pytest.raises(ValueError, match=r"^class_gram must be a finite real 2 x 2 matrix"):
        ufm.collapsed_loss([3, 3], TAU, np.eye(3))


def test_error_messages_are_one_line():
    z = _h()
    calls = [lambda: ufm.scl_loss(z, [0, 0, 5, 5, 9, 9]), lambda: ufm.scl_loss(z, Y, jnp.array(0.0)),
             lambda: ufm.scl_loss(z, Y, batches=[[0, 99]]), lambda: ufm.etf_loss([5], TAU),
             lambda: ufm.nc1(z, list(range(0, 60, 10)))]
    for call in calls:
        with pytest.raises(ValueError) as err:
            call()
        assert "\n" not in str(err.value) and len(str(err.value)) < 200


# ----------------------------------------------------------------------------- zero rows


def test_zero_rows_are_well_defined_not_nan():
    """normalize=True keeps a zero row as the zero vector (all its cosines 0): the loss and
    its gradient are finite and equal the loss with that row's cosines set to 0."""
    h = np.eye(3)[Y] + 0.1
    h[2] = 0.0
    value = float(ufm.scl_loss(h, Y, TAU))
    grad = np.asarray(jax.grad(lambda x: ufm.scl_loss(x, Y, TAU))(jnp.asarray(h)))
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(grad[2] == 0)
    z = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-300)
    assert value == pytest.approx(brute_scl_loss(z, Y, TAU, normalize=False), rel=1e-5)
    assert "zero row" in ufm.scl_loss.__doc__


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("counts", [[2, 2], [3, 5, 4], [6, 2, 2, 3]])
def test_values_at_collapsed_points_match_the_closed_forms(counts):
    labels = ufm.labels_from_counts(counts)
    k = len(counts)
    of = np.eye(k)[labels]
    with jax.enable_x64(True):
        assert float(ufm.scl_loss(jnp.asarray(of), labels, TAU)) == pytest.approx(ufm.of_loss(counts, TAU), rel=1e-10)
        assert float(ufm.gram_loss(jnp.asarray(of @ of.T), labels, jnp.array(TAU))) == pytest.approx(
            ufm.of_loss(counts, TAU), rel=1e-10)
        vertices = np.linalg.cholesky(ufm.etf_gram(k) + 1e-12 * np.eye(k))  # rows: ETF vertices
        etf = vertices[labels]
        assert float(ufm.scl_loss(jnp.asarray(etf), labels, np.float64(TAU))) == pytest.approx(
            ufm.etf_loss(counts, TAU), rel=1e-8)
    assert ufm.batched_of_loss(labels, [list(range(len(labels)))], TAU) == pytest.approx(
        ufm.of_loss(counts, TAU), rel=1e-12)
    assert ufm.delta_gm(ufm.class_mean_gram(of, labels), "of") == pytest.approx(0.0, abs=1e-12)
    assert ufm.nc1(of, labels) == pytest.approx(0.0, abs=1e-12)


def test_checks_module_imports_without_jax():
    code = ("import sys; sys.modules['jax'] = None; import ufm.core.checks as c; "
            "print(c.check_labels([0, 1, 1])[1], c.is_traced(1.0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["2", "False"]
