"""``python -m deep.train / deep.report / deep.bench`` end to end, in subprocesses, tiny sizes.

One module fixture starts every process (two at a time) with a shared, fresh XLA compilation
cache, so the runs of the same tiny configuration compile once. Runs (resnet-tiny on digits,
STEP n_maj 20, R 2: 150 images, 3 steps of 50 per epoch, 2 epochs):

- ``straight``: seed 1, two epochs;
- ``vmapped``: ``--seeds 2`` (seeds 0 and 1 in one vmapped process);
- ``resumed``: seed 1, ``--stop-after 1 --checkpoint-every 2`` (alongside the others; the end
  of an invocation is always checkpointed), a fake torn epoch-2 line, then ``--resume``.

Usage errors (they exit before any compilation) are also checked in this process, by calling
the CLIs' ``main`` directly.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--arch", "resnet-tiny", "--n-maj", "20", "--R", "2", "--batch-size", "50", "--epochs", "2",
        "--quiet"]
VOLATILE = {"seconds", "train_seconds"}

BAD_FLAGS = [
    ["--arch", "vgg"],
    ["--R", "0.5"],
    ["--rho", "1"],
    ["--batch-size", "1"],
    ["--tau", "0"],
    ["--seeds", "0"],
    ["--dtype", "float16"],
    ["--epochs", "two"],
    ["--loss", "mse"],
    ["--schedule", "random"],
]


def _run(module: str, args: list[str], env: dict[str, str], timeout: int = 600):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deep_cli")
    env = {**os.environ, "SCL_GEOMETRY_CACHE": str(tmp / "xla_cache")}
    d = {name: tmp / name for name in ("straight", "vmapped", "resumed", "report")}
    jobs = {
        "straight": ("deep.train", TINY + ["--seed", "1", "--out", str(d["straight"])]),
        # interrupted run: one epoch (then a line as if killed between metrics and checkpoint)
        "stop": ("deep.train", TINY + ["--seed", "1", "--out", str(d["resumed"]), "--stop-after", "1",
                                     "--checkpoint-every", "2"]),
        "vmapped": ("deep.train", TINY + ["--seed", "0", "--seeds", "2", "--out", str(d["vmapped"])]),
        "bench": ("deep.bench", ["--quick", "--batch-sizes", "8", "--json"]),
        "no_dir": ("deep.train", TINY + ["--dataset", "mnist", "--data-dir", str(tmp / "nowhere")]),
        "bad_flag": ("deep.train", TINY + ["--R", "0.5"]),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, mod, args, env) for name, (mod, args) in jobs.items()}
        out = {name: f.result() for name, f in futures.items()}
    with np.load(d["resumed"] / "checkpoint.npz") as f:
        out["stop_checkpoint_epoch"] = int(f["epoch"])
    with open(d["resumed"] / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 2, "loss": -1.0}) + "\n")
    out["resume"] = _run("deep.train", ["--out", str(d["resumed"]), "--resume", "--quiet"], env)
    out["report"] = _run("deep.report", [str(d["straight"]), str(d["vmapped"]), "--out", str(d["report"])], env)
    out["dirs"], out["env"] = d, env
    return out


def _in_process(main, argv, capsys, monkeypatch):
    """Run a CLI ``main`` here (usage errors exit before any compilation)."""
    monkeypatch.setenv("SCL_GEOMETRY_CACHE", "off")
    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, exc.value.code, captured.out, captured.err)


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "error:" in lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _flat(rows: list[list[float]]) -> list[float]:
    return [v for row in rows for v in row]


def _scalars(rec: dict) -> dict:
    """The numeric fields (the text ones, ``test_set`` and the packed hits, are not for approx)."""
    return {k: v for k, v in rec.items() if k not in VOLATILE and k != "class_mean_gram"
            and not isinstance(v, str)}


def test_two_epoch_run_writes_finite_metrics_and_config(cli):
    _ok(cli["straight"])
    folder = cli["dirs"]["straight"]
    recs = _metrics(folder)
    assert [r["epoch"] for r in recs] == [1, 2]
    for r in recs:
        for key in ("loss", "delta_gm_of", "delta_gm_etf", "nc1", "cos_maj_maj", "cos_min_min",
                    "cos_maj_min", "ncm_train_acc", "ncm_test_acc", "seconds", "lr"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r[key])
        assert 0 <= r["delta_gm_of"] <= 2 and 0 <= r["delta_gm_etf"] <= 2
        assert 0 <= r["ncm_test_acc"] <= 1 and r["nc1"] >= 0
        gram = r["class_mean_gram"]
        assert len(gram) == 10 and all(abs(gram[i][i] - 1) < 1e-5 for i in range(10))
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["config"]["arch"] == "resnet-tiny" and cfg["config"]["seed"] == 1
    assert cfg["config"]["epochs"] == 2 and cfg["config"]["dataset"] == "digits"
    assert cfg["counts"] == [20] * 5 + [10] * 5 and cfg["n_train"] == 150
    assert {"jax", "flax", "optax", "numpy"} <= set(cfg["versions"])
    assert cfg["machine"]["cpus"] == os.cpu_count() and cfg["machine"]["cpu_model"]
    assert (folder / "checkpoint.npz").is_file()
    assert "epoch 2/2 done" in cli["straight"].stdout


def test_resume_reproduces_the_uninterrupted_run(cli):
    _ok(cli["stop"])
    assert "stopped" in cli["stop"].stdout
    assert cli["stop_checkpoint_epoch"] == 1  # --checkpoint-every 2, but the invocation ended at 1
    _ok(cli["resume"])
    straight, resumed = _metrics(cli["dirs"]["straight"]), _metrics(cli["dirs"]["resumed"])
    assert [r["epoch"] for r in resumed] == [1, 2]  # the torn epoch-2 line was dropped
    for a, b in zip(straight, resumed):
        assert _scalars(b) == pytest.approx(_scalars(a), rel=1e-6, abs=1e-9)
        assert _flat(b["class_mean_gram"]) == pytest.approx(_flat(a["class_mean_gram"]), abs=1e-6)


def test_sigterm_stops_like_ctrl_c(cli, tmp_path):
    """``kill``/``timeout`` (SIGTERM) ends the run cleanly after whole epochs, exit status 130."""
    out = tmp_path / "term"
    args = [sys.executable, "-m", "deep.train", *TINY, "--epochs", "300", "--seed", "1", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, env=cli["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics, deadline = out / "metrics.jsonl", time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no epoch finished in 300 s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; continue with" in err and "Traceback" not in err
    rows = _metrics(out)
    assert 1 <= len(rows) < 300 and [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    # epoch 1 has lr 0.1 for any --epochs, so it equals the straight run's first epoch
    assert _scalars(rows[0]) == pytest.approx(_scalars(_metrics(cli["dirs"]["straight"])[0]),
                                              rel=1e-6, abs=1e-9)


def test_resume_guards(cli, capsys, monkeypatch):
    from deep.train_cmd import main

    folder = str(cli["dirs"]["straight"])
    _one_line_error(_in_process(main, TINY + ["--seed", "1", "--out", folder], capsys, monkeypatch),
                    "--out", "--resume")
    _one_line_error(_in_process(main, ["--out", folder, "--resume", "--lr", "0.5"], capsys, monkeypatch),
                    "--lr", "saved")


def test_vmapped_seeds_match_single_seed_runs(cli):
    _ok(cli["vmapped"])
    top = cli["dirs"]["vmapped"]
    assert json.loads((top / "config.json").read_text())["seeds"] == [0, 1]
    assert (top / "checkpoint.npz").is_file()
    seed1 = json.loads((top / "seed_1" / "config.json").read_text())
    assert seed1["config"]["seed"] == 1 and seed1["config"]["seeds"] == 1
    single, vmapped = _metrics(cli["dirs"]["straight"]), _metrics(top / "seed_1")
    assert len(vmapped) == 2
    for a, b in zip(single, vmapped):
        for key, value in _scalars(a).items():
            if key.endswith(("_maj", "_min")) and key.startswith(("ncm_", "probe_")):
                # per-class means over ~36 test images a class: a few flips move them by 0.006 each
                assert abs(b[key] - value) <= 0.03, key
            elif key.startswith("ncm_"):  # one sample may flip between float roundings
                assert abs(b[key] - value) <= 1.5 / 150, key
            elif key.startswith("probe_"):
                # the probe (C = 100 on 150 nearly separable training images) is ill-conditioned:
                # a few of the 359 test images flip between float roundings (4 on an AMD EPYC)
                assert abs(b[key] - value) <= 0.025, key
            elif key == "nc1":  # tr(Sigma_W Sigma_B^+) with nearly parallel class means: ill-conditioned
                assert b[key] == pytest.approx(value, rel=5e-2), key
            else:  # vmapped convolutions round differently: ~1e-6 relative after two epochs
                assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    other = _metrics(top / "seed_0")
    assert other[-1]["loss"] != vmapped[-1]["loss"]  # the two seeds are different runs


def test_bad_flag_in_a_real_process(cli):
    _one_line_error(cli["bad_flag"], "--R")


@pytest.mark.parametrize("flags", BAD_FLAGS, ids=lambda f: " ".join(f))
def test_bad_flags_one_line_exit_2(flags, capsys, monkeypatch, tmp_path):
    from deep.train_cmd import main

    _one_line_error(_in_process(main, TINY + ["--out", str(tmp_path / "run")] + flags, capsys,
                                monkeypatch), flags[0])


def test_missing_data_one_line_exit_2(cli, capsys, monkeypatch):
    from deep.train_cmd import main

    line = _one_line_error(cli["no_dir"], "--data-dir", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    assert "no such directory" in line
    _one_line_error(_in_process(main, TINY + ["--dataset", "cifar10"], capsys, monkeypatch),
                    "data_batch_1", "test_batch")


def test_imbalance_the_data_cannot_meet(capsys, monkeypatch, tmp_path):
    from deep.train_cmd import main

    argv = ["--arch", "resnet-tiny", "--R", "100", "--out", str(tmp_path / "r100")]
    _one_line_error(_in_process(main, argv, capsys, monkeypatch), "R = 100")
    argv = ["--arch", "resnet-tiny", "--n-maj", "500", "--out", str(tmp_path / "big")]
    _one_line_error(_in_process(main, argv, capsys, monkeypatch), "--n-maj")


def test_report_writes_pngs_and_table(cli):
    proc = _ok(cli["report"])
    for stem in ("delta_gm", "nc1", "cosines", "accuracy"):
        png = cli["dirs"]["report"] / f"{stem}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = proc.stdout.strip().splitlines()
    assert rows[0].split()[:4] == ["run", "epoch", "loss", "dGM_OF"]
    assert len(rows[:rows.index("")]) == 1 + 3  # straight, vmapped/seed_0, vmapped/seed_1
    # the three differ only in the seed: one group of three in the over-seeds summary
    summary = rows[rows.index("") + 1:]
    assert summary[0].startswith("final epoch over seeds") and summary[1].split()[:2] == ["group", "n"]
    assert len(summary) == 3 and summary[2].split()[1:3] == ["(+2)", "3"]  # "<first run> (+2)", n = 3


def test_report_needs_runs(capsys, monkeypatch, tmp_path):
    from deep.report_cmd import main

    _one_line_error(_in_process(main, [str(tmp_path / "nowhere")], capsys, monkeypatch), "RUN_DIR")
    _one_line_error(_in_process(main, [str(tmp_path)], capsys, monkeypatch), "metrics.jsonl")


def test_bench_quick(cli):
    proc = _ok(cli["bench"])
    report = json.loads(proc.stdout)
    assert [(r["batch_size"], r["seeds"]) for r in report["rows"]] == [(8, 1), (8, 2)]
    assert all(r["images_per_s"] > 0 and math.isfinite(r["final_loss"]) for r in report["rows"])
    # resnet-tiny on 3 channels, by hand: stem 3*3*3*8 + BN 2*8 = 232; block 8->8: 2*(9*8*8 + 16)
    # = 1184; block 8->16, stride 2: 9*8*16 + 32 + 9*16*16 + 32 + shortcut 8*16 + 32 = 3680
    assert report["params_jax"] == 232 + 1184 + 3680
    assert report["config"]["arch"] == "resnet-tiny" and report["config"]["dtype"] == "float32"
    assert report["config"]["batch_sizes"] == [8] and report["config"]["seeds"] == 2
    assert {"jax", "flax", "optax"} <= set(report["versions"]) and report["machine"]["cpus"] == os.cpu_count()
    try:
        import torch  # noqa: F401
    except ImportError:
        assert report["torch"].startswith("PyTorch is not importable")
        assert report["torch_rows"] == [] and report["params_torch"] is None
    else:  # the PyTorch reference is the same network
        assert report["params_torch"] == report["params_jax"]
