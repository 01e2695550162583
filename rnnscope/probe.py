"""rnnscope's engine as the probe of another network's recurrent layers (SPEC section 10).

Given the layers' weights in rnnscope's layout, their input and initial state, and the
gradient that reached the top layer's output from the other network's loss, run_layers() runs
rnnscope's own forward and hand-written backward through the stack, so the probes (h, dh,
dh_raw per layer) and the weight gradients are exactly those of the other network's step. The
PyTorch adapter (rnnscope/torch.py) feeds it what its hooks captured; nothing here knows torch.

Shapes: u (T, B, in) the input of layer 0 (dense, e.g. an embedding's output), h0 (L, B, H),
dout (T, B, H) the gradient reaching the top layer's output h_t, dh_last (L, B, H) or None the
gradient reaching each layer's last state h_T from outside (a loss that reads h_n).
"""

from __future__ import annotations

import numpy as np

from .cells import rnn_backward, rnn_forward


def run_layers(params: dict[str, np.ndarray], u: np.ndarray, h0: np.ndarray,
               dout: np.ndarray, dh_last: np.ndarray | None = None
               ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """(probes, grads): per layer {"h", "dh", "dh_raw"} (T, B, H), and the gradients of every
    layer parameter ("{l}.Wxh", "{l}.Whh", "{l}.bh") of the loss dout belongs to."""
    L, T, B, H = h0.shape[0], u.shape[0], u.shape[1], h0.shape[2]
    scratch, inputs, hs = np.empty((B, H), u.dtype), [], []
    for l in range(L):
        h = np.empty((T + 1, B, H), u.dtype)
        h[0] = h0[l]
        np.dot(u.reshape(T * B, -1), params[f"{l}.Wxh"], out=h[1:].reshape(T * B, H))
        h[1:] += params[f"{l}.bh"]
        rnn_forward(h, np.ascontiguousarray(params[f"{l}.Whh"]), scratch)
        inputs.append(u)
        hs.append(h)
        u = h[1:]
    grads, probes, du = {}, [], dout.astype(u.dtype, copy=True)
    for l in reversed(range(L)):
        if dh_last is not None:
            du[-1] += dh_last[l]
        dh, dh_raw = du, np.empty((T, B, H), u.dtype)
        grads[f"{l}.Whh"] = np.empty((H, H), u.dtype)
        rnn_backward(dh, hs[l], np.ascontiguousarray(params[f"{l}.Whh"].T), dh_raw,
                     grads[f"{l}.Whh"], scratch)
        flat = dh_raw.reshape(T * B, H)
        grads[f"{l}.Wxh"] = inputs[l].reshape(T * B, -1).T @ flat
        grads[f"{l}.bh"] = flat.sum(axis=0)
        du = (flat @ params[f"{l}.Wxh"].T).reshape(T, B, -1)
        probes.append({"h": hs[l][1:], "dh": dh, "dh_raw": dh_raw})
    probes.reverse()
    return probes, grads
