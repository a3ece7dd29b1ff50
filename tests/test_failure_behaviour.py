"""Issue 34, "Nothing destroyed, nothing silent": the command lines and runs under hostile input.

One section per item of the issue, in its order (the comment above each test quotes the
sentence it checks). The policies these tests hold (README, "Failure behaviour"):

- outputs go only to regular files or new paths (``ufm.cli.args.unwritable_reason``,
  ``ufm.cli.io.atomic_write``), two outputs never to one file;
- ``deep.train`` holds its run folder's lock (``deep.rundir.run_lock``) and checks checkpoint,
  metrics and sizes before touching a file (``deep.training._start``);
- input sizes are bounded before memory is allocated (``ufm.cli.limits``,
  ``ufm.solvers.memory``, ``theory_checks.io``), with one line naming the flag and the limit;
- JSON output is strict (``ufm.core.jsonable.to_json``: null for NaN and inf);
- SIGINT / SIGTERM take one path (``ufm.cli.signals``): temp files removed, one line, exit 130.
"""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import ufm
from deep.reporting import clean_records
from ufm.cli import certify_cmd, solve_cmd
from ufm.core.checks import TAU_MAX, TAU_MIN, check_tau
from ufm.core.problem import Problem
from ufm.solvers.signs import sign_pattern_loss

ROOT = Path(__file__).resolve().parents[1]


def _out_cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "SCL_GEOMETRY_CACHE": "off"}, timeout=300)


def _ufm_run(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SCL_GEOMETRY_CACHE": "off", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=120)


def _ufm_usage_error(main, argv, capsys) -> str:
    """Run ``main(argv)``; assert exit 2 with exactly one stderr line; return that line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _ufm_brute_loss(z: np.ndarray, labels: np.ndarray, tau: float) -> float:
    """Plain NumPy SC loss (sum convention, full batch) of unit rows z (N x d)."""
    g = z @ z.T / tau
    total = 0.0
    for i in range(len(labels)):
        others = [l for l in range(len(labels)) if l != i]
        pos = [j for j in others if labels[j] == labels[i]]
        m = max(g[i, l] for l in others)
        lse = m + np.log(sum(np.exp(g[i, l] - m) for l in others))
        total += lse - np.mean([g[i, j] for j in pos])
    return float(total)


def _ufm_brute_d1(counts, tau: float) -> float:
    """Minimum of the loss over ALL sign vectors in {-1, +1}^N (d = 1)."""
    labels = np.repeat(np.arange(len(counts)), counts)
    best = np.inf
    for signs in itertools.product((1.0, -1.0), repeat=labels.size - 1):
        z = np.array((1.0, *signs))[:, None]  # the first sign fixed: the loss is even
        best = min(best, _ufm_brute_loss(z, labels, tau))
    return best


def _deep_one_line(proc_or_err: str, *needles: str) -> str:
    lines = proc_or_err.strip().splitlines()
    assert len(lines) == 1, proc_or_err
    assert "Traceback" not in proc_or_err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def _deep(stand_in_epochs, monkeypatch):
    """Stand-in epochs (``conftest.stand_in_epochs``, no compilation) and the digits data."""
    from deep.data import load_digits

    monkeypatch.setenv("SCL_GEOMETRY_CACHE", "off")
    return load_digits()


def _deep_cfg(**changes):
    from deep.configs import TrainConfig

    return TrainConfig(arch="resnet-tiny", n_maj=20, R=2, batch_size=50, epochs=3).replace(**changes)


def _deep_main(argv, capsys) -> tuple[int, str, str]:
    from deep.train_cmd import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _deep_set_checkpoint_epoch(path: Path, epoch) -> None:
    with np.load(path) as f:
        arrays = dict(f)
    arrays["epoch"] = np.asarray(epoch)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


TINY_FLAGS = ["--arch", "resnet-tiny", "--n-maj", "20", "--R", "2", "--batch-size", "50", "--quiet"]


def _deep_catches_sigint(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGINT (Linux: the SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    return False


def _rep_record(epoch, **fields):
    """One metrics.jsonl record as ``deep.train`` writes it (k = 3)."""
    rec = {"epoch": epoch, "loss": 1.0 / epoch, "delta_gm_of": 0.5 / epoch, "delta_gm_etf": 0.6 / epoch,
           "nc1": 0.1 / epoch, "cos_maj_maj": 0.1, "cos_min_min": 0.2, "cos_maj_min": -0.1,
           "ncm_train_acc": 0.9, "ncm_test_acc": 0.8, "lr": 0.1, "seconds": 1.0,
           "class_mean_gram": [[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]]}
    rec.update(fields)
    return rec


def _rep_write_run(d, config, records=(), raw_lines=()):
    """A run folder: config.json ``{"config": config}``, metrics.jsonl of ``records`` (JSON)
    followed by ``raw_lines`` (bytes, written as they are)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"config": config}))
    with open(d / "metrics.jsonl", "wb") as fh:
        for r in records:
            fh.write(json.dumps(r).encode() + b"\n")
        for line in raw_lines:
            fh.write(line + b"\n")
    return d


def _rep_main(argv, capsys):
    """``deep.report_cmd.main(argv)`` in-process: (exit status, stdout, stderr lines)."""
    from deep.report_cmd import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def _rep_table_rows(out):
    """The final table's data rows (before the over-seeds summary)."""
    rows = out.strip().splitlines()
    return rows[1:rows.index("")] if "" in rows else rows[1:]


def _rep_one_error(code, err, *parts):
    assert code == 2, err
    assert len(err) == 1 and "error:" in err[0] and "Traceback" not in err[0], err
    for part in parts:
        assert str(part) in err[0], (part, err)


def _tc_run(module, args, memory=None, timeout=60):
    env = dict(os.environ)
    if memory is not None:
        env["SCL_GEOMETRY_MEMORY"] = memory
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _tc_one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def _tc_write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


# ----------------------------------------------------------------------------- item 1: outputs to a device node are refused


# 1. `--out DEV` where DEV is a device node (as root: `--out /dev/null` or `/dev/full`): exit 0,
#    and the device is replaced by a regular JSON file. Same for `ufm.certify` and
#    `theory_checks.batches`. (A FIFO stands for the device: the same non-regular file, no root.)
# 3. `--out link.json` where link.json is a symlink: the link is replaced by a file.
# 7. `--out d` where d is a dangling symlink: FileExistsError traceback.
@pytest.mark.parametrize("module, args, flags", [
    ("ufm.solve", ["--counts", "3,3", "--quiet"], ("--out", "--save-embeddings")),
    ("ufm.certify", ["--counts", "3,3"], ("--out",)),
    ("theory_checks.batches", ["--counts", "3,3", "--batch-size", "2"], ("--out",)),
])
def test_item1_item3_item7_outputs_refuse_devices_fifos_and_links(tmp_path, module, args, flags):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "target.json"
    target.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "missing.json")
    for path, words in ((fifo, "not a regular file"), (link, "symbolic link"),
                        (dangling, "symbolic link")):
        for flag in flags:
            out = _out_cli(module, *args, flag, str(path))
            assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr
            assert out.stderr.count("\n") == 1, out.stderr  # one error line
            assert flag in out.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink() and target.read_text() == "keep"
    assert dangling.is_symlink() and not (tmp_path / "missing.json").exists()


# 1. ... (the atomic writer itself refuses such targets: the library is safe too)
def test_item1_atomic_write_refuses_non_regular_targets(tmp_path):
    from ufm.cli.io import write_json_atomic

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "t.json")
    for path in (fifo, link):
        with pytest.raises(OSError, match="not a regular file"):
            write_json_atomic(path, {"a": 1})
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link.json"]  # no temp left


# ----------------------------------------------------------------------------- item 2: --out and --save-embeddings are one file


# 2. `--out s.json --save-embeddings s.json`: the JSON result is silently overwritten by the npz.
def test_item2_out_and_save_embeddings_must_differ(tmp_path):
    path = tmp_path / "same.json"
    out = _out_cli("ufm.solve", "--counts", "3,3", "--quiet", "--out", str(path),
                   "--save-embeddings", str(tmp_path / "." / "same.json"))
    assert out.returncode == 2 and "also the --out file" in out.stderr and not path.exists()


# ----------------------------------------------------------------------------- item 4: a corrupt checkpoint epoch


# 4. `deep.train --resume` with a checkpoint whose epoch field is corrupt (e.g. -5): traceback,
#    and `metrics.jsonl` is emptied first.
@pytest.mark.parametrize("epoch, needle", [(-5, "its epoch is -5"), (0, "its epoch is 0"),
                                           (99, "past the run's 3 epochs"),
                                           ([1, 2], "cannot read checkpoint")])
def test_item4_corrupt_checkpoint_epoch_is_refused_and_nothing_is_touched(_deep, tmp_path, capsys,
                                                                         epoch, needle):
    from deep.training import train_and_evaluate

    work = tmp_path / "run"
    train_and_evaluate(_deep_cfg(), work, stop_after=2, data=_deep)
    _deep_set_checkpoint_epoch(work / "checkpoint.npz", epoch)
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    code, out, err = _deep_main(["--out", str(work), "--resume", "--quiet"], capsys)
    assert code == 2
    _deep_one_line(err, "argument --resume", needle)
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before  # metrics.jsonl kept whole


# ----------------------------------------------------------------------------- item 5: two runs in one folder (the run lock)


# 5. Two `deep.train` runs with the same `--out` at once: both exit 0 and every epoch appears
#    twice in metrics.jsonl. There is no lock.
def test_item5_a_run_folder_in_use_is_refused(_deep, tmp_path):
    from deep.rundir import run_lock
    from deep.training import StartError, train_and_evaluate

    work = tmp_path / "run"
    with run_lock(work):
        with pytest.raises(StartError, match=f"in use by another deep.train [(]pid {os.getpid()}[)]") as err:
            train_and_evaluate(_deep_cfg(), work, data=_deep)
        assert err.value.argument == "--out"
        with pytest.raises(StartError, match="in use"):
            train_and_evaluate(_deep_cfg(), work, resume=True, data=_deep)
    assert not (work / "metrics.jsonl").exists()
    train_and_evaluate(_deep_cfg(), work, data=_deep)  # released: the run goes ahead
    assert [json.loads(x)["epoch"] for x in (work / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


# 5. ... (the lock is the kernel's: a process killed with -9 leaves the folder free)
def test_item5_lock_of_a_killed_process_is_released(tmp_path):
    pytest.importorskip("flax")
    work = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from deep.rundir import run_lock
            with run_lock({str(work)!r}):
                print("locked", flush=True)
                time.sleep(60)
        """)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = subprocess.run([sys.executable, "-m", "deep.train", *TINY_FLAGS, "--out", str(work)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        _deep_one_line(proc.stderr, "argument --out", f"pid {holder.pid}", "in use")
    finally:
        holder.kill()
        holder.wait()
    from deep.rundir import run_lock

    with run_lock(work):  # free again at once
        pass


# ----------------------------------------------------------------------------- item 6: tracebacks and allocations from huge or tiny values


# "python -m ufm.solve --counts 3,3 --tau 1e-300: today a traceback ... --tau not named"
def test_item6_tau_tiny_is_a_usage_error_naming_tau_and_range():
    res = _ufm_run("ufm.solve", "--counts", "3,3", "--tau", "1e-300")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "argument --tau" in lines[0] and "[1e-06, 1e+06]" in lines[0]


# "Also check --tau 1e308 / huge values behave" (and --tau-path, the same range)
@pytest.mark.parametrize("argv", [["--tau", "1e308"], ["--tau", "1e7"], ["--tau", "nan"],
                                  ["--tau", "-0.1"], ["--tau-path", "0.1,1e-9"],
                                  ["--tau-path", "1e300"]])
def test_item6_tau_out_of_range_usage_error(argv, capsys):
    line = _ufm_usage_error(solve_cmd.main, ["--counts", "3,3", *argv], capsys)
    assert f"argument {argv[0]}" in line and "1e-06" in line and "1e+06" in line


# "API: ufm.core.checks.check_tau used by Problem/solve/certify" with a limit
@pytest.mark.parametrize("tau", [1e-300, 1e-7, 2e6, 1e308, float("nan")])
def test_item6_tau_api_range(tau):
    with pytest.raises(ValueError, match=r"tau must be a finite number > 0, in \[1e-06, 1e\+06\]"):
        Problem.create([3, 3], tau=tau)
    with pytest.raises(ValueError, match="tau"):
        ufm.solve([3, 3], tau=tau)
    with pytest.raises(ValueError, match="tau"):
        ufm.certify([3, 3], tau, nonneg=True)
    assert check_tau(TAU_MIN) == TAU_MIN and check_tau(TAU_MAX) == TAU_MAX


# "the range of tau in which the float64 solver and certificates stay finite and meaningful"
@pytest.mark.parametrize("tau", [TAU_MIN, TAU_MAX])
def test_item6_tau_limits_stay_finite_and_meaningful(tau):
    res = ufm.solve([3, 3], tau=tau)
    assert np.isfinite(res.loss)
    ref = ufm.etf_loss([3, 3], tau)
    assert res.status == "optimal"
    assert abs(res.loss - ref) <= 1e-6 * ref  # not below the optimum by rounding either
    bound = ufm.certify([3, 3], tau, nonneg=False, method="dual", z=res.z)
    assert np.isfinite(bound.lower_bound) and bound.lower_bound <= res.loss * (1 + 1e-9)


# "--counts 99999999999,3 ... today a traceback after trying to allocate 373 GiB" (real budget)
def test_item6_huge_counts_real_budget_solve():
    res = _ufm_run("ufm.solve", "--counts", "99999999999,3")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert lines[0].startswith("python -m ufm.solve: error: argument --counts: N = 100000000002 samples needs about")
    assert "of memory is available" in lines[0]


# "Bound input sizes BEFORE memory is allocated ... The error names the flag ... and the limit"
@pytest.mark.parametrize("argv, flag", [
    (["--counts", "3000,3000"], "--counts"),
    (["--k", "1000", "--R", "1000000", "--n-min", "1000"], "--k/--R/--n-min"),
    (["--k", "1000", "--R", "1000000", "--n-min", "99999999999999"], "--k/--R/--n-min"),
    (["--counts", "30,30", "--d", "100000"], "--counts"),
    (["--counts", "300,300", "--batch-size", "600", "--epochs", "10000"], "--counts"),
])
def test_item6_memory_budget_names_flag(argv, flag, capsys, monkeypatch):
    monkeypatch.setenv("SCL_GEOMETRY_MEMORY", "64M")
    line = _ufm_usage_error(solve_cmd.main, [*argv, "--quiet"], capsys)
    assert f"argument {flag}: N = " in line
    assert "64.0 MiB of memory is available" in line or "beyond any memory" in line


# "ufm.certify's methods (the full relaxation is an N x N SDP: check there is already a cap ...)"
def test_item6_certify_sizes(capsys, monkeypatch):
    line = _ufm_usage_error(certify_cmd.main, ["--counts", "99999999999,3"], capsys)
    assert "argument --counts" in line and "N < 2**26" in line
    line = _ufm_usage_error(certify_cmd.main, ["--counts", "300,300", "--method", "full"], capsys)
    assert "argument --method" in line and "N <= 400" in line
    monkeypatch.setenv("SCL_GEOMETRY_MEMORY", "1M")
    line = _ufm_usage_error(certify_cmd.main, ["--k", "1000", "--method", "reduced"], capsys)
    assert "argument --k/--R/--n-min" in line and "1.0 MiB of memory is available" in line


# "the Python API: ufm.solve([99999999999, 3]) should raise a ValueError ... before allocating"
def test_item6_api_huge_counts_raise_before_allocating():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"counts: N = 100000000002 samples needs about .* GiB"):
        ufm.solve([99999999999, 3])
    with pytest.raises(ValueError, match=r"counts: .*N < 2\*\*26"):
        ufm.certify([99999999999, 3], 0.1, nonneg=True)
    assert time.perf_counter() - t0 < 10


# "negative / NaN / huge values for every numeric flag, empty strings" (one line, exit 2)
@pytest.mark.parametrize("argv", [
    ["--counts", ""], ["--counts", "3"], ["--counts", "3,1"], ["--counts", "1e3,3"],
    ["--counts", "99999999999999999999999,3"], ["--d", "0"], ["--d", "1000001"],
    ["--seed", "-1"], ["--sphere-steps", "0"], ["--gap-tol", "nan"], ["--restarts", "101"],
    ["--batch-size", "1"], ["--epochs", "0"], ["--cert-tol", "inf"], ["--k", "1"], ["--R", "0.5"],
    ["--n-min", "1"], ["--rho", "1"], ["--tau", ""],
])
def test_item6_hostile_numeric_flags(argv, capsys):
    line = _ufm_usage_error(solve_cmd.main, argv, capsys)
    assert f"argument {argv[0]}" in line


# 6. `deep.train --arch resnet-tiny --n-maj 1000000000`: 27.9 GiB allocation traceback.
#    `deep.train ... --epochs 1000000000000`: OverflowError traceback, and the run folder it
#    leaves blocks reuse of --out.
@pytest.mark.parametrize("flags, needle", [
    (["--n-maj", "1000000000"], "argument --n-maj: class 0 has"),
    (["--epochs", "1000000000000"], "argument --epochs: 1000000000000 epochs of 3 steps exceed"),
])
def test_item6_huge_sizes_are_refused_before_allocating_and_leave_no_folder(tmp_path, capsys, flags,
                                                                            needle):
    pytest.importorskip("flax")
    import resource

    work = tmp_path / "run"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, out, err = _deep_main([*TINY_FLAGS, *flags, "--out", str(work)], capsys)
    assert code == 2
    _deep_one_line(err, needle)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 2 * 2**20  # KiB: < 2 GiB
    assert not work.exists()  # nothing left that would block --out


# 6. ... (--seeds: the stacked state is bounded by the memory available)
def test_item6_seeds_bounded_by_memory(_deep, tmp_path, monkeypatch):
    from deep.training import StartError, train_and_evaluate

    monkeypatch.setenv("SCL_GEOMETRY_MEMORY", "64M")
    with pytest.raises(StartError, match="needs about .* GiB .*1000 x resnet18.*64.0 MiB of memory") as err:
        train_and_evaluate(_deep_cfg(arch="resnet18", seeds=1000), tmp_path / "run", data=_deep)
    assert err.value.argument == "--seeds" and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- item 7: dangling links; a full disk on --resume


# 7. `--resume` on a full disk: OSError traceback and a stray `.metrics.jsonl.tmp`.
def test_item7_full_disk_on_resume_one_line_no_stray_file(_deep, tmp_path, capsys, monkeypatch):
    import ufm.cli.io
    from deep.training import train_and_evaluate

    work = tmp_path / "run"
    train_and_evaluate(_deep_cfg(), work, stop_after=1, data=_deep)
    with open(work / "metrics.jsonl", "a") as fh:  # a line past the checkpoint: resume rewrites
        fh.write(json.dumps({"epoch": 2, "loss": 0.0}) + "\n")
    before = {p.name: p.read_bytes() for p in work.iterdir()}

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(ufm.cli.io.os, "fsync", full)
        code, out, err = _deep_main(["--out", str(work), "--resume", "--quiet"], capsys)
    assert code == 1
    _deep_one_line(err, "cannot write to", "No space left on device", "--resume")
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before  # no .tmp, nothing changed
    code, out, err = _deep_main(["--out", str(work), "--resume", "--quiet"], capsys)
    assert code == 0, err
    assert [json.loads(x)["loss"] for x in (work / "metrics.jsonl").read_text().splitlines()] == [1.0, 2.0, 3.0]


# ----------------------------------------------------------------------------- item 8: deep.report with garbage metrics.jsonl


# item 8: "a metrics line that is not a JSON object, or whose fields have the wrong type (e.g.
# "delta_gm_of": "abc", "epoch": -1 or 2.5 or true, a list instead of a number), is skipped"
@pytest.mark.parametrize("bad", [
    [1, 2], "text", 3, None,
    {"loss": 1.0},  # no epoch
    {"epoch": -1}, {"epoch": 0}, {"epoch": 2.5}, {"epoch": True}, {"epoch": "3"}, {"epoch": 2.0},
    _rep_record(1, delta_gm_of="abc"), _rep_record(1, nc1=[0.1]), _rep_record(1, loss=True),
    _rep_record(1, cos_maj_min={"a": 1}), _rep_record(1, ncm_test_acc=float("nan")),
    _rep_record(1, loss=float("inf")), _rep_record(1, loss=1e308), _rep_record(1, loss=10**400),
    _rep_record(1, class_mean_gram=[[1.0, 0.5], [0.5, 1.0], [0.0, 0.0]]),
    _rep_record(1, class_mean_gram=[[1.0, "x"], [0.5, 1.0]]),
    _rep_record(1, class_mean_gram=[[1.0, float("nan")], [0.5, 1.0]]),
    _rep_record(1, class_mean_gram=7),
])
def test_item8_clean_records_rejects_each_wrong_type(bad):
    good = _rep_record(2)
    records, skipped, repeated = clean_records([bad, good])
    assert (records, skipped, repeated) == ([good], 1, 0)


# item 8: "Validate the fields reporting uses (epoch: int >= 1; the metric fields: finite float or
# null; class_mean_gram: k x k list of numbers or null)" -- null and integers are fine
def test_item8_clean_records_keeps_nulls_and_integer_metrics():
    dead = _rep_record(1, delta_gm_of=None, nc1=None, class_mean_gram=None, loss=3)
    records, skipped, repeated = clean_records([dead, {"epoch": 2}])
    assert (skipped, repeated) == (0, 0) and [r["epoch"] for r in records] == [1, 2]
    assert records[0]["loss"] == 3.0 and type(records[0]["loss"]) is float
    assert records[0]["delta_gm_of"] is None and records[0]["class_mean_gram"] is None


# item 8: "is skipped with ONE warning line per run naming the file and how many lines were skipped"
def test_item8_bad_lines_skipped_with_one_warning(tmp_path, capsys):
    raw = [os.urandom(64).replace(b"\n", b"x"), b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"a string"',
           b'{"epoch": 4, "nc1": NaN}', b"[" * 100_000, b'{"epoch": 5, "loss": 1' + b"0" * 5000 + b"}",
           json.dumps(_rep_record(6, delta_gm_of="abc")).encode(),
           json.dumps({**_rep_record(7), "epoch": True}).encode()]
    run = _rep_write_run(tmp_path / "a", {"seed": 0}, [_rep_record(1), _rep_record(2)], raw)
    code, out, err = _rep_main([run, "--out", tmp_path / "plots"], capsys)
    assert code == 0, err
    warnings = [line for line in err if "warning" in line]
    assert len(warnings) == 1 and not any("Traceback" in line for line in err), err
    assert str(run / "metrics.jsonl") in warnings[0] and "skipped 9 of 11 lines" in warnings[0]
    rows = _rep_table_rows(out)
    assert len(rows) == 1 and rows[0].split()[1:3] == ["2", "0.5000"]  # epoch 2, loss 1/2
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "accuracy.png", "cosines.png", "delta_gm.png", "nc1.png"]


# item 8: "Duplicate epochs in a file (the same epoch twice) -- keep the last one and count it as
# a warning"
def test_item8_duplicate_epoch_keeps_the_last(tmp_path, capsys):
    run = _rep_write_run(tmp_path / "a", {"seed": 0},
                         [_rep_record(1), _rep_record(2, loss=7.0), _rep_record(2, loss=9.0)])
    code, out, err = _rep_main([run, "--out", tmp_path / "plots", "--json"], capsys)
    assert code == 0, err
    assert len(err) == 1 and "warning" in err[0] and "1 repeated epoch" in err[0], err
    assert "metrics.jsonl" in err[0] and "skipped" not in err[0]
    final = json.loads(out)["final"]
    assert [(f["epoch"], f["loss"]) for f in final] == [(2, 9.0)]


# item 8: "if a run has no usable line, an error naming the run path, exit 2"
@pytest.mark.parametrize("lines", [[], [b""], [b"\x80\x81\x82"], [b'{"epoch": 0}', b"[]"]])
def test_item8_run_without_usable_line_is_an_error(tmp_path, capsys, lines):
    good = _rep_write_run(tmp_path / "good", {"seed": 0}, [_rep_record(1)])
    empty = _rep_write_run(tmp_path / "empty", {"seed": 1}, raw_lines=lines)
    code, out, err = _rep_main([good, empty, "--out", tmp_path / "plots"], capsys)
    _rep_one_error(code, err, "argument RUN_DIR", empty / "metrics.jsonl", "no usable epoch")
    assert out == "" and not (tmp_path / "plots").exists()


# item 8: "a corrupt or wrong-typed config.json (random bytes, a JSON list, missing "config") must
# give one line naming the file"
@pytest.mark.parametrize("content, reason", [
    (b"\xff\xfe\x80 random \x00 bytes", "not valid UTF-8 JSON"),
    (b'{"config": {"seed": 0}', "not valid UTF-8 JSON"),
    (b"[" * 100_000, "not valid UTF-8 JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"seeds": [0]}', 'no "config"'),
    (b'{"config": [1]}', '"config" is not a JSON object'),
    (None, "missing"),
])
def test_item8_bad_config_is_one_line(tmp_path, capsys, content, reason):
    run = _rep_write_run(tmp_path / "a", {"seed": 0}, [_rep_record(1)])
    if content is None:
        (run / "config.json").unlink()
    else:
        (run / "config.json").write_bytes(content)
    code, out, err = _rep_main([run, "--out", tmp_path / "plots"], capsys)
    _rep_one_error(code, err, "argument RUN_DIR", run / "config.json", reason)


# item 8: "deep.report DIR with random bytes or wrong value types in metrics.jsonl: traceback"
# (end to end: the real entry point, exit status and stderr)
def test_item8_random_bytes_end_to_end(tmp_path):
    run = _rep_write_run(tmp_path / "a", {"seed": 0}, [_rep_record(1)],
                         [bytes(range(256)), b'{"epoch": "abc", "nc1": []}'])
    bad_cfg = _rep_write_run(tmp_path / "b", {"seed": 1}, [_rep_record(1)])
    (bad_cfg / "config.json").write_bytes(bytes(range(255, -1, -1)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    ok = subprocess.run([sys.executable, "-m", "deep.report", str(run), "--out", str(tmp_path / "p")],
                        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0 and "Traceback" not in ok.stderr, ok.stderr
    assert [ln for ln in ok.stderr.splitlines() if "warning" in ln] == [
        f"python -m deep.report: warning: {run / 'metrics.jsonl'}: skipped 3 of 4 lines (not a JSON "
        "object with an integer epoch >= 1 and finite numeric metrics or null)"]
    bad = subprocess.run([sys.executable, "-m", "deep.report", str(run), str(bad_cfg), "--out",
                          str(tmp_path / "q")], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert bad.returncode == 2 and bad.stdout == "", bad.stderr
    assert bad.stderr.splitlines()[-1].startswith("python -m deep.report: error: argument RUN_DIR: "
                                                  f"{bad_cfg / 'config.json'}")
    assert "Traceback" not in bad.stderr and not (tmp_path / "q").exists()


# item 8 ("Also try other hostile inputs"): a path that does not exist, a file, a folder with no
# runs, --out at a file / symbolic link / device, are one line each and write nothing
def test_item8_other_hostile_paths_are_one_line(tmp_path, capsys):
    run = _rep_write_run(tmp_path / "a", {"seed": 0}, [_rep_record(1)])
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "empty").mkdir()
    for argv, part in [([tmp_path / "nowhere"], "no such folder"), ([a_file], "is not a folder"),
                       ([tmp_path / "empty"], "holds no metrics.jsonl"),
                       ([run, "--out", a_file], "is a file, not a folder"),
                       ([run, "--out", os.devnull], "is a file, not a folder")]:
        _rep_one_error(*_rep_main(argv, capsys)[::2], "argument", part)
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "nc1.png").symlink_to(a_file)
    _rep_one_error(*_rep_main([run, "--out", plots], capsys)[::2], "argument --out",
                   plots / "nc1.png", "symbolic link")
    assert a_file.read_text() == "x" and sorted(p.name for p in plots.iterdir()) == ["nc1.png"]


# item 8 ("Also try other hostile inputs"): all-null geometry (dead ReLU), a single epoch, runs
# with different numbers of classes and epochs mixed, 10,000 epochs (still fast)
def test_item8_dead_relu_single_epoch_mixed_and_long_runs(tmp_path, capsys):
    nulls = dict.fromkeys(("delta_gm_of", "delta_gm_etf", "nc1", "cos_maj_maj", "cos_min_min",
                           "cos_maj_min", "class_mean_gram"))
    dead = _rep_write_run(tmp_path / "dead", {"relu": True, "seed": 0},
                          [_rep_record(e, **nulls) for e in (1, 2)])
    single = _rep_write_run(tmp_path / "single", {"relu": False, "seed": 0}, [_rep_record(1)])
    gram5 = [[1.0] * 5 for _ in range(5)]
    long = _rep_write_run(tmp_path / "long", {"relu": False, "seed": 1},
                          [_rep_record(e, class_mean_gram=gram5) for e in range(1, 10_001)])
    code, out, err = _rep_main([dead, single, long, "--out", tmp_path / "plots", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    final = {f["run"]: f for f in report["final"]}
    assert final[str(dead)]["epoch"] == 2 and final[str(dead)]["delta_gm_of"] is None
    assert final[str(long)]["epoch"] == 10_000
    # the two relu=False seeds end at different epochs: said, not silently averaged
    assert any("warning" in ln and "different epochs (1, 10000)" in ln for ln in err), err
    code, out, err = _rep_main([dead], capsys)  # the table: "-" for the missing geometry
    assert code == 0 and _rep_table_rows(out)[0].split()[1:5] == ["2", "0.5000", "-", "-"]


# ----------------------------------------------------------------------------- item 9: two SIGINTs; an interrupt during a write


# 9. Two SIGINTs 50 ms apart: exit 130 but a KeyboardInterrupt traceback.
# 14. ... SIGINT during start-up of a background job started from a script is ignored.
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("delay", [0.0, 0.5, 1.5])
def test_item9_two_sigints_any_moment_exit_130_one_line(delay):
    env = {**os.environ, "SCL_GEOMETRY_CACHE": "off"}  # no cache: the solve outlasts the signals
    # started as a script's background job is: with SIGINT ignored
    proc = subprocess.Popen(["bash", "-c", 'trap "" INT; exec "$@"', "bash", sys.executable, "-m",
                             "ufm.solve", "--k", "10", "--R", "100", "--nonneg", "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not _deep_catches_sigint(proc.pid):  # the entry module's first line: still importing JAX
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["python -m ufm.solve: interrupted"], err


# 9. ... (an interrupt during a write removes the temp file; the target keeps its old content)
def test_item9_interrupt_during_an_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    code = textwrap.dedent(f"""
        import sys, time
        from ufm.cli.signals import install
        from ufm.cli.io import atomic_write
        install("python -m demo")
        def slow(fh):
            fh.write(b"new, partial")
            print("writing", flush=True)
            time.sleep(60)
        atomic_write({str(target)!r}, slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    with_second = proc.poll() is None
    if with_second:
        proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 130 and err.strip() == "python -m demo: interrupted"
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


# ----------------------------------------------------------------------------- item 10: unbounded batches files and --epochs


# "theory_checks.graph --batches /dev/zero: memory grows to 19 GB in 20 s until killed."
def test_item10_graph_refuses_dev_zero_at_once():
    r = _tc_run("theory_checks.graph", ["--batches", "/dev/zero"], memory="1G", timeout=30)
    _tc_one_line_error(r, "--batches", "/dev/zero", "not a regular file")


# "A batches file must be a regular file (refuse devices, FIFOs, folders ...)"
def test_item10_graph_refuses_fifo_and_folder_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = _tc_run("theory_checks.graph", ["--batches", str(fifo)], timeout=30)  # open would block
    _tc_one_line_error(r, "--batches", "not a regular file")
    r = _tc_run("theory_checks.graph", ["--batches", str(tmp_path)], timeout=30)
    _tc_one_line_error(r, "--batches", "folder")


# "A 2 GB sparse file is read whole into memory."
def test_item10_sparse_file_refused_by_size_before_reading(tmp_path):
    big = tmp_path / "sparse.json"
    with open(big, "wb") as f:
        f.truncate(2 * 2**30)  # no disk used
    r = _tc_run("theory_checks.graph", ["--batches", str(big)], memory="256M", timeout=30)
    _tc_one_line_error(r, "--batches", "too big to read", "at most 85.3 MiB", "2.0 GiB")


# "its size is checked before reading ... and also read with a bounded read"
def test_item10_bounded_read_stops_at_the_limit_for_a_file_that_lies_about_its_size():
    from theory_checks.io import BatchesFileError, read_json_file

    # /proc files report size 0; with a 30-byte budget the limit is 10 bytes
    with pytest.raises(BatchesFileError, match="holds more than 10 B"):
        read_json_file("/proc/self/maps", budget=30)


# "JSON text of n integers becomes Python ints/lists of roughly X bytes each": the parse is
# estimated before it runs (10^6 batches of one index: about 27 x the text)
def test_item10_parse_estimate_refuses_tiny_batches_the_size_check_lets_through(tmp_path):
    from theory_checks.io import parse_estimate

    path = tmp_path / "tiny.json"
    path.write_text('{"labels": [0, 1], "batches": [' + ",".join(["[0]"] * 1_000_000) + "]}")
    size = path.stat().st_size
    assert parse_estimate(path.read_bytes()) > 25 * size
    r = _tc_run("theory_checks.graph", ["--batches", str(path)], memory=str(4 * size))
    _tc_one_line_error(r, "--batches", "too big to read", "needs about")


# "theory_checks.batches --epochs 1000000000000: runs unbounded (+25 MB/s)."
def test_item10_huge_epochs_refused_at_once_naming_the_largest_value(tmp_path):
    out = tmp_path / "b.json"
    r = _tc_run("theory_checks.batches", ["--epochs", "1000000000000", "--out", str(out)],
                memory="1G", timeout=30)
    _tc_one_line_error(r, "argument --epochs", "at most", "epochs")
    most = int(r.stderr.split("at most ")[1].split()[0])
    assert 1000 < most < 1000000000000
    assert not out.exists()


# "bound E (and batch size, N) before generating, with too_big on the memory the schedule needs"
def test_item10_epochs_bound_follows_the_memory_budget(tmp_path):
    args = ["--counts", "1000,1000", "--epochs", "1000", "--out", str(tmp_path / "b.json")]
    r = _tc_run("theory_checks.batches", args, memory="1M")
    _tc_one_line_error(r, "argument --epochs", "1.0 MiB of memory is available", "at most 23 epochs")
    r = _tc_run("theory_checks.batches", [*args[:3], "23", *args[4:], "--quiet"], memory="1M")
    assert r.returncode == 0, r.stderr


# "Same for theory_checks.batches --labels FILE"
def test_item10_labels_file_is_bounded_too(tmp_path):
    out = str(tmp_path / "b.json")
    r = _tc_run("theory_checks.batches", ["--labels", "/dev/zero", "--out", out], timeout=30)
    _tc_one_line_error(r, "argument --labels", "not a regular file")
    big = _tc_write(tmp_path / "labels.json", list(range(100_000)))
    r = _tc_run("theory_checks.batches", ["--labels", big, "--out", out], memory="1M")
    _tc_one_line_error(r, "argument --labels", "too big to read")


# "Check that ufm.solve --batches FILE gets the same protection"
def test_item10_solve_batches_gets_the_same_protection(tmp_path):
    r = _tc_run("ufm.solve", ["--batches", "/dev/zero"], memory="1G", timeout=60)
    _tc_one_line_error(r, "--batches", "not a regular file")


# "empty file, a JSON array at top level ... negative/huge --batch-size/--seed"
@pytest.mark.parametrize("module, args, words", [
    ("theory_checks.graph", ["--batches", "{empty}"], ["--batches", "not valid JSON"]),
    ("theory_checks.graph", ["--batches", "{array}"], ["--batches", "top level must be a JSON object"]),
    ("theory_checks.batches", ["--labels", "{empty}", "--out", "{out}"], ["--labels", "not valid JSON"]),
    ("theory_checks.batches", ["--batch-size", "-5", "--out", "{out}"], ["--batch-size", "[2, inf)"]),
    ("theory_checks.batches", ["--seed", "99999999999999999999", "--out", "{out}"], ["--seed"]),
    ("theory_checks.batches", ["--counts", "3,3", "--drop-last", "--batch-size", "9", "--out", "{out}"],
     ["--batch-size", "no batch left"]),
])
def test_item10_hostile_small_inputs_give_one_line(tmp_path, module, args, words):
    (tmp_path / "empty.json").write_text("")
    names = {"empty": str(tmp_path / "empty.json"), "out": str(tmp_path / "o.json"),
             "array": _tc_write(tmp_path / "array.json", [0, 1, 2])}
    r = _tc_run(module, [a.format(**names) for a in args], timeout=30)
    _tc_one_line_error(r, *words)


# "labels of 10^9 classes (e.g. labels [0, 999999999]: does anything allocate O(max label)?)"
def test_item10_huge_label_values_cost_nothing(tmp_path):
    f = _tc_write(tmp_path / "b.json", {"labels": [0, 999999999, 0, 999999999], "batches": [[0, 1, 2, 3]]})
    r = _tc_run("theory_checks.graph", ["--batches", f, "--json"], memory="200M")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["classes"] == [0, 999999999]
    out = tmp_path / "o.json"
    r = _tc_run("theory_checks.batches", ["--labels", f, "--schedule", "binding", "--batch-size", "2",
                                          "--out", str(out), "--quiet"], memory="200M")
    assert r.returncode == 0, r.stderr


# many classes: the k x k class pairs of (b) and their list, bounded before they are built
def test_item10_many_classes_refused_before_the_pair_list(tmp_path):
    n = 4000  # 2000 classes in pure batches of two: 2 million failing pairs (~0.8 GB listed)
    f = _tc_write(tmp_path / "b.json", {"labels": [i // 2 for i in range(n)],
                                        "batches": [[i, i + 1] for i in range(0, n, 2)]})
    r = _tc_run("theory_checks.graph", ["--batches", f], memory="300M")
    _tc_one_line_error(r, "--batches", "too big to check", "1999000 class pairs")


# "Use it [to_json] for every JSON the theory_checks CLIs print": strict JSON, no NaN
def test_item10_graph_json_is_strict(tmp_path):
    f = _tc_write(tmp_path / "b.json", {"labels": [0, 0, 1, 1], "batches": [[0, 1, 2], [0, 2, 3]]})
    r = _tc_run("theory_checks.graph", ["--batches", f, "--json"])
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


# ----------------------------------------------------------------------------- item 11: --resume surprises


# 11. `deep.train --out NEWDIR --resume` starts a fresh run with default flags after one
#     "note:" line.
def test_item11_resume_on_a_new_folder_says_it_starts_a_new_run_with_these_flags(_deep, tmp_path,
                                                                                 capsys):
    work = tmp_path / "new"
    code, out, err = _deep_main([*TINY_FLAGS, "--epochs", "2", "--lr", "0.05", "--out", str(work),
                                 "--resume"], capsys)
    assert code == 0, err
    note = err.strip().splitlines()[0]
    assert note.startswith(f"note: {work} holds no run: --resume starts a NEW run")
    for flag in ("arch=resnet-tiny", "n_maj=20", "epochs=2", "lr=0.05", "batch_size=50"):
        assert flag in note
    saved = json.loads((work / "config.json").read_text())["config"]
    assert (saved["arch"], saved["epochs"], saved["lr"]) == ("resnet-tiny", 2, 0.05)


# 11. ... `--resume` after deleting metrics.jsonl loses the epoch-1 line
@pytest.mark.parametrize("damage, needle", [
    ("delete", "lacks the line of epochs 1-2"),
    ("first line", "lacks the line of epoch 1 "),
])
def test_item11_resume_with_lost_metrics_lines_is_an_error(_deep, tmp_path, capsys, damage, needle):
    from deep.training import train_and_evaluate

    work = tmp_path / "run"
    train_and_evaluate(_deep_cfg(), work, stop_after=2, data=_deep)
    metrics = work / "metrics.jsonl"
    if damage == "delete":
        metrics.unlink()
    else:
        metrics.write_text(metrics.read_text().split("\n", 1)[1])
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    code, out, err = _deep_main(["--out", str(work), "--resume", "--quiet"], capsys)
    assert code == 2
    _deep_one_line(err, "argument --resume", needle, "checkpoint is at epoch 2", "cannot be recomputed")
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before


# 11. ... a checkpoint at epoch 99 with `--epochs 3` says "all 3 epochs done", exit 0
#     (shown with test_item4's epoch 99); and files of a run without its config.json are not
#     silently replaced by a fresh run
def test_item11_files_of_a_run_without_config_are_not_overwritten(_deep, tmp_path, capsys):
    from deep.training import train_and_evaluate

    work = tmp_path / "run"
    train_and_evaluate(_deep_cfg(), work, stop_after=2, data=_deep)
    (work / "config.json").unlink()
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    for extra in ([], ["--resume"]):
        code, out, err = _deep_main([*TINY_FLAGS, "--out", str(work), *extra], capsys)
        assert code == 2
        _deep_one_line(err.splitlines()[-1], "argument --out", "checkpoint.npz, metrics.jsonl",
                       "no config.json")
        assert {p.name: p.read_bytes() for p in work.iterdir()} == before


# ----------------------------------------------------------------------------- item 12: deep.report counts a run twice


# item 12: "deep.report runs/a runs/a counts one run as two seeds ("n=2, sd 0"). Deduplicate by
# resolved real path (also runs/a and runs/a/ and ./runs/a and a symlink to it, and a run dir
# given both directly and through its parent's seed_* expansion)"
def test_item12_same_run_given_twice_counts_once(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _rep_write_run(tmp_path / "runs" / "a", {"relu": True, "seed": 0}, [_rep_record(1, delta_gm_of=0.2)])
    _rep_write_run(tmp_path / "runs" / "b", {"relu": True, "seed": 1}, [_rep_record(1, delta_gm_of=0.4)])
    (tmp_path / "link").symlink_to(tmp_path / "runs" / "a")
    code, out, err = _rep_main(["runs/a", "runs/a", "runs/a/", "./runs/a", "link",
                                str(tmp_path / "runs" / "a"), "runs/b", "--out", "plots"], capsys)
    assert code == 0, err
    assert len(_rep_table_rows(out)) == 2
    summary = out.strip().splitlines()[-1].split()
    assert summary[summary.index("(+1)") + 1] == "2"  # n = 2 seeds, not 7
    assert "0.300 +- 0.141 [0.200, 0.400]" in out  # sd of 0.2 and 0.4, not of five copies of 0.2
    dup = [ln for ln in err if "warning" in ln]
    assert len(dup) == 5 and all("runs/a again" in ln and "counted once" in ln for ln in dup), err
    for given in ("'runs/a'", "'runs/a/'", "'./runs/a'", "'link'"):
        assert any(given in ln for ln in dup), given


# item 12: "... and a run dir given both directly and through its parent's seed_* expansion"
def test_item12_seed_folder_and_its_parent_count_once(tmp_path, capsys):
    multi = tmp_path / "multi"
    for s in (0, 1):
        _rep_write_run(multi / f"seed_{s}", {"seed": s}, [_rep_record(1, delta_gm_of=0.2 + 0.2 * s)])
    code, out, err = _rep_main([multi / "seed_1", multi, "--json", "--out", tmp_path / "p"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert [f["run"] for f in report["final"]] == [str(multi / "seed_1"), str(multi / "seed_0")]
    assert [len(g["runs"]) for g in report["seed_groups"]] == [2]
    assert len(err) == 1 and "warning" in err[0] and "(its seed_1)" in err[0], err


# ----------------------------------------------------------------------------- item 13: strict JSON output


# item 13: "deep.report --json on NaN metrics prints NaN / Infinity, which strict JSON parsers
# reject. Use the new ufm.core.jsonable.to_json (strict: NaN/inf -> null, allow_nan=False) for
# every JSON deep.report prints"
def test_item13_report_json_is_strict(tmp_path, capsys):
    # a diverged epoch (metrics null, as deep.train writes NaN) and extra fields holding NaN /
    # Infinity literally (fields deep.report passes through unchecked)
    run = _rep_write_run(tmp_path / "a", {"seed": 0}, [_rep_record(1)], [
        b'{"epoch": 2, "loss": null, "delta_gm_of": null, "grad_norm": NaN, '
        b'"extra": [Infinity, -Infinity, 1.5]}'])
    code, out, err = _rep_main([run, "--json", "--out", tmp_path / "p"], capsys)
    assert code == 0, err
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    (final,) = report["final"]
    assert final["epoch"] == 2 and final["loss"] is None and final["grad_norm"] is None
    assert final["extra"] == [None, None, 1.5] and final["run"] == str(run)
    assert "NaN" not in out and "Infinity" not in out


# item 13: "Also deep/bench_cmd.py prints JSON with json.dumps: switch it to to_json too"
def test_item13_bench_json_is_strict(capsys, monkeypatch):
    pytest.importorskip("flax")
    import deep.benchmark as benchmark

    def fake_bench(*, batch_size, seeds, conv, **kw):
        return {"batch_size": batch_size, "seeds": seeds, "conv": conv, "images_per_s": math.inf,
                "step_ms": 0.0, "compile_seconds": 0.0, "final_loss": math.nan, "params": 1,
                "device": "cpu"}

    monkeypatch.setattr(benchmark, "bench_jax", fake_bench)
    from deep.bench_cmd import main

    assert main(["--quick", "--no-torch", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert [(r["final_loss"], r["images_per_s"]) for r in report["rows"]] == [(None, None)] * 4


# ----------------------------------------------------------------------------- item 14: --d 1, a trailing comma, SIGINT at start-up


# "--counts 3,3, (trailing comma) is accepted: reject empty entries ... Same for --tau-path"
@pytest.mark.parametrize("flag, value", [("--counts", "3,,3"), ("--counts", "3,3,"), ("--counts", ",3,3"),
                                         ("--tau-path", "0.2,,0.1"), ("--tau-path", "0.2,"),
                                         ("--tau-path", ",0.2")])
def test_item14_empty_list_entries_rejected(flag, value, capsys):
    argv = ["--counts", "3,3", flag, value] if flag == "--tau-path" else [flag, value]
    line = _ufm_usage_error(solve_cmd.main, argv, capsys)
    assert f"argument {flag}" in line and repr(value) in line


# "Make d = 1 work correctly ... tests against a brute-force enumeration of ALL sign vectors"
@pytest.mark.parametrize("counts", [[3, 3], [2, 2, 2], [3, 2], [2, 3, 2, 2]])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_item14_d1_matches_brute_force(counts, tau):
    best = _ufm_brute_d1(counts, tau)
    res = ufm.solve(counts, d=1, tau=tau)
    assert res.status == "optimal"
    assert res.loss == pytest.approx(best, rel=1e-12)
    labels = np.repeat(np.arange(len(counts)), counts)
    assert set(np.abs(res.z).ravel().tolist()) == {1.0} and res.z.shape == (sum(counts), 1)
    assert _ufm_brute_loss(res.z, labels, tau) == pytest.approx(res.loss, rel=1e-12)


# "ufm.solve --counts 3,3 --d 1 reports not_optimal although the optimum (antipodal +-1) fits"
def test_item14_d1_cli_antipodal_optimal(capsys):
    assert solve_cmd.main(["--counts", "3,3", "--d", "1", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "optimal" and report["optimum_kind"] == "enumeration"
    assert report["loss"] == pytest.approx(ufm.etf_loss([3, 3], 0.1), rel=1e-12)
    assert report["metrics"]["class_mean_gram"][0][1] == pytest.approx(-1.0)


# "with --nonneg in d = 1 every z is +1 (all features equal)"
def test_item14_d1_nonneg_only_point(capsys):
    assert solve_cmd.main(["--counts", "3,3", "--d", "1", "--nonneg", "--json", "--quiet"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["status"] == "optimal" and report["optimum_kind"] == "only_point"
    labels = np.repeat([0, 1], 3)
    assert report["loss"] == pytest.approx(_ufm_brute_loss(np.ones((6, 1)), labels, 0.1), rel=1e-12)
    assert "warning" not in out.err


# "Check ... k = 3, 4 in d = 1 too" (sign search beyond enumeration: optimal only at a bound)
def test_item14_d1_larger_k_is_honest():
    for counts in ([50, 50, 50], [40, 40, 40, 40], [100, 60, 30, 10]):
        res = ufm.solve(counts, d=1, tau=0.1)
        assert np.isfinite(res.loss)
        a = (res.z[:, 0] > 0).reshape(-1)
        labels = np.repeat(np.arange(len(counts)), counts)
        plus = np.bincount(labels[a], minlength=len(counts))
        assert sign_pattern_loss(plus, np.array(counts), 0.1)[0] == pytest.approx(res.loss, rel=1e-12)
        if res.status == "optimal":
            assert res.optimum is not None and res.loss <= res.optimum * (1 + 1e-6)
        else:
            assert res.status == "converged" and res.optimum is None and res.warnings
    big = ufm.solve([5] * 20, d=1, tau=0.1)  # 6^20 count vectors: searched, not enumerated
    assert big.optimum_kind != "enumeration"
    assert big.status in ("optimal", "converged") and (big.status == "optimal" or big.warnings)


# "d = 1" with batches: no sign search there, so a clear error naming d (API and CLI)
def test_item14_d1_batches_rejected(capsys):
    with pytest.raises(ValueError, match="d = 1 needs the full batch"):
        ufm.solve([3, 3], d=1, batches=[[0, 1, 3, 4], [2, 5]])
    line = _ufm_usage_error(solve_cmd.main, ["--counts", "3,3", "--d", "1", "--batch-size", "4"], capsys)
    assert "argument --d" in line
