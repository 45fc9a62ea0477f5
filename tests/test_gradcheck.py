import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from handwritten import MUTATIONS, backward, cost
from jax.test_util import check_grads

import jaxhp
from jaxhp.testing import assert_grads_close

M, KEEP_PROB, LAMBD = 6, 0.8, 0.7


@pytest.fixture(scope="module")
def problem():
    """Random params (biases too, so no ReLU sits exactly on its kink), data and masks."""
    key = jax.random.key(42)
    sizes = (4, 6, 6, 1)
    params = {}
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        key, kw, kb = jax.random.split(key, 3)
        params[f"W{l}"] = jax.random.normal(kw, (n_in, n_out)) * np.sqrt(2 / n_in)
        params[f"b{l}"] = 0.1 * jax.random.normal(kb, (n_out,))
    key, kx, ky, km1, km2 = jax.random.split(key, 5)
    x = jax.random.normal(kx, (M, 4))
    y = jax.random.bernoulli(ky, 0.5, (M,)).astype(jnp.float32)
    masks = (jaxhp.dropout_mask(km1, (M, 6), KEEP_PROB), jaxhp.dropout_mask(km2, (M, 6), KEEP_PROB))
    return params, (x, y, masks, LAMBD, KEEP_PROB)


def test_correct_backward_pass_is_great(problem):
    params, args = problem
    report = jaxhp.grad_check(cost, params, *args, grad_fn=backward)
    assert report.verdict == "great", str(report)
    assert all(leaf.difference < 1e-7 for leaf in report.leaves)
    assert {leaf.path for leaf in report.leaves} == {"W1", "b1", "W2", "b2", "W3", "b3"}


@pytest.mark.parametrize("mode", ["full", "directions"])
@pytest.mark.parametrize("bug", sorted(MUTATIONS))
def test_planted_bug_is_found_in_its_leaf(problem, bug, mode):
    params, args = problem
    grad_fn = functools.partial(backward, bug=bug)
    report = jaxhp.grad_check(cost, params, *args, grad_fn=grad_fn, mode=mode)
    assert report.verdict == "bug", str(report)
    assert report.worst.path in MUTATIONS[bug], str(report)
    assert report.worst.difference > 1e-3
    untouched = [c for c in report.leaves if c.path not in MUTATIONS[bug]]
    assert all(c.verdict == "great" for c in untouched), str(report)


def test_full_mode_worst_coordinate_is_exact(problem):
    params, args = problem
    grad_fn = functools.partial(backward, bug="scaled_dW")
    report = jaxhp.grad_check(cost, params, *args, grad_fn=grad_fn)
    worst = report.worst
    assert worst.path == "W2"
    np.testing.assert_allclose(worst.analytic, 2 * worst.numeric, rtol=1e-6)
    assert "worst coordinate: W2[" in str(report)


def test_locate_narrows_a_directions_failure(problem):
    params, args = problem

    def one_wrong_entry(p, *a):  # a single corrupted coordinate: W2[3, 1]
        g = backward(p, *a)
        g["W2"] = g["W2"].at[3, 1].add(0.5)
        return g

    report = jaxhp.grad_check(cost, params, *args, grad_fn=one_wrong_entry, mode="directions")
    assert report.worst.path == "W2" and report.worst.worst_index is None
    found = report.locate()
    assert found.worst_index == (3, 1)
    np.testing.assert_allclose(found.analytic - found.numeric, 0.5, rtol=1e-6)


def _mlp_problem(sizes, activation, key):
    kp, kb, kx, ky = jax.random.split(key, 4)
    params = jaxhp.init_mlp(kp, sizes)
    params = tuple(  # non-zero biases keep units off the ReLU kink
        layer._replace(b=0.1 * jax.random.normal(jax.random.fold_in(kb, i), layer.b.shape))
        for i, layer in enumerate(params)
    )
    x = jax.random.normal(kx, (12, sizes[0]))
    y = jax.random.randint(ky, (12,), 0, max(2, sizes[-1]))
    return params, x, y


@jax.custom_vjp
def _smooth_abs(x):
    return jnp.sqrt(x * x + 1.0)


def _smooth_abs_fwd(x):
    return _smooth_abs(x), x


def _smooth_abs_bwd(x, g):
    return (g * x / jnp.sqrt(x * x + 1.0),)


_smooth_abs.defvjp(_smooth_abs_fwd, _smooth_abs_bwd)


def _correct_functions():
    key = jax.random.key(7)
    cases = []
    for i, activation in enumerate(["relu", "tanh", "sigmoid", "leaky_relu"]):
        params, x, y = _mlp_problem((3, 5, 4, 1), activation, jax.random.fold_in(key, i))
        cases.append(
            (
                f"binary-{activation}",
                functools.partial(jaxhp.loss, lambd=0.7, activation=activation),
                params,
                (x, y),
            )
        )
    params, x, y = _mlp_problem((3, 6, 4), "tanh", jax.random.fold_in(key, 10))
    cases.append(
        ("softmax-l2", functools.partial(jaxhp.loss, lambd=1.3, activation="tanh"), params, (x, y))
    )
    params, x, y = _mlp_problem((3, 6, 6, 4), "relu", jax.random.fold_in(key, 11))
    cases.append(("softmax-deep", functools.partial(jaxhp.loss, lambd=0.1), params, (x, y)))
    params, x, y = _mlp_problem((3, 8, 1), "relu", jax.random.fold_in(key, 12))
    cases.append(
        (
            "dropout-fixed-key",
            functools.partial(jaxhp.loss, lambd=0.5, key=jax.random.key(3), keep_prob=0.7),
            params,
            (x, y),
        )
    )

    def custom_vjp_loss(p, x):
        return jnp.sum(_smooth_abs(x @ p["w"]) * p["s"][None, :])

    cases.append(
        (
            "custom_vjp",
            custom_vjp_loss,
            {"w": jnp.linspace(-1, 1, 6).reshape(3, 2), "s": jnp.array([0.5, -2.0])},
            (jnp.arange(12.0).reshape(4, 3) / 10,),
        )
    )

    def nested(p, x):
        h = jnp.tanh(x @ p["encoder"]["W"] + p["encoder"]["b"][None, :])
        return jnp.mean((h @ p["head"]["W"]) ** 2) + jnp.sum(p["scale"] ** 3)

    k1, k2 = jax.random.split(key)
    cases.append(
        (
            "nested-dict",
            nested,
            {
                "encoder": {"W": jax.random.normal(k1, (3, 4)), "b": jnp.full((4,), 0.1)},
                "head": {"W": jax.random.normal(k2, (4, 2))},
                "scale": jnp.array([0.3, -1.1]),
            },
            (jnp.ones((5, 3)),),
        )
    )
    cases.append(
        (
            "rosenbrock",
            lambda p: jnp.sum(100 * (p[1:] - p[:-1] ** 2) ** 2 + (1 - p[:-1]) ** 2),
            jnp.array([0.3, -0.4, 1.2, 0.9]),
            (),
        )
    )
    return cases


CORRECT = _correct_functions()


@pytest.mark.parametrize("name, f, params, args", CORRECT, ids=[c[0] for c in CORRECT])
@pytest.mark.parametrize("mode", ["full", "directions"])
def test_no_false_alarms(name, f, params, args, mode):
    report = jaxhp.grad_check(f, params, *args, mode=mode)
    assert report.difference < 1e-7, str(report)
    assert all(c.verdict == "great" for c in report.leaves), str(report)
    # Cross-check: jax's own checker agrees that the gradient is right.
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        args64 = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a,
            args,
        )
        check_grads(lambda p: f(p, *args64), (params64,), order=1, modes=("rev",))


def _with_gradient(f, grad_fn):
    """f with its reverse-mode gradient replaced by grad_fn, for jax's check_grads."""

    @jax.custom_vjp
    def wrapped(p, *args):
        return f(p, *args)

    def fwd(p, *args):
        return f(p, *args), (p, args)

    def bwd(res, g):
        p, args = res
        grads = jax.tree.map(lambda d: g * d, grad_fn(p, *args))
        return (grads, *jax.tree.map(jnp.zeros_like, args))

    wrapped.defvjp(fwd, bwd)
    return wrapped


@pytest.mark.parametrize("bug", ["scaled_dW", "sign_dW", "no_relu_derivative"])
def test_verdict_agrees_with_jax_check_grads_on_bugs(problem, bug):
    params, (x, y, masks, lambd, kp) = problem
    grad_fn = functools.partial(backward, bug=bug)
    report = jaxhp.grad_check(cost, params, x, y, masks, lambd, kp, grad_fn=grad_fn)
    assert not report.passed
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        f = _with_gradient(
            lambda p: cost(p, x, y, masks, lambd, kp), lambda p: grad_fn(p, x, y, masks, lambd, kp)
        )
        with pytest.raises(AssertionError):
            check_grads(f, (p64,), order=1, modes=("rev",))


def test_float32_inputs_are_upcast_and_global_config_is_untouched(problem):
    params, args = problem
    before = jax.config.jax_enable_x64
    report = jaxhp.grad_check(cost, params, *args, grad_fn=backward)
    assert jax.config.jax_enable_x64 == before
    assert report.difference < 1e-7  # float32 arithmetic could not get below ~1e-4
    assert params["W1"].dtype == jnp.float32


def test_dropout_with_fresh_randomness_is_refused(key):
    # Varied inputs and 16 units: two fresh masks cannot leave the cost unchanged by chance.
    params = jaxhp.init_mlp(key, (3, 16, 1))
    x, y = jax.random.normal(key, (20, 3)), jnp.arange(20) % 2
    draws = iter(range(10**6))

    def fresh_mask_loss(p, x, y):
        return jaxhp.loss(p, x, y, key=jax.random.key(next(draws)), keep_prob=0.5)

    with pytest.raises(ValueError, match="not deterministic.*keep_prob=1"):
        jaxhp.grad_check(fresh_mask_loss, params, x, y)


def test_assert_grads_close_message_has_table_and_worst_coordinate(problem):
    params, args = problem
    assert_grads_close(cost, params, *args, grad_fn=backward)
    for mode in ("full", "directions"):
        with pytest.raises(AssertionError) as info:
            assert_grads_close(
                cost, params, *args, mode=mode, grad_fn=functools.partial(backward, bug="sign_dW")
            )
        message = str(info.value)
        assert "W3" in message and "difference" in message
        assert "worst coordinate: W3[" in message


def test_zero_gradient_leaf_is_well_behaved():
    def f(p):
        return jnp.sum(p["used"] ** 2) + 0.0 * jnp.sum(p["unused"])

    report = jaxhp.grad_check(f, {"used": jnp.array([1.0, 2.0]), "unused": jnp.ones(3)})
    unused = next(c for c in report.leaves if c.path == "unused")
    assert unused.difference == 0.0 and unused.verdict == "great"


def test_bad_input(problem):
    params, args = problem
    with pytest.raises(ValueError, match="must return a scalar.*shape \\(2,\\)"):
        jaxhp.grad_check(lambda p: p["a"] * 2, {"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="structure of params"):
        jaxhp.grad_check(cost, params, *args, grad_fn=lambda p, *a: [p["W1"]])
    with pytest.raises(ValueError, match="leaf W2 has shape \\(6, 7\\)"):
        jaxhp.grad_check(cost, params, *args, grad_fn=lambda p, *a: {**p, "W2": jnp.zeros((6, 7))})
    with pytest.raises(ValueError, match="eps must be > 0, got 0"):
        jaxhp.grad_check(cost, params, *args, eps=0)
    with pytest.raises(ValueError, match="eps must be > 0, got -1e-05"):
        jaxhp.grad_check(cost, params, *args, eps=-1e-5)
    with pytest.raises(ValueError, match="empty pytree"):
        jaxhp.grad_check(lambda p: 0.0, {})
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        jaxhp.grad_check(cost, params, *args, mode="fast")


def test_repeated_checks_reuse_compiled_programs(problem):
    from jaxhp.gradcheck import _check as gradcheck

    params, args = problem
    jaxhp.grad_check(cost, params, *args, grad_fn=backward)
    jaxhp.grad_check(cost, params, *args, grad_fn=backward, mode="directions")
    sizes = (
        gradcheck._differences_program._cache_size(),
        gradcheck._directions_program._cache_size(),
    )
    report = jaxhp.grad_check(cost, params, *args, grad_fn=backward)
    jaxhp.grad_check(cost, params, *args, grad_fn=backward, mode="directions")
    assert report.verdict == "great"
    assert (
        gradcheck._differences_program._cache_size(),
        gradcheck._directions_program._cache_size(),
    ) == sizes


class _Settings:  # unhashable (defines __eq__ only), passed as a static argument
    def __init__(self, scale):
        self.scale = scale

    def __eq__(self, other):
        return isinstance(other, _Settings) and other.scale == self.scale

    __hash__ = None


def test_unhashable_arguments_are_accepted():
    def f(p, settings, power=2):
        return settings.scale * jnp.sum(jnp.sin(p["w"]) ** power)

    params = {"w": jnp.array([0.3, -1.2, 2.0])}
    report = jaxhp.grad_check(f, params, _Settings(3.0), power=3)
    assert report.verdict == "great", str(report)
    wrong = jaxhp.grad_check(
        f, params, _Settings(3.0), power=3, grad_fn=lambda p, s, power: {"w": jnp.cos(p["w"])}
    )
    assert wrong.verdict == "bug"
