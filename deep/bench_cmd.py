"""``python -m deep.bench [--quick] [--json]``: training images/s, JAX vs PyTorch.

``--devices N|all``: the data-parallel step (``deep.distributed``; each global batch split over
N devices; the batch sizes are global). Rows: every batch size (default 50 and 512) with one seed and with ``--seeds S`` vmapped
seeds; the PyTorch step (one model: it has no vmap) at the same batch size when PyTorch is
importable, and the ratio JAX/PyTorch. ``--arch``: a ResNet (``resnet18``, the default,
``resnet-small``, ``resnet-tiny``) or a DenseNet (``densenet40``, ``densenet-tiny``) of
``deep.models.ARCHS``. ``--quick``: the tiny ResNet (unless ``--arch`` says otherwise), tiny
batches, 2 seeds, a few steps (a CPU smoke test, not a measurement). ``--layers``: each
distinct convolution of ``--arch`` timed alone instead of the training step.
"""

from __future__ import annotations

from typing import Any, Sequence

from ufm.cli.args import Parser, ranged
from ufm.core.jsonable import to_json
from deep.configs import CONVS, resolve_conv

__all__ = ["main", "build_parser", "format_table", "arch_layers", "torch_network", "ARCH_CHOICES"]

# (stage sizes, width) of deep.models.ARCHS's ResNets, for the PyTorch reference (JAX-free here)
_ARCH_SHAPES = {"resnet18": ((2, 2, 2, 2), 64), "resnet-small": ((1, 1, 1, 1), 16),
                "resnet-tiny": ((1, 1), 8)}
# (depth, growth, stem) of deep.models.ARCHS's DenseNets (3 blocks)
_DENSENET_SHAPES = {"densenet40": (40, 12, 16), "densenet-tiny": (10, 4, 8)}
ARCH_CHOICES = tuple(_ARCH_SHAPES) + tuple(_DENSENET_SHAPES)


def arch_layers(arch: str) -> list[tuple[int, int, int, int, int]]:
    """The distinct convolutions of the preset ``arch`` on 32x32x3 images (``deep.benchmark``).

    Args:
        arch: a name of ``ARCH_CHOICES``.

    Returns:
        ``(input size H, in channels, out channels, kernel, stride)`` tuples in network order.

    >>> arch_layers("resnet-tiny")[0], len(arch_layers("densenet-tiny"))
    ((32, 3, 8, 3, 1), 9)
    """
    from deep.benchmark import conv_layers, densenet_conv_layers

    if arch in _DENSENET_SHAPES:
        return densenet_conv_layers(*_DENSENET_SHAPES[arch])
    return conv_layers(*_ARCH_SHAPES[arch])


def torch_network(arch: str) -> dict[str, Any]:
    """The keyword arguments of ``deep.torch_ref.bench_torch`` that build the preset ``arch``.

    Args:
        arch: a name of ``ARCH_CHOICES``.

    Returns:
        ``{"densenet": (depth, growth, stem)}`` or ``{"stage_sizes": ..., "width": ...}``.

    >>> torch_network("densenet-tiny"), torch_network("resnet-tiny")
    ({'densenet': (10, 4, 8)}, {'stage_sizes': (1, 1), 'width': 8})
    """
    if arch in _DENSENET_SHAPES:
        return {"densenet": _DENSENET_SHAPES[arch]}
    stages, width = _ARCH_SHAPES[arch]
    return {"stage_sizes": stages, "width": width}


def _sizes(text: str) -> list[int]:
    import argparse

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 2, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 2, got {text!r}")
    return values


def build_parser() -> Parser:
    p = Parser(prog="python -m deep.bench",
               description="Measure training images/s of a ResNet or DenseNet + SCL (default "
               "ResNet-18; two augmented views, data and augmentation on the device, one jitted "
               "step), with and without vmapped seeds, and of the same step in PyTorch when it is "
               "importable.")
    p.add_argument("--quick", action="store_true",
                   help="tiny ResNet (or --arch), batches 8 and 16, 2 seeds, 2 steps (CPU smoke test)")
    p.add_argument("--arch", choices=ARCH_CHOICES, default=None,
                   help="network: a ResNet or a DenseNet of deep.models (default resnet18; "
                        "resnet-tiny with --quick)")
    p.add_argument("--batch-sizes", type=_sizes, default=None, metavar="B1,B2",
                   help="batch sizes (default 50,512; 8,16 with --quick)")
    p.add_argument("--seeds", type=ranged(int, 2, 1024), default=None,
                   help="vmapped seeds for the second row of each batch size (default 8; 2 with --quick)")
    p.add_argument("--steps", type=ranged(int, 1, None), default=None,
                   help="timed steps per row (default 30; 2 with --quick)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="compute dtype; auto = bfloat16 on a GPU, float32 on the CPU (default auto)")
    p.add_argument("--conv", choices=CONVS + ("all",), default="auto",
                   help="convolution implementation (see deep.models; auto: dotgrad on the CPU, xla "
                        "elsewhere); all = a row for each of xla, dotgrad, matmul (default auto)")
    p.add_argument("--devices", default="1", metavar="N|all",
                   help="data-parallel JAX step on N devices (all: every device), each batch "
                        "split over them (deep.distributed; default 1)")
    p.add_argument("--layers", action="store_true",
                   help="instead of the training step: time each distinct convolution of --arch "
                        "alone (forward, input gradient, weight gradient; float32, 2 x the first "
                        "batch size images: both views) for each --conv (xla and dotgrad with "
                        "--conv all) and in PyTorch; the profile behind docs/performance.md")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _layers(args: Any, arch: str, batch: int, convs: list[str], ok: bool, torch_msg: str,
            repeats: int) -> int:
    """``--layers``: the per-convolution table (and totals) of ``deep.benchmark.bench_conv_layers``
    for each implementation and PyTorch."""
    import jax

    from deep.benchmark import bench_conv_layers
    from ufm.core.versions import library_versions, machine_info

    layers = arch_layers(arch)
    tables = {c: bench_conv_layers(layers, batch=batch, conv=c, repeats=repeats) for c in convs}
    if ok:
        from deep.torch_ref import bench_conv_layers_torch

        tables["torch"] = bench_conv_layers_torch(layers, batch=batch, repeats=repeats)
    totals = {name: {key: sum(r[key] for r in rows) for key in ("fwd_ms", "dx_ms", "dw_ms")}
              for name, rows in tables.items()}
    if args.json:
        print(to_json({"config": {"arch": arch, "batch": batch, "convs": convs, "repeats": repeats,
                                  "torch": ok}, "layers": layers, "tables": tables, "totals": totals,
                       "device": str(jax.devices()[0].device_kind), "machine": machine_info(),
                       "versions": library_versions()}, indent=2))
        return 0
    print(f"{arch}: each convolution alone, float32, {batch} images, best of {repeats} "
          f"({jax.devices()[0].device_kind}); {torch_msg}")
    names = list(tables)
    print(f"{'H':>3} {'in':>4} {'out':>4} {'k':>2} {'s':>2}  "
          + "  ".join(f"{n + ' fwd/dx/dw ms':>24}" for n in names))
    cell = lambda r: f"{r['fwd_ms']:7.2f} {r['dx_ms']:7.2f} {r['dw_ms']:7.2f}"
    for i, (h, cin, cout, k, s) in enumerate(layers):
        print(f"{h:>3} {cin:>4} {cout:>4} {k:>2} {s:>2}  " + "  ".join(f"{cell(tables[n][i]):>24}" for n in names))
    print(f"{'total':>18}  " + "  ".join(f"{cell(totals[n]):>24}" for n in names))
    sums = {n: sum(totals[n].values()) for n in names}
    print("sums: " + ", ".join(f"{n} {sums[n]:.1f} ms" for n in names)
          + ("; time against PyTorch's: " + ", ".join(f"{n} {sums[n] / sums['torch']:.2f}x" for n in convs)
             if "torch" in sums else ""))
    return 0


_HEAD = (f"{'batch':>6} {'seeds':>5} {'conv':>7} {'jax img/s':>11} {'ms/step':>9} {'compile s':>9} "
         f"{'torch img/s':>11} {'ratio':>6}")


def _row(r: dict[str, Any]) -> str:
    t = r.get("torch_images_per_s")
    torch_cell = "-" if t is None else f"{t:,.0f}"
    ratio_cell = "-" if t is None else f"{r['images_per_s'] / t:.2f}x"
    return (f"{r['batch_size']:>6} {r['seeds']:>5} {r['conv']:>7} {r['images_per_s']:>11,.0f} {r['step_ms']:>9.2f} "
            f"{r['compile_seconds']:>9.1f} {torch_cell:>11} {ratio_cell:>6}")


def format_table(rows: list[dict[str, Any]]) -> str:
    """Text table: batch, seeds, JAX img/s, ms/step, compile s, PyTorch img/s, ratio."""
    return "\n".join([_HEAD] + [_row(r) for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.devices != "all" and not (args.devices.isdigit() and int(args.devices) >= 1):
        parser.error(f"argument --devices: must be an integer >= 1 or all, got {args.devices!r}")
    devices = None if args.devices == "all" else int(args.devices)
    from deep.benchmark import torch_status

    # PyTorch first: its CPU thread pool ran ~2.4x slower when it started after JAX's backend
    # (368 against 813-919 img/s here), so it is started before JAX is touched
    ok, torch_msg = (False, "PyTorch comparison skipped (--no-torch)") if args.no_torch else torch_status()
    from ufm.cli.args import enable_compilation_cache

    enable_compilation_cache()
    import jax

    from deep.benchmark import ISSUE_TORCH_H100, bench_jax, default_dtype
    from ufm.core.versions import library_versions, machine_info

    q = args.quick
    arch = args.arch or ("resnet-tiny" if q else "resnet18")
    sizes = args.batch_sizes or ([8, 16] if q else [50, 512])
    seeds = args.seeds or (2 if q else 8)
    steps = args.steps or (2 if q else 30)
    warmup = 1 if q else 3
    pool = 256 if q else 4096
    dtype = default_dtype() if args.dtype == "auto" else args.dtype
    convs = ["xla", "dotgrad", "matmul"] if args.conv == "all" else [resolve_conv(args.conv)]
    if args.layers:
        return _layers(args, arch, 2 * sizes[0], [c for c in convs if c != "matmul"], ok, torch_msg,
                       5 if q else 10)
    n_dev = len(jax.devices()) if devices is None else devices
    if n_dev > len(jax.devices()):
        parser.error(f"argument --devices: {n_dev}, but this machine has {len(jax.devices())} devices")
    if not args.json:
        where = f"{n_dev} x " if n_dev > 1 else ""
        print(f"{arch} + SCL (two views), {dtype}, {where}{jax.devices()[0].device_kind} "
              f"({jax.default_backend()}{', data-parallel, global batch' if n_dev > 1 else ''}); {torch_msg}")
        print(_HEAD, flush=True)

    rows: list[dict[str, Any]] = []
    torch_rows: dict[int, dict[str, Any]] = {}
    for b in sizes:
        if ok:
            from deep.torch_ref import bench_torch

            torch_rows[b] = bench_torch(batch_size=b, steps=steps, warmup=warmup, pool=pool,
                                        bf16=dtype == "bfloat16", **torch_network(arch))
        for conv, s in [(cv, s) for cv in convs for s in (1, seeds)]:
            r = bench_jax(arch=arch, batch_size=b, seeds=s, steps=steps, warmup=warmup, dtype=dtype,
                          pool=pool, conv=conv, devices=n_dev)
            if b in torch_rows:
                r["torch_images_per_s"] = torch_rows[b]["images_per_s"]
                r["ratio_vs_torch"] = r["images_per_s"] / torch_rows[b]["images_per_s"]
            rows.append(r)
            if not args.json:
                print(_row(r), flush=True)
    n_jax = rows[0]["params"]
    n_torch = next(iter(torch_rows.values()))["params"] if torch_rows else None
    versions = library_versions()
    if ok:
        import torch

        versions["torch"] = torch.__version__
    report = {"config": {"arch": arch, "batch_sizes": sizes, "seeds": seeds, "steps": steps,
                         "devices": n_dev,
                         "warmup": warmup, "pool": pool, "dtype": dtype, "convs": convs, "torch": ok},
              "params_jax": n_jax, "params_torch": n_torch, "device": rows[0]["device"], "torch": torch_msg,
              "rows": rows, "torch_rows": list(torch_rows.values()),
              "issue_torch_h100_images_per_s": ISSUE_TORCH_H100,
              "note": "images/s counts distinct training images; each is processed in two views",
              "machine": machine_info(), "versions": versions}
    if args.json:
        print(to_json(report, indent=2))
        return 0
    if n_torch is not None:
        same = "the same network" if n_torch == n_jax else "DIFFERENT networks: the ratio compares unlike models"
        print(f"parameters: JAX {n_jax:,}, PyTorch {n_torch:,} ({same})")
    if not ok and arch == "resnet18":
        print("no PyTorch here; the issue's PyTorch H100 reference (bf16 autocast, channels_last): "
              + ", ".join(f"{v:,.0f} img/s at batch {k}" for k, v in ISSUE_TORCH_H100.items()))
    return 0
