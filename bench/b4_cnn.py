"""Benchmark B4 of shared/BENCH.md: a user's own CNN on scikit-learn's 8x8 digits.

The model is written here, not by jaxhp: conv 3x3x8 (SAME) -> ReLU -> 2x2 average pool ->
dropout -> dense 10, with ``jaxhp.dropout`` inside ``apply``. 32 configurations (lambd x
keep_prob x momentum), 300 steps of SGD with momentum from the member's hparams, batches
of 100; 1,200 train images and the other 597 as dev.

Rows: the jaxhp sweep (one compiled program); a careful sequential ``jit(lax.scan)`` per
configuration (compiled once, looped in Python); PyTorch sequential and ``torch.func.vmap``
when torch is importable (else reported as skipped). Every row starts from a cold JAX cache,
so "first" includes compilation; "median" is the median of the timed repeats after it.

Run: python bench/b4_cnn.py [--quick]
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import (
    accuracy_agreement,
    import_torch,
    scaled,
    skipped,
    start_backend,
    table,
    timed,
    timed_sweep,
    torch_device,
    write,
)

import jaxhp
from jaxhp import sweep
from jaxhp.models import Model

CHANNELS, N_CLASSES = 8, 10


# ----------------------------------------------------------------------------------------
# Workload
# ----------------------------------------------------------------------------------------
def workload(quick: bool) -> dict:
    data = jaxhp.datasets.load("digits", n_train=1200, n_dev=597, n_test=0, seed=0)
    if quick:
        lambdas, keeps, momenta = [0.0, 1.0], [0.7], [0.9]
    else:
        lambdas, keeps, momenta = [0.0, 0.3, 1.0, 3.0], [0.5, 0.7, 0.85, 1.0], [0.0, 0.9]
    configs = [
        (lam, kp, mu) for lam in lambdas for kp in keeps for mu in momenta
    ]  # (lambd, keep_prob, momentum)
    return {
        "data": data,
        "configs": configs,
        "learning_rate": 0.05,
        "steps": 5 if quick else 300,
        "batch": 100,
        "repeats": 1 if quick else 3,  # timed repeats of the torch rows
    }


# ----------------------------------------------------------------------------------------
# The user's model, in plain JAX
# ----------------------------------------------------------------------------------------
def _conv(x, w, b):
    z = jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return z + b.reshape(1, 1, 1, -1)


def _avg_pool(a):
    window = (1, 2, 2, 1)
    return jax.lax.reduce_window(a, np.float32(0), jax.lax.add, window, window, "VALID") / 4


def init_params(key):
    k_conv, k_dense = jax.random.split(key)
    flat = 4 * 4 * CHANNELS
    return {
        "conv_w": jax.random.normal(k_conv, (3, 3, 1, CHANNELS)) * math.sqrt(2 / 9),
        "conv_b": jnp.zeros(CHANNELS),
        "dense_w": jax.random.normal(k_dense, (flat, N_CLASSES)) * math.sqrt(2 / flat),
        "dense_b": jnp.zeros(N_CLASSES),
    }


def user_model() -> Model:
    def apply(params, x, *, key, hparams):
        a = _avg_pool(jax.nn.relu(_conv(x, params["conv_w"], params["conv_b"])))
        if key is not None:
            a = jaxhp.dropout(key, a, hparams.keep_prob)
        return a.reshape(a.shape[0], -1) @ params["dense_w"] + params["dense_b"][None, :]

    return Model(init=init_params, apply=apply)


def sgd_momentum(hp):
    return optax.sgd(hp.learning_rate, momentum=hp.momentum)


# ----------------------------------------------------------------------------------------
# Rows
# ----------------------------------------------------------------------------------------
def jaxhp_row(w):
    config = jaxhp.TrainConfig(
        model=user_model(),
        steps=w["steps"],
        batch_size=w["batch"],
        optimizer=sgd_momentum,
        eval_every=w["steps"],
    )
    space = sweep.Space(
        [
            {
                "lambd": lam,
                "keep_prob": kp,
                "momentum": mu,
                "learning_rate": w["learning_rate"],
                "seed": i,
            }
            for i, (lam, kp, mu) in enumerate(w["configs"])
        ]
    )
    return timed_sweep(space, w["data"], config)


def plain_jax_trainer(w):
    """What a careful JAX user writes without vmap: one jit(lax.scan) run per config,
    compiled once (every hyperparameter is a traced argument)."""
    x, y = (jnp.asarray(a) for a in w["data"].train)
    x_dev, y_dev = (jnp.asarray(a) for a in w["data"].dev)
    m, steps, batch = x.shape[0], w["steps"], w["batch"]

    def logits(params, xb, key, kp):
        a = _avg_pool(jax.nn.relu(_conv(xb, params["conv_w"], params["conv_b"])))
        if key is not None:
            keep = jax.random.bernoulli(key, kp, a.shape)
            a = jnp.where(keep, a / kp, 0.0)
        return a.reshape(a.shape[0], -1) @ params["dense_w"] + params["dense_b"][None, :]

    def cost(params, xb, yb, key, kp, lambd):
        ce = optax.softmax_cross_entropy_with_integer_labels(logits(params, xb, key, kp), yb)
        l2 = jnp.sum(params["conv_w"] ** 2) + jnp.sum(params["dense_w"] ** 2)
        return jnp.mean(ce) + lambd / (2 * m) * l2

    @jax.jit
    def train(key, lambd, kp, momentum, lr):
        init_key, step_key, batch_key = jax.random.split(key, 3)
        params = init_params(init_key)
        opt = optax.sgd(lr, momentum=momentum)

        def step(carry, t):
            params, state = carry
            rows = jax.random.choice(jax.random.fold_in(batch_key, t), m, (batch,), replace=False)
            grads = jax.grad(cost)(
                params, x[rows], y[rows], jax.random.fold_in(step_key, t), kp, lambd
            )
            updates, state = opt.update(grads, state)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
        return jnp.mean(jnp.argmax(logits(params, x_dev, None, 1.0), axis=1) == y_dev)

    return train


def plain_jax_row(w):
    train = plain_jax_trainer(w)
    lr = w["learning_rate"]
    out = {}

    def run():
        out["acc"] = [
            float(train(jax.random.key(i), lam, kp, mu, lr))
            for i, (lam, kp, mu) in enumerate(w["configs"])
        ]

    return timed(run), np.asarray(out["acc"])


def _torch_data(torch, w):
    x, y = w["data"].train
    x_dev, y_dev = w["data"].dev
    nchw, device = (0, 3, 1, 2), torch_device(torch)
    return (
        torch.as_tensor(np.ascontiguousarray(x.transpose(nchw)), device=device),
        torch.as_tensor(y, device=device).long(),
        torch.as_tensor(np.ascontiguousarray(x_dev.transpose(nchw)), device=device),
        torch.as_tensor(y_dev, device=device).long(),
    )


def torch_sequential_row(w, n_configs: int):
    torch = import_torch()
    if torch is None:
        return skipped("torch not installed"), None
    F = torch.nn.functional
    x, y, x_dev, y_dev = _torch_data(torch, w)
    m = x.shape[0]
    configs = w["configs"][:n_configs]
    accs = []

    def train_one(i, lam, kp, mu):
        torch.manual_seed(i)
        conv = torch.nn.Conv2d(1, CHANNELS, 3, padding=1)
        dense = torch.nn.Linear(4 * 4 * CHANNELS, N_CLASSES)
        for layer in (conv, dense):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            torch.nn.init.zeros_(layer.bias)
        conv, dense = conv.to(x.device), dense.to(x.device)
        params = [*conv.parameters(), *dense.parameters()]
        opt = torch.optim.SGD(params, lr=w["learning_rate"], momentum=mu)
        for _ in range(w["steps"]):
            rows = torch.randperm(m, device=x.device)[: w["batch"]]
            a = F.avg_pool2d(torch.relu(conv(x[rows])), 2)
            a = F.dropout(a, p=1 - kp, training=True)
            ce = F.cross_entropy(dense(a.flatten(1)), y[rows])
            l2 = lam / (2 * m) * ((conv.weight**2).sum() + (dense.weight**2).sum())
            opt.zero_grad()
            (ce + l2).backward()
            opt.step()
        with torch.no_grad():
            z = dense(F.avg_pool2d(torch.relu(conv(x_dev)), 2).flatten(1))
            return float((z.argmax(1) == y_dev).float().mean())

    def run():
        accs[:] = [train_one(i, *c) for i, c in enumerate(configs)]

    timing = timed(run, repeats=w["repeats"])
    return scaled(timing, len(w["configs"]) / len(configs)), np.asarray(accs)


def torch_vmap_row(w):
    torch = import_torch()
    if torch is None:
        return skipped("torch not installed"), None
    from torch.func import grad, vmap

    F = torch.nn.functional
    x, y, x_dev, y_dev = _torch_data(torch, w)
    m, n = x.shape[0], len(w["configs"])
    cfg = torch.tensor(w["configs"], dtype=torch.float32, device=x.device)
    lam, kp, mu = cfg[:, 0], cfg[:, 1], cfg[:, 2]
    lr = w["learning_rate"]

    def forward(p, xb):
        return F.avg_pool2d(torch.relu(F.conv2d(xb, p[0], p[1], padding=1)), 2)

    def loss(p, lam, kp, xb, yb):
        a = forward(p, xb)
        a = a * (torch.rand_like(a) < kp) / kp
        ce = F.cross_entropy(a.flatten(1) @ p[2] + p[3], yb)
        return ce + lam / (2 * m) * ((p[0] ** 2).sum() + (p[2] ** 2).sum())

    grads = vmap(grad(loss), in_dims=(0, 0, 0, None, None), randomness="different")
    accs = []

    def run():
        torch.manual_seed(0)
        flat = 4 * 4 * CHANNELS
        on = {"device": x.device}
        params = [
            torch.randn(n, CHANNELS, 1, 3, 3, **on) * (2 / 9) ** 0.5,
            torch.zeros(n, CHANNELS, **on),
            torch.randn(n, flat, N_CLASSES, **on) * (2 / flat) ** 0.5,
            torch.zeros(n, N_CLASSES, **on),
        ]
        velocity = [torch.zeros_like(p) for p in params]
        for _ in range(w["steps"]):
            rows = torch.randperm(m, device=x.device)[: w["batch"]]
            g = grads(params, lam, kp, x[rows], y[rows])
            for j, (p, v, gp) in enumerate(zip(params, velocity, g)):
                shape = (-1, *[1] * (p.dim() - 1))
                velocity[j] = mu.view(shape) * v + gp
                params[j] = p - lr * velocity[j]
        with torch.no_grad():
            z = vmap(lambda p: forward(p, x_dev).flatten(1) @ p[2] + p[3])(params)
            accs[:] = (z.argmax(-1) == y_dev).float().mean(1).tolist()

    return timed(run, repeats=w["repeats"]), np.asarray(accs)


def run(quick: bool, widths: tuple[int, ...] = ()) -> dict:
    w = workload(quick)
    rows = []

    def add(name, timing, note):
        rows.append({"row": name, **timing, "note": note})
        jax.clear_caches()

    jax.clear_caches()
    t_jaxhp, acc_jaxhp = jaxhp_row(w)
    add("jaxhp sweep", t_jaxhp, "one compiled program")
    default_width = sweep.ACCELERATOR_GROUP_WIDTH
    if jax.default_backend() == "cpu":
        widths = ()  # the CPU trains a convolving model one member at a time
    for width in widths:  # on an accelerator: how much do the padded lanes cost?
        sweep.ACCELERATOR_GROUP_WIDTH = width
        try:
            timing, _ = jaxhp_row(w)
        finally:
            sweep.ACCELERATOR_GROUP_WIDTH = default_width
        add(f"jaxhp sweep, {width} lanes a vmap", timing, f"default {default_width}")
    t_plain, acc_plain = plain_jax_row(w)
    add("plain JAX+optax sequential", t_plain, "jit(lax.scan), compiled once, per config")
    n_torch = 1 if quick else 8
    t_torch, _ = torch_sequential_row(w, n_torch)
    add("PyTorch sequential", t_torch, f"{n_torch} configs, scaled to {len(w['configs'])}")
    t_vmap, _ = torch_vmap_row(w)
    add("torch.func.vmap", t_vmap, "randomness='different'")
    base = rows[0]
    for row in rows:
        if "first_s" in row:
            row["x_vs_jaxhp_first"] = row["first_s"] / base["first_s"]
            row["x_vs_jaxhp_median"] = row["median_s"] / base["median_s"]
    return {
        "rows": rows,
        "accuracy_vs_plain_jax": accuracy_agreement(acc_jaxhp, acc_plain, len(w["data"].dev[1])),
        "configs": len(w["configs"]),
        "steps": w["steps"],
        "batch": w["batch"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2 configs, 5 steps")
    parser.add_argument(
        "--accelerator-widths",
        default="",
        help="comma-separated vmap widths for extra jaxhp rows on a GPU/TPU (the default "
        "width pads the 32 configs to 64 lanes); no effect on the CPU",
    )
    args = parser.parse_args(argv)
    try:
        widths = tuple(int(v) for v in args.accelerator_widths.split(",") if v.strip())
    except ValueError:
        parser.error(f"--accelerator-widths takes integers, got {args.accelerator_widths!r}")
    if any(width < 1 for width in widths):
        parser.error(f"--accelerator-widths must be at least 1, got {args.accelerator_widths}")
    start_backend()  # no row pays for it
    result = run(args.quick, widths)
    print(f"## B4: user CNN on digits ({result['configs']} configs, {result['steps']} steps)")
    print(
        table(
            result["rows"],
            [
                ("row", "row"),
                ("first_s", "first (s)"),
                ("median_s", "median (s)"),
                ("compile_s", "compile (s)"),
                ("x_vs_jaxhp_first", "x jaxhp, first"),
                ("x_vs_jaxhp_median", "x jaxhp, median"),
                ("note", "note"),
                ("skipped", "skipped"),
            ],
        )
    )
    print("accuracy vs plain JAX:", result["accuracy_vs_plain_jax"])
    print("wrote", write("b4_cnn", result, quick=args.quick))


if __name__ == "__main__":
    main()
