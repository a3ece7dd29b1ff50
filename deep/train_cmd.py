"""``python -m deep.train``: train a network with SCL (or CE) and log the geometry every epoch.

Examples::

    python -m deep.train --arch resnet18 --R 10 --epochs 100 --out runs/relu
    python -m deep.train --arch resnet18 --R 10 --no-relu --out runs/norelu
    python -m deep.train --arch resnet18 --R 10 --schedule binding --out runs/binding
    python -m deep.train --arch resnet18 --seeds 4 --dtype bfloat16 --out runs/r18x4   # 4 seeds, vmapped
    python -m deep.train --out runs/relu --resume          # continue after an interruption
    python -m deep.train --dataset cifar10 --data-dir ~/data --R 100 --out runs/c10
    python -m deep.train --arch resnet18 --devices 4 --out runs/dp4      # data-parallel on 4 devices
    python -m deep.train --devices all --coordinator host0:1234 --num-processes 2 --process-id 0 ...

Outputs (``deep.rundir``): ``config.json``, ``metrics.jsonl`` (one line per epoch) and an
atomic ``checkpoint.npz`` in RUN_DIR (with ``--seeds S > 1``: metrics in RUN_DIR/seed_<s>).

This module parses the flags, builds the ``TrainConfig`` (the saved one on ``--resume``), calls
``deep.training.train_and_evaluate`` and prints: the progress bar, warnings and the one-line
errors and exit statuses (2 usage, 1 diverged or a write failed, 130 interrupted).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from deep.configs import (ARCHITECTURES, CONVS, DATASET_DEFAULTS, DATASETS, DTYPES, LOSSES, TrainConfig,
                          feature_activation)
from theory_checks.schedules import SCHEDULES
from ufm.cli.args import ACTIVATION_NAMES, Parser, ranged, unwritable_reason
from ufm.cli.signals import on_interrupt_say
from ufm.core.checks import TAU_MAX, TAU_MIN

__all__ = ["main", "build_parser"]

ARCH_CHOICES = ARCHITECTURES  # the registries: deep.models.ARCHS, theory_checks.schedules
SCHEDULE_CHOICES = SCHEDULES
RUN_FLAGS = ("out", "resume", "stop_after", "checkpoint_every", "quiet",  # not part of the configuration
             "devices", "seed_shards", "coordinator", "num_processes", "process_id")

_EPILOG = """\
data sets (--dataset):
  digits        scikit-learn's 8x8 digits upsampled to 32x32 (bundled; default)
  mnist         IDX files in --data-dir: train-images-idx3-ubyte, train-labels-idx1-ubyte,
  fashionmnist    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz)
  cifar10       python batches in --data-dir (or --data-dir/cifar-10-batches-py):
                  data_batch_1 .. data_batch_5, test_batch
per-data-set defaults: """ + "; ".join(
    f"{name}: n-maj {d['n_maj']}, epochs {d['epochs']}, {'flip' if d['flip'] else 'no flip'}"
    for name, d in DATASET_DEFAULTS.items()) + """

--resume continues RUN_DIR from its last checkpoint with the saved configuration (flags that
contradict it are an error); --stop-after E ends this invocation after epoch E (to split a run
into time-boxed pieces: run again with --resume).
"""


def build_parser() -> Parser:
    d = TrainConfig()
    p = Parser(
        prog="python -m deep.train",
        description="Train a ResNet-18 / DenseNet-40 with the supervised contrastive loss "
        "(ufm.scl_loss, two augmented views) under STEP imbalance; log Delta_GM to the OF and "
        "the ETF, NC1 and nearest-class-mean accuracy every epoch.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    m = p.add_argument_group("model and loss")
    m.add_argument("--arch", choices=ARCH_CHOICES,
                   help=f"network (tiny variants: CPU smoke tests) (default {d.arch})")
    m.add_argument("--relu", action=argparse.BooleanOptionalAction,
                   help="ReLU on the final features before normalization (default on)")
    m.add_argument("--activation", choices=ACTIVATION_NAMES,
                   help="activation on the final features instead of the --relu switch "
                        "(ufm.core.activations; relu = --relu, none = --no-relu)")
    m.add_argument("--slope", type=ranged(float, 0, 1, lo_open=True, hi_open=True),
                   help="leaky_relu's negative slope, in (0, 1) (default 0.01)")
    m.add_argument("--loss", choices=LOSSES, help=f"scl, or ce with a linear head (default {d.loss})")
    m.add_argument("--tau", type=ranged(float, TAU_MIN, TAU_MAX),
                   help=f"SCL temperature in [{TAU_MIN:g}, {TAU_MAX:g}] (ufm.core.checks; default {d.tau:g})")
    m.add_argument("--reduction", choices=("mean", "sum"),
                   help="SCL per batch: mean over anchors (the usual scale for lr 0.1) or the "
                        f"theory's sum (default {d.reduction})")
    m.add_argument("--dtype", choices=DTYPES,
                   help=f"compute dtype (bfloat16: faster on GPU; parameters stay float32) (default {d.dtype})")
    m.add_argument("--conv", choices=CONVS,
                   help="convolution implementation: xla (cuDNN/Eigen), dotgrad (xla with the "
                        "weight gradient by matrix products: faster on the CPU), matmul (im2col + "
                        "one matmul; may vmap over --seeds faster), auto (dotgrad on the CPU, xla "
                        f"elsewhere) (default {d.conv})")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, help=f"data set (default {d.dataset})")
    g.add_argument("--data-dir", metavar="DIR", help="folder with the data set's official files")
    g.add_argument("--R", type=ranged(float, 1, 1e6), help=f"STEP imbalance ratio n_maj/n_min (default {d.R:g})")
    g.add_argument("--rho", type=ranged(float, 0, 1, lo_open=True, hi_open=True),
                   help=f"fraction of minority classes (default {d.rho:g})")
    g.add_argument("--n-maj", type=ranged(int, 2, None), help="majority class size (default per data set)")
    g.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="random horizontal flips (default per data set: not for digits/mnist)")
    g.add_argument("--test-fraction", type=ranged(float, 0, 1, lo_open=True, hi_open=True),
                   help=f"digits: held-out fraction of each class (default {d.test_fraction:g})")
    g.add_argument("--split-seed", type=ranged(int, 0, 2**31 - 1),
                   help=f"digits: seed of the train/test split (default {d.split_seed})")
    o = p.add_argument_group("optimization")
    o.add_argument("--schedule", choices=SCHEDULE_CHOICES,
                   help=f"batch sampler from theory_checks.schedules (default {d.schedule})")
    o.add_argument("--batch-size", type=ranged(int, 2, None), help=f"batch size (default {d.batch_size})")
    o.add_argument("--drop-last", action=argparse.BooleanOptionalAction,
                   help="drop each epoch's last partial batch (default off)")
    o.add_argument("--epochs", type=ranged(int, 1, None), help="epochs (default per data set)")
    o.add_argument("--lr", type=ranged(float, 0, None, lo_open=True),
                   help=f"learning rate; x0.1 at 116/350 and 232/350 of the epochs (default {d.lr:g})")
    o.add_argument("--momentum", type=ranged(float, 0, 1, hi_open=True), help=f"(default {d.momentum:g})")
    o.add_argument("--weight-decay", type=ranged(float, 0, None), help=f"(default {d.weight_decay:g})")
    o.add_argument("--seed", type=ranged(int, 0, 2**31 - 1), help=f"random seed (default {d.seed})")
    o.add_argument("--seeds", type=ranged(int, 1, 1024),
                   help="train seeds seed..seed+S-1 at once, vmapped (default 1)")
    o.add_argument("--test-every", type=ranged(int, 1, None), metavar="N",
                   help="NCM accuracy on the whole test set every N epochs and at the last "
                        f"(default {d.test_every})")
    o.add_argument("--test-subset", type=ranged(int, 0, None), metavar="M",
                   help="on the other epochs, on M seeded test images (0: not at all; the "
                        f"geometry is measured every epoch) (default {d.test_subset})")
    o.add_argument("--eval-batch-size", type=ranged(int, 1, None),
                   help=f"images per evaluation call (default {d.eval_batch_size})")
    r = p.add_argument_group("run")
    r.add_argument("--out", metavar="RUN_DIR", help="output folder (default runs/<name from the flags>)")
    r.add_argument("--resume", action="store_true", help="continue RUN_DIR from its checkpoint")
    r.add_argument("--stop-after", type=ranged(int, 1, None), metavar="E",
                   help="end this invocation after epoch E (resume later)")
    r.add_argument("--checkpoint-every", type=ranged(int, 1, None), default=1, metavar="N",
                   help="checkpoint every N epochs and at the end (default 1; an interrupt "
                        "loses at most N-1 epochs)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    x = p.add_argument_group("several devices or hosts (deep.distributed; not part of the "
                             "configuration: a run resumes on any device count)")
    x.add_argument("--devices", type=_devices, metavar="N|all",
                   help="train data-parallel on N devices (all: every device of every process): "
                        "each global batch is split over them, the SC loss and BatchNorm use the "
                        "whole batch (default 1; all with --num-processes > 1)")
    x.add_argument("--seed-shards", type=ranged(int, 1, None), default=1, metavar="K",
                   help="mesh K x N/K: the --seeds split over K device groups, each batch over "
                        "N/K devices (K divides N and --seeds; default 1: seeds replicated)")
    x.add_argument("--coordinator", metavar="HOST:PORT",
                   help="jax.distributed coordinator (process 0's address); default "
                        "$JAX_COORDINATOR_ADDRESS, else one process")
    x.add_argument("--num-processes", type=ranged(int, 1, None), metavar="P",
                   help="processes of the job (default $JAX_NUM_PROCESSES)")
    x.add_argument("--process-id", type=ranged(int, 0, None), metavar="I",
                   help="this process's index, 0..P-1 (default $JAX_PROCESS_ID); only process 0 "
                        "writes files")
    return p


def _devices(text: str) -> int | None:
    """``--devices``: an integer >= 1, or ``all`` (None)."""
    if text == "all":
        return None
    return ranged(int, 1, None)(text)


def _given_config(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in RUN_FLAGS}


def _default_out(cfg: TrainConfig) -> Path:
    name = feature_activation(cfg)[0]
    relu = {"relu": "relu", "none": "norelu"}.get(name, name)
    return Path("runs") / (f"{cfg.dataset}_{cfg.arch}_R{cfg.R:g}_{relu}_{cfg.schedule}_{cfg.loss}"
                           f"_seed{cfg.seed}" + (f"x{cfg.seeds}" if cfg.seeds > 1 else ""))


def _config_for_run(parser: Parser, args: argparse.Namespace) -> tuple[TrainConfig, Path, bool]:
    """The configuration (fresh, or the saved one on --resume), RUN_DIR, and whether to resume."""
    from deep.configs import resolve
    from deep.rundir import CONFIG, read_config

    given = _given_config(args)
    if "activation" in given and "relu" in given:
        parser.error("argument --activation: not with --relu/--no-relu (--activation relu is "
                     "--relu, --activation none is --no-relu)")
    if "slope" in given and given.get("activation") != "leaky_relu":
        parser.error("argument --slope: applies to --activation leaky_relu only")
    cfg = resolve(TrainConfig(**given))
    out = Path(getattr(args, "out", None) or _default_out(cfg))
    resume = getattr(args, "resume", False)
    reason = unwritable_reason(out, folder=True)
    if reason is not None:
        parser.error(f"argument --out: cannot write {str(out)!r}: {reason}")
    if not (out / CONFIG).is_file():
        return cfg, out, False
    if not resume:
        parser.error(f"argument --out: {out} already holds a run; pass --resume to continue it "
                     "or choose another --out")
    try:
        saved = TrainConfig.from_dict(read_config(out)["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        parser.error(f"argument --resume: cannot read {out / CONFIG}: {err}")
    for name, value in given.items():
        if name != "data_dir" and getattr(saved, name) != value:
            flag = "--" + name.replace("_", "-")
            parser.error(f"argument {flag}: {value!r} differs from the saved run's "
                         f"{getattr(saved, name)!r}; --resume continues with the saved configuration")
    if "data_dir" in given:
        saved = saved.replace(data_dir=given["data_dir"])
    return saved, out, True


def _describe(cfg: TrainConfig) -> str:
    """The flags that define a run, as one line (``--resume``'s note on a new folder)."""
    keys = ("dataset", "arch", "loss", "relu", "activation", "R", "n_maj", "epochs", "batch_size", "schedule",
            "lr", "tau", "seed", "seeds")
    return " ".join(f"{k}={getattr(cfg, k)}" for k in keys)


def _fmt(value: float | None, spec: str) -> str:
    return "undefined" if value is None else format(value, spec)


def _geometry(rec: dict[str, Any]) -> str:
    return (f"dOF={_fmt(rec['delta_gm_of'], '.3f')} dETF={_fmt(rec['delta_gm_etf'], '.3f')} "
            f"nc1={_fmt(rec['nc1'], '.3g')} acc={_fmt(rec['ncm_test_acc'], '.3f')}")


def _undefined_geometry(rec: dict[str, Any]) -> str | None:
    """A warning line when Delta_GM or NC1 is undefined this epoch (e.g. all features 0)."""
    if rec["delta_gm_of"] is not None and rec["nc1"] is not None:
        return None
    return (f"warning: epoch {rec['epoch']}: Delta_GM / NC1 undefined (logged as null): "
            f"{rec['zero_features']:.0%} of the training features are all zero (dead ReLU?) "
            "or every class mean is the same; a lower --lr may help")


def _summary(rec: dict[str, Any]) -> str:
    return f"loss={rec['loss']:.4f} {_geometry(rec)}"


class _Progress:
    """The command line's ``deep.training.TrainCallbacks`` (every hook, duck-typed: this module
    loads no JAX before the flags are checked): a tqdm bar on stderr (none with --quiet) and
    one warning line the first time the geometry is undefined."""

    def __init__(self, out: Path, cfg: TrainConfig, quiet: bool):
        self.out, self.cfg, self.quiet = out, cfg, quiet
        self.bar = None
        self.last_t, self.postfix, self.warned = time.monotonic(), "", False

    def on_start(self, run, start: int, stop: int) -> None:
        self.last_t = time.monotonic()
        if not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=(stop - start) * run.steps_per_epoch, desc=f"train {self.out.name}",
                            unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)

    def on_epoch_start(self, epoch: int) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch}/{self.cfg.epochs}")

    def on_step(self, step: int, loss) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.monotonic()
        if now - self.last_t > 2.0:  # fetching the loss waits for the device: only now and then
            import jax
            import numpy as np

            self.last_t = now
            self.bar.set_postfix_str(f"loss={float(np.mean(jax.device_get(loss))):.4f} {self.postfix}")

    def on_epoch_end(self, records: list[dict[str, Any]]) -> None:
        warning = next(filter(None, map(_undefined_geometry, records)), None)
        if warning is not None and not self.warned:
            self.warned = True
            (self.bar.write if self.bar is not None else print)(warning, file=sys.stderr)
        self.postfix = _geometry(records[0])
        if self.bar is not None:
            self.bar.set_postfix_str(_summary(records[0]))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg, out, resume = _config_for_run(parser, args)
    if getattr(args, "resume", False) and not resume:
        print(f"note: {out} holds no run: --resume starts a NEW run there with this command "
              f"line's flags (defaults for the rest): {_describe(cfg)}", file=sys.stderr)

    from deep import distributed

    try:  # before JAX touches a device
        several = distributed.initialize(getattr(args, "coordinator", None),
                                         getattr(args, "num_processes", None),
                                         getattr(args, "process_id", None))
    except distributed.MeshError as err:
        parser.error(f"argument {err.argument}: {err}")
    devices = getattr(args, "devices", None if several else 1)
    main_process = distributed.is_main()

    from ufm.cli.args import enable_compilation_cache

    enable_compilation_cache()
    from deep.training import StartError, TrainingDiverged, train_and_evaluate

    stop = min(cfg.epochs, getattr(args, "stop_after", cfg.epochs))
    progress = _Progress(out, cfg, quiet=getattr(args, "quiet", False) or not main_process)
    # under python -m, SIGINT / SIGTERM end the process with this line (ufm.cli.signals); called
    # in-process, they raise KeyboardInterrupt as usual (the except below)
    on_interrupt_say(f"interrupted; continue with: python -m deep.train --out {out} --resume")
    try:
        result = train_and_evaluate(cfg, out, resume=resume, stop_after=stop,
                                    checkpoint_every=args.checkpoint_every, callbacks=progress,
                                    devices=devices, seed_shards=args.seed_shards)
    except StartError as err:
        progress.close()
        parser.error(f"argument {err.argument}: {err}" if err.argument else str(err))
    except TrainingDiverged as err:
        progress.close()
        print(f"python -m deep.train: error: {err}; start a new run (another --out) with a lower "
              f"--lr (this run: {cfg.lr:g})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.close()
        print(f"interrupted; continue with: python -m deep.train --out {out} --resume",
              file=sys.stderr)
        return 130
    except OSError as err:  # disk full, folder removed, ...: the last checkpoint stays valid
        progress.close()
        print(f"python -m deep.train: error: cannot write to {out} ({err.strerror or err}); fix "
              f"it and continue with: python -m deep.train --out {out} --resume", file=sys.stderr)
        return 1
    progress.close()
    if not main_process:
        return 0
    if result.start >= cfg.epochs:
        print(f"{out}: all {cfg.epochs} epochs done", file=sys.stderr)
        return 0
    if result.stop == result.start:
        print(f"{out}: --stop-after {stop}, and {result.start} epochs are done already: nothing to do",
              file=sys.stderr)
        return 0
    rec = result.records[0]
    done = "done" if result.finished else f"stopped (--stop-after {stop}); continue with --resume"
    seeds = (f" ({len(result.dirs)} seeds; seed {result.run.seeds[0]} shown)"
             if len(result.dirs) > 1 else "")
    print(f"{out}: epoch {rec['epoch']}/{cfg.epochs} {done}{seeds}: {_summary(rec)}")
    return 0
