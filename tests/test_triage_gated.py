"""The gated cells' triage (issue 13): gate_saturation and short_memory on hand-made GRU/LSTM
records, the existing rules silent on a learning gated run, and each finding on a short real run
built to show it. Every diagnosis also passes the story invariants of tests/story.py."""

import math

import pytest
from story import texts, violations

from rnnscope.config import TrainConfig
from rnnscope.display import PlainDisplay
from rnnscope.train import train
from rnnscope.triage import THRESHOLDS, diagnose, diagnose_run, format_diagnosis

K = THRESHOLDS["persist"]
DELAY8 = {"name": "synthetic:delay8", "floor_nll": 1.9606, "unigram_eval_nll": math.log(16),
          "source": {"kind": "delay", "K": 8, "seed": 0}}
PROFILE = [[1, 0.5], [2, 0.2], [4, 0.05], [8, 0.01]]
WEAK = [[1, 0.1], [2, 0.01], [4, 1e-4], [8, 1e-6]]


def doc(cell: str, corpus: dict | None = None, **settings) -> dict:
    return {"config": TrainConfig(cell=cell, **settings).to_dict(),
            "vocab": [chr(97 + i) for i in range(16)], "corpus": corpus or {}}


def record(i: int, cell: str = "lstm", nll=None, left=0.0, right=0.0, keep_left=None,
           memory=5.0, profile=PROFILE) -> dict:
    """The i-th record (step 10 i) of a gated run: every sigmoid gate `left`/`right` saturated
    (the keep gate `keep_left` when given), train NLL falling unless `nll` is given."""
    gates = ("i", "f", "o") if cell == "lstm" else ("r", "z")
    keep = "f" if cell == "lstm" else "z"
    rec = {"step": 10 * i, "lr": 2e-3, "train_nll": 3.0 - 0.01 * i if nll is None else nll,
           "clip_rate": 0.0, "grad_norm": 0.5, "mean_abs_h": 0.3, "sat_ratio": 0.05,
           "dh_norm": 2.0, "dh_raw_norm": 1.5, "bptt_profile": profile, "update_ratio": 4e-3,
           "memory_steps": memory}
    for g in gates:
        rec.update({f"gate.{g}.mean": 0.5, f"gate.{g}.left": left, f"gate.{g}.right": right})
    if keep_left is not None:
        rec[f"gate.{keep}.left"] = keep_left
    if i % 5 == 0:
        rec["eval_nll"] = rec["train_nll"] + 0.05
    return rec


def judged(records, d) -> dict:
    result = diagnose(records, d)
    assert violations(result, records, d) == []
    return result


def ids(result) -> list[str]:
    return [f["id"] for f in result["findings"]]


# ---- gate_saturation ------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gates_saturated_and_still_from_the_start_are_gate_saturation(cell):
    records = [record(i, cell, left=0.33, right=0.34) for i in range(1, 40)]
    result = judged(records, doc(cell, input_scale=40.0))
    assert ids(result) == ["gate_saturation"], format_diagnosis(result)
    f = result["findings"][0]
    assert f["evidence"]["steps"] == [10, 20, 30, 40, 50]
    assert "from the first record, 67% of the layer's sigmoid gate" in f["evidence"]["seen"]
    assert texts(f)[0] == "--recurrent-scale 1 --input-scale 1"


def test_gates_that_saturate_while_the_run_learns_are_no_finding():
    # a GRU's z goes to the left rail while the loss falls: the choice of a healthy GRU
    records = [record(i, "gru", left=min(0.02 * i, 0.9), keep_left=min(0.05 * i, 0.93),
                      memory=0.25) for i in range(1, 60)]
    result = judged(records, doc("gru", {"name": "tinyshakespeare"}))
    assert result["verdict"] == "healthy", format_diagnosis(result)
    assert {"id": "short_memory", "missing": ["horizon"]} in result["not_measured"]
    assert "short_memory (no horizon: the corpus does not say" in format_diagnosis(result)


def test_one_sided_saturation_from_the_start_is_a_choice_not_a_broken_start():
    # a GRU at a high lr: 70% of z and 60% of r on the left rail by the first record, learning
    records = [record(i, "gru", left=0.62, right=0.15, keep_left=0.72) for i in range(1, 40)]
    assert judged(records, doc("gru", lr=0.01))["verdict"] == "healthy"


def test_saturated_gates_that_still_move_are_no_finding():
    records = [record(i, "lstm", left=0.3 + 0.01 * i, right=0.3) for i in range(1, 40)]
    assert judged(records, doc("lstm"))["verdict"] == "healthy"


def test_gate_saturation_later_needs_the_loss_getting_worse():
    flat = [record(i, "lstm", nll=2.0, left=0.3 if i > 20 else 0.0, right=0.3)
            for i in range(1, 50)]
    assert "gate_saturation" not in ids(judged(flat, doc("lstm")))
    worse = [record(i, "lstm", nll=2.0 + (0.01 * (i - 20) if i > 20 else 0.0),
                    left=0.3 if i > 20 else 0.0, right=0.3) for i in range(1, 50)]
    result = judged(worse, doc("lstm"))
    assert "gate_saturation" in ids(result), format_diagnosis(result)
    assert "while train NLL got" in result["findings"][0]["evidence"]["seen"]


def test_gate_saturation_explains_the_small_updates_of_inflated_weights():
    records = [{**record(i, "lstm", nll=3.0 - 0.001 * i, left=0.33, right=0.34),
                "update_ratio": 2e-4} for i in range(1, 40)]
    result = judged(records, doc("lstm", input_scale=40.0))
    assert ids(result) == ["gate_saturation"]
    assert [c["id"] for c in result["findings"][0]["evidence"]["consequences"]] == \
        ["update_too_small"]


# ---- short_memory ---------------------------------------------------------------------------

def test_a_closed_keep_gate_on_a_delay_task_is_short_memory_explaining_the_profile():
    records = [record(i, "lstm", nll=2.774, keep_left=1.0, memory=0.12, profile=WEAK)
               for i in range(1, 40)]
    result = judged(records, doc("lstm", DELAY8, forget_bias=-8.0))
    assert ids(result) == ["short_memory"], format_diagnosis(result)
    f = result["findings"][0]
    assert [c["id"] for c in f["evidence"]["consequences"]] == ["vanishing_gradients", "plateau"]
    assert "below 2 (a quarter of the 8 steps back" in f["evidence"]["seen"]
    assert texts(f) == ["--forget-bias 1", "--chrono-init"]


def test_short_memory_needs_the_loss_stuck_above_the_floor():
    learning = [record(i, "lstm", keep_left=1.0, memory=0.12) for i in range(1, 40)]
    assert judged(learning, doc("lstm", DELAY8))["verdict"] == "healthy"
    at_floor = [record(i, "lstm", nll=1.95, keep_left=1.0, memory=0.12) for i in range(1, 40)]
    result = judged(at_floor, doc("lstm", DELAY8))
    assert result["verdict"] == "healthy", format_diagnosis(result)


def test_a_long_enough_memory_is_no_short_memory():
    records = [record(i, "gru", nll=2.3, keep_left=0.9, memory=3.0) for i in range(1, 40)]
    assert "short_memory" not in ids(judged(records, doc("gru", DELAY8)))


# ---- the existing rules on gated cells ------------------------------------------------------

def test_a_gated_cells_small_profile_while_it_learns_is_no_vanishing_gradient():
    learning = [record(i, "lstm", profile=WEAK) for i in range(1, 40)]
    assert judged(learning, doc("lstm"))["verdict"] == "healthy"
    stuck = [record(i, "lstm", nll=2.5, profile=WEAK) for i in range(1, 40)]
    assert "vanishing_gradients" in ids(judged(stuck, doc("lstm")))


def test_gate_rules_do_not_apply_to_the_tanh_cell():
    records = [{k: v for k, v in record(i).items() if not k.startswith("gate.") and
                k != "memory_steps"} | {"mean_gain": 0.7, "whh_sigma_max": 2.0, "chars": 2048 * i}
               for i in range(1, 40)]
    result = judged(records, doc("rnn", {"train_chars": 10**6}))
    assert result["not_measured"] == []


def test_a_log_without_config_is_judged_as_the_cell_its_gate_readings_name():
    records = [record(i, "gru", left=0.33, right=0.34) for i in range(1, 40)]
    result = judged(records, {})
    assert ids(result) == ["gate_saturation"]


# ---- on real runs ---------------------------------------------------------------------------

REAL = {  # name: (settings of a short real run, its verdict)
    "gate_saturation": (dict(cell="lstm", input_scale=40.0), "gate_saturation"),
    "short_memory": (dict(cell="lstm", corpus="synthetic:delay8", forget_bias=-8.0,
                          steps=400), "short_memory"),
    "healthy-gru": (dict(cell="gru"), "healthy"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_doctor_tells_the_gated_story_a_real_run_was_built_to_show(tmp_path, name):
    settings, verdict = REAL[name]
    base = dict(corpus="stdlib", hidden=32, batch=8, seq_len=32, steps=200, log_every=10,
                eval_every=50)
    cfg = TrainConfig(**{**base, **settings})
    path = train(cfg, tmp_path / name, display=PlainDisplay(out=open("/dev/null", "w")))  # noqa: SIM115
    result = diagnose_run(path)
    assert result["verdict"] == verdict, format_diagnosis(result)
