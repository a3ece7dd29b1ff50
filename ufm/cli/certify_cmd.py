"""``python -m ufm.certify``: the convex relaxation's lower bound on the SC loss.

Examples::

    python -m ufm.certify --k 10 --R 100 --nonneg          # reduced k x k SDP: equals L*_OF
    python -m ufm.certify --k 10 --R 100 --json            # no ReLU: broken-symmetry optimum
    python -m ufm.certify --counts 30,30,30,30 --nonneg --method full
    python -m ufm.certify --k 10 --R 100 --nonneg --method dual   # solves, then the dual bound
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np

from ufm.cli.args import (Parser, add_problem_args, counts_flag, counts_from_args, format_counts,
                          format_matrix, output_file, write_outputs)
from ufm.certificates.certification import METHOD_NAMES, METHODS, check_method, check_samples
from ufm.cli.io import to_jsonable, write_json_atomic
from ufm.core.jsonable import to_json
from ufm.solvers.memory import certify_bytes
from ufm.core.versions import library_versions

__all__ = ["main", "build_parser"]


def build_parser() -> Parser:
    p = Parser(
        prog="python -m ufm.certify",
        description="Lower-bound the SC loss under the UFM (--nonneg: UFM+) by its convex "
        "relaxation in the Gram matrix: the k x k symmetry-reduced SDP (reduced), the N x N "
        "relaxation (full), or the dual certificate at a solver point (dual).",
    )
    add_problem_args(p)
    c = p.add_argument_group("certificate")
    c.add_argument("--method", choices=METHOD_NAMES, default="auto",
                   help="; ".join(f"{m.name}: {m.summary}" for m in METHODS.values())
                   + " (default auto = reduced)")
    c.add_argument("--solver", choices=("CLARABEL", "SCS"), default=None,
                   help="conic solver (default: Clarabel for reduced and N <= 40, SCS above)")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--out", metavar="FILE", type=output_file,
                   help="also write the JSON to FILE (atomically)")
    o.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    def need(counts):
        n, k = int(np.sum(counts)), len(counts)
        method = "reduced" if args.method == "auto" else args.method
        return certify_bytes(n, k, k if args.d is None else args.d, method, nonneg=args.nonneg)

    counts = counts_from_args(parser, args, need)
    try:
        check_samples(int(np.sum(counts)), batched=False)
    except ValueError as err:
        parser.error(f"argument {counts_flag(args)}: {str(err).removeprefix('counts: ')}")
    k = len(counts)
    d = k if args.d is None else args.d
    n = int(np.sum(counts))
    try:  # the dual method solves first, so it will have its point
        check_method(args.method, batched=False, n_samples=n, has_point=args.method == "dual")
    except ValueError as err:
        parser.error(f"argument --method: {err}")
    from ufm.certificates.certification import certify  # cvxpy and JAX load once the arguments are valid

    z = None
    if args.method == "dual":
        from ufm.solvers.solver import solve

        if not args.quiet:
            print("solving first (the dual bound is computed at the solver's point) ...", file=sys.stderr)
        z = solve(counts, d=d, tau=args.tau, nonneg=args.nonneg, seed=args.seed).z
    if not args.quiet:
        print(f"certifying ({args.method}) ...", file=sys.stderr)
    res = certify(counts, args.tau, nonneg=args.nonneg, method=args.method, z=z, solver=args.solver)
    report = to_jsonable(res.to_dict())
    report.pop("gram", None)
    report["config"] = {"k": k, "counts": [int(c) for c in counts], "n_samples": n, "d": d,
                        "tau": args.tau, "nonneg": args.nonneg, "method": args.method,
                        "solver": args.solver, "seed": args.seed}
    report["versions"] = library_versions()
    write_outputs(parser, [("--out", args.out, lambda path: write_json_atomic(path, report))])
    if args.json:
        print(to_json(report, indent=2))
    else:
        relu = "UFM+ (ReLU)" if args.nonneg else "UFM (no ReLU)"
        lines = [
            f"problem      {relu}: k={k}, N={n}, tau={args.tau:g}; counts {format_counts(counts)}",
            f"lower bound  {res.lower_bound:.10f}  (proven in float64; the conic solver's own "
            f"objective: {res.solver_objective:.10f})" if np.isfinite(res.solver_objective)
            else f"lower bound  {res.lower_bound:.10f}  (proven in float64)",
            f"method       {res.method} ({res.solver}), status {res.status}, {res.seconds:.2f} s",
        ]
        if not res.ok:
            lines.append("WARNING      the solver did not report an optimal status: no certificate")
        cg = report.get("class_gram")
        if cg is not None:
            lines += ["class-level Gram A (diagonal: within-class, off: cross-class inner products):",
                      format_matrix(np.asarray(cg))]
        print("\n".join(lines))
    return 0 if res.ok else 1
