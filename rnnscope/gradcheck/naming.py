"""Naming the bug in a user's BPTT (SPEC section 11): the user's answers to a case (cases.py)
against rnnscope's forward pass and gradients, and against every mistake of the catalogue
(bugs.py) run on the same case.

The verdict, decided in this order:
  forward_mismatch  out/{l}.h (.c) or out/loss differ from rnnscope's forward pass (a loss that
                    is the mean times N, T or B, or divided by one, is a loss_scale_mismatch)
  correct           every gradient of every call equals rnnscope's within the tolerance
  <mistake id>      every gradient of every call equals that mistake's within the tolerance,
                    the mistake put into one layer, into several, or into all of them
                    (bugs.py: where it can sit); a per-parameter mistake
                    (overwrite_not_accumulate, gradients_not_reset, ...) may show in any
                    subset of the parameters, the others being right
  unknown_bug       no mistake matches; the evidence says where the gradients first part from
                    rnnscope's going back from the loss (locate.py), which parameters are
                    wrong, their norm ratio and cosine to the right gradient, and from which
                    length on
A mistake that does not match is never named: when two match (a case too short to tell them
apart), the first is named and the evidence lists the others. The report's `layer` is the
layer (or the list of layers) the mistake sits in, None for the readout or the whole loop;
`where` says the place in words.

The search is kept short: the layers a mistake in layer set S can change are S and those
below it, and a mistake sent down to the layer below leaves its own layer right, so only the
sets whose top layer is the highest wrong layer (the one above it for a mistake that changes
only what is sent down) are tried; single layers and every layer come first, the other unions
of code paths only when those match nothing; each mutant's longest call comes first and a
mismatch there ends its run.

Tolerances, by the precision of the user's arrays (float32 when any is float32). Gradients:
the relative error ||yours - right|| / (||yours|| + ||right||) per parameter; a correct float32
implementation scores about 1e-7 on an exported case, the catalogued mistakes about 0.1 or more
from the right gradients and from each other (docs/gradcheck.md). Loss:
|yours - right| / max(1, |right|). States: max |yours - right|.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import RnnscopeError
from ..model import Model
from . import bugs, loop
from .cases import Case
from .fd import ParamCheck, compare, format_checks, rel_error
from .locate import locate

Calls = dict[int, dict[str, np.ndarray]]


@dataclass(frozen=True)
class Tolerance:
    grad: float    # relative error per parameter
    loss: float    # |yours - right| / max(1, |right|)
    states: float  # max |yours - right| over the states


TOLERANCES = {"float64": Tolerance(grad=1e-7, loss=1e-9, states=1e-9),
              "float32": Tolerance(grad=1e-4, loss=1e-5, states=1e-4)}


Layer = int | list[int] | None


@dataclass
class BugReport:
    verdict: str               # "correct", a bugs.CATALOG id, "forward_mismatch", "unknown_bug"
    evidence: dict             # with "layer" and "where" for every verdict but correct
    params: list[ParamCheck]   # the longest call's gradients against rnnscope's

    def to_json(self) -> dict:
        return {"verdict": self.verdict,
                "params": [{**asdict(c), "verdict": c.verdict} for c in self.params],
                "evidence": self.evidence}

    @property
    def layer(self) -> Layer:
        """The layer the mistake sits in, the list of layers, or None (the readout, the whole
        loop, or correct)."""
        return self.evidence.get("layer")


def name_bug(case: Case) -> BugReport:
    tol = TOLERANCES[case.dtype]
    model = case.model()
    if case.dtype == "float32":
        check_float32_is_enough(model, case, tol)
    state0 = model.state_of(case.state0)
    right = {t: model.loss_and_grads(case.x[:t], case.y[:t], state0).grads for t in case.calls}
    T = list(case.calls)[-1]
    checks = [compare(k, right[T][k], case.calls[T][k].astype(np.float64), tol.grad, tol.grad)
              for k in right[T]]
    return BugReport(*verdict(model, case, right, tol), params=checks)


def verdict(model: Model, case: Case, right: Calls, tol: Tolerance) -> tuple[str, dict]:
    """(verdict, evidence), decided in the order of the module docstring."""
    state = first_state_difference(model, case, tol)
    factor = loss_factor(model, case, tol)
    if state:
        return "forward_mismatch", {**state, "where": f"layer {state['layer']}'s "
                                    f"{state['state']} at step {state['step']}"}
    if factor is None:
        return "forward_mismatch", {**loss_evidence(model, case), "layer": None,
                                    "where": "the loss"}
    right_ok = agreeing(case.calls, right.items(), tol)
    if right_ok == set(case.params):
        if factor == 1:
            return "correct", {"tolerance": tol.grad, "precision": case.dtype,
                               "blind_to": blind_spots(case, right, tol)}
        m = bugs.CATALOG["loss_scale_mismatch"]
        return m.id, named(m, f"out/loss = {factor:.6g} x the mean; your gradients are those "
                              "of the mean", [], None)
    found = matching_mistakes(case, right_ok, tol)
    T = list(case.calls)[-1]
    evidence = length_evidence(case.calls, right, tol)
    if not found:
        wrong = set(case.params) - right_ok
        place = locate(case.calls, right, wrong, tol.grad, model.num_layers,
                       bool(case.out_states) or case.out_loss is not None)
        return "unknown_bug", {**place, **unknown_evidence(case.calls[T], right[T], wrong, tol),
                               **evidence}
    (mu, shows), others = found[0], found[1:]
    layer = mistake_layers(mu, shows)
    evidence.update(named(mu.mistake, mu.wrong, shows, layer),
                    also_matches=[o[0].mistake.id for o in others])
    if mu.mistake.id == "loss_scale_mismatch":
        evidence["factor"] = common_factor(case.calls[T], right[T])
    if factor != 1:
        evidence["loss_factor"] = factor
    return mu.mistake.id, evidence


def mistake_layers(mu: bugs.Mutant, shows: list[str]) -> Layer:
    """The layer(s) a matched mutant sits in: its layer set, or for a whole-loop mistake the
    layers of the parameters it shows in (None: the readout only, or none)."""
    layers = (sorted(mu.layers) if mu.layers is not None else
              sorted({int(k.split(".")[0]) for k in shows if k[0].isdigit()}))
    if mu.mistake.scope == "loop" and not mu.mistake.per_parameter:
        layers = []
    return layers[0] if len(layers) == 1 else layers or None


def place_words(layer: Layer) -> str:
    if layer is None:
        return "the readout"
    if isinstance(layer, int):
        return f"layer {layer}"
    return "layers " + ", ".join(map(str, layer[:-1])) + f" and {layer[-1]}"


def agreeing(calls: Calls, want: Iterable[tuple[int, dict]], tol: Tolerance,
             must: Iterable[str] = ()) -> set[str]:
    """The parameters on which `calls` equal `want` (pairs (t, gradients)) in every call. The
    parameters of `must` are compared first, in their order: the first that disagrees ends
    the comparison, with what agrees so far."""
    ok, must = set(next(iter(calls.values()))), list(must)
    for t, grads in want:
        for k in must:
            if rel_error(calls[t][k], grads[k]) >= tol.grad:
                return ok - {k}
        ok = {k for k in ok if k in must or rel_error(calls[t][k], grads[k]) < tol.grad}
    return ok


def mutant_calls(case: Case, mu: bugs.Mutant, fw: loop.Forward) -> Iterator[tuple[int, dict]]:
    return loop.each_call(case.params, case.x, case.y, case.h0, list(case.calls), mu.lines,
                          mu.layers, fw)


def worth_trying(mu: bugs.Mutant, wrong: list[str]) -> bool:
    """False when the mutant cannot give these wrong parameters: a mistake in layer set S
    leaves the readout and the layers above S right, and changes layer max(S), or, when it
    changes only what S sends down, layer max(S) - 1 and not max(S)."""
    if mu.layers is None:
        return True
    if "Why" in wrong or "by" in wrong:
        return False
    top = max(int(k.split(".")[0]) for k in wrong)
    return max(mu.layers) == top + mu.sends_down_only


def matching_mistakes(case: Case, right_ok: set[str],
                      tol: Tolerance) -> list[tuple[bugs.Mutant, list[str]]]:
    """[(mutant, parameters it shows in)] for each mistake one of whose variants, in one of
    the layer sets it can sit in, gives the user's gradients."""
    found, everything = {}, frozenset(case.params)
    wrong = [k for k in case.params if k not in right_ok]
    catalogue = sorted(bugs.mutants(case.cell, case.h0.shape[0]), key=lambda mu: mu.stage)
    fw = loop.forward(case.params, case.x, case.h0) if catalogue else None
    for mu in catalogue:
        m = mu.mistake
        if mu.stage and found:
            break
        if m.id in found or not worth_trying(mu, wrong):
            continue
        must = wrong if m.per_parameter else [*wrong, *right_ok]
        ok = agreeing(case.calls, mutant_calls(case, mu, fw), tol, must)
        if m.per_parameter and set(must) <= ok and ok - right_ok:
            found[m.id] = (mu, sorted(ok - right_ok, key=list(case.params).index))
        elif not m.per_parameter and ok == everything:
            found[m.id] = (mu, [k for k in case.params if k not in right_ok])
    return list(found.values())


def blind_spots(case: Case, right: Calls, tol: Tolerance) -> list[dict]:
    """The catalogued mistakes that would give the right gradients on this case, each put into
    every layer it can sit in (one layer alone is not tried: too many runs for a right
    answer)."""
    everything = frozenset(case.params)
    catalogue = bugs.mutants(case.cell, case.h0.shape[0], placed=False)
    fw = loop.forward(case.params, case.x, case.h0) if catalogue else None
    return [{"mistake": mu.mistake.id, "yours": mu.wrong} for mu in catalogue
            if agreeing(right, mutant_calls(case, mu, fw), tol, everything) == everything]


def named(m: bugs.Mistake, wrong: str, shows: list[str], layer: Layer) -> dict:
    return {"mistake": m.id, "what": m.sentence, "where": m.right, "yours": wrong, "fix": m.fix,
            "shows_in": shows, "layer": layer}


def length_evidence(calls: Calls, right: Calls, tol: Tolerance) -> dict:
    """From which length on the gradients are wrong (when the case answers several)."""
    if len(calls) < 2:
        return {}
    lengths = list(calls)
    bad = [t for t in lengths
           if len(agreeing({t: calls[t]}, [(t, right[t])], tol)) < len(calls[t])]
    first = bad[0]
    before = lengths[lengths.index(first) - 1] if first != lengths[0] else None
    return {"first_wrong_T": first, "right_up_to_T": before,
            "worst_by_T": {t: max(rel_error(calls[t][k], right[t][k]) for k in calls[t])
                           for t in lengths}}


def unknown_evidence(yours: dict, right: dict, wrong: set[str], tol: Tolerance) -> dict:
    rows = []
    for k in [k for k in right if k in wrong]:
        u, r = yours[k].astype(np.float64), right[k]
        nu, nr = np.linalg.norm(u), np.linalg.norm(r)
        rows.append({"param": k, "rel_error": rel_error(u, r),
                     "norm_ratio": float(nu / nr) if nr > 0 else None,
                     "cosine": float(np.vdot(u, r) / (nu * nr)) if nu * nr > 0 else 0.0,
                     "transposed": r.ndim == 2 and r.shape[0] == r.shape[1]
                     and rel_error(u, r.T) < tol.grad})
    c = common_factor(yours, right)
    same_factor = all(rel_error(yours[k], c * right[k]) < tol.grad for k in right)
    return {"wrong": rows, "right": [k for k in right if k not in wrong],
            "common_factor": c if same_factor else None}


def common_factor(yours: dict, right: dict) -> float:
    """The c that makes c * right closest to yours over all parameters (least squares)."""
    num = sum(float(np.vdot(yours[k], right[k])) for k in right)
    return num / sum(float(np.vdot(r, r)) for r in right.values())


def check_float32_is_enough(model: Model, case: Case, tol: Tolerance) -> None:
    """Refuse a case on which rnnscope's own float32 engine is not within a tenth of the
    tolerance of its float64 gradients: there float32 cannot tell right from wrong."""
    H, V = case.params["Why"].shape
    single = Model(V, H, model.num_layers, cell=case.cell, dtype="float32")
    for k, v in model.params.items():
        single.params[k][...] = v
    t, state0 = list(case.calls)[-1], model.state_of(case.state0)
    ours = model.loss_and_grads(case.x[:t], case.y[:t], state0).grads
    theirs = single.loss_and_grads(case.x[:t], case.y[:t], state0).grads
    noise = max(rel_error(theirs[k].astype(np.float64), ours[k]) for k in ours)
    if noise > tol.grad / 10:
        raise RnnscopeError(f"on {case.path or 'this case'} even rnnscope's float32 "
                            f"gradients are {noise:.1e} "
                            "off its float64 ones (an ill-conditioned, chaotic network); send "
                            "float64 gradients or use smaller weights")


def first_state_difference(model: Model, case: Case, tol: Tolerance) -> dict | None:
    """The first step (then layer, state part, stream, unit) where out/{l}.{part} differs from
    rnnscope's states."""
    if not case.out_states:
        return None
    probes = model.loss_and_grads(case.x, case.y, model.state_of(case.state0)).probes
    for t in range(case.x.shape[0]):
        for key, yours in case.out_states.items():
            l, part = key.split(".")
            right = probes[int(l)][part][t]
            bad = ~(np.abs(yours[t] - right) <= tol.states)  # NaN is a difference
            if bad.any():
                b, j = (int(i) for i in np.argwhere(bad)[0])
                return {"step": t, "layer": int(l), "state": part, "stream": b, "unit": j,
                        "yours": float(yours[t][b, j]), "right": float(right[b, j])}
    return None


def scale_factors(T: int, B: int) -> dict[str, float]:
    """The factors a loss or its gradients are off by when summed or divided wrongly."""
    N = T * B
    factors = {"N": N, "T": T, "B": B, "1/N": 1 / N, "1/T": 1 / T, "1/B": 1 / B}
    return {k: v for k, v in factors.items() if v != 1}


def loss_factor(model: Model, case: Case, tol: Tolerance) -> float | None:
    """1 when out/loss is right or absent; the factor when it is the mean times one of
    scale_factors; None when it is otherwise different (a forward mismatch)."""
    if case.out_loss is None:
        return 1
    right = model.loss(case.x, case.y, model.state_of(case.state0))[0]
    for c in [1, *scale_factors(*case.x.shape).values()]:
        if abs(case.out_loss - c * right) <= tol.loss * max(1, abs(c * right)):
            return c
    return None


def loss_evidence(model: Model, case: Case) -> dict:
    right = model.loss(case.x, case.y, model.state_of(case.state0))[0]
    return {"loss": {"yours": case.out_loss, "right": right}}


# --------------------------------------------------------------------------------------- output


def format_bug_report(d: BugReport, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(d.to_json(), indent=2)
    return format_checks(d.params) + "\n\n" + "\n".join(report_lines(d))


def report_lines(d: BugReport) -> list[str]:
    e = d.evidence
    if d.verdict == "correct":
        lines = [f"verdict: correct (every gradient within {e['tolerance']:g} of rnnscope's, "
                 f"{e['precision']} tolerance)"]
        return lines + [f"  this case cannot show {b['mistake']} ({b['yours']}): "
                        + ("answer one call per length, grad/T<t>/<name>, to check it"
                           if b["mistake"] == "gradients_not_reset" else
                           "export a longer case to check it") for b in e["blind_to"]]
    if d.verdict == "forward_mismatch":
        where = (f"your loss {e['loss']['yours']:.8g} differs from rnnscope's "
                 f"{e['loss']['right']:.8g} (the mean NLL over the T*B targets); add out/<l>.h "
                 "to find the first step and unit that differ" if "loss" in e else
                 f"your {e['state']} of layer {e['layer']} first differs at step t = {e['step']}, "
                 f"stream "
                 f"{e['stream']}, unit {e['unit']}: {e['yours']:.8g} against rnnscope's "
                 f"{e['right']:.8g}")
        return ["verdict: forward_mismatch", f"  {where}",
                "  fix the forward pass first: a backward pass is only as right as the forward "
                "pass it differentiates"]
    if d.verdict == "unknown_bug":
        lines = ["verdict: unknown_bug (no catalogued mistake gives your gradients)",
                 *location_lines(e)]
        lines += [f"  wrong: {r['param']:8} rel error {r['rel_error']:.2e}  |yours|/|right| "
                  f"{'inf' if r['norm_ratio'] is None else format(r['norm_ratio'], '.4g')}"
                  f"  cosine {r['cosine']:.4f}"
                  + ("  (the right gradient transposed)" if r["transposed"] else "")
                  for r in e["wrong"]]
        lines.append(f"  right: {', '.join(e['right']) or 'none'}")
        if e["common_factor"] is not None:
            lines.append(f"  every gradient is {e['common_factor']:.6g} x the right one (a "
                         "scaled loss, or two calls adding into gradients never reset)")
        return lines + length_lines(e)
    lines = [f"verdict: {d.verdict}" + (f" in {place_words(d.layer)}" if d.layer is not None
                                         else ""),
             f"  what:  {e['what']}", f"  where: {e['where']}",
             f"  yours: {e['yours']}", f"  fix:   {e['fix']}"]
    if e["shows_in"]:
        lines.append(f"  shows in: {', '.join(e['shows_in'])}")
    if "factor" in e:
        lines.append(f"  your gradients are {e['factor']:.6g} x the right ones")
    if e.get("also_matches"):
        lines.append(f"  this case cannot tell it from: {', '.join(e['also_matches'])} "
                     "(export a longer case)")
    return lines + length_lines(e)


def location_lines(e: dict) -> list[str]:
    lines = [f"  where: {e['where']}", f"  there: {';  '.join(e['steps'])}"]
    if "factor" in e:
        lines.append(f"  there, every wrong gradient is {e['factor']:.6g} x the right one")
    if e["below"]:
        below = e["below"] if len(e["below"]) > 1 else e["below"][0]
        lines.append(f"  below it: {place_words(below)} wrong too (the gradient sent down "
                     "carries the error)")
    lines.append("  your forward pass (out/) matches rnnscope's: the error is in the backward "
                 "pass" if e["forward"] == "checked" else
                 "  forward pass not checked: add out/loss and out/<l>.h to rule it out")
    return lines


def length_lines(e: dict) -> list[str]:
    if "first_wrong_T" not in e:
        return []
    right = (f"right for T <= {e['right_up_to_T']}, " if e["right_up_to_T"] is not None
             else "")
    return [f"  {right}wrong from T = {e['first_wrong_T']} on"]
