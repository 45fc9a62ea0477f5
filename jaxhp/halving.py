"""Successive halving: train every member a little, keep the best 1/eta, train those longer.

``run_sweep(space, data, config, schedule=halving(eta=3, min_steps=100))`` trains all
members to the first rung (``min_steps``), ranks the configurations by their mean dev cost
over seeds, and lets the top ``1/eta`` (all their seeds) continue to the next rung
(``min_steps * eta``), and so on up to ``config.steps``.
A member that continues does so from exactly where it stopped (params, optimiser state,
key stream, early-stopping state), so a member that survives every rung has the same
history as in a full sweep. Stopped members cost nothing after their rung: the survivors
are packed into fewer vmap lanes.

This module holds the schedule, its rung arithmetic and the ranking; the engine that
trains the rungs is :func:`jaxhp.run_sweep`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxhp import _programs, train
from jaxhp import distributed as dist
from jaxhp.checkpoint import Checkpoint
from jaxhp.records import Data


class Halving(NamedTuple):
    """A successive-halving schedule (build it with :func:`halving`).

    Attributes:
      eta: the reduction factor: a rung keeps the best ``1/eta`` of its members and the
        next rung is ``eta`` times longer.
      min_steps: the first rung, in update steps; None: chosen from the member count so
        that about one member reaches ``config.steps`` (see :func:`rung_steps`).
    """

    eta: float = 3.0
    min_steps: int | None = None


class Rung(NamedTuple):
    """One rung: its members train up to ``step`` (evaluation ``evaluation``, counted from
    1); ``points`` configurations enter it, ``members`` members (all their seeds)."""

    step: int
    evaluation: int
    members: int
    points: int


def halving(eta: float = 3, min_steps: int | None = None) -> Halving:
    """A successive-halving schedule for :func:`jaxhp.run_sweep` (``schedule=``).

    Args:
      eta: reduction factor, a number > 1 (3 is the usual choice): each rung keeps the
        best ``floor(n / eta)`` of its ``n`` members (at least one).
      min_steps: the first rung in update steps, > 0 and a multiple of the config's
        ``eval_every`` (rungs fall on evaluations); None chooses it from the member count
        (:func:`rungs`), and run_sweep warns where that leaves fewer than 10 steps.

    Raises:
      ValueError: ``eta`` <= 1 or not finite; ``min_steps`` <= 0.
      TypeError: ``eta`` or ``min_steps`` not a number.
    """
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real):
        raise TypeError(f"eta must be a number > 1 (e.g. 3), got {eta!r}")
    if not (math.isfinite(eta) and eta > 1):
        raise ValueError(f"eta must be a number > 1 (e.g. 3), got {eta!r}")
    if min_steps is not None:
        if isinstance(min_steps, bool) or not isinstance(min_steps, numbers.Integral):
            raise TypeError(f"min_steps must be a positive int or None, got {min_steps!r}")
        if min_steps <= 0:
            raise ValueError(f"min_steps must be a positive int or None, got {min_steps!r}")
        min_steps = int(min_steps)
    return Halving(float(eta), min_steps)


def _survivors(n: int, eta: float) -> int:
    return max(1, math.floor(n / eta + 1e-9))


def rungs(
    schedule: Halving, n_points: int, steps: int, every: int, *, seeds: int = 1
) -> list[Rung]:
    """The rungs of ``schedule`` for ``n_points`` configurations of ``seeds`` seeds each
    (a configuration's seeds are kept or dropped together), with ``steps`` steps and an
    evaluation every ``every`` steps.

    Rung k ends at ``min_steps * eta**k`` steps (rounded up to the next evaluation), the
    last one at ``steps``; ``n_k = max(1, floor(n_{k-1} / eta))`` configurations enter it.
    A rung that would end within a factor sqrt(eta) of ``steps`` ends at ``steps``
    instead (no short last rung), and once one configuration is left it trains straight
    to ``steps`` (a rung with nothing to rank is no rung).
    Without ``min_steps``, it is ``steps / eta**s`` rounded down to an evaluation, with
    ``s = floor(log_eta(n_points))`` (so that about one configuration reaches the end).

    Raises:
      ValueError: ``min_steps`` > ``steps`` or not on an evaluation (a multiple of
        ``every``).
    """
    eta = schedule.eta
    if schedule.min_steps is None:
        s = math.floor(math.log(max(n_points, 1)) / math.log(eta) + 1e-9)
        first = max(every, int(steps / eta**s) // every * every)
    else:
        first = schedule.min_steps
        if first > steps:
            raise ValueError(f"min_steps must be <= the config's steps ({steps}), got {first}")
        if first % every:
            below, above = first // every * every, -(-first // every) * every
            fits = " or ".join(str(v) for v in (below, above) if 0 < v <= steps)
            raise ValueError(
                f"min_steps={first} does not fall on an evaluation (the config evaluates "
                f"every {every} steps); use a multiple of {every}, e.g. {fits}"
            )
    ends, k = [], 0
    while True:
        # up to the next evaluation; 1e-9: float error in an exact product (40 * 3**k)
        end = min(steps, math.ceil(first * eta**k / every - 1e-9) * every)
        if steps < end * math.sqrt(eta):  # a last rung this short halves nothing worth it
            end = steps
        if not ends or end > ends[-1]:
            ends.append(end)
        if end >= steps:
            break
        k += 1
    out, n = [], n_points
    for end in ends:
        if n == 1 and out and out[-1].points == 1:  # one configuration left: train it to the end
            break
        evaluation = -(-end // every)  # the last evaluation is at ``steps`` even if ragged
        out.append(Rung(end, evaluation, n * seeds, n))
        n = _survivors(n, eta)
    if out[-1].step != steps:  # the last configuration standing trains to the end
        last = out.pop()
        out.append(last._replace(step=steps, evaluation=-(-steps // every)))
    return out


def rank(dev_cost: np.ndarray, train_cost: np.ndarray) -> np.ndarray:
    """Positions best first: by dev cost at the rung (non-finite last), then by train
    cost, then by position."""
    dev = np.where(np.isfinite(dev_cost), dev_cost, np.inf)
    train = np.where(np.isfinite(train_cost), train_cost, np.inf)
    return np.lexsort((np.arange(len(dev)), train, dev))


def point_costs(points: np.ndarray, dev: np.ndarray, train: np.ndarray):
    """Each configuration's mean dev and train cost over its seeds (non-finite: inf), in
    the order of ``np.unique(points)``."""
    unique, inverse = np.unique(points, return_inverse=True)
    means = []
    for costs in (dev, train):
        finite = np.where(np.isfinite(costs), costs, np.inf)
        total = np.zeros(len(unique))
        np.add.at(total, inverse, finite)
        means.append(total / np.bincount(inverse))
    return unique, means[0], means[1]


def member_steps(rung_list: list[Rung]) -> int:
    """Update steps the members of a halving run train in all (without early stopping)."""
    total, previous = 0, 0
    for rung in rung_list:
        total += rung.members * (rung.step - previous)
        previous = rung.step
    return total


# ---- the engine ---------------------------------------------------------------------------
class _Trainer(NamedTuple):
    """A static group of the sweep as halving trains it."""

    config: Any
    members: np.ndarray  # the group's members (indices into the space)
    width: int  # members per vmap
    convolves: bool  # convolutions as matmuls on the CPU
    dropout: bool  # some member drops units (else the masks are compiled out)
    treedef: Any  # structure of one member's progress
    shapes: dict[str, tuple]  # name -> (shape, dtype) of its flat leaves
    shared: Data  # the data, replicated on the devices


def _progress_shapes(config, data, hparams, keep_best: bool = False):
    """One member's progress: its tree structure and the shapes of its leaves (the sweep
    has checked the inputs). ``keep_best``: it tracks the best params (a refit does; the
    sweep keeps no params)."""
    shapes = jax.eval_shape(
        lambda: train._begin(
            *train._start(jax.random.key(0), hparams, data, config, checked=True), keep_best
        )
    )
    leaves, treedef = jax.tree.flatten(shapes)
    return treedef, {f"progress_{i}": (leaf.shape, leaf.dtype) for i, leaf in enumerate(leaves)}


def _trainer(plan, group, mesh) -> _Trainer:
    host = _programs._host_data(plan.data, group.config)
    first_hp = jax.tree.map(lambda v: np.asarray(v)[int(group.members[0])], plan.hparams)
    treedef, shapes = _progress_shapes(group.config, host, first_hp)
    keep = np.asarray(plan.hparams.keep_prob)
    keep = keep[group.members] if keep.ndim else keep
    shared = jax.device_put(host, NamedSharding(mesh, PartitionSpec()))
    return _Trainer(
        group.config,
        group.members,
        group.width,
        group.convolves,
        bool(np.any(keep != 1.0)),
        treedef,
        shapes,
        shared,
    )


def _lanes_per_call(mesh, trainer: _Trainer) -> int:
    """One vmap group per device per call: a rung of any size runs as calls of this one
    shape (so one compiled program serves every rung), and survivors fill whole groups."""
    return mesh.devices.size * trainer.width


def _advance(plan, trainer: _Trainer, members, states, until: int, mesh, report: bool):
    """Advance ``members`` up to evaluation ``until``, from their flat progress in
    ``states`` (from the start when None); returns their new flat progress by name."""
    n_devices = mesh.devices.size
    lanes, real, _ = _programs._lanes(
        members, _lanes_per_call(mesh, trainer), n_devices, trainer.width
    )
    _programs._Reporting.real_share = len(members) / len(lanes)
    by_member = NamedSharding(mesh, PartitionSpec("members"))
    seeds = np.asarray(plan.seeds[lanes], np.int32)
    hparams = jax.tree.map(lambda v: np.asarray(v)[lanes], plan.hparams)
    seeds, hparams = jax.device_put((seeds, hparams), by_member)
    fresh = states is None
    if fresh:  # a placeholder: the program starts these members itself
        leaves = [np.zeros((len(lanes), *shape), dtype) for shape, dtype in trainer.shapes.values()]
    else:
        rows = [states[int(m)] for m in lanes]
        leaves = [np.stack([row[name] for row in rows]) for name in trainer.shapes]
    progress = jax.device_put(jax.tree.unflatten(trainer.treedef, leaves), by_member)
    with train.hyperparameters_traced():
        progress = _programs.advance_program(mesh, trainer.convolves)(
            np.int32(plan.seed),
            seeds,
            hparams,
            trainer.shared,
            progress,
            np.int32(until),
            np.bool_(fresh),
            trainer.config,
            mesh=mesh,
            width=trainer.width,
            dropout=trainer.dropout,
            report=report,
        )
    leaves = jax.device_get(jax.tree.leaves(progress))
    return dict(zip(trainer.shapes, (np.asarray(leaf)[real] for leaf in leaves)))


def _rung_store(plan, trainer: _Trainer, rung: int, number: int):
    """The checkpoint of a rung's progress for one static group (None without one)."""
    if plan.store is None:
        return None
    folder = plan.store.path / f"rung{rung}-group{number}"
    return Checkpoint(folder, plan.store.spec, trainer.shapes, tag=plan.store.tag)


def _train_rung(plan, trainer, number, rung, k, entrants, states, mesh, report):
    """Train the group's entrants of rung ``k`` (reusing its checkpoint); returns each
    entrant's progress after the rung, the lanes this process ran and the entrants whose
    progress the checkpoint held."""
    members = entrants[np.isin(entrants, trainer.members)]
    store = _rung_store(plan, trainer, k, number)
    finished = store.load() if store is not None else {}
    entering = set(members.tolist())
    finished = {m: v for m, v in finished.items() if m in entering}
    if plan.n_processes > 1 and store is not None:
        dist.agree_on_finished(finished, store.path)
    pending = np.asarray([m for m in members if int(m) not in finished], np.int64)
    mine = dist.assigned(pending, plan.process, plan.n_processes)
    size = _lanes_per_call(mesh, trainer)
    new, lanes = {}, 0
    for start in range(0, len(mine), size):
        call = mine[start : start + size]
        arrays = _advance(plan, trainer, call, states if k else None, rung.evaluation, mesh, report)
        if store is not None:
            store.save(call, arrays)
        new.update({int(m): {n: v[row] for n, v in arrays.items()} for row, m in enumerate(call)})
        lanes += size
    if plan.n_processes > 1:
        counts = [len(dist.assigned(pending, p, plan.n_processes)) for p in range(plan.n_processes)]
        local = {
            name: np.stack([new[int(m)][name] for m in mine])
            if len(mine)
            else np.zeros((0, *shape), dtype)
            for name, (shape, dtype) in trainer.shapes.items()
        }
        new = dist.gather_members(mine, local, counts)
    return {**finished, **new}, lanes, list(finished)


def _at_rung(trainer: _Trainer, state: dict) -> tuple[float, float]:
    """A member's dev and train cost at its last evaluation so far."""
    progress = jax.tree.unflatten(trainer.treedef, [state[name] for name in trainer.shapes])
    row = int(progress.done) - 1
    return float(progress.history.dev_cost[row]), float(progress.history.train_cost[row])


def _steps_so_far(trainer: _Trainer, state: dict | None) -> int:
    """The steps a member has trained (its last evaluation's; 0 before the first)."""
    if state is None:
        return 0
    progress = jax.tree.unflatten(trainer.treedef, [state[name] for name in trainer.shapes])
    done = int(progress.done)
    return int(progress.history.step[done - 1]) if done else 0


def train_rungs(plan, schedule: Halving, *, report: bool) -> dict[str, Any]:
    """Train ``plan``'s members by successive halving; fills ``plan.done`` with every
    member's result arrays (as a full sweep's) and returns the halving's record: each
    member's last rung, the rungs, the lane-steps the programs ran, the member-steps
    trained (to each member's last evaluation) and those the checkpoint held."""
    mesh = Mesh(np.asarray(plan.devices), ("members",))
    config = plan.groups[0].config
    n_points = len(np.unique(plan.points))
    seeds = max(1, round(plan.n / n_points))
    schedule_rungs = rungs(schedule, n_points, config.steps, config.every, seeds=seeds)
    trainers = [_trainer(plan, group, mesh) for group in plan.groups]
    trainer_of = {int(m): t for t in trainers for m in t.members}
    entrants = np.arange(plan.n)
    states: dict[int, dict] = {}
    last_rung = np.zeros(plan.n, np.int64)
    lane_steps, loaded_steps, previous = 0, 0, 0
    for k, rung in enumerate(schedule_rungs):
        for number, trainer in enumerate(trainers):
            trained, lanes, loaded = _train_rung(
                plan, trainer, number, rung, k, entrants, states, mesh, report
            )
            loaded_steps += sum(  # a member stopped early by patience trained fewer
                _steps_so_far(trainer, trained[m]) - _steps_so_far(trainer, states.get(m))
                for m in loaded
            )
            states.update(trained)
            lane_steps += lanes * (rung.step - previous)
        previous = rung.step
        last_rung[entrants] = k
        if k + 1 < len(schedule_rungs):
            costs = np.array([_at_rung(trainer_of[int(m)], states[int(m)]) for m in entrants])
            points, dev, train_cost = point_costs(plan.points[entrants], costs[:, 0], costs[:, 1])
            kept = points[rank(dev, train_cost)[: schedule_rungs[k + 1].points]]
            entrants = entrants[np.isin(plan.points[entrants], kept)]
            if plan.n_processes > 1:
                dist.agree_on_survivors(entrants, k + 1)
    trained = 0  # update steps run: a diverged member's too, though its result rolls back
    for trainer in trainers:  # each member's result, from its progress on the host
        for member in trainer.members:
            trained += _steps_so_far(trainer, states[int(member)])
            leaves = [states[int(member)][name] for name in trainer.shapes]
            progress = jax.tree.unflatten(trainer.treedef, leaves)
            result = train._finish(trainer.config, progress, xp=np)
            plan.done[int(member)] = _programs._flatten(_programs._kept(result))
    return {
        "rung": last_rung,
        "rungs": [r._asdict() for r in schedule_rungs],
        "lane_steps": lane_steps,
        "member_steps": trained,
        "member_steps_from_checkpoint": loaded_steps,
    }
