"""The triage (rnnscope/triage/: rules in rules.py, one story in story.py, words in words.py): each
rule on hand-made records, its own story checked before it fires, consequences folded under
their cause, one consistent set of next steps, then each finding on a short real run built to
show it, and doctor on runs that stopped on a NaN or are still being written. Every diagnosis
here also passes the story invariants of tests/story.py."""

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from story import texts, violations

from rnnscope import runs
from rnnscope.cli import main
from rnnscope.config import TrainConfig
from rnnscope.display import PlainDisplay
from rnnscope.train import train
from rnnscope.triage import Watch, diagnose, diagnose_run, format_diagnosis, write_triage
from rnnscope.triage.history import LR_HEALTHY, THRESHOLDS, History, lr_step
from rnnscope.triage.rules import PRIORITY
from rnnscope.triage.steps import next_step
from rnnscope.triage.story import consistent

CALIBRATION = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration"

K = THRESHOLDS["persist"]
VOCAB = 30
TRAIN_CHARS = 200_000  # the training split: read once by step 100 (2,048 characters a step)
CONFIG = {"config": TrainConfig().to_dict(), "vocab": [chr(97 + i) for i in range(VOCAB)],
          "corpus": {"train_chars": TRAIN_CHARS}}
PROFILE = [[1, 0.8], [2, 0.6], [4, 0.4], [8, 0.2], [16, 0.05], [32, 0.01], [64, 0.001]]
COLLAPSED = [[1, 0.3], [2, 0.05], [4, 0.005], [8, 1e-4]]


def record(i: int, **readings) -> dict:
    """The i-th record (step 10 i) of a healthy, learning run, with `readings` replaced."""
    rec = {"step": 10 * i, "chars": 20480 * i, "lr": 2e-3, "train_nll": 3.0 - 0.01 * i,
           "clip_rate": 0.0,
           "grad_norm": 0.5, "mean_abs_h": 0.4, "sat_ratio": 0.05, "mean_gain": 0.7,
           "dh_norm": 2.0, "dh_raw_norm": 1.5, "whh_sigma_max": 2.0, "bptt_profile": PROFILE,
           "update_ratio": 4e-3}
    if i % 5 == 0:
        rec["eval_nll"] = 3.1 - 0.01 * i
    return {**rec, **readings}


def broken(finding_id: str, n: int = K) -> list[dict]:
    """n records that show finding_id from the run's start; update_too_large after one healthy
    record (every run's first records have large update ratios: not counted alone)."""
    late = finding_id == "update_too_large"
    return [record(1)] * late + [record(i, **BROKEN[finding_id])
                                 for i in range(1 + late, n + 1 + late)]


def judged(records, doc=CONFIG) -> dict:
    """The diagnosis, after checking it against the story invariants."""
    result = diagnose(records, doc)
    assert violations(result, records, doc) == []
    return result


def found(records, doc=CONFIG) -> list[str]:
    return [f["id"] for f in judged(records, doc)["findings"]]


def explained(result) -> dict:
    """finding id: the ids of the findings it explains."""
    return {f["id"]: [c["id"] for c in f["evidence"].get("consequences", [])]
            for f in result["findings"]}


BROKEN = {  # a finding id: the readings of a record that shows it
    "diverged": {"train_nll": np.log(VOCAB) + 2},
    "exploding_gradients": {"clip_rate": 0.9, "grad_norm": 40.0},
    "saturation": {"sat_ratio": 0.7, "mean_gain": 0.15},
    "vanishing_gradients": {"bptt_profile": COLLAPSED},
    "update_too_large": {"update_ratio": 0.05},
    "update_too_small": {"update_ratio": 1e-5, "train_nll": 4.0},
}


# ---- rules on hand-made records ------------------------------------------------------------

def test_a_learning_run_with_readings_in_range_is_healthy():
    assert judged([record(i) for i in range(1, 60)]) == {
        "verdict": "healthy", "findings": [], "set_aside": [], "not_measured": []}


@pytest.mark.parametrize("finding_id", BROKEN)
def test_rule_fires_once_its_condition_holds_on_persist_records(finding_id):
    records = broken(finding_id)
    assert finding_id in found(records)
    assert finding_id not in found(records[:-1])


@pytest.mark.parametrize("finding_id", BROKEN)
def test_one_noisy_record_does_not_fire(finding_id):
    records = [record(i) for i in range(1, 30)]
    records[12] = record(12, **BROKEN[finding_id])
    assert found(records) == []


@pytest.mark.parametrize("finding_id", BROKEN)
def test_findings_cite_their_steps_and_readings_and_suggest_flags(finding_id):
    records = broken(finding_id)
    f = next(f for f in judged(records)["findings"] if f["id"] == finding_id)
    assert set(f) == {"id", "severity", "evidence", "suspects", "next"}
    assert f["severity"] in ("info", "warning", "critical")
    last = records[-1]["step"]
    assert f["evidence"]["steps"][-1] == last and str(last) in f["evidence"]["seen"]
    assert f["evidence"]["readings"] and f["evidence"]["caveat"] and f["suspects"]
    assert f["next"] and all(step["text"].startswith("--") for step in f["next"])
    assert all(step["settings"][step["setting"]] == step["value"] for step in f["next"])


def test_a_nan_is_believed_at_once():
    records = [record(1), record(2), {"step": 21, "lr": 2e-3, "train_nll": None,
                                      "grad_norm": None, "diverged": "loss is not finite"}]
    result = judged(records)
    assert result["verdict"] == "diverged"
    assert "step 21" in result["findings"][0]["evidence"]["seen"]


def test_a_per_parameter_ratio_of_a_zero_weight_is_not_a_nan():
    assert found([record(i, **{"update_ratio.0.bh": None}) for i in range(1, 10)]) == []


def test_a_null_inside_the_profile_does_not_break_the_rules():
    assert found([record(i, bptt_profile=[[1, None], [2, None], [4, None]])
                  for i in range(1, 10)]) == []


def test_next_steps_are_computed_from_the_run_config():
    cfg = {**CONFIG, "config": {**CONFIG["config"], "lr": 0.05, "recurrent_scale": 4.0,
                                "input_scale": 4.0}}
    result = judged([record(i, **BROKEN["saturation"]) for i in range(1, K + 1)], cfg)
    f = result["findings"][0]
    assert texts(f)[:2] == ["--recurrent-scale 1 --input-scale 1", "--lr 0.01"]
    # a quarter of 0.05 is still above what healthy Adam runs use: the largest of those
    assert f["evidence"]["why_next"] == ("lr 0.01 from 0.05: lr x 0.25 would give 0.013: the "
                                         "largest lr healthy adam runs use (healthy adam runs: "
                                         "0.001-0.01)")


def test_saturation_of_one_layer_is_found_and_named():
    cfg = {**CONFIG, "config": {**CONFIG["config"], "layers": 2}}
    layers = {"layer0.sat_ratio": 0.1, "layer0.mean_gain": 0.7, "layer1.sat_ratio": 0.7,
              "layer1.mean_gain": 0.15, "sat_ratio": 0.4, "mean_gain": 0.43,
              "layer0.bptt_profile": PROFILE, "layer1.bptt_profile": PROFILE}
    result = judged([record(i, **layers) for i in range(1, K + 1)], cfg)
    assert result["verdict"] == "saturation"
    assert "layer1.sat_ratio 0.7 and layer1.mean_gain 0.15" in \
        result["findings"][0]["evidence"]["seen"]


def test_saturation_drift_of_a_run_that_still_learns_is_not_flagged():
    # the calibration notes: sat_ratio 0.24 -> 0.65 and the gain falling while NLL improves
    assert found([record(i, sat_ratio=0.24 + 0.006 * i, mean_gain=0.45 - 0.004 * i)
                  for i in range(1, 70)]) == []


def test_saturation_after_the_start_fires_when_the_loss_rises():
    records = [record(i) for i in range(1, 20)]
    records += [record(i, sat_ratio=0.8, mean_gain=0.1, train_nll=2.8 + 0.02 * (i - 20),
                       eval_nll=3.0) for i in range(20, 45)]
    f = next(f for f in judged(records)["findings"] if f["id"] == "saturation")
    assert f["severity"] == "warning" and "worse" in f["evidence"]["seen"]


# ---- each rule's own story -----------------------------------------------------------------

TWO_LAYERS = {**CONFIG, "config": {**CONFIG["config"], "layers": 2}}


def two_layers(i: int, sat1: float, **readings) -> dict:
    """A record of a 2-layer run whose layer 1 has sat_ratio sat1 (on the rails above 0.5)."""
    gain1 = 0.15 if sat1 > 0.5 else 0.45
    return record(i, **{"layer0.sat_ratio": 0.1, "layer0.mean_gain": 0.7,
                        "layer1.sat_ratio": sat1, "layer1.mean_gain": gain1,
                        "sat_ratio": (0.1 + sat1) / 2, "mean_gain": (0.7 + gain1) / 2,
                        **readings})


def test_a_layer_leaving_the_rails_while_the_loss_falls_is_not_a_finding():
    # the issue's two-layer run: layer 1 at 0.73 on the first record, 0.36 by step 500
    records = [two_layers(i, 0.73 - 0.04 * i) for i in range(1, 50)]
    result = judged(records, TWO_LAYERS)
    assert result["findings"] == [] and result["verdict"] == "healthy"


def test_a_saturated_start_that_resolves_later_is_set_aside_with_its_evidence():
    records = [two_layers(i, 0.73 if i <= 8 else 0.3) for i in range(1, 50)]
    watch = Watch(TWO_LAYERS["config"], VOCAB)
    live = [f["id"] for r in records for f in watch.update(r)]
    assert live == ["saturation"]  # while it lasts it is reported ...
    result = judged(records, TWO_LAYERS)
    assert result["findings"] == []  # ... and at the end it is set aside, not hidden
    [aside] = result["set_aside"]
    assert aside["id"] == "saturation" and "left them by step 490" in aside["why"]
    assert aside["evidence"]["readings"]["layer1.sat_ratio"][0] == 0.73


def test_saturation_that_lasts_stays_critical():
    records = [two_layers(i, 0.73) for i in range(1, 50)]
    result = judged(records, TWO_LAYERS)
    assert result["verdict"] == "saturation" and result["findings"][0]["severity"] == "critical"


def test_overfitting_needs_eval_above_train():
    # the issue's sgd run: both rising, eval below train ("gap grew from -8.99 to -2.43")
    records = [record(i, train_nll=24.0 + 0.2 * i, **({"eval_nll": 15.0 + 0.5 * i}
                                                      if i % 5 == 0 else {}))
               for i in range(1, 40)]
    assert "overfitting" not in found(records) + sum(explained(judged(records)).values(), [])


def overfitting_records(n_evals: int, train_slope: float = -0.02) -> list[dict]:
    """Train NLL keeps falling; eval NLL is best at the 4th eval and rises after it."""
    records = []
    for i in range(1, 5 * n_evals + 1):
        r = record(i, train_nll=3.0 + train_slope * i)
        if i % 5 == 0:
            j = i // 5
            r["eval_nll"] = 3.1 - 0.1 * j if j <= 4 else 2.7 + 0.05 * (j - 4)
        records.append(r)
    return records


def test_overfitting_needs_persist_evals_rising_evals_with_a_growing_gap():
    k = THRESHOLDS["persist_evals"]
    assert found(overfitting_records(4 + k - 1)) == []
    assert found(overfitting_records(4 + k)) == ["overfitting"]


def test_overfitting_needs_the_train_nll_still_improving():
    assert "overfitting" not in found(overfitting_records(8, train_slope=0.005))


def crawl(n: int, ratio, nll) -> list[dict]:
    return [record(i, update_ratio=ratio(i), train_nll=nll(i)) for i in range(1, n + 1)]


def test_update_too_small_when_the_updates_were_small_from_the_start_and_the_loss_crawls():
    assert found(crawl(40, lambda i: 1e-4, lambda i: 4.0 - 0.001 * i)) == ["update_too_small"]


def test_update_too_small_not_while_the_loss_recovers_from_a_spike():
    def nll(i):  # falling too fast to crawl, a spike at record 25, then a slow recovery
        return 4.0 * 0.985 ** i if i < 25 else 4.5 - 0.004 * (i - 25)
    records = crawl(40, lambda i: 1e-4, nll)
    assert "update_too_small" not in found(records)
    h = History(CONFIG["config"])
    for r in records:
        h.add(r)
    assert h.spikes[0] == 250  # and the records after it, still far above the median
    assert "update_too_small" in found(crawl(40, lambda i: 1e-4, lambda i: nll(min(i, 24))))


def test_update_too_small_not_when_updates_shrank_after_healthy_ones():
    # a converged run: healthy steps while it learned, weights grown, the loss flat
    records = crawl(60, lambda i: 4e-3 if i < 20 else 1e-4, lambda i: max(3.0 - 0.05 * i, 2.0))
    assert "update_too_small" not in found(records)


def test_a_remedy_never_raises_the_lr_after_a_loss_spike():
    h = History(CONFIG["config"])
    h.spikes = [500]
    det = {"id": "update_too_small", "severity": "warning",
           "changes": [{"lr": 0.023}, {"optimizer": "sgd", "lr": 0.1}]}
    consistent(h, [det], [det])
    assert det["changes"] == [{"optimizer": "sgd", "lr": 0.1}]


def test_a_remedy_never_moves_a_setting_against_a_more_severe_finding():
    h = History(CONFIG["config"])
    first = {"id": "saturation", "severity": "critical", "changes": [{"lr": 5e-4}]}
    second = {"id": "update_too_small", "severity": "warning",
              "changes": [{"lr": 0.02}, {"clip": "none"}]}
    third = {"id": "plateau", "severity": "info", "changes": [{"clip": "elementwise"}]}
    consistent(h, [first, second, third], [first])
    assert second["changes"] == [{"clip": "none"}] and third["changes"] == []


# ---- consequences under their cause -------------------------------------------------------

def test_a_divergence_explains_the_other_readings_with_one_set_of_next_steps():
    # the issue's sgd --lr 1.0 --clip elementwise run: loss far above uniform, units on the
    # rails, the profile collapsed, large updates: one cause
    cfg = {**CONFIG, "config": {**CONFIG["config"], "optimizer": "sgd", "lr": 1.0,
                                "clip": "elementwise"}}
    records = [record(i, train_nll=25.0, sat_ratio=0.99, mean_gain=0.01,
                      bptt_profile=COLLAPSED, update_ratio=0.05) for i in range(1, 12)]
    result = judged(records, cfg)
    assert explained(result) == {"diverged": ["saturation", "vanishing_gradients",
                                              "update_too_large"]}
    f = result["findings"][0]
    assert texts(f) == ["--lr 0.1", "--clip norm", "--optimizer adam --lr 0.002"]
    assert all(set(c) == {"id", "severity", "evidence"} for c in f["evidence"]["consequences"])


def test_large_updates_explain_a_saturated_start():
    # the issue's Adam --lr 0.03 run: update_ratio 1.3e-2 to 2.3e-2 from the start, sat 0.85
    records = [record(i, update_ratio=0.02, sat_ratio=0.85, mean_gain=0.1)
               for i in range(1, 30)]
    result = judged(records)
    assert explained(result) == {"update_too_large": ["saturation"]}
    assert result["findings"][0]["severity"] == "critical"  # the worst of what it explains
    # 2e-3 x 4e-3 / 0.02 = 4e-4 is below what healthy Adam runs use: the smallest of those
    assert texts(result["findings"][0])[0] == "--lr 0.001"


def test_recurrent_weights_blown_up_by_the_first_steps_are_updates_too_large():
    # Adam --lr 0.03 here: whh_sigma_max 31 at the first record, the ratio of the grown weights
    # only 0.004-0.009, 99% of the units on the rails
    records = [record(i, update_ratio=0.006, whh_sigma_max=31.0, sat_ratio=0.99,
                      mean_gain=0.005) for i in range(1, 30)]
    result = judged(records)
    assert explained(result) == {"update_too_large": ["saturation"]}
    f = result["findings"][0]
    assert "31 times its initial 1" in f["evidence"]["seen"] and texts(f)[0] == "--lr 0.001"
    assert found([record(i, update_ratio=0.006, whh_sigma_max=31.0 if i > 3 else 2.0)
                  for i in range(1, 30)]) == []  # grown later: not the first steps


def test_saturation_explains_a_collapsed_profile():
    records = [record(i, **BROKEN["saturation"], bptt_profile=COLLAPSED)
               for i in range(1, K + 1)]
    assert explained(judged(records)) == {"saturation": ["vanishing_gradients"]}


def test_the_verdict_is_the_most_severe_finding_then_the_fixed_priority():
    records = [record(1)] + [record(i, **BROKEN["update_too_large"],
                                    **BROKEN["vanishing_gradients"]) for i in range(2, K + 2)]
    result = judged(records)
    assert [f["id"] for f in result["findings"]] == ["vanishing_gradients", "update_too_large"]
    records = [record(i, **BROKEN["saturation"], **BROKEN["exploding_gradients"])
               for i in range(1, K + 1)]
    result = judged(records)  # saturation from the start is critical, clipped: warning
    assert [f["id"] for f in result["findings"]] == ["saturation", "exploding_gradients"]
    assert PRIORITY.index("exploding_gradients") < PRIORITY.index("saturation")


def flat(n: int, nll: float = 2.0, eval_every: int = 5, **readings) -> list[dict]:
    """n records of a run whose loss no longer moves."""
    return [record(i, train_nll=nll + 0.01 * (i % 2), **readings,
                   **({"eval_nll": nll + 0.1} if i % eval_every == 0 else {}))
            for i in range(1, n + 1)]


def test_plateau_needs_a_run_long_enough_to_tell():
    assert found(flat(THRESHOLDS["min_records"] - 1)) == []
    assert found(flat(THRESHOLDS["min_records"] + 5)) == ["plateau"]


def test_a_plateau_is_a_consequence_of_another_finding():
    records = flat(40)
    records[-K:] = [{**r, **BROKEN["update_too_large"]} for r in records[-K:]]
    assert explained(judged(records)) == {"update_too_large": ["plateau"]}


def with_corpus(**corpus) -> dict:
    return {**CONFIG, "corpus": corpus}


def test_a_plateau_at_the_unigram_baseline_explains_a_collapsed_profile():
    # random letters: nothing beyond character frequencies to learn, so the profile collapses
    result = judged(flat(40, bptt_profile=COLLAPSED), with_corpus(unigram_eval_nll=2.1))
    assert result["verdict"] == "plateau" and result["findings"][0]["severity"] == "info"
    assert explained(result) == {"plateau": ["vanishing_gradients"]}
    assert "unigram baseline" in result["findings"][0]["evidence"]["seen"]


def test_a_plateau_at_the_corpus_floor_is_success():
    result = judged(flat(40, bptt_profile=COLLAPSED), with_corpus(floor_nll=2.05))
    assert result["verdict"] == "healthy" and result["findings"] == []
    assert {s["id"] for s in result["set_aside"]} == {"plateau", "vanishing_gradients"}
    assert all("floor" in s["why"] for s in result["set_aside"])


def test_a_plateau_far_above_the_floor_with_a_collapsed_profile_is_vanishing_gradients():
    result = judged(flat(40, bptt_profile=COLLAPSED), with_corpus(floor_nll=1.2,
                                                                  unigram_eval_nll=2.1))
    assert explained(result) == {"vanishing_gradients": ["plateau"]}
    assert "0.90 nats above the corpus's floor" in \
        result["findings"][0]["evidence"]["consequences"][0]["evidence"]["seen"]


def test_a_plateau_with_eval_far_above_train_advises_regularisation_not_a_larger_model():
    records = [{**r, "eval_nll": 2.4} if "eval_nll" in r else r for r in flat(40)]
    f = judged(records)["findings"][0]
    assert f["id"] == "plateau" and texts(f)[:2] == ["--dropout 0.2", "--weight-decay 0.1"]
    assert not any(n.startswith("--hidden") for n in texts(f))


# ---- readings a log does not have ----------------------------------------------------------

def test_a_log_with_only_step_and_train_nll_gets_not_measured_instead_of_a_guess():
    records = [{"step": 10 * i, "train_nll": 3.0 - 0.01 * i} for i in range(1, 40)]
    result = judged(records, {})
    assert result["findings"] == []
    missing = {m["id"]: m["missing"] for m in result["not_measured"]}
    assert missing == {"exploding_gradients": ["grad_norm"],
                       "saturation": ["sat_ratio", "mean_gain"],
                       "vanishing_gradients": ["bptt_profile"],
                       "update_too_large": ["update_ratio"],
                       "update_too_small": ["update_ratio"],
                       "state_dependence": ["eval_nll"],
                       "overfitting": ["eval_nll", "chars", "train_chars"]}
    assert "not measured: exploding_gradients (no grad_norm)" in format_diagnosis(result)


def test_a_log_without_config_still_finds_a_divergence_against_its_own_start():
    records = [{"step": 10 * i, "train_nll": 3.0 if i < 5 else 9.0} for i in range(1, 15)]
    f = judged(records, {})["findings"][0]
    assert f["id"] == "diverged" and "the first recorded train NLL 3.000" in f["evidence"]["seen"]
    assert f["next"][0] == {"setting": "lr", "value": None, "settings": {"lr": None},
                            "factor": 0.1, "text": "learning rate (yours x 0.1)"}


def test_a_cell_without_whh_sigma_max_or_mean_gain_is_judged_on_what_it_has():
    records = [{k: v for k, v in record(i, bptt_profile=COLLAPSED).items()
                if k not in ("whh_sigma_max", "mean_gain")} for i in range(1, K + 1)]
    result = judged(records)
    assert [f["id"] for f in result["findings"]] == ["vanishing_gradients"]
    assert result["not_measured"] == [{"id": "saturation", "missing": ["mean_gain"]}]


# ---- the story invariants can fail -------------------------------------------------------

def test_the_story_check_catches_overfitting_with_eval_below_train():
    records = overfitting_records(8)
    result = diagnose(records, CONFIG)
    assert violations(result, records, CONFIG) == []
    lowered = [{**r, "eval_nll": r["eval_nll"] - 2} if "eval_nll" in r else r for r in records]
    assert "overfitting: eval NLL is not above train NLL" in violations(result, lowered, CONFIG)


def test_the_story_check_catches_contradicting_advice():
    records = broken("update_too_large")
    result = diagnose(records, CONFIG)
    result["findings"][0]["next"].append({"setting": "lr", "value": 0.01,
                                          "settings": {"lr": 0.01}, "text": "--lr 0.01"})
    assert any("higher lr" in v for v in violations(result, records, CONFIG))


def test_the_story_check_catches_a_reading_the_records_do_not_have():
    records = [record(i, **BROKEN["saturation"]) for i in range(1, K + 1)]
    result = diagnose(records, CONFIG)
    result["findings"][0]["evidence"]["readings"]["sat_ratio"][0] = 0.9
    assert any("cites sat_ratio 0.9" in v for v in violations(result, records, CONFIG))


# ---- live and text ---------------------------------------------------------------------------

def test_watch_reports_each_finding_once_when_it_first_holds():
    watch = Watch(TrainConfig(), VOCAB)
    reported = [(r["step"], [f["id"] for f in watch.update(r)])
                for r in (record(i, **BROKEN["update_too_large"]) for i in range(1, 12))]
    # not on the run's first K records alone: every run starts with large update ratios
    assert [(s, ids) for s, ids in reported if ids] == [(10 * (K + 1), ["update_too_large"])]


def test_watch_reports_the_most_severe_of_simultaneous_findings_first():
    watch = Watch(TrainConfig(), VOCAB)
    reports = [watch.update(record(i, **BROKEN["saturation"], **BROKEN["exploding_gradients"]))
               for i in range(1, K + 1)]
    assert [f["id"] for f in reports[-1]] == ["saturation", "exploding_gradients"]


def test_watch_does_not_report_a_consequence_of_a_finding_it_reported():
    watch = Watch(TrainConfig(), VOCAB)
    records = [record(1, **BROKEN["update_too_large"])]
    records += [record(i, train_nll=9.0, **BROKEN["update_too_large"]) for i in range(2, K + 2)]
    records += [record(i, train_nll=9.0, bptt_profile=COLLAPSED) for i in range(K + 2, 3 * K)]
    reported = [f for r in records for f in watch.update(r)]
    assert [f["id"] for f in reported] == ["diverged"]
    assert explained({"findings": reported}) == {"diverged": ["update_too_large"]}


def test_format_diagnosis_says_what_was_seen_explained_tried_and_doubted():
    records = [record(i, **BROKEN["saturation"], bptt_profile=COLLAPSED)
               for i in range(1, K + 1)]
    text = format_diagnosis(judged(records))
    for words in ("verdict: saturation", "seen:", "explains vanishing_gradients:",
                  "usually means:", "try first: --", "false positive"):
        assert words in text
    assert "healthy" in format_diagnosis({"verdict": "healthy", "findings": []})


def test_doctor_json_keeps_the_consequences_under_the_cause(tmp_path, capsys):
    path = tmp_path / "run"
    path.mkdir()
    runs.write_text(path / runs.CONFIG, json.dumps(CONFIG))
    for i in range(1, 12):
        runs.append_record(path, record(i, train_nll=25.0, sat_ratio=0.99, mean_gain=0.01))
    assert main(["doctor", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"verdict", "findings", "set_aside", "not_measured"}
    [f] = result["findings"]
    [c] = f["evidence"]["consequences"]
    assert (f["id"], c["id"]) == ("diverged", "saturation")
    assert c["evidence"]["readings"]["sat_ratio"] == [0.99] * K


# ---- short real runs built to show each finding --------------------------------------------

def letters(n: int, alphabet: int, seed: int = 0) -> str:
    """Text of letters drawn uniformly: nothing to learn beyond their frequency."""
    return "".join(chr(97 + int(c)) for c in np.random.default_rng(seed).integers(0, alphabet, n))


def words(n: int, seed: int = 0) -> str:
    """A few KB of random made-up words: a model that big memorises it, and cannot predict
    the eval split from what it memorised."""
    rng = np.random.default_rng(seed)
    lexicon = ["".join(letters(k, 26, i)) for i, k in enumerate(rng.integers(2, 9, 300))]
    return " ".join(rng.choice(lexicon, n))[:n * 4]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    where = tmp_path_factory.mktemp("triage-corpora")
    (where / "letters.txt").write_text(letters(20_000, 16))
    (where / "words.txt").write_text(words(1_000))
    return where


def run(where, corpus, **settings) -> tuple[dict, object]:
    """Train a short run (the real loop; conftest checks its story) and return its diagnosis
    and its directory."""
    base = dict(corpus=str(corpus), hidden=32, batch=8, seq_len=32, steps=100, log_every=10,
                eval_every=50)
    cfg = TrainConfig(**{**base, **settings})
    path = train(cfg, where, display=PlainDisplay(out=open("/dev/null", "w")))  # noqa: SIM115
    return diagnose_run(path), path


REAL = {  # name: (the settings of a short run, its verdict, what the verdict explains)
    "saturation": (dict(corpus="stdlib", recurrent_scale=4.0, input_scale=4.0, steps=60),
                   "saturation", []),
    "exploding_gradients": (dict(corpus="stdlib", recurrent_scale=3.0, steps=60),
                            "exploding_gradients", []),
    "vanishing_gradients": (dict(corpus="stdlib", recurrent_scale=0.05, steps=60),
                            "vanishing_gradients", []),
    "update_too_large": (dict(corpus="stdlib", lr=0.05, steps=60), "update_too_large", []),
    "update_too_small": (dict(corpus="stdlib", lr=1e-5, steps=60), "update_too_small", []),
    "diverged": (dict(corpus="stdlib", optimizer="sgd", lr=50.0, clip="none", steps=60),
                 "diverged", ["exploding_gradients", "saturation", "vanishing_gradients",
                              "update_too_large"]),  # the gradient blew the weights up first
    "overfitting": (dict(corpus="words.txt", hidden=128, batch=4, eval_frac=0.2, eval_every=10,
                         steps=300), "overfitting", []),
    "plateau": (dict(corpus="letters.txt", steps=400), "plateau", []),
    "healthy-stdlib": (dict(corpus="stdlib", steps=400), "healthy", []),
}


@pytest.fixture(scope="module")
def real(corpora, tmp_path_factory):
    results = {}

    def get(name):
        if name not in results:
            settings = dict(REAL[name][0])
            corpus = settings.pop("corpus")
            corpus = corpus if corpus == "stdlib" else corpora / corpus
            results[name] = run(tmp_path_factory.mktemp(name), corpus, **settings)
        return results[name]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_doctor_tells_the_story_a_real_run_was_built_to_show(real, name):
    result, path = real(name)
    _, verdict, consequences = REAL[name]
    assert result["verdict"] == verdict, format_diagnosis(result)
    assert explained(result).get(verdict, []) == consequences, format_diagnosis(result)
    if verdict == "healthy":
        assert result["findings"] == []


@pytest.mark.slow
def test_a_real_plateau_at_the_corpus_floor_is_success(real, tmp_path):
    # 16 letters drawn uniformly: the entropy rate is exactly ln 16 nats per character
    _, path = real("plateau")
    copy = tmp_path / "floor"
    shutil.copytree(path, copy)
    doc = json.loads((copy / runs.CONFIG).read_text())
    doc["corpus"]["floor_nll"] = math.log(16)
    runs.write_text(copy / runs.CONFIG, json.dumps(doc))
    result = diagnose_run(copy)
    assert violations(result, runs.read_metrics(copy), doc) == []
    assert result["verdict"] == "healthy" and "plateau" in {s["id"] for s in result["set_aside"]}


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory):
    """A run that stops on a NaN, trained through the command line."""
    path = tmp_path_factory.mktemp("nan") / "run"
    code = main(["train", "--hidden", "32", "--batch", "8", "--seq-len", "16", "--log-every",
                 "5", "--optimizer", "momentum", "--lr", "1e35", "--clip", "none", "--steps",
                 "100", "--quiet", "--run-dir", str(path)])
    return code, path


@pytest.mark.slow
def test_doctor_names_a_run_that_stopped_on_a_nan(nan_run, capsys):
    code, path = nan_run
    assert code == 1 and "diverged" in runs.read_metrics(path)[-1]
    capsys.readouterr()
    assert main(["doctor", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "diverged"
    assert set(result["findings"][0]) == {"id", "severity", "evidence", "suspects", "next"}


@pytest.mark.slow
def test_doctor_reads_a_run_still_being_written(nan_run, tmp_path, capsys):
    path = tmp_path / "live"
    shutil.copytree(nan_run[1], path)
    lines = (path / runs.METRICS).read_text().splitlines(keepends=True)
    (path / runs.METRICS).write_text("".join(lines[:-1]) + lines[-1][:40])  # a torn last line
    assert main(["doctor", str(path)]) == 0
    assert "verdict:" in capsys.readouterr().out


@pytest.mark.slow
def test_write_triage_writes_the_diagnosis_to_triage_json(nan_run, tmp_path):
    path = tmp_path / "copy"
    shutil.copytree(nan_run[1], path)
    result = write_triage(path)
    assert json.loads((path / runs.TRIAGE).read_text()) == result


@pytest.mark.slow
def test_watch_for_a_run_has_seen_its_records(nan_run):
    watch = Watch.for_run(nan_run[1])
    assert "diverged" in watch.held and watch.update({"step": 999, "train_nll": 1.0}) == []


# ---- next steps in the user's terms ------------------------------------------------------

@pytest.mark.parametrize(("source", "text"), [
    ("rnnscope", "--clip norm"),
    ("pytorch", "`torch.nn.utils.clip_grad_norm_(model.parameters(), 1)` after `loss.backward()`, "
                "before `opt.step()` (`panel.step`)"),
    ("c", "clip the gradient's norm at 1"),
    ("log", "clip the gradient's norm at 1"),
])
def test_a_next_step_names_the_setting_and_is_worded_for_the_runs_source(source, text):
    cfg = {"optimizer": "sgd", "lr": 0.5, "clip": "none"}
    if source == "rnnscope":
        cfg["clip_value"] = 5.0
    step = next_step({"clip": "norm"}, cfg, source)
    assert step["setting"] == "clip" and step["value"] == "norm" and step["text"] == text
    assert step["settings"] == ({"clip": "norm"} if source == "rnnscope" else
                                {"clip": "norm", "clip_value": 1.0})


def test_a_step_that_changes_two_settings_carries_both():
    step = next_step({"optimizer": "adam", "lr": 0.002}, {"optimizer": "sgd", "lr": 0.5},
                     "pytorch")
    assert step == {"setting": "optimizer", "value": "adam",
                    "settings": {"optimizer": "adam", "lr": 0.002},
                    "text": "`torch.optim.Adam(model.parameters(), lr=0.002)` in place of your "
                            "optimizer"}
    assert next_step({"lr": 0.0123456}, {"optimizer": "sgd"}, "pytorch")["text"] == \
        "`lr=0.012` in the optimizer (`torch.optim.SGD(model.parameters(), lr=0.012)`)"
    assert next_step({"lr": 0.0123456}, {}, "c")["settings"] == {"lr": 0.012}


def test_a_pytorch_runs_config_says_where_it_came_from_and_its_advice_is_pytorchs():
    doc = {"source": "pytorch", "config": {**CONFIG["config"], "lr": 0.05}}
    result = judged([record(i, **BROKEN["saturation"]) for i in range(1, K + 1)], doc)
    steps = texts(result["findings"][0])
    assert any("`lr=" in t for t in steps) and not any(t.startswith("--") for t in steps)


# ---- the cause first; an lr a user can check ---------------------------------------------

def issue_run():
    """Issue 23's PyTorch loop: nn.RNN, SGD at lr 1, no clipping, weight_hh at 6 times
    PyTorch's init (benchmarks/calibration/records)."""
    calibrate = importlib.util.spec_from_file_location("calibrate", CALIBRATION / "calibrate.py")
    module = importlib.util.module_from_spec(calibrate)
    calibrate.loader.exec_module(module)
    doc, records = module.recorded("torch-rnn-sgd-noclip-init6")
    return doc["config"], records


def test_a_gradient_that_exploded_before_the_first_record_is_named_as_the_cause():
    doc, records = issue_run()
    result = judged(records, doc)
    f = result["findings"][0]
    assert result["verdict"] == "exploding_gradients" and len(result["findings"]) == 1
    assert {"update_too_large", "update_too_small", "saturation"} <= {
        c["id"] for c in f["evidence"]["consequences"]}
    assert "before the first record the gradient exploded with no clipping" in \
        f["evidence"]["seen"]
    assert f["next"][0]["settings"] == {"clip": "norm", "clip_value": 1.0}
    assert f["next"][0]["text"].startswith("`torch.nn.utils.clip_grad_norm_(model.parameters()")
    assert any(s["settings"].get("lr", 1) < 1 for s in f["next"] if s["setting"] == "lr")


def test_the_harness_catches_a_consequence_told_as_a_second_problem_and_opposing_remedies():
    doc, records = issue_run()
    result = diagnose(records, doc)
    cause = result["findings"][0]
    # the story issue 23 found: the consequences told as problems of their own
    result["findings"] = [{**c, "evidence": {**c["evidence"], "caveat": "-"}, "suspects": [],
                           "next": []} for c in cause["evidence"].pop("consequences")
                          if c["id"] in ("update_too_large", "update_too_small")]
    result["verdict"] = result["findings"][0]["id"]
    found = violations(result, records, doc)
    assert "update_too_small and update_too_large pull lr opposite ways as two problems" in found
    assert any("weights blown up from the first record told as" in v for v in found)


@pytest.mark.parametrize(("optimizer", "lr", "factor", "ratio", "expected"), [
    ("adam", 0.5, 0.5, None, 0.01),      # 250 times the usual: the largest healthy Adam lr
    ("adam", 0.5, 1, 0.02, 0.01),        # even where the update ratio says 0.1
    ("adam", 2e-3, 1, 0.008, 1e-3),      # halving stays within the healthy range
    ("adam", 1e-5, 1, 1.7e-5, 2.4e-3),   # raised by the ratio, within the range
    ("sgd", 0.01, 1, 1e-4, 0.4),
    ("momentum", 5.0, 0.1, None, 0.1),
])
def test_a_suggested_lr_is_derived_from_the_ratio_and_bounded_by_healthy_runs(
        optimizer, lr, factor, ratio, expected):
    h = History({"optimizer": optimizer, "lr": lr})
    change, why = lr_step(h, factor, ratio)
    assert change["lr"] == pytest.approx(expected, rel=0.05) and f"from {lr:g}" in why
    lo, hi = LR_HEALTHY[optimizer]
    assert lo <= change["lr"] <= hi


def test_without_a_known_lr_the_step_is_relative_to_yours():
    assert lr_step(History({}), 0.1)[0] == {"lr": ("x", 0.1)}
