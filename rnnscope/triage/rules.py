"""The triage's rules: each finding id's detection in the records of a run (SPEC section 4).

A rule is a short function of the History (the records so far) that returns a detection or
None; rnnscope/triage/story.py assembles the detections into one story per run,
rnnscope/triage/words.py words them. A detection:

    {"id": "saturation", "severity": "info" | "warning" | "critical",
     "recs": [the records that show it],
     "readings": {reading: [its value at each of those records]},
     "facts": {the numbers and names the words quote},
     "suspects": [ids of the usual causes, most likely first (words.SUSPECTS)],
     "changes": [settings to try, first first: {"lr": 0.0005}, {"clip": "norm"}, ...]}

Each rule is registered in RULES with the readings that decide it (a log without them gets "not
measured" for that rule, never a guess), and every number it compares against is in THRESHOLDS
(history.py; the bounds of a healthy range come from rnnscope/health.py); docs/triage.md gives
the calibration runs behind each. A rule needs persistence: its condition must hold on `persist`
consecutive records (`persist_evals` evals for overfitting, a whole `trend_window` for a trend),
so one noisy reading never fires; only a NaN/inf is believed at once. And a rule fires only when
its own story holds in the records: overfitting needs train NLL improving while eval NLL, above
it, stalls; update_too_small needs the loss crawling from updates that were never healthy, not
recovering from a spike; saturation from the start waits while the units leave the rails.

A new rule is one function here, one RULES row, its thresholds, and its words in words.py.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from ..cells import CELLS
from ..heldout import STATE_KEYS
from .history import (
    THRESHOLDS,
    History,
    at_floor,
    best_eval,
    detection,
    finite,
    gated_cell,
    growth,
    guess,
    improvement,
    init_sigma,
    last_gap,
    layer_keys,
    lr_step,
    passes,
    profile_at,
    quoted,
    scaled,
    sig,
    stalled,
    state_gaps,
    streak,
    values,
    worse_than_guess,
)

# ---- the rules


def diverged(h: History) -> dict | None:
    """A NaN/inf anywhere (at once), or the train NLL far above where every run starts (ln V,
    or the run's first train NLL when the vocabulary is not known)."""
    rec = h.records[-1]
    # per-parameter readings (with a dot) may be inf for a weight that is still zero
    bad = sorted(k for k, v in rec.items() if v is None and "." not in k)
    if bad or "diverged" in rec:
        facts = {"kind": "nan", "step": rec["step"], "bad": bad, "stopped": rec.get("diverged"),
                 "lr": rec.get("lr", h.cfg.get("lr")),
                 "kept": h.evals[-1]["step"] if h.evals else None}
        return divergence(h, [rec], {k: [None] for k in bad}, facts)
    start = next((r["train_nll"] for r in h.records if finite(r.get("train_nll"))), None)
    base = h.uniform if h.uniform is not None else start
    if base is None:
        return None
    limit = base + THRESHOLDS["loss_above_uniform"]
    recs = streak(h, ("train_nll",), lambda r: r["train_nll"] > limit)
    if recs is None:
        return None
    facts = {"kind": "loss", "nll": values(recs, "train_nll"), "base": base,
             "uniform": h.uniform is not None, "above": THRESHOLDS["loss_above_uniform"]}
    return divergence(h, recs, quoted(recs, "train_nll"), facts)


def divergence(h: History, recs: list, reads: dict, facts: dict) -> dict:
    cfg = h.cfg
    lr, why = lr_step(h, 0.1)
    suspects, changes = ["lr_high"], [lr]
    if cfg.get("clip") in ("none", "elementwise"):
        suspects.append(f"clip_{cfg['clip']}")
        changes.append({"clip": "norm"})
    if cfg.get("optimizer") in ("sgd", "momentum"):
        changes.append({"optimizer": "adam", "lr": 0.002})
    if cfg.get("recurrent_scale", 1) > 1 or cfg.get("input_scale", 1) > 1:
        suspects.append("init_large")
        changes.append({"recurrent_scale": 1, "input_scale": 1})
    return detection("diverged", "critical", recs, reads, facts, suspects, changes, {"lr": why})


def exploding_gradients(h: History) -> dict | None:
    """Clipping on most steps, a through-time profile that grows, or grad_norm far above its
    median before the streak, on `persist` consecutive records; or the marks of a gradient that
    exploded before the first record (blown_up) where clipping was off or did not hold."""
    cfg, k = h.cfg, THRESHOLDS["persist"]
    before = [r["grad_norm"] for r in h.records[-k - THRESHOLDS["trend_window"]:-k]
              if finite(r.get("grad_norm"))]
    usual = statistics.median(before) if len(before) >= k else math.inf

    # clipping on most steps says the gradient was above the threshold: evidence only where the
    # threshold is known (a PyTorch loop's may be far below its usual grad_norm, as the word
    # language model's 0.25 is, and fire on every step of a healthy run)
    clipped = THRESHOLDS["clip_rate"] if finite(cfg.get("clip_value")) else math.inf

    def explodes(r):
        return ((r.get("clip_rate") or 0) > clipped or growth(r) > THRESHOLDS[
            "profile_growth"] or r["grad_norm"] > THRESHOLDS["grad_spike"] * usual)

    early = blown_up(h)
    recs = early["recs"] if early else streak(h, ("grad_norm",), explodes)
    if recs is None:
        return None
    grows = [growth(r) for r in recs]
    clips = [r.get("clip_rate") or 0 for r in recs]
    amplifies = max(grows) > THRESHOLDS["profile_growth"]
    facts = {"norms": values(recs, "grad_norm"), "usual": usual, "clips": clips,
             "grows": grows, "amplifies": amplifies,
             "clipping": max(clips) > THRESHOLDS["clip_rate"],
             "spiked": max(values(recs, "grad_norm")) > THRESHOLDS["grad_spike"] * usual,
             "sigma": max((r.get("whh_sigma_max") or 0 for r in recs), default=0),
             "early": early and {key: v for key, v in early.items() if key != "recs"}}
    suspects, changes = [], []
    unclipped = cfg.get("clip") == "none" or early and early["unclipped"]
    if unclipped:
        suspects.append("clip_none")
        changes.append({"clip": "norm"})
    elif cfg.get("clip") == "elementwise":
        suspects.append("clip_elementwise")
        changes.append({"clip": "norm"})
    if amplifies or early and early["init"] > 1:
        suspects.append("recurrence_amplifies")
    if cfg.get("recurrent_scale", 1) > 1 or early and early["init"] > INIT_LARGE:
        changes.append({"recurrent_scale": 1})
    suspects.append("lr_high_for_gradients")
    lr, why = lr_step(h, 0.1 if early else 0.5)
    changes.append(lr)
    changes += [] if cfg.get("optimizer") == "adam" else [{"optimizer": "adam", "lr": 0.002}]
    reads = quoted(recs, "grad_norm", "grad_norm_max" if early else "clip_rate",
                   "whh_sigma_max")
    reads["bptt_growth"] = [sig(g) for g in grows]
    critical = cfg.get("clip") == "none" or early
    return detection("exploding_gradients", "critical" if critical else "warning", recs, reads,
                     facts, suspects, changes, {"lr": why})


INIT_LARGE = 2.0  # whh_sigma_max at init above this: an init scaled up (PyTorch's is about 1.2)
STEP_FOLLOWS_GRADIENT = ("sgd", "momentum")  # optimizers whose step is lr times the gradient


def blown_up(h: History) -> dict | None:
    """The marks a gradient that exploded before the first record leaves, on the run's first
    `persist` records: the recurrent weights `weights_grew` times their init (whh_sigma_max)
    and the largest grad_norm of the first interval (grad_norm_max) `grad_spike` times the
    median grad_norm recorded after it, under an optimizer whose step follows the gradient
    (SGD, with or without momentum, or one the log does not name: Adam's, RMSprop's and
    Adagrad's steps are about lr in size whatever the gradient, so weights they blew up are
    the lr's doing, update_too_large). With "unclipped": clipping was off (--clip none, or no
    clip_rate above 0 although the gradient exploded); where clipping was on it did not hold.
    None without the marks, or while too few records carry them."""
    if h.cfg.get("optimizer") not in (None, *STEP_FOLLOWS_GRADIENT):
        return None
    k = THRESHOLDS["persist"]
    recs = [r for r in h.records if finite(r.get("grad_norm")) and
            finite(r.get("whh_sigma_max"))][:k]
    if len(recs) < k:
        return None
    init = init_sigma(h.cfg)
    peak = max(r.get("grad_norm_max") or r["grad_norm"] for r in recs[:2])
    usual = statistics.median(values(recs, "grad_norm"))
    grown = values(recs, "whh_sigma_max")
    if min(grown) <= THRESHOLDS["weights_grew"] * init or peak <= THRESHOLDS[
            "grad_spike"] * usual:
        return None
    clip = h.cfg.get("clip")
    return {"recs": recs, "peak": peak, "median": usual, "grown": grown, "init": init,
            "unclipped": clip == "none" or clip is None and not any(
                r.get("clip_rate") for r in recs)}


def saturated_layers(h: History, r: dict) -> list[tuple[str, str]]:
    """The (sat_ratio, mean_gain) keys of each layer on the tanh rails in record r."""
    pairs = zip(layer_keys(h, r, "sat_ratio"), layer_keys(h, r, "mean_gain"), strict=True)
    return [(s, g) for s, g in pairs if r.get(s) is not None and r.get(g) is not None and
            r[s] > THRESHOLDS["sat_ratio"] and r[g] < THRESHOLDS["mean_gain"]]


def saturation(h: History) -> dict | None:
    """Units on the tanh rails in some layer, on `persist` consecutive records that are either
    the run's first (a broken start; not while that layer is leaving the rails with the loss
    falling) or end a trend window over which the loss got worse. A run that drifts towards the
    rails while it still learns is not flagged."""
    cfg = h.cfg
    recs = streak(h, ("sat_ratio", "mean_gain"), lambda r: saturated_layers(h, r))
    if recs is None:
        return None
    sat, gain = saturated_layers(h, recs[-1])[0]
    first = recs[0]["step"] == h.first(("sat_ratio", "mean_gain"))
    if first and leaving(recs, sat):
        return None
    t = None if first else stalled(h, -THRESHOLDS["loss_rise"])
    if not first and t is None:
        return None
    ratios = [r["update_ratio"] for r in recs if finite(r.get("update_ratio"))]
    ratio = statistics.median(ratios) if ratios else None
    facts = {"first": first, "worse": None if first else -t[1], "window": None if first else
             len(t[0]), "sat": sat, "gain": gain, "sats": values(recs, sat),
             "gains": values(recs, gain), "ratio": ratio}
    suspects, changes = onto_the_rails(cfg, ratio)
    suspects.append("lr_high_or_clip_loose")
    lr, why = lr_step(h, 0.25, ratio if ratio and ratio > 4 * THRESHOLDS["update_target"]
                      else None)
    changes.append(lr)
    changes += [{"clip": "norm"}] if cfg.get("clip") == "none" else []
    return detection("saturation", "critical" if first else "warning", recs,
                     quoted(recs, sat, gain, "dh_norm", "dh_raw_norm"), facts, suspects,
                     changes + gated_cell(), {"lr": why})


def onto_the_rails(cfg: dict, ratio: float | None) -> tuple[list, list]:
    """(suspects, changes) of units or gates on the rails: an init scaled up, updates too large
    (the median update_ratio of the records that show it)."""
    suspects, changes = [], []
    if cfg.get("recurrent_scale", 1) > 1 or cfg.get("input_scale", 1) > 1:
        suspects.append("init_large")
        changes.append({"recurrent_scale": 1, "input_scale": 1})
    if ratio is not None and ratio > THRESHOLDS["update_large"]:
        suspects.append("updates_push_to_rails")
    return suspects, changes


def leaving(recs: list, sat: str) -> bool:
    """The layer's sat_ratio fell by `sat_leaving` over the records while the train NLL fell:
    units leaving the rails on their own."""
    nll = [r["train_nll"] for r in recs if finite(r.get("train_nll"))]
    return recs[0][sat] - recs[-1][sat] > THRESHOLDS["sat_leaving"] and \
        len(nll) > 1 and nll[-1] < nll[0]


def saturation_resolved(h: History, det: dict) -> dict | None:
    """Facts of a saturation from the start that is over by the end: the layer's last `persist`
    records are off the rails and the train NLL fell below its level while saturated."""
    sat, gain = det["facts"]["sat"], det["facts"]["gain"]
    k = THRESHOLDS["persist"]
    last = [r for r in h.records if r.get(sat) is not None and r.get(gain) is not None][-k:]
    nll = [r["train_nll"] for r in h.records if finite(r.get("train_nll"))]
    during = [r["train_nll"] for r in det["recs"] if finite(r.get("train_nll"))]
    if (not det["facts"]["first"] or len(last) < k or last[0]["step"] <= det["recs"][-1]["step"]
            or any((sat, gain) in saturated_layers(h, r) for r in last) or not during
            or nll[-1] >= min(during)):
        return None
    return {"why": "resolved", "sat": sat, "from": det["facts"]["sats"][0],
            "to": last[-1][sat], "step": last[-1]["step"], "nll_from": during[0],
            "nll_to": nll[-1]}


def vanishing_gradients(h: History) -> dict | None:
    """In some layer, less than `vanish_g` of a unit gradient survives `vanish_k` steps back."""
    cfg, k = h.cfg, THRESHOLDS["vanish_k"]

    def survives(r):
        return surviving(h, r)

    recs = streak(h, ("bptt_profile",), lambda r: survives(r) < THRESHOLDS["vanish_g"])
    if recs is None or gated(h) and stuck_above_floor(h) is None:
        return None  # a gated cell's profile is small while it learns: it must also be stuck
    gains = [r["mean_gain"] for r in recs if finite(r.get("mean_gain"))]
    sigmas = [r["whh_sigma_max"] for r in recs if finite(r.get("whh_sigma_max"))]
    facts = {"k": k, "g": [survives(r) for r in recs], "sigmas": sigmas}
    suspects, changes = [], []
    if cfg.get("recurrent_scale", 1) < 1:
        suspects.append("recurrence_small")
        changes.append({"recurrent_scale": 1})
    if gains and min(gains) < THRESHOLDS["mean_gain"]:
        suspects.append("units_saturated")
    suspects.append("recurrence_weak")
    if cfg.get("recurrent_init") != "identity":
        changes.append({"recurrent_init": "identity"})
    seq_len = cfg.get("seq_len")
    changes += gated_cell() + ([{"seq_len": max(seq_len // 2, k)}] if seq_len else [])
    reads = quoted(recs, "whh_sigma_max", "mean_gain")
    reads[f"g_{k}"] = [sig(g) for g in facts["g"]]
    return detection("vanishing_gradients", "warning", recs, reads, facts, suspects, changes)


def surviving(h: History, r: dict) -> float:
    """The least g_k, k = `vanish_k`, over the layers of record r (NaN entries, written as null,
    are left to the diverged rule)."""
    g = [profile_at(r[key], THRESHOLDS["vanish_k"]) for key in layer_keys(h, r, "bptt_profile")]
    return min((v for v in g if finite(v)), default=math.inf)


def vanishing_resolved(h: History, det: dict) -> dict | None:
    """Facts of a collapsed profile that recovered by the end while the run learned: the last
    `persist` records carry g_k above `vanish_g` in every layer and the train NLL fell below its
    level while collapsed (a PyTorch nn.RNN at its default init starts with a weak recurrence
    that training strengthens). A collapse an init scaled down explains (--recurrent-scale
    below 1) stays a finding: its remedy is known and the run learned slower for it."""
    if h.cfg.get("recurrent_scale", 1) < 1:
        return None
    last = [r for r in h.records if r.get("bptt_profile") is not None][-THRESHOLDS["persist"]:]
    nll = [r["train_nll"] for r in h.records if finite(r.get("train_nll"))]
    during = [r["train_nll"] for r in det["recs"] if finite(r.get("train_nll"))]
    if (len(last) < THRESHOLDS["persist"] or last[0]["step"] <= det["recs"][-1]["step"] or
            any(surviving(h, r) < THRESHOLDS["vanish_g"] for r in last) or not during
            or nll[-1] >= min(during)):
        return None
    return {"why": "recovered", "from": min(det["facts"]["g"]), "to": surviving(h, last[-1]),
            "step": last[-1]["step"], "k": THRESHOLDS["vanish_k"], "nll_from": during[0],
            "nll_to": nll[-1]}


def update_too_large(h: History) -> dict | None:
    """update_ratio above `update_large` on `persist` records that are not just the run's
    first (large ratios while the weights are small are every run's start: a GRU at --lr 0.01
    held 0.035 -> 0.016 over its first 5 records while it learned faster than at 2e-3); or,
    from the first records,
    whh_sigma_max `weights_grew` times its initial scale: the first steps were so large that
    they blew the recurrent weights up, and the ratio, measured against the grown weights,
    no longer shows it."""
    scale = init_sigma(h.cfg)
    recs = streak(h, ("update_ratio",), lambda r: r["update_ratio"] > THRESHOLDS["update_large"])
    if recs is not None and recs[0]["step"] == h.first(("update_ratio",)):
        recs = None  # the run's first records alone: every run starts with large ratios
    grown = None
    if recs is None:
        recs = streak(h, ("update_ratio", "whh_sigma_max"), lambda r: r["whh_sigma_max"] >
                      THRESHOLDS["weights_grew"] * scale)
        if recs is None or recs[0]["step"] != h.first(("update_ratio", "whh_sigma_max")):
            return None
        grown = values(recs, "whh_sigma_max")
    nll = [r["train_nll"] for r in recs if finite(r.get("train_nll"))]
    facts = {"ratios": values(recs, "update_ratio"), "large": THRESHOLDS["update_large"],
             "jumps": max((abs(b - a) for a, b in zip(nll, nll[1:], strict=False)), default=0.0),
             "grown": grown, "scale": scale, "first": recs[0]["step"]}
    lr, why = lr_step(h, 0.1, None if grown else statistics.median(facts["ratios"]))
    reads = quoted(recs, "update_ratio", "whh_sigma_max" if grown else "train_nll", "lr")
    return detection("update_too_large", "warning", recs, reads, facts, ["lr_high"],
                     [lr, {"lr_schedule": "cosine"}], {"lr": why})


def update_too_small(h: History) -> dict | None:
    """Tiny updates while the loss crawls: it moved less than `crawl` over the streak, the run's
    updates were never of a healthy size (the median ratio of its first `persist` records is
    below `update_healthy`: updates that shrank after healthy ones come from weights that grew,
    a converged loss or Adam's memory of a spike, not from too low an lr), and no loss spike in
    the trend window before is being recovered from. Records of a decayed schedule are not
    counted."""
    lr = h.cfg.get("lr")
    lr_min = THRESHOLDS["lr_decayed"] * lr if finite(lr) else 0.0
    recs = streak(h, ("update_ratio", "train_nll"), lambda r: r["update_ratio"] <
                  THRESHOLDS["update_small"] and r.get("lr", math.inf) >= lr_min)
    if recs is None or abs(improvement(values(recs, "train_nll"))) > THRESHOLDS["crawl"]:
        return None
    start = statistics.median([r["update_ratio"] for r in h.records if finite(
        r.get("update_ratio"))][:THRESHOLDS["persist"]])
    window = h.records[-THRESHOLDS["trend_window"]:]
    if start >= THRESHOLDS["update_healthy"] or any(s >= window[0]["step"] for s in h.spikes):
        return None
    facts = {"ratios": values(recs, "update_ratio"), "nll": values(recs, "train_nll"),
             "start": start}
    other = [] if h.cfg.get("optimizer") == "adam" else [{"optimizer": "adam", "lr": 0.002}]
    return update_detection("update_too_small", h, recs, facts, ["lr_low"], other)


def update_detection(id_: str, h: History, recs: list, facts: dict, suspects: list,
                     more: list) -> dict:
    """The update_too_small detection: first an --lr that scales the median ratio to the
    healthy one (within the healthy lrs of the optimizer)."""
    lr, why = lr_step(h, 1.0, statistics.median(values(recs, "update_ratio")))
    return detection(id_, "warning", recs, quoted(recs, "update_ratio", "train_nll", "lr"),
                     facts, suspects, [lr] + more, {"lr": why})


def overfitting(h: History) -> dict | None:
    """Memorisation: on `persist_evals` consecutive evals no new best eval NLL, eval NLL above
    the train NLL beside it, the gap grown by `gap_growth` nats since the best eval, and the
    train NLL lower than at the best eval, after the model has read its training split about
    once (`passes`: nothing can be memorised before). Critical when the last evals are worse
    than a guess (worse_than_guess); then also without memorisation when the state readings
    rule state dependence out: the held-out text is scored badly from any state."""
    bad = worse_than_guess(h)
    if bad and not all(g is not None and g[1] <= THRESHOLDS["state_gap"]
                       for g in map(state_gaps, bad)):
        bad = None  # state_dependence tells that story, or its readings are missing
    facts = memorised(h)
    if facts is None and bad is None:
        return None
    last = h.evals[-THRESHOLDS["persist_evals"]:] if facts else bad
    facts = facts or {"evals": values(bad, "eval_nll"), "train": bad[-1]["train_nll"],
                      "passes": passes(h), "memorised": False}
    facts["guess"] = guess(h, bad[-1]) if bad else None
    suspects = ["memorises"] if facts["memorised"] else ["eval_unlike_train"]
    return detection("overfitting", "critical" if bad else "warning", last,
                     {key: [sig(e[key]) for e in last] for key in ("eval_nll", "train_nll")},
                     facts, suspects, regularise(h) + smaller(h) + [{"corpus": "LARGER_TEXT"}])


def memorised(h: History) -> dict | None:
    """The facts of memorisation (overfitting's docstring) or None."""
    k, read = THRESHOLDS["persist_evals"], passes(h)
    if len(h.evals) <= k or read is None or read < THRESHOLDS["passes"]:
        return None
    best = h.evals[-k - 1]["best"]
    gap0 = best["eval_nll"] - best["train_nll"]
    last = h.evals[-k:]
    if not (all(e["eval_nll"] > best["eval_nll"] and e["eval_nll"] > e["train_nll"] and
                e["eval_nll"] - e["train_nll"] - gap0 > THRESHOLDS["gap_growth"] for e in last)
            and last[-1]["train_nll"] < best["train_nll"]):
        return None
    return {"evals": values(last, "eval_nll"), "best": best["eval_nll"],
            "best_step": best["step"], "best_train": best["train_nll"], "gap0": gap0,
            "gap": last[-1]["eval_nll"] - last[-1]["train_nll"], "train": last[-1]["train_nll"],
            "eval_frac": h.cfg.get("eval_frac"), "k": k, "passes": read, "memorised": True}


def state_dependence(h: History) -> dict | None:
    """The model scores well only from the states its training streams reached: on
    `persist_state` consecutive evals (one, when it is worse than a guess) a fresh (zero) state
    scores the same text `state_gap` nats worse than the carried one (state_gaps: the held-out
    window, else the text just trained on); or, without those readings, an eval worse than a
    guess while the train NLL is fine and no memorisation explains it. Critical when worse
    than a guess."""
    bad = worse_than_guess(h)
    last = bad or h.evals[-THRESHOLDS["persist_state"]:]
    gaps = [state_gaps(e) for e in last]
    measured = len(last) >= THRESHOLDS["persist_guess" if bad else "persist_state"] and \
        all(g is not None for g in gaps)
    if measured and not all(g[1] > THRESHOLDS["state_gap"] for g in gaps):
        return None
    if not measured and (bad is None or memorised(h) is not None):
        return None
    cfg = h.cfg
    facts = {"measured": measured, "pair": gaps[-1][0] if measured else None,
             "gaps": [g[1] for g in gaps] if measured else None,
             "guess": guess(h, last[-1]) if bad else None, "passes": passes(h),
             **{key: last[-1].get(key) for key in ("eval_nll", "train_nll", *STATE_KEYS)}}
    suspects = ["state_regimes"] + (["lr_high"] if cfg.get("optimizer") in ("adagrad", "sgd")
                                    and cfg.get("batch") == 1 else [])
    return detection("state_dependence", "critical" if bad else "warning", last,
                     {key: [sig(e.get(key)) for e in last] for key in
                      ("eval_nll", "train_nll", *STATE_KEYS) if any(key in e for e in last)},
                     facts, suspects, state_changes(h))


def state_changes(h: History) -> list:
    """What makes the model score from a fresh state too: state resets while training (the
    first, measured on the issue-29 runs: docs/triage.md), more streams, a lower lr, Adam."""
    cfg = h.cfg
    every = cfg.get("reset_every")
    changes = [{"reset_every": max(every // 2, 1) if every else THRESHOLDS["reset_every"]}]
    batch = cfg.get("batch")
    if batch is not None and batch < THRESHOLDS["state_batch"]:
        changes.append({"batch": THRESHOLDS["state_batch"]})
    changes.append(scaled(h, "lr", 0.3))
    if cfg.get("optimizer") != "adam":
        changes.append({"optimizer": "adam", "lr": 0.002})
    return changes


def regularise(h: History) -> list:
    cfg = h.cfg
    return [{"dropout": min(cfg.get("dropout", 0) + 0.2, 0.5)},
            {"weight_decay": max(cfg.get("weight_decay", 0) * 10, 0.1)}]


def smaller(h: History) -> list:
    hidden = h.cfg.get("hidden")
    return [{"hidden": hidden // 2}] if hidden and hidden > 32 else []


def plateau(h: History) -> dict | None:
    """Stalled: the train NLL improved less than `plateau_gain` over the trend window and no
    eval in it set a new best, in a run of at least `min_records` records. At the corpus's
    known floor it is success and set aside; at the unigram baseline there was nothing beyond
    character frequencies to learn (or the model does not use its context); with eval NLL far
    above train, generalisation, not capacity, is what to work on."""
    t = stalled(h, THRESHOLDS["plateau_gain"])
    if t is None or len(h.records) < THRESHOLDS["min_records"]:
        return None
    recs, gain = t
    best = best_eval(h)
    gap = last_gap(h)
    baseline = h.unigram is not None and best is not None and \
        abs(best - h.unigram) < THRESHOLDS["unigram_margin"] * h.unigram and \
        (h.floor is None or h.unigram - h.floor < THRESHOLDS["floor_margin"])
    wide = gap > THRESHOLDS["gap_large"]
    facts = {"gain": gain, "nll": values([recs[0], recs[-1]], "train_nll"), "best": best,
             "unigram": h.unigram if baseline else None, "floor": h.floor,
             "gap": gap if wide else None}
    suspects = (["no_structure"] if baseline else []) + (
        ["far_above_floor"] if h.floor is not None and not at_floor(h) else [])
    cfg = h.cfg
    if wide:
        suspects.append("generalisation")
        changes = regularise(h) + [{"corpus": "LARGER_TEXT"}]
    else:
        suspects.append("learned_what_it_can")
        changes = [scaled(h, "hidden", 2), {"layers": cfg.get("layers", 1) + 1}] + gated_cell()
    if cfg.get("lr_schedule") == "constant":
        changes.append({"lr_schedule": "plateau"})
    det = detection("plateau", "info", [recs[0], recs[-1]],
                    quoted([recs[0], recs[-1]], "train_nll"), facts, suspects, changes)
    if at_floor(h):
        det["set_aside"] = {"why": "at_floor", "best": best, "floor": h.floor}
    return det


# ---- the gated cells' rules (SPEC 8): they read the gates of the cell that has them


def gated(h: History) -> ModuleType | None:
    """The run's cell module if it has sigmoid gates: the one config.json names or, for a log
    without config, the one whose keep gate the records read; None for a cell without gates."""
    cell = CELLS.get(h.cfg.get("cell"))
    if cell is None:
        recent = h.records[-3 * THRESHOLDS["persist"]:]
        cell = next((c for c in CELLS.values() if c.KEEP and any(
            f"gate.{c.KEEP}.left" in r for r in recent)), None)
    return cell if cell is not None and cell.SIGMOID else None


def gate_keys(cell: ModuleType) -> tuple[str, ...]:
    return tuple(f"gate.{g}.{side}" for g in cell.SIGMOID for side in ("left", "right"))


def memory_keys(cell: ModuleType) -> tuple[str, ...]:
    return ("memory_steps", f"gate.{cell.KEEP}.left")


def prefixes(h: History, rec: dict, name: str) -> list[str]:
    """"layer0.", "layer1.", ... for a reading recorded per layer, else "" (the aggregate)."""
    return [key[:-len(name)] for key in layer_keys(h, rec, name)]


def gates_saturated(h: History, cell: ModuleType, r: dict, side=lambda left, right:
                    left + right) -> dict[str, float]:
    """Per layer prefix: the mean over the cell's sigmoid gates of the fraction of entries
    below 0.1 or above 0.9 (side=min: the fraction on the less crowded rail)."""
    return {p: statistics.fmean(side(r[f"{p}gate.{g}.left"], r[f"{p}gate.{g}.right"])
                                for g in cell.SIGMOID)
            for p in prefixes(h, r, f"gate.{cell.SIGMOID[0]}.left")}


def gate_saturation(h: History) -> dict | None:
    """In some layer, most sigmoid gate entries saturated (below 0.1 or above 0.9, averaged
    over the gates) on `persist` records and that fraction still (moving less than
    `gate_still`), either from the run's first records with entries on both rails (`gate_both`
    on the less crowded one: a broken start, the random pre-activations of too large an init)
    or while the loss gets worse: gates that pass almost no gradient and no longer change.
    Gates that saturate while the run learns are not flagged: that saturation is one-sided per
    gate (trained LSTMs hold forget gates near 1 on purpose; a GRU at a high lr puts 70% of its
    update gate near 0 within 25 steps and learns fast)."""
    cell = gated(h)
    if cell is None:
        return None
    keys = gate_keys(cell)
    recs = streak(h, keys, lambda r: max(gates_saturated(h, cell, r).values()) >
                  THRESHOLDS["gate_saturated"])
    if recs is None:
        return None
    fracs = [gates_saturated(h, cell, r) for r in recs]
    p = max(fracs[-1], key=fracs[-1].get)
    series = [f[p] for f in fracs]
    first = recs[0]["step"] == h.first(keys) and all(
        gates_saturated(h, cell, r, min)[p] > THRESHOLDS["gate_both"] for r in recs)
    t = None if first else stalled(h, -THRESHOLDS["loss_rise"])
    if max(series) - min(series) >= THRESHOLDS["gate_still"] or not first and t is None:
        return None
    cfg = h.cfg
    ratios = [r["update_ratio"] for r in recs if finite(r.get("update_ratio"))]
    ratio = statistics.median(ratios) if ratios else None
    facts = {"layer": p.rstrip(".") or "the layer", "fracs": series, "first": first,
             "worse": None if first else -t[1], "window": None if first else len(t[0]),
             "gates": {g: (recs[-1][f"{p}gate.{g}.left"], recs[-1][f"{p}gate.{g}.right"])
                       for g in cell.SIGMOID}, "ratio": ratio}
    suspects, changes = onto_the_rails(cfg, ratio)
    suspects.append("gates_stuck")
    why = None
    if not first or not changes or ratio and ratio > THRESHOLDS["update_large"]:
        lr, why = lr_step(h, 0.5, ratio if ratio and ratio > THRESHOLDS["update_large"]
                          else None)
        changes.append(lr)
    changes += [{"clip": "norm"}] if cfg.get("clip") == "none" else []
    reads = quoted(recs, *(f"{p}{k}" for k in keys))
    reads[f"{p}gates_saturated"] = [sig(v) for v in series]
    return detection("gate_saturation", "warning", recs, reads, facts, suspects, changes,
                     {"lr": why} if why else None)


def short_memory(h: History) -> dict | None:
    """In some layer, memory_steps far below the horizon the data need (`memory_short` of the
    synthetic corpus's K) with most keep-gate entries left-saturated (`keep_left`), on
    `persist` records, while the loss is stalled above the floor: the cell forgets before the
    letters that matter arrive. On text whose horizon is not known the rule does not decide:
    a keep gate near 0 there may be the right choice (a GRU's z on tinyshakespeare sits at 0.9
    left-saturated while it learns well)."""
    cell = gated(h)
    if cell is None:
        return None
    if not h.horizon:
        return shut_from_start(h, cell)
    limit = THRESHOLDS["memory_short"] * h.horizon
    left = f"gate.{cell.KEEP}.left"

    def short(r):
        return [p for p in prefixes(h, r, "memory_steps") if r.get(f"{p}memory_steps", math.inf)
                < limit and r.get(f"{p}{left}", 0) > THRESHOLDS["keep_left"]]

    recs = streak(h, memory_keys(cell), short)
    t = stuck_above_floor(h) if recs else None
    if t is None:
        return None
    p = short(recs[-1])[0]
    cfg = h.cfg
    facts = {"layer": p.rstrip(".") or "the layer", "memory": values(recs, f"{p}memory_steps"),
             "left": values(recs, f"{p}{left}"), "keep": cell.KEEP, "horizon": h.horizon,
             "limit": limit, "best": best_eval(h), "floor": h.floor}
    changes = keep_open(h, cell)
    seq_len = cfg.get("seq_len")
    if seq_len and seq_len < 2 * h.horizon:
        changes.append({"seq_len": 2 * h.horizon})
    return detection("short_memory", "warning", recs,
                     quoted(recs, f"{p}memory_steps", f"{p}{left}"), facts,
                     ["keep_gate_closed"], changes)


def shut_from_start(h: History, cell: ModuleType) -> dict | None:
    """Where the data's horizon is not known: the keep gate shut from the run's first records to
    its last (over `keep_shut` of its entries below 0.1 on the first and the last `persist`
    records that carry it, moving less than `gate_still`): an init that closed it (a very
    negative forget bias), which the sigmoid's vanishing slope there keeps closed, so the cell
    never carries its state. A keep gate a cell closes while it learns (a GRU's z on text, 0.9
    left-saturated) starts open and is not flagged."""
    left, k = f"gate.{cell.KEEP}.left", THRESHOLDS["persist"]
    carrying = [r for r in h.records if all(r.get(key) is not None
                                            for key in memory_keys(cell))]
    if len(carrying) < 2 * k:
        return None
    first, recs = carrying[:k], carrying[-k:]
    shut = values(first + recs, left)
    if min(shut) <= THRESHOLDS["keep_shut"] or max(shut) - min(shut) >= THRESHOLDS["gate_still"]:
        return None
    facts = {"layer": "the layer", "memory": values(recs, "memory_steps"),
             "left": values(recs, left), "keep": cell.KEEP, "horizon": None,
             "since": first[0]["step"], "best": best_eval(h), "floor": h.floor}
    return detection("short_memory", "warning", recs, quoted(recs, "memory_steps", left), facts,
                     ["keep_gate_closed"], keep_open(h, cell))


def keep_open(h: History, cell: ModuleType) -> list:
    """Changes that open a closed keep gate: a forget bias of 1 (the LSTM's), chrono init."""
    cfg = h.cfg
    changes = [{"chrono_init": True}] if not cfg.get("chrono_init") else []
    if "forget_bias" in cell.INIT_FLAGS and cfg.get("forget_bias", -math.inf) < 1:
        changes.insert(0, {"forget_bias": 1.0})
    return changes


def stuck_above_floor(h: History) -> tuple[list, float] | None:
    """The loss stalled (plateau's test) and, when the corpus's floor is known, not at it."""
    return None if at_floor(h) else stalled(h, THRESHOLDS["plateau_gain"])


@dataclass(frozen=True)
class Rule:
    detect: Callable[[History], dict | None]
    needs: tuple[str, ...] | Callable[[ModuleType], tuple[str, ...]]  # the readings that
    # decide it (a gated cell's rule: of the cell's module); without them: "not measured"
    at_end: bool = False          # where a run ends up: must hold at its last record
    resolved: Callable[[History, dict], dict | None] | None = None  # over by the end: why
    horizon: bool = False         # decides only where the corpus says how far back data reach
    split: bool = False           # decides only where the config gives the training split's size


RULES = {  # in priority order: ties of severity are broken by it
    "diverged": Rule(diverged, ("train_nll",)),
    "exploding_gradients": Rule(exploding_gradients, ("grad_norm",)),
    # before saturation: an eval worse than a guess is where the run ends up; the units held
    # on the rails are how it got there (issue 29: both critical, the state's advice measured)
    "state_dependence": Rule(state_dependence, ("train_nll", "eval_nll")),
    "saturation": Rule(saturation, ("sat_ratio", "mean_gain"), resolved=saturation_resolved),
    "gate_saturation": Rule(gate_saturation, gate_keys),
    "short_memory": Rule(short_memory, memory_keys, horizon=True),
    "vanishing_gradients": Rule(vanishing_gradients, ("bptt_profile",),
                                resolved=vanishing_resolved),
    "update_too_large": Rule(update_too_large, ("update_ratio",)),
    "update_too_small": Rule(update_too_small, ("update_ratio", "train_nll")),
    "overfitting": Rule(overfitting, ("train_nll", "eval_nll", "chars"), at_end=True,
                        split=True),
    "plateau": Rule(plateau, ("train_nll",), at_end=True),
}
PRIORITY = tuple(RULES)


def rule_needs(rule: Rule, h: History) -> tuple[str, ...] | None:
    """The readings that decide rule in this run; None where it does not apply (a gated
    cell's rule on a cell without gates)."""
    if not callable(rule.needs):
        return rule.needs + (("train_chars",) if rule.split and not h.train_chars else ())
    cell = gated(h)
    if cell is None:
        return None
    return rule.needs(cell) + (("horizon",) if rule.horizon and not h.horizon else ())
