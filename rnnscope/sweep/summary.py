"""A sweep's summary (DIR/summary.json), the main effect of each swept factor, the grid as text.

    {"name", "method": "grid", "swept": [field, ...], "fixed": {field: value},
     "runs": [{"name", "path", "settings", "status", "error", "steps", "best_eval_nll",
               "best_eval_step", "final_train_nll", "verdict", "findings",
               "evals": [[step, eval_nll], ...]}],
     "effects": [{"factor", "range", "values": [{"value", "n", "failed", "mean", "std",
                  "min", "max", "curve": {"steps", "mean", "min", "max"},
                  "early": {"step", "mean"}}]}]}

A factor's effect is read from the finished runs with each of its values: their best eval NLL
(mean, standard deviation over the other factors' values, min, max) and their eval NLL over
training (the curve, at the steps all of them evaluated; "early" is its point nearest a quarter
of the way), so "512 helped early but not at the end" reads as a lower early mean and the same
best.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .. import runs
from ..config import flag
from ..triage import read_triage
from .spec import Point

SUMMARY = "summary.json"


def summarize(points: list[Point], out: Path, statuses: dict, name: str = "") -> dict:
    """summary.json: the grid's settings, each run's outcome (statuses: each point's
    sweep.Status), the main effects."""
    rows = [run_summary(p, out, statuses[p.name]) for p in points]
    swept = list(points[0].settings) if points else []
    fixed = {k: v for k, v in points[0].config.items() if k not in swept} if points else {}
    return {"name": name, "method": "grid", "swept": swept, "fixed": fixed, "runs": rows,
            "effects": main_effects(rows, swept)}


def run_summary(point: Point, out: Path, status) -> dict:
    """One run's line in summary.json."""
    path = out / point.name
    row = {"name": point.name, "path": point.name, "settings": point.settings,
           "status": status.state, "error": status.detail or None, "steps": status.step,
           "best_eval_nll": None, "best_eval_step": None, "final_train_nll": None,
           "verdict": None, "findings": [], "evals": []}
    if not (path / runs.CONFIG).exists():
        return row
    records = runs.read_metrics(path)
    evals = [[r["step"], r["eval_nll"]] for r in records if r.get("eval_nll") is not None]
    trains = [r["train_nll"] for r in records if r.get("train_nll") is not None]
    best = min(evals, key=lambda e: e[1], default=[None, None])
    d = read_triage(path)
    row.update(best_eval_nll=best[1], best_eval_step=best[0],
               final_train_nll=trains[-1] if trains else None,
               steps=max(status.step, records[-1]["step"] if records else 0),
               verdict=d["verdict"], findings=d["findings"], evals=evals)
    return row


def main_effects(rows: list[dict], swept: list[str]) -> list[dict]:
    """For each factor swept over several values, its effect (see the module docstring); the
    factor whose means of the best eval NLL lie furthest apart first."""
    effects = []
    for factor in swept:
        values = list(dict.fromkeys(r["settings"][factor] for r in rows))
        if len(values) < 2:
            continue
        per = [value_effect(v, [r for r in rows if r["settings"][factor] == v]) for v in values]
        means = [e["mean"] for e in per if e["mean"] is not None]
        effects.append({"factor": factor, "values": per,
                        "range": max(means) - min(means) if len(means) > 1 else None})
    return sorted(effects, key=lambda e: -(e["range"] or 0))


def value_effect(value, rows: list[dict]) -> dict:
    """The effect of one value from its runs' rows: best eval NLL and the eval curve."""
    done = [r for r in rows if r["status"] == "finished" and r["best_eval_nll"] is not None]
    best = [r["best_eval_nll"] for r in done]
    evals = [dict(r["evals"]) for r in done]
    steps = sorted(set.intersection(*(set(ev) for ev in evals))) if evals else []
    ys = [[ev[s] for ev in evals] for s in steps]  # (steps, runs)
    curve = {"steps": steps, "mean": [statistics.fmean(y) for y in ys],
             "min": [min(y) for y in ys], "max": [max(y) for y in ys]}
    early = min(range(len(steps)), key=lambda i: abs(steps[i] - steps[-1] / 4), default=None)
    return {"value": value, "n": len(best), "failed": sum(r["status"] == "failed" for r in rows),
            "mean": statistics.fmean(best) if best else None,
            "std": statistics.pstdev(best) if best else None,
            "min": min(best, default=None), "max": max(best, default=None), "curve": curve,
            "early": None if early is None else {"step": steps[early],
                                                 "mean": curve["mean"][early]}}


def effect_curves(summary: dict) -> list[tuple[str, list]]:
    """The main effects as plots.main_effects draws them: [(flag, [(value, steps, mean, min,
    max)])]."""
    return [(f"--{flag(e['factor'])}",
             [(v["value"], v["curve"]["steps"], v["curve"]["mean"], v["curve"]["min"],
               v["curve"]["max"]) for v in e["values"]]) for e in summary["effects"]]


def write_summary(out: Path, summary: dict) -> None:
    runs.write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")


def ranked(summary: dict) -> list[dict]:
    """The runs, best eval NLL first; runs without one last, in grid order."""
    return sorted(summary["runs"], key=lambda r: (r["best_eval_nll"] is None,
                                                  r["best_eval_nll"] or 0))


def fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def format_summary(summary: dict) -> str:
    """The grid as text: runs sorted by best eval, then each factor's main effect."""
    head = ["#", "run", "status", "steps", "best eval", "final train", "verdict"]
    rows = [[str(i + 1), r["name"], r["status"], str(r["steps"]), fmt(r["best_eval_nll"]),
             fmt(r["final_train_nll"]), r["verdict"] or "-"]
            for i, r in enumerate(ranked(summary))]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
             for row in [head, *rows]]
    if summary["effects"]:
        lines += ["", "main effects (per value: best eval NLL of the finished runs, mean ± "
                  "standard deviation; their mean eval NLL early on):"]
    for e in summary["effects"]:
        lines.append(f"  --{flag(e['factor'])} (range of the means {fmt(e['range'])})")
        lines += [f"    {value_line(v)}" for v in e["values"]]
    return "\n".join(lines)


def value_line(v: dict) -> str:
    """256: best 1.7856 ± 0.0055 (n=2), at step 750 2.0123"""
    failed = f", {v['failed']} failed" if v["failed"] else ""
    early = f", at step {v['early']['step']} {fmt(v['early']['mean'])}" if v["early"] else ""
    return f"{value_text(v['value'])}: best {fmt(v['mean'])} ± {fmt(v['std'])} " \
        f"(n={v['n']}{failed}){early}"


def value_text(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
