"""Output paths: every CLI refuses an output it cannot write before it computes anything (one
line, exit 2), reports a write that fails later on one line too, and writes figures atomically.

The unwritable path used throughout is a path *under a regular file* (``<file>/x``): it fails
for every user, root included (permission bits do not stop root).
"""

from __future__ import annotations

import errno
import importlib
import os
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ufm.cli.args import unwritable_reason  # noqa: E402
from ufm.cli.io import save_figure_atomic  # noqa: E402


@pytest.fixture()
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def _exit(main, argv, capsys, monkeypatch) -> subprocess.CompletedProcess:
    monkeypatch.setenv("SCL_GEOMETRY_CACHE", "off")
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def _one_line(proc, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unwritable_reason(tmp_path, a_file, monkeypatch):
    assert unwritable_reason(tmp_path / "new" / "deeper" / "x.json") is None  # folders get made
    assert unwritable_reason(a_file) is None  # an existing file is replaced
    assert unwritable_reason(tmp_path / "run", folder=True) is None
    assert unwritable_reason(tmp_path, folder=True) is None
    assert unwritable_reason(a_file / "x.json") == f"{a_file} is a file, not a folder"
    assert unwritable_reason(a_file / "sub" / "x.json") == f"{a_file} is a file, not a folder"
    assert unwritable_reason(tmp_path) == f"{tmp_path} is a folder"
    assert unwritable_reason(a_file, folder=True) == f"{a_file} is a file, not a folder"
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only folder
    assert unwritable_reason(tmp_path / "x.json") == f"{tmp_path} is not writable"


CLIS = [  # module, argv before --out, the output flag
    ("ufm.cli.solve_cmd", ["--k", "3", "--quiet"], "--out"),
    ("ufm.cli.solve_cmd", ["--k", "3", "--quiet"], "--save-embeddings"),
    ("ufm.cli.certify_cmd", ["--k", "3", "--quiet"], "--out"),
    ("theory_checks.batches_cmd", ["--k", "3", "--quiet"], "--out"),
    ("deep.train_cmd", ["--arch", "resnet-tiny", "--quiet"], "--out"),
    ("figures.make_cmd", ["--quick"], "--out"),
]


@pytest.mark.parametrize("module, argv, flag", CLIS, ids=[f"{m} {f}" for m, _, f in CLIS])
def test_unwritable_output_is_a_usage_error(module, argv, flag, a_file, capsys, monkeypatch):
    if module.startswith("deep"):
        pytest.importorskip("flax")
    main = importlib.import_module(module).main
    target = a_file / "x"
    line = _one_line(_exit(main, argv + [flag, str(target)], capsys, monkeypatch), 2,
                     f"argument {flag}", "is a file, not a folder")
    assert str(a_file) in line
    assert sorted(p.name for p in a_file.parent.iterdir()) == ["a_file"]  # nothing written


def test_report_to_an_unwritable_folder(a_file, capsys, monkeypatch):
    pytest.importorskip("flax")
    from deep.report_cmd import main

    runs = Path(__file__).resolve().parents[1] / "results" / "deep_cpu" / "runs" / "relu"
    _one_line(_exit(main, [str(runs), "--out", str(a_file / "plots")], capsys, monkeypatch), 2,
              "argument --out", "is a file, not a folder")


def test_a_write_that_fails_late_is_one_line(tmp_path, capsys, monkeypatch):
    """The reduced certificate is quick; its write is made to fail as a full disk would."""
    import ufm.cli.certify_cmd as cmd

    def full_disk(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cmd, "write_json_atomic", full_disk)
    out = tmp_path / "cert.json"
    _one_line(_exit(cmd.main, ["--k", "3", "--R", "2", "--quiet", "--out", str(out)], capsys,
                    monkeypatch), 2, "argument --out", str(out), os.strerror(errno.ENOSPC))


def test_save_figure_atomic(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, pdf = tmp_path / "f.png", tmp_path / "sub" / "f.pdf"
    save_figure_atomic(fig, png, dpi=50)
    save_figure_atomic(fig, pdf)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    before = png.read_bytes()
    fig.savefig = broken
    with pytest.raises(RuntimeError, match="drawing failed"):
        save_figure_atomic(fig, png)
    assert png.read_bytes() == before  # the old figure stays whole
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["f.pdf", "f.png", "sub"]  # no temp file
    plt.close(fig)


def test_training_stops_on_one_line_when_a_write_fails(tmp_path, capsys, monkeypatch):
    """A metrics/checkpoint write failing mid-run (disk full) ends the run with exit status 1
    and one line saying how to resume; no traceback."""
    pytest.importorskip("flax")
    pytest.importorskip("sklearn")
    import deep.training
    from deep.train_cmd import main

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(deep.training, "train_epoch", full_disk)
    run = tmp_path / "run"
    argv = ["--arch", "resnet-tiny", "--n-maj", "20", "--R", "2", "--epochs", "1", "--quiet",
            "--out", str(run)]
    _one_line(_exit(main, argv, capsys, monkeypatch), 1, "cannot write", "--resume",
              os.strerror(errno.ENOSPC))
    assert (run / "config.json").is_file() and not (run / "checkpoint.npz").exists()
