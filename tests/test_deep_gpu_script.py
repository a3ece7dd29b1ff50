"""``figures/deep_gpu.sh`` (the prepared GPU call) runs end to end on the CPU at tiny size.

The device tool returns at most 8 files from ``$OUT``, named in letters, digits, '.', '_' and
'-', no more than 2 folders down; the script must keep to that. (Its time limits stop a run
with SIGTERM, which ``deep.train`` ends after whole epochs: ``test_deep_cli`` checks that.)
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("flax")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "figures" / "deep_gpu.sh"
TINY = {"ARCH": "resnet-tiny", "EPOCHS": "2", "SEEDS": "2", "RS": "2", "TRAIN_TIMEOUT": "400",
        "TRAIN_ARGS": "--n-maj 20", "BENCH_ARGS": "--quick --batch-sizes 8 --no-torch",
        "CERT_ARGS": "--k 4 --R 10 --n-min 5", "FMNIST_ARCHS": ""}


def test_gpu_script_at_tiny_size(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, **TINY, "PY": sys.executable, "WORK": str(tmp_path / "work"),
           "SCL_GEOMETRY_CACHE": "off"}
    proc = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench.txt", "cert.json", "deep_gpu.tar.gz", "log.txt", "report_r2.txt"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)

    log = (out / "log.txt").read_text()
    assert log.count("epoch 2/2 done (2 seeds") == 3, log
    with tarfile.open(out / "deep_gpu.tar.gz") as tar:
        names = tar.getnames()
        assert not any(n.endswith(".npz") for n in names)  # no checkpoints
        for variant in ("relu", "norelu", "binding"):
            for seed in (0, 1):
                member = tar.extractfile(f"results/deep_gpu/runs/r2_{variant}/seed_{seed}/metrics.jsonl")
                rows = [json.loads(line) for line in member.read().decode().splitlines()]
                assert [r["epoch"] for r in rows] == [1, 2]
                assert all(math.isfinite(r[k]) for r in rows for k in ("loss", "delta_gm_of", "nc1"))
        assert "results/deep_gpu/r2/delta_gm.png" in names
    table = (out / "report_r2.txt").read_text()
    assert "relu=False" in table and "schedule=binding" in table and "mean +- sd" in table

    bench = (out / "bench.txt").read_text().splitlines()
    assert re.match(r"\s+8\s+1\s+dotgrad\s+[\d,]+", bench[2]), bench  # conv auto on the CPU
    cert = json.loads((out / "cert.json").read_text())["certificate"]
    assert cert["certified"] and cert["method"] == "dual" and abs(cert["rel_gap"]) < 1e-6
