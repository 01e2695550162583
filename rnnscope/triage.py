"""Triage: read a run's panel records and say what holds the training back (SPEC section 4).

One rule per finding id, each a short function of the History (the records so far) that returns
a finding or None. Every number a rule compares against is in THRESHOLDS; docs/triage.md gives
the calibration runs behind each one. A rule needs persistence: its condition must hold on
`persist` consecutive records (`persist_evals` consecutive evals for overfitting, a whole
`trend_window` of records for plateau), so one noisy reading never fires. Only a NaN/inf is
believed at once.

A finding is a dict:

    {"id": "saturation", "severity": "info" | "warning" | "critical",
     "evidence": {"seen": one sentence with the readings and steps,
                  "steps": [the steps of the records that triggered it],
                  "readings": {reading: [its value at each of those steps]},
                  "caveat": when the finding may be a false positive},
     "suspects": [what it usually means, most likely first],
     "next": [rnnscope flags to try, first to try first, computed from the run's config]}

The live Watch sees one record at a time and reports each finding once, when it first holds.
diagnose() replays a whole run through a Watch: its findings are those that held at some point,
except overfitting and plateau, which describe where a run ends up and must hold at its last
record. The verdict is the most severe finding (ties broken by PRIORITY), "healthy" if none.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import records as run_records
from . import runs
from .config import CELLS, TrainConfig, flag
from .health import GRAD_NORM_RISE, HEALTHY

THRESHOLDS = {  # the bounds of a healthy range come from rnnscope/health.py, one table
    # persistence
    "persist": 5,                 # consecutive records a per-record condition must hold on
    "persist_evals": 3,           # consecutive evals for overfitting
    "trend_window": 20,           # records over which a loss trend is measured
    "min_records": 30,            # plateau: fewer records are too short to tell
    # diverged
    "loss_above_uniform": 1.0,    # train NLL this many nats above ln(vocab), where runs start
    # exploding_gradients
    "clip_rate": HEALTHY["clip_rate"][1],  # clipping fires on more than half of the steps
    "profile_growth": 1.0,        # g_T: a unit gradient at h_T arrives larger after T steps
    "grad_spike": GRAD_NORM_RISE,  # grad_norm above this multiple of its median before
    # saturation
    "sat_ratio": HEALTHY["sat_ratio"][1],  # over half of the units beyond --sat-threshold ...
    "mean_gain": HEALTHY["mean_gain"][0],  # ... and the mean tanh derivative below this
    "loss_rise": 0.02,            # saturation after the start: train NLL 2% worse over a window
    # vanishing_gradients
    "vanish_k": 4,                # "a few steps" back through time ...
    "vanish_g": 0.03,             # ... less than this of a unit gradient survives
    # update_too_large / update_too_small
    "update_large": HEALTHY["update_ratio"][1],  # norm(delta theta) / norm(theta) per step
    "update_small": HEALTHY["update_ratio"][0],
    "update_target": 4e-3,        # the ratio of healthy Adam runs, used to suggest an --lr
    "crawl": 0.05,                # update_too_small: train NLL fell less than 5% over the streak
    "lr_decayed": 0.5,            # records with lr below this fraction of --lr are not counted
    # overfitting
    "gap_growth": 0.1,            # nats the eval - train gap grew since the best eval
    # plateau
    "plateau_gain": 0.005,        # train NLL improved less than 0.5% across the trend window
    "unigram_margin": 0.02,       # a best eval within 2% of the unigram baseline is "at" it
    # capacity_not_limiting (rnnscope compare)
    "early_lead": 0.05,           # nats the larger model's train NLL is lower early on
    "same_plateau": 0.03,         # nats between the two best eval NLLs
    "similar_sat": 0.15,          # sat_ratio difference at the last matched step
    "similar_grad": 2.0,          # grad_norm ratio at the last matched step
}

PRIORITY = ("diverged", "exploding_gradients", "saturation", "vanishing_gradients",
            "update_too_large", "update_too_small", "overfitting", "plateau")
SEVERITY = ("critical", "warning", "info")
AT_END = ("overfitting", "plateau")  # findings about where a run ends up: must hold at the end


@dataclass
class History:
    """The records of a run so far, with the views the rules read."""
    cfg: dict                                   # TrainConfig fields
    uniform: float | None                       # ln(vocab size): the NLL of a uniform guess
    unigram: float | None = None                # eval NLL of character frequencies, if known
    records: list = field(default_factory=list)
    evals: list = field(default_factory=list)   # {"step", "eval_nll", "train_nll", "best"}
    since_eval: list = field(default_factory=list)
    first_panel: int | None = None              # step of the first record with the panel

    def add(self, rec: dict) -> None:
        self.records.append(rec)
        if self.first_panel is None and "sat_ratio" in rec:
            self.first_panel = rec["step"]
        if finite(rec.get("train_nll")):
            self.since_eval.append(rec["train_nll"])
        if finite(rec.get("eval_nll")) and self.since_eval:
            # the train NLL beside an eval is the mean since the previous eval, not one interval;
            # "best" is the eval with the lowest NLL up to this one
            e = {"step": rec["step"], "eval_nll": rec["eval_nll"],
                 "train_nll": statistics.fmean(self.since_eval)}
            best = self.evals[-1]["best"] if self.evals else e
            e["best"] = e if e["eval_nll"] < best["eval_nll"] else best
            self.evals.append(e)
            self.since_eval = []


# ---- helpers


def finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def sig(v):
    return float(f"{v:.4g}") if finite(v) else v


def span(values, fmt: str = ".3g") -> str:
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def streak(h: History, keys: tuple, holds) -> list | None:
    """The last `persist` records that carry `keys`, if holds(record) is true on all of them.
    Records without those keys (the final record, a run without the panel) are skipped."""
    k = THRESHOLDS["persist"]
    found = []
    for rec in reversed(h.records[-3 * k:]):
        if all(rec.get(key) is not None for key in keys):
            found.append(rec)
            if len(found) == k:
                break
    if len(found) < k or not all(holds(r) for r in found):
        return None
    return found[::-1]


def layer_keys(h: History, rec: dict, name: str) -> list[str]:
    """The keys of a per-layer reading for every layer; the aggregate's for one layer (the
    same value) or where the per-layer keys are absent."""
    keys = [f"layer{l}.{name}" for l in range(h.cfg["layers"])]
    return keys if len(keys) > 1 and all(key in rec for key in keys) else [name]


def profile_at(profile: list, k: int) -> float:
    """g_k of a bptt_profile [[k, g_k], ...] at the largest recorded k not beyond k."""
    return [g for kk, g in profile if kk <= k][-1]


def improvement(values: list) -> float:
    """Relative drop from the mean of the first third of values to the mean of the last."""
    n = max(len(values) // 3, 1)
    first, last = statistics.fmean(values[:n]), statistics.fmean(values[-n:])
    return (first - last) / first


def stalled(h: History, max_gain: float) -> tuple[list, float] | None:
    """(records, improvement) when the train NLL improved less than max_gain over the trend
    window and no eval in that window set a new best; None otherwise, or while the window is
    not full. Train NLL alone is not enough: on a varied corpus it rises and falls with the
    text the streams pass through, while eval NLL reads the same text every time."""
    w = THRESHOLDS["trend_window"]
    recs = [r for r in h.records[-w:] if finite(r.get("train_nll"))]
    if len(recs) < w:
        return None
    gain = improvement([r["train_nll"] for r in recs])
    if gain >= max_gain or new_best_since(h, recs[0]["step"]):
        return None
    return recs, gain


def new_best_since(h: History, step: int) -> bool:
    """Whether an eval at or after `step` beat the best before it by `plateau_gain` (True when
    there is no eval before it to compare with)."""
    n = sum(e["step"] >= step for e in h.evals[-THRESHOLDS["trend_window"]:])
    if n == 0:
        return False
    if n == len(h.evals):
        return True
    before = h.evals[-n - 1]["best"]["eval_nll"]
    return h.evals[-1]["best"]["eval_nll"] < before * (1 - THRESHOLDS["plateau_gain"])


def lr_flag(cfg: dict, factor: float) -> str:
    return change(cfg, "lr", lambda lr: f"{lr * factor:.2g}", f"yours x {factor:.2g}")


def change(cfg: dict, key: str, new, relative: str) -> str:
    """The flag that sets `key` to new(its value), or, for a run whose log does not give the
    setting (a user's own network, docs/format.md), the change relative to the user's own."""
    value = cfg.get(key)
    return f"--{flag(key)} {new(value)}" if value is not None else f"--{flag(key)} ({relative})"


def said(cfg: dict, key: str, words: str) -> str:
    """words.format(setting) when the run's config gives the setting, else ''."""
    value = cfg.get(key)
    return words.format(value) if value is not None else ""


def readings(recs: list, *keys) -> dict:
    return {key: [sig(r.get(key)) for r in recs] for key in keys}


def finding(id_: str, severity: str, seen: str, recs: list, reads: dict, caveat: str,
            suspects: list, next_: list) -> dict:
    return {"id": id_, "severity": severity,
            "evidence": {"seen": seen, "steps": [r["step"] for r in recs], "readings": reads,
                         "caveat": caveat},
            "suspects": suspects, "next": list(dict.fromkeys(next_))}


def gated_cell() -> list:
    return ["--cell gru"] if "gru" in CELLS else []


# ---- the rules


def diverged(h: History) -> dict | None:
    """A NaN/inf anywhere (at once), or the train NLL far above where every run starts."""
    cfg, rec = h.cfg, h.records[-1]
    # per-parameter readings (with a dot) may be inf for a weight that is still zero
    bad = sorted(k for k, v in rec.items() if v is None and "." not in k)
    if bad or "diverged" in rec:
        evals = [e["step"] for e in h.evals]
        kept = f"checkpoint.npz holds step {evals[-1]}, the last eval" if evals \
            else "no checkpoint was written before it"
        what = f"training stopped: {rec['diverged']}" if "diverged" in rec else \
            f"{', '.join(bad)} became NaN/inf"
        lr = rec.get("lr", cfg.get("lr"))
        seen = f"at step {rec['step']} {what}{'' if lr is None else f' (lr {lr:g})'}; {kept}"
        return divergence(h, seen, [rec], {k: [None] for k in bad})
    start = [r["train_nll"] for r in h.records if finite(r.get("train_nll"))][:1]
    if h.uniform is None and not start:
        return None
    limit = (h.uniform if h.uniform is not None else start[0]) + THRESHOLDS["loss_above_uniform"]
    recs = streak(h, ("train_nll",), lambda r: r["train_nll"] > limit)
    if recs is None:
        return None
    where = f"the {h.uniform:.3f} of a uniform guess where training starts" \
        if h.uniform is not None else f"the first recorded train NLL {start[0]:.3f}"
    seen = (f"train NLL {span([r['train_nll'] for r in recs])} at steps {recs[0]['step']}-"
            f"{recs[-1]['step']}, more than {THRESHOLDS['loss_above_uniform']:g} nats above "
            f"{where}")
    return divergence(h, seen, recs, readings(recs, "train_nll"))


def divergence(h: History, seen: str, recs: list, reads: dict) -> dict:
    cfg = h.cfg
    suspects = [f"learning rate{said(cfg, 'lr', ' {:g}')} too high"
                f"{said(cfg, 'optimizer', ' for --optimizer {}')}"]
    next_ = [lr_flag(cfg, 0.1)]
    if cfg.get("clip") == "none":
        suspects.append("no gradient clipping (--clip none)")
        next_.append("--clip norm")
    if cfg.get("optimizer") in ("sgd", "momentum"):
        next_.append("--optimizer adam --lr 0.002")
    return finding("diverged", "critical", seen, recs, reads,
                   "none: a NaN or a loss this far above a uniform guess is never noise",
                   suspects, next_)


def exploding_gradients(h: History) -> dict | None:
    """Clipping on most steps, a through-time profile that grows, or grad_norm far above its
    median before the streak, on `persist` consecutive records."""
    cfg, k = h.cfg, THRESHOLDS["persist"]
    before = [r["grad_norm"] for r in h.records[-k - THRESHOLDS["trend_window"]:-k]
              if finite(r.get("grad_norm"))]
    usual = statistics.median(before) if len(before) >= k else math.inf

    def explodes(r):
        return (r["clip_rate"] > THRESHOLDS["clip_rate"] or growth(r) > THRESHOLDS[
            "profile_growth"] or r["grad_norm"] > THRESHOLDS["grad_spike"] * usual)

    recs = streak(h, ("grad_norm", "clip_rate"), explodes)
    if recs is None:
        return None
    norms, clips = ([r[key] for r in recs] for key in ("grad_norm", "clip_rate"))
    seen = [f"at steps {recs[0]['step']}-{recs[-1]['step']} grad_norm was {span(norms)}"]
    if max(norms) > THRESHOLDS["grad_spike"] * usual:
        seen.append(f"up to {max(norms) / usual:.0f} times its median {usual:.3g} before")
    if max(clips) > THRESHOLDS["clip_rate"]:
        seen.append(f"clipping fired on {span(clips, '.0%')} of the steps")
    grows = [growth(r) for r in recs]
    if max(grows) > THRESHOLDS["profile_growth"]:
        T = max(r["bptt_profile"][-1][0] for r in recs if growth(r))  # the chunk length
        seen.append(f"a unit gradient at h_T arrived {span(grows)} times as large {T} steps "
                    "back")
    seen = ", ".join(seen)
    suspects, next_ = [], []
    if max(grows) > THRESHOLDS["profile_growth"]:
        sigma = max(r.get("whh_sigma_max") or 0 for r in recs)
        suspects.append(f"recurrent weights that amplify the gradient through time: "
                        f"whh_sigma_max {sigma:.3g}"
                        f"{said(cfg, 'recurrent_scale', ' (init --recurrent-scale {:g})')}")
        if cfg.get("recurrent_scale", 1) > 1:
            next_.append("--recurrent-scale 1")
    suspects.append(f"learning rate{said(cfg, 'lr', ' {:g}')} too high for the gradient scale")
    next_ += ["--clip norm"] if cfg.get("clip") == "none" else []
    next_.append(lr_flag(cfg, 0.5))
    next_ += [] if cfg.get("optimizer") == "adam" else ["--optimizer adam --lr 0.002"]
    reads = readings(recs, "grad_norm", "clip_rate", "whh_sigma_max")
    reads["bptt_growth"] = [sig(g) for g in grows]
    return finding("exploding_gradients", "critical" if cfg.get("clip") == "none" else "warning",
                   seen, recs, reads,
                   f"a --clip-value far below the usual grad_norm"
                   f"{said(cfg, 'clip_value', ' (here {:g})')} "
                   "makes clipping fire on every step without any explosion", suspects, next_)


def growth(r: dict) -> float:
    """g_T of the through-time profile: 0 when the record has none."""
    profile = r.get("bptt_profile")
    return profile[-1][1] if profile and finite(profile[-1][1]) else 0.0


def saturation(h: History) -> dict | None:
    """Units on the tanh rails in some layer, on `persist` consecutive records that are either
    the run's first (a broken start) or end a trend window over which the loss got worse.
    A run that drifts towards the rails while it still learns is not flagged."""
    cfg = h.cfg

    def saturated(r) -> list:  # the (sat_ratio, mean_gain) keys of each saturated layer
        pairs = zip(layer_keys(h, r, "sat_ratio"), layer_keys(h, r, "mean_gain"), strict=True)
        return [(s, g) for s, g in pairs if r[s] is not None and r[g] is not None and
                r[s] > THRESHOLDS["sat_ratio"] and r[g] < THRESHOLDS["mean_gain"]]

    recs = streak(h, ("sat_ratio", "mean_gain"), saturated)
    if recs is None:
        return None
    sat, gain = saturated(recs[-1])[0]
    first = recs[0]["step"] == h.first_panel
    t = None if first else stalled(h, -THRESHOLDS["loss_rise"])
    if not first and t is None:
        return None
    when = "from the first record" if first else \
        f"while train NLL got {-t[1]:.0%} worse over the last {len(t[0])} records"
    seen = (f"{when}, {sat} {span([r[sat] for r in recs])} and {gain} "
            f"{span([r[gain] for r in recs])} at steps {recs[0]['step']}-{recs[-1]['step']}: "
            "most units sit on the tanh rails, where the tanh derivative passes on about "
            f"{recs[-1][gain]:.0%} of the gradient at each step")
    suspects, next_ = [], []
    if cfg.get("recurrent_scale", 1) > 1 or cfg.get("input_scale", 1) > 1:
        suspects.append(f"initial weights too large (--recurrent-scale "
                        f"{cfg['recurrent_scale']:g} --input-scale {cfg['input_scale']:g})")
        next_.append("--recurrent-scale 1 --input-scale 1")
    ratio = statistics.median(r.get("update_ratio") or 0 for r in recs)
    if ratio > THRESHOLDS["update_large"]:
        suspects.append(f"updates too large (update_ratio {ratio:.2g}) push units to the rails")
    suspects.append("learning rate too high, or clipping too loose")
    next_.append(lr_flag(cfg, min(0.25, THRESHOLDS["update_target"] / max(ratio, 1e-12))))
    next_ += ["--clip norm"] if cfg.get("clip") == "none" else []
    reads = readings(recs, sat, gain, "dh_norm", "dh_raw_norm")
    return finding("saturation", "critical" if first else "warning", seen, recs, reads,
                   "long healthy runs drift towards the rails while they learn (sat_ratio "
                   "0.24 -> 0.65 in 12 minutes); this rule only fires from the start or while "
                   "the loss rises", suspects, next_ + gated_cell())


def vanishing_gradients(h: History) -> dict | None:
    """In some layer, less than `vanish_g` of a unit gradient survives `vanish_k` steps back."""
    cfg, k = h.cfg, THRESHOLDS["vanish_k"]

    def survives(r):  # NaN entries (written as null) are left to the diverged rule
        g = [profile_at(r[key], k) for key in layer_keys(h, r, "bptt_profile")]
        return min((v for v in g if finite(v)), default=math.inf)

    recs = streak(h, ("bptt_profile", "whh_sigma_max", "mean_gain"),
                  lambda r: survives(r) < THRESHOLDS["vanish_g"])
    if recs is None:
        return None
    seen = (f"at steps {recs[0]['step']}-{recs[-1]['step']} only "
            f"{span([survives(r) for r in recs])} of a unit gradient injected at h_T is left "
            f"{k} steps back (bptt_profile; whh_sigma_max "
            f"{span([r['whh_sigma_max'] for r in recs])}): nothing further back can be learned")
    suspects, next_ = [], []
    if cfg.get("recurrent_scale", 1) < 1:
        suspects.append(f"recurrent weights too small (--recurrent-scale "
                        f"{cfg['recurrent_scale']:g})")
        next_.append("--recurrent-scale 1")
    if min(r["mean_gain"] for r in recs) < THRESHOLDS["mean_gain"]:
        suspects.append("saturated units: the tanh derivative is small")
    suspects.append(f"a recurrence too weak{said(cfg, 'hidden', ' for --hidden {}')}")
    if cfg.get("recurrent_init") != "identity":
        next_.append("--recurrent-init identity")
    next_ += gated_cell() + [change(cfg, "seq_len", lambda T: max(T // 2, k), "yours / 2")]
    reads = readings(recs, "whh_sigma_max", "mean_gain")
    reads[f"g_{k}"] = [sig(survives(r)) for r in recs]
    return finding("vanishing_gradients", "warning", seen, recs, reads,
                   "text without long-range structure (random characters) teaches a model to "
                   "ignore the past; its profile then decays without harm", suspects, next_)


def update_too_large(h: History) -> dict | None:
    recs = streak(h, ("update_ratio",), lambda r: r["update_ratio"] > THRESHOLDS["update_large"])
    if recs is None:
        return None
    nll = [r["train_nll"] for r in recs if finite(r.get("train_nll"))]
    jumps = max((abs(b - a) for a, b in zip(nll, nll[1:], strict=False)), default=0.0)
    seen = (f"update_ratio {span([r['update_ratio'] for r in recs])} at steps {recs[0]['step']}-"
            f"{recs[-1]['step']}: each step moves the weights by over "
            f"{THRESHOLDS['update_large']:.1%} of their norm; train NLL jumped by up to "
            f"{jumps:.2f} between records")
    return update_finding("update_too_large", h, recs, seen, [
        f"learning rate{said(h.cfg, 'lr', ' {:g}')} too high"], ["--lr-schedule cosine"],
        "the first records of any run have large ratios while the weights are small; the rule "
        "needs them on consecutive records")


def update_too_small(h: History) -> dict | None:
    """Tiny updates while the loss crawls; records of a decayed schedule are not counted."""
    lr_min = THRESHOLDS["lr_decayed"] * h.cfg.get("lr", 0)
    recs = streak(h, ("update_ratio", "train_nll"), lambda r: r["update_ratio"] <
                  THRESHOLDS["update_small"] and r.get("lr", math.inf) >= lr_min)
    if recs is None or improvement([r["train_nll"] for r in recs]) > THRESHOLDS["crawl"]:
        return None
    seen = (f"update_ratio {span([r['update_ratio'] for r in recs])} at steps "
            f"{recs[0]['step']}-{recs[-1]['step']} while train NLL only went "
            f"{recs[0]['train_nll']:.3f} -> {recs[-1]['train_nll']:.3f}")
    other = [] if h.cfg.get("optimizer") == "adam" else ["--optimizer adam --lr 0.002"]
    return update_finding("update_too_small", h, recs, seen, [
        f"learning rate{said(h.cfg, 'lr', ' {:g}')} too low"
        f"{said(h.cfg, 'optimizer', ' for --optimizer {}')}"], other,
        "a schedule that anneals the lr makes small updates on purpose (records below "
        f"{THRESHOLDS['lr_decayed']:g} x --lr are not counted)")


def update_finding(id_: str, h: History, recs: list, seen: str, suspects: list, more: list,
                   caveat: str) -> dict:
    """The update_too_* finding: an --lr that scales the median ratio to the healthy one."""
    ratio = statistics.median(r["update_ratio"] for r in recs)
    next_ = [lr_flag(h.cfg, THRESHOLDS["update_target"] / ratio)] + more
    return finding(id_, "warning", seen, recs, readings(recs, "update_ratio", "train_nll", "lr"),
                   caveat, suspects, next_)


def overfitting(h: History) -> dict | None:
    """On `persist_evals` consecutive evals: no new best eval NLL, and the eval - train gap
    grown by `gap_growth` nats since the best eval."""
    k = THRESHOLDS["persist_evals"]
    if len(h.evals) <= k:
        return None
    best = h.evals[-k - 1]["best"]
    gap0 = best["eval_nll"] - best["train_nll"]
    last = h.evals[-k:]
    if not all(e["eval_nll"] > best["eval_nll"] and e["eval_nll"] - e["train_nll"] - gap0 >
               THRESHOLDS["gap_growth"] for e in last):
        return None
    cfg = h.cfg
    seen = (f"eval NLL {last[0]['eval_nll']:.3f} -> {last[-1]['eval_nll']:.3f} at steps "
            f"{last[0]['step']}-{last[-1]['step']}, above its best {best['eval_nll']:.3f} "
            f"(step {best['step']}, kept in best.npz), while train NLL went "
            f"{best['train_nll']:.3f} -> {last[-1]['train_nll']:.3f}: the gap grew from "
            f"{gap0:.2f} to {last[-1]['eval_nll'] - last[-1]['train_nll']:.2f} nats")
    next_ = [change(cfg, "dropout", lambda p: f"{min(p + 0.2, 0.5):g}", "yours + 0.2"),
             change(cfg, "weight_decay", lambda w: f"{max(w * 10, 0.1):g}", "yours x 10")]
    if cfg.get("hidden", math.inf) > 32:
        next_.append(change(cfg, "hidden", lambda H: H // 2, "yours / 2"))
    next_.append("--corpus LARGER_TEXT")
    return finding("overfitting", "warning", seen, last,
                   {key: [sig(e[key]) for e in last] for key in ("eval_nll", "train_nll")},
                   f"a small eval split{said(cfg, 'eval_frac', ' (--eval-frac {:g})')} makes "
                   f"eval NLL noisy; {k} evals in a row are needed",
                   [f"the model memorises the training text: "
                    f"{said(cfg, 'hidden', '--hidden {} x ')}--layers {cfg['layers']} for this "
                    "much data, without regularisation"],
                   next_)


def plateau(h: History) -> dict | None:
    """Stalled: the train NLL improved less than `plateau_gain` over the trend window and no
    eval in it set a new best, in a run of at least `min_records` records."""
    t = stalled(h, THRESHOLDS["plateau_gain"])
    if t is None or len(h.records) < THRESHOLDS["min_records"]:
        return None
    recs, gain = t
    first = recs[0]["step"]
    cfg = h.cfg
    seen = (f"train NLL {recs[0]['train_nll']:.3f} -> {recs[-1]['train_nll']:.3f} over steps "
            f"{first}-{recs[-1]['step']} ({gain:+.1%}), no new best eval in that stretch, "
            "and no other reading out of range")
    suspects = ["the model has learned what this size and recipe can learn"]
    best = h.evals[-1]["best"]["eval_nll"] if h.evals else None
    if h.unigram and best and best > h.unigram * (1 - THRESHOLDS["unigram_margin"]):
        seen += (f"; the best eval NLL {best:.3f} is at the unigram baseline {h.unigram:.3f}: "
                 "nothing beyond character frequencies was learned")
        suspects.insert(0, "the text has no structure beyond character frequencies, or the "
                           "model does not use its context")
    next_ = [change(cfg, "hidden", lambda H: H * 2, "yours x 2"),
             f"--layers {cfg['layers'] + 1}"] + gated_cell()
    if cfg.get("lr_schedule") == "constant":
        next_.append("--lr-schedule plateau")
    return finding("plateau", "info", seen, [recs[0], recs[-1]],
                   readings([recs[0], recs[-1]], "train_nll"),
                   "the loss may already be near what the data allow (text with little "
                   "structure), or the run is still young: compare with a larger model",
                   suspects, next_)


RULES = (diverged, exploding_gradients, saturation, vanishing_gradients, update_too_large,
         update_too_small, overfitting, plateau)


# ---- watching a run, diagnosing a run


class Watch:
    """Findings as a run trains: update() with each record returns the findings that first hold
    after it (each finding once). Cheap: every rule reads only the last few dozen records."""

    def __init__(self, config: TrainConfig | dict, vocab_size: int | None,
                 unigram_eval_nll: float | None = None) -> None:
        """config: a run's settings; a user's log may give only some (docs/format.md).
        vocab_size None: unknown, the first train NLL stands for where training starts."""
        cfg = asdict(config) if isinstance(config, TrainConfig) else dict(config)
        self.history = History(cfg, math.log(vocab_size) if vocab_size else None,
                               unigram_eval_nll)
        self.fired: dict[str, dict] = {}

    @classmethod
    def for_run(cls, path: Path) -> Watch:
        """A Watch for the run in path that has already seen the records written so far."""
        watch = cls.for_config(runs.read_config(path))
        for rec in runs.read_metrics(path):
            watch.update(rec)
        return watch

    @classmethod
    def for_config(cls, doc: dict) -> Watch:
        """A Watch for a run whose config.json is doc."""
        return cls(doc["config"], run_records.vocab_size(doc),
                   doc.get("corpus", {}).get("unigram_eval_nll"))

    def update(self, record: dict) -> list[dict]:
        self.history.add(record)
        new = []
        for rule in RULES:
            name = rule.__name__
            if name in self.fired or (name == "plateau" and self.fired):
                continue
            f = rule(self.history)
            if f is not None:
                self.fired[name] = f
                new.append(f)
        return sorted(new, key=rank)

    def findings(self) -> list[dict]:
        """The findings of the run so far, most severe first (see the module docstring)."""
        out = [f for f in self.fired.values() if f["id"] not in AT_END]
        for rule in (overfitting, plateau):
            f = rule(self.history) if self.history.records else None
            if f is not None and (rule is overfitting or not out):
                out.append(f)
        return sorted(out, key=rank)


def rank(f: dict) -> tuple:
    """Most severe first, then the fixed priority of the finding ids."""
    return SEVERITY.index(f["severity"]), PRIORITY.index(f["id"])


def diagnose(records: list[dict], config_doc: dict) -> dict:
    """{"verdict", "findings"} for the records of a run whose config.json is config_doc."""
    watch = Watch.for_config(config_doc)
    for rec in records:
        watch.update(rec)
    found = watch.findings()
    return {"verdict": found[0]["id"] if found else "healthy", "findings": found}


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


# ---- words


def headline(f: dict) -> str:
    """One line for the live panel: id, severity, what was seen, what to try first."""
    return f"{f['id']} ({f['severity']}): {f['evidence']['seen']}; try {f['next'][0]}"


def format_finding(f: dict) -> str:
    ev = f["evidence"]
    lines = [f"{f['id']} ({f['severity']})", f"  seen: {ev['seen']}",
             f"  usually means: {'; '.join(f['suspects'])}",
             f"  try first: {f['next'][0]}"]
    if len(f["next"]) > 1:
        lines.append(f"  then: {'   '.join(f['next'][1:])}")
    lines.append(f"  may be a false positive when: {ev['caveat']}")
    return "\n".join(lines)


def format_diagnosis(result: dict) -> str:
    """The doctor's words: the verdict, then each finding."""
    if not result["findings"]:
        return "verdict: healthy: learning, and no reading is out of range; keep training"
    head = f"verdict: {result['verdict']} ({len(result['findings'])} finding" \
        f"{'s' if len(result['findings']) > 1 else ''})"
    return "\n\n".join([head] + [format_finding(f) for f in result["findings"]])
