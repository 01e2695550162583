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

Finding across runs, thresholds in rules.THRESHOLDS (calibrated in docs/triage.md):
- capacity_not_limiting: the larger model learns faster early (its train NLL lower by
  `early_lead`, on average over a trend window of matched steps in the first half), but both
  reach the same best eval NLL and neither improves on it at the end: the capacity is not what
  holds the smaller model back. The readings in which the two runs differ at the end (DIFFERS:
  the larger one more saturated, its gradients or updates of another scale) are named as the
  suspects for why the extra capacity stops paying; a wide eval - train gap in both names
  generalisation.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from .advice import format_finding
from .config import flag
from .errors import RnnscopeError
from .records import read_run, run_name
from .rules import THRESHOLDS, finite
from .triage import diagnose

COLUMNS = ("train_nll", "eval_nll", "sat_ratio", "mean_gain", "grad_norm", "update_ratio")
SETTINGS = ("cell", "hidden", "layers", "optimizer", "lr")  # shown for each run
TIME_COLUMNS = ("train_nll", "eval_nll", "best_eval_nll", "sat_ratio", "grad_norm",
                "update_ratio")
ROWS = 12  # matched steps shown: evenly spaced, always the first and the last


class Run:
    """One run's config, records and triage, as compare reads them (a run directory or a log
    from anywhere, whose settings may be unknown: None)."""

    def __init__(self, path: Path) -> None:
        doc, records = read_run(path)
        self.path, self.cfg = Path(path), doc["config"]
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


def matched_steps(rs: list[Run]) -> list[int]:
    """Steps every run recorded (with a train NLL)."""
    common = set.intersection(*({s for s, r in run.by_step.items() if finite(r.get("train_nll"))}
                                for run in rs))
    return sorted(common)


def shown(steps: list[int]) -> list[int]:
    if len(steps) <= ROWS:
        return steps
    return sorted({steps[round(i * (len(steps) - 1) / (ROWS - 1))] for i in range(ROWS)})


def compare_runs(paths: list[Path], by: str = "step") -> dict:
    rs = [Run(p) for p in paths]
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


# ---- findings across runs


# reading: how the two runs' values at the end are compared; the difference that counts is
# THRESHOLDS["differ_" + reading]
DIFFERS = {"sat_ratio": "minus", "mean_gain": "minus", "grad_norm": "ratio",
           "update_ratio": "ratio"}


def capacity_not_limiting(rs: list[Run], steps: list[int]) -> dict | None:
    """The smallest and the largest model of the runs: see the module docstring."""
    if any(r.size is None for r in rs):
        return None  # a log that does not give its model's size
    small, large = min(rs, key=lambda r: r.size), max(rs, key=lambda r: r.size)
    if small.size == large.size or len(steps) < 3 or not (small.evals and large.evals):
        return None
    lead, early = largest_lead(small, large, steps)
    (s_step, s_best), (l_step, l_best) = small.best_eval(), large.best_eval()
    if not (lead > THRESHOLDS["early_lead"] and abs(s_best - l_best) < THRESHOLDS["same_plateau"]
            and settled(small) and settled(large)):
        return None
    end = steps[-1]
    differs = differences(small, large, end)
    seen = (f"over steps {early[0]}-{early[-1]} --hidden {large.cfg['hidden']} x "
            f"{large.cfg['layers']} was {lead:.2f} nats/char below --hidden "
            f"{small.cfg['hidden']} x {small.cfg['layers']} (train NLL), yet both reach the "
            f"same best eval NLL ({l_best:.3f} at step {l_step} vs {s_best:.3f} at step "
            f"{s_step}) and neither improves on it at the end")
    if differs:
        seen += f"; at step {end} they differ in " + ", ".join(
            f"{key} ({lv:.3g} vs {sv:.3g})" for key, (lv, sv) in differs.items())
    gaps = [last_gap(r) for r in (large, small)]
    wide = min(gaps) > THRESHOLDS["gap_large"]
    suspects = list(dict.fromkeys(SUSPECTS[key].format(larger=large.cfg["hidden"])
                                  for key in differs))
    if wide:
        suspects.append(f"generalisation: at the last eval, eval NLL is {gaps[0]:.2f} nats above "
                        f"train with --hidden {large.cfg['hidden']}, {gaps[1]:.2f} with "
                        f"--hidden {small.cfg['hidden']}")
    suspects.append("generalisation or the data, not the model size, limits the eval NLL; a "
                    "larger model only buys speed here")
    cfg = small.cfg
    reads = {"train_nll_early": [sig2(mean_at(r, early, "train_nll")) for r in (large, small)],
             "best_eval_nll": [sig2(l_best), sig2(s_best)]}
    reads.update({key: [sig2(v) for v in pair] for key, pair in differs.items()})
    return {"id": "capacity_not_limiting", "severity": "info",
            "evidence": {"seen": seen, "steps": [early[0], end], "readings": reads,
                         "caveat": "runs that have not yet settled can still part: compare "
                                   "again after longer training"},
            "suspects": suspects,
            "next": [f"--hidden {cfg['hidden']}",
                     f"--dropout {min(cfg.get('dropout', 0) + 0.2, 0.5):g}",
                     f"--weight-decay {max(cfg.get('weight_decay', 0) * 10, 0.1):g}",
                     "--corpus LARGER_TEXT"]}


SAT = ("the --hidden {larger} run sits nearer the tanh rails: saturation is the suspect for why "
       "its extra units stop paying")
SUSPECTS = {
    "sat_ratio": SAT,
    "mean_gain": SAT,
    "grad_norm": "the gradients of the two runs are of different scales",
    "update_ratio": "the two runs take steps of different relative sizes",
}


def differences(small: Run, large: Run, step: int) -> dict:
    """reading: (larger's value, smaller's value) at step, for the DIFFERS readings both runs
    recorded there and that differ by more than their threshold."""
    out = {}
    for key, how in DIFFERS.items():
        lv, sv = large.value(step, key), small.value(step, key)
        if finite(lv) and finite(sv) and (abs(lv - sv) if how == "minus" else ratio(lv, sv)) \
                > THRESHOLDS[f"differ_{key}"]:
            out[key] = (lv, sv)
    return out


def last_gap(run: Run) -> float:
    """Eval NLL minus the train NLL of the record at the run's last eval."""
    step, value = run.evals[-1]
    return value - run.by_step[step].get("train_nll", value)


def largest_lead(small: Run, large: Run, steps: list[int]) -> tuple[float, list[int]]:
    """The largest mean of (small - large) train NLL over `trend_window` consecutive matched
    steps in the first half of them (all of the first half when shorter), and those steps. Both
    runs read the same text at the same step, so the difference is a paired one."""
    half = steps[:max(len(steps) // 2, 1)]
    w = min(THRESHOLDS["trend_window"], len(half))
    windows = [half[i:i + w] for i in range(len(half) - w + 1)]
    return max((mean_at(small, ss, "train_nll") - mean_at(large, ss, "train_nll"), ss)
               for ss in windows)


def mean_at(run: Run, steps: list[int], key: str) -> float:
    return statistics.fmean(run.value(s, key) for s in steps)


def settled(run: Run) -> bool:
    """The run's best eval came before its last `persist_evals` evals, or they are all within
    `same_plateau` of it: it has stopped improving."""
    k = THRESHOLDS["persist_evals"]
    best = run.best_eval()[1]
    return len(run.evals) > k and all(v - best < THRESHOLDS["same_plateau"]
                                      for _, v in run.evals[-k:])


def ratio(a: float, b: float) -> float:
    return max(a, b) / min(a, b) if min(a, b) > 0 else math.inf


def sig2(v):
    return float(f"{v:.4g}")


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
