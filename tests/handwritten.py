"""A hand-written MLP backward pass in jax.numpy, with plantable bugs (mutations).

Course naming (W1, b1, ...), batch-first layout, ReLU hidden layers, sigmoid output, the L2
term lambd / (2 m) * sum ||W||^2 and inverted dropout with explicit masks on hidden layers.
"""

import jax.numpy as jnp

LAYERS = 3


def cost(params, x, y, masks, lambd, keep_prob):
    a = x
    for l in range(1, LAYERS + 1):
        z = a @ params[f"W{l}"] + params[f"b{l}"][None, :]
        a = jnp.maximum(z, 0) * masks[l - 1] / keep_prob if l < LAYERS else z
    z = a[:, 0]
    m = x.shape[0]
    ce = jnp.mean(jnp.logaddexp(0.0, z) - y * z)
    return ce + lambd / (2 * m) * sum(jnp.sum(params[f"W{l}"] ** 2) for l in range(1, 4))


def backward(params, x, y, masks, lambd, keep_prob, bug=None):
    """Gradient of ``cost``; ``bug`` names one planted mistake (see MUTATIONS)."""
    m = x.shape[0]
    A, Z = [x], []
    for l in range(1, LAYERS + 1):
        z = A[-1] @ params[f"W{l}"] + params[f"b{l}"][None, :]
        Z.append(z)
        A.append(jnp.maximum(z, 0) * masks[l - 1] / keep_prob if l < LAYERS else z)
    p = 1 / (1 + jnp.exp(-A[-1][:, 0]))
    dZ = ((p - y) / m)[:, None]
    grads = {}
    for l in range(LAYERS, 0, -1):
        W = params[f"W{l}"]
        l2 = lambd / m * W
        if bug == "l2_half" and l == 2:
            l2 = l2 / 2
        if bug == "no_l2" and l == 1:
            l2 = 0.0
        a_prev = A[l - 1]
        if bug == "wrong_activation_input" and l == 2:
            a_prev = A[l]  # uses this layer's output instead of its input
        if bug == "preactivation_input" and l == 3:
            a_prev = Z[l - 2]
        dW = a_prev.T @ dZ + l2
        db = jnp.sum(dZ, axis=0)
        if bug == "scaled_dW" and l == 2:
            dW = 2 * dW
        if bug == "sign_dW" and l == 3:
            dW = -dW
        if bug == "transposed_dW" and l == 2:
            dW = dW.T
        if bug == "bias_normalisation" and l == 1:
            db = 4 * db  # the course's bug: 4/m instead of 1/m
        if bug == "bias_wrong_axis" and l == 2:
            db = jnp.sum(dZ, axis=1)  # sums over units instead of examples (m == width)
        if bug == "bias_missing" and l == 3:
            db = jnp.zeros_like(db)
        grads[f"W{l}"], grads[f"b{l}"] = dW, db
        if l > 1:
            dA = dZ @ W.T
            mask = masks[l - 2]
            if not (bug == "no_mask_backward" and l == 2):
                dA = dA * mask
            if not (bug == "no_keep_prob_backward" and l == 2):
                dA = dA / keep_prob
            relu_grad = (Z[l - 2] > 0).astype(dA.dtype)
            if bug == "no_relu_derivative" and l == 2:
                relu_grad = jnp.ones_like(relu_grad)
            dZ = dA * relu_grad
    return grads


# Each mutation and the leaves it corrupts (its bug lives in the first-hidden-layer backward
# or in a leaf's own line, so no other leaf is touched).
MUTATIONS = {
    "scaled_dW": {"W2"},
    "bias_normalisation": {"b1"},
    "no_l2": {"W1"},
    "l2_half": {"W2"},
    "sign_dW": {"W3"},
    "transposed_dW": {"W2"},
    "no_relu_derivative": {"W1", "b1"},
    "no_mask_backward": {"W1", "b1"},
    "no_keep_prob_backward": {"W1", "b1"},
    "bias_wrong_axis": {"b2"},
    "bias_missing": {"b3"},
    "wrong_activation_input": {"W2"},
    "preactivation_input": {"W3"},
}
