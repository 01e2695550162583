"""The command line: bad input is one line on stderr and exit 2; the commands work end to end."""

import subprocess
import sys

import numpy as np
import pytest

from rnnscope import load_run, runs
from rnnscope.cli import main
from rnnscope.corpora import load_corpus

SMALL = ["--hidden", "16", "--batch", "4", "--seq-len", "16", "--log-every", "10",
         "--eval-every", "20", "--quiet", "--no-report"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(capsys, *argv, says: str):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert says in err


@pytest.fixture(scope="module")
def trained(small_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--corpus", str(small_corpus), "--steps", "40", "--run-dir",
                 str(path), *SMALL]) == 0
    return path


def test_train_writes_a_run(trained):
    assert {"config.json", "metrics.jsonl", "checkpoint.npz", "best.npz"} <= {
        p.name for p in trained.iterdir()}


def test_missing_corpus_is_refused(capsys, tmp_path):
    assert_bad_input(capsys, "train", "--corpus", tmp_path / "nope.txt", *SMALL,
                     says="neither a known corpus")


def test_unknown_corpus_name_is_refused(capsys):
    assert_bad_input(capsys, "train", "--corpus", "wikitext", *SMALL, says="wikitext")


def test_empty_corpus_is_refused(capsys, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert_bad_input(capsys, "train", "--corpus", tmp_path / "empty.txt", *SMALL,
                     says="empty")


def test_binary_corpus_is_refused(capsys, tmp_path):
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 40)
    assert_bad_input(capsys, "train", "--corpus", tmp_path / "bin.dat", *SMALL,
                     says="UTF-8")


def test_too_short_corpus_is_refused(capsys, tmp_path):
    (tmp_path / "short.txt").write_text("hello world\n" * 5)
    assert_bad_input(capsys, "train", "--corpus", tmp_path / "short.txt", *SMALL,
                     says="--batch")


@pytest.mark.parametrize("flag", ["--hidden", "--layers", "--batch", "--seq-len", "--steps",
                                  "--embed", "--warmup"])
def test_negative_sizes_are_refused(capsys, flag):
    assert_bad_input(capsys, "train", flag, "-5", says=flag)


def test_unknown_flag_and_bad_value_are_one_line(capsys):
    assert_bad_input(capsys, "train", "--hiden", "5", says="--hiden")
    assert_bad_input(capsys, "train", "--hidden", "many", says="--hidden")
    assert_bad_input(capsys, "train", "--optimizer", "lion", says="lion")


def test_existing_run_dir_is_refused(capsys, trained, small_corpus):
    before = (trained / "metrics.jsonl").read_bytes()
    assert_bad_input(capsys, "train", "--corpus", small_corpus, "--run-dir", trained, *SMALL,
                     says="already exists")
    assert (trained / "metrics.jsonl").read_bytes() == before


def test_resume_cannot_change_settings(capsys, trained):
    assert_bad_input(capsys, "train", "--resume", trained, "--lr", "0.1", says="--lr")


def test_resume_with_another_vocabulary_is_refused(capsys, trained, tmp_path, small_corpus):
    other = tmp_path / "other.txt"
    other.write_text(small_corpus.read_text().upper())
    assert_bad_input(capsys, "train", "--resume", trained, "--corpus", other, "--steps", "60",
                     says="different vocabulary")


def test_corrupt_checkpoint_is_refused(capsys, trained, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((trained / "config.json").read_bytes())
    (broken / "checkpoint.npz").write_bytes((trained / "checkpoint.npz").read_bytes()[:500])
    assert_bad_input(capsys, "sample", broken, says="corrupt")
    assert_bad_input(capsys, "train", "--resume", broken, "--steps", "80", says="corrupt")


def test_sample_of_a_directory_that_is_not_a_run_is_refused(capsys, tmp_path):
    assert_bad_input(capsys, "sample", tmp_path, says="not an rnnscope run")


def test_sample_is_reproducible_and_starts_with_the_prime(capsys, trained):
    code, a, _ = run_cli(capsys, "sample", trained, "--length", "80", "--prime", "the ",
                         "--seed", "3", "--temperature", "0.7")
    _, b, _ = run_cli(capsys, "sample", trained, "--length", "80", "--prime", "the ",
                      "--seed", "3", "--temperature", "0.7")
    assert code == 0 and a == b and a.startswith("the ") and len(a) == 4 + 80 + 1


def test_sample_refuses_a_prime_outside_the_vocabulary(capsys, trained):
    assert_bad_input(capsys, "sample", trained, "--prime", "Ω", says="not in the vocabulary")


def test_corpora_lists_the_builtin_corpora_and_synthetic_floors(capsys):
    code, out, _ = run_cli(capsys, "corpora")
    assert code == 0 and "stdlib" in out and "tinyshakespeare" in out
    assert "synthetic:markov4    floor 1.4674 nats/char" in out
    assert "synthetic:delay{K}   floor 1.9606 nats/char" in out


def test_corpora_export_writes_the_text_a_run_trains_on(capsys, tmp_path):
    file = tmp_path / "delay3.txt"
    code, out, _ = run_cli(capsys, "corpora", "--export", "synthetic:delay3:seed4", file)
    corpus = load_corpus("synthetic:delay3:seed4")
    assert code == 0 and file.read_text() == corpus.text
    assert out == (f"wrote synthetic:delay3:seed4 to {file}: 1,000,000 characters, SHA-256 "
                   f"{corpus.sha256}, floor 1.9606 nats/char\n")
    assert_bad_input(capsys, "corpora", "--export", "synthetic:delay3", file,
                     says="already exists")
    assert_bad_input(capsys, "corpora", "--export", "synthetic:delay", tmp_path / "x.txt",
                     says="not a synthetic source")
    assert_bad_input(capsys, "corpora", "--export", "synthetic:delay3", says="--export")


def test_gradcheck_of_rnnscope_itself_passes(capsys):
    code, out, _ = run_cli(capsys, "gradcheck", "--layers", "3")
    assert code == 0 and "2.Whh" in out
    assert verdicts(out) == {"good"}


def verdicts(table: str) -> set[str]:
    return {line.split()[-1] for line in table.splitlines()[1:-1]}


def test_gradcheck_user_file_without_gradients_is_refused(capsys, tmp_path):
    case = tmp_path / "case.npz"
    run_cli(capsys, "gradcheck", "--export", case)
    assert_bad_input(capsys, "gradcheck", "--user", case, says="grad/")


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnnscope.cli", "train", "--corpus",
                           str(tmp_path / "missing.txt")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("rnnscope: error:")


def test_load_run_gives_a_working_model(trained):
    run = load_run(trained)
    logits, h = run.model.forward(np.zeros((3, 2), dtype=int))
    assert logits.shape == (3, 2, run.vocab.size) and h.shape == (1, 2, 16)


@pytest.mark.slow
@pytest.mark.parametrize("cell, init", [("gru", ["--chrono-init"]),
                                        ("lstm", ["--forget-bias", "2"])])
def test_every_command_works_with_a_gated_cell(capsys, small_corpus, tmp_path, cell, init):
    """train, resume, sample, doctor, compare, report, gradcheck and bench with --cell."""
    run = tmp_path / cell
    assert main(["train", "--corpus", str(small_corpus), "--cell", cell, *init, "--layers", "2",
                 "--steps", "20", "--run-dir", str(run), *SMALL]) == 0
    doc = (run / "config.json").read_text()
    assert f'"cell": "{cell}"' in doc and '"forget_bias"' in doc and '"chrono_init"' in doc
    assert main(["train", "--resume", str(run), "--corpus", str(small_corpus), "--steps", "40",
                 "--quiet"]) == 0
    assert [r["step"] for r in runs.read_metrics(run)] == [10, 20, 30, 40]
    for argv in (["sample", run, "--length", "30", "--seed", "1"], ["doctor", run, "--json"],
                 ["compare", run, run], ["report", run],
                 ["gradcheck", "--cell", cell, "--layers", "2"],
                 ["bench", "--quick", "--rounds", "1", "--cell", cell]):
        code, out, err = run_cli(capsys, *argv)
        progress = argv[0] == "bench" and all(line.startswith("bench row ")
                                              for line in err.splitlines())
        assert code == 0 and out and (not err or progress), (argv, err)
    assert (run / "report.html").exists()
    state = load_run(run).model.zero_state(2)
    assert (isinstance(state, tuple) and len(state) == 2) == (cell == "lstm")


def test_gate_initialisations_are_refused_where_they_do_nothing(capsys):
    assert_bad_input(capsys, "train", "--cell", "gru", "--forget-bias", "2",
                     says="--forget-bias")
    assert_bad_input(capsys, "train", "--chrono-init", says="--chrono-init")
