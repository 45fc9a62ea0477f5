"""Successive halving inside the program against the full sweep it prunes (issue #14).

Workload: two moons with noise 0.3 (300 train, 300 dev), a [2, 24, 8, 1] net, 81 random
members over lambd, keep_prob and learning rate, 2,700 steps evaluated every 100; halving
with eta = 3 and min_steps = 100 (rungs at 100, 300, 900 and 2,700 steps for 81, 27, 9
and 3 members). Both rows run in this process, from a cold JAX cache, so each time includes
its compilation; the halving row compiles its own two programs (first progress and
advance to a rung). The table gives member-steps (updates the members trained), wall time
and the best dev accuracy found; each row is run twice, so the table also gives the time
once its program is compiled (as from the persistent compilation cache).

Targets: halving uses <= 35% of the full sweep's member-steps and <= 50% of its wall time,
and its best dev accuracy is within 0.01 of the full sweep's.

Run: python bench/halving.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from common import start_backend, table, write

import jaxhp
from jaxhp import sweep


def workload(quick: bool) -> dict:
    x, y = jaxhp.datasets.moons(300, noise=0.3, seed=0)
    xd, yd = jaxhp.datasets.moons(300, noise=0.3, seed=1)
    steps, every = (90, 10) if quick else (2700, 100)
    return {
        "data": jaxhp.Data(train=(x, y), dev=(xd, yd)),
        "config": jaxhp.TrainConfig(layer_sizes=(2, 24, 8, 1), steps=steps, eval_every=every),
        "space": sweep.random(
            0,
            27 if quick else 81,
            lambd=sweep.loguniform(1e-4, 10.0),
            keep_prob=sweep.uniform(0.5, 1.0),
            learning_rate=sweep.loguniform(1e-2, 1.0),
        ),
        "schedule": sweep.halving(eta=3, min_steps=every),
    }


def run(w: dict, schedule) -> dict:
    jax.clear_caches()  # each row compiles its own programs, as a first run would
    seconds = []
    for _ in range(2):  # the first call compiles; the second reuses the program
        start = time.perf_counter()
        results = jaxhp.run_sweep(
            w["space"], w["data"], w["config"], progress=False, schedule=schedule
        )
        seconds.append(time.perf_counter() - start)
    best = results.best("dev_accuracy")
    return {
        "seconds": seconds[0],
        "steady_s": seconds[1],
        "member_steps": int(results.meta.get("member_steps", np.sum(results.stop_step))),
        "best_dev_accuracy": float(best["dev_accuracy"]),
        "best_member": int(best["member"]),
        "rungs": results.meta.get("rungs"),
        "lane_steps": results.meta.get("lane_steps"),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    jaxhp.sweep.use_cpu_cores()  # as `jaxhp sweep` does: members sharded over the cores
    start_backend()  # no row pays for it
    w = workload(args.quick)
    full = {"row": "full sweep", **run(w, None)}
    halved = {"row": "successive halving, eta 3", **run(w, w["schedule"])}
    for row in (full, halved):
        row["steps_share"] = row["member_steps"] / full["member_steps"]
        row["time_share"] = row["seconds"] / full["seconds"]
        row["steady_share"] = row["steady_s"] / full["steady_s"]
    columns = [
        ("row", "row"),
        ("member_steps", "member-steps"),
        ("steps_share", "share of full"),
        ("seconds", "s (compile incl.)"),
        ("time_share", "time share"),
        ("steady_s", "s (compiled)"),
        ("steady_share", "share"),
        ("best_dev_accuracy", "best dev accuracy"),
    ]
    print(table([full, halved], columns))
    gap = full["best_dev_accuracy"] - halved["best_dev_accuracy"]
    print(
        f"\nmember-steps {halved['steps_share']:.1%} (target <= 35%), wall time "
        f"{halved['time_share']:.1%} (target <= 50%; {halved['steady_share']:.1%} once "
        f"compiled), best dev accuracy gap {gap:+.4f} "
        "(target <= 0.01)"
    )
    write("halving", {"rows": [full, halved], "accuracy_gap": gap}, quick=args.quick)


if __name__ == "__main__":
    main()
