"""The catalogue of mistakes people make in the classic hand-written BPTT loop (loop.py, SPEC
section 11): each mistake is one function returning its variants, {the wrong line as a person
writes it: the `Lines` that write it so}, and says where it can sit:

    layer  in any one layer's code path, or in several (the top, middle and bottom layers are
           often separate code paths in a hand-written stacked loop; a shared one has it in all)
    upper  the same, in a layer with a layer below it (l >= 1: its Wxh is square, H x H)
    loop   in the readout, or in the accumulation of any subset of the parameters
           (per_parameter): one mistake for the whole loop
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .loop import RIGHT, Lines, summed

Grads = dict[str, np.ndarray]


@dataclass(frozen=True)
class Mistake:
    id: str                    # SPEC section 11
    sentence: str              # what goes wrong, in one sentence
    right: str                 # the line of the classic loop where it lives, written right
    fix: str
    variants: dict[str, Lines]  # the line as it is written wrong -> the loop with it
    scope: str = "layer"       # "layer", "upper" or "loop" (module docstring)
    per_parameter: bool = False  # can be made in any subset of the parameters' gradients


@dataclass(frozen=True)
class Mutant:
    """One variant of a mistake, put into `layers` (None: the whole loop)."""
    mistake: Mistake
    wrong: str
    lines: Lines
    layers: frozenset | None

    @property
    def sends_down_only(self) -> bool:
        """Changes only what its layers send to the layer below (their own gradients right)."""
        changed = {f for f in Lines.__dataclass_fields__
                   if getattr(self.lines, f) != getattr(RIGHT, f)}
        return changed <= {"down", "below"}

    @property
    def stage(self) -> int:
        """0: the whole loop, one layer or every layer (tried first); 1: another union of the
        top, middle and bottom code paths."""
        return int(self.layers is not None and 1 < len(self.layers) < 1 + max(self.layers))


CATALOG: dict[str, Mistake] = {}


def mistake(sentence: str, right: str, fix: str, scope: str = "layer",
            per_parameter: bool = False):
    """Register a function returning {wrong line: Lines} under its name."""
    def register(variants: Callable[[], dict[str, Lines]]):
        CATALOG[variants.__name__] = Mistake(variants.__name__, sentence, right, fix,
                                             variants(), scope, per_parameter)
        return variants
    return register


# ------------------------------------------------------------------------- back through time


@mistake("dh never receives dh_next, the gradient carried back from step t+1, so no step's "
         "loss reaches the earlier steps through Whh",
         right="dh = du + dh_next[l]",
         fix="add dh_next (dh_raw @ Whh.T of step t+1, zero at the last step) to dh")
def missing_dh_next():
    return {"dh = du": Lines(dh=lambda du, dh_next: du)}


@mistake("dh receives only dh_next and never du, the gradient of this step's own output (from "
         "the readout, or from the layer above), so the layer and every layer below it get "
         "zero gradients",
         right="dh = du + dh_next[l]",
         fix="add du (dy @ Why.T for the top layer, dh_raw @ Wxh.T of the layer above for the "
             "others) to dh")
def missing_du():
    return {"dh = dh_next[l]": Lines(dh=lambda du, dh_next: dh_next)}


@mistake("dh_next multiplies dh_raw by Whh instead of Whh.T: the forward pass computes "
         "h[t-1] @ Whh, so the gradient flows back through the transpose",
         right="dh_next[l] = dh_raw @ Whh.T",
         fix="transpose Whh in dh_next (in C: index Whh[j][i] where the forward used Whh[i][j])")
def whh_not_transposed():
    return {"dh_next[l] = dh_raw @ Whh":
            Lines(dh_next=lambda dh, dh_raw, Whh, Wxh: dh_raw @ Whh)}


@mistake("dh_next is carried from dh, before the tanh derivative, instead of from dh_raw, the "
         "gradient of the pre-activation a[t] that h[t-1] @ Whh feeds",
         right="dh_next[l] = dh_raw @ Whh.T",
         fix="form dh_raw = (1 - h[t]**2) * dh first and carry dh_raw @ Whh.T")
def dh_next_before_tanh():
    return {"dh_next[l] = dh @ Whh.T":
            Lines(dh_next=lambda dh, dh_raw, Whh, Wxh: dh @ Whh.T)}


# --------------------------------------------------------------------------- the derivative


@mistake("dh_raw is not dh times tanh's derivative at a[t], which is 1 - h[t]**2 with "
         "h[t] = tanh(a[t])",
         right="dh_raw = (1 - h[l][t]**2) * dh",
         fix="multiply dh by 1 - h[t]**2, computed from the tanh output h[t]")
def tanh_derivative_wrong():
    return {
        "dh_raw = dh": Lines(dh_raw=lambda dh, h, a, t: dh),
        "dh_raw = (1 - h[l][t]) * dh": Lines(dh_raw=lambda dh, h, a, t: (1 - h[t + 1]) * dh),
        "dh_raw = (1 - np.tanh(h[l][t])**2) * dh":
            Lines(dh_raw=lambda dh, h, a, t: (1 - np.tanh(h[t + 1]) ** 2) * dh),
        "dh_raw = (1 - a[l][t]**2) * dh":
            Lines(dh_raw=lambda dh, h, a, t: (1 - a[t] ** 2) * dh),
        "dh_raw = h[l][t] * (1 - h[l][t]) * dh (the sigmoid's derivative)":
            Lines(dh_raw=lambda dh, h, a, t: h[t + 1] * (1 - h[t + 1]) * dh),
        "dh_raw = h[l][t] * dh (the state, not its derivative)":
            Lines(dh_raw=lambda dh, h, a, t: h[t + 1] * dh),
        "dh_raw = dh / (1 - h[l][t]**2)":
            Lines(dh_raw=lambda dh, h, a, t: dh / (1 - h[t + 1] ** 2)),
    }


@mistake("dh_raw takes tanh's derivative at the state of another step, h[t-1] or h[t+1], "
         "instead of h[t], the output of the step whose pre-activation it is (an index off by "
         "one in the list of states)",
         right="dh_raw = (1 - h[l][t]**2) * dh",
         fix="use the state of the same step t (if your list starts with h0, that is index t+1)")
def tanh_derivative_wrong_step():
    return {"dh_raw = (1 - h[l][t-1]**2) * dh  (h0 at t = 0)":
            Lines(dh_raw=lambda dh, h, a, t: (1 - h[t] ** 2) * dh),
            "dh_raw = (1 - h[l][t+1]**2) * dh  (h[l][T-1] at the last step)":
            Lines(dh_raw=lambda dh, h, a, t: (1 - h[min(t + 2, len(a))] ** 2) * dh)}


# ------------------------------------------------------------------------ a layer's gradients


@mistake("dWhh multiplies dh_raw by h[t], the state this step made, instead of h[t-1], the "
         "state that Whh multiplied in the forward pass",
         right="dWhh += h[l][t-1].T @ dh_raw",
         fix="use the previous state h[t-1] in dWhh (h0 at t = 0)")
def dwhh_uses_h_t():
    return {"dWhh += h[l][t].T @ dh_raw": Lines(dWhh=lambda h_prev, h, delta: (h, delta))}


@mistake("dWxh of a stacked layer multiplies dh_raw by the wrong input: the layer's own state "
         "h[l][t], or the input of the step before, instead of its input h[l-1][t]",
         right="dWxh += h[l-1][t].T @ dh_raw  (u, the layer's input at step t)",
         fix="use the state of the layer below at the same step t, the array the forward pass "
             "multiplied by Wxh", scope="upper")
def dwxh_uses_wrong_input():
    return {"dWxh += h[l][t].T @ dh_raw": Lines(dWxh=lambda u, u_prev, h, delta: (h, delta)),
            "dWxh += h[l-1][t-1].T @ dh_raw":
            Lines(dWxh=lambda u, u_prev, h, delta: (u_prev, delta))}


@mistake("a gradient multiplies dh, the gradient before the tanh derivative, instead of "
         "dh_raw, the gradient of the pre-activation that the parameter feeds",
         right="dWxh += u.T @ dh_raw;  dbh += sum_b dh_raw;  dWhh += h[l][t-1].T @ dh_raw",
         fix="accumulate every parameter's gradient from dh_raw = (1 - h[t]**2) * dh",
         scope="loop", per_parameter=True)
def grad_uses_dh_not_dh_raw():
    return {"dW += <input>.T @ dh (dh for dh_raw)": Lines(delta=lambda dh, dh_raw: dh)}


# --------------------------------------------------------------------- down to the layer below


@mistake("the gradient sent to the layer below multiplies dh_raw by Wxh instead of Wxh.T: the "
         "forward pass computes h[l-1][t] @ Wxh, so the gradient flows down through the "
         "transpose (silent for l >= 1, where Wxh is square)",
         right="du = dh_raw @ Wxh.T  (to layer l-1)",
         fix="transpose the vertical weights Wxh of the layer above in the gradient sent down",
         scope="upper")
def wxh_not_transposed():
    return {"du = dh_raw @ Wxh": Lines(down=lambda dh_raw, Wxh, Whh: dh_raw @ Wxh)}


@mistake("the recurrent and the vertical weights are swapped on the way back: dh_next (back in "
         "time) uses Wxh or the gradient to the layer below uses Whh (silent for l >= 1, where "
         "both are square)",
         right="dh_next[l] = dh_raw @ Whh.T;  du = dh_raw @ Wxh.T",
         fix="carry dh_raw @ Whh.T back in time and send dh_raw @ Wxh.T down", scope="upper")
def whh_wxh_swapped():
    return {"dh_next[l] = dh_raw @ Wxh.T;  du = dh_raw @ Whh.T":
            Lines(dh_next=lambda dh, dh_raw, Whh, Wxh: dh_raw @ Wxh.T,
                  down=lambda dh_raw, Wxh, Whh: dh_raw @ Whh.T),
            "dh_next[l] = dh_raw @ Wxh.T":
            Lines(dh_next=lambda dh, dh_raw, Whh, Wxh: dh_raw @ Wxh.T),
            "du = dh_raw @ Whh.T": Lines(down=lambda dh_raw, Wxh, Whh: dh_raw @ Whh.T)}


def shifted(down: np.ndarray, by: int) -> np.ndarray:
    """down[t + by] at step t, zero where that step does not exist."""
    out = np.zeros_like(down)
    if by > 0:
        out[:-by] = down[by:]
    else:
        out[-by:] = down[:by]
    return out


@mistake("the layer below adds at step t the gradient the layer above sent at another step "
         "(t+1, t-1, or the steps reversed) instead of at step t, the step whose state it read",
         right="du = dh_raw @ Wxh.T, added to layer l-1's dh at the same step t",
         fix="store the gradient sent down per step and let layer l-1 read it at the same t "
             "(inside the time loop, visit the layers from the top down)", scope="upper")
def dh_below_wrong_step():
    return {"layer l-1 reads at step t what layer l sent at step t+1 (the layers visited bottom "
            "up inside the time loop)": Lines(below=lambda down: shifted(down, 1)),
            "layer l-1 reads at step t what layer l sent at step t-1":
            Lines(below=lambda down: shifted(down, -1)),
            "layer l-1 reads the gradients sent down in reversed order":
            Lines(below=lambda down: down[::-1])}


# ------------------------------------------------------------------------------ accumulation


def every_add(add: Callable) -> Lines:
    return Lines(add=add, add_bias=add)


def kept(index: tuple) -> Callable:
    """An `add` that keeps only the terms at `index` (of the step and stream axes)."""
    return lambda total, u, v: summed(None if u is None else u[index], v[index])


@mistake("a gradient is assigned (=) instead of added (+=) inside the loop, so it keeps only "
         "the term of the last step the loop visits, t = 0",
         right="dWhh += h[l][t-1].T @ dh_raw  (and every other gradient: a sum over steps "
               "and streams)",
         fix="accumulate with += into gradients zeroed before the loop", scope="loop",
         per_parameter=True)
def overwrite_not_accumulate():
    return {"dW = <step t's term>, streams together (keeps step 0)": every_add(kept(np.s_[:1])),
            "dW = <step t's term>, one stream at a time (keeps the last stream's step 0)":
            every_add(kept(np.s_[:1, -1:]))}


@mistake("a gradient is never accumulated: its line is missing (or adds into another array), "
         "so it stays zero",
         right="dbh += sum_b dh_raw  (and every other gradient: a sum over steps and streams)",
         fix="add the missing accumulation line for that parameter inside the loop",
         scope="loop", per_parameter=True)
def gradient_never_accumulated():
    return {"no dW += ... line (the gradient stays zero)": every_add(lambda total, u, v: total)}


@mistake("a bias gradient is averaged over the B streams instead of summed: the loss already "
         "divides by N = T*B, so it ends B times too small",
         right="dbh += sum_b dh_raw;  dby += sum_b dy",
         fix="sum the bias gradient over the streams (axis 0 of a batch of rows), do not "
             "average it", scope="loop", per_parameter=True)
def bias_grad_mean_not_sum():
    return {"db += dh_raw.mean(axis=0)":
            Lines(add_bias=lambda total, u, v: total + summed(u, v) / v.shape[1])}


@mistake("the gradient arrays are not zeroed at the start of each call, so every call adds "
         "its gradients to those of the calls before it",
         right="dWxh, dWhh, dbh, dWhy, dby = zeros  (at the start of every call)",
         fix="zero every gradient at the start of the backward pass (np.zeros_like; in C "
             "memset)", scope="loop", per_parameter=True)
def gradients_not_reset():
    return {"the gradients are zeroed once, outside the backward pass": Lines(reset=False)}


# ---------------------------------------------------------------------------------- the readout


@mistake("dy is the softmax p without the 1 subtracted at the target; the gradient of the "
         "cross-entropy with respect to the logits is p - onehot(y)",
         right="dy = (p[t] - onehot(y[t])) / N",
         fix="dy = p[t].copy(); dy[range(B), y[t]] -= 1; dy /= N", scope="loop")
def softmax_grad_missing_minus_one():
    return {"dy = p[t] / N": Lines(dy=lambda p, onehot, T, B: p / (T * B))}


def dy_divided_by(divisor: Callable[[int, int], float]) -> Lines:
    return Lines(dy=lambda p, onehot, T, B: (p - onehot) / divisor(T, B))


@mistake("the gradients are those of the loss times a constant, not of the mean over the "
         "N = T*B targets",
         right="dy = (p[t] - onehot(y[t])) / N",
         fix="divide dy by N = T*B, once, and report that same mean as the loss", scope="loop")
def loss_scale_mismatch():
    return {
        "dy = p[t] - onehot(y[t])  (the summed loss: N times too large)":
            dy_divided_by(lambda T, B: 1),
        "dy = (p[t] - onehot(y[t])) / B  (T times too large)": dy_divided_by(lambda T, B: B),
        "dy = (p[t] - onehot(y[t])) / T  (B times too large)": dy_divided_by(lambda T, B: T),
        "dy = (p[t] - onehot(y[t])) / N**2  (divided by N twice)":
            dy_divided_by(lambda T, B: (T * B) ** 2),
        "dy = (p[t] - onehot(y[t])) / (N*T)  (T times too small)":
            dy_divided_by(lambda T, B: T * T * B),
        "dy = (p[t] - onehot(y[t])) / (N*B)  (B times too small)":
            dy_divided_by(lambda T, B: T * B * B),
    }


CATALOGS = {"rnn": CATALOG}  # the cells whose mistakes have a catalogue


# ------------------------------------------------------------------------------------- mutants


def code_paths(L: int) -> list[frozenset]:
    """The layer sets a mistake can sit in: each layer alone (top first), every layer, and the
    other unions of the top, middle and bottom code paths."""
    paths = [p for p in (frozenset({L - 1}), frozenset(range(1, L - 1)), frozenset({0})) if p]
    unions = {frozenset().union(*c) for n in range(1, len(paths) + 1)
              for c in combinations(set(paths), n)}
    singles = [frozenset({l}) for l in reversed(range(L))]
    everything = frozenset(range(L))
    rest = sorted(unions - {everything, *singles}, key=lambda s: (-max(s), len(s)))
    return [*singles, *([everything] if L > 1 else []), *rest]


def placements(m: Mistake, L: int) -> list[frozenset | None]:
    if m.scope == "loop":
        return [None]
    lowest = 1 if m.scope == "upper" else 0
    return [s for s in code_paths(L) if min(s) >= lowest]


def mutants(cell: str = "rnn", L: int = 1, placed: bool = True) -> list[Mutant]:
    """Every variant of every mistake of the cell's catalogue (none for a cell without), in
    each layer set it can sit in (placed), or once in every layer it can sit in (not placed).
    A mistake that needs a layer below has no place when L = 1."""
    out = []
    for m in CATALOGS.get(cell, {}).values():
        where = placements(m, L) if placed else whole(m, L)
        out += [Mutant(m, wrong, lines, s) for s in where for wrong, lines in m.variants.items()]
    return out


def whole(m: Mistake, L: int) -> list[frozenset | None]:
    """The mistake in every layer it can sit in, as one placement (none if it has none)."""
    if m.scope != "upper":
        return [None]
    return [frozenset(range(1, L))] if L > 1 else []


__all__ = ["CATALOG", "CATALOGS", "RIGHT", "Mistake", "Mutant", "code_paths", "mutants"]
