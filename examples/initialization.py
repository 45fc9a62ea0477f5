"""The course's initialisation comparison on circles: zeros, large random (x10) and He,
with decision-boundary plots, plus the init probe of a 50-layer ReLU net.

Run: python examples/initialization.py [--steps 15000] [--out init-out]
"""

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxhp


def plot_boundary(params, x, y, title, path):
    from jaxhp.plot import _pyplot, _save

    plt = _pyplot()
    xs = np.asarray(x)
    lo, hi = xs.min(axis=0) - 0.3, xs.max(axis=0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = jnp.asarray(np.column_stack([gx.ravel(), gy.ravel()]), jnp.float32)
    z = np.asarray(jaxhp.predict(params, grid)).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.contourf(gx, gy, z, alpha=0.3, cmap="coolwarm")
    ax.scatter(xs[:, 0], xs[:, 1], c=np.asarray(y), cmap="coolwarm", s=8)
    ax.set_title(title)
    return _save(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15000)
    parser.add_argument("--out", type=Path, default=Path("init-out"))
    args = parser.parse_args(argv)

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
        path = plot_boundary(
            result.params,
            *data.train,
            f"{label}: train {train_acc:.2f}",
            args.out / f"boundary_{init}.png",
        )
        print(
            f"{label:>10}: cost {float(result.history.train_cost[-1]):.4f}, train accuracy "
            f"{train_acc:.3f}, test accuracy {dev_acc:.3f}  ({path})"
        )

    probe = jaxhp.init_probe(
        jax.random.key(0), 50, 256, schemes=("he", "lecun", ("random", 0.01), ("random", 1.0))
    )
    for label, std in zip(probe.schemes, probe.activation_std):
        print(f"probe {label:>12}: activation std layer 1 {std[0]:.3g} -> layer 50 {std[-1]:.3g}")
    print(f"probe plot: {probe.plot(args.out / 'init_probe.png')}")
    return accuracies


if __name__ == "__main__":
    main()
