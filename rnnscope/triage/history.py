"""What every rule reads: the run's History, the one table of thresholds and the helpers that
find patterns in the records (a streak of records, a trend, a stall, the best eval).

Every number a rule compares against is in THRESHOLDS; the bounds of a healthy range come from
the table of readings (rnnscope/health.py). docs/triage.md gives the calibration runs behind each.
"""


from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ..cells import CELLS
from ..health import GRAD_NORM_RISE, HEALTHY
from ..heldout import STATE_KEYS
from ..records import finite

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
    "sat_leaving": 0.05,          # sat_ratio falling this much over the first streak: resolving
    # vanishing_gradients
    "vanish_k": 4,                # "a few steps" back through time ...
    "vanish_g": 0.03,             # ... less than this of a unit gradient survives
    # update_too_large / update_too_small
    "update_large": HEALTHY["update_ratio"][1],  # norm(delta theta) / norm(theta) per step
    "update_small": HEALTHY["update_ratio"][0],
    "update_target": 4e-3,        # the ratio of healthy Adam runs, used to suggest an --lr
    "weights_grew": HEALTHY["whh_sigma_max"][1],  # whh_sigma_max this many times its init
    "update_healthy": 2e-3,       # a run whose first records' ratio reached this started well
    "crawl": 0.05,                # update_too_small: train NLL moved less than 5% over the streak
    "lr_decayed": 0.5,            # records with lr below this fraction of --lr are not counted
    "loss_spike": 0.2,            # a train NLL 20% above the median of the window before it
    # overfitting
    "gap_growth": 0.1,            # nats the eval - train gap grew since the best eval
    "passes": 1.0,                # memorisation needs the training split read about once
    # an eval worse than a guess, and state_dependence
    "persist_state": 2,           # consecutive evals a state gap alone must hold on
    "persist_guess": 1,           # evals worse than a guess: one pass over the whole split
    "train_below": 0.3,           # nats the train NLL beside such an eval is below the guess
    "state_gap": 0.5,             # nats a fresh state scores the same text worse than carried
    "reset_every": 10,            # state_dependence's first step: --reset-every 10 (chunks)
    "state_batch": 16,            # ... then at least this many streams
    # plateau
    "plateau_gain": 0.005,        # train NLL improved less than 0.5% across the trend window
    "unigram_margin": 0.02,       # a best eval within 2% of the unigram baseline is "at" it
    "floor_margin": 0.1,          # nats above corpus.floor_nll that count as "at the floor"
    "gap_large": 0.2,             # eval NLL this many nats above train: generalisation limits
    # gate_saturation (gated cells)
    "gate_saturated": 0.5,        # most (over half) of a layer's sigmoid gate entries
    "gate_still": 0.02,           # ... below 0.1 or above 0.9, that fraction moving less than this
    "gate_both": 0.2,             # a broken start: this much on each rail (mean over the gates)
    # short_memory (gated cells)
    "memory_short": 0.25,         # memory_steps below this fraction of the horizon the data need
    "keep_left": 0.5,             # and over half of the keep gate's entries below 0.1
    "keep_shut": 0.95,            # without a horizon: this much of it below 0.1, first to last
    # capacity_not_limiting (rnnscope compare)
    "early_lead": 0.03,           # nats the larger model's train NLL is lower early on
    "same_plateau": 0.03,         # nats between the two best eval NLLs
    "differ_sat_ratio": 0.15,     # readings at the end that differ by more than these are named
    "differ_mean_gain": 0.1,      # as suspects (absolute difference) ...
    "differ_grad_norm": 2.0,      # ... or ratio
    "differ_update_ratio": 2.0,
}

# The learning rates of healthy runs, per optimizer: (lowest, highest). A suggested lr that the
# measured update ratio would put beyond them is kept within them (lr_step), so a run whose lr
# was far off gets one healthy runs use, not a fraction of its own. docs/triage.md gives the
# calibration runs and PyTorch defaults behind each bound.
LR_HEALTHY = {
    "adam": (1e-3, 1e-2),      # healthy 2e-3 .. 1e-2 (engine and PyTorch loops); 0.03 too large
    "rmsprop": (1e-3, 1e-2),   # healthy 1e-3 (a PyTorch GRU); PyTorch's default 1e-2
    "adagrad": (1e-2, 0.1),    # PyTorch's default 1e-2; min-char-rnn's 0.1
    "momentum": (0.01, 0.1),   # healthy 0.05 (engine), 0.02 (PyTorch); 1.0 diverges
    "sgd": (0.1, 1.0),         # healthy 1.0 with clipping (a PyTorch LSTM); 0.01 too small
}

SEVERITY = ("critical", "warning", "info")


@dataclass
class History:
    """The records of a run so far, with the views the rules read. `cfg` holds the run's
    settings (TrainConfig fields); a log without config.json may have none of them, and its
    vocabulary (so `uniform`) may be unknown."""
    cfg: dict
    uniform: float | None = None                # ln(vocab size): the NLL of a uniform guess
    unigram: float | None = None                # eval NLL of character frequencies, if known
    floor: float | None = None                  # the corpus's entropy rate, if known (SPEC 9)
    horizon: int | None = None                  # how far back the data need to look, if known
    train_chars: int | None = None              # the training split's size, if known
    records: list = field(default_factory=list)
    evals: list = field(default_factory=list)   # {"step", "eval_nll", "train_nll", "best"}
    since_eval: list = field(default_factory=list)
    firsts: dict = field(default_factory=dict)  # keys: the step of the first record with them
    spikes: list = field(default_factory=list)  # steps whose train NLL stood out: jumped()

    def add(self, rec: dict) -> None:
        if finite(rec.get("train_nll")):
            if jumped(rec["train_nll"], self.records[-THRESHOLDS["trend_window"]:]):
                self.spikes.append(rec["step"])
            self.since_eval.append(rec["train_nll"])
        self.records.append(rec)
        if finite(rec.get("eval_nll")) and self.since_eval:
            # the train NLL beside an eval is the mean since the previous eval, not one interval;
            # "best" is the eval with the lowest NLL up to this one
            e = {"step": rec["step"], "eval_nll": rec["eval_nll"],
                 "train_nll": statistics.fmean(self.since_eval), "chars": rec.get("chars"),
                 "train_now": rec.get("train_nll"),  # the interval just before the eval
                 **{k: rec.get(k) for k in STATE_KEYS}}
            best = self.evals[-1]["best"] if self.evals else e
            e["best"] = e if e["eval_nll"] < best["eval_nll"] else best
            self.evals.append(e)
            self.since_eval = []

    def first(self, keys: tuple) -> int | None:
        """The step of the run's first record that carries all of keys (None while none)."""
        if keys not in self.firsts:
            step = next((r["step"] for r in self.records if all(
                r.get(k) is not None for k in keys)), None)
            if step is None:
                return None
            self.firsts[keys] = step
        return self.firsts[keys]


def jumped(nll: float, before: list) -> bool:
    """A loss spike: nll `loss_spike` above the median train NLL of the records before it (at
    least half a trend window of them)."""
    values = [r["train_nll"] for r in before if finite(r.get("train_nll"))]
    return len(values) >= THRESHOLDS["trend_window"] // 2 and \
        nll > (1 + THRESHOLDS["loss_spike"]) * statistics.median(values)


# ---- helpers


def sig(v):
    return float(f"{v:.4g}") if finite(v) else v


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
    keys = [f"layer{l}.{name}" for l in range(h.cfg.get("layers", 1))]
    return keys if len(keys) > 1 and all(key in rec for key in keys) else [name]


def profile_at(profile: list, k: int) -> float:
    """g_k of a bptt_profile [[k, g_k], ...] at the largest recorded k not beyond k."""
    return [g for kk, g in profile if kk <= k][-1]


def growth(r: dict) -> float:
    """g_T of the through-time profile: 0 when the record has none."""
    profile = r.get("bptt_profile")
    return profile[-1][1] if profile and finite(profile[-1][1]) else 0.0


def improvement(values: list) -> float:
    """Relative drop from the mean of the first third of values to the mean of the last."""
    n = max(len(values) // 3, 1)
    first, last = statistics.fmean(values[:n]), statistics.fmean(values[-n:])
    return (first - last) / first


def trend(h: History) -> tuple[list, float] | None:
    """(records, improvement of train NLL) over the last trend window; None while not full."""
    w = THRESHOLDS["trend_window"]
    recs = [r for r in h.records[-w:] if finite(r.get("train_nll"))]
    return (recs, improvement([r["train_nll"] for r in recs])) if len(recs) == w else None


def stalled(h: History, max_gain: float) -> tuple[list, float] | None:
    """(records, improvement) when the train NLL improved less than max_gain over the trend
    window and no eval in that window set a new best; None otherwise, or while the window is
    not full. Train NLL alone is not enough: on a varied corpus it rises and falls with the
    text the streams pass through, while eval NLL reads the same text every time."""
    t = trend(h)
    if t is None or t[1] >= max_gain or new_best_since(h, t[0][0]["step"]):
        return None
    return t


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


def best_eval(h: History) -> float | None:
    return h.evals[-1]["best"]["eval_nll"] if h.evals else None


def last_gap(h: History) -> float:
    """Eval NLL minus the train NLL beside it at the last eval (0 without an eval)."""
    return h.evals[-1]["eval_nll"] - h.evals[-1]["train_nll"] if h.evals else 0.0


def guess(h: History, e: dict) -> tuple[float, str] | None:
    """(the NLL an eval must beat, its name): the unigram baseline once the train NLL beside
    the eval is `train_below` under it, else the uniform guess ln V, else (a log without its
    vocabulary) the run's first train NLL, where every run starts; None when none is known."""
    below = e["train_nll"] + THRESHOLDS["train_below"]
    if h.unigram is not None and below < h.unigram:
        return h.unigram, "unigram"
    if h.uniform is not None:
        return h.uniform, "uniform"
    first = next((r["train_nll"] for r in h.records if finite(r.get("train_nll"))), None)
    return (first, "first") if first is not None else None


def worse_than_guess(h: History) -> list | None:
    """The last `persist_guess` evals when each is above its guess (guess()) while the train
    NLL beside it, and that of the eval's own record (not a loss spike that took eval along),
    is `train_below` under that guess: never a healthy run. One eval is enough:
    it scores the whole held-out split, and no noise puts it above a uniform guess while the
    model scores its training text well."""
    last = h.evals[-THRESHOLDS["persist_guess"]:]
    if len(last) < THRESHOLDS["persist_guess"]:
        return None
    for e in last:
        g = guess(h, e)
        train = max(e["train_nll"], e["train_now"] if finite(e["train_now"]) else -math.inf)
        if g is None or not (e["eval_nll"] > g[0] > train + THRESHOLDS["train_below"]):
            return None
    return last


def state_gaps(e: dict) -> tuple[str, float] | None:
    """(which pair, how many nats a fresh state scores worse) at an eval: the held-out window
    from a zero against the carried state, or else the text just trained on from a zero state
    against train_nll; None without the readings."""
    if finite(e.get("eval_nll_fresh")) and finite(e.get("eval_nll_carried")):
        return "eval", e["eval_nll_fresh"] - e["eval_nll_carried"]
    if finite(e.get("train_nll_fresh")):
        return "train", e["train_nll_fresh"] - e["train_nll"]
    return None


def passes(h: History) -> float | None:
    """How many times the model has read its training split by the last eval: characters
    trained on over the split's size; None when the records or the config do not say."""
    chars = h.evals[-1].get("chars") if h.evals else None
    return chars / h.train_chars if finite(chars) and h.train_chars else None


def at_floor(h: History) -> bool:
    """The best eval NLL is within `floor_margin` of the corpus's known floor."""
    best = best_eval(h)
    return h.floor is not None and best is not None and best - h.floor < THRESHOLDS[
        "floor_margin"]


def quoted(recs: list, *keys) -> dict:
    return {key: [sig(r.get(key)) for r in recs] for key in keys if any(key in r for r in recs)}


def values(recs: list, key: str) -> list:
    return [r[key] for r in recs]


def scaled(h: History, name: str, factor: float) -> dict:
    """A change of a numeric setting to factor times the run's own value; ("x", factor) when
    the run's value is not known (a log without config.json)."""
    value = h.cfg.get(name)
    return {name: value * factor if finite(value) else ("x", factor)}


def lr_step(h: History, factor: float, ratio: float | None = None) -> tuple[dict, str]:
    """({"lr": the lr to try}, why): the run's lr times update_target / ratio when the update
    ratio was measured (ratio: its median), else times factor; kept within the lrs healthy runs
    of the run's optimizer use (LR_HEALTHY) where it would move past them in the direction it
    moves. Relative to the run's own ("x", factor) when its lr is not known."""
    lr, optimizer = h.cfg.get("lr"), h.cfg.get("optimizer")
    if ratio:
        factor = THRESHOLDS["update_target"] / ratio
        why = (f"the measured update_ratio {ratio:.2g} scaled to the healthy "
               f"{THRESHOLDS['update_target']:g} (lr x {factor:.2g})")
    else:
        why = f"lr x {factor:g}"
    if not finite(lr):
        return {"lr": ("x", factor)}, f"learning rate yours x {factor:.2g}: {why}"
    new, (lo, hi) = lr * factor, LR_HEALTHY.get(optimizer, (0.0, math.inf))
    down = factor < 1
    if down and new > hi or not down and new < lo:
        new, why = (hi if down else lo), f"{why} would give {lr * factor:.2g}: " + (
            f"the {'largest' if down else 'smallest'} lr healthy {optimizer} runs use")
    elif down and lr > lo > new or not down and lr < hi < new:
        new, why = (lo if down else hi), f"{why} would give {lr * factor:.2g}, beyond the " + (
            f"{'smallest' if down else 'largest'} lr healthy {optimizer} runs use")
    return {"lr": new}, f"lr {new:.2g} from {lr:g}: {why} (healthy {optimizer} runs: " \
        f"{lo:g}-{hi:g})" if optimizer in LR_HEALTHY else f"lr {new:.2g} from {lr:g}: {why}"


def init_sigma(cfg: dict) -> float:
    """whh_sigma_max at init, at least 1: what rnnscope.torch measured of your init, else
    --recurrent-scale (rnnscope's recurrent init has singular values of about that scale)."""
    return max(cfg.get("whh_sigma_init") or cfg.get("recurrent_scale", 1), 1)


def gated_cell() -> list:
    """The change to the first gated cell of the registry, the usual later step for a tanh RNN."""
    return [{"cell": name} for name, c in CELLS.items() if c.SIGMOID][:1]


def detection(id_: str, severity: str, recs: list, reads: dict, facts: dict, suspects: list,
              changes: list, why: dict | None = None) -> dict:
    """why: {setting: the reason for the value suggested} (words.py puts it in the evidence
    while a next step still suggests that setting)."""
    return {"id": id_, "severity": severity, "recs": recs, "readings": reads, "facts": facts,
            "suspects": suspects, "changes": changes, "why": why or {}}
