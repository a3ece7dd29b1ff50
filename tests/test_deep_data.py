"""deep.data: loaders on small files written here in the official formats; STEP subsets."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from deep.data import (
    CIFAR10_FILES,
    MNIST_FILES,
    DataError,
    load_cifar10,
    load_dataset,
    load_digits,
    read_idx,
    step_class_counts,
    step_subset,
    upsample_bilinear,
)
from ufm.core.labels import labels_from_counts


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """The IDX format: 0, 0, type 0x08 (ubyte), ndim, big-endian uint32 dims, raw bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as fh:
            fh.write(raw)
    else:
        with open(path, "wb") as fh:
            fh.write(raw)


def write_mnist(folder, n_train=30, n_test=20, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr, gz=gz)
    return arrays


def write_cifar(folder, per_batch=12, seed=0):
    """CIFAR-10 python batches: pickled dicts with byte keys, data (n, 3072) uint8 row-major CHW."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in CIFAR10_FILES:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        d = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(d, fh, protocol=2)
        written[name] = (data, labels)
    return written


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    d = load_dataset("mnist", tmp_path)
    assert d.x_train.shape == (30, 32, 32, 1) and d.x_train.dtype == np.uint8
    assert d.x_test.shape == (20, 32, 32, 1)
    np.testing.assert_array_equal(d.x_train[:, 2:30, 2:30, 0], arrays["train-images-idx3-ubyte"])
    assert d.x_train[:, :2].max() == 0 and d.x_train[:, 30:].max() == 0  # zero padding 28 -> 32
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert load_dataset("fashionmnist", tmp_path).name == "fashionmnist"


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x09\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.arange(6).reshape(2, 3))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(DataError, match="expected 6 data bytes"):
        read_idx(tmp_path / "short")


def test_cifar10_pickle_batches(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):  # the folder or its parent
        d = load_cifar10(root)
        assert d.x_train.shape == (60, 32, 32, 3) and d.x_test.shape == (12, 32, 32, 3)
        data, labels = written["data_batch_2"]
        np.testing.assert_array_equal(d.x_train[12:24], data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(d.y_train[12:24], labels)
        # pixel (row 0, col 1) of the green channel is byte 1024 + 1 of a row
        assert d.x_test[0, 0, 1, 1] == written["test_batch"][0][0, 1024 + 1]


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_files_name_what_to_put_there(tmp_path, name):
    with pytest.raises(DataError) as err:
        load_dataset(name, tmp_path / "nowhere")
    msg = str(err.value)
    assert "\n" not in msg and "no such directory" in msg
    needed = MNIST_FILES if name == "mnist" else CIFAR10_FILES
    assert all(f in msg for f in needed)
    (tmp_path / "some").mkdir()
    with pytest.raises(DataError, match="missing"):
        load_dataset(name, tmp_path / "some")
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset(name, None)


def test_digits_split_is_seeded_and_stratified():
    pytest.importorskip("sklearn")
    a, b = load_digits(0.2, split_seed=0), load_digits(0.2, split_seed=0)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape[1:] == (32, 32, 1) and a.x_train.dtype == np.uint8
    assert a.x_train.shape[0] + a.x_test.shape[0] == 1797
    test_counts = np.bincount(a.y_test, minlength=10)
    assert test_counts.min() >= 34 and test_counts.max() <= 37  # 20% of 174..183 per class
    c = load_digits(0.2, split_seed=1)
    assert not np.array_equal(a.y_test, c.y_test) or not np.array_equal(a.x_test, c.x_test)


def test_upsample_preserves_constants_and_means():
    img = np.random.default_rng(0).uniform(size=(2, 8, 8))
    up = upsample_bilinear(img, 4)
    assert up.shape == (2, 32, 32)
    np.testing.assert_allclose(upsample_bilinear(np.full((1, 8, 8), 3.0), 4), 3.0)
    assert up.min() >= img.min() - 1e-12 and up.max() <= img.max() + 1e-12


def test_step_counts_and_subset():
    counts = step_class_counts(10, R=10, rho=0.5, n_maj=130)
    assert counts.tolist() == [130] * 5 + [13] * 5
    assert step_class_counts(10, R=1, rho=0.5, n_maj=40).tolist() == [40] * 10
    with pytest.raises(ValueError, match=">= 2"):
        step_class_counts(10, R=100, rho=0.5, n_maj=130)
    y_pool = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 140))
    a, b = step_subset(y_pool, counts, seed=3), step_subset(y_pool, counts, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(y_pool[a], labels_from_counts(counts))  # class by class
    assert len(set(a.tolist())) == a.size
    assert not np.array_equal(a, step_subset(y_pool, counts, seed=4))
    with pytest.raises(ValueError, match="class 0 has 140"):
        step_subset(y_pool, step_class_counts(10, R=10, rho=0.5, n_maj=150), seed=0)


# ----------------------------------------------------------------------------- real FashionMNIST


def test_real_fashionmnist_from_the_debian_package_trains_one_epoch(tmp_path):
    """The complete official FashionMNIST of Debian's ``dataset-fashion-mnist`` (``.ci/run``
    installs it): found without --data-dir, 60,000 + 10,000 images, 6,000 / 1,000 per class;
    a tiny one-epoch run on a STEP subset of it logs finite metrics on the whole test set."""
    from deep.data import DEFAULT_DATA_DIRS, load_dataset

    folder = DEFAULT_DATA_DIRS["fashionmnist"]
    assert os.path.isdir(folder), ("FashionMNIST is missing: apt-get install -y "
                                   "dataset-fashion-mnist (README, 'Set up and run')")
    data = load_dataset("fashionmnist")
    assert data.x_train.shape == (60000, 32, 32, 1) and data.x_test.shape == (10000, 32, 32, 1)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() == 255
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    # the 2-pixel zero border of the 28 x 28 originals
    assert not data.x_train[:, :2].any() and not data.x_train[:, -2:].any()

    pytest.importorskip("flax")
    from deep.configs import TrainConfig
    from deep.training import train_and_evaluate

    cfg = TrainConfig(arch="resnet-tiny", dataset="fashionmnist", n_maj=20, R=2, batch_size=50,
                      epochs=1)
    res = train_and_evaluate(cfg, tmp_path / "run", data=data)
    rec = res.records[0]
    assert rec["test_set"] == "full" and rec["test_images"] == 10000
    for key in ("loss", "delta_gm_of", "delta_gm_etf", "nc1", "ncm_train_acc", "ncm_test_acc"):
        assert np.isfinite(rec[key]), key
    assert 0.0 <= rec["ncm_test_acc"] <= 1.0 and rec["zero_features"] < 1.0


def test_fashionmnist_without_the_package_says_where_it_looked(tmp_path, monkeypatch):
    import deep.data
    from deep.data import DataError, load_dataset

    missing = tmp_path / "nowhere"
    monkeypatch.setitem(deep.data.DEFAULT_DATA_DIRS, "fashionmnist", str(missing))
    with pytest.raises(DataError) as err:
        load_dataset("fashionmnist")
    message = str(err.value)
    assert str(missing) in message and "apt-get install -y dataset-fashion-mnist" in message
    assert "--data-dir" in message
    with pytest.raises(DataError, match="pass --data-dir"):  # MNIST stays on --data-dir
        load_dataset("mnist")


def test_test_set_schedule_full_every_n_and_at_the_end(stand_in_epochs, tmp_path):
    pytest.importorskip("flax")
    from deep.configs import TrainConfig
    from deep.data import load_digits
    from deep.rundir import read_metrics
    from deep.training import train_and_evaluate

    cfg = TrainConfig(arch="resnet-tiny", n_maj=20, R=2, batch_size=50, epochs=5, test_every=2,
                      test_subset=30)
    data = load_digits()
    run = train_and_evaluate(cfg, tmp_path / "run", data=data).run
    rows = read_metrics(tmp_path / "run")
    assert [r["test_set"] for r in rows] == ["subset", "full", "subset", "full", "full"]
    assert run.test_subset.size == 30 and np.all(np.diff(run.test_subset) > 0)
    train_and_evaluate(cfg.replace(test_subset=0), tmp_path / "run0", data=data)
    assert [r["test_set"] for r in read_metrics(tmp_path / "run0")] == ["none", "full", "none",
                                                                        "full", "full"]


def test_evaluate_on_the_test_subset_and_on_none():
    """The real evaluation: NCM accuracy on the seeded subset equals the full-set per-image
    hits averaged over the subset's images; with no test images it is None."""
    pytest.importorskip("flax")
    from deep.configs import TrainConfig
    from deep.data import load_digits
    from deep.training import evaluate, features, init_state, setup

    run = setup(TrainConfig(arch="resnet-tiny", n_maj=20, R=2, epochs=1, test_subset=40),
                load_digits())
    state = init_state(run)
    full, sub, none = (evaluate(run, state, t)[0] for t in ("full", "subset", "none"))
    assert (full["test_images"], sub["test_images"], none["test_images"]) == (run.y_test.size, 40, 0)
    assert none["ncm_test_acc"] is None and none["delta_gm_of"] == full["delta_gm_of"]
    from deep.metrics import ncm_accuracy
    from ufm.core.geometry import class_means, normalize_rows

    z = normalize_rows(features(run, state, run.subsets)[0].astype(np.float64))
    h = features(run, state, run.test_idx[None, run.test_subset])[0]
    want = ncm_accuracy(class_means(z, run.labels, run.num_classes), h, run.y_test[run.test_subset])
    assert sub["ncm_test_acc"] == pytest.approx(want, abs=1e-12)


# ----------------------------------------------------------------------------- test-set metrics


def test_group_accuracies_probe_and_hits_against_hand_counts():
    """Majority / minority accuracies are per-class means (each class weighs the same); the
    hits round-trip; a linear probe separates linearly separable features the NCM rule gets
    wrong."""
    from deep.metrics import epoch_metrics, group_accuracies, unpack_hits

    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
    hits = np.array([1, 1, 1, 0, 1, 0, 0, 0, 1, 1], dtype=bool)
    maj, mino = group_accuracies(hits, labels, n_majority=2)
    assert maj == pytest.approx((3 / 4 + 1 / 2) / 2) and mino == pytest.approx((1 / 3 + 1) / 2)

    # 2 classes in 2-d: class 0 at 0-3 degrees, class 1 spread over 25-175 (its mean near 100);
    # class-1 test points at 28 degrees lie nearer class 0's mean (NCM wrong) but on class 1's
    # side of a line a probe can place between 3 and 25 degrees
    rng = np.random.default_rng(0)
    ang = np.r_[rng.uniform(0, 3, 40), rng.uniform(25, 175, 40)] * np.pi / 180
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    h = np.c_[np.cos(ang), np.sin(ang)]
    h_test = np.c_[np.cos(np.full(5, 28 * np.pi / 180)), np.sin(np.full(5, 28 * np.pi / 180))]
    m = epoch_metrics(h, y, h_test, np.ones(5, int), k=2, n_majority=1, probe=True)
    assert m["ncm_test_acc"] == 0.0 and unpack_hits(m["ncm_test_hits"], 5).tolist() == [False] * 5
    assert m["probe_test_acc"] == 1.0 and m["probe_test_acc_min"] == 1.0
    assert m["probe_test_acc_maj"] is None  # no majority-class test image
    m = epoch_metrics(h, y, h_test, np.ones(5, int), k=2, n_majority=1)
    assert m["probe_test_acc"] is None and m["probe_test_hits"] is None
