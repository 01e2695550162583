"""The vanishing-gradient limit (docs/floors.md): the table in the docs is the one the kept
records of real runs give, and a cell that learns a short delay reaches the floor and the run
records it."""

import io
import json
import math
from pathlib import Path

import pytest

from rnnscope import TrainConfig, runs, synthetic
from rnnscope.display import PlainDisplay
from rnnscope.train import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def limit(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks" / "limit"))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import limit

    return limit


def test_docs_limit_table_is_the_one_the_kept_records_give(limit):
    table = limit.markdown(["rnn", "gru", "lstm"]).splitlines()
    assert len(table) >= 2 + len(limit.KS)  # header, rule, and at least the rnn sweep
    docs = (ROOT / "docs" / "floors.md").read_text().splitlines()
    assert [line for line in table if line in docs] == table


def test_limit_verdict_is_the_gap_to_the_floor_of_each_kept_run(limit):
    for K in limit.KS:
        s = limit.summary("rnn", K)
        doc = json.loads((limit.RECORDS / f"rnn-delay{K}.json").read_text())
        assert s["floor_nll"] == synthetic.floor_nll(synthetic.Source("delay", K, 0))
        assert doc["config"]["corpus"]["floor_nll"] == s["floor_nll"]
        assert s["reaches_floor"] == (s["best_eval_nll"] - s["floor_nll"] <= limit.TOLERANCE)
    assert limit.summary("rnn", 1)["reaches_floor"]
    assert not limit.summary("rnn", 64)["reaches_floor"]


def test_docs_recall_table_is_the_one_the_kept_records_give(limit):
    table = limit.recall_markdown(["rnn", "gru", "lstm"]).splitlines()
    assert len(table) >= 2 + 3 * 2  # header, rule, and K = 4 and 16 of every cell at least
    docs = (ROOT / "docs" / "floors.md").read_text().splitlines()
    assert [line for line in table if line in docs] == table


def test_recall_verdict_is_the_share_of_the_item_s_worth_learned(limit):
    """On recall{K} a run reaches the floor when its best eval NLL is within a tenth of ln 8 /
    (K+1) of the reachable NLL (the Bayes predictor on its own eval streams, a little above the
    floor); every cell holds an item 4 steps, and the tanh RNN does not hold one 64."""
    for cell in ("rnn", "gru", "lstm"):
        s = limit.summary(cell, 4, source="recall", steps=limit.RECALL_STEPS)
        assert s["floor_nll"] == synthetic.floor_nll(synthetic.Source("recall", 4, 0))
        assert s["floor_nll"] < s["reachable"] < s["floor_nll"] + 0.001
        assert s["worth"] == pytest.approx(math.log(8) / 5)
        assert s["share"] == pytest.approx(1 - (s["best_eval_nll"] - s["reachable"]) / s["worth"])
        assert s["reaches_floor"] == (s["share"] >= limit.RECALLED) and s["reaches_floor"]
    assert not limit.summary("rnn", 64, source="recall", steps=limit.RECALL_STEPS)["reaches_floor"]


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cell_reaches_the_floor_of_a_short_delay_and_the_run_says_so(cell, tmp_path):
    """A few hundred steps on synthetic:delay2 end within 0.1 nats of the floor; config.json,
    best.npz and the closing line all carry it."""
    out = io.StringIO()
    cfg = TrainConfig(corpus="synthetic:delay2", cell=cell, hidden=32, batch=16, seq_len=16,
                      steps=400, lr=1e-2, eval_frac=0.02, eval_every=100, log_every=50,
                      report=False)
    path = train(cfg, tmp_path / "run", display=PlainDisplay(out=out))
    floor = json.loads((path / "config.json").read_text())["corpus"]["floor_nll"]
    assert floor == synthetic.delay_entropy_rate(0.5, 16)
    best = min(r["eval_nll"] for r in runs.read_metrics(path) if "eval_nll" in r)
    assert best - floor <= 0.1
    assert runs.load_run(path, runs.BEST).meta["best_eval"] == best
    assert f"{best - floor:.4f} above the floor {floor:.4f}" in out.getvalue()
    assert best < math.log(16) - 0.5  # far below what ignoring the past gives
