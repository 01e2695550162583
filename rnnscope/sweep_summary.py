"""A sweep's summary (DIR/summary.json), the main effect of each swept factor, the grid as text.

    {"name", "method": "grid", "swept": [field, ...], "fixed": {field: value},
     "runs": [{"name", "path", "settings", "status", "error", "steps", "best_eval_nll",
               "best_eval_step", "final_train_nll", "verdict", "findings"}],
     "effects": [{"factor", "range", "values": [{"value", "n", "failed", "mean", "std",
                                                 "min", "max"}]}]}
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import runs
from .config import flag
from .sweep_spec import Point

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
    from .report import diagnosis

    path = out / point.name
    row = {"name": point.name, "path": point.name, "settings": point.settings,
           "status": status.state, "error": status.detail or None, "steps": status.step,
           "best_eval_nll": None, "best_eval_step": None, "final_train_nll": None,
           "verdict": None, "findings": []}
    if not (path / runs.CONFIG).exists():
        return row
    records = runs.read_metrics(path)
    evals = [(r["eval_nll"], r["step"]) for r in records if r.get("eval_nll") is not None]
    trains = [r["train_nll"] for r in records if r.get("train_nll") is not None]
    d = diagnosis(path)
    row.update(best_eval_nll=min(evals)[0] if evals else None,
               best_eval_step=min(evals)[1] if evals else None,
               final_train_nll=trains[-1] if trains else None,
               steps=max(status.step, records[-1]["step"] if records else 0),
               verdict=d["verdict"], findings=d["findings"])
    return row


def main_effects(rows: list[dict], swept: list[str]) -> list[dict]:
    """For each factor swept over several values: the best eval NLL of the finished runs with
    each value (n, mean, standard deviation, min, max; how many failed), and the range of the
    means; the factor that moved the result most first."""
    effects = []
    for factor in swept:
        values = list(dict.fromkeys(r["settings"][factor] for r in rows))
        if len(values) < 2:
            continue
        per = []
        for v in values:
            mine = [r for r in rows if r["settings"][factor] == v]
            best = [r["best_eval_nll"] for r in mine if r["status"] == "finished"
                    and r["best_eval_nll"] is not None]
            per.append({"value": v, "n": len(best),
                        "failed": sum(r["status"] == "failed" for r in mine),
                        "mean": statistics.fmean(best) if best else None,
                        "std": statistics.pstdev(best) if best else None,
                        "min": min(best, default=None), "max": max(best, default=None)})
        means = [e["mean"] for e in per if e["mean"] is not None]
        effects.append({"factor": factor, "values": per,
                        "range": max(means) - min(means) if len(means) > 1 else None})
    return sorted(effects, key=lambda e: -(e["range"] or 0))


def effect_curves(summary: dict, records: dict[str, list[dict]]) -> list[tuple[str, list]]:
    """Each main effect over training: [(flag, [(value, steps, mean, min, max)])], the eval NLL
    of the finished runs with each value at the steps all of them evaluated."""
    curves = []
    for e in summary["effects"]:
        lines = []
        for v in e["values"]:
            evals = [{r["step"]: r["eval_nll"] for r in records.get(row["name"], [])
                      if r.get("eval_nll") is not None} for row in summary["runs"]
                     if row["settings"][e["factor"]] == v["value"]
                     and row["status"] == "finished"]
            steps = sorted(set.intersection(*(set(ev) for ev in evals))) if evals else []
            ys = [[ev[s] for ev in evals] for s in steps]  # (steps, runs)
            lines.append((v["value"], steps, [statistics.fmean(y) for y in ys],
                          [min(y) for y in ys], [max(y) for y in ys]))
        curves.append((f"--{flag(e['factor'])}", lines))
    return curves


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
        lines += ["", "main effects (mean best eval NLL of the finished runs per value, "
                  "± standard deviation):"]
    for e in summary["effects"]:
        parts = [f"{value_text(v['value'])} {fmt(v['mean'])} ± {fmt(v['std'])} (n={v['n']}"
                 + (f", {v['failed']} failed)" if v["failed"] else ")") for v in e["values"]]
        lines.append(f"  --{flag(e['factor'])}: " + ";  ".join(parts) +
                     f";  range {fmt(e['range'])}")
    return "\n".join(lines)


def value_text(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
