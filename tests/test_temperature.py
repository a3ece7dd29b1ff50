"""Issue 38, section 2: plain projected gradient descent against the temperature
(``ufm.solvers.gd``). References: autodiff of the project's loss at the OF point for the KKT
slopes' closed form, and the closed form L*_OF for where the runs end."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.core.loss import scl_loss
from ufm.solvers.gd import gd_epochs, of_kkt_slopes


@pytest.mark.parametrize("counts, tau", [([5, 3, 2], 0.5), ([8, 8, 2, 2], 0.1), ([4, 4], 1.0), ([6, 3, 3], 0.05)])
def test_kkt_slopes_closed_form_equals_autodiff_at_the_of(counts, tau):
    """Every entry of the gradient of L at the collapsed OF (d = k) against the closed form."""
    k = len(counts)
    labels = ufm.labels_from_counts(counts)
    with jax.enable_x64(True):
        z = jnp.asarray(np.eye(k)[labels])
        g = np.asarray(jax.grad(lambda a: scl_loss(a, jnp.asarray(labels), tau, normalize=False))(z))
    s = of_kkt_slopes(counts, tau)
    # autodiff forms the radial entry as a difference of O(N / tau) terms: its rounding is absolute
    radial_tol = 1e-13 * sum(counts) / tau
    for i, c in enumerate(labels):
        for j in range(k):
            if j == c:  # the radial component <g_i, z_i> on the diagonal
                assert abs(g[i, j] - s[c, c]) <= radial_tol, (i, g[i, j], s[c, c])
            else:  # a sum of positive softmax terms: relative accuracy
                assert math.isclose(g[i, j], s[c, j], rel_tol=1e-9), (i, j, g[i, j], s[c, j])
    off = s[~np.eye(k, dtype=bool)]
    assert np.all(off > 0)  # a strict vertex: every pinned coordinate has a positive slope


def test_slopes_shrink_like_exp_minus_one_over_tau():
    """g_min * e^{1/tau} * tau tends to a constant as tau -> 0 (the module docstring's rate)."""
    counts = [20, 20, 2, 2]
    scaled = [of_kkt_slopes(counts, t)[~np.eye(4, dtype=bool)].min() * t * math.exp(1 / t)
              for t in (0.02, 0.01, 0.005)]
    assert all(x > 0 and math.isfinite(x) for x in scaled)
    assert abs(scaled[-1] / scaled[-2] - 1) < 1e-2


def test_gd_reaches_the_of_and_its_closed_form_value():
    counts = [6, 6, 3]
    r = gd_epochs(counts, 0.5, d=6, seed=0, max_epochs=5000)
    assert r["epochs"][0.1] is not None and r["epochs"][0.01] is not None
    assert r["epochs"][0.1] <= r["epochs"][0.01] <= r["epochs_run"]
    assert r["delta_gm_of"] <= 0.01
    of = ufm.of_loss(counts, 0.5)
    assert r["of_loss"] == of and of <= r["loss"] <= of * (1 + 1e-3)


def test_smaller_tau_is_slower_as_the_slopes_predict():
    """Same start, same step: the epochs to Delta_GM_OF <= 0.01 grow as tau falls from 0.3 to
    0.12, in the direction 1 / g_min predicts; at tau = 0.05 (1 / (step g_min) ~ 1e6 epochs)
    2,000 epochs do not get there."""
    counts = [8, 8, 3, 3]
    e = {t: gd_epochs(counts, t, d=8, seed=1, max_epochs=20_000)["epochs"][0.01] for t in (0.3, 0.12)}
    assert e[0.3] is not None and e[0.12] is not None and e[0.12] > e[0.3]
    slow = gd_epochs(counts, 0.05, d=8, seed=1, max_epochs=2000)
    assert slow["epochs"][0.01] is None
    g = {t: of_kkt_slopes(counts, t)[~np.eye(4, dtype=bool)].min() for t in (0.3, 0.12, 0.05)}
    assert g[0.3] > g[0.12] > g[0.05] and 1 / (0.05 * g[0.05]) > 1e5


@pytest.mark.parametrize("kwargs, match", [
    ({"tau": 0.0}, "tau"), ({"step": 0.0}, "step"), ({"step": float("nan")}, "step"),
    ({"d": 2}, "d"), ({"thresholds": [0.0]}, "thresholds"), ({"max_epochs": 0}, "max_epochs"),
    ({"seed": -1}, "seed"),
])
def test_bad_input_names_the_argument(kwargs, match):
    args = {"tau": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        gd_epochs([3, 3, 3], **args)


def test_figure_script_quick(tmp_path):
    """``python -m figures.temperature --quick``: the PNG and the JSON, whose closed-form scale
    matches the slopes recomputed here and whose tau = 0.5 runs reach the OF."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "figures.temperature", "--quick", "--seeds", "1",
                          "--max-epochs", "3000", "--out", str(tmp_path)],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "fig9_temperature.png").stat().st_size > 1000
    data = json.loads((tmp_path / "temperature.json").read_text())
    (rows,) = data["problems"].values()
    counts = ufm.step_counts(10, 10, n_min=2)
    for row in rows:
        g = of_kkt_slopes(counts, row["tau"])[~np.eye(10, dtype=bool)].min()
        assert math.isclose(row["scale_epochs"], 1 / (0.05 * g), rel_tol=1e-12)
    assert rows[-1]["tau"] == 0.5 and rows[-1]["epochs_0.01"][0] is not None
    (tmp_path / "fig9_temperature.png").unlink()
    again = subprocess.run([sys.executable, "-m", "figures.temperature", "--replot", "--out", str(tmp_path)],
                           cwd=root, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and (tmp_path / "fig9_temperature.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "figures.temperature", "--seeds", "0"],
                         cwd=root, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--seeds" in bad.stderr.strip().splitlines()[-1]
