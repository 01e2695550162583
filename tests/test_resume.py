"""Nothing lost: a run stopped at any moment (a signal, kill -9, a full disk) resumes from its
directory alone and ends with the records and parameters of an uninterrupted run.

Most tests run in this process (signals sent to itself, writes made to fail); the last section
stops real `rnnscope train` processes (SIGINT, SIGTERM, kill -9, a file size limit)."""

import datetime
import errno
import io
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from rnnscope import TrainConfig, load_run, runs
from rnnscope.cli import main
from rnnscope.display import PlainDisplay
from rnnscope.errors import Interrupted, RnnscopeError, RnnscopeWarning, WriteFailed
from rnnscope.train import resume, train

WALL_CLOCK = ("elapsed_s",)  # the only record keys an interrupted run may change


def small_config(corpus, **kw) -> TrainConfig:
    base = dict(corpus=str(corpus), hidden=16, batch=4, seq_len=16, steps=40, log_every=10,
                eval_every=20, lr=1e-2, report=False)
    return TrainConfig(**{**base, **kw})


class Watching(PlainDisplay):
    """Plain lines into a buffer; after step `stop_at` it sends this process `signum`, as a
    user's Ctrl-C or a scheduler's SIGTERM would; `on_record` runs with each record."""

    def __init__(self, stop_at=None, signum=signal.SIGINT, on_record=None):
        super().__init__(out=io.StringIO())
        self.stop_at, self.signum, self.on_record = stop_at, signum, on_record

    def step(self, step, chars, elapsed_s):
        super().step(step, chars, elapsed_s)
        if step == self.stop_at:
            os.kill(os.getpid(), self.signum)

    def record(self, rec):
        super().record(rec)
        if self.on_record:
            self.on_record(rec)

    @property
    def text(self) -> str:
        return self.out.getvalue()


def records(path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in runs.read_metrics(path)]


def assert_same_run(path, reference):
    """The same records (but wall-clock time) and bit-identical parameters, optimizer state
    and best parameters."""
    assert records(path) == records(reference)
    for name in (runs.CHECKPOINT, runs.BEST):
        got, want = runs.load_checkpoint(path / name), runs.load_checkpoint(reference / name)
        for a, b in zip(got[:2], want[:2], strict=True):
            assert a.keys() == b.keys()
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name} {k}")


@pytest.fixture(scope="module")
def whole(small_corpus, tmp_path_factory):
    """40 steps without a stop, with dropout and a cosine schedule (RNG and schedule state)."""
    cfg = small_config(small_corpus, dropout=0.1, lr_schedule="cosine", checkpoint_every=5)
    return train(cfg, tmp_path_factory.mktemp("whole") / "run", display=Watching())


def test_a_run_stopped_by_a_signal_resumes_from_its_directory_alone(small_corpus, tmp_path,
                                                                     whole):
    cfg = small_config(small_corpus, dropout=0.1, lr_schedule="cosine", checkpoint_every=5)
    with pytest.raises(Interrupted, match="after step 23; checkpoint saved; continue with: "
                       "rnnscope train --resume ") as stopped:
        train(cfg, tmp_path / "run", display=Watching(stop_at=23))
    assert stopped.value.signum == signal.SIGINT
    assert runs.load_checkpoint(tmp_path / "run" / runs.CHECKPOINT)[3]["step"] == 23
    assert not (tmp_path / "run" / runs.LOCK).exists()
    with pytest.raises(Interrupted) as stopped:
        resume(tmp_path / "run", display=Watching(stop_at=31, signum=signal.SIGTERM))
    assert stopped.value.signum == signal.SIGTERM
    resume(tmp_path / "run", display=Watching())
    assert_same_run(tmp_path / "run", whole)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_gated_cell_resumes_with_every_part_of_its_state(small_corpus, tmp_path, cell):
    """The LSTM carries (h, c) from chunk to chunk: both come back from the checkpoint."""
    cfg = small_config(small_corpus, cell=cell, steps=30, checkpoint_every=5)
    whole = train(cfg, tmp_path / "whole", display=Watching())
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "run", display=Watching(stop_at=17))
    assert set(runs.load_checkpoint(tmp_path / "run" / runs.CHECKPOINT)[2]) == (
        {"h", "c"} if cell == "lstm" else {"h"})
    resume(tmp_path / "run", display=Watching())
    assert_same_run(tmp_path / "run", whole)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(small_corpus, tmp_path,
                                                                     whole):
    class Impatient(Watching):
        def step(self, step, chars, elapsed_s):
            super().step(step, chars, elapsed_s)
            if step == 23:
                os.kill(os.getpid(), signal.SIGINT)

    cfg = small_config(small_corpus, dropout=0.1, lr_schedule="cosine", checkpoint_every=5)
    with pytest.raises(Interrupted, match="second SIGINT; the last checkpoint is kept"):
        train(cfg, tmp_path / "run", display=Impatient(stop_at=23))
    assert runs.load_checkpoint(tmp_path / "run" / runs.CHECKPOINT)[3]["step"] == 20
    resume(tmp_path / "run", display=Watching())
    assert_same_run(tmp_path / "run", whole)


def test_records_after_the_last_checkpoint_are_dropped_on_resume(small_corpus, tmp_path, whole):
    """As kill -9 leaves a run: records written past the last checkpoint (step 30) and a line
    torn in the middle."""
    cfg = small_config(small_corpus, dropout=0.1, lr_schedule="cosine", checkpoint_every=5)
    path, kept = tmp_path / "run", tmp_path / "checkpoint-30.npz"

    def keep_checkpoint(rec):  # at record 35 the checkpoint of step 30 is the latest
        if rec["step"] == 35:
            shutil.copy(path / runs.CHECKPOINT, kept)

    cfg.log_every = 5
    train(cfg, path, display=Watching(on_record=keep_checkpoint))
    shutil.copy(kept, path / runs.CHECKPOINT)
    with open(path / runs.METRICS, "a") as f:
        f.write('{"step": 41, "train_')
    assert runs.read_metrics(path)[-1]["step"] == 40
    resume(path, display=Watching())
    reference = train(cfg, tmp_path / "reference", display=Watching())
    assert_same_run(path, reference)


def test_a_run_stopped_before_its_first_checkpoint_starts_again_from_step_0(small_corpus,
                                                                           tmp_path, whole):
    cfg = small_config(small_corpus, dropout=0.1, lr_schedule="cosine", checkpoint_every=5)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "run", display=Watching(stop_at=12))
    (tmp_path / "run" / runs.CHECKPOINT).unlink()
    display = Watching()
    resume(tmp_path / "run", display=display)
    assert "no checkpoint yet" in display.text
    assert_same_run(tmp_path / "run", whole)


def test_raised_steps_keep_the_schedule_shape_of_the_original_length(small_corpus, tmp_path,
                                                                     whole):
    cfg = small_config(small_corpus, dropout=0.1, lr_schedule="cosine", checkpoint_every=5)
    path = train(cfg, tmp_path / "run", display=Watching())
    display = Watching(stop_at=50)
    with pytest.raises(Interrupted):
        resume(path, {"steps": 70}, display=display)
    assert "keeps its shape over the run's first 40 steps" in display.text
    assert json.loads((path / runs.CONFIG).read_text())["config"]["steps"] == 70
    resume(path, display=Watching())  # the second resume keeps the horizon of 40 too
    recs = records(path)
    assert recs[:4] == records(whole)[:4]  # the records before the end are untouched
    floor = 0.01 * cfg.lr
    assert [r["lr"] for r in recs if r["step"] > 40] == pytest.approx([floor] * 3, rel=1e-12)
    assert [r["step"] for r in recs] == [10, 20, 30, 40, 50, 60, 70]


def test_checkpoints_every_k_steps_and_at_each_eval(small_corpus, tmp_path):
    path = tmp_path / "run"
    seen = []

    def checkpoint_step(rec):
        file = path / runs.CHECKPOINT
        seen.append(runs.load_checkpoint(file)[3]["step"] if file.exists() else None)

    cfg = small_config(small_corpus, steps=35, log_every=5, eval_every=15, checkpoint_every=10)
    train(cfg, path, display=Watching(on_record=checkpoint_step))
    # a record is written before the checkpoint of its step
    assert seen == [None, None, 10, 15, 20, 20, 30]
    assert runs.load_checkpoint(path / runs.CHECKPOINT)[3]["step"] == 35


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


SMALL = ["--hidden", "16", "--batch", "4", "--seq-len", "16", "--log-every", "10",
         "--eval-every", "20", "--quiet", "--no-report"]


def test_resume_accepts_the_run_s_own_settings_and_refuses_any_other(small_corpus, tmp_path,
                                                                    capsys):
    path = tmp_path / "run"
    assert cli(capsys, "train", "--corpus", small_corpus, "--steps", 20, "--run-dir", path,
               *SMALL)[0] == 0
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    for argv, says in ((["--steps", 10], "--steps 10 is less than the run's 20"),
                       (["--minutes", 1], "length is set by --steps"),
                       (["--no-panel"], "--no-panel differs"),
                       (["--checkpoint-every", 5], "--checkpoint-every 5 differs"),
                       (["--hidden", 32, "--steps", 40], "--hidden 32 differs"),
                       ([], "already has 20 steps")):
        code, _, err = cli(capsys, "train", "--resume", path, *argv)
        assert code == 2 and err.count("\n") == 1 and says in err, err
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    code, _, err = cli(capsys, "train", "--resume", path, "--steps", 40, *SMALL)
    assert code == 0, err
    assert runs.read_metrics(path)[-1]["step"] == 40


def test_a_moved_corpus_is_found_again_by_its_text(small_corpus, tmp_path, capsys,
                                                   monkeypatch):
    """A relative corpus path is kept absolute; moved, the run asks for --corpus, which must be
    the same text (SHA-256)."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(small_corpus, "text.txt")
    assert cli(capsys, "train", "--corpus", "text.txt", "--steps", 20, "--run-dir", "run",
               *SMALL)[0] == 0
    assert json.loads((tmp_path / "run" / runs.CONFIG).read_text())["config"]["corpus"] == str(
        tmp_path / "text.txt")
    (tmp_path / "elsewhere").mkdir()
    shutil.move("text.txt", "elsewhere/moved.txt")
    code, _, err = cli(capsys, "train", "--resume", "run", "--steps", 40)
    assert code == 2 and "pass --corpus PATH" in err and err.count("\n") == 1
    (tmp_path / "other.txt").write_text(small_corpus.read_text()[::-1])
    code, _, err = cli(capsys, "train", "--resume", "run", "--steps", 40, "--corpus",
                       "other.txt")
    assert code == 2 and "SHA-256 differs" in err
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, _, err = cli(capsys, "train", "--resume", "../run", "--steps", 40, "--corpus",
                       "moved.txt")
    assert code == 0, err
    doc = json.loads((tmp_path / "run" / runs.CONFIG).read_text())
    assert doc["config"]["corpus"] == str(tmp_path / "elsewhere" / "moved.txt")
    assert doc["corpus"]["name"] == doc["config"]["corpus"]


# ---- writes that fail


@pytest.fixture(scope="module")
def halfway(small_corpus, tmp_path_factory):
    """A run of 20 of its 40 steps."""
    cfg = small_config(small_corpus, checkpoint_every=10, steps=20)
    return train(cfg, tmp_path_factory.mktemp("halfway") / "run", display=Watching())


@pytest.fixture(scope="module")
def halfway_with_report(small_corpus, tmp_path_factory):
    """The same with the report (which changes no record and no parameter)."""
    cfg = small_config(small_corpus, checkpoint_every=10, steps=20, report=True)
    return train(cfg, tmp_path_factory.mktemp("halfway") / "run", display=Watching())


@pytest.fixture(scope="module")
def whole_of_halfway(small_corpus, tmp_path_factory):
    cfg = small_config(small_corpus, checkpoint_every=10)
    return train(cfg, tmp_path_factory.mktemp("whole") / "run", display=Watching())


AGAIN = "continue with: rnnscope train --resume"
FINISHED = "training finished and its checkpoint is saved"
# the file written -> (whether the run writes a report, what the error says to do)
WRITES = {runs.CONFIG: (False, "the run is as it was: run the same command again"),
          runs.METRICS: (False, AGAIN), runs.CHECKPOINT: (False, AGAIN),
          runs.BEST: (False, AGAIN), runs.TRIAGE: (False, FINISHED), runs.REPORT: (True, FINISHED)}


@pytest.mark.parametrize("name, err", [
    pytest.param(name, err, id=f"{name}-{errno.errorcode[err]}",
                 marks=[pytest.mark.slow] if WRITES[name][0] else [])  # matplotlib is slow
    for name in WRITES for err in (errno.ENOSPC, errno.EACCES)])
def test_a_write_that_fails_is_one_line_and_damages_nothing(request, tmp_path, capsys,
                                                            failing_writes, name, err):
    """Resume 20 -> 40 steps with every write of `name` failing: exit 1 with one line naming
    the file and the OS error; every file stays whole and loadable; once the writes work
    again the run ends exactly as the uninterrupted one."""
    report, fix = WRITES[name]
    half = request.getfixturevalue("halfway_with_report" if report else "halfway")
    path = shutil.copytree(half, tmp_path / "run")
    failing_writes(name, err)
    code, _, stderr = cli(capsys, "train", "--resume", path, "--steps", 40)
    assert code == 1 and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"cannot write {path / name}: {os.strerror(err)} ({errno.errorcode[err]})" in stderr
    failing_writes(None, 0)  # the disk has room again
    for ck in (runs.CHECKPOINT, runs.BEST):
        load_run(path, ck)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every line of metrics.jsonl is whole
        runs.read_metrics(path)
    runs.read_config(path)
    assert not list(path.glob(".*"))  # no temporary file left behind
    assert fix in stderr
    if fix != FINISHED:
        assert cli(capsys, "train", "--resume", path, "--steps", 40)[0] == 0
    assert_same_run(path, request.getfixturevalue("whole_of_halfway"))


def test_a_failed_config_write_leaves_an_empty_run_directory(small_corpus, tmp_path, capsys,
                                                             failing_writes):
    failing_writes(runs.CONFIG, errno.ENOSPC)
    code, _, err = cli(capsys, "train", "--corpus", small_corpus, "--steps", 20, "--run-dir",
                       tmp_path / "run", *SMALL)
    assert code == 1 and err.count("\n") == 1 and "config.json: No space left" in err
    assert list((tmp_path / "run").iterdir()) == []  # the same command can simply be run again


def test_a_run_directory_deleted_while_training_stops_it_with_one_line(small_corpus, tmp_path):
    path = tmp_path / "run"

    def delete(rec):
        if rec["step"] == 20:
            shutil.rmtree(path)

    with pytest.raises(WriteFailed, match="run/checkpoint.npz: No such file or directory"):
        train(small_config(small_corpus), path, display=Watching(on_record=delete))


# ---- damaged records


@pytest.mark.parametrize("command", ["doctor", "compare",
                                     pytest.param("report", marks=pytest.mark.slow)])
def test_garbage_in_metrics_is_skipped_with_one_warning_by_every_reader(tmp_path, capsys, whole,
                                                                         command):
    path = shutil.copytree(whole, tmp_path / "run")
    lines = (path / runs.METRICS).read_bytes().splitlines(keepends=True)
    (path / runs.METRICS).write_bytes(b"".join(lines[:2] + [b"#@!garbage\n"] + lines[2:])
                                      + b'{"step": 45, "tra')
    code, _, err = cli(capsys, command, path, *([whole] if command == "compare" else []))
    assert code == 0 and "Traceback" not in err
    warned = [line for line in err.splitlines() if line.startswith("rnnscope: warning:")]
    assert len(warned) == 1 and "skipped 1 unreadable line (line 3: not JSON)" in warned[0]
    with pytest.warns(RnnscopeWarning, match="line 3"):
        assert len(runs.read_metrics(path)) == len(lines)


def test_resume_drops_garbage_lines_and_continues_exactly(small_corpus, tmp_path, whole):
    cfg = small_config(small_corpus, dropout=0.1, lr_schedule="cosine", checkpoint_every=5)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "run", display=Watching(stop_at=25))
    with open(tmp_path / "run" / runs.METRICS, "ab") as f:
        f.write(b"\x00\x01 not a record\n")
    with pytest.warns(RnnscopeWarning, match="skipped 1 unreadable line"):
        resume(tmp_path / "run", display=Watching())
    assert_same_run(tmp_path / "run", whole)


def test_resume_of_a_directory_that_is_not_a_run_creates_nothing_in_it(tmp_path):
    with pytest.raises(RnnscopeError, match="not an rnnscope run"):
        resume(tmp_path, display=Watching())
    assert list(tmp_path.iterdir()) == []


# ---- the real process: `rnnscope train` stopped by a signal, a second writer, a full file


REPO = Path(__file__).resolve().parents[1]
STOPPABLE = ["--hidden", "16", "--batch", "4", "--seq-len", "16", "--log-every", "10",
             "--eval-every", "100", "--checkpoint-every", "25", "--quiet", "--no-report"]
STEPS = 300  # the signal comes after the first checkpoint (step 25): far from the end


def stoppable_config(corpus, **kw) -> TrainConfig:
    """STOPPABLE's settings, for the uninterrupted reference trained in this process."""
    return TrainConfig(corpus=str(corpus), hidden=16, batch=4, seq_len=16, log_every=10,
                       eval_every=100, checkpoint_every=25, steps=STEPS, report=False, **kw)


def rnnscope_cli(*args) -> list[str]:
    return [sys.executable, "-m", "rnnscope.cli", *map(str, args)]


def cli_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def start(*args, cwd, **kw) -> subprocess.Popen:
    return subprocess.Popen(rnnscope_cli(*args), cwd=cwd, env=cli_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def ended(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def wait_until(proc: subprocess.Popen, ready, what: str) -> None:
    """Poll (a loaded machine may be slow: no deadline but the run's own end)."""
    while not ready():
        if proc.poll() is not None:
            code, out, err = ended(proc)
            pytest.fail(f"the run ended (exit {code}) before {what}:\n{out}\n{err}")
        time.sleep(0.01)


def checkpointed(path) -> bool:
    return (path / runs.CHECKPOINT).exists()


@pytest.fixture(scope="module")
def stoppable_reference(small_corpus, tmp_path_factory):
    return train(stoppable_config(small_corpus), tmp_path_factory.mktemp("reference") / "run",
                 display=Watching())


@pytest.mark.slow
def test_ctrl_c_stops_after_a_step_and_prints_the_command_that_resumes(small_corpus, tmp_path,
                                                                       stoppable_reference):
    shutil.copy(small_corpus, tmp_path / "text.txt")
    proc = start("train", "--corpus", "text.txt", "--steps", STEPS, "--run-dir", "run",
                 *STOPPABLE, cwd=tmp_path)
    wait_until(proc, lambda: checkpointed(tmp_path / "run"), "its first checkpoint")
    proc.send_signal(signal.SIGINT)
    code, _, err = ended(proc)
    assert code == 130 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("rnnscope: stopped by SIGINT after step ")
    again = shlex.split(err.split("continue with: ")[1])
    assert again == ["rnnscope", "train", "--resume", "run"]
    step = runs.load_checkpoint(tmp_path / "run" / runs.CHECKPOINT)[3]["step"]
    assert 25 <= step < STEPS and f"after step {step};" in err
    resumed = subprocess.run(rnnscope_cli(*again[1:]), cwd=tmp_path, env=cli_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "run", stoppable_reference)


@pytest.mark.slow
def test_sigterm_stops_a_tinyshakespeare_run_that_resumes_from_its_directory_alone(
        tmp_path, shared_data):
    proc = start("train", "--corpus", "tinyshakespeare", "--data-dir", shared_data,
                 "--eval-frac", "0.01", "--steps", STEPS, "--run-dir", "run", *STOPPABLE,
                 cwd=tmp_path)
    wait_until(proc, lambda: checkpointed(tmp_path / "run"), "its first checkpoint")
    proc.send_signal(signal.SIGTERM)
    code, _, err = ended(proc)
    assert code == 143 and err.startswith("rnnscope: stopped by SIGTERM after step "), err
    resumed = subprocess.run(rnnscope_cli("train", "--resume", tmp_path / "run"), env=cli_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    cfg = stoppable_config("tinyshakespeare", data_dir=str(shared_data), eval_frac=0.01)
    assert_same_run(tmp_path / "run", train(cfg, tmp_path / "reference", display=Watching()))


@pytest.mark.slow
def test_kill_9_loses_only_the_steps_since_the_last_checkpoint(small_corpus, tmp_path,
                                                               stoppable_reference):
    path = tmp_path / "run"
    proc = start("train", "--corpus", small_corpus, "--steps", STEPS, "--run-dir", path,
                 *STOPPABLE, cwd=tmp_path)
    # killed between two checkpoints, with records written after the first
    wait_until(proc, lambda: any(r["step"] >= 40 for r in runs.read_metrics(path)),
               "its record of step 40")
    proc.kill()
    assert ended(proc)[0] == -signal.SIGKILL
    assert (path / runs.LOCK).read_text().strip() == str(proc.pid)
    resumed = subprocess.run(rnnscope_cli("train", "--resume", path), env=cli_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"process {proc.pid} stopped without releasing" in resumed.stdout
    assert_same_run(path, stoppable_reference)
    assert not (path / runs.LOCK).exists()


@pytest.mark.slow
def test_a_live_run_refuses_a_second_writer_and_serves_every_reader(small_corpus, tmp_path,
                                                                    capsys):
    path = tmp_path / "run"
    proc = start("train", "--corpus", small_corpus, "--steps", 10 ** 6, "--run-dir", path,
                 *STOPPABLE, cwd=tmp_path, preexec_fn=lambda: os.nice(19))  # readers go first
    try:
        wait_until(proc, lambda: checkpointed(path) and len(runs.read_metrics(path)) >= 4,
                   "its first checkpoint and records")
        second = subprocess.run(rnnscope_cli("train", "--resume", path, "--steps", 10 ** 7),
                                env=cli_env(), capture_output=True, text=True)
        assert second.returncode == 2 and second.stderr.count("\n") == 1
        assert f"being trained by process {proc.pid}" in second.stderr
        for argv in (["doctor", path], ["compare", path, path], ["sample", path, "--length", 40],
                     ["report", path, "-o", tmp_path / "live.html"]):
            code, out, err = cli(capsys, *argv)
            assert code == 0 and "Traceback" not in err, (argv, err)
        proc.send_signal(signal.SIGTERM)
        code, _, err = ended(proc)
        assert code == 143 and "continue with" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (path / runs.LOCK).exists()


def limit_file_size(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.slow
def test_a_write_the_os_refuses_in_a_real_process_keeps_the_previous_checkpoint(
        halfway, tmp_path, whole_of_halfway):
    """RLIMIT_FSIZE at half the checkpoint's size (twice metrics.jsonl's): the checkpoint of
    step 30 is the first file too large to write (EFBIG); the process says so in one line and
    exits 1."""
    path = shutil.copytree(halfway, tmp_path / "run")
    before = (path / runs.CHECKPOINT).read_bytes()
    failed = subprocess.run(rnnscope_cli("train", "--resume", path, "--steps", 40),
                            env=cli_env(), capture_output=True, text=True,
                            preexec_fn=limit_file_size(len(before) // 2))
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert f"cannot write {path / runs.CHECKPOINT}: File too large (EFBIG)" in failed.stderr
    assert (path / runs.CHECKPOINT).read_bytes() == before
    assert [r["step"] for r in runs.read_metrics(path)] == [10, 20, 30]
    assert not list(path.glob(".*"))
    resumed = subprocess.run(rnnscope_cli("train", "--resume", path), env=cli_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(path, whole_of_halfway)


def test_doctor_warns_of_a_garbage_line_in_one_line(tmp_path, whole):
    path = shutil.copytree(whole, tmp_path / "run")
    with open(path / runs.METRICS, "ab") as f:
        f.write(b"{not json\n")
    doctor = subprocess.run(rnnscope_cli("doctor", path), env=cli_env(), capture_output=True,
                            text=True)
    assert doctor.returncode == 0 and doctor.stdout.startswith("verdict:")
    assert doctor.stderr == (f"rnnscope: warning: {path / runs.METRICS}: skipped 1 unreadable "
                             f"line (line 5: not JSON); read the other 4 records\n")


# ---- runs started together, and a signal before the first step or after the last


def test_runs_started_in_the_same_second_get_free_names(monkeypatch, tmp_path):
    """The time stamp names a run without --run-dir; the second of one second is -2, ..."""
    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(runs.datetime, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(hidden=8)
    made = [runs.new_run_dir(None, cfg) for _ in range(3)]
    assert [str(p) for p in made] == ["runs/20260102-030405-stdlib-rnn8x1",
                                      "runs/20260102-030405-stdlib-rnn8x1-2",
                                      "runs/20260102-030405-stdlib-rnn8x1-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)


RACE = """import datetime, sys, time
from rnnscope import TrainConfig, runs
class Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 2, 3, 4, 5)
runs.datetime.datetime = Frozen
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
print(runs.new_run_dir(None, TrainConfig(hidden=8)))
"""


def test_processes_racing_for_one_name_each_get_their_own(tmp_path):
    """Four processes name their run at the same instant: no two get the same directory and
    none is refused (the name is claimed by an atomic mkdir, not checked then made)."""
    at = time.time() + 3  # after every interpreter has started
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(at)], cwd=tmp_path, env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    got = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), got
    names = sorted(out.strip() for out, _ in got)
    base = "runs/20260102-030405-stdlib-rnn8x1"
    assert names == [base, f"{base}-2", f"{base}-3", f"{base}-4"]


def test_sigterm_while_the_corpus_loads_ends_at_once_and_writes_nothing(tmp_path):
    """The corpus is a pipe (as `--corpus <(zcat text.gz)` is): once the writer's open returns,
    the run is reading it, and SIGTERM arrives in the middle of that read."""
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)
    proc = start("train", "--corpus", fifo, "--steps", 20, *STOPPABLE, cwd=tmp_path)
    fd = None

    def reading() -> bool:  # a pipe opens for writing only once a reader has it open
        nonlocal fd
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            assert e.errno == errno.ENXIO
        return fd is not None

    wait_until(proc, reading, "it opened the corpus")
    try:
        os.write(fd, b"some text, not all of it yet\n" * 100)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        code, out, err = ended(proc)
    finally:
        os.close(fd)
    assert code == 143 and "Traceback" not in err, err
    assert err == "rnnscope: stopped by SIGTERM while loading the corpus; nothing was written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.fifo"]


@pytest.mark.slow
def test_sigterm_while_the_report_is_written_ends_cleanly_and_the_run_stays_whole(
        small_corpus, tmp_path, capsys):
    """SIGTERM once triage.json is there, while report.html is drawn: exit 143 with one line,
    no temporary file left, the checkpoint whole; `rnnscope report` then writes the report."""
    path = tmp_path / "run"
    argv = [a for a in STOPPABLE if a != "--no-report"]
    proc = start("train", "--corpus", small_corpus, "--steps", 30, "--run-dir", path, *argv,
                 cwd=tmp_path)
    wait_until(proc, lambda: (path / runs.TRIAGE).exists(), "its verdict")
    proc.send_signal(signal.SIGTERM)
    code, _, err = ended(proc)
    assert code == 143 and err.count("\n") == 1, err
    assert err == (f"rnnscope: stopped by SIGTERM while writing the verdict and the report; the "
                   f"run is saved: `rnnscope report {path}` writes the report\n")
    assert not list(path.glob(".*")) and not (path / runs.LOCK).exists()
    assert not (path / runs.REPORT).exists()
    assert runs.load_checkpoint(path / runs.CHECKPOINT)[3]["step"] == 30
    assert cli(capsys, "doctor", path)[0] == 0
    assert cli(capsys, "report", path)[0] == 0 and (path / runs.REPORT).stat().st_size > 0
