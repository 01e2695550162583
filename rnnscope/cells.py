"""The vanilla tanh cell through time: forward and truncated-BPTT backward of one layer.

Only the recurrent products live here, inside the per-step loops; everything that can be done
for all time steps at once (input projection, readout, input-weight gradients) is done by the
model as single large matrix products. Shapes: T steps, B streams, H units.

    a_t = ax_t + h_{t-1} @ Whh        (ax_t = u_t @ Wxh + bh, given for all t)
    h_t = tanh(a_t)

Both functions work in buffers the caller owns, so that a training step allocates (almost)
nothing: the states live in one (T+1, B, H) array `hs` with hs[0] = h_0 (the carried state) and
hs[t] = h_t, so that hs[1:] (every h_t) and hs[:-1] (every h_{t-1}) are both contiguous and the
recurrent weight gradient is one large product. The per-step products run measurably faster
when their operands start on a cache line, so the model hands in aligned arrays.
"""

from __future__ import annotations

import numpy as np


def rnn_forward(hs: np.ndarray, Whh: np.ndarray, scratch: np.ndarray) -> None:
    """hs: (T+1, B, H), on entry hs[0] = h_0 and hs[1:] = ax; on exit hs[1:] = h.
    scratch: (B, H)."""
    for t in range(1, hs.shape[0]):
        np.dot(hs[t - 1], Whh, out=scratch)
        hs[t] += scratch
        np.tanh(hs[t], out=hs[t])


def rnn_backward(dh: np.ndarray, hs: np.ndarray, WhhT: np.ndarray, dh_raw: np.ndarray,
                 dWhh: np.ndarray, scratch: np.ndarray) -> None:
    """Backward through time of one layer, in place.

    dh: (T, B, H), on entry the gradient reaching h_t from the readout or the layer above (not
    through time), on exit the total gradient reaching h_t. hs: (T+1, B, H) from rnn_forward.
    WhhT: Whh.T as a contiguous array (the per-step product is slower on a transposed view).
    Writes dh_raw (T, B, H) and dWhh (H, H); scratch: (B, H).
      dh[t]     = dh_above[t] + dh_next          (dh_next from step t+1; zero at t = T-1)
      dh_raw[t] = (1 - h[t]**2) * dh[t]          gradient of the pre-activation a_t
      dh_next   = dh_raw[t] @ Whh.T              carried to step t-1
      dWhh      = sum_t h_{t-1}.T @ dh_raw[t]
    The gradient reaching h_0 is not formed: truncated BPTT carries the state, not the gradient.
    """
    H = WhhT.shape[0]
    np.multiply(hs[1:], hs[1:], out=dh_raw)
    np.subtract(1, dh_raw, out=dh_raw)  # the tanh gain 1 - h**2, for all t at once
    for t in range(dh.shape[0] - 1, -1, -1):
        dh_raw[t] *= dh[t]
        if t > 0:
            np.dot(dh_raw[t], WhhT, out=scratch)
            dh[t - 1] += scratch
    np.dot(hs[:-1].reshape(-1, H).T, dh_raw.reshape(-1, H), out=dWhh)
