"""The training loop: it learns, logs, checkpoints, resumes exactly and stops on NaN."""

import io
import json

import numpy as np
import pytest

from rnnscope import TrainConfig, load_run, runs, synthetic
from rnnscope.data import build_vocab, chunks_per_epoch, make_streams
from rnnscope.display import PlainDisplay
from rnnscope.errors import RnnscopeError
from rnnscope.train import DEFAULT_STEPS, Diverged, resume, train


def quiet():
    return PlainDisplay(out=open("/dev/null", "w"))  # noqa: SIM115


def small_config(corpus, **kw) -> TrainConfig:
    base = dict(corpus=str(corpus), hidden=16, batch=4, seq_len=16, steps=40, log_every=10,
                eval_every=20, lr=1e-2, report=False)
    return TrainConfig(**{**base, **kw})


def records_without_time(path):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in runs.read_metrics(path)]


def test_training_lowers_the_loss_and_logs_every_record(small_corpus, tmp_path):
    path = train(small_config(small_corpus, steps=120), tmp_path / "run", display=quiet())
    recs = runs.read_metrics(path)
    assert [r["step"] for r in recs] == list(range(10, 121, 10))
    for r in recs:
        assert {"step", "chars", "elapsed_s", "lr", "train_nll", "clip_rate", "grad_norm",
                "steps", "sat_ratio", "update_ratio"} <= set(r)
        assert r["chars"] == r["step"] * 16 * 4
    assert [r["steps"] for r in recs[:2]] == [[1, 10], [11, 20]]
    evals = [r["eval_nll"] for r in recs if "eval_nll" in r]
    assert len(evals) == 6
    for r in recs[1::2]:  # each eval also scores a window from a fresh and the carried state
        assert {"eval_nll_fresh", "eval_nll_carried", "train_nll_fresh"} <= set(r)
    vocab_size = len(set(small_corpus.read_text()))
    assert recs[-1]["train_nll"] < 0.7 * np.log(vocab_size)
    assert evals[-1] < evals[0]


def test_run_directory_has_config_checkpoint_and_best(small_corpus, tmp_path):
    path = train(small_config(small_corpus), tmp_path / "run", display=quiet())
    doc = json.loads((path / "config.json").read_text())
    assert doc["config"]["hidden"] == 16 and doc["rnnscope_version"]
    assert doc["corpus"]["chars"] == 20_000 and len(doc["corpus"]["sha256"]) == 64
    assert doc["vocab"] == build_vocab(small_corpus.read_text()).chars
    params, opt, state, meta = runs.load_checkpoint(path / "checkpoint.npz")
    assert meta["step"] == 40 and set(state) == {"h"} and state["h"].shape == (1, 4, 16)
    assert set(opt) >= {"m.Why", "v.Why", "t"}
    best = load_run(path, runs.BEST)
    assert best.meta["best_eval"] == min(r["eval_nll"] for r in runs.read_metrics(path)
                                         if "eval_nll" in r)


def test_checkpoints_load_without_pickle(small_corpus, tmp_path):
    path = train(small_config(small_corpus, steps=20), tmp_path / "run", display=quiet())
    with np.load(path / "checkpoint.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


@pytest.mark.parametrize("first, cell", [(20, "rnn"), (25, "rnn"), (25, "gru"), (20, "lstm")])
def test_resume_reproduces_uninterrupted_run(small_corpus, tmp_path, first, cell):
    """20 steps then resumed to 40 logs the same numbers as 40 steps, also when the first part
    ends off the log cadence, with dropout (RNG state), a plateau schedule, epoch wraps and
    --reset-every, and with each cell's carried state (the LSTM's h and c)."""
    kw = dict(dropout=0.1, lr_schedule="plateau", batch=64, cell=cell, reset_every=7)
    whole = train(small_config(small_corpus, **kw), tmp_path / "whole", display=quiet())
    part = train(small_config(small_corpus, steps=first, **kw), tmp_path / "part",
                 display=quiet())
    resume(part, {"steps": 40}, display=quiet())
    streams = make_streams(np.zeros(19_000), 64)
    assert chunks_per_epoch(streams, 16) < 40  # the runs cross an epoch boundary
    assert records_without_time(part) == records_without_time(whole)
    a, b = load_run(whole), load_run(part)
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])


def test_resume_refuses_a_run_that_already_has_the_steps(small_corpus, tmp_path):
    path = train(small_config(small_corpus, steps=25), tmp_path / "run", display=quiet())
    before = (path / "metrics.jsonl").read_bytes()
    with pytest.raises(RnnscopeError, match="already has 25 steps"):
        resume(path, display=quiet())
    assert (path / "metrics.jsonl").read_bytes() == before  # its final record is kept


def test_resume_refuses_a_corpus_with_another_vocabulary(small_corpus, tmp_path):
    path = train(small_config(small_corpus, steps=20), tmp_path / "run", display=quiet())
    other = tmp_path / "other.txt"
    other.write_text(small_corpus.read_text().upper())
    with pytest.raises(RnnscopeError, match="different vocabulary"):
        resume(path, {"corpus": str(other), "steps": 40}, display=quiet())


def test_existing_run_directory_is_never_overwritten(small_corpus, tmp_path):
    path = train(small_config(small_corpus, steps=10), tmp_path / "run", display=quiet())
    before = (path / "metrics.jsonl").read_bytes()
    with pytest.raises(RnnscopeError, match="already exists"):
        train(small_config(small_corpus, steps=10), path, display=quiet())
    assert (path / "metrics.jsonl").read_bytes() == before


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(small_corpus, tmp_path):
    cfg = small_config(small_corpus, lr=1e38, optimizer="sgd", clip="none", eval_every=1,
                       log_every=1, steps=50)
    with pytest.raises(Diverged, match="diverged at step"):
        train(cfg, tmp_path / "run", display=quiet())
    last = runs.read_metrics(tmp_path / "run")[-1]
    assert last["train_nll"] is None and "diverged" in last
    run = load_run(tmp_path / "run")
    assert 0 < run.meta["step"] == last["step"] - 1
    assert all(np.isfinite(v).all() for v in run.model.params.values())


def test_minutes_limits_the_run_by_wall_time(small_corpus, tmp_path):
    cfg = small_config(small_corpus, steps=None, minutes=0.02)
    path = train(cfg, tmp_path / "run", display=quiet())
    meta = load_run(path).meta
    assert 0 < meta["step"] < DEFAULT_STEPS and 1.0 <= meta["elapsed_s"] < 5


def test_training_ends_with_triage_and_report(small_corpus, tmp_path):
    path = train(small_config(small_corpus, steps=20, report=True), tmp_path / "run",
                 display=quiet())
    assert json.loads((path / "triage.json").read_text())["verdict"]
    assert (path / "report.html").stat().st_size > 10_000
    assert (path / "report.html").stat().st_mode & 0o044  # readable like any other file


def test_parameters_that_overflow_stop_training_before_a_record(small_corpus, tmp_path):
    cfg = small_config(small_corpus, lr=1e40, optimizer="sgd", clip="none", log_every=1)
    with pytest.raises(Diverged):
        train(cfg, tmp_path / "run", display=quiet())
    assert "diverged" in runs.read_metrics(tmp_path / "run")[-1]
    assert (tmp_path / "run" / "triage.json").exists()


def test_no_panel_records_only_the_loss_and_gradient_norm(small_corpus, tmp_path):
    path = train(small_config(small_corpus, panel=False, steps=20), tmp_path / "run",
                 display=quiet())
    rec = runs.read_metrics(path)[0]
    assert "train_nll" in rec and "grad_norm" in rec and "sat_ratio" not in rec
    evaluated = runs.read_metrics(path)[1]
    assert "eval_nll" in evaluated and "eval_nll_fresh" not in evaluated


def test_reset_every_changes_training_and_is_checked(small_corpus, tmp_path):
    plain = train(small_config(small_corpus, steps=20), tmp_path / "plain", display=quiet())
    reset = train(small_config(small_corpus, steps=20, reset_every=2), tmp_path / "reset",
                  display=quiet())
    assert runs.read_metrics(plain)[0]["train_nll"] != runs.read_metrics(reset)[0]["train_nll"]
    with pytest.raises(RnnscopeError, match="--reset-every must be positive"):
        small_config(small_corpus, reset_every=0).validate()


def test_synthetic_run_records_its_floor_says_it_at_the_end_and_resumes_exactly(tmp_path):
    """The text is regenerated from its name on resume and checked against the recorded
    SHA-256; the closing summary puts the best eval NLL against the floor."""
    corpus = "synthetic:delay3:seed1"
    kw = dict(eval_frac=0.01, dropout=0.1)
    out = io.StringIO()
    whole = train(small_config(corpus, **kw), tmp_path / "whole", display=PlainDisplay(out=out))
    floor = synthetic.floor_nll(synthetic.Source("delay", 3, 1))
    doc = json.loads((whole / "config.json").read_text())
    assert doc["corpus"]["floor_nll"] == floor
    assert doc["corpus"]["source"]["kind"] == "delay" and doc["corpus"]["source"]["K"] == 3
    best = min(r["eval_nll"] for r in runs.read_metrics(whole) if "eval_nll" in r)
    assert f"best eval NLL {best:.4f} nats/char, {best - floor:.4f} above the floor " \
           f"{floor:.4f}" in out.getvalue()
    part = train(small_config(corpus, steps=25, **kw), tmp_path / "part", display=quiet())
    resume(part, {"steps": 40}, display=quiet())
    assert records_without_time(part) == records_without_time(whole)


def test_resume_refuses_a_synthetic_text_that_differs_from_the_recorded_one(tmp_path):
    corpus = "synthetic:markov1"
    path = train(small_config(corpus, steps=10, eval_frac=0.01), tmp_path / "run",
                 display=quiet())
    doc = json.loads((path / "config.json").read_text())
    doc["corpus"]["sha256"] = "0" * 64  # as if the generator had changed since
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(RnnscopeError, match="SHA-256 differs"):
        resume(path, {"steps": 20}, display=quiet())
