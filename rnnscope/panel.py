"""The instrument panel: readings of one training step, computed from what the step produced.

Every reading is a small function registered in a table: PROBE_READINGS here, which every cell
has, and each cell's own READINGS (rnnscope/cells: the tanh cell's mean_gain and whh_sigma_max,
the gated cells' gate readings); `measure()` runs them on a log step. A reading a cell does not
define is not recorded for it. Nothing here re-runs a forward or backward pass, except the
through-time profile, which walks the recurrence alone through the cell's own backward step
(one (B, H) @ (H, BLOCKS*H) product per time step) once per record.

N = T*B targets per chunk. Per-layer readings are keyed `layer{l}.{name}`; the un-prefixed key
aggregates the layers as the table of readings says (rnnscope/health.py: the mean unless it
names another; for `bptt_profile`, the mean over layers of g_k).

What a record covers: `train_nll` and `clip_rate` are means over the steps of the interval
since the previous record, and `steps` is [first, last] of that interval; every other reading
is of the record's own step (the last of the interval): its probes, its gradient before
clipping, its update and the weights after it.

The healthy range of each reading is in rnnscope/health.py.
"""

from __future__ import annotations

import math

import numpy as np

from .cells import CELLS, layer_params
from .health import reading

# ---- per-layer readings of the probes: h, dh, dh_raw are (T, B, H); dh is of the mean loss.
# Elementwise work stays in the training dtype (a float64 copy of the probes would cost more than
# the readings); sums of many terms use numpy's pairwise summation, good to ~1e-7 in float32.


def mean_abs_h(h, dh, dh_raw, sat_threshold):
    return float(np.abs(h).mean())


def sat_ratio(h, dh, dh_raw, sat_threshold):
    return float(np.count_nonzero(np.abs(h) > sat_threshold) / h.size)


def dh_norm(h, dh, dh_raw, sat_threshold):
    return row_norm_of_sum(dh)


def dh_raw_norm(h, dh, dh_raw, sat_threshold):
    return row_norm_of_sum(dh_raw)


def row_norm_of_sum(g: np.ndarray) -> float:
    """Mean over (t, b) of ||N * g[t, b]||: the gradient of the summed NLL, per position.
    dh_raw_norm <= dh_norm holds exactly in floating point: |dh_raw| <= |dh| entry by entry, and
    both are summed in the same order."""
    N = g.shape[0] * g.shape[1]
    return float(N * np.sqrt(np.einsum("tbh,tbh->tb", g, g)).mean(dtype=np.float64))


PROBE_READINGS = {f.__name__: f for f in
                  (mean_abs_h, sat_ratio, dh_norm, dh_raw_norm)}


# ---- the through-time profile, through the cell's own backward step


def bptt_profile(cell, P: dict, probe: dict, rng) -> list[list[float]]:
    """[[k, g_k]]: mean over the batch of the norm of the gradient reaching h_{T-k} from a random
    unit vector injected at h_T, through the recurrence alone (the cell's through_time step:
    for the tanh cell v <- (v * (1 - h_t**2)) @ Whh.T; for the LSTM the gradient travels as
    (dh, dc), injected as (v, 0), and g_k is the norm of its dh part). k = 1, 2, 4, ... and T
    itself. Each row of v is kept at unit norm (over all its parts) and its log-norm summed
    apart, so that g_k far below or above 1 neither underflows nor overflows (float64 range)."""
    h = probe["h"]
    T, B, H = h.shape
    v = rng.standard_normal((B, H)).astype(h.dtype)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    vs = (v,) + tuple(np.zeros_like(v) for _ in cell.STATE[1:])
    log_g = np.zeros(B)  # log of the norm each row would have without the rescaling
    step = cell.through_time(P, probe)
    ks = profile_steps(T)
    out = []
    for k in range(1, T + 1):
        vs = step(T - k, vs)
        norms = [np.linalg.norm(part, axis=1) for part in vs]
        norm = np.hypot.reduce(norms, axis=0)  # of all parts together; for one part, its own
        with np.errstate(divide="ignore"):  # a row that is exactly 0 stays 0: log_g = -inf
            if k in ks:
                out.append([k, float(np.exp(log_g + np.log(norms[0])).mean())])
            log_g += np.log(norm)
        vs = tuple(part / np.where(norm > 0, norm, 1)[:, None] for part in vs)
    return out


def profile_steps(T: int) -> set[int]:
    ks = {1 << i for i in range(T.bit_length()) if 1 << i <= T}
    return ks | {T}


# ---- the panel


def measure(probes: list[dict], params: dict[str, np.ndarray], grad_norms: dict[str, float],
             deltas: dict[str, np.ndarray], sat_threshold: float, rng, cell: str = "rnn") -> dict:
    """All readings of one step of a model of cell `cell`. grad_norms: per-parameter gradient
    norms before clipping."""
    unit = CELLS[cell]
    rec: dict = {}
    for l, probe in enumerate(probes):
        P = layer_params(params, l)
        for name, fn in PROBE_READINGS.items():
            rec[f"layer{l}.{name}"] = fn(probe["h"], probe["dh"], probe["dh_raw"], sat_threshold)
        for name, fn in unit.READINGS.items():
            rec[f"layer{l}.{name}"] = fn(P, probe, sat_threshold)
        rec[f"layer{l}.bptt_profile"] = bptt_profile(unit, P, probe, rng)
    L = len(probes)
    for name in [*PROBE_READINGS, *unit.READINGS]:
        rec[name] = float(reading(name).aggregate([rec[f"layer{l}.{name}"]
                                                         for l in range(L)]))
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


def scalar(value):
    """A reading as one number. bptt_profile [[k, g_k], ..., [T, g_T]] becomes g_T ** (1/T), the
    geometric-mean gain of a gradient per time step (the injected vector has norm 1): below 1 it
    vanishes, above 1 it explodes, whatever the chunk length. NaN/inf become None, as in
    metrics.jsonl."""
    if isinstance(value, list):
        T, g_T = value[-1]
        value = None if g_T is None else g_T ** (1 / T)
    return value if value is None or math.isfinite(value) else None


class Interval:
    """Per-step values summarised between two records: mean train loss, clip rate, the largest
    gradient norm, steps covered. Its state is a flat dict of numbers so a checkpoint can carry
    a half-filled interval."""

    EMPTY = {"n": 0, "loss_sum": 0.0, "clip_sum": 0.0, "grad_norm_max": 0.0, "first": 0}

    def __init__(self, state: dict | None = None) -> None:
        self.state = dict(state or self.EMPTY)

    def add(self, step: int, loss: float, clip_stat: float, grad_norm: float) -> None:
        if self.state["n"] == 0:
            self.state["first"] = step
        self.state["n"] += 1
        self.state["loss_sum"] += loss
        self.state["clip_sum"] += clip_stat
        self.state["grad_norm_max"] = max(self.state["grad_norm_max"], grad_norm)

    def summary(self, step: int) -> dict:
        """train_nll and clip_rate (means over the interval), grad_norm_max (the largest
        pre-clipping norm of its steps, so a spike between records is seen), steps [first,
        last]; resets."""
        s = self.state
        out = {"train_nll": s["loss_sum"] / s["n"], "clip_rate": s["clip_sum"] / s["n"],
               "grad_norm_max": s["grad_norm_max"], "steps": [s["first"], step]}
        self.state = dict(self.EMPTY)
        return out
