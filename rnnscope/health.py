"""The healthy range of each reading: the one table that the live display's flags, the report's
plot bands and the triage's thresholds read. docs/panel.md and docs/triage.md give the runs that
calibrate each bound.

A reading outside its range on one record is flagged by the display; the triage decides from
persistent patterns across records, against these same bounds.
"""

from __future__ import annotations

import math
import statistics

HEALTHY = {                       # reading: (low, high), None where unbounded
    "sat_ratio": (None, 0.5),
    "mean_gain": (0.3, None),
    "clip_rate": (None, 0.5),
    "grad_norm": (None, 100.0),
    "update_ratio": (4e-4, 0.015),
    "whh_sigma_max": (None, 10.0),
    "bptt_profile": (0.5, 1.1),   # on the gain per time step g_T ** (1/T), see panel.scalar()
}
GRAD_NORM_RISE = 10.0  # grad_norm is flagged above this multiple of its median at earlier records


def flag(key: str, value, earlier=()) -> str:
    """'' when reading `key` (per layer or not) is in its healthy range, else what is wrong:
    'nan', '>0.5', '<0.3', or 'x12' (grad_norm 12 times its median over `earlier` records).
    value and earlier are panel.scalar() values; None stands for NaN/inf, as in metrics.jsonl."""
    name = reading_name(key)
    if value is None or not math.isfinite(value):
        return "nan"
    low, high = HEALTHY.get(name, (None, None))
    if low is not None and value < low:
        return f"<{low:g}"
    if high is not None and value > high:
        return f">{high:g}"
    return rise(value, earlier) if name == "grad_norm" else ""


def reading_name(key: str) -> str:
    """"layer1.gate.f.left" -> "gate.f.left"; a key without a layer is its own name."""
    return key.split(".", 1)[1] if key.startswith("layer") else key


def rise(value: float, earlier) -> str:
    """'x12' when value is over GRAD_NORM_RISE times the median of the earlier values, else ''."""
    past = [v for v in earlier if v is not None and math.isfinite(v)]
    typical = statistics.median(past) if past else 0.0
    return f"x{value / typical:.0f}" if typical > 0 and value > GRAD_NORM_RISE * typical else ""
