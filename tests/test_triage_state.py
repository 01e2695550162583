"""The classic recipe's trap (issue 29): an eval worse than a guess is never healthy; a model
that scores well only from its training stream's state is state_dependence; memorisation is
claimed only after the model has read its training text about once."""

import math

from test_triage import CONFIG, TRAIN_CHARS, VOCAB, judged, overfitting_records, record

from rnnscope.triage.history import THRESHOLDS

UNIFORM = math.log(VOCAB)
K = THRESHOLDS["persist_state"]
assert THRESHOLDS["persist_guess"] == 1


def trap(n_evals: int, bad_from: int, **readings) -> list[dict]:
    """Train NLL fine (2.4 and falling) throughout; eval NLL 2.5 until eval `bad_from`, then
    above the uniform guess; readings: state reading -> its value given whether eval is bad."""
    records = []
    for i in range(1, 5 * n_evals + 1):
        r = record(i, train_nll=2.4 - 0.01 * i)
        if i % 5 == 0:
            j = i // 5
            bad = j >= bad_from
            r["eval_nll"] = UNIFORM + 0.9 if bad else 2.5
            r.update({k: f(bad) for k, f in readings.items()})
        records.append(r)
    return records


def state_gap(gap: float):
    return {"eval_nll_fresh": lambda bad: 2.6 + gap * bad, "eval_nll_carried": lambda bad: 2.6}


def test_eval_worse_than_a_uniform_guess_while_train_is_fine_is_never_healthy():
    result = judged(trap(6, 6 - K + 1))
    assert result["verdict"] == "state_dependence"
    f = result["findings"][0]
    assert f["severity"] == "critical"
    assert "worse than a uniform guess" in f["evidence"]["seen"]
    assert "eval_nll_fresh and eval_nll_carried" in f["evidence"]["seen"]  # would confirm it
    assert f["next"][0]["text"] == f"--reset-every {THRESHOLDS['reset_every']}"


def test_one_eval_worse_than_a_guess_is_enough_and_stays_a_finding():
    assert judged(trap(6, 6))["verdict"] == "state_dependence"
    recovered = [{**r, "eval_nll": 2.5} if r["step"] == 300 else r for r in trap(6, 5)]
    assert judged(recovered)["verdict"] == "state_dependence"  # at step 250: held


def test_a_state_gap_alone_needs_two_evals():
    assert judged(trap(6, 99, eval_nll_fresh=lambda bad: 2.6,
                       eval_nll_carried=lambda bad: 2.6))["verdict"] == "healthy"
    one = trap(6, 99, **state_gap(2.0))
    one = [{**r, "eval_nll_fresh": 4.6 if r["step"] == 300 else 2.6} if "eval_nll" in r else r
           for r in one]
    assert judged(one)["verdict"] == "healthy"


def test_the_readings_name_state_dependence_even_before_eval_is_worse_than_a_guess():
    records = [{**r, "eval_nll": 2.5} if "eval_nll" in r else r
               for r in trap(6, 6 - K + 1, **state_gap(2.0))]
    f = judged(records)["findings"][0]
    assert (f["id"], f["severity"]) == ("state_dependence", "warning")
    assert "4.600 from a fresh (zero) state but 2.600 from the state" in f["evidence"]["seen"]


def test_a_fresh_state_a_few_characters_worse_is_healthy():
    assert judged(trap(6, 99, **state_gap(0.2)))["verdict"] == "healthy"


def test_held_out_text_scored_as_badly_from_any_state_is_critical_but_not_memorisation():
    records = trap(6, 6 - K + 1, eval_nll_fresh=lambda bad: UNIFORM + 0.9 * bad + 2.5 *
                   (not bad), eval_nll_carried=lambda bad: UNIFORM + 0.8 * bad + 2.5 * (not bad))
    f = judged(records)["findings"][0]
    assert (f["id"], f["severity"]) == ("overfitting", "critical")
    assert "memorises" not in " ".join(f["suspects"])
    assert "held-out text differs from the training text" in f["suspects"][0]


def test_memorisation_is_claimed_only_after_about_one_pass_over_the_training_text():
    records = overfitting_records(8)
    assert [f["id"] for f in judged(records)["findings"]] == ["overfitting"]
    seen = judged(records)["findings"][0]["evidence"]["seen"]
    assert "passes over the training text" in seen
    unread = {**CONFIG, "corpus": {"train_chars": 100 * TRAIN_CHARS}}
    assert judged(records, unread)["findings"] == []


def test_memorisation_without_the_training_split_size_is_not_measured():
    result = judged(overfitting_records(8), {k: v for k, v in CONFIG.items() if k != "corpus"})
    assert result["findings"] == []
    assert {"id": "overfitting", "missing": ["train_chars"]} in result["not_measured"]
