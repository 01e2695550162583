"""The GRU cell (SPEC 8, PyTorch's conventions): parameters, loops through time, readings.

    x = u @ Wx + bx                   (from the model, for all t)      blocks r, z, n  (B, 3H)
    m = h_{t-1} @ Wh + bh
    r = sigmoid(x_r + m_r);  z = sigmoid(x_z + m_z);  n = tanh(x_n + r * m_n)
    h_t = (1 - z) * n + z * h_{t-1}

Parameters (local names): "Wx" (in x 3H), "Wh" (H x 3H), "bx", "bh" (3H). The tape: h (T+1, B, H)
with h[0] the carried state; gates (T, B, 3H), the input projection on entry and r, z, n after
the forward pass; m_n (T, B, H), the recurrent part of the candidate (needed by its gradient).

Backward, per step (dh the total gradient reaching h_t):
    da_n = dh * (1 - z) * (1 - n**2)     gradient of the candidate's pre-activation: dh_raw
    da_z = dh * (h_{t-1} - n) * z * (1 - z)
    da_r = da_n * m_n * r * (1 - r)
    dm   = [da_r, da_z, da_n * r]        gradient of m
    dh_{t-1} = dh * z + dm @ Wh.T;   dWh = sum_t h_{t-1}.T @ dm;   dbh = sum_t dm
    dx   = [da_r, da_z, da_n]            returned to the model (dWx, dbx, the layer below)
One (T, B, 4H) array d holds [da_n * r | da_r, da_z, da_n] per step, so that d[..., H:] is dx
and d[..., :3H] is dm with its blocks in the order n, r, z: both are views, and the per-step
product and dWh each need one copy of Wh.T (or of dWh) with its blocks rotated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import Init, Work, aligned, chrono_bias, input_matrix, recurrent_matrix, sigmoid
from .gates import gate_readings, memory_steps

NAME = "gru"
BLOCKS = 3
STATE = ("h",)
INPUT = ("Wx", "bx")
GATES = ("r", "z", "n")


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
    h, gates, m_n = work("h", (T + 1, B, H)), work("gates", (T, B, 3 * H)), work("m_n", (T, B, H))
    h[0] = h0
    fill(gates)
    gates[..., :2 * H] += P["bh"][:2 * H]  # r and z add both biases into one sum
    Wh, bh_n = aligned(work, "Wh", P["Wh"]), P["bh"][2 * H:]
    m, s = work("m", (B, 3 * H)), work("s", (B, H))
    with np.errstate(over="ignore"):
        for t in range(T):
            np.dot(h[t], Wh, out=m)
            rz, n = gates[t, :, :2 * H], gates[t, :, 2 * H:]
            rz += m[:, :2 * H]
            sigmoid(rz, out=rz)
            np.add(m[:, 2 * H:], bh_n, out=m_n[t])
            np.multiply(rz[:, :H], m_n[t], out=s)
            n += s
            np.tanh(n, out=n)
            np.subtract(h[t], n, out=h[t + 1])  # h_t = n + z * (h_{t-1} - n)
            h[t + 1] *= rz[:, H:]
            h[t + 1] += n
    return {"h": h, "gates": gates, "m_n": m_n}


def backward(P: dict, tape: dict, dh: np.ndarray, work: Work, grads: dict) -> np.ndarray:
    """Writes grads["Wh"], grads["bh"]; returns dx (T, B, 3H), a view of d (module docstring)."""
    h, gates, m_n, (T, B, H) = tape["h"], tape["gates"], tape["m_n"], dh.shape
    d, back, s = work("d", (T, B, 4 * H)), work("back", (B, H)), work("s", (B, 3 * H))
    WhT = rotated_WhT(P["Wh"], work)
    for t in range(T - 1, -1, -1):
        r, z, n = (gates[t, :, k * H:(k + 1) * H] for k in range(3))
        step_back(dh[t], r, z, n, m_n[t], h[t], WhT, d[t], s, back if t > 0 else None)
        if t > 0:
            dh[t - 1] += back
    dm = d[..., :3 * H].reshape(-1, 3 * H)  # blocks n, r, z
    dWh, dbh = h[:-1].reshape(-1, H).T @ dm, dm.sum(axis=0)
    grads["Wh"] = np.concatenate([dWh[:, H:], dWh[:, :H]], axis=1)
    grads["bh"] = np.concatenate([dbh[H:], dbh[:H]])
    return d[..., H:]


def rotated_WhT(Wh: np.ndarray, work: Work) -> np.ndarray:
    """Wh.T (3H, H) with its row blocks in the order n, r, z, the order of dm in d."""
    H = Wh.shape[0]
    WhT = work("WhT", (3 * H, H))
    WhT[:H] = Wh[:, 2 * H:].T
    WhT[H:] = Wh[:, :2 * H].T
    return WhT


def step_back(dh, r, z, n, m_n, h_prev, WhT, d, s, back) -> None:
    """One step of the backward recurrence (module docstring), all (B, H) but d (B, 4H) and
    s (B, 3H, scratch): writes d = [da_n * r | da_r, da_z, da_n] and, unless back is None, back
    = dh * z + dm @ Wh.T, the gradient reaching h_{t-1} through this step."""
    H = dh.shape[1]
    dm_n, da_r, da_z, da_n = (d[:, k * H:(k + 1) * H] for k in range(4))
    s1, s2, s3 = (s[:, k * H:(k + 1) * H] for k in range(3))
    np.multiply(n, n, out=s1)
    np.subtract(1, s1, out=s1)            # 1 - n**2
    np.subtract(1, z, out=da_n)
    da_n *= s1
    da_n *= dh
    np.multiply(da_n, r, out=dm_n)
    np.subtract(1, r, out=s2)
    s2 *= r                               # r (1 - r)
    np.multiply(da_n, m_n, out=da_r)
    da_r *= s2
    np.subtract(1, z, out=s3)
    s3 *= z                               # z (1 - z)
    np.subtract(h_prev, n, out=da_z)
    da_z *= s3
    da_z *= dh
    if back is not None:
        np.dot(d[:, :3 * H], WhT, out=back)
        np.multiply(dh, z, out=s1)
        back += s1


def probes(tape: dict, dh: np.ndarray, dax: np.ndarray) -> dict:
    """SPEC's probes, r, z, n, and for through_time m_n and h_prev (each (T, B, H))."""
    gates, H = tape["gates"], dh.shape[2]
    r, z, n = (gates[..., k * H:(k + 1) * H] for k in range(3))
    return {"h": tape["h"][1:], "dh": dh, "dh_raw": dax[..., 2 * H:], "r": r, "z": z, "n": n,
            "m_n": tape["m_n"], "h_prev": tape["h"][:-1]}


def through_time(P: dict, probe: dict) -> Callable:
    """step(t, (v,)): v (B, H) reaching h_t carried back to h_{t-1} through step t's full
    Jacobian (through z, r and n as well as directly): step_back without the input. A probe
    from elsewhere needs m_n = h_prev @ Wh[:, 2H:] + bh[2H:] beside r, z, n and h_prev."""
    B, H = probe["h"].shape[1:]
    WhT = rotated_WhT(P["Wh"], lambda name, shape: np.empty(shape, probe["h"].dtype))
    d, s = np.empty((B, 4 * H), probe["h"].dtype), np.empty((B, 3 * H), probe["h"].dtype)

    def step(t: int, v: tuple) -> tuple:
        back = np.empty_like(v[0])
        step_back(v[0], probe["r"][t], probe["z"][t], probe["n"][t], probe["m_n"][t],
                  probe["h_prev"][t], WhT, d, s, back)
        return (back,)

    return step


READINGS = {**gate_readings(("r", "z")), "memory_steps": memory_steps("z")}
