"""``python -m ufm.solve``: solve the UFM / UFM+ SC-loss problem and report the geometry.

Examples::

    python -m ufm.solve --k 10 --R 100 --nonneg          # the default problem, text report
    python -m ufm.solve --k 5 --R 1 --json               # balanced, no ReLU: the simplex ETF
    python -m ufm.solve --counts 50,50,5,5 --nonneg --out res.json --save-embeddings z.npz
    python -m ufm.solve --k 4 --R 10 --n-min 3 --nonneg --batch-size 10 --schedule binding --epochs 3
    python -m ufm.solve --batches batches.json --nonneg --certify   # labels from the file
    python -m ufm.solve --nonneg --tau 0.03 --tau-path 0.1,0.05    # small tau by continuation
"""

from __future__ import annotations

from pathlib import Path
import sys
from typing import TYPE_CHECKING, Sequence

import numpy as np

import argparse

from ufm.cli.args import (ACTIVATION_NAMES, Parser, add_problem_args, check_size, counts_from_args,
                          enable_compilation_cache, format_counts, format_matrix, int_list,
                          output_file, ranged, write_outputs)
from ufm.cli.io import save_npz_atomic, to_jsonable, write_json_atomic
from ufm.certificates.certification import AUTO_FULL_MAX_N, check_method, check_samples
from ufm.certificates.certification import METHOD_NAMES as CERT_METHODS
from ufm.core.checks import TAU_MAX, TAU_MIN
from ufm.core.jsonable import to_json
from ufm.core.problem import Problem
from ufm.solvers.config import SolverConfig
from ufm.solvers.memory import solve_bytes
from theory_checks.schedules import SCHEDULES

if TYPE_CHECKING:
    from ufm.solvers.solver import SolveResult

__all__ = ["main", "build_parser", "format_report", "format_activation_report"]


def _tau_list(text: str) -> list[float]:
    """``--tau-path``: comma-separated temperatures in ``[TAU_MIN, TAU_MAX]``, no empty entry."""
    parse = ranged(float, TAU_MIN, TAU_MAX)
    try:
        return [parse(v) for v in int_list(text)]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated temperatures in [{TAU_MIN:g}, {TAU_MAX:g}] (e.g. 0.1,0.05), "
            f"got {text!r}") from None


def build_parser() -> Parser:
    p = Parser(
        prog="python -m ufm.solve",
        description="Minimize the supervised contrastive loss under the unconstrained features "
        "model (unit-norm embeddings; --nonneg adds the ReLU constraint z >= 0) and report the "
        "loss, its gap to the closed-form optimum and the geometry of the class means.",
    )
    add_problem_args(p)
    b = p.add_argument_group("batching (default: one full batch)")
    b.add_argument("--batch-size", type=ranged(int, 2, None), default=None,
                   help="solve the batched problem: the loss summed over the batches of --schedule")
    b.add_argument("--schedule", choices=SCHEDULES, default="shuffle",
                   help="batch schedule (theory_checks.schedules; default shuffle)")
    b.add_argument("--epochs", type=ranged(int, 1, 10_000), default=1,
                   help="epochs of the schedule whose batches enter the loss (default 1)")
    b.add_argument("--batches", metavar="FILE",
                   help="batches.json (DESIGN.md section 6): labels and batches from the file; "
                   "the problem flags --k/--R/--counts/... are then ignored")
    s = p.add_argument_group("solver")
    dflt = SolverConfig()
    s.add_argument("--method", choices=("auto", "samples", "classes"), default="auto",
                   help="optimize all N embeddings (samples) or one vector per class (classes, "
                   "exact among collapsed solutions); auto = by cost: for the full batch with d >= k "
                   "the class vectors, kept only when the dual bound certifies them in sample space "
                   "(else the samples); the samples with batches, --devices > 1 or a smaller d "
                   "(default auto)")
    s.add_argument("--sphere-steps", type=ranged(int, 1, None), default=dflt.sphere_steps,
                   help=f"max L-BFGS steps on the sphere (default {dflt.sphere_steps})")
    s.add_argument("--polish-steps", type=ranged(int, 1, None), default=dflt.polish_steps,
                   help=f"max projected-gradient steps under --nonneg (default {dflt.polish_steps})")
    s.add_argument("--gap-tol", type=ranged(float, 0, 1, lo_open=True), default=dflt.gap_tol,
                   help=f"stop at this relative gap to a known optimum (default {dflt.gap_tol:g})")
    s.add_argument("--restarts", type=ranged(int, 0, 100), default=dflt.restarts,
                   help="extra seeds tried when a run ends above the reference or stalls "
                   f"(default {dflt.restarts})")
    s.add_argument("--grad-tol", type=ranged(float, 0, 1, lo_open=True), default=dflt.grad_tol,
                   help="stationarity that optimal/converged need: ||Riemannian gradient (KKT "
                   "residual under ReLU)||_F <= grad-tol * N / tau (N: sum of batch sizes with "
                   f"batches) (default {dflt.grad_tol:g})")
    s.add_argument("--tau-path", metavar="T1,T2,...", type=_tau_list, default=None,
                   help="temperature continuation: solve at T1, T2, ... in turn, each warm-started "
                   "from the previous solution, then at --tau from the last (for small --tau, "
                   "where the loss no longer pins the geometry; e.g. --tau 0.03 --tau-path 0.1,0.05)")
    s.add_argument("--devices", type=ranged(int, 1, None), default=dflt.devices,
                   help="shard the full-batch loss of the samples method by anchor rows over this "
                   "many devices (ufm.core.sharded; at most the devices JAX sees; on the CPU set "
                   "XLA_FLAGS=--xla_force_host_platform_device_count=N first) (default "
                   f"{dflt.devices})")
    s.add_argument("--matmul-dtype", choices=("auto", "float32", "float64"), default=dflt.matmul_dtype,
                   help="dtype of the N x N products; auto = float32, then a float64 refinement for N > 1024 (default auto)")
    c = p.add_argument_group("certificate")
    c.add_argument("--certify", action="store_true",
                   help="add a certificate: the relaxation's lower bound and the gap to it")
    c.add_argument("--cert-method", choices=CERT_METHODS, default="auto",
                   help="auto = the fastest that applies: dual at the solution (milliseconds), "
                   "then, only if its bound is loose, reduced (full batch) or full (batches, N <= "
                   f"{AUTO_FULL_MAX_N}); the report names the method used (default auto)")
    c.add_argument("--cert-tol", type=ranged(float, 0, 1, lo_open=True), default=1e-6,
                   help="certified when (loss - bound)/|loss| <= this (default 1e-6)")
    _add_activation_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    o.add_argument("--out", metavar="FILE", type=output_file,
                   help="also write the JSON report to FILE (atomically)")
    o.add_argument("--save-embeddings", metavar="FILE.npz", type=output_file,
                   help="save z, labels and counts to FILE.npz (atomically)")
    o.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _progress_bar():
    from tqdm import tqdm

    bar = tqdm(desc="solve", unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)

    def update(phase: str, step: int, loss: float) -> None:
        if phase == "compile":
            bar.set_postfix_str("compiling", refresh=True)
            return
        if step < bar.n:  # the next solve of a --tau-path
            bar.reset()
        bar.update(step - bar.n)
        bar.set_postfix_str(f"{phase} loss={loss:.10g}", refresh=False)

    return bar, update


def format_path(path: list[dict]) -> str:
    """The temperature path as a small table (``ufm.solvers.continuation.path_summary`` rows)."""
    lines = ["tau path  (each solve warm-started from the previous one)",
             "      tau            loss   rel. gap  Delta_GM_OF  sensitivity  status"]
    for row in path:
        gap = "-" if row["rel_gap"] is None else f"{row['rel_gap']:.1e}"
        dof = "undefined" if row["delta_gm_of"] is None else f"{row['delta_gm_of']:.3g}"
        sens = "-" if row["cosine_sensitivity"] is None else f"{row['cosine_sensitivity']:.1e}"
        lines.append(f"  {row['tau']:7.4g} {row['loss']:15.10g} {gap:>10} {dof:>12} {sens:>12}  "
                     f"{row['status']}{' (warning)' if row['warnings'] else ''}")
    return "\n".join(lines)


def _e(value: float | None) -> str:
    return "undefined (every class mean equal or zero)" if value is None else f"{value:.3e}"


def format_report(res: SolveResult) -> str:
    """Readable multi-line report of a ``SolveResult``."""
    c = res.config
    m = res.metrics
    relu = "UFM+ (ReLU, z >= 0)" if c["nonneg"] else "UFM (no ReLU)"
    lines = [
        f"problem   {relu}: k={c['k']}, N={c['n_samples']}, d={c['d']}, tau={c['tau']:g}"
        + {"samples": "", "signs": "  [d = 1: embeddings +-1, solved by a sign search]"}.get(
            c["method"], "" if res.method_choice else "  [solved over class vectors: --method classes]"),
        *_method_lines(res.method_choice),
        f"counts    {format_counts(res.counts)}",
        f"loss      {res.loss:.10f}",
    ]
    if res.optimum is not None:
        name = {"of": "L*_OF, orthogonal frame", "etf": "simplex ETF",
                "batched_of": "sum of per-batch OF values",
                "relaxation": "the reduced relaxation's proven lower bound, tight for d >= k",
                "enumeration": "d = 1: the best of every sign pattern, exhaustive search",
                "only_point": "d = 1 under ReLU: every z = +1, the only feasible point",
                }.get(res.optimum_kind, str(res.optimum_kind))
        lines.append(f"optimum   {res.optimum:.10f}  ({name})")
        lines.append(f"rel. gap  {res.rel_gap:.3e}")
    else:
        lines.append("optimum   no closed form for this problem")
    bt = c.get("batching")
    if bt:
        verdict = "hold: the OF is the unique optimum" if bt["conditions_hold"] else \
            "fail: the OF is an optimum but not the only one"
        lines.append(f"batches   {bt['n_batches']} ({bt['source']}); conditions (a*), (b) {verdict}")
    lines += [
        f"status    {res.status} (attempt {res.attempts}); gradient {_grad(m)}",
        f"Delta_GM  to OF {_e(m['delta_gm_of'])}   to ETF {_e(m['delta_gm_etf'])}",
        f"NC1       {_e(m['nc1'])}",
        *(f"warning   {w}" for w in res.warnings),
        "class-mean cosines:",
        format_matrix(m["class_mean_gram"]),
        f"time      {res.timing['solve_seconds']:.2f} s solve ({res.timing['steps']} steps) "
        f"+ {res.timing['compile_seconds']:.2f} s compile",
    ]
    cert = res.certificate
    if cert is not None:
        verdict = "CERTIFIED" if cert["certified"] else "NOT certified"
        lines.append(f"certificate {verdict}: bound {cert['lower_bound']:.10f}, rel. gap "
                     f"{cert['rel_gap']:.2e} ({cert['method']}, {cert['solver']} {cert['status']}, "
                     f"{cert['seconds']:.2f} s)")
        if "note" in cert:
            lines.append(f"            {cert['note']}")
    if res.status not in ("optimal", "converged"):
        lines.append("WARNING   " + _STATUS_ADVICE.get(res.status, _STATUS_ADVICE["not_optimal"]))
    return "\n".join(lines)


_STATUS_ADVICE = {
    "not_optimal": "the known optimum was not reached; raise --sphere-steps/--polish-steps/--restarts",
    "stalled": "the loss stopped decreasing at a point that is not stationary (gradient above "
               "--grad-tol); raise --restarts",
    "max_steps": "the step limit ended a run that is not stationary; raise --sphere-steps/"
                 "--polish-steps",
}


def _method_lines(choice: dict | None) -> list[str]:
    """What ``--method auto`` did (``SolveResult.method_choice``), one line."""
    if not choice:
        return []
    cert = choice.get("collapse_certificate")
    if cert is None:
        return [f"method    {choice['used']} (auto: {choice['why']})"]
    verdict = (f"collapse certified in sample space: proven bound {cert['lower_bound']:.10f}, "
               f"rel. gap {cert['rel_gap']:.1e}, {cert['seconds'] * 1e3:.1f} ms"
               if cert["certified"] else
               f"collapse NOT certified (rel. gap {cert['rel_gap']:.1e} > {cert['tolerance']:g})")
    if choice["used"] == "classes":
        return [f"method    classes (auto: one vector per class; {verdict})"]
    return [f"method    samples (auto: the class vectors first, {verdict}; then all N samples)"]


def _grad(m: dict) -> str:
    """The stationarity measure of the report (``||Riemannian gradient||_F`` or the KKT
    residual under ReLU, and its value relative to N / tau)."""
    if m.get("grad_norm") is None:
        return "not measured"
    return f"{m['grad_norm']:.2e} (x tau/N: {m['grad_norm_rel']:.1e})"




def _batching(parser: Parser, args, counts):
    """``(counts, row of each file sample or None, batches, description)`` from --batches /
    --batch-size."""
    if args.batches is not None:
        if args.batch_size is not None:
            parser.error("argument --batch-size: not with --batches (the file holds the batches)")
        from theory_checks.io import BatchesFileError, read_batches_json

        try:
            labels, flat, _ = read_batches_json(args.batches)
        except (BatchesFileError, OSError) as exc:
            parser.error(f"argument --batches: {args.batches}: {exc}")
        classes, y = np.unique(labels, return_inverse=True)
        counts = np.bincount(y)
        if classes.size < 2 or counts.min() < 2:
            parser.error(f"argument --batches: {args.batches}: the labels need >= 2 classes with >= 2 "
                         "samples each")
        check_size(parser, "--batches", int(counts.sum()), _need(args)(counts))
        # the problem orders samples by class (once, in Problem.from_labels): sample i of the
        # file is row rows[i] of the solution
        problem, order = Problem.from_labels(y, batches=flat, tau=args.tau, nonneg=args.nonneg)
        rows = np.argsort(order)
        return counts, rows, problem.batching, {"source": args.batches}
    if args.batch_size is None:
        return counts, None, None, None
    from ufm.core.labels import labels_from_counts
    from theory_checks.schedules import schedule_batches

    batches = schedule_batches(labels_from_counts(counts), schedule=args.schedule,
                               batch_size=args.batch_size, epochs=args.epochs, seed=args.seed)
    return counts, None, batches, {"source": f"{args.schedule} schedule, batch size "
                                             f"{args.batch_size}, {args.epochs} epoch(s), seed {args.seed}",
                                   "schedule": args.schedule, "batch_size": args.batch_size,
                                   "epochs": args.epochs}


def _need(args):
    """``need(counts) -> (bytes, what)``: the memory of this command's solve (and certificate),
    ``ufm.solvers.memory``, checked before anything of size N is allocated."""
    def need(counts) -> tuple[int, str]:
        n, k = int(np.sum(counts)), len(counts)
        d = k if args.d is None else args.d
        shape = None
        if args.batch_size is not None:
            size = min(args.batch_size, n)
            shape = (args.epochs * -(-n // size), size)
        nbytes, what = solve_bytes(n, k, d, method=args.method, nonneg=args.nonneg, batch_shape=shape,
                                   devices=args.devices if shape is None else 1)
        if shape is not None:
            nbytes += 2 * shape[0] * shape[1] * 8  # the batch index lists
        if args.certify:
            nbytes += n * k * 8  # the certificate's N x k class indicator at the point
        return nbytes, what
    return need


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    counts = counts_from_args(parser, args, _need(args)) if args.batches is None else None
    if args.out and args.save_embeddings and Path(args.out).resolve() == Path(args.save_embeddings).resolve():
        parser.error(f"argument --save-embeddings: {args.save_embeddings} is also the --out file "
                     "(the JSON report would be overwritten); give two paths")
    if args.activation is not None or args.slope is not None or args.radius is not None:
        return _main_activation(parser, args, counts)  # issue 38; absent: today's path below
    counts, rows, batches, batching = _batching(parser, args, counts)
    if args.certify:  # a method that cannot apply fails now, not after the solve
        try:
            check_method(args.cert_method, batched=batches is not None,
                         n_samples=int(np.sum(counts)), has_point=True)
        except ValueError as err:
            parser.error(f"argument --cert-method: {err}")
        try:
            check_samples(int(np.sum(counts)), batched=batches is not None)
        except ValueError as err:
            parser.error(f"argument --certify: {str(err).removeprefix('counts: ')}")
    k = len(counts)
    d = k if args.d is None else args.d
    if args.nonneg and 1 < d < k:
        print(f"warning: --d {d} < k = {k} with --nonneg: the orthogonal frame cannot be reached "
              "and no optimum is known", file=sys.stderr)
    if d == 1 and batches is not None:
        parser.error("argument --d: 1 needs the full batch (in d = 1 the embeddings are +-1 and "
                     "only the full batch has a sign search); drop --batch-size/--batches or use --d >= 2")
    if batches is not None and args.method == "classes":
        parser.error("argument --method: 'classes' needs the full batch (drop --batch-size/--batches)")
    if batches is not None and args.devices > 1:
        parser.error("argument --devices: shards the full-batch loss; with --batch-size/--batches "
                     "use --devices 1")
    check = None
    if batches is not None:  # the batch conditions, checked (and bounded) before the solve
        from theory_checks.interaction import check_batches
        from ufm.core.labels import labels_from_counts

        try:
            check = check_batches(labels_from_counts(counts), batches, d=d)
        except ValueError as err:
            flag = f"--batches: {args.batches}" if args.batches else "--batch-size"
            parser.error(f"argument {flag}: {err}")
    from ufm.solvers.continuation import path_summary, solve_path  # JAX loads once the arguments are valid

    if args.devices > 1:
        import jax

        if args.devices > len(jax.devices()):
            parser.error(f"argument --devices: {args.devices} but JAX sees {len(jax.devices())} "
                         "device(s); on the CPU set XLA_FLAGS=--xla_force_host_platform_device_count="
                         f"{args.devices} before the command")
    enable_compilation_cache()
    config = SolverConfig(
        sphere_steps=args.sphere_steps,
        polish_steps=args.polish_steps,
        gap_tol=args.gap_tol,
        restarts=args.restarts,
        grad_tol=args.grad_tol,
        matmul_dtype=args.matmul_dtype,
        devices=args.devices,
    )
    bar, progress = (None, None) if args.quiet else _progress_bar()
    taus = [*(args.tau_path or []), args.tau]
    try:
        path = solve_path(counts, taus, d=d, nonneg=args.nonneg, seed=args.seed,
                          batches=batches, method=args.method, config=config, progress=progress)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    res = path[-1]
    res.config["tau_path"] = args.tau_path
    if check is not None:
        batching.update(n_batches=len(batches), conditions_hold=bool(check.holds),
                        check=check.to_dict())
        res.config["batching"] = batching
    if args.certify:
        from ufm.certificates.certification import certificate, certify

        bound = certify(counts, args.tau, nonneg=args.nonneg, method=args.cert_method,
                        batches=batches, z=res.z)
        res.certificate = certificate(res.loss, bound, args.cert_tol)
    report = to_jsonable(res.to_dict())
    report["config"]["problem"] = {
        "imbalance": "file" if args.batches else "counts" if args.counts is not None else args.imbalance,
        "R": args.R, "rho": args.rho, "n_min": args.n_min,
    }
    if args.tau_path:
        report["path"] = to_jsonable(path_summary(path))
    z, labels = (res.z, res.labels) if rows is None else (res.z[rows], res.labels[rows])
    write_outputs(parser, [
        ("--out", args.out, lambda path: write_json_atomic(path, report)),
        ("--save-embeddings", args.save_embeddings,
         lambda path: save_npz_atomic(path, z=z, labels=labels, counts=res.counts)),
    ])
    if args.json:
        print(to_json(report, indent=2))
    else:
        if args.tau_path:
            print(format_path(report["path"]))
        print(format_report(res))
    return 0 if res.status in ("optimal", "converged") else 1


# ----------------------------------------------------------------------------- --activation (issue 38)



def _add_activation_args(p: Parser) -> None:
    """``--activation``, ``--slope``, ``--radius``: the UFM with features ``a(h)/||a(h)||``."""
    a = p.add_argument_group("activation (default: none given, today's problem; --nonneg is the ReLU)")
    a.add_argument("--activation", choices=ACTIVATION_NAMES, default=None,
                   help="features z = a(h)/||a(h)|| with the pre-activation h free on the sphere "
                   "||h|| = --radius (ufm.solvers.activation); relu is --nonneg; the report says "
                   "which directions a reaches, what is proved, and the certificate where one applies")
    a.add_argument("--slope", type=ranged(float, 0, 1, lo_open=True, hi_open=True), default=None,
                   help="negative slope of --activation leaky_relu, in (0, 1) (default 0.01)")
    a.add_argument("--radius", type=ranged(float, 1e-3, 1e3), default=None,
                   help="norm r of every pre-activation h, in [0.001, 1000] (default 1.0)")


def _main_activation(parser: Parser, args, counts) -> int:
    """``--activation``: ``ufm.solvers.activation.solve_activation``, a short report, ``--json``."""
    if args.activation is None:
        flag = "--slope" if args.slope is not None else "--radius"
        parser.error(f"argument {flag}: needs --activation")
    if args.slope is not None and args.activation != "leaky_relu":
        parser.error(f"argument --slope: applies to --activation leaky_relu only, not {args.activation}")
    if args.nonneg and args.activation != "relu":
        parser.error(f"argument --activation: {args.activation} contradicts --nonneg (the ReLU; "
                     "--activation relu is --nonneg)")
    if args.batches is not None or args.batch_size is not None:
        parser.error("argument --activation: solves the full batch only (drop --batch-size/--batches)")
    if args.tau_path:
        parser.error("argument --activation: not with --tau-path (one temperature)")
    if args.devices > 1:
        parser.error("argument --activation: runs on one device (drop --devices)")
    k, n = len(counts), int(np.sum(counts))
    d = k if args.d is None else args.d
    if d < 2:
        parser.error("argument --d: --activation needs d >= 2")
    if args.method == "samples" and args.activation not in ("relu", "none"):
        from ufm.solvers.activation import SAMPLES_MAX  # JAX loads here, the arguments being valid

        if n > SAMPLES_MAX:
            parser.error(f"argument --method: samples with --activation needs N <= {SAMPLES_MAX} (got "
                         f"N = {n}); use auto or classes")
    try:
        check_method(args.cert_method, batched=False, n_samples=n, has_point=True)
        check_samples(n, batched=False)
    except ValueError as err:
        parser.error(f"argument --cert-method: {err}")
    enable_compilation_cache()
    from ufm.solvers.activation import solve_activation

    config = SolverConfig(sphere_steps=args.sphere_steps, polish_steps=args.polish_steps,
                          gap_tol=args.gap_tol, restarts=args.restarts, grad_tol=args.grad_tol,
                          matmul_dtype=args.matmul_dtype)
    try:
        res = solve_activation(counts, args.activation, radius=1.0 if args.radius is None else args.radius,
                               slope=args.slope, tau=args.tau, d=d, seed=args.seed, method=args.method,
                               config=config, cert_method=args.cert_method, cert_tol=args.cert_tol)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    report = to_jsonable(res.to_dict())
    report["config"]["problem"] = {"imbalance": "counts" if args.counts is not None else args.imbalance,
                                   "R": args.R, "rho": args.rho, "n_min": args.n_min}
    write_outputs(parser, [
        ("--out", args.out, lambda path: write_json_atomic(path, report)),
        ("--save-embeddings", args.save_embeddings,
         lambda path: save_npz_atomic(path, z=res.z, h=res.h, labels=res.labels, counts=res.counts)),
    ])
    print(to_json(report, indent=2) if args.json else format_activation_report(res))
    return 0 if res.status in ("optimal", "converged") else 1


def format_activation_report(res) -> str:
    """Readable report of an ``ufm.solvers.activation.ActivationResult``."""
    c, m, a = res.config, res.metrics, res.activation
    slope = f", slope {a['slope']:g}" if a["slope"] is not None else ""
    lines = [
        f"problem   UFM with activation {a['name']}{slope}: z = a(h)/||a(h)||, ||h|| = r = "
        f"{a['radius']:g}; k={c['k']}, N={c['n_samples']}, d={c['d']}, tau={c['tau']:g}",
        f"reachable {a['reachable']}",
        f"predicted {a['prediction']} [{a['prediction_status']}]",
        f"counts    {format_counts(res.counts)}",
        f"loss      {res.loss:.10f}",
    ]
    if res.optimum is not None:
        lines += [f"optimum   {res.optimum:.10f}  ({res.optimum_kind})", f"rel. gap  {res.rel_gap:.3e}"]
    else:
        lines.append(f"optimum   unknown; proven bracket [{a['lower_bound']:.10f}, {a['upper_bound']:.10f}]")
    bounds = f"bounds    no-ReLU (sphere) lower bound {a['sphere_lower_bound']:.10f} (proven, any activation)"
    if a.get("of_loss") is not None:
        bounds += f"; L*_OF {a['of_loss']:.10f}"
    lines.append(bounds)
    if a.get("closed_form_upper_bound") is not None:
        lines.append(f"          softplus: L*_OF < {a['closed_form_lower_bound']:.10f} <= optimum <= "
                     f"{a['closed_form_upper_bound']:.10f} (the point h_c = r e_c); every entry >= "
                     f"{a['entry_bound']:.3e}")
    lines += [
        f"status    {res.status} ({res.attempts} start(s)); gradient {_grad(m)}",
        f"Delta_GM  to OF {_e(m['delta_gm_of'])}   to ETF {_e(m['delta_gm_etf'])}",
    ]
    if res.certificate is not None:
        cert = res.certificate
        verdict = "CERTIFIED" if cert["certified"] else "NOT certified"
        lines.append(f"certificate {verdict}: bound {cert['lower_bound']:.10f}, rel. gap "
                     f"{cert['rel_gap']:.2e} ({cert['method']}); {a['certificate_note']}")
    else:
        lines.append(f"certificate {a['certificate_note']}")
    ls = a.get("local_search")
    if ls:
        lines.append(f"local     best of {len(ls['starts'])} L-BFGS starts: {ls['best_start']}; best random "
                     f"start loss {ls['best_random_loss']:.10f}, Delta_GM_OF {_e(ls['best_random_delta_gm_of'])}")
    if a.get("realization_error") is not None:
        lines.append(f"realized  max |a(h)/||a(h)|| - target| = {a['realization_error']:.1e}")
    lines += [*(f"warning   {w}" for w in res.warnings), "class-mean cosines:",
              format_matrix(m["class_mean_gram"]),
              f"time      {res.timing['solve_seconds']:.2f} s"]
    return "\n".join(lines)
