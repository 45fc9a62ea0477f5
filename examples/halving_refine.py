"""Coarse to fine, random not grid, log scale: the course's tuning advice, with halving.

The course says: sample at random rather than on a grid, on a log scale for lambda and the
learning rate, then zoom in around the best points. Successive halving adds: stop the
clearly bad members early. This example compares, on two moons with noise 0.3 and a
[2, 24, 8, 1] net trained for 2,700 steps:

- a grid of 6 lambdas x 6 keep_probs x 5 learning rates (180 members), each trained fully;
- a coarse random search of 81 log-scale points with halving (eta 3, rungs at 100, 300,
  900 and 2,700 steps), then ``sweep.refine`` around its 3 best for 27 more points, again
  with halving.

It prints each search's best dev accuracy, the member-steps it trained and its time, and
writes the rungs of both halving searches as PNGs.

Run: python examples/halving_refine.py [--quick] [--out jaxhp-out/examples/halving_refine]
"""

import argparse
import time
from pathlib import Path

import numpy as np

import jaxhp
from jaxhp import sweep


def make_data():
    """300 training points and 1,000 dev points, so one dev example is 0.1%."""
    x, y = jaxhp.datasets.moons(300, noise=0.3, seed=0)
    xd, yd = jaxhp.datasets.moons(1000, noise=0.3, seed=1)
    return jaxhp.Data(train=(x, y), dev=(xd, yd))


def searches(quick: bool):
    """The grid, the coarse random space, and the config they share."""
    steps, every = (90, 10) if quick else (2700, 100)
    config = jaxhp.TrainConfig(layer_sizes=(2, 24, 8, 1), steps=steps, eval_every=every)
    if quick:
        grid = sweep.grid(lambd=[0.0, 0.1], keep_prob=[0.8, 1.0], learning_rate=[0.1, 1.0])
        coarse = 9
    else:
        grid = sweep.grid(
            lambd=[0.0, 0.001, 0.01, 0.1, 1.0, 10.0],
            keep_prob=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            learning_rate=[0.01, 0.03, 0.1, 0.3, 1.0],
        )
        coarse = 81
    space = sweep.random(
        0,
        coarse,
        lambd=sweep.loguniform(1e-4, 10.0),
        keep_prob=sweep.uniform(0.5, 1.0),
        learning_rate=sweep.loguniform(0.01, 1.0),
    )
    return grid, space, config, sweep.halving(eta=3, min_steps=every)


def run(space, data, config, schedule=None):
    start = time.perf_counter()
    results = jaxhp.run_sweep(space, data, config, progress=False, schedule=schedule)
    return results, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (for tests)")
    parser.add_argument("--out", type=Path, default=Path("jaxhp-out/examples/halving_refine"))
    args = parser.parse_args(argv)
    data = make_data()
    grid, space, config, schedule = searches(args.quick)

    full, full_s = run(grid, data, config)
    coarse, coarse_s = run(space, data, config, schedule)
    fine_space = sweep.refine(coarse, top=3, n=len(space) // 3, key=1)
    fine, fine_s = run(fine_space, data, config, schedule)

    rows = [
        ("grid, every member fully trained", [full], full_s),
        ("coarse random + halving", [coarse], coarse_s),
        ("... + refine around its best 3, halving", [coarse, fine], coarse_s + fine_s),
    ]
    full_steps = int(np.sum(full.stop_step))
    print(f"{'search':<42} {'members':>7} {'member-steps':>13} {'share':>6} {'s':>6}  best dev")
    for name, parts, seconds in rows:
        members = sum(len(r) for r in parts)
        steps = sum(int(np.sum(r.stop_step)) for r in parts)
        best = max(r.best()["dev_accuracy"] for r in parts)
        print(
            f"{name:<42} {members:>7} {steps:>13,} {steps / full_steps:>6.0%} "
            f"{seconds:>6.1f}  {best:.4f}"
        )
    best_grid = full.best()["dev_accuracy"]
    best_found = max(coarse.best()["dev_accuracy"], fine.best()["dev_accuracy"])
    one_example = 1 / data.dev[0].shape[0]
    if best_found > best_grid:
        verdict = "beats"
    elif best_found == best_grid:
        verdict = "matches"
    else:
        close = best_grid - best_found <= one_example * (1 + 1e-4)  # float32 accuracies
        verdict = "comes within one dev example of" if close else "misses"
    print(
        f"\ncoarse-to-fine with halving {verdict} the grid's best dev accuracy "
        f"({best_found:.4f} vs {best_grid:.4f}; one dev example is {one_example:.4f})"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    coarse.plot_rungs(args.out / "coarse_rungs.png")
    fine.plot_rungs(args.out / "fine_rungs.png")
    print(f"wrote coarse_rungs.png and fine_rungs.png to {args.out}/")
    return {
        "member_steps": [int(np.sum(r.stop_step)) for r in (full, coarse, fine)],
        "best_dev_accuracy": {"grid": best_grid, "coarse_to_fine": best_found},
    }


if __name__ == "__main__":
    main()
