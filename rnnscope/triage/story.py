"""Triage: read a run's panel records and tell one story (SPEC section 4).

The rules (rules.py) detect; this module assembles their detections into the diagnosis of a
run, and words.py words it. The rules' detections (held at some point;
AT_END rules must hold at the last record) are
  1. set aside when the end of the run explains them away: a saturation that resolved while the
     loss fell; a plateau, a collapsing profile or small updates of a run that reached the
     corpus's known floor (config.json `corpus.floor_nll`);
  2. folded under their cause (FOLDS): a finding another one explains becomes a consequence
     listed in its cause's evidence, and the cause takes the worst severity of what it explains;
  3. given one consistent set of next steps: a change that moves a setting in the direction the
     run's own history shows harmful (the causes' history: what a cause explains shows no harm
     of its own), or against a change a more severe finding asks for, is dropped.
The verdict is the most severe finding left, ties broken by the order of RULES.

The live Watch sees one record at a time and reports each finding once, when it first holds and
no finding already reported explains it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from .. import records as run_records
from .. import runs
from ..config import TrainConfig
from . import words
from .history import SEVERITY, THRESHOLDS, History, at_floor, best_eval, finite, last_gap
from .rules import PRIORITY, RULES, gated, rule_needs

AT_FLOOR = ("vanishing_gradients", "update_too_small")  # nothing lost when the floor is reached

# ---- one story: set aside, folded under a cause, consistent next steps


def overlapping(h: History, cause: dict, other: dict) -> bool:
    """The cause held no later than the other finding's last record."""
    return cause["recs"][0]["step"] <= other["recs"][-1]["step"]


def nothing_to_learn(h: History, cause: dict, other: dict) -> bool:
    return cause["facts"]["unigram"] is not None


def not_nothing_to_learn(h: History, cause: dict, other: dict) -> bool:
    return other["facts"]["unigram"] is None


def blew_up(h: History, cause: dict, other: dict) -> bool:
    """The gradient exploded before the first record and blew the weights up (rules.blown_up)."""
    return bool(cause["facts"].get("early")) and overlapping(h, cause, other)


def grew(h: History, cause: dict, other: dict) -> bool:
    """The first steps were so large that they blew the recurrent weights up."""
    return bool(cause["facts"].get("grown")) and overlapping(h, cause, other)


def stuck_by_lr(h: History, cause: dict, other: dict) -> bool:
    """A gated cell's updates too small from the start: its profile is small while it learns
    nothing, not a recurrence that fails."""
    return gated(h) is not None and overlapping(h, cause, other)


# (cause, the ids it explains ("*": any), when it explains them, whether its severity becomes the
# worst of theirs). A divergence explains every other reading; a gradient that exploded before
# the first record blew the weights up, so every update of them looks too large or too small
# and the units or gates sit on the rails; large updates push units onto the rails, and weights
# blown up by them make every later update look small; a gated cell that takes too small steps
# learns nothing, and its profile is that of a cell that learns nothing; units on the rails
# pass on little gradient through time and little to the weights, and so do saturated gates
# (whose large weights also make every update look small) and a closed keep gate; any finding
# explains a plateau, except one at the unigram baseline, where a collapsing profile is what
# text with nothing to learn produces.
FOLDS = (
    ("diverged", "*", overlapping, True),
    ("exploding_gradients", ("update_too_large", "update_too_small", "saturation",
                             "gate_saturation", "vanishing_gradients"), blew_up, True),
    ("update_too_large", ("saturation",), overlapping, True),
    ("update_too_large", ("update_too_small",), grew, True),
    ("saturation", ("vanishing_gradients", "update_too_small"), overlapping, True),
    ("update_too_small", ("vanishing_gradients",), stuck_by_lr, True),
    ("gate_saturation", ("vanishing_gradients", "update_too_small"), overlapping, True),
    ("short_memory", ("vanishing_gradients",), overlapping, True),
    ("plateau", ("vanishing_gradients",), nothing_to_learn, False),
    ("*", ("plateau",), not_nothing_to_learn, True),
)


def explained_by(h: History, det: dict, dets: list) -> tuple[dict, bool] | None:
    """The first detection (most severe first) that explains det, with whether the severity
    passes up."""
    for cause in dets:
        for cause_id, ids, when, inherit in FOLDS:
            if cause is not det and cause_id in ("*", cause["id"]) and \
                    (ids == "*" or det["id"] in ids) and when(h, cause, det):
                return cause, inherit
    return None


def fold(h: History, dets: list) -> list:
    """The detections no other one explains, each with the ones it explains (and what those
    explain) as det["consequences"], its severity the worst of those that pass it up."""
    dets = sorted(dets, key=rank)
    parent = {d["id"]: explained_by(h, d, dets) for d in dets}
    tops = []
    for d in dets:
        chain, up, inherit = {d["id"]}, parent[d["id"]], True
        while up is not None and up[0]["id"] not in chain:
            cause, passes = up
            chain.add(cause["id"])
            inherit &= passes
            root, up = cause, parent[cause["id"]]
        if len(chain) == 1:
            tops.append(d)
            continue
        root.setdefault("consequences", []).append(d)
        if not inherit:  # explained as harmless: no more severe than what explains it
            d["severity"] = max(d["severity"], root["severity"], key=SEVERITY.index)
        elif SEVERITY.index(d["severity"]) < SEVERITY.index(root["severity"]):
            root["severity"] = d["severity"]
    return sorted(tops, key=rank)


def harmful_moves(h: History, dets: list) -> set:
    """(setting, +1 | -1) moves the run's own records show to be harmful: a higher lr after a
    loss spike or a finding of too large a step; a lower lr after steps found too small; a
    larger recurrence after it amplified or saturated; a smaller one after it vanished; a larger
    model where eval NLL is far above train."""
    ids = {d["id"] for d in dets}
    moves = set()
    if h.spikes or ids & {"diverged", "exploding_gradients", "saturation", "update_too_large"}:
        moves.add(("lr", 1))
    if "update_too_small" in ids:
        moves.add(("lr", -1))
    if ids & {"exploding_gradients", "saturation"}:
        moves.add(("recurrent_scale", 1))
    if "vanishing_gradients" in ids:
        moves.add(("recurrent_scale", -1))
    if "overfitting" in ids or last_gap(h) > THRESHOLDS["gap_large"]:
        moves.add(("hidden", 1))
    return moves


def moves(h: History, change: dict) -> set:
    """(setting, direction) of each setting a change moves: +1/-1 for a number against the
    run's own value, the new value for a choice. An lr that comes with another optimizer is a
    new recipe, not a move of this one's lr."""
    out = set()
    for name, value in change.items():
        old = h.cfg.get(name)
        if name == "lr" and change.get("optimizer", h.cfg.get("optimizer")) != \
                h.cfg.get("optimizer"):
            continue
        if isinstance(value, tuple):          # ("x", factor): relative to an unknown value
            out.add((name, 1 if value[1] > 1 else -1))
        elif isinstance(value, (int, float)) and finite(old):
            out.add((name, (value > old) - (value < old)))
        else:
            out.add((name, value))
    return out


def consistent(h: History, tops: list, causes: list) -> None:
    """Drop, in place, each change of tops that moves a setting in a direction the run's history
    shows harmful, or against (or to another value than) a change a more severe finding asks
    for. The history is that of the causes (the findings no other one explains): what a cause
    explains shows no harm of its own (tiny updates of weights an explosion blew up do not
    make a lower lr harmful)."""
    harmful, taken = harmful_moves(h, causes), {}
    for d in tops:
        kept = []
        for change in d["changes"]:
            m = moves(h, change)
            if any(mv in harmful or taken.get(mv[0], mv[1]) != mv[1] for mv in m):
                continue
            kept.append(change)
            taken.update(dict(m))
        d["changes"] = kept


def rank(d: dict) -> tuple:
    """Most severe first, then the fixed priority of the finding ids."""
    return SEVERITY.index(d["severity"]), PRIORITY.index(d["id"])


def not_measured(h: History, found: set = frozenset()) -> list[dict]:
    """The rules whose deciding readings no record carries, with the readings missing (a gated
    cell's rule on a cell without gates does not apply: it is not listed; a rule that found
    something from the readings it had, found, is not either)."""
    out = []
    for id_, rule in RULES.items():
        if id_ in found:
            continue
        needs = rule_needs(rule, h)
        if needs is not None and not any(all(r.get(k) is not None for k in needs)
                                         for r in h.records):
            missing = [k for k in needs if not any(k in r for r in h.records)]
            out.append({"id": id_, "missing": missing or list(needs)})
    return out


# ---- watching a run, diagnosing a run


class Watch:
    """Findings as a run trains: update() with each record returns the findings that first hold
    after it and that no finding already reported explains (each once). Cheap: every rule reads
    only the last few dozen records."""

    def __init__(self, config: TrainConfig | dict, vocab_size: int | None = None,
                 unigram_eval_nll: float | None = None, floor_nll: float | None = None,
                 horizon: int | None = None, train_chars: int | None = None,
                 source: str = "rnnscope") -> None:
        """source: where the run came from (records.SOURCES), the words of its next steps."""
        cfg = asdict(config) if isinstance(config, TrainConfig) else dict(config)
        self.source = source
        uniform = math.log(vocab_size) if vocab_size else None
        self.history = History(cfg, uniform, unigram_eval_nll, floor_nll, horizon,
                               train_chars)
        self.held: dict[str, dict] = {}       # detections, each as it first held
        self.reported: set[str] = set()

    @classmethod
    def for_run(cls, path: Path) -> Watch:
        """A Watch for the run in path that has already seen the records written so far."""
        watch = cls.for_config(runs.read_config(path))
        for rec in runs.read_metrics(path):
            watch.update(rec)
        return watch

    @classmethod
    def for_config(cls, doc: dict) -> Watch:
        """A Watch for a run whose config.json is doc (a log's may lack config and vocab; its
        training split's size is its own "train_chars", docs/format.md)."""
        corpus = doc.get("corpus", {})
        return cls(doc.get("config", {}), run_records.vocab_size(doc),
                   corpus.get("unigram_eval_nll"), corpus.get("floor_nll"),
                   (corpus.get("source") or {}).get("K"),  # a synthetic source's K (SPEC 9)
                   corpus.get("train_chars", doc.get("train_chars")),
                   run_records.source_of(doc))

    def update(self, record: dict) -> list[dict]:
        h = self.history
        h.add(record)
        for id_, rule in RULES.items():
            if id_ not in self.held:
                det = rule.detect(h)
                if det is not None and "set_aside" not in det:
                    self.held[id_] = det
        new, tops = [], fold(h, [dict(d) for d in self.held.values()])
        for top in tops:
            if top["id"] not in self.reported:
                self.reported.add(top["id"])
                self.reported.update(c["id"] for c in top.get("consequences", []))
                new.append(top)
        consistent(h, new, tops)
        return [words.finding(d, h.cfg, self.source) for d in new]

    def result(self) -> dict:
        """{"verdict", "findings", "set_aside", "not_measured"} of the run so far (module
        docstring: one story per run)."""
        h = self.history
        dets, set_aside = [], []
        for id_, rule in RULES.items():
            det = (rule.detect(h) if h.records else None) if rule.at_end else self.held.get(id_)
            if det is None:
                continue
            det = dict(det)
            why = det.get("set_aside") or (rule.resolved(h, det) if rule.resolved else None)
            if why is None and id_ in AT_FLOOR and at_floor(h):
                why = {"why": "at_floor", "best": best_eval(h), "floor": h.floor}
            if why is not None:
                set_aside.append(words.set_aside(det, why))
            else:
                dets.append(det)
        tops = fold(h, dets)
        consistent(h, tops, tops)
        findings = [words.finding(d, h.cfg, self.source) for d in tops]
        return {"verdict": findings[0]["id"] if findings else "healthy", "findings": findings,
                "set_aside": set_aside,
                "not_measured": not_measured(h, {d["id"] for d in dets} | {
                    s["id"] for s in set_aside})}


def diagnose(records: list[dict], config_doc: dict) -> dict:
    """{"verdict", "findings", "set_aside", "not_measured"} for the records of a run whose
    config.json is config_doc."""
    watch = Watch.for_config(config_doc)
    for rec in records:
        watch.update(rec)
    return watch.result()


def diagnose_run(path: Path) -> dict:
    """The triage of a run directory, also of one still training or stopped on a NaN, or of a
    metrics.jsonl or .csv log from anywhere (docs/format.md)."""
    doc, records = run_records.read_run(path)
    return diagnose(records, doc)


def write_triage(path: Path) -> dict:
    """Diagnose the run in path and write the result to its triage.json (atomically)."""
    result = diagnose_run(path)
    runs.write_text(Path(path) / runs.TRIAGE, json.dumps(result, indent=2) + "\n")
    return result


def read_triage(path: Path) -> dict:
    """A run's triage.json when it is newer than the records it judged, else the triage run now
    (diagnose_run), also for a log or a damaged triage.json."""
    path = Path(path)
    file, metrics = path / runs.TRIAGE, path / runs.METRICS
    if path.is_dir() and file.exists() and (not metrics.exists()
                                            or file.stat().st_mtime >= metrics.stat().st_mtime):
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except ValueError:
            pass  # a damaged triage.json: judge the records again
    return diagnose_run(path)
