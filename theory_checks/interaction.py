"""The batch interaction-graph check (DESIGN.md section 6): is the OF the UNIQUE minimizer?

Samples ``i = 0..N-1`` with labels ``y_i``; batches ``B_1..B_m`` (lists of sample indices,
repeats across epochs allowed: the check uses their union). A batch is MIXED when it holds >= 2
classes and PURE when it holds one. The conditions, in the form verified against the batched
convex relaxation (UFM+, d >= k):

(a*) for every class c: join two class-c samples when they share a mixed batch; then,
     repeatedly (to a fixpoint), if a pure batch of size >= 3 holds two samples already joined,
     join all its samples. A pure batch of size 2 pins nothing. Every class must end up in ONE
     component, and every sample must be in some batch.
(b)  for every pair of classes c != c', some batch holds both with at least one of the two
     present >= 2 times in it.

Exactness: (a*) + (b) decide uniqueness exactly for the relaxation and for d >= k + 1; at
d = k some pure-batch cases that fail (a*) are still unique; (b) is necessary for every d.

Batches are multisets: an index listed twice in a batch counts twice (as it does in the loss,
where the copy is a positive with inner product 1).

The fast path works on flat arrays (one sort of the batch entries, union-find through
``scipy.sparse.csgraph.connected_components`` on contracted graphs, sparse class-presence
products for (b)); ``interaction_graph`` builds the networkx graph for small inputs.

>>> labels = [0, 0, 0, 1, 1, 1]
>>> check_batches(labels, [[0, 1, 3, 4], [1, 2, 4, 5]]).holds
True
>>> bad = check_batches(labels, [[0, 1, 2], [3, 4, 5]])  # class-sorted: two pure batches
>>> bad.holds, bad.conditions["b"]["details"]
(False, [[0, 1]])
>>> bad.conditions["a_star"]["details"][0]
{'class': 0, 'n_samples': 3, 'components': 3, 'n_uncovered': 0}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ufm.core.batching import Batching
from ufm.core.checks import check_int
from ufm.core.problem import Problem
from ufm.cli.limits import format_bytes, too_big

__all__ = [
    "BatchCheck",
    "FlatBatches",
    "flatten_batches",
    "check_batches",
    "interaction_graph",
    "exactness",
]

_EDGE_CHUNK = 1 << 16  # fewest links contracted per connected_components call
_MAX_ROUNDS = 40  # vectorized pure-batch rounds before the event-driven fixpoint takes over

# Peak memory of check_batches, measured (issue 34) by peak RSS: 42 B per batch entry for batches
# of 50, 86 B for one batch of 5e6 entries, 126 B per entry for 5e6 batches of one; the k x k
# class-pair matrices of (b) about 20 B per pair; each pair (b) reports (a Python list [c, c'],
# in the details and, with the JSON form, again in never_together) about 400 B: 4000 classes in
# pure batches of 2 (8 million failing pairs) took 2.6 GiB from a 30 KB file.
_PER_ENTRY, _PER_BATCH, _PER_SAMPLE, _PER_CLASS_PAIR, _PER_FAILED_PAIR = 96, 80, 40, 20, 400


def _memory_check(nbytes: float, what: str) -> None:
    """``ValueError`` (one line) when ``nbytes`` exceed the memory budget."""
    reason = too_big(nbytes, what)
    if reason is not None:
        raise ValueError(f"too big to check: {reason}")


#: The batches' type is the core's ``ufm.core.batching.Batching`` (one representation); this name
#: stays for callers of the earlier ``theory_checks`` API.
FlatBatches = Batching


def _int_array(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object:
        raise ValueError(f"{what} must be integers (found non-numeric or nested entries)")
    if arr.size and arr.dtype.kind not in "iu":
        kind = {"b": "booleans", "f": "floats", "c": "complex numbers"}.get(arr.dtype.kind, "non-integers")
        raise ValueError(f"{what} must be integers, got {kind}")
    return arr.astype(np.int64, copy=False)


def flatten_batches(batches: Any, n_samples: int | None = None) -> Batching:
    """``batches`` (a ``Batching``, a 2-D integer array or a sequence of index sequences) as a
    ``Batching``, validated once by ``Batching.coerce`` (no batch, an empty batch, a
    non-integer or out-of-range index is a ``ValueError``); ``n_samples=None`` infers N as the
    largest index + 1."""
    if n_samples is None:
        return Batching.from_lists(batches)
    return Batching.coerce(batches, n_samples, allow_empty=False)


@dataclass
class BatchCheck:
    """Verdict of ``check_batches``; ``to_dict()`` is its JSON form.

    ``conditions["a_star"]["details"]``: classes whose pinned same-class subgraph is not one
    component (with the component count; uncovered samples count as their own components).
    ``conditions["b"]["details"]``: class pairs ``[c, c']`` never pinned. Classes are named by
    their label values. ``class_components[j]`` is the component count of ``classes[j]``.
    """

    holds: bool
    conditions: dict[str, dict[str, Any]]
    uncovered_samples: np.ndarray
    n_samples: int
    n_batches: int
    n_entries: int
    k: int
    classes: np.ndarray
    class_counts: np.ndarray
    class_components: np.ndarray
    d: int | None = None
    exact: bool | None = None
    exactness: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (lists and Python numbers)."""
        return {
            "holds": bool(self.holds),
            "conditions": self.conditions,
            "uncovered_samples": self.uncovered_samples.tolist(),
            "n_samples": int(self.n_samples),
            "n_batches": int(self.n_batches),
            "n_entries": int(self.n_entries),
            "k": int(self.k),
            "classes": self.classes.tolist(),
            "class_counts": self.class_counts.tolist(),
            "class_components": self.class_components.tolist(),
            "d": self.d,
            "exact": self.exact,
            "exactness": self.exactness,
            "warnings": list(self.warnings),
        }


def exactness(k: int, d: int | None, a_star: bool, b: bool) -> tuple[bool | None, str]:
    """Whether the verdict is exact at dimension ``d`` (None: not given), and why.

    >>> exactness(3, 4, False, True)[0], exactness(3, 3, False, True)[0]
    (True, False)
    """
    if d is None:
        return None, (f"exact for the batched convex relaxation and for d >= k+1 = {k + 1}; "
                      f"at d = k a failing (a*) may still leave the OF unique; "
                      f"(b) is necessary for every d")
    if d < k:
        return False, f"d = {d} < k = {k}: the OF is not feasible, the conditions do not apply"
    if d >= k + 1:
        return True, f"exact: d = {d} >= k+1 = {k + 1}"
    if a_star and b:
        return True, f"exact: the conditions hold, so the OF is the unique minimizer at d = k = {k}"
    if not b:
        return True, f"exact: (b) fails, and (b) is necessary for every d (d = k = {k})"
    return False, (f"not exact at d = k = {k}: only (a*) fails, and some pure-batch cases are "
                   f"still unique at d = k (exact for the relaxation and d >= k+1)")


# ----------------------------------------------------------------------------- union-find


def _relabel(comp: np.ndarray, ncomp: int, members: np.ndarray,
             link: np.ndarray) -> tuple[np.ndarray, int]:
    """Merge components along a chain: ``members[i]`` and ``members[i+1]`` are joined where
    ``link[i]`` (``comp``: compact labels 0..ncomp-1 of every sample).

    The chain is contracted piece by piece: once a piece has merged its components, the links
    of later pieces that already sit inside one component drop out before a graph is built.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_links = int(np.count_nonzero(link))
    if n_links == 0:
        return comp, ncomp
    if n_links < link.size // 4:  # sparse links: keep only the linked pairs
        pairs = np.stack([members[:-1][link], members[1:][link]], axis=1)
        members = pairs.reshape(-1)
        link = np.zeros(members.size - 1, dtype=bool)
        link[::2] = True
    chunk = max(comp.size // 2, _EDGE_CHUNK)
    for start in range(0, link.size, chunk):
        c = comp[members[start:start + chunk + 1]]
        keep = link[start:start + chunk] & (c[:-1] != c[1:])
        if not keep.any():
            continue
        a, b = c[:-1][keep], c[1:][keep]
        g = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(ncomp, ncomp))
        ncomp, lab = connected_components(g.tocsr(), directed=True, connection="weak")
        comp = lab.astype(comp.dtype, copy=False)[comp]
    return comp, int(ncomp)


def _groups_with_duplicates(group: np.ndarray, value: np.ndarray, n_values: int) -> np.ndarray:
    """Sorted unique ``group`` ids in which some ``value`` occurs twice."""
    if group.size < 2:
        return np.zeros(0, dtype=np.int64)
    if int(group.max()) < (2**62) // max(n_values, 1):
        key = np.sort(group * n_values + value)
        dup = key[1:] == key[:-1]
        return np.unique(key[1:][dup] // n_values)
    order = np.lexsort((value, group))
    g, v = group[order], value[order]
    dup = (g[1:] == g[:-1]) & (v[1:] == v[:-1])
    return np.unique(g[1:][dup])


def _sort_within(key: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``key`` sorted inside each batch (``key`` is already ordered across batches).

    Runs of equal-size batches are sorted as 2-D rows (much faster than one long sort)."""
    edges = np.flatnonzero(np.diff(sizes)) + 1
    if edges.size > 1000:
        return np.sort(key, kind="stable")
    out = np.empty_like(key)
    run_starts, run_ends = np.r_[0, edges], np.r_[edges, sizes.size]
    offsets = np.r_[0, np.cumsum(sizes)]
    for r0, r1 in zip(run_starts.tolist(), run_ends.tolist()):
        lo, hi, size = offsets[r0], offsets[r1], int(sizes[r0])
        out[lo:hi] = np.sort(key[lo:hi].reshape(r1 - r0, size), axis=1).reshape(-1)
    return out


def _pure_fixpoint_events(comp: np.ndarray, ncomp: int, p_bid: np.ndarray,
                          p_idx: np.ndarray) -> tuple[np.ndarray, int]:
    """Exact event-driven fixpoint of the pure-batch rule (small-to-large merging of the sets
    of pending batches touching each component); used after many vectorized rounds."""
    starts = np.flatnonzero(np.r_[True, p_bid[1:] != p_bid[:-1]])
    members = np.split(comp[p_idx], starts[1:])
    parent = list(range(ncomp))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    touch: dict[int, set[int]] = {}
    queue: list[int] = []
    for b, mem in enumerate(members):
        uniq = set(mem.tolist())
        if len(uniq) < mem.size:
            queue.append(b)
        for c in uniq:
            touch.setdefault(c, set()).add(b)
    active = bytearray(len(members))
    src: list[int] = []
    dst: list[int] = []
    while queue:
        b = queue.pop()
        if active[b]:
            continue
        active[b] = 1
        mem = members[b].tolist()
        for c in mem[1:]:
            ra, rb = find(mem[0]), find(c)
            if ra == rb:
                continue
            src.append(mem[0])
            dst.append(c)
            sa, sb = touch.get(ra, set()), touch.get(rb, set())
            if len(sa) < len(sb):
                ra, rb, sa, sb = rb, ra, sb, sa
            for t in sb:
                if t in sa:
                    if not active[t]:
                        queue.append(t)
                else:
                    sa.add(t)
            parent[rb] = ra
            touch[ra] = sa
            touch.pop(rb, None)
    if not src:
        return comp, ncomp
    # src/dst are component ids: relabel components, then map samples through
    chain = np.stack([np.asarray(src), np.asarray(dst)], axis=1).reshape(-1)
    link = np.zeros(chain.size - 1, dtype=bool)
    link[::2] = True
    new_ids, ncomp = _relabel(np.arange(ncomp, dtype=comp.dtype), ncomp, chain, link)
    return new_ids[comp], ncomp


def _pure_fixpoint(comp: np.ndarray, ncomp: int, p_bid: np.ndarray, p_idx: np.ndarray,
                   max_rounds: int = _MAX_ROUNDS) -> tuple[np.ndarray, int]:
    """Apply the pure-batch rule to a fixpoint: a pending pure batch (entries ``p_idx`` grouped
    by ``p_bid``, size >= 3) holding two samples of one component joins all its samples."""
    for _ in range(max_rounds):
        if p_bid.size == 0:
            return comp, ncomp
        c = comp[p_idx]
        csize = np.bincount(comp, minlength=ncomp)
        # a repeated sample is joined to itself; otherwise both samples need a component of size >= 2
        rep = np.r_[False, (p_idx[1:] == p_idx[:-1]) & (p_bid[1:] == p_bid[:-1])]
        cand = (csize[c] >= 2) | rep | np.r_[rep[1:], False]
        trig = _groups_with_duplicates(p_bid[cand], c[cand], ncomp)
        if trig.size == 0:
            return comp, ncomp
        hit = np.isin(p_bid, trig)
        h_bid = p_bid[hit]
        comp, ncomp = _relabel(comp, ncomp, p_idx[hit], h_bid[1:] == h_bid[:-1])
        p_bid, p_idx = p_bid[~hit], p_idx[~hit]
    if p_bid.size == 0:
        return comp, ncomp
    return _pure_fixpoint_events(comp, ncomp, p_bid, p_idx)


# ----------------------------------------------------------------------------- the check


def _cooccurrence(a_bid: np.ndarray, a_y: np.ndarray, b_bid: np.ndarray, b_y: np.ndarray,
                  nb: int, k: int, max_seconds: float | None = None) -> np.ndarray | None:
    """``(A^T B) > 0`` (k x k) for 0/1 batch-by-class matrices given by their nonzeros (rows
    sorted): sparse product when batches hold few classes, dense blocks when they hold many.
    ``None`` when the estimated time exceeds ``max_seconds``."""
    from scipy.sparse import csr_matrix

    na = np.bincount(a_bid, minlength=nb).astype(np.float64)
    nbb = np.bincount(b_bid, minlength=nb).astype(np.float64)
    sparse_s = float(na @ nbb) / 3e7 + 1e-3
    dense_s = 2.0 * nb * k * k / 2e10 + nb * k / 5e8
    if max_seconds is not None and min(sparse_s, dense_s) > max_seconds:
        return None
    if sparse_s <= dense_s:
        a = csr_matrix((np.ones(a_y.size, np.float32), a_y, np.r_[0, np.cumsum(na.astype(np.int64))]),
                       shape=(nb, k))
        b = csr_matrix((np.ones(b_y.size, np.float32), b_y, np.r_[0, np.cumsum(nbb.astype(np.int64))]),
                       shape=(nb, k))
        return (a.T @ b).toarray() > 0
    out = np.zeros((k, k), dtype=np.float32)
    rows = max(1, (1 << 22) // k)
    a_cut = np.searchsorted(a_bid, np.arange(0, nb + rows, rows))
    b_cut = np.searchsorted(b_bid, np.arange(0, nb + rows, rows))
    for i, start in enumerate(range(0, nb, rows)):
        h = min(rows, nb - start)
        da = np.zeros((h, k), np.float32)
        db = np.zeros((h, k), np.float32)
        sa, sb = slice(a_cut[i], a_cut[i + 1]), slice(b_cut[i], b_cut[i + 1])
        da[a_bid[sa] - start, a_y[sa]] = 1.0
        db[b_bid[sb] - start, b_y[sb]] = 1.0
        out += da.T @ db
    return out > 0


def _pair_list(mask: np.ndarray, classes: np.ndarray) -> list[list[int]]:
    i, j = np.nonzero(np.triu(mask, 1))
    return np.stack([classes[i], classes[j]], axis=1).tolist()


def check_batches(labels: Sequence[int] | Problem, batches: Any = None, *, d: int | None = None,
                  _max_rounds: int = _MAX_ROUNDS) -> BatchCheck:
    """Check conditions (a*) and (b) of DESIGN.md section 6 for ``labels`` and ``batches``.

    ``labels`` may be a ``Problem`` with batches (then ``batches`` and ``d`` come from it).
    ``batches``: a sequence of index sequences, a 2-D integer array, or a ``Batching``.
    ``d``: the embedding dimension the verdict is read for (only changes ``exact``).
    Raises ``ValueError`` for unusable input (non-integer or negative labels, no batch, an
    empty batch, an index out of range).

    >>> r = check_batches([0, 0, 1, 1], [[0, 1, 2], [0, 2, 3]], d=3)
    >>> r.holds, r.exact
    (True, True)
    >>> r = check_batches([0, 0, 1, 1, 1], [[0, 1, 2]])
    >>> r.holds, r.uncovered_samples.tolist()
    (False, [3, 4])
    """
    if isinstance(labels, Problem):  # validated once, where it was built
        if batches is not None or d is not None:
            raise ValueError("pass either a Problem or labels, batches and d, not both")
        if labels.batching is None:
            raise ValueError("the problem has no batches to check (the full batch)")
        labels, batches, d = labels.labels, labels.batching, labels.d
    elif batches is None:
        raise ValueError("batches are required with labels (or pass a Problem with batches)")
    d = None if d is None else check_int("d", d, 1)
    y_raw = _int_array(labels, "labels")
    if y_raw.ndim != 1 or y_raw.size == 0:
        raise ValueError("labels must be a non-empty flat list of integers")
    if y_raw.min() < 0:
        i = int(np.argmax(y_raw < 0))
        raise ValueError(f"labels must be non-negative integers, labels[{i}] = {int(y_raw[i])}")
    n = int(y_raw.size)
    fb = Batching.coerce(batches, n, allow_empty=False)
    idx, offsets = fb.indices, fb.offsets
    sizes = np.diff(offsets)
    nb, m = int(sizes.size), int(idx.size)

    classes, y, class_counts = np.unique(y_raw, return_inverse=True, return_counts=True)
    k = int(classes.size)
    _memory_check(_PER_ENTRY * m + _PER_BATCH * nb + _PER_SAMPLE * n + _PER_CLASS_PAIR * k * k,
                  f"{m} batch entries, {nb} batches, {n} samples, {k} classes: {_PER_ENTRY} B per "
                  f"entry + {_PER_CLASS_PAIR} B per class pair")
    itype = np.int32 if n < 2**31 else np.int64
    y = y.reshape(-1).astype(np.int16 if k < 2**15 else itype)
    idx = idx.astype(itype, copy=False)

    # one sort of the entries by (batch, class, sample): key = batch | class | sample bits
    bid = np.repeat(np.arange(nb, dtype=np.int64), sizes)
    kbits, nbits = max(k - 1, 1).bit_length(), max(n - 1, 1).bit_length()
    if max(nb - 1, 1).bit_length() + kbits + nbits <= 62:
        key = bid << kbits
        key |= y[idx]
        key <<= nbits
        key |= idx
        key = _sort_within(key, sizes)
        s_idx = (key & ((1 << nbits) - 1)).astype(itype)
        key >>= nbits
        g = key
    else:
        ye = y[idx].astype(np.int64)
        order = np.lexsort((idx, ye, bid))
        s_idx, g = idx[order], (bid << kbits) | ye[order]
    new_group = np.empty(m, dtype=bool)
    new_group[0] = True
    np.not_equal(g[1:], g[:-1], out=new_group[1:])
    first = np.flatnonzero(new_group)
    g_key = g[first]
    del g
    g_bid, g_y = g_key >> kbits, (g_key & ((1 << kbits) - 1)).astype(np.int32)
    g_count = np.diff(np.r_[first, m])
    n_groups = np.bincount(g_bid, minlength=nb)
    mixed = n_groups >= 2

    # (a*) mixed batches join each class's samples in them, then the pure-batch fixpoint
    link = ~new_group[1:]
    link &= mixed[bid[1:]]
    del new_group
    comp, ncomp = _relabel(np.arange(n, dtype=itype), n, s_idx, link)
    del link
    pure3 = (~mixed) & (sizes >= 3)
    in_pure = pure3[bid]
    comp, ncomp = _pure_fixpoint(comp, ncomp, bid[in_pure], s_idx[in_pure], _max_rounds)

    covered = np.zeros(n, dtype=bool)
    covered[idx] = True
    uncovered = np.flatnonzero(~covered)
    # components per class: distinct (class, component) pairs (components never cross classes)
    pair = np.unique(y.astype(np.int64) * n + comp)
    class_components = np.bincount(pair // n, minlength=k)
    class_uncovered = np.bincount(y[uncovered], minlength=k)
    bad_a = np.flatnonzero((class_components > 1) | (class_uncovered > 0))
    a_details = [{"class": int(classes[c]), "n_samples": int(class_counts[c]),
                  "components": int(class_components[c]), "n_uncovered": int(class_uncovered[c])}
                 for c in bad_a]

    # (b) pinned pairs: Q^T P > 0 with P = class presence per batch, Q = present >= 2 times
    many = g_count >= 2
    pinned = _cooccurrence(g_bid[many], g_y[many], g_bid, g_y, nb, k)
    pinned |= pinned.T
    np.fill_diagonal(pinned, True)
    never = ~pinned
    n_never = int(np.count_nonzero(never)) // 2
    _memory_check(_PER_FAILED_PAIR * n_never,
                  f"listing the {n_never} class pairs (b) fails for, of {k} classes: "
                  f"{format_bytes(_PER_FAILED_PAIR)} per pair")
    b_pairs = _pair_list(never, classes)
    b_cond: dict[str, Any] = {"passed": not b_pairs, "n_failed": len(b_pairs), "details": b_pairs}
    if b_pairs:
        met = _cooccurrence(g_bid, g_y, g_bid, g_y, nb, k, max_seconds=3.0)
        if met is not None:
            b_cond["never_together"] = _pair_list(never & ~met, classes)

    a_ok = not a_details
    holds = a_ok and not b_pairs
    warnings = []
    single = classes[class_counts == 1]
    if single.size:
        shown = ", ".join(str(int(c)) for c in single[:10]) + (" ..." if single.size > 10 else "")
        warnings.append(f"{single.size} class(es) with a single sample ({shown}): no positive; "
                        f"(b) then needs the partner class twice in a shared batch")
    if k == 1:
        warnings.append("only one class: (b) is vacuous")
    exact, note = exactness(k, d, a_ok, not b_pairs)
    return BatchCheck(
        holds=bool(holds),
        conditions={
            "a_star": {"passed": a_ok, "n_failed": len(a_details), "details": a_details},
            "b": b_cond,
        },
        uncovered_samples=uncovered,
        n_samples=n,
        n_batches=nb,
        n_entries=m,
        k=k,
        classes=classes,
        class_counts=class_counts,
        class_components=class_components,
        d=d,
        exact=exact,
        exactness=note,
        warnings=warnings,
    )


def interaction_graph(labels: Sequence[int], batches: Any):
    """The batch interaction graph as ``networkx.Graph`` (for small inputs and inspection).

    Nodes are samples (attribute ``label``); an edge ``i - j`` joins two samples sharing a batch,
    with attribute ``batches`` (the batch ids where they meet).

    >>> g = interaction_graph([0, 0, 1], [[0, 1], [1, 2]])
    >>> sorted(g.edges()), g.nodes[2]["label"], g.edges[1, 2]["batches"]
    ([(0, 1), (1, 2)], 1, [1])
    """
    import networkx as nx

    y = _int_array(labels, "labels")
    fb = Batching.coerce(batches, y.size)
    g = nx.Graph()
    g.add_nodes_from((i, {"label": int(c)}) for i, c in enumerate(y.tolist()))
    for b, batch in enumerate(fb):
        members = sorted(set(batch.tolist()))
        for a_i, i in enumerate(members):
            for j in members[a_i + 1:]:
                if g.has_edge(i, j):
                    g.edges[i, j]["batches"].append(b)
                else:
                    g.add_edge(i, j, batches=[b])
    return g
