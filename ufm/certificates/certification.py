"""``certify``: a proven lower bound on the UFM / UFM+ SC loss, and the certificate of a point.

Every method returns a ``ufm.certificates.bound.Bound`` whose ``lower_bound`` is a dual certificate proven in
float64 (``ufm.certificates.dual``, ``ufm.certificates.rigorous``; DESIGN.md section 5), whatever a conic solver's
accuracy. The methods sit in one registry, ``METHODS`` (the CLIs take their choices from it):

- ``reduced``: the k x k symmetry-reduced SDP (full batch, any N), then the certificate at its
  class-level ``A`` (``ufm.certificates.relaxation.reduced_relaxation``).
- ``full``: the N x N relaxation (any batching, small N), then the certificate at its ``G``
  (``ufm.certificates.relaxation.full_relaxation``).
- ``dual``: the certificate at a given point ``z`` (any batching, any N; ``ufm.certificates.dual``).

The automatic choice lives in ``choose_methods`` alone, fastest first: given a point, ``dual``
(``O(N d + k^3)`` for the full batch, one ``N x N`` Cholesky with batches: milliseconds where a
conic solve takes seconds), then, only when its bound is loose (relative distance to the loss
at its point above ``AUTO_LOOSE``), the conic method that applies (``reduced`` for the full
batch; ``full`` with batches up to ``AUTO_FULL_MAX_N`` samples), keeping the larger proven
bound. Without a point: ``reduced`` for the full batch, ``full`` with batches. ``Bound.tried``
lists what ran. Given a point, the full-batch ``reduced`` bound is also computed at the point
and the larger kept (both are proven).
``certificate(loss, bound)`` turns a bound into the report: certified iff the bound is finite
and ``(loss - bound) / |loss| <= tol`` (the proven gap alone decides; the conic status is
reported beside it).

>>> res = certify([3, 3], 1.0, nonneg=True, method="dual", z=np.eye(2)[[0, 0, 0, 1, 1, 1]])
>>> from ufm.core.closed_forms import of_loss
>>> res.method, res.ok, bool(of_loss([3, 3], 1.0) * (1 - 1e-12) <= res.lower_bound <= of_loss([3, 3], 1.0))
('dual', True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ufm.certificates.bound import Bound
from ufm.core.problem import Problem, as_problem

__all__ = ["certify", "certificate", "check_samples", "CLASS_MAX_N", "choose_method", "choose_methods",
           "check_method", "CertificateMethod", "METHODS", "METHOD_NAMES", "FULL_MAX_N", "AUTO_FULL_MAX_N",
           "AUTO_LOOSE"]

#: The full relaxation's N x N PSD variable: practical up to this many samples.
FULL_MAX_N = 400
#: ``choose_methods`` falls back to the full relaxation for batched problems up to this N.
AUTO_FULL_MAX_N = 120
#: ``method="auto"``: a first bound further than this (relative) below the loss at its own point
#: is loose, and the next method runs.
AUTO_LOOSE = 1e-9
#: Full batch: every method ends in the class-level certificate
#: (``ufm.certificates.dual.class_dual_bound``), whose float64 rounding analysis needs N below this.
CLASS_MAX_N = 2 ** 26


def check_samples(n_samples: int, *, batched: bool) -> None:
    """``ValueError`` naming ``counts`` when no certificate applies to ``n_samples`` samples: the
    full batch needs ``N < CLASS_MAX_N = 2**26`` (the class-level certificate's rounding
    analysis). The command lines call it before any work.

    >>> check_samples(2**26, batched=False)
    Traceback (most recent call last):
    ...
    ValueError: counts: a certificate of the full batch needs N < 2**26 = 67108864 samples (the rounding analysis of the class-level certificate), got N = 67108864
    """
    if not batched and n_samples >= CLASS_MAX_N:
        raise ValueError(f"counts: a certificate of the full batch needs N < 2**26 = {CLASS_MAX_N} "
                         f"samples (the rounding analysis of the class-level certificate), got "
                         f"N = {n_samples}")


@dataclass(frozen=True)
class CertificateMethod:
    """A registry entry: how to compute one kind of bound.

    Attributes:
      name: the registry key (and the CLI's ``--method`` / ``--cert-method`` choice).
      summary: one line for ``--help`` and the docs.
      batched: whether it handles batches (``False``: the full batch only).
      needs_point: whether it needs a point ``z``.
      max_samples: the largest N it takes (``None``: any).
      run: ``run(problem, z, solver) -> Bound`` (``problem``: a validated ``Problem``).
    """

    name: str
    summary: str
    batched: bool
    needs_point: bool
    max_samples: int | None
    run: Callable[..., Bound]


def _run_reduced(problem: Problem, z, solver) -> Bound:
    from ufm.certificates.relaxation import reduced_relaxation

    bound = reduced_relaxation(problem, solver=solver)
    if z is not None:  # the certificate at the point too: both are proven, keep the larger
        from ufm.certificates.dual import dual_bound

        at_point = dual_bound(z, problem)
        if not np.isfinite(bound.lower_bound) or at_point.lower_bound > bound.lower_bound:
            bound.lower_bound = at_point.lower_bound
            bound.lambda_min = at_point.lambda_min
        bound.seconds += at_point.seconds
    return bound


def _run_full(problem: Problem, z, solver) -> Bound:
    from ufm.certificates.relaxation import full_relaxation

    return full_relaxation(problem, solver=solver)


def _run_dual(problem: Problem, z, solver) -> Bound:
    from ufm.certificates.dual import dual_bound

    return dual_bound(z, problem)


#: The certificate methods by name (``auto`` is ``choose_method``, not an entry).
METHODS: dict[str, CertificateMethod] = {
    m.name: m for m in (
        CertificateMethod("reduced", "k x k symmetry-reduced SDP, then its proven dual bound "
                          "(full batch, any N, milliseconds)", False, False, None, _run_reduced),
        CertificateMethod("full", "N x N relaxation, then its proven dual bound (any batching, "
                          f"N <= {FULL_MAX_N})", True, False, FULL_MAX_N, _run_full),
        CertificateMethod("dual", "proven dual bound at a solver point (any batching, any N)",
                          True, True, None, _run_dual),
    )
}
#: What ``--method`` / ``--cert-method`` accept.
METHOD_NAMES = ("auto", *METHODS)


def choose_methods(*, batched: bool, n_samples: int, has_point: bool) -> tuple[str, ...]:
    """What ``method="auto"`` runs, fastest first (the only automatic choice in the project).

    Given a point: ``dual`` (milliseconds: ``O(N d + k^3)`` for the full batch, one ``N x N``
    Cholesky with batches), then, if its bound is loose (``AUTO_LOOSE``), ``reduced`` (full
    batch) or ``full`` (batches, up to ``AUTO_FULL_MAX_N`` samples). Without a point:
    ``reduced`` (full batch) or ``full`` (batches).

    Args:
      batched: whether the problem has batches.
      n_samples: N, the number of samples.
      has_point: whether a point ``z`` is given.

    Returns:
      Keys of ``METHODS``, in the order they are tried.

    >>> choose_methods(batched=False, n_samples=2525, has_point=True)
    ('dual', 'reduced')
    >>> choose_methods(batched=True, n_samples=66, has_point=True)
    ('dual', 'full')
    >>> choose_methods(batched=True, n_samples=500, has_point=True)
    ('dual',)
    >>> choose_methods(batched=False, n_samples=2525, has_point=False)
    ('reduced',)
    """
    conic = "full" if batched else "reduced"
    if not has_point:
        return (conic,)
    if batched and n_samples > AUTO_FULL_MAX_N:
        return ("dual",)
    return ("dual", conic)


def choose_method(*, batched: bool, n_samples: int, has_point: bool) -> str:
    """The first method ``method="auto"`` runs (``choose_methods``).

    >>> choose_method(batched=False, n_samples=2525, has_point=True)
    'dual'
    >>> choose_method(batched=True, n_samples=66, has_point=False)
    'full'
    """
    return choose_methods(batched=batched, n_samples=n_samples, has_point=has_point)[0]


def _loose(bound: Bound) -> bool:
    """Whether a bound is further than ``AUTO_LOOSE`` (relative) below the loss at its point."""
    lb, loss = float(bound.lower_bound), float(bound.loss)
    if not np.isfinite(lb):
        return True
    if not np.isfinite(loss):
        return False
    return (loss - lb) > AUTO_LOOSE * max(abs(loss), 1e-300)


def certify(
    counts: Sequence[int] | Problem,
    tau: float | None = None,
    *,
    nonneg: bool | None = None,
    method: str = "auto",
    batches: Sequence[Sequence[int]] | None = None,
    z: np.ndarray | None = None,
    solver: str | None = None,
) -> Bound:
    """Proven lower bound on the SC loss over unit (and, with ``nonneg``, non-negative) rows.

    Computed by the registry method ``method`` (``"auto"``: ``choose_method``).

    Args:
      counts: samples per class (each >= 2; samples in class order, ``labels_from_counts``),
        or a ``Problem`` (validated once, where it was built; then ``tau``, ``nonneg`` and
        ``batches`` come from it).
      tau: temperature > 0.
      nonneg: UFM+ (ReLU).
      method: ``"auto"`` (``choose_methods``: the fastest that applies, a second one only when
        the first bound is loose) or a key of ``METHODS``.
      batches: list of index lists; ``None`` = the full batch.
      z: a point (``N x d``), needed by ``dual``; used by ``reduced`` too when given.
      solver: conic solver of ``reduced`` / ``full`` (``"CLARABEL"`` or ``"SCS"``).

    Returns:
      ``Bound`` whose ``lower_bound`` is proven in float64 whatever the conic accuracy.

    Raises:
      ValueError: naming ``method`` when it is unknown or does not apply (batches with
        ``reduced``, no ``z`` for ``dual``, N above its ``max_samples``), or a bad problem
        argument (``counts``, ``tau``, ``nonneg``, ``batches``; ``ufm.core.problem``), or
        ``counts`` when the bound needs more memory than the machine has
        (``ufm.solvers.memory.certify_bytes``).

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the UFM /
      UFM+ problem;
      Boyd and Vandenberghe, "Convex Optimization", Cambridge University Press 2004,
      sections 3.3 and 5.2 (log-sum-exp conjugate, weak duality); DESIGN.md section 5.
    """
    problem = as_problem(counts, tau=tau, nonneg=nonneg, batches=batches)
    auto = method == "auto"
    method = check_method(method, batched=problem.batched, n_samples=problem.n_samples,
                          has_point=z is not None)
    check_samples(problem.n_samples, batched=problem.batched)
    from ufm.solvers.memory import certify_bytes, check_fits

    check_fits(*certify_bytes(problem.n_samples, problem.k, problem.d, "reduced" if method ==
                              "reduced" else "full" if method == "full" else "dual-point"),
               problem.n_samples)
    if not auto:
        bound = METHODS[method].run(problem, z, solver)
        bound.tried = (method,)
        return bound
    tried: list[str] = []
    best: Bound | None = None
    seconds = 0.0
    for name in choose_methods(batched=problem.batched, n_samples=problem.n_samples,
                               has_point=z is not None):
        if best is not None and not _loose(best):
            break
        bound = METHODS[name].run(problem, z, solver)  # choose_methods keeps within max_samples
        tried.append(name)
        seconds += bound.seconds
        if best is None or bound.lower_bound > best.lower_bound or not np.isfinite(best.lower_bound):
            best = bound  # the larger proven bound (a NaN or -inf one never wins over a finite one)
    best.tried, best.seconds = tuple(tried), seconds
    return best


def check_method(method: str, *, batched: bool, n_samples: int, has_point: bool) -> str:
    """The registry method ``method`` resolves to (``"auto"``: ``choose_method``), or a
    ``ValueError`` naming it when it does not apply (batches, a missing point, too many
    samples). The command lines call it before the solve, so a wrong choice fails at once.

    >>> check_method("auto", batched=True, n_samples=500, has_point=True)
    'dual'
    """
    if method not in METHOD_NAMES:
        raise ValueError(f"method must be one of {', '.join(METHOD_NAMES)}, got {method!r}")
    if method == "auto":
        method = choose_method(batched=batched, n_samples=n_samples, has_point=has_point)
    entry = METHODS[method]
    if batched and not entry.batched:
        raise ValueError(f"method {method!r} needs the full batch; use 'full' or 'dual' with batches")
    if entry.needs_point and not has_point:
        raise ValueError(f"method {method!r} needs a point z (solve first, or pass z)")
    if entry.max_samples is not None and n_samples > entry.max_samples:
        raise ValueError(f"method {method!r} needs N <= {entry.max_samples} samples (got N = "
                         f"{n_samples}); use reduced or dual")
    return method


def certificate(loss: float, bound: Bound, tol: float = 1e-6) -> dict[str, Any]:
    """The ``certificate`` object of a report.

    ``certified`` iff the proven bound is finite and ``(loss - lower_bound) / |loss| <= tol``;
    the conic status and objective are reported beside it, never used for the verdict.

    Args:
      loss: the point's loss (float64).
      bound: a ``Bound``.
      tol: relative gap tolerance (``>= 0``).

    Returns:
      ``{"lower_bound", "gap", "rel_gap", "tolerance", "certified", "method", "tried",
      "solver", "status", "solver_objective", "seconds"}`` and a ``note`` when not certified.
    """
    lb = float(bound.lower_bound)
    gap = loss - lb
    rel_gap = gap / abs(loss) if loss != 0 else gap
    certified = bool(np.isfinite(lb) and rel_gap <= tol)
    out = {
        "lower_bound": lb,
        "gap": gap,
        "rel_gap": rel_gap,
        "tolerance": tol,
        "certified": certified,
        "method": bound.method,
        "tried": list(bound.tried or (bound.method,)),
        "solver": bound.solver,
        "status": bound.status,
        "solver_objective": float(bound.solver_objective),
        "seconds": bound.seconds,
    }
    if not np.isfinite(lb):
        out["note"] = f"not certified: no bound was formed (the {bound.solver} status is {bound.status!r})"
    elif not certified:
        out["note"] = f"not certified: relative gap {rel_gap:.2e} > tolerance {tol:.0e}"
    return out
