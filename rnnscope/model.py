"""The character model: one-hot input, stacked tanh layers, softmax readout, loss and gradients.

Time-major, row-vector convention (SPEC section 1). x, y: (T, B) ints; N = T*B targets.
Layer l has "{l}.Wxh" (in x H), "{l}.Whh" (H x H), "{l}.bh" (H);
the readout "Why" (H x V), "by" (V).
The input of layer 0 is one-hot, so u_t @ Wxh is a row lookup Wxh[x_t]; the input of layer l > 0
is h of layer l-1 (after dropout, when training with dropout).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cells import rnn_backward, rnn_forward
from .config import CELLS, DTYPES, INITS
from .errors import RnnscopeError

ALIGN = 64  # bytes, a cache line


@dataclass
class LossAndGrads:
    """What loss_and_grads returns. The probe arrays are the model's reused work buffers: they
    hold this call's values until the next loss_and_grads call on the same model overwrites
    them (read them, or copy them, before that; the panel reads them right after the step).
    loss, grads and h_last are the caller's to keep."""
    loss: float                 # mean NLL over the T*B targets, nats/char
    grads: dict[str, np.ndarray]
    h_last: np.ndarray          # (L, B, H), pass as h0 for the next chunk
    probes: list[dict]          # per layer {"h", "dh", "dh_raw"}, each (T, B, H)


class Model:
    """A stack of `num_layers` tanh RNN layers over a `vocab_size` alphabet."""

    def __init__(self, vocab_size: int, hidden_size: int = 256, num_layers: int = 1,
                 cell: str = "rnn", seed: int = 0, dtype: str = "float32",
                 recurrent_init: str = "orthogonal", recurrent_scale: float = 1.0,
                 input_scale: float = 1.0) -> None:
        check_model_args(vocab_size, hidden_size, num_layers, cell, dtype, recurrent_init)
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.cell, self.dtype = cell, np.dtype(dtype)
        self.params = init_params(vocab_size, hidden_size, num_layers, np.random.default_rng(seed),
                                  self.dtype, recurrent_init, recurrent_scale, input_scale)
        self._buffers: dict[str, np.ndarray] = {}  # loss_and_grads' work arrays, by name

    def zero_state(self, batch: int) -> np.ndarray:
        return np.zeros((self.num_layers, batch, self.hidden_size), dtype=self.dtype)

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None):
        """Logits (T, B, V) and h_last (L, B, H), without keeping anything for a backward pass.
        Works in fresh arrays, so it never disturbs the probes of the last loss_and_grads."""
        hs, _ = self._layers(x, self._state(h0, x.shape[1]), 0.0, None, self._fresh)
        logits = self._readout(hs[-1][1:], self._fresh)
        return logits.reshape(*x.shape, -1), last_states(hs)

    def loss(self, x: np.ndarray, y: np.ndarray, h0: np.ndarray | None = None):
        """(mean NLL, h_last) without gradients: for evaluation."""
        logits, h_last = self.forward(x, h0)
        return nll(logits.reshape(-1, self.vocab_size), y.ravel())[0], h_last

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, h0: np.ndarray | None = None,
                       dropout: float = 0.0, rng: np.random.Generator | None = None
                       ) -> LossAndGrads:
        """Forward, loss and hand-written truncated BPTT over one (T, B) chunk."""
        P, T, B, H = self.params, x.shape[0], x.shape[1], self.hidden_size
        work = self._buffer
        hs, masks = self._layers(x, self._state(h0, B), dropout, rng, work)
        top = hs[-1][1:] if masks[-1] is None else hs[-1][1:] * masks[-1]
        loss, dlogits = nll(self._readout(top, work), y.ravel())
        grads = {"Why": top.reshape(-1, H).T @ dlogits, "by": dlogits.sum(axis=0)}
        du = work(f"{self.num_layers - 1}.dh", (T, B, H))  # gradient reaching a layer's output
        np.dot(dlogits, P["Why"].T, out=du.reshape(-1, H))
        probes = []
        for l in reversed(range(self.num_layers)):
            if masks[l] is not None:
                du *= masks[l]
            dh, dh_raw = du, work(f"{l}.dh_raw", (T, B, H))
            grads[f"{l}.Whh"] = np.empty((H, H), self.dtype)
            rnn_backward(dh, hs[l], aligned_copy(P[f"{l}.Whh"].T, work("WhhT", (H, H))),
                         dh_raw, grads[f"{l}.Whh"], work("scratch", (B, H)))
            flat = dh_raw.reshape(-1, H)
            if l == 0:  # each position's dh_raw lands in one row of dWxh, so those rows sum to dbh
                grads["0.Wxh"] = one_hot_columns(x.ravel(), self.vocab_size, self.dtype) @ flat
                grads["0.bh"] = grads["0.Wxh"].sum(axis=0)
            else:
                grads[f"{l}.bh"] = flat.sum(axis=0)
                below = hs[l - 1][1:] if masks[l - 1] is None else hs[l - 1][1:] * masks[l - 1]
                grads[f"{l}.Wxh"] = below.reshape(-1, H).T @ flat
                du = work(f"{l - 1}.dh", (T, B, H))
                np.dot(flat, P[f"{l}.Wxh"].T, out=du.reshape(-1, H))
            probes.append({"h": hs[l][1:], "dh": dh, "dh_raw": dh_raw})
        probes.reverse()
        return LossAndGrads(loss, {k: grads[k] for k in P}, last_states(hs), probes)

    def _layers(self, x, h0, dropout, rng, alloc):
        """Run every layer over the chunk. Returns, per layer, its states hs (T+1, B, H) with
        hs[0] = h0[l] (see cells.py) and its dropout mask; alloc(name, shape) gives arrays."""
        P, T, B, H = self.params, x.shape[0], x.shape[1], self.hidden_size
        check_ids(x, self.vocab_size)
        hs, masks, u = [], [], None
        for l in range(self.num_layers):
            h = alloc(f"{l}.hs", (T + 1, B, H))
            h[0] = h0[l]
            if l == 0:  # one-hot input: the input product is a row lookup of Wxh + bh
                np.take(P["0.Wxh"] + P["0.bh"], x, axis=0, out=h[1:], mode="clip")
            else:
                np.dot(u.reshape(-1, H), P[f"{l}.Wxh"], out=h[1:].reshape(-1, H))
                h[1:] += P[f"{l}.bh"]
            rnn_forward(h, aligned_copy(P[f"{l}.Whh"], alloc("Whh", (H, H))),
                        alloc("scratch", (B, H)))
            mask = dropout_mask(h[1:].shape, dropout, rng, self.dtype)
            hs.append(h)
            masks.append(mask)
            u = h[1:] if mask is None else h[1:] * mask
        return hs, masks

    def _readout(self, h: np.ndarray, alloc) -> np.ndarray:
        """h (T, B, H) -> logits (T*B, V)."""
        logits = alloc("logits", (h.shape[0] * h.shape[1], self.vocab_size))
        np.dot(h.reshape(-1, self.hidden_size), self.params["Why"], out=logits)
        logits += self.params["by"]
        return logits

    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        """The work array `name`, kept from call to call (made anew when the shape changes)."""
        a = self._buffers.get(name)
        if a is None or a.shape != shape:
            a = self._buffers[name] = empty_aligned(shape, self.dtype)
        return a

    def _fresh(self, name: str, shape: tuple) -> np.ndarray:
        return empty_aligned(shape, self.dtype)

    def _state(self, h0, batch):
        if h0 is None:
            return self.zero_state(batch)
        expected = (self.num_layers, batch, self.hidden_size)
        if h0.shape != expected:
            raise ValueError(f"h0 has shape {h0.shape}, expected (L, B, H) = {expected}")
        return h0.astype(self.dtype, copy=False)


def empty_aligned(shape: tuple, dtype) -> np.ndarray:
    """np.empty, but starting on a 64-byte cache line (NumPy only promises 16 bytes): the
    per-step products of the recurrence run several percent faster on aligned operands."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_copy(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """a copied into the aligned array out (of a's shape): a contiguous, aligned operand."""
    np.copyto(out, a)
    return out


def last_states(hs: list[np.ndarray]) -> np.ndarray:
    """(L, B, H): every layer's last state, a fresh array."""
    return np.stack([h[-1] for h in hs])


def check_ids(x: np.ndarray, vocab_size: int) -> None:
    if x.size and (x.min() < 0 or x.max() >= vocab_size):
        raise ValueError(f"character ids must be in [0, {vocab_size}), got [{x.min()}, {x.max()}]")


def nll(logits: np.ndarray, y: np.ndarray):
    """Mean negative log-likelihood of targets y (N,) under logits (N, V), and its gradient,
    which is written over `logits` (softmax minus the one-hot target, divided by N)."""
    N = logits.shape[0]
    rows = np.arange(N)
    logits -= logits.max(axis=1, keepdims=True)
    picked = logits[rows, y]
    p = np.exp(logits, out=logits)
    total = p.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - picked))
    p *= 1 / (N * total)
    p[rows, y] -= 1 / N
    return loss, p


def one_hot_columns(ids: np.ndarray, size: int, dtype) -> np.ndarray:
    """(N,) ints -> (size, N), column n the one-hot vector of ids[n]: times dh_raw (N, H) it
    sums the rows of dh_raw by character (a dense product beats np.add.at many times over)."""
    out = np.zeros((size, ids.size), dtype=dtype)
    out[ids, np.arange(ids.size)] = 1
    return out


def dropout_mask(shape, p: float, rng: np.random.Generator | None, dtype) -> np.ndarray | None:
    """Inverted dropout: keep with probability 1-p and scale by 1/(1-p); None when p == 0."""
    if p == 0:
        return None
    if rng is None:
        raise ValueError("dropout needs an rng")
    return ((rng.random(shape) >= p) / (1 - p)).astype(dtype)


def init_params(V: int, H: int, L: int, rng: np.random.Generator, dtype, recurrent_init: str,
                recurrent_scale: float, input_scale: float) -> dict[str, np.ndarray]:
    """Input weights std input_scale/sqrt(fan_in); Whh by scheme times recurrent_scale;
    readout std 1/sqrt(H); biases zero."""
    params = {}
    for l in range(L):
        fan_in = V if l == 0 else H
        params[f"{l}.Wxh"] = rng.normal(0, input_scale / np.sqrt(fan_in), (fan_in, H))
        params[f"{l}.Whh"] = recurrent_scale * recurrent_matrix(recurrent_init, H, rng)
        params[f"{l}.bh"] = np.zeros(H)
    params["Why"] = rng.normal(0, 1 / np.sqrt(H), (H, V))
    params["by"] = np.zeros(V)
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}


def recurrent_matrix(scheme: str, H: int, rng: np.random.Generator) -> np.ndarray:
    if scheme == "identity":
        return np.eye(H)
    if scheme == "normal":
        return rng.normal(0, 1 / np.sqrt(H), (H, H))
    q, r = np.linalg.qr(rng.normal(size=(H, H)))
    return q * np.sign(np.diag(r))  # sign fix makes q uniformly (Haar) distributed


def check_model_args(vocab_size, hidden_size, num_layers, cell, dtype, recurrent_init) -> None:
    for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise RnnscopeError(f"{name} must be a positive integer, got {value!r}")
    for name, value, allowed in (("cell", cell, CELLS), ("dtype", dtype, DTYPES),
                                 ("recurrent_init", recurrent_init, INITS)):
        if value not in allowed:
            raise RnnscopeError(f"{name} {value!r} is not known; use one of: {', '.join(allowed)}")
