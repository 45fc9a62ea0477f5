"""The bias/variance recipe on one dataset, step by step.

1. Split 60/20/20, normalise with the training statistics, check that dev and test match.
   Flower's petals overlap at noise 0.25: no classifier errs less than its Bayes error
   (7.4%, from the generator's class densities), the level avoidable bias is measured from.
2. A tiny model trained briefly under-fits: high bias (the recipe: a bigger network).
3. A wide model trained long on 60 rows over-fits: high variance (the recipe: regularise,
   or get more data).
4. Regularise: one sweep over lambda and keep_prob (3 seeds each) on the same 60 rows. It
   narrows the train/dev gap; the configuration with the best mean dev error is then
   checked on the test set, untouched so far.
5. More data: a learning curve from the same 60 rows up, of a (2, 64, 64, 1) net without
   regularisation (smaller than the swept one, to keep the run short). The example ends by
   saying which cure gained more dev error here, and whether the regularising gain stands
   above the spread of the unregularised config's own seeds (with 60 rows of petals, most
   of the gap is data the model never saw, so more data wins).

Run: python examples/bias_variance.py [--quick] [--out jaxhp-out/examples/bias_variance]
"""

import argparse
import warnings
from pathlib import Path

import jax
import numpy as np

import jaxhp
from jaxhp import sweep
from jaxhp.data import Normalizer, check_shift, split

FEW = 60  # training rows for the over-fitting model
NOISE = 0.25
# The petals overlap: no classifier errs less than this on flower at this noise (the
# generator's own class densities), so the diagnoses measure avoidable bias against it.
BAYES = jaxhp.datasets.bayes_error("flower", NOISE)
WIDE = (2, 200, 200, 1)


def mean_errors(results, n_configs: int, seeds: int):
    """Mean train and dev error per configuration (members are config-major, seed fastest)."""
    cols = results.columns()
    train = 1 - cols["train_accuracy"].reshape(n_configs, seeds).mean(axis=1)
    dev = 1 - cols["dev_accuracy"].reshape(n_configs, seeds).mean(axis=1)
    return train, dev


# One compile serves every fit of the same config and data shapes (hparams are traced).
fit = jax.jit(jaxhp.fit, static_argnums=3)


def test_error(hparams, data, config, test, seeds: int) -> float:
    """Mean test error over ``seeds`` fits of one configuration (the sweep's member keys)."""
    errors = []
    for seed in range(seeds):
        result = fit(sweep.member_key(0, seed), hparams, data, config)
        errors.append(1 - float(jaxhp.accuracy(result.params, *test)))
    return float(np.mean(errors))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps of the wide model")
    parser.add_argument("--quick", action="store_true", help="fewer steps and configurations")
    parser.add_argument(
        "--out", type=Path, default=Path("jaxhp-out/examples/bias_variance"), help="figures"
    )
    args = parser.parse_args(argv)
    # A model that memorises the 60 rows errs less than the Bayes error on them: each
    # diagnosis says so in a note, so diagnose()'s warning would repeat it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="bayes_error .* is above train_error")
        return run(args)


def run(args):
    steps = 300 if args.quick else args.steps

    x, y = jaxhp.datasets.flower(800, noise=NOISE, seed=0)
    x = x * 3.0 + 5.0  # raw features far from mean 0 / std 1
    parts = split(x, y, key=0)  # course rule: 60/20/20 at this size, stratified
    norm = Normalizer().fit(parts.train[0])  # statistics from train only...
    train, dev, test = ((norm.transform(px), py) for px, py in parts[:3])  # ...reused on dev/test
    print(f"split: {[len(i) for i in parts.indices[:3]]} train/dev/test rows")
    print(f"Bayes error of flower at noise {NOISE}: {BAYES:.1%} (the best any classifier does)")
    shift = check_shift(dev[0], test[0], key=0)
    print(f"dev vs test: {shift.verdict} (AUC {shift.auc:.2f}, p = {shift.p_value:.2f})\n")

    verdicts = {}
    tiny = jaxhp.TrainConfig(layer_sizes=(2, 1, 1), steps=300)
    data = jaxhp.Data(train, dev)
    result = jaxhp.fit(jax.random.key(0), jaxhp.HParams(learning_rate=0.1), data, tiny)
    diagnosis = jaxhp.diagnose(result, bayes_error=BAYES)
    verdicts["tiny, short (under-fits)"] = diagnosis.verdict
    print(f"== tiny, short (under-fits)\n{diagnosis}\n")

    few = jaxhp.Data(train=(train[0][:FEW], train[1][:FEW]), dev=dev)
    wide = jaxhp.TrainConfig(layer_sizes=WIDE, steps=steps, optimizer="adam")
    plain = jaxhp.HParams(learning_rate=0.01)
    result = fit(sweep.member_key(0, 0), plain, few, wide)
    diagnosis = jaxhp.diagnose(result, bayes_error=BAYES)
    verdicts["wide, long, no regularisation (over-fits)"] = diagnosis.verdict
    print(f"== wide, long, {FEW} rows, no regularisation (over-fits)\n{diagnosis}\n")

    # Regularise: one sweep, then the best mean dev error among the regularised configs.
    seeds = 1 if args.quick else 3
    lambds = [0.0, 1.0] if args.quick else [0.0, 0.3, 1.0, 3.0, 10.0]
    keeps = [1.0] if args.quick else [1.0, 0.8, 0.6]
    space = sweep.grid(lambd=lambds, keep_prob=keeps, seeds=seeds)
    results = jaxhp.run_sweep(space, few, wide, base=plain, progress=False)
    configs = [(lam, kp) for lam in lambds for kp in keeps]
    train_err, dev_err = mean_errors(results, len(configs), seeds)
    best = 1 + int(np.argmin(dev_err[1:]))  # config 0 is the unregularised one
    lam, kp = configs[best]
    print(f"== regularise: sweep of {len(configs)} configs x {seeds} seed(s) on the {FEW} rows")
    print(f"{'lambd':>6} {'keep_prob':>9} {'train err':>9} {'dev err':>8} {'variance':>8}")
    for (lam_k, kp_k), tr, dv in zip(configs, train_err, dev_err):
        mark = "  <- best dev" if (lam_k, kp_k) == (lam, kp) else ""
        print(f"{lam_k:>6.3g} {kp_k:>9.3g} {tr:>9.2%} {dv:>8.2%} {dv - tr:>+8.2%}{mark}")
    chosen = plain._replace(lambd=lam, keep_prob=kp)
    before, after = (test_error(hp, few, wide, test, seeds) for hp in (plain, chosen))
    variance = dev_err - train_err
    tightest = int(np.argmin(variance))
    over = "one seed" if seeds == 1 else f"mean of {seeds} seeds"
    on_test = "" if after < before else ": no better on test, so the dev gain may be noise"
    print(
        f"dev error, unregularised -> best regularised (lambd={lam:g}, keep_prob={kp:g}): "
        f"{dev_err[0]:.1%} -> {dev_err[best]:.1%} (variance {variance[0]:.1%} -> "
        f"{variance[best]:.1%}); test error, untouched until now ({over}): "
        f"{before:.1%} -> {after:.1%}{on_test}. The smallest gap ({variance[tightest]:.1%}, "
        f"lambd={configs[tightest][0]:.3g}) comes from a train error of "
        f"{train_err[tightest]:.1%}: trading variance for bias\n"
    )

    # More data: the learning curve of a wide model without regularisation.
    curve = jaxhp.learning_curve(
        jax.random.key(0),
        plain,
        data,
        wide.replace(layer_sizes=(2, 64, 64, 1), steps=min(steps, 1500)),
        sizes=np.linspace(FEW, len(train[0]), 3 if args.quick else 6),  # from the same 60
        bayes_error=BAYES,
    )
    path = curve.plot(args.out / "learning_curve.png")
    print(
        f"== more data: dev error {[round(float(e), 3) for e in curve.dev_error]} at sizes "
        f"{curve.sizes.tolist()}; plot in {path}"
    )
    by_data = float(curve.dev_error[0] - curve.dev_error[-1])
    by_regularising = float(dev_err[0] - dev_err[best])
    plain_seeds = 1 - results.columns()["dev_accuracy"].reshape(len(configs), seeds)[0]
    spread = float(plain_seeds.max() - plain_seeds.min())
    winner = "more data" if by_data > by_regularising else "regularising"
    if seeds == 1:
        within = ": no spread to tell it from noise"
    elif by_regularising < spread:
        within = f", less than the {spread:.1%} spread of the unregularised seeds: noise"
    else:
        within = ""
    print(
        f"dev error gained: {by_regularising:.1%} by regularising the {WIDE} net on {FEW} rows "
        f"({over}{within}); {by_data:.1%} by training on {curve.sizes[-1]} "
        f"rows instead of {curve.sizes[0]} (the learning curve's (2, 64, 64, 1) net, one "
        f"seed): here {winner} is the better cure"
    )
    return verdicts


if __name__ == "__main__":
    main()
