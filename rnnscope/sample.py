"""Sampling text from a trained model, one character at a time."""

from __future__ import annotations

import numpy as np

from .data import Vocab
from .errors import RnnscopeError
from .model import Model


def sample(model: Model, vocab: Vocab, length: int = 500, temperature: float = 1.0,
           prime: str = "", seed: int | None = None) -> str:
    """`length` characters after `prime`: the prime is run through the model to set the state,
    then each character is drawn from softmax(logits / temperature) and fed back in."""
    if length < 0:
        raise RnnscopeError(f"--length must be >= 0, got {length}")
    if temperature <= 0:
        raise RnnscopeError(f"--temperature must be positive, got {temperature}")
    rng = np.random.default_rng(seed)
    ids = list(vocab.encode(prime)) if prime else [int(rng.integers(vocab.size))]
    logits, h = model.forward(np.array(ids).reshape(-1, 1))
    out = []
    for _ in range(length):
        z = logits[-1, 0].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        c = int(rng.choice(vocab.size, p=p / p.sum()))
        out.append(c)
        logits, h = model.forward(np.array([[c]]), h)
    return prime + vocab.decode(out)
