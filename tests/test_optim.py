"""Optimizers, clipping and schedules match their textbook formulas and keep their contracts."""

import math
import tracemalloc

import numpy as np
import pytest

from rnnscope import config, optim
from rnnscope.errors import RnnscopeError
from rnnscope.optim import clip_gradients, learning_rate, on_eval, optimizer_step


def make_params(rng, dtype=np.float64):
    """A matrix and a bias, like one layer's Whh and bh."""
    return {"0.Whh": rng.normal(size=(4, 3)).astype(dtype),
            "0.bh": rng.normal(size=3).astype(dtype)}


def random_grads(rng, params):
    return {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in params.items()}


# --- independent references: allocate freely, one function per optimizer, per parameter ---------

def ref_sgd(p, g, s, t, lr):
    return p - lr * g


def ref_momentum(p, g, s, t, lr):
    s["buf"] = 0.9 * s.get("buf", np.zeros_like(p)) + g
    return p - lr * s["buf"]


def ref_adagrad(p, g, s, t, lr):
    s["sum"] = s.get("sum", np.zeros_like(p)) + g**2
    return p - lr * g / (np.sqrt(s["sum"]) + 1e-8)


def ref_rmsprop(p, g, s, t, lr):
    s["ms"] = 0.9 * s.get("ms", np.zeros_like(p)) + 0.1 * g**2
    return p - lr * g / (np.sqrt(s["ms"]) + 1e-8)


def ref_adam(p, g, s, t, lr):
    s["m"] = 0.9 * s.get("m", np.zeros_like(p)) + 0.1 * g
    s["v"] = 0.999 * s.get("v", np.zeros_like(p)) + 0.001 * g**2
    m_hat = s["m"] / (1 - 0.9**t)
    v_hat = s["v"] / (1 - 0.999**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + 1e-8)


REFERENCES = {"sgd": ref_sgd, "momentum": ref_momentum, "adagrad": ref_adagrad,
              "rmsprop": ref_rmsprop, "adam": ref_adam}


def test_every_configured_optimizer_has_a_rule_and_a_reference():
    assert config.OPTIMIZERS is optim.OPTIMIZERS
    assert set(optim.OPTIMIZERS) == set(REFERENCES)


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
@pytest.mark.parametrize("name", config.OPTIMIZERS)
def test_optimizer_matches_textbook_reference_for_three_steps(name, weight_decay):
    rng = np.random.default_rng(0)
    params = make_params(rng)
    expected = {k: v.copy() for k, v in params.items()}
    ref_state = {k: {} for k in params}
    state = {}
    for t, lr in enumerate([0.1, 0.05, 0.02], start=1):  # a changing lr, as under a schedule
        grads = random_grads(rng, params)
        optimizer_step(name, params, grads, state, lr, weight_decay=weight_decay)
        for k, p in expected.items():
            decay = lr * weight_decay * p if p.ndim >= 2 else 0.0  # decoupled, matrices only
            expected[k] = REFERENCES[name](p, grads[k], ref_state[k], t, lr) - decay
        for k in params:
            np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-12)
    assert int(state["t"]) == 3


def test_adam_first_step_is_bias_corrected():
    """Without bias correction m = 0.1 g and v = 0.001 g**2 would give a step of ~3.2 lr."""
    rng = np.random.default_rng(1)
    params = make_params(rng)
    before = {k: v.copy() for k, v in params.items()}
    grads = random_grads(rng, params)
    deltas = optimizer_step("adam", params, grads, {}, lr=0.01)
    for k in params:
        g = grads[k]
        np.testing.assert_allclose(deltas[k], -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
        np.testing.assert_allclose(params[k] - before[k], deltas[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", config.OPTIMIZERS)
def test_weight_decay_shrinks_matrices_and_leaves_biases_alone(name):
    rng = np.random.default_rng(2)
    params = make_params(rng)
    before = {k: v.copy() for k, v in params.items()}
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    optimizer_step(name, params, zero, {}, lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(params["0.Whh"], before["0.Whh"] * (1 - 0.05), rtol=1e-14)
    np.testing.assert_array_equal(params["0.bh"], before["0.bh"])


@pytest.mark.parametrize("name", config.OPTIMIZERS)
def test_deltas_are_the_change_applied_and_reuse_the_given_buffers(name):
    rng = np.random.default_rng(3)
    params = make_params(rng)
    state, deltas = {}, None
    for _ in range(3):
        before = {k: v.copy() for k, v in params.items()}
        buffers = None if deltas is None else {k: id(v) for k, v in deltas.items()}
        deltas = optimizer_step(name, params, random_grads(rng, params), state, 0.05,
                                weight_decay=0.1, deltas=deltas)
        assert set(deltas) == set(params)
        for k in params:
            np.testing.assert_allclose(deltas[k], params[k] - before[k], rtol=1e-12, atol=1e-15)
        if buffers is not None:
            assert {k: id(v) for k, v in deltas.items()} == buffers


@pytest.mark.parametrize("name", config.OPTIMIZERS)
def test_a_step_with_reused_buffers_allocates_no_parameter_sized_array(name):
    rng = np.random.default_rng(4)
    params = {"W": rng.normal(size=(400, 400)), "b": rng.normal(size=400)}
    grads = random_grads(rng, params)
    state = {}
    deltas = optimizer_step(name, params, grads, state, 1e-3, weight_decay=0.1)  # creates state
    tracemalloc.start()
    optimizer_step(name, params, grads, state, 1e-3, weight_decay=0.1, deltas=deltas)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < params["W"].nbytes / 10


def test_state_is_created_lazily_in_the_parameter_dtype():
    params = make_params(np.random.default_rng(5), np.float32)
    state = {}
    optimizer_step("adam", params, random_grads(np.random.default_rng(6), params), state, 1e-3)
    assert set(state) == {"t", "m.0.Whh", "v.0.Whh", "m.0.bh", "v.0.bh"}
    assert state["t"].shape == () and state["t"].dtype == np.int64
    assert all(state[f"{s}.{k}"].dtype == np.float32 for s in "mv" for k in params)
    assert all(p.dtype == np.float32 for p in params.values())


@pytest.mark.parametrize("name", config.OPTIMIZERS)
def test_state_roundtrips_through_npz_without_pickle(name, tmp_path):
    rng = np.random.default_rng(7)
    params = make_params(rng)
    grads = [random_grads(rng, params) for _ in range(3)]
    state = {}
    for g in grads[:2]:
        optimizer_step(name, params, g, state, 0.01)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    np.savez(tmp_path / "state.npz", **state)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    resumed = {k: v.copy() for k, v in params.items()}
    optimizer_step(name, params, grads[2], state, 0.01)
    optimizer_step(name, resumed, grads[2], loaded, 0.01)
    for k in params:
        np.testing.assert_array_equal(resumed[k], params[k])


# --- clipping -------------------------------------------------------------------------------

def test_norm_clipping_returns_pre_clip_norm_and_scales_to_value_when_fired():
    rng = np.random.default_rng(8)
    grads = random_grads(rng, make_params(rng))
    norm = math.sqrt(sum(float(np.sum(g**2)) for g in grads.values()))
    grad_norm, fired = clip_gradients(grads, "norm", norm / 3)
    assert grad_norm == pytest.approx(norm, rel=1e-14)
    assert fired == 1.0
    assert optim.global_norm(grads) == pytest.approx(norm / 3, rel=1e-14)


def test_norm_clipping_leaves_grads_unchanged_below_value():
    rng = np.random.default_rng(9)
    grads = random_grads(rng, make_params(rng))
    before = {k: v.copy() for k, v in grads.items()}
    grad_norm, fired = clip_gradients(grads, "norm", 1e6)
    assert fired == 0.0 and grad_norm > 0
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_non_finite_norm_is_reported_and_does_not_fire_norm_clipping():
    grads = {"W": np.array([[np.inf, 1.0]]), "b": np.array([np.nan])}
    grad_norm, fired = clip_gradients(grads, "norm", 1.0)
    assert not math.isfinite(grad_norm) and fired == 0.0
    assert grads["W"][0, 1] == 1.0  # left alone: the divergence shows instead of turning to 0


def test_grad_norm_is_accumulated_in_float64_for_float32_grads():
    grads = {"W": np.full((1000, 100), 1e-3, np.float32), "b": np.full(10, 3.0, np.float32)}
    grad_norm, _ = clip_gradients(grads, "none", 1.0)
    assert isinstance(grad_norm, float)
    expected = math.sqrt(1e5 * float(np.float32(1e-3)) ** 2 + 90)
    assert grad_norm == pytest.approx(expected, rel=1e-12)


def test_elementwise_clipping_reports_the_fraction_of_components_clipped():
    grads = {"W": np.array([[0.5, -3.0], [2.0, 1.0]]), "b": np.array([-1.5, 0.1, -0.2, 4.0])}
    grad_norm, rate = clip_gradients(grads, "elementwise", 1.0)
    assert grad_norm == pytest.approx(math.sqrt(0.25 + 9 + 4 + 1 + 2.25 + 0.01 + 0.04 + 16))
    assert rate == pytest.approx(4 / 8)
    np.testing.assert_array_equal(grads["W"], [[0.5, -1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(grads["b"], [-1.0, 0.1, -0.2, 1.0])


def test_no_clipping_reports_the_norm_and_changes_nothing():
    grads = {"W": np.array([[3.0, 4.0]])}
    assert clip_gradients(grads, "none", 0.1) == (5.0, 0.0)
    np.testing.assert_array_equal(grads["W"], [[3.0, 4.0]])


# --- schedules ------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, at_start, at_half, at_end", [
    ("constant", 1.0, 1.0, 1.0),
    ("step", 1.0, 0.1, 0.01),
    ("cosine", 1.0, 0.505, 0.01),
    ("plateau", 1.0, 1.0, 1.0),
])
def test_schedule_values_at_start_middle_and_end(schedule, at_start, at_half, at_end):
    values = [learning_rate(schedule, 2e-3, p, {}) for p in (0.0, 0.5, 1.0)]
    np.testing.assert_allclose(values, np.array([at_start, at_half, at_end]) * 2e-3, rtol=1e-12)


def test_step_schedule_cuts_at_half_and_three_quarters():
    values = [learning_rate("step", 1.0, p, {}) for p in (0.49, 0.5, 0.74, 0.75)]
    np.testing.assert_allclose(values, [1.0, 0.1, 0.1, 0.01])


def test_cosine_decreases_monotonically_and_progress_is_clamped():
    values = [learning_rate("cosine", 1.0, p, {}) for p in np.linspace(0, 1, 50)]
    assert bool(np.all(np.diff(values) < 0))
    assert learning_rate("cosine", 1.0, 1.3, {}) == pytest.approx(0.01)  # --minutes overrun
    assert learning_rate("cosine", 1.0, -0.1, {}) == 1.0


def test_plateau_halves_after_two_stalled_evals_and_not_before():
    state = {}
    assert learning_rate("plateau", 0.1, 0.3, state) == 0.1
    assert on_eval("plateau", state, 2.0) is False            # first eval sets the best
    assert on_eval("plateau", state, 1.9) is False            # improvement
    assert on_eval("plateau", state, 1.8995) is False         # stall 1 (improves by < 1e-3)
    assert learning_rate("plateau", 0.1, 0.4, state) == 0.1
    assert on_eval("plateau", state, 1.95) is True            # stall 2: cut
    assert learning_rate("plateau", 0.1, 0.5, state) == pytest.approx(0.05)
    assert state == {"best": 1.9, "bad_evals": 0, "factor": 0.5}
    assert on_eval("plateau", state, 1.97) is False           # the count restarted
    assert on_eval("plateau", state, 1.5) is False            # improvement resets it
    assert on_eval("plateau", state, 1.6) is False
    assert on_eval("plateau", state, float("nan")) is True    # a NaN eval is a stall
    assert learning_rate("plateau", 0.1, 0.9, state) == pytest.approx(0.025)


def test_plateau_state_is_plain_json_numbers():
    import json
    state = {}
    for nll in (2.0, 2.0, 2.0):
        on_eval("plateau", state, np.float64(nll))
    assert json.loads(json.dumps(state)) == state
    assert all(type(v) in (int, float) for v in state.values())


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine"])
def test_other_schedules_ignore_evals(schedule):
    state = {}
    assert not any(on_eval(schedule, state, nll) for nll in (1.0, 2.0, 3.0, 4.0))
    assert state == {}


# --- bad names ------------------------------------------------------------------------------

def test_unknown_names_raise_rnnscope_error_naming_the_choices():
    params = make_params(np.random.default_rng(10))
    grads = random_grads(np.random.default_rng(11), params)
    with pytest.raises(RnnscopeError, match="adam"):
        optimizer_step("adamw", params, grads, {}, 0.1)
    with pytest.raises(RnnscopeError, match="elementwise"):
        clip_gradients(grads, "value", 1.0)
    with pytest.raises(RnnscopeError, match="cosine"):
        learning_rate("linear", 0.1, 0.5, {})
    with pytest.raises(RnnscopeError, match="plateau"):
        on_eval("exponential", {}, 1.0)
