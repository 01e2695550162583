"""The triage (rnnscope/triage.py): each rule on hand-made records, then each finding on a short
real run built to show it, doctor on runs that stopped on a NaN or are still being written."""

import json
import shutil

import numpy as np
import pytest

from rnnscope import runs
from rnnscope.cli import main
from rnnscope.config import TrainConfig
from rnnscope.display import PlainDisplay
from rnnscope.train import train
from rnnscope.triage import (
    PRIORITY,
    THRESHOLDS,
    Watch,
    diagnose,
    diagnose_run,
    format_diagnosis,
    write_triage,
)

K = THRESHOLDS["persist"]
VOCAB = 30
CONFIG = {"config": TrainConfig().to_dict(), "vocab": [chr(97 + i) for i in range(VOCAB)]}
PROFILE = [[1, 0.8], [2, 0.6], [4, 0.4], [8, 0.2], [16, 0.05], [32, 0.01], [64, 0.001]]


def record(i: int, **readings) -> dict:
    """The i-th record (step 10 i) of a healthy, learning run, with `readings` replaced."""
    rec = {"step": 10 * i, "lr": 2e-3, "train_nll": 3.0 - 0.01 * i, "clip_rate": 0.0,
           "grad_norm": 0.5, "mean_abs_h": 0.4, "sat_ratio": 0.05, "mean_gain": 0.7,
           "dh_norm": 2.0, "dh_raw_norm": 1.5, "whh_sigma_max": 2.0, "bptt_profile": PROFILE,
           "update_ratio": 4e-3}
    if i % 5 == 0:
        rec["eval_nll"] = 3.1 - 0.01 * i
    return {**rec, **readings}


def found(records) -> list[str]:
    return [f["id"] for f in diagnose(records, CONFIG)["findings"]]


BROKEN = {  # a finding id: the readings of a record that shows it
    "diverged": {"train_nll": np.log(VOCAB) + 2},
    "exploding_gradients": {"clip_rate": 0.9, "grad_norm": 40.0},
    "saturation": {"sat_ratio": 0.7, "mean_gain": 0.15},
    "vanishing_gradients": {"bptt_profile": [[1, 0.3], [2, 0.05], [4, 0.005], [8, 1e-4]]},
    "update_too_large": {"update_ratio": 0.05},
    "update_too_small": {"update_ratio": 1e-5, "train_nll": 4.0},
}


# ---- rules on hand-made records ------------------------------------------------------------

def test_a_learning_run_with_readings_in_range_is_healthy():
    assert diagnose([record(i) for i in range(1, 60)], CONFIG) == {"verdict": "healthy",
                                                                   "findings": []}


@pytest.mark.parametrize("finding_id", BROKEN)
def test_rule_fires_once_its_condition_holds_on_persist_records(finding_id):
    records = [record(i, **BROKEN[finding_id]) for i in range(1, K + 1)]
    assert finding_id in found(records)
    assert finding_id not in found(records[:-1])


@pytest.mark.parametrize("finding_id", BROKEN)
def test_one_noisy_record_does_not_fire(finding_id):
    records = [record(i) for i in range(1, 30)]
    records[12] = record(12, **BROKEN[finding_id])
    assert found(records) == []


@pytest.mark.parametrize("finding_id", BROKEN)
def test_findings_cite_their_steps_and_readings_and_suggest_flags(finding_id):
    f = next(f for f in diagnose([record(i, **BROKEN[finding_id]) for i in range(1, K + 1)],
                                 CONFIG)["findings"] if f["id"] == finding_id)
    assert set(f) == {"id", "severity", "evidence", "suspects", "next"}
    assert f["severity"] in ("info", "warning", "critical")
    assert f["evidence"]["steps"][-1] == 10 * K and str(10 * K) in f["evidence"]["seen"]
    assert f["evidence"]["readings"] and f["evidence"]["caveat"] and f["suspects"]
    assert all(step.startswith("--") for step in f["next"])


def test_a_nan_is_believed_at_once():
    records = [record(1), record(2), {"step": 21, "lr": 2e-3, "train_nll": None,
                                      "grad_norm": None, "diverged": "loss is not finite"}]
    result = diagnose(records, CONFIG)
    assert result["verdict"] == "diverged"
    assert "step 21" in result["findings"][0]["evidence"]["seen"]


def test_a_per_parameter_ratio_of_a_zero_weight_is_not_a_nan():
    records = [record(i, **{"update_ratio.0.bh": None}) for i in range(1, 10)]
    assert found(records) == []


def test_a_null_inside_the_profile_does_not_break_the_rules():
    records = [record(i, bptt_profile=[[1, None], [2, None], [4, None]]) for i in range(1, 10)]
    assert found(records) == []


def test_next_steps_are_computed_from_the_run_config():
    cfg = {**CONFIG, "config": {**CONFIG["config"], "lr": 0.05, "recurrent_scale": 4.0,
                                "input_scale": 4.0}}
    result = diagnose([record(i, **BROKEN["saturation"]) for i in range(1, K + 1)], cfg)
    assert result["findings"][0]["next"][:2] == ["--recurrent-scale 1 --input-scale 1",
                                                 "--lr 0.013"]


def test_saturation_of_one_layer_is_found_and_named():
    cfg = {**CONFIG, "config": {**CONFIG["config"], "layers": 2}}
    layers = {"layer0.sat_ratio": 0.1, "layer0.mean_gain": 0.7, "layer1.sat_ratio": 0.7,
              "layer1.mean_gain": 0.15, "sat_ratio": 0.4, "mean_gain": 0.43,
              "layer0.bptt_profile": PROFILE, "layer1.bptt_profile": PROFILE}
    result = diagnose([record(i, **layers) for i in range(1, K + 1)], cfg)
    assert result["verdict"] == "saturation"
    assert "layer1.sat_ratio 0.7 and layer1.mean_gain 0.15" in \
        result["findings"][0]["evidence"]["seen"]


def test_saturation_drift_of_a_run_that_still_learns_is_not_flagged():
    # the calibration notes: sat_ratio 0.24 -> 0.65 and the gain falling while NLL improves
    records = [record(i, sat_ratio=0.24 + 0.006 * i, mean_gain=0.45 - 0.004 * i)
               for i in range(1, 70)]
    assert found(records) == []


def test_saturation_after_the_start_fires_when_the_loss_rises():
    records = [record(i) for i in range(1, 20)]
    records += [record(i, sat_ratio=0.8, mean_gain=0.1, train_nll=2.8 + 0.02 * (i - 20),
                       eval_nll=3.0) for i in range(20, 45)]
    f = next(f for f in diagnose(records, CONFIG)["findings"] if f["id"] == "saturation")
    assert f["severity"] == "warning" and "worse" in f["evidence"]["seen"]


def flat(n: int, eval_every: int = 5) -> list[dict]:
    """n records of a run whose loss no longer moves."""
    return [record(i, train_nll=2.0 + 0.01 * (i % 2), **({"eval_nll": 2.1} if i % eval_every == 0
                                                         else {})) for i in range(1, n + 1)]


def test_plateau_needs_a_run_long_enough_to_tell():
    assert found(flat(THRESHOLDS["min_records"] - 1)) == []
    assert found(flat(THRESHOLDS["min_records"] + 5)) == ["plateau"]


def test_plateau_is_not_reported_beside_another_finding():
    records = flat(40)
    records[-K:] = [{**r, **BROKEN["update_too_large"]} for r in records[-K:]]
    assert found(records) == ["update_too_large"]


def overfitting_records(n_evals: int) -> list[dict]:
    """Train NLL keeps falling; eval NLL is best at the 4th eval and rises after it."""
    records = []
    for i in range(1, 5 * n_evals + 1):
        r = record(i, train_nll=3.0 - 0.02 * i)
        if i % 5 == 0:
            j = i // 5
            r["eval_nll"] = 3.1 - 0.1 * j if j <= 4 else 2.7 + 0.05 * (j - 4)
        records.append(r)
    return records


def test_overfitting_needs_persist_evals_rising_evals_with_a_growing_gap():
    k = THRESHOLDS["persist_evals"]
    assert found(overfitting_records(4 + k - 1)) == []
    assert found(overfitting_records(4 + k)) == ["overfitting"]


def test_verdict_is_the_most_severe_finding_then_the_fixed_priority():
    records = [record(i, **BROKEN["update_too_large"], **BROKEN["vanishing_gradients"])
               for i in range(1, K + 1)]
    result = diagnose(records, CONFIG)
    assert [f["id"] for f in result["findings"]] == ["vanishing_gradients", "update_too_large"]
    assert result["verdict"] == "vanishing_gradients"
    records = [record(i, **BROKEN["saturation"], **BROKEN["exploding_gradients"])
               for i in range(1, K + 1)]
    result = diagnose(records, CONFIG)  # saturation from the start is critical, clipped: warning
    assert [f["id"] for f in result["findings"]] == ["saturation", "exploding_gradients"]
    assert PRIORITY.index("exploding_gradients") < PRIORITY.index("saturation")


def test_watch_reports_each_finding_once_when_it_first_holds():
    watch = Watch(TrainConfig(), VOCAB)
    reported = [(r["step"], [f["id"] for f in watch.update(r)])
                for r in (record(i, **BROKEN["update_too_large"]) for i in range(1, 12))]
    assert [(s, ids) for s, ids in reported if ids] == [(10 * K, ["update_too_large"])]


def test_watch_reports_the_most_severe_of_simultaneous_findings_first():
    watch = Watch(TrainConfig(), VOCAB)
    reports = [watch.update(record(i, **BROKEN["saturation"], **BROKEN["exploding_gradients"]))
               for i in range(1, K + 1)]
    assert [f["id"] for f in reports[-1]] == ["saturation", "exploding_gradients"]


def test_format_diagnosis_says_what_was_seen_what_to_try_and_when_to_doubt_it():
    text = format_diagnosis(diagnose([record(i, **BROKEN["saturation"])
                                      for i in range(1, K + 1)], CONFIG))
    for words in ("verdict: saturation", "seen:", "usually means:", "try first: --",
                  "false positive"):
        assert words in text
    assert "healthy" in format_diagnosis({"verdict": "healthy", "findings": []})


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


def run(where, corpus, **settings) -> dict:
    """Train a short run (the real loop) and return its diagnosis."""
    base = dict(corpus=str(corpus), hidden=32, batch=8, seq_len=32, steps=100, log_every=10,
                eval_every=50)
    cfg = TrainConfig(**{**base, **settings})
    path = train(cfg, where, display=PlainDisplay(out=open("/dev/null", "w")))  # noqa: SIM115
    return diagnose_run(path)


REAL = {  # finding id: the settings of a short run built to show it
    "saturation": dict(corpus="stdlib", recurrent_scale=4.0, input_scale=4.0, steps=60),
    "exploding_gradients": dict(corpus="stdlib", recurrent_scale=3.0, steps=60),
    "vanishing_gradients": dict(corpus="stdlib", recurrent_scale=0.05, steps=60),
    "update_too_large": dict(corpus="stdlib", lr=0.05, steps=60),
    "update_too_small": dict(corpus="stdlib", lr=1e-5, steps=60),
    "diverged": dict(corpus="stdlib", optimizer="sgd", lr=50.0, clip="none", steps=60),
    "overfitting": dict(corpus="words.txt", hidden=128, batch=4, eval_frac=0.2, eval_every=10,
                        steps=300),
    "plateau": dict(corpus="letters.txt", steps=400),
}
HEALTHY = {"healthy-stdlib": dict(corpus="stdlib", steps=400)}


@pytest.fixture(scope="module")
def real(corpora, tmp_path_factory):
    results = {}

    def get(finding_id):
        if finding_id not in results:
            settings = dict({**REAL, **HEALTHY}[finding_id])
            corpus = settings.pop("corpus")
            corpus = corpus if corpus == "stdlib" else corpora / corpus
            results[finding_id] = run(tmp_path_factory.mktemp(finding_id), corpus, **settings)
        return results[finding_id]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("finding_id", REAL)
def test_doctor_names_the_finding_a_real_run_was_built_to_show(real, finding_id):
    assert finding_id in [f["id"] for f in real(finding_id)["findings"]]


@pytest.mark.slow
@pytest.mark.parametrize("name", HEALTHY)
def test_a_healthy_real_run_gets_the_verdict_healthy(real, name):
    result = real(name)
    assert result == {"verdict": "healthy", "findings": []}, format_diagnosis(result)


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
    assert set(result) == {"verdict", "findings"}
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
    assert "diverged" in watch.fired and watch.update({"step": 999, "train_nll": 1.0}) == []
