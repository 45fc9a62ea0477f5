"""False alarms and missed bugs of gradient checkers on a suite of small functions.

Correct functions (their gradient is right): ReLU nets sitting on kinks (zero rows, zero
biases, zero-padded inputs) or next to them (the course's deep net at its randn * 0.01
init, with jax.grad and a hand-written backward), abs/hinge/clip/max/sort at their
switching points, float32 and mixed-precision losses, custom_vjp/custom_jvp rules, scan
RNNs, a convolution, softmax and logsumexp at large logits, nested pytrees and polynomials
at scales 1e-4 and 1e3.
Planted bugs: hand-written backprops with mistakes, wrong custom_vjp/custom_jvp rules, a
1.5x gradient in float32 code, a bug next to a kink, and three in the course's deep net.

Each tool checks the same inputs (params upcast to float64 where the tool allows; functions
that compute in float32 inside still do): jaxhp.grad_check in "full" and "directions" mode
(alarm: ``not report.passed``), jax.test_util.check_grads (order 1, reverse mode; alarm:
AssertionError) and, when torch is importable, torch.autograd.gradcheck on a
torch.autograd.Function that calls the JAX function forward and the gradient under test
backward (alarm: False or an error).

Run: python bench/gradcheck_false_alarms.py [--quick]
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
from common import skipped, table, write
from jax import lax
from jax.test_util import check_grads

import jaxhp


class Case:
    def __init__(self, name, f, params, args=(), grad_fn=None, bug=False):
        self.name, self.f, self.params, self.args = name, f, params, args
        self.grad_fn, self.bug = grad_fn, bug


def _rng(seed):
    return np.random.default_rng(seed)


def _relu_net(sizes, seed, zero_rows=(), m=6, classes=None):
    params = jaxhp.init_mlp(jax.random.key(seed), sizes)  # He init, zero biases
    x = _rng(seed).normal(size=(m, sizes[0]))
    x[list(zero_rows)] = 0.0
    y = _rng(seed + 1).integers(0, classes or 2, size=m)
    return params, jnp.asarray(x), jnp.asarray(y)


# --- custom rules ----------------------------------------------------------------------


@jax.custom_vjp
def smooth_abs(x):
    return jnp.sqrt(x * x + 1.0)


smooth_abs.defvjp(lambda x: (smooth_abs(x), x), lambda x, g: (g * x / jnp.sqrt(x * x + 1.0),))


@jax.custom_vjp
def softplus_wrong(x):
    return jnp.logaddexp(x, 0.0)


softplus_wrong.defvjp(
    lambda x: (jnp.logaddexp(x, 0.0), x), lambda x, g: (g * jax.nn.sigmoid(2 * x),)
)


@jax.custom_jvp
def softplus_jvp(x):
    return jnp.logaddexp(x, 0.0)


@softplus_jvp.defjvp
def _softplus_jvp_rule(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus_jvp(x), jax.nn.sigmoid(x) * t


@jax.custom_jvp
def sin_wrong(x):
    return jnp.sin(x)


@sin_wrong.defjvp
def _sin_wrong_rule(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.sin(x), (jnp.cos(x) + 0.1) * t


@jax.custom_vjp
def tanh_wrong(x):
    return jnp.tanh(x)


tanh_wrong.defvjp(lambda x: (jnp.tanh(x), x), lambda x, g: (g * (1 - jnp.tanh(x)),))


# --- functions -------------------------------------------------------------------------


def _f32(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float32), tree)


def mixed_precision(p, x):
    return jnp.sum(jnp.tanh(x.astype(jnp.float32) @ p["W"].astype(jnp.float32)) ** 2)


def rnn(p, xs, cell=jnp.tanh, dtype=jnp.float64):
    p = jax.tree.map(lambda a: a.astype(dtype), p)

    def step(h, x):
        h = cell(h @ p["Wh"] + x.astype(dtype) @ p["Wx"])
        return h, jnp.sum(h**2)

    _, ys = lax.scan(step, jnp.zeros(p["Wh"].shape[0], dtype), xs)
    return jnp.sum(ys)


def conv_relu(p, x):
    out = lax.conv_general_dilated(
        x, p["k"], (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    return jnp.sum(jax.nn.relu(out + p["b"][None, :, None, None]) ** 2)


def cross_entropy(logits, y):
    return jnp.mean(
        jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0]
    )


def handwritten_cost(p, x, y):
    a1 = jax.nn.relu(x @ p["W1"] + p["b1"][None, :])
    z = (a1 @ p["W2"] + p["b2"][None, :])[:, 0]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def handwritten_backward(p, x, y, bug=None):
    m = x.shape[0]
    z1 = x @ p["W1"] + p["b1"][None, :]
    a1 = jax.nn.relu(z1)
    z = (a1 @ p["W2"] + p["b2"][None, :])[:, 0]
    dz = ((jax.nn.sigmoid(z) - y) / m)[:, None]
    dz1 = (dz @ p["W2"].T) * (1.0 if bug == "no_relu_derivative" else (z1 > 0))
    grads = {"W1": x.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz, "b2": dz.sum(0)}
    if bug == "scaled_dW":
        grads["W2"] = 2 * grads["W2"]
    if bug == "bias_normalisation":
        grads["b1"] = 4 * grads["b1"]
    return grads


def _handwritten_problem(seed):
    rng = _rng(seed)
    p = {
        "W1": rng.normal(size=(3, 5)),
        "b1": 0.1 * rng.normal(size=5),
        "W2": rng.normal(size=(5, 1)),
        "b2": 0.1 * rng.normal(size=1),
    }
    return (
        jax.tree.map(jnp.asarray, p),
        jnp.asarray(rng.normal(size=(6, 3))),
        jnp.asarray(rng.integers(0, 2, size=6).astype(np.float64)),
    )


def deep_cost(p, x, y):
    """The course's L-layer net, its layout: W_l (n_l, n_l-1), b_l (n_l, 1), x (n_x, m)."""
    a, n = x, len(p) // 2
    for layer in range(1, n):
        a = jax.nn.relu(p[f"W{layer}"] @ a + p[f"b{layer}"])
    z = (p[f"W{n}"] @ a + p[f"b{n}"])[0]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def deep_backward(p, x, y, bug=None):
    """The course's L_model_backward (sigmoid output, relu hidden layers), by hand."""
    n, m = len(p) // 2, x.shape[1]
    cache, a = [], x
    for layer in range(1, n):
        z = p[f"W{layer}"] @ a + p[f"b{layer}"]
        cache.append((a, z))
        a = jax.nn.relu(z)
    cache.append((a, None))
    dz = (jax.nn.sigmoid(p[f"W{n}"] @ a + p[f"b{n}"]) - y) / m
    grads = {}
    for layer in range(n, 0, -1):
        a_prev, _ = cache[layer - 1]
        grads[f"W{layer}"] = dz @ a_prev.T
        grads[f"b{layer}"] = dz.sum(axis=1, keepdims=True)
        if layer > 1:
            # bug "wrong_W": layer 3's weights where layer 2's belong (same shape)
            w = p["W3" if bug == "wrong_W" and layer == 2 else f"W{layer}"]
            z_prev = cache[layer - 2][1]
            relu_slope = 1.0 if bug == "no_relu_derivative" and layer == 3 else (z_prev > 0)
            dz = (w.T @ dz) * relu_slope
    if bug == "scaled_db1":
        grads["b1"] = 2 * grads["b1"]
    return grads


def _deep_problem(seed, sizes=(10, 32, 32, 32, 1)):
    """The course's init, W = randn * 0.01 and b = 0, where a deep relu net's last
    pre-activations lie within 1e-8 of their kinks."""
    rng = _rng(seed)
    p = {}
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        p[f"W{layer}"] = jnp.asarray(0.01 * rng.normal(size=(n_out, n_in)))
        p[f"b{layer}"] = jnp.zeros((n_out, 1))
    x = jnp.asarray(rng.normal(size=(sizes[0], 40)))
    return p, x, jnp.asarray(rng.integers(0, 2, size=40).astype(np.float64))


def _planted(name, cost, backward, params, args, bugs) -> list[Case]:
    """One case per bug planted in a hand-written backward pass."""
    return [
        Case(
            f"BUG {name} {bug}",
            cost,
            params,
            args,
            grad_fn=functools.partial(backward, bug=bug),
            bug=True,
        )
        for bug in bugs
    ]


def suite() -> list[Case]:
    cases = []
    p, x, y = _relu_net((3, 4, 1), 0, zero_rows=(2,))
    cases.append(Case("relu (3,4,1), zero row, zero biases", jaxhp.loss, p, (x, y)))
    p, x, y = _relu_net((4, 6, 3), 1, zero_rows=(0, 5), classes=3)
    cases.append(Case("relu softmax, zero-padded rows", jaxhp.loss, p, (x, y)))
    p, x, y = _relu_net((3, 5, 5, 1), 2, zero_rows=(1, 3))
    cases.append(Case("relu deep, zero rows", functools.partial(jaxhp.loss, lambd=0.3), p, (x, y)))
    p, x, y = _relu_net((3, 8, 1), 3)
    cases.append(
        Case(
            "relu dropout fixed key",
            functools.partial(jaxhp.loss, key=jax.random.key(4), keep_prob=0.8),
            p,
            (x, y),
        )
    )
    rng = _rng(5)
    xa = jnp.asarray(rng.normal(size=(5, 3)))
    w = jnp.asarray([0.5, -0.2, 0.1])
    cases.append(
        Case(
            "L1 regression, a zero residual",
            lambda w, x, t: jnp.mean(jnp.abs(x @ w - t)),
            w,
            (xa, (xa @ w).at[1:].add(0.3)),
        )
    )
    yy = jnp.asarray([1.0, -1.0, 1.0, -1.0, 1.0])
    margins = yy * (xa @ w)
    xh = xa.at[0].multiply(1.0 / margins[0])  # example 0 has margin exactly 1
    cases.append(
        Case(
            "hinge loss on the margin",
            lambda w, x, t: jnp.mean(jnp.maximum(0.0, 1 - t * (x @ w))),
            w,
            (xh, yy),
        )
    )
    xc = jnp.asarray(np.eye(3)[[0, 1, 2, 0]])
    cases.append(
        Case(
            "clip at its bound",
            lambda w, x: jnp.sum(jnp.clip(x @ w, -1.0, 0.5) ** 2),
            jnp.asarray([0.5, -0.3, 0.2]),
            (xc,),
        )
    )
    wt = jnp.asarray(np.tile(rng.normal(size=(3, 1)), (1, 2)))  # two equal columns: tied max
    cases.append(
        Case("max over tied features", lambda w, x: jnp.sum(jnp.max(x @ w, axis=1) ** 2), wt, (xa,))
    )
    cases.append(
        Case(
            "sort with a tie",
            lambda w, x: jnp.sum(jnp.sort(x @ w) * jnp.arange(5.0)),
            jnp.asarray([1.0, 0.0, 0.0]),
            (jnp.asarray(np.r_[rng.normal(size=(4, 3)), [[0.0, 0.0, 0.0]]]).at[0].set(0.0),),
        )
    )
    cases.append(
        Case(
            "mixed precision tanh (float32 inside)",
            mixed_precision,
            {"W": jnp.asarray(rng.normal(size=(3, 2)))},
            (jnp.asarray(rng.normal(size=(5, 3))),),
        )
    )
    p, x, y = _relu_net((4, 8, 3), 6, classes=3, m=10)
    p = jax.tree.map(lambda a: a + 0.05, p)
    cases.append(
        Case(
            "float32 MLP loss",
            lambda p, x, y: jaxhp.loss(_f32(p), x.astype(jnp.float32), y),
            p,
            (x, y),
        )
    )
    logits_w = jnp.asarray(30 * rng.normal(size=(4, 5)))
    xl, yl = jnp.asarray(rng.normal(size=(6, 4))), jnp.asarray(rng.integers(0, 5, size=6))
    cases.append(
        Case("softmax at large logits", lambda w, x, y: cross_entropy(x @ w, y), logits_w, (xl, yl))
    )
    cases.append(
        Case(
            "float32 softmax at large logits",
            lambda w, x, y: cross_entropy((x @ w).astype(jnp.float32), y),
            logits_w,
            (xl, yl),
        )
    )
    cases.append(
        Case(
            "custom_vjp smooth abs",
            lambda p, x: jnp.sum(smooth_abs(x @ p) ** 2),
            jnp.asarray(rng.normal(size=(3, 2))),
            (xa,),
        )
    )
    cases.append(
        Case(
            "custom_jvp softplus",
            lambda p, x: jnp.sum(softplus_jvp(x @ p)),
            jnp.asarray(rng.normal(size=(3, 2))),
            (xa,),
        )
    )
    rp = {
        "Wh": jnp.asarray(0.5 * rng.normal(size=(4, 4))),
        "Wx": jnp.asarray(rng.normal(size=(2, 4))),
    }
    xs = jnp.asarray(rng.normal(size=(7, 2)))
    cases.append(Case("scan RNN tanh", rnn, rp, (xs,)))
    cases.append(
        Case(
            "scan RNN relu float32",
            functools.partial(rnn, cell=jax.nn.relu, dtype=jnp.float32),
            rp,
            (xs,),
        )
    )
    cp = {"k": jnp.asarray(rng.normal(size=(2, 1, 3, 3))), "b": jnp.zeros(2)}
    xi = np.asarray(rng.normal(size=(1, 1, 6, 6)))
    xi[..., :2] = 0.0  # zero padding: pre-activations at the relu kink
    cases.append(Case("conv2d relu, zero-padded image", conv_relu, cp, (jnp.asarray(xi),)))
    cases.append(
        Case(
            "nested pytree",
            lambda p, x: jnp.mean(jnp.tanh(x @ p["enc"]["W"] + p["enc"]["b"]) @ p["head"]) ** 2,
            {
                "enc": {"W": jnp.asarray(rng.normal(size=(3, 4))), "b": jnp.full(4, 0.1)},
                "head": jnp.asarray(rng.normal(size=(4,))),
            },
            (xa,),
        )
    )
    poly = lambda p: jnp.sum(p**4 - 3 * p**2 + p)  # noqa: E731
    cases.append(Case("polynomial at scale 1e-4", poly, jnp.asarray(1e-4 * rng.normal(size=4))))
    cases.append(Case("polynomial at scale 1e3", poly, jnp.asarray(1e3 * rng.normal(size=4))))
    hp, hx, hy = _handwritten_problem(7)
    cases.append(
        Case(
            "hand-written backprop (correct)",
            handwritten_cost,
            hp,
            (hx, hy),
            grad_fn=handwritten_backward,
        )
    )
    for seed in (0, 4):
        dp, dx, dy = _deep_problem(seed)
        cases.append(Case(f"course deep relu, 0.01 init, seed {seed}", deep_cost, dp, (dx, dy)))
    cases.append(
        Case(
            "course deep relu, 0.01 init, hand-written backward",
            deep_cost,
            dp,
            (dx, dy),
            grad_fn=deep_backward,
        )
    )
    # --- planted bugs
    bugs = ("no_relu_derivative", "wrong_W", "scaled_db1")
    cases += _planted("course deep relu, 0.01 init,", deep_cost, deep_backward, dp, (dx, dy), bugs)
    bugs = ("scaled_dW", "bias_normalisation", "no_relu_derivative")
    cases += _planted("hand-written", handwritten_cost, handwritten_backward, hp, (hx, hy), bugs)
    cases.append(
        Case(
            "BUG hand-written scaled_dW, float32 code",
            lambda p, x, y: handwritten_cost(_f32(p), x.astype(jnp.float32), y),
            hp,
            (hx, hy),
            grad_fn=functools.partial(handwritten_backward, bug="scaled_dW"),
            bug=True,
        )
    )
    cases.append(
        Case(
            "BUG custom_vjp softplus rule",
            lambda p, x: jnp.sum(softplus_wrong(x @ p)),
            jnp.asarray(rng.normal(size=(3, 2))),
            (xa,),
            bug=True,
        )
    )
    cases.append(
        Case(
            "BUG custom_vjp softplus rule, float32",
            lambda p, x: jnp.sum(softplus_wrong((x @ p).astype(jnp.float32))),
            jnp.asarray(rng.normal(size=(3, 2))),
            (xa,),
            bug=True,
        )
    )
    cases.append(
        Case(
            "BUG custom_jvp sin rule",
            lambda p: jnp.sum(sin_wrong(p)),
            jnp.asarray(rng.normal(size=4)),
            bug=True,
        )
    )
    cases.append(
        Case(
            "BUG scan RNN with a wrong tanh rule",
            functools.partial(rnn, cell=tanh_wrong),
            rp,
            (xs,),
            bug=True,
        )
    )
    mw = {"W": jnp.asarray(rng.normal(size=(3, 2)))}
    xm = jnp.asarray(rng.normal(size=(5, 3)))
    cases.append(
        Case(
            "BUG 1.5x gradient, mixed precision",
            mixed_precision,
            mw,
            (xm,),
            grad_fn=lambda p, x: jax.tree.map(lambda g: 1.5 * g, jax.grad(mixed_precision)(p, x)),
            bug=True,
        )
    )
    p, x, y = _relu_net((3, 4, 1), 0, zero_rows=(2,))

    def kink_neighbour_bug(p, x, y):
        g = jax.grad(jaxhp.loss)(p, x, y)
        return (g[0]._replace(W=g[0].W * 1.2), g[1])

    cases.append(
        Case("BUG next to a relu kink", jaxhp.loss, p, (x, y), grad_fn=kink_neighbour_bug, bug=True)
    )
    return cases


# --- tools -----------------------------------------------------------------------------


def _with_gradient(f, grad_fn):
    """f whose reverse-mode gradient in params is grad_fn (for peers that call jax.grad)."""

    @jax.custom_vjp
    def wrapped(p, *args):
        return f(p, *args)

    def bwd(res, g):
        p, args = res
        return (
            jax.tree.map(lambda d: g * d, grad_fn(p, *args)),
            *jax.tree.map(
                lambda a: (
                    np.zeros(np.shape(a), jax.dtypes.float0)
                    if not jnp.issubdtype(jnp.result_type(a), jnp.floating)
                    else jnp.zeros_like(a)
                ),
                args,
            ),
        )

    wrapped.defvjp(lambda p, *args: (f(p, *args), (p, args)), bwd)
    return wrapped


def _float64(tree):
    return jax.tree.map(
        lambda a: (
            jnp.asarray(a, jnp.float64) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a
        ),
        tree,
    )


def run_jaxhp(case: Case, mode: str = "full") -> dict:
    report = jaxhp.grad_check(case.f, case.params, *case.args, grad_fn=case.grad_fn, mode=mode)
    return {
        "alarm": not report.passed,
        "verdict": report.verdict,
        "leaf": report.worst.path,
        "difference": report.worst.difference,
        "precision": report.precision.dtype,
        "kinks": sum(len(k) for k in report.kinks.values()),
    }


def run_check_grads(case: Case) -> dict:
    with jax.enable_x64(True):
        params, args = _float64(case.params), _float64(case.args)
        f = case.f if case.grad_fn is None else _with_gradient(case.f, case.grad_fn)
        try:
            check_grads(lambda p: f(p, *args), (params,), order=1, modes=("rev",))
        except AssertionError:
            return {"alarm": True}
    return {"alarm": False}


def run_torch(case: Case, torch) -> dict:
    with jax.enable_x64(True):
        params, args = _float64(case.params), _float64(case.args)
        theta, unravel = jax.flatten_util.ravel_pytree(params)
        grad = case.grad_fn or jax.grad(case.f)

        class Bridge(torch.autograd.Function):
            @staticmethod
            def forward(ctx, t):
                ctx.save_for_backward(t)
                value = case.f(unravel(jnp.asarray(t.detach().numpy())), *args)
                return torch.tensor(float(value), dtype=torch.float64)

            @staticmethod
            def backward(ctx, g):
                (t,) = ctx.saved_tensors
                flat, _ = jax.flatten_util.ravel_pytree(
                    grad(unravel(jnp.asarray(t.numpy())), *args)
                )
                return g * torch.tensor(np.asarray(flat))

        t = torch.tensor(np.asarray(theta), dtype=torch.float64, requires_grad=True)
        try:
            ok = torch.autograd.gradcheck(Bridge.apply, (t,), raise_exception=False)
        except Exception:  # noqa: BLE001 - a crash counts as an alarm
            ok = False
    return {"alarm": not ok}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two cases only (smoke run)")
    options = parser.parse_args(argv)
    cases = suite()
    if options.quick:
        # the last planted bug is in the first case's function: it reuses its compiles
        cases = [c for c in cases if not c.bug][:1] + [c for c in cases if c.bug][-1:]
    try:
        import torch
    except ImportError:
        torch = None
    tools = {
        "jaxhp": run_jaxhp,
        "jaxhp directions": functools.partial(run_jaxhp, mode="directions"),
        "jax check_grads": run_check_grads,
    }
    if torch is not None:
        tools["torch gradcheck"] = functools.partial(run_torch, torch=torch)
    rows = []
    for case in cases:
        row = {"case": case.name, "bug": case.bug}
        for tool, run in tools.items():
            result = run(case)
            row[tool] = (
                ("caught" if result["alarm"] else "MISSED")
                if case.bug
                else ("FALSE ALARM" if result["alarm"] else "ok")
            )
            row[f"{tool} detail"] = result
        row["jaxhp verdict"] = row["jaxhp detail"]["verdict"]
        row["precision"] = row["jaxhp detail"]["precision"]
        row["kinks"] = row["jaxhp detail"]["kinks"]
        rows.append(row)
    summary = []
    for tool in tools:
        summary.append(
            {
                "tool": tool,
                "correct functions": sum(not r["bug"] for r in rows),
                "false alarms": sum(r[tool] == "FALSE ALARM" for r in rows),
                "planted bugs": sum(r["bug"] for r in rows),
                "missed bugs": sum(r[tool] == "MISSED" for r in rows),
            }
        )
    if torch is None:
        summary.append({"tool": "torch gradcheck", **skipped("torch is not importable")})
    columns = [
        ("case", "case"),
        *((t, t) for t in tools),
        ("jaxhp verdict", "jaxhp verdict"),
        ("precision", "precision"),
        ("kinks", "kinks"),
    ]
    print(table(rows, columns))
    print()
    print(
        table(
            summary,
            [
                ("tool", "tool"),
                ("correct functions", "correct"),
                ("false alarms", "false alarms"),
                ("planted bugs", "bugs"),
                ("missed bugs", "missed bugs"),
                ("skipped", "skipped"),
            ],
        )
    )
    clean = [{k: v for k, v in r.items()} for r in rows]
    path = write("gradcheck_false_alarms", {"rows": clean, "summary": summary}, quick=options.quick)
    print(f"\nwrote {path}")
    return summary


if __name__ == "__main__":
    main()
