"""How much shuffling is enough: the probability that shuffled batches satisfy the batch
conditions (a*) and (b) of DESIGN.md section 6, and what batch-binding changes (issue 38.3).

Model (the ``shuffle`` schedule of ``theory_checks.schedules``, ``drop_last=False``): each epoch
a uniformly random permutation of the ``N = sum(n_c)`` samples is cut into ``m_f = floor(N/B)``
batches of ``B`` and, when ``r = N - m_f B > 0``, a last partial batch of ``r`` (kept); epochs
are independent; the batches of ``E`` epochs are checked together (the graph is their union).
Counts are those of ``ufm.core.labels.step_counts`` (``round(k/2)`` minority classes of
``n_min``, the others ``round(R n_min)``), or any counts ``>= 2`` with ``k >= 2``.

In one epoch the class-count table ``X[b, c]`` is multivariate hypergeometric,
``P(X) = prod_b s_b! prod_c n_c! / (N! prod_{b,c} X[b,c]!)``. For a set of classes and a
per-batch rule "allowed(x, s)", the probability that EVERY batch is allowed is

    P = [z^n] prod_b W_{s_b}(z) / [z^n] (1 + sum_l z_l)^N,
    W_s(z) = sum_{allowed x, |x| <= s} s! / (prod_l x_l! (s - |x|)!) z^x          (1)

(``n`` the classes' counts; the product is truncated at degree ``n``, computed with positive
terms only, powers by repeated squaring). Events used (per epoch; ``E`` epochs: the ``E``-th
power, exactly, since epochs are independent and each event is "fails in every epoch"):

- ``pair_unpinned_probability(n_a, n_b)`` = q: (b) fails for a pair, i.e. every batch has
  ``x_a = 0`` or ``x_b = 0`` or ``x_a = x_b = 1``. EXACT, by (1).
- ``cut_unjoined_probability(j, n_c)`` = phi_j: for a fixed set S of ``j`` class-c samples, no
  MIXED batch holds both a sample of S and one of the other ``n_c - j`` (allowed:
  ``x_S = 0`` or ``x_T = 0`` or the batch is all class c). EXACT, by (1).
- ``isolation_probability(n_c)`` = psi: a given sample's batch holds no other class-c sample or
  is a pure batch of 2 (so the sample is never joined). EXACT, a hypergeometric sum.

Results (``P_E``: probability that ``E`` epochs satisfy (a*) and (b)):

- ONE epoch, EXACT: ``P_1 = 1 if B >= N else 0`` (with ``k >= 2`` and every ``n_c >= 2``).
  Within one epoch a sample sits in one batch, so class c is one component only if all its
  samples share one mixed batch; then (b) for c, c' needs them in the same batch, so all
  classes share one batch. Also exact: ``P_E = 0`` for every E when ``B = 2`` (a batch of 2
  never joins two samples of a class: mixed it holds one of each, pure it pins nothing) and
  ``P_E = 1`` for every E >= 1 when ``B >= N``.
- E epochs, LOWER BOUND (a guarantee; union bound over the failure events):

      P_E >= L_E = 1 - sum_{c < c'} q_{cc'}^E - sum_c A_c(E),
      A_c(E) = sum_{j=1}^{floor(n_c/2)} C(n_c, j) phi_j^E                              (2)

  ((a*) fails for c only if some S with |S| <= n_c/2 never shares a mixed batch with the rest;
  pure batches of >= 3 are counted as joining nothing, which only enlarges the failure event).
  Exact ingredients for classes of at most 32 samples (33 for the cuts). Larger classes use
  upper bounds, so L_E stays a lower bound:
  * q: the smaller of (1) on subsets of 32 samples of each class (a subset can only be pinned
    less often) and the probability that the FIRST M batches pin nothing (its count table exact
    up to 64 per class, the rest bounded by binomial tails; ``_first_batches_probability``);
  * phi_j: S restricted to a ladder size l <= j (every integer to 16, then steps of 1.2 up to
    256) with T kept whole, exact by conditioning on the batches S occupies
    (``_strict_cut_phi``), plus a union bound on the pure batches of class c; or S and T both
    restricted (to <= 16 and <= 32) in (1);
  * A_c(E): the smaller of (2) with these phi_j and a bound conditioned on the first epoch's
    batches (a union over the 2^{batches} sets of batches instead of the 2^{n_c} sample sets:
    ``pi_1 + sum_Q sum_j H(|Q|, j) Phi_j^(E-1)``, ``pi_1`` the union bound on a pure batch).
  The bounds on large classes are loose when few large classes fill most batches at B < 8
  (pure batches are then common), and at j > 256 the tail is bounded by 2^{n_c} Phi_256^E.
- E epochs, UPPER BOUND: ``U_E = 1 - max(max_i P(F_i), LB_1, LB_2)`` over events F_i that each
  imply failure and whose probabilities are exact (a pair never pinned; a sample never joined:
  psi), with ``LB`` the best of the Bonferroni (S1 - S2), Dawson-Sankoff and Chung-Erdos lower
  bounds on P(union) for two families: the (b) failures of the pairs among the smallest classes
  (joint probability of two pairs from (1) with 3 or 4 classes, exact up to 10 / 6 samples per
  class, bounded above beyond) and the isolations of single samples (joint probabilities
  exact, closed form).
- APPROXIMATION (stated as such, not a bound): ``P_E ~ exp(-S'_E)``, clipped to [L_E, U_E], with
  S'_E the sum of the failure terms where exact terms are kept and bounded ones are replaced by
  estimates: batches treated as independent for a pair of large classes (each factor exact) and
  the two leading terms ``n_c phi_1^E + C(n_c, 2) phi_1^(2E)`` for the (a*) of a large class.

``epochs_needed`` returns the smallest E with ``L_E >= p``: a GUARANTEE (the true smallest E is
at most this); ``epochs_range`` adds the smallest E with ``U_E >= p`` (the true one is at least
this; the search checks ``U_{E-1} < p`` at the returned E). The minority-pair (b) term is the
bottleneck when B is well below about ``N / n_min^2``; above it the (a*) isolation of minority
samples takes over (both are in the sums).

Batch-binding (``binding_guarantee``): the k binding samples (fixed, or redrawn each epoch) in
every batch give (a*) and (b) in ONE epoch, for every shuffle, when ``k >= 2``, every class has
``>= 2`` samples and no sample is dropped. With fewer binding classes (h < k) and >= 2
shuffled batches per epoch, the classes without a binding sample rely on shuffling: (a*) for
such a class fails whenever its samples are split over batches in every epoch, (b) for a pair
with one needs a batch where it meets the other class with one of them twice; those are the
shuffle's random events again (``binding_variants_report`` checks them with
``check_batches``; ``partial_binding_bounds`` bounds their probability the same way, on the
``N - h`` shuffled samples with every batch mixed, and for a binding class h and an unbound u
with the rule "one u and no other h sample").

References:
  Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive Loss:
  The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): batch-binding; DESIGN.md
  section 6 (the conditions); Galambos & Simonelli, "Bonferroni-type Inequalities" (1996).

>>> one_epoch_probability([5, 5, 2, 2], batch_size=14), one_epoch_probability([5, 5, 2, 2], 13)
(1.0, 0.0)
>>> round(pair_unpinned_probability(2, 2, n_samples=4, batch_size=2), 12)  # 2 cannot pin
1.0
>>> pair_unpinned_probability(2, 2, n_samples=4, batch_size=3)  # the batch of 3 always pins
0.0
>>> b = coverage_bounds([50, 50, 5, 5], batch_size=20, epochs=200)
>>> 0 <= b.lower <= b.upper <= 1
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ufm.core.checks import check_int
from ufm.core.labels import check_counts, labels_from_counts, step_counts

__all__ = [
    "shuffle_batch_sizes",
    "pair_unpinned_probability",
    "cut_unjoined_probability",
    "isolation_probability",
    "one_epoch_probability",
    "CoverageBounds",
    "coverage_bounds",
    "coverage_probability",
    "epochs_needed",
    "epochs_needed_for_counts",
    "epochs_range",
    "epochs_summary",
    "MonteCarlo",
    "monte_carlo_probability",
    "BindingVerdict",
    "binding_guarantee",
    "binding_variants_report",
    "partial_binding_bounds",
    "partial_binding_epochs_needed",
    "clopper_pearson",
    "E_MAX",
    "advise",
]

_SPECIAL: dict[str, Any] = {}


def _special(name: str) -> Any:
    """``scipy.special.<name>``, imported on first use (``import theory_checks`` stays light)."""
    f = _SPECIAL.get(name)
    if f is None:
        import scipy.special

        f = _SPECIAL[name] = getattr(scipy.special, name)
    return f


def _gammaln(x: Any) -> Any:
    return _special("gammaln")(x)


def _logsumexp(a: Any, axis: int | None = None) -> Any:
    return _special("logsumexp")(a, axis=axis)


#: Largest epoch count searched; beyond it ``epochs_needed`` returns None.
E_MAX = 10**15

_CAP_PAIR = 32  # counts above it are restricted to subsets in the pair DP (an upper bound on q)
_CAP_CUT_T = 32  # the cut DP's "rest of the class" side above it: restricted (upper bound)
_LADDER = (1, 2, 3, 4, 6, 8, 12, 16)  # S sizes whose phi is computed for a large class
_CAP_JOINT3, _CAP_JOINT4 = 10, 6  # joint (b) events: per-class caps (upper bounds on the joint)
_GROUP_TERMS = 4_000_000  # most terms of the first-epoch group bound


# ----------------------------------------------------------------------------- batch sizes


def shuffle_batch_sizes(n_samples: int, batch_size: int) -> np.ndarray:
    """Batch sizes of one epoch of the ``shuffle`` schedule (``drop_last=False``): ``floor(N/B)``
    batches of ``B`` and, if ``r = N mod B > 0``, one last batch of ``r``.

    Args:
      n_samples: N >= 1.
      batch_size: B >= 1.

    Returns:
      int64 array of the sizes, in schedule order.

    >>> shuffle_batch_sizes(7, 3).tolist(), shuffle_batch_sizes(6, 3).tolist()
    ([3, 3, 1], [3, 3])
    """
    n = check_int("n_samples", n_samples, 1)
    b = check_int("batch_size", batch_size, 1)
    sizes = [b] * (n // b) + ([n % b] if n % b else [])
    return np.asarray(sizes, dtype=np.int64)


def _split(n_samples: int, batch_size: int) -> tuple[int, int, int]:
    n = check_int("n_samples", n_samples, 1)
    b = check_int("batch_size", batch_size, 1)
    return n, n // b, n % b


# ----------------------------------------------------------------------------- the DP (1)


@lru_cache(maxsize=64)
def _toeplitz_index(rest: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices ``g[j, j1]`` of ``j - j1`` in an array of shape ``rest`` (valid where ``mask``)."""
    q = int(np.prod(rest))
    coords = np.stack(np.unravel_index(np.arange(q), rest), axis=1)  # (q, d)
    diff = coords[:, None, :] - coords[None, :, :]
    mask = (diff >= 0).all(axis=2)
    g = np.ravel_multi_index(tuple(np.maximum(diff, 0).transpose(2, 0, 1)), rest)
    return g, mask


def _trunc_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product of two truncated power series (same shape): ``c[i] = sum_{i1 + i2 = i} a[i1] b[i2]``."""
    shape = a.shape
    if a.ndim == 1:
        return np.convolve(a, b)[: shape[0]]
    p, rest = shape[0], shape[1:]
    q = int(np.prod(rest))
    g, mask = _toeplitz_index(rest)
    af, bf = a.reshape(p, q), b.reshape(p, q)
    out = np.zeros((p, q))
    for i1 in range(p):
        row = af[i1]
        if not row.any():
            continue
        t = np.where(mask, row[g], 0.0)  # t[j, j1] = row[j - j1]
        out[i1:] += bf[: p - i1] @ t.T
    return out.reshape(shape)


def _power(w: np.ndarray, m: int) -> np.ndarray:
    """``w ** m`` as a truncated power series (repeated squaring), ``m >= 0``."""
    result = None
    base = w
    while m:
        if m & 1:
            result = base.copy() if result is None else _trunc_mul(result, base)
        m >>= 1
        if m:
            base = _trunc_mul(base, base)
    if result is None:
        result = np.zeros_like(w)
        result[(0,) * w.ndim] = 1.0
    return result


Allowed = Callable[[np.ndarray, int], np.ndarray]  # (counts grid (d, ...), batch size) -> bool grid


def _all_allowed_probability(ns: tuple[int, ...], n_samples: int, batch_size: int,
                             allowed: Allowed) -> float:
    """Formula (1): P(every batch of one shuffled epoch is allowed) for classes of counts ``ns``.

    The generating function is taken with genuine probabilities ``p_l = n_l / (N + 1)`` per
    position (and ``p_0`` for the rest), so every factor is a probability mass function and
    the ratio is the hypergeometric one."""
    n, m_f, r = _split(n_samples, batch_size)
    ns = tuple(int(x) for x in ns)
    total = sum(ns)
    if total > n:
        raise ValueError(f"the classes hold {total} samples, more than N = {n}")
    shape = tuple(x + 1 for x in ns)
    grid = np.indices(shape)
    tot = grid.sum(axis=0)
    p = np.asarray(ns, dtype=np.float64) / (n + 1)
    lp, lp0 = np.log(np.where(p > 0, p, 1.0)), math.log1p(-float(p.sum()))
    lfact = _gammaln(grid + 1.0).sum(axis=0)
    expo = np.tensordot(lp, grid, axes=1)

    def weights(s: int) -> np.ndarray:
        ok = (tot <= s) & allowed(grid, s)
        logw = _gammaln(s + 1.0) - lfact - _gammaln(np.maximum(s - tot, 0) + 1.0) + expo + (s - tot) * lp0
        return np.where(ok, np.exp(np.where(ok, logw, 0.0)), 0.0)

    f = _power(weights(batch_size), m_f) if m_f else None
    if r:
        wr = weights(r)
        f = wr if f is None else _trunc_mul(f, wr)
    val = float(f[tuple(ns)])
    log_norm = (_gammaln(n + 1.0) - sum(_gammaln(x + 1.0) for x in ns) - _gammaln(n - total + 1.0)
                + float(np.dot(np.asarray(ns, dtype=np.float64), lp)) + (n - total) * lp0)
    if val <= 0.0:
        return 0.0
    return float(min(1.0, math.exp(math.log(val) - log_norm)))


def _first_batches_probability(ns: tuple[int, int], n_samples: int, batch_size: int,
                               allowed: Allowed, box: int = 64) -> float:
    """Upper bound on formula (1) for LARGE counts: the probability that the first ``M`` full
    batches are all allowed. In the generating function of (1) the counts of the two classes in
    those ``M B`` positions are binomial (``Bin(M B, p_l)``); their table is computed exactly up
    to ``box`` per class, and the rest of the table is bounded by the binomial tails divided by
    the normaliser (``[z^n]``, every other factor being a probability): ``M`` is chosen so that
    the mean count of a truncated class is ``box / 3``. Returns 1.0 when there is no full batch.
    """
    from scipy.stats import binom

    n, m_f, _ = _split(n_samples, batch_size)
    if m_f < 1:
        return 1.0
    na, nb = (int(x) for x in ns)
    pa, pb = na / (n + 1), nb / (n + 1)
    big = max(pa if na > box else 0.0, pb if nb > box else 0.0)
    m_use = m_f if big == 0 else int(min(m_f, max(1, (box / 3) // (batch_size * big))))
    if m_use == 1:  # no product to form: widen the table until the binomial tails are negligible
        mu = batch_size * max(pa, pb)
        box = max(box, int(math.ceil(mu + 12.0 * math.sqrt(mu) + 12.0)))
    ua, ub = min(na, box, m_use * batch_size), min(nb, box, m_use * batch_size)
    grid = np.indices((ua + 1, ub + 1))
    tot = grid.sum(axis=0)
    lp0 = math.log1p(-(pa + pb))
    lfact = _gammaln(grid + 1.0).sum(axis=0)
    expo = grid[0] * math.log(pa) + grid[1] * math.log(pb)
    s = batch_size
    ok = (tot <= s) & allowed(grid, s)
    logw = _gammaln(s + 1.0) - lfact - _gammaln(np.maximum(s - tot, 0) + 1.0) + expo + (s - tot) * lp0
    w = np.where(ok, np.exp(np.where(ok, logw, 0.0)), 0.0)
    f = _power(w, m_use)
    rest = n - m_use * batch_size
    ra, rb = na - grid[0], nb - grid[1]
    r0 = rest - ra - rb
    valid = r0 >= 0
    log_rest = np.where(valid, _gammaln(rest + 1.0) - _gammaln(ra + 1.0) - _gammaln(rb + 1.0)
                        - _gammaln(np.maximum(r0, 0) + 1.0) + ra * math.log(pa) + rb * math.log(pb)
                        + np.maximum(r0, 0) * lp0, -np.inf)
    log_norm = float(_gammaln(n + 1.0) - _gammaln(na + 1.0) - _gammaln(nb + 1.0)
                     - _gammaln(n - na - nb + 1.0) + na * math.log(pa) + nb * math.log(pb)
                     + (n - na - nb) * lp0)
    with np.errstate(divide="ignore"):
        terms = np.where((f > 0) & valid, np.log(np.where(f > 0, f, 1.0)) + log_rest - log_norm, -np.inf)
    inside = _exp_sum(terms.ravel())
    positions = m_use * batch_size
    tail = 0.0
    if na > ua:
        tail += float(binom.sf(ua, positions, pa))
    if nb > ub:
        tail += float(binom.sf(ub, positions, pb))
    outside = math.exp(min(math.log(tail) - log_norm, 700.0)) if tail > 0 else 0.0
    return float(min(1.0, inside + outside))


def _pair_bound(ns: tuple[int, int], n_samples: int, batch_size: int, allowed: Allowed,
                cap: int) -> tuple[float, bool]:
    """(q or an upper bound on it, exact?): exact by (1) when both counts are <= ``cap``, else the
    smaller of (1) on subsets of ``cap`` samples and ``_first_batches_probability``."""
    na, nb = ns
    a, b = min(na, cap), min(nb, cap)
    q = _all_allowed_probability((a, b), n_samples, batch_size, allowed)
    if (a, b) == (na, nb):
        return q, True
    return min(q, _first_batches_probability((na, nb), n_samples, batch_size, allowed)), False


def _pinned(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(b)'s pinning in one batch: both classes present, one of them at least twice."""
    return (x >= 1) & (y >= 1) & (x + y >= 3)


def _allowed_pair(grid: np.ndarray, s: int) -> np.ndarray:
    return ~_pinned(grid[0], grid[1])


def _allowed_cut(grid: np.ndarray, s: int) -> np.ndarray:  # S, T = the whole class
    return (grid[0] == 0) | (grid[1] == 0) | (grid[0] + grid[1] == s)


def _allowed_cut_strict(grid: np.ndarray, s: int) -> np.ndarray:  # S, T: subsets of the class
    return (grid[0] == 0) | (grid[1] == 0)


def _allowed_star(grid: np.ndarray, s: int) -> np.ndarray:  # pairs {0,1} and {0,2}
    return ~_pinned(grid[0], grid[1]) & ~_pinned(grid[0], grid[2])


def _allowed_two_pairs(grid: np.ndarray, s: int) -> np.ndarray:  # pairs {0,1} and {2,3}
    return ~_pinned(grid[0], grid[1]) & ~_pinned(grid[2], grid[3])


def _check_event(n_samples: int, batch_size: int, **counts: int) -> tuple[int, int]:
    n = check_int("n_samples", n_samples, 1)
    b = check_int("batch_size", batch_size, 1)
    for name, value in counts.items():
        check_int(name, value, 1)
    if sum(counts.values()) > n:
        raise ValueError(f"{' + '.join(counts)} = {sum(counts.values())} exceeds n_samples = {n}")
    return n, b


def pair_unpinned_probability(n_a: int, n_b: int, n_samples: int, batch_size: int) -> float:
    """EXACT probability that ONE shuffled epoch does not pin the pair (condition (b) fails).

    ``q = P(every batch has x_a = 0 or x_b = 0 or x_a = x_b = 1)`` for classes of ``n_a`` and
    ``n_b`` samples among ``N``: formula (1) of the module docstring with
    ``W_s(x, y) = sum_i C(s,i) x^i + sum_{j>=1} C(s,j) y^j + s(s-1) x y``. Over E epochs the
    pair is never pinned with probability ``q**E`` exactly.

    Args:
      n_a, n_b: the two classes' counts (>= 1).
      n_samples: N, all samples (>= n_a + n_b).
      batch_size: B (>= 1); the last partial batch is kept.

    Returns:
      q in [0, 1] (float64; the sum has only positive terms).

    References:
      DESIGN.md section 6, condition (b).

    >>> round(pair_unpinned_probability(2, 1, n_samples=4, batch_size=3), 6)  # pinned: 1/4
    0.75
    """
    n, b = _check_event(n_samples, batch_size, n_a=n_a, n_b=n_b)
    return _all_allowed_probability((n_a, n_b), n, b, _allowed_pair)


def cut_unjoined_probability(j: int, n_c: int, n_samples: int, batch_size: int) -> float:
    """EXACT probability phi_j that in ONE shuffled epoch no mixed batch holds both a sample of
    a fixed set S of ``j`` class-c samples and one of the other ``n_c - j``.

    Allowed per batch: ``x_S = 0`` or ``x_T = 0`` or the batch is pure (all class c; a pure
    batch of >= 3 may still join through the pure-batch rule, so this event CONTAINS "S is
    not joined to the rest"). Formula (1). Over E epochs: ``phi_j**E``.

    Args:
      j: |S|, with ``1 <= j < n_c``.
      n_c: the class's count.
      n_samples: N.
      batch_size: B.

    Returns:
      phi_j in [0, 1].

    References:
      DESIGN.md section 6, condition (a*).

    >>> round(cut_unjoined_probability(1, 2, n_samples=4, batch_size=2), 12)  # 2 never join
    1.0
    """
    n, b = _check_event(n_samples, batch_size, j=j, n_c=n_c)
    if j >= n_c:
        raise ValueError(f"j must be below n_c = {n_c}, got {j}")
    return _all_allowed_probability((j, n_c - j), n, b, _allowed_cut)


def _log_comb(n: Any, k: Any) -> np.ndarray:
    n, k = np.asarray(n, dtype=np.float64), np.asarray(k, dtype=np.float64)
    ok = (k >= 0) & (k <= n) & (n >= 0)
    nn, kk = np.where(ok, n, 0.0), np.where(ok, k, 0.0)
    return np.where(ok, _gammaln(nn + 1) - _gammaln(kk + 1) - _gammaln(nn - kk + 1), -np.inf)


def _batch_types(n: int, m_f: int, r: int, b: int) -> list[tuple[int, int]]:
    """(size, how many) of the batch sizes of an epoch."""
    return [(s, c) for s, c in ((b, m_f), (r, 1 if r else 0)) if c > 0 and s > 0]


def isolation_probability(n_c: int, n_samples: int, batch_size: int) -> float:
    """EXACT probability psi that in ONE shuffled epoch a given class-c sample is not joined to a
    class-mate: its batch holds no other class-c sample, or is a pure batch of 2.

    ``psi = sum_b (s_b/N) [C(N - n_c, s_b - 1) / C(N - 1, s_b - 1) + [s_b = 2] (n_c - 1)/(N - 1)]``.
    A sample isolated in every epoch breaks (a*) for its class: ``psi**E`` per sample.

    Args:
      n_c: the class's count (>= 1).
      n_samples: N.
      batch_size: B.

    Returns:
      psi in [0, 1].

    >>> isolation_probability(2, n_samples=4, batch_size=2)  # alone, or a pure pair
    1.0
    """
    n, b = _check_event(n_samples, batch_size, n_c=n_c)
    _, m_f, r = _split(n, b)
    out = 0.0
    for s, cnt in _batch_types(n, m_f, r, b):
        h0 = math.exp(float(_log_comb(n - n_c, s - 1) - _log_comb(n - 1, s - 1))) if s - 1 <= n - n_c else 0.0
        pure2 = (n_c - 1) / (n - 1) if s == 2 else 0.0
        out += cnt * s / n * (h0 + pure2)
    return float(min(1.0, out))


def _pair_weights(n: int, m_f: int, r: int, b: int):
    """(s1, s2, weight) of 'two given samples in two DIFFERENT batches of sizes s1, s2' and
    (s, weight) of 'in the SAME batch of size s'."""
    types = _batch_types(n, m_f, r, b)
    den = n * (n - 1)
    diff, same = [], []
    for i, (s1, c1) in enumerate(types):
        same.append((s1, c1 * s1 * (s1 - 1) / den))
        for j, (s2, c2) in enumerate(types):
            pairs = c1 * (c1 - 1) if i == j else c1 * c2
            diff.append((s1, s2, pairs * s1 * s2 / den))
    return diff, same


def _isolation_joint_same(n_c: int, n: int, b: int) -> float:
    """P(two given samples of one class are both isolated in one epoch), exact."""
    _, m_f, r = _split(n, b)
    diff, same = _pair_weights(n, m_f, r, b)
    a = n_c - 2
    out = sum(w for s, w in same if s == 2)  # together in a pure batch of 2
    lden = float(_log_comb(n - 2, a))
    for s1, s2, w in diff:
        if w == 0:
            continue
        p1, p2 = s1 - 1, s2 - 1
        r0 = n - 2 - p1 - p2
        tot = 0.0
        for u in ((0, 1) if s1 == 2 else (0,)):
            for v in ((0, 1) if s2 == 2 else (0,)):
                lc = float(_log_comb(p1, u) + _log_comb(p2, v) + _log_comb(r0, a - u - v)) - lden
                tot += math.exp(lc) if np.isfinite(lc) else 0.0
        out += w * tot
    return float(min(1.0, out))


def _isolation_joint_diff(n_c: int, n_d: int, n: int, b: int) -> float:
    """P(a given class-c sample and a given class-d sample (c != d) are both isolated), exact."""
    _, m_f, r = _split(n, b)
    diff, same = _pair_weights(n, m_f, r, b)
    a, a2 = n_c - 1, n_d - 1
    out = 0.0
    for s, w in same:  # together: not pure, so no class-mate of either in the batch
        lc = float(_log_comb(n - 2 - (s - 2), a + a2) - _log_comb(n - 2, a + a2))
        out += w * (math.exp(lc) if np.isfinite(lc) else 0.0)
    lden = float(_log_comb(n - 2, a) + _log_comb(n - 2 - a, a2))
    for s1, s2, w in diff:
        if w == 0:
            continue
        p1, p2 = s1 - 1, s2 - 1
        r0 = n - 2 - p1 - p2
        t = np.arange(0, min(p2, a) + 1)
        terms = []
        # (A1, A2): no c in P1, no d in P2 (c may sit in P2: t of them; d in P1 or the rest)
        terms.append(_log_comb(p2, t) + _log_comb(r0, a - t) + _log_comb(p1 + r0 - (a - t), a2))
        if s1 == 2:  # (B1, A2): P1's one place is c (x in a pure batch of 2)
            terms.append(_log_comb(p2, t) + _log_comb(r0, a - 1 - t) + _log_comb(r0 - (a - 1 - t), a2))
        if s2 == 2:  # (A1, B2): P2's one place is d
            terms.append(np.atleast_1d(_log_comb(r0, a) + _log_comb(p1 + r0 - a, a2 - 1)))
        if s1 == 2 and s2 == 2:  # (B1, B2)
            terms.append(np.atleast_1d(_log_comb(r0, a - 1) + _log_comb(r0 - a + 1, a2 - 1)))
        allterms = np.concatenate([np.atleast_1d(x) for x in terms])
        if np.isfinite(allterms).any():
            out += w * math.exp(float(_logsumexp(allterms)) - lden)
    return float(min(1.0, out))


def one_epoch_probability(counts: Sequence[int], batch_size: int) -> float:
    """EXACT probability that ONE shuffled epoch satisfies (a*) and (b): ``1.0`` if ``B >= N``
    (one batch holds everything) else ``0.0`` (see the module docstring for the proof).

    Args:
      counts: class counts (``k >= 2``, each ``>= 2``).
      batch_size: B >= 1.

    Returns:
      0.0 or 1.0.

    >>> one_epoch_probability([3, 3], 6), one_epoch_probability([3, 3], 5)
    (1.0, 0.0)
    """
    c = check_counts(counts)
    b = check_int("batch_size", batch_size, 1)
    return 1.0 if b >= int(c.sum()) else 0.0


# ----------------------------------------------------------------------------- E epochs


@dataclass
class CoverageBounds:
    """``P_E`` (E shuffled epochs satisfy (a*) and (b)) and its bounds.

    ``lower <= P_E <= upper`` (rigorous); ``approx`` = ``exp(-(1 - lower))`` (Poisson
    approximation); ``exact`` is set where P_E is known exactly (E = 1, B = 2, B >= N).
    ``terms``: the failure terms of the lower bound (each an upper bound on a failure
    probability), ``bottleneck``: the largest.
    """

    counts: list[int]
    batch_size: int
    epochs: int
    lower: float
    upper: float
    approx: float
    exact: float | None
    bottleneck: str
    terms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "batch_size": self.batch_size, "epochs": self.epochs,
                "lower": self.lower, "upper": self.upper, "approx": self.approx,
                "exact": self.exact, "bottleneck": self.bottleneck, "terms": dict(self.terms)}


class _Terms:
    """A sum ``sum_i exp(log_count_i + E log_prob_i)`` (log_prob = -inf for probability 0)."""

    def __init__(self) -> None:
        self.log_count: list[float] = []
        self.log_prob: list[float] = []

    def add(self, log_count: Any, prob: Any) -> None:
        lc = np.atleast_1d(np.asarray(log_count, dtype=np.float64))
        pr = np.atleast_1d(np.asarray(prob, dtype=np.float64))
        lc, pr = np.broadcast_arrays(lc, pr)
        with np.errstate(divide="ignore"):
            lp = np.where(pr > 0, np.log(np.clip(pr, 1e-320, 1.0)), -np.inf)
        self.log_count.extend(lc.tolist())
        self.log_prob.extend(lp.tolist())

    def log_sum(self, epochs: float) -> float:
        if not self.log_count:
            return -math.inf
        lc, lp = np.asarray(self.log_count), np.asarray(self.log_prob)
        v = lc + np.where(np.isfinite(lp), epochs * lp, -np.inf)
        return float(_logsumexp(v)) if np.isfinite(v).any() else -math.inf

    def log_max(self, epochs: float) -> float:
        if not self.log_count:
            return -math.inf
        lp = np.asarray(self.log_prob)
        return float(np.max(np.where(np.isfinite(lp), epochs * lp, -np.inf)))


def _union_lower(s1: float, s2: float) -> float:
    """Lower bound on P(union of events) from ``S1 = sum P(A_i)`` and ``S2 = sum_{i<j} P(A_i A_j)``
    (upper bounds on S2 keep it valid): the best of Bonferroni ``S1 - S2``, Dawson-Sankoff
    ``2 S1/(t+1) - 2 S2/(t(t+1))`` with ``t = 1 + floor(2 S2/S1)``, and Chung-Erdos
    ``S1^2 / (S1 + 2 S2)``.

    >>> _union_lower(0.5, 0.0), round(_union_lower(2.0, 1.0), 6)
    (0.5, 1.0)
    """
    if s1 <= 0:
        return 0.0
    t = 1 + math.floor(2 * s2 / s1)
    ds = 2 * s1 / (t + 1) - 2 * s2 / (t * (t + 1))
    ce = s1 * s1 / (s1 + 2 * s2)
    return min(1.0, max(s1 - s2, ds, ce))


def _groups(counts: np.ndarray) -> list[tuple[int, int]]:
    """(class size, number of classes of that size), smallest size first."""
    sizes, mult = np.unique(counts, return_counts=True)
    return [(int(s), int(m)) for s, m in zip(sizes, mult)]


def _log_c2(m: int) -> float:
    return math.log(m * (m - 1) / 2) if m >= 2 else -math.inf


def _pure_pair_union(n_c: int, j: int, t: int, n: int, b: int) -> float:
    """Union bound on 'some batch of an epoch is all class c and holds one of S' (j samples) and
    one of T' (t samples)': ``sum_b C(n_c, s_b)/C(N, s_b) P(an s_b-subset of class c hits both)``."""
    _, m_f, r = _split(n, b)
    out = 0.0
    for s, cnt in _batch_types(n, m_f, r, b):
        if s < 2 or s > n_c:
            continue
        l_pure = float(_log_comb(n_c, s) - _log_comb(n, s))
        miss_s = math.exp(float(_log_comb(n_c - j, s) - _log_comb(n_c, s)))
        miss_t = math.exp(float(_log_comb(n_c - t, s) - _log_comb(n_c, s)))
        miss_b = math.exp(float(_log_comb(n_c - j - t, s) - _log_comb(n_c, s)))
        out += cnt * math.exp(l_pure) * max(0.0, 1.0 - miss_s - miss_t + miss_b)
    return out


def _exp_sum(log_terms: np.ndarray) -> float:
    """``sum(exp(log_terms))`` (capped at e^700), 0 for an empty or all -inf array."""
    if log_terms.size == 0 or not np.isfinite(log_terms).any():
        return 0.0
    return math.exp(min(float(_logsumexp(log_terms)), 700.0))


_LADDER_T_MAX = 256  # largest restricted |S| of the exact-in-T cut bound


@lru_cache(maxsize=64)
def _log_surj_table(b: int, jmax: int) -> np.ndarray:
    """``L[d, u] = log [w^u] ((1 + w)^b - 1)^d``: the number of u-sets of positions in d batches of
    b hitting every batch (-inf where 0; float64, terms below 1e-300 of a row's largest dropped)."""
    base = np.exp(_log_comb(b, np.arange(jmax + 1)) - np.arange(jmax + 1) * math.log(b))
    base[0] = 0.0  # C(b, i) / b^i, i >= 1
    out = np.full((jmax + 1, jmax + 1), -np.inf)
    out[0, 0] = 0.0
    row, shift = np.zeros(jmax + 1), 0.0
    row[0] = 1.0
    for d in range(1, jmax + 1):
        row = np.convolve(row, base)[: jmax + 1]
        top = row.max()
        if top <= 0:
            break
        row = row / top
        shift += math.log(top)
        with np.errstate(divide="ignore"):
            out[d] = np.log(row) + shift + np.arange(jmax + 1) * math.log(b)
    return out


def _strict_cut_phi(ell: int, t: np.ndarray, n: int, b: int) -> np.ndarray:
    """EXACT ``P(no batch of one epoch holds both a sample of S and one of T)`` for ``|S| = ell``
    (small) and every ``|T|`` in ``t`` (any size): condition on the batches S occupies (d full
    ones, and the last partial one or not), then T avoids their other ``P`` positions:
    ``sum_{d,h} P(d, h) C(N - ell - P, |T|) / C(N - ell, |T|)``."""
    _, m_f, r = _split(n, b)
    table = _log_surj_table(b, ell)
    logs, pos = [], []
    for x_r in range(0, min(r, ell) + 1):
        d = np.arange(0, min(m_f, ell - x_r) + 1)
        lw = _log_comb(m_f, d) + table[d, ell - x_r] + _log_comb(r, x_r) - _log_comb(n, ell)
        logs.append(lw)
        pos.append(d * b + (r if x_r > 0 else 0) - ell)
    lw, p = np.concatenate(logs), np.concatenate(pos)
    keep = np.isfinite(lw)
    lw, p = lw[keep], p[keep]
    p, inv = np.unique(p, return_inverse=True)  # one term per distinct P
    top = np.full(p.size, -np.inf)
    np.maximum.at(top, inv, lw)
    acc = np.zeros(p.size)
    np.add.at(acc, inv, np.exp(lw - top[inv]))
    lw = top + np.log(acc)
    t = np.asarray(t)
    ratio = _log_comb(n - ell - p[:, None], t[None, :]) - _log_comb(n - ell, t[None, :])
    return np.exp(np.minimum(_logsumexp(lw[:, None] + ratio, axis=0), 0.0))


def _pure_pair_union_vec(n_c: int, j: int, t: np.ndarray, n: int, b: int) -> np.ndarray:
    """``_pure_pair_union`` for a vector of sizes of T."""
    _, m_f, r = _split(n, b)
    out = np.zeros(np.shape(t))
    for s, cnt in _batch_types(n, m_f, r, b):
        if s < 2 or s > n_c:
            continue
        l_pure = float(_log_comb(n_c, s) - _log_comb(n, s))
        lc = float(_log_comb(n_c, s))
        miss_s = math.exp(float(_log_comb(n_c - j, s)) - lc)
        miss_t = np.exp(_log_comb(n_c - t, s) - lc)
        miss_b = np.exp(_log_comb(n_c - j - t, s) - lc)
        out += cnt * math.exp(l_pure) * np.maximum(0.0, 1.0 - miss_s - miss_t + miss_b)
    return out


def _exact_t_ladder(n_c: int, n: int, b: int, pure: bool) -> np.ndarray:
    """``Phi(j) >= phi(j, n_c - j)`` for j = 1..floor(n_c/2): S restricted to a ladder size
    ``ell <= j`` (T kept whole), plus the pure-batch union bound when batches may be pure."""
    half = n_c // 2
    j = np.arange(1, half + 1)
    top = min(_LADDER_T_MAX, half)
    ladder = sorted({x for x in range(1, min(16, top) + 1)}
                    | {min(top, int(round(16 * 1.2 ** i))) for i in range(40)})
    ladder = [x for x in ladder if x <= top]
    best = np.ones(half)
    for ell in ladder:
        sel = j >= ell
        t = n_c - j[sel]
        val = _strict_cut_phi(ell, t, n, b)
        if pure:
            val = val + _pure_pair_union_vec(n_c, ell, t, n, b)
        best[sel] = np.minimum(best[sel], val)
    return np.minimum(best, 1.0)


def _class_cut_bound(n_c: int, n: int, b: int, pure: bool) -> tuple[Callable[[float], float], bool]:
    """``A_c(E)``, an upper bound on P((a*) fails for a class of ``n_c`` among ``N`` samples after
    E epochs), and whether its phi_j are exact.

    ``pure``: batches may be pure (the plain shuffle); False when every batch is mixed (binding
    samples of other classes in every batch). Small class (``n_c <= 33``): (2) with exact
    phi_j. Large class: phi_j bounded by the ladder (S and T restricted to subsets, plus the
    pure-batch union bound), and the smaller of (2) and the first-epoch group bound
    ``pi_1 + sum_{sets Q of batches} sum_j H(|Q|, j) Phi(j)^(E-1)`` (``pi_1``: P(some batch of
    the first epoch is pure class c), H: hypergeometric count of class c in the positions of Q).
    """
    _, m_f, r = _split(n, b)
    half = n_c // 2
    allowed = _allowed_cut if pure else _allowed_cut_strict
    if half <= _LADDER[-1] and n_c - 1 <= _CAP_CUT_T:
        j = np.arange(1, half + 1)
        phi = np.array([_all_allowed_probability((int(x), n_c - int(x)), n, b, allowed) for x in j])
        with np.errstate(divide="ignore"):
            log_phi = np.where(phi > 0, np.log(np.clip(phi, 1e-320, 1.0)), -np.inf)
        log_cnk = _log_comb(n_c, j)
        return (lambda e: _exp_sum(log_cnk + np.where(np.isfinite(log_phi), e * log_phi, -np.inf))), True
    t_cap = min(_CAP_CUT_T, n_c - half)
    ladder = [x for x in _LADDER if x <= half]
    t_ladder = sorted({t for t in (4, 8, 16, t_cap) if t <= t_cap}) if pure else [t_cap]
    lad_phi = []
    for jj in ladder:  # the best (smallest) bound over the restricted sizes of T
        best = 1.0
        for t in t_ladder:
            extra = _pure_pair_union(n_c, jj, t, n, b) if pure else 0.0
            if extra >= best:
                continue
            best = min(best, _all_allowed_probability((jj, t), n, b, _allowed_cut_strict) + extra)
        lad_phi.append(best)
    j = np.arange(1, half + 1)
    idx = np.searchsorted(np.asarray(ladder), j, side="right") - 1
    # Phi(j) >= phi(j, n_c - j) (S, T restricted to subsets); any ladder point <= j serves
    phi_j = np.minimum.accumulate(np.asarray(lad_phi))[idx]
    phi_j = np.minimum(phi_j, _exact_t_ladder(n_c, n, b, pure))
    with np.errstate(divide="ignore"):
        log_phi = np.where(phi_j > 0, np.log(np.clip(phi_j, 1e-320, 1.0)), -np.inf)
    log_cnk = _log_comb(n_c, j)
    group = None
    if (m_f + 1) * 2 * half <= _GROUP_TERMS:
        pi1 = 0.0
        if pure:
            for s, cnt in _batch_types(n, m_f, r, b):
                if 2 <= s <= n_c:
                    pi1 += cnt * math.exp(float(_log_comb(n_c, s) - _log_comb(n, s)))
        l_full = np.arange(0, m_f + 1)
        rows, weights = [], []
        for rho in ((0, 1) if r else (0,)):
            keep = (l_full + rho) >= 1
            rows.append(l_full[keep] * b + rho * r)
            weights.append(_log_comb(m_f, l_full[keep]))
        pos, lw = np.concatenate(rows), np.concatenate(weights)
        log_h = (_log_comb(pos[:, None], j[None, :]) + _log_comb(n - pos[:, None], n_c - j[None, :])
                 - _log_comb(n, n_c))
        group = (min(pi1, 1.0), _logsumexp(lw[:, None] + log_h, axis=0))

    def a_c(e: float) -> float:
        sample = _exp_sum(log_cnk + np.where(np.isfinite(log_phi), e * log_phi, -np.inf))
        if group is None or e < 2:
            return sample
        pi1, base_j = group
        grp = pi1 + _exp_sum(base_j + np.where(np.isfinite(log_phi), (e - 1) * log_phi, -np.inf))
        return min(sample, grp)

    return a_c, False


def _independent_batches_probability(ns: tuple[int, int], n: int, b: int, allowed: Allowed) -> float:
    """APPROXIMATION of formula (1) for large counts: the batches treated as independent,
    ``prod_b P(batch b is allowed)``, each factor exact (hypergeometric over one batch)."""
    _, m_f, r = _split(n, b)
    na, nb = ns
    out = 0.0
    for s, cnt in _batch_types(n, m_f, r, b):
        grid = np.indices((min(na, s) + 1, min(nb, s) + 1))
        ok = (grid.sum(axis=0) <= s) & allowed(grid, s)
        lp = (_log_comb(na, grid[0]) + _log_comb(nb, grid[1]) + _log_comb(n - na - nb, s - grid[0] - grid[1])
              - _log_comb(n, s))
        p_ok = min(1.0, _exp_sum(np.where(ok, lp, -np.inf).ravel()))
        if p_ok <= 0:
            return 0.0
        out += cnt * math.log(p_ok)
    return math.exp(out)


def _single_unjoined_probability(n_c: int, n: int, b: int, pure: bool) -> float:
    """EXACT phi_1: a given class-c sample shares no MIXED batch with a class-mate in one epoch
    (its batch holds no class-mate, or, when ``pure``, only class-c samples)."""
    _, m_f, r = _split(n, b)
    out = 0.0
    for s, cnt in _batch_types(n, m_f, r, b):
        lden = float(_log_comb(n - 1, s - 1))
        p = math.exp(float(_log_comb(n - n_c, s - 1)) - lden) if s - 1 <= n - n_c else 0.0
        if pure and 2 <= s <= n_c:
            p += math.exp(float(_log_comb(n_c - 1, s - 1)) - lden)
        out += cnt * s / n * p
    return min(1.0, out)


def _leading_cut_approx(n_c: int, n: int, b: int, pure: bool) -> Callable[[float], float]:
    """APPROXIMATION of P((a*) fails for a class): ``n_c phi_1^E + C(n_c, 2) phi_1^(2E)`` (one or
    two samples cut off; the leading terms of (2) once it is small)."""
    phi1 = _single_unjoined_probability(n_c, n, b, pure)
    lphi = math.log(phi1) if phi1 > 0 else -math.inf
    return lambda e: _exp_sum(np.asarray([math.log(n_c) + e * lphi,
                                          _log_c2(n_c) + 2 * e * lphi]))


def _power_term(log_count: float, q: float) -> Callable[[float], float]:
    lq = math.log(q) if q > 0 else -math.inf
    return lambda e: _exp_sum(np.asarray([log_count + e * lq]))


class _Model:
    """Per-epoch event probabilities of one (counts, B); the E-epoch bounds are cheap after."""

    def __init__(self, counts: tuple[int, ...], batch_size: int) -> None:
        c = np.asarray(counts, dtype=np.int64)
        self.counts = c
        self.n = n = int(c.sum())
        self.b = b = batch_size
        _, self.m_f, self.r = _split(n, b)
        self.groups = _groups(c)
        self.trivial = b >= n  # one batch: P = 1
        self.never = b == 2 and not self.trivial  # no batch of >= 3: (a*) always fails
        self.fail_terms: dict[str, _Terms] = {}
        self.class_cut: list[tuple[str, int, Any]] = []  # (name, multiplicity, A_c(E) callable)
        self.approx_fns: list[Callable[[float], float]] = []  # approximate failure terms
        if self.trivial or self.never:
            return
        self._pairs()
        self._cuts()
        self._upper_families()

    # -- lower bound: (b) pairs
    def _pairs(self) -> None:
        self.q_pair: dict[tuple[int, int], tuple[float, bool]] = {}
        for gi, (na, ka) in enumerate(self.groups):
            for gj, (nb, kb) in enumerate(self.groups):
                if gj < gi:
                    continue
                npairs = ka * (ka - 1) // 2 if gi == gj else ka * kb
                if npairs == 0:
                    continue
                cap = max(_CAP_PAIR, self.groups[0][0])
                q, exact = _pair_bound((na, nb), self.n, self.b, _allowed_pair, cap)
                self.q_pair[(gi, gj)] = (q, exact)
                q_app = q if exact else _independent_batches_probability((na, nb), self.n, self.b,
                                                                         _allowed_pair)
                self.approx_fns.append(_power_term(math.log(npairs), q_app))
                t = _Terms()
                t.add(math.log(npairs), q)
                self.fail_terms[f"(b) pairs of classes of {na} and {nb} samples" + ("" if exact else " (bound)")] = t

    # -- lower bound: (a*) per class
    def _cuts(self) -> None:
        for n_c, k_c in self.groups:
            a_c, exact = _class_cut_bound(n_c, self.n, self.b, pure=True)
            name = f"(a*) classes of {n_c} samples" + ("" if exact else " (bound)")
            self.class_cut.append((name, k_c, a_c))
            app = a_c if exact else _leading_cut_approx(n_c, self.n, self.b, pure=True)
            self.approx_fns.append(lambda e, app=app, k_c=k_c: k_c * app(e))

    # -- upper bound families
    def _upper_families(self) -> None:
        n, b = self.n, self.b
        # single events with exact probabilities
        self.single = _Terms()
        for (gi, gj), (q, exact) in self.q_pair.items():
            if exact:
                self.single.add(0.0, q)
        # isolation family: all samples
        s1, s2 = _Terms(), _Terms()
        psi = {g: isolation_probability(n_c, n, b) for g, (n_c, _) in enumerate(self.groups)}
        for g, (n_c, k_c) in enumerate(self.groups):
            s1.add(math.log(k_c * n_c), psi[g])
            self.single.add(0.0, psi[g])
            s2.add(math.log(k_c) + _log_c2(n_c), _isolation_joint_same(n_c, n, b))
            if k_c >= 2:
                s2.add(_log_c2(k_c) + 2 * math.log(n_c), _isolation_joint_diff(n_c, n_c, n, b))
            for h in range(g + 1, len(self.groups)):
                n_d, k_d = self.groups[h]
                s2.add(math.log(k_c * k_d * n_c * n_d), _isolation_joint_diff(n_c, n_d, n, b))
        self.iso = (s1, s2)
        # (b) family: pairs among the smallest classes
        n0, k0 = self.groups[0]
        self.bpairs = None
        if k0 >= 2 and self.q_pair[(0, 0)][1]:
            t1, t2 = _Terms(), _Terms()
            t1.add(_log_c2(k0), self.q_pair[(0, 0)][0])
            if k0 >= 3:
                c3 = min(n0, _CAP_JOINT3)
                q3 = _all_allowed_probability((c3, c3, c3), n, b, _allowed_star)
                t2.add(math.log(k0 * (k0 - 1) * (k0 - 2) / 2), q3)
            if k0 >= 4:
                c4 = min(n0, _CAP_JOINT4)
                q4 = _all_allowed_probability((c4,) * 4, n, b, _allowed_two_pairs)
                t2.add(math.log(k0 * (k0 - 1) * (k0 - 2) * (k0 - 3) / 8), q4)
            self.bpairs = (t1, t2)

    # -- the bounds
    def failure_terms(self, epochs: float) -> dict[str, float]:
        out = {name: math.exp(min(t.log_sum(epochs), 700.0)) for name, t in self.fail_terms.items()}
        for name, k_c, a_c in self.class_cut:
            out[name] = min(k_c * a_c(epochs), 1e300)
        return out

    def lower(self, epochs: float) -> float:
        if self.trivial:
            return 1.0
        if self.never:
            return 0.0
        return max(0.0, 1.0 - sum(self.failure_terms(epochs).values()))

    def upper(self, epochs: float) -> float:
        if self.trivial:
            return 1.0
        if self.never:
            return 0.0
        best = math.exp(self.single.log_max(epochs)) if self.single.log_count else 0.0
        for fam in (self.iso, self.bpairs):
            if fam is None:
                continue
            s1 = math.exp(min(fam[0].log_sum(epochs), 700.0))
            s2 = math.exp(min(fam[1].log_sum(epochs), 700.0)) if fam[1].log_count else 0.0
            best = max(best, _union_lower(s1, s2))
        return float(min(1.0, max(0.0, 1.0 - best)))

    def approx(self, epochs: float) -> float:
        if self.trivial:
            return 1.0
        if self.never:
            return 0.0
        raw = math.exp(-min(sum(f(epochs) for f in self.approx_fns), 700.0))
        return min(max(raw, self.lower(epochs)), self.upper(epochs))  # clipped to the bounds


@lru_cache(maxsize=256)
def _model(counts: tuple[int, ...], batch_size: int) -> _Model:
    return _Model(counts, batch_size)


def _model_for(counts: Sequence[int], batch_size: int) -> _Model:
    c = check_counts(counts)
    b = check_int("batch_size", batch_size, 2)
    return _model(tuple(int(x) for x in c), b)


def coverage_bounds(counts: Sequence[int], batch_size: int, epochs: int) -> CoverageBounds:
    """Bounds on ``P_E``: E shuffled epochs (union graph) satisfy (a*) and (b).

    ``lower = L_E`` and ``upper = U_E`` of the module docstring (rigorous), ``approx =
    exp(-(1 - L_E))`` (unclamped sum; an approximation), ``exact`` where known (E = 1; B = 2;
    B >= N).

    Args:
      counts: class counts (``k >= 2``, each ``>= 2``).
      batch_size: B >= 2.
      epochs: E >= 1.

    Returns:
      ``CoverageBounds``.

    >>> r = coverage_bounds([4, 4], batch_size=8, epochs=1)
    >>> r.exact, r.lower, r.upper
    (1.0, 1.0, 1.0)
    """
    m = _model_for(counts, batch_size)
    e = check_int("epochs", epochs, 1)
    exact = None
    if m.trivial:
        exact = 1.0
    elif m.never or e == 1:
        exact = 0.0
    if exact is not None:
        return CoverageBounds([int(x) for x in m.counts], m.b, e, exact, exact, exact, exact,
                              "none" if exact == 1.0 else ("one epoch" if e == 1 and not m.never
                                                            else "batch size 2: no batch joins a class"), {})
    terms = m.failure_terms(e)
    lower, upper = m.lower(e), m.upper(e)
    bottleneck = max(terms, key=terms.get) if terms else "none"
    return CoverageBounds([int(x) for x in m.counts], m.b, e, lower, max(upper, lower),
                          m.approx(e), None, bottleneck, terms)


def coverage_probability(k: int, R: float, n_min: int, batch_size: int, epochs: int) -> CoverageBounds:
    """``coverage_bounds`` for STEP counts ``ufm.core.labels.step_counts(k, R, 0.5, n_min)``.

    Args:
      k: classes (>= 2); R: imbalance ratio (>= 1); n_min: minority count (>= 2);
      batch_size: B (>= 2); epochs: E (>= 1).

    Returns:
      ``CoverageBounds``.

    >>> coverage_probability(4, 1, 2, batch_size=8, epochs=3).exact
    1.0
    """
    return coverage_bounds(step_counts(k, R, 0.5, n_min), batch_size, epochs)


def _search(pred: Callable[[int], bool], lo: int = 1) -> int | None:
    """Smallest E >= lo with ``pred(E)`` for a monotone predicate, or None below E_MAX."""
    if pred(lo):
        return lo
    hi = lo
    while not pred(hi):
        lo = hi
        hi *= 2
        if hi > E_MAX:
            if not pred(E_MAX):
                return None
            hi = E_MAX
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _check_p(p: float) -> float:
    if not (isinstance(p, (int, float)) and 0 < p < 1):
        raise ValueError(f"p must be a number in (0, 1), got {p!r}")
    return float(p)


def epochs_needed_for_counts(counts: Sequence[int], batch_size: int, p: float = 0.99) -> int | None:
    """Smallest E with ``L_E >= p`` (a GUARANTEE: E shuffled epochs satisfy (a*) and (b) with
    probability >= p; the truly smallest E is at most this). None when no E <= ``E_MAX``
    works (B = 2 never does).

    Args:
      counts: class counts; batch_size: B >= 2; p: target probability in (0, 1).

    Returns:
      the number of epochs, or None.

    >>> epochs_needed_for_counts([4, 4], batch_size=8), epochs_needed_for_counts([4, 4], 2)
    (1, None)
    """
    m = _model_for(counts, batch_size)
    p = _check_p(p)
    if m.trivial:
        return 1
    if m.never:
        return None
    return _search(lambda e: e >= 2 and m.lower(e) >= p, lo=2)


def epochs_needed(k: int, R: float, n_min: int, batch_size: int, p: float = 0.99) -> int | None:
    """Smallest number of shuffled epochs that GUARANTEES (a*) and (b) with probability >= p,
    for STEP counts (k classes, round(k/2) minority of ``n_min``, the rest ``round(R n_min)``).

    From the union lower bound ``L_E`` (module docstring, (2)): a bound-based guarantee; the
    true smallest E lies in ``epochs_range(...)``.

    Args:
      k: classes (>= 2); R: imbalance ratio (>= 1); n_min: minority count (>= 2);
      batch_size: B (>= 2); p: probability in (0, 1).

    Returns:
      E, or None when no E up to ``E_MAX`` works (B = 2).

    >>> epochs_needed(10, 1, 2, batch_size=20)
    1
    """
    return epochs_needed_for_counts(step_counts(k, R, 0.5, n_min), batch_size, p)


def epochs_range(counts: Sequence[int], batch_size: int, p: float = 0.99) -> tuple[int | None, int | None]:
    """``(E_low, E_high)``: the truly smallest E with ``P_E >= p`` lies in ``[E_low, E_high]``.

    ``E_high`` = ``epochs_needed_for_counts`` (from the lower bound L_E); ``E_low`` = the
    smallest E with ``U_E >= p`` (below it the upper bound is under p, so P_E is too).
    None for "no E up to E_MAX".

    >>> epochs_range([4, 4], batch_size=8)
    (1, 1)
    """
    m = _model_for(counts, batch_size)
    p = _check_p(p)
    if m.trivial:
        return 1, 1
    if m.never:
        return None, None
    high = _search(lambda e: e >= 2 and m.lower(e) >= p, lo=2)
    low = _search(lambda e: e >= 2 and m.upper(e) >= p, lo=2)
    if low is not None and high is not None:
        low = min(low, high)
    return low, high


def _summary(m: Any, p: float) -> dict[str, Any]:
    if m.trivial:
        return {"guaranteed": 1, "at_least": 1, "approx": 1}
    if getattr(m, "never", False):
        return {"guaranteed": None, "at_least": None, "approx": None}
    lo = 1 if isinstance(m, _PartialModel) else 2  # the shuffle: one epoch never suffices (B < N)
    high = _search(lambda e: m.lower(e) >= p, lo=lo)
    low = _search(lambda e: m.upper(e) >= p, lo=lo)
    app = _search(lambda e: m.approx(e) >= p, lo=lo)
    if low is not None and high is not None:
        low = min(low, high)
    return {"guaranteed": high, "at_least": low, "approx": app}


def epochs_summary(counts: Sequence[int], batch_size: int, p: float = 0.99,
                   binding_classes: Sequence[int] | None = None) -> dict[str, Any]:
    """Epochs for probability >= p: ``guaranteed`` (smallest E with ``L_E >= p``, a guarantee),
    ``at_least`` (smallest E with ``U_E >= p``: fewer epochs cannot reach p) and ``approx``
    (smallest E with the approximation ``>= p``); None for "no E up to ``E_MAX``".

    ``binding_classes``: the partial-binding model (``partial_binding_bounds``) instead of the
    plain shuffle.

    >>> epochs_summary([4, 4], batch_size=8)
    {'guaranteed': 1, 'at_least': 1, 'approx': 1}
    """
    p = _check_p(p)
    if binding_classes is None:
        return _summary(_model_for(counts, batch_size), p)
    return _summary(_partial_model(counts, batch_size, binding_classes), p)


# ----------------------------------------------------------------------------- Monte Carlo


class MonteCarlo(NamedTuple):
    """Monte Carlo estimate of P_E with a Clopper-Pearson interval."""

    estimate: float
    ci_low: float
    ci_high: float
    successes: int
    trials: int
    confidence: float


def clopper_pearson(successes: int, trials: int, confidence: float = 0.99) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion.

    >>> clopper_pearson(0, 10)[0], round(clopper_pearson(10, 10)[0], 4)
    (0.0, 0.5887)
    """
    from scipy.stats import beta

    alpha = 1.0 - confidence
    lo = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return lo, hi


def monte_carlo_probability(counts: Sequence[int], batch_size: int, epochs: int, trials: int,
                            seed: int = 0, *, confidence: float = 0.99,
                            event: Callable[[Any], bool] | None = None) -> MonteCarlo:
    """Monte Carlo estimate of ``P_E``: ``trials`` draws of E epochs of the project's shuffle
    schedule (``theory_checks.schedules.epoch_batches``, trial t with schedule seed
    ``seed * trials + t``), each checked by ``check_batches`` (the fast checker).

    Args:
      counts: class counts (labels laid out class by class).
      batch_size: B >= 2.
      epochs: E >= 1.
      trials: >= 1.
      seed: >= 0.
      confidence: of the Clopper-Pearson interval (default 0.99).
      event: optional ``BatchCheck -> bool`` counted instead of ``holds`` (e.g. one pair's
        (b) failure).

    Returns:
      ``MonteCarlo(estimate, ci_low, ci_high, successes, trials, confidence)``.

    >>> mc = monte_carlo_probability([3, 3], batch_size=6, epochs=1, trials=5)
    >>> mc.estimate, mc.successes
    (1.0, 5)
    """
    from theory_checks.interaction import check_batches
    from theory_checks.schedules import epoch_batches

    c = check_counts(counts)
    b = check_int("batch_size", batch_size, 2)
    e = check_int("epochs", epochs, 1)
    t = check_int("trials", trials, 1)
    s = check_int("seed", seed, 0)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    labels = labels_from_counts(c).astype(np.int64)
    hits = 0
    for i in range(t):
        batches = []
        for ep in range(e):
            batches.extend(epoch_batches(labels, schedule="shuffle", batch_size=b, epoch=ep,
                                         seed=s * t + i))
        res = check_batches(labels, batches)
        hits += bool(event(res)) if event is not None else bool(res.holds)
    lo, hi = clopper_pearson(hits, t, confidence)
    return MonteCarlo(hits / t, lo, hi, hits, t, confidence)


# ----------------------------------------------------------------------------- binding


@dataclass
class BindingVerdict:
    """What batch-binding guarantees for every shuffle (``binding_guarantee``)."""

    guaranteed: bool
    binding_classes: list[int]
    at_risk_classes: list[int]  # (a*) not guaranteed
    at_risk_pairs: list[list[int]]  # (b) not guaranteed
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"guaranteed": self.guaranteed, "binding_classes": self.binding_classes,
                "at_risk_classes": self.at_risk_classes, "at_risk_pairs": self.at_risk_pairs,
                "reason": self.reason}


def binding_guarantee(counts: Sequence[int], batch_size: int,
                      binding_classes: Sequence[int] | None = None,
                      per_epoch: bool = False) -> BindingVerdict:
    """Whether a binding variant satisfies (a*) and (b) for EVERY shuffle, from the first epoch.

    Variants: binding samples (one per class in ``binding_classes``, default all k) added to
    every batch, the other samples shuffled into batches of B (``drop_last=False``); fixed
    binding samples, or new ones each epoch (``per_epoch``). Classes are 0..k-1 (the order of
    ``counts``). The argument (H = the binding classes, U = the others, ``m`` = shuffled
    batches per epoch):

    - ``m <= 1``: one batch per epoch holds every sample: guaranteed.
    - ``|H| >= 2``: every batch is mixed and holds each ``b_c``, c in H, so every class-c
      sample is joined to ``b_c`` (a star; per epoch: a star in that epoch), and a batch with
      a non-binding class-c sample holds c twice and every c' in H: (a*) for H and (b) within
      H hold, for every shuffle and from one epoch, whether the binding samples change or not.
    - a class u in U: (a*) fails whenever its samples are split over >= 2 batches in every
      epoch (possible when m >= 2); (b) for a pair with u needs a batch where u meets the other
      class with one of the two twice: random, as in the plain shuffle.
    - ``|H| = 1``: a batch of the binding sample and class-h samples only is pure; h is at risk.

    Args:
      counts: class counts (``k >= 2``, each ``>= 2``).
      batch_size: B (shuffled samples per batch, >= 1).
      binding_classes: the classes with a binding sample (default: all).
      per_epoch: binding samples redrawn each epoch (does not change the verdict).

    Returns:
      ``BindingVerdict``.

    >>> binding_guarantee([5, 5, 2], 4).guaranteed
    True
    >>> v = binding_guarantee([5, 5, 2], 4, binding_classes=[0, 1])
    >>> v.guaranteed, v.at_risk_classes, v.at_risk_pairs
    (False, [2], [[0, 2], [1, 2]])
    """
    c = check_counts(counts)
    b = check_int("batch_size", batch_size, 1)
    k = int(c.size)
    h = list(range(k)) if binding_classes is None else sorted({int(x) for x in binding_classes})
    if any(x < 0 or x >= k for x in h):
        raise ValueError(f"binding_classes must be classes in 0..{k - 1}, got {list(binding_classes)}")
    n_rest = int(c.sum()) - len(h)
    m = -(-n_rest // b)
    if m <= 1:
        return BindingVerdict(True, h, [], [], f"{m} shuffled batch per epoch: one batch holds "
                                                f"every sample")
    u = [x for x in range(k) if x not in h]
    risk_classes = list(u)
    if len(h) == 1:
        risk_classes = sorted(set(risk_classes) | set(h))
    risk_pairs = [[i, j] for i in range(k) for j in range(i + 1, k)
                  if i in risk_classes or j in risk_classes]
    if not risk_classes:
        how = "redrawn each epoch" if per_epoch else "fixed"
        return BindingVerdict(True, h, [], [], f"all {k} classes have a binding sample ({how}) "
                                               f"in every batch and each class has >= 2 samples")
    why = (f"{len(u)} class(es) without a binding sample ({', '.join(map(str, u))}) rely on "
           f"shuffling" if u else "")
    if len(h) == 1:
        why = (why + "; " if why else "") + "a single binding class leaves pure batches possible"
    return BindingVerdict(False, h, risk_classes, risk_pairs, why)


def _allowed_bound_unbound(grid: np.ndarray, s: int) -> np.ndarray:
    """(b) for a binding class h and an unbound class u, with ``grid[0]`` the shuffled (non-binding)
    h samples and ``grid[1]`` the u samples of a batch (b_h is in every batch): not pinned iff
    ``x_u = 0`` or ``x_u = 1`` and no other h sample."""
    return (grid[1] == 0) | ((grid[1] == 1) & (grid[0] == 0))


class _PartialModel:
    """Binding samples for the classes H (|H| >= 2, fixed or redrawn per epoch) in every batch,
    the other N - |H| samples shuffled into batches of B: per-epoch failure events of the
    classes U without a binding sample (those of H are guaranteed)."""

    def __init__(self, counts: tuple[int, ...], batch_size: int, bound: tuple[int, ...]) -> None:
        c = np.asarray(counts, dtype=np.int64)
        k = c.size
        self.n = n = int(c.sum()) - len(bound)
        self.b = b = batch_size
        unbound = [i for i in range(k) if i not in bound]
        self.trivial = not unbound or -(-n // b) <= 1
        self.fail: list[tuple[str, Callable[[float], float]]] = []
        self.approx_fns: list[Callable[[float], float]] = []
        self.single = _Terms()
        if self.trivial:
            return
        u_groups = _groups(c[unbound])
        h_groups = _groups(c[list(bound)] - 1)
        cap = _CAP_PAIR
        for gi, (na, ka) in enumerate(u_groups):
            for gj, (nb, kb) in enumerate(u_groups):
                if gj < gi:
                    continue
                npairs = ka * (ka - 1) // 2 if gi == gj else ka * kb
                if npairs:
                    q, exact = _pair_bound((na, nb), n, b, _allowed_pair, cap)
                    self._add(f"(b) unbound pairs {na}-{nb}", npairs, q, exact)
                    q_app = q if exact else _independent_batches_probability((na, nb), n, b, _allowed_pair)
                    self.approx_fns.append(_power_term(math.log(npairs), q_app))
            for nh, kh in h_groups:
                q, exact = _pair_bound((nh, na), n, b, _allowed_bound_unbound, cap)
                self._add(f"(b) binding-unbound pairs {nh + 1}-{na}", kh * ka, q, exact)
                q_app = q if exact else _independent_batches_probability((nh, na), n, b,
                                                                         _allowed_bound_unbound)
                self.approx_fns.append(_power_term(math.log(kh * ka), q_app))
            a_c, exact = _class_cut_bound(na, n, b, pure=False)
            self.fail.append((f"(a*) unbound classes of {na}" + ("" if exact else " (bound)"),
                              lambda e, a_c=a_c, ka=ka: ka * a_c(e)))
            app = a_c if exact else _leading_cut_approx(na, n, b, pure=False)
            self.approx_fns.append(lambda e, app=app, ka=ka: ka * app(e))
            # a sample with no class-mate in its batch (all batches are mixed): exact
            psi = 0.0
            _, m_f, r = _split(n, b)
            for s_, cnt in _batch_types(n, m_f, r, b):
                if s_ - 1 <= n - na:
                    psi += cnt * s_ / n * math.exp(float(_log_comb(n - na, s_ - 1) - _log_comb(n - 1, s_ - 1)))
            self.single.add(0.0, min(psi, 1.0))

    def _add(self, name: str, count: int, q: float, exact: bool) -> None:
        t = _Terms()
        t.add(math.log(count), q)
        self.fail.append((name + ("" if exact else " (bound)"), lambda e, t=t: _exp_sum(
            np.asarray([t.log_sum(e)]))))
        if exact:
            self.single.add(0.0, q)

    def terms(self, e: float) -> dict[str, float]:
        return {name: f(e) for name, f in self.fail}

    def lower(self, e: float) -> float:
        return 1.0 if self.trivial else max(0.0, 1.0 - sum(self.terms(e).values()))

    def upper(self, e: float) -> float:
        return 1.0 if self.trivial else 1.0 - math.exp(self.single.log_max(e))

    def approx(self, e: float) -> float:
        if self.trivial:
            return 1.0
        raw = math.exp(-min(sum(f(e) for f in self.approx_fns), 700.0))
        return min(max(raw, self.lower(e)), self.upper(e))  # clipped to the bounds


def _partial_model(counts: Sequence[int], batch_size: int, binding_classes: Sequence[int]) -> _PartialModel:
    c = check_counts(counts)
    b = check_int("batch_size", batch_size, 1)
    bound = tuple(sorted({int(x) for x in binding_classes}))
    if any(x < 0 or x >= c.size for x in bound):
        raise ValueError(f"binding_classes must be classes in 0..{c.size - 1}, got {list(binding_classes)}")
    if len(bound) < 2:
        raise ValueError("partial binding is modelled for >= 2 binding classes (every batch mixed); "
                         f"got {len(bound)}")
    return _cached_partial(tuple(int(x) for x in c), b, bound)


@lru_cache(maxsize=64)
def _cached_partial(counts: tuple[int, ...], b: int, bound: tuple[int, ...]) -> _PartialModel:
    return _PartialModel(counts, b, bound)


def partial_binding_bounds(counts: Sequence[int], batch_size: int, epochs: int,
                           binding_classes: Sequence[int]) -> CoverageBounds:
    """Bounds on P_E for batch-binding with binding samples for the classes ``binding_classes``
    only (>= 2 of them; fixed or redrawn per epoch: the same probabilities): ``lower`` is the
    union bound over the failure events of the unbound classes U (per epoch, on the
    ``N - |H|`` shuffled samples in batches of B, every batch mixed):

    - (b) for u, u' in U: q of formula (1), as in the plain shuffle;
    - (b) for h in H, u in U: every batch with a u sample holds one u and no other h sample
      (``b_h`` is always there): formula (1) with counts ``(n_h - 1, n_u)``;
    - (a*) for u in U: the cut sum (2) with every batch mixed.

    Pairs within H and (a*) for H hold for every shuffle. ``upper`` = 1 - (the largest exact
    single failure event: a pair, or a u sample with no class-mate in its batch).

    Args:
      counts: class counts; batch_size: B (shuffled samples per batch); epochs: E >= 1;
      binding_classes: class indices (0..k-1) with a binding sample, >= 2 of them.

    Returns:
      ``CoverageBounds`` (``exact`` = 1.0 when every class binds or one batch holds all).

    >>> partial_binding_bounds([5, 5, 2, 2], 4, 3, binding_classes=[0, 1, 2, 3]).exact
    1.0
    """
    m = _partial_model(counts, batch_size, binding_classes)
    e = check_int("epochs", epochs, 1)
    c = [int(x) for x in check_counts(counts)]
    if m.trivial:
        return CoverageBounds(c, m.b, e, 1.0, 1.0, 1.0, 1.0, "none", {})
    terms = m.terms(e)
    lower = m.lower(e)
    return CoverageBounds(c, m.b, e, lower, max(lower, m.upper(e)), m.approx(e), None,
                          max(terms, key=terms.get), terms)


def partial_binding_epochs_needed(counts: Sequence[int], batch_size: int,
                                  binding_classes: Sequence[int], p: float = 0.99) -> int | None:
    """Smallest E with ``partial_binding_bounds(...).lower >= p`` (a guarantee), None beyond
    ``E_MAX``.

    >>> partial_binding_epochs_needed([5, 5, 2, 2], 4, [0, 1, 2, 3])
    1
    """
    m = _partial_model(counts, batch_size, binding_classes)
    p = _check_p(p)
    if m.trivial:
        return 1
    return _search(lambda e: m.lower(e) >= p, lo=1)


def binding_variants_report(counts: Sequence[int], batch_size: int, epochs: int,
                            seeds: Sequence[int], variants: Sequence[dict] | None = None) -> list[dict]:
    """Run binding variants through ``check_batches`` and compare with ``binding_guarantee``.

    Each variant is a dict of ``binding_classes`` (None: all) and ``per_epoch``; the batches
    come from ``theory_checks.schedules.binding_variant_batches``. Default variants: all k
    fixed, all k per epoch, all but the last class, the minority (smallest) classes only, the
    majority classes only.

    Returns:
      one dict per variant: ``name``, ``binding_classes``, ``per_epoch``, ``guaranteed``,
      ``holds`` (seeds where check_batches holds), ``seeds``, ``failed_classes``,
      ``failed_pairs`` (union over seeds), ``consistent`` (failures only where at risk, and no
      failure for a guaranteed variant).

    >>> rep = binding_variants_report([6, 6, 3, 3], 4, 2, seeds=[0, 1])
    >>> [(r["name"], r["guaranteed"], r["consistent"]) for r in rep][:2]
    [('all k, fixed', True, True), ('all k, per epoch', True, True)]
    """
    from theory_checks.interaction import check_batches
    from theory_checks.schedules import binding_variant_batches

    c = check_counts(counts)
    k = int(c.size)
    labels = labels_from_counts(c).astype(np.int64)
    small = [i for i in range(k) if c[i] == c.min()]
    large = [i for i in range(k) if c[i] != c.min()]
    if variants is None:
        variants = [
            {"name": "all k, fixed", "binding_classes": None, "per_epoch": False},
            {"name": "all k, per epoch", "binding_classes": None, "per_epoch": True},
            {"name": "all but one (k-1), fixed", "binding_classes": list(range(k - 1)), "per_epoch": False},
            {"name": "minority classes only", "binding_classes": small, "per_epoch": False},
            {"name": "majority classes only, per epoch", "binding_classes": large, "per_epoch": True},
        ]
    out = []
    for v in variants:
        verdict = binding_guarantee(c, batch_size, v.get("binding_classes"), v.get("per_epoch", False))
        holds, f_cls, f_pairs = 0, set(), set()
        for s in seeds:
            batches = binding_variant_batches(labels, batch_size=batch_size, epochs=epochs, seed=int(s),
                                              binding_classes=v.get("binding_classes"),
                                              per_epoch=v.get("per_epoch", False))
            res = check_batches(labels, batches)
            holds += bool(res.holds)
            f_cls |= {d["class"] for d in res.conditions["a_star"]["details"]}
            f_pairs |= {tuple(p) for p in res.conditions["b"]["details"]}
        risk_c = set(verdict.at_risk_classes)
        risk_p = {tuple(p) for p in verdict.at_risk_pairs}
        consistent = f_cls <= risk_c and f_pairs <= risk_p and (holds == len(seeds) or not verdict.guaranteed)
        out.append({"name": v.get("name", str(v)), "binding_classes": verdict.binding_classes,
                    "per_epoch": bool(v.get("per_epoch", False)), "guaranteed": verdict.guaranteed,
                    "reason": verdict.reason, "holds": holds, "seeds": len(seeds),
                    "failed_classes": sorted(f_cls), "failed_pairs": sorted(list(p) for p in f_pairs),
                    "consistent": bool(consistent)})
    return out


def advise(counts: np.ndarray, batch_size: int, p: float, *, epochs: int | None = None,
           mc_trials: int | None = None, seed: int = 0) -> dict:
    """What ``python -m theory_checks.batches --advise`` prints, as a dict.

    For shuffled batches of ``batch_size`` from ``counts``: the epochs needed for
    ``P(conditions (a*) and (b) hold) >= p`` (``epochs_summary``: the union-bound guarantee,
    the range of the exact number, the approximation), the bounds at a few epoch counts around
    it (and at ``epochs``), the one-epoch probability, the batch-binding alternatives
    (``binding_guarantee``: all k classes; the smallest classes only, when there are 2 to k - 1
    of them) and, with ``mc_trials``, a Monte Carlo check (``monte_carlo_probability``, seeded
    by ``seed``) at ``epochs`` or the guaranteed count.

    Args:
      counts: samples per class (validated by the functions it calls).
      batch_size: B >= 2.
      p: target probability in (0, 1).
      epochs: an extra epoch count for the table and the Monte Carlo check, or None.
      mc_trials: Monte Carlo trials, or None for none.
      seed: the Monte Carlo seed.

    Returns:
      ``{"counts", "k", "n_samples", "batch_size", "p", "batches_per_epoch", "last_batch",
      "shuffle": {...}, "binding": {...}}`` and ``"monte_carlo"`` with ``mc_trials``.

    >>> advise(np.array([3, 3, 2]), 4, 0.9)["binding"]["all_k"]["guaranteed"]
    True
    """
    n = int(counts.sum())
    k = int(counts.size)
    sizes = shuffle_batch_sizes(n, batch_size)
    summary = epochs_summary(counts, batch_size, p)
    e_star = summary["guaranteed"]
    marks = {1}
    for key in ("guaranteed", "at_least", "approx"):
        if summary[key] is not None:
            marks.add(summary[key])
    if e_star is not None and e_star > 1:
        marks |= {max(1, int(round(e_star * f))) for f in (0.25, 0.5, 0.75, 1.5, 2.0)}
    elif e_star is None:
        marks |= {2, 10, 100, 1000}
    if epochs is not None:
        marks.add(epochs)
    rows = []
    for e in sorted(marks):
        b = coverage_bounds(counts, batch_size, e)
        rows.append({"epochs": e, "lower": b.lower, "upper": b.upper, "approx": b.approx,
                     "exact": b.exact, "bottleneck": b.bottleneck})
    at_star = coverage_bounds(counts, batch_size, e_star) if e_star else None
    small = [i for i in range(k) if counts[i] == counts.min()]
    full = binding_guarantee(counts, batch_size)
    binding = {
        "all_k": {"binding_samples": k, "epochs": 1 if full.guaranteed else None,
                  "probability": 1.0 if full.guaranteed else None, "guaranteed": full.guaranteed,
                  "batch_size_with_binding": batch_size + k,
                  "condition": "k >= 2, every class has >= 2 samples (one besides its binding "
                               "sample) and no sample is dropped (drop_last off); fixed or "
                               "redrawn each epoch", "reason": full.reason},
    }
    if 2 <= len(small) < k:
        part = epochs_summary(counts, batch_size, p, binding_classes=small)
        verdict = binding_guarantee(counts, batch_size, small)
        binding["minority_only"] = {"binding_classes": small, "binding_samples": len(small),
                                    "guaranteed_every_shuffle": verdict.guaranteed,
                                    "epochs_needed": part["guaranteed"], "at_least": part["at_least"],
                                    "approx": part["approx"], "reason": verdict.reason}
    out = {
        "counts": counts.tolist(), "k": k, "n_samples": n, "batch_size": batch_size, "p": p,
        "batches_per_epoch": int(sizes.size), "last_batch": int(sizes[-1]),
        "shuffle": {"epochs_needed": e_star, "guarantee": "union lower bound L_E >= p",
                    "at_least": summary["at_least"], "approx": summary["approx"],
                    "one_epoch_probability": one_epoch_probability(counts, batch_size),
                    "bottleneck": at_star.bottleneck if at_star else rows[-1]["bottleneck"],
                    "by_epochs": rows},
        "binding": binding,
    }
    if mc_trials:
        e_mc = epochs if epochs is not None else e_star
        if e_mc is not None:
            mc = monte_carlo_probability(counts, batch_size, e_mc, mc_trials, seed)
            b = coverage_bounds(counts, batch_size, e_mc)
            out["monte_carlo"] = {"epochs": e_mc, "trials": mc.trials, "seed": seed,
                                  "estimate": mc.estimate, "ci99": [mc.ci_low, mc.ci_high],
                                  "lower": b.lower, "upper": b.upper,
                                  "agrees": bool(mc.ci_high >= b.lower and mc.ci_low <= b.upper)}
    return out
