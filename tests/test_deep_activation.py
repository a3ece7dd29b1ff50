"""``deep.train --activation``: the final features pass through the named activation, applied
to the same backbone output the ``none`` network returns (numpy / scipy references)."""

import numpy as np
import pytest

pytest.importorskip("flax")

import jax  # noqa: E402
from scipy.special import ndtr  # noqa: E402

from deep.configs import TrainConfig, feature_activation, resolve  # noqa: E402
from deep.models import make_model  # noqa: E402

REFERENCE = {
    "leaky_relu": lambda h: np.where(h >= 0, h, 0.1 * h),
    "gelu": lambda h: h * ndtr(h),
    "softplus": lambda h: np.logaddexp(0.0, h),
    "elu": lambda h: np.where(h > 0, h, np.expm1(np.minimum(h, 0.0))),
    "relu": lambda h: np.maximum(h, 0.0),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_features_are_the_activation_of_the_backbone_output(name):
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 16, 16, 1))
    plain = make_model("resnet-tiny", activation="none")
    variables = plain.init(jax.random.PRNGKey(1), x, train=False)
    h0, _ = plain.apply(variables, x, train=False)
    net = make_model("resnet-tiny", activation=name, slope=0.1 if name == "leaky_relu" else None)
    h, _ = net.apply(variables, x, train=False)  # same parameters: the activation is parameter-free
    h0 = np.asarray(h0, dtype=np.float64)
    assert h0.min() < 0 < h0.max()  # both signs: the activation matters
    np.testing.assert_allclose(np.asarray(h), REFERENCE[name](h0), rtol=2e-5, atol=1e-6)


def test_config_resolves_activation_and_relu_consistently():
    cfg = resolve(TrainConfig(activation="leaky_relu"))
    assert (cfg.activation, cfg.slope, cfg.relu) == ("leaky_relu", 0.01, False)
    assert feature_activation(resolve(TrainConfig(activation="relu"))) == ("relu", None)
    assert feature_activation(TrainConfig()) == ("relu", None)
    with pytest.raises(ValueError, match="slope"):
        resolve(TrainConfig(activation="gelu", slope=0.2))
    with pytest.raises(ValueError, match="activation"):
        resolve(TrainConfig(activation="tanh"))
