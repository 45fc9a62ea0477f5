"""Convolutions as patch x kernel matmuls, for models trained on the CPU.

XLA:CPU runs a small convolution far below its matmul speed, and under ``vmap`` (a sweep's
members each with their own kernels and inputs) it turns the members' convolutions into
one grouped convolution that is slower per member still. The same arithmetic written as
image patches times a kernel matrix is one (batched) matmul, which XLA:CPU runs well.
:func:`convolutions_as_matmuls` rewrites a model's ``apply`` that way, whoever wrote it
(plain JAX, Flax, Equinox): it traces ``apply`` to a jaxpr and evaluates that jaxpr with
each ungrouped ``conv_general_dilated`` replaced, and each window sum whose windows tile
its input (average pooling) computed as reshapes and adds. The result equals the model's
up to float rounding (the sums run in another order).
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core

from jaxhp.models._model import Model


def convolutions_as_matmuls(model: Model) -> Model:
    """``model`` with every ungrouped convolution in its ``apply`` computed as a matmul
    (and tiling window sums as reshapes).

    A model without convolutions is applied as it is. Convolutions inside custom
    derivative rules, loops or conditionals are left as they are; those inside
    ``jax.jit`` are rewritten.
    """

    def apply(params, x, *, key, hparams):
        # Everything is closed over, so that values the model reads in Python (a
        # concrete keep_prob, say) stay concrete; traced ones become the jaxpr's consts.
        closed, out_shape = jax.make_jaxpr(
            lambda: model.apply(params, x, key=key, hparams=hparams), return_shape=True
        )()
        if not has_primitive(closed.jaxpr, lax.conv_general_dilated_p.name):
            return model.apply(params, x, key=key, hparams=hparams)
        outs = _evaluate(closed.jaxpr, closed.consts, [])
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return Model(init=model.init, apply=apply)


def _evaluate(jaxpr, consts, args) -> list:
    """Evaluate ``jaxpr`` as ``jax.core.eval_jaxpr`` does, rewriting convolutions and
    inlining ``jit`` calls so that the convolutions inside them are rewritten too."""
    env = {}

    def read(var):
        return var.val if isinstance(var, core.Literal) else env[var]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        inputs = [read(var) for var in eqn.invars]
        outputs = _rewritten(eqn, inputs)
        if outputs is None:
            params = eqn.primitive.get_bind_params(eqn.params)
            with eqn.ctx.manager:
                outputs = eqn.primitive.bind(*inputs, **params)
            if not eqn.primitive.multiple_results:
                outputs = [outputs]
        env.update(zip(eqn.outvars, outputs))
    return [read(var) for var in jaxpr.outvars]


def _rewritten(eqn, inputs) -> list | None:
    """The outputs of ``eqn`` computed another way, or None to bind it as it is."""
    if eqn.primitive is lax.conv_general_dilated_p and _ungrouped(eqn.params):
        return [conv_as_matmul(*inputs, **eqn.params)]
    if eqn.primitive is lax.reduce_window_sum_p and _tiles(eqn.params, inputs[0].shape):
        return [window_sum_as_reshape(inputs[0], tuple(eqn.params["window_dimensions"]))]
    if eqn.primitive is core.primitives.jit_p:
        inner = eqn.params["jaxpr"]
        return _evaluate(inner.jaxpr, inner.consts, inputs)
    return None


def _tiles(params, shape) -> bool:
    """Whether a window sum's windows tile its operand: stride = window, no padding or
    dilation, and every axis a whole number of windows."""
    window = params["window_dimensions"]
    return (
        tuple(params["window_strides"]) == tuple(window)
        and all(p == (0, 0) for p in params["padding"])
        and all(d == 1 for d in (*params["base_dilation"], *params["window_dilation"]))
        and all(n % w == 0 for n, w in zip(shape, window))
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def window_sum_as_reshape(x, window):
    """A sum over tiling windows as reshapes and adds: XLA fuses them with their
    neighbours. Each axis's window is summed as adds of its offsets, which XLA:CPU runs
    about twice as fast as a reduction over a short axis; the derivative is a broadcast
    (``reduce_window``'s is a padded window sum)."""
    for axis, w in enumerate(window):
        if w > 1:
            split = x.reshape(*x.shape[:axis], x.shape[axis] // w, w, *x.shape[axis + 1 :])
            parts = [lax.index_in_dim(split, k, axis + 1, keepdims=False) for k in range(w)]
            x = functools.reduce(operator.add, parts)
    return x


def _window_sum_forward(x, window):
    return window_sum_as_reshape(x, window), x.shape


def _window_sum_backward(window, shape, g):
    split = [n for size, w in zip(shape, window) for n in (size // w, w)]
    spread = jnp.expand_dims(g, tuple(range(1, 2 * g.ndim, 2)))
    return (jnp.broadcast_to(spread, split).reshape(shape),)


window_sum_as_reshape.defvjp(_window_sum_forward, _window_sum_backward)


def _ungrouped(params) -> bool:
    return params["feature_group_count"] == 1 and params["batch_group_count"] == 1


def conv_as_matmul(
    lhs,
    rhs,
    *,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    precision,
    preferred_element_type,
    **_grouping_and_sharding,
):
    """``lax.conv_general_dilated_p``'s arithmetic (ungrouped) as patches x kernel.

    The patches are strided slices of the padded input, one per window offset, stacked
    on a new last axis (data movement only, exact); one ``dot_general`` then contracts
    them with the kernel over (input channel, window offset).
    """
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    spatial = lhs_spec[2:]
    window = [rhs.shape[d] for d in rhs_spec[2:]]
    pads = [(0, 0, 0)] * lhs.ndim
    for d, (low, high), dilation in zip(spatial, padding, lhs_dilation):
        pads[d] = (low, high, dilation - 1)
    padded = lax.pad(lhs, np.zeros((), lhs.dtype), pads)
    sizes = [
        (padded.shape[d] - (w - 1) * r - 1) // s + 1
        for d, w, r, s in zip(spatial, window, rhs_dilation, window_strides)
    ]
    # One spatial axis at a time: stack the window's strided slices along that axis on a
    # new last axis. Stacking all offsets at once (9 slices for 3x3) makes XLA:CPU emit
    # each slice as its own kernel; a few slices per stack fuse into one.
    patches = padded
    for d, w, r, s, n in zip(spatial, window, rhs_dilation, window_strides, sizes):
        slices = []
        for k in range(w):
            start, limit, strides = [0] * patches.ndim, list(patches.shape), [1] * patches.ndim
            start[d], limit[d], strides[d] = k * r, k * r + (n - 1) * s + 1, s
            slices.append(lax.slice(patches, start, limit, strides))
        patches = jnp.stack(slices, axis=-1)
    patches = patches.reshape(*patches.shape[: lhs.ndim], -1)  # offsets, first axis major
    # The kernel as (O, I, window offsets), offsets in the order of the slices above.
    kernel = lax.transpose(rhs, tuple(rhs_spec))
    kernel = kernel.reshape(kernel.shape[0], kernel.shape[1], -1)
    out = lax.dot_general(
        patches,
        kernel,
        (((lhs_spec[1], lhs.ndim), (1, 2)), ((), ())),
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    # out holds lhs's axes but the channels, in order, then the output channels: label
    # them by role (batch, spatial i, channels) and move them to out_spec's positions.
    role = {lhs_spec[0]: "batch", **{d: i for i, d in enumerate(spatial)}}
    labels = [role[d] for d in range(lhs.ndim) if d != lhs_spec[1]] + ["channels"]
    wanted = {out_spec[0]: "batch", out_spec[1]: "channels"}
    wanted.update({d: i for i, d in enumerate(out_spec[2:])})
    return lax.transpose(out, tuple(labels.index(wanted[j]) for j in range(lhs.ndim)))


def for_training(model: Model) -> Model:
    """The model as jaxhp trains it: convolutions as matmuls on the CPU, unchanged on
    other backends, whose convolution kernels are fast."""
    return convolutions_as_matmuls(model) if jax.default_backend() == "cpu" else model


def has_primitive(jaxpr, name: str) -> bool:
    """Whether ``jaxpr`` or any jaxpr nested in its equations (jit, cond, scan, custom
    derivatives) applies the primitive ``name``."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == name:
            return True
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds its Jaxpr
                if hasattr(inner, "eqns") and has_primitive(inner, name):
                    return True
    return False
