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


def sigmoid(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = 1 / (1 + exp(-a)), in place when out is a. exp overflows for a < -88 (float32)
    and gives the right limit 0; callers run it under np.errstate(over="ignore"). Through exp
    rather than tanh: NumPy's exp is about 1.6x faster than its tanh."""
    np.negative(a, out=out)
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def chrono_bias(H: int, rng: np.random.Generator, tmax: int) -> np.ndarray:
    """Tallec and Ollivier's chrono initialisation: log(U(1, T_max - 1)) per unit, for the bias
    of the gate that keeps the old state (the LSTM's f, the GRU's z); its memory times then
    spread evenly over 1 to T_max steps."""
    return np.log(rng.uniform(1, max(tmax - 1, 1), H))
