"""The classic hand-written BPTT of the stacked tanh RNN (min-char-rnn's, in row vectors,
batched, any number of layers), with each line that people write wrong a replaceable function
(`Lines`), and a mistake put into any chosen layers (SPEC section 11).

T steps, B streams, H units, V characters, N = T*B targets. h[l][t] (B, H) is layer l's state
after step t, h[l][-1] its carried state h0[l]; u[l][t] is its input (one-hot x[t] for layer 0,
h[l-1][t] above); p[t] (B, V) the softmax of the top layer's readout. Written layer by layer
(the same numbers as the time-outer loop; a mistake in the time-outer loop is the same mistake
here):

    dWxh, dWhh, dbh, dWhy, dby = zeros                     # reset
    dy[t] = (p[t] - onehot(y[t])) / N                      # dy
    dWhy += h[L-1][t].T @ dy[t];  dby += sum_b dy[t]       # add, add_bias
    du[t] = dy[t] @ Why.T                                  # the gradient into the top layer
    for l = L-1 .. 0:
        dh_next = zeros (B, H)
        for t = T-1 .. 0:
            dh[t] = du[t] + dh_next                        # dh
            dh_raw[t] = (1 - h[l][t]**2) * dh[t]           # dh_raw
            dh_next = dh_raw[t] @ Whh.T                    # dh_next
        dWxh += u[l][t].T @ dh_raw[t]                      # dWxh, delta, add
        dbh += sum_b dh_raw[t]                             # delta, add_bias
        dWhh += h[l][t-1].T @ dh_raw[t]                    # dWhh, delta, add
        du[t] = dh_raw[t] @ Wxh.T                          # down: to the layer below, which
                                                           # reads it at step t (below)

`bptt(..., lines, layers)` runs the loop with `lines` in the layers `layers` (None: every
layer) and the right lines elsewhere; the readout's lines (dy, and add/add_bias for Why, by)
and reset are the loop's, not a layer's. A gradient line hands `add` every step's and
stream's terms at once, as their factors (u, v): the term of step t and stream b is
u[t, b] v[t, b]^T (v[t, b] alone for a bias, u None), so that overwriting (keeping the last
step visited, t = 0, or its last stream's) can be written as well as summing.
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


def dh_raw_right(dh: np.ndarray, h: np.ndarray, a: np.ndarray, t: int) -> np.ndarray:
    """h: the layer's states, h[t + 1] the state after step t (h[0] = h0); a[t] the
    pre-activation of step t."""
    return (1 - h[t + 1] ** 2) * dh


def dh_next_right(dh: np.ndarray, dh_raw: np.ndarray, Whh: np.ndarray,
                  Wxh: np.ndarray) -> np.ndarray:
    return dh_raw @ Whh.T


def delta_right(dh: np.ndarray, dh_raw: np.ndarray) -> np.ndarray:
    return dh_raw


Factors = tuple[np.ndarray | None, np.ndarray]


def dWxh_right(u: np.ndarray, u_prev: np.ndarray, h: np.ndarray, delta: np.ndarray) -> Factors:
    """Every step's terms as factors ((T, B, in), (T, B, H)); u_prev[t] = u[t-1] (the layer
    below's h0 at t = 0), h[t] the layer's own state after step t."""
    return u, delta


def dWhh_right(h_prev: np.ndarray, h: np.ndarray, delta: np.ndarray) -> Factors:
    return h_prev, delta


def down_right(dh_raw: np.ndarray, Wxh: np.ndarray, Whh: np.ndarray) -> np.ndarray:
    return dh_raw @ Wxh.T


def below_right(down: np.ndarray) -> np.ndarray:
    """What the layer below reads at each step t from `down` (T, B, H)."""
    return down


def summed(u: np.ndarray | None, v: np.ndarray) -> np.ndarray:
    """The sum over steps and streams of the terms u[t, b] v[t, b]^T (v[t, b] when u is None).
    einsum, not one large matrix product: that product would wake BLAS's threads, which on a
    busy machine wait for cores far longer than the product takes."""
    if u is None:
        return v.sum(axis=(0, 1))
    return np.einsum("tbi,tbj->ij", u, v)


def add_right(total: np.ndarray, u: np.ndarray | None, v: np.ndarray) -> np.ndarray:
    return total + summed(u, v)


@dataclass(frozen=True)
class Lines:
    """The lines of the classic loop that go wrong (see the module docstring)."""
    dy: Callable = dy_right            # (p, onehot, T, B) -> dy, every step: the logits' gradient
    dh: Callable = dh_right            # (du[t], dh_next) -> dh[t]
    dh_raw: Callable = dh_raw_right    # (dh[t], h, a, t) -> dh_raw[t]
    dh_next: Callable = dh_next_right  # (dh[t], dh_raw[t], Whh, Wxh) -> dh_next
    delta: Callable = delta_right      # (dh, dh_raw) -> what the layer's gradients multiply
    dWxh: Callable = dWxh_right        # (u, u_prev, h, delta) -> dWxh's terms, as factors
    dWhh: Callable = dWhh_right        # (h_prev, h, delta) -> dWhh's terms, as factors
    down: Callable = down_right        # (dh_raw, Wxh, Whh) -> the gradient sent to the layer below
    below: Callable = below_right      # (down) -> what the layer below reads at each step
    add: Callable = add_right          # (gradient so far, u, v: the terms) -> gradient: weights
    add_bias: Callable = add_right     # the same for the biases bh, by
    reset: bool = True                 # the gradients start from zero at every call


RIGHT = Lines()


def onehot(ids: np.ndarray, V: int) -> np.ndarray:
    """(...) ints -> (..., V)."""
    return np.eye(V)[ids]


@dataclass(frozen=True)
class Forward:
    """The forward pass of a chunk: h (L, T+1, B, H) with h[l][0] = h0[l] and h[l][t+1] the
    state after step t; a (L, T, B, H) the pre-activations; u0 (T, B, V) the one-hot inputs;
    p (T, B, V) the softmax. The first t steps of it are the forward pass of x[:t]."""
    h: np.ndarray
    a: np.ndarray
    u0: np.ndarray
    p: np.ndarray

    def first(self, t: int) -> Forward:
        return Forward(self.h[:, :t + 1], self.a[:, :t], self.u0[:t], self.p[:t])


def forward(P: Grads, x: np.ndarray, h0: np.ndarray) -> Forward:
    (T, B), V, L = x.shape, P["by"].shape[0], len(h0)
    H = P["Why"].shape[0]
    h, a = np.empty((L, T + 1, B, H)), np.empty((L, T, B, H))
    u = u0 = onehot(x, V)
    for l in range(L):
        h[l][0] = h0[l]
        for t in range(T):
            a[l][t] = u[t] @ P[f"{l}.Wxh"] + h[l][t] @ P[f"{l}.Whh"] + P[f"{l}.bh"]
            h[l][t + 1] = np.tanh(a[l][t])
        u = h[l][1:]
    logits = h[-1][1:] @ P["Why"] + P["by"]
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return Forward(h, a, u0, p / p.sum(axis=-1, keepdims=True))


def bptt(P: Grads, x: np.ndarray, y: np.ndarray, h0: np.ndarray, lines: Lines = RIGHT,
         before: Grads | None = None, layers: frozenset | None = None,
         fw: Forward | None = None) -> Grads:
    """The gradients of the mean loss as the classic loop writes them with `lines` in `layers`
    (None: every layer). x, y: (T, B); h0: (L, B, H); P and the result use SPEC names. before:
    what the gradient arrays hold from the previous call (kept when lines.reset is False). fw:
    the forward pass of x (or of a longer chunk starting with x), computed when not given."""
    (T, B), V, L = x.shape, P["by"].shape[0], len(h0)
    fw = forward(P, x, h0) if fw is None else fw.first(T)
    g = ({k: np.zeros_like(v) for k, v in P.items()} if lines.reset or before is None else
         {k: v.copy() for k, v in before.items()})
    dy = lines.dy(fw.p, onehot(y, V), T, B)
    g["Why"] = lines.add(g["Why"], fw.h[L - 1][1:], dy)
    g["by"] = lines.add_bias(g["by"], None, dy)
    du = dy @ P["Why"].T
    for l in reversed(range(L)):
        ll = lines if layers is None or l in layers else RIGHT
        du = layer_backward(P, l, fw, du, ll, g)
    return g


def layer_backward(P: Grads, l: int, fw: Forward, du: np.ndarray, ll: Lines,
                   g: Grads) -> np.ndarray:
    """Layer l's part of the loop: adds its gradients into g, returns what layer l-1 reads."""
    h, a = fw.h[l], fw.a[l]
    Wxh, Whh = P[f"{l}.Wxh"], P[f"{l}.Whh"]
    dh, dh_raw = np.empty_like(du), np.empty_like(du)
    dh_next = np.zeros_like(du[0])
    for t in reversed(range(len(du))):
        dh[t] = ll.dh(du[t], dh_next)
        dh_raw[t] = ll.dh_raw(dh[t], h, a, t)
        dh_next = ll.dh_next(dh[t], dh_raw[t], Whh, Wxh)
    u = fw.u0 if l == 0 else fw.h[l - 1][1:]
    u_prev = np.concatenate([np.zeros_like(u[:1]), u[:-1]]) if l == 0 else fw.h[l - 1][:-1]
    delta = ll.delta(dh, dh_raw)
    g[f"{l}.Wxh"] = ll.add(g[f"{l}.Wxh"], *ll.dWxh(u, u_prev, h[1:], delta))
    g[f"{l}.bh"] = ll.add_bias(g[f"{l}.bh"], None, delta)
    g[f"{l}.Whh"] = ll.add(g[f"{l}.Whh"], *ll.dWhh(h[:-1], h[1:], delta))
    return ll.below(ll.down(dh_raw, Wxh, Whh))


def each_call(P: Grads, x: np.ndarray, y: np.ndarray, h0: np.ndarray, lengths: list[int],
              lines: Lines = RIGHT, layers: frozenset | None = None,
              fw: Forward | None = None) -> Iterator[tuple[int, Grads]]:
    """One call per length t on the first t steps: (t, gradients). An implementation that never
    resets its gradients adds each call's to the previous call's, so its calls come in the
    given order; the others' are independent and come longest first (the one that differs
    most often)."""
    fw = forward(P, x, h0) if fw is None else fw
    before = None
    for t in lengths if not lines.reset else sorted(lengths, reverse=True):
        before = bptt(P, x[:t], y[:t], h0, lines, before, layers, fw)
        yield t, before


def bptt_calls(P: Grads, x: np.ndarray, y: np.ndarray, h0: np.ndarray, lengths: list[int],
               lines: Lines = RIGHT, layers: frozenset | None = None) -> dict[int, Grads]:
    """{t: gradients} of each_call, in the order of `lengths`."""
    calls = dict(each_call(P, x, y, h0, lengths, lines, layers))
    return {t: calls[t] for t in lengths}


__all__ = ["RIGHT", "Forward", "Lines", "bptt", "bptt_calls", "each_call", "forward", "summed"]
