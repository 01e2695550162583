"""Findings across runs (SPEC section 4, `rnnscope compare`), thresholds in history.THRESHOLDS
(calibrated in docs/triage.md).

A run here is anything with the reads compare.Compared gives: `cfg`, `source` (records.SOURCES:
the words of its next steps), `size` (hidden x layers, None
when a log does not say), `evals` [(step, eval_nll)], `by_step` {step: record}, `best_eval()`
and `value(step, key)`.

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

from .history import THRESHOLDS, finite
from .steps import next_step

# reading: how the two runs' values at the end are compared; the difference that counts is
# THRESHOLDS["differ_" + reading]
DIFFERS = {"sat_ratio": "minus", "mean_gain": "minus", "grad_norm": "ratio",
           "update_ratio": "ratio"}


def capacity_not_limiting(rs: list, steps: list[int]) -> dict | None:
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
            "next": [next_step(change, cfg, small.source) for change in (
                {"hidden": cfg["hidden"]}, {"dropout": min(cfg.get("dropout", 0) + 0.2, 0.5)},
                {"weight_decay": max(cfg.get("weight_decay", 0) * 10, 0.1)},
                {"corpus": "LARGER_TEXT"})]}


SAT = ("the --hidden {larger} run sits nearer the tanh rails: saturation is the suspect for why "
       "its extra units stop paying")
SUSPECTS = {
    "sat_ratio": SAT,
    "mean_gain": SAT,
    "grad_norm": "the gradients of the two runs are of different scales",
    "update_ratio": "the two runs take steps of different relative sizes",
}


def differences(small, large, step: int) -> dict:
    """reading: (larger's value, smaller's value) at step, for the DIFFERS readings both runs
    recorded there and that differ by more than their threshold."""
    out = {}
    for key, how in DIFFERS.items():
        lv, sv = large.value(step, key), small.value(step, key)
        if finite(lv) and finite(sv) and (abs(lv - sv) if how == "minus" else ratio(lv, sv)) \
                > THRESHOLDS[f"differ_{key}"]:
            out[key] = (lv, sv)
    return out


def last_gap(run) -> float:
    """Eval NLL minus the train NLL of the record at the run's last eval."""
    step, value = run.evals[-1]
    return value - run.by_step[step].get("train_nll", value)


def largest_lead(small, large, steps: list[int]) -> tuple[float, list[int]]:
    """The largest mean of (small - large) train NLL over `trend_window` consecutive matched
    steps in the first half of them (all of the first half when shorter), and those steps. Both
    runs read the same text at the same step, so the difference is a paired one."""
    half = steps[:max(len(steps) // 2, 1)]
    w = min(THRESHOLDS["trend_window"], len(half))
    windows = [half[i:i + w] for i in range(len(half) - w + 1)]
    return max((mean_at(small, ss, "train_nll") - mean_at(large, ss, "train_nll"), ss)
               for ss in windows)


def mean_at(run, steps: list[int], key: str) -> float:
    return statistics.fmean(run.value(s, key) for s in steps)


def settled(run) -> bool:
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
