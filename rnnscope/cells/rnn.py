"""The vanilla tanh cell (SPEC 1): one layer's parameters, its loops through time, its readings.

    a_t = ax_t + h_{t-1} @ Whh        (ax_t = u_t @ Wxh + bh, from the model, for all t)
    h_t = tanh(a_t)

Parameters (local names): "Wxh" (in x H), "Whh" (H x H), "bh" (H). The states live in one
(T+1, B, H) array h with h[0] = h_0 (the carried state) and h[t] = h_t, so that h[1:] (every
h_t) and h[:-1] (every h_{t-1}) are both contiguous and the recurrent weight gradient is one
large product; the input projection is written straight into h[1:].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import Init, Work, aligned, input_matrix, recurrent_matrix

NAME = "rnn"
BLOCKS = 1                      # ax is (1, T, B, H)
STATE = ("h",)
INPUT = ("Wxh", "bh")           # ax = u @ Wxh + bh
GATES = ()
SIGMOID = ()
KEEP = None
INIT_FLAGS = ()                 # no gate initialisation applies
TORCH = ("RNN", {"Wxh": ("weight_ih",), "Whh": ("weight_hh",), "bh": ("bias_ih", "bias_hh")})


def init(fan_in: int, H: int, rng: np.random.Generator, init: Init) -> dict[str, np.ndarray]:
    return {"Wxh": input_matrix(fan_in, H, rng, init), "Whh": recurrent_matrix(H, rng, init),
            "bh": np.zeros(H)}


def forward(P: dict, state0: tuple, T: int, fill: Callable, work: Work) -> dict:
    """Tape {"h": (T+1, B, H)} from state0 = (h_0,); fill(ax) writes the input projection."""
    (h0,) = state0
    B, H = h0.shape
    h = work("h", (T + 1, B, H))
    h[0] = h0
    fill(h[1:][None])
    Whh, scratch = aligned(work, "Whh", P["Whh"]), work("scratch", (B, H))
    for t in range(1, T + 1):
        np.dot(h[t - 1], Whh, out=scratch)
        h[t] += scratch
        np.tanh(h[t], out=h[t])
    return {"h": h}


def backward(P: dict, tape: dict, dh: np.ndarray, work: Work, grads: dict) -> np.ndarray:
    """Backward through time of one layer, in place; returns dh_raw (1, T, B, H), the gradient
    of ax.

    dh: (T, B, H), on entry the gradient reaching h_t from the readout or the layer above (not
    through time), on exit the total gradient reaching h_t. Writes grads["Whh"].
      dh[t]     = dh_above[t] + dh_next          (dh_next from step t+1; zero at t = T-1)
      dh_raw[t] = (1 - h[t]**2) * dh[t]          gradient of the pre-activation a_t
      dh_next   = dh_raw[t] @ Whh.T              carried to step t-1
      dWhh      = sum_t h_{t-1}.T @ dh_raw[t]
    The gradient reaching h_0 is not formed: truncated BPTT carries the state, not the gradient.
    """
    h, (T, B, H) = tape["h"], dh.shape
    dh_raw, scratch = work("dh_raw", (T, B, H)), work("scratch", (B, H))
    WhhT = aligned(work, "WhhT", P["Whh"].T)
    np.multiply(h[1:], h[1:], out=dh_raw)
    np.subtract(1, dh_raw, out=dh_raw)  # the tanh gain 1 - h**2, for all t at once
    for t in range(T - 1, -1, -1):
        dh_raw[t] *= dh[t]
        if t > 0:
            np.dot(dh_raw[t], WhhT, out=scratch)
            dh[t - 1] += scratch
    grads["Whh"] = np.dot(h[:-1].reshape(-1, H).T, dh_raw.reshape(-1, H))
    return dh_raw[None]


def probes(tape: dict, dh: np.ndarray, dax: np.ndarray) -> dict:
    return {"h": tape["h"][1:], "dh": dh, "dh_raw": dax[0]}


def through_time(P: dict, probe: dict) -> Callable:
    """step(t, (v,)): a gradient v (B, H) reaching h_t (probe index t) carried back to h_{t-1}
    through the recurrence alone: v <- (v * (1 - h_t**2)) @ Whh.T."""
    h, WhhT = probe["h"], np.ascontiguousarray(P["Whh"].T)  # contiguous: ~1.5x faster products

    def step(t: int, v: tuple) -> tuple:
        return ((v[0] * (1 - h[t] ** 2)) @ WhhT,)

    return step


# ---- the cell's own readings: fn(P, probe, sat_threshold) -> float


def mean_gain(P, probe, sat_threshold) -> float:
    """Mean of 1 - h**2, the factor that the tanh derivative multiplies into dh."""
    return float(1.0 - np.mean(np.square(probe["h"])))


LANCZOS_STEPS = 32  # 3e-5 relative error at worst on H = 512 test matrices (docs/panel.md)


def whh_sigma_max(P, probe, sat_threshold) -> float:
    return sigma_max(P["Whh"])


def sigma_max(W: np.ndarray) -> float:
    """Largest singular value of W: the largest singular value of W restricted to a Krylov
    basis of W.T @ W (Lanczos). It converges from below and is exact once the basis spans the
    space; a few matrix-vector products instead of an O(H^3) decomposition."""
    W = W.astype(np.float64, copy=False)
    if not np.isfinite(W).all():
        return float("nan")
    Q = krylov_basis(W, LANCZOS_STEPS)
    return float(np.linalg.svd(W @ Q.T, compute_uv=False)[0])


def krylov_basis(W: np.ndarray, k: int) -> np.ndarray:
    """Orthonormal rows (j, H), j <= k, spanning v, (W.T W) v, ..., (W.T W)^(j-1) v.
    v is fixed (seed 0) so the reading needs no state and no draw from the panel rng; the basis
    stops early when the space closes (at once for a multiple of an orthogonal matrix)."""
    H = W.shape[1]
    Q = np.zeros((min(k, H), H))
    v = np.random.default_rng(0).standard_normal(H)
    closed = 1e-12 * np.vdot(W, W)  # ||W.T W q|| <= ||W||_F^2 for a unit q
    for j in range(len(Q)):
        for _ in range(2):  # Gram-Schmidt twice keeps the basis orthogonal in floating point
            v -= (Q[:j] @ v) @ Q[:j]
        norm = np.linalg.norm(v)
        if j > 0 and norm <= closed:
            return Q[:j]
        Q[j] = v / norm
        v = (W @ Q[j]) @ W
    return Q


READINGS = {f.__name__: f for f in (mean_gain, whh_sigma_max)}
