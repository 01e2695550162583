"""Runs side by side at matched steps, with findings across runs (SPEC section 4).

compare_runs() returns a JSON-able dict:

    {"runs": [{"name", "path", "cell", "hidden", "layers", "optimizer", "lr", "last_step",
               "best_eval_nll", "best_eval_step", "verdict"}],   (a setting a log does not
                                                                  give: None)
     "by": "step" or "minute",
     "columns": the readings shown for each run,
     "table": [{"step": s (or "minute": m), "runs": [{reading: value at s, or None}, ...]}],
     "findings": [findings in the triage's shape]}

A run's value at a matched step is that of its record at the step (eval_nll: its latest eval at
or before the step). Matched steps are those every run recorded, up to the shortest run's end.
By minute (runs of different cells or batch sizes at the same time budget, `--by minute`): each
run's latest record at or before each whole minute of its `elapsed_s`, with best_eval_nll the
best eval so far, up to the shortest run's end; the findings across runs are paired by step and
are not made.

The findings across runs are rnnscope/triage/across.py's.
"""

from __future__ import annotations

import math
from pathlib import Path

from .config import flag
from .errors import RnnscopeError
from .health import READINGS
from .records import finite, read_run, run_name
from .triage import diagnose, format_finding
from .triage.across import capacity_not_limiting

COLUMNS = tuple(k for k, r in READINGS.items() if r.compared)
SETTINGS = ("cell", "hidden", "layers", "optimizer", "lr")  # shown for each run
TIME_COLUMNS = ("train_nll", "eval_nll", "best_eval_nll", "sat_ratio", "grad_norm",
                "update_ratio")
ROWS = 12  # matched steps shown: evenly spaced, always the first and the last


class Compared:
    """One run's config, records and triage, as compare reads them (a run directory or a log
    from anywhere, whose settings may be unknown: None)."""

    def __init__(self, path: Path) -> None:
        doc, records = read_run(path)
        self.path, self.cfg, self.source = Path(path), doc["config"], doc["source"]
        self.verdict = diagnose(records, doc)["verdict"]
        self.records = [r for r in records if "diverged" not in r]
        self.by_step = {r["step"]: r for r in self.records}
        self.evals = [(r["step"], r["eval_nll"]) for r in self.records
                      if finite(r.get("eval_nll"))]

    @property
    def size(self) -> int | None:
        hidden = self.cfg.get("hidden")
        return None if hidden is None else hidden * self.cfg["layers"]

    def best_eval(self) -> tuple[int, float] | None:
        return min(self.evals, key=lambda e: e[1]) if self.evals else None

    def value(self, step: int, key: str):
        if key == "eval_nll":
            before = [v for s, v in self.evals if s <= step]
            return before[-1] if before else None
        return self.by_step[step].get(key)

    def at_time(self, seconds: float) -> dict:
        """TIME_COLUMNS of the run's latest record at or before `seconds` of elapsed_s, with
        eval_nll its latest eval and best_eval_nll its best eval so far (None: not yet)."""
        before = [r for r in self.records if r.get("elapsed_s", math.inf) <= seconds]
        evals = [r["eval_nll"] for r in before if finite(r.get("eval_nll"))]
        values = {k: before[-1].get(k) if before else None for k in TIME_COLUMNS}
        values.update(eval_nll=evals[-1] if evals else None,
                      best_eval_nll=min(evals) if evals else None)
        return values

    def minutes(self) -> int:
        """Whole minutes of elapsed_s the run recorded (an error for a log without it)."""
        times = [r["elapsed_s"] for r in self.records if finite(r.get("elapsed_s"))]
        if not times:
            raise RnnscopeError(f"{self.path} records no elapsed_s; compare it --by step, or "
                                "log elapsed_s (seconds since the start) with each record")
        return int(max(times) // 60)

    def summary(self) -> dict:
        best = self.best_eval()
        return {"name": run_name(self.path), "path": str(self.path),
                **{k: self.cfg.get(k) for k in SETTINGS},
                "last_step": self.records[-1]["step"] if self.records
                else 0, "best_eval_nll": best[1] if best else None,
                "best_eval_step": best[0] if best else None, "verdict": self.verdict}


def matched_steps(rs: list[Compared]) -> list[int]:
    """Steps every run recorded (with a train NLL)."""
    common = set.intersection(*({s for s, r in run.by_step.items() if finite(r.get("train_nll"))}
                                for run in rs))
    return sorted(common)


def shown(steps: list[int]) -> list[int]:
    if len(steps) <= ROWS:
        return steps
    return sorted({steps[round(i * (len(steps) - 1) / (ROWS - 1))] for i in range(ROWS)})


def compare_runs(paths: list[Path], by: str = "step") -> dict:
    rs = [Compared(p) for p in paths]
    if by == "minute":
        table = [{"minute": m, "runs": [run.at_time(60 * m) for run in rs]}
                 for m in range(1, min(run.minutes() for run in rs) + 1)]
        return {"runs": [run.summary() for run in rs], "by": by, "columns": list(TIME_COLUMNS),
                "table": table, "findings": []}
    steps = matched_steps(rs)
    table = [{"step": s, "runs": [{k: run.value(s, k) for k in COLUMNS} for run in rs]}
             for s in shown(steps)]
    findings = [f for f in (capacity_not_limiting(rs, steps),) if f is not None]
    return {"runs": [run.summary() for run in rs], "by": by, "columns": list(COLUMNS),
            "table": table, "findings": findings}


# ---- words


def format_comparison(result: dict) -> str:
    """The runs, the matched-step table (each reading for every run side by side), the
    findings."""
    names = [f"[{i + 1}] {r['name']}" for i, r in enumerate(result["runs"])]
    lines = [f"{name}: {settings(r)}{r['last_step']} steps, best eval NLL "
             f"{fmt(r['best_eval_nll'])} at step {r['best_eval_step']}; verdict {r['verdict']}"
             for name, r in zip(names, result["runs"], strict=True)]
    short = {"train_nll": "train", "eval_nll": "eval", "best_eval_nll": "best",
             "sat_ratio": "sat", "mean_gain": "gain", "grad_norm": "grad", "update_ratio": "upd"}
    n, by = range(len(result["runs"])), result.get("by", "step")
    head = [by] + [f"{short[c]}[{i + 1}]" for c in result["columns"] for i in n]
    rows = [[str(row[by])] + [fmt(row["runs"][i][c]) for c in result["columns"] for i in n]
            for row in result["table"]]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines += ["", *("  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True))
                    for r in [head, *rows])]
    if not result["table"]:
        lines.append(f"(no {by} recorded by every run)")
    if by == "minute":
        return "\n".join(lines + ["", "findings across runs: made at matched steps only "
                                       "(compare without --by minute)"])
    found = result["findings"]
    lines += ["", "findings across runs: none" if not found else "findings across runs:"]
    lines += [format_finding(f) for f in found]
    return "\n".join(lines)


def settings(r: dict) -> str:
    """The run's settings as flags, those its log gives ("--hidden 256 --lr 0.002; ")."""
    flags = [f"--{flag(k)} {fmt_setting(r[k])}" for k in SETTINGS if r.get(k) is not None]
    return " ".join(flags) + "; " if flags else ""


def fmt_setting(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.3g}" if abs(v) < 0.01 or abs(v) >= 100 else f"{v:.3f}"
