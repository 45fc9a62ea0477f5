"""The ``jaxhp`` command: ``jaxhp train`` (one run) and ``jaxhp sweep`` (many at once)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from jaxhp import datasets


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from err


def _keep_prob(text: str):
    values = [float(part) for part in text.split(",")]
    return values[0] if len(values) == 1 else np.asarray(values, np.float32)


def _add_data_args(parser: argparse.ArgumentParser, default_layers: str):
    parser.add_argument("--dataset", default="moons",
                        help="built-in name (moons, circles, flower, spirals)")
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-dev", type=int, default=200)
    parser.add_argument("--noise", type=float, default=None)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--layers", type=_int_list, default=_int_list(default_layers),
                        help="hidden layer widths, e.g. 20,3 (input and output are inferred)")
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--init", default="he")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--patience", type=int, default=None)


def _load_data(args):
    data = datasets.load(args.dataset, n_train=args.n_train, n_dev=args.n_dev, n_test=0,
                         noise=args.noise, seed=args.data_seed)
    n_out = datasets.n_classes(args.dataset)
    return data, n_out if n_out > 2 else 1


def _config(args, data, n_out):
    from jaxhp.records import TrainConfig

    n_x = np.asarray(data.train[0]).shape[1]
    return TrainConfig(
        layer_sizes=(n_x, *args.layers, n_out), steps=args.steps, activation=args.activation,
        init=args.init, optimizer=args.optimizer, batch_size=args.batch_size,
        eval_every=args.eval_every, patience=args.patience,
        restore_best=args.patience is not None,
    )


def _train(args) -> int:
    import jax

    from jaxhp.records import HParams
    from jaxhp.train import fit

    data, n_out = _load_data(args)
    config = _config(args, data, n_out)

    def progress(record):
        print(
            f"step {int(record['step']):>6}  train J {float(record['train_cost']):.4f}  "
            f"train acc {float(record['train_accuracy']):.3f}  "
            f"dev cost {float(record['dev_cost']):.4f}  "
            f"dev acc {float(record['dev_accuracy']):.3f}",
            flush=True,
        )

    hparams = HParams(args.lambd, _keep_prob(args.keep_prob), args.learning_rate)
    result = fit(jax.random.key(args.seed), hparams, data, config, on_eval=progress)
    jax.effects_barrier()
    history = jax.device_get(result.history)
    stop = int(result.stop_step)
    status = ("diverged" if bool(result.diverged)
              else f"stopped early at step {stop}" if stop < config.steps
              else f"ran all {stop} steps")
    print(f"final: train accuracy {history.train_accuracy[-1]:.4f}, "
          f"dev accuracy {history.dev_accuracy[-1]:.4f} ({status})")
    if args.save:
        flat = {}
        for i, layer in enumerate(result.params):
            flat[f"W{i + 1}"] = np.asarray(layer.W)
            flat[f"b{i + 1}"] = np.asarray(layer.b)
        np.savez(args.save, **flat)
        print(f"saved params to {args.save}")
    if args.plot:
        from jaxhp.plot import plot_cost

        print(f"saved cost curve to {plot_cost(history, args.plot)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxhp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one configuration on a built-in dataset")
    _add_data_args(train, "20,3")
    train.add_argument("--lambd", type=float, default=0.0)
    train.add_argument("--keep-prob", default="1.0",
                       help="scalar, or one value per hidden layer: 0.8,0.9")
    train.add_argument("--learning-rate", "--lr", type=float, default=0.3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--save", type=Path, default=None, help="write params to this .npz")
    train.add_argument("--plot", type=Path, default=None, help="write the cost curve PNG")
    train.set_defaults(run=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"jaxhp {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
