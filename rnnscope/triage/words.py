"""The triage's words: a detection of rules.py as the finding a user reads.

A finding (the shape of `rnnscope doctor --json`, SPEC section 4):

    {"id": "saturation", "severity": "info" | "warning" | "critical",
     "evidence": {"seen": one sentence with the readings and steps,
                  "steps": [the steps of the records that triggered it],
                  "readings": {reading: [its value at each of those steps]},
                  "caveat": when the finding may be a false positive,
                  "consequences": [what it explains: {"id", "severity", "evidence"}, ...]},
     "suspects": [what it usually means, most likely first],
     "next": [next steps, first to try first, computed from the run's config: steps.py
              {"setting", "value", "settings", "text"}, the text worded for the run's source]}

"consequences" is there only when the finding explains others; they share its next steps.
"""

from __future__ import annotations

import string

from .history import THRESHOLDS, init_sigma
from .steps import next_step


class Words(string.Formatter):
    """str.format that writes "?" for a setting a log without config.json did not record."""

    def get_value(self, key, args, kwargs):
        value = kwargs.get(key)
        return "?" if value is None else value

    def format_field(self, value, spec):
        return "?" if value == "?" else super().format_field(value, spec)


WORDS = Words()


def span(values, fmt: str = ".3g") -> str:
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def steps(recs: list) -> str:
    return f"{recs[0]['step']}-{recs[-1]['step']}"


def at_steps(recs: list) -> str:
    """"step 500" or "steps 500-1000"."""
    return f"step {recs[0]['step']}" if len(recs) == 1 else f"steps {steps(recs)}"


# ---- what was seen, per finding id: (facts, records) -> one sentence


def seen_diverged(f: dict, recs: list) -> str:
    if f["kind"] == "nan":
        kept = f"checkpoint.npz holds step {f['kept']}, the last eval" if f["kept"] is not None \
            else "no checkpoint was written before it"
        what = f"training stopped: {f['stopped']}" if f["stopped"] else \
            f"{', '.join(f['bad'])} became NaN/inf"
        lr = f" (lr {f['lr']:g})" if f["lr"] is not None else ""
        return f"at step {f['step']} {what}{lr}; {kept}"
    base = f"the {f['base']:.3f} of a uniform guess where training starts" if f["uniform"] \
        else f"the first recorded train NLL {f['base']:.3f}"
    nats = "nat" if f["above"] == 1 else "nats"
    return (f"train NLL {span(f['nll'])} at steps {steps(recs)}, more than {f['above']:g} "
            f"{nats} above {base}")


def seen_exploding_gradients(f: dict, recs: list) -> str:
    if f["early"]:
        e = f["early"]
        clip = "with no clipping to stop it" if e["unclipped"] else "although clipping was on"
        return (f"before the first record the gradient exploded {clip}: grad_norm_max "
                f"{e['peak']:.3g} in the first interval, {e['peak'] / e['median']:.0f} times the "
                f"median grad_norm {e['median']:.3g} of steps {steps(recs)}, and from the first "
                f"record whh_sigma_max {span(e['grown'])}, {min(e['grown']) / e['init']:.0f} "
                f"times its {e['init']:.3g} at init: the recurrent weights were blown up")
    seen = [f"at steps {steps(recs)} grad_norm was {span(f['norms'])}"]
    if f["spiked"]:
        seen.append(f"up to {max(f['norms']) / f['usual']:.0f} times its median {f['usual']:.3g} "
                    "before")
    if f["clipping"]:
        seen.append(f"clipping fired on {span(f['clips'], '.0%')} of the steps")
    if f["amplifies"]:
        seen.append(f"a unit gradient at h_T arrived {span(f['grows'])} times as large a chunk "
                    "back")
    return ", ".join(seen)


def seen_saturation(f: dict, recs: list) -> str:
    when = "from the first record" if f["first"] else \
        f"while train NLL got {f['worse']:.0%} worse over the last {f['window']} records"
    return (f"{when}, {f['sat']} {span(f['sats'])} and {f['gain']} {span(f['gains'])} at steps "
            f"{steps(recs)}: most units sit on the tanh rails, where the tanh derivative passes "
            f"on about {f['gains'][-1]:.0%} of the gradient at each step")


def seen_vanishing_gradients(f: dict, recs: list) -> str:
    sigma = f"; whh_sigma_max {span(f['sigmas'])}" if f["sigmas"] else ""
    return (f"at steps {steps(recs)} only {span(f['g'])} of a unit gradient injected at h_T is "
            f"left {f['k']} steps back (bptt_profile{sigma}): nothing further back can be "
            "learned")


def seen_update_too_large(f: dict, recs: list) -> str:
    if f["grown"]:
        return (f"from the first record whh_sigma_max {span(f['grown'])} at steps {steps(recs)}, "
                f"{min(f['grown']) / f['scale']:.0f} times its initial {f['scale']:g}: the first "
                f"{f['first']} steps were large enough to blow the recurrent weights up "
                f"(update_ratio {span(f['ratios'])} of the grown weights)")
    return (f"update_ratio {span(f['ratios'])} at steps {steps(recs)}: each step moves the "
            f"weights by over {f['large']:.1%} of their norm; train NLL jumped by up to "
            f"{f['jumps']:.2f} between records")


def seen_update_too_small(f: dict, recs: list) -> str:
    return (f"update_ratio {span(f['ratios'])} at steps {steps(recs)} (the run's first records: "
            f"{f['start']:.2g}) while train NLL only went {f['nll'][0]:.3f} -> "
            f"{f['nll'][-1]:.3f}")


def seen_overfitting(f: dict, recs: list) -> str:
    read = f" after {f['passes']:.1f} passes over the training text" if f["passes"] else ""
    if f["memorised"]:
        seen = (f"eval NLL {f['evals'][0]:.3f} -> {f['evals'][-1]:.3f} at steps {steps(recs)}, "
                f"above its best {f['best']:.3f} (step {f['best_step']}, kept in best.npz) and "
                f"above train NLL, which went {f['best_train']:.3f} -> {f['train']:.3f}: the gap "
                f"grew from {f['gap0']:.2f} to {f['gap']:.2f} nats{read}")
    else:
        seen = (f"eval NLL {span(f['evals'])} at {at_steps(recs)} while train NLL was "
                f"{f['train']:.3f}, and the held-out text scores as badly from the carried state "
                f"as from a fresh one{read}")
    if f["guess"]:
        seen += f"; eval NLL is worse than {guessed(f['guess'])}: never a healthy run"
    return seen


def guessed(g: tuple) -> str:
    """Words for the guess an eval NLL was worse than (history.guess)."""
    nll, name = g
    return {"unigram": f"the unigram baseline {nll:.3f} (character frequencies alone)",
            "uniform": f"a uniform guess ({nll:.3f} = ln V)",
            "first": f"the run's first train NLL {nll:.3f}, where it started"}[name]


def seen_state_dependence(f: dict, recs: list) -> str:
    if f["measured"]:
        pair = (f"the held-out window scores {f['eval_nll_fresh']:.3f} from a fresh (zero) state "
                f"but {f['eval_nll_carried']:.3f} from the state the training stream carries"
                if f["pair"] == "eval" else
                f"the text just trained on scores {f['train_nll_fresh']:.3f} from a fresh (zero) "
                f"state against train NLL {f['train_nll']:.3f}")
        seen = (f"at {at_steps(recs)} {pair}: {span(f['gaps'], '.2f')} nats worse from a "
                f"fresh state; eval NLL {f['eval_nll']:.3f}")
    else:
        seen = (f"eval NLL {f['eval_nll']:.3f} at {at_steps(recs)} while train NLL was "
                f"{f['train_nll']:.3f}, and nothing memorised explains it; eval_nll_fresh and "
                "eval_nll_carried (docs/panel.md) would confirm that the model scores well "
                "only from the state its training stream carries")
    if f["guess"]:
        seen += f"; worse than {guessed(f['guess'])}: never a healthy run"
    if f["passes"] is not None:
        seen += f" ({f['passes']:.2f} passes over the training text: too few to memorise it)" \
            if f["passes"] < 1 else f" ({f['passes']:.1f} passes over the training text)"
    return seen


def seen_plateau(f: dict, recs: list) -> str:
    seen = (f"train NLL {f['nll'][0]:.3f} -> {f['nll'][-1]:.3f} over steps {steps(recs)} "
            f"({f['gain']:+.1%}) and no new best eval in that stretch")
    if f["unigram"] is not None:
        seen += (f"; the best eval NLL {f['best']:.3f} is at the unigram baseline "
                 f"{f['unigram']:.3f}: nothing beyond character frequencies was learned")
    elif f["floor"] is not None and f["best"] is not None:
        seen += (f"; the best eval NLL {f['best']:.3f} is {f['best'] - f['floor']:.2f} nats "
                 f"above the corpus's floor {f['floor']:.3f}")
    if f["gap"] is not None:
        seen += f"; the last eval NLL is {f['gap']:.2f} nats above train"
    return seen


def seen_gate_saturation(f: dict, recs: list) -> str:
    when = "from the first record" if f["first"] else \
        f"while train NLL got {f['worse']:.0%} worse over the last {f['window']} records"
    gates = ", ".join(f"{g} {left:.0%} left / {right:.0%} right" for g, (left, right) in
                      f["gates"].items())
    return (f"{when}, {span(f['fracs'], '.0%')} of {f['layer']}'s sigmoid gate entries were "
            f"saturated at steps {steps(recs)} (below 0.1 or above 0.9; at the last record "
            f"{gates}), and that fraction did not move: saturated gates pass almost no gradient")


def seen_short_memory(f: dict, recs: list) -> str:
    if f["horizon"] is None:
        return (f"from the first record (step {f['since']}) to steps {steps(recs)} "
                f"{span(f['left'], '.0%')} of the keep gate {f['keep']}'s entries were below 0.1 "
                f"and did not move (memory_steps {span(f['memory'])}): the gate was shut from "
                "the start, and the cell overwrites its state every step")
    need = f"a quarter of the {f['horizon']} steps back the corpus's letters depend on"
    seen = (f"at steps {steps(recs)} {f['layer']}'s memory_steps was {span(f['memory'])} steps, "
            f"below {f['limit']:.3g} ({need}), with {span(f['left'], '.0%')} of its keep gate "
            f"{f['keep']} below 0.1, and the loss stalled")
    if f["floor"] is not None and f["best"] is not None:
        seen += f": the best eval NLL {f['best']:.3f} is {f['best'] - f['floor']:.2f} nats " \
                f"above the floor {f['floor']:.3f}"
    return seen + "; the cell forgets before what it needs arrives"


SEEN = {"diverged": seen_diverged, "exploding_gradients": seen_exploding_gradients,
        "saturation": seen_saturation, "vanishing_gradients": seen_vanishing_gradients,
        "update_too_large": seen_update_too_large, "update_too_small": seen_update_too_small,
        "overfitting": seen_overfitting, "state_dependence": seen_state_dependence,
        "plateau": seen_plateau,
        "gate_saturation": seen_gate_saturation, "short_memory": seen_short_memory}

CAVEAT = {
    "diverged": "none: a NaN or a loss this far above a uniform guess is never noise",
    "exploding_gradients": "a clipping threshold far below the usual grad_norm (here "
                           "{clip_value:g}) makes clipping fire on every step without any "
                           "explosion; grown weights need a grad_norm_max {grad_spike:g} times "
                           "the median after it too",
    "saturation": "long healthy runs drift towards the rails while they learn (sat_ratio 0.24 -> "
                  "0.65 in 12 minutes); this rule only fires from the start or while the loss "
                  "rises, and a start that leaves the rails while the loss falls is set aside",
    "vanishing_gradients": "text without long-range structure (random characters) teaches a "
                           "model to ignore the past; its profile then decays without harm",
    "update_too_large": "the first records of any run have large ratios while the weights are "
                        "small; the rule needs them on consecutive records, or recurrent weights "
                        "ten times their initial size from the first record",
    "update_too_small": "a schedule that anneals the lr makes small updates on purpose (records "
                        "below half the --lr are not counted); updates that shrank after "
                        "healthy ones are not counted against the lr",
    "overfitting": "a small eval split (--eval-frac {eval_frac:g}) makes eval NLL noisy; "
                   "several evals in a row are needed, and memorisation is claimed only after "
                   "about one pass over the training text",
    "state_dependence": "a fresh state costs a healthy model a few characters of context "
                        "(-0.16 to +0.18 nats over a 200-character window in the calibration "
                        "runs), far below the 0.5 nats the rule needs on two evals in a row; "
                        "held-out text unlike the training text scores badly from any state",
    "plateau": "the loss may already be near what the data allow (text with little structure), "
               "or the run is still young: compare with a larger model",
    "gate_saturation": "trained gated cells keep many gates saturated on purpose (forget gates "
                       "near 1 hold memory, a GRU's update gate near 0); the rule fires only on "
                       "a still fraction from the start or while the loss gets worse",
    "short_memory": "memory_steps reads the keep gate only: a cell can also carry the past "
                    "through its recurrent weights (the LSTM's g, the GRU's n), so the rule "
                    "needs the loss stalled above the floor too",
}

SUSPECTS = {
    "lr_high": "learning rate {lr:g} too high for {optimizer}",
    "lr_low": "learning rate {lr:g} too low for {optimizer}",
    "clip_none": "no gradient clipping",
    "clip_elementwise": "clipping each gradient component at {clip_value:g} bounds the "
                        "components, not the size of the step",
    "init_large": "initial weights too large (recurrent scale {recurrent_scale:g}, input scale "
                  "{input_scale:g})",
    "recurrence_amplifies": "recurrent weights that amplify the gradient through time: "
                            "whh_sigma_max {sigma:.3g} ({init_sigma:.3g} at init)",
    "lr_high_for_gradients": "learning rate {lr:g} too high for the gradient scale",
    "updates_push_to_rails": "updates too large (update_ratio {ratio:.2g}) push units to the "
                             "rails",
    "lr_high_or_clip_loose": "learning rate too high, or clipping too loose",
    "recurrence_small": "recurrent weights too small (--recurrent-scale {recurrent_scale:g})",
    "units_saturated": "saturated units: the tanh derivative is small",
    "recurrence_weak": "a recurrence too weak for --hidden {hidden}",
    "memorises": "the model memorises the training text: --hidden {hidden} x --layers {layers} "
                 "for this much data, without regularisation",
    "eval_unlike_train": "the held-out text differs from the training text (another kind of "
                         "text at the end of the corpus), since the model has not read its "
                         "training text often enough to memorise it",
    "state_regimes": "the hidden state settled into one regime (units held on the rails with "
                     "one pattern of signs) along a training stream never reset: the readout "
                     "learned that regime, and a fresh state falls into another",
    "no_structure": "the text has no structure beyond character frequencies, or the model does "
                    "not use its context",
    "far_above_floor": "the data allow {floor:.3f}: the model has not learned what is there",
    "generalisation": "generalisation, not capacity: eval NLL is {gap:.2f} nats above train, "
                      "and a larger model would widen that gap",
    "learned_what_it_can": "the model has learned what this size and recipe can learn",
    "gates_stuck": "gate pre-activations too large: saturated gates get almost no gradient "
                   "(sigmoid' < 0.09) and stay where they are",
    "keep_gate_closed": "the keep gate ({keep}) closed: the state is overwritten every step, "
                        "so nothing older reaches the output or gets a gradient",
}

WHY = {
    "resolved": "{sat} started on the rails ({from:.2f}) and had left them by step {step} "
                "({to:.2f}) while train NLL fell {nll_from:.3f} -> {nll_to:.3f}: a transient of "
                "the start, nothing to change",
    "recovered": "the profile collapsed (g_{k} {from:.2g}) and had recovered by step {step} "
                 "(g_{k} {to:.2g}) while train NLL fell {nll_from:.3f} -> {nll_to:.3f}: a weak "
                 "recurrence at the start that training strengthened",
    "at_floor": "the best eval NLL {best:.3f} is at the corpus's floor {floor:.3f}: the run "
                "learned what the data allow",
}


MISSING = {"horizon": "horizon: the corpus does not say how far back its letters depend, as the "
                      "synthetic ones do",
           "train_chars": "train_chars: the size of the training split (config.json), so "
                          "whether the model read it even once could not be checked"}


# ---- a detection as a finding


def finding(det: dict, cfg: dict, source: str = "rnnscope") -> dict:
    """The finding of a detection (and of those it explains) for a run with settings cfg, its
    next steps worded for the run's source (records.SOURCES)."""
    values = {**THRESHOLDS, **cfg, "init_sigma": init_sigma(cfg), **det["facts"]}
    evidence = {**evidence_of(det),
                "caveat": WORDS.format(CAVEAT[det["id"]], **values)}
    why = [text for name, text in det.get("why", {}).items()
           if any(name in change for change in det["changes"])]
    if why:  # the reason for each value suggested, while a next step still suggests it
        evidence["why_next"] = "; ".join(why)
    if det.get("consequences"):
        evidence["consequences"] = [{"id": c["id"], "severity": c["severity"],
                                     "evidence": evidence_of(c)} for c in det["consequences"]]
    return {"id": det["id"], "severity": det["severity"], "evidence": evidence,
            "suspects": [WORDS.format(SUSPECTS[s], **values) for s in det["suspects"]],
            "next": [next_step(c, cfg, source) for c in det["changes"]]}


def evidence_of(det: dict) -> dict:
    return {"seen": SEEN[det["id"]](det["facts"], det["recs"]),
            "steps": [r["step"] for r in det["recs"]], "readings": det["readings"]}


def set_aside(det: dict, why: dict) -> dict:
    """A detection the end of the run explains away: what was seen, and why it is no finding."""
    return {"id": det["id"], "why": WORDS.format(WHY[why["why"]], **why),
            "evidence": evidence_of(det)}


# ---- text


def headline(f: dict) -> str:
    """One line for the live panel: id, severity, what was seen, what to try first."""
    line = f"{f['id']} ({f['severity']}): {f['evidence']['seen']}"
    also = [c["id"] for c in f["evidence"].get("consequences", [])]
    line += f"; explains {', '.join(also)}" if also else ""
    return line + (f"; try {f['next'][0]['text']}" if f["next"] else "")


def format_finding(f: dict) -> str:
    ev = f["evidence"]
    lines = [f"{f['id']} ({f['severity']})", f"  seen: {ev['seen']}"]
    lines += [f"  explains {c['id']}: {c['evidence']['seen']}"
              for c in ev.get("consequences", [])]
    lines.append(f"  usually means: {'; '.join(f['suspects'])}")
    texts = [step["text"] for step in f["next"]]
    if texts:
        lines.append(f"  try first: {texts[0]}")
    lines += [f"  then: {text}" for text in texts[1:]]
    lines.append(f"  may be a false positive when: {ev['caveat']}")
    return "\n".join(lines)


def format_diagnosis(result: dict) -> str:
    """The doctor's words: the verdict, each finding, what was set aside and not measured."""
    found = result["findings"]
    if found:
        head = f"verdict: {result['verdict']} ({len(found)} finding{'s' if len(found) > 1 else ''})"
    else:
        measured = " measured" if result.get("not_measured") else ""
        head = (f"verdict: healthy: learning, and no reading{measured} is out of range; keep "
                "training")
    parts = [head] + [format_finding(f) for f in found]
    parts += [f"set aside, {s['id']}: {s['evidence']['seen']}; {s['why']}"
              for s in result.get("set_aside", [])]
    missing = [f"{m['id']} (no {', '.join(MISSING.get(k, k) for k in m['missing'])})"
               for m in result.get("not_measured", [])]
    if missing:
        parts.append(f"not measured: {'; '.join(missing)}")
    return "\n\n".join(parts)
