"""Vectorised hyperparameter sweeps: ``vmap(fit)`` over members, in chunks, over devices.

The whole trick is :func:`train_members`: ``vmap(fit)`` over (key, hparams) with the data
and config shared, inside a ``shard_map`` so each device trains its share of the members.
Everything else here is bookkeeping around it: turning a search space into batched HParams, sizing
chunks to a memory budget, sharding the member axis over devices, checkpointing finished
chunks, and collecting the results.

Reproducibility guarantee. Member i is trained by ``fit(member_key(seed, seeds[i]),
hparams[i], data, config)``; its key depends on its own seed only, never on its position.
Its results equal that standalone ``fit`` to float rounding (tested to 1e-6 relative on CPU)
whatever the sweep's width, order, chunk size or device count.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxhp import _checks, train
from jaxhp import distributed as dist
from jaxhp.checkpoint import Checkpoint, sweep_spec
from jaxhp.records import Data, History, HParams, TrainConfig, TrainResult
from jaxhp.results import SweepResults
from jaxhp.space import Space, choice, grid, loguniform, random, refine, uniform

__all__ = [
    "Space",
    "choice",
    "grid",
    "loguniform",
    "random",
    "refine",
    "uniform",
    "member_key",
    "run_sweep",
    "estimate_member_bytes",
    "train_members",
    "use_cpu_cores",
    "vmap_width",
]

DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes for one chunk's live member state
_RESULT_FIELDS = ("stop_step", "best_step", "diverged")


def _train_block(seed, member_seeds, hparams, data, config, *, width: int, dropout: bool):
    """Train a block of members on one device: ``vmap(fit)`` over groups of ``width``
    members (``lax.map`` runs the groups one after another inside the same program)."""
    keys = jax.vmap(lambda s: member_key(seed, s))(member_seeds)

    def fit_member(member):
        key, hp = member
        if not dropout:  # a concrete keep_prob of 1 lets forward() skip the masks
            hp = hp._replace(keep_prob=1.0)
        return train.fit(key, hp, data, config)

    if width == 1:  # no vmap at all: a batch axis of 1 still gets slow batched matmuls
        return jax.lax.map(fit_member, (keys, hparams))
    return jax.lax.map(fit_member, (keys, hparams), batch_size=width)


def _sweep_program(seed, member_seeds, hparams, data, config, *, mesh, width, dropout=True):
    block = functools.partial(_train_block, config=config, width=width, dropout=dropout)
    by_member, replicated = PartitionSpec("members"), PartitionSpec()
    return jax.shard_map(
        block,
        mesh=mesh,
        in_specs=(replicated, by_member, by_member, replicated),
        out_specs=by_member,
        check_vma=False,
    )(seed, member_seeds, hparams, data)


_STATIC = ("mesh", "width", "dropout")
# LLVM at -O1 instead of -O2 on XLA:CPU: B1's sweep compiles in 1.4 s instead of 2.2 s and
# runs at the same speed (B1 and B2 measured; XLA's matmuls are library calls either way).
_CPU_PROGRAM = jax.jit(
    _sweep_program,
    static_argnames=_STATIC,
    compiler_options={"xla_backend_optimization_level": 1},
)
_PROGRAM = jax.jit(_sweep_program, static_argnames=_STATIC)


def sweep_program(mesh: Mesh):
    """The jitted sweep program for ``mesh``'s platform (``.lower`` it to inspect)."""
    return _CPU_PROGRAM if mesh.devices.flat[0].platform == "cpu" else _PROGRAM


def train_members(seed, member_seeds, hparams, data, config, *, mesh, width, dropout=True):
    """The sweep program: each device of ``mesh`` trains its share of the member axis
    (``shard_map``), ``width`` members at a time in one ``vmap(fit)``; data is replicated.
    Member i is ``fit(member_key(seed, member_seeds[i]), hparams[i], data, config)``; the
    keys are made inside the program (no separate compile for them)."""
    return sweep_program(mesh)(
        seed, member_seeds, hparams, data, config, mesh=mesh, width=width, dropout=dropout
    )


GROUP_WIDTH = 8  # members per vmap group for course-scale nets


def vmap_width(config: TrainConfig, m_train: int) -> int:
    """How many members one ``vmap`` trains together: a function of the config alone.

    Course-scale nets (tiny matmuls) gain from batching members into one set of kernels.
    Once one member's step is already a large matmul (here, more than 20 MFLOP), XLA's CPU
    batched matmuls run far below its plain matmul speed, so members are trained one after
    another at full matmul speed instead. The width never depends on the sweep's size, its
    chunking or the device count: a member's arithmetic (batched matmul shapes, hence
    rounding) is then the same however the sweep is run, so its results are bit-identical.
    """
    sizes = config.layer_sizes
    batch = config.batch_size or m_train
    step_flops = 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 1 if step_flops > 2e7 else GROUP_WIDTH


def use_cpu_cores(n: int | None = None) -> int:
    """Expose the CPU as ``n`` JAX devices (default: every core) so that sweeps shard their
    members over all cores.

    XLA runs the small per-member operations of a course-scale sweep on about one core;
    with one device per core the members' shards run side by side (1.6x on the B1 sweep on
    2 cores, see bench/). Call it right after ``import jax``, before any JAX computation;
    ``jaxhp sweep`` does so unless ``JAX_NUM_CPU_DEVICES`` or ``XLA_FLAGS`` already choose.

    Returns:
      The number of CPU devices requested.

    Raises:
      RuntimeError: when JAX's backend is already initialised.
    """
    n = (os.cpu_count() or 1) if n is None else int(n)
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError as err:
        raise RuntimeError(
            "use_cpu_cores must run before any JAX computation (right after import jax); "
            f"JAX has already started with {jax.device_count()} device(s)"
        ) from err
    return n


def member_key(seed: int, member_seed: int) -> jax.Array:
    """The PRNG key of a member: ``fold_in(key(seed), member_seed)``."""
    return jax.random.fold_in(jax.random.key(seed), member_seed)


def estimate_member_bytes(config: TrainConfig, m_train: int, m_dev: int) -> int:
    """An upper estimate of one member's live memory during training, in bytes.

    Counts 8 copies of the parameters (params, grads, best params, optimiser moments and
    the selects around them), 4 per unit of one batch's activations (pre-activation,
    activation, dropout mask and gradient) and 2 per unit of an evaluation over the train
    and dev sets. The dataset itself is shared by all members and not counted.
    """
    sizes = config.layer_sizes
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    units = sum(sizes[1:])
    batch = config.batch_size or m_train
    itemsize = jnp.dtype(config.dtype).itemsize
    return itemsize * (8 * n_params + 4 * batch * units + 2 * (m_train + m_dev) * units)


def _resolve_devices(devices) -> list:
    if devices is None:
        return jax.local_devices()
    if isinstance(devices, int):
        available = jax.local_devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices must be in [1, {len(available)}], got {devices}")
        return available[:devices]
    devices = list(devices)
    if not devices:
        raise ValueError("devices is empty")
    return devices


def _chunk_size(
    chunk_size, n_members: int, per_member: int, n_devices: int, budget: int, width: int
) -> int:
    """Members per chunk: a multiple of (device count x vmap width) that fits the budget, so
    every device trains whole vmap groups (padded with copies of a member)."""
    if chunk_size == "auto":
        fit_budget = max(1, budget // max(1, per_member))
        n_chunks = -(-n_members // fit_budget)
        size = -(-n_members // n_chunks)  # balance chunks so padding stays small
    elif (
        isinstance(chunk_size, (int, np.integer))
        and not isinstance(chunk_size, bool)
        and chunk_size > 0
    ):
        size = int(chunk_size)
    else:
        raise ValueError(f"chunk_size must be 'auto' or a positive int, got {chunk_size!r}")
    lanes = n_devices * width
    return -(-size // lanes) * lanes


def _flatten(result: TrainResult) -> dict[str, np.ndarray]:
    """The per-member arrays a sweep keeps (params are not kept: refit a member instead)."""
    host = jax.device_get((result.history, result.stop_step, result.best_step, result.diverged))
    history, *rest = host
    arrays = {f"history_{k}": np.asarray(v) for k, v in history._asdict().items()}
    arrays.update({k: np.asarray(v) for k, v in zip(_RESULT_FIELDS, rest)})
    return arrays


def _flat_shapes(config: TrainConfig, data: Data):
    """Name, (shape, dtype) of each per-member array ``_flatten`` produces."""
    shapes = jax.eval_shape(
        lambda: train.fit(jax.random.key(0), HParams(0.0, 1.0, 0.1), data, config)
    )
    for field, leaf in shapes.history._asdict().items():
        yield f"history_{field}", (leaf.shape, leaf.dtype)
    for field in _RESULT_FIELDS:
        leaf = getattr(shapes, field)
        yield field, (leaf.shape, leaf.dtype)


def _progress_bar(enabled: bool, total: int, n_chunks: int):
    if not (enabled and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, unit="member", desc=f"sweep ({n_chunks} chunks)", file=sys.stderr)


def _host_data(data: Data, config: TrainConfig) -> Data:
    """Train and dev sets as host arrays, inputs in the config's dtype (test is not used)."""
    dtype = np.dtype(config.dtype)
    dev = None if data.dev is None else (np.asarray(data.dev[0], dtype), np.asarray(data.dev[1]))
    return Data(train=(np.asarray(data.train[0], dtype), *map(np.asarray, data.train[1:])), dev=dev)


def _train_chunk(members, size, seeds, hparams, seed, shared, config, mesh, width):
    """Train one chunk (padded to ``size`` with copies of its first member); returns the
    members' result arrays and how many members each device held."""
    padded = np.concatenate([members, np.full(size - len(members), members[0])])
    member_seeds = np.asarray(seeds[padded], np.int32)
    chunk_hparams = HParams(*(np.asarray(v)[padded] for v in hparams))
    dropout = not bool(np.all(chunk_hparams.keep_prob == 1.0))
    by_member = NamedSharding(mesh, PartitionSpec("members"))
    member_seeds, chunk_hparams = jax.device_put((member_seeds, chunk_hparams), by_member)
    result = train_members(
        np.int32(seed),
        member_seeds,
        chunk_hparams,
        shared,
        config,
        mesh=mesh,
        width=width,
        dropout=dropout,
    )
    shard_counts = [s.data.shape[0] for s in result.stop_step.addressable_shards]
    return {k: v[: len(members)] for k, v in _flatten(result).items()}, shard_counts


def run_sweep(
    space: Space,
    data: Data,
    config: TrainConfig,
    *,
    seed: int = 0,
    base: HParams | None = None,
    chunk_size: int | str = "auto",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    devices=None,
    checkpoint=None,
    checkpoint_id: str | None = None,
    progress: bool = True,
    distributed: dist.Cluster | bool | None = None,
) -> SweepResults:
    """Train every member of ``space`` with one compiled ``vmap(fit)`` program.

    Members run in chunks of equal shape (the last one padded), so the sweep compiles once
    per chunk shape, never per value. With several devices the member axis of each chunk is
    sharded over a 1-D mesh (``NamedSharding``); the data is replicated, never copied per
    member.

    Args:
      space: a :class:`Space` (``jaxhp.sweep.grid``, ``random``, ``refine``, ...).
      data: :class:`jaxhp.Data`, shared by all members.
      config: static :class:`jaxhp.TrainConfig`, shared by all members.
      seed: base seed; member keys are ``member_key(seed, member_seed)``.
      base: values of the axes a member leaves out (``HParams()`` defaults when None).
      chunk_size: members per compiled call, or ``"auto"``: as many as fit
        ``memory_budget`` by :func:`estimate_member_bytes`, balanced across chunks.
        Rounded up to a multiple of the device count.
      memory_budget: bytes per chunk for the auto chunk size.
      devices: None (all of ``jax.devices()``), a count, or a list of devices.
      checkpoint: a folder; each finished chunk is written there atomically, and a re-run
        with the same arguments skips the members already finished. The folder records
        what the members compute (see :mod:`jaxhp.checkpoint`); damaged chunks are set
        aside with a warning and re-trained.
      checkpoint_id: a name for the training program, needed only when jaxhp cannot
        identify it from its compiled form (a Python callback inside the optimizer, model
        or augmentation); change it whenever the program changes.
      progress: show a progress bar (members and chunks) when stderr is a terminal.
      distributed: run over several processes (see :mod:`jaxhp.distributed`): a
        :class:`jaxhp.distributed.Cluster` to join (before any other JAX computation), or
        True once ``jaxhp.distributed.initialize`` has run. Each process trains a block of
        members on its local devices; every process returns the full results.

    Returns:
      :class:`jaxhp.SweepResults`; ``meta`` states the chunk size and memory estimate.

    Raises:
      ValueError: an empty space, an out-of-range member (named by index), bad data, a bad
        chunk size, a checkpoint path that is a file, a checkpoint written by a different
        sweep or jaxhp/JAX version, or a damaged checkpoint spec file.
    """
    started = time.perf_counter()
    if isinstance(distributed, dist.Cluster):
        dist.initialize(distributed)
    elif distributed and not jax.distributed.is_initialized():
        raise ValueError(
            "distributed=True needs jaxhp.distributed.initialize(Cluster(...)) "
            "first, or pass distributed=Cluster(...)"
        )
    n_processes, process = (jax.process_count(), jax.process_index()) if distributed else (1, 0)
    if not isinstance(space, Space):
        raise TypeError(f"space must be a jaxhp.sweep.Space (grid, random, ...), got {space!r}")
    data = Data(*data) if not isinstance(data, Data) else data
    base = HParams() if base is None else HParams(*base)
    hparams, seeds = space.compile(config.n_hidden, base)
    _checks.check_int32_seeds("seed", seed)
    _checks.check_int32_seeds("each member's seed", seeds)
    data = train.check_inputs(HParams(*(np.asarray(v)[0] for v in hparams)), data, config)
    shared = _host_data(data, config)
    n = len(space)
    m_train = shared.train[0].shape[0]
    m_dev = 0 if shared.dev is None else shared.dev[0].shape[0]
    devices = _resolve_devices(devices)
    per_member = estimate_member_bytes(config, m_train, m_dev)

    store = None
    done: dict[int, dict] = {}
    if checkpoint is not None or distributed:
        spec = sweep_spec(config, shared, hparams, seeds, seed, checkpoint_id=checkpoint_id)
    if distributed:
        dist.agree_on_spec(spec.digest)
    if checkpoint is not None:
        tag = f"p{process}-" if distributed else ""
        store = Checkpoint(checkpoint, spec, dict(_flat_shapes(config, shared)), tag=tag)
        done = store.load()
    if distributed:  # same pending set everywhere; no chunk written before all have read
        dist.agree_on_finished(done, checkpoint)
    pending = np.asarray([i for i in range(n) if i not in done], np.int64)
    mine = dist.assigned(pending, process, n_processes)
    width = vmap_width(config, m_train)
    size = _chunk_size(
        chunk_size, max(1, len(mine)), per_member, len(devices), memory_budget, width
    )
    chunks = [mine[i : i + size] for i in range(0, len(mine), size)]
    mesh = Mesh(np.asarray(devices), ("members",))
    shared = jax.device_put(shared, NamedSharding(mesh, PartitionSpec()))  # replicated

    bar = _progress_bar(progress and process == 0, n, len(chunks))
    if bar is not None:
        bar.update(len(done))
    shard_counts = None
    for number, members in enumerate(chunks, start=1):
        arrays, shard_counts = _train_chunk(
            members, size, seeds, hparams, seed, shared, config, mesh, width
        )
        if store is not None:
            store.save(members, arrays)
        for row, member in enumerate(members):
            done[int(member)] = {k: v[row] for k, v in arrays.items()}
        if bar is not None:
            bar.update(len(members))
            bar.set_postfix(chunk=f"{number}/{len(chunks)}")
    if bar is not None:
        bar.close()
    if distributed:
        counts = [len(dist.assigned(pending, p, n_processes)) for p in range(n_processes)]
        local = {
            k: np.stack([done[int(i)][k] for i in mine])
            if len(mine)
            else np.zeros((0, *shape), kind)
            for k, (shape, kind) in _flat_shapes(config, shared)
        }
        done.update(dist.gather_members(mine, local, counts))

    stacked = {k: np.stack([done[i][k] for i in range(n)]) for k in done[0]}
    history = History(**{f: stacked[f"history_{f}"] for f in History._fields})
    meta = {
        "members": n,
        "chunk_size": size,
        "vmap_width": width,
        "chunks_run": len(chunks),
        "members_from_checkpoint": n - len(pending),
        "memory_per_member_bytes": per_member,
        "memory_budget_bytes": memory_budget,
        "chunk_memory_estimate_bytes": per_member * size,
        "devices": [str(d) for d in devices],
        "members_per_device": shard_counts,
        "seed": seed,
        "processes": n_processes,
        "members_this_process": len(mine),
        "seconds": time.perf_counter() - started,
    }
    return SweepResults(
        hparams=HParams(*(np.asarray(v) for v in hparams)),
        seeds=seeds,
        history=history,
        stop_step=stacked["stop_step"],
        best_step=stacked["best_step"],
        diverged=stacked["diverged"].astype(bool),
        meta=meta,
    )
