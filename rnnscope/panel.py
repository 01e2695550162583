"""The instrument panel: readings of one training step, computed from what the step produced.

Every reading is a small function registered in one of the tables below; `readings()` runs them
on a log step. Nothing here re-runs a forward or backward pass, except the through-time profile,
which walks the recurrence alone (a (B, H) @ (H, H) per time step) once per record.

N = T*B targets per chunk. Per-layer readings are keyed `layer{l}.{name}`; the un-prefixed key
is the mean over layers (for `whh_sigma_max`, the largest over layers; for `bptt_profile`, the
mean over layers of g_k).

What a record covers: `train_nll` and `clip_rate` are means over the steps of the interval
since the previous record, and `steps` is [first, last] of that interval; every other reading
is of the record's own step (the last of the interval): its probes, its gradient before
clipping, its update and the weights after it.

HEALTHY holds the range in which a reading is unremarkable; the display flags a reading outside
it (`flag`). docs/panel.md gives the runs that calibrate each bound.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

# ---- per-layer readings of the probes: h, dh, dh_raw are (T, B, H); dh is of the mean loss.
# Elementwise work stays in the training dtype (a float64 copy of the probes would cost more than
# the readings); sums of many terms use numpy's pairwise summation, good to ~1e-7 in float32.


def mean_abs_h(h, dh, dh_raw, sat_threshold):
    return float(np.abs(h).mean())


def sat_ratio(h, dh, dh_raw, sat_threshold):
    return float(np.count_nonzero(np.abs(h) > sat_threshold) / h.size)


def mean_gain(h, dh, dh_raw, sat_threshold):
    return float(1.0 - np.mean(np.square(h)))


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
                  (mean_abs_h, sat_ratio, mean_gain, dh_norm, dh_raw_norm)}


# ---- per-layer readings of the recurrent weights


LANCZOS_STEPS = 32  # 3e-5 relative error at worst on H = 512 test matrices (docs/panel.md)


def whh_sigma_max(Whh: np.ndarray, h: np.ndarray, rng) -> float:
    """Largest singular value of Whh: the largest singular value of Whh restricted to a Krylov
    basis of Whh.T @ Whh (Lanczos). It converges from below and is exact once the basis spans
    the space; a few matrix-vector products instead of an O(H^3) decomposition."""
    W = Whh.astype(np.float64, copy=False)
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


def bptt_profile(Whh: np.ndarray, h: np.ndarray, rng) -> list[list[float]]:
    """[[k, g_k]]: mean over the batch of the norm of the gradient reaching h_{T-k} from a random
    unit vector injected at h_T, through the recurrence alone: v <- (v * (1 - h_t**2)) @ Whh.T.
    k = 1, 2, 4, ... and T itself. Each row of v is kept at unit norm and its log-norm summed
    apart, so that g_k far below or above 1 neither underflows nor overflows (float64 range)."""
    T, B, H = h.shape
    v = rng.standard_normal((B, H)).astype(h.dtype)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    log_g = np.zeros(B)  # log of the norm each row would have without the rescaling
    WhhT = np.ascontiguousarray(Whh.T)  # a contiguous copy makes the T products ~1.5x faster
    ks = profile_steps(T)
    out = []
    for k in range(1, T + 1):
        v *= 1 - h[T - k] ** 2
        v = v @ WhhT
        norm = np.linalg.norm(v, axis=1)
        with np.errstate(divide="ignore"):  # a row that is exactly 0 stays 0: log_g = -inf
            log_g += np.log(norm)
        v /= np.where(norm > 0, norm, 1)[:, None]
        if k in ks:
            out.append([k, float(np.exp(log_g).mean())])
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


# ---- health: the range in which a reading is unremarkable, for the display's flags

HEALTHY = {                       # reading: (low, high), None where unbounded
    "sat_ratio": (None, 0.5),
    "mean_gain": (0.3, None),
    "clip_rate": (None, 0.5),
    "grad_norm": (None, 100.0),
    "update_ratio": (1e-4, 1e-2),
    "whh_sigma_max": (None, 10.0),
    "bptt_profile": (0.5, 1.1),   # on the gain per time step g_T ** (1/T), see scalar()
}
GRAD_NORM_RISE = 10.0  # grad_norm is flagged above this multiple of its median at earlier records


def scalar(value):
    """A reading as one number. bptt_profile [[k, g_k], ..., [T, g_T]] becomes g_T ** (1/T), the
    geometric-mean gain of a gradient per time step (the injected vector has norm 1): below 1 it
    vanishes, above 1 it explodes, whatever the chunk length. NaN/inf become None, as in
    metrics.jsonl."""
    if isinstance(value, list):
        T, g_T = value[-1]
        value = None if g_T is None else g_T ** (1 / T)
    return value if value is None or math.isfinite(value) else None


def flag(key: str, value, earlier=()) -> str:
    """'' when reading `key` (per layer or not) is in its healthy range, else what is wrong:
    'nan', '>0.5', '<0.3', or 'x12' (grad_norm 12 times its median over `earlier` records).
    value and earlier are scalar() values; None stands for NaN/inf, as in metrics.jsonl."""
    name = key.split(".", 1)[1] if key.startswith("layer") else key
    if value is None or not math.isfinite(value):
        return "nan"
    low, high = HEALTHY.get(name, (None, None))
    if low is not None and value < low:
        return f"<{low:g}"
    if high is not None and value > high:
        return f">{high:g}"
    return rise(value, earlier) if name == "grad_norm" else ""


def rise(value: float, earlier) -> str:
    """'x12' when value is over GRAD_NORM_RISE times the median of the earlier values, else ''."""
    past = [v for v in earlier if v is not None and math.isfinite(v)]
    typical = statistics.median(past) if past else 0.0
    return f"x{value / typical:.0f}" if typical > 0 and value > GRAD_NORM_RISE * typical else ""


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
