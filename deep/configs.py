"""Training configuration (a frozen dataclass) and per-data-set defaults; no code paths here.

Defaults follow the papers' setup (DESIGN.md section 7) where it fits the data set: SGD with
momentum 0.9, lr 0.1, weight decay 5e-4, lr x0.1 at 116/350 and 232/350 of the epochs, batch
size 50, tau 0.1, STEP imbalance with rho 0.5, random-crop (pad 4) augmentation, two views.

Per data set (``DATASET_DEFAULTS``): ``n_maj`` (majority class size), ``epochs`` and whether
a horizontal flip is label-preserving (not for digits).

>>> cfg = resolve(TrainConfig(dataset="digits"))
>>> cfg.n_maj, cfg.epochs, cfg.flip
(130, 100, False)
>>> TrainConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["TrainConfig", "DATASET_DEFAULTS", "DATASETS", "LOSSES", "DTYPES", "CONVS", "resolve", "resolve_conv"]

DATASETS = ("digits", "mnist", "fashionmnist", "cifar10")
#: The architecture registry's names (``deep.models.ARCHS`` holds the presets under exactly these
#: keys, checked on import); here so that ``--help`` needs no Flax.
ARCHITECTURES = ("resnet18", "densenet40", "resnet-small", "resnet-tiny", "densenet-tiny")
LOSSES = ("scl", "ce")
DTYPES = ("float32", "bfloat16")
CONVS = ("auto", "xla", "dotgrad", "matmul")  # convolution implementation, see deep.models

# n_maj: majority-class size; epochs: default length; flip: horizontal flip preserves the label
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # digits: ~139 training images per class at test_fraction 0.2 -> n_maj 130 (R=10: n_min 13)
    "digits": {"n_maj": 130, "epochs": 100, "flip": False},
    "mnist": {"n_maj": 5000, "epochs": 350, "flip": False},
    "fashionmnist": {"n_maj": 5000, "epochs": 350, "flip": True},
    "cifar10": {"n_maj": 5000, "epochs": 350, "flip": True},
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (``None`` = the data set's default).

    Random choices: the data subset, model init, batch order and augmentation all derive
    from ``seed`` (and the epoch/step); the digits train/test split from ``split_seed``.

    Test evaluation (NCM accuracy on the test set; the geometry is measured on the training
    subset every epoch): on the WHOLE test set every ``test_every`` epochs and always at the
    last epoch; on the other epochs on ``test_subset`` test images (a fixed seeded subset, the
    same for every epoch and seed), or not at all when it is 0 (``ncm_test_acc`` null).
    """

    arch: str = "resnet18"
    dataset: str = "digits"
    data_dir: str | None = None
    R: float = 10.0
    rho: float = 0.5
    n_maj: int | None = None
    relu: bool = True
    # the final features' activation (ufm.core.activations.ACTIVATIONS); None: relu / none by
    # ``relu``. Set, it decides, and ``relu`` is made to agree (True only for "relu").
    activation: str | None = None
    slope: float | None = None  # leaky_relu's alpha (default 0.01)
    loss: str = "scl"
    schedule: str = "shuffle"
    batch_size: int = 50
    drop_last: bool = False
    epochs: int | None = None
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[float, ...] = (116 / 350, 232 / 350)
    lr_decay: float = 0.1
    tau: float = 0.1
    reduction: str = "mean"
    seed: int = 0
    seeds: int = 1
    dtype: str = "float32"
    conv: str = "auto"
    crop_pad: int = 4
    flip: bool | None = None
    test_fraction: float = 0.2
    split_seed: int = 0
    eval_batch_size: int = 500
    test_every: int = 1
    test_subset: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["lr_milestones"] = list(self.lr_milestones)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of ``to_dict`` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        d = dict(d)
        if "lr_milestones" in d:
            d["lr_milestones"] = tuple(d["lr_milestones"])
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def for_seed(self, seed: int) -> "TrainConfig":
        """The single-seed config of one member of a vmapped run."""
        return dataclasses.replace(self, seed=seed, seeds=1)


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill the ``None`` fields from ``DATASET_DEFAULTS`` (raises on an unknown data set)."""
    if cfg.dataset not in DATASET_DEFAULTS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {cfg.dataset!r}")
    dflt = DATASET_DEFAULTS[cfg.dataset]
    changes = {name: dflt[name] for name in ("n_maj", "epochs", "flip")
               if getattr(cfg, name) is None}
    if cfg.activation is not None or cfg.slope is not None:
        from ufm.core.activations import check_activation

        name, slope = check_activation("relu" if cfg.activation is None else cfg.activation, cfg.slope)
        changes.update(activation=name, slope=slope, relu=name == "relu")
    return dataclasses.replace(cfg, **changes)


def resolve_conv(conv: str, devices: int = 1) -> str:
    """``"auto"``: ``"dotgrad"`` on ONE CPU device (``deep.conv``: faster weight gradients
    there), ``"xla"`` on accelerators and for data-parallel steps over several devices (whose
    batch-sharded weight gradients XLA's own convolution reduces across devices); any other
    name unchanged.

    >>> resolve_conv("matmul"), resolve_conv("auto", devices=4)
    ('matmul', 'xla')
    """
    if conv != "auto":
        return conv
    import jax

    return "dotgrad" if jax.default_backend() == "cpu" and devices == 1 else "xla"


def feature_activation(cfg: TrainConfig) -> tuple[str, float | None]:
    """``(name, slope)`` of the activation on the final features (``ufm.core.activations``).

    >>> feature_activation(TrainConfig(relu=False))
    ('none', None)
    """
    if cfg.activation is None:
        return ("relu" if cfg.relu else "none"), None
    return cfg.activation, cfg.slope
