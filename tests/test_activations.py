"""The UFM with an activation (issue 38): ``z = a(h)/||a(h)||``, ``||h|| = r``.

Every check is against an independent reference: the closed form ``L*_OF`` (ReLU), the no-ReLU
optimum's proven bound from the relaxation (``ufm.certify(counts, tau, nonneg=False)``; the
activations that reach every direction), closed-form brackets written out here (softplus), the
brute-force loss of ``tests/reference.py`` at the returned point, and the activations
re-implemented here in NumPy/SciPy (reachability by brute force on random points).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import ndtr

import ufm
from reference import brute_scl_loss
from ufm.cli import solve_cmd
from ufm.core import activations as act
from ufm.solvers.activation import preimage, solve_activation

COUNTS = [6, 6, 2, 2]
TAU = 0.1
LABELS = np.repeat(np.arange(len(COUNTS)), COUNTS)


def a_np(h, name, slope=0.01):
    """The activations, written again from their definitions (NumPy / SciPy)."""
    h = np.asarray(h, dtype=np.float64)
    return {"relu": lambda: np.maximum(h, 0.0),
            "leaky_relu": lambda: np.where(h >= 0, h, slope * h),
            "elu": lambda: np.where(h > 0, h, np.expm1(np.minimum(h, 0.0))),
            "gelu": lambda: h * ndtr(h),
            "softplus": lambda: np.logaddexp(0.0, h),
            "none": lambda: h}[name]()


def direction(w):
    w = w / np.max(np.abs(w), axis=-1, keepdims=True)
    return w / np.linalg.norm(w, axis=-1, keepdims=True)


def entry_bound(r, d):  # Proposition 3, written out: softplus(-r) / (r + sqrt(d) log 2)
    return math.log1p(math.exp(-r)) / (r + math.sqrt(d) * math.log(2.0))


@pytest.fixture(scope="module")
def sphere_bound():
    """The no-ReLU optimum's proven lower bound (reduced relaxation, no solver point)."""
    bound = ufm.certify(COUNTS, TAU, nonneg=False)
    assert bound.valid
    return float(bound.lower_bound)


def _check_point(res, name, r, slope=None):
    """What any result must satisfy: ||h_i|| = r, z = a(h)/||a(h)||, loss = L(z) (brute force)."""
    assert np.allclose(np.linalg.norm(res.h, axis=1), r, rtol=1e-12)
    assert np.allclose(res.z, direction(a_np(res.h, name, slope or 0.01)), atol=1e-12)
    assert math.isclose(res.loss, brute_scl_loss(res.z, LABELS, TAU, normalize=False), rel_tol=1e-11)


# ----------------------------------------------------------------------------- the optima


def test_relu_is_the_of_closed_form():
    res = solve_activation(COUNTS, "relu", radius=3.0, tau=TAU, starts=1)
    _check_point(res, "relu", 3.0)
    of = ufm.of_loss(COUNTS, TAU)
    assert abs(res.loss - of) <= 1e-9 * of
    assert res.status == "optimal" and res.certificate["certified"]
    assert res.activation["certificate_applies"] and res.metrics["delta_gm_of"] < 1e-6


@pytest.mark.parametrize("name, slope, r", [
    ("none", None, 1.0),
    ("leaky_relu", 0.1, 0.5),
    ("leaky_relu", 0.1, 30.0),
    ("elu", None, 0.05),
    ("elu", None, 20.0),
    ("gelu", None, 0.05),
    ("gelu", None, 8.0),
])
def test_sphere_reaching_activations_equal_the_certified_no_relu_optimum(sphere_bound, name, slope, r):
    """Theorems 1 and 2: every direction is reachable, so the optimum is the no-ReLU one at every
    r, not only as r -> 0 (for GELU / ELU the issue expected an r-dependent family)."""
    res = solve_activation(COUNTS, name, radius=r, slope=slope, tau=TAU, starts=1)
    _check_point(res, name, r, slope)
    assert res.loss >= sphere_bound * (1 - 1e-12)  # the bound is proven
    assert (res.loss - sphere_bound) / sphere_bound <= 1e-6
    assert res.status == "optimal" and res.certificate["certified"]
    assert res.loss < ufm.of_loss(COUNTS, TAU) * (1 - 1e-5)  # below the OF: negative entries used
    assert res.z.min() < -0.05
    if name == "leaky_relu":  # also plain local search from a random start, no warm start
        assert (res.activation["local_search"]["best_random_loss"] - sphere_bound) / sphere_bound <= 1e-6


def softplus_bound(r, d):
    """Every inner product >= g0 = d b^2, so each anchor pays >= log(n_c - 1 + (N - n_c)
    e^{(g0 - 1)/tau}) (Jensen over the positives, whose mean inner product is <= 1)."""
    g0 = d * entry_bound(r, d) ** 2
    n = np.array(COUNTS, dtype=float)
    return float(np.sum(n * np.log(n - 1 + (n.sum() - n) * np.exp((g0 - 1) / TAU))))


def test_softplus_bracket_and_its_approach_to_the_of(sphere_bound):
    """Proven: L*_OF < softplus_bound(r) <= L_softplus(r) <= the loss of the points h_c = r e_c
    (both written out here); measured: the loss decreases towards L*_OF on three radii (the
    conjectured monotone trend)."""
    of = ufm.of_loss(COUNTS, TAU)
    k = d = len(COUNTS)
    losses = []
    for r in (1.0, 4.0, 16.0):
        res = solve_activation(COUNTS, "softplus", radius=r, tau=TAU, starts=2)
        _check_point(res, "softplus", r)
        v = direction(a_np(r * np.eye(k, d), "softplus"))
        upper = brute_scl_loss(v[LABELS], LABELS, TAU, normalize=False)
        assert of <= softplus_bound(r, d) <= res.loss <= upper * (1 + 1e-12) and of < res.loss
        assert of < softplus_bound(r, d) or r > 10  # strict, until d b^2 drops below float64's eps
        assert res.loss > sphere_bound
        assert res.z.min() >= entry_bound(r, d) * (1 - 1e-9)
        assert res.certificate is None and not res.activation["certificate_applies"]
        assert res.optimum is None
        assert res.activation["lower_bound"] == pytest.approx(softplus_bound(r, d), rel=1e-12)
        losses.append(res.loss)
    assert losses[0] > losses[1] > losses[2] > of
    assert losses[2] - of < 1e-3 * (losses[0] - of)


# ----------------------------------------------------------------------------- reachable directions


@pytest.mark.parametrize("r", [0.01, 0.5, 3.0, 30.0])
@pytest.mark.parametrize("d", [4, 10])
def test_softplus_entries_stay_above_the_bound(r, d):
    rng = np.random.default_rng(int(r * 100) + d)
    h = rng.standard_normal((20_000, d))
    h[:d] = -np.eye(d)  # one coordinate at -r, the rest 0
    h[d:2 * d] = np.where(np.eye(d, dtype=bool), -1.0, 1.0)  # one negative, the others large
    h[2 * d:3 * d] = np.where(np.eye(d, dtype=bool), -3.0, 1.0)
    h = r * h / np.linalg.norm(h, axis=1, keepdims=True)
    z = direction(a_np(h, "softplus"))
    assert z.min() >= act.softplus_entry_bound(r, d) == pytest.approx(entry_bound(r, d), rel=1e-14)
    assert z.min() >= entry_bound(r, d)
    assert np.all(z @ z[:500].T >= d * entry_bound(r, d) ** 2)  # so no two are orthogonal


@pytest.mark.parametrize("name, slope", [("leaky_relu", 0.2), ("elu", None), ("gelu", None)])
@pytest.mark.parametrize("r", [0.05, 1.0, 10.0, 30.0])
def test_every_direction_is_reached(name, slope, r):
    """Brute force: random target directions (and -e_1, -1/sqrt(d)) are reached exactly by a
    pre-activation of norm r, the activation applied by the NumPy definition above."""
    d = 6
    rng = np.random.default_rng(7)
    u = rng.standard_normal((10, d))
    u[0], u[1], u[2] = -np.eye(d)[0], -np.ones(d), np.eye(d)[1] - 0.3 * np.eye(d)[2]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    h = preimage(u, name, r, slope)
    assert np.allclose(np.linalg.norm(h, axis=1), r, rtol=1e-12)
    assert np.max(np.abs(direction(a_np(h, name, slope or 0.01)) - u)) < 1e-9


def test_gelu_and_elu_minimum_bounds_a_not_the_direction():
    """``a >= min a`` bounds the activation's value, not the normalized entry: h = -r e_1 gives
    z = -e_1 at every r (the issue's "bounded negative entries" does not restrict directions)."""
    for name in ("gelu", "elu"):
        for r in (0.3, 5.0, 30.0):
            z = direction(a_np(-r * np.eye(3)[:1], name))
            assert np.allclose(z, -np.eye(3)[:1])
    x = np.linspace(-10, 5, 200_001)
    assert np.min(a_np(x, "gelu")) == pytest.approx(act.GELU_MIN, abs=1e-9)
    assert x[np.argmin(a_np(x, "gelu"))] == pytest.approx(act.GELU_ARGMIN, abs=1e-4)


def test_relu_reaches_exactly_the_orthant():
    rng = np.random.default_rng(3)
    h = rng.standard_normal((5000, 5))
    assert direction(a_np(h, "relu")[np.any(h > 0, axis=1)]).min() >= 0
    u = np.abs(rng.standard_normal((50, 5))) * (rng.random((50, 5)) < 0.6)
    u = u[np.any(u > 0, axis=1)]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    assert np.allclose(direction(a_np(preimage(u, "relu", 7.0), "relu")), u, atol=1e-15)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="slope"):
        solve_activation(COUNTS, "gelu", slope=0.1)
    with pytest.raises(ValueError, match="radius"):
        solve_activation(COUNTS, "elu", radius=0.0)
    with pytest.raises(ValueError, match="activation"):
        solve_activation(COUNTS, "tanh")
    with pytest.raises(ValueError, match="softplus"):
        preimage(np.eye(2), "softplus", 1.0)


# ----------------------------------------------------------------------------- command line


def _run(argv, capsys):
    rc = solve_cmd.main(argv)
    return rc, capsys.readouterr().out


def test_cli_text_and_json(capsys, sphere_bound):
    base = ["--counts", ",".join(map(str, COUNTS)), "--tau", str(TAU), "--seed", "0"]
    rc, out = _run(base + ["--activation", "leaky_relu", "--slope", "0.1", "--radius", "2"], capsys)
    assert rc == 0
    assert "activation leaky_relu, slope 0.1" in out and "certificate CERTIFIED" in out
    loss = float(next(line.split()[1] for line in out.splitlines() if line.startswith("loss ")))
    assert abs(loss - sphere_bound) <= 1e-6 * sphere_bound

    rc, out = _run(base + ["--activation", "softplus", "--radius", "16", "--json"], capsys)
    report = json.loads(out)
    a = report["activation"]
    assert rc == 0 and report["status"] == "converged" and "certificate" not in report
    assert a["name"] == "softplus" and a["radius"] == 16.0 and not a["certificate_applies"]
    assert ufm.of_loss(COUNTS, TAU) < report["loss"] <= a["closed_form_upper_bound"]
    assert a["sphere_lower_bound"] <= sphere_bound * (1 + 1e-9)

    rc, out = _run(base + ["--activation", "relu", "--json"], capsys)
    rc2, out2 = _run(base + ["--nonneg", "--json"], capsys)
    assert rc == rc2 == 0 and json.loads(out)["loss"] == json.loads(out2)["loss"]
    assert json.loads(out)["loss"] == pytest.approx(ufm.of_loss(COUNTS, TAU), rel=1e-9)


@pytest.mark.parametrize("extra, flag", [
    (["--activation", "gelu", "--nonneg"], "--activation"),
    (["--activation", "softplus", "--batch-size", "4"], "--activation"),
    (["--activation", "elu", "--tau-path", "0.2"], "--activation"),
    (["--activation", "tanh"], "--activation"),
    (["--slope", "0.1"], "--slope"),
    (["--activation", "elu", "--slope", "0.1"], "--slope"),
    (["--activation", "leaky_relu", "--slope", "1"], "--slope"),
    (["--radius", "2"], "--radius"),
    (["--activation", "gelu", "--radius", "0"], "--radius"),
    (["--activation", "gelu", "--radius", "2000"], "--radius"),
])
def test_cli_usage_errors(capsys, extra, flag):
    with pytest.raises(SystemExit) as exc:
        solve_cmd.main(["--counts", "4,4,2"] + extra)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert f"argument {flag}" in err


def test_cli_choices_are_the_library_names():
    choices = next(a.choices for a in solve_cmd.build_parser()._actions if a.dest == "activation")
    assert tuple(choices) == tuple(act.ACTIVATIONS)
