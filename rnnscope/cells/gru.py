"""The GRU cell (SPEC 8, PyTorch's conventions): parameters, loops through time, readings.

    x = u @ Wx + bx                   (from the model, for all t)      blocks r, z, n
    m = h_{t-1} @ Wh + bh
    r = sigmoid(x_r + m_r);  z = sigmoid(x_z + m_z);  n = tanh(x_n + r * m_n)
    h_t = (1 - z) * n + z * h_{t-1}

Parameters (local names): "Wx" (in x 3H), "Wh" (H x 3H), "bx", "bh" (3H). The tape: h (T+1, B, H)
with h[0] the carried state; gates (3, T, B, H), the input projection on entry and r, z, n after
the forward pass; m_n (T, B, H), the recurrent part of the candidate (needed by its gradient).
Blocks come first (the cell contract), so every gate of every step is a contiguous (B, H).

Backward, per step (dh the total gradient reaching h_t):
    da_n = dh * (1 - z) * (1 - n**2)     gradient of the candidate's pre-activation: dh_raw
    da_z = dh * (h_{t-1} - n) * z * (1 - z)
    da_r = da_n * m_n * r * (1 - r)
    dm   = [da_r, da_z, da_n * r]        gradient of m
    dh_{t-1} = dh * z + dm @ Wh.T;   dWh = sum_t h_{t-1}.T @ dm;   dbh = sum_t dm
    dx   = [da_r, da_z, da_n]            returned to the model (dWx, dbx, the layer below)
One (4, T, B, H) array d holds the blocks [da_n * r, da_r, da_z, da_n], so that d[1:] is dx and
d[:3] is dm with its blocks in the order n, r, z: both are views; the per-step product uses a
copy of Wh's blocks in that order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import (
    Init,
    Work,
    aligned,
    blocks,
    chrono_bias,
    input_matrix,
    recurrent_matrix,
    side_by_side,
    sigmoid_of_half,
)
from .gates import gate_readings, memory_steps

NAME = "gru"
BLOCKS = 3
STATE = ("h",)
INPUT = ("Wx", "bx")
GATES = ("r", "z", "n")
SIGMOID = ("r", "z")
KEEP = "z"
INIT_FLAGS = ("chrono_init",)
TORCH = ("GRU", {"Wx": ("weight_ih",), "Wh": ("weight_hh",), "bx": ("bias_ih",),
                 "bh": ("bias_hh",)})


def init(fan_in: int, H: int, rng: np.random.Generator, init: Init) -> dict[str, np.ndarray]:
    """Wh: one recurrent block per gate. With chrono_tmax, bx_z = log(U(1, T_max - 1)): z keeps
    the old state, so it plays the LSTM forget gate's part (--forget-bias is the LSTM's)."""
    params = {"Wx": input_matrix(fan_in, 3 * H, rng, init),
              "Wh": np.concatenate([recurrent_matrix(H, rng, init) for _ in GATES], axis=1),
              "bx": np.zeros(3 * H), "bh": np.zeros(3 * H)}
    if init.chrono_tmax is not None:
        params["bx"][H:2 * H] = chrono_bias(H, rng, init.chrono_tmax)
    return params


def forward(P: dict, state0: tuple, T: int, fill: Callable, work: Work) -> dict:
    (h0,) = state0
    B, H = h0.shape
    h, gates, m_n = work("h", (T + 1, B, H)), work("gates", (3, T, B, H)), work("m_n", (T, B, H))
    h[0] = h0
    fill(gates)
    gates[:2] += P["bh"][:2 * H].reshape(2, 1, 1, H)  # r and z add both biases into one sum
    gates[:2] *= 0.5                                  # and are halved: sigmoid_of_half
    Wh, bh_n = aligned(work, "Wh", blocks(P["Wh"], H)), P["bh"][2 * H:]
    Wh[:2] *= 0.5
    m, s = work("m", (3, B, H)), work("s", (B, H))
    r, z, n = gates
    for t in range(T):
        np.matmul(h[t], Wh, out=m)
        rz = gates[:2, t]
        rz += m[:2]
        sigmoid_of_half(np.tanh(rz, out=rz))
        np.add(m[2], bh_n, out=m_n[t])
        np.multiply(r[t], m_n[t], out=s)
        n[t] += s
        np.tanh(n[t], out=n[t])
        np.subtract(h[t], n[t], out=h[t + 1])  # h_t = n + z * (h_{t-1} - n)
        h[t + 1] *= z[t]
        h[t + 1] += n[t]
    return {"h": h, "gates": gates, "m_n": m_n}


def backward(P: dict, tape: dict, dh: np.ndarray, work: Work, grads: dict) -> np.ndarray:
    """Writes grads["Wh"], grads["bh"]; returns dx (3, T, B, H), a view of d (module
    docstring)."""
    h, (r, z, n), m_n, (T, B, H) = tape["h"], tape["gates"], tape["m_n"], dh.shape
    d, back, s = work("d", (4, T, B, H)), work("back", (B, H)), work("s", (3, B, H))
    WhT = rotated_WhT(P["Wh"], work)
    for t in range(T - 1, -1, -1):
        step_back(dh[t], r[t], z[t], n[t], m_n[t], h[t], WhT, d[:, t], s,
                  back if t > 0 else None)
        if t > 0:
            dh[t - 1] += back
    dm = d[:3].reshape(3, T * B, H)  # blocks n, r, z
    grads["Wh"] = side_by_side(np.matmul(h[:-1].reshape(-1, H).T, dm)[[1, 2, 0]])
    grads["bh"] = dm.sum(axis=1)[[1, 2, 0]].reshape(-1)
    return d[1:]


def rotated_WhT(Wh: np.ndarray, work: Work) -> np.ndarray:
    """(3, H, H): the blocks of Wh transposed, in the order n, r, z of dm in d."""
    return aligned(work, "WhT", blocks(Wh, Wh.shape[0])[[2, 0, 1]].transpose(0, 2, 1))


def step_back(dh, r, z, n, m_n, h_prev, WhT, d, s, back) -> None:
    """One step of the backward recurrence (module docstring), all (B, H) but d (4, B, H) and
    s (3, B, H, scratch): writes d = [da_n * r, da_r, da_z, da_n] and, unless back is None,
    back = dh * z + dm @ Wh.T, the gradient reaching h_{t-1} through this step."""
    dm_n, da_r, da_z, da_n = d
    s1, s2, s3 = s
    np.subtract(1, z, out=s3)             # 1 - z, for da_n and for z (1 - z)
    np.multiply(n, n, out=s1)
    np.subtract(1, s1, out=s1)            # 1 - n**2
    np.multiply(s3, s1, out=da_n)
    da_n *= dh
    np.multiply(da_n, r, out=dm_n)
    np.subtract(1, r, out=s2)
    s2 *= r                               # r (1 - r)
    np.multiply(da_n, m_n, out=da_r)
    da_r *= s2
    s3 *= z                               # z (1 - z)
    np.subtract(h_prev, n, out=da_z)
    da_z *= s3
    da_z *= dh
    if back is not None:
        np.matmul(d[:3], WhT, out=s)
        np.sum(s, axis=0, out=back)
        np.multiply(dh, z, out=s1)
        back += s1


def probes(tape: dict, dh: np.ndarray, dax: np.ndarray) -> dict:
    """SPEC's probes, r, z, n, and for through_time m_n and h_prev (each (T, B, H))."""
    r, z, n = tape["gates"]
    return {"h": tape["h"][1:], "dh": dh, "dh_raw": dax[2], "r": r, "z": z, "n": n,
            "m_n": tape["m_n"], "h_prev": tape["h"][:-1]}


def through_time(P: dict, probe: dict) -> Callable:
    """step(t, (v,)): v (B, H) reaching h_t carried back to h_{t-1} through step t's full
    Jacobian (through z, r and n as well as directly): step_back without the input. A probe
    from elsewhere needs m_n = h_prev @ Wh[:, 2H:] + bh[2H:] beside r, z, n and h_prev."""
    B, H = probe["h"].shape[1:]
    fresh = lambda name, shape: np.empty(shape, probe["h"].dtype)  # noqa: E731
    WhT, d, s = rotated_WhT(P["Wh"], fresh), fresh("d", (4, B, H)), fresh("s", (3, B, H))

    def step(t: int, v: tuple) -> tuple:
        back = np.empty_like(v[0])
        step_back(v[0], probe["r"][t], probe["z"][t], probe["n"][t], probe["m_n"][t],
                  probe["h_prev"][t], WhT, d, s, back)
        return (back,)

    return step


READINGS = {**gate_readings(SIGMOID), "memory_steps": memory_steps(KEEP)}
