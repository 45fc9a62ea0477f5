"""Optuna TPE on vmapped batches against Optuna calling a jitted ``fit`` per trial.

Workload (issue #14): two moons with noise 0.3, a [2, 24, 8, 1] net, lambd, keep_prob and
learning rate drawn by TPE, 48 trials. jaxhp asks 16 trials at a time and trains each batch
as one sweep program; the peer is Optuna's own loop (``study.optimize``) whose objective
calls one ``jax.jit(fit)`` per trial (compiled once: hparams are traced). Both times
include compilation; the table gives seconds per trial and their ratio.

Run: python bench/optuna_bridge.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optuna
from common import table, write

import jaxhp
from jaxhp.integrations import optuna as bridge
from jaxhp.sweep import member_key

Float = optuna.distributions.FloatDistribution


def workload(quick: bool) -> dict:
    x, y = jaxhp.datasets.moons(300, noise=0.3, seed=0)
    xd, yd = jaxhp.datasets.moons(300, noise=0.3, seed=1)
    return {
        "data": jaxhp.Data(train=(x, y), dev=(xd, yd)),
        "config": jaxhp.TrainConfig(layer_sizes=(2, 24, 8, 1), steps=100 if quick else 2700),
        "trials": 8 if quick else 48,
        "batch": 4 if quick else 16,
        "distributions": {
            "lambd": Float(1e-4, 10.0, log=True),
            "keep_prob": Float(0.5, 1.0),
            "learning_rate": Float(1e-2, 1.0, log=True),
        },
    }


def run_bridge(w: dict) -> tuple[float, float]:
    study = bridge.create_study(sampler="tpe", seed=0)
    start = time.perf_counter()
    bridge.optimize(
        study,
        w["distributions"],
        w["data"],
        w["config"],
        n_trials=w["trials"],
        batch_size=w["batch"],
    )
    return time.perf_counter() - start, study.best_value


def run_per_trial(w: dict) -> tuple[float, float]:
    fit = jax.jit(jaxhp.fit, static_argnames="config")

    def objective(trial):
        values = {
            name: np.float32(trial.suggest_float(name, d.low, d.high, log=d.log))
            for name, d in w["distributions"].items()
        }
        hp = jaxhp.HParams(**values)  # float32 arrays: traced, so one compile for all trials
        result = fit(member_key(0, 0), hp, w["data"], config=w["config"])
        dev = np.asarray(result.history.dev_cost)
        if bool(result.diverged) or not np.isfinite(dev).any():
            raise optuna.TrialPruned()  # the bridge tells diverged trials as FAIL
        return float(np.nanmin(dev))

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    study.optimize(objective, n_trials=w["trials"])
    return time.perf_counter() - start, study.best_value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    jaxhp.sweep.use_cpu_cores()  # as `jaxhp sweep` does: members sharded over the cores
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    w = workload(args.quick)
    bridge_s, bridge_best = run_bridge(w)
    loop_s, loop_best = run_per_trial(w)
    rows = [
        {
            "row": f"jaxhp bridge, batches of {w['batch']}",
            "seconds": bridge_s,
            "per_trial_s": bridge_s / w["trials"],
            "best_dev_cost": bridge_best,
        },
        {
            "row": "Optuna study.optimize, jit(fit) per trial",
            "seconds": loop_s,
            "per_trial_s": loop_s / w["trials"],
            "best_dev_cost": loop_best,
        },
    ]
    ratio = bridge_s / loop_s
    print(
        table(
            rows,
            [
                ("row", "row"),
                ("seconds", "s (compile incl.)"),
                ("per_trial_s", "s per trial"),
                ("best_dev_cost", "best dev cost"),
            ],
        )
    )
    print(f"\nper-trial time, bridge / per-trial loop: {ratio:.3f} (target < 0.1)")
    write(
        "optuna_bridge",
        {"trials": w["trials"], "batch": w["batch"], "rows": rows, "ratio": ratio},
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
