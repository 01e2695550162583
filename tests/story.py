"""The triage's story, checked against the records it read: what every diagnosis must satisfy.

violations(result, records, config_doc) lists each way a diagnosis contradicts its records:
a cited reading that is not the record's, a finding whose own story the records do not tell,
advice that moves a setting both ways or in a direction the run's history shows harmful, a
consequence with its own remedies. tests/test_triage_story.py runs it on every calibration record
(benchmarks/calibration/records); conftest.py runs it on every real run the tests train. The
checks are written from the records and THRESHOLDS alone, not from the rules' code.
"""

from __future__ import annotations

import math
import statistics

from rnnscope.triage.history import LR_HEALTHY, SEVERITY, THRESHOLDS
from rnnscope.triage.rules import RULES

T = THRESHOLDS
TOO_LARGE_A_STEP = {"diverged", "exploding_gradients", "update_too_large", "saturation"}
# the way each finding's story pulls a setting (its remedy): two findings told as two problems
# must not pull one setting opposite ways
PULLS = {"diverged": {"lr": -1}, "exploding_gradients": {"lr": -1, "recurrent_scale": -1},
         "update_too_large": {"lr": -1}, "saturation": {"lr": -1, "recurrent_scale": -1},
         "update_too_small": {"lr": 1}, "vanishing_gradients": {"recurrent_scale": 1}}
# what weights blown up before the first record show: one cause, the rest its consequences
BLOWN_UP = {"exploding_gradients", "update_too_large", "update_too_small", "saturation",
            "gate_saturation", "vanishing_gradients"}


def finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def same(recorded, cited) -> bool:
    """A cited reading (4 significant digits, null for NaN/inf) against the record's value."""
    if not finite(recorded):
        return cited is None or cited == recorded
    return cited is not None and math.isclose(float(f"{recorded:.4g}"), cited, rel_tol=1e-9)


def g_at(profile, k: int):
    return [g for kk, g in profile if kk <= k][-1]


def spikes(records: list) -> list[int]:
    """Steps whose train NLL is over (1 + loss_spike) times the median of the 20 before it."""
    out, seen = [], []
    for r in records:
        v = r.get("train_nll")
        if not finite(v):
            continue
        before = seen[-T["trend_window"]:]
        if len(before) >= T["trend_window"] // 2 and v > (1 + T["loss_spike"]) * \
                statistics.median(before):
            out.append(r["step"])
        seen.append(v)
    return out


def evals(records: list) -> list[dict]:
    """Each eval with the mean train NLL of the records since the previous eval."""
    out, since = [], []
    for r in records:
        if finite(r.get("train_nll")):
            since.append(r["train_nll"])
        if finite(r.get("eval_nll")) and since:
            out.append({"step": r["step"], "eval_nll": r["eval_nll"],
                        "train_nll": statistics.fmean(since)})
            since = []
    return out


def parsed(step: dict, cfg: dict) -> list[tuple[str, object]]:
    """A next step's settings as moves: {"lr": 0.0005, "clip": "norm"} -> [("lr", -1), ("clip",
    "norm")]: numbers as a direction against the run's own value (or its factor where the value
    is relative to one the log did not record), choices as the value (an lr that comes with
    another optimizer is a new recipe, not a direction)."""
    settings = step["settings"]
    out = []
    for name, new in settings.items():
        old = cfg.get(name)
        if name == "lr" and settings.get("optimizer", cfg.get("optimizer")) != cfg.get(
                "optimizer"):
            continue
        if new is None and name == step["setting"]:
            out.append((name, 1 if step["factor"] > 1 else -1))
        elif isinstance(new, bool) or not finite(new):
            out.append((name, new))
        elif finite(old) and not isinstance(old, bool):
            out.append((name, (new > old) - (new < old)))
    return out


def texts(finding: dict) -> list[str]:
    """The words of a finding's next steps."""
    return [step["text"] for step in finding["next"]]


def violations(result: dict, records: list, doc: dict) -> list[str]:
    cfg = doc.get("config", {})
    findings = result["findings"]
    out = []
    # the verdict, one entry per finding id
    ids = [f["id"] for f in findings]
    consequences = [(f, c) for f in findings for c in f["evidence"].get("consequences", [])]
    shown = findings + [c for _, c in consequences]
    all_ids = [f["id"] for f in shown] + [s["id"] for s in result.get("set_aside", [])]
    if result["verdict"] != (ids[0] if ids else "healthy"):
        out.append(f"verdict {result['verdict']} is not the first finding {ids[:1]}")
    if len(all_ids) != len(set(all_ids)):
        out.append(f"an id is reported twice: {all_ids}")
    order = [(SEVERITY.index(f["severity"]), list(RULES).index(f["id"])) for f in findings]
    if order != sorted(order):
        out.append(f"findings not most severe first: {ids}")
    unmeasured = {m["id"] for m in result.get("not_measured", [])}
    if unmeasured & set(all_ids):
        out.append(f"not measured yet reported: {unmeasured & set(all_ids)}")
    # consequences share their cause's next steps and severity
    for f, c in consequences:
        if set(c) != {"id", "severity", "evidence"} or "caveat" in c["evidence"]:
            out.append(f"consequence {c['id']} of {f['id']} carries its own advice")
        if SEVERITY.index(c["severity"]) < SEVERITY.index(f["severity"]):
            out.append(f"consequence {c['id']} is more severe than its cause {f['id']}")
    for f in shown + result.get("set_aside", []):
        out += cited(f, records)
        out += [f"{f['id']}: {v}" for v in story(f, records, doc, findings)]
    out += advice(findings, records, cfg, shown)
    out += [f"{f['id']}: {v}" for f in findings for v in step_shape(f["next"])]
    out += two_problems(findings, records, cfg)
    return out


def two_problems(findings: list, records: list, cfg: dict) -> list[str]:
    """No story holds a finding and its own consequence as two problems, nor two findings whose
    remedies pull one setting opposite ways: weights blown up from the first record (an
    exploded gradient or too large a first step) show one cause; small updates of units on the
    rails are the saturation's; too small and too large a step are never both the problem."""
    out, ids = [], [f["id"] for f in findings]
    pulls = {}
    for i in ids:
        for name, way in PULLS.get(i, {}).items():
            pulls.setdefault(name, {})[way] = i
    out += [f"{ways[1]} and {ways[-1]} pull {name} opposite ways as two problems"
            for name, ways in pulls.items() if len(ways) == 2]
    if blown_up(records, cfg) and len(BLOWN_UP & set(ids)) > 1:
        out.append(f"weights blown up from the first record told as {sorted(BLOWN_UP & set(ids))}"
                   ", not one cause with its consequences")
    for f in findings:
        if f["id"] == "update_too_small":
            cited = [r for r in records if r["step"] in set(f["evidence"]["steps"])]
            if all(finite(r.get("sat_ratio")) and r["sat_ratio"] > T["sat_ratio"] and
                   r.get("mean_gain", 1) < T["mean_gain"] for r in cited):
                out.append("update_too_small of units on the rails told apart from saturation")
    return out


def blown_up(records: list, cfg: dict) -> bool:
    """whh_sigma_max `weights_grew` times its init on the first `persist` records that carry it."""
    first = [r for r in records if finite(r.get("whh_sigma_max"))][:T["persist"]]
    init = max(cfg.get("whh_sigma_init") or cfg.get("recurrent_scale", 1), 1)
    return len(first) == T["persist"] and all(r["whh_sigma_max"] > T["weights_grew"] * init
                                              for r in first)


def within_healthy(step: dict, cfg: dict) -> bool:
    """An lr suggested for the run's own optimizer from one beyond the lrs healthy runs of it use
    lands within them, not at a fraction of a value that was far off."""
    new, lr = step["settings"]["lr"], cfg.get("lr")
    if cfg.get("optimizer") not in LR_HEALTHY or not finite(new) or not finite(lr):
        return True
    lo, hi = LR_HEALTHY[cfg["optimizer"]]
    return not (lr > hi and new > hi or lr < lo and new < lo)


def step_shape(steps: list) -> list[str]:
    """Each next step is {"setting", "value", "settings", "text"} (and "factor" where the value
    is relative), its setting and value the first of its settings."""
    out = []
    for step in steps:
        keys = {"setting", "value", "settings", "text"} | ({"factor"} & set(step))
        first = next(iter((step.get("settings") or {None: None}).items()))
        if set(step) != keys or (step["setting"], step["value"]) != first or not step["text"]:
            out.append(f"a next step not of the format: {step}")
    return out


def cited(f: dict, records: list) -> list[str]:
    """Each reading a finding cites is the record's value at the cited step."""
    by_step = {r["step"]: r for r in records}
    ev, out = f["evidence"], []
    if any(s not in by_step for s in ev["steps"]):
        return [f"{f['id']} cites steps that are not in the records: {ev['steps']}"]
    for key, cited_values in ev["readings"].items():
        if f["id"] in ("overfitting", "state_dependence") and key == "train_nll":
            continue  # the mean since the previous eval: checked by the story
        for step, v in zip(ev["steps"], cited_values, strict=True):
            rec = by_step[step]
            if key in rec and not same(rec[key], v):
                out.append(f"{f['id']} cites {key} {v} at step {step}, the record has "
                           f"{rec[key]}")
    return out


def story(f: dict, records: list, doc: dict, tops: list) -> list[str]:
    """What the records must show for a finding of this id (tops: the findings no other one
    explains)."""
    ev, rid = f["evidence"], f["id"]
    recs = [r for r in records if r["step"] in set(ev["steps"])]
    reads = ev["readings"]
    vocab = doc.get("vocab")
    if rid == "diverged":
        limit = math.log(len(vocab)) + T["loss_above_uniform"] if vocab else -math.inf
        broken = [r for r in recs if "diverged" in r or any(
            v is None for k, v in r.items() if "." not in k)]
        if not broken and not all(r["train_nll"] > limit for r in recs):
            return ["no NaN and the loss is not far above a uniform guess"]
    if rid == "saturation":
        sat, gain = list(reads)[:2]
        if not all(s > T["sat_ratio"] and g < T["mean_gain"] for s, g in
                   zip(reads[sat], reads[gain], strict=True)):
            return [f"{sat}/{gain} not on the rails at every cited step"]
        if "set_aside" not in f and "why" not in f:
            return resolved_saturation(records, recs, sat, gain)
    if rid == "vanishing_gradients":
        g = next(v for k, v in reads.items() if k.startswith("g_"))
        if not all(x < T["vanish_g"] for x in g):
            return ["the profile did not collapse at every cited step"]
        if any(f is t for t in tops) and any(t["id"] == "plateau" and "unigram baseline" in
                                             t["evidence"]["seen"] for t in tops):
            return ["a collapsing profile reported apart from a plateau with nothing to learn"]
    if rid == "update_too_large":
        return too_large(records, ev, doc.get("config", {}))
    if rid == "update_too_small":
        return crawling(records, recs, reads)
    if rid == "overfitting":
        return overfits(records, ev)
    if rid == "state_dependence":
        return state_dependent(records, ev)
    if rid == "plateau":
        floor = doc.get("corpus", {}).get("floor_nll")
        best = min((e["eval_nll"] for e in evals(records)), default=None)
        if "why" not in f and floor is not None and best is not None and \
                best - floor < T["floor_margin"]:
            return [f"a plateau reported at the floor ({best:.3f} vs {floor:.3f})"]
    return []


def too_large(records: list, ev: dict, cfg: dict) -> list[str]:
    """Update ratios above update_large, or recurrent weights blown up from the first record."""
    reads = ev["readings"]
    if all(r > T["update_large"] for r in reads["update_ratio"]):
        return []
    sigma = reads.get("whh_sigma_max") or [0]
    first = next(r["step"] for r in records if finite(r.get("update_ratio")) and
                 finite(r.get("whh_sigma_max")))
    if ev["steps"][0] == first and all(s > T["weights_grew"] * max(cfg.get(
            "recurrent_scale", 1), 1) for s in sigma):
        return []
    return ["neither update_ratio above update_large nor weights blown up from the first record"]


def resolved_saturation(records: list, recs: list, sat: str, gain: str) -> list[str]:
    """A saturation from the first panel record must not have left the rails by the end while
    the loss fell (that is a transient, set aside)."""
    panel = [r for r in records if r.get(sat) is not None and r.get(gain) is not None]
    if not panel or recs[0]["step"] != panel[0]["step"]:
        return []
    last = panel[-T["persist"]:]
    nll = [r["train_nll"] for r in records if finite(r.get("train_nll"))]
    during = [r["train_nll"] for r in recs if finite(r.get("train_nll"))]
    off = all(r[sat] <= T["sat_ratio"] or r[gain] >= T["mean_gain"] for r in last)
    if off and last[0]["step"] > recs[-1]["step"] and during and nll[-1] < min(during):
        return [f"{sat} left the rails by step {last[-1]['step']} while the loss fell: a "
                "transient reported as a finding"]
    return []


def crawling(records: list, recs: list, reads: dict) -> list[str]:
    """Small updates while the loss crawls: not right after a loss spike, not in a run whose
    updates were healthy at its start."""
    out = []
    if not all(r < T["update_small"] for r in reads["update_ratio"]):
        out.append("update_ratio not below update_small at every cited step")
    nll = [r["train_nll"] for r in recs]
    if abs(nll[0] - nll[-1]) / nll[0] > T["crawl"]:
        out.append(f"the loss did not crawl: {nll[0]:.3f} -> {nll[-1]:.3f}")
    window_start = [r["step"] for r in records if r["step"] <= recs[-1]["step"]][
        -T["trend_window"]:][0]
    if any(window_start <= s <= recs[-1]["step"] for s in spikes(records)):
        out.append("small updates right after a loss spike: the loss is recovering")
    start = [r["update_ratio"] for r in records if finite(r.get("update_ratio"))][:T["persist"]]
    if statistics.median(start) >= T["update_healthy"]:
        out.append("the run's updates were healthy at its start: they shrank, the lr is not low")
    return out


def overfits(records: list, ev: dict) -> list[str]:
    """Eval NLL above train at the cited evals; for memorisation ("the gap grew") also no new
    best and train NLL improving."""
    es = evals(records)
    cited_evals = [e for e in es if e["step"] in set(ev["steps"])]
    if len(cited_evals) != len(ev["steps"]):
        return ["cites steps without an eval"]
    if "the gap grew" not in ev["seen"]:  # worse than a guess, from any state: no memorisation
        return [] if all(e["eval_nll"] > e["train_nll"] for e in cited_evals) else [
            "eval NLL is not above train NLL"]
    before = [e for e in es if e["step"] < cited_evals[0]["step"]]
    if not before:
        return ["no eval before the cited ones"]
    best = min(before, key=lambda e: e["eval_nll"])
    out = []
    if not all(e["eval_nll"] > e["train_nll"] for e in cited_evals):
        out.append("eval NLL is not above train NLL")
    if not all(e["eval_nll"] > best["eval_nll"] for e in cited_evals):
        out.append("an eval set a new best")
    if not cited_evals[-1]["train_nll"] < best["train_nll"]:
        out.append("train NLL did not improve since the best eval")
    return out


def state_dependent(records: list, ev: dict) -> list[str]:
    """At each cited eval a fresh state scores worse by state_gap, or (without the readings)
    eval NLL far above train."""
    cited = [r for r in records if r["step"] in set(ev["steps"]) and "eval_nll" in r]
    if len(cited) != len(ev["steps"]):
        return ["cites steps without an eval"]
    for r in cited:
        fresh, carried = r.get("eval_nll_fresh"), r.get("eval_nll_carried")
        if fresh is not None and carried is not None:
            if fresh - carried <= T["state_gap"]:
                return ["a fresh state did not score worse than the carried one"]
        elif r["eval_nll"] <= r["train_nll"] + T["train_below"]:
            return ["eval NLL not far above train NLL"]
    return []


def advice(findings: list, records: list, cfg: dict, shown: list) -> list[str]:
    """One consistent set of next steps: no setting moved both ways or to two values, no higher
    lr after a loss spike or a step found too large, no larger model while eval NLL is far
    above train."""
    out, moves = [], {}
    ids = {f["id"] for f in shown}
    es = evals(records)
    gap = es[-1]["eval_nll"] - es[-1]["train_nll"] if es else 0.0
    for f in findings:
        for step in f["next"]:
            flags = step["text"]
            for name, move in parsed(step, cfg):
                if moves.setdefault(name, move) != move:
                    out.append(f"{name} is moved both ways or to two values ({f['id']}: {flags})")
                if name == "lr" and move == 1 and (spikes(records) or ids & TOO_LARGE_A_STEP):
                    out.append(f"{f['id']} advises a higher lr ({flags}) in a run whose records "
                               "show a loss spike or too large a step")
                if name == "lr" and not within_healthy(step, cfg):
                    out.append(f"{f['id']} suggests {flags}, beyond the lrs healthy "
                               f"{cfg['optimizer']} runs use, from {cfg['lr']:g}")
                if name == "hidden" and move == 1 and ("overfitting" in ids or
                                                       gap > T["gap_large"]):
                    out.append(f"{f['id']} advises a larger model ({flags}) while eval NLL is "
                               f"{gap:.2f} nats above train")
    return out
