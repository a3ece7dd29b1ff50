"""Solve the UFM / UFM+ SC-loss problem: minimize L(Z) over unit rows (and Z >= 0 with ReLU).

Method (two phases, each a plain first-order method on the exact loss):

1. **Sphere phase**: L-BFGS (optax, zoom line search) on ``h`` with ``Z = normalize(h)``, no
   sign constraint. Without ReLU the landscape is benign and this is the whole solve.
2. **Orthant phase** (``nonneg=True``): rotate the sphere solution so the class means sit near
   coordinate axes (``ufm.rotation.orthant_rotation``; the loss is rotation invariant), project
   onto ``{Z >= 0, ||z_i|| = 1}``, then polish with projected gradient
   ``z <- normalize(max(y - a g(y), 0))`` from the extrapolated point ``y`` (FISTA momentum with
   function-value restart), backtracking on the sufficient-decrease test, growing the step on
   success.

Single local runs under ReLU from random starts get stuck in spurious points (a large class
spread over two axes); going through the sphere optimum avoids them. Where a proven lower bound
is known (``L*_OF`` under ReLU with ``d >= k``; the ETF value when balanced without ReLU with
``d >= k-1``) the solver stops once the relative gap is below ``gap_tol`` and restarts from a
new seed if a run ends above ``accept_tol``; the result's ``status`` says whether the reference
was reached (``"optimal"``), the run stalled at a stationary point without a known reference
(``"converged"``), or neither (``"not_optimal"``, ``"max_steps"``).

>>> from ufm.labels import step_counts
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

from ufm import geometry
from ufm.config import SolverConfig
from ufm.closed_forms import batched_of_loss, cosine_sensitivity, etf_loss, of_loss
from ufm.gram_grad import value_and_grad as gram_value_and_grad
from ufm.gram_grad import shared_shift_fits, value_and_grad_chunked
from ufm.checks import check_rows, check_tau
from ufm.labels import check_counts, labels_from_counts
from ufm.loss import normalize, pad_batches, scl_loss
from ufm.rotation import orthant_rotation, project_orthant_sphere
from ufm.versions import library_versions

__all__ = ["solve", "SolveResult", "SolverConfig", "reference_value"]

Progress = Callable[[str, int, float], None]

CHUNK_ABOVE = 8192  # samples; above this the loss runs in row blocks (no N x N array)
CLASSES_ABOVE = 20000  # samples; above this method="auto" solves over class vectors


@dataclass
class SolveResult:
    """What ``solve`` returns; ``to_dict()`` is the JSON report."""

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

    def to_dict(self) -> dict[str, Any]:
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
        return out


def reference_value(counts: Sequence[int], tau: float, d: int, nonneg: bool) -> tuple[float, str] | tuple[None, None]:
    """Proven full-batch optimum when a closed form applies, else ``(None, None)``.

    ``L*_OF`` under ReLU with ``d >= k`` (any counts); the ETF value without ReLU when the
    classes are balanced and ``d >= k - 1``.
    """
    counts = check_counts(counts)
    k = counts.size
    if nonneg and d >= k:
        return of_loss(counts, tau), "of"
    if not nonneg and d >= k - 1 and np.all(counts == counts[0]):
        return etf_loss(counts, tau), "etf"
    return None, None


def _rel_gap(loss: float, ref: float | None) -> float | None:
    if ref is None:
        return None
    return (loss - ref) / abs(ref) if ref != 0 else loss - ref


def _collapsed_loss(v, counts, tau):
    """JAX ``collapsed_loss``: the SC loss of ``Z = V[labels]`` from the k class vectors ``V``."""
    n = counts.astype(v.dtype)
    terms = jnp.log(n)[None, :] + (v @ v.T - 1.0) / tau
    k = n.shape[0]
    terms = jnp.where(jnp.eye(k, dtype=bool), jnp.log(n - 1.0)[:, None], terms)
    return jnp.sum(n * jax.nn.logsumexp(terms, axis=1))


def _make_objective(matmul_dtype, shared_shift, method, batched, chunked):
    """Jitted ``vg(z, data) = value_and_grad`` of the loss on unit rows (Euclidean gradient).

    ``data = (labels, counts, padded_batches or None, tau)`` is an argument, not a constant, so
    one compilation serves every problem of the same shapes (seeds, schedules, imbalances, and
    the temperatures of a ``--tau-path`` on the same side of ``gram_grad.shared_shift_fits``).
    """
    if method == "classes":
        return jax.jit(lambda v, data: jax.value_and_grad(_collapsed_loss)(v, data[1], data[3]))
    if batched:
        return jax.jit(lambda z, data: jax.value_and_grad(
            lambda z: scl_loss(z, data[0], data[3], batches=data[2], normalize=False))(z))
    mm = jnp.dtype(matmul_dtype)
    if chunked:
        return jax.jit(lambda z, data: value_and_grad_chunked(
            z, data[0], data[1], data[3], chunk=1024, matmul_dtype=mm, shared_shift=shared_shift))
    return jax.jit(lambda z, data: gram_value_and_grad(z, data[0], data[1], data[3], matmul_dtype=mm,
                                                       shared_shift=shared_shift))


def _sphere_loss(vg):
    """``f(h) = L(normalize(h))`` with the hand-written gradient as its custom VJP."""

    @jax.custom_vjp
    def f(h):
        return fwd(h)[0]

    def fwd(h):
        norm = jnp.linalg.norm(h, axis=1, keepdims=True)
        z = h / norm
        loss, g = vg(z)
        g = (g - jnp.sum(g * z, axis=1, keepdims=True) * z) / norm
        return loss, g

    def bwd(g, ct):
        return (ct * g,)

    f.defvjp(fwd, bwd)
    return f


class _Stopper:
    """Stops on a reached reference gap or a stalled relative decrease."""

    def __init__(self, ref: float | None, cfg: SolverConfig, gap_tol: float | None = None):
        self.ref, self.cfg, self.history = ref, cfg, []
        self.gap_tol = cfg.gap_tol if gap_tol is None else gap_tol

    def __call__(self, value: float) -> str | None:
        self.history.append(value)
        if self.ref is not None and (value - self.ref) / abs(self.ref) <= self.gap_tol:
            return "optimal"
        p = self.cfg.patience
        if len(self.history) > p:
            old = self.history[-p - 1]
            if old - value <= self.cfg.ftol * abs(old):
                return "converged"
        return None


def _lbfgs_step(vg, cfg):
    """Jitted L-BFGS step on ``h`` for ``f(h) = L(normalize(h))``, and its optimizer."""
    opt = optax.lbfgs(memory_size=cfg.lbfgs_memory)

    @jax.jit
    def step(h, state, data):
        f = _sphere_loss(lambda z: vg(z, data))
        vag = optax.value_and_grad_from_state(f)
        value, grad = vag(h, state=state)
        updates, state = opt.update(grad, state, h, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(h, updates), state, value

    return opt, step


_unit_rows = jax.jit(normalize)


def _init_state(opt, h):
    """``opt.init(h)`` with strong scalar types, as ``step`` returns them (one compilation)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), opt.init(h))


def _sphere_phase(h, lbfgs, cfg, stop, progress, step0, data):
    opt, step = lbfgs
    state = _init_state(opt, h)
    reason, steps = "max_steps", 0
    for steps in range(1, cfg.sphere_steps + 1):
        h, state, value = step(h, state, data)
        value = float(value)
        if progress:
            progress("sphere", step0 + steps, value)
        if not np.isfinite(value):
            raise FloatingPointError("loss became non-finite in the sphere phase")
        why = stop(value)
        if why:
            reason = why
            break
    return _unit_rows(h), reason, steps


_A_MIN = 1e-14
_F32_GAP = 3e-8


def _polish_pieces(vg):
    """Jitted projected-gradient trial step and momentum extrapolation."""

    @jax.jit
    def trial(y, gy, a, data):
        x_new = project_orthant_sphere(y - a * gy)
        f_new, g_new = vg(x_new, data)
        diff = x_new - y
        return x_new, f_new, g_new, jnp.sum(gy * diff), jnp.sum(diff * diff)

    @jax.jit
    def extrapolate(x, x_prev, beta, data):
        y = project_orthant_sphere(x + beta * (x - x_prev))
        return (y, *vg(y, data))

    return trial, extrapolate


def _polish_phase(z, vg, pieces, cfg, stop, progress, step0, data):
    """Accelerated projected gradient on {Z >= 0, unit rows} with backtracking and restart."""
    trial, extrapolate = pieces
    x = project_orthant_sphere(z)
    fx, gx = vg(x, data)
    fx = float(fx)
    x_prev, t, a = x, 1.0, 1e-2
    reason, steps = "max_steps", 0
    for steps in range(1, cfg.polish_steps + 1):
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = float((t - 1.0) / t_next)
        if beta > 0:
            y, fy, gy = extrapolate(x, x_prev, beta, data)
            fy = float(fy)
        else:
            y, fy, gy = x, fx, gx
        while True:  # backtracking on the sufficient-decrease test
            x_new, f_new, g_new, lin, sq = trial(y, gy, a, data)
            f_new = float(f_new)
            if f_new <= fy + float(lin) + float(sq) / (2 * a) + 1e-12 * abs(fy) or a < _A_MIN:
                break
            a *= 0.5
        if a < _A_MIN:  # no step decreases the loss at working precision
            reason = "converged"
            break
        if f_new > fx:  # momentum overshoot: restart from x without momentum
            t, x_prev = 1.0, x
            a *= 0.5
            continue
        x_prev, x, fx, gx, t = x, x_new, f_new, g_new, t_next
        a *= 1.25
        if progress:
            progress("polish", step0 + steps, fx)
        why = stop(fx)
        if why:
            reason = why
            break
    return x, reason, steps


def solve(
    counts: Sequence[int],
    *,
    d: int | None = None,
    tau: float = 0.1,
    nonneg: bool = False,
    seed: int = 0,
    batches: Sequence[Sequence[int]] | None = None,
    method: str = "auto",
    config: SolverConfig = SolverConfig(),
    progress: Progress | None = None,
    init: np.ndarray | None = None,
) -> SolveResult:
    """Minimize the SC loss over unit-norm (and, with ``nonneg``, non-negative) embeddings.

    Args:
      counts: samples per class (each >= 2).
      d: embedding dimension (default ``k``).
      tau: temperature.
      nonneg: add the ReLU constraint ``Z >= 0`` (UFM+).
      seed: random start ``h ~ N(0, I)`` (``numpy.random.default_rng(seed)``); restart ``r``
        uses ``seed + r``.
      batches: list of index lists (default: one full batch).
      method: ``"samples"`` optimizes all N embeddings; ``"classes"`` optimizes one vector per
        class (``Z = V[labels]``, exact among collapsed configurations; its loss is the true
        loss of that Z; whether collapse is optimal is what ``ufm.certify`` or the closed form
        decide); ``"auto"`` = samples up to N = 20,000, classes above (full batch only).
      config: solver knobs (``SolverConfig``).
      progress: callback ``(phase, step, loss)`` called every step.
      init: warm start for the first attempt, an N x d array (e.g. ``SolveResult.z`` of a
        nearby problem; ``ufm.continuation.solve_path`` follows a temperature path this way).
        Its rows are normalized (and, with ``nonneg``, projected onto ``z >= 0``); with
        ``nonneg`` the sphere phase and the rotation are skipped and the polish starts there.
        Restarts, if any, start from ``seed + r`` as without it.
    """
    counts = check_counts(counts)
    k = counts.size
    d = k if d is None else int(d)
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    tau = check_tau(tau)
    labels = labels_from_counts(counts)
    n = labels.size
    if method == "auto":
        method = "classes" if batches is None and n > CLASSES_ABOVE else "samples"
    if method not in ("samples", "classes"):
        raise ValueError(f"method must be 'auto', 'samples' or 'classes', got {method!r}")
    if method == "classes" and batches is not None:
        raise ValueError("method='classes' needs the full batch (batches=None)")
    rows = labels if method == "samples" else np.arange(k, dtype=np.int32)
    if batches is None:
        padded = None
        ref, ref_kind = reference_value(counts, tau, d, nonneg)
    else:
        padded = pad_batches(batches, n)  # ValueError for an index outside [0, N)
        ref, ref_kind = None, None
        if nonneg and d >= k:  # the OF minimizes every batch's term (DESIGN.md section 4)
            ref, ref_kind = batched_of_loss(labels, batches, tau), "batched_of"

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
               None if padded is None else padded.shape)
        vg_exact, machinery = _machinery(key, data, rows.size)
        compile_seconds = time.perf_counter() - t0
        # A float32 stage cannot resolve gaps below its ~1e-8 loss noise: it hands over there.
        gap_tols = [max(config.gap_tol, _F32_GAP) if dt == "float32" else config.gap_tol for dt in stages]

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
            for (vg, lbfgs, _), tol in zip(sphere, gap_tols):
                z, reason, steps = _sphere_phase(z, lbfgs, config, _Stopper(ref, config, tol),
                                                 progress, total_steps, data)
                total_steps += steps
            if nonneg and not warm:
                z = jnp.asarray(np.asarray(z) @ orthant_rotation(np.asarray(z), rows, k))
            if nonneg:
                for (vg, _, pieces), tol in zip(machinery, gap_tols):
                    z, reason, steps = _polish_phase(z, vg, pieces, config, _Stopper(ref, config, tol),
                                                     progress, total_steps, data)
                    total_steps += steps
            loss = float(vg_exact(z, data)[0])  # report in full float64
            gap = _rel_gap(loss, ref)
            if best is None or loss < best[0]:
                best = (loss, np.asarray(z), reason)
            if ref is None or gap <= config.accept_tol:
                break
        solve_seconds = time.perf_counter() - t0

    loss, z, reason = best
    if method == "classes":
        z = z[labels]
    gap = _rel_gap(loss, ref)
    if ref is not None:
        status = "optimal" if gap <= config.accept_tol else "not_optimal"
    else:
        status = "converged" if reason in ("converged", "optimal") else "max_steps"
    gram = geometry.class_mean_gram(z, labels, k)
    metrics = {
        "delta_gm_of": geometry.metric_or_none(geometry.delta_gm, gram, "of"),
        "delta_gm_etf": geometry.metric_or_none(geometry.delta_gm, gram, "etf"),
        "nc1": geometry.metric_or_none(geometry.nc1, z, labels, k),
        "min_entry": float(z.min()),
        "cosine_sensitivity": None if batches is not None else cosine_sensitivity(counts, tau, gram),
        "class_mean_gram": gram.tolist(),
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
            "and --tau-path (ufm.continuation) follows the minimizer down from one"]


_MACHINERY_CACHE: dict = {}


def _machinery(key, data, n_rows):
    """Jitted objective, L-BFGS step and polish pieces per stage, compiled once per problem
    shape ``key`` (the labels, counts, batches and tau are arguments, ``data``)."""
    if key in _MACHINERY_CACHE:
        return _MACHINERY_CACHE[key]
    n, _, d, nonneg, method, stages, shifts, memory, batch_shape = key
    objective = partial(_make_objective, method=method, batched=batch_shape is not None,
                        chunked=n > CHUNK_ABOVE)
    shift = dict(shifts)  # {matmul dtype: one shared exp shift?}; empty off the Gram path
    vg_exact = objective("float64", shift.get("float64"))
    machinery = []
    for dtype in stages:
        vg = vg_exact if dtype == "float64" else objective(dtype, shift.get(dtype))
        lbfgs = _lbfgs_step(vg, SolverConfig(lbfgs_memory=memory))
        machinery.append((vg, lbfgs, _polish_pieces(vg) if nonneg else None))
    _warm_up(vg_exact, machinery, n_rows, d, data)
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


def _warm_up(vg_exact, machinery, n, d, data):
    """Compile the jitted pieces once so that solve time excludes compilation."""
    h = 1.0 + jnp.arange(n * d, dtype=jnp.float64).reshape(n, d) % 3
    z = h / jnp.linalg.norm(h, axis=1, keepdims=True)
    jax.block_until_ready(vg_exact(z, data))
    for vg, (opt, step), pieces in machinery:
        f, g = vg(z, data)
        jax.block_until_ready(step(h, _init_state(opt, h), data))
        if pieces is not None:
            trial, extrapolate = pieces
            jax.block_until_ready(trial(z, g, 1e-2, data))
            jax.block_until_ready(extrapolate(z, z, 0.5, data))
