"""What `rnnscope try RUN` runs (SPEC 13): one fork per distinct next step of RUN's triage
(recomputed from its records), the capacity tests for a healthy or plateaued run (twice the
hidden size, one more layer, the other cells), the user's own (--also), limited by --only; and
the controls, which change nothing.

A fork that changes only training settings (TRAINING; another optimizer only where the
checkpoint's optimizer state is the new one's, or the new one keeps none) starts from a copy of
RUN's checkpoint; one that changes the architecture or the initialisation starts from scratch
with RUN's seed. Each start has its control and a second control that measures the noise of the
comparison: from the checkpoint, the same continuation entered at another place in the data
(half an epoch on); from scratch, another seed. A run of another program has no checkpoint:
every fork and control runs the user's --cmd (command.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import cells, runs
from ..config import TrainConfig, flag, shown
from ..errors import RnnscopeError
from ..optim import OPTIMIZERS
from ..records import read_run
from ..sweep.point import checkpoint_meta
from ..sweep.spec import Point, coerce, field_of, point_name
from ..triage import diagnose
from . import command

TRAINING = ("lr", "lr_schedule", "clip", "clip_value", "dropout", "weight_decay", "optimizer",
            "reset_every")
NOT_FORKED = {"corpus": "changes the data the run is judged on",
              "data_dir": "changes the data the run is judged on",
              "eval_frac": "changes the data the run is judged on",
              "steps": "is the budget of `try` (--steps/--minutes)",
              "minutes": "is the budget of `try` (--steps/--minutes)"}
CAPACITY_VERDICTS = ("healthy", "plateau")
TRY = "try"


@dataclass(frozen=True)
class Fork:
    """One run of the trial: a fork, a control or the noise control, as a sweep point."""
    name: str
    change: dict          # the settings it changes ({} for a control)
    text: str             # the change as flags ("--lr 0.0005"), or "control"
    finding: str | None   # the finding whose next step it is (the verdict for capacity tests)
    rank: int | None      # its place among that finding's next steps (0: the first)
    start: str            # checkpoint | scratch | program
    role: str             # fork | control | noise
    point: Point


@dataclass
class Plan:
    run: Path
    out: Path             # RUN/try
    kind: str             # where RUN came from: rnnscope, pytorch, c or log
    triage: dict          # RUN's triage, recomputed
    budget: dict          # {"steps": N}, {"minutes": M}, or {} (a program's own length)
    start_step: dict      # start -> the step it starts at
    forks: list[Fork] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"text", "why"}

    @property
    def measure(self) -> str:
        """What the verdict matches runs at: wall_clock for a budget in minutes, else steps."""
        return "wall_clock" if "minutes" in self.budget else "steps"


# ---- next steps as settings


def next_steps(finding: dict) -> list[dict]:
    """A finding's next steps as {"settings", "text"}: every setting the step changes (a value
    relative to one a log did not record as ("x", factor)) and the triage's words for it."""
    return [{"settings": {k: ("x", s["factor"]) if v is None and "factor" in s else v
                          for k, v in s["settings"].items()}, "text": s["text"]}
            for s in finding["next"]]


def also_settings(arg: str) -> dict:
    """--also FLAG=V[,FLAG=V]: a fork of the user's own."""
    out = {}
    for part in arg.split(","):
        key, eq, value = part.partition("=")
        if not eq or not value:
            raise RnnscopeError(f"--also {arg}: write --also FLAG=VALUE (e.g. --also lr=0.001)")
        name = field_of(key, f"--also {arg}")
        out[name] = coerce(name, value, f"--also {arg}")
    return out


# ---- the plan


def make_plan(run: Path, budget: dict, also: list[str], only: list[str],
              template: str | None) -> Plan:
    """The trial of RUN: its forks and controls, each checked before anything runs."""
    run = Path(run).resolve()
    doc, records = read_run(run)
    kind = doc["source"]  # rnnscope, pytorch, c or log (records.SOURCES)
    check_budget(budget)
    if template is None and kind != "rnnscope":
        raise RnnscopeError(cannot_fork(run, kind, diagnose(records, doc)))
    out = run / TRY if run.is_dir() else run.with_name(f"{run.name}.{TRY}")  # beside a log
    plan = Plan(run, out, kind, diagnose(records, doc), budget or own_length(doc), {})
    base = dict(doc["config"])
    names = command.placeholders(template, base) if template else None
    if names is not None:
        check_budget_placeholders(names, plan.budget, base)
    changes = limited(tried(plan, wanted_changes(plan, base, [also_settings(a) for a in also]),
                            base, names), only)
    if not changes:
        why = "; ".join(f"{s['text']} {s['why']}" for s in plan.skipped) or "no next step"
        raise RnnscopeError(f"nothing to try for {run} ({why}); add a fork of your own with "
                            "--also FLAG=VALUE")
    add_runs(plan, base, changes, template)
    if not (run / runs.CHECKPOINT).exists() and kind == "rnnscope":
        plan.skipped.append({"text": "a start from the checkpoint", "why": "RUN has no "
                             "checkpoint (it stopped before its first eval): every fork starts "
                             "from scratch"})
    return plan


def add_runs(plan: Plan, base: dict, changes: list[dict], template: str | None) -> None:
    """The controls of each start the changes need, then a fork per change."""
    starts = {c["start"] for c in changes}
    if "checkpoint" in starts:
        plan.start_step["checkpoint"] = checkpoint_meta(plan.run / runs.CHECKPOINT).get("step",
                                                                                        0)
    plan.start_step.update({s: 0 for s in starts - {"checkpoint"}})
    for start in sorted(starts):
        plan.forks += controls(plan, base, start, template)
    plan.forks += [fork(plan, base, c, template) for c in changes]


def check_budget(budget: dict) -> None:
    for unit, value in budget.items():
        if not value > 0 or not math.isfinite(value):
            raise RnnscopeError(f"--{unit} must be positive, got {value:g}: give each fork a "
                                f"budget, e.g. --{unit} {1 if unit == 'minutes' else 500}")


def check_budget_placeholders(names: set, budget: dict, base: dict) -> None:
    """A budget given to try must reach the program, and a {steps} or {minutes} in the
    template needs a budget (or RUN's own recorded value)."""
    if budget and not names & set(budget):
        unit = next(iter(budget))
        raise RnnscopeError(f"--{unit} needs a {{{unit}}} placeholder in --cmd to give your "
                            "program its budget; add it, or leave the budget to your program")
    for unit in sorted(names & {"steps", "minutes"} - set(budget) - set(base)):
        raise RnnscopeError(f"--cmd has {{{unit}}}, but the run did not record it; give "
                            f"--{unit} N")


def own_length(doc: dict) -> dict:
    """The default budget: RUN's own length (a program's run: its own, {})."""
    if "vocab" not in doc:
        return {}
    cfg = TrainConfig.from_dict(doc["config"]).with_length()
    return {"minutes": cfg.minutes} if cfg.minutes is not None else {"steps": cfg.steps}


def cannot_fork(run: Path, kind: str, triage: dict) -> str:
    """One line: what try would run for a run of another program, and why it cannot."""
    steps = [s["text"] for f in triage["findings"] for s in next_steps(f)]
    what = ", ".join(steps[:3]) + (", ..." if len(steps) > 3 else "") if steps else \
        "the capacity tests (--hidden x2, --layers +1, the other cells)"
    return (f"{run} is a {kind} run: there is no checkpoint to fork, so try would run your "
            f"program once per fork ({what}) and for a control, but it does not know how; give "
            "--cmd \"python train.py --lr {lr} --hidden {hidden} --run-dir {run_dir}\"")


def wanted_changes(plan: Plan, base: dict, also: list[dict]) -> list[dict]:
    """The changes the trial is asked for, in order: each finding's next steps, the capacity
    tests, the user's own; as {"settings", "text", "finding", "rank"}."""
    out = [{"settings": s["settings"], "text": s["text"], "finding": f["id"], "rank": i}
           for f in plan.triage["findings"] for i, s in enumerate(next_steps(f))]
    if plan.triage["verdict"] in CAPACITY_VERDICTS:
        out += [{"settings": c, "text": flags_text(c), "finding": plan.triage["verdict"],
                 "rank": None} for c in capacity_tests(base)]
    out += [{"settings": c, "text": flags_text(c), "finding": None, "rank": None} for c in also]
    return out


def capacity_tests(base: dict) -> list[dict]:
    """Twice the hidden size, one more layer, the other cells (those the run recorded)."""
    tests = []
    if isinstance(base.get("hidden"), int):
        tests.append({"hidden": 2 * base["hidden"]})
    if isinstance(base.get("layers"), int):
        tests.append({"layers": base["layers"] + 1})
    if base.get("cell") in cells.CELLS:
        tests += [{"cell": c} for c in cells.CELLS if c != base["cell"]]
    return tests


def flags_text(settings: dict) -> str:
    return " ".join(shown(k, v) for k, v in settings.items())


def tried(plan: Plan, changes: list[dict], base: dict, placeholders: set | None) -> list[dict]:
    """The changes that can be tried, each once, with their absolute "settings" (without the
    no-op ones) and "start"; the others go to plan.skipped, with why."""
    out = []
    for c in changes:
        why = problem(c, base, placeholders)
        if why is None:
            settings = absolute(c["settings"], base)
            c = {**c, "settings": settings, "start": "program" if placeholders is not None
                 else start_of(settings, base, plan.run)}
            if any(d["settings"] == settings for d in out):
                continue
            why = None if placeholders is not None else invalid(settings, base)
        if why is None:
            out.append(c)
        elif c["text"] not in [s["text"] for s in plan.skipped]:
            plan.skipped.append({"text": c["text"], "finding": c["finding"], "rank": c["rank"],
                                 "why": why})
    return out


def problem(c: dict, base: dict, placeholders: set | None) -> str | None:
    """Why the change c cannot be tried, or None."""
    for name, value in c["settings"].items():
        if name in NOT_FORKED:
            return NOT_FORKED[name]
        if isinstance(value, tuple) and not isinstance(base.get(name), (int, float)):
            return f"is relative to --{flag(name)}, which the run did not record"
        if placeholders is not None and name not in placeholders:
            return f"changes {{{name}}}, which --cmd does not pass to your program"
    if all(base.get(k) == v for k, v in c["settings"].items()):
        return "changes nothing: the run already has it"
    return None


def absolute(settings: dict, base: dict) -> dict:
    """The settings a change makes, a relative one applied to the run's own, the no-op ones
    left out; a change of cell sets the gate initialisations the new cell lacks to default."""
    out = {k: base[k] * v[1] if isinstance(v, tuple) else v for k, v in settings.items()
           if base.get(k) != v}
    if "cell" in out:
        defaults = TrainConfig()
        for name in ("forget_bias", "chrono_init"):
            if name not in cells.CELLS[out["cell"]].INIT_FLAGS and name in base \
                    and base[name] != getattr(defaults, name):
                out[name] = getattr(defaults, name)
    return out


def start_of(settings: dict, base: dict, run: Path) -> str:
    """checkpoint: only training settings change (another optimizer only where the
    checkpoint's state is its state, or it keeps none); scratch: anything else, or no
    checkpoint to start from."""
    if not (run / runs.CHECKPOINT).exists() or set(settings) - set(TRAINING):
        return "scratch"
    new = settings.get("optimizer", base["optimizer"])
    carries = new == base["optimizer"] or not OPTIMIZERS[new].slots
    return "checkpoint" if carries else "scratch"


def invalid(settings: dict, base: dict) -> str | None:
    """What `train` would refuse in the fork's settings, or None."""
    try:
        TrainConfig.from_dict({**base, **settings}).validate()
    except RnnscopeError as e:
        return f"cannot be trained: {e}"
    return None


def limited(changes: list[dict], only: list[str]) -> list[dict]:
    """--only NAME,...: the forks named (by their directory name, or a setting they change)."""
    if not only:
        return changes
    wanted = {w.strip() for arg in only for w in arg.split(",") if w.strip()}
    names = {point_name(c["settings"]): c for c in changes}
    unknown = [w for w in wanted if w not in names and not any(
        w.replace("-", "_") in c["settings"] for c in changes)]
    if unknown:
        raise RnnscopeError(f"--only {unknown[0]} names no fork of this trial; use one of: "
                            f"{', '.join(names)} (or a setting they change)")
    return [c for n, c in names.items()
            if n in wanted or any(w.replace("-", "_") in c["settings"] for w in wanted)]


# ---- the runs: forks and controls as sweep points


def fork(plan: Plan, base: dict, c: dict, template: str | None) -> Fork:
    name = point_name(c["settings"])
    point = make_point(plan, base, name, c["settings"], c["start"], template)
    return Fork(name, c["settings"], c["text"], c["finding"], c["rank"], c["start"], "fork",
                point)


def controls(plan: Plan, base: dict, start: str, template: str | None) -> list[Fork]:
    """The control of a start, and the second control that measures the comparison's noise."""
    name = "control" if start != "scratch" else "control-scratch"
    control = make_point(plan, base, name, {}, start, template)
    noise = make_point(plan, base, f"{name}-2", {}, start, template, noise=True)
    return [Fork(name, {}, "control", None, None, start, "control", control),
            Fork(f"{name}-2", {}, "control", None, None, start, "noise", noise)]


def make_point(plan: Plan, base: dict, name: str, change: dict, start: str,
               template: str | None, noise: bool = False) -> Point:
    """The sweep point of one run of the trial."""
    if start == "program":
        settings = {**base, **change, **plan.budget, "run_dir": str(plan.out / name)}
        if noise and isinstance(base.get("seed"), int):
            settings["seed"] = base["seed"] + 1
        length = TrainConfig(**{k: v for k, v in plan.budget.items()})
        return Point(name, {"fork": name}, length.to_dict(),
                     cmd=command.command(template, settings))
    cfg = TrainConfig.from_dict({**base, **change, "steps": None, "minutes": None})
    if start == "scratch":
        cfg = replace(cfg, seed=cfg.seed + (1 if noise else 0), **plan.budget)
        return Point(name, {"fork": name}, cfg.validate().to_dict())
    step = plan.start_step["checkpoint"]
    length = {"steps": step + plan.budget["steps"]} if "steps" in plan.budget else plan.budget
    cfg = replace(cfg, **length).validate()
    meta = {"elapsed_s": 0.0, "best_eval": None,
            "horizon": length.get("steps") or length["minutes"] * 60}
    if "lr_schedule" in change:
        meta["sched"] = {"factor": 1.0}
    if noise:
        meta["chunk"] = other_place(plan.run, cfg)
    return Point(name, {"fork": name}, cfg.to_dict(), start={"run": str(plan.run),
                                                             "meta": meta})


def other_place(run: Path, cfg: TrainConfig) -> int:
    """The chunk half an epoch on from where RUN's checkpoint stopped."""
    chars = runs.read_config(run)["corpus"]["train_chars"]
    n = max(1, (chars // cfg.batch - 1) // cfg.seq_len)
    return (checkpoint_meta(run / runs.CHECKPOINT).get("chunk", 0) + n // 2) % n
