"""The markdown of docs/triage.md's calibration section, from the recorded runs.

    python benchmarks/calibration/calibrate.py --markdown
"""

from __future__ import annotations

import math
import statistics

from rnnscope.cells import CELLS
from rnnscope.triage import diagnose
from rnnscope.triage.history import THRESHOLDS, History, profile_at, stalled
from rnnscope.triage.rules import (
    gate_keys,
    gates_saturated,
    prefixes,
)

K = THRESHOLDS["persist"]
COLUMNS = ("step", "train_nll", "eval_nll", "sat_ratio", "mean_gain", "dh_raw/dh", "grad_norm",
           "clip_rate", "update_ratio", "g_4", "g_T")


def reading(rec: dict, name: str, uniform: float = 0.0):
    """One reading of a record by its column name, None where the record lacks it."""
    profile = rec.get("bptt_profile")
    derived = {
        "dh_raw/dh": lambda: rec["dh_raw_norm"] / rec["dh_norm"],
        "g_4": lambda: profile_at(profile, THRESHOLDS["vanish_k"]),
        "g_T": lambda: profile[-1][1],
        "nll_above_uniform": lambda: rec["train_nll"] - uniform,
    }
    try:
        return derived[name]() if name in derived else rec.get(name)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (int, str)):
        return str(v)
    return f"{v:.3g}" if v and (abs(v) < 0.01 or abs(v) >= 1000) else f"{v:.3f}"


def run_table(name: str, doc: dict, records: list[dict], rows: int = 8) -> str:
    """A run's command, its readings at `rows` evenly spaced records, and its findings."""
    panel = [r for r in records if "sat_ratio" in r] or records  # a log without the panel
    picks = sorted({round(i * (len(panel) - 1) / (rows - 1)) for i in range(rows)})
    lines = [f"### {name}", "", f"`{doc['command']}` (exit {doc['exit']})", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    last_eval = None
    for i, rec in enumerate(panel):
        last_eval = rec.get("eval_nll", last_eval)
        if i in picks:
            values = [reading(rec, c) for c in COLUMNS]
            values[2] = last_eval
            lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    if records and "diverged" in records[-1]:
        lines.append(f"| {records[-1]['step']} | stopped: {records[-1]['diverged']} |")
    result = diagnose(records, doc["config"])
    found = [described(f) for f in result["findings"]]
    aside = [f"`{s['id']}` (held at step {s['evidence']['steps'][-1]}: {s['why']})"
             for s in result["set_aside"]]
    lines += ["", f"Verdict `{result['verdict']}`; findings: {'; '.join(found) or 'none'}."]
    lines += [f"Set aside: {'; '.join(aside)}."] if aside else []
    return "\n".join(lines + [""])


def described(f: dict) -> str:
    """`id` (severity, first held at step S), with what it explains."""
    text = f"`{f['id']}` ({f['severity']}, first held at step {f['evidence']['steps'][-1]})"
    also = [f"`{c['id']}` (step {c['evidence']['steps'][-1]})"
            for c in f["evidence"].get("consequences", [])]
    return text + (f" explaining {', '.join(also)}" if also else "")


def sustained(values: list, mode: str, start_only: bool = False, after_start: bool = False):
    """The most extreme value that held on K consecutive records: max over windows of the
    window's min (mode "max"), or min over windows of the window's max (mode "min"); over the
    first window only, or over every window but the first."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    windows = [values[i:i + K] for i in range(len(values) - K + 1)]
    windows = windows[:1] if start_only else windows[1:] if after_start else windows
    if not windows:
        return None
    return max(map(min, windows)) if mode == "max" else min(map(max, windows))


def persistent(name: str, mode: str, start_only: bool = False, after_start: bool = False):
    def measure(doc, records):
        vocab = doc["config"].get("vocab")  # a log from another tool may have none
        uniform = math.log(len(vocab)) if vocab else math.nan
        return sustained([reading(r, name, uniform) for r in records], mode, start_only,
                         after_start)
    return measure


def least_improvement(doc, records):
    """The smallest train NLL improvement over a trend window without a new best eval, once
    the run is long enough for plateau to look (what plateau compares with plateau_gain)."""
    h, gains = History(doc["config"]["config"], 0.0), []
    for rec in records:
        h.add(rec)
        t = stalled(h, math.inf) if len(h.records) >= THRESHOLDS["min_records"] else None
        gains += [t[1]] if t else []
    return min(gains, default=None)


def start_ratio(doc, records):
    """The median update_ratio of the run's first K records (what update_too_small compares
    with update_healthy)."""
    ratios = [r["update_ratio"] for r in records if reading(r, "update_ratio") is not None]
    return statistics.median(ratios[:K]) if len(ratios) >= K else None


def spike_rise(doc, records):
    """The largest relative rise of a train NLL over the median of the trend window before it
    (what a loss spike compares with loss_spike)."""
    w, nll, rises = THRESHOLDS["trend_window"], [], []
    for r in records:
        if reading(r, "train_nll") is not None and math.isfinite(r["train_nll"]):
            if len(nll) >= w // 2:
                rises.append(r["train_nll"] / statistics.median(nll[-w:]) - 1)
            nll.append(r["train_nll"])
    return max(rises, default=None)


def gap_growth(doc, records):
    """The largest growth of the eval - train gap held over persist_evals evals with no new
    best eval (what overfitting compares with gap_growth)."""
    h, k, grown = History(doc["config"]["config"], 0.0), THRESHOLDS["persist_evals"], []
    for rec in records:
        h.add(rec)
        if len(h.evals) > k and "eval_nll" in rec:
            best = h.evals[-k - 1]["best"]
            last = h.evals[-k:]
            if all(e["eval_nll"] > best["eval_nll"] for e in last):
                gap0 = best["eval_nll"] - best["train_nll"]
                grown.append(min(e["eval_nll"] - e["train_nll"] - gap0 for e in last))
    return max(grown, default=None)


def gated_measure(what: str, start_only: bool = False):
    """A gated cell's reading, per record the most extreme layer's: "saturated" (the mean over
    the sigmoid gates of left + right, what gate_saturation reads), "both" (of the less crowded
    rail, what tells a broken start), "memory" (memory_steps over
    the corpus's horizon K) or "keep_left" (the keep gate's left-saturated fraction)."""
    def measure(doc, records):
        cell = CELLS.get(doc["config"].get("config", {}).get("cell"))
        horizon = (doc["config"].get("corpus", {}).get("source") or {}).get("K")
        if cell is None or not cell.SIGMOID or what == "memory" and not horizon:
            return None
        h = History(doc["config"]["config"])
        if what in ("saturated", "both"):
            side = min if what == "both" else (lambda left, right: left + right)
            per = [max(gates_saturated(h, cell, r, side).values()) if all(
                k in r for k in gate_keys(cell)) else None for r in records]
            return sustained(per, "max", start_only)
        key = "memory_steps" if what == "memory" else f"gate.{cell.KEEP}.left"
        per = [min(r[p + key] for p in prefixes(h, r, key)) / horizon if what == "memory"
               else max(r[p + key] for p in prefixes(h, r, key)) if key in r else None
               for r in records]
        return sustained(per, "min" if what == "memory" else "max")
    return measure


# (reading, mode, its measure, threshold key, the finding the threshold serves)
MARGINS = (
    ("train NLL - ln(vocab)", "max", persistent("nll_above_uniform", "max"),
     "loss_above_uniform", "diverged"),
    ("clip_rate", "max", persistent("clip_rate", "max"), "clip_rate", "exploding_gradients"),
    ("g_T", "max", persistent("g_T", "max"), "profile_growth", "exploding_gradients"),
    ("sat_ratio, first records", "max", persistent("sat_ratio", "max", True), "sat_ratio",
     "saturation"),
    ("mean_gain, first records", "min", persistent("mean_gain", "min", True), "mean_gain",
     "saturation"),
    ("g_4", "min", persistent("g_4", "min"), "vanish_g", "vanishing_gradients"),
    ("update_ratio, after the first 5 records", "max",
     persistent("update_ratio", "max", after_start=True), "update_large", "update_too_large"),
    ("update_ratio", "min", persistent("update_ratio", "min"), "update_small",
     "update_too_small"),
    ("update_ratio, median of the first 5 records", "min", start_ratio, "update_healthy",
     "update_too_small"),
    ("train NLL over the median of the 20 records before", "max", spike_rise, "loss_spike",
     "spike"),
    ("eval - train gap growth, no new best", "max", gap_growth, "gap_growth", "overfitting"),
    ("train NLL improvement over the trend window", "min", least_improvement, "plateau_gain",
     "plateau"),
    ("gated: sigmoid gate entries saturated, first records", "max",
     gated_measure("saturated", True), "gate_saturated", "gate_saturation"),
    ("gated: entries on the less crowded rail, first records", "max",
     gated_measure("both", True), "gate_both", "gate_saturation"),
    ("gated: memory_steps / the corpus's K", "min", gated_measure("memory"), "memory_short",
     "short_memory"),
    ("gated: keep gate left-saturated", "max", gated_measure("keep_left"), "keep_left",
     "short_memory"),
)


def margins(recipes: dict, recorded) -> str:
    """Per threshold: the most extreme value any healthy run held, and what the runs built to
    show that finding held (on K consecutive records, or as the rule measures it); for the loss
    spike, the runs that had one."""
    lines = ["| reading | threshold | most extreme healthy run | runs built to show the "
             "finding |", "|---|---|---|---|"]
    for label, mode, measure, key, finding_id in MARGINS:
        healthy, broken = [], []
        for run, (expected, _) in recipes.items():
            v = measure(*recorded(run))
            if v is None:
                continue
            if expected == ("healthy",):
                healthy.append((v, run))
            elif finding_id in expected or finding_id == "spike" and v > THRESHOLDS[key]:
                broken.append(f"{cell(v)} ({run})")  # a spike is no finding: runs that had one
        worst = "never held" if not healthy else \
            "{} ({})".format(*map(cell, (max if mode == "max" else min)(healthy)))
        lines.append(f"| {label} | {'>' if mode == 'max' else '<'} {THRESHOLDS[key]:g} | "
                     f"{worst} | {'; '.join(broken)} |")
    return "\n".join(lines)


def tables(recipes: dict, recorded) -> str:
    runs = [run_table(name, *recorded(name)) for name in recipes]
    return "\n".join(["## Margins", "", margins(recipes, recorded), "", "## The runs", "", *runs])
