"""The state-dependence readings and --reset-every (rnnscope/heldout.py, docs/panel.md)."""

import numpy as np
import pytest

from rnnscope.cells import CELLS
from rnnscope.data import chunks_per_epoch, get_chunk, make_streams
from rnnscope.heldout import (
    STATE_STREAMS,
    evaluate,
    reset_streams,
    score,
    state_readings,
    window_chunks,
)
from rnnscope.model import Model, as_parts

V, H, T = 12, 8, 10


def streams(n: int, batch: int, seed: int) -> np.ndarray:
    return make_streams(np.random.default_rng(seed).integers(0, V, n).astype(np.int32), batch)


@pytest.mark.parametrize("cell", CELLS)
def test_fresh_and_carried_agree_from_a_zero_state_and_differ_from_another(cell):
    model = Model(V, H, cell=cell, seed=0, dtype="float64")
    ev, tr = streams(3000, 12, 1), streams(20000, 12, 2)
    zero = state_readings(model, ev, tr, 5, T, model.zero_state(12))
    assert zero["eval_nll_fresh"] == zero["eval_nll_carried"]
    other = tuple(np.full_like(p, 0.9) for p in as_parts(model.zero_state(12)))
    other = other[0] if len(other) == 1 else other
    assert state_readings(model, ev, tr, 5, T, other)["eval_nll_carried"] != \
        zero["eval_nll_fresh"]


def test_the_readings_score_the_windows_they_say_from_the_states_they_say():
    model = Model(V, H, seed=0, dtype="float64")
    ev, tr = streams(3000, 12, 1), streams(20000, 12, 2)
    n, k = window_chunks(T), STATE_STREAMS
    assert n * T >= 200 and k < 12
    h = np.random.default_rng(3).uniform(-1, 1, (1, 12, H))
    got = state_readings(model, ev, tr, 30, T, h)
    assert got["eval_nll_fresh"] == score(model, ev[:k], 0, n, T)
    assert got["eval_nll_carried"] == score(model, ev[:k], 0, n, T, h[:, :k])
    assert got["train_nll_fresh"] == score(model, tr[:k], 30 - n, n, T)  # the last n read
    end = chunks_per_epoch(tr, T)  # at an epoch's end (next chunk 0): its last window
    assert state_readings(model, ev, tr, 0, T, h)["train_nll_fresh"] == \
        score(model, tr[:k], end - n, n, T)


def test_score_is_the_mean_nll_over_the_targets_the_state_carried():
    model = Model(V, H, seed=0, dtype="float64")
    ev = streams(3000, 3, 1)
    h, total = model.zero_state(3), 0.0
    for i in range(4):
        loss, h = model.loss(*get_chunk(ev, i, T), h)
        total += loss
    assert score(model, ev, 0, 4, T) == pytest.approx(total / 4, rel=1e-12)
    assert evaluate(model, ev, T) == score(model, ev, 0, chunks_per_epoch(ev, T), T)


@pytest.mark.parametrize("every, batch", [(1, 1), (4, 1), (10, 4), (3, 8)])
def test_each_stream_restarts_once_every_k_steps_the_streams_staggered(every, batch):
    zeroed = []
    for step in range(1, 3 * every + 1):
        h = reset_streams(np.ones((2, batch, 3)), step, every)
        zeroed.append([b for b in range(batch) if not h[:, b].any()])
    for b in range(batch):
        steps = [s for s, z in enumerate(zeroed, 1) if b in z]
        assert np.diff(steps).tolist() == [every, every] and steps[0] <= every
    if batch > 1 and every >= batch:
        assert all(len(z) <= -(-batch // every) + 1 for z in zeroed)  # spread, not all at once
        assert any(len(z) < batch for z in zeroed)
