"""The gated cells' own readings (SPEC 8), made per gate: each a fn(P, probe, sat_threshold).

    gate.{g}.mean          mean activation of sigmoid gate g over t, b and units
    gate.{g}.left, .right  fraction of entries below LEFT / above RIGHT (left/right saturated,
                           Karpathy, Johnson and Fei-Fei 2015)
    memory_steps           median over units of -1 / ln(mean over t, b of the keep gate), the
                           number of steps over which the old state decays by a factor e,
                           capped at MEMORY_CAP
"""

from __future__ import annotations

from functools import partial

import numpy as np

LEFT, RIGHT = 0.1, 0.9
MEMORY_CAP = 1e4


def gate_readings(gates: tuple[str, ...]) -> dict:
    """{"gate.{g}.mean": fn, "gate.{g}.left": fn, "gate.{g}.right": fn} for each gate g."""
    return {f"gate.{g}.{name}": partial(fn, g) for g in gates
            for name, fn in (("mean", mean), ("left", left), ("right", right))}


def mean(g, P, probe, sat_threshold) -> float:
    return float(probe[g].mean(dtype=np.float64))


def left(g, P, probe, sat_threshold) -> float:
    return float(np.count_nonzero(probe[g] < LEFT) / probe[g].size)


def right(g, P, probe, sat_threshold) -> float:
    return float(np.count_nonzero(probe[g] > RIGHT) / probe[g].size)


def memory_steps(g: str):
    """The reading memory_steps of the keep gate g (LSTM f, GRU z)."""
    return partial(memory_time, g)


def memory_time(g, P, probe, sat_threshold) -> float:
    keep = probe[g].mean(axis=(0, 1), dtype=np.float64)  # per unit
    with np.errstate(divide="ignore"):
        steps = -1 / np.log(keep)  # keep = 1: inf; keep = 0: 0
    return float(np.median(np.minimum(steps, MEMORY_CAP)))
