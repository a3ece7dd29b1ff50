"""``ufm.core.versions``: the CPU model and machine record that JSON outputs carry."""

from __future__ import annotations

import os
import platform

from ufm.core.versions import cpu_model, machine_info

_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14 96-Core Processor
flags\t\t: fpu vme

processor\t: 1
model name\t: AMD EPYC 9B14 96-Core Processor
"""


def test_cpu_model_reads_the_first_model_name(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(_CPUINFO)
    assert cpu_model(str(f)) == "AMD EPYC 9B14 96-Core Processor"


def test_cpu_model_falls_back_without_cpuinfo(tmp_path):
    assert cpu_model(str(tmp_path / "missing")) == (platform.processor() or platform.machine())
    empty = tmp_path / "empty"
    empty.write_text("processor\t: 0\nmodel name\t:\n")
    assert cpu_model(str(empty)) == (platform.processor() or platform.machine())


def test_machine_info_describes_this_process():
    info = machine_info()
    assert info["cpus"] == os.cpu_count() and info["jax_backend"] in ("cpu", "gpu", "tpu")
    assert info["cpu_model"] and info["devices"] and info["platform"] == platform.platform()
