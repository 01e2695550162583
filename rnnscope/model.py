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


@dataclass
class LossAndGrads:
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

    def zero_state(self, batch: int) -> np.ndarray:
        return np.zeros((self.num_layers, batch, self.hidden_size), dtype=self.dtype)

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None):
        """Logits (T, B, V) and h_last (L, B, H), without keeping anything for a backward pass."""
        hs, _ = self._layers(x, self._state(h0, x.shape[1]), 0.0, None)
        return self._readout(hs[-1]), np.stack([h[-1] for h in hs])

    def loss(self, x: np.ndarray, y: np.ndarray, h0: np.ndarray | None = None):
        """(mean NLL, h_last) without gradients: for evaluation."""
        logits, h_last = self.forward(x, h0)
        return float(nll(logits.reshape(-1, self.vocab_size), y.ravel())[0]), h_last

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, h0: np.ndarray | None = None,
                       dropout: float = 0.0, rng: np.random.Generator | None = None
                       ) -> LossAndGrads:
        """Forward, loss and hand-written truncated BPTT over one (T, B) chunk."""
        P, T, B, H = self.params, x.shape[0], x.shape[1], self.hidden_size
        h0 = self._state(h0, B)
        hs, masks = self._layers(x, h0, dropout, rng)
        top = hs[-1] if masks[-1] is None else hs[-1] * masks[-1]
        logits = self._readout(top).reshape(T * B, -1)
        loss, dlogits = nll(logits, y.ravel())
        grads = {"Why": top.reshape(-1, H).T @ dlogits, "by": dlogits.sum(0)}
        du = (dlogits @ P["Why"].T).reshape(T, B, H)  # gradient reaching the top layer's output
        probes = []
        for l in reversed(range(self.num_layers)):
            if masks[l] is not None:
                du *= masks[l]
            dh, dh_raw, grads[f"{l}.Whh"], _ = rnn_backward(du, hs[l], h0[l], P[f"{l}.Whh"])
            grads[f"{l}.bh"] = dh_raw.sum(axis=(0, 1))
            flat = dh_raw.reshape(-1, H)
            if l == 0:
                grads["0.Wxh"] = one_hot(x.ravel(), self.vocab_size, self.dtype).T @ flat
            else:
                below = hs[l - 1] if masks[l - 1] is None else hs[l - 1] * masks[l - 1]
                grads[f"{l}.Wxh"] = below.reshape(-1, H).T @ flat
                du = (flat @ P[f"{l}.Wxh"].T).reshape(T, B, H)
            probes.append({"h": hs[l], "dh": dh, "dh_raw": dh_raw})
        probes.reverse()
        h_last = np.stack([h[-1] for h in hs])
        return LossAndGrads(loss, {k: grads[k] for k in P}, h_last, probes)

    def _layers(self, x, h0, dropout, rng):
        """Run every layer over the chunk: hidden states (T, B, H) per layer and dropout masks."""
        P, hs, masks, u = self.params, [], [], None
        for l in range(self.num_layers):
            if l == 0:
                ax = P["0.Wxh"][x]
                ax += P["0.bh"]
            else:
                ax = u @ P[f"{l}.Wxh"]
                ax += P[f"{l}.bh"]
            h = rnn_forward(ax, h0[l], P[f"{l}.Whh"])
            mask = dropout_mask(h.shape, dropout, rng, self.dtype)
            hs.append(h)
            masks.append(mask)
            u = h if mask is None else h * mask
        return hs, masks

    def _readout(self, h: np.ndarray) -> np.ndarray:
        logits = h @ self.params["Why"]
        logits += self.params["by"]
        return logits

    def _state(self, h0, batch):
        if h0 is None:
            return self.zero_state(batch)
        expected = (self.num_layers, batch, self.hidden_size)
        if h0.shape != expected:
            raise ValueError(f"h0 has shape {h0.shape}, expected (L, B, H) = {expected}")
        return h0.astype(self.dtype, copy=False)


def nll(logits: np.ndarray, y: np.ndarray):
    """Mean negative log-likelihood of targets y (N,) under logits (N, V), and its gradient."""
    N = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    total = p.sum(axis=1, keepdims=True)
    rows = np.arange(N)
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))
    p /= total
    p[rows, y] -= 1
    p /= N
    return loss, p


def one_hot(ids: np.ndarray, size: int, dtype) -> np.ndarray:
    """(N,) ints -> (N, size) one-hot rows; its transpose times dh_raw sums rows by character."""
    out = np.zeros((ids.size, size), dtype=dtype)
    out[np.arange(ids.size), ids] = 1
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
