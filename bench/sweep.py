"""Benchmarks B1 (course-scale sweep) and B2 (medium MLP, FLOP-bound) of shared/BENCH.md.

Rows (B1): jaxhp sweep; plain JAX + optax sequential (one jit(lax.scan) per config, looped
in Python); naive JAX (a jitted step called per step, per config); PyTorch sequential;
torch.func.vmap over all configs; the jaxhp sweep with keep_prob = 1 (the dropout floor).
Every row is timed from a cold JAX cache, so "first" includes compilation; "median" is
the median of the timed repeats after it. Slow peers may run on a subset of the configs
and be scaled to the full sweep; the table says so.

Run: python bench/sweep.py [--quick] [--only b1|b2]
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import (
    accuracy_agreement,
    import_torch,
    scaled,
    skipped,
    table,
    timed,
    timed_sweep,
    write,
)

import jaxhp
from jaxhp import sweep


# ----------------------------------------------------------------------------------------
# Workloads
# ----------------------------------------------------------------------------------------
def b1_workload(quick: bool):
    x, y = jaxhp.datasets.moons(1000, noise=0.25, seed=0)
    x_dev, y_dev = jaxhp.datasets.moons(1000, noise=0.25, seed=1)
    n = 2 if quick else 8
    lambdas = np.logspace(-3, 1, n)
    keep = np.linspace(0.5, 1.0, n)
    configs = [(float(lam), float(kp), 0.3) for lam in lambdas for kp in keep]
    return {
        "name": "B1",
        "data": jaxhp.Data(train=(x, y), dev=(x_dev, y_dev)),
        "sizes": (2, 20, 3, 1),
        "steps": 20 if quick else 2000,
        "batch": None,
        "configs": configs,
        "repeats": 1 if quick else 3,  # timed repeats of the slow peer rows
    }


def b2_workload(quick: bool):
    rng = np.random.default_rng(0)
    m, n_x, k = (256, 16, 10) if quick else (16384, 784, 10)
    teacher = rng.normal(size=(n_x, k))
    x = rng.normal(size=(m + 2048, n_x)).astype(np.float32)
    y = np.argmax(x @ teacher + rng.normal(size=(m + 2048, k)), axis=1).astype(np.int32)
    n_configs = 2 if quick else 16
    lambdas = np.logspace(-3, 0, n_configs)
    return {
        "name": "B2",
        "data": jaxhp.Data(train=(x[:m], y[:m]), dev=(x[m:], y[m:])),
        "sizes": (n_x, 16, 16, k) if quick else (n_x, 256, 256, k),
        "steps": 5 if quick else 200,
        "batch": 256,
        "configs": [(float(lam), 0.8, 0.1) for lam in lambdas],
    }


# ----------------------------------------------------------------------------------------
# Rows
# ----------------------------------------------------------------------------------------
def jaxhp_row(w, *, keep_prob_one: bool = False):
    config = jaxhp.TrainConfig(
        layer_sizes=w["sizes"], steps=w["steps"], batch_size=w["batch"], eval_every=w["steps"]
    )
    members = [
        {"lambd": lam, "keep_prob": 1.0 if keep_prob_one else kp, "learning_rate": lr, "seed": i}
        for i, (lam, kp, lr) in enumerate(w["configs"])
    ]
    return timed_sweep(sweep.Space(members), w["data"], config)


def _plain_jax_trainer(w):
    """What a careful JAX user writes without vmap: one jit(lax.scan) training run."""
    x, y = (jnp.asarray(a) for a in w["data"].train)
    x_dev, y_dev = (jnp.asarray(a) for a in w["data"].dev)
    sizes, steps, batch = w["sizes"], w["steps"], w["batch"]
    m = x.shape[0]
    binary = sizes[-1] == 1

    def init(key):
        params = []
        for k, n_in, n_out in zip(jax.random.split(key, len(sizes) - 1), sizes, sizes[1:]):
            params.append(
                (jax.random.normal(k, (n_in, n_out)) * jnp.sqrt(2.0 / n_in), jnp.zeros(n_out))
            )
        return params

    def logits(params, xb, key, kp):
        a = xb
        for i, (W, b) in enumerate(params[:-1]):
            a = jax.nn.relu(a @ W + b)
            if key is not None:
                keep = jax.random.bernoulli(jax.random.fold_in(key, i), kp, a.shape)
                a = jnp.where(keep, a / kp, 0.0)
        W, b = params[-1]
        return a @ W + b

    def cost(params, xb, yb, key, kp, lambd):
        z = logits(params, xb, key, kp)
        if binary:
            ce = jnp.mean(optax.sigmoid_binary_cross_entropy(z[:, 0], yb))
        else:
            ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, yb))
        return ce + lambd / (2 * m) * sum(jnp.sum(W**2) for W, _ in params)

    def accuracy(params):
        z = logits(params, x_dev, None, 1.0)
        pred = (z[:, 0] > 0).astype(jnp.int32) if binary else jnp.argmax(z, axis=1)
        return jnp.mean(pred == y_dev)

    @jax.jit
    def train(key, lambd, kp, lr):
        init_key, step_key, shuffle_key = jax.random.split(key, 3)
        params = init(init_key)
        opt = optax.sgd(lr)

        def step(carry, t):
            params, state = carry
            if batch is None:
                xb, yb = x, y
            else:
                rows = jax.random.choice(
                    jax.random.fold_in(shuffle_key, t), m, (batch,), replace=False
                )
                xb, yb = x[rows], y[rows]
            grads = jax.grad(cost)(params, xb, yb, jax.random.fold_in(step_key, t), kp, lambd)
            updates, state = opt.update(grads, state)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
        return accuracy(params)

    return train, init, cost, accuracy


def plain_jax_row(w):
    train, *_ = _plain_jax_trainer(w)
    out = {}

    def run():
        out["acc"] = [
            float(train(jax.random.key(i), lam, kp, lr))
            for i, (lam, kp, lr) in enumerate(w["configs"])
        ]

    return timed(run), np.asarray(out["acc"])


def naive_row(w, n_configs: int):
    """The course notebook's shape: a jitted step called in a Python loop, per config."""
    _, init, cost, accuracy = _plain_jax_trainer(w)
    x, y = (jnp.asarray(a) for a in w["data"].train)

    @functools.partial(jax.jit, static_argnums=())
    def step(params, key, lambd, kp, lr):
        grads = jax.grad(cost)(params, x, y, key, kp, lambd)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads)

    configs = w["configs"][:n_configs]

    def run():
        for i, (lam, kp, lr) in enumerate(configs):
            params = init(jax.random.key(i))
            for t in range(w["steps"]):
                params = step(params, jax.random.fold_in(jax.random.key(i), t), lam, kp, lr)
            jax.block_until_ready(params)

    timing = timed(run, repeats=w["repeats"])
    return scaled(timing, len(w["configs"]) / len(configs))


def _torch_data(torch, w):
    x, y = (torch.as_tensor(np.asarray(a)) for a in w["data"].train)
    x_dev, y_dev = (torch.as_tensor(np.asarray(a)) for a in w["data"].dev)
    return x, y, x_dev, y_dev


def torch_sequential_row(w, n_configs: int):
    torch = import_torch()
    if torch is None:
        return skipped("torch not installed"), None
    x, y, x_dev, y_dev = _torch_data(torch, w)
    sizes, m, binary = w["sizes"], x.shape[0], w["sizes"][-1] == 1
    configs = w["configs"][:n_configs]
    accs = []

    def train_one(i, lam, kp, lr):
        torch.manual_seed(i)
        layers = [torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
        for layer in layers:
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            torch.nn.init.zeros_(layer.bias)
        params = [p for layer in layers for p in layer.parameters()]
        opt = torch.optim.SGD(params, lr=lr)
        for _t in range(w["steps"]):
            if w["batch"] is None:
                xb, yb = x, y
            else:
                rows = torch.randperm(m)[: w["batch"]]
                xb, yb = x[rows], y[rows]
            a = xb
            for layer in layers[:-1]:
                a = torch.nn.functional.dropout(torch.relu(layer(a)), p=1 - kp, training=True)
            z = layers[-1](a)
            if binary:
                ce = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], yb.float())
            else:
                ce = torch.nn.functional.cross_entropy(z, yb.long())
            l2 = lam / (2 * m) * sum((layer.weight**2).sum() for layer in layers)
            opt.zero_grad()
            (ce + l2).backward()
            opt.step()
        with torch.no_grad():
            a = x_dev
            for layer in layers[:-1]:
                a = torch.relu(layer(a))
            z = layers[-1](a)
            pred = (z[:, 0] > 0).long() if binary else z.argmax(1)
            return float((pred == y_dev.long()).float().mean())

    def run():
        accs.clear()
        accs.extend(train_one(i, *c) for i, c in enumerate(configs))

    timing = timed(run, repeats=w["repeats"])
    return scaled(timing, len(w["configs"]) / len(configs)), np.asarray(accs)


def torch_vmap_row(w):
    torch = import_torch()
    if torch is None:
        return skipped("torch not installed"), None
    from torch.func import grad, vmap

    x, y, x_dev, y_dev = _torch_data(torch, w)
    sizes, m = w["sizes"], x.shape[0]
    cfg = torch.tensor(w["configs"], dtype=torch.float32)
    lam, kp, lr = cfg[:, 0], cfg[:, 1], cfg[:, 2]
    n = len(w["configs"])

    def loss(params, lam, kp):
        a = x
        for i in range(len(sizes) - 2):
            a = torch.relu(a @ params[2 * i] + params[2 * i + 1])
            a = a * (torch.rand_like(a) < kp) / kp
        z = a @ params[-2] + params[-1]
        ce = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], y.float())
        return ce + lam / (2 * m) * sum((params[2 * i] ** 2).sum() for i in range(len(sizes) - 1))

    grads = vmap(grad(loss), randomness="different")
    accs = []

    def run():
        torch.manual_seed(0)
        params = []
        for a, b in zip(sizes, sizes[1:]):
            params += [torch.randn(n, a, b) * (2.0 / a) ** 0.5, torch.zeros(n, b)]
        for _ in range(w["steps"]):
            g = grads(params, lam, kp)
            params = [p - lr.view(-1, *[1] * (p.dim() - 1)) * gp for p, gp in zip(params, g)]
        with torch.no_grad():
            a = x_dev.expand(n, *x_dev.shape)
            for i in range(len(sizes) - 2):
                a = torch.relu(a @ params[2 * i] + params[2 * i + 1][:, None])
            z = a @ params[-2] + params[-1][:, None]
            accs[:] = ((z[..., 0] > 0).long() == y_dev.long()).float().mean(1).tolist()

    return timed(run, repeats=w["repeats"]), np.asarray(accs)


def matmul_peak(n: int = 2048) -> float:
    """Best float32 GFLOP/s of a jitted n x n matmul on this machine."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    f(a, a).block_until_ready()
    best = 0.0
    for _ in range(10):
        start = time.perf_counter()
        f(a, a).block_until_ready()
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def flops(w) -> float:
    sizes = w["sizes"]
    per_step = 6 * w["batch"] * sum(a * b for a, b in zip(sizes, sizes[1:]))
    return per_step * w["steps"] * len(w["configs"])


# ----------------------------------------------------------------------------------------


def run_b1(quick: bool) -> dict:
    w = b1_workload(quick)
    rows = []

    def add(name, timing, note=""):
        jax.clear_caches()
        rows.append({"row": name, **timing, "note": note})

    jax.clear_caches()
    t_jaxhp, acc_jaxhp = jaxhp_row(w)
    rows.append({"row": "jaxhp sweep", **t_jaxhp, "note": "one compiled program"})
    jax.clear_caches()
    t_plain, acc_plain = plain_jax_row(w)
    rows.append(
        {"row": "plain JAX+optax sequential", **t_plain, "note": "jit(lax.scan) per config"}
    )
    jax.clear_caches()
    n_naive = 1 if quick else 2
    add(
        "naive JAX per-step loop",
        naive_row(w, n_naive),
        f"{n_naive} configs, scaled to {len(w['configs'])}",
    )
    n_torch = 1 if quick else 8
    t_torch, _ = torch_sequential_row(w, n_torch)
    add("PyTorch sequential", t_torch, f"{n_torch} configs, scaled to {len(w['configs'])}")
    t_vmap, _ = torch_vmap_row(w)
    add("torch.func.vmap", t_vmap, "randomness='different'")
    t_floor, _ = jaxhp_row(w, keep_prob_one=True)
    add("jaxhp sweep, keep_prob = 1 (floor)", t_floor, "no dropout masks")
    base = rows[0]
    for row in rows:
        if "first_s" in row:
            row["x_vs_jaxhp_first"] = row["first_s"] / base["first_s"]
            row["x_vs_jaxhp_median"] = row["median_s"] / base["median_s"]
    agreement = accuracy_agreement(acc_jaxhp, acc_plain, len(w["data"].dev[1]))
    return {
        "rows": rows,
        "accuracy_vs_plain_jax": agreement,
        "dropout_overhead_first": base["first_s"] / rows[-1].get("first_s", np.nan),
        "dropout_overhead_median": base["median_s"] / rows[-1].get("median_s", np.nan),
        "configs": len(w["configs"]),
        "steps": w["steps"],
    }


def run_b2(quick: bool) -> dict:
    w = b2_workload(quick)
    peak = matmul_peak(256 if quick else 2048)
    jax.clear_caches()
    t_jaxhp, acc_jaxhp = jaxhp_row(w)
    jax.clear_caches()
    t_plain, acc_plain = plain_jax_row(w)
    total = flops(w)
    rows = [
        {"row": "jaxhp sweep", **t_jaxhp, "gflops": total / t_jaxhp["median_s"] / 1e9},
        {
            "row": "plain JAX+optax sequential",
            **t_plain,
            "gflops": total / t_plain["median_s"] / 1e9,
        },
    ]
    for row in rows:
        row["fraction_of_peak"] = row["gflops"] / peak
        row["x_vs_jaxhp_median"] = row["median_s"] / t_jaxhp["median_s"]
    return {
        "rows": rows,
        "matmul_peak_gflops": peak,
        "flops": total,
        "accuracy_vs_plain_jax": accuracy_agreement(acc_jaxhp, acc_plain, len(w["data"].dev[1])),
    }


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    parser.add_argument("--only", choices=["b1", "b2"], default=None)
    parser.add_argument(
        "--one-device",
        action="store_true",
        help="do not split the CPU into one JAX device per core",
    )
    args = parser.parse_args(argv)
    if not args.one_device and os.environ.get("JAX_PLATFORMS", "cpu") == "cpu":
        try:  # jaxhp shards members over devices; peers run on the default device
            sweep.use_cpu_cores()
        except RuntimeError:
            pass  # JAX already started (e.g. under pytest): measure with what there is
    payload = {"jaxhp_devices": jax.device_count()}
    columns = [
        ("row", "row"),
        ("first_s", "first (s, with compile)"),
        ("median_s", "median (s)"),
        ("x_vs_jaxhp_first", "× jaxhp (first)"),
        ("x_vs_jaxhp_median", "× jaxhp (median)"),
        ("note", "note"),
    ]
    if args.only in (None, "b1"):
        b1 = run_b1(args.quick)
        payload["B1"] = b1
        print(f"## B1: {b1['configs']} configs x {b1['steps']} steps\n")
        print(table(b1["rows"], columns))
        print(
            f"\ndropout overhead (jaxhp / floor): {b1['dropout_overhead_first']:.2f}x with "
            f"compile, {b1['dropout_overhead_median']:.2f}x steady"
        )
        agree = b1["accuracy_vs_plain_jax"]
        print(
            f"dev accuracy vs plain JAX: mean {agree['mean_jaxhp']:.4f} vs "
            f"{agree['mean_peer']:.4f}, mean |diff| {agree['mean_abs_diff']:.4f}: "
            f"{'agree within noise' if agree['agree'] else 'DISAGREE'}\n"
        )
    if args.only in (None, "b2"):
        b2 = run_b2(args.quick)
        payload["B2"] = b2
        print(f"## B2: matmul peak {b2['matmul_peak_gflops']:.1f} GFLOP/s\n")
        print(
            table(
                b2["rows"],
                [
                    ("row", "row"),
                    ("first_s", "first (s)"),
                    ("median_s", "median (s)"),
                    ("gflops", "GFLOP/s"),
                    ("fraction_of_peak", "of peak"),
                    ("x_vs_jaxhp_median", "× jaxhp"),
                ],
            )
        )
        agree = b2["accuracy_vs_plain_jax"]
        print(
            f"\ndev accuracy vs plain JAX: {agree['mean_jaxhp']:.4f} vs "
            f"{agree['mean_peer']:.4f}: {'agree' if agree['agree'] else 'DISAGREE'}"
        )
    print(f"\nwrote {write('sweep', payload, quick=args.quick)}")
    return payload


if __name__ == "__main__":
    main()
