"""Misuse of grad_check and testing.assert_grads_close: each gives a clear error that names
the argument and what is allowed."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxhp
from jaxhp.testing import assert_grads_close

P = jnp.array([0.3, -1.2, 2.0])


def f(p):
    return jnp.sum(jnp.sin(p) ** 2)


def f_with_eps(p, *, eps=0.1):
    return jnp.sum((p + eps) ** 2)


@jax.custom_vjp
def _vjp_only(x):
    return jnp.sin(x)


_vjp_only.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x),))


@jax.custom_vjp
def _loop_backward(x):
    return jnp.sin(x)


def _loop_bwd(x, g):  # a while loop with a traced bound: no reverse mode through it
    n = jnp.asarray(1 + (x[0] > 0), jnp.int32)
    _, c = lax.while_loop(lambda s: s[0] < n, lambda s: (s[0] + 1, s[1] * 1.0), (0, jnp.cos(x)))
    return (g * c,)


_loop_backward.defvjp(lambda x: (jnp.sin(x), x), _loop_bwd)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: jaxhp.grad_check(f, P, mode="fast"), ValueError, "unknown mode 'fast'"),
        (lambda: jaxhp.grad_check(f, P, check="rev"), ValueError, "unknown check 'rev'.*'jvp'"),
        (lambda: jaxhp.grad_check(f, P, order=3), ValueError, "order must be 1 or 2, got 3"),
        (lambda: jaxhp.grad_check(f, P, eps=float("nan")), ValueError, "eps must be > 0, got nan"),
        (lambda: jaxhp.grad_check(f, P, eps=float("inf")), ValueError, "eps must be finite"),
        (lambda: jaxhp.grad_check(f, P, eps="1e-6"), ValueError, "eps must be > 0, got '1e-6'"),
        (lambda: jaxhp.grad_check(f, P, tol=0), ValueError, "tol must be a number in \\(0, 1\\)"),
        (lambda: jaxhp.grad_check(f, P, tol=5.0), ValueError, "tol must be .* got 5.0"),
        (lambda: jaxhp.grad_check(f, P, n_directions=0), ValueError, "n_directions must be"),
        (lambda: jaxhp.grad_check(f, P, memory_budget=0), ValueError, "memory_budget must be"),
        (lambda: jaxhp.grad_check(f, P, grad_fn=3), TypeError, "grad_fn must be callable"),
        (
            lambda: jaxhp.grad_check(f, P, grad_fn=jax.grad(f), check="jvp"),
            ValueError,
            "grad_fn cannot be combined with check='jvp' or order=2",
        ),
        (
            lambda: jaxhp.grad_check(f_with_eps, P, eps=1e-4),
            ValueError,
            "eps=0.0001 is ambiguous.*kwargs=\\{'eps': ...\\}",
        ),
        (
            lambda: jaxhp.grad_check(f, P, key=jax.random.key(0)),
            TypeError,
            "f.* cannot be called .*'key'.*direction_key=",
        ),
        (lambda: jaxhp.grad_check(f, P, kwargs=[1]), TypeError, "kwargs must be a dict"),
        (
            lambda: jaxhp.grad_check(f_with_eps, P, kwargs={"eps": 0.1}, scale=2),
            TypeError,
            "unknown keywords \\['scale'\\] next to kwargs=",
        ),
        (lambda: jaxhp.grad_check(f, P, jnp.ones(2)), TypeError, "cannot be called.*1 extra"),
        (  # a backward pass that does not take f's keywords
            lambda: jaxhp.grad_check(f_with_eps, P, kwargs={"eps": 0.1}, grad_fn=jax.grad(f)),
            TypeError,
            r"grad_fn.* cannot be called as grad_fn\(params, .*\['eps'\].*with f's arguments",
        ),
        (
            lambda: jaxhp.grad_check(lambda p: jnp.sum(_vjp_only(p)), P, check="jvp"),
            ValueError,
            "check='jvp': f uses a custom_vjp rule \\(_vjp_only\\).*forward mode is undefined",
        ),
        (
            lambda: jaxhp.grad_check(lambda p: jnp.sum(_loop_backward(p)), P, order=2),
            ValueError,
            "order=2: the gradient of f is not differentiable.*primitive while_loop",
        ),
        (
            lambda: jaxhp.grad_check(lambda p: jnp.sum(p["n"] * 1.0), {"n": jnp.arange(3)}),
            TypeError,
            "params leaf n has dtype int32",
        ),
        (
            lambda: jaxhp.grad_check(f, P).locate("W9"),
            ValueError,
            "unknown leaf 'W9'; leaves: <root>",
        ),
        (lambda: assert_grads_close(f, P, mode="fast"), ValueError, "unknown mode 'fast'"),
        (lambda: assert_grads_close(f, P, order=0), ValueError, "order must be 1 or 2, got 0"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_misuse_is_refused_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_explicit_kwargs_keep_a_clashing_name_for_f():
    report = jaxhp.grad_check(f_with_eps, P, kwargs={"eps": 0.5}, eps=1e-5)
    assert report.problem.eps == [1e-5]  # the checker's step
    assert report.problem.value == pytest.approx(float(jnp.sum((P + 0.5) ** 2)), rel=1e-6)


def test_assert_grads_close_explains_a_failure_in_the_reports_words():
    def wrong(p):
        return 3 * jnp.sin(p) * jnp.cos(p)  # 1.5 times the derivative of sin^2

    with pytest.raises(AssertionError, match="failed .* at <root> \\(bug\\)") as info:
        assert_grads_close(f, P, grad_fn=wrong)
    message = str(info.value)
    assert "precision float64" in message and "Taylor remainder falls with order" in message
    assert "kinks" in message and "taylor" in message
