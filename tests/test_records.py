"""Records from anywhere (rnnscope/records.py, docs/format.md): doctor, report and compare read a
run directory, a metrics.jsonl or a .csv; only step and train_nll are required."""

import csv
import io
import json
import math
import shutil

import pytest

from rnnscope import runs
from rnnscope.cli import main
from rnnscope.compare import compare_runs, format_comparison
from rnnscope.config import TrainConfig
from rnnscope.display import PlainDisplay
from rnnscope.errors import RnnscopeError, RnnscopeWarning
from rnnscope.records import read_run
from rnnscope.report import write_report
from rnnscope.train import train
from rnnscope.triage import diagnose_run


@pytest.fixture(scope="module")
def real_run(small_corpus, tmp_path_factory):
    """A real short 2-layer run made to saturate from the start, with every panel reading."""
    cfg = TrainConfig(corpus=str(small_corpus), hidden=16, layers=2, batch=4, seq_len=16,
                      steps=80, log_every=5, eval_every=20, recurrent_scale=4.0,
                      input_scale=4.0, report=False)
    return train(cfg, tmp_path_factory.mktemp("real") / "run", display=PlainDisplay(io.StringIO()))


def write_csv(file, records):
    """A CSV log the way a user writes one: a header of every key, lists as JSON text."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    with open(file, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in records:
            w.writerow([json.dumps(r[k]) if isinstance(r.get(k), list) else
                        "nan" if r.get(k, "") is None else r.get(k, "") for k in keys])
    return file


def ids(result) -> list[str]:
    return [f["id"] for f in result["findings"]]


def loss_curve(n=40, start=4.2):
    return [{"step": 10 * i, "train_nll": start * math.exp(-i / 15) + 1.5} for i in range(1, n)]


# ---- the same records in every form


def test_a_full_log_as_jsonl_or_csv_reads_as_its_run_directory(real_run, tmp_path):
    _, records = read_run(real_run)
    jsonl = shutil.copy(real_run / runs.METRICS, tmp_path / "log.jsonl")
    table = write_csv(tmp_path / "log.csv", records)
    for log in (jsonl, table):
        doc, got = read_run(log)
        assert got == records
        assert doc["config"] == {"layers": 2, "lr": 2e-3}


def test_a_log_without_its_config_gets_the_findings_of_its_run_directory(real_run, tmp_path):
    expected = diagnose_run(real_run)
    assert "saturation" in ids(expected)
    _, records = read_run(real_run)
    for log in (shutil.copy(real_run / runs.METRICS, tmp_path / "log.jsonl"),
                write_csv(tmp_path / "log.csv", records)):
        got = diagnose_run(log)
        assert ids(got) == ids(expected)
        assert [f["evidence"]["steps"] for f in got["findings"]] == \
            [f["evidence"]["steps"] for f in expected["findings"]]


def test_next_steps_for_a_log_without_settings_are_relative_to_the_users_own(tmp_path):
    recs = [{"step": 10 * i, "train_nll": 3.0, "sat_ratio": 0.9, "mean_gain": 0.1,
             "update_ratio": 0.05} for i in range(1, 12)]
    log = write_csv(tmp_path / "sat.csv", recs)
    result = diagnose_run(log)
    assert ids(result)[0] == "update_too_large"  # explaining the saturation (docs/triage.md)
    step = result["findings"][0]["next"][0]
    assert step["settings"] == {"lr": None} and step["factor"] == 0.08
    assert step["text"] == "learning rate (yours x 0.08)"  # a log's next steps are in words


def test_metrics_jsonl_beside_its_config_reads_as_the_directory(real_run):
    assert read_run(real_run / runs.METRICS) == read_run(real_run)
    assert read_run(real_run)[0]["config"]["hidden"] == 16


# ---- sparse logs


def test_a_minimal_csv_of_step_and_train_nll_goes_through_doctor_report_and_compare(
        tmp_path, capsys):
    log = write_csv(tmp_path / "mine.csv", loss_curve())
    assert main(["doctor", str(log), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] in ("healthy", "plateau")
    assert main(["report", str(log)]) == 0
    html = (tmp_path / "mine.csv.report.html").read_text()
    assert "no readings recorded" in html and "rnnscope holds no model to sample from" in html
    other = write_csv(tmp_path / "other.csv", loss_curve(start=3.0))
    assert main(["compare", str(log), str(other)]) == 0
    out = capsys.readouterr().out
    assert "[1] mine.csv:" in out and "[2] other.csv:" in out and "--hidden" not in out


def test_compare_puts_a_log_beside_an_rnnscope_run(real_run, tmp_path):
    _, records = read_run(real_run)
    log = write_csv(tmp_path / "mine.csv", [{"step": r["step"], "train_nll": r["train_nll"]}
                                            for r in records])
    result = compare_runs([real_run, log])
    assert result["runs"][0]["hidden"] == 16 and result["runs"][1]["hidden"] is None
    assert [row["runs"][0]["train_nll"] for row in result["table"]] == \
        [row["runs"][1]["train_nll"] for row in result["table"]]
    assert [row["runs"][1]["sat_ratio"] for row in result["table"]] == \
        [None] * len(result["table"])
    text = format_comparison(result)
    assert "--hidden 16 --layers 2" in text and "mine.csv: --layers 1; " in text


def test_a_log_without_a_vocabulary_diverges_against_its_first_loss(tmp_path):
    recs = [{"step": 10 * i, "train_nll": 3.0 + (0 if i < 4 else 2.0)} for i in range(1, 12)]
    result = diagnose_run(write_csv(tmp_path / "up.csv", recs))
    assert ids(result) == ["diverged"]
    assert "above the first recorded train NLL 3.000" in result["findings"][0]["evidence"]["seen"]


def test_nan_in_a_csv_is_believed_at_once(tmp_path):
    recs = loss_curve(8) + [{"step": 100, "train_nll": None}]
    log = write_csv(tmp_path / "nan.csv", recs)
    assert read_run(log)[1][-1]["train_nll"] is None
    assert diagnose_run(log)["verdict"] == "diverged"


def test_an_eval_on_a_line_of_its_own_joins_the_record_of_its_step(tmp_path):
    lines = [{"step": 10, "train_nll": 3.0}, {"step": 20, "train_nll": 2.9},
             {"step": 20, "eval_nll": 3.1}, {"step": 30, "train_nll": 2.8}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    _, records = read_run(tmp_path / "log.jsonl")
    assert records == [{"step": 10, "train_nll": 3.0},
                       {"step": 20, "train_nll": 2.9, "eval_nll": 3.1},
                       {"step": 30, "train_nll": 2.8}]


def test_csv_cells_read_as_numbers_lists_booleans_or_text(tmp_path):
    (tmp_path / "log.csv").write_text(
        'step,train_nll,bptt_profile,final,note,layer1.sat_ratio\n'
        '5,2.5,"[[1, 0.9], [2, null]]",true,warm up,\n'
        '10,inf,,,,0.25\n')
    doc, records = read_run(tmp_path / "log.csv")
    assert records == [{"step": 5, "train_nll": 2.5, "bptt_profile": [[1, 0.9], [2, None]],
                        "final": True, "note": "warm up"},
                       {"step": 10, "train_nll": None, "layer1.sat_ratio": 0.25}]
    assert doc == {"source": "log", "format": "csv", "config": {"layers": 2}}


# ---- bad logs: one line naming the problem and the fix


BAD = {
    "no_step.csv": ("train_nll\n2.0\n", "has no step"),
    "text.csv": ("step,train_nll\n1,high\n", "train_nll is 'high', not a number"),
    "back.csv": ("step,train_nll\n10,2.0\n5,1.9\n", "step goes back from 10 to 5"),
    "no_nll.csv": ("step,grad_norm\n1,2.0\n", "has no train_nll"),
    "ragged.csv": ("step,train_nll\n1,2.0,3\n", "quote cells that hold commas"),
    "empty.csv": ("", "holds no records"),
    "profile.jsonl": ('{"step": 1, "train_nll": 2, "bptt_profile": 3}\n', "not a number"),
    "array.jsonl": ("[1, 2]\n", "holds no records"),
    "log.txt": ("step train_nll\n", "neither a directory, a .jsonl nor a .csv"),
}


@pytest.mark.filterwarnings("ignore::rnnscope.errors.RnnscopeWarning")
@pytest.mark.parametrize("name", BAD)
def test_a_bad_log_is_refused_with_one_line(tmp_path, capsys, name):
    text, message = BAD[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(RnnscopeError, match=message):
        read_run(tmp_path / name)
    assert main(["doctor", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("rnnscope: error: ") and message.split(",")[0] in err[-1]


def test_a_garbage_line_in_a_jsonl_log_is_skipped_with_a_warning(tmp_path):
    lines = [json.dumps(r) for r in loss_curve(5)]
    lines.insert(2, "{not json")
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(RnnscopeWarning, match="skipped 1 unreadable line"):
        _, records = read_run(tmp_path / "log.jsonl")
    assert records == loss_curve(5)


def test_a_missing_log_or_an_empty_directory_is_refused(tmp_path):
    with pytest.raises(RnnscopeError, match="does not exist"):
        read_run(tmp_path / "nothing.csv")
    with pytest.raises(RnnscopeError, match="holds no metrics.jsonl or metrics.csv"):
        read_run(tmp_path)


def test_report_of_a_log_goes_beside_it_and_never_over_the_log(tmp_path):
    log = write_csv(tmp_path / "metrics.csv", loss_curve())
    out = write_report([log])
    assert out == tmp_path / "metrics.csv.report.html" and log.read_text().startswith("step,")
