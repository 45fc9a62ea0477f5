"""The course's regularisation result: L2 and dropout reduce over-fitting.

As in the course's exercise: a few hundred noisy 2-D points (a smooth boundary with 10% of
the labels flipped, see :func:`noisy_boundary`), net [2, 20, 3, 1], full-batch
gradient descent with learning rate 0.3 for 30,000 steps, and three rows: no
regularisation, L2 with the course's lambda = 0.7, and dropout with its keep_prob = 0.86.
The three rows x 5 seeds are ONE sweep (one compiled program). The table gives train and
dev accuracy as mean ± std over the seeds; one decision-boundary figure per row (seed 0)
shows the over-fitted boundary next to the smoother regularised ones.

Run: python examples/regularization.py [--quick] [--out jaxhp-out/examples/regularization]
"""

import argparse
from pathlib import Path

import numpy as np

import jaxhp
from jaxhp import plot, sweep

# The course's values; each row changes one hyperparameter of the unregularised run.
ROWS = {"none": {}, "L2": {"lambd": 0.7}, "dropout": {"keep_prob": 0.86}}
LEARNING_RATE = 0.3


def noisy_boundary(n: int, *, flip: float = 0.1, seed: int = 0):
    """``n`` points uniform in [-1, 1]², class 1 above the wave x₂ = 0.3 sin(3 x₁), with a
    fraction ``flip`` of the labels flipped. Like the course's football data: a few points
    sit on the wrong side, and an unregularised net bends its boundary around them.

    Returns:
      x (n, 2) float32 and y (n,) int32, the same for the same arguments.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2))
    y = (x[:, 1] > 0.3 * np.sin(3.0 * x[:, 0])).astype(np.int32)
    y = np.where(rng.random(n) < flip, 1 - y, y)
    return x.astype(np.float32), y.astype(np.int32)


def make_data():
    """200 training points (over-fit by a long run) and 1,000 dev points from the same
    distribution, so that dev accuracy differences are not sampling noise."""
    return jaxhp.Data(train=noisy_boundary(200, seed=0), dev=noisy_boundary(1000, seed=1))


def summarise(results, seeds):
    """Per row: (train mean, train std, dev mean, dev std) over its seeds (std with ddof=1)."""
    columns = results.columns()
    table = {}
    for k, row in enumerate(ROWS):
        members = slice(k * seeds, (k + 1) * seeds)  # with_seeds: the seed varies fastest
        train, dev = columns["train_accuracy"][members], columns["dev_accuracy"][members]
        table[row] = (train.mean(), train.std(ddof=1), dev.mean(), dev.std(ddof=1))
    return table


def print_table(table, seeds):
    print(f"{'row':<9}{'train accuracy':<17}dev accuracy    (mean ± std over {seeds} seeds)")
    for row, (tr, tr_std, dv, dv_std) in table.items():
        print(f"{row:<9}{f'{tr:.3f} ± {tr_std:.3f}':<17}{dv:.3f} ± {dv_std:.3f}")
    base, spread = table["none"][2], table["none"][3]
    for row in ("L2", "dropout"):
        gain = table[row][2] - base
        verdict = "more" if gain > spread else "NOT more"
        print(f"{row}: dev accuracy {gain:+.3f} over none, {verdict} than none's std {spread:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps: a smoke run")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per row (default 5)")
    parser.add_argument(
        "--out", type=Path, default=Path("jaxhp-out/examples/regularization"), help="figures"
    )
    args = parser.parse_args(argv)
    steps = 200 if args.quick else 30_000

    data = make_data()
    config = jaxhp.TrainConfig(layer_sizes=(2, 20, 3, 1), steps=steps, eval_every=steps // 10)
    space = sweep.Space(list(ROWS.values())).with_seeds(args.seeds)
    base = jaxhp.HParams(learning_rate=LEARNING_RATE)
    results = jaxhp.run_sweep(space, data, config, base=base, progress=False)
    table = summarise(results, args.seeds)
    print(
        f"noisy boundary (10% labels flipped), {len(data.train[1])} train / "
        f"{len(data.dev[1])} dev points, net [2, 20, 3, 1],"
        f" lr {LEARNING_RATE}, {steps} steps; λ = 0.7, keep_prob = 0.86\n"
    )
    print_table(table, args.seeds)

    # One figure per row: its seed-0 member refitted for its params, all three in one
    # compiled call of the sweep's own program (so exactly the members the table counts).
    members = [k * args.seeds for k in range(len(ROWS))]
    fitted = sweep.refit_together(results, members, data, config)
    x, y = data.train
    for row, result in zip(ROWS, fitted):
        train_acc = float(result.history.train_accuracy[-1])
        dev_acc = float(result.history.dev_accuracy[-1])
        fig = plot.decision_boundary_figure(
            lambda g, params=result.params: np.asarray(jaxhp.predict(params, g)),
            x,
            y,
            title=f"{row}: train {train_acc:.3f}, dev {dev_acc:.3f} (seed 0, training points)",
        )
        print(f"{row}: decision boundary in {plot.save(fig, args.out / f'boundary_{row}.png')}")
    return table


if __name__ == "__main__":
    main()
