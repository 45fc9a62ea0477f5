"""Convolutions as patch x kernel matmuls (jaxhp._conv), checked against XLA's own
convolution (an independent implementation) in float64, and a NumPy loop for one case."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxhp
from jaxhp import _conv
from jaxhp.models import Model

SIZES = {"N": 2, "C": 3, "H": 7, "W": 6, "O": 4, "I": 3}
LAYOUTS = [
    ("NHWC", "HWIO", "NHWC"),
    ("NCHW", "OIHW", "NCHW"),
    ("NHWC", "OIHW", "NCHW"),
    ("CHWN", "IOWH", "HNWC"),
]
WINDOW = {"H": 3, "W": 2}


def _shape(spec: str, kernel: bool) -> list[int]:
    return [WINDOW[c] if kernel and c in WINDOW else SIZES[c] for c in spec]


def _conv_params(lhs, rhs, **options):
    """The parameters of the conv_general_dilated equation that lax writes for options."""
    jaxpr = jax.make_jaxpr(lambda a, b: lax.conv_general_dilated(a, b, **options))(lhs, rhs)
    (eqn,) = jaxpr.jaxpr.eqns
    return eqn.params


CASES = [  # strides, padding, lhs (transposed) dilation, rhs (atrous) dilation
    ((1, 1), "SAME", (1, 1), (1, 1)),
    ((2, 1), "VALID", (1, 1), (1, 2)),
    ((2, 1), ((-1, 1), (2, 0)), (2, 1), (1, 2)),
    ((1, 2), ((1, 2), (0, 1)), (1, 2), (2, 1)),
]


@pytest.mark.parametrize("layout", LAYOUTS, ids="-".join)
def test_conv_as_matmul_equals_xla_convolution(layout):
    rng = np.random.default_rng(0)
    lhs_spec, rhs_spec, _ = layout
    with jax.enable_x64(True):
        lhs = rng.normal(size=_shape(lhs_spec, False))
        rhs = rng.normal(size=_shape(rhs_spec, True))
        for strides, padding, lhs_dilation, rhs_dilation in CASES:
            options = dict(
                window_strides=strides,
                padding=padding,
                lhs_dilation=lhs_dilation,
                rhs_dilation=rhs_dilation,
                dimension_numbers=layout,
                precision="highest",
            )
            params = _conv_params(lhs, rhs, **options)
            expected = jax.jit(lambda a, b: lax.conv_general_dilated(a, b, **options))(lhs, rhs)
            got = jax.jit(lambda a, b: _conv.conv_as_matmul(a, b, **params))(lhs, rhs)
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=str(options))


def test_conv_as_matmul_equals_a_numpy_loop():
    """NHWC/HWIO, stride 1, VALID: out[n, i, j, o] = sum x[n, i+a, j+b, c] w[a, b, c, o]."""
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 5, 4, 3)), rng.normal(size=(3, 2, 3, 4))
    expected = np.zeros((2, 3, 3, 4))
    for i, j in itertools.product(range(3), range(3)):
        expected[:, i, j] = np.einsum("nabc,abco->no", x[:, i : i + 3, j : j + 2], w)
    with jax.enable_x64(True):
        options = dict(window_strides=(1, 1), padding="VALID")
        options["dimension_numbers"] = ("NHWC", "HWIO", "NHWC")
        got = _conv.conv_as_matmul(x, w, **_conv_params(x, w, **options))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def _user_model(conv) -> Model:
    """A model whose convolution ``conv(x, kernel)`` sits inside a jax.jit, as Flax and
    Equinox modules' do."""

    def apply(params, x, *, key, hparams):
        a = jax.nn.relu(jax.jit(conv)(x, params["k"]))
        return a.reshape(a.shape[0], -1) * hparams.scale

    return Model(init=None, apply=apply)


def _same(x, k):
    return lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest"
    )


def _grouped(x, k):
    return lax.conv_general_dilated(
        x,
        k,
        (1, 1),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=2,
        precision="highest",
    )


@pytest.mark.parametrize(
    "conv, kernel_shape, rewritten",
    [(_same, (3, 3, 2, 4), True), (_grouped, (3, 3, 1, 4), False)],
    ids=["ungrouped", "grouped"],
)
def test_a_models_convolutions_become_matmuls_with_the_same_values_and_gradients(
    conv, kernel_shape, rewritten
):
    """Values and kernel gradients equal the model's own; the rewritten program holds no
    convolution where the original holds one (a grouped one is left as it is)."""
    rng = np.random.default_rng(2)
    model = _user_model(conv)
    fast = _conv.convolutions_as_matmuls(model)
    hparams = jaxhp.HParams(scale=1.5)
    with jax.enable_x64(True):
        x, k = rng.normal(size=(3, 5, 5, 2)), rng.normal(size=kernel_shape)

        def loss(m):
            return lambda p: jnp.sum(m.apply({"k": p}, x, key=None, hparams=hparams) ** 2)

        np.testing.assert_allclose(
            fast.apply({"k": k}, x, key=None, hparams=hparams),
            model.apply({"k": k}, x, key=None, hparams=hparams),
            rtol=1e-12,
        )
        np.testing.assert_allclose(jax.grad(loss(fast))(k), jax.grad(loss(model))(k), rtol=1e-10)
        convolves = [
            _conv.has_primitive(jax.make_jaxpr(jax.grad(loss(m)))(k).jaxpr, "conv_general_dilated")
            for m in (model, fast)
        ]
    assert convolves == [True, not rewritten]


def test_a_model_without_convolutions_is_applied_as_it_is():
    def apply(params, x, *, key, hparams):
        return jax.jit(jnp.tanh)(x @ params)

    model = Model(init=None, apply=apply)
    x, w = jnp.ones((2, 3)), jnp.ones((3, 2))
    original = jax.make_jaxpr(lambda w: model.apply(w, x, key=None, hparams=None))(w)
    rewritten = jax.make_jaxpr(
        lambda w: _conv.convolutions_as_matmuls(model).apply(w, x, key=None, hparams=None)
    )(w)
    assert str(rewritten) == str(original)  # the jit call is kept, not inlined


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="convolutions stay off the CPU")
def test_fit_trains_a_convolving_model_without_convolutions_on_the_cpu(digits_small):
    """fit's whole program on the CPU holds no convolution for the built-in CNN."""
    model = jaxhp.models.cnn((8, 8, 1), channels=(4,), dense=(10,))
    config = jaxhp.TrainConfig(model=model, steps=2, batch_size=16)
    hparams = jaxhp.HParams(keep_prob=0.9, learning_rate=0.1)
    jaxpr = jax.make_jaxpr(lambda k: jaxhp.fit(k, hparams, digits_small, config))(jax.random.key(0))
    applied = jax.make_jaxpr(
        lambda p: model.apply(p, digits_small.train[0][:2], key=None, hparams=hparams)
    )(model.init(jax.random.key(0)))
    assert _conv.has_primitive(applied.jaxpr, "conv_general_dilated")
    assert not _conv.has_primitive(jaxpr.jaxpr, "conv_general_dilated")


@pytest.fixture(scope="module")
def digits_small():
    return jaxhp.datasets.load("digits", n_train=64, n_dev=32, n_test=0, seed=0)


def _framework_conv_model(kind) -> Model:
    """A convolution from each framework jaxhp adapts, on 6x6 single-channel images."""
    import equinox as eqx
    import flax.linen as nn
    from flax import nnx

    if kind == "linen":

        class Linen(nn.Module):
            @nn.compact
            def __call__(self, x, *, key=None, hparams=None):
                return nn.Conv(3, (3, 3), strides=(2, 2))(x).reshape(len(x), -1)

        return jaxhp.models.from_flax(Linen(), jnp.zeros((1, 6, 6, 1)))
    if kind == "nnx":

        class NNX(nnx.Module):
            def __init__(self, rngs):
                self.conv = nnx.Conv(1, 3, (3, 3), padding="VALID", rngs=rngs)

            def __call__(self, x, *, key=None, hparams=None):
                return self.conv(x).reshape(len(x), -1)

        return jaxhp.models.from_flax(lambda key: NNX(nnx.Rngs(key)))

    class Eqx(eqx.Module):
        conv: eqx.nn.Conv2d

        def __init__(self, key):
            self.conv = eqx.nn.Conv2d(1, 3, 3, padding=1, key=key)

        def __call__(self, x, *, key=None, hparams=None):  # one (6, 6, 1) example
            return self.conv(jnp.transpose(x, (2, 0, 1))).reshape(-1)

    return jaxhp.models.from_equinox(lambda key: Eqx(key))


@pytest.mark.parametrize("kind", ["linen", "nnx", "equinox"])
def test_framework_convolutions_become_matmuls_with_the_same_values_and_gradients(kind):
    model = _framework_conv_model(kind)
    fast = _conv.convolutions_as_matmuls(model)
    params = model.init(jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, 6, 6, 1)), jnp.float32)

    def loss(m):
        return lambda p: jnp.sum(m.apply(p, x, key=None, hparams=jaxhp.HParams()) ** 2)

    np.testing.assert_allclose(
        fast.apply(params, x, key=None, hparams=jaxhp.HParams()),
        model.apply(params, x, key=None, hparams=jaxhp.HParams()),
        rtol=1e-5,
        atol=1e-6,
    )
    expected = jax.grad(loss(model))(params)
    for got, want in zip(jax.tree.leaves(jax.grad(loss(fast))(params)), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    program = jax.make_jaxpr(jax.grad(loss(fast)))(params)
    assert not _conv.has_primitive(program.jaxpr, "conv_general_dilated")


def _kernels(fn, *args) -> int:
    """How many kernels (fusions) XLA:CPU compiles for fn, with the options jaxhp's
    convolving sweeps use."""
    from jaxhp import _programs

    compiled = jax.jit(fn).lower(*args).compile(compiler_options=_programs._CONV_CPU_OPTIONS)
    return compiled.as_text().count(" fusion(")


def _patches_all_offsets_at_once(x, k):
    """The 3x3 SAME convolution with all nine window offsets stacked in one go."""
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    offsets = itertools.product(range(3), range(3))
    patches = jnp.stack([padded[:, i : i + h, j : j + w] for i, j in offsets], axis=-1)
    return jnp.einsum("nhwck,kco->nhwo", patches, k.reshape(9, *k.shape[2:]))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's fusion decisions")
def test_a_3x3_convolution_compiles_to_few_kernels():
    """Each window offset's slice stacked separately becomes its own kernel on XLA:CPU (each
    costs compile time); stacked one spatial axis at a time, they fuse."""
    x = jnp.ones((16, 8, 8, 2))
    k = jnp.ones((3, 3, 2, 4))
    params = _conv_params(
        x, k, window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    by_axis = _kernels(lambda a, b: _conv.conv_as_matmul(a, b, **params), x, k)
    at_once = _kernels(_patches_all_offsets_at_once, x, k)
    assert by_axis <= 4 < at_once


@pytest.mark.parametrize("window, tiles", [((1, 2, 3, 1), True), ((1, 4, 4, 1), False)])
def test_pooling_windows_that_tile_become_sums_with_the_same_values_and_gradients(window, tiles):
    """A window sum whose windows tile its input (stride = window, no padding) is computed
    as a reshape and a sum inside a convolving model; others stay reduce_window."""

    def apply(params, x, *, key, hparams):
        a = jax.nn.relu(_same(x, params))
        pooled = lax.reduce_window(a, np.zeros((), a.dtype), lax.add, window, window, "VALID")
        return pooled.reshape(len(x), -1)

    model = Model(init=None, apply=apply)
    fast = _conv.convolutions_as_matmuls(model)
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x, k = rng.normal(size=(2, 6, 6, 2)), rng.normal(size=(3, 3, 2, 3))

        def loss(m):
            return lambda p: jnp.sum(jnp.sin(m.apply(p, x, key=None, hparams=None)))

        np.testing.assert_allclose(
            fast.apply(k, x, key=None, hparams=None),
            model.apply(k, x, key=None, hparams=None),
            rtol=1e-12,
        )
        np.testing.assert_allclose(jax.grad(loss(fast))(k), jax.grad(loss(model))(k), rtol=1e-10)
        jaxpr = jax.make_jaxpr(jax.grad(loss(fast)))(k).jaxpr
    assert _conv.has_primitive(jaxpr, "reduce_window_sum") is not tiles
