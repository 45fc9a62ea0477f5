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
    parser.add_argument(
        "--dataset", default="moons", help="built-in name (moons, circles, flower, spirals)"
    )
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-dev", type=int, default=200)
    parser.add_argument("--noise", type=float, default=None)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument(
        "--layers",
        type=_int_list,
        default=_int_list(default_layers),
        help="hidden layer widths, e.g. 20,3 (input and output are inferred)",
    )
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--init", default="he")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--patience", type=int, default=None)


def _load_data(args):
    """A built-in dataset by name, or an .npz/.csv file split train/dev/test by the course's
    rule (stratified, seeded by --data-seed). Returns the Data and the output width."""
    if args.dataset in datasets.GENERATORS:
        data = datasets.load(
            args.dataset,
            n_train=args.n_train,
            n_dev=args.n_dev,
            n_test=0,
            noise=args.noise,
            seed=args.data_seed,
        )
        n_classes = datasets.n_classes(args.dataset)
    elif args.dataset.endswith((".npz", ".csv")):
        from jaxhp.data import load_file, split

        x, y = load_file(args.dataset)
        data = split(x, y, key=args.data_seed).data()
        n_classes = int(y.max()) + 1
    else:
        raise ValueError(
            f"--dataset must be one of {', '.join(datasets.GENERATORS)} or an "
            f".npz/.csv file, got {args.dataset!r}"
        )
    return data, n_classes if n_classes > 2 else 1


def _config(args, data, n_out):
    from jaxhp.records import TrainConfig

    n_x = np.asarray(data.train[0]).shape[1]
    return TrainConfig(
        layer_sizes=(n_x, *args.layers, n_out),
        steps=args.steps,
        activation=args.activation,
        init=args.init,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        eval_every=args.eval_every,
        patience=args.patience,
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
    status = (
        "diverged"
        if bool(result.diverged)
        else f"stopped early at step {stop}"
        if stop < config.steps
        else f"ran all {stop} steps"
    )
    print(
        f"final: train accuracy {history.train_accuracy[-1]:.4f}, "
        f"dev accuracy {history.dev_accuracy[-1]:.4f} ({status})"
    )
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


def _axis(text: str, name: str):
    """A sweep axis: comma-separated values (``a/b`` is a per-layer keep_prob), or
    ``loguniform:a:b`` / ``uniform:a:b`` for random search."""
    from jaxhp import sweep

    kind, _, rest = text.partition(":")
    if kind in ("loguniform", "uniform"):
        try:
            a, b = (float(v) for v in rest.split(":"))
        except ValueError as err:
            raise ValueError(f"--{name} {text!r}: expected {kind}:a:b") from err
        return getattr(sweep, kind)(a, b)
    try:
        return [
            tuple(float(p) for p in v.split("/")) if "/" in v else float(v) for v in text.split(",")
        ]
    except ValueError as err:
        raise ValueError(
            f"--{name} {text!r}: expected comma-separated numbers, or "
            "loguniform:a:b / uniform:a:b with --random N"
        ) from err


def _space(args):
    from jaxhp import sweep

    axes = {
        "lambd": _axis(args.lambd, "lambd"),
        "keep_prob": _axis(args.keep_prob, "keep-prob"),
        "learning_rate": _axis(args.learning_rate, "learning-rate"),
    }
    if args.random is None:
        for name, values in axes.items():
            if not isinstance(values, list):
                raise ValueError(
                    f"--{name.replace('_', '-')} is a distribution; add "
                    "--random N to draw N members from it"
                )
        return sweep.grid(seeds=args.seeds, **axes)
    return sweep.random(args.seed, args.random, seeds=args.seeds, **axes)


def _start_jax(args):
    """Before any JAX computation: give every core a device, and join a cluster if asked."""
    import os

    from jaxhp import distributed as dist
    from jaxhp.sweep import use_cpu_cores

    cluster = None
    if args.coordinator or args.num_processes is not None or args.process_id is not None:
        cluster = dist.Cluster(args.coordinator, args.num_processes, args.process_id, args.timeout)
    elif args.distributed:
        cluster = dist.Cluster(timeout_s=args.timeout)
    if cluster is not None:
        dist.validate(cluster)
    chosen = "JAX_NUM_CPU_DEVICES" in os.environ or "device_count" in os.environ.get(
        "XLA_FLAGS", ""
    )
    if not chosen and os.environ.get("JAX_PLATFORMS", "cpu") == "cpu":
        try:
            use_cpu_cores()
        except RuntimeError:
            pass  # JAX already started in this process (e.g. main() called from Python)
    if cluster is not None:
        dist.initialize(cluster)
    return cluster


def _sweep(args) -> int:
    from jaxhp.sweep import run_sweep

    cluster = _start_jax(args)
    data, n_out = _load_data(args)
    config = _config(args, data, n_out)
    space = _space(args)
    results = run_sweep(
        space,
        data,
        config,
        seed=args.seed,
        chunk_size=args.chunk_size,
        checkpoint=args.checkpoint,
        progress=not args.quiet,
        distributed=cluster is not None,
    )
    meta = results.meta
    if meta["processes"] > 1 and not _is_main():
        print(
            f"process trained its {meta['members_this_process']} members; process 0 "
            "writes the results"
        )
        return 0
    print(
        f"trained {meta['members']} members in {meta['seconds']:.1f} s "
        f"({meta['chunks_run']} chunk(s) of {meta['chunk_size']}, "
        f"{meta['members_from_checkpoint']} from checkpoint)"
    )
    if results.diverged_members:
        print(f"diverged (flagged, excluded from the ranking): {results.diverged_members}")
    print(_format_rows(results.top(args.top)))
    best = results.best()
    print(
        f"\nbest member #{best['member']}: lambd={best['lambd']:.4g} "
        f"keep_prob={_keep_text(best)} learning_rate={best['learning_rate']:.4g} "
        f"seed={best['seed']}"
    )
    print(results.diagnosis(best["member"], bayes_error=args.bayes_error))
    out = Path(args.out)
    results.to_csv(out / "results.csv")
    results.to_json(out / "results.json")
    y_axis = "keep_prob" if "keep_prob" in results.columns() else "keep_prob_1"
    try:
        results.plot_heatmap(out / "heatmap.png", x="lambd", y=y_axis)
        results.plot_curves(out / "curves.png", top=min(args.top, 5))
    except ImportError as err:  # matplotlib is optional: keep the table, say what is missing
        print(f"wrote results.csv and results.json to {out}/ (no plots: {err})")
        return 0
    print(f"wrote results.csv, results.json, heatmap.png and curves.png to {out}/")
    return 0


def _is_main() -> bool:
    import jax

    return jax.process_index() == 0


def _keep_text(row) -> str:
    if "keep_prob" in row:
        return f"{row['keep_prob']:.4g}"
    return "/".join(f"{v:.3g}" for k, v in row.items() if k.startswith("keep_prob_"))


def _format_rows(rows) -> str:
    lines = [
        f"{'member':>6} {'seed':>4} {'lambd':>9} {'keep_prob':>11} {'lr':>8} "
        f"{'train acc':>9} {'dev acc':>8} {'dev cost':>9} {'stop':>6}"
    ]
    for r in rows:
        lines.append(
            f"{r['member']:>6} {r['seed']:>4} {r['lambd']:>9.4g} {_keep_text(r):>11} "
            f"{r['learning_rate']:>8.4g} {r['train_accuracy']:>9.4f} "
            f"{r['dev_accuracy']:>8.4f} {r['dev_cost']:>9.4f} {r['stop_step']:>6}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxhp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one configuration on a built-in dataset")
    _add_data_args(train, "20,3")
    train.add_argument("--lambd", type=float, default=0.0)
    train.add_argument(
        "--keep-prob", default="1.0", help="scalar, or one value per hidden layer: 0.8,0.9"
    )
    train.add_argument("--learning-rate", "--lr", type=float, default=0.3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--save", type=Path, default=None, help="write params to this .npz")
    train.add_argument("--plot", type=Path, default=None, help="write the cost curve PNG")
    train.set_defaults(run=_train)

    sweep = commands.add_parser(
        "sweep", help="train a lambd x keep_prob x learning-rate sweep in one program"
    )
    _add_data_args(sweep, "20,3")
    sweep.add_argument(
        "--lambd",
        default="0,0.01,0.1,1,3,10",
        help="values a,b,c or loguniform:a:b / uniform:a:b with --random",
    )
    sweep.add_argument(
        "--keep-prob",
        default="0.5,0.6,0.7,0.8,0.9,1.0",
        help="values (0.8/0.9 = per hidden layer) or uniform:a:b",
    )
    sweep.add_argument("--learning-rate", "--lr", default="0.3", help="values or loguniform:a:b")
    sweep.add_argument(
        "--random", type=int, default=None, help="draw N random members instead of a grid"
    )
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per point")
    sweep.add_argument("--seed", type=int, default=0, help="base seed")
    sweep.add_argument("--chunk-size", default="auto", type=lambda v: v if v == "auto" else int(v))
    sweep.add_argument("--checkpoint", default=None, help="folder for resumable chunks")
    sweep.add_argument("--out", default="jaxhp-out", help="folder for results and plots")
    sweep.add_argument("--top", type=int, default=5, help="members to print")
    sweep.add_argument("--bayes-error", type=float, default=0.0)
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    cluster = sweep.add_argument_group("several processes or hosts (jax.distributed)")
    cluster.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    cluster.add_argument("--num-processes", type=int, default=None)
    cluster.add_argument("--process-id", type=int, default=None)
    cluster.add_argument(
        "--distributed",
        action="store_true",
        help="join a cluster described by the environment (SLURM, ...)",
    )
    cluster.add_argument(
        "--timeout",
        type=int,
        default=60,
        help="seconds to wait for a missing process before failing",
    )
    sweep.set_defaults(run=_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        print(f"jaxhp {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
