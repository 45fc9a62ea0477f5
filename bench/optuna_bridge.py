"""Optuna TPE on vmapped batches against Optuna calling a jitted ``fit`` per trial.

Workload (issue #14): two moons with noise 0.3, a [2, 24, 8, 1] net, 2700 steps, lambd,
keep_prob and learning rate drawn by TPE, 48 trials. jaxhp asks 16 trials at a time and
trains each batch as one sweep program (every batch the same shapes: compiled once).

The peers are Optuna's own loop (``study.optimize``) whose objective calls one
``jax.jit(fit)`` per trial: hparams are float32 arrays, hence traced, so it compiles once
(checked), with the same XLA:CPU compiler options as jaxhp's sweep program. One peer runs
trials one after another (Optuna's default); the other runs ``n_jobs`` = cores threads, so
it can use every core as the sweep does. Both sides include compilation; the table also
splits each side's time into compiling, the sampler (ask/tell) and training.

Run: python bench/optuna_bridge.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
import optuna
from common import start_backend, table, write

import jaxhp
from jaxhp import _programs
from jaxhp.cache import compile_stats
from jaxhp.integrations import optuna as bridge
from jaxhp.sweep import member_key

Float = optuna.distributions.FloatDistribution


def workload(quick: bool) -> dict:
    x, y = jaxhp.datasets.moons(300, noise=0.3, seed=0)
    xd, yd = jaxhp.datasets.moons(300, noise=0.3, seed=1)
    return {
        "data": jaxhp.Data(train=(x, y), dev=(xd, yd)),
        "config": jaxhp.TrainConfig(layer_sizes=(2, 24, 8, 1), steps=30 if quick else 2700),
        "trials": 4 if quick else 48,
        "batch": 2 if quick else 16,
        "distributions": {
            "lambd": Float(1e-4, 10.0, log=True),
            "keep_prob": Float(0.5, 1.0),
            "learning_rate": Float(1e-2, 1.0, log=True),
        },
    }


class _Clock:
    """Seconds spent inside wrapped functions."""

    def __init__(self):
        self.calls: list[float] = []

    @property
    def seconds(self) -> float:
        return sum(self.calls)

    def wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls.append(time.perf_counter() - start)

        return timed


def run_bridge(w: dict) -> dict:
    jax.clear_caches()  # every row compiles its own program
    study = bridge.create_study(sampler="tpe", seed=0)
    sampler, training = _Clock(), _Clock()
    ask, tell, sweep = bridge._ask, bridge._tell, jaxhp.sweep.run_sweep
    bridge._ask, bridge._tell = sampler.wrap(ask), sampler.wrap(tell)
    jaxhp.sweep.run_sweep = training.wrap(sweep)
    try:
        start = time.perf_counter()
        with compile_stats() as compiled:
            bridge.optimize(
                study,
                w["distributions"],
                w["data"],
                w["config"],
                n_trials=w["trials"],
                batch_size=w["batch"],
            )
        seconds = time.perf_counter() - start
    finally:
        bridge._ask, bridge._tell, jaxhp.sweep.run_sweep = ask, tell, sweep
    return _row(
        f"jaxhp optimize, batches of {w['batch']}",
        w,
        seconds,
        compiled,
        sampler.seconds,
        training.seconds,
        study,
        batch_seconds=[round(s, 2) for s in training.calls],  # only the first compiles
    )


def run_per_trial(w: dict, n_jobs: int) -> dict:
    jax.clear_caches()
    # the compiler options of jaxhp's sweep program: its own on the CPU, XLA's elsewhere
    options = _programs._CPU_OPTIONS if jax.default_backend() == "cpu" else {}
    fit = jax.jit(jaxhp.fit, static_argnames="config", compiler_options=options)
    training = _Clock()

    @training.wrap
    def train(hp):
        result = fit(member_key(0, 0), hp, w["data"], config=w["config"])
        return np.asarray(result.history.dev_cost), bool(result.diverged)

    def objective(trial):
        values = {
            name: np.float32(trial.suggest_float(name, d.low, d.high, log=d.log))
            for name, d in w["distributions"].items()
        }
        dev, diverged = train(jaxhp.HParams(**values))  # float32 arrays: traced
        if diverged or not np.isfinite(dev).any():
            raise optuna.TrialPruned()  # the bridge tells diverged trials as FAIL
        return float(np.nanmin(dev))

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    with compile_stats() as compiled:
        study.optimize(objective, n_trials=w["trials"], n_jobs=n_jobs)
    seconds = time.perf_counter() - start
    if fit._cache_size() != 1:
        raise RuntimeError(f"the peer compiled fit {fit._cache_size()} times, not once")
    # training calls include the first one's compile; with threads they overlap, so their
    # wall time is about their sum / n_jobs, and the sampler has what they leave over
    training_s = training.seconds / n_jobs
    return _row(
        "Optuna study.optimize, jit(fit) per trial"
        + (f", n_jobs={n_jobs} threads" if n_jobs > 1 else ""),
        w,
        seconds,
        compiled,
        max(0.0, seconds - training_s),
        training_s,
        study,
        compiles=fit._cache_size(),
    )


def _row(name, w, seconds, compiled, sampler_s, training_s, study, **extra) -> dict:
    return {
        "row": name,
        "seconds": seconds,
        "per_trial_s": seconds / w["trials"],
        "compile_s": compiled.total_s,
        "sampler_s": sampler_s,
        "train_after_compile_s": max(0.0, training_s - compiled.total_s),
        "per_trial_after_compile_s": (seconds - compiled.total_s) / w["trials"],
        "best_dev_cost": study.best_value,
        **extra,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    jaxhp.sweep.use_cpu_cores()  # as `jaxhp sweep` does: members sharded over the cores
    start_backend()  # no row pays for it
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    w = workload(args.quick)
    rows = [run_bridge(w), run_per_trial(w, 1), run_per_trial(w, os.cpu_count() or 1)]
    ours, peers = rows[0], rows[1:]
    fastest = min(peers, key=lambda r: r["per_trial_s"])
    ratio = ours["per_trial_s"] / fastest["per_trial_s"]
    ratio_after_compile = ours["per_trial_after_compile_s"] / min(
        r["per_trial_after_compile_s"] for r in peers
    )
    print(
        table(
            rows,
            [
                ("row", "row"),
                ("seconds", "s (compile incl.)"),
                ("per_trial_s", "s per trial"),
                ("compile_s", "compiling s"),
                ("sampler_s", "sampler s"),
                ("train_after_compile_s", "training s"),
                ("per_trial_after_compile_s", "s per trial, compile excl."),
                ("best_dev_cost", "best dev cost"),
            ],
        )
    )
    print(
        f"\nper-trial time, jaxhp / fastest peer ({fastest['row']}): {ratio:.3f} "
        f"(target < 0.1); compile excluded: {ratio_after_compile:.3f}"
    )
    write(
        "optuna_bridge",
        {
            "trials": w["trials"],
            "batch": w["batch"],
            "steps": w["config"].steps,
            "rows": rows,
            "ratio": ratio,
            "ratio_after_compile": ratio_after_compile,
            "target": 0.1,
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
