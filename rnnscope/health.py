"""The one table of readings: for each panel reading (SPEC 3 and 8) its group in the report (and
in TensorBoard), how the per-layer values aggregate, its healthy range, whether the live display
shows it and whether compare's table does. The display, the records' reader (which keys hold
numbers), the report's plot bands, compare and the triage's thresholds all read it; docs/panel.md
and docs/triage.md give the runs that calibrate each bound.

A reading outside its range on one record is flagged by the display; the triage decides from
persistent patterns across records, against these same bounds.

Adding a reading: its function in panel.py (or a cell's READINGS) and one row here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reading:
    group: str                                      # loss, saturation, gradients, updates, ...
    healthy: tuple[float | None, float | None] = (None, None)  # (low, high), None: unbounded
    aggregate: Callable = np.mean                   # over layers, for the un-prefixed key
    shown: bool = True                              # a row of the live display
    compared: bool = False                          # a column of `rnnscope compare`
    label: str | None = None                        # the display's name, when not the key


PER_GATE = ("gate.mean", "gate.left", "gate.right")  # gate.{g}.mean ...: one row for every gate g
READINGS: dict[str, Reading] = {  # in the display's order
    "step": Reading("progress", shown=False),
    "chars": Reading("progress", shown=False),
    "elapsed_s": Reading("progress", shown=False),
    "epoch": Reading("progress", shown=False),
    "lr": Reading("updates", shown=False),
    "train_nll": Reading("loss", compared=True),
    "eval_nll": Reading("loss", compared=True),
    # state dependence (rnnscope/heldout.py): held-out text from a zero and from the carried
    # state, the text just trained on from a zero state; read against eval_nll and train_nll
    "eval_nll_fresh": Reading("loss", label="eval fresh"),
    "eval_nll_carried": Reading("loss", label="eval carried"),
    "train_nll_fresh": Reading("loss", label="train fresh"),
    "mean_abs_h": Reading("saturation"),
    "sat_ratio": Reading("saturation", (None, 0.5), compared=True),
    "mean_gain": Reading("saturation", (0.3, None), compared=True),
    "dh_norm": Reading("gradients"),
    "dh_raw_norm": Reading("gradients"),
    "grad_norm": Reading("gradients", (None, 100.0), compared=True),
    "grad_norm_max": Reading("gradients", shown=False),
    "clip_rate": Reading("gradients", (None, 0.5)),
    "update_ratio": Reading("updates", (4e-4, 0.015), compared=True),
    "param_norm": Reading("updates", shown=False),
    "whh_sigma_max": Reading("updates", (None, 10.0), aggregate=max),
    # on the gain per time step g_T ** (1/T), see panel.scalar()
    "bptt_profile": Reading("through_time", (0.5, 1.1), label="bptt gain/step"),
    "memory_steps": Reading("gates"),
    "mean_abs_c": Reading("saturation"),
    "c_sat_ratio": Reading("saturation"),
    **{name: Reading("gates") for name in PER_GATE},
}
HEALTHY = {k: r.healthy for k, r in READINGS.items() if r.healthy != (None, None)}
GRAD_NORM_RISE = 10.0  # grad_norm is flagged above this multiple of its median at earlier records


def reading_name(key: str) -> str:
    """The table's row of a record key: "layer1.gate.f.left" -> "gate.left", "sat_ratio" ->
    itself; "" for a key that is no reading of the table (per-parameter keys such as
    grad_norm.0.Whh included: they are numbers with no range of their own)."""
    name = key.split(".", 1)[1] if key.startswith("layer") and "." in key else key
    parts = name.split(".")
    if parts[0] == "gate" and len(parts) == 3:
        name = f"gate.{parts[2]}"
    return name if name in READINGS else ""


def reading(key: str) -> Reading | None:
    name = reading_name(key)
    return READINGS[name] if name else None


def flag(key: str, value, earlier=()) -> str:
    """'' when reading `key` (per layer or not) is in its healthy range, else what is wrong:
    'nan', '>0.5', '<0.3', or 'x12' (grad_norm 12 times its median over `earlier` records).
    value and earlier are panel.scalar() values; None stands for NaN/inf, as in metrics.jsonl."""
    if value is None or not math.isfinite(value):
        return "nan"
    r = reading(key)
    low, high = r.healthy if r else (None, None)
    if low is not None and value < low:
        return f"<{low:g}"
    if high is not None and value > high:
        return f">{high:g}"
    return rise(value, earlier) if reading_name(key) == "grad_norm" else ""


def rise(value: float, earlier) -> str:
    """'x12' when value is over GRAD_NORM_RISE times the median of the earlier values, else ''."""
    past = [v for v in earlier if v is not None and math.isfinite(v)]
    typical = statistics.median(past) if past else 0.0
    return f"x{value / typical:.0f}" if typical > 0 and value > GRAD_NORM_RISE * typical else ""
