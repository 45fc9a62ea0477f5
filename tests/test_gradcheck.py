import functools
import warnings

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


def test_the_printed_bands_are_the_bounds_the_verdicts_use():
    # float32: u = 2^-23, resolution 10 u^(2/3); the bands widen to 1, 10 and 100 of it
    def f(p):  # float32 inside, whatever grad_check feeds it
        return jnp.sum(jnp.tanh(p.astype(jnp.float32)))

    report = jaxhp.grad_check(f, jnp.ones(3))
    resolution = 10 * float(np.finfo(np.float32).eps) ** (2 / 3)
    bands = ", ".join(
        f"{name} <= {bound:.1e}"
        for name, bound in zip(
            ("great", "check", "suspicious"), resolution * np.asarray([1, 10, 100])
        )
    )
    assert f"bands {bands}, bug above" in str(report)  # 2.4e-04 for great, not "2e-04"


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
    if mode == "full":  # jaxhp's own difference agrees with an independent NumPy one
        worst = report.worst
        np.testing.assert_allclose(
            worst.numeric,
            _numpy_difference(f, params, args, worst.path, worst.worst_index),
            rtol=1e-6,
            atol=1e-9,
        )


def _numpy_difference(f, params, args, path, index, h=1e-6):
    """(J(θ + h e) - J(θ - h e)) / 2h at one coordinate, perturbed with NumPy in float64."""
    with jax.enable_x64(True):
        flat, tree = jax.tree_util.tree_flatten_with_path(params)
        names = [jaxhp.gradcheck.path_name(q) for q, _ in flat]
        leaves = [np.asarray(leaf, np.float64) for _, leaf in flat]
        args64 = jax.tree.map(
            lambda a: np.asarray(a, np.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a,
            args,
        )
        values = []
        for sign in (1, -1):
            moved = [leaf.copy() for leaf in leaves]
            moved[names.index(path)][index] += sign * h
            values.append(float(f(jax.tree.unflatten(tree, moved), *args64)))
    return (values[0] - values[1]) / (2 * h)


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


@pytest.mark.parametrize("scale, passed", [(1.0, True), (1.5, False)])
def test_a_backward_pass_written_in_numpy_is_called_eagerly(scale, passed):
    """A backward pass that converts to NumPy cannot be traced: it runs eagerly. Its
    gradient is the closed form 2 x^T (x w) of sum((x w)^2), right or scaled by 1.5."""
    x = np.random.default_rng(0).normal(size=(6, 3))
    params = {"w": np.random.default_rng(1).normal(size=(3, 2))}

    def backward(p, x):
        x, w = np.asarray(x), np.asarray(p["w"])
        return {"w": scale * 2 * x.T @ (x @ w)}

    report = jaxhp.grad_check(lambda p, x: jnp.sum((x @ p["w"]) ** 2), params, x, grad_fn=backward)
    assert report.passed is passed
    assert report.worst.path == "w" and (report.worst.verdict == "bug") is not passed


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
    with pytest.raises(ValueError, match="structure of params; it returned a list, params is"):
        jaxhp.grad_check(cost, params, *args, grad_fn=lambda p, *a: [p["W1"]])
    with pytest.raises(ValueError, match="it returned 1 leaves, params has"):
        jaxhp.grad_check(cost, params, *args, grad_fn=lambda p, *a: {"W1": p["W1"]})
    renamed = {f"d{k}": v for k, v in params.items()}  # as many leaves, other names
    with pytest.raises(ValueError, match=r"it returned leaves dW1, .* where params has W1, "):
        jaxhp.grad_check(cost, params, *args, grad_fn=lambda p, *a: renamed)
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


# --- issue 16: kinks, precision, Taylor, forward mode, second order ----------------------


def _zero_row_problem():
    """The issue's ReLU case: He init, zero biases, one all-zero example row, so that
    example's hidden pre-activations are exactly 0 (the kink of relu)."""
    params = jaxhp.init_mlp(jax.random.key(0), (3, 4, 1))
    x = jax.random.normal(jax.random.key(1), (6, 3)).at[2].set(0.0)
    y = jnp.array([0, 1, 1, 0, 1, 0])
    return params, x, y


def _numpy_relu_loss(W1, b1, W2, b2, x, y):
    """Binary cross-entropy of the (3, 4, 1) relu net, in NumPy float64."""
    z = (np.maximum(x @ W1 + b1, 0.0) @ W2 + b2)[:, 0]
    return np.mean(np.logaddexp(0.0, z) - y * z)


@pytest.mark.parametrize("mode", ["full", "directions"])
def test_relu_kink_is_listed_not_called_a_bug(mode):
    params, x, y = _zero_row_problem()
    report = jaxhp.grad_check(jaxhp.loss, params, x, y, mode=mode)
    assert report.passed and report.verdict != "bug", str(report)
    b1 = next(c for c in report.leaves if c.path == "[0].b")
    # Independent reference: with x[2] = 0 and b1 = 0, every hidden unit sits on its kink
    # for that example, and only b1 moves it (W1 multiplies zeros).
    assert sorted(k.index for k in b1.kinks) == [(0,), (1,), (2,), (3,)], str(report)
    assert report.kinks.keys() == {"[0].b"}
    assert "kink [0].b[" in str(report) and "precision float64" in str(report)
    a = [np.asarray(v, np.float64) for v in (params[0].W, params[0].b, params[1].W, params[1].b)]
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    for kink in b1.kinks:
        # The kink sits at θ: every step crosses it, and all agree, so it reads at ε.
        t = kink.steps[1]
        assert t == report.problem.eps[1]
        moved = a[1].copy()
        moved[kink.index] += t
        right = (_numpy_relu_loss(a[0], moved, a[2], a[3], xs, ys) - report.problem.value) / t
        np.testing.assert_allclose(kink.right, right, rtol=1e-6)
        assert kink.matches == "left"  # jax's relu has derivative 0 at 0


@pytest.mark.parametrize("mode", ["full", "directions"])
def test_a_bug_at_a_kink_coordinate_is_caught(mode):
    params, x, y = _zero_row_problem()

    def wrong(p, x, y):  # b1[0] sits on its kink; its one-sided slopes are about 0.18 and 0.32
        g = jax.grad(jaxhp.loss)(p, x, y)
        return (g[0]._replace(b=g[0].b.at[0].add(5.0)), g[1])

    report = jaxhp.grad_check(jaxhp.loss, params, x, y, grad_fn=wrong, mode=mode)
    assert not report.passed and report.verdict == "bug", str(report)
    assert report.ranked[0].path == "[0].b"
    kink = next(k for k in report.ranked[0].kinks if k.index == (0,))
    low, high = sorted((kink.left, kink.right))
    assert kink.matches == "neither" and not low <= kink.analytic <= high
    assert "outside their one-sided derivatives" in report.ranked[0].note


def test_directions_overall_difference_keeps_a_buggy_leaf_that_crossed_a_kink():
    def f(p):
        return jnp.sum(jnp.abs(p["b"])) + jnp.sum(p["w"] ** 2)

    def wrong(p):  # the gradient of b negated: [-1, -1] against the true [1 (at 0+), 1]
        g = jax.grad(f)(p)
        return {"b": -g["b"], "w": g["w"]}

    theta = {"b": jnp.array([0.0, 2.0]), "w": jnp.array([0.5, -1.0, 0.3])}
    report = jaxhp.grad_check(f, theta, grad_fn=wrong, mode="directions")
    b = next(c for c in report.leaves if c.path == "b")
    assert b.verdict == "bug" and b.kinks, str(report)
    assert report.difference >= b.difference > report.tol and not report.passed


def test_a_subgradient_between_the_one_sided_slopes_is_not_a_bug():
    # relu(θ) + 2 relu(-θ): at θ = 0 jax's derivative is 0 + 0, between the one-sided slopes
    # -2 and +1 (a valid subgradient), while the centred difference there is -0.5.
    def f(p):
        return jnp.sum(jax.nn.relu(p["a"]) + 2 * jax.nn.relu(-p["a"])) + jnp.sum(p["b"] ** 2)

    theta = {"a": jnp.array([0.0, 1.5, -2.0]), "b": jnp.array([0.7])}
    report = jaxhp.grad_check(f, theta)
    assert report.passed, str(report)
    (kink,) = report.kinks["a"]
    assert kink.index == (0,) and (kink.left, kink.right) == pytest.approx((-2.0, 1.0))
    assert kink.analytic == 0.0 and kink.matches == "neither"


def _course_deep_problem(seed, sizes=(10, 32, 32, 32, 1)):
    """The course's init, W = randn * 0.01 and b = 0: the last pre-activations of this
    relu net lie within ~1e-8 of their kinks, closer than eps / 100."""
    rng = np.random.default_rng(seed)
    params = tuple(
        layer._replace(W=jnp.asarray(0.01 * rng.normal(size=layer.W.shape), jnp.float32))
        for layer in jaxhp.init_mlp(jax.random.key(0), sizes)
    )
    x = jnp.asarray(rng.normal(size=(40, sizes[0])), jnp.float32)
    return params, x, jnp.asarray(rng.integers(0, 2, size=40))


@pytest.mark.parametrize("mode", ["full", "directions"])
def test_course_deep_relu_net_at_its_001_init_is_no_false_alarm(mode):
    # Before, seeds 0-5 all read "bug" or "disputed" in both modes with jax.grad's gradient:
    # one-sided slopes at eps still spanned kinks, the Taylor remainder past a kink fell
    # like h (order ~1.1), and leaves within the directions' rounding noise stood out.
    params, x, y = _course_deep_problem(4)
    report = jaxhp.grad_check(jaxhp.loss, params, x, y, mode=mode)
    assert report.passed, str(report)

    def wrong(p, x, y):  # the second layer's weight gradient 5% too large
        g = jax.grad(jaxhp.loss)(p, x, y)
        return (g[0], g[1]._replace(W=1.05 * g[1].W), *g[2:])

    caught = jaxhp.grad_check(jaxhp.loss, params, x, y, grad_fn=wrong, mode=mode)
    assert caught.verdict == "bug" and caught.ranked[0].path == "[1].W", str(caught)


@pytest.mark.parametrize("mode", ["full", "directions"])
def test_a_flipped_sign_at_a_kink_at_theta_is_caught_in_float32_and_next_to_a_large_cost(mode):
    # Zero-padded rows and zero biases put kinks at θ: every step of the ladder crosses.
    # Judged to the smallest step's rounding noise (1e4 times ε's), a flip passed.
    params = jaxhp.init_mlp(jax.random.key(0), (4, 8, 8, 1))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    x[[0, 3]] = 0.0
    x, y = jnp.asarray(x), jnp.asarray(rng.integers(0, 2, size=12))

    def in_float32(p, x, y):
        return jaxhp.loss(
            jax.tree.map(lambda a: a.astype(jnp.float32), p), x.astype(jnp.float32), y
        )

    def offset(p, x, y):
        return jaxhp.loss(p, x, y) + 1000.0

    for f in (in_float32, offset):

        def flipped(p, x, y, f=f):
            g = list(jax.grad(f)(p, x, y))
            g[1] = g[1]._replace(b=g[1].b.at[3].multiply(-1.0))
            return tuple(g)

        assert abs(float(jax.grad(f)(params, x, y)[1].b[3])) > 1e-3  # the flip matters
        assert jaxhp.grad_check(f, params, x, y, mode=mode).passed
        report = jaxhp.grad_check(f, params, x, y, grad_fn=flipped, mode=mode)
        assert report.verdict == "bug" and report.ranked[0].path == "[1].b", str(report)


def test_kinks_closer_than_every_step_leave_a_leaf_unresolved_not_a_bug():
    # Six layers of randn * 0.01 weights: the last pre-activations lie within 1e-10 of their
    # kinks, so steps down to eps / 1e5 still blend the slopes around θ (it read "bug").
    rng = np.random.default_rng(9)
    params = tuple(
        layer._replace(W=jnp.asarray(0.01 * rng.normal(size=layer.W.shape)))
        for layer in jaxhp.init_mlp(jax.random.key(9), (8, 16, 16, 16, 16, 16, 1))
    )
    x, y = jnp.asarray(rng.normal(size=(40, 8))), jnp.asarray(rng.integers(0, 2, size=40))
    with pytest.warns(UserWarning, match="could not check") as said:
        report = jaxhp.grad_check(jaxhp.loss, params, x, y)
    assert report.verdict == "unresolved" and not report.passed, str(report)
    # every leaf it could not check is named, and the reason quoted is the first one's
    assert str(said[0].message).startswith(
        "grad_check could not check 7 leaves ([0].W, [0].b, [1].W, [2].W, [3].W, [4].W, "
        "[5].W); each one's note in the report says why. [0].W: its numeric and analytic"
    )
    assert not any(c.verdict in ("bug", "disputed") for c in report.leaves), str(report)


def test_bug_next_to_a_kink_is_still_caught():
    params, x, y = _zero_row_problem()
    # Two units on the kink (bias 0), two off it; the bug is in an off-kink coordinate.
    params = (params[0]._replace(b=jnp.array([0.0, 0.0, 0.3, -0.2])), params[1])

    def wrong(p, x, y):
        g = jax.grad(jaxhp.loss)(p, x, y)
        return (g[0]._replace(b=g[0].b.at[2].add(0.5)), g[1])

    report = jaxhp.grad_check(jaxhp.loss, params, x, y, grad_fn=wrong)
    b1 = next(c for c in report.leaves if c.path == "[0].b")
    assert b1.verdict == "bug" and b1.worst_index == (2,), str(report)
    assert {k.index for k in b1.kinks} <= {(0,), (1,)}
    assert b1.taylor_order is not None and b1.taylor_order < 1.5
    assert all(c.verdict == "great" for c in report.leaves if c.path != "[0].b")


def _mixed_precision_loss(p, x):
    return jnp.sum(jnp.tanh(x.astype(jnp.float32) @ p["W"].astype(jnp.float32)) ** 2)


@pytest.mark.parametrize("mode", ["full", "directions"])
def test_float32_loss_passes_and_a_1_5x_gradient_fails(mode):
    params = {"W": jax.random.normal(jax.random.key(2), (3, 2))}
    x = jax.random.normal(jax.random.key(3), (5, 3))
    report = jaxhp.grad_check(_mixed_precision_loss, params, x, mode=mode)
    assert report.passed, str(report)
    assert report.precision.dtype == "float32" and "precision float32" in str(report)
    rms = float(np.sqrt(np.mean(np.square(np.asarray(params["W"], np.float64)))))
    np.testing.assert_allclose(report.problem.eps[0], 2.0 ** (-23 / 3) * max(1.0, rms))

    def closed_form(p, x):  # d/dW sum tanh(xW)^2 = x^T (2 t (1 - t^2)), times 1.5
        t = np.tanh(np.asarray(x, np.float64) @ np.asarray(p["W"], np.float64))
        return {"W": 1.5 * np.asarray(x, np.float64).T @ (2 * t * (1 - t**2))}

    wrong = jaxhp.grad_check(_mixed_precision_loss, params, x, grad_fn=closed_form, mode=mode)
    assert wrong.verdict == "bug" and wrong.worst.path == "W", str(wrong)
    np.testing.assert_allclose(wrong.worst.difference, 0.5 / 2.5, rtol=1e-2)  # |1.5-1|/2.5
    assert abs(wrong.worst.taylor_order - 1.0) < 0.2


@pytest.mark.parametrize("mode", ["full", "directions"])
def test_a_1_percent_error_in_float32_fails_and_points_to_float64(mode):
    params = {"W": jax.random.normal(jax.random.key(2), (3, 2))}
    x = jax.random.normal(jax.random.key(3), (5, 3))

    def off_by_1_percent(p, x):  # the closed form above, times 1.01
        t = np.tanh(np.asarray(x, np.float64) @ np.asarray(p["W"], np.float64))
        return {"W": 1.01 * np.asarray(x, np.float64).T @ (2 * t * (1 - t**2))}

    report = jaxhp.grad_check(_mixed_precision_loss, params, x, grad_fn=off_by_1_percent, mode=mode)
    assert not report.passed  # 0.01 / 2.01 = 5.0e-3, above float32's tol of 2.4e-3
    np.testing.assert_allclose(report.worst.difference, 0.01 / 2.01, rtol=0.2)
    if report.verdict != "bug":  # float32 cannot always say more: it must say what will
        assert "check f in float64 (under jax.enable_x64(True))" in str(report), str(report)

    # the advice settles it: the same loss in float64 calls the error a bug
    def loss64(p, x):
        return jnp.sum(jnp.tanh(x @ p["W"]) ** 2)

    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        settled = jaxhp.grad_check(
            loss64, p64, x.astype(jnp.float64), grad_fn=off_by_1_percent, mode=mode
        )
    assert settled.verdict == "bug", str(settled)


def _cost32(p, *a):  # one function for every case below, so they share compiled programs
    return cost(jax.tree.map(lambda w: w.astype(jnp.float32), p), *a)


@pytest.mark.parametrize("bug", ["scaled_dW", "bias_normalisation", "no_relu_derivative"])
def test_planted_bugs_are_caught_in_float32_code(problem, bug):
    params, args = problem
    report = jaxhp.grad_check(_cost32, params, *args, grad_fn=functools.partial(backward, bug=bug))
    assert report.precision.dtype == "float32"
    assert report.verdict == "bug" and report.worst.path in MUTATIONS[bug], str(report)
    untouched = [c for c in report.leaves if c.path not in MUTATIONS[bug]]
    assert all(c.difference <= report.tol for c in untouched), str(report)
    correct = jaxhp.grad_check(_cost32, params, *args, grad_fn=backward)
    assert correct.passed, str(correct)


@jax.custom_vjp
def _softplus_wrong(x):
    return jnp.logaddexp(x, 0.0)


_softplus_wrong.defvjp(
    lambda x: (jnp.logaddexp(x, 0.0), x),
    lambda x, g: (g * jax.nn.sigmoid(2 * x),),  # wrong: the derivative is sigmoid(x)
)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_wrong_custom_vjp_is_caught_at_its_leaf(dtype):
    def f(p, x):
        return jnp.sum(_softplus_wrong((x @ p["w"]).astype(dtype))) + jnp.sum(p["v"] ** 2)

    params = {"w": jnp.array([[0.5, -1.0], [0.3, 0.8]]), "v": jnp.array([0.1, 2.0])}
    report = jaxhp.grad_check(f, params, jnp.array([[1.0, 2.0], [-0.5, 0.4]]))
    assert report.precision.dtype == jnp.dtype(dtype).name
    by_path = {c.path: c for c in report.leaves}
    assert by_path["w"].verdict == "bug" and by_path["v"].verdict == "great", str(report)
    assert by_path["w"].taylor_order < 1.5


@jax.custom_jvp
def _cube(x):
    return x**3


@_cube.defjvp
def _cube_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return x**3, 2 * x**2 * t  # wrong: 3 x^2


@jax.custom_jvp
def _square(x):
    return x**2


@_square.defjvp
def _square_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return x**2, 2 * x * t


def test_jvp_checks_forward_mode_rules():
    p = jnp.array([0.5, -1.5, 2.0])
    good = jaxhp.grad_check(lambda p: jnp.sum(_square(p)), p, check="jvp")
    assert good.passed and good.check == "jvp", str(good)
    bad = jaxhp.grad_check(lambda p: jnp.sum(_cube(p)), p, check="jvp")
    assert bad.verdict == "bug", str(bad)
    # closed form: the analytic side is the rule's 2 x^2, the numeric one d/dx x^3 = 3 x^2
    np.testing.assert_allclose(bad.worst.analytic, 2 * float(p[2]) ** 2, rtol=1e-12)
    np.testing.assert_allclose(bad.worst.numeric, 3 * float(p[2]) ** 2, rtol=1e-8)


@jax.custom_vjp
def _sin_first_order_only(x):
    return jnp.sin(x)


_sin_first_order_only.defvjp(
    lambda x: (jnp.sin(x), x),
    lambda x, g: (g * jax.lax.stop_gradient(jnp.cos(x)),),  # right value, no derivative
)


@pytest.mark.parametrize("check", ["vjp", "jvp"])
def test_second_order_matches_the_closed_form_hessian(check):
    def f(p):  # Hessian diag(6 p) + the coupling of p0 p1: closed form below
        return jnp.sum(p**3) + p[0] * p[1]

    p = jnp.array([0.5, -1.5, 2.0])
    report = jaxhp.grad_check(f, p, order=2, check=check)
    assert report.passed and report.order == 2, str(report)


def test_second_order_catches_a_rule_without_second_derivative():
    p = jnp.array([0.3, 1.0, -0.7])

    def f(p):
        return jnp.sum(_sin_first_order_only(p))

    assert jaxhp.grad_check(f, p).passed  # first order is right
    report = jaxhp.grad_check(f, p, order=2)
    assert report.verdict == "bug", str(report)


def test_not_finite_at_perturbed_points_names_the_leaf():
    params = {"a": jnp.array([1.0, 2.0]), "s": jnp.array([1.0, 1e-7])}
    report = jaxhp.grad_check(lambda p: jnp.sum(p["a"] ** 2) + jnp.sum(jnp.log(p["s"])), params)
    s = next(c for c in report.leaves if c.path == "s")
    assert s.verdict == "not finite" and not report.passed
    assert "f is not finite at θ ± ε for leaf s" in str(report)
    assert next(c for c in report.leaves if c.path == "a").verdict == "great"


def test_huge_eps_warns_and_is_not_called_a_bug():
    with pytest.warns(UserWarning, match="eps=1000.0 is far from"):
        report = jaxhp.grad_check(lambda p: jnp.sum(jnp.sin(p)), jnp.array([0.3, 1.0]), eps=1e3)
    assert report.verdict == "disputed" and "order" in str(report)


def test_huge_eps_in_directions_mode_is_disputed_with_order_2():
    # sin is smooth: along any direction d, J(θ + h d) - J(θ) - h <g, d> = -h² Σ sin(θ) d² / 2
    # + O(h³), so the remainder falls like h², although eps=1e3 ruins the difference.
    with pytest.warns(UserWarning, match="eps=1000.0 is far from"):
        report = jaxhp.grad_check(
            lambda p: jnp.sum(jnp.sin(p)), jnp.array([0.3, 1.0, -0.7]), eps=1e3, mode="directions"
        )
    assert report.verdict == "disputed", str(report)
    assert abs(report.worst.taylor_order - 2.0) < 0.1


def _directions_chunks(f, rows) -> list[int]:
    """The vmapped chunk grad_check's directions mode picks for f(p, x) with 100
    parameters and x of each of ``rows`` rows, under a 512 kB memory budget."""
    p = jnp.linspace(-1.0, 1.0, 100)
    return [
        jaxhp.grad_check(
            f, p, jnp.ones((m, 100)), mode="directions", memory_budget=2**19
        ).problem.chunk
        for m in rows
    ]


def test_directions_chunk_follows_the_shapes_of_each_check():
    # Evaluations per vmapped chunk = memory_budget // bytes one evaluation accesses. With
    # 1000 rows, reading x alone (800 kB) exceeds the 512 kB budget: one at a time. With 10
    # rows an evaluation accesses well under 256 kB: two or more. A later check of the same
    # f must not reuse the cost of other shapes.
    def f(p, x):
        return jnp.sum(jnp.tanh(x * p[None, :]))

    chunks = _directions_chunks(f, (10, 1000, 10))
    assert chunks[0] >= 2 and chunks[1] == 1 and chunks[2] == chunks[0], chunks


def test_directions_chunk_follows_the_shapes_without_a_cost_model(monkeypatch):
    # CUDA's lowered programs have no cost analysis: the chunk then comes from the bytes of
    # f's inputs and largest value, and still drops to one evaluation for 1000 rows.
    from jaxhp.gradcheck import _check

    def no_cost_model(self):
        raise NotImplementedError("no cost analysis before compiling on this backend")

    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", no_cost_model)
    monkeypatch.setattr(_check, "_COSTS", {})

    def g(p, x):  # not f above: a new function, so no cost is remembered for it
        return jnp.sum(jnp.sin(x * p[None, :]))

    chunks = _directions_chunks(g, (10, 1000))
    # 10 rows: 8 kB of x (float64) + 0.8 kB of p + the 8 kB product -> 2**19 // 16.8 kB
    assert chunks == [2**19 // (8000 + 800 + 8000), 1], chunks


def test_taylor_order_of_closed_form_remainders():
    from jaxhp.gradcheck._check import remainder_order

    hs = 0.5 ** np.arange(20)
    exact = np.exp(0.3 + hs)  # f = exp, θ = 0.3, d = 1: right slope e^0.3, wrong 2 e^0.3
    value = np.exp(0.3)
    assert abs(remainder_order(hs, exact, value, value, 2.2e-16) - 2) < 0.05
    assert abs(remainder_order(hs, exact, value, 2 * value, 2.2e-16) - 1) < 0.05


def test_dropout_key_reaches_f_not_the_checker():
    params = jaxhp.init_mlp(jax.random.key(0), (3, 6, 1))
    x, y = jax.random.normal(jax.random.key(1), (8, 3)), jnp.arange(8) % 2
    k = jax.random.key(5)
    report = jaxhp.grad_check(jaxhp.loss, params, x, y, key=k, keep_prob=0.8)
    with jax.enable_x64(True):
        expected = jaxhp.loss(
            jax.tree.map(lambda a: a.astype(jnp.float64), params),
            x.astype(jnp.float64),
            y,
            key=k,
            keep_prob=0.8,
        )
    np.testing.assert_allclose(report.problem.value, float(expected), rtol=1e-12)
    no_dropout = float(jaxhp.loss(params, x, y))
    assert abs(report.problem.value - no_dropout) > 1e-6  # the mask did change J
    spelled = jaxhp.grad_check(jaxhp.loss, params, x, y, kwargs={"key": k, "keep_prob": 0.8})
    assert spelled.problem.value == report.problem.value


def test_torch_gradcheck_agrees_where_installed():
    torch = pytest.importorskip("torch")
    w = np.array([[0.5, -1.0], [0.3, 0.8]])
    x = np.array([[1.0, 2.0], [-0.5, 0.4]])

    def f(p):
        return jnp.sum(jnp.tanh(x @ p) ** 2)

    report = jaxhp.grad_check(f, jnp.asarray(w))
    t = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    tx = torch.tensor(x, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: torch.sum(torch.tanh(tx @ p) ** 2), (t,))
    assert torch.autograd.gradgradcheck(lambda p: torch.sum(torch.tanh(tx @ p) ** 2), (t,))
    assert report.passed and jaxhp.grad_check(f, jnp.asarray(w), order=2).passed


def _float32_relu_loss(p, x, y):
    p = jax.tree.map(lambda a: a.astype(jnp.float32), p)
    return jaxhp.loss(p, x.astype(jnp.float32), y)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_float32_relu_net_whose_step_crosses_kinks_is_no_bug(seed):
    """float32 needs a large step (~5e-3), which moves some ReLU pre-activations across 0
    without any one coordinate disagreeing alone: those inits were called "bug" (Taylor
    order about 1.2, from steps across the kinks). The gradient is jax.grad's, so correct;
    a 1.5x gradient on the same net must still be a bug."""
    x, y = jaxhp.datasets.moons(30, noise=0.2, seed=0)
    params = jaxhp.init_mlp(jax.random.key(seed), (2, 6, 4, 1))
    report = jaxhp.grad_check(_float32_relu_loss, params, x, y)
    assert report.passed, str(report)
    assert "float32" in str(report)

    def wrong(p, x, y):
        return jax.tree.map(lambda g: 1.5 * g, jax.grad(_float32_relu_loss)(p, x, y))

    with warnings.catch_warnings():  # a small leaf of a seed may be below float32's reach
        warnings.filterwarnings("ignore", message="grad_check could not check")
        wrong_report = jaxhp.grad_check(_float32_relu_loss, params, x, y, grad_fn=wrong)
    assert wrong_report.worst.verdict == "bug"


def _tanh_loss(p, x, y, dtype=jnp.float64):
    p = jax.tree.map(lambda a: a.astype(dtype), p)
    a1 = jnp.tanh(x.astype(dtype) @ p["W1"] + p["b1"][None, :])
    z = (a1 @ p["W2"] + p["b2"][None, :])[:, 0]
    return jnp.mean(jnp.logaddexp(0, z) - y * z)


def _doubled_b1(f):
    """A backward pass with a planted bug: the bias gradient of layer 1 twice too large."""

    def grad_fn(p, x, y):
        g = jax.grad(f)(p, x, y)
        return {**g, "b1": 2 * g["b1"]}

    return grad_fn


def test_a_bug_below_float32_resolution_is_unresolved_not_great():
    """Small params (the course's 0.01 init) in an f that computes in float32: the bias
    gradient (~1e-7) lies far below finite differences' noise floor, and a doubled one
    passed as "great" (difference 0). It is "unresolved" now: not called great, with a
    warning that names it; in float64 the same bug is resolved as a bug, and correct
    gradients pass in both."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(np.float64)
    p = {"W1": rng.normal(size=(3, 6)) * 0.01, "b1": np.full(6, 1e-3)}
    p |= {"W2": rng.normal(size=(6, 1)) * 0.01, "b2": np.zeros(1)}
    f32 = functools.partial(_tanh_loss, dtype=jnp.float32)
    assert jaxhp.grad_check(f32, p, x, y).passed and jaxhp.grad_check(_tanh_loss, p, x, y).passed
    with pytest.warns(UserWarning, match=r"could not check b1: .* in float32"):
        report = jaxhp.grad_check(f32, p, x, y, grad_fn=_doubled_b1(f32))
    b1 = next(c for c in report.leaves if c.path == "b1")
    assert b1.verdict == report.verdict == "unresolved"
    assert b1.note.startswith("not checked: its numeric and analytic gradients")
    # the table's difference (against the noise floor) is 0: the note says why, and by how
    # much the two really differ (a doubled gradient: |2g - g| / (|2g| + |g|) = 1/3)
    assert b1.difference == 0 and "reads 0, though they differ by 33% of their norms" in b1.note
    report = jaxhp.grad_check(_tanh_loss, p, x, y, grad_fn=_doubled_b1(_tanh_loss))
    assert [c.path for c in report.failing] == ["b1"] and report.verdict == "bug"


def test_a_zero_gradient_left_as_float64_rounding_residue_agrees():
    """A bias before a batch norm has a gradient of exactly 0, which autodiff leaves as
    rounding residue (~1e-17): in float64 that is zero, not "unresolved"."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 4))
    p = {"W": rng.normal(size=(4, 5)), "b": rng.normal(size=5), "v": rng.normal(size=5)}

    def f(p, x):
        h = x @ p["W"] + p["b"][None, :]
        h = (h - h.mean(0, keepdims=True)) / jnp.sqrt(h.var(0, keepdims=True) + 1e-5)
        return jnp.mean(jnp.tanh(h) @ p["v"])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = jaxhp.grad_check(f, p, x)
    assert report.passed and next(c for c in report.leaves if c.path == "b").verdict == "great"


def _sign_flipped(f):
    """``grad_fn`` for ``f(p)``: its gradient with the sign flipped (a planted bug)."""
    return lambda p: jax.tree.map(jnp.negative, jax.grad(f)(p))


_W = {"w": np.array([0.3, -1.2, 2.0])}


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_a_low_precision_f_is_unresolved_never_passed(dtype):
    """In bfloat16/float16 the bands reach past a relative difference of 1, the most two
    gradients can differ by, so a sign error passed as "great". Such an f is not checked:
    "unresolved", not passed, with a warning; assert_grads_close fails on it."""

    def f(p):
        return jnp.sum(jnp.tanh(p["w"].astype(dtype)) ** 2).astype(jnp.float32)

    with pytest.warns(UserWarning, match=f"could not check w: f computes in {jnp.dtype(dtype)}"):
        report = jaxhp.grad_check(f, _W, grad_fn=_sign_flipped(f))
    assert report.verdict == "unresolved" and not report.passed
    with pytest.warns(UserWarning), pytest.raises(AssertionError, match="w \\(unresolved\\)"):
        assert_grads_close(f, _W, grad_fn=_sign_flipped(f))
    with pytest.warns(UserWarning, match="could not check w"):  # Hessian-vector products too
        second = jaxhp.grad_check(f, _W, order=2)
    assert second.verdict == "unresolved" and not second.passed


def test_a_wrong_gradient_under_a_large_offset_is_not_passed_as_zero():
    """At |J| = 1e10 the finite differences' noise floor (float64) exceeds a gradient of
    norm 5: a sign error there read as "both zero", difference 0, "great". It is
    "unresolved" now; a bias's float64 rounding residue still counts as zero (above)."""

    def f(p):
        return 1e10 + jnp.sum(p["w"] ** 2)

    with pytest.warns(UserWarning, match=r"could not check w: .*\|J\| = 1e\+10"):
        report = jaxhp.grad_check(f, _W, grad_fn=_sign_flipped(f))
    assert report.verdict == "unresolved" and not report.passed


def test_rounding_noise_at_a_large_cost_is_not_called_a_dispute():
    """At |J| = 1e8 the differences of a right gradient carry ~3e-4 relative noise (u|J|/ε),
    above the float64 tol: "disputed" failed it as if the tests disagreed. It is not
    checked now (the note says why); a wrong sign is still a bug."""

    def f(p):
        return 1e8 + jnp.sum(p["w"] ** 2)

    with pytest.warns(UserWarning, match="lies within the rounding noise"):
        report = jaxhp.grad_check(f, _W)
    assert report.verdict == "unresolved" and not report.passed
    assert jaxhp.grad_check(f, _W, grad_fn=_sign_flipped(f)).verdict == "bug"


def test_huge_gradients_do_not_overflow_the_difference():
    """Gradients near 1e200 squared overflow in np.linalg.norm (difference NaN, "bug" for
    a right gradient); the norms are scaled now. Closed form: 2e200 * w."""

    def f(p):
        return 1e200 * jnp.sum(p["w"] ** 2)

    right = jaxhp.grad_check(f, _W)
    assert right.verdict == "great" and right.difference < 1e-9, str(right)
    wrong = jaxhp.grad_check(f, _W, grad_fn=_sign_flipped(f))
    assert wrong.verdict == "bug" and wrong.difference == pytest.approx(1.0)


def test_a_nan_analytic_gradient_is_a_bug_that_names_its_coordinate():
    """where(w > 0, sqrt(w), 0) at w = 0 is finite, but its gradient is NaN (the hidden
    branch is differentiated): a bug at coordinate [0], with the trap named."""
    p = {"w": np.array([0.0, 1.0, 2.0])}

    def f(p):
        return jnp.sum(jnp.where(p["w"] > 0, jnp.sqrt(p["w"]), 0.0) + p["w"] ** 2)

    report = jaxhp.grad_check(f, p)
    (leaf,) = report.leaves
    assert leaf.verdict == report.verdict == "bug" and leaf.worst_index == (0,)
    assert "analytic gradient is nan at coordinate [0]" in leaf.note and "where(" in leaf.note


def test_f_returning_a_loss_and_aux_pair_is_told_how_to_check_it():
    with pytest.raises(ValueError, match=r"got a tuple of 2 values; for f returning \(loss, aux\)"):
        jaxhp.grad_check(lambda p: (jnp.sum(p["w"] ** 2), 1.0), _W)


def test_the_report_table_keeps_long_leaf_names_apart_from_their_shapes():
    """A Flax path (Embed_0.embedding, 17 characters) ran into its shape: its columns are
    as wide as their longest entry."""
    params = {"Embed_0": {"embedding": np.ones((50, 16))}, "b": np.ones(2)}
    report = jaxhp.grad_check(lambda p: jnp.sum(p["Embed_0"]["embedding"] ** 2) + p["b"][0],
                              params, mode="directions")  # fmt: skip
    lines = str(report).splitlines()
    header = next(line for line in lines if line.startswith("leaf"))
    row = next(line for line in lines if line.startswith("Embed_0"))
    name, shape = row.split()[:2]
    assert name == "Embed_0.embedding" and shape + row.split()[2] == "(50,16)"
    assert row.index("(50,") == header.index("shape")  # under its heading
