"""The course's initialisation comparison on circles: zeros, large random (x10) and He,
with decision-boundary plots, plus the init probe of a 50-layer ReLU net.

Run: python examples/initialization.py [--quick] [--out jaxhp-out/examples/initialization]
"""

import argparse
from pathlib import Path

import jax
import numpy as np

import jaxhp
from jaxhp import plot


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15000, help="training steps (15000)")
    parser.add_argument("--quick", action="store_true", help="6000 steps and a shallow probe")
    parser.add_argument(
        "--out", type=Path, default=Path("jaxhp-out/examples/initialization"), help="figures"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = 6000

    data = jaxhp.datasets.load("circles", n_train=300, n_dev=100, n_test=0, noise=0.05)
    base = jaxhp.TrainConfig(
        layer_sizes=(2, 10, 5, 1), steps=args.steps, eval_every=max(1, args.steps // 15)
    )
    hparams = jaxhp.HParams(learning_rate=0.01)
    accuracies = {}
    for label, init, scale in [
        ("zeros", "zeros", None),
        ("random x10", "random", 10.0),
        ("He", "he", None),
    ]:
        result = jaxhp.fit(
            jax.random.key(1), hparams, data, base.replace(init=init, init_scale=scale)
        )
        train_acc = float(result.history.train_accuracy[-1])
        dev_acc = float(result.history.dev_accuracy[-1])
        accuracies[label] = (train_acc, dev_acc)
        fig = plot.decision_boundary_figure(
            lambda g, params=result.params: np.asarray(jaxhp.predict(params, g)),
            *data.train,
            title=f"{label} init: train {train_acc:.2f}, dev {dev_acc:.2f}",
        )
        path = plot.save(fig, args.out / f"boundary_{init}.png")
        print(
            f"{label:>10}: cost {float(result.history.train_cost[-1]):.4f}, train accuracy "
            f"{train_acc:.3f}, dev accuracy {dev_acc:.3f}  ({path})"
        )

    depth = 20 if args.quick else 50
    probe = jaxhp.init_probe(
        jax.random.key(0), depth, 256, schemes=("he", "lecun", ("random", 0.01), ("random", 1.0))
    )
    for label, std in zip(probe.schemes, probe.activation_std):
        print(
            f"probe {label:>12}: activation std layer 1 {std[0]:.3g} -> layer {depth} {std[-1]:.3g}"
        )
    print(f"probe plot: {probe.plot(args.out / 'init_probe.png')}")
    return accuracies


if __name__ == "__main__":
    main()
