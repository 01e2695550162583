"""Where a user's gradients first part from rnnscope's (SPEC section 11), for a mistake the
catalogue does not hold: the chain is walked backwards from the loss (the readout, the top
layer, each layer below it; each step back in time when the answers come per length), and the
first parameter group with a wrong gradient, its layer and the step of the BPTT equations that
sits there are named.

A layer whose gradients are all wrong, under right gradients above it, reads a wrong dh_raw:
the error enters between the gradient it receives (the readout's, or the layer above's) and its
pre-activation. A layer with only some gradients wrong has a right dh_raw (the right ones read
it): the error is in the wrong ones' own lines. Per length, a group right for T <= k and wrong
from k+1 on goes wrong k steps back in time: in the gradient carried back through Whh.
"""

from __future__ import annotations

import numpy as np

from ..cells import layer_params
from .fd import rel_error

READOUT = ["Why", "by"]
# the lines of the classic loop (loop.py) where each of a layer's gradients is accumulated
ACCUMULATES = {"Wxh": "dWxh += u.T @ dh_raw", "bh": "dbh += sum_b dh_raw",
               "Whh": "dWhh += h[l][t-1].T @ dh_raw"}
RECEIVES = ["dh = du + dh_next[l]", "dh_raw = (1 - h[l][t]**2) * dh"]
BACK_IN_TIME = ["dh_next[l] = dh_raw @ Whh.T  (carried to step t-1)", "dh = du + dh_next[l]"]


def groups(params: dict, L: int) -> list[tuple[int | None, list[str]]]:
    """The parameter groups in the order the chain meets them going back from the loss:
    (None, the readout), (L-1, the top layer's), ..., (0, layer 0's)."""
    return [(None, READOUT), *((l, [f"{l}.{k}" for k in layer_params(params, l)])
                               for l in reversed(range(L)))]


def first_wrong(calls: dict, right: dict, names: list[str], tol: float) -> int | None:
    """The first length whose gradients of `names` differ (None: none does)."""
    return next((t for t in calls
                 if any(rel_error(calls[t][k], right[t][k]) >= tol for k in names)), None)


def locate(calls: dict, right: dict, wrong: set[str], tol: float, L: int,
           forward_checked: bool) -> dict:
    """{"layer", "where", "steps", "chain", "below", "forward"[, "factor"]} for the first group
    going back from the loss with a wrong gradient (`wrong`: the parameters wrong in some
    call)."""
    T = list(calls)[-1]
    chain = [{"layer": l, "params": names, "wrong": [k for k in names if k in wrong],
              "first_wrong_T": first_wrong(calls, right, names, tol)}
             for l, names in groups(calls[T], L)]
    i = next(i for i, g in enumerate(chain) if g["wrong"])
    g, above, below = chain[i], chain[:i], chain[i + 1:]
    where, steps = (readout_place(g, chain[1]) if g["layer"] is None else
                    layer_place(g, L, list(calls)))
    if above:
        where += f" ({words([k for a in above for k in a['params']])} are right)"
    out = {"layer": g["layer"], "where": where, "steps": steps, "chain": chain,
           "below": [b["layer"] for b in below if b["wrong"]],
           "forward": "checked" if forward_checked else "not checked"}
    c = group_factor(calls[T], right[T], g["wrong"], tol)
    if c is not None:
        out["factor"] = c
    return out


def readout_place(g: dict, top: dict) -> tuple[str, list[str]]:
    if g["wrong"] == READOUT and top["wrong"]:
        return ("the error enters at the readout, at dy, the gradient of the logits (every "
                "gradient below reads it)", ["dy = (p[t] - onehot(y[t])) / N"])
    lines = {"Why": "dWhy += h[L-1][t].T @ dy", "by": "dby += sum_b dy"}
    why = ("the top layer's gradients, which read dy @ Why.T, are right" if not top["wrong"]
           else f"{words([k for k in READOUT if k not in g['wrong']])} is right")
    return (f"the error enters at the readout, in the gradient of {words(g['wrong'])} (dy is "
            f"right: {why})", [lines[k] for k in g["wrong"]])


def layer_place(g: dict, L: int, lengths: list[int]) -> tuple[str, list[str]]:
    l = g["layer"]
    if len(g["wrong"]) < len(g["params"]):
        right = [k for k in g["params"] if k not in g["wrong"]]
        return (f"the error enters at layer {l}, in the gradient of {words(g['wrong'])} "
                f"(dh_raw is right: {words(right)} read it)",
                [ACCUMULATES.get(local(k), f"d{local(k)} += ...") for k in g["wrong"]])
    source = "the readout gradient" if l == L - 1 else f"layer {l + 1}'s pre-activation"
    where = f"the error enters at layer {l}, between {source} and layer {l}'s pre-activation"
    t = g["first_wrong_T"]
    if t is not None and t != lengths[0]:
        k = lengths[lengths.index(t) - 1]
        return (where + f", in the gradient carried back in time: right for T <= {k}, wrong "
                f"from T = {t}, so it goes wrong {k} step{'s' * (k > 1)} back from a step's "
                "loss", BACK_IN_TIME)
    if l == L - 1:
        return where, ["du = dy @ Why.T", *RECEIVES]
    return (where + f" (in what layer {l + 1} sends down, or in layer {l}'s own dh, dh_raw)",
            [f"du = dh_raw[{l + 1}] @ Wxh[{l + 1}].T", *RECEIVES])


def local(name: str) -> str:
    return name.split(".", 1)[1]


def words(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def group_factor(yours: dict, right: dict, names: list[str], tol: float) -> float | None:
    """c when every gradient of `names` is c times the right one (c != 1), else None."""
    num = sum(float(np.vdot(yours[k], right[k])) for k in names)
    den = sum(float(np.vdot(right[k], right[k])) for k in names)
    if den == 0:
        return None
    c = num / den
    same = all(rel_error(yours[k], c * right[k]) < tol for k in names)
    return c if same and abs(c - 1) > tol else None
