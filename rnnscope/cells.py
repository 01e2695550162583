"""The vanilla tanh cell through time: forward and truncated-BPTT backward of one layer.

Only the recurrent products live here, inside the per-step loops; everything that can be done
for all time steps at once (input projection, readout, weight gradients of Wxh) is done by the
model as single large matrix products. Shapes: T steps, B streams, H units.

    a_t = ax_t + h_{t-1} @ Whh        (ax_t = u_t @ Wxh + bh, given for all t)
    h_t = tanh(a_t)
"""

from __future__ import annotations

import numpy as np


def rnn_forward(ax: np.ndarray, h0: np.ndarray, Whh: np.ndarray) -> np.ndarray:
    """ax: (T, B, H) input part of the pre-activation, h0: (B, H). Returns h: (T, B, H)."""
    h = np.empty_like(ax)
    h_prev = h0
    for t in range(ax.shape[0]):
        np.dot(h_prev, Whh, out=h[t])
        h[t] += ax[t]
        np.tanh(h[t], out=h[t])
        h_prev = h[t]
    return h


def rnn_backward(dh_above: np.ndarray, h: np.ndarray, h0: np.ndarray, Whh: np.ndarray):
    """Backward through time of one layer.

    dh_above: (T, B, H) gradient reaching h_t from the readout or the layer above (not through
    time). Returns (dh, dh_raw, dWhh, dh0):
      dh[t]     = dh_above[t] + dh_next          total gradient reaching h_t      (T, B, H)
      dh_raw[t] = (1 - h[t]**2) * dh[t]          gradient of the pre-activation a_t
      dh_next   = dh_raw[t] @ Whh.T              carried to step t-1; at t=0 it is dh0 (B, H)
      dWhh      = sum_t h_{t-1}.T @ dh_raw[t]    (H, H)
    """
    T, B, H = h.shape
    dh = np.empty_like(h)
    dh_raw = np.multiply(h, h)
    np.subtract(1, dh_raw, out=dh_raw)  # the tanh gain 1 - h**2, overwritten by dh_raw below
    dh_next = np.zeros((B, H), dtype=h.dtype)
    for t in range(T - 1, -1, -1):
        np.add(dh_above[t], dh_next, out=dh[t])
        dh_raw[t] *= dh[t]
        np.dot(dh_raw[t], Whh.T, out=dh_next)
    dWhh = h0.T @ dh_raw[0]
    if T > 1:
        dWhh += h[:-1].reshape(-1, H).T @ dh_raw[1:].reshape(-1, H)
    return dh, dh_raw, dWhh, dh_next
