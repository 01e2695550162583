"""Each fork against its control (the control of the same start: same seed, budget and start):
the best eval NLL of each at matched steps and at matched wall-clock, against the noise band.

The noise of a comparison is measured, not assumed: the start's second control (from the
checkpoint: the same continuation entered half an epoch further on in the data; from scratch:
another seed; a program: {seed} + 1, or the same command again) differs from the control only
by chance, so |control - second control| at the same matched point is one draw of that chance.
The band is NOISE_K times it, and never below MIN_BAND. A fork counts as helped or hurt only
beyond the band; inside it, no_measurable_difference. The verdict is read at the budget's own
measure (matched wall-clock for --minutes, matched steps otherwise); the other is reported too.
A control that diverged (a NaN, or a loss its own triage calls diverged) is beaten by any fork
that finished without diverging, whatever the band: two diverging controls measure no noise.
"""

from __future__ import annotations

from pathlib import Path

from .. import runs
from ..sweep.point import status_of
from ..triage import read_triage
from .plan import Fork, Plan

NOISE_K = 2.0     # the band: this many times the distance between the two controls
MIN_BAND = 0.01   # nats/char: the smallest difference counted, however close the controls
MEASURES = {"steps": 0, "wall_clock": 1}  # the index of each in an eval (step, seconds, nll)


def evals(path: Path, start_step: int) -> list[tuple[int, float, float]]:
    """(steps since the start, seconds since the start, eval NLL) of each eval of the run after
    its start (a fork from the checkpoint has trained start_step steps before it, in RUN)."""
    if not (path / runs.METRICS).exists():
        return []
    return [(r["step"] - start_step, r.get("elapsed_s") or 0.0, r["eval_nll"])
            for r in runs.read_metrics(path) if r.get("eval_nll") is not None
            and r["step"] > start_step]


def best_until(evs: list, index: int, limit: float) -> float | None:
    within = [e[2] for e in evs if e[index] <= limit]
    return min(within) if within else None


def matched(fork: list, control: list, noise: list, measure: str) -> dict:
    """The fork's and the control's best eval NLL up to the point both reached (steps or
    seconds since their start), the noise band there, and the verdict of the difference."""
    i = MEASURES[measure]
    if not fork or not control:
        return {"at": None, "fork": None, "control": None, "noise": None, "band": None,
                "diff": None, "verdict": None}
    at = min(fork[-1][i], control[-1][i])
    f, c = best_until(fork, i, at), best_until(control, i, at)
    n = best_until(noise, i, at)
    noise_diff = abs(c - n) if c is not None and n is not None else None
    band = MIN_BAND if noise_diff is None else max(NOISE_K * noise_diff, MIN_BAND)
    diff = f - c if f is not None and c is not None else None
    verdict = None if diff is None else "helped" if diff < -band else "hurt" if diff > band \
        else "no_measurable_difference"
    return {"at": at, "fork": f, "control": c, "noise": noise_diff, "band": band, "diff": diff,
            "verdict": verdict}


def judge(plan: Plan) -> dict:
    """try.json (docs/try.md gives the schema)."""
    runs_ = {f.name: run_state(plan, f) for f in plan.forks}
    controls = {f.start: f for f in plan.forks if f.role == "control"}
    noises = {f.start: f for f in plan.forks if f.role == "noise"}
    forks = [fork_result(plan, f, runs_[f.name], runs_[controls[f.start].name],
                         runs_[noises[f.start].name]) for f in plan.forks if f.role == "fork"]
    return {"run": str(plan.run), "kind": plan.kind, "verdict": plan.triage["verdict"],
            "budget": plan.budget, "measure": plan.measure,
            "noise": {"how": noise_words(plan), "k": NOISE_K, "min_band": MIN_BAND},
            "controls": [{"name": f.name, "start": f.start, "role": f.role,
                          "start_step": plan.start_step[f.start], **runs_[f.name]["row"]}
                         for f in plan.forks if f.role != "fork"],
            "forks": forks, "findings": advice(plan, forks), "skipped": plan.skipped}


def noise_words(plan: Plan) -> dict:
    how = {"checkpoint": "a second control from the checkpoint, entered half an epoch further "
                         "on in the training data",
           "scratch": "a second control from scratch with seed + 1",
           "program": "a second run of your program with {seed} + 1 (or the same command "
                      "again when it has no {seed})"}
    return {start: how[start] for start in plan.start_step}


def run_state(plan: Plan, f: Fork) -> dict:
    """A run's status, its evals since its start, why it failed, its triage; diverged: it
    stopped on a NaN, or its own triage says diverged (a loss far above a uniform guess)."""
    path = plan.out / f.name
    status = status_of(f.point, plan.out)
    evs = evals(path, plan.start_step[f.start])
    triage = read_triage(path) if status.state in ("finished", "failed") and \
        (path / runs.METRICS).exists() else None
    diverged = (status.state == "failed" and status.detail.startswith("diverged")) or \
        (triage is not None and triage["verdict"] == "diverged")
    return {"evals": evs, "triage": triage, "diverged": diverged,
            "row": {"status": status.state, "error": status.detail or None,
                    "best_eval_nll": min((e[2] for e in evs), default=None),
                    "steps": evs[-1][0] if evs else 0,
                    "seconds": round(evs[-1][1], 1) if evs else 0.0}}


def fork_result(plan: Plan, f: Fork, fork: dict, control: dict, noise: dict) -> dict:
    """One fork's line in try.json."""
    by = {m: matched(fork["evals"], control["evals"], noise["evals"], m) for m in MEASURES}
    row = fork["row"]
    if control["diverged"] and not fork["diverged"] and row["status"] == "finished":
        for m in by.values():  # two diverging controls measure no noise: see the docstring
            m["verdict"] = "helped"
    verdict = "failed" if row["status"] != "finished" else \
        by[plan.measure]["verdict"] or "no_measurable_difference"
    return {"name": f.name, "path": f.name, "change": f.change, "text": f.text,
            "finding": f.finding, "rank": f.rank, "start": f.start,
            "start_step": plan.start_step[f.start], **row,
            "control_status": control["row"]["status"],
            "control_error": control["row"]["error"], "control_diverged": control["diverged"],
            "diverged": fork["diverged"], "steps_matched": by["steps"],
            "wall_clock_matched": by["wall_clock"], "finding_gone": gone(f, fork["triage"]),
            "finding_gone_in_control": gone(f, control["triage"]),
            "fork_verdict": fork["triage"]["verdict"] if fork["triage"] else None,
            "verdict": verdict}


def gone(f: Fork, triage: dict | None) -> bool | None:
    """Whether the finding that motivated the fork is absent from the fork's own triage
    (first, or folded under another); None when there is none to look for."""
    if triage is None or f.finding in (None, "healthy"):
        return None
    ids = {d["id"] for d in triage["findings"]} | {
        c["id"] for d in triage["findings"] for c in d["evidence"].get("consequences", [])}
    return f.finding not in ids


def advice(plan: Plan, forks: list[dict]) -> list[dict]:
    """For each of RUN's findings: its first next step, whether it was tried and what it did,
    and which of its next steps beat the control. A step that did not beat the control is
    reported as such, never as a success."""
    out = []
    for finding in plan.triage["findings"]:
        mine = [f for f in forks if f["finding"] == finding["id"] and f["rank"] is not None]
        first = next((f for f in mine if f["rank"] == 0), None)
        skipped = next((s for s in plan.skipped if s.get("finding") == finding["id"]
                        and s.get("rank") == 0), None)
        out.append({"id": finding["id"],
                    "first": first["text"] if first else skipped["text"] if skipped else None,
                    "first_verdict": first["verdict"] if first else "not_tried",
                    "first_beat_control": bool(first and first["verdict"] == "helped"),
                    "helped": [f["text"] for f in mine if f["verdict"] == "helped"],
                    "did_not_help": [f["text"] for f in mine if f["verdict"] != "helped"]})
    return out
