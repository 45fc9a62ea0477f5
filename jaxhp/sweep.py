"""Vectorised hyperparameter sweeps: ``vmap(fit)`` over members, in chunks, over devices.

The compiled programs live in :mod:`jaxhp._programs`: ``vmap(fit)`` over (key, hparams)
with the data and config shared, inside a ``shard_map`` so each device trains its share of
the members. ``run_sweep`` reads as plan → run → gather: :func:`_plan` groups the members
by their static axes (one TrainConfig, hence one compiled program, per group), validates
them and sizes the chunks; :func:`_run` trains the pending chunks (checkpointing each), or
:func:`jaxhp.halving.train_rungs` trains them rung by rung; and :func:`_gather` assembles
one results table.

Reproducibility guarantee. Member i is trained by ``fit(member_key(seed, seeds[i]),
hparams[i], data, config)``; its key depends on its own seed only, never on its position.
Its results are bit-identical whatever the sweep's size, order, chunk size or device count
(the vmap width depends on the config alone, or is the one ``vmap_width`` chooses), and
equal that standalone ``fit`` to float rounding; :func:`refit` trains it again in the same
program, bit for bit.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxhp import _checks, _warn, train
from jaxhp import distributed as dist
from jaxhp import halving as successive_halving
from jaxhp._conv import has_primitive
from jaxhp._programs import (
    _RESULT_FIELDS,
    _flatten,
    _host_data,
    _lanes,
    _Reporting,
    _train_members,
    advance_program,
    member_key,
)
from jaxhp.checkpoint import Checkpoint, data_digest, sweep_spec
from jaxhp.diagnose import at_chance, majority_error
from jaxhp.halving import Halving, halving
from jaxhp.records import (
    OPTIMIZER_HPARAMS,
    Data,
    History,
    HParams,
    TrainConfig,
    TrainResult,
    config_record,
    read_names,
)
from jaxhp.results import SweepResults
from jaxhp.space import (
    Space,
    choice,
    grid,
    loguniform,
    one_minus_loguniform,
    random,
    refine,
    uniform,
)

__all__ = [
    "Halving",
    "halving",
    "Space",
    "choice",
    "grid",
    "loguniform",
    "one_minus_loguniform",
    "random",
    "refine",
    "uniform",
    "member_key",
    "refit",
    "refit_together",
    "run_sweep",
    "estimate_member_bytes",
    "use_cpu_cores",
]

DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes for one chunk's live member state on the CPU


GROUP_WIDTH = 8  # members per vmap group for course-scale nets on the CPU
# On a GPU or TPU a course-scale step is a handful of kernels whatever its width, so members
# are batched wide: up to this many per group, until one group's step reaches about
# ACCELERATOR_GROUP_FLOPS (enough work to fill the card) or a quarter of the device's memory.
ACCELERATOR_GROUP_WIDTH = 64
ACCELERATOR_GROUP_FLOPS = 8e9


def _step_flops(config: TrainConfig, m_train: int) -> float | None:
    """Multiply-add FLOPs of one member's training step (forward and backward) of the
    ``layer_sizes`` MLP; None for a ``model=``, whose cost jaxhp does not know."""
    sizes = config.layer_sizes
    if sizes is None:
        return None
    batch = config.batch_size or m_train
    return 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _vmap_width(
    config: TrainConfig,
    m_train: int,
    example_shape: tuple | None = None,
    hparams: HParams | None = None,
    *,
    platform: str = "cpu",
    per_member: int = 0,
    device_bytes: int | None = None,
) -> int:
    """How many members one ``vmap`` trains together: a function of the config and the kind
    of device alone.

    On the CPU, course-scale nets (tiny matmuls) gain from batching members into one set of
    kernels. Once one member's step is already a large matmul (here, more than 20 MFLOP),
    XLA's CPU batched matmuls run far below its plain matmul speed, so members are trained
    one after another at full matmul speed instead. A model other than the ``layer_sizes``
    MLP is batched, unless it convolves on the CPU (:func:`_convolves`, given the shape of
    one example): jaxhp computes its convolutions as patch x kernel matmuls there
    (:mod:`jaxhp._conv`), and with every member's patches and kernels different, batched
    matmuls run slower per member than one member after another.

    On an accelerator (``platform`` other than "cpu") the width is
    ``ACCELERATOR_GROUP_WIDTH``, halved while one group's step exceeds
    ``ACCELERATOR_GROUP_FLOPS`` or a quarter of ``device_bytes`` (one device's memory) at
    ``per_member`` bytes a member.

    The width never depends on the sweep's size, its chunking or the device count: a
    member's arithmetic (batched shapes, hence rounding) is then the same however the sweep
    is run, so its results are bit-identical.
    """
    flops = _step_flops(config, m_train)
    if platform != "cpu":
        width = ACCELERATOR_GROUP_WIDTH
        while width > 1 and (
            (flops or 0) * width > ACCELERATOR_GROUP_FLOPS
            or (device_bytes is not None and per_member * width > device_bytes // 4)
        ):
            width //= 2
        return width
    if flops is None:
        convolves = example_shape is not None and _convolves(config, example_shape, hparams)
        return 1 if convolves else GROUP_WIDTH
    return 1 if flops > 2e7 else GROUP_WIDTH


def _device_bytes(devices: list) -> int | None:
    """The smallest memory limit among ``devices`` (what XLA's allocator may use), or None
    where the backend does not report one (the CPU)."""
    limits = []
    for device in devices:
        try:
            stats = device.memory_stats()
        except (NotImplementedError, jax.errors.JaxRuntimeError):  # no statistics there
            return None
        if not stats or "bytes_limit" not in stats:
            return None
        limits.append(int(stats["bytes_limit"]))
    return min(limits) if limits else None


def _host_bytes() -> int | None:
    """The machine's physical memory (what CPU devices share), or None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_vmap_width(vmap_width) -> None:
    if vmap_width is None:
        return
    if isinstance(vmap_width, bool) or not isinstance(vmap_width, (int, np.integer)):
        raise TypeError(
            f"vmap_width must be None (jaxhp's rule) or a positive int, got {vmap_width!r}"
        )
    if vmap_width < 1:
        raise ValueError(
            f"vmap_width must be None (jaxhp's rule) or a positive int, got {vmap_width}"
        )


def _check_one_member_fits(per_member: int, limit: int | None, rows: int) -> None:
    """Refuse, before anything compiles, a sweep whose single member would not fit in the
    device's memory (XLA would run out of it minutes later, with a traceback)."""
    if limit is not None and per_member > limit:
        raise ValueError(
            f"one member needs about {_size(per_member)} (each evaluation passes over all "
            f"{rows:,} train and dev rows at once), more than the {_size(limit)} of memory "
            "here; train on fewer rows"
        )


def _check_chosen_width(
    width: int, per_member: int, limit: int | None, n_members: int, n_devices: int
):
    """A ``vmap_width`` the user chose: one group of it must fit in memory; lanes beyond the
    members each device trains are padding, computed and thrown away."""
    if limit is not None and per_member * width > limit:
        raise ValueError(
            f"vmap_width={width}: one vmap group of {width} members needs about "
            f"{_size(per_member * width)} ({_size(per_member)} each), more than the "
            f"{_size(limit)} of memory per device here; at most {max(1, limit // per_member):,} fit"
        )
    share = -(-n_members // n_devices)  # members per device
    if width > share:
        where = (
            f"the {n_members} members trained together (one static group)"
            if n_devices == 1
            else f"the {share} members each of {n_devices} devices trains of this static group"
        )
        _warn.warn(
            f"vmap_width={width} is more than {where}: {width - share} of its lanes are "
            f"padding, computed and thrown away; a width of {share} or less trains them sooner"
        )


def _size(n_bytes: float) -> str:
    """57.6 GB, 5.1 kB: bytes in the unit that reads best."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


def _memory_budget(memory_budget, devices: list) -> int | float:
    """Bytes per chunk: the user's number, or for "auto" half of every device's memory on an
    accelerator (the card's size decides the chunk) and DEFAULT_MEMORY_BUDGET on the CPU."""
    if isinstance(memory_budget, str) and memory_budget == "auto":
        device_bytes = _device_bytes(devices)
        if device_bytes is None:
            return DEFAULT_MEMORY_BUDGET
        return device_bytes // 2 * len(devices)
    if (
        isinstance(memory_budget, bool)
        or not isinstance(memory_budget, (int, float, np.integer, np.floating))
        or not (memory_budget > 0)
    ):
        raise ValueError(
            f"memory_budget must be 'auto' or a number of bytes > 0, got {memory_budget!r}"
        )
    return memory_budget.item() if isinstance(memory_budget, np.generic) else memory_budget


def _convolves_on_cpu(config: TrainConfig, example_shape: tuple | None, hparams) -> bool:
    """Does jaxhp train this model's convolutions as patch x kernel matmuls (a ``model=``
    that convolves, on the CPU)? Such sweeps run one member per vmap and compile with
    other options (``_programs._CONV_CPU_OPTIONS``)."""
    if config.layer_sizes is not None or example_shape is None:
        return False
    return jax.default_backend() == "cpu" and _convolves(config, example_shape, hparams)


def _convolves(config: TrainConfig, example_shape: tuple, hparams: HParams | None) -> bool:
    """Does the model's evaluation pass on examples of ``example_shape`` run a convolution?
    Traced abstractly (no arithmetic) with ``hparams`` (one member's: only their names
    matter), or the default :class:`HParams`."""
    model = config.resolved_model
    hparams = HParams() if hparams is None else hparams
    params = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((1, *example_shape), config.x_dtype)
    try:
        jaxpr = jax.make_jaxpr(lambda p, xb: model.apply(p, xb, key=None, hparams=hparams))(
            params, x
        )
    except AttributeError:  # a name the hparams lack: the model is checked elsewhere
        return False
    return has_primitive(jaxpr.jaxpr, "conv_general_dilated")


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


def estimate_member_bytes(
    config: TrainConfig, m_train: int, m_dev: int, *, example_shape: tuple = ()
) -> int:
    """An upper estimate of one member's live memory during training, in bytes.

    Counts 8 copies of the parameters (params, grads, best params, optimiser moments and
    the selects around them), 4 per unit of one batch's activations (pre-activation,
    activation, dropout mask and gradient) and 2 per unit of an evaluation over the train
    and dev sets. The dataset itself is shared by all members and not counted. For a model
    other than the ``layer_sizes`` MLP the activations are not known: they are taken as 16
    values per input value of ``example_shape`` (a rough guess; set ``chunk_size`` when it
    matters).
    """
    if config.layer_sizes is None:
        params = jax.eval_shape(config.resolved_model.init, jax.random.key(0))
        n_params = sum(leaf.size for leaf in jax.tree.leaves(params))
        units = 16 * int(np.prod(example_shape, dtype=np.int64))
        batch = config.batch_size or m_train
        itemsize = jnp.dtype(config.dtype).itemsize
        return itemsize * (8 * n_params + 4 * batch * units + 2 * (m_train + m_dev) * units)
    sizes = config.layer_sizes
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    units = sum(sizes[1:])
    batch = config.batch_size or m_train
    itemsize = jnp.dtype(config.dtype).itemsize
    return itemsize * (8 * n_params + 4 * batch * units + 2 * (m_train + m_dev) * units)


def _resolve_devices(devices) -> list:
    if devices is None:
        return jax.local_devices()
    if isinstance(devices, (str, bytes)) or not isinstance(devices, (int, list, tuple)):
        raise TypeError(
            f"devices must be None, a count or a list of jax devices (e.g. "
            f"jax.devices('cpu')), got {devices!r}"
        )
    if isinstance(devices, bool):
        raise TypeError(f"devices must be None, a count or a list of jax devices, got {devices!r}")
    if isinstance(devices, int):
        available = jax.local_devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices must be in [1, {len(available)}], got {devices}")
        return available[:devices]
    devices = list(devices)
    if not devices:
        raise ValueError("devices is empty")
    if not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(f"devices must hold jax devices (jax.devices()), got {devices!r}")
    return devices


def _chunk_size(
    chunk_size, n_members: int, per_member: int, n_devices: int, budget: int, width: int
) -> int:
    """Members per chunk, a multiple of the device count. ``"auto"`` fits the budget and
    rounds up to whole vmap groups on every device (``n_devices * width``)."""
    if chunk_size == "auto":
        fit_budget = max(1, budget // max(1, per_member))
        n_chunks = -(-n_members // fit_budget)
        size = -(-n_members // n_chunks)  # balance chunks so padding stays small
        return -(-size // (n_devices * width)) * n_devices * width
    if (
        isinstance(chunk_size, (int, np.integer))
        and not isinstance(chunk_size, bool)
        and chunk_size > 0
    ):
        return -(-int(chunk_size) // n_devices) * n_devices
    raise ValueError(f"chunk_size must be 'auto' or a positive int, got {chunk_size!r}")


def _flat_shapes(config: TrainConfig, data: Data, hparams: HParams):
    """Name, (shape, dtype) of each per-member array ``_flatten`` produces (the sweep has
    checked the inputs)."""
    key = jax.random.key(0)
    shapes = jax.eval_shape(lambda: train._fit(key, hparams, data, config, None, checked=True))
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


def _train_chunk(members, group: _Group, plan: _Plan, shared, mesh, report):
    """Train one chunk of at most ``group.size`` of the group's members; returns the
    members' result arrays and how many members each device trained."""
    lanes, real, counts = _lanes(members, group.size, mesh.devices.size, group.width)
    _Reporting.real_share = len(members) / len(lanes)
    member_seeds = np.asarray(plan.seeds[lanes], np.int32)
    chunk_hparams = jax.tree.map(lambda v: np.asarray(v)[lanes], plan.hparams)
    dropout = not bool(np.all(chunk_hparams.keep_prob == 1.0))
    by_member = NamedSharding(mesh, PartitionSpec("members"))
    member_seeds, chunk_hparams = jax.device_put((member_seeds, chunk_hparams), by_member)
    with train.hyperparameters_traced():
        result = _train_members(
            np.int32(plan.seed),
            member_seeds,
            chunk_hparams,
            shared,
            group.config,
            mesh=mesh,
            width=group.width,
            dropout=dropout,
            report=report,
            convolves=group.convolves,
        )
    return {k: v[real] for k, v in _flatten(result).items()}, counts


class _Group(NamedTuple):
    """Members that share their static values, hence one config and one program."""

    static: dict[str, Any]  # the static axes' values
    config: TrainConfig
    members: np.ndarray  # indices into the space (all of the group's members)
    mine: np.ndarray  # the pending members this process trains
    pending: np.ndarray  # the group's pending members (all processes)
    size: int  # members per chunk
    width: int  # members per vmap
    convolves: bool  # convolutions as matmuls on the CPU (see _convolves_on_cpu)
    per_member: int  # estimated bytes


class _Plan(NamedTuple):
    n: int
    seed: int
    seeds: np.ndarray
    hparams: HParams  # numpy, (N, ...) leaves
    static: dict[str, list]  # static axis -> per-member values
    groups: list[_Group]
    data: Data  # validated, host arrays
    devices: list
    store: Checkpoint | None
    done: dict[int, dict]
    n_processes: int
    process: int
    points: np.ndarray  # each member's configuration: members that differ only in seed share it
    memory_budget: int | float  # bytes per chunk, "auto" resolved
    config: TrainConfig  # as given (static axes replace its fields per group)
    vmap_width: int | None  # as given (None: jaxhp's rule)


def _points(space: Space) -> np.ndarray:
    """Each member's configuration number (in order of appearance); seeds share it."""
    numbers: dict[tuple, int] = {}
    keys = [tuple(sorted((k, repr(v)) for k, v in m.items() if k != "seed")) for m in space.members]
    return np.asarray([numbers.setdefault(key, len(numbers)) for key in keys], np.int64)


def _group_configs(space: Space, config: TrainConfig) -> dict[tuple, tuple[TrainConfig, list]]:
    """Static values -> (the group's config, its member indices), in order of appearance."""
    axes = space.static_axes()
    groups: dict[tuple, tuple[TrainConfig, list]] = {}
    for i, member in enumerate(space.members):
        values = tuple(member.get(a, getattr(config, a)) for a in axes)
        if values not in groups:
            static = dict(zip(axes, values))
            try:
                group_config = config.replace(**static) if static else config
            except (TypeError, ValueError) as err:
                raise type(err)(
                    f"member {i} of the sweep has an invalid static value {static}: {err}"
                ) from err
            groups[values] = (group_config, [])
        groups[values][1].append(i)
    return groups


def _check_group(config, data, hparams, members, static) -> tuple[Data, set[str]]:
    """Validate the data and a member's hparams against the group's config; returns the
    data and the hparams names the model's apply and the optimizer factory read."""
    first = int(members[0])
    member_hp = jax.tree.map(lambda v: np.asarray(v)[first], hparams)
    keep = np.asarray(hparams.keep_prob)
    if keep.ndim == 2 and config.n_hidden is not None and keep.shape[1] != config.n_hidden:
        raise ValueError(
            f"keep_prob has {keep.shape[1]} values but the network has {config.n_hidden} "
            f"hidden layer(s) (member {first} of the sweep)"
        )
    with read_names() as read:  # check_inputs traces the model's apply and the optimizer
        if not static:
            return train.check_inputs(member_hp, data, config), read
        try:
            return train.check_inputs(member_hp, data, config), read
        except (TypeError, ValueError) as err:
            raise type(err)(f"member {first} of the sweep ({static}): {err}") from err


def _names_read(config: TrainConfig, read: set[str]) -> set[str]:
    """The names a group reads: ``read`` (by its model's apply and its optimizer factory,
    see ``_check_group``) and those its loss, built-in MLP or optimizer read."""
    read = read | {"lambd"}  # the loss's L2 term
    if config.model is None:
        read.add("keep_prob")  # the layer_sizes MLP's dropout
    if isinstance(config.optimizer, str):
        read.add("learning_rate")
    return read


def _check_names_are_read(space: Space, read: set[str]):
    """A swept name that no group reads (see :func:`_names_read`) is a typo (error) or an
    axis that does nothing (a course name: warning), e.g. keep_prob for a model without
    dropout."""
    swept = dict.fromkeys(
        k for m in space.members for k in m if k != "seed" and k not in space.static_axes()
    )
    course = ("lambd", "keep_prob", "learning_rate")
    for name in swept:
        if name in read:
            continue
        known = ", ".join(map(repr, sorted(read))) or "none"
        if name in course:
            hint = {
                "keep_prob": "; a model's dropout reads it through jaxhp.dropout(key, a, "
                "hparams.keep_prob) (Flax's and Equinox's Dropout layers keep their own "
                "fixed rate)",
                "learning_rate": "; the optimizer factory reads no hyperparameter: write it "
                "as lambda hp: optax.sgd(hp.learning_rate) or lambda lr: optax.sgd(lr)",
            }.get(name, "")
            _warn.warn(
                f"the sweep's axis {name!r} does nothing: neither the model, the optimizer "
                f"nor the loss reads it (they read {known}){hint}"
            )
        else:
            raise ValueError(
                f"unknown axis {name!r}: neither the model, the optimizer nor the loss reads "
                f"it (they read {known}); check its spelling, or {_reader_hint(name)}"
            )


def _check_seeds_reach_init(space: Space, configs: list) -> None:
    """Seeds of a model whose init ignores its key (from_flax or from_equinox given a
    module instance) differ only in dropout masks and batch order: their std is not the
    init-to-init spread a user reads it as."""
    seeds = {m.get("seed", 0) for m in space.members}
    one_init = any(getattr(c.resolved_model.init, "ignores_key", False) for c in configs)
    if len(seeds) > 1 and one_init:
        _warn.warn(
            f"the sweep has {len(seeds)} seeds, but its model's init returns the same params "
            "for every key (from_flax or from_equinox was given a module instance), so the "
            "seeds differ only in dropout masks and batch order, and their std leaves out "
            "the spread of initialisations; pass a function key -> module instead"
        )


def _reader_hint(name: str) -> str:
    """Where an unread axis would be read: the built-in optimizer that reads it, or a
    factory that reads it."""
    for optimizer, own in OPTIMIZER_HPARAMS.items():
        if name in own:
            return f"use optimizer={optimizer!r}, which reads hparams.{name}"
    return (
        f"use a model, or an optimizer factory of hp, that reads hparams.{name} (a factory "
        "of one number, such as optax.inject_hyperparams(optax.adamw), receives the "
        f"learning rate only): lambda hp: optax.adamw(hp.learning_rate, weight_decay=hp.{name})"
    )


def _program_notes(schedule, widths: list, *, split: bool) -> dict:
    """What changes what the programs compute, or for how long, beyond the configs: the
    checkpoint identity hashes it. ``split``: the program runs over several devices, which
    XLA compiles through its partitioner and may round differently (see
    :func:`_devices_like_the_sweeps`)."""
    notes = {
        "schedule": repr(schedule) if schedule is not None else "every member to the end",
        "vmap width": widths,
        "split over devices": split,
    }
    if schedule is not None:  # rung checkpoints hold each member's progress: its layout
        notes["progress"] = "without best params"
    return notes


def _check_schedule(schedule, configs: list, space: Space, data: Data):
    """A halving schedule needs one rung layout for every group, and a rung on an
    evaluation (checked by ``halving.rungs``); a first rung of a few steps, chosen by
    default, is worth a warning."""
    if not isinstance(schedule, Halving):
        raise TypeError(
            f"schedule must be None or jaxhp.sweep.halving(eta, min_steps), got {schedule!r}"
        )
    layouts = {(c.steps, c.every) for c in configs}
    if len(layouts) > 1:
        raise ValueError(
            "halving needs the same steps and eval_every in every static group (rungs are "
            f"shared), got (steps, eval_every) = {sorted(layouts)}"
        )
    steps, every = configs[0].steps, configs[0].every
    n_points = len(np.unique(_points(space)))
    rungs = successive_halving.rungs(schedule, n_points, steps, every)
    first = rungs[0].step
    if len(rungs) == 1 and n_points > 1:
        _warn.warn(
            f"successive halving has one rung here ({n_points} configurations, first rung at "
            f"{first} of {steps} steps, eta {schedule.eta:g}; a rung within a factor "
            f"sqrt(eta) of the end is merged into it): every member trains to the end, as "
            "in a full sweep; give a smaller min_steps"
        )
    if schedule.min_steps is None and first < min(10, steps):
        suggest = min(steps, -(-10 // every) * every)
        _warn.warn(
            f"successive halving ranks its {n_points} configurations first after {first} of "
            f"{steps} steps (the first rung chosen for eta {schedule.eta:g}): so early they "
            "differ mostly by their initialisation; give min_steps (jaxhp sweep --min-steps), "
            f"e.g. {suggest}, or train for more steps"
        )
    if data.dev is None:
        _warn.warn(
            "halving without dev data ranks the members at each rung by their training cost "
            "(and the dev_* columns repeat the training set's metrics)"
        )


def _expected_arrays(configs: list, host: Data, hparams: HParams) -> dict[str, tuple]:
    """Name -> (shape, dtype) of each per-member array a checkpoint chunk holds; a length
    that differs between static groups (a ``steps`` axis) is None: any length."""
    first_hp = jax.tree.map(lambda v: np.asarray(v)[0], hparams)
    shapes = [dict(_flat_shapes(c, _host_data(host, c), first_hp)) for c in configs]
    expected = {}
    for name, (shape, dtype) in shapes[0].items():
        others = [s[name][0] for s in shapes[1:]]
        expected[name] = (
            tuple(d if all(o[i] == d for o in others) else None for i, d in enumerate(shape)),
            dtype,
        )
    return expected


def _plan(
    space,
    data,
    config,
    *,
    seed,
    base,
    chunk_size,
    memory_budget,
    devices,
    checkpoint,
    checkpoint_id,
    distributed,
    schedule=None,
    vmap_width=None,
) -> _Plan:
    """Validate everything, group the members by static values, read the checkpoint and
    size each group's chunks; nothing is compiled yet."""
    if not isinstance(space, Space):
        raise TypeError(f"space must be a jaxhp.sweep.Space (grid, random, ...), got {space!r}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a jaxhp.TrainConfig, got {type(config).__name__}")
    _check_vmap_width(vmap_width)
    n_processes, process = (jax.process_count(), jax.process_index()) if distributed else (1, 0)
    base = HParams() if base is None else HParams.coerce(base, name="base")
    _checks.check_int32_seeds("seed", seed)
    configs = _group_configs(space, config)
    n_hidden = config.n_hidden if "layer_sizes" not in space.static_axes() else None
    hparams, seeds = space.compile(n_hidden, base)
    _checks.check_int32_seeds("each member's seed", seeds)
    devices = _resolve_devices(devices)
    memory_budget = _memory_budget(memory_budget, devices)
    device_bytes = _device_bytes(devices)
    checked, read = [], set()
    for key, (group_config, members) in configs.items():
        static = dict(zip(space.static_axes(), key))
        group_data, group_read = _check_group(group_config, data, hparams, members, static)
        checked.append((group_data, group_config, key, members))
        read |= _names_read(group_config, group_read)  # a name any group reads is used
    _check_names_are_read(space, read)
    _check_seeds_reach_init(space, [c for _, c, _, _ in checked])
    train._check_names_read(base, read, label="base")
    if schedule is not None:
        _check_schedule(schedule, [c for _, c, _, _ in checked], space, checked[0][0])
    elif checked[0][0].dev is None:
        _warn.warn(
            "data has no dev set: the dev_* columns repeat the training set's metrics, so "
            "the ranking rewards fitting the training set, not generalising; hold some "
            "examples out: jaxhp.data.split(x, y, key=0).data()"
        )
    host = _host_data(checked[0][0], config)
    n = len(space)
    m_train = host.train[0].shape[0]
    m_dev = 0 if host.dev is None else host.dev[0].shape[0]
    example_shape = host.train[0].shape[1:]
    sizing = []  # each group's bytes per member, vmap width and first hparams (the width
    # enters the checkpoint's spec)
    for _, group_config, _, members in checked:
        per_member = estimate_member_bytes(
            group_config, m_train, m_dev, example_shape=example_shape
        )
        limit = device_bytes or _host_bytes()
        _check_one_member_fits(per_member, limit, m_train + m_dev)
        first_hp = jax.tree.map(lambda v: np.asarray(v)[int(members[0])], hparams)
        if vmap_width is None:
            width = _vmap_width(
                group_config,
                m_train,
                example_shape,
                first_hp,
                platform=devices[0].platform,
                per_member=per_member,
                device_bytes=device_bytes,
            )
        else:
            width = int(vmap_width)
            # CPU devices share the host's memory, each training a group at once
            per_device = device_bytes or (limit and limit // len(devices))
            _check_chosen_width(width, per_member, per_device, len(members), len(devices))
        sizing.append((per_member, width, first_hp))

    store, done = None, {}
    if checkpoint is not None or distributed:
        group_of = np.zeros(n, np.int64)  # which static group (hence program) each member is in
        for number, (*_, members) in enumerate(checked):
            group_of[members] = number
        spec = sweep_spec(
            [group_config for _, group_config, _, _ in checked],
            host,
            hparams,
            seeds,
            seed,
            static={"group": group_of.tolist()},
            checkpoint_id=checkpoint_id,
            program_notes=_program_notes(
                schedule, [width for _, width, _ in sizing], split=len(devices) > 1
            ),
        )
    if distributed:
        dist.agree_on_spec(spec.digest)
    if checkpoint is not None:
        tag = f"p{process}-" if distributed else ""
        expected = _expected_arrays([c for _, c, _, _ in checked], host, hparams)
        store = Checkpoint(checkpoint, spec, expected, tag=tag)
        done = store.load()
    if distributed:  # same pending set everywhere; no chunk written before all have read
        dist.agree_on_finished(done, checkpoint)

    groups = []
    for (_, group_config, key, members), (per_member, width, first_hp) in zip(checked, sizing):
        members = np.asarray(members, np.int64)
        pending = np.asarray([i for i in members if i not in done], np.int64)
        mine = dist.assigned(pending, process, n_processes)
        convolves = _convolves_on_cpu(group_config, example_shape, first_hp)
        size = _chunk_size(
            chunk_size, max(1, len(mine)), per_member, len(devices), memory_budget, width
        )
        if checkpoint is not None and chunk_size == "auto":
            # one vmap group per device per chunk: an interrupted sweep keeps most of its work
            size = min(size, len(devices) * width)
        static = dict(zip(space.static_axes(), key))
        groups.append(
            _Group(static, group_config, members, mine, pending, size, width, convolves, per_member)
        )
    static_columns = {
        axis: [m.get(axis, getattr(config, axis)) for m in space.members]
        for axis in space.static_axes()
    }
    return _Plan(
        n,
        seed,
        seeds,
        hparams,
        static_columns,
        groups,
        checked[0][0],
        devices,
        store,
        done,
        n_processes,
        process,
        _points(space),
        memory_budget,
        config,
        vmap_width,
    )


def _interrupted_note(plan: _Plan, checkpoint, schedule) -> str:
    if plan.store is None:
        return (
            "run_sweep was interrupted: nothing was saved (with checkpoint=DIR finished "
            "chunks are kept, and the same call resumes)"
        )
    kept = "finished rungs" if schedule is not None else f"{len(plan.done)} of {plan.n} members"
    return (
        f"run_sweep was interrupted: {kept} are saved in the checkpoint {checkpoint}; call "
        "run_sweep again with the same arguments to resume"
    )


def _run(plan: _Plan, progress: bool, report: bool) -> list:
    """Train every group's pending chunks (one compiled program per group and chunk shape);
    fills ``plan.done``; returns each device's member count of the last chunk."""
    mesh = Mesh(np.asarray(plan.devices), ("members",))
    chunks = [
        (group, group.mine[i : i + group.size])
        for group in plan.groups
        for i in range(0, len(group.mine), group.size)
    ]
    bar = _progress_bar(progress and plan.process == 0, plan.n, len(chunks))
    if bar is not None:
        bar.update(len(plan.done))
    shard_counts = None
    shared_by_config = {}
    for number, (group, members) in enumerate(chunks, start=1):
        if group.config not in shared_by_config:  # replicated on every device
            host = _host_data(plan.data, group.config)
            shared_by_config[group.config] = jax.device_put(
                host, NamedSharding(mesh, PartitionSpec())
            )
        arrays, shard_counts = _train_chunk(
            members, group, plan, shared_by_config[group.config], mesh, report
        )
        if plan.store is not None:
            plan.store.save(members, arrays)
        for row, member in enumerate(members):
            plan.done[int(member)] = {k: v[row] for k, v in arrays.items()}
        if bar is not None:
            bar.update(len(members))
            bar.set_postfix(chunk=f"{number}/{len(chunks)}")
    if bar is not None:
        bar.close()
    return shard_counts


def _gather_processes(plan: _Plan):
    """Every process receives the members the others trained (per group: equal shapes)."""
    for group in plan.groups:
        counts = [
            len(dist.assigned(group.pending, p, plan.n_processes)) for p in range(plan.n_processes)
        ]
        first_hp = jax.tree.map(lambda v: np.asarray(v)[int(group.members[0])], plan.hparams)
        local = {
            k: np.stack([plan.done[int(i)][k] for i in group.mine])
            if len(group.mine)
            else np.zeros((0, *shape), kind)
            for k, (shape, kind) in _flat_shapes(
                group.config, _host_data(plan.data, group.config), first_hp
            )
        }
        plan.done.update(dist.gather_members(group.mine, local, counts))


def _pad_history(arrays: list[np.ndarray]) -> np.ndarray:
    """Stack per-member histories; shorter ones (fewer evaluations, e.g. a static ``steps``
    axis) repeat their last row, as a stopped run's history does."""
    longest = max(a.shape[0] for a in arrays)
    return np.stack([np.concatenate([a, np.repeat(a[-1:], longest - len(a), 0)]) for a in arrays])


def _gather(plan: _Plan, shard_counts, started: float, rungs: dict | None = None) -> SweepResults:
    """One results table in the space's order."""
    done = plan.done
    stacked = {}
    for k in done[0]:
        column = [done[i][k] for i in range(plan.n)]
        stacked[k] = _pad_history(column) if k.startswith("history_") else np.stack(column)
    history = History(**{f: stacked[f"history_{f}"] for f in History._fields})
    groups = plan.groups
    mine = sum(len(g.mine) for g in groups)
    pending = sum(len(g.pending) for g in groups)
    largest = max(groups, key=lambda g: g.size)
    meta = {
        "members": plan.n,
        "m_train": plan.data.train[0].shape[0],
        "m_dev": 0 if plan.data.dev is None else plan.data.dev[0].shape[0],
        # guessing the majority class: the diagnosis calls members there "not learning"
        "chance_error": majority_error((plan.data.dev or plan.data.train)[1]),
        "train_weighted": len(plan.data.train) > 2 and plan.data.train[2] is not None,
        "chunk_size": largest.size,
        "vmap_width": largest.width,
        # refit trains a member at its sweep's width
        "vmap_width_given": None if plan.vmap_width is None else int(plan.vmap_width),
        "chunks_run": sum(-(-len(g.mine) // g.size) for g in groups),
        "members_from_checkpoint": plan.n - pending,
        "memory_per_member_bytes": max(g.per_member for g in groups),
        "memory_budget_bytes": plan.memory_budget,
        "chunk_memory_estimate_bytes": max(g.per_member * g.size for g in groups),
        "devices": [str(d) for d in plan.devices],
        "members_per_device": shard_counts,
        "seed": plan.seed,
        "processes": plan.n_processes,
        "members_this_process": mine,
        "programs": len(groups),
        "l2_leaves": train.l2_leaves(groups[0].config),
        "restore_best": groups[0].config.restore_best,
        "train_config": config_record(plan.config),
        "data_digest": data_digest(_host_data(plan.data, plan.config)),  # as trained on
        "seconds": time.perf_counter() - started,
    }
    if rungs is not None:
        meta["rungs"] = rungs["rungs"]
        meta["lane_steps"] = rungs["lane_steps"]
        meta["member_steps"] = rungs["member_steps"]
        meta["member_steps_from_checkpoint"] = rungs["member_steps_from_checkpoint"]
    return SweepResults(
        rung=None if rungs is None else rungs["rung"],
        hparams=jax.tree.map(np.asarray, plan.hparams),
        seeds=plan.seeds,
        history=history,
        stop_step=stacked["stop_step"],
        best_step=stacked["best_step"],
        diverged=stacked["diverged"].astype(bool),
        meta=meta,
        static=plan.static,
    )


def run_sweep(
    space: Space,
    data: Data,
    config: TrainConfig,
    *,
    seed: int = 0,
    base: HParams | None = None,
    chunk_size: int | str = "auto",
    memory_budget: int | str = "auto",
    devices=None,
    checkpoint=None,
    checkpoint_id: str | None = None,
    progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
    distributed: dist.Cluster | bool | None = None,
    schedule: Halving | None = None,
    vmap_width: int | None = None,
) -> SweepResults:
    """Train every member of ``space`` with compiled ``vmap(fit)`` programs.

    Members are grouped by their static axes (``TrainConfig`` fields such as
    ``layer_sizes`` or ``batch_size``); each group is one config and one compiled program.
    Within a group members run in chunks of equal shape (the last one padded), so a group
    compiles once per chunk shape, never per value. With several devices the member axis
    of each chunk is sharded over a 1-D mesh (``NamedSharding``); the data is replicated,
    never copied per member. Member i equals ``fit(member_key(seed, seeds[i]), hparams[i],
    data, config.replace(**static values of i))``.

    Args:
      space: a :class:`Space` (``jaxhp.sweep.grid``, ``random``, ``refine``, ...).
      data: :class:`jaxhp.Data`, shared by all members.
      config: static :class:`jaxhp.TrainConfig`, shared by all members (static axes
        replace its fields per group).
      seed: base seed; member keys are ``member_key(seed, member_seed)``.
      base: values of the hyperparameters a member leaves out (``HParams()`` defaults
        when None); a dict of name -> value is accepted.
      chunk_size: members per compiled call, or ``"auto"``: as many as fit
        ``memory_budget`` by :func:`estimate_member_bytes`, balanced across chunks.
        Rounded up to a multiple of the device count.
      memory_budget: bytes (> 0) per chunk for the auto chunk size, or ``"auto"``: half of
        the devices' memory on a GPU or TPU (as XLA's allocator reports it), and
        ``DEFAULT_MEMORY_BUDGET`` (2 GiB) on the CPU. On an accelerator the memory of one
        device also bounds the vmap width (see ``meta["vmap_width"]``).
      devices: None (all local devices), a count, or a list of jax devices.
      checkpoint: a folder; each finished chunk is written there atomically, and a re-run
        with the same arguments skips the members already finished. The folder records
        what the members compute (see :mod:`jaxhp.checkpoint`); damaged chunks are set
        aside with a warning and re-trained.
      checkpoint_id: a name for the training program, needed only when jaxhp cannot
        identify it from its compiled form (a Python callback inside the optimizer, model
        or augmentation); change it whenever the program changes.
      progress: show a progress bar (members and chunks) when stderr is a terminal.
      on_eval: optional host function called after each evaluation of each vmap lane
        while a chunk trains, with a dict of its metrics (``step``, costs, accuracies)
        and ``weight``: the chunk's share of lanes holding real members, so the weights
        add up to the members' evaluations (for progress display). The program then
        holds one host callback; the results are the same.
      distributed: run over several processes (see :mod:`jaxhp.distributed`): a
        :class:`jaxhp.distributed.Cluster` to join (before any other JAX computation), or
        True once ``jaxhp.distributed.initialize`` has run. Each process trains a block of
        members on its local devices; every process returns the full results.
      schedule: None (every member trains all ``config.steps``) or
        :func:`halving` ``(eta, min_steps)``: successive halving. All members train to the
        first rung; at each rung they are ranked by dev cost (train cost without dev
        data) and the best ``1/eta`` continue from where they stopped, up to
        ``config.steps``. Each call of the compiled program then trains one vmap group per
        device (``chunk_size`` and ``memory_budget`` are not used), so the survivors of
        every rung fill whole groups and one program serves all rungs. With
        ``checkpoint``, each rung's progress is saved, and a re-run resumes within the
        rung it stopped in. Results then have ``rung`` (each member's last rung) and
        ``meta["rungs"]``.
      vmap_width: members trained together in one ``vmap`` (per device), or None for
        jaxhp's rule (8 for course-scale nets and 1 for convolving models on the CPU, 64
        on a GPU or TPU, fewer for big steps; ``meta["vmap_width"]`` says which). Member
        i's results are bit-identical across sweep sizes, member orders, chunkings and
        device counts at one width; another width rounds differently. A sweep smaller
        than the width pads it: on a GPU, 32 configurations of a small CNN train about
        twice as fast with ``vmap_width=32`` as in the default 64 lanes (bench B4).

    Returns:
      :class:`jaxhp.SweepResults`; ``static`` holds the static axes' per-member values,
      ``meta`` the chunk size, memory estimate, number of programs and L2 leaves.

    Raises:
      ValueError: an empty space, an out-of-range member or invalid static value (named by
        index), bad data, a bad chunk size, memory budget or vmap width, a checkpoint path
        that is a file, a checkpoint written by a different sweep or jaxhp/JAX version, or a
        damaged checkpoint spec file.
      TypeError: a space, config, base, devices or vmap width of the wrong type.

    Warns:
      UserWarning: every member diverged (with what to do: lower the learning rate,
        normalise the features, or fix a model whose cost is not finite even at its
        initial params); every member of a user's model sits at chance with outputs in
        [0, 1] at init (apply must return logits).
    """
    started = time.perf_counter()
    if isinstance(distributed, dist.Cluster):
        dist.initialize(distributed)
    elif distributed and not jax.distributed.is_initialized():
        raise ValueError(
            "distributed=True needs jaxhp.distributed.initialize(Cluster(...)) "
            "first, or pass distributed=Cluster(...)"
        )
    plan = _plan(
        space,
        data,
        config,
        seed=seed,
        base=base,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        devices=devices,
        checkpoint=checkpoint,
        checkpoint_id=checkpoint_id,
        distributed=bool(distributed),
        schedule=schedule,
        vmap_width=vmap_width,
    )
    _Reporting.listener = on_eval
    rungs = None
    try:
        if schedule is None:
            shard_counts = _run(plan, progress, report=on_eval is not None)
        else:
            rungs = successive_halving.train_rungs(plan, schedule, report=on_eval is not None)
            shard_counts = None
    except KeyboardInterrupt as err:  # the traceback ends inside JAX: say what was kept
        if hasattr(err, "add_note"):  # Python 3.11+
            err.add_note(_interrupted_note(plan, checkpoint, schedule))
        raise
    finally:
        _Reporting.listener = None
    if distributed and schedule is None:
        _gather_processes(plan)
    results = _gather(plan, shard_counts, started, rungs)
    if results.diverged.all():
        # every member diverged before its first evaluation: was member 0's start finite?
        broken_start = (
            ""
            if np.any(results.stop_step)
            else _first_member(plan, train._nonfinite_at_start, checked=True, failed="")
        )
        ids = any(jnp.issubdtype(g.config.x_dtype, jnp.integer) for g in plan.groups)
        _warn.warn(
            f"every member of the sweep diverged (non-finite cost; results.diverged): no "
            f"result can be ranked. {_divergence_advice(plan.data, broken_start, ids=ids)}"
        )
    elif _all_at_chance(results) and _outputs_look_like_probabilities(plan):
        _warn.warn(
            "every member's train error sits at chance level, and the model's outputs at "
            "member 0's initial params all lie in [0, 1]: apply must return logits, without "
            "a sigmoid or softmax at its end (jaxhp's loss applies it)"
        )
    return results


def _first_member(plan: _Plan, ask: Callable, *, failed, **options):
    """``ask(key, hparams, data, config)`` for member 0, with its key, hyperparameters and
    static values (e.g. :func:`train.finite_at_start`), or ``failed`` where it raises: the
    sweep's results matter more than this advice."""
    group = next(g for g in plan.groups if 0 in g.members)
    hparams = jax.tree.map(lambda leaf: leaf[0], plan.hparams)
    key = member_key(plan.seed, int(plan.seeds[0]))
    try:
        return ask(key, hparams, plan.data, group.config, **options)
    except Exception:  # noqa: BLE001
        return failed


def _all_at_chance(results: SweepResults) -> bool:
    """Every member that did not diverge ends with a train error within the threshold of
    guessing the majority class."""
    errors = 1.0 - np.asarray(results.history.train_accuracy, np.float64)[:, -1]
    errors = errors[np.isfinite(errors)]
    chance = results.meta["chance_error"]
    return errors.size > 0 and all(at_chance(e, chance) for e in errors)


def _outputs_look_like_probabilities(plan: _Plan) -> bool:
    """A model of the user's whose outputs at init all lie in [0, 1] (probabilities where
    jaxhp expects logits); jaxhp's own MLP returns logits."""
    if any(g.config.model is None for g in plan.groups):
        return False
    outputs = _first_member(plan, train._outputs_at_start, failed=None)
    return outputs is not None and bool(np.all((outputs >= 0) & (outputs <= 1)))


def _divergence_advice(data: Data, at_start: str = "", *, ids: bool = False) -> str:
    """What to do when every member diverged; ``at_start``: which costs ("train", "dev" or
    "train and dev") were not finite even before the first update (no learning rate
    trains such a model); ``ids``: x holds integer ids (``input_dtype``), not features to
    normalise, however large."""
    if at_start:
        which = "train" if data.dev is None else at_start  # no dev set: dev repeats train
        costs = "costs are" if " and " in which else "cost is"
        return (
            f"The {which} {costs} not finite at the initial params, before any update, so "
            "no learning rate can help: check the model's init and apply (a NaN or inf "
            "parameter, a log or division of 0, an id past an embedding's rows) and the "
            f"{which} data."
        )
    x = np.asarray(data.train[0])
    scale = float(np.max(np.abs(x))) if x.size and not ids else 0.0
    if scale > 100:
        return (
            f"The train features reach {scale:.3g}: normalise them with train statistics "
            "(jaxhp.data.Normalizer), or lower the learning rate."
        )
    return "Lower the learning rate."


def refit(results: SweepResults, member: int, data: Data, config: TrainConfig) -> TrainResult:
    """Train member ``member`` of a finished sweep again and return its
    :class:`jaxhp.TrainResult` with the params (a sweep keeps only histories).

    It is the ``fit`` that ``run_sweep`` promises the member equals: the member's key
    (``member_key(meta["seed"], seeds[member])``), its hyperparameters, and ``config`` with
    the member's static values. It runs in the sweep's own compiled program, in one vmap
    group of the width the sweep gave the member, so on the same kind of device its
    history is the sweep's row bit for bit and the params are those the row describes (a
    plain ``fit`` rounds differently from a batched member, and at a large learning rate
    the difference can grow into another run).

    Args:
      results: what :func:`run_sweep` returned.
      member: a row of ``results`` (e.g. ``results.summary()[0]["members"][0]``).
      data, config: the data and config the sweep was given.

    Raises:
      ValueError: ``member`` is not a row of ``results``; ``config`` is not the sweep's
        (its fields, or its evaluations against the member's history); ``data`` is not the
        sweep's (its train and dev arrays, by digest); a successive-halving
        member that the schedule stopped at a rung before ``config.steps`` (refit it as far
        as it went with ``config.replace(steps=...)``); an unknown base seed.
      TypeError: ``results`` is not a :class:`jaxhp.SweepResults`.

    Warns:
      UserWarning: the refit's first evaluation differs from the member's by more than
        0.1%: a model or optimizer other than the sweep's (functions are compared by kind
        only), or a sweep run on another kind of device with chaotic training, which makes
        the refit another run of the configuration.
    """
    return refit_together(results, [member], data, config)[0]


def refit_together(
    results: SweepResults, members, data: Data, config: TrainConfig
) -> list[TrainResult]:
    """:func:`refit` for several members (e.g. one configuration's seeds), in their order:
    members that share a config and a rung train side by side in one call of the program
    (a repeated member is trained once). Raises and warns as :func:`refit` does, and
    TypeError where ``members`` is not a sequence of rows."""
    if not isinstance(results, SweepResults):
        raise TypeError(f"results must be what run_sweep returned, got {type(results).__name__}")
    sequence = isinstance(members, (list, tuple, range)) or np.ndim(members) == 1
    if not sequence:  # an int, a 0-d array
        raise TypeError(
            f"members must be a list of rows of results (refit takes one), got {members!r}"
        )
    rows = [results.member_index(member) for member in members]
    results.refuse_static_text(rows, "refit it from the SweepResults that run_sweep returned")
    labels = results.meta.get("label_columns", [])  # e.g. an Optuna study's trial numbers
    devices = _devices_like_the_sweeps(results)
    if len(devices) < _split_over(results):
        _warn.warn(
            f"the sweep's program was split over {len(results.meta['devices'])} devices and this "
            "process has one of that kind: XLA compiles a one-device program differently "
            "(optax.adam's bias correction, say), so the refit can differ from the table in "
            "the last bits and drift from there; give the process two devices "
            "(JAX_NUM_CPU_DEVICES=2 on the CPU) for the table's bits"
        )
    batches: dict = {}  # config, rung and static values -> rows trained in one call
    for i in dict.fromkeys(rows):  # each member once
        static = {name: values[i] for name, values in results.static.items() if name not in labels}
        member_config = _refit_config(results, i, config, static)
        if results.meta.get("seed") is None:
            raise ValueError(
                f"member {i}'s base seed is unknown (results.meta['seed'] is None: e.g. an "
                "Optuna study told by optimize calls with different seed=, or told before "
                "the seed was recorded): refit it with jaxhp.fit and the member_key it was "
                "trained with"
            )
        hparams = jax.tree.map(lambda values: values[i], results.hparams)
        _check_same_data(results, data, hparams, member_config, config)
        rung = None if results.rung is None else int(results.rung[i])
        key = (member_config, rung, repr(sorted(static.items())))
        batches.setdefault(key, (member_config, static, []))[2].append(i)
    fitted = {}
    for member_config, static, batch in batches.values():
        trained = _train_as_in_the_sweep(results, batch, data, member_config, static, devices)
        fitted.update(zip(batch, trained))
    for i in dict.fromkeys(rows):
        _check_reproduced(results, i, fitted[i])
    return [fitted[i] for i in rows]


def _train_as_in_the_sweep(results, rows, data, config, static, devices) -> list[TrainResult]:
    """Members ``rows`` (of one static group and rung) trained again by the program that
    trained them in the sweep, params kept: vmap groups of the width the sweep gave them,
    on the first device, padded with copies of the first member. A member's arithmetic
    depends only on that program and width, so on the same kind of device its history is
    the sweep's bit for bit. ``config``: their config for the refit; ``static``: their
    static values; ``devices``: :func:`_devices_like_the_sweeps`."""
    first = jax.tree.map(lambda values: values[rows[0]], results.hparams)
    host = _host_data(train.check_inputs(first, data, config), config)
    example_shape = host.train[0].shape[1:]
    # a halving member "as far as it went" gets a shorter config: its width is the sweep's
    swept = config if results.rung is None else _swept_config(results, config, static)
    width = results.meta.get("vmap_width_given") or _rule_width(swept, host, first, devices[:1])
    group = np.resize(np.asarray(rows), -(-len(rows) // width) * width)
    group[len(rows) :] = rows[0]
    lanes = np.concatenate([group, np.full(len(group) * (len(devices) - 1), rows[0])])
    mesh = Mesh(np.asarray(devices), ("members",))
    by_member = NamedSharding(mesh, PartitionSpec("members"))
    hparams = jax.tree.map(lambda values: np.asarray(values)[lanes], results.hparams)
    program = {
        "seed": np.int32(results.meta["seed"]),
        "member_seeds": jax.device_put(np.asarray(results.seeds[lanes], np.int32), by_member),
        "hparams": jax.device_put(hparams, by_member),
        "data": jax.device_put(host, NamedSharding(mesh, PartitionSpec())),
        "mesh": mesh,
        "width": int(width),
    }
    convolves = _convolves_on_cpu(config, example_shape, first)
    with train.hyperparameters_traced():
        if results.rung is None:
            result = _train_members(
                config=config,
                dropout=not bool(np.all(np.asarray(hparams.keep_prob) == 1.0)),
                convolves=convolves,
                keep_params=True,
                **program,
            )
            return [jax.tree.map(lambda a, k=k: a[k], result) for k in range(len(rows))]
        treedef, shapes = successive_halving._progress_shapes(swept, host, first, keep_best=True)
        start = [np.zeros((len(lanes), *shape), dtype) for shape, dtype in shapes.values()]
        progress = advance_program(mesh, convolves)(
            progress=jax.device_put(jax.tree.unflatten(treedef, start), by_member),
            until=np.int32(results.meta["rungs"][int(results.rung[rows[0]])]["evaluation"]),
            fresh=np.bool_(True),
            keep_best=True,
            config=swept,
            dropout=_group_drops_units(results, rows[0]),
            report=False,
            **program,
        )
    return [
        train._finish(config, jax.tree.map(lambda a, k=k: a[k], progress)) for k in range(len(rows))
    ]


def _rule_width(config: TrainConfig, host: Data, hparams, devices: list) -> int:
    """The vmap width jaxhp's rule gives ``config``'s members on ``devices`` (host data)."""
    m_train, m_dev = host.train[0].shape[0], 0 if host.dev is None else len(host.dev[0])
    example_shape = host.train[0].shape[1:]
    return _vmap_width(
        config,
        m_train,
        example_shape,
        hparams,
        platform=devices[0].platform,
        per_member=estimate_member_bytes(config, m_train, m_dev, example_shape=example_shape),
        device_bytes=_device_bytes(devices),
    )


def _sweep_width(config: TrainConfig, data: Data, hparams, *, vmap_width=None, devices=None):
    """The vmap width ``run_sweep(space, data, config, vmap_width=..., devices=...)`` gives
    members like ``hparams`` (a sweep of one static group): ``vmap_width`` when given,
    else jaxhp's rule on those devices."""
    _check_vmap_width(vmap_width)
    if vmap_width is not None:
        return int(vmap_width)
    host = _host_data(train.check_inputs(hparams, data, config), config)
    return _rule_width(config, host, hparams, _resolve_devices(devices))


def _devices_like_the_sweeps(results) -> list[jax.Device]:
    """Local devices of the platform the sweep ran on ("cpu:0", "cuda:0", ...: e.g. a
    sweep given CPU devices on a GPU host), else the default ones: two where the sweep's
    program was split over several devices and this machine has two, else one.

    Why two: XLA compiles a program split over devices through its partitioner, and one
    for a single device without it, and the two may simplify an expression differently
    (optax.adam's bias correction: a division by a per-member value, kept in one and
    made a multiplication by its reciprocal in the other), so the last bits can differ.
    Two, three or more devices give the same per-device program."""
    devices = results.meta.get("devices") or [""]
    swept = str(devices[0]).split(":")[0].lower()
    platform = {"cuda": "gpu", "rocm": "gpu"}.get(swept, swept)
    try:
        local = jax.local_devices(backend=platform) if platform else jax.local_devices()
    except RuntimeError:  # not on this machine: the refit rounds as this one does
        local = jax.local_devices()
    return local[: _split_over(results)]


def _split_over(results) -> int:
    """Devices a refit needs for the sweep's rounding: 2 where its program was split over
    several, else 1. Each process of a distributed sweep runs its own program on its local
    devices (``meta["devices"]``), so two processes of one device each round as one."""
    return 2 if len(results.meta.get("devices") or []) > 1 else 1


def _swept_config(results, config: TrainConfig, static: dict) -> TrainConfig:
    """The config a halving sweep trained the member with: a refit "as far as it went"
    passes fewer steps, but the member trained (and its optimizer scheduled) toward the
    sweep's own."""
    swept = results.meta.get("train_config") or {}
    lengths = {k: static.get(k, swept.get(k)) for k in ("steps", "eval_every")}
    return config.replace(**{k: v for k, v in lengths.items() if v is not None})


def _group_drops_units(results, i: int) -> bool:
    """Did halving compile dropout masks for member i's static group (some member of it
    has keep_prob < 1)?"""
    same = np.ones(len(results), bool)
    for values in results.static.values():
        same &= np.asarray([v == values[i] for v in values])
    keep = np.asarray(results.hparams.keep_prob)
    return bool(np.any(keep[same] != 1.0)) if keep.ndim else bool(keep != 1.0)


def held_data_digest(data, hparams, member_config, config) -> str:
    """``meta["data_digest"]`` of a sweep of ``data``: the digest of train and dev as
    ``run_sweep`` holds them (checked for a member's config, in the config's dtype)."""
    return data_digest(_host_data(train.check_inputs(hparams, data, member_config), config))


def _check_same_data(results: SweepResults, data, hparams, member_config, config):
    """``data`` must be what the sweep trained on: train and dev as ``run_sweep`` held them
    (checked for the member's config, in the sweep config's dtype)."""
    swept = results.meta.get("data_digest")
    if swept is None:  # an Optuna study's results, or a table from an older jaxhp
        return
    if held_data_digest(data, hparams, member_config, config) != swept:
        raise ValueError(
            "data is not what the sweep trained on (its train and dev arrays differ); pass "
            "run_sweep's data"
        )


# A refit on another kind of device (or XLA version) rounds differently from the sweep, by
# far less than this at the first evaluation unless its training is chaotic.
_REFIT_RTOL = 1e-3


def _check_reproduced(results: SweepResults, i: int, fitted) -> None:
    """Warn when the refit's first evaluation is not the member's: the config check compares
    functions (a model, an optimizer factory) by kind only. Not an error: on another kind
    of device, chaotic training moves it too."""
    swept = [float(results.history.train_cost[i][0]), float(results.history.dev_cost[i][0])]
    again = [float(fitted.history.train_cost[0]), float(fitted.history.dev_cost[0])]
    if not np.allclose(again, swept, rtol=_REFIT_RTOL, atol=0, equal_nan=True):
        step = int(results.history.step[i][0])
        _warn.warn(
            f"the refit of member {i} does not reproduce its first evaluation (step {step}): "
            f"train and dev costs {again[0]:.6g} and {again[1]:.6g}, the sweep's "
            f"{swept[0]:.6g} and {swept[1]:.6g}. Either the model or optimizer differs from "
            "the sweep's, or the sweep ran on another kind of device (or JAX version) and "
            "its training is chaotic (rounding grows at a large learning rate), so the "
            "refit is another run of the same configuration"
        )


def _refit_config(results: SweepResults, i: int, config: TrainConfig, static: dict):
    """Member ``i``'s config for a refit: ``config`` with its static values. ``config``
    must be the one the sweep was given (compared by :func:`config_record`; the evaluations
    against the member's history where the results hold no record), and a halving member
    that the schedule stopped at a rung is refitted only as far as it went (``config`` with
    that many steps)."""
    stopped = int(results.stop_step[i])
    halted = results.rung is not None and not results.diverged[i]
    rung_step = int(results.meta["rungs"][int(results.rung[i])]["step"]) if halted else None
    as_far = halted and config.steps == stopped == rung_step  # the user's "as far as it went"
    if as_far:
        static = {k: v for k, v in static.items() if k not in ("steps", "eval_every")}
    member_config = config.replace(**static) if static else config
    swept, given = results.meta.get("train_config"), config_record(config)
    if swept is not None:
        for name, value in swept.items():
            if name in static or (as_far and name == "steps"):
                continue
            if given.get(name) != (tuple(value) if isinstance(value, list) else value):
                raise ValueError(
                    f"config is not the one the sweep was given: {name}={given.get(name)!r}, "
                    f"the sweep's {name}={value!r}; pass run_sweep's config"
                )
    steps = np.asarray(results.history.step[i])
    if steps.shape[0] < member_config.n_evals or int(steps[0]) != member_config.every:
        raise ValueError(
            f"config is not the one member {i} was swept with: it evaluates every "
            f"{member_config.every} steps ({member_config.n_evals} times), the member's "
            f"history first at step {int(steps[0])} ({steps.shape[0]} evaluations)"
        )
    if not results.diverged[i] and member_config.steps < stopped:
        raise ValueError(
            f"config trains {member_config.steps} steps, but member {i} trained {stopped}; "
            "pass the config the sweep was given"
        )
    if halted and stopped == rung_step < member_config.steps:  # the schedule cut it there
        raise ValueError(
            f"member {i} stopped at rung {int(results.rung[i])} of successive halving after "
            f"{stopped} steps; a refit trains all {member_config.steps}: refit a member that "
            f"reached the last rung, or refit it as far as it went with "
            f"config.replace(steps={stopped}, eval_every={member_config.every})"
        )
    return member_config
