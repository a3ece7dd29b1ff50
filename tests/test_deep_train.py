"""deep.training core: the loss is ufm.scl_loss, optimizer rule, schedule, batches, checkpoints;
``train_and_evaluate`` (the run's files, callbacks, resume, its errors) with a stand-in epoch."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import ufm  # noqa: E402
import ufm.core.loss  # noqa: E402
from deep.augment import augment, two_views  # noqa: E402
from deep.checkpoint import (CheckpointError, checkpoint_due, load_checkpoint,  # noqa: E402
                             save_checkpoint)
from deep.configs import TrainConfig, resolve  # noqa: E402
from deep.data import load_digits  # noqa: E402
import deep.training  # noqa: E402
from deep.rundir import read_config, read_metrics  # noqa: E402
from deep.training import (  # noqa: E402
    StartError,
    TrainCallbacks,
    TrainingDiverged,
    batch_loss,
    epoch_indices,
    init_state,
    lr_at_epoch,
    lr_schedule,
    make_optimizer,
    setup,
    train_and_evaluate,
)

TINY = TrainConfig(arch="resnet-tiny", n_maj=20, R=2, batch_size=50, epochs=2)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_batch_loss_is_ufm_scl_loss_on_both_views():
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    y = jnp.array([0, 1, 1, 2])
    cfg = TrainConfig(tau=0.2)
    got = float(batch_loss(cfg, h, None, y))
    want = float(ufm.scl_loss(h, jnp.array([0, 1, 1, 2, 0, 1, 1, 2]), 0.2, reduction="mean"))
    assert got == pytest.approx(want, rel=1e-6)
    got_sum = float(batch_loss(cfg.replace(reduction="sum"), h, None, y))
    assert got_sum == pytest.approx(float(ufm.scl_loss(h, jnp.tile(y, 2), 0.2)), rel=1e-6)
    logits = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    ce = float(batch_loss(cfg.replace(loss="ce"), h[:4], logits, y))
    manual = float(np.mean(jax.nn.logsumexp(logits, axis=1) - logits[jnp.arange(4), y]))
    assert ce == pytest.approx(manual, rel=1e-6)


def test_training_step_calls_ufm_scl_loss(monkeypatch, digits):
    """Tracing the jitted step goes through ufm.core.loss.scl_loss (the one implementation)."""
    calls = []
    original = ufm.core.loss.scl_loss

    def recording(h, labels, tau, **kw):
        calls.append((h.shape, labels.shape, tau, kw.get("reduction")))
        return original(h, labels, tau, **kw)

    monkeypatch.setattr(ufm.core.loss, "scl_loss", recording)
    run = setup(TINY.replace(seeds=2, tau=0.3), digits)
    state = jax.eval_shape(lambda: init_state(run))
    idx = jnp.asarray(epoch_indices(run, 0)[0])
    run.step.lower(state, run.data, idx, run.aug_keys(), 0, 0)  # traces, does not compile
    assert calls == [((100, 16), (100,), 0.3, "mean")]  # 2 views x 50 images, per seed


@pytest.mark.parametrize("arch,loss,dtype,conv", [("densenet-tiny", "scl", "bfloat16", "xla"),
                                                  ("resnet18", "ce", "float32", "xla"),
                                                  ("densenet-tiny", "scl", "float32", "matmul")])
def test_other_steps_trace(monkeypatch, digits, arch, loss, dtype, conv):
    """DenseNet / bf16 / CE / matmul-conv steps trace (no compile); CE leaves the SC loss alone."""
    calls = []
    original = ufm.core.loss.scl_loss
    monkeypatch.setattr(ufm.core.loss, "scl_loss", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    run = setup(TINY.replace(arch=arch, loss=loss, dtype=dtype, conv=conv, schedule="binding"), digits)
    state = jax.eval_shape(lambda: init_state(run))
    idx = jnp.asarray(epoch_indices(run, 0)[0])
    new_state, losses = jax.eval_shape(run.step, state, run.data, idx, run.aug_keys(), 0, 0)
    assert losses.shape == (1,) and losses.dtype == jnp.float32
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    assert len(calls) == (1 if loss == "scl" else 0)
    if loss == "ce":
        assert state.params["head"]["kernel"].shape == (1, 512, 10)


def test_bf16_ce_binding_epoch_runs(digits):
    """A real (compiled) epoch in bfloat16 with CE and the binding schedule: finite losses."""
    from deep.training import evaluate, train_epoch

    run = setup(TINY.replace(loss="ce", dtype="bfloat16", schedule="binding", batch_size=70), digits)
    state, losses = train_epoch(run, init_state(run), 0)
    assert losses.shape == (1,) and np.isfinite(losses).all()
    m = evaluate(run, state)[0]
    assert np.isfinite(m["delta_gm_of"]) and 0 <= m["ncm_test_acc"] <= 1


def test_optimizer_is_torch_sgd_with_weight_decay():
    cfg = TrainConfig(lr=0.1, momentum=0.9, weight_decay=0.01, epochs=10)
    tx = make_optimizer(cfg, steps_per_epoch=5)
    p = {"w": jnp.array([1.0, -2.0])}
    g1, g2 = {"w": jnp.array([0.5, 0.5])}, {"w": jnp.array([-1.0, 2.0])}
    s = tx.init(p)
    u, s = tx.update(g1, s, p)
    p1 = optax.apply_updates(p, u)
    u, s = tx.update(g2, s, p1)
    p2 = optax.apply_updates(p1, u)
    # torch.optim.SGD: d = g + wd*p; buf = momentum*buf + d; p -= lr*buf
    w = np.array([1.0, -2.0])
    buf = np.array([0.5, 0.5]) + 0.01 * w
    w1 = w - 0.1 * buf
    buf = 0.9 * buf + np.array([-1.0, 2.0]) + 0.01 * w1
    w2 = w1 - 0.1 * buf
    np.testing.assert_allclose(p1["w"], w1, rtol=1e-6)
    np.testing.assert_allclose(p2["w"], w2, rtol=1e-6)


def test_lr_drops_at_116_and_232_of_350():
    cfg = TrainConfig(lr=0.1, epochs=350)
    assert [lr_at_epoch(cfg, e) for e in (0, 115, 116, 231, 232, 349)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    sched = lr_schedule(cfg, steps_per_epoch=3)
    assert float(sched(116 * 3 - 1)) == pytest.approx(0.1)
    assert float(sched(116 * 3)) == pytest.approx(0.01)
    short = TrainConfig(lr=1.0, epochs=2)  # both milestones round to epoch 1
    assert [lr_at_epoch(short, e) for e in (0, 1)] == pytest.approx([1.0, 0.01])


def test_epoch_indices_depend_on_seed_and_epoch_only(digits):
    run = setup(TINY.replace(seeds=2), digits)
    a, b = epoch_indices(run, 3), epoch_indices(run, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, epoch_indices(run, 4)))
    assert [x.shape for x in a] == [(2, 50)] * 3
    for s in range(2):  # every step draws from that seed's subset, each sample once per epoch
        used = np.concatenate([x[s] for x in a])
        np.testing.assert_array_equal(np.sort(used), np.sort(run.subsets[s]))
    single = setup(TINY.replace(seed=1), digits)
    assert all(np.array_equal(x[1], y[0]) for x, y in zip(a, epoch_indices(single, 3)))
    binding = setup(TINY.replace(schedule="binding", batch_size=30), digits)
    shapes = [x.shape[1] for x in epoch_indices(binding, 0)]
    assert shapes == [40, 40, 40, 40, 30]  # 140 others in batches of 30, + the k = 10 binding samples


@pytest.mark.parametrize("conv", ["xla", "dotgrad"])
def test_one_seed_step_equals_its_slice_of_a_vmapped_step(digits, conv):
    """One seed runs unvmapped (make_train_step's single path); seed s of a 2-seed (vmapped) run
    is the same computation: the same loss and parameters after a step, to float32 rounding."""
    from deep.training import init_state

    pair = setup(TINY.replace(seeds=2, conv=conv), digits)
    single = setup(TINY.replace(seed=1, conv=conv), digits)
    idx_pair, idx_single = epoch_indices(pair, 0)[0], epoch_indices(single, 0)[0]
    np.testing.assert_array_equal(idx_pair[1], idx_single[0])
    sp, lp = pair.step(init_state(pair), pair.data, pair.put(idx_pair), pair.aug_keys(), 0, 0)
    s1, l1 = single.step(init_state(single), single.data, single.put(idx_single), single.aug_keys(), 0, 0)
    assert l1.shape == (1,)
    np.testing.assert_allclose(float(lp[1]), float(l1[0]), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(sp.params), jax.tree_util.tree_leaves(s1.params)):
        np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b[0]), rtol=1e-4, atol=1e-6)


def test_augment_is_a_function_of_the_key():
    x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (6, 32, 32, 1)), jnp.uint8)
    mean, std = jnp.zeros(1), jnp.ones(1)
    k = jax.random.PRNGKey(3)
    v1 = two_views(k, x, mean, std, pad=4, flip=True)
    v2 = two_views(k, x, mean, std, pad=4, flip=True)
    np.testing.assert_array_equal(v1, v2)
    assert v1.shape == (12, 32, 32, 1)
    assert not np.array_equal(v1[:6], v1[6:])  # two different views
    shifted = augment(k, x, mean, std, pad=4, flip=False)
    # each crop is a shifted copy: its pixel sum never exceeds the image's
    assert np.all(np.asarray(shifted).sum(axis=(1, 2, 3)) <= np.asarray(x, np.float32).sum(axis=(1, 2, 3)) / 255 + 1e-3)


def test_checkpoint_roundtrip_and_mismatch(tmp_path):
    tree = {"a": jnp.arange(4.0), "b": {"c": jnp.ones((2, 3), jnp.int32)}}
    path = tmp_path / "ck.npz"
    save_checkpoint(path, tree, epoch=5, seeds=(3,))
    back, epoch, seeds = load_checkpoint(path, tree)
    assert epoch == 5 and seeds == (3,)
    np.testing.assert_array_equal(back["b"]["c"], np.ones((2, 3)))
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path, {"a": jnp.arange(5.0), "b": {"c": jnp.ones((2, 3), jnp.int32)}})
    with pytest.raises(CheckpointError, match="structure"):
        load_checkpoint(path, {"a": jnp.arange(4.0)})
    (tmp_path / "torn.npz").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "torn.npz", tree)


@pytest.mark.parametrize("every,last,due", [
    (1, 4, [1, 2, 3, 4]),
    (2, 5, [2, 4, 5]),
    (3, 6, [3, 6]),
    (10, 4, [4]),  # longer than the run: only the end
])
def test_checkpoint_due_every_n_epochs_and_at_the_end(every, last, due):
    assert [e for e in range(1, last + 1) if checkpoint_due(e, every, last)] == due


# ----------------------------------------------------------------------------- train_and_evaluate


class Recorder(TrainCallbacks):
    def __init__(self):
        self.events = []

    def on_start(self, run, start, stop):
        self.events.append(("start", start, stop))

    def on_epoch_start(self, epoch):
        self.events.append(("epoch", epoch))

    def on_step(self, step, loss):
        self.events.append(("step", step, tuple(np.shape(loss))))

    def on_epoch_end(self, records):
        self.events.append(("end", [r["epoch"] for r in records]))


def test_train_and_evaluate_writes_the_run_resumes_and_reports(stand_in_epochs, digits, tmp_path):
    cfg, work = TINY.replace(epochs=3), tmp_path / "run"
    rec = Recorder()
    res = train_and_evaluate(cfg, work, stop_after=2, checkpoint_every=5, callbacks=rec, data=digits)
    steps = [("step", t, (1,)) for t in range(3)]
    assert rec.events == [("start", 0, 2), ("epoch", 1), *steps, ("end", [1]),
                          ("epoch", 2), *steps, ("end", [2])]
    assert (res.start, res.stop, res.finished, res.dirs) == (0, 2, False, [work])
    assert res.records[0]["epoch"] == 2 and res.records[0]["loss"] == 2.0
    assert res.records[0]["delta_gm_of"] == pytest.approx(0.0, abs=1e-9)
    assert [m["epoch"] for m in read_metrics(work)] == [1, 2]
    assert read_config(work)["config"] == resolve(cfg).to_dict() and read_config(work)["n_train"] == 150
    with np.load(work / "checkpoint.npz") as f:  # every 5 epochs, and at the end of the call
        assert int(f["epoch"]) == 2

    with pytest.raises(StartError, match="already holds a run") as err:
        train_and_evaluate(cfg, work, data=digits)
    assert err.value.argument == "--out"
    rec = Recorder()
    res = train_and_evaluate(cfg, work, resume=True, callbacks=rec, data=digits)
    assert rec.events[0] == ("start", 2, 3) and rec.events[-1] == ("end", [3])
    assert (res.start, res.stop, res.finished) == (2, 3, True)
    assert [m["epoch"] for m in read_metrics(work)] == [1, 2, 3]
    rec = Recorder()
    res = train_and_evaluate(cfg, work, resume=True, callbacks=rec, data=digits)  # all done
    assert (res.start, res.stop, res.records, rec.events) == (3, 3, [], [])
    with pytest.raises(StartError, match="checkpoint") as err:  # 2 seeds cannot resume 1
        train_and_evaluate(cfg.replace(seeds=2), work, resume=True, data=digits)
    assert err.value.argument == "--resume"


def test_train_and_evaluate_stops_when_it_diverges(monkeypatch, stand_in_epochs, digits, tmp_path):
    monkeypatch.setattr(deep.training, "train_epoch",
                        lambda run, state, epoch, on_step: (state, np.array([1.0, np.nan])))
    work = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="epoch 1 are not finite [(]seed 4[)]") as err:
        train_and_evaluate(TINY.replace(seed=3, seeds=2), work, data=digits)
    assert (err.value.epoch, err.value.seeds) == (1, (4,))
    assert all(read_metrics(d) == [] for d in (work / "seed_3", work / "seed_4"))
    assert not (work / "checkpoint.npz").exists()


@pytest.mark.parametrize("changes, argument, needle", [
    ({"dataset": "mnist", "data_dir": "/nonexistent"}, "--data-dir", "no such directory"),
    ({"R": 100}, "--R", "R = 100"),
    ({"n_maj": 500}, "--n-maj", "training samples"),
    ({"batch_size": 1000, "drop_last": True}, None, "batch_size (1000) exceeds"),
])
def test_train_and_evaluate_start_errors_name_the_flag(changes, argument, needle, tmp_path):
    with pytest.raises(StartError) as err:
        train_and_evaluate(TINY.replace(**changes), tmp_path / "run")
    assert err.value.argument == argument and needle in str(err.value)
    assert not (tmp_path / "run").exists()
