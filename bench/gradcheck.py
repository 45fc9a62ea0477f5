"""Benchmark B3 of shared/BENCH.md: gradient checking a 17k-parameter MLP in float64.

Model [64, 128, 64, 10], 500 examples, softmax + L2. The gradient under test is a
hand-written backward pass with a planted bug (dW2 doubled). Rows: jaxhp "full", jaxhp
"directions", a naive per-coordinate Python loop with a jitted loss (the course's way;
timed on a subset of coordinates and scaled), torch.autograd.gradcheck (slow/full mode),
and jax.test_util.check_grads (order 1, reverse mode). Each row says whether it detected
the bug, and jaxhp's rows name the leaf.

Run: python bench/gradcheck.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from common import import_torch, scaled, skipped, table, timed, torch_device, write
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads

import jaxhp

LAMBD = 0.7


def problem(quick: bool):
    sizes = (8, 16, 8, 4) if quick else (64, 128, 64, 10)
    m = 50 if quick else 500
    rng = np.random.default_rng(0)
    params = {}
    for l, (a, b) in enumerate(zip(sizes, sizes[1:]), start=1):
        params[f"W{l}"] = rng.normal(size=(a, b)) * np.sqrt(2 / a)
        params[f"b{l}"] = 0.1 * rng.normal(size=b)
    x = rng.normal(size=(m, sizes[0]))
    y = rng.integers(0, sizes[-1], size=m)
    return params, x, y


def cost(p, x, y):
    a1 = jax.nn.relu(x @ p["W1"] + p["b1"][None, :])
    a2 = jax.nn.relu(a1 @ p["W2"] + p["b2"][None, :])
    z = a2 @ p["W3"] + p["b3"][None, :]
    ce = jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0])
    m = x.shape[0]
    return ce + LAMBD / (2 * m) * sum(jnp.sum(p[f"W{l}"] ** 2) for l in (1, 2, 3))


def buggy_backward(p, x, y):
    """Hand-written backprop of ``cost`` with dW2 doubled."""
    m = x.shape[0]
    z1 = x @ p["W1"] + p["b1"][None, :]
    a1 = jax.nn.relu(z1)
    z2 = a1 @ p["W2"] + p["b2"][None, :]
    a2 = jax.nn.relu(z2)
    z3 = a2 @ p["W3"] + p["b3"][None, :]
    dz3 = (jax.nn.softmax(z3, axis=1) - jax.nn.one_hot(y, z3.shape[1], dtype=z3.dtype)) / m
    dz2 = (dz3 @ p["W3"].T) * (z2 > 0)
    dz1 = (dz2 @ p["W2"].T) * (z1 > 0)
    return {
        "W3": a2.T @ dz3 + LAMBD / m * p["W3"],
        "b3": dz3.sum(0),
        "W2": 2 * (a1.T @ dz2 + LAMBD / m * p["W2"]),
        "b2": dz2.sum(0),
        "W1": x.T @ dz1 + LAMBD / m * p["W1"],
        "b1": dz1.sum(0),
    }


def jaxhp_row(params, x, y, mode):
    out = {}

    def run():
        out["report"] = jaxhp.grad_check(cost, params, x, y, grad_fn=buggy_backward, mode=mode)

    timing = timed(run)
    report = out["report"]
    return {
        **timing,
        "detected": not report.passed,
        "leaf": report.worst.path,
        "difference": report.worst.difference,
    }


def naive_row(params, x, y, n_coordinates: int):
    """The course's loop: perturb one coordinate, call the jitted loss twice, repeat."""
    with jax.enable_x64(True):
        theta, unravel = ravel_pytree({k: jnp.asarray(v) for k, v in params.items()})
        theta = np.asarray(theta)
        loss = jax.jit(lambda t: cost(unravel(t), x, y))
        analytic, _ = ravel_pytree(
            buggy_backward({k: jnp.asarray(v) for k, v in params.items()}, x, y)
        )
        analytic = np.asarray(analytic)
        coords = np.random.default_rng(1).choice(theta.size, n_coordinates, replace=False)
        eps = 1e-7
        numeric = np.empty(len(coords))

        def run():
            for j, i in enumerate(coords):
                plus, minus = theta.copy(), theta.copy()
                plus[i] += eps
                minus[i] -= eps
                numeric[j] = (float(loss(plus)) - float(loss(minus))) / (2 * eps)

        timing = timed(run)
    diff = np.linalg.norm(numeric - analytic[coords]) / (
        np.linalg.norm(numeric) + np.linalg.norm(analytic[coords])
    )
    return {
        **scaled(timing, theta.size / n_coordinates),
        "detected": bool(diff > 1e-3),
        "difference": float(diff),
        "note": f"{n_coordinates} of {theta.size} coordinates, scaled",
    }


def torch_row(params, x, y):
    torch = import_torch()
    if torch is None:
        return skipped("torch not installed")
    names = list(params)
    device = torch_device(torch)
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)

    def torch_cost(*tensors):  # a pure-torch forward, so gradcheck's evaluations are torch
        p = dict(zip(names, tensors))
        a1 = torch.relu(xt @ p["W1"] + p["b1"])
        a2 = torch.relu(a1 @ p["W2"] + p["b2"])
        z = a2 @ p["W3"] + p["b3"]
        ce = torch.nn.functional.cross_entropy(z, yt)
        return ce + LAMBD / (2 * len(y)) * sum((p[f"W{l}"] ** 2).sum() for l in (1, 2, 3))

    class Checked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.save_for_backward(*tensors)
            return torch_cost(*tensors)

        @staticmethod
        def backward(ctx, g):  # the buggy hand-written backward pass under test
            p = {n: jnp.asarray(t.detach().cpu().numpy()) for n, t in zip(names, ctx.saved_tensors)}
            with jax.enable_x64(True):
                grads = buggy_backward(p, x, y)
            return tuple(g * torch.as_tensor(np.array(grads[n]), device=g.device) for n in names)

    inputs = tuple(
        torch.tensor(params[n], dtype=torch.float64, requires_grad=True, device=device)
        for n in names
    )
    out = {}

    def run():
        out["ok"] = torch.autograd.gradcheck(
            Checked.apply, inputs, fast_mode=False, raise_exception=False
        )

    timing = timed(run, repeats=1)
    return {**timing, "detected": not out["ok"], "note": "slow (full) mode, 1 timed repeat"}


def check_grads_row(params, x, y):
    names = list(params)

    @jax.custom_vjp
    def f(p):
        return cost(p, x, y)

    f.defvjp(
        lambda p: (cost(p, x, y), p),
        lambda p, g: (jax.tree.map(lambda d: g * d, buggy_backward(p, x, y)),),
    )
    out = {}

    def run():
        with jax.enable_x64(True):
            p = {n: jnp.asarray(params[n]) for n in names}
            try:
                check_grads(f, (p,), order=1, modes=("rev",))
                out["detected"] = False
            except AssertionError:
                out["detected"] = True

    timing = timed(run)
    return {**timing, "detected": out["detected"], "note": "one pass/fail, no leaf"}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    params, x, y = problem(args.quick)
    n_params = sum(v.size for v in params.values())
    rows = [
        {"row": "jaxhp full", **jaxhp_row(params, x, y, "full")},
        {"row": "jaxhp directions", **jaxhp_row(params, x, y, "directions")},
        {"row": "naive Python loop", **naive_row(params, x, y, 50 if args.quick else 1000)},
        {"row": "torch.autograd.gradcheck", **torch_row(params, x, y)},
        {"row": "jax check_grads", **check_grads_row(params, x, y)},
    ]
    naive = rows[2]["median_s"]
    for row in rows:
        if "median_s" in row:
            row["naive_over_this"] = naive / row["median_s"]
    print(f"## B3: gradient check of {n_params} parameters, bug: dW2 doubled\n")
    print(
        table(
            rows,
            [
                ("row", "row"),
                ("first_s", "first (s)"),
                ("median_s", "median (s)"),
                ("naive_over_this", "naive ÷ row"),
                ("detected", "detected"),
                ("leaf", "leaf"),
                ("note", "note"),
            ],
        )
    )
    path = write("gradcheck", {"parameters": n_params, "rows": rows}, quick=args.quick)
    print(f"\nwrote {path}")
    return rows


if __name__ == "__main__":
    main()
