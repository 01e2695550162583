"""A record's readings as TensorBoard / W&B scalars, tagged as the report groups them.

The group of every reading comes from the one table of readings (rnnscope/health.py READINGS,
its `group` column): `loss/train_nll`, `saturation/sat_ratio`, `gradients/grad_norm`, ...
Per-layer readings go under their layer: `saturation/layer0/sat_ratio`,
`gates/layer1/gate.f.left`; per-parameter norms too when the parameter belongs to a layer
(`gradients/layer0/grad_norm.Whh`, `updates/update_ratio.Why`). The through-time profile is its
gain per time step (the display's `bptt gain/step`, panel.scalar) and each of its points g_k
(`through_time/bptt_profile.g8`). A number the table does not know (a column of your own log)
goes under `other/`. `step` is the x axis, not a scalar; text (`diverged`) and lists (`steps`)
are not scalars either.
"""

from __future__ import annotations

import re

from ..health import READINGS, reading
from ..panel import scalar
from ..records import finite

LAYER = re.compile(r"^layer(\d+)\.(.+)$")
PARAM = re.compile(r"^(\d+)\.(.+)$")        # a layer's parameter: "0.Whh"
OTHER = "other"                             # the group of a number the table does not know
SKIP = {"step"}


def tag(key: str) -> str:
    """'{group}/{name}' or '{group}/layer{l}/{name}' of a record key."""
    m = LAYER.match(key)
    layer, name = (m.group(1), m.group(2)) if m else (None, key)
    row = reading(key)
    base, _, param = name.partition(".")
    if row is None and param and base in READINGS:  # per parameter: grad_norm.0.Whh
        row = READINGS[base]
        if (p := PARAM.match(param)) and layer is None:
            layer, name = p.group(1), f"{base}.{p.group(2)}"
    group = row.group if row else OTHER
    return f"{group}/{name}" if layer is None else f"{group}/layer{layer}/{name}"


def scalars(rec: dict) -> dict[str, float]:
    """{tag: number} of every reading the record holds (NaN/inf, stored as null, are left out:
    the finding `diverged` says so)."""
    out: dict[str, float] = {}
    for key, value in rec.items():
        if key in SKIP:
            continue
        if reading(key) is not None and isinstance(value, list):  # bptt_profile
            gain = scalar(value) if value else None
            if gain is not None:
                out[tag(key)] = gain
            out.update({f"{tag(key)}.g{k}": g for k, g in value if finite(g)})
        elif finite(value):
            out[tag(key)] = value
    return out
