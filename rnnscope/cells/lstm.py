"""The LSTM cell (SPEC 8, PyTorch's conventions): parameters, loops through time, readings.

    z = u @ Wx + b + h_{t-1} @ Wh     (u @ Wx + b from the model, for all t)   blocks i, f, g, o
    i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
    c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)

Parameters (local names): "Wx" (in x 4H), "Wh" (H x 4H), "b" (4H; PyTorch's bias_ih + bias_hh).
The state is (h, c). The tape: h and c (T+1, B, H) with [0] the carried state; gates
(4, T, B, H), the input projection on entry and i, f, g, o after the forward pass (blocks first,
the cell contract: every gate of every step is a contiguous (B, H)); tanh_c (T, B, H).
The forward pass computes all four blocks with one tanh, i, f, o as 0.5 tanh(z / 2) + 0.5: the
i, f, o blocks of the input projection and of a copy of Wh are halved first (exact in floating
point).

Backward, per step (dh the total gradient reaching h_t, dc the one reaching c_t from step t+1):
    dh_raw = dh * o * (1 - tanh(c_t)**2)     the part of dh that enters c_t
    dc    += dh_raw
    dz     = [dc * g * i (1 - i), dc * c_{t-1} * f (1 - f), dc * i * (1 - g**2),
              dh * tanh(c_t) * o (1 - o)]   returned to the model as the gradient of u @ Wx + b
    dh_{t-1} = dz @ Wh.T;   dc_{t-1} = dc * f;   dWh = sum_t h_{t-1}.T @ dz
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

NAME = "lstm"
BLOCKS = 4
STATE = ("h", "c")
INPUT = ("Wx", "b")
GATES = ("i", "f", "g", "o")
SIGMOID = ("i", "f", "o")
KEEP = "f"
INIT_FLAGS = ("forget_bias", "chrono_init")
TORCH = ("LSTM", {"Wx": ("weight_ih",), "Wh": ("weight_hh",), "b": ("bias_ih", "bias_hh")})


def init(fan_in: int, H: int, rng: np.random.Generator, init: Init) -> dict[str, np.ndarray]:
    """b_f = forget_bias; with chrono_tmax instead b_f = log(U(1, T_max - 1)), b_i = -b_f."""
    params = {"Wx": input_matrix(fan_in, 4 * H, rng, init),
              "Wh": np.concatenate([recurrent_matrix(H, rng, init) for _ in GATES], axis=1),
              "b": np.zeros(4 * H)}
    b_i, b_f = params["b"][:H], params["b"][H:2 * H]
    if init.chrono_tmax is None:
        b_f[:] = init.forget_bias
    else:
        b_f[:] = chrono_bias(H, rng, init.chrono_tmax)
        b_i[:] = -b_f
    return params


def forward(P: dict, state0: tuple, T: int, fill: Callable, work: Work) -> dict:
    h0, c0 = state0
    B, H = h0.shape
    h, c = work("h", (T + 1, B, H)), work("c", (T + 1, B, H))
    gates, tanh_c = work("gates", (4, T, B, H)), work("tanh_c", (T, B, H))
    h[0], c[0] = h0, c0
    fill(gates)
    Wh = aligned(work, "Wh", blocks(P["Wh"], H))
    for halve in (gates[:2], gates[3], Wh[:2], Wh[3]):  # the sigmoid blocks: z / 2
        halve *= 0.5
    m, s = work("m", (4, B, H)), work("s", (B, H))
    i, f, g, o = gates
    for t in range(T):
        a = gates[:, t]
        np.matmul(h[t], Wh, out=m)
        a += m
        np.tanh(a, out=a)                 # tanh(z_g), and tanh(z / 2) of i, f, o
        sigmoid_of_half(a[:2])
        sigmoid_of_half(o[t])
        np.multiply(f[t], c[t], out=c[t + 1])
        np.multiply(i[t], g[t], out=s)
        c[t + 1] += s
        np.tanh(c[t + 1], out=tanh_c[t])
        np.multiply(o[t], tanh_c[t], out=h[t + 1])
    return {"h": h, "c": c, "gates": gates, "tanh_c": tanh_c}


def backward(P: dict, tape: dict, dh: np.ndarray, work: Work, grads: dict) -> np.ndarray:
    """Writes grads["Wh"]; returns dz (4, T, B, H), the gradient of u @ Wx + b; keeps dh_raw
    (T, B, H) in the tape for the probes."""
    h, c, gates, tanh_c, (T, B, H) = tape["h"], tape["c"], tape["gates"], tape["tanh_c"], dh.shape
    dz, dh_raw = work("dz", (4, T, B, H)), work("dh_raw", (T, B, H))
    dc, back, s = work("dc", (B, H)), work("back", (B, H)), work("s", (4, B, H))
    WhT = aligned(work, "WhT", blocks(P["Wh"], H).transpose(0, 2, 1))
    dc[...] = 0
    for t in range(T - 1, -1, -1):
        step_back(dh[t], dc, gates[:, t], tanh_c[t], c[t], WhT, dz[:, t], dh_raw[t], s,
                  back if t > 0 else None)
        if t > 0:
            dh[t - 1] += back
    grads["Wh"] = side_by_side(np.matmul(h[:-1].reshape(-1, H).T, dz.reshape(4, T * B, H)))
    tape["dh_raw"] = dh_raw
    return dz


def step_back(dh, dc, a, tanh_c, c_prev, WhT, dz, dh_raw, s, back) -> None:
    """One step of the backward recurrence (module docstring), all (B, H) but a, dz and s
    (4, B, H; s is scratch) and WhT (4, H, H), the blocks of Wh transposed. dc: on entry the
    gradient reaching c_t from step t+1, on exit the one reaching c_{t-1}. Writes dz, dh_raw
    and, unless back is None, back = dz @ Wh.T, the gradient reaching h_{t-1}."""
    i, f, g, o = a
    dz_i, dz_f, dz_g, dz_o = dz
    np.multiply(tanh_c, tanh_c, out=dh_raw)
    np.subtract(1, dh_raw, out=dh_raw)
    dh_raw *= o
    dh_raw *= dh
    dc += dh_raw
    np.subtract(1, o, out=dz_o)
    dz_o *= o
    dz_o *= tanh_c
    dz_o *= dh
    np.subtract(1, a[:2], out=dz[:2])
    dz[:2] *= a[:2]                       # i (1 - i), f (1 - f)
    dz_i *= g
    dz_f *= c_prev
    dz[:2] *= dc
    np.multiply(g, g, out=s[0])
    np.subtract(1, s[0], out=dz_g)
    dz_g *= i
    dz_g *= dc
    dc *= f
    if back is not None:
        np.matmul(dz, WhT, out=s)
        np.sum(s, axis=0, out=back)


def probes(tape: dict, dh: np.ndarray, dax: np.ndarray) -> dict:
    """SPEC's probes, i, f, g, o and c, and for through_time gates (4, T, B, H), tanh_c and
    c_prev (T, B, H)."""
    gates = tape["gates"]
    i, f, g, o = gates
    return {"h": tape["h"][1:], "dh": dh, "dh_raw": tape["dh_raw"], "i": i, "f": f, "g": g, "o": o,
            "c": tape["c"][1:], "gates": gates, "tanh_c": tape["tanh_c"],
            "c_prev": tape["c"][:-1]}


def through_time(P: dict, probe: dict) -> Callable:
    """step(t, (vh, vc)): the gradient (dh, dc) reaching (h_t, c_t) carried back to
    (h_{t-1}, c_{t-1}) through step t's full Jacobian: step_back without the input."""
    B, H = probe["h"].shape[1:]
    dtype = probe["h"].dtype
    WhT = np.ascontiguousarray(blocks(P["Wh"], H).transpose(0, 2, 1))
    dz, s, dh_raw = np.empty((4, B, H), dtype), np.empty((4, B, H), dtype), np.empty((B, H), dtype)

    def step(t: int, v: tuple) -> tuple:
        vh, vc = v
        dc, back = vc.copy(), np.empty_like(vh)
        step_back(vh, dc, probe["gates"][:, t], probe["tanh_c"][t], probe["c_prev"][t], WhT, dz,
                  dh_raw, s, back)
        return back, dc

    return step


# ---- the cell's own readings beyond the gates': of the cell state c


def mean_abs_c(P, probe, sat_threshold) -> float:
    return float(np.abs(probe["c"]).mean(dtype=np.float64))


def c_sat_ratio(P, probe, sat_threshold) -> float:
    """Fraction of entries with abs(tanh(c)) > --sat-threshold: on the rails of tanh(c), where
    dh_raw loses the gradient as the tanh cell's dh_raw does."""
    return float(np.count_nonzero(np.abs(probe["tanh_c"]) > sat_threshold) / probe["c"].size)


READINGS = {**gate_readings(SIGMOID), "memory_steps": memory_steps(KEEP),
            "mean_abs_c": mean_abs_c, "c_sat_ratio": c_sat_ratio}
