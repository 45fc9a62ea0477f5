"""Gradient checking a hand-written backward pass, as in the course (COURSE.md point 11).

The network is the course's [4, 5, 3, 1] (ReLU, ReLU, sigmoid) with params named W1..b3.
The backward pass below carries the course's two planted bugs: dW2 is doubled and db1 uses
4/m instead of 1/m. grad_check names exactly those leaves; with the bugs fixed every leaf
is below 1e-7. Last, a network whose ReLUs sit exactly on their kink (an all-zero example
and zero biases) shows the kinks listed apart instead of a false "bug".

Run: python examples/gradient_checking.py
"""

import jax
import jax.numpy as jnp

import jaxhp

SIZES = (4, 5, 3, 1)


def init(key):
    params = {}
    for l, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:]), start=1):
        key, kw, kb = jax.random.split(key, 3)
        params[f"W{l}"] = jax.random.normal(kw, (n_in, n_out))
        params[f"b{l}"] = jax.random.normal(kb, (n_out,))
    return params


def cost(params, x, y):
    """J: binary cross-entropy of the [4, 5, 3, 1] network."""
    a1 = jax.nn.relu(x @ params["W1"] + params["b1"][None, :])
    a2 = jax.nn.relu(a1 @ params["W2"] + params["b2"][None, :])
    z3 = (a2 @ params["W3"] + params["b3"][None, :])[:, 0]
    return jnp.mean(jnp.logaddexp(0.0, z3) - y * z3)


def backward(params, x, y, *, buggy):
    """The course's backward propagation, batch-first, written out by hand."""
    m = x.shape[0]
    z1 = x @ params["W1"] + params["b1"][None, :]
    a1 = jax.nn.relu(z1)
    z2 = a1 @ params["W2"] + params["b2"][None, :]
    a2 = jax.nn.relu(z2)
    z3 = a2 @ params["W3"] + params["b3"][None, :]
    dz3 = jax.nn.sigmoid(z3) - y[:, None]
    dW3 = a2.T @ dz3 / m
    db3 = jnp.sum(dz3, axis=0) / m
    dz2 = (dz3 @ params["W3"].T) * (z2 > 0)
    dW2 = a1.T @ dz2 * (2 if buggy else 1) / m
    db2 = jnp.sum(dz2, axis=0) / m
    dz1 = (dz2 @ params["W2"].T) * (z1 > 0)
    dW1 = x.T @ dz1 / m
    db1 = (4 if buggy else 1) / m * jnp.sum(dz1, axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


def main():
    kp, kx, ky = jax.random.split(jax.random.key(1), 3)
    params = init(kp)
    x = jax.random.normal(kx, (3, 4))
    y = jax.random.bernoulli(ky, 0.5, (3,)).astype(jnp.float32)

    report = jaxhp.grad_check(
        cost, params, x, y, grad_fn=lambda p, x, y: backward(p, x, y, buggy=True)
    )
    print("With the course's two bugs:")
    print(report)
    flagged = sorted(c.path for c in report.failing)
    print(f"flagged leaves: {flagged}\n")

    fixed = jaxhp.grad_check(
        cost, params, x, y, grad_fn=lambda p, x, y: backward(p, x, y, buggy=False)
    )
    print("After the fix:")
    print(fixed)

    zero_row = x.at[0].set(0.0)
    on_kinks = {**params, "b1": jnp.zeros(5), "b2": jnp.zeros(3)}
    kinked = jaxhp.grad_check(cost, on_kinks, zero_row, y)
    print("\nReLUs on their kink (zero row, zero biases):")
    print(kinked)
    return flagged, fixed.difference


if __name__ == "__main__":
    main()
