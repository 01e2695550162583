"""The classic hand-written BPTT of the tanh RNN, one time step at a time, and the catalogue of
mistakes people make in it (SPEC section 11): each mistake is one function that says which
lines of the loop it writes wrong.

The loop is min-char-rnn's, in row vectors, batched, for any number of layers. T steps, B
streams, H units, V characters, N = T*B targets; h[l][t] (B, H) is layer l's state after step
t and h[l][-1] its carried state h0[l]; u is a layer's input (one-hot x[t] for layer 0, h[l-1][t]
above); p[t] (B, V) the softmax of the top layer's readout:

    dWxh, dWhh, dbh, dWhy, dby = zeros                 # gradients_not_reset
    dh_next[l] = zeros (B, H) for every layer
    for t = T-1 .. 0:
        dy = (p[t] - onehot(y[t])) / N                 # softmax_grad_missing_minus_one,
                                                       # loss_scale_mismatch
        dWhy += h[L-1][t].T @ dy;  dby += sum_b dy     # overwrite_not_accumulate (every +=)
        du = dy @ Why.T
        for l = L-1 .. 0:
            dh = du + dh_next[l]                       # missing_dh_next
            dh_raw = (1 - h[l][t]**2) * dh             # tanh_derivative_wrong
            dWxh += u.T @ dh_raw;  dbh += sum_b dh_raw
            dWhh += h[l][t-1].T @ dh_raw               # dwhh_uses_h_t
            dh_next[l] = dh_raw @ Whh.T                # whh_not_transposed, dh_next_before_tanh
            du = dh_raw @ Wxh.T                        # to the layer below

`Lines` holds the marked lines as functions; `bptt` runs the loop with them. Each += hands
`Lines.add` one term per stream, (B, ...), so that a loop over streams can be written too. A
mistake returns its variants: the wrong line as a person writes it, and the `Lines` that write
it so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

Grads = dict[str, np.ndarray]


def dy_right(p: np.ndarray, onehot: np.ndarray, T: int, B: int) -> np.ndarray:
    return (p - onehot) / (T * B)


def dh_right(du: np.ndarray, dh_next: np.ndarray) -> np.ndarray:
    return du + dh_next


def dh_raw_right(dh: np.ndarray, h: np.ndarray, a: np.ndarray) -> np.ndarray:
    return (1 - h**2) * dh


def dWhh_right(h_prev: np.ndarray, h: np.ndarray, dh_raw: np.ndarray) -> np.ndarray:
    return outer(h_prev, dh_raw)


def dh_next_right(dh: np.ndarray, dh_raw: np.ndarray, Whh: np.ndarray) -> np.ndarray:
    return dh_raw @ Whh.T


def add_right(total: np.ndarray, terms: np.ndarray) -> np.ndarray:
    return total + terms.sum(axis=0)


@dataclass(frozen=True)
class Lines:
    """The lines of the classic loop that go wrong (see the module docstring)."""
    dy: Callable = dy_right            # (p, onehot, T, B) -> dy: gradient of the logits
    dh: Callable = dh_right            # (du, dh_next) -> dh
    dh_raw: Callable = dh_raw_right    # (dh, h[t], a[t]) -> dh_raw
    dWhh: Callable = dWhh_right        # (h[t-1], h[t], dh_raw) -> one step's dWhh terms
    dh_next: Callable = dh_next_right  # (dh, dh_raw, Whh) -> dh_next
    add: Callable = add_right          # (gradient so far, one step's terms) -> gradient
    reset: bool = True                 # the gradients start from zero at every call


RIGHT = Lines()


# ---------------------------------------------------------------------------- the classic loop


def num_layers(P: Grads) -> int:
    return sum(k.endswith(".Whh") for k in P)


def outer(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(B, m), (B, n) -> (B, m, n): each stream's term u_b v_b^T (summed over b: u.T @ v)."""
    return u[:, :, None] * v[:, None, :]


def onehot(ids: np.ndarray, V: int) -> np.ndarray:
    """(B,) ints -> (B, V)."""
    return np.eye(V)[ids]


def layer_input(x_t: np.ndarray, h: list[dict], l: int, t: int, V: int) -> np.ndarray:
    return onehot(x_t, V) if l == 0 else h[l - 1][t]


def forward(P: Grads, x: np.ndarray, h0: np.ndarray):
    """h, a: per layer, {t: (B, H)} with h[l][-1] = h0[l]; p: (T, B, V) the softmax."""
    T, V = x.shape[0], P["by"].shape[0]
    h, a = [], []
    for l in range(num_layers(P)):
        h.append({-1: h0[l]})
        a.append({})
        for t in range(T):
            u = layer_input(x[t], h, l, t, V)
            a[l][t] = u @ P[f"{l}.Wxh"] + h[l][t - 1] @ P[f"{l}.Whh"] + P[f"{l}.bh"]
            h[l][t] = np.tanh(a[l][t])
    logits = np.stack([h[-1][t] for t in range(T)]) @ P["Why"] + P["by"]
    logits -= logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=-1, keepdims=True)
    return h, a, p


def bptt(P: Grads, x: np.ndarray, y: np.ndarray, h0: np.ndarray, lines: Lines = RIGHT,
         before: Grads | None = None) -> Grads:
    """The gradients of the mean loss as the classic loop writes them with `lines`.
    x, y: (T, B); h0: (L, B, H); P and the result use SPEC names. before: what the gradient
    arrays hold from the previous call (kept when lines.reset is False)."""
    (T, B), V, L = x.shape, P["by"].shape[0], num_layers(P)
    h, a, p = forward(P, x, h0)
    if lines.reset or before is None:
        g = {k: np.zeros_like(v) for k, v in P.items()}
    else:
        g = {k: v.copy() for k, v in before.items()}
    dh_next = [np.zeros_like(h0[l]) for l in range(L)]
    for t in reversed(range(T)):
        dy = lines.dy(p[t], onehot(y[t], V), T, B)
        g["Why"] = lines.add(g["Why"], outer(h[L - 1][t], dy))
        g["by"] = lines.add(g["by"], dy)
        du = dy @ P["Why"].T
        for l in reversed(range(L)):
            dh = lines.dh(du, dh_next[l])
            dh_raw = lines.dh_raw(dh, h[l][t], a[l][t])
            u = layer_input(x[t], h, l, t, V)
            g[f"{l}.Wxh"] = lines.add(g[f"{l}.Wxh"], outer(u, dh_raw))
            g[f"{l}.bh"] = lines.add(g[f"{l}.bh"], dh_raw)
            g[f"{l}.Whh"] = lines.add(g[f"{l}.Whh"], lines.dWhh(h[l][t - 1], h[l][t], dh_raw))
            dh_next[l] = lines.dh_next(dh, dh_raw, P[f"{l}.Whh"])
            du = dh_raw @ P[f"{l}.Wxh"].T
    return g


def each_call(P: Grads, x: np.ndarray, y: np.ndarray, h0: np.ndarray, lengths: list[int],
              lines: Lines = RIGHT) -> Iterator[tuple[int, Grads]]:
    """One call per length t, in the given order, on the first t steps: (t, gradients). An
    implementation that never resets its gradients adds each call's to the previous call's."""
    before = None
    for t in lengths:
        before = bptt(P, x[:t], y[:t], h0, lines, before)
        yield t, before


def bptt_calls(P: Grads, x: np.ndarray, y: np.ndarray, h0: np.ndarray, lengths: list[int],
               lines: Lines = RIGHT) -> dict[int, Grads]:
    """{t: gradients} of each_call."""
    return dict(each_call(P, x, y, h0, lengths, lines))


# -------------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Mistake:
    id: str                    # SPEC section 11
    sentence: str              # what goes wrong, in one sentence
    right: str                 # the line of the classic loop where it lives, written right
    fix: str
    variants: dict[str, Lines]  # the line as it is written wrong -> the loop with it
    per_parameter: bool = False  # can be made in any subset of the parameters' gradients


CATALOG: dict[str, Mistake] = {}


def mistake(sentence: str, right: str, fix: str, per_parameter: bool = False):
    """Register a function returning {wrong line: Lines} under its name."""
    def register(variants: Callable[[], dict[str, Lines]]):
        CATALOG[variants.__name__] = Mistake(variants.__name__, sentence, right, fix,
                                             variants(), per_parameter)
        return variants
    return register


@mistake("dh never receives dh_next, the gradient carried back from step t+1, so no step's "
         "loss reaches the earlier steps through Whh",
         right="dh = du + dh_next[l]",
         fix="add dh_next (dh_raw @ Whh.T of step t+1, zero at the last step) to dh")
def missing_dh_next():
    return {"dh = du": Lines(dh=lambda du, dh_next: du)}


@mistake("dWhh multiplies dh_raw by h[t], the state this step made, instead of h[t-1], the "
         "state that Whh multiplied in the forward pass",
         right="dWhh += h[l][t-1].T @ dh_raw",
         fix="use the previous state h[t-1] in dWhh (h0 at t = 0)")
def dwhh_uses_h_t():
    return {"dWhh += h[l][t].T @ dh_raw":
            Lines(dWhh=lambda h_prev, h, dh_raw: outer(h, dh_raw))}


@mistake("dh_raw is not dh times tanh's derivative at a[t], which is 1 - h[t]**2 with "
         "h[t] = tanh(a[t])",
         right="dh_raw = (1 - h[l][t]**2) * dh",
         fix="multiply dh by 1 - h[t]**2, computed from the tanh output h[t]")
def tanh_derivative_wrong():
    return {
        "dh_raw = dh": Lines(dh_raw=lambda dh, h, a: dh),
        "dh_raw = (1 - h[l][t]) * dh": Lines(dh_raw=lambda dh, h, a: (1 - h) * dh),
        "dh_raw = (1 - np.tanh(h[l][t])**2) * dh":
            Lines(dh_raw=lambda dh, h, a: (1 - np.tanh(h) ** 2) * dh),
        "dh_raw = (1 - a[l][t]**2) * dh": Lines(dh_raw=lambda dh, h, a: (1 - a**2) * dh),
        "dh_raw = h[l][t] * (1 - h[l][t]) * dh (the sigmoid's derivative)":
            Lines(dh_raw=lambda dh, h, a: h * (1 - h) * dh),
    }


@mistake("dh_next multiplies dh_raw by Whh instead of Whh.T: the forward pass computes "
         "h[t-1] @ Whh, so the gradient flows back through the transpose",
         right="dh_next[l] = dh_raw @ Whh.T",
         fix="transpose Whh in dh_next (in C: index Whh[j][i] where the forward used Whh[i][j])")
def whh_not_transposed():
    return {"dh_next[l] = dh_raw @ Whh":
            Lines(dh_next=lambda dh, dh_raw, Whh: dh_raw @ Whh)}


@mistake("dh_next is carried from dh, before the tanh derivative, instead of from dh_raw, the "
         "gradient of the pre-activation a[t] that h[t-1] @ Whh feeds",
         right="dh_next[l] = dh_raw @ Whh.T",
         fix="form dh_raw = (1 - h[t]**2) * dh first and carry dh_raw @ Whh.T")
def dh_next_before_tanh():
    return {"dh_next[l] = dh @ Whh.T": Lines(dh_next=lambda dh, dh_raw, Whh: dh @ Whh.T)}


@mistake("a gradient is assigned (=) instead of added (+=) inside the loop, so it keeps only "
         "the term of the last step the loop visits, t = 0",
         right="dWhh += h[l][t-1].T @ dh_raw  (and every other gradient: a sum over steps "
               "and streams)",
         fix="accumulate with += into gradients zeroed before the loop", per_parameter=True)
def overwrite_not_accumulate():
    return {"dW = <step t's term>, streams together (keeps step 0)":
            Lines(add=lambda total, terms: terms.sum(axis=0)),
            "dW = <step t's term>, one stream at a time (keeps the last stream's step 0)":
            Lines(add=lambda total, terms: terms[-1])}


@mistake("dy is the softmax p without the 1 subtracted at the target; the gradient of the "
         "cross-entropy with respect to the logits is p - onehot(y)",
         right="dy = (p[t] - onehot(y[t])) / N",
         fix="dy = p[t].copy(); dy[range(B), y[t]] -= 1; dy /= N")
def softmax_grad_missing_minus_one():
    return {"dy = p[t] / N": Lines(dy=lambda p, onehot, T, B: p / (T * B))}


def dy_divided_by(divisor: Callable[[int, int], float]) -> Lines:
    return Lines(dy=lambda p, onehot, T, B: (p - onehot) / divisor(T, B))


@mistake("the gradients are those of the loss times a constant, not of the mean over the "
         "N = T*B targets",
         right="dy = (p[t] - onehot(y[t])) / N",
         fix="divide dy by N = T*B, once, and report that same mean as the loss")
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


@mistake("the gradient arrays are not zeroed at the start of each call, so every call adds "
         "its gradients to those of the calls before it",
         right="dWxh, dWhh, dbh, dWhy, dby = zeros  (at the start of every call)",
         fix="zero every gradient at the start of the backward pass (np.zeros_like; in C "
             "memset)", per_parameter=True)
def gradients_not_reset():
    return {"the gradients are zeroed once, outside the backward pass": Lines(reset=False)}


CATALOGS = {"rnn": CATALOG}  # the cells whose mistakes have a catalogue


def mutants(cell: str = "rnn") -> list[tuple[Mistake, str, Lines]]:
    """Every (mistake, wrong line, Lines) of the cell's catalogue (none for a cell without)."""
    return [(m, wrong, lines) for m in CATALOGS.get(cell, {}).values()
            for wrong, lines in m.variants.items()]


__all__ = ["CATALOG", "CATALOGS", "RIGHT", "Lines", "Mistake", "bptt", "bptt_calls", "each_call",
           "forward", "mutants"]
