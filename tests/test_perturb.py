"""jaxhp.perturb: centred differences by change propagation equal plain re-evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhp import perturb

STEP = 1e-5


def plain_differences(fn, leaves, k):
    """The reference: fn evaluated from scratch at every θ ± h e_i of leaf k (vmapped)."""
    leaf = leaves[k]

    def at(i, h):
        moved = list(leaves)
        moved[k] = leaf.reshape(-1).at[i].add(h).reshape(leaf.shape)
        return fn(*moved)

    evaluate = jax.jit(jax.vmap(at, (0, None)))  # one compile, not one per operation
    i = jnp.arange(leaf.size)
    return np.asarray(evaluate(i, STEP) - evaluate(i, -STEP)) / (2 * STEP)


def propagated_differences(fn, leaves, batch=3):
    coords, steps = [], []
    for leaf in leaves:
        n = -(-leaf.size // batch) * batch
        coords.append(np.resize(np.arange(leaf.size, dtype=np.int32), n).reshape(-1, batch))
        steps.append(np.full((n // batch, batch), STEP))
    out = jax.jit(lambda ls: perturb.centred_differences(fn, ls, coords, steps))(leaves)
    return [np.asarray(o).reshape(-1)[: leaf.size] for o, leaf in zip(out, leaves)]


def _scan_cumsum(a, b):
    def step(carry, row):
        return carry + row, carry * row

    carry, ys = jax.lax.scan(step, jnp.zeros(a.shape[1]), a * b.sum())
    return carry.sum() + ys.sum()


@jax.custom_vjp
def _softabs(x):
    return jnp.sqrt(x * x + 1.0)


_softabs.defvjp(lambda x: (_softabs(x), x), lambda x, g: (g * x / jnp.sqrt(x * x + 1.0),))

X = np.random.default_rng(0).normal(size=(7, 4))


def _mlp(w1, b1, w2, b2):
    a1 = jax.nn.relu(X @ w1 + b1[None, :])
    z = jnp.tanh(a1) @ w2 + b2[None, :]
    return jnp.mean(jax.nn.logsumexp(z, axis=1)) + 0.1 * jnp.sum(w1**2)


CASES = {
    # dense layers: contracted and free changed axes, bias broadcast, logsumexp (reduce_max)
    "mlp": (_mlp, [(4, 5), (5,), (5, 3), (3,)]),
    "weight on the left": (lambda w, x: jnp.sum(jnp.sin(w @ x.T)), [(3, 4), (7, 4)]),
    "batched einsum": (
        lambda a, b: jnp.sum(jnp.einsum("bij,bjk->bik", a, b) ** 2),
        [(2, 3, 4), (2, 4, 3)],
    ),
    "leaf used twice": (lambda w: jnp.sum((w @ w.T) * w[:, :1]), [(3, 3)]),
    "transpose and squeeze": (
        lambda w: jnp.sum(jnp.exp(w.T[None]).squeeze(0) * jnp.arange(12.0).reshape(4, 3)),
        [(3, 4)],
    ),
    "sums over every axis": (
        lambda w: jnp.sum(w.sum(0) ** 2) + jnp.sum(w.sum(1) ** 3) + w.sum() ** 2,
        [(3, 4)],
    ),
    "max and argmax": (
        lambda w: jnp.sum(w.max(axis=1)) + jnp.sum(jnp.max(w, axis=0) ** 2) + w.argmax(),
        [(3, 4)],
    ),
    "scalar leaf": (lambda s, w: jnp.sum(jnp.tanh(s * w)), [(), (3,)]),
    "custom_vjp and nested jit": (lambda w: jax.jit(lambda v: _softabs(v).sum())(w), [(5,)]),
    "reshape, gather, concatenate": (
        lambda w: jnp.sum(jnp.concatenate([w.reshape(-1), w[jnp.array([2, 0]), 1]]) ** 3),
        [(3, 2)],
    ),
    "scan": (_scan_cumsum, [(4, 3), (2,)]),
    "where and clip": (
        lambda w: jnp.sum(jnp.where(w > 0, jnp.clip(w, -0.5, 0.5), w**2)),
        [(4, 4)],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_propagation_equals_plain_evaluation(name):
    fn, shapes = CASES[name]
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        leaves = [jnp.asarray(rng.normal(size=s)) for s in shapes]
        scale = 1 + abs(float(fn(*leaves)))
        got = propagated_differences(fn, leaves)
        for k in range(len(leaves)):
            want = plain_differences(fn, leaves, k)
            np.testing.assert_allclose(got[k], want, rtol=1e-7, atol=1e-8 * scale, err_msg=name)


def test_unused_leaf_gives_zero():
    with jax.enable_x64(True):
        got = propagated_differences(lambda a, b: jnp.sum(a**2), [jnp.ones(3), jnp.ones(2)])
    np.testing.assert_array_equal(got[1], 0.0)
    np.testing.assert_allclose(got[0], 2.0, rtol=1e-8)


def test_dense_layers_stay_cheap(monkeypatch):
    """Moving one weight must not copy a layer's output per perturbation: products and
    activations keep changes local; only logsumexp's max over the changed class axis
    needs full copies (of the small output)."""
    densified = set()
    dense_rule = perturb._dense_rule

    def recording(eqn, base_in, pert_in):
        if any(isinstance(p, perturb.Local) for p in pert_in):
            densified.add(eqn.primitive.name)
        return dense_rule(eqn, base_in, pert_in)

    monkeypatch.setattr(perturb, "_dense_rule", recording)
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        leaves = [jnp.asarray(rng.normal(size=s)) for s in [(4, 5), (5,), (5, 3), (3,)]]
        got = propagated_differences(_mlp, leaves)
        np.testing.assert_allclose(got[0], plain_differences(_mlp, leaves, 0), rtol=1e-7)
    assert "reduce_max" in densified
    assert not densified & {"dot_general", "max", "tanh", "add", "integer_pow"}, densified
