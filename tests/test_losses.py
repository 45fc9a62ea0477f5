import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from reference import forward_backward

import jaxhp
from jaxhp.nn import layer_masks


def _problem(key, sizes, m, dtype):
    kx, kp, ky = jax.random.split(key, 3)
    params = jaxhp.init_mlp(kp, sizes, scheme="glorot", dtype=dtype)
    x = jax.random.normal(kx, (m, sizes[0]), dtype)
    if sizes[-1] == 1:
        y = jax.random.bernoulli(ky, 0.5, (m,)).astype(jnp.int32)
    else:
        y = jax.random.randint(ky, (m,), 0, sizes[-1])
    return params, x, y


def _numpy_targets(y, n_out):
    y = np.asarray(y)
    return y.astype(np.float64) if n_out == 1 else np.eye(n_out)[y]


def _masks(key, params, m, keep_prob):
    widths = [layer.W.shape[1] for layer in params[:-1]]
    return [np.asarray(mask) for mask in layer_masks(key, m, widths, keep_prob)]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
@pytest.mark.parametrize("sizes", [(4, 5, 3, 1), (3, 6, 4)])
@pytest.mark.parametrize("lambd, keep_prob", [(0.0, 1.0), (0.7, 1.0), (0.7, 0.8)])
@pytest.mark.parametrize("jit", [False, True])
def test_grad_matches_numpy_backprop(key, activation, sizes, lambd, keep_prob, jit):
    with jax.enable_x64(True):
        params, x, y = _problem(key, sizes, 37, jnp.float64)
        dropout_key = jax.random.key(7)

        def cost(p):
            return jaxhp.loss(
                p,
                x,
                y,
                lambd=lambd,
                key=dropout_key,
                keep_prob=keep_prob,
                activation=activation,
                m=50,
            )

        grad_fn = jax.jit(jax.value_and_grad(cost)) if jit else jax.value_and_grad(cost)
        value, grads = grad_fn(params)
        masks = _masks(dropout_key, params, 37, keep_prob) if keep_prob < 1 else None
        ref_cost, dWs, dbs = forward_backward(
            [np.asarray(p.W) for p in params],
            [np.asarray(p.b) for p in params],
            np.asarray(x),
            _numpy_targets(y, sizes[-1]),
            lambd=lambd,
            masks=masks,
            keep_prob=keep_prob,
            activation=activation,
            m=50,
        )
        np.testing.assert_allclose(value, ref_cost, rtol=1e-5)
        # atol: masks scale by 1/p_eff, within 2**-24 of 1/keep_prob (see jaxhp.nn).
        assert_close([g.W for g in grads], dWs, rtol=1e-5, atol=1e-9)
        assert_close([g.b for g in grads], dbs, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("keep_prob", [1.0, 0.8])
def test_ten_gd_steps_match_numpy(key, keep_prob):
    sizes, m, lr, lambd = (4, 6, 3, 1), 40, 0.5, 0.7
    params, x, y = _problem(key, sizes, m, jnp.float32)
    config = jaxhp.TrainConfig(layer_sizes=sizes, steps=10, optimizer="sgd")
    step = jaxhp.make_update_step(config)
    state = jaxhp.init_state(params, config)
    hparams = jaxhp.HParams(lambd=lambd, keep_prob=keep_prob, learning_rate=lr)
    Ws = [np.asarray(p.W, np.float64) for p in params]
    bs = [np.asarray(p.b, np.float64) for p in params]
    t = _numpy_targets(y, 1)
    for i in range(10):
        step_key = jax.random.key(100 + i)
        state, _ = step(state, x, y, step_key, hparams)
        masks = _masks(step_key, params, m, keep_prob) if keep_prob < 1 else None
        _, dWs, dbs = forward_backward(
            Ws, bs, np.asarray(x, np.float64), t, lambd=lambd, masks=masks, keep_prob=keep_prob
        )
        Ws = [W - lr * dW for W, dW in zip(Ws, dWs)]
        bs = [b - lr * db for b, db in zip(bs, dbs)]
    assert_close([p.W for p in state.params], Ws, rtol=1e-4, atol=1e-6)
    assert_close([p.b for p in state.params], bs, rtol=1e-4, atol=1e-6)


def test_l2_penalty_closed_form(key):
    params = jaxhp.init_mlp(key, (3, 4, 2))
    expected = 0.3 / (2 * 10) * sum(float(np.sum(np.asarray(p.W) ** 2)) for p in params)
    np.testing.assert_allclose(jaxhp.l2_penalty(params, 0.3, 10), expected, rtol=1e-6)
    # Biases are not penalised.
    shifted = tuple(p._replace(b=p.b + 5.0) for p in params)
    np.testing.assert_allclose(jaxhp.l2_penalty(shifted, 0.3, 10), expected, rtol=1e-6)


def test_label_forms_agree(key):
    params, x, y = _problem(key, (3, 5, 4), 20, jnp.float32)
    one_hot = jax.nn.one_hot(y, 4)
    assert_close(jaxhp.loss(params, x, y), jaxhp.loss(params, x, one_hot), rtol=1e-6)
    assert_close(jaxhp.loss(params, x, y[:, None]), jaxhp.loss(params, x, y), rtol=1e-6)


def test_binary_cross_entropy_is_stable_for_huge_logits(key):
    params = (jaxhp.Layer(W=jnp.full((1, 1), 1e4), b=jnp.zeros(1)),)
    x = jnp.array([[1.0], [-1.0]])
    value = jaxhp.loss(params, x, jnp.array([0, 1]))
    np.testing.assert_allclose(value, 1e4, rtol=1e-6)  # -log(sigmoid(-1e4)) = 1e4


def test_predict_and_accuracy(key):
    params = (jaxhp.Layer(W=jnp.array([[1.0, -1.0]]), b=jnp.zeros(2)),)
    x = jnp.array([[2.0], [-3.0], [1.0]])
    np.testing.assert_array_equal(jaxhp.predict(params, x), [0, 1, 0])
    assert float(jaxhp.accuracy(params, x, jnp.array([0, 1, 1]))) == pytest.approx(2 / 3)


def test_bad_inputs(key):
    params = jaxhp.init_mlp(key, (2, 3, 1))
    x = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="different row counts: 4 vs 3"):
        jaxhp.loss(params, x, jnp.zeros(3))
    with pytest.raises(ValueError, match="NaN or inf, first at row 2"):
        jaxhp.loss(params, x.at[2, 1].set(jnp.nan), jnp.zeros(4))
    with pytest.raises(ValueError, match="NaN or inf, first at row 0"):
        jaxhp.loss(params, x.at[0, 0].set(jnp.inf), jnp.zeros(4))
    with pytest.raises(ValueError, match="must be 0 or 1.*got 2"):
        jaxhp.loss(params, x, jnp.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="lambd must be a finite number >= 0, got -0.1"):
        jaxhp.loss(params, x, jnp.zeros(4), lambd=-0.1)
    multi = jaxhp.init_mlp(key, (2, 3, 3))
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\), got 3"):
        jaxhp.loss(multi, x, jnp.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="3 features but the first layer takes 2"):
        jaxhp.loss(params, jnp.ones((4, 3)), jnp.zeros(4))


def test_binary_gradient_at_zero_logit_is_sigmoid_minus_label():
    # Relu nets often produce z == 0 exactly; d/dz BCE must be sigmoid(0) - t = 0.5 - t.
    z = jnp.zeros((2, 1))
    t = jnp.array([0.0, 1.0])
    grad = jax.grad(lambda z: jaxhp.cross_entropy(z, t))(z)
    np.testing.assert_allclose(grad[:, 0], (0.5 - np.asarray(t)) / 2, rtol=1e-7)
