"""The bias/variance checklist on one dataset: split, normalise, check the split, train an
under-fitting and an over-fitting model, read the diagnoses and a learning curve.

Run: python examples/bias_variance.py [--out bias-variance-out]
"""

import argparse
from pathlib import Path

import jax
import numpy as np

import jaxhp
from jaxhp.data import Normalizer, check_shift, split


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bias-variance-out"))
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args(argv)

    x, y = jaxhp.datasets.flower(800, noise=0.25, seed=0)
    x = x * 3.0 + 5.0  # raw features far from mean 0 / std 1
    parts = split(x, y, key=0)  # course rule: 60/20/20 at this size, stratified
    norm = Normalizer().fit(parts.train[0])  # statistics from train only...
    data = jaxhp.Data(*((norm.transform(px), py) for px, py in (parts.train, parts.dev)))
    print(f"split: {[len(i) for i in parts.indices[:3]]} train/dev/test rows")
    shift = check_shift(norm.transform(parts.dev[0]), norm.transform(parts.test[0]), key=0)
    print(f"dev vs test: {shift.verdict} (AUC {shift.auc:.2f}, p = {shift.p_value:.2f})\n")

    models = {
        "tiny, short (under-fits)": jaxhp.TrainConfig(layer_sizes=(2, 1, 1), steps=300),
        "wide, long, no regularisation (over-fits)": jaxhp.TrainConfig(
            layer_sizes=(2, 200, 200, 1), steps=args.steps, optimizer="adam"
        ),
        "wide, long, L2 + dropout": jaxhp.TrainConfig(
            layer_sizes=(2, 200, 200, 1), steps=args.steps, optimizer="adam"
        ),
    }
    hparams = [
        jaxhp.HParams(learning_rate=0.1),
        jaxhp.HParams(learning_rate=0.01),
        jaxhp.HParams(lambd=0.3, keep_prob=0.8, learning_rate=0.01),
    ]
    few = jaxhp.Data(train=(data.train[0][:60], data.train[1][:60]), dev=data.dev)
    verdicts = {}
    for (name, config), hp in zip(models.items(), hparams):
        train_on = data if "tiny" in name else few  # 60 rows make over-fitting visible
        result = jaxhp.fit(jax.random.key(0), hp, train_on, config)
        diagnosis = jaxhp.diagnose(result, bayes_error=0.0)
        verdicts[name] = diagnosis.verdict
        print(f"== {name}\n{diagnosis}\n")

    config = jaxhp.TrainConfig(layer_sizes=(2, 64, 64, 1), steps=1500, optimizer="adam")
    curve = jaxhp.learning_curve(
        jax.random.key(0),
        jaxhp.HParams(learning_rate=0.01),
        data,
        config,
        sizes=np.linspace(30, len(data.train[0]), 6),
    )
    path = curve.plot(args.out / "learning_curve.png")
    print(
        f"learning curve (sizes {curve.sizes.tolist()}): dev error "
        f"{[round(float(e), 3) for e in curve.dev_error]}; more data helps: "
        f"{curve.more_data_helps}; plot in {path}"
    )
    return verdicts


if __name__ == "__main__":
    main()
