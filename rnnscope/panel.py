"""The instrument panel: readings of one training step, computed from what the step produced.

Every reading is a small function registered in one of the tables below; `readings()` runs them
on a log step. Nothing here re-runs a forward or backward pass, except the through-time profile,
which walks the recurrence alone (a cheap (B, H) @ (H, H) per step) once per record.

N = T*B targets per chunk. Per-layer readings are keyed `layer{l}.{name}`; the un-prefixed key
is the mean over layers (for `whh_sigma_max`, the largest over layers; for `bptt_profile`, the
mean over layers of g_k).
"""

from __future__ import annotations

import numpy as np

# ---- per-layer readings of the probes: h, dh, dh_raw are (T, B, H); dh is of the mean loss


def mean_abs_h(h, dh, dh_raw, sat_threshold):
    return float(np.abs(h).mean())


def sat_ratio(h, dh, dh_raw, sat_threshold):
    return float(np.count_nonzero(np.abs(h) > sat_threshold) / h.size)


def mean_gain(h, dh, dh_raw, sat_threshold):
    return float(1.0 - np.mean(np.square(h, dtype=np.float64)))


def dh_norm(h, dh, dh_raw, sat_threshold):
    return row_norm_of_sum(dh)


def dh_raw_norm(h, dh, dh_raw, sat_threshold):
    return row_norm_of_sum(dh_raw)


def row_norm_of_sum(g: np.ndarray) -> float:
    """Mean over (t, b) of ||N * g[t, b]||: the gradient of the summed NLL, per position."""
    N = g.shape[0] * g.shape[1]
    return float(N * np.sqrt(np.einsum("tbh,tbh->tb", g, g, dtype=np.float64)).mean())


PROBE_READINGS = {f.__name__: f for f in
                  (mean_abs_h, sat_ratio, mean_gain, dh_norm, dh_raw_norm)}


# ---- per-layer readings of the recurrent weights


def whh_sigma_max(Whh: np.ndarray, h: np.ndarray, rng) -> float:
    """Largest singular value of Whh (square root of the top eigenvalue of Whh.T @ Whh)."""
    W = Whh.astype(np.float64, copy=False)
    return float(np.sqrt(max(np.linalg.eigvalsh(W.T @ W)[-1], 0.0)))


def bptt_profile(Whh: np.ndarray, h: np.ndarray, rng) -> list[list[float]]:
    """[[k, g_k]]: mean over the batch of the norm of the gradient reaching h_{T-k} from a random
    unit vector injected at h_T, through the recurrence alone: v <- (v * (1 - h_t**2)) @ Whh.T.
    k = 1, 2, 4, ... and T itself."""
    T, B, H = h.shape
    v = rng.standard_normal((B, H)).astype(h.dtype)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ks = profile_steps(T)
    out = []
    for k in range(1, T + 1):
        v *= 1 - h[T - k] ** 2
        v = v @ Whh.T
        if k in ks:
            out.append([k, float(np.linalg.norm(v, axis=1).mean())])
    return out


def profile_steps(T: int) -> set[int]:
    ks = {1 << i for i in range(T.bit_length()) if 1 << i <= T}
    return ks | {T}


WEIGHT_READINGS = {f.__name__: f for f in (whh_sigma_max, bptt_profile)}


# ---- the panel


def readings(probes: list[dict], params: dict[str, np.ndarray], grad_norms: dict[str, float],
             deltas: dict[str, np.ndarray], sat_threshold: float, rng) -> dict:
    """All readings of one step. grad_norms: per-parameter gradient norms before clipping."""
    rec: dict = {}
    for l, probe in enumerate(probes):
        for name, fn in PROBE_READINGS.items():
            rec[f"layer{l}.{name}"] = fn(probe["h"], probe["dh"], probe["dh_raw"], sat_threshold)
        for name, fn in WEIGHT_READINGS.items():
            rec[f"layer{l}.{name}"] = fn(params[f"{l}.Whh"], probe["h"], rng)
    L = len(probes)
    for name in PROBE_READINGS:
        rec[name] = float(np.mean([rec[f"layer{l}.{name}"] for l in range(L)]))
    rec["whh_sigma_max"] = max(rec[f"layer{l}.whh_sigma_max"] for l in range(L))
    profiles = np.array([[g for _, g in rec[f"layer{l}.bptt_profile"]] for l in range(L)])
    ks = [k for k, _ in rec["layer0.bptt_profile"]]
    rec["bptt_profile"] = [[k, float(g)] for k, g in zip(ks, profiles.mean(0), strict=True)]
    rec.update(weight_readings(params, grad_norms, deltas))
    return rec


def weight_readings(params, grad_norms, deltas) -> dict:
    """grad_norm.{name}, param_norm.{name}, update_ratio (global and per parameter).
    The ratio divides by the norm of theta before the step (theta - delta)."""
    rec: dict = {}
    d2 = p2 = 0.0
    for name, theta in params.items():
        d = float(np.linalg.norm(deltas[name]))
        p = float(np.linalg.norm(theta - deltas[name]))
        rec[f"grad_norm.{name}"] = grad_norms[name]
        rec[f"param_norm.{name}"] = float(np.linalg.norm(theta))
        rec[f"update_ratio.{name}"] = d / p if p > 0 else float("inf")
        d2, p2 = d2 + d * d, p2 + p * p
    rec["update_ratio"] = float(np.sqrt(d2 / p2)) if p2 > 0 else float("inf")
    return rec


def grad_norms(grads: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.linalg.norm(g)) for name, g in grads.items()}


class Interval:
    """Per-step values summarised between two records: mean train loss, clip rate, steps covered.
    Its state is a flat dict of numbers so a checkpoint can carry a half-filled interval."""

    def __init__(self, state: dict | None = None) -> None:
        self.state = dict(state or {"n": 0, "loss_sum": 0.0, "clip_sum": 0.0, "first": 0})

    def add(self, step: int, loss: float, clip_stat: float) -> None:
        if self.state["n"] == 0:
            self.state["first"] = step
        self.state["n"] += 1
        self.state["loss_sum"] += loss
        self.state["clip_sum"] += clip_stat

    def summary(self, step: int) -> dict:
        """train_nll (mean over the interval), clip_rate (mean), steps [first, last]; resets."""
        s = self.state
        out = {"train_nll": s["loss_sum"] / s["n"], "clip_rate": s["clip_sum"] / s["n"],
               "steps": [s["first"], step]}
        self.state = {"n": 0, "loss_sum": 0.0, "clip_sum": 0.0, "first": 0}
        return out
