"""Image data sets (host side, NumPy): loaders, the train/test pool, STEP subsampling.

Every data set becomes ``uint8`` images ``(n, 32, 32, c)`` (NHWC) with int32 labels 0..9:

- ``digits``: scikit-learn's 1,797 real 8x8 digits (values 0..16), bilinearly upsampled 4x to
  32x32 (half-pixel centres) and scaled to 0..255; ONE channel (a gray image carries nothing
  in three copies; the stem conv takes any channel count). Train/test split: stratified,
  ``test_fraction`` of every class, seeded by ``split_seed``.
- ``mnist`` / ``fashionmnist``: the official IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
  optionally ``.gz``) in ``data_dir``; 28x28 zero-padded to 32x32, one channel.
- ``cifar10``: the official python pickle batches (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``) in ``data_dir`` or ``data_dir/cifar-10-batches-py``; three channels.
  (Pickle runs code from the file: only point it at files you trust.)

STEP imbalance (DESIGN.md section 1): ``step_class_counts`` gives majority classes (the first
``k - round(rho k)`` labels) ``n_maj`` images and minority classes ``round(n_maj / R)``;
``step_subset`` draws that many per class from the training pool, seeded.

A missing or malformed file raises ``DataError`` with a one-line message naming the files.

>>> c = step_class_counts(10, R=10, rho=0.5, n_maj=130)
>>> c.tolist()
[130, 130, 130, 130, 130, 13, 13, 13, 13, 13]
>>> idx = step_subset(np.repeat(np.arange(10), 140), c, seed=0)
>>> idx.size, np.bincount(np.repeat(np.arange(10), 140)[idx]).tolist() == c.tolist()
(715, True)
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ufm.core.labels import step_counts

__all__ = [
    "DataError",
    "ImbalanceError",
    "ImageData",
    "load_dataset",
    "load_digits",
    "load_idx_dataset",
    "load_cifar10",
    "read_idx",
    "upsample_bilinear",
    "step_class_counts",
    "step_subset",
    "MNIST_FILES",
    "DEFAULT_DATA_DIRS",
    "CIFAR10_FILES",
]

NUM_CLASSES = 10
# Data sets a Debian package installs (``apt-get install -y dataset-fashion-mnist``: the
# official IDX .gz files, MIT license, copyright Zalando): read from there without --data-dir.
DEFAULT_DATA_DIRS = {"fashionmnist": "/usr/share/datasets/fashion-mnist"}
DEBIAN_PACKAGES = {"fashionmnist": "dataset-fashion-mnist"}

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

_SUBSET_TAG, _SPLIT_TAG = 101, 102  # SeedSequence spawn keys (independent streams)


class DataError(ValueError):
    """A data set cannot be read; the message is one line naming what to put where."""


class ImbalanceError(ValueError):
    """The STEP counts cannot be drawn from the data; ``argument`` names the flag to change."""

    def __init__(self, message: str, argument: str):
        super().__init__(message)
        self.argument = argument


@dataclass(frozen=True)
class ImageData:
    """Training pool and test set: uint8 NHWC images, int32 labels in ``0..num_classes-1``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = NUM_CLASSES

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the training pool, in 0..1 pixel units."""
        x = self.x_train.astype(np.float64) / 255.0
        mean = x.mean(axis=(0, 1, 2))
        std = x.std(axis=(0, 1, 2))
        return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def _rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(tag,)))


# ---------------------------------------------------------------------------------------------
# digits


def upsample_bilinear(images: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upsampling of ``(n, h, w)`` images by an integer factor (half-pixel centres).

    >>> upsample_bilinear(np.array([[[0.0, 4.0]]]), 2)[0, 0].tolist()
    [0.0, 1.0, 3.0, 4.0]
    """

    def matrix(n: int) -> np.ndarray:
        pos = (np.arange(n * factor) + 0.5) / factor - 0.5  # output centres in input pixels
        pos = np.clip(pos, 0, n - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        frac = pos - lo
        m = np.zeros((n * factor, n))
        m[np.arange(n * factor), lo] += 1 - frac
        m[np.arange(n * factor), hi] += frac
        return m

    images = np.asarray(images, dtype=np.float64)
    mh, mw = matrix(images.shape[1]), matrix(images.shape[2])
    return np.einsum("ih,nhw,jw->nij", mh, images, mw)


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed, _SPLIT_TAG)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(np.floor(test_fraction * idx.size + 0.5))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """scikit-learn's digits, 32x32x1 uint8, stratified seeded train/test split."""
    from sklearn.datasets import load_digits as _sk_digits

    raw = _sk_digits()
    images = upsample_bilinear(raw.images / 16.0, 4)
    x = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)[..., None]
    y = raw.target.astype(np.int32)
    tr, te = _stratified_split(y, test_fraction, split_seed)
    return ImageData("digits", x[tr], y[tr], x[te], y[te])


# ---------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)


def _find(data_dir: Path, name: str) -> Path | None:
    for cand in (data_dir / name, data_dir / f"{name}.gz"):
        if cand.is_file():
            return cand
    return None


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (optionally gzipped) of unsigned bytes: big-endian header, then the data.

    Header: two zero bytes, type code 0x08 (ubyte), the number of dimensions, then one
    big-endian uint32 per dimension.
    """
    path = Path(path)
    try:
        with _open(path) as fh:
            raw = fh.read()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int(v) for v in np.frombuffer(raw[4:header], dtype=">u4"))
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DataError(f"{path}: expected {size} data bytes for shape {dims}, found {len(raw) - header}")
    return np.frombuffer(raw[header:], dtype=np.uint8).reshape(dims)


def _idx_missing_message(name: str, data_dir: Path, what: str) -> str:
    files = ", ".join(MNIST_FILES)
    return (f"{name}: {what} in {data_dir}; put the official IDX files there: {files} "
            "(each optionally .gz)")


def load_idx_dataset(data_dir: str | os.PathLike, name: str = "mnist") -> ImageData:
    """MNIST-format IDX files from ``data_dir``; 28x28 zero-padded to 32x32x1."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(_idx_missing_message(name, data_dir, "no such directory"))
    paths = {f: _find(data_dir, f) for f in MNIST_FILES}
    missing = [f for f, p in paths.items() if p is None]
    if missing:
        raise DataError(_idx_missing_message(name, data_dir, f"missing {', '.join(missing)}"))
    arrays = {f: read_idx(p) for f, p in paths.items()}  # type: ignore[arg-type]
    out = []
    for split in ("train", "t10k"):
        x = arrays[f"{split}-images-idx3-ubyte"]
        y = arrays[f"{split}-labels-idx1-ubyte"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(f"{name}: {split} images {x.shape} and labels {y.shape} do not match")
        if y.size and y.max() >= NUM_CLASSES:
            raise DataError(f"{name}: {split} labels must be 0..9, found {int(y.max())}")
        ph, pw = max(0, 32 - x.shape[1]), max(0, 32 - x.shape[2])
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
        out += [x[..., None], y.astype(np.int32)]
    return ImageData(name, *out)


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_dir(data_dir: Path) -> Path:
    sub = data_dir / "cifar-10-batches-py"
    return sub if sub.is_dir() else data_dir


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int32)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path} is not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.size:
        raise DataError(f"{path}: expected data (n, 3072) and n labels, got {data.shape}, {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels must be 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar10(data_dir: str | os.PathLike) -> ImageData:
    """CIFAR-10 python batches from ``data_dir`` (or its ``cifar-10-batches-py``)."""
    data_dir = Path(data_dir)
    files = ", ".join(CIFAR10_FILES)
    if not data_dir.is_dir():
        raise DataError(f"cifar10: no such directory {data_dir}; put the CIFAR-10 python batches "
                        f"there ({files}, or the folder cifar-10-batches-py holding them)")
    root = _cifar_dir(data_dir)
    missing = [f for f in CIFAR10_FILES if not (root / f).is_file()]
    if missing:
        raise DataError(f"cifar10: missing {', '.join(missing)} in {root}; put the CIFAR-10 python "
                        f"batches there ({files}, or the folder cifar-10-batches-py holding them)")
    train = [_read_cifar_batch(root / f) for f in CIFAR10_FILES[:-1]]
    x_te, y_te = _read_cifar_batch(root / "test_batch")
    x_tr = np.concatenate([x for x, _ in train])
    y_tr = np.concatenate([y for _, y in train])
    return ImageData("cifar10", x_tr, y_tr, x_te, y_te)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *,
                 test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """Load ``digits`` (bundled), ``mnist``, ``fashionmnist`` or ``cifar10`` (from ``data_dir``;
    for ``fashionmnist`` by default ``DEFAULT_DATA_DIRS["fashionmnist"]``, the folder of Debian's
    ``dataset-fashion-mnist``: the complete official set, 60,000 + 10,000 images)."""
    if name == "digits":
        return load_digits(test_fraction, split_seed)
    if name not in ("mnist", "fashionmnist", "cifar10"):
        raise DataError(f"unknown data set {name!r}")
    if data_dir is None and name in DEFAULT_DATA_DIRS:
        data_dir = DEFAULT_DATA_DIRS[name]
        if not Path(data_dir).is_dir():
            raise DataError(f"{name}: no --data-dir given, and {data_dir} (where Debian's "
                            f"{DEBIAN_PACKAGES[name]} puts the official files) does not exist: "
                            f"install it (apt-get install -y {DEBIAN_PACKAGES[name]}) or pass "
                            "--data-dir DIR")
    if data_dir is None:
        needs = ", ".join(CIFAR10_FILES if name == "cifar10" else MNIST_FILES)
        raise DataError(f"{name}: pass --data-dir DIR holding the official files ({needs})")
    if name == "cifar10":
        return load_cifar10(data_dir)
    return load_idx_dataset(data_dir, name)


# ---------------------------------------------------------------------------------------------
# STEP imbalance


def step_class_counts(k: int, R: float, rho: float, n_maj: int) -> np.ndarray:
    """STEP counts with majority size ``n_maj`` and minority ``round(n_maj / R)`` (>= 2).

    Built with ``ufm.core.labels.step_counts`` (majority classes first); raises ``ValueError``
    (``ImbalanceError``) when ``n_maj / R`` rounds below 2.
    """
    n_min = int(np.floor(n_maj / R + 0.5))
    if n_min < 2:
        raise ImbalanceError(f"R = {R:g} with n_maj = {n_maj} leaves round(n_maj/R) = {n_min} "
                             f"minority samples; every class needs >= 2 (n_maj >= "
                             f"{int(np.ceil(1.5 * R))})", "--R")
    return step_counts(k, R=n_maj / n_min, rho=rho, n_min=n_min)


def step_subset(y_pool: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """Pool indices of ``counts[c]`` seeded random samples of each class ``c``, class by class.

    Ordered by class, then by pool index, so the subset's labels are
    ``ufm.core.labels.labels_from_counts(counts)`` for every seed. Raises ``ImbalanceError`` (a
    ``ValueError``) when a class has fewer samples than asked for.
    """
    y_pool = np.asarray(y_pool)
    rng = _rng(seed, _SUBSET_TAG)
    picks = []
    for c, n in enumerate(np.asarray(counts)):
        avail = np.flatnonzero(y_pool == c)
        if avail.size < n:
            raise ImbalanceError(f"class {c} has {avail.size} training samples, {int(n)} asked "
                                 "for (lower --n-maj or --R; for digits also --test-fraction)",
                                 "--n-maj")
        picks.append(np.sort(rng.permutation(avail)[:n]))
    return np.concatenate(picks).astype(np.int64)
