"""Scores of text by the frozen model: the eval NLL and the state-dependence readings (SPEC 3,
docs/panel.md), and the state resets of --reset-every.

Stateful truncated BPTT carries each training stream's hidden state from the first character
of an epoch on; a model may learn to score well only from the states its training streams
reached (docs/triage.md, state_dependence). Three readings at each eval tell it apart, each over
a window of `window_chunks(T)` chunks (at least STATE_WINDOW characters) of the first
STATE_STREAMS streams:

    eval_nll_fresh    the eval streams' first window scored from a zero state
    eval_nll_carried  the same window scored from the state the training streams carry now
    train_nll_fresh   the window the training streams read last (the text just trained on)
                      scored from a zero state

In a model that learned text, a zero state is forgotten within a few dozen characters and
fresh and carried scores differ by little; a model that learned one regime of its state scores
the same text far worse from a fresh state.
"""

from __future__ import annotations

import math

import numpy as np

from .data import chunks_per_epoch, get_chunk
from .model import Model, State, as_parts, from_parts

STATE_WINDOW = 200  # characters per stream each state-dependence reading scores (at least)
STATE_STREAMS = 8   # ... on at most this many streams: 1,600 characters or more, a few % noise
STATE_KEYS = ("eval_nll_fresh", "eval_nll_carried", "train_nll_fresh")


def window_chunks(seq_len: int) -> int:
    """Chunks of T per stream in a state-dependence window: at least STATE_WINDOW characters."""
    return max(1, math.ceil(STATE_WINDOW / seq_len))


def score(model: Model, streams: np.ndarray, first: int, count: int, seq_len: int,
          h: State | None = None) -> float:
    """Mean NLL over chunks [first, first + count) of the streams, the state carried from h
    (None: zero) along them. Every chunk holds T*B targets: the mean of the chunks' means is
    the mean over the targets."""
    h = model.zero_state(streams.shape[0]) if h is None else h
    total = 0.0
    for i in range(first, first + count):
        x, y = get_chunk(streams, i, seq_len)
        loss, h = model.loss(x, y, h)
        total += loss
    return total / count


def evaluate(model: Model, streams: np.ndarray, seq_len: int) -> float:
    """eval_nll: the NLL over the eval streams, the state carried along each from zero."""
    return score(model, streams, 0, chunks_per_epoch(streams, seq_len), seq_len)


def state_readings(model: Model, eval_streams: np.ndarray, train_streams: np.ndarray,
                   next_chunk: int, seq_len: int, h: State) -> dict:
    """The state-dependence readings (module docstring) at an eval: h is the training
    streams' carried state (B streams, B >= B' eval streams) and next_chunk the training
    streams' next chunk in the epoch."""
    k = min(STATE_STREAMS, eval_streams.shape[0])
    n = min(window_chunks(seq_len), chunks_per_epoch(eval_streams, seq_len))
    end = next_chunk or chunks_per_epoch(train_streams, seq_len)  # 0: an epoch just ended
    start = max(0, end - window_chunks(seq_len))
    return {"eval_nll_fresh": score(model, eval_streams[:k], 0, n, seq_len),
            "eval_nll_carried": score(model, eval_streams[:k], 0, n, seq_len, rows(h, k)),
            "train_nll_fresh": score(model, train_streams[:k], start, end - start, seq_len)}


def rows(state: State, n: int) -> State:
    """The first n streams of a state in the cell's form."""
    return from_parts([part[:, :n] for part in as_parts(state)])


def reset_streams(state: State, step: int, every: int) -> State:
    """--reset-every K: the state with stream b zeroed before step `step` (1-based) when
    (step - 1 + b*K // B) % K == 0, so each stream restarts from zero every K chunks and the
    streams' restarts are spread over the K steps. A function of the step alone: a resumed run
    resets where an uninterrupted one does."""
    parts = as_parts(state)
    batch = parts[0].shape[1]
    due = [b for b in range(batch) if (step - 1 + b * every // batch) % every == 0]
    for part in parts:
        part[:, due] = 0
    return state
