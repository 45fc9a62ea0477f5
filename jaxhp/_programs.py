"""The compiled sweep programs: ``vmap(fit)`` over members inside a ``shard_map``.

Each device trains its share of a call's member lanes, ``width`` members at a time in one
``vmap``; the data is replicated. A member's key is made inside the program from the
sweep's seed and its own seed, so it never depends on its lane. Three programs use this
layout: the whole run (:func:`sweep_program`) and successive halving's advance to a rung
(``_ADVANCE``, the rung a traced argument).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from jaxhp import train
from jaxhp.records import Data, TrainConfig, TrainResult

_RESULT_FIELDS = ("stop_step", "best_step", "diverged")


class _Reporting:
    """Where a reporting sweep program's evaluations go: the caller's ``on_eval`` and the
    share of the running chunk's lanes that hold real members (the rest are padding)."""

    listener: Callable[[dict], None] | None = None
    real_share: float = 1.0


def _dispatch_eval(record: dict):
    """The one callback a reporting sweep program holds (so every caller's program is the
    same compiled one). Each lane's evaluation is passed on with ``weight``, the chunk's
    share of real lanes: the weights of a chunk's evaluations add up to its real ones."""
    if _Reporting.listener is not None:
        _Reporting.listener({**record, "weight": _Reporting.real_share})


def _per_member(one, seed, member_seeds, hparams, rest, *, width: int, dropout: bool):
    """``one(key, hparams, rest)`` for every member of a block on one device: ``vmap``
    over groups of ``width`` members (``lax.map`` runs the groups one after another inside
    the same program)."""
    keys = jax.vmap(lambda s: member_key(seed, s))(member_seeds)

    def member(args):
        key, hp, rest = args
        if not dropout:  # a concrete keep_prob of 1 lets forward() skip the masks
            hp = hp._replace(keep_prob=1.0)
        return one(key, hp, rest)

    if width == 1:  # no vmap at all: a batch axis of 1 still gets slow batched matmuls
        return jax.lax.map(member, (keys, hparams, rest))
    return jax.lax.map(member, (keys, hparams, rest), batch_size=width)


def _train_block(
    seed,
    member_seeds,
    hparams,
    data,
    config,
    *,
    width: int,
    dropout: bool,
    report: bool,
    keep_params: bool,
):
    """Train a block of members on one device: ``vmap(fit)``."""
    on_eval = _dispatch_eval if report else None

    def one(key, hp, _):
        result = train._fit(key, hp, data, config, on_eval, checked=True)
        return result if keep_params else _kept(result)

    return _per_member(one, seed, member_seeds, hparams, None, width=width, dropout=dropout)


def _advance_block(
    seed, member_seeds, hparams, data, progress, until, fresh, config, *, report, keep_best, **group
):
    """Successive halving: advance each member's progress up to evaluation ``until``, from
    its start when ``fresh`` (then ``progress`` is a placeholder). Both are traced, so one
    program serves every rung. ``keep_best``: the progress tracks the best params;
    ``group``: the ``width`` and ``dropout`` of :func:`_per_member`."""
    on_eval = _dispatch_eval if report else None

    def one(key, hp, member_progress):
        run, carry = train._start(key, hp, data, config, checked=True)
        # A cond, not a select of every leaf: fresh is the same for all lanes, and each
        # leaf's select would be a kernel of its own to compile.
        member_progress = jax.lax.cond(
            fresh, lambda: train._begin(run, carry, keep_best), lambda: member_progress
        )
        return train._advance(run, member_progress, until, on_eval)

    return _per_member(one, seed, member_seeds, hparams, progress, **group)


def _on_devices(block, mesh: Mesh, by_member: tuple[bool, ...], *args):
    """``block`` on each device of ``mesh``: arguments marked in ``by_member`` are split
    along the member axis, the others replicated; the outputs are split by member."""
    specs = tuple(PartitionSpec("members") if split else PartitionSpec() for split in by_member)
    return jax.shard_map(
        block, mesh=mesh, in_specs=specs, out_specs=PartitionSpec("members"), check_vma=False
    )(*args)


def _sweep_program(
    seed,
    member_seeds,
    hparams,
    data,
    config,
    *,
    mesh,
    width,
    dropout=True,
    report=False,
    keep_params=False,
):
    block = functools.partial(
        _train_block,
        config=config,
        width=width,
        dropout=dropout,
        report=report,
        keep_params=keep_params,
    )
    split = (False, True, True, False)
    return _on_devices(block, mesh, split, seed, member_seeds, hparams, data)


def _advance_program(
    seed,
    member_seeds,
    hparams,
    data,
    progress,
    until,
    fresh,
    config,
    *,
    mesh,
    width,
    dropout,
    report,
    keep_best=False,
):
    block = functools.partial(
        _advance_block,
        config=config,
        width=width,
        dropout=dropout,
        report=report,
        keep_best=keep_best,
    )
    split = (False, True, True, False, True, False, False)
    args = (seed, member_seeds, hparams, data, progress, until, fresh)
    return _on_devices(block, mesh, split, *args)


_STATIC = ("mesh", "width", "dropout", "report")


def _cpu_options() -> dict:
    """LLVM at -O1 instead of -O2 on XLA:CPU: B1's sweep compiles in 1.4 s instead of 2.2 s
    and runs at the same speed (B1 and B2 measured; XLA's matmuls are library calls either
    way). A level chosen in ``XLA_FLAGS`` wins (the test suite compiles at -O0)."""
    if "--xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
        return {}
    return {"xla_backend_optimization_level": 1}


_CPU_OPTIONS = _cpu_options()
# A model whose convolutions run as patch x kernel matmuls (jaxhp._conv) is compiled
# without YNNPACK's fusions: their small-contraction dots and pooling windows run about 2x
# slower than XLA's own kernels (bench B4: 2.4 s against 3.3 s steady). The MLP's batched
# dots are the other way round (B1: 4.2 s with them, 7.4 s without), so they keep them.
_CONV_CPU_OPTIONS = {**_CPU_OPTIONS, "xla_cpu_experimental_ynn_fusion_type": ""}


def _by_platform(program, static=_STATIC) -> dict:
    return {
        "cpu": jax.jit(program, static_argnames=static, compiler_options=_CPU_OPTIONS),
        "cpu-conv": jax.jit(program, static_argnames=static, compiler_options=_CONV_CPU_OPTIONS),
        "other": jax.jit(program, static_argnames=static),
    }


_SWEEP = _by_platform(_sweep_program, (*_STATIC, "keep_params"))
_ADVANCE = _by_platform(_advance_program, (*_STATIC, "keep_best"))


def _platform(mesh: Mesh, convolves: bool) -> str:
    if mesh.devices.flat[0].platform != "cpu":
        return "other"
    return "cpu-conv" if convolves else "cpu"


def sweep_program(mesh: Mesh, convolves: bool = False):
    """The jitted sweep program for ``mesh``'s platform (``.lower`` it to inspect);
    ``convolves``: the model's convolutions run as matmuls (see ``_CONV_CPU_OPTIONS``)."""
    return _SWEEP[_platform(mesh, convolves)]


def advance_program(mesh: Mesh, convolves: bool = False):
    """The jitted halving program (advance members to a rung) for ``mesh``'s platform."""
    return _ADVANCE[_platform(mesh, convolves)]


def _train_members(seed, member_seeds, hparams, data, config, *, mesh, convolves=False, **options):
    """The sweep program: each device of ``mesh`` trains its share of the member axis
    (``shard_map``), ``width`` members at a time in one ``vmap(fit)``; data is replicated.
    Member i is ``fit(member_key(seed, member_seeds[i]), hparams[i], data, config)``; the
    keys are made inside the program (no separate compile for them). ``options``: the
    program's static ``width``, ``dropout``, ``report`` and ``keep_params`` (the results
    hold the params too: a refit; a sweep leaves them out)."""
    program = sweep_program(mesh, convolves)
    return program(seed, member_seeds, hparams, data, config, mesh=mesh, **options)


def member_key(seed: int, member_seed: int) -> jax.Array:
    """The PRNG key of a member: ``fold_in(key(seed), member_seed)``."""
    return jax.random.fold_in(jax.random.key(seed), member_seed)


def _kept(result: TrainResult) -> TrainResult:
    """What a sweep keeps of a member's result: not its params (refit a member instead).
    Left out of the program's outputs, the params and the best-params bookkeeping are not
    compiled at all (XLA drops what no output reads): fewer kernels, a faster compile."""
    return result._replace(params=None, best_params=None)


def _flatten(result: TrainResult) -> dict[str, np.ndarray]:
    """The per-member arrays a sweep keeps (params are not kept: refit a member instead)."""
    host = jax.device_get((result.history, result.stop_step, result.best_step, result.diverged))
    history, *rest = host
    arrays = {f"history_{k}": np.asarray(v) for k, v in history._asdict().items()}
    arrays.update({k: np.asarray(v) for k, v in zip(_RESULT_FIELDS, rest)})
    return arrays


def _host_data(data: Data, config: TrainConfig) -> Data:
    """Train and dev sets as host arrays, inputs in the config's ``x_dtype`` (test is not
    used)."""
    dtype = config.x_dtype
    dev = None if data.dev is None else (np.asarray(data.dev[0], dtype), np.asarray(data.dev[1]))
    return Data(train=(np.asarray(data.train[0], dtype), *map(np.asarray, data.train[1:])), dev=dev)


def _lanes(members: np.ndarray, size: int, n_devices: int, width: int):
    """Spread a chunk's members over the devices, each device's share padded to whole vmap
    groups of ``width`` (copies of the first member). The lane count depends only on the
    chunk size, so a short last chunk reuses the compiled program.

    Returns:
      the member index of every lane, the lanes holding real members (in ``members``'
      order), and each device's count of real members.
    """
    shares = np.array_split(members, n_devices)
    per_device = -(-size // n_devices // width) * width
    lanes = np.concatenate(
        [np.concatenate([s, np.full(per_device - len(s), members[0])]) for s in shares]
    )
    real = np.concatenate([d * per_device + np.arange(len(s)) for d, s in enumerate(shares)])
    return lanes, real, [len(s) for s in shares]
