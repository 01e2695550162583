"""The character model: one-hot input, stacked recurrent layers, softmax readout, loss, gradients.

Time-major, row-vector convention (SPEC section 1). x, y: (T, B) ints; N = T*B targets.
Layer l's parameters are "{l}.{name}" with the names of its cell (rnnscope/cells: the tanh cell
has "{l}.Wxh" (in x H), "{l}.Whh" (H x H), "{l}.bh" (H)); the readout "Why" (H x V), "by" (V).
The model does what every cell shares: the input product ax = u @ Wx + bx of all steps at once
(the input of layer 0 is one-hot, so it is a row lookup of Wx + bx; with an embedding (SPEC 1,
"embed", V x E) the row lookup of embed @ Wx + bx, the same product; the input of layer l > 0 is
the output h of layer l-1, after dropout when training with dropout; layers_pass gives layer 0
a dense input instead, as another network's layers have: SPEC 10), the input-weight gradients
as single large products, stacking, dropout, readout, loss and the reused work buffers; the
cell runs the recurrence and its backward pass (the cell contract: rnnscope/cells/__init__.py).

A state (h0, h_last, zero_state) is in the cell's form: an (L, B, H) array of h for a cell whose
state is h alone, a tuple of such arrays, one per part, for the LSTM's (h, c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cells import CELLS, Init, layer_params
from .cells.base import blocks, side_by_side
from .config import DTYPES, INITS
from .errors import RnnscopeError

ALIGN = 64  # bytes, a cache line
State = np.ndarray | tuple  # (L, B, H), or a tuple of them for a cell with several parts


@dataclass
class LossAndGrads:
    """What loss_and_grads returns. The probe arrays are the model's reused work buffers: they
    hold this call's values until the next loss_and_grads call on the same model overwrites
    them (read them, or copy them, before that; the panel reads them right after the step).
    loss, grads and h_last are the caller's to keep."""
    loss: float                 # mean NLL over the T*B targets, nats/char
    grads: dict[str, np.ndarray]
    h_last: State               # pass as h0 for the next chunk
    probes: list[dict]          # per layer {"h", "dh", "dh_raw", gates...}, each (T, B, H)


class Model:
    """A stack of `num_layers` recurrent layers of cell `cell` over a `vocab_size` alphabet.
    forget_bias and chrono_init (T_max, None: off) initialise the gated cells' gate biases."""

    def __init__(self, vocab_size: int, hidden_size: int = 256, num_layers: int = 1,
                 cell: str = "rnn", seed: int = 0, dtype: str = "float32",
                 recurrent_init: str = "orthogonal", recurrent_scale: float = 1.0,
                 input_scale: float = 1.0, forget_bias: float = 1.0,
                 chrono_init: int | None = None, embed: int = 0) -> None:
        check_model_args(vocab_size, hidden_size, num_layers, cell, dtype, recurrent_init)
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.embed = embed  # E, the width of layer 0's learned input embedding; 0: one-hot
        self.cell, self.cell_module, self.dtype = cell, CELLS[cell], np.dtype(dtype)
        init = Init(recurrent_init, recurrent_scale, input_scale, forget_bias, chrono_init)
        self.params = init_params(self.cell_module, vocab_size, hidden_size, num_layers,
                                  np.random.default_rng(seed), self.dtype, init, embed)
        self._buffers: dict[str, np.ndarray] = {}  # loss_and_grads' work arrays, by name

    def zero_state(self, batch: int) -> State:
        shape = (self.num_layers, batch, self.hidden_size)
        return from_parts([np.zeros(shape, self.dtype) for _ in self.cell_module.STATE])

    def forward(self, x: np.ndarray, h0: State | None = None):
        """Logits (T, B, V) and h_last, without keeping anything for a backward pass.
        Works in fresh arrays, so it never disturbs the probes of the last loss_and_grads."""
        tapes, _, outputs = self._layers(x, self._state(h0, x.shape[1]), 0.0, None,
                                         self._fresh)
        logits = self._readout(outputs[-1], self._fresh)
        return logits.reshape(*x.shape, -1), self._last_state(tapes)

    def loss(self, x: np.ndarray, y: np.ndarray, h0: State | None = None):
        """(mean NLL, h_last) without gradients: for evaluation."""
        logits, h_last = self.forward(x, h0)
        return nll(logits.reshape(-1, self.vocab_size), y.ravel())[0], h_last

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, h0: State | None = None,
                       dropout: float = 0.0, rng: np.random.Generator | None = None
                       ) -> LossAndGrads:
        """Forward, loss and hand-written truncated BPTT over one (T, B) chunk."""
        P, T, B, H = self.params, x.shape[0], x.shape[1], self.hidden_size
        work = self._buffer
        tapes, masks, outputs = self._layers(x, self._state(h0, B), dropout, rng, work)
        loss, dlogits = nll(self._readout(outputs[-1], work), y.ravel())
        grads = {"Why": outputs[-1].reshape(-1, H).T @ dlogits, "by": dlogits.sum(axis=0)}
        du = work(f"{self.num_layers - 1}.dh", (T, B, H))  # gradient reaching a layer's output
        np.dot(dlogits, P["Why"].T, out=du.reshape(-1, H))
        probes = self._backward(x, tapes, masks, outputs, du, work, grads)
        return LossAndGrads(loss, {k: grads[k] for k in P}, self._last_state(tapes), probes)

    def layers_pass(self, u: np.ndarray, h0: State | None, dout: np.ndarray,
                    dh_last: np.ndarray | None = None) -> tuple[list[dict], dict]:
        """The layers alone on a dense input, as the probe of another network's layers (SPEC
        10, rnnscope/torch.py): u (T, B, vocab_size) the input of layer 0 (an embedding's
        output, say), dout (T, B, H) the gradient reaching the top layer's output from that
        network's loss, dh_last (L, B, H) the gradient reaching each layer's last h from
        outside it, if any. Returns (probes, grads of the layers' parameters), of the loss that
        dout belongs to; the probes are work buffers, as loss_and_grads' are."""
        T, B, H = u.shape[0], u.shape[1], self.hidden_size
        work = self._buffer
        tapes, masks, outputs = self._layers(u, self._state(h0, B), 0.0, None, work)
        du = work(f"{self.num_layers - 1}.dh", (T, B, H))
        np.copyto(du, dout)
        grads: dict = {}
        probes = self._backward(u, tapes, masks, outputs, du, work, grads, dh_last)
        return probes, grads

    def _backward(self, x, tapes, masks, outputs, du, work, grads, dh_last=None) -> list[dict]:
        """Backward through the layers from du, the gradient reaching the top layer's output
        (T, B, H), overwritten; writes every layer parameter's gradient into grads and returns
        the probes. x: layer 0's input, (T, B) ids (one-hot) or (T, B, vocab_size) dense."""
        P, T, B, H = self.params, du.shape[0], du.shape[1], self.hidden_size
        cell, probes = self.cell_module, []
        wx, bx = cell.INPUT
        for l in reversed(range(self.num_layers)):
            if masks[l] is not None:
                du *= masks[l]
            if dh_last is not None:
                du[-1] += dh_last[l]
            dh, recurrent = du, {}
            dax = cell.backward(layer_params(P, l), tapes[l], dh, cell_work(work, l), recurrent)
            grads.update({f"{l}.{k}": g for k, g in recurrent.items()})
            flat = dax.reshape(dax.shape[0], T * B, H)  # (blocks, N, H)
            if l == 0 and x.ndim == 2:  # one-hot: each position's dax lands in one row of dWx,
                dWx = np.matmul(one_hot_columns(x.ravel(), self.vocab_size, self.dtype), flat)
                grads[f"0.{wx}"] = side_by_side(dWx)
                grads[f"0.{bx}"] = grads[f"0.{wx}"].sum(axis=0)  # so those rows sum to dbx
                if self.embed:
                    embed_gradient(P, grads, wx)
            else:
                below = outputs[l - 1] if l else x
                grads[f"{l}.{bx}"] = flat.sum(axis=1).reshape(-1)
                grads[f"{l}.{wx}"] = side_by_side(np.matmul(below.reshape(T * B, -1).T, flat))
            if l > 0:
                du = work(f"{l - 1}.dh", (T, B, H))
                input_gradient(flat, blocks(P[f"{l}.{wx}"], H), du.reshape(-1, H))
            probes.append(cell.probes(tapes[l], dh, dax))
        return probes[::-1]

    def _layers(self, x, state0, dropout, rng, alloc):
        """Run every layer over the chunk. Returns, per layer, the cell's tape, the dropout mask
        of its output and the output after dropout (T, B, H); state0: per layer, a tuple of
        (B, H); alloc(name, shape) gives arrays. x: (T, B) ids, or a dense (T, B, vocab_size)
        input (layers_pass)."""
        one_hot = x.ndim == 2
        if one_hot:
            check_ids(x, self.vocab_size)
        cell, T = self.cell_module, x.shape[0]
        tapes, masks, outputs = [], [], []
        for l in range(self.num_layers):
            P = layer_params(self.params, l)
            if self.embed and one_hot and l == 0:
                P = {**P, cell.INPUT[0]: self.params["embed"] @ P[cell.INPUT[0]]}
            fill = input_product(P, cell.INPUT, outputs[-1] if l else x, one_hot=one_hot and l == 0)
            tape = cell.forward(P, state0[l], T, fill, cell_work(alloc, l))
            h = tape["h"][1:]
            mask = dropout_mask(h.shape, dropout, rng, self.dtype)
            tapes.append(tape)
            masks.append(mask)
            outputs.append(h if mask is None else h * mask)
        return tapes, masks, outputs

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

    def _state(self, h0: State | None, batch: int) -> list[tuple]:
        """Per layer, the tuple of the state's parts (B, H)."""
        parts = as_parts(self.zero_state(batch) if h0 is None else h0)
        names = self.cell_module.STATE
        expected = (self.num_layers, batch, self.hidden_size)
        if len(parts) != len(names):
            raise ValueError(f"h0 has {len(parts)} part(s), expected the {self.cell} state "
                             f"({', '.join(names)}), each (L, B, H) = {expected}")
        for name, part in zip(names, parts, strict=True):
            if np.shape(part) != expected:
                raise ValueError(f"h0's {name} has shape {np.shape(part)}, expected (L, B, H) "
                                 f"= {expected}")
        parts = [np.asarray(p).astype(self.dtype, copy=False) for p in parts]
        return [tuple(p[l] for p in parts) for l in range(self.num_layers)]

    def state_parts(self, state: State) -> dict[str, np.ndarray]:
        """{part: (L, B, H)} of a state in the cell's form (as a checkpoint stores it)."""
        return dict(zip(self.cell_module.STATE, as_parts(state), strict=True))

    def state_of(self, parts: dict[str, np.ndarray]) -> State:
        """The state in the cell's form from {part: (L, B, H)}, the inverse of state_parts."""
        return from_parts([parts[s] for s in self.cell_module.STATE])

    def _last_state(self, tapes: list[dict]) -> State:
        """Every layer's last state, fresh arrays, in the cell's form."""
        return from_parts([np.stack([tape[s][-1] for tape in tapes])
                           for s in self.cell_module.STATE])


def as_parts(state: State) -> tuple:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def from_parts(parts: list[np.ndarray]) -> State:
    return parts[0] if len(parts) == 1 else tuple(parts)


def cell_work(alloc, l: int):
    """The work-array function a cell gets for layer l: its names in their own namespace."""
    return lambda name, shape: alloc(f"{l}.cell.{name}", shape)


def input_product(P: dict, names: tuple, u: np.ndarray, one_hot: bool):
    """fill(ax): writes u @ Wx + bx into ax (blocks, T, B, H), block k the product with columns
    k*H:(k+1)*H; for one-hot ids u (T, B) a row lookup of Wx + bx."""
    Wx, bx = (P[n] for n in names)

    def fill(ax: np.ndarray) -> None:
        K, T, B, H = ax.shape
        if one_hot:
            np.take(blocks(Wx + bx, H), u, axis=1, out=ax, mode="clip")
        else:
            np.matmul(u.reshape(T * B, -1), blocks(Wx, H), out=ax.reshape(K, T * B, H))
            ax += bx.reshape(K, 1, 1, H)

    return fill


def embed_gradient(P: dict, grads: dict, wx: str) -> None:
    """Layer 0 read embed[x] (N, E) through Wx (E, KH); grads[f"0.{wx}"] holds, on entry, the
    one-hot gradient G (V, KH): row v the sum of dax over the positions of character v. The
    scatter-add of layer 0's input gradient dax @ Wx.T by character is G @ Wx.T (the same sum,
    taken over V rows instead of N), and dWx = embed.T @ G."""
    G, Wx = grads[f"0.{wx}"], P[f"0.{wx}"]
    grads["embed"] = G @ Wx.T
    grads[f"0.{wx}"] = P["embed"].T @ G


def input_gradient(flat: np.ndarray, Wx: np.ndarray, out: np.ndarray) -> None:
    """out (N, in) = sum over blocks k of flat[k] (N, H) @ Wx[k].T, Wx (K, in, H): the gradient
    reaching the layer input."""
    np.dot(flat[0], Wx[0].T, out=out)
    for k in range(1, len(flat)):
        out += flat[k] @ Wx[k].T


def empty_aligned(shape: tuple, dtype) -> np.ndarray:
    """np.empty, but starting on a 64-byte cache line (NumPy only promises 16 bytes): the
    per-step products of the recurrence run several percent faster on aligned operands."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


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


def init_params(cell, V: int, H: int, L: int, rng: np.random.Generator, dtype,
                init: Init, E: int = 0) -> dict[str, np.ndarray]:
    """Every layer's parameters as its cell draws them (layer 0's input is E wide with an
    embedding, else V), then the readout: Why std 1/sqrt(H), by zero; last the embedding,
    standard normal (as torch.nn.Embedding's), when E > 0."""
    params = {}
    for l in range(L):
        layer = cell.init((E or V) if l == 0 else H, H, rng, init)
        params.update({f"{l}.{k}": v for k, v in layer.items()})
    params["Why"] = rng.normal(0, 1 / np.sqrt(H), (H, V))
    params["by"] = np.zeros(V)
    if E:
        params["embed"] = rng.normal(0, 1, (V, E))
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}


def check_model_args(vocab_size, hidden_size, num_layers, cell, dtype, recurrent_init) -> None:
    for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise RnnscopeError(f"{name} must be a positive integer, got {value!r}")
    for name, value, allowed in (("cell", cell, CELLS), ("dtype", dtype, DTYPES),
                                 ("recurrent_init", recurrent_init, INITS)):
        if value not in allowed:
            raise RnnscopeError(f"{name} {value!r} is not known; use one of: {', '.join(allowed)}")
