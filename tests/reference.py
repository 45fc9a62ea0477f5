"""An independent NumPy implementation of the course's MLP forward and backward pass.

Batch-first (x is (m, n_x), W is (n_in, n_out)), explicit dropout masks, L2 term
lambd / (2 m) * sum ||W||_F^2. Nothing here imports jaxhp.
"""

import numpy as np


def act(name, z):
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.01 * z)
    raise ValueError(name)


def act_grad(name, z):
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, 0.01)
    raise ValueError(name)


def forward_backward(
    Ws, bs, x, y, *, lambd=0.0, masks=None, keep_prob=1.0, activation="relu", m=None
):
    """Returns (cost, dWs, dbs). y: (m,) 0/1 for one output, (m, k) one-hot otherwise.

    masks[l] is the boolean keep-mask of hidden layer l; kept units are divided by keep_prob.
    """
    n_layers = len(Ws)
    batch = x.shape[0]
    m = batch if m is None else m
    A, Zs, As = x, [], [x]
    for l in range(n_layers):
        Z = A @ Ws[l] + bs[l]
        Zs.append(Z)
        if l < n_layers - 1:
            A = act(activation, Z)
            if masks is not None:
                A = A * masks[l] / keep_prob
        else:
            A = Z
        As.append(A)
    logits = As[-1]
    if logits.shape[1] == 1:
        p = 1 / (1 + np.exp(-logits[:, 0]))
        ce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        dZ = ((p - y) / batch)[:, None]
    else:
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        ce = -np.mean(np.sum(y * np.log(probs), axis=1))
        dZ = (probs - y) / batch
    cost = ce + lambd / (2 * m) * sum(np.sum(W**2) for W in Ws)
    dWs, dbs = [None] * n_layers, [None] * n_layers
    for l in reversed(range(n_layers)):
        dWs[l] = As[l].T @ dZ + lambd / m * Ws[l]
        dbs[l] = dZ.sum(axis=0)
        if l > 0:
            dA = dZ @ Ws[l].T
            if masks is not None:
                dA = dA * masks[l - 1] / keep_prob
            dZ = dA * act_grad(activation, Zs[l - 1])
    return cost, dWs, dbs
