"""rnnscope compare (rnnscope/compare.py): runs side by side at matched steps, and the finding
capacity_not_limiting across runs."""

import json
import math
from pathlib import Path

import pytest

from rnnscope import runs
from rnnscope.cli import main
from rnnscope.compare import COLUMNS, compare_runs, format_comparison
from rnnscope.config import TrainConfig
from rnnscope.data import Vocab
from rnnscope.display import PlainDisplay
from rnnscope.train import train


def write_run(path, hidden: int, tau: float, plateau: float, log_every: int = 10,
              sat: float = 0.3, grad: float = 0.5):
    """A run directory by hand: NLL falls as plateau + 1.5 exp(-step / tau)."""
    path.mkdir()
    cfg = TrainConfig(hidden=hidden, steps=300, log_every=log_every, eval_every=50)
    runs.write_config(path, cfg, {"name": "hand", "chars": 0, "sha256": ""}, Vocab("abcd"))
    for step in range(log_every, 301, log_every):
        nll = plateau + 1.5 * math.exp(-step / tau)
        rec = {"step": step, "lr": 2e-3, "train_nll": nll - 0.1, "clip_rate": 0.0,
               "grad_norm": grad, "sat_ratio": sat, "mean_gain": 0.6, "update_ratio": 3e-3}
        if step % 50 == 0:
            rec["eval_nll"] = nll
        runs.append_record(path, rec)
    return path


def ids(result) -> list[str]:
    return [f["id"] for f in result["findings"]]


def test_runs_are_shown_side_by_side_at_the_steps_they_all_recorded(tmp_path):
    small = write_run(tmp_path / "small", 64, tau=40, plateau=1.7)
    large = write_run(tmp_path / "large", 128, tau=20, plateau=1.7, log_every=20)
    result = compare_runs([small, large])
    assert [r["name"] for r in result["runs"]] == ["small", "large"]
    assert result["columns"] == list(COLUMNS)
    steps = [row["step"] for row in result["table"]]
    assert steps[0] == 20 and steps[-1] == 300 and all(s % 20 == 0 for s in steps)
    row = result["table"][-1]
    assert [r["eval_nll"] for r in row["runs"]] == pytest.approx([1.7 + 1.5 * math.exp(-300 / t)
                                                                  for t in (40, 20)])
    json.dumps(result)


def test_capacity_not_limiting_when_the_larger_model_is_only_faster(tmp_path):
    small = write_run(tmp_path / "small", 64, tau=40, plateau=1.7, sat=0.30, grad=0.5)
    large = write_run(tmp_path / "large", 128, tau=20, plateau=1.7, sat=0.35, grad=0.6)
    result = compare_runs([small, large])
    assert ids(result) == ["capacity_not_limiting"]
    f = result["findings"][0]
    assert set(f) == {"id", "severity", "evidence", "suspects", "next"}
    assert "--hidden 128" in f["evidence"]["seen"] and f["next"][0]["text"] == "--hidden 64"


@pytest.mark.parametrize("change", [
    dict(plateau=1.5),           # the larger model reaches a lower eval NLL: capacity helps
    dict(tau=40),                # it is not faster early
    dict(tau=400),               # neither has settled: they may still part
])
def test_no_capacity_finding_unless_the_larger_model_is_only_faster(tmp_path, change):
    small = write_run(tmp_path / "small", 64, tau=40, plateau=1.7)
    large = write_run(tmp_path / "large", 128, **{**dict(tau=20, plateau=1.7), **change})
    assert ids(compare_runs([small, large])) == []


@pytest.mark.parametrize("change, reading, suspect", [
    (dict(sat=0.7), "sat_ratio (0.7 vs 0.3)", "saturation is the suspect"),
    (dict(grad=5.0), "grad_norm (5 vs 0.5)", "different scales"),
])
def test_capacity_not_limiting_names_what_differs_between_the_runs_as_the_suspect(
        tmp_path, change, reading, suspect):
    # the seed's 256 vs 512 runs: the larger one ahead early, the same eval NLL at the end,
    # and more saturated
    small = write_run(tmp_path / "small", 64, tau=40, plateau=1.7)
    large = write_run(tmp_path / "large", 128, **{**dict(tau=20, plateau=1.7), **change})
    [f] = compare_runs([small, large])["findings"]
    assert f["id"] == "capacity_not_limiting"
    assert f"differ in {reading}" in f["evidence"]["seen"] and suspect in f["suspects"][0]


def test_compare_prints_a_table_and_json_through_the_cli(tmp_path, capsys):
    small = write_run(tmp_path / "small", 64, tau=40, plateau=1.7)
    large = write_run(tmp_path / "large", 128, tau=20, plateau=1.7)
    assert main(["compare", str(small), str(large)]) == 0
    out = capsys.readouterr().out
    assert "train[1]" in out and "eval[2]" in out and "capacity_not_limiting" in out
    assert main(["compare", str(small), str(large), "--json"]) == 0
    assert ids(json.loads(capsys.readouterr().out)) == ["capacity_not_limiting"]


def test_format_comparison_without_a_common_step(tmp_path):
    a = write_run(tmp_path / "a", 64, tau=40, plateau=1.7, log_every=30)
    b = write_run(tmp_path / "b", 64, tau=40, plateau=1.7, log_every=50)
    a_steps = {r["step"] for r in runs.read_metrics(a)}
    assert a_steps & {r["step"] for r in runs.read_metrics(b)} == {150, 300}
    assert "findings across runs: none" in format_comparison(compare_runs([a, b]))


def test_compare_by_minute_matches_runs_at_the_same_wall_time(tmp_path, capsys):
    """Runs of different speeds (a fast one recording every 10 s, a log from another tool every
    60 s) side by side at each whole minute: the latest record before it, the best eval so
    far, up to the shorter run's end."""
    fast, slow = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    fast.write_text("".join(json.dumps({"step": 100 * i, "train_nll": 3 - 0.01 * i,
                                        "elapsed_s": 10.0 * i, **({"eval_nll": 2.0 + (i % 12 == 6)}
                                                                  if i % 6 == 0 else {})}) + "\n"
                            for i in range(1, 31)))
    slow.write_text("".join(json.dumps({"step": 5 * m, "train_nll": 2.5, "eval_nll": 2.4 - 0.1 * m,
                                        "elapsed_s": 60.0 * m + 1}) + "\n" for m in range(1, 9)))
    result = compare_runs([fast, slow], by="minute")
    assert [row["minute"] for row in result["table"]] == [1, 2, 3, 4, 5]
    first, third = result["table"][0]["runs"], result["table"][2]["runs"]
    assert first[0]["train_nll"] == pytest.approx(2.94) and first[1]["train_nll"] is None
    assert third[0]["eval_nll"] == 3.0 and third[0]["best_eval_nll"] == 2.0
    assert third[1]["best_eval_nll"] == pytest.approx(2.2)
    assert main(["compare", "--by", "minute", str(fast), str(slow)]) == 0
    assert "minute  train[1]" in capsys.readouterr().out


def test_compare_by_minute_needs_elapsed_time(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("step,train_nll\n1,3.0\n2,2.9\n")
    assert main(["compare", "--by", "minute", str(log), str(log)]) == 2
    assert "records no elapsed_s; compare it --by step" in capsys.readouterr().err


RECORDS = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration" / "records"


def recorded_run(path, name: str, last_step: int):
    """A run directory holding a calibration record's config and its records up to last_step."""
    path.mkdir()
    doc = json.loads((RECORDS / f"{name}.json").read_text())["config"]
    runs.write_text(path / runs.CONFIG, json.dumps(doc))
    lines = (RECORDS / f"{name}.jsonl").read_text().splitlines()
    runs.write_text(path / runs.METRICS, "".join(
        line + "\n" for line in lines if json.loads(line)["step"] <= last_step))
    return path


def test_the_seeds_256_and_512_unit_runs_are_capacity_not_limiting_with_saturation_suspected(
        tmp_path):
    # tinyshakespeare, --eval-frac 0.1, 10,100 steps each: the 512-unit run ahead early, both
    # at the same eval NLL at the end, the 512-unit run more saturated
    small = recorded_run(tmp_path / "h256", "h256-shakespeare-10k", 10_100)
    large = recorded_run(tmp_path / "h512", "h512-shakespeare-long", 10_100)
    [f] = compare_runs([small, large])["findings"]
    assert f["id"] == "capacity_not_limiting"
    assert "differ in sat_ratio" in f["evidence"]["seen"]
    assert "saturation is the suspect" in f["suspects"][0]


@pytest.mark.slow
def test_compare_real_runs_of_two_sizes(small_corpus, tmp_path):
    paths = []
    for hidden in (16, 48):
        cfg = TrainConfig(corpus=str(small_corpus), hidden=hidden, batch=4, seq_len=16,
                          steps=150, log_every=10, eval_every=30)
        paths.append(train(cfg, tmp_path / f"h{hidden}",
                           display=PlainDisplay(out=open("/dev/null", "w"))))  # noqa: SIM115
    result = compare_runs(paths)
    assert [r["hidden"] for r in result["runs"]] == [16, 48]
    assert [row["step"] for row in result["table"]][-1] == 150
    assert all(len(row["runs"]) == 2 for row in result["table"])
