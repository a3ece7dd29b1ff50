"""Several devices and hosts: JAX's own distributed runtime, a ``seeds x data`` mesh, process 0.

``python -m deep.train --devices N`` trains data-parallel on a ``jax.sharding.Mesh`` of shape
``(K, N/K)`` with axes ``("seeds", "data")`` (``K = --seed-shards``, default 1):

- every image batch is split over the ``data`` axis (``NamedSharding`` of the batch axis inside
  the jitted step; the pool of images, the batch indices and the step number are replicated,
  so each device gathers its own slice of every GLOBAL batch from the pool on the device);
- the stacked per-seed state is sharded over ``seeds`` on its leading axis (replicated when
  ``K = 1``, the default: every device holds every seed's parameters);
- the step is ``jax.jit`` with ``in_shardings`` / ``out_shardings`` (no pmap, no shard_map):
  the SC loss, BatchNorm's batch statistics and the gradients are written on the global
  arrays, so XLA inserts the all-gathers / all-reduces and the step is the one-device step
  on the same global batch (up to the order of float32 sums): every anchor sees the negatives
  of every device, and BatchNorm uses the GLOBAL batch's statistics (sync BN).

Several processes (hosts): ``initialize`` calls ``jax.distributed.initialize`` from
``--coordinator HOST:PORT --num-processes P --process-id I`` or from the environment variables
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; on CPUs it selects
the gloo collectives first. Every process loads the whole (small) data set and builds the same
batch order; its devices take their slices of each global batch. Only process 0 (``is_main``)
takes the run lock and writes ``config.json``, ``metrics.jsonl`` and the checkpoint.

With ``--devices 1`` in one process there is no mesh (``make_mesh`` returns None) and the
step is the unsharded one, bit for bit as before.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["SEEDS", "DATA", "ENV", "MeshError", "initialize", "is_main", "process_count",
           "make_mesh", "mesh_shape", "put", "to_host", "broadcast", "all_ok"]

SEEDS, DATA = "seeds", "data"
#: environment variables read when the flags are not given (the first is also JAX's own)
ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class MeshError(ValueError):
    """The requested devices / processes cannot form the mesh; ``argument``: the flag."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


def distributed_settings(coordinator: str | None = None, num_processes: int | None = None,
                         process_id: int | None = None,
                         environ: dict[str, str] | None = None) -> tuple[str, int, int] | None:
    """``(coordinator, num_processes, process_id)`` from the flags, else the environment; None
    when neither names a coordinator (one process).

    >>> distributed_settings(environ={})
    >>> distributed_settings("10.0.0.1:1234", 2, 1, environ={})
    ('10.0.0.1:1234', 2, 1)
    >>> distributed_settings(environ={"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "4",
    ...                               "JAX_PROCESS_ID": "3"})
    ('h:1', 4, 3)
    """
    env = os.environ if environ is None else environ
    coordinator = coordinator or env.get(ENV[0]) or None
    if num_processes is None and env.get(ENV[1]):
        num_processes = int(env[ENV[1]])
    if process_id is None and env.get(ENV[2]):
        process_id = int(env[ENV[2]])
    if coordinator is None:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise MeshError("--num-processes / --process-id need --coordinator HOST:PORT "
                            f"(or {ENV[0]})", "--coordinator")
        return None
    if num_processes is None or process_id is None:
        raise MeshError("--coordinator needs --num-processes and --process-id "
                        f"(or {ENV[1]} and {ENV[2]})", "--num-processes")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise MeshError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}",
                        "--process-id")
    return coordinator, num_processes, process_id


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """``jax.distributed.initialize`` when a coordinator is named (flags or ``ENV``); must run
    before JAX touches a device. Returns whether it did. On CPUs the cross-process
    collectives are gloo's (``jax_cpu_collectives_implementation``)."""
    settings = distributed_settings(coordinator, num_processes, process_id)
    if settings is None:
        return False
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(*settings)
    return True


def process_count() -> int:
    import jax

    return jax.process_count()


def is_main() -> bool:
    """Whether this is process 0 (the only one that writes the run's files)."""
    import jax

    return jax.process_index() == 0


def make_mesh(devices: int | None = 1, seed_shards: int = 1, seeds: int = 1):
    """The ``(seed_shards, devices/seed_shards)`` mesh with axes ``("seeds", "data")``, or None
    for one device in one process (the unsharded step). ``devices`` None: every device of
    every process. Each process contributes ``devices / process_count`` of its local devices.

    Raises ``MeshError`` when the numbers do not fit (the message names the flag).
    """
    import jax
    from jax.sharding import Mesh

    total, procs = len(jax.devices()), jax.process_count()
    n = total if devices is None else int(devices)
    if not 1 <= n <= total:
        raise MeshError(f"--devices {n}: this {'job' if procs > 1 else 'process'} sees {total} "
                        f"device{'s' * (total != 1)}", "--devices")
    if n % procs:
        raise MeshError(f"--devices {n} is not a multiple of the {procs} processes", "--devices")
    if seed_shards < 1 or n % seed_shards:
        raise MeshError(f"--seed-shards {seed_shards} does not divide --devices {n}", "--seed-shards")
    if seeds % seed_shards:
        raise MeshError(f"--seed-shards {seed_shards} does not divide --seeds {seeds}", "--seed-shards")
    if n == 1 and procs == 1:
        return None
    per = n // procs
    chosen = [d for p in range(procs)
              for d in sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[:per]]
    return Mesh(np.array(chosen).reshape(seed_shards, n // seed_shards), (SEEDS, DATA))


def mesh_shape(mesh) -> dict[str, int]:
    """``{"seeds": K, "data": N/K}`` (``{"seeds": 1, "data": 1}`` without a mesh)."""
    return {SEEDS: 1, DATA: 1} if mesh is None else {k: int(v) for k, v in mesh.shape.items()}


def sharding(mesh, *spec):
    from jax.sharding import NamedSharding, PartitionSpec

    return NamedSharding(mesh, PartitionSpec(*spec))


def put(x: Any, mesh, *spec) -> Any:
    """The global array of the host value ``x`` (the same on every process) laid out as
    ``PartitionSpec(*spec)`` on ``mesh`` (every leaf of a pytree)."""
    import jax

    def one(a):
        a = np.asarray(a)
        sh = sharding(mesh, *spec[:a.ndim])
        return jax.make_array_from_callback(a.shape, sh, lambda index: a[index])

    return jax.tree_util.tree_map(one, x)


def to_host(tree: Any) -> Any:
    """Every leaf as one unsharded numpy array on this host (a collective when some leaf is
    not fully addressable here: every process must call it)."""
    import jax

    leaves = jax.tree_util.tree_leaves(tree)
    if all(getattr(a, "is_fully_addressable", True) or getattr(a, "is_fully_replicated", False)
           for a in leaves):
        return jax.tree_util.tree_map(lambda a: np.asarray(jax.device_get(a)), tree)
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def broadcast(tree: Any) -> Any:
    """Process 0's value of ``tree`` (host arrays of the same shapes everywhere) on every process."""
    import jax

    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(np.asarray, multihost_utils.broadcast_one_to_all(tree))


def all_ok(ok: bool) -> bool:
    """Whether ``ok`` holds on every process (a collective with several)."""
    import jax

    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))
