"""What every cell shares: the initialisation settings and the helpers its init and loops use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Work = Callable[[str, tuple], np.ndarray]  # work(name, shape): a reused, cache-aligned array


@dataclass(frozen=True)
class Init:
    """How a layer's weights start (SPEC 1 and 8). Recurrent blocks: scheme times
    recurrent_scale; input weights: std input_scale / sqrt(fan_in); biases zero, except the
    gates' biases of the gated cells (forget_bias, chrono_tmax: see gru.py and lstm.py)."""
    recurrent_init: str = "orthogonal"
    recurrent_scale: float = 1.0
    input_scale: float = 1.0
    forget_bias: float = 1.0
    chrono_tmax: int | None = None   # T_max of the chrono initialisation, None: off


def input_matrix(fan_in: int, width: int, rng: np.random.Generator, init: Init) -> np.ndarray:
    return rng.normal(0, init.input_scale / np.sqrt(fan_in), (fan_in, width))


def recurrent_matrix(H: int, rng: np.random.Generator, init: Init) -> np.ndarray:
    """One (H, H) recurrent block: orthogonal, normal (std 1/sqrt(H)) or identity, scaled."""
    if init.recurrent_init == "identity":
        W = np.eye(H)
    elif init.recurrent_init == "normal":
        W = rng.normal(0, 1 / np.sqrt(H), (H, H))
    else:
        q, r = np.linalg.qr(rng.normal(size=(H, H)))
        W = q * np.sign(np.diag(r))  # sign fix makes q uniformly (Haar) distributed
    return init.recurrent_scale * W


def aligned(work: Work, name: str, a: np.ndarray) -> np.ndarray:
    """a copied into the work array `name`: a contiguous, cache-aligned operand (the per-step
    products run several percent faster on those, and slower on a transposed view)."""
    out = work(name, a.shape)
    np.copyto(out, a)
    return out


def sigmoid_of_half(t: np.ndarray) -> np.ndarray:
    """sigmoid(a) = 0.5 tanh(a / 2) + 0.5, in place: t holds tanh(a / 2) on entry, sigmoid(a)
    on exit. The cells halve a's sigmoid blocks once, in the input projection and in their copy
    of Wh (exact in floating point), and run one tanh over all blocks: two passes over memory
    fewer than 1 / (1 + exp(-a)), and NumPy's tanh is as fast as its exp or faster."""
    t *= 0.5
    t += 0.5
    return t


def chrono_bias(H: int, rng: np.random.Generator, tmax: int) -> np.ndarray:
    """Tallec and Ollivier's chrono initialisation: log(U(1, T_max - 1)) per unit, for the bias
    of the gate that keeps the old state (the LSTM's f, the GRU's z); its memory times then
    spread evenly over 1 to T_max steps."""
    return np.log(rng.uniform(1, max(tmax - 1, 1), H))


def blocks(W: np.ndarray, H: int) -> np.ndarray:
    """(rows, K*H) -> (K, rows, H), a view: the H-wide column blocks of W (one per gate) as a
    stack of matrices."""
    return W.reshape(W.shape[0], -1, H).transpose(1, 0, 2)


def side_by_side(stack: np.ndarray) -> np.ndarray:
    """(K, rows, H) -> (rows, K*H), the inverse of blocks (a copy unless K is 1)."""
    K, rows, H = stack.shape
    return stack.transpose(1, 0, 2).reshape(rows, K * H)
