"""Solve the UFM / UFM+ SC-loss problem: minimize L(Z) over unit rows (and Z >= 0 with ReLU).

Method (two phases, each a plain first-order method on the exact loss, from ``ufm.solvers.optim``):

1. **Sphere phase**: L-BFGS (optax, zoom line search) on ``h`` with ``Z = normalize(h)``, no
   sign constraint. Without ReLU the landscape is benign and this is the whole solve. When the
   loss stalls away from a stationary point (the rows of ``h`` drift to very different norms,
   and a long row barely moves), L-BFGS restarts from the unit rows with its memory cleared (at
   most 5 times a phase).
2. **Orthant phase** (``nonneg=True``): rotate the sphere solution so the class means sit near
   coordinate axes (``ufm.solvers.rotation.orthant_rotation``; the loss is rotation invariant), project
   onto ``{Z >= 0, ||z_i|| = 1}``, then polish with projected gradient
   ``z <- normalize(max(y - a g(y), 0))`` from the extrapolated point ``y`` (FISTA momentum with
   function-value restart), backtracking on the sufficient-decrease test, growing the step on
   success.

Single local runs under ReLU from random starts get stuck in spurious points (a large class
spread over two axes); going through the sphere optimum avoids them.

Reference value (full batch): ``L*_OF`` under ReLU with ``d >= k``; the ETF value when balanced
without ReLU with ``d >= k-1``; otherwise, for ``d >= k``, the lower bound of the
symmetry-reduced relaxation (``ufm.certificates.relaxation.reduced_relaxation``, tight for ``d >= k``;
``optimum_kind="relaxation"``); batched under ReLU with ``d >= k``, the sum of per-batch OF
values. With a reference the solver stops once the relative gap is below ``gap_tol`` at a
stationary point, and restarts from ``seed + r`` if a run ends above ``accept_tol``.

Stationarity: the Frobenius norm of the Riemannian gradient ``g_i - <g_i, z_i> z_i`` (under
ReLU the KKT residual of the projected problem, ``ufm.solvers.optim.kkt_residual``) at most
``grad_tol * M / tau`` (``M`` = sum of the batch sizes, ``N`` for the full batch), reported as
``metrics["grad_norm"]`` (and over ``M / tau`` as ``metrics["grad_norm_rel"]``).

``status``: ``"optimal"`` (within ``accept_tol`` of the reference, stationary), ``"converged"``
(no reference; stationary), ``"not_optimal"`` (above the reference by more than ``accept_tol``
after every restart), ``"stalled"`` (the loss stopped decreasing at a non-stationary point,
after every restart), ``"max_steps"`` (the step cap ended a non-stationary run; no restart).

>>> from ufm.core.labels import step_counts
>>> res = solve(step_counts(3, R=2, n_min=2), nonneg=True, seed=0)
>>> res.status, res.rel_gap < 1e-6
('optimal', True)
"""

from __future__ import annotations

import time
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ufm.core import geometry

from ufm.solvers import optim
from ufm.solvers.config import SolverConfig
# CHUNK_ABOVE: samples above which the loss runs in row blocks (no N x N array);
# CLASSES_ABOVE: samples above which method="auto" solves over class vectors
from ufm.solvers.memory import CHUNK_ABOVE, CLASSES_ABOVE, check_fits, sharded_chunk_rows, solve_bytes
from ufm.core.closed_forms import batched_of_loss, cosine_sensitivity, etf_loss, of_loss
from ufm.core.gram_grad import value_and_grad as gram_value_and_grad
from ufm.core.gram_grad import shared_shift_fits, value_and_grad_chunked
from ufm.core.checks import check_int, check_rows
from ufm.core.labels import check_counts
from ufm.core.loss import collapsed_scl_loss, normalize, scl_loss
from ufm.core.problem import Problem, as_problem
from ufm.solvers.rotation import rotate_to_orthant
from ufm.core.versions import library_versions

__all__ = ["solve", "SolveResult", "SolverConfig", "reference_value", "auto_method", "count_evaluations"]

Progress = Callable[[str, int, float], None]

_F32_GAP = 3e-8  # a float32 stage cannot resolve relative gaps below its loss noise
_F32_GRAD = 1e-5  # nor relative stationarity below this (when it is the last stage)


@dataclass
class SolveResult:
    """What ``solve`` returns; ``to_dict()`` is the JSON report.

    Attributes:
      config: the problem and solver settings (k, d, tau, nonneg, seed, method, ...).
      counts: samples per class.
      loss: the SC loss (sum convention) at ``z``, in float64.
      optimum: the reference value (module docstring), or ``None`` when none is known.
      optimum_kind: ``"of"``, ``"etf"``, ``"relaxation"``, ``"batched_of"`` or ``None``.
      rel_gap: ``(loss - optimum) / |optimum|``, or ``None`` without a reference.
      status: ``"optimal"``, ``"converged"``, ``"not_optimal"``, ``"stalled"`` or
        ``"max_steps"`` (module docstring).
      metrics: Delta_GM to OF and ETF, NC1, the class-mean Gram, the smallest entry, the
        cosine sensitivity and the stationarity norms (``grad_norm``, ``grad_norm_rel``).
      timing: solve, compile and reference seconds, and the number of steps.
      attempts: runs made (1 + restarts used).
      z: ``N x d`` unit rows (non-negative with ``nonneg``), samples in class order.
      labels: class of each row of ``z``.
      versions: library versions, for the report.
      certificate: the ``certificate`` report when one was asked for, else ``None``.
      warnings: human-readable warnings (e.g. the loss does not pin the geometry).
      method_choice: with ``method="auto"``: the method used and why (``auto_method``), and
        for a collapsed answer its sample-space certificate (``"collapse_certificate"``:
        proven lower bound, relative gap, certified, seconds); ``None`` otherwise.
    """

    config: dict[str, Any]
    counts: list[int]
    loss: float
    optimum: float | None
    optimum_kind: str | None
    rel_gap: float | None
    status: str
    metrics: dict[str, Any]
    timing: dict[str, float]
    attempts: int
    z: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    versions: dict[str, str] = field(default_factory=library_versions)
    certificate: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    method_choice: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: every field but ``z`` and ``labels`` (``certificate`` if set).

        Returns:
          A dict of the report's fields.
        """
        out = {
            "config": self.config,
            "counts": self.counts,
            "loss": self.loss,
            "optimum": self.optimum,
            "optimum_kind": self.optimum_kind,
            "rel_gap": self.rel_gap,
            "status": self.status,
            "attempts": self.attempts,
            "metrics": self.metrics,
            "timing": self.timing,
            "versions": self.versions,
            "warnings": self.warnings,
        }
        if self.certificate is not None:
            out["certificate"] = self.certificate
        if self.method_choice is not None:
            out["method_choice"] = self.method_choice
        return out


def reference_value(counts: Sequence[int], tau: float, d: int, nonneg: bool) -> tuple[float, str] | tuple[None, None]:
    """Proven full-batch optimum when a closed form applies, else ``(None, None)``.

    ``L*_OF`` under ReLU with ``d >= k`` (any counts); the ETF value without ReLU when the
    classes are balanced and ``d >= k - 1``.

    Args:
      counts: ``k >= 2`` class sizes, each ``>= 2``.
      tau: temperature, a finite number ``> 0``.
      d: embedding dimension (an integer ``>= 1``).
      nonneg: UFM+ (ReLU).

    Returns:
      ``(value, "of")``, ``(value, "etf")`` or ``(None, None)``.

    Raises:
      ValueError: naming ``counts`` or ``tau`` when it is outside its range.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the OF under ReLU;
      Graf, Hofer, Niethammer, Kwitt, "Dissecting Supervised Contrastive Learning",
      ICML 2021: the balanced ETF without ReLU;
      DESIGN.md section 4.
    """
    counts = check_counts(counts)
    k = counts.size
    if nonneg and d >= k:
        return of_loss(counts, tau), "of"
    if not nonneg and d >= k - 1 and np.all(counts == counts[0]):
        return etf_loss(counts, tau), "etf"
    return None, None


def point_metrics(z: np.ndarray, labels: np.ndarray, k: int, counts, tau: float, *,
                  batched: bool) -> dict:
    """The geometry a ``SolveResult`` reports at ``z``: Delta_GM to OF and ETF, NC1, the
    smallest entry, ``cosine_sensitivity`` (full batch only) and the class-mean Gram."""
    gram = geometry.class_mean_gram(z, labels, k)
    return {
        "delta_gm_of": geometry.metric_or_none(geometry.delta_gm, gram, "of"),
        "delta_gm_etf": geometry.metric_or_none(geometry.delta_gm, gram, "etf"),
        "nc1": geometry.metric_or_none(geometry.nc1, z, labels, k),
        "min_entry": float(z.min()),
        "cosine_sensitivity": None if batched else cosine_sensitivity(counts, tau, gram),
        "class_mean_gram": gram.tolist(),
    }


def _rel_gap(loss: float, ref: float | None) -> float | None:
    """``(loss - ref) / |ref|`` (``loss - ref`` at ``ref = 0``); ``None`` without a finite ``ref``."""
    if ref is None or not np.isfinite(ref):
        return None
    return (loss - ref) / abs(ref) if ref != 0 else loss - ref


#: While ``count_evaluations`` runs: a one-element host counter that every loss+gradient
#: evaluation of a solve increments (``None`` otherwise: no callback is compiled in).
_EVALUATIONS: list[int] | None = None


def _tick() -> None:
    if _EVALUATIONS is not None:
        _EVALUATIONS[0] += 1


def count_evaluations(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``(fn(), evaluations)``: run ``fn`` (e.g. a ``solve``) with every loss+gradient
    evaluation of the solver counted (each line-search trial, backtracking trial and
    extrapolation), excluding the compilation's warm-up calls.

    For benchmarks (``python -m ufm.bench``: the floor of a solve is that many evaluations of
    the objective). It compiles its own solver pieces, with a host callback in the objective,
    so it is slower than ``solve`` alone.

    Args:
      fn: a callable running one or more solves.

    Returns:
      ``(result of fn, number of evaluations)``.

    >>> from ufm.core.labels import step_counts
    >>> res, n = count_evaluations(lambda: solve([4, 3], nonneg=True, method="classes"))
    >>> n >= res.timing["steps"] >= 1
    True
    """
    global _EVALUATIONS
    _EVALUATIONS = [0]
    try:
        return fn(), _EVALUATIONS[0]
    finally:
        _EVALUATIONS = None


def _counted(vg):
    """``vg`` with a host callback counting its evaluations (``count_evaluations``)."""
    def counted(z, data):
        jax.debug.callback(_tick)
        return vg(z, data)

    return jax.jit(counted)


def _make_objective(matmul_dtype, shared_shift, method, batched, chunked, sharded=None):
    """Jitted ``vg(z, data) = value_and_grad`` of the loss on unit rows (Euclidean gradient).

    ``data = (labels, counts, padded_batches or None, tau)`` is an argument, not a constant, so
    one compilation serves every problem of the same shapes (seeds, schedules, imbalances, and
    the temperatures of a ``--tau-path`` on the same side of ``gram_grad.shared_shift_fits``).
    ``sharded = (devices, chunk)`` shards the full-batch samples loss by anchor rows over that
    many devices (``ufm.core.sharded``); ``None``: one device.
    """
    if sharded is not None and method == "samples" and not batched:
        from ufm.core.sharded import make_mesh, value_and_grad_sharded

        mesh, chunk, mm = make_mesh(sharded[0]), sharded[1], jnp.dtype(matmul_dtype)
        return jax.jit(lambda z, data: value_and_grad_sharded(
            z, data[0], data[1], data[3], mesh, chunk=chunk, matmul_dtype=mm, shared_shift=shared_shift))
    if method == "classes":
        return jax.jit(lambda v, data: jax.value_and_grad(collapsed_scl_loss)(v, data[1], data[3]))
    if batched:
        return jax.jit(lambda z, data: jax.value_and_grad(
            lambda z: scl_loss(z, data[0], data[3], batches=data[2], normalize=False))(z))
    mm = jnp.dtype(matmul_dtype)
    if chunked:
        return jax.jit(lambda z, data: value_and_grad_chunked(
            z, data[0], data[1], data[3], chunk=1024, matmul_dtype=mm, shared_shift=shared_shift))
    return jax.jit(lambda z, data: gram_value_and_grad(z, data[0], data[1], data[3], matmul_dtype=mm,
                                                       shared_shift=shared_shift))


class _Stopper:
    """Stopping rule of one phase, called with every accepted iterate's loss.

    Stops with ``"optimal"`` once the relative gap to the reference is at most ``gap_tol`` at a
    stationary point, and on a stalled loss (relative decrease below ``ftol`` over ``patience``
    steps) with ``"converged"`` at a stationary point, ``"stalled"`` elsewhere. Stationary:
    ``residual() <= grad_tol`` (absolute); ``grad_tol=None`` skips the test (a float32 stage,
    whose gradient cannot resolve it, hands over to the float64 one).
    """

    def __init__(self, ref: float | None, cfg: SolverConfig, gap_tol: float, grad_tol: float | None):
        self.ref, self.cfg, self.gap_tol, self.grad_tol = ref, cfg, gap_tol, grad_tol
        self.history: list[float] = []

    def stationary(self, residual: Callable[[], float]) -> bool:
        return self.grad_tol is None or residual() <= self.grad_tol

    def __call__(self, value: float, residual: Callable[[], float]) -> str | None:
        self.history.append(value)
        if self.ref is not None and _rel_gap(value, self.ref) <= self.gap_tol and self.stationary(residual):
            return "optimal"
        p = self.cfg.patience
        if len(self.history) > p:
            old = self.history[-p - 1]
            if old - value <= self.cfg.ftol * abs(old):
                return "converged" if self.stationary(residual) else "stalled"
        return None


_unit_rows = jax.jit(normalize)
_residual_norm = jax.jit(optim.residual_norm, static_argnames="nonneg")


@dataclass(frozen=True)
class _Phase:
    """Jitted pieces of one phase on ``optim``'s methods: ``init(z, data) -> state``,
    ``step(state, data) -> (state, event)``, ``residual(state)`` (stationarity norm),
    ``value(state)`` and ``point(state)`` (the unit rows the state stands for)."""

    name: str
    init: Callable
    step: Callable
    residual: Callable
    value: Callable
    point: Callable
    resets: bool  # on a stall away from stationarity, restart from the point with no memory


def _sphere_pieces(vg, memory: int, jit=jax.jit) -> _Phase:
    """L-BFGS on ``h`` for ``f(h) = L(normalize(h))`` (``optim.lbfgs_step``). The state is
    ``(LBFGSState, f at the previous iterate)``: the stopping rule sees the loss the step
    started from (as ``optax.value_and_grad_from_state`` gives it) and the phase returns the
    step's end point, which the line search made no worse."""
    opt = optax.lbfgs(memory_size=memory)

    def f(data):
        return optim.sphere_loss(lambda z: vg(z, data))

    def init(h, data):
        s = optim.lbfgs_init(opt, f(data), h)
        return s, optim.lbfgs_value(s)

    step = jit(lambda s, data: (optim.lbfgs_step(opt, f(data), s[0]), optim.lbfgs_value(s[0])))
    return _Phase(
        name="sphere",
        init=jit(init),
        step=lambda s, data: (step(s, data), optim.ACCEPT),
        residual=jit(lambda s: optim.sphere_residual_norm(s[0].params, optim.lbfgs_grad(s[0]))),
        value=lambda s: s[1],
        point=lambda s: _unit_rows(s[0].params),
        resets=True,
    )


_A0 = 1e-2  # first projected-gradient step


def _polish_pieces(vg, jit=jax.jit) -> _Phase:
    """Accelerated projected gradient on {Z >= 0, unit rows} (``optim.pg_step``)."""
    return _Phase(
        name="polish",
        init=jit(lambda z, data: optim.pg_init(lambda x: vg(x, data), z, _A0)),
        step=jit(lambda s, data: optim.pg_step(lambda x: vg(x, data), s)),
        residual=jit(lambda s: optim.residual_norm(s.x, s.gx, True)),
        value=lambda s: s.fx,
        point=lambda s: s.x,
        resets=False,
    )


_MAX_RESETS = 5  # memory resets per sphere phase after stalls away from stationarity


def _run_phase(phase: _Phase, z, data, cap: int, stop: _Stopper, progress, step0: int):
    """Run ``phase`` from ``z`` (``optim.run_python``); returns ``(z, reason, steps)`` with
    reason ``"optimal"``, ``"converged"``, ``"stalled"`` or ``"max_steps"``."""
    resets = 0

    def observe(state, event, steps):
        nonlocal resets
        if event == optim.RESTART:
            return state, None
        residual = lambda: float(phase.residual(state))  # noqa: E731 - evaluated only when needed
        if event == optim.VANISHED:  # no step decreases the loss at working precision
            return state, "converged" if stop.stationary(residual) else "stalled"
        value = float(phase.value(state))
        if progress:
            progress(phase.name, step0 + steps, value)
        if not np.isfinite(value):
            raise FloatingPointError(f"loss became non-finite in the {phase.name} phase")
        why = stop(value, residual)
        if why == "stalled" and phase.resets and resets < _MAX_RESETS:
            # L-BFGS on h stalls where the rows of h have drifted to very different norms (the
            # gradient in h of a long row is tiny): restart from the unit rows, memory cleared
            resets += 1
            stop.history.clear()
            return phase.init(_unit_rows(phase.point(state)), data), None
        return state, why

    state, reason, steps = optim.run_python(lambda s: phase.step(s, data), phase.init(z, data), cap, observe)
    return phase.point(state), reason, steps


def _status(gap: float | None, stationary: bool, reason: str, accept_tol: float) -> str:
    """``"not_optimal"`` above the reference by more than ``accept_tol``; else at a stationary
    point ``"optimal"`` (a reference) or ``"converged"`` (none); else ``"max_steps"`` when the
    step cap ended the run, ``"stalled"`` when the loss stopped decreasing."""
    if gap is not None and gap > accept_tol:
        return "not_optimal"
    if stationary:
        return "optimal" if gap is not None else "converged"
    return "max_steps" if reason == "max_steps" else "stalled"


def _relaxation_reference(problem: Problem):
    """The reduced relaxation's lower bound as the reference of a full-batch problem where it is
    tight (``d >= k``) and its conic solve succeeded, else ``(None, None)``."""
    if problem.d < problem.k:
        return None, None
    from ufm.certificates.relaxation import reduced_relaxation  # cvxpy: only where no closed form is known

    rel = reduced_relaxation(problem)
    if not rel.ok or not np.isfinite(rel.lower_bound):
        return None, None
    return float(rel.lower_bound), "relaxation"


def solve(
    counts: Sequence[int] | Problem,
    *,
    d: int | None = None,
    tau: float | None = None,
    nonneg: bool | None = None,
    seed: int = 0,
    batches: Sequence[Sequence[int]] | None = None,
    method: str = "auto",
    config: SolverConfig = SolverConfig(),
    progress: Progress | None = None,
    init: np.ndarray | None = None,
) -> SolveResult:
    """Minimize the SC loss over unit-norm (and, with ``nonneg``, non-negative) embeddings.

    Args:
      counts: samples per class (each >= 2), or a ``Problem`` (validated once, where it was
        built; then ``d``, ``tau``, ``nonneg`` and ``batches`` come from it).
      d: embedding dimension, an integer >= 1 (default ``k``). ``d = 1`` (embeddings +-1, a
        combinatorial problem) is solved by the sign search of ``ufm.solvers.signs`` (full batch
        only; ``method`` and ``init`` do not apply there).
      tau: temperature, a finite number in ``[1e-6, 1e6]`` (``ufm.core.checks.TAU_MIN``;
        default 0.1).
      nonneg: add the ReLU constraint ``Z >= 0`` (UFM+), ``True`` or ``False`` (default
        ``False``).
      seed: random start ``h ~ N(0, I)`` (``numpy.random.default_rng(seed)``), an integer
        >= 0; restart ``r`` uses ``seed + r`` (after a run ending ``"not_optimal"`` or
        ``"stalled"``, at most ``config.restarts`` times).
      batches: list of index lists over the samples in class order (default: one full batch).
      method: ``"samples"`` optimizes all N embeddings; ``"classes"`` optimizes one vector per
        class (``Z = V[labels]``, exact among collapsed configurations; its loss is the true
        loss of that Z; whether collapse is optimal is what ``ufm.certify`` or the closed form
        decide); ``"auto"`` chooses by cost (``auto_method``): for the full batch with
        ``d >= k`` the class vectors, whose answer is then certified in SAMPLE space by the
        dual bound (``ufm.certificates.dual``) and solved again over the samples when the
        bound does not prove it within ``config.accept_tol``; the samples with batches, with
        ``devices > 1`` or with a smaller ``d`` (classes above N = 20,000 there). The report's
        ``method_choice`` says which ran and why.
      config: solver knobs (``SolverConfig``; ``grad_tol`` is the stationarity test that
        ``"optimal"`` and ``"converged"`` need, see the module docstring). ``config.devices > 1``
        shards the full-batch loss of ``method="samples"`` by anchor rows over that many of
        ``jax.devices()`` (``ufm.core.sharded``; no device holds the N x N logits); the
        class-vector method and ``d = 1`` have no N x N work and ignore it.
      progress: callback ``(phase, step, loss)`` called every step.
      init: warm start for the first attempt, an N x d array (e.g. ``SolveResult.z`` of a
        nearby problem; ``ufm.solvers.continuation.solve_path`` follows a temperature path this way).
        Its rows are normalized (and, with ``nonneg``, projected onto ``z >= 0``); with
        ``nonneg`` the sphere phase and the rotation are skipped and the polish starts there.
        Restarts, if any, start from ``seed + r`` as without it.

    Returns:
      ``SolveResult``: the best run (``"optimal"`` / ``"converged"`` first, then the lowest
      loss), its loss, reference value, relative gap, status, geometry metrics and timings.

    Raises:
      ValueError: naming the bad argument: ``counts`` (also when the solve needs more memory
        than the machine has, ``ufm.solvers.memory``: checked before anything of size N is
        allocated), ``tau``, ``nonneg``, ``d``,
        ``batches`` (``Problem.create``), a ``Problem`` passed with other problem
        arguments, ``seed``, ``config`` (also ``config.devices`` above ``len(jax.devices())``
        or with batches), ``method`` (also ``"classes"`` with batches) or
        ``init`` (wrong shape, non-finite, a zero row or class mean).
      FloatingPointError: when the loss becomes non-finite during a phase.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., Springer 2006: L-BFGS
      (section 7.2) with a zoom line search (chapter 3), the sphere phase;
      Beck and Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear
      Inverse Problems", SIAM J. Imaging Sciences 2009: the momentum of the orthant phase
      (used here on a non-convex set, as a heuristic);
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the OF
      reference under ReLU (full batch and batched);
      Graf, Hofer, Niethammer, Kwitt, "Dissecting Supervised Contrastive Learning",
      ICML 2021: the ETF reference.
    """
    if isinstance(counts, Problem):
        problem = as_problem(counts, tau=tau, nonneg=nonneg, d=d, batches=batches)
    else:
        problem = Problem.create(counts, tau=0.1 if tau is None else tau,
                                 nonneg=False if nonneg is None else nonneg, d=d, batches=batches)
    counts, k, d, tau, nonneg = problem.counts, problem.k, problem.d, problem.tau, problem.nonneg
    batches = problem.batching  # a validated Batching (or None): nothing below re-checks it
    seed = check_int("seed", seed, 0)
    if not isinstance(config, SolverConfig):
        raise ValueError(f"config must be a SolverConfig, got {type(config).__name__}")
    n = problem.n_samples
    if d == 1:  # the sphere is {-1, +1}: a combinatorial problem (ufm.solvers.signs)
        if batches is not None:
            raise ValueError("d = 1 needs the full batch: in d = 1 every embedding is +-1, gradient "
                             "steps cannot move, and only the full batch has a sign search "
                             "(ufm.solvers.signs); use d >= 2 with batches")
        from ufm.solvers.signs import solve_d1

        return solve_d1(problem, seed=seed, accept_tol=config.accept_tol, config={
            "solver": {f: getattr(config, f) for f in config.__dataclass_fields__}})
    padded = None if batches is None else batches.padded()
    # refuse what cannot fit before anything of size N is allocated
    devices = config.devices
    if devices > 1:
        if batches is not None:
            raise ValueError(f"config: devices = {devices} shards the full-batch loss; with batches "
                             "use devices = 1")
        if devices > len(jax.devices()):
            raise ValueError(f"config: devices = {devices} but JAX sees {len(jax.devices())} "
                             "device(s); on the CPU set XLA_FLAGS=--xla_force_host_platform_device_count="
                             f"{devices} before JAX is imported")
    check_fits(*solve_bytes(n, k, d, method=method if method in ("samples", "classes") else "auto",
                            nonneg=nonneg, lbfgs_memory=config.lbfgs_memory,
                            batch_shape=None if padded is None else padded.shape,
                            devices=devices), n)
    if method not in ("auto", "samples", "classes"):
        raise ValueError(f"method must be 'auto', 'samples' or 'classes', got {method!r}")
    if method == "classes" and batches is not None:
        raise ValueError("method='classes' needs the full batch (batches=None)")
    if method == "auto":
        return _solve_auto(problem, seed, config, progress, init)
    return _solve_method(problem, method, seed, config, progress, init)


def auto_method(problem: Problem, devices: int = 1) -> tuple[str, str]:
    """The method ``solve(method="auto")`` runs first, and why (the choice is by cost).

    - batches: ``"samples"`` (the loss is a sum over batches; no class-level form);
    - ``devices > 1``: ``"samples"`` (sharding is asked for, and only that path shards);
    - the full batch with ``d >= k`` (or ``d >= k - 1`` without ReLU): ``"classes"``, ``k x d``
      unknowns whatever ``N``; its answer is then certified in sample space
      (``_solve_auto``), since collapse is what the certificate proves, not what it assumes;
    - otherwise (``d`` below that, where no relaxation bound can be tight): ``"samples"`` up to
      ``CLASSES_ABOVE`` samples, ``"classes"`` above (uncertified, with a warning).

    Args:
      problem: a validated ``Problem``.
      devices: ``SolverConfig.devices``.

    Returns:
      ``(method, reason)``.

    >>> from ufm.core.problem import Problem
    >>> auto_method(Problem.create([500, 5], nonneg=True))[0]
    'classes'
    """
    k, d, n = problem.k, problem.d, problem.n_samples
    if problem.batched:
        return "samples", "batches: the loss is a sum over batches, solved over all samples"
    if devices > 1:
        return "samples", f"devices = {devices}: the samples loss sharded by anchor rows"
    if _collapse_certifiable(problem):
        return "classes", ("full batch: one vector per class (k x d unknowns for any N), the "
                           "answer certified in sample space by the dual bound")
    if n > CLASSES_ABOVE:
        return "classes", (f"d = {d} < k = {k} and N = {n} > {CLASSES_ABOVE}: one vector per "
                           "class; collapse is assumed, no certificate can prove it here")
    return "samples", f"d = {d} < k = {k}: no relaxation bound is tight, so all N samples are solved"


def _collapse_certifiable(problem: Problem) -> bool:
    """Whether a relaxation bound can be tight at a collapsed optimum (``d >= k``, or ``d >= k -
    1`` without ReLU), so that the dual certificate can prove a class-vector answer."""
    return problem.d >= problem.k or (not problem.nonneg and problem.d >= problem.k - 1)


def _collapse_certificate(res: "SolveResult", problem: Problem, tol: float) -> dict[str, Any]:
    """The dual certificate (``ufm.certificates.dual.dual_bound``, a proven bound on the
    SAMPLE-space problem, valid whatever the point) at the collapsed answer ``res.z``, judged
    by ``ufm.certificates.certification.certificate``."""
    from ufm.certificates.certification import certificate
    from ufm.certificates.dual import dual_bound

    t0 = time.perf_counter()
    report = certificate(res.loss, dual_bound(res.z, problem), tol)
    return {**{key: report[key] for key in ("lower_bound", "rel_gap", "tolerance", "certified")},
            "seconds": time.perf_counter() - t0}


def _solve_auto(problem: Problem, seed: int, config: SolverConfig, progress, init) -> "SolveResult":
    """``method="auto"``: ``auto_method``'s choice; a collapsed (``"classes"``) answer is kept
    when the dual bound proves it within ``config.accept_tol`` of the sample-space optimum
    (relative), else (up to ``CLASSES_ABOVE`` samples) the samples method solves it again."""
    if init is not None:  # checked as the samples method would (a zero row is an error)
        _start_point(init, problem.labels, problem.k, problem.d, "samples")
    first, why = auto_method(problem, config.devices)
    res = _solve_method(problem, first, seed, config, progress, init)
    choice: dict[str, Any] = {"requested": "auto", "used": first, "why": why}
    res.method_choice = choice
    if first == "samples":
        return res
    cert = _collapse_certificate(res, problem, config.accept_tol)
    choice["collapse_certificate"] = cert
    res.timing["collapse_certificate_seconds"] = cert["seconds"]
    if cert["certified"]:
        return res
    if problem.n_samples > CLASSES_ABOVE or not _collapse_certifiable(problem):
        res.warnings.append(
            "the collapsed solution (--method classes) is not certified in sample space: "
            f"relative gap to the proven bound {cert['rel_gap']:.1e} > {config.accept_tol:g}; "
            "another, uncollapsed point may be lower" + (
                f" (--method samples solves all N = {problem.n_samples} samples)"
                if problem.n_samples > CLASSES_ABOVE else ""))
        return res
    out = _solve_method(problem, "samples", seed, config, progress, init)
    out.method_choice = {"requested": "auto", "used": "samples",
                         "why": (f"the collapsed solve was not certified in sample space (relative "
                                 f"gap to the proven bound {cert['rel_gap']:.1e} > "
                                 f"{config.accept_tol:g}), so all N samples were solved"),
                         "collapse_certificate": cert, "tried": ["classes", "samples"]}
    out.timing["compile_seconds"] += res.timing["compile_seconds"]
    out.timing["solve_seconds"] += res.timing["solve_seconds"] + cert["seconds"]
    return out


def _solve_method(problem: Problem, method: str, seed: int, config: SolverConfig, progress,
                  init) -> "SolveResult":
    """``solve`` with ``method`` ``"samples"`` or ``"classes"`` (arguments validated)."""
    counts, k, d, tau, nonneg = problem.counts, problem.k, problem.d, problem.tau, problem.nonneg
    batches = problem.batching
    padded = None if batches is None else batches.padded()
    devices, n, labels = config.devices, problem.n_samples, problem.labels
    rows = labels if method == "samples" else np.arange(k, dtype=np.int32)
    t0 = time.perf_counter()
    if batches is None:
        ref, ref_kind = reference_value(counts, tau, d, nonneg)
        if ref is None:
            ref, ref_kind = _relaxation_reference(problem)
        terms = n
    else:
        ref, ref_kind = None, None
        if nonneg and d >= k:  # the OF minimizes every batch's term (DESIGN.md section 4)
            ref, ref_kind = batched_of_loss(labels, padded, tau), "batched_of"
        terms = int(np.sum(np.asarray(padded) >= 0))
    reference_seconds = time.perf_counter() - t0
    grad_scale = terms / tau  # stationarity is judged relative to (sum of batch sizes) / tau

    stages = _stages(config.matmul_dtype, n) if method == "samples" else ("float64",)
    with jax.enable_x64(True):
        z0 = None if init is None else _start_point(init, labels, k, d, method)
        if progress:
            progress("compile", 0, float("nan"))
        t0 = time.perf_counter()
        data = (jnp.asarray(labels), jnp.asarray(counts),
                None if padded is None else jnp.asarray(padded), jnp.asarray(tau, jnp.float64))
        # tau is data; only the Gram path's exp shift (shared or per row) depends on its value.
        shifts = tuple((dt, shared_shift_fits(tau, dt)) for dt in sorted({*stages, "float64"})
                       if method == "samples" and padded is None)
        key = (n, k, d, nonneg, method, stages, shifts, config.lbfgs_memory,
               None if padded is None else padded.shape, devices, _EVALUATIONS is not None)
        vg_exact, machinery = _machinery(key, data, rows.size)
        compile_seconds = time.perf_counter() - t0
        if _EVALUATIONS is not None:
            _EVALUATIONS[0] = 0  # the warm-up's calls are not the solve's
        # A float32 stage cannot resolve gaps below its ~1e-8 loss noise, nor stationarity: it
        # hands over to the float64 one there.
        gap_tols = [max(config.gap_tol, _F32_GAP) if dt == "float32" else config.gap_tol for dt in stages]
        grad_tols = [None if dt == "float32" else config.grad_tol * grad_scale for dt in stages]
        final_grad_tol = (max(config.grad_tol, _F32_GRAD) if stages[-1] == "float32" else config.grad_tol) * grad_scale

        t0 = time.perf_counter()
        best = None
        total_steps = 0
        for attempt in range(config.restarts + 1):
            warm = attempt == 0 and z0 is not None
            z = jnp.asarray(z0 if warm else
                            np.random.default_rng(seed + attempt).standard_normal((rows.size, d)))
            # Sphere phase: the whole solve without ReLU, a warm start (first stage only) with
            # it, unless ``init`` already is one.
            sphere = machinery if not nonneg else [] if warm else machinery[:1]
            for (_, pieces, _), gap_tol, grad_tol in zip(sphere, gap_tols, grad_tols):
                # with ReLU the sphere point is a start, not an answer: no stationarity asked
                z, reason, steps = _run_phase(pieces, z, data, config.sphere_steps,
                                              _Stopper(ref, config, gap_tol, None if nonneg else grad_tol),
                                              progress, total_steps)
                total_steps += steps
            if nonneg and not warm:
                z = jnp.asarray(rotate_to_orthant(np.asarray(z), rows, k))
            if nonneg:
                for (_, _, pieces), gap_tol, grad_tol in zip(machinery, gap_tols, grad_tols):
                    z, reason, steps = _run_phase(pieces, z, data, config.polish_steps,
                                                  _Stopper(ref, config, gap_tol, grad_tol), progress, total_steps)
                    total_steps += steps
            loss, g = vg_exact(z, data)  # report in full float64
            loss, grad_norm = float(loss), float(_residual_norm(z, g, nonneg))
            gap = _rel_gap(loss, ref)
            status = _status(gap, grad_norm <= final_grad_tol, reason, config.accept_tol)
            rank = (status not in ("optimal", "converged"), loss)
            if best is None or rank < best[0]:
                best = (rank, loss, np.asarray(z), status, grad_norm)
            if status not in ("not_optimal", "stalled"):  # both restart from the next seed
                break
        solve_seconds = time.perf_counter() - t0

    _, loss, z, status, grad_norm = best
    if method == "classes":
        z = z[labels]
    gap = _rel_gap(loss, ref)
    metrics = {
        **point_metrics(z, labels, k, counts, tau, batched=batches is not None),
        # stationarity at the returned point (of the class vectors with method="classes"):
        # Frobenius norm of the Riemannian gradient / KKT residual, and it over (sum |B|)/tau
        "grad_norm": grad_norm,
        "grad_norm_rel": grad_norm / grad_scale,
    }
    warnings = _flat_loss_warning(metrics["cosine_sensitivity"], tau, config.gap_tol)
    cfg = {
        "k": int(k),
        "d": d,
        "tau": tau,
        "nonneg": nonneg,
        "seed": seed,
        "method": method,
        "warm_start": init is not None,
        "n_samples": int(n),
        "batches": None if batches is None else len(padded),
        "solver": {f: getattr(config, f) for f in config.__dataclass_fields__},
    }
    return SolveResult(
        config=cfg,
        counts=[int(c) for c in counts],
        loss=loss,
        optimum=ref,
        optimum_kind=ref_kind,
        rel_gap=gap,
        status=status,
        metrics=metrics,
        timing={
            "solve_seconds": solve_seconds,
            "compile_seconds": compile_seconds,
            "reference_seconds": reference_seconds,
            "steps": total_steps,
        },
        attempts=attempt + 1,
        z=z,
        labels=labels,
        warnings=warnings,
    )


def _start_point(init, labels, k: int, d: int, method: str) -> np.ndarray:
    """The warm start ``init`` (N x d) as the solver's first iterate: unit rows; one normalized
    class mean per class with ``method="classes"``."""
    z, labels = check_rows(init, labels, "init")
    if z.shape[1] != d:
        raise ValueError(f"init must have shape (N, d) = ({labels.size}, {d}), got {z.shape}")
    if method == "classes":
        z = geometry.class_means(z, labels, k)
    norms = np.linalg.norm(z, axis=1)
    if np.any(norms == 0):
        i = int(np.argmax(norms == 0))
        what = "class mean" if method == "classes" else "row"
        raise ValueError(f"init {what} {i} is zero: a warm start needs nonzero rows")
    return z / norms[:, None]  # with ``nonneg`` the polish projects onto z >= 0 first


def _flat_loss_warning(sensitivity: float | None, tau: float, gap_tol: float) -> list[str]:
    """A warning when the loss does not pin the geometry (``closed_forms.cosine_sensitivity``):
    a cosine move of 0.01 changes the loss by less than the solver's gap tolerance."""
    if sensitivity is None or 0.01 * sensitivity >= gap_tol:
        return []
    return [f"at tau = {tau:g} the loss barely depends on the class-mean cosines: moving the "
            f"least pinned one by 0.01 changes the loss by {0.01 * sensitivity:.1e} relative, "
            f"below the solver's gap tolerance {gap_tol:g}, so Delta_GM and the cosines are "
            "not determined by the loss here (the loss value is); a larger --tau resolves them, "
            "and --tau-path (ufm.solvers.continuation) follows the minimizer down from one"]


_MACHINERY_CACHE: dict = {}

# The class-vector method's arrays are k x d: XLA's backend optimizations cost more compile time
# (~30% of the L-BFGS step's second) than they save at run time (145 vs 170 us a step, k = d = 10).
_jit_small = partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _machinery(key, data, n_rows):
    """Jitted objective and, per stage, the sphere and polish phases, compiled once per problem
    shape ``key`` (the labels, counts, batches and tau are arguments, ``data``)."""
    if key in _MACHINERY_CACHE:
        return _MACHINERY_CACHE[key]
    n, _, d, nonneg, method, stages, shifts, memory, batch_shape, devices, counting = key
    objective = partial(_make_objective, method=method, batched=batch_shape is not None,
                        chunked=n > CHUNK_ABOVE,
                        sharded=None if devices == 1 else (devices, sharded_chunk_rows(n, devices)))
    shift = dict(shifts)  # {matmul dtype: one shared exp shift?}; empty off the Gram path
    if counting:
        objective = lambda *a, make=objective: _counted(make(*a))  # noqa: E731
    vg_exact = objective("float64", shift.get("float64"))
    jit = _jit_small if method == "classes" else jax.jit
    machinery = []
    for dtype in stages:
        vg = vg_exact if dtype == "float64" else objective(dtype, shift.get(dtype))
        machinery.append((vg, _sphere_pieces(vg, memory, jit), _polish_pieces(vg, jit) if nonneg else None))
    _warm_up(vg_exact, machinery, stages, n_rows, d, nonneg, data)
    if len(_MACHINERY_CACHE) >= 8:
        _MACHINERY_CACHE.pop(next(iter(_MACHINERY_CACHE)))
    _MACHINERY_CACHE[key] = (vg_exact, machinery)
    return vg_exact, machinery


def _stages(matmul_dtype: str, n: int) -> tuple[str, ...]:
    """Precision stages: "auto" is float32 then a float64 refinement for N > 1024, else float64."""
    if matmul_dtype == "auto":
        return ("float32", "float64") if n > 1024 else ("float64",)
    if matmul_dtype not in ("float32", "float64"):
        raise ValueError(f"matmul_dtype must be 'auto', 'float32' or 'float64', got {matmul_dtype!r}")
    return (matmul_dtype,)


def _warm_up(vg_exact, machinery, stages, n, d, nonneg, data):
    """Compile the jitted pieces a solve uses once, so that solve time excludes compilation:
    under ReLU the sphere phase runs in the first stage only, and a float32 stage never asks
    for stationarity."""
    h = 1.0 + jnp.arange(n * d, dtype=jnp.float64).reshape(n, d) % 3
    z = h / jnp.linalg.norm(h, axis=1, keepdims=True)
    jax.block_until_ready(_residual_norm(z, vg_exact(z, data)[1], nonneg))
    for i, ((_, sphere, polish), dtype) in enumerate(zip(machinery, stages)):
        for phase in (polish,) if nonneg and i > 0 else (sphere, polish):
            if phase is None:
                continue
            state = phase.init(h, data)
            state, _ = phase.step(state, data)
            jax.block_until_ready((phase.value(state), phase.point(state)))
            if dtype == "float64" and (phase is polish or not nonneg):
                jax.block_until_ready(phase.residual(state))
