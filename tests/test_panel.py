"""Each panel reading matches an independent computation; real runs record every SPEC key and
separate the saturated, healthy and vanishing regimes."""

import math

import numpy as np
import pytest

from rnnscope import TrainConfig, runs
from rnnscope.cells import gru, lstm, rnn
from rnnscope.cells.rnn import sigma_max
from rnnscope.display import PlainDisplay
from rnnscope.health import HEALTHY, flag
from rnnscope.model import Model
from rnnscope.optim import optimizer_step
from rnnscope.panel import (
    PROBE_READINGS,
    Interval,
    bptt_profile,
    grad_norms,
    measure,
    profile_steps,
    scalar,
)
from rnnscope.train import train

V = 7


def batch(rng, T=6, B=3):
    return rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))


def model_out(seed=0, scale=1.0, layers=2, dtype="float64", T=6, B=3):
    """A small model and its loss_and_grads on random data, from a random nonzero state."""
    rng = np.random.default_rng(seed)
    model = Model(V, 5, layers, seed=seed, dtype=dtype, recurrent_scale=scale, input_scale=scale)
    x, y = batch(rng, T, B)
    h0 = rng.uniform(-0.5, 0.5, (layers, B, 5))
    return model, model.loss_and_grads(x, y, h0)


def probe_reading(name, h, dh=None, sat_threshold=0.95):
    dh = np.zeros_like(h) if dh is None else dh
    if name in rnn.READINGS:
        return rnn.READINGS[name]({}, {"h": h, "dh": dh}, sat_threshold)
    return PROBE_READINGS[name](h, dh, (1 - h**2) * dh, sat_threshold)


# ---- probe readings

HAND_MADE_H = np.array([[[0.0, 0.96], [-0.99, 0.5]],
                        [[0.1, -0.2], [0.97, -0.3]]])  # (T=2, B=2, H=2)


def test_mean_abs_h_sat_ratio_and_mean_gain_of_a_hand_made_state():
    entries = [0.0, 0.96, -0.99, 0.5, 0.1, -0.2, 0.97, -0.3]
    assert probe_reading("mean_abs_h", HAND_MADE_H) == pytest.approx(sum(map(abs, entries)) / 8)
    assert probe_reading("sat_ratio", HAND_MADE_H) == 3 / 8  # 0.96, -0.99, 0.97
    assert probe_reading("sat_ratio", HAND_MADE_H, sat_threshold=0.98) == 1 / 8
    gain = sum(1 - e * e for e in entries) / 8
    assert probe_reading("mean_gain", HAND_MADE_H) == pytest.approx(gain)


def test_dh_norm_is_the_mean_over_positions_of_the_summed_loss_gradient_norm():
    _, out = model_out()
    for probe in out.probes:
        T, B, _ = probe["dh"].shape
        for name in ("dh", "dh_raw"):
            norms = [math.sqrt(sum((T * B * g) ** 2 for g in probe[name][t, b]))
                     for t in range(T) for b in range(B)]
            assert probe_reading(f"{name}_norm", probe["h"], probe["dh"]) == \
                pytest.approx(sum(norms) / len(norms), rel=1e-12)


def test_dh_norm_does_not_shrink_with_batch_size():
    rng = np.random.default_rng(3)
    model = Model(V, 5, 1, seed=3, dtype="float64")
    x, y = batch(rng)
    norms = []
    for reps in (1, 2):  # the same streams, then each of them twice
        probe = model.loss_and_grads(np.tile(x, reps), np.tile(y, reps)).probes[0]
        norms.append([probe_reading(f"{name}_norm", probe["h"], probe["dh"])
                      for name in ("dh", "dh_raw")])  # now: probes are reused buffers
    np.testing.assert_allclose(norms[1], norms[0], rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [0.2, 1.0, 4.0])
def test_dh_raw_never_exceeds_dh(scale, dtype):
    for seed in range(4):
        model, out = model_out(seed, scale, dtype=dtype, T=12, B=4)
        rec = measure(out.probes, model.params, grad_norms(out.grads),
                       {k: np.zeros_like(p) for k, p in model.params.items()}, 0.95,
                       np.random.default_rng(seed))
        for l in range(2):
            assert rec[f"layer{l}.dh_raw_norm"] <= rec[f"layer{l}.dh_norm"]


# ---- weight readings


def test_update_ratio_of_plain_sgd_is_lr_times_gradient_norm_over_weight_norm():
    model, out = model_out()
    before = {k: p.copy() for k, p in model.params.items()}
    norms = grad_norms(out.grads)
    lr = 0.03
    deltas = optimizer_step("sgd", model.params, out.grads, {}, lr)
    rec = measure(out.probes, model.params, norms, deltas, 0.95, np.random.default_rng(0))
    for name, g in out.grads.items():
        g_norm, theta_norm = math.sqrt((g**2).sum()), math.sqrt((before[name] ** 2).sum())
        assert rec[f"grad_norm.{name}"] == pytest.approx(g_norm, rel=1e-12)
        assert rec[f"param_norm.{name}"] == \
            pytest.approx(math.sqrt((model.params[name] ** 2).sum()), rel=1e-12)
        expected = lr * g_norm / theta_norm if theta_norm else math.inf  # biases start at 0
        assert rec[f"update_ratio.{name}"] == pytest.approx(expected, rel=1e-10)
    g2 = sum((g**2).sum() for g in out.grads.values())
    p2 = sum((p**2).sum() for p in before.values())
    assert rec["update_ratio"] == pytest.approx(lr * math.sqrt(g2 / p2), rel=1e-10)


def orthogonal(rng, H):
    return np.linalg.qr(rng.normal(size=(H, H)))[0]


def test_whh_sigma_max_matches_the_exact_spectral_norm():
    rng = np.random.default_rng(0)
    H = 256
    q = orthogonal(rng, H)
    u, v = rng.normal(size=(2, H)) / math.sqrt(H)
    matrices = {
        "gaussian": rng.normal(0, 1 / math.sqrt(H), (H, H)),
        "near orthogonal (clustered top)": q + 0.1 * rng.normal(0, 1 / math.sqrt(H), (H, H)),
        "trained-like (low-rank growth)": q + 2 * np.outer(u, v) + rng.normal(0, 0.03, (H, H)),
        "small": rng.normal(size=(5, 5)),
    }
    for what, W in matrices.items():
        exact = np.linalg.norm(W, 2)
        assert sigma_max(W) == pytest.approx(exact, rel=1e-3), what
        assert sigma_max(W.astype(np.float32)) == \
            pytest.approx(exact, rel=1e-3), what
    assert sigma_max(4 * q) == pytest.approx(4.0)  # the space closes at once
    assert sigma_max(np.zeros((8, 8))) == 0.0


def test_whh_sigma_max_of_overflowed_weights_is_nan():
    assert math.isnan(sigma_max(np.full((4, 4), np.inf)))


def injected(seed, B, H):
    """The unit vectors bptt_profile draws from a generator seeded `seed`."""
    v = np.random.default_rng(seed).standard_normal((B, H))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_bptt_profile_of_a_linear_recurrence_is_powers_of_whh():
    rng = np.random.default_rng(1)
    T, B, H = 8, 3, 5
    Whh = rng.normal(size=(H, H))
    h = np.zeros((T, B, H))  # gain 1 - h**2 = 1: the recurrence is linear
    profile = bptt_profile(rnn, {"Whh": Whh}, {"h": h}, np.random.default_rng(7))
    v = injected(7, B, H)
    assert [k for k, _ in profile] == [1, 2, 4, 8]
    for k, g in profile:
        powered = v @ np.linalg.matrix_power(Whh.T, k)
        assert g == pytest.approx(np.linalg.norm(powered, axis=1).mean(), rel=1e-10)


def run_recurrence(h, ax, Whh):
    """h_t = tanh(ax_t + h_{t-1} @ Whh) over the steps of ax, from h; the last state."""
    for a in ax:
        h = np.tanh(a + h @ Whh)
    return h


def test_bptt_profile_matches_finite_differences_of_the_recurrence():
    rng = np.random.default_rng(2)
    T, B, H, eps = 8, 2, 4, 1e-6
    Whh, ax = 0.8 * rng.normal(size=(H, H)), rng.normal(size=(T, B, H))
    hs = [rng.uniform(-0.5, 0.5, (B, H))]  # hs[t] = h_t, from the carried state h_0
    for t in range(T):
        hs.append(run_recurrence(hs[t], ax[t:t + 1], Whh))
    v = injected(5, B, H)
    for k, g in bptt_profile(rnn, {"Whh": Whh}, {"h": np.array(hs[1:])},
                             np.random.default_rng(5)):
        grad = np.zeros((B, H))  # of sum_b v_b . h_T with respect to h_{T-k}, coordinate-wise
        for i in range(H):
            e = eps * np.eye(H)[i]
            up, down = (run_recurrence(hs[T - k] + s * e, ax[T - k:], Whh) for s in (1, -1))
            grad[:, i] = ((up - down) * v).sum(axis=1) / (2 * eps)
        assert g == pytest.approx(np.linalg.norm(grad, axis=1).mean(), rel=1e-6), k


def test_bptt_profile_keeps_tiny_and_huge_gains_finite():
    H = 4
    h = np.zeros((64, 2, H), dtype=np.float32)
    for scale, per_step in ((0.01, 1e-2), (50.0, 50.0)):
        profile = bptt_profile(rnn, {"Whh": scale * np.eye(H, dtype=np.float32)}, {"h": h},
                               np.random.default_rng(0))
        assert profile[-1][1] == pytest.approx(per_step**64, rel=1e-3)  # 1e-128, 5e108
        assert scalar(profile) == pytest.approx(per_step, rel=1e-4)


def test_profile_steps_are_powers_of_two_and_the_chunk_length():
    assert profile_steps(64) == {1, 2, 4, 8, 16, 32, 64}
    assert profile_steps(10) == {1, 2, 4, 8, 10}
    assert profile_steps(1) == {1}


def test_layer_readings_aggregate_as_documented():
    model, out = model_out()
    deltas = {k: 1e-3 * p for k, p in model.params.items()}
    rec = measure(out.probes, model.params, grad_norms(out.grads), deltas, 0.95,
                   np.random.default_rng(0))
    for name in [*PROBE_READINGS, "mean_gain"]:
        assert rec[name] == pytest.approx((rec[f"layer0.{name}"] + rec[f"layer1.{name}"]) / 2)
    assert rec["whh_sigma_max"] == max(rec["layer0.whh_sigma_max"], rec["layer1.whh_sigma_max"])
    for (_, g), (_, g0), (_, g1) in zip(rec["bptt_profile"], rec["layer0.bptt_profile"],
                                        rec["layer1.bptt_profile"], strict=True):
        assert g == pytest.approx((g0 + g1) / 2)


# ---- intervals


def test_interval_means_cover_the_steps_since_the_last_record():
    interval = Interval()
    for step, loss, clip, g in ((11, 2.0, 1.0, 7.0), (12, 3.0, 0.0, 1.0), (13, 4.0, 0.0, 2.0),
                                (14, 5.0, 1.0, 9.0)):
        interval.add(step, loss, clip, g)
    assert interval.summary(14) == {"train_nll": 3.5, "clip_rate": 0.5, "grad_norm_max": 9.0,
                                    "steps": [11, 14]}
    resumed = Interval(dict(interval.state))  # a checkpoint carries the (now empty) state
    resumed.add(15, 1.0, 0.25, 0.5)
    assert resumed.summary(15) == {"train_nll": 1.0, "clip_rate": 0.25, "grad_norm_max": 0.5,
                                   "steps": [15, 15]}


# ---- health flags


def test_flags_name_the_bound_a_reading_crosses():
    assert flag("sat_ratio", 0.62) == ">0.5"
    assert flag("layer1.sat_ratio", 0.62) == ">0.5"
    assert flag("mean_gain", 0.2) == "<0.3"
    assert flag("update_ratio", 5e-5) == "<0.0004"
    assert flag("sat_ratio", 0.1) == flag("train_nll", 9.0) == ""
    assert flag("eval_nll", None) == "nan"
    assert flag("grad_norm", 30.0, [1.0, 2.0, 1.5]) == "x20"
    assert flag("grad_norm", 5.0, [1.0, 2.0, 1.5]) == ""


def test_every_healthy_range_belongs_to_a_recorded_reading():
    recorded = set(PROBE_READINGS) | set(rnn.READINGS) | {"bptt_profile", "grad_norm",
                                                          "clip_rate", "update_ratio"}
    assert set(HEALTHY) <= recorded
    for low, high in HEALTHY.values():
        assert low is None or high is None or low < high


def test_profile_scalar_is_the_gain_per_time_step():
    assert scalar([[1, 0.5], [2, 0.3], [4, 0.0625]]) == pytest.approx(0.5)  # 0.0625 ** (1/4)
    assert scalar([[1, 0.5], [4, None]]) is None
    assert scalar(float("nan")) is None and scalar([[1, 0.5], [2, float("inf")]]) is None
    assert scalar(0.25) == 0.25


# ---- real runs


def run(tmp_path, corpus, name, **kw):
    """A 40-step run on the small corpus, a record every 10 steps: (path, records)."""
    cfg = TrainConfig(**{**dict(corpus=str(corpus), hidden=16, batch=4, seq_len=16, steps=40,
                                log_every=10, eval_every=20), **kw})
    with open(tmp_path / f"{name}.log", "w") as log:
        path = train(cfg, tmp_path / name, display=PlainDisplay(out=log))
    return path, runs.read_metrics(path)


PER_LAYER = ("mean_abs_h", "sat_ratio", "mean_gain", "dh_norm", "dh_raw_norm", "whh_sigma_max",
             "bptt_profile")
GLOBAL = ("step", "chars", "elapsed_s", "lr", "train_nll", "steps", "grad_norm", "clip_rate",
          "update_ratio")


def test_two_layer_run_records_every_spec_key_per_layer(small_corpus, tmp_path):
    path, recs = run(tmp_path, small_corpus, "two", layers=2)
    params, *_ = runs.load_checkpoint(path / runs.CHECKPOINT)
    assert [r["step"] for r in recs] == [10, 20, 30, 40]
    assert [r["steps"] for r in recs] == [[1, 10], [11, 20], [21, 30], [31, 40]]
    assert ["eval_nll" in r for r in recs] == [False, True, False, True]
    for r in recs:
        assert set(GLOBAL) <= set(r)
        for name in PER_LAYER:
            assert {name, f"layer0.{name}", f"layer1.{name}"} <= set(r), name
        for p in params:
            assert {f"update_ratio.{p}", f"grad_norm.{p}", f"param_norm.{p}"} <= set(r), p
        assert [k for k, _ in r["bptt_profile"]] == [1, 2, 4, 8, 16]
        assert r["update_ratio"] > 0 and 0 < r["layer0.mean_gain"] <= 1
    last = recs[-1]  # the readings of step 40, after its update: the checkpointed weights
    for l in range(2):
        exact = np.linalg.norm(params[f"{l}.Whh"].astype(np.float64), 2)
        assert last[f"layer{l}.whh_sigma_max"] == pytest.approx(exact, rel=1e-5)
    for p, theta in params.items():
        assert last[f"param_norm.{p}"] == pytest.approx(np.linalg.norm(theta), rel=1e-5)


def test_large_init_saturates_and_small_init_stays_linear_with_a_decaying_profile(
        small_corpus, tmp_path):
    _, saturated = run(tmp_path, small_corpus, "big", hidden=32, recurrent_scale=4.0,
                       input_scale=4.0)
    _, linear = run(tmp_path, small_corpus, "small", hidden=32, recurrent_scale=0.2,
                    input_scale=0.2)
    for r in saturated:
        assert r["sat_ratio"] > 0.5 and r["mean_gain"] < 0.3
    for r in linear[:2]:  # the first 20 steps, before training grows Whh
        assert r["sat_ratio"] < 0.01 and r["mean_gain"] > 0.9
        g = dict(r["bptt_profile"])
        assert g[16] < 1e-4 * g[1]
        assert flag("bptt_profile", scalar(r["bptt_profile"])) == "<0.5"


# ---- gated cells


def test_gate_readings_of_hand_made_gates():
    """Four units whose forget gate is 0.5, 0.9, 0.99 and 1 at every t and b."""
    f = np.broadcast_to(np.array([0.5, 0.9, 0.99, 1.0]), (3, 2, 4))
    reads = {name: fn({}, {"f": f, "i": f}, 0.95) for name, fn in lstm.READINGS.items()
             if name.startswith(("gate.f", "memory"))}
    assert reads["gate.f.mean"] == pytest.approx((0.5 + 0.9 + 0.99 + 1) / 4)
    assert reads["gate.f.left"] == 0 and reads["gate.f.right"] == pytest.approx(0.5)
    times = sorted([-1 / math.log(0.5), -1 / math.log(0.9), -1 / math.log(0.99), 1e4])
    assert reads["memory_steps"] == pytest.approx((times[1] + times[2]) / 2)
    assert gru.READINGS["memory_steps"]({}, {"z": np.zeros((2, 2, 3))}, 0.95) == 0.0


def test_lstm_cell_state_readings():
    c = np.array([[[0.1, -3.0], [2.0, 0.5]]])  # (T=1, B=2, H=2)
    probe = {"c": c, "tanh_c": np.tanh(c)}
    assert lstm.mean_abs_c({}, probe, 0.95) == pytest.approx(5.6 / 4)
    assert lstm.c_sat_ratio({}, probe, 0.95) == 0.5  # tanh(-3) = -0.995, tanh(2) = 0.964


def run_cell(cell, P, ax, state):
    """SPEC 8's recurrence from state (a tuple of (B, H)) over the input projections ax
    (steps, B, BLOCKS*H); the last state."""
    H = state[0].shape[1]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    for a in ax:
        if cell == "gru":
            (h,) = state
            m = h @ P["Wh"] + P["bh"]
            r, z = sig(a[:, :H] + m[:, :H]), sig(a[:, H:2 * H] + m[:, H:2 * H])
            n = np.tanh(a[:, 2 * H:] + r * m[:, 2 * H:])
            state = ((1 - z) * n + z * h,)
        else:
            h, c = state
            zz = a + h @ P["Wh"]
            i, f, o = sig(zz[:, :H]), sig(zz[:, H:2 * H]), sig(zz[:, 3 * H:])
            c = f * c + i * np.tanh(zz[:, 2 * H:3 * H])
            state = (o * np.tanh(c), c)
    return state


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bptt_profile_of_gated_cells_matches_finite_differences(cell):
    """g_k is the norm of the gradient of v . h_T with respect to h_{T-k} (the LSTM's c_{T-k}
    held), through the cell's full recurrence, from the states and gates of a real step."""
    rng = np.random.default_rng(4)
    T, B, H, eps = 8, 2, 4, 1e-6
    model = Model(V, H, 1, cell=cell, seed=4, dtype="float64")
    x, y = batch(rng, T, B)
    unit = model.cell_module
    h0 = model.state_of({s: rng.uniform(-0.8, 0.8, (1, B, H)) for s in unit.STATE})
    probe = model.loss_and_grads(x, y, h0).probes[0]
    P = {k.split(".", 1)[1]: v for k, v in model.params.items() if k.startswith("0.")}
    Wx, bx = (P[name] for name in unit.INPUT)
    ax = Wx[x] + bx
    states = [tuple(np.asarray(part)[0] for part in (h0 if cell == "lstm" else (h0,)))]
    for t in range(T):
        states.append(run_cell(cell, P, ax[t:t + 1], states[t]))
    np.testing.assert_allclose(np.array([s[0] for s in states[1:]]), probe["h"], atol=1e-12)
    v = injected(5, B, H)
    for k, g in bptt_profile(unit, P, probe, np.random.default_rng(5)):
        grad = np.zeros((B, H))
        for i in range(H):
            e = eps * np.eye(H)[i]
            up, down = (run_cell(cell, P, ax[T - k:], (states[T - k][0] + s * e,
                                                       *states[T - k][1:])) for s in (1, -1))
            grad[:, i] = ((up[0] - down[0]) * v).sum(axis=1) / (2 * eps)
        assert g == pytest.approx(np.linalg.norm(grad, axis=1).mean(), rel=1e-6), (cell, k)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_run_records_gate_readings_and_not_the_tanh_cells(small_corpus, tmp_path, cell):
    from rnnscope.triage import diagnose_run

    path, recs = run(tmp_path, small_corpus, cell, cell=cell, layers=2)
    gates = {"gru": "rz", "lstm": "ifo"}[cell]
    own = [f"gate.{g}.{w}" for g in gates for w in ("mean", "left", "right")] + ["memory_steps"]
    own += ["mean_abs_c", "c_sat_ratio"] if cell == "lstm" else []
    for r in recs:
        for name in [*own, *PER_LAYER[:2], "dh_norm", "dh_raw_norm", "bptt_profile"]:
            assert {name, f"layer0.{name}", f"layer1.{name}"} <= set(r), name
        assert not {"mean_gain", "whh_sigma_max", "layer0.mean_gain"} & set(r)
        for l in range(2):
            assert r[f"layer{l}.dh_raw_norm"] <= r[f"layer{l}.dh_norm"]
            assert 0 <= r[f"layer{l}.gate.{gates[0]}.left"] <= 1
        assert [k for k, _ in r["bptt_profile"]] == [1, 2, 4, 8, 16]
    assert diagnose_run(path)["verdict"]  # the triage reads gated records without errors
