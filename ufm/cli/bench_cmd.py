"""``python -m ufm.bench``: speed and memory figures of the solver and the loss+gradient paths.

Every figure is a ratio against a reference measured in the same process (or, for memory, the
same child process), so the numbers mean the same on any machine:

1. ``solve``: seconds of the default problem (k=10, R=100, n_min=5, d=10, tau=0.1, nonneg),
   solve and compile apart, with the gap and Delta_GM reached; then ``--seeds`` (20) seeds:
   how many reach the bar (rel. gap <= 1e-5, Delta_GM_OF <= 1e-3) and how many are certified
   by the reduced relaxation (as ``solve --certify``), worst gap, time spread.
2. ``gram``: hand-written loss+grad at N=2048, d=128 (float32 N x N work) against the floor
   of the two N x N x d products it cannot avoid (``Z Z^T`` and ``P Z``); and against
   ``jax.value_and_grad(scl_loss)`` (autodiff).
3. ``chunked``: loss+grad at N=100,000, d=128 in row blocks, in a child process: seconds of one
   call (including its compile, ~1 s) and peak resident memory (and the child's resident memory
   before the call, after JAX started and compiled a small instance).

4. ``certify``: each certificate method against its closed form: the reduced SDP (k=10 and
   k=100 STEP, k=30 EXP, ReLU; k=10 without ReLU), the full N x N relaxation (N=40 Clarabel, N=120 SCS, k=4,
   ReLU) and the dual bound at the collapsed OF point of the default problem (N=2525): seconds
   and relative distance of the bound to L*_OF.

5. ``graph``: the batch-condition check (``theory_checks``) on 1,000,000 samples x 10 epochs of
   batches of 50: seconds to read the batches.json and to check it (target <= 10 s together).

6. ``analyze``: ``ufm.analyze`` of 10,000 x 512 float32 features (k = 10, STEP R = 10), the
   certified optimum cached (as in a training loop that analyzes every epoch; target <= 50 ms),
   against one float32 matmul of the same size (the features times a 512 x 512 matrix: one
   linear layer on them).

7. ``firstrun``: the default solve as a new user meets it: ``python -m ufm.solve --k 10 --R 100
   --nonneg --certify`` in a fresh process with the compilation cache off
   (``SCL_GEOMETRY_CACHE=off``): wall clock, import, compile, solve and certificate seconds
   (target: compile + solve <= 3 s); against the floor of the same number of loss+gradient
   evaluations (``ufm.solvers.solver.count_evaluations``) of the objective the solve ran,
   timed here.

8. ``cert10k``: the certificate ``solve --certify`` computes at N = 10,010 (k = 10, STEP R =
   10, ReLU) at the solver's point: seconds and peak NumPy memory (``tracemalloc``; target
   <= 10 s), against the floor of one pass over the N x d point.

9. ``methods``: no cliff between methods: first runs (fresh processes, cache off) of problems
   up to N = 10^5 and beyond (the issue's N = 16,381 EXP and N = 250,250 cases, d < k, no
   ReLU, batches), compile + solve seconds over the default problem's.

``--quick`` shrinks every size (for the tests); ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np
from ufm.core.jsonable import to_json
from ufm.core.timing import best_of

__all__ = ["main", "PARTS"]

#: The benchmark's parts, in the order they run (``--only``).
PARTS = ("firstrun", "solve", "gram", "chunked", "certify", "cert10k", "methods", "graph", "analyze")


def bench_solve(quick: bool, seeds: int = 1) -> dict[str, Any]:
    """Default problem from ``seeds`` seeds; the bar is rel. gap <= 1e-5 and Delta_GM_OF <= 1e-3."""
    from ufm.core.labels import step_counts
    from ufm.solvers.solver import solve

    counts = step_counts(4, 10, n_min=3) if quick else step_counts(10, 100, n_min=5)
    runs = [solve(counts, nonneg=True, seed=s) for s in range(seeds)]
    res = runs[0]
    from ufm.certificates.certification import certificate, certify

    bound = certify(counts, 0.1, nonneg=True)  # what `solve --certify` does (reduced)
    certified = sum(certificate(r.loss, bound)["certified"] for r in runs)
    times = [r.timing["solve_seconds"] for r in runs]
    return {
        "counts": res.counts,
        "n_samples": int(sum(res.counts)),
        "solve_seconds": res.timing["solve_seconds"],
        "compile_seconds": res.timing["compile_seconds"],
        "steps": res.timing["steps"],
        "rel_gap": res.rel_gap,
        "delta_gm_of": res.metrics["delta_gm_of"],
        "status": res.status,
        "seeds": seeds,
        "seeds_certified": int(certified),
        "seeds_at_bar": sum(r.rel_gap <= 1e-5 and r.metrics["delta_gm_of"] <= 1e-3 for r in runs),
        "worst_rel_gap": max(r.rel_gap for r in runs),
        "worst_delta_gm_of": max(r.metrics["delta_gm_of"] for r in runs),
        "solve_seconds_median": float(np.median(times)),
        "solve_seconds_max": max(times),
    }


def bench_gram(n: int, d: int, k: int = 10, repeat: int = 5) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    from ufm.core.gram_grad import value_and_grad
    from ufm.core.loss import scl_loss

    rng = np.random.default_rng(0)
    y_np = rng.integers(0, k, n)
    y_np[:k] = np.arange(k)
    y_np[k : 2 * k] = np.arange(k)  # every class has >= 2 samples
    counts = np.bincount(y_np, minlength=k)
    z32 = rng.normal(size=(n, d)).astype(np.float32)
    z32 /= np.linalg.norm(z32, axis=1, keepdims=True)
    z, y, c = jnp.asarray(z32), jnp.asarray(y_np), jnp.asarray(counts)
    p = jax.nn.softmax(z @ z.T, axis=1)

    gram = jax.jit(lambda a: a @ a.T)
    prod = jax.jit(lambda q, a: q @ a)
    t_gram = best_of(lambda: gram(z), repeat)
    t_prod = best_of(lambda: prod(p, z), repeat)
    floor = t_gram + t_prod
    t_fast = best_of(lambda: value_and_grad(z, y, c, 0.1), repeat)
    auto = jax.jit(jax.value_and_grad(lambda a: scl_loss(a, y, 0.1, normalize=False)))
    t_auto = best_of(lambda: auto(z), repeat)
    return {
        "n": n,
        "d": d,
        "floor_seconds": floor,
        "fast_seconds": t_fast,
        "autodiff_seconds": t_auto,
        "fast_over_floor": t_fast / floor,
        "autodiff_over_fast": t_auto / t_fast,
    }


def bench_certify(quick: bool) -> dict[str, Any]:
    """Seconds of every certificate method, its proven bound's relative distance to L*_OF (under
    ReLU the optimum: a valid bound is at or below it) and the conic solver's own objective's
    distance (not a bound: it may overshoot)."""
    from ufm.certificates.certification import certify
    from ufm.core.closed_forms import of_loss
    from ufm.core.labels import exp_counts, labels_from_counts, step_counts

    cases = [
        ("reduced", "k=10 R=100 ReLU", step_counts(10, 100, n_min=5), True),
        ("reduced", "k=10 R=100 no ReLU", step_counts(10, 100, n_min=5), False),
        ("reduced", "k=100 R=10 ReLU", step_counts(100, 10, n_min=5), True),
        ("reduced", "k=30 EXP R=10 ReLU (distinct counts)", exp_counts(30, 10, 200), True),
        ("full", "N=40 k=4 ReLU", [10] * 4, True),
        ("full", "N=120 k=4 ReLU", [30] * 4, True),
        ("dual", "N=2525 k=10 R=100 ReLU (OF point)", step_counts(10, 100, n_min=5), True),
        ("dual", "N=10010 k=10 R=10 ReLU (OF point)", step_counts(10, 10, n_min=182), True),
    ]
    if quick:
        cases = [
            ("reduced", "k=4 R=10 ReLU", step_counts(4, 10, n_min=3), True),
            ("full", "N=12 k=4 ReLU", [3] * 4, True),
            ("dual", "N=66 k=4 ReLU (OF point)", step_counts(4, 10, n_min=3), True),
        ]
    out = []
    for method, name, counts, nonneg in cases:
        z = np.eye(len(counts))[labels_from_counts(counts)] if method == "dual" else None
        res = certify(counts, 0.1, nonneg=nonneg, method=method, z=z)
        of = of_loss(counts, 0.1)
        out.append({
            "method": method, "case": name, "n_samples": int(sum(counts)), "k": len(counts),
            "nonneg": nonneg, "seconds": res.seconds, "solver": res.solver, "status": res.status,
            "ok": bool(res.ok), "lower_bound": res.lower_bound, "of_loss": of,
            "rel_to_of": (res.lower_bound - of) / of,
            "solver_objective_rel_to_of": (res.solver_objective - of) / of,
            # under ReLU L*_OF is the optimum; 1e-15 covers of_loss's own float rounding
            "valid": bool(not nonneg or res.lower_bound <= of * (1 + 1e-15)),
        })
    return {"cases": out}


_CHILD = r"""
import json, resource, sys, time
import numpy as np, jax, jax.numpy as jnp
from ufm.core.gram_grad import value_and_grad_chunked
n, d, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
k = 10
rng = np.random.default_rng(0)
y = np.arange(n) % k
z = rng.normal(size=(n, d)); z /= np.linalg.norm(z, axis=1, keepdims=True)
with jax.enable_x64(True):
    zj, yj, cj = jnp.asarray(z), jnp.asarray(y), jnp.asarray(np.bincount(y, minlength=k))
    jax.block_until_ready(value_and_grad_chunked(zj[:chunk * 2], yj[:chunk * 2], cj, 0.1, chunk=chunk))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    loss, g = value_and_grad_chunked(zj, yj, cj, 0.1, chunk=chunk)
    jax.block_until_ready(g)
    first = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"loss": float(loss), "finite": bool(np.isfinite(np.asarray(g)).all()),
                  "seconds": first,
                  "rss_before_mib": before / 1024, "peak_rss_mib": peak / 1024}))
"""


def _child(argv: list[str], what: str, ok: tuple[int, ...] = (0,), env: dict | None = None) -> str:
    """stdout of ``python ARGV`` in a child process; an exit status outside ``ok`` (e.g. killed
    for memory) ends the bench with one line naming ``what``, no traceback."""
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env)
    if out.returncode not in ok:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"python -m ufm.bench: error: {what} failed with status "
                         f"{out.returncode}: {last}")
    return out.stdout


def bench_chunked(n: int, d: int, chunk: int) -> dict[str, Any]:
    stdout = _child(["-c", _CHILD, str(n), str(d), str(chunk)], f"the chunked run (N = {n})")
    res = json.loads(stdout.strip().splitlines()[-1])
    res.update({"n": n, "d": d, "chunk": chunk, "dense_nxn_float32_mib": n * n * 4 / 2**20})
    return res


def _first_run(argv: list[str]) -> dict[str, Any]:
    """``python -m ufm.solve ARGV --json --quiet`` in a fresh process, compilation cache off:
    wall seconds and the report's timings."""
    import os

    env = {**os.environ, "SCL_GEOMETRY_CACHE": "off"}
    t0 = time.perf_counter()
    stdout = _child(["-m", "ufm.solve", *argv, "--json", "--quiet"], f"ufm.solve {' '.join(argv)}",
                    ok=(0, 1), env=env)  # 1: not optimal, still a report
    wall = time.perf_counter() - t0
    rep = json.loads(stdout)
    t = rep["timing"]
    cert = rep.get("certificate") or {}
    work = t["compile_seconds"] + t["solve_seconds"] + t.get("collapse_certificate_seconds", 0.0)
    return {"argv": argv, "n_samples": rep["config"]["n_samples"], "k": rep["config"]["k"],
            "d": rep["config"]["d"], "method": rep["config"]["method"],
            "method_choice": rep.get("method_choice"), "status": rep["status"],
            "rel_gap": rep["rel_gap"], "delta_gm_of": rep["metrics"]["delta_gm_of"],
            "wall_seconds": wall, "compile_seconds": t["compile_seconds"],
            "solve_seconds": t["solve_seconds"],
            "collapse_certificate_seconds": t.get("collapse_certificate_seconds", 0.0),
            "certificate_seconds": cert.get("seconds"), "certified": cert.get("certified"),
            "certificate_method": cert.get("method"),
            "compile_plus_solve_seconds": work,
            "startup_seconds": wall - work - (cert.get("seconds") or 0.0)}


def bench_first_run(quick: bool) -> dict[str, Any]:
    """The default solve's first run (``_first_run``), and its floor: the same number of
    loss+gradient evaluations of the objective it ran, timed in this process."""
    import jax
    import jax.numpy as jnp

    from ufm.core.labels import step_counts
    from ufm.core.loss import collapsed_scl_loss
    from ufm.solvers.solver import count_evaluations, solve

    argv = ["--k", "4", "--R", "10", "--n-min", "3", "--nonneg", "--certify"] if quick else \
        ["--k", "10", "--R", "100", "--nonneg", "--certify"]
    run = _first_run(argv)
    counts = step_counts(4, 10, n_min=3) if quick else step_counts(10, 100, n_min=5)
    res, evaluations = count_evaluations(lambda: solve(counts, nonneg=True, seed=0, method=run["method"]))
    with jax.enable_x64(True):
        if run["method"] == "classes":
            vg = jax.jit(jax.value_and_grad(collapsed_scl_loss))
            v = jnp.asarray(np.eye(len(counts)))
            args = (v, jnp.asarray(counts), jnp.asarray(0.1))
        else:
            from ufm.core.gram_grad import value_and_grad

            z = jnp.asarray(res.z)
            vg = jax.jit(lambda a, y, c, t: value_and_grad(a, y, c, t))
            args = (z, jnp.asarray(res.labels), jnp.asarray(counts), jnp.asarray(0.1))
        one = best_of(lambda: vg(*args), 50)
    run.update(evaluations=evaluations, evaluation_seconds=one, floor_seconds=evaluations * one,
               solve_over_floor=run["solve_seconds"] / (evaluations * one))
    return run


def bench_cert10k(quick: bool) -> dict[str, Any]:
    """``certify`` (auto) at the solver's point of N = 10,010 (k = 10, STEP R = 10, ReLU):
    seconds and peak NumPy memory, against one pass over the N x d point."""
    import tracemalloc

    from ufm.certificates.certification import certificate, certify
    from ufm.core.closed_forms import of_loss
    from ufm.core.labels import step_counts
    from ufm.solvers.solver import solve

    counts = step_counts(4, 10, n_min=3) if quick else step_counts(10, 10, n_min=182)
    res = solve(counts, nonneg=True, seed=0)
    certify(counts, 0.1, nonneg=True, z=res.z)  # imports and first-call costs out of the timing
    tracemalloc.start()
    t0 = time.perf_counter()
    bound = certify(counts, 0.1, nonneg=True, z=res.z)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    z = np.asarray(res.z)
    floor = best_of(lambda: z.sum(axis=0), 20)
    cert = certificate(res.loss, bound)
    of = of_loss(counts, 0.1)
    return {"n_samples": int(sum(counts)), "k": len(counts), "seconds": seconds,
            "peak_mib": peak / 2**20, "method": bound.method, "tried": list(bound.tried),
            "certified": cert["certified"], "rel_gap": cert["rel_gap"],
            "bound_rel_to_of": (bound.lower_bound - of) / of,
            "floor_seconds": floor, "over_floor": seconds / floor,
            "point_mib": z.nbytes / 2**20}


#: ``methods``: (name, argv) of the first runs compared with the default's.
METHOD_CASES = [
    ("default k=10 R=100 ReLU (N=2,525)", ["--k", "10", "--R", "100", "--nonneg"]),
    ("k=20 R=1000 EXP ReLU (N=16,381)", ["--k", "20", "--R", "1000", "--imbalance", "exp", "--nonneg"]),
    ("k=10 R=10 n_min=1000 ReLU (N=55,000)", ["--k", "10", "--R", "10", "--n-min", "1000", "--nonneg"]),
    ("k=10 R=100 n_min=20 ReLU (N=101,000)", ["--k", "10", "--R", "100", "--n-min", "20", "--nonneg"]),
    ("k=100 R=1000 ReLU (N=250,250)", ["--k", "100", "--R", "1000", "--nonneg"]),
    ("k=10 R=100 no ReLU (N=2,525)", ["--k", "10", "--R", "100"]),
    ("k=10 R=100 ReLU d=5 < k (N=2,525, samples)", ["--k", "10", "--R", "100", "--nonneg", "--d", "5"]),
    ("k=4 R=10 binding batches ReLU (N=66)", ["--k", "4", "--R", "10", "--n-min", "3", "--nonneg",
                                              "--batch-size", "10", "--schedule", "binding", "--epochs", "3"]),
    ("k=10 R=10 shuffled batches of 50 ReLU (N=1,100)", ["--k", "10", "--R", "10", "--n-min", "20",
                                                         "--nonneg", "--batch-size", "50", "--epochs", "2"]),
]
QUICK_METHOD_CASES = [METHOD_CASES[0][:1] + (["--k", "4", "--R", "10", "--n-min", "3", "--nonneg"],),
                      ("k=4 no ReLU d=2", ["--k", "4", "--R", "10", "--n-min", "3", "--d", "2"])]


def bench_methods(quick: bool) -> dict[str, Any]:
    """First runs of ``METHOD_CASES`` (``_first_run``), each over the first (the default)."""
    cases = []
    for name, argv in (QUICK_METHOD_CASES if quick else METHOD_CASES):
        run = _first_run(argv)
        run["case"] = name
        cases.append(run)
    base = cases[0]["compile_plus_solve_seconds"]
    for c in cases:
        c["over_default"] = c["compile_plus_solve_seconds"] / base
    return {"cases": cases}


def bench_analyze(n: int, d: int, k: int = 10, repeat: int = 7) -> dict[str, Any]:
    """Best-of-``repeat`` seconds of ``ufm.analyze`` (optimum cached) and of the reference matmul."""
    from ufm.analysis.report import analyze

    rng = np.random.default_rng(0)
    counts = np.where(np.arange(k) < k // 2, 10, 1) * (n // (11 * (k // 2)) + 1)
    y = np.repeat(np.arange(k), counts)[:n]
    h = rng.normal(size=(y.size, d)).astype(np.float32) + 3 * np.eye(k, d, dtype=np.float32)[y]
    w = rng.normal(size=(d, d)).astype(np.float32)

    def best(fn: Callable[[], Any]) -> float:  # NumPy work: synchronous
        return best_of(fn, repeat, sync=lambda r: r)

    t0 = time.perf_counter()
    analyze(h, y)  # the first call solves and certifies the optimum (cached from then on)
    first = time.perf_counter() - t0
    t_analyze = best(lambda: analyze(h, y))
    t_matmul = best(lambda: h @ w)
    return {"n": int(y.size), "d": d, "k": k, "first_call_seconds": first,
            "analyze_seconds": t_analyze, "matmul_seconds": t_matmul,
            "analyze_over_matmul": t_analyze / t_matmul}


def main(argv: list[str] | None = None) -> int:
    from ufm.cli.args import Parser, ranged

    p = Parser(prog="python -m ufm.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for tests")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--only", choices=PARTS, action="append",
                   help="run only these parts (repeatable)")
    p.add_argument("--seeds", type=ranged(int, 1, 1000), default=20,
                   help="seeds of the default solve (default 20)")
    p.add_argument("--chunk-n", type=ranged(int, 2048, 10_000_000), default=None,
                   help="N of the chunked run, in [2048, 1e7] (default 100000; 4000 with --quick)")
    args = p.parse_args(argv)
    parts = args.only or list(PARTS)
    if "chunked" in parts:  # the child's N x d float64 rows (~8 copies) and 1024 x N blocks
        from ufm.cli.args import check_size

        n, d, chunk = args.chunk_n or (4000 if args.quick else 100_000), 32 if args.quick else 128, \
            256 if args.quick else 1024
        check_size(p, "--chunk-n", n, (8 * n * d * 8 + 5 * chunk * n * 8,
                                       "the chunked run's N x d float64 rows and chunk x N blocks"))
    from ufm.core.versions import library_versions, machine_info

    config = {"quick": args.quick, "parts": parts, "seeds": 2 if args.quick else args.seeds,
              "chunk_n": args.chunk_n or (4000 if args.quick else 100_000)}
    out: dict[str, Any] = {"config": config, "machine": machine_info(), "versions": library_versions()}
    if "firstrun" in parts:
        fr = out["firstrun"] = bench_first_run(args.quick)
        _say(args, f"first run of `ufm.solve {' '.join(fr['argv'])}` (fresh process, no compilation "
                   f"cache): {fr['wall_seconds']:.2f} s wall = {fr['startup_seconds']:.2f} s start-up "
                   f"+ {fr['compile_seconds']:.2f} s compile + {fr['solve_seconds']:.3f} s solve "
                   f"+ {fr['collapse_certificate_seconds'] * 1e3:.1f} ms collapse certificate + "
                   f"{(fr['certificate_seconds'] or 0) * 1e3:.1f} ms --certify ({fr['certificate_method']}); "
                   f"method {fr['method']}, {fr['status']}, certified {fr['certified']}")
        _say(args, f"  solve = {fr['solve_over_floor']:.1f}x its floor: {fr['evaluations']} loss+grad "
                   f"evaluations x {fr['evaluation_seconds'] * 1e6:.1f} us = {fr['floor_seconds'] * 1e3:.2f} ms")
    if "solve" in parts:
        sv = out["solve"] = bench_solve(args.quick, config["seeds"])
        _say(args, f"solve (default problem N={sv['n_samples']}), seed 0: {sv['solve_seconds']:.2f} s "
                   f"+ {sv['compile_seconds']:.2f} s compile, rel gap {sv['rel_gap']:.2e}, "
                   f"Delta_GM_OF {sv['delta_gm_of']:.1e}")
        _say(args, f"  {sv['seeds_certified']}/{sv['seeds']} seeds certified (solve --certify); "
                   f"{sv['seeds_at_bar']}/{sv['seeds']} seeds at the bar (gap <= 1e-5, Delta_GM_OF <= 1e-3); "
                   f"worst gap {sv['worst_rel_gap']:.1e}, worst Delta_GM_OF {sv['worst_delta_gm_of']:.1e}; "
                   f"solve seconds median {sv['solve_seconds_median']:.2f}, max {sv['solve_seconds_max']:.2f}")
    if "gram" in parts:
        g = out["gram"] = bench_gram(256, 32) if args.quick else bench_gram(2048, 128)
        _say(args, f"loss+grad N={g['n']} d={g['d']}: {g['fast_seconds']*1e3:.1f} ms = "
                   f"{g['fast_over_floor']:.2f}x the matmul floor ({g['floor_seconds']*1e3:.1f} ms); "
                   f"autodiff {g['autodiff_seconds']*1e3:.1f} ms = {g['autodiff_over_fast']:.2f}x slower")
    if "chunked" in parts:
        c = out["chunked"] = bench_chunked(config["chunk_n"], 32 if args.quick else 128, 256 if args.quick else 1024)
        _say(args, f"chunked loss+grad N={c['n']} d={c['d']}: {c['seconds']:.1f} s, peak RSS "
                   f"{c['peak_rss_mib']:.0f} MiB (process before the call {c['rss_before_mib']:.0f} MiB; "
                   f"a dense N x N float32 array alone is {c['dense_nxn_float32_mib']:.0f} MiB)")
    if "certify" in parts:
        out["certify"] = bench_certify(args.quick)
        for c in out["certify"]["cases"]:
            conic = c["solver_objective_rel_to_of"]
            _say(args, f"certify {c['method']:<8} {c['case']:<36} {c['seconds']:7.2f} s  {c['solver']:<8} "
                       f"{c['status']:<10} bound - L*_OF = {c['rel_to_of']:+.1e} (relative)"
                       + ("" if c["valid"] else "  ABOVE THE OPTIMUM")
                       + ("" if conic != conic else f"; solver objective {conic:+.1e}"))
    if "cert10k" in parts:
        c = out["cert10k"] = bench_cert10k(args.quick)
        _say(args, f"certificate at the solver's point, N={c['n_samples']} k={c['k']} ReLU: "
                   f"{c['seconds'] * 1e3:.1f} ms ({c['method']}; tried {', '.join(c['tried'])}), peak "
                   f"{c['peak_mib']:.1f} MiB (the point itself {c['point_mib']:.1f} MiB), certified "
                   f"{c['certified']} (rel. gap {c['rel_gap']:.1e}); {c['over_floor']:.0f}x one pass "
                   f"over the point ({c['floor_seconds'] * 1e3:.3f} ms)")
    if "methods" in parts:
        out["methods"] = bench_methods(args.quick)
        for c in out["methods"]["cases"]:
            _say(args, f"first run {c['case']:<48} {c['compile_plus_solve_seconds']:6.2f} s compile+solve "
                       f"({c['over_default']:4.1f}x default; wall {c['wall_seconds']:5.1f} s) "
                       f"{c['method']:<8} {c['status']}")
    if "graph" in parts:
        from theory_checks.benchmark import bench_graph_check

        gc = out["graph"] = bench_graph_check(20_000, 2, 50) if args.quick else bench_graph_check()
        _say(args, f"batch check {gc['n_samples']} samples x {gc['epochs']} epochs, batches of "
                   f"{gc['batch_size']} ({gc['n_batches']} batches, {gc['file_mb']} MB): read "
                   f"{gc['read_seconds']:.2f} s + check {gc['check_seconds']:.2f} s = {gc['seconds']:.2f} s")
    if "analyze" in parts:
        a = out["analyze"] = bench_analyze(1000, 64) if args.quick else bench_analyze(10_000, 512)
        _say(args, f"analyze {a['n']} x {a['d']} float32 features (k={a['k']}, optimum cached): "
                   f"{a['analyze_seconds']*1e3:.1f} ms = {a['analyze_over_matmul']:.2f}x one "
                   f"{a['n']} x {a['d']} x {a['d']} float32 matmul ({a['matmul_seconds']*1e3:.1f} ms); "
                   f"first call with the optimum's solve {a['first_call_seconds']:.1f} s")
    if args.json:
        print(to_json(out, indent=2))
    return 0


def _say(args: argparse.Namespace, line: str) -> None:
    print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

