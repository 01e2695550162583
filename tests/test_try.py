"""rnnscope try: one fork per distinct next step plus controls, each an ordinary run directory
under RUN/try/; training-only changes start from a copy of RUN's checkpoint, the others from
scratch beside a scratch control; the same command again finishes what is missing; bad input is
one line and exit 2; runs of other programs through --cmd. No fork's outcome is assumed: the
tests check that each is measured, against a measured noise band, and worded as measured."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnscope import runs
from rnnscope.cli import main
from rnnscope.sweep.spec import point_name
from rnnscope.trial import plan as trial_plan
from rnnscope.trial.verdict import MIN_BAND, NOISE_K, matched

TINY = ["--batch", "4", "--seq-len", "16", "--log-every", "10", "--eval-every", "20",
        "--no-report", "--quiet"]
VERDICTS = {"helped", "hurt", "no_measurable_difference", "failed"}
ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, path: Path, corpus: Path, *flags) -> Path:
    code, _, err = run_cli(capsys, "train", "--corpus", corpus, "--hidden", "8", *TINY,
                           "--run-dir", path, *flags)
    assert code == 0, err
    return path


def trial_doc(run: Path) -> dict:
    return json.loads((run / "try" / "try.json").read_text())


def digests(path: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())
            if p.is_file()}


@pytest.fixture(scope="module")
def fast_lr(small_corpus, tmp_path_factory, capsys_module=None):
    """A run at --lr 0.05 (its triage advises a lower lr and a schedule), tried for 40 steps."""
    path = tmp_path_factory.mktemp("try") / "fast"
    assert main(["train", "--corpus", str(small_corpus), "--hidden", "8", *TINY, "--lr", "0.05",
                 "--steps", "60", "--run-dir", str(path)]) == 0
    before = digests(path)
    assert main(["try", str(path), "--steps", "40", "--workers", "2", "--quiet",
                 "--also", "hidden=16"]) == 0
    return path, before


def test_one_fork_per_distinct_next_step_and_a_control_per_start(fast_lr, capsys):
    run, _ = fast_lr
    doc = trial_doc(run)
    code, out, _ = run_cli(capsys, "doctor", run, "--json")
    findings = json.loads(out)["findings"]
    base = runs.read_config(run)["config"]
    wanted = {point_name(trial_plan.absolute(step["settings"], base)) for f in findings
              for step in trial_plan.next_steps(f)
              if trial_plan.problem(step, base, None) is None}
    forks = {f["name"] for f in doc["forks"]}
    assert wanted <= forks and "hidden=16" in forks
    assert len(forks) == len(doc["forks"])                       # each once
    starts = {f["start"] for f in doc["forks"]}
    assert {c["name"] for c in doc["controls"]} == \
        {n for s in starts for n in ({"checkpoint": ("control", "control-2"),
                                      "scratch": ("control-scratch", "control-scratch-2")}[s])}
    for f in doc["forks"]:
        assert f["verdict"] in VERDICTS
        assert f["status"] == "finished" or f["verdict"] == "failed"
        for m in (f["steps_matched"], f["wall_clock_matched"]):
            assert m["band"] >= MIN_BAND
            if m["verdict"] == "helped":
                assert m["fork"] < m["control"] - m["band"]
            if m["verdict"] == "no_measurable_difference":
                assert abs(m["fork"] - m["control"]) <= m["band"]
    assert doc["noise"]["how"]["checkpoint"].startswith("a second control")


def test_every_fork_is_an_ordinary_run_directory(fast_lr, capsys):
    run, _ = fast_lr
    fork = run / "try" / "lr-schedule=cosine"
    for argv in (["doctor", fork], ["report", fork], ["compare", run / "try" / "control", fork],
                 ["train", "--resume", fork, "--steps", "120", "--quiet"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
    assert (run / "try" / "report.html").read_text().count("<svg") >= 2


def test_training_only_forks_start_from_a_copy_of_the_checkpoint_and_run_is_untouched(fast_lr):
    run, before = fast_lr
    assert digests(run) == before                                 # RUN's own files as they were
    doc = trial_doc(run)
    lr_fork = next(f for f in doc["forks"] if f["change"].get("lr") is not None)
    assert lr_fork["start"] == "checkpoint" and lr_fork["start_step"] == 60
    path = run / "try" / lr_fork["name"]
    cfg = runs.read_config(path)["config"]
    assert cfg["lr"] == lr_fork["change"]["lr"] and cfg["steps"] == 100
    params, _, _, _ = runs.load_checkpoint(run / runs.CHECKPOINT)
    first = runs.read_metrics(path)[0]
    assert first["step"] == 70                                    # it went on from step 60
    assert not np.array_equal(params["0.Whh"],
                              runs.load_checkpoint(path / runs.CHECKPOINT)[0]["0.Whh"])


def test_architecture_forks_start_from_scratch_beside_a_scratch_control(fast_lr):
    run, _ = fast_lr
    doc = trial_doc(run)
    fork = next(f for f in doc["forks"] if f["name"] == "hidden=16")
    assert fork["start"] == "scratch" and fork["finding"] is None   # --also: the user's own
    cfgs = {n: runs.read_config(run / "try" / n)["config"]
            for n in ("hidden=16", "control-scratch", "control-scratch-2")}
    assert runs.read_metrics(run / "try" / "hidden=16")[0]["step"] == 10
    assert cfgs["hidden=16"]["seed"] == cfgs["control-scratch"]["seed"] == 0
    assert cfgs["control-scratch-2"]["seed"] == 1
    assert cfgs["hidden=16"]["steps"] == cfgs["control-scratch"]["steps"] == 40
    assert cfgs["control-scratch"]["hidden"] == 8


def test_the_same_command_again_finishes_only_what_is_missing(fast_lr, capsys):
    run, _ = fast_lr
    gone = run / "try" / "lr-schedule=cosine"
    kept = digests(run / "try" / "control")
    for p in gone.iterdir():
        p.unlink()
    gone.rmdir()
    code, out, _ = run_cli(capsys, "try", run, "--steps", "40", "--quiet", "--also",
                           "hidden=16")
    assert code == 0
    assert "1 to run" in out and "started lr-schedule=cosine (new)" in out
    assert digests(run / "try" / "control") == kept
    assert "lr-schedule=cosine" in {f["name"] for f in trial_doc(run)["forks"]}


def test_the_words_say_what_was_measured_never_more(fast_lr, capsys):
    run, _ = fast_lr
    code, out, _ = run_cli(capsys, "try", run, "--steps", "40", "--quiet", "--also",
                           "hidden=16")
    doc = trial_doc(run)
    for f in doc["forks"]:
        head = {"helped": "helped", "hurt": "hurt", "failed": "failed",
                "no_measurable_difference": "made no measurable difference"}[f["verdict"]]
        assert f"`{f['text']}` {head}" in out
    for a in doc["findings"]:
        first = next(f for f in doc["forks"] if f["text"] == a["first"])
        assert a["first_beat_control"] == (first["verdict"] == "helped")
        said = "beat the control" if a["first_beat_control"] else "did not beat the control"
        assert f"its first next step `{a['first']}` {said}" in out


def test_matched_comparison_counts_only_beyond_the_noise_band():
    control = [(20, 1.0, 2.0), (40, 2.0, 1.9)]
    noise = [(20, 1.0, 2.05), (40, 2.0, 1.95)]           # 0.05 apart: band 0.1
    near = matched([(20, 1.5, 1.95), (40, 3.0, 1.85)], control, noise, "steps")
    assert near["band"] == pytest.approx(NOISE_K * 0.05) and \
        near["verdict"] == "no_measurable_difference"
    far = matched([(20, 1.5, 1.7), (40, 3.0, 1.6)], control, noise, "steps")
    assert far["verdict"] == "helped" and far["at"] == 40
    by_time = matched([(20, 1.5, 1.7), (40, 3.0, 1.6)], control, noise, "wall_clock")
    assert by_time["at"] == 2.0 and by_time["fork"] == 1.7    # the fork's eval at 3 s is later
    assert matched([(20, 1.0, 2.5)], control, [], "steps")["band"] == MIN_BAND


def test_a_fork_that_fails_is_in_the_table_and_the_others_go_on(small_corpus, tmp_path, capsys):
    run = train(capsys, tmp_path / "run", small_corpus, "--steps", "40")
    code, out, _ = run_cli(capsys, "try", run, "--steps", "40", "--quiet", "--only",
                           "lr", "--also", "optimizer=sgd,lr=1e300,clip=none", "--also",
                           "lr=0.003")
    assert code == 0
    doc = trial_doc(run)
    by_name = {f["name"]: f for f in doc["forks"]}
    assert set(by_name) == {"optimizer=sgd,lr=1e+300,clip=none", "lr=0.003"}
    bad = by_name["optimizer=sgd,lr=1e+300,clip=none"]
    assert bad["verdict"] == "failed" and bad["error"].startswith("diverged")
    assert by_name["lr=0.003"]["status"] == "finished"
    assert "failed" in out and "diverged" in out


@pytest.mark.parametrize("argv,says", [
    (["--steps", "0"], "--steps must be positive"),
    (["--minutes", "-1"], "--minutes must be positive"),
    (["--only", "nosuch"], "--only nosuch names no fork"),
    (["--also", "hiden=16"], "'hiden' is not a train flag; did you mean hidden?"),
    (["--also", "lr"], "write --also FLAG=VALUE"),
    (["--cmd", "python x.py --lr {lrr} --run-dir {run_dir}"], "placeholder {lrr} is not a "
     "setting the run recorded"),
    (["--cmd", "python x.py --lr {lr}"], "--cmd has no {run_dir}"),
])
def test_bad_input_is_one_line_and_exit_2(small_corpus, tmp_path, capsys, argv, says):
    run = train(capsys, tmp_path / "run", small_corpus, "--steps", "20")
    before = digests(run)
    code, out, err = run_cli(capsys, "try", run, *argv)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert digests(run) == before and not (run / "try").exists()


def write_log_run(path: Path) -> Path:
    """A run of another program: config.json as rnnscope.torch.Panel writes it, and records."""
    path.mkdir()
    doc = {"source": "pytorch", "config": {"cell": "rnn", "hidden": 8, "layers": 1, "lr": 0.002,
                                            "seed": 0}}
    (path / "config.json").write_text(json.dumps(doc))
    nll = [3.0 - 0.02 * i for i in range(30)]
    (path / "metrics.jsonl").write_text("".join(
        json.dumps({"step": 10 * (i + 1), "train_nll": v, "eval_nll": v + 0.1}) + "\n"
        for i, v in enumerate(nll)))
    return path


PROGRAM = """import json, sys, os
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
os.makedirs(args["--run-dir"], exist_ok=True)
h, seed, steps = int(args["--hidden"]), int(args["--seed"]), int(args["--steps"])
with open(os.path.join(args["--run-dir"], "metrics.jsonl"), "w") as f:
    for s in range(10, steps + 1, 10):
        nll = 3.0 - s / 100 - h / 100 + seed / 1000
        f.write(json.dumps({"step": s, "elapsed_s": s / 100, "train_nll": nll,
                            "eval_nll": nll + 0.05}) + "\\n")
"""


def test_a_run_of_another_program_needs_cmd(tmp_path, capsys):
    run = write_log_run(tmp_path / "torch-run")
    code, _, err = run_cli(capsys, "try", run, "--steps", "50")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pytorch run: there is no checkpoint to fork" in err and "--cmd" in err
    for argv, says in (([], "--cmd has {steps}, but the run did not record it; give --steps"),
                       (["--minutes", "2"], "--minutes needs a {minutes} placeholder")):
        code, _, err = run_cli(capsys, "try", run, *argv, "--cmd",
                               "prog --steps {steps} --run-dir {run_dir}")
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (run / "try").exists()


def test_cmd_runs_the_users_program_once_per_fork_and_control(tmp_path, capsys):
    run = write_log_run(tmp_path / "torch-run")
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    template = (f"{sys.executable} {prog} --hidden {{hidden}} --seed {{seed}} --steps {{steps}} "
                "--run-dir {run_dir}")
    code, out, err = run_cli(capsys, "try", run, "--steps", "50", "--quiet", "--cmd", template,
                             "--also", "hidden=16")
    assert code == 0, err
    doc = trial_doc(run)
    fork = next(f for f in doc["forks"] if f["name"] == "hidden=16")
    assert fork["start"] == "program" and fork["status"] == "finished"
    assert fork["steps_matched"]["at"] == 50
    assert fork["steps_matched"]["fork"] == pytest.approx(3.0 - 0.5 - 0.16 + 0.05)
    assert fork["steps_matched"]["control"] == pytest.approx(3.0 - 0.5 - 0.08 + 0.05)
    assert fork["steps_matched"]["noise"] == pytest.approx(0.001)   # the control with seed 1
    assert fork["verdict"] == "helped"
    skipped = {s["text"]: s["why"] for s in doc["skipped"]}
    assert any("--cmd does not pass" in why for why in skipped.values())  # {cell}, {layers}
    code, out, _ = run_cli(capsys, "try", run, "--steps", "50", "--quiet", "--cmd", template,
                           "--also", "hidden=16")
    assert "0 to run" in out                                    # finished programs: skipped


@pytest.mark.slow
def test_a_plateaued_tanh_run_gets_the_capacity_tests_from_scratch(tmp_path, capsys):
    """The seed's case, small: a tanh run that plateaus; try runs twice the units, two layers,
    GRU and LSTM from scratch beside a control at one budget, and says for each whether it paid
    off at matched steps and at matched wall-clock (which one does is measured, not assumed)."""
    letters = np.random.default_rng(0).integers(0, 16, 30_000)
    corpus = tmp_path / "letters.txt"
    corpus.write_text("".join(chr(97 + int(i)) for i in letters))
    run = train(capsys, tmp_path / "run", corpus, "--steps", "400")
    code, out, _ = run_cli(capsys, "doctor", run, "--json")
    assert json.loads(out)["verdict"] == "plateau"
    code, out, err = run_cli(capsys, "try", run, "--steps", "200", "--quiet", "--only",
                             "hidden,layers,cell")
    assert code == 0, err
    doc = trial_doc(run)
    forks = {f["name"]: f for f in doc["forks"]}
    assert set(forks) == {"hidden=16", "layers=2", "cell=gru", "cell=lstm"}
    assert {f["start"] for f in forks.values()} == {"scratch"}
    assert {c["name"] for c in doc["controls"]} == {"control-scratch", "control-scratch-2"}
    for f in forks.values():
        assert f["finding"] == "plateau" and f["status"] == "finished"
        steps, clock = f["steps_matched"], f["wall_clock_matched"]
        assert steps["at"] == 200 and clock["at"] > 0
        assert f["verdict"] == steps["verdict"]                 # a budget in steps
        said = [line for line in out.splitlines() if line.startswith(f"`{f['text']}`")][0]
        assert f"by step {steps['at']}" in said and " s (noise band" in said
    for measure, words in (("steps", "helped at matched steps: "),
                           ("wall_clock", "helped at matched wall-clock: ")):
        helped = [f"`{f['text']}`" for f in forks.values()
                  if f[f"{measure}_matched"]["verdict"] == "helped"]
        assert f"{words}{', '.join(helped) or 'none'}" in out


def checkpoint_step(path: Path) -> int:
    try:
        return runs.load_checkpoint(path / runs.CHECKPOINT)[3]["step"]
    except Exception:  # noqa: BLE001 - not there yet, or being written
        return 0


@pytest.mark.slow
def test_ctrl_c_and_the_same_command_again_finish_the_rest(small_corpus, tmp_path, capsys):
    """Ctrl-C while the forks train: exit 130, the forks checkpointed; the same command again
    resumes them, and each fork's records come out once per step, as an uninterrupted run's."""
    run = train(capsys, tmp_path / "run", small_corpus, "--steps", "40")
    argv = [sys.executable, "-m", "rnnscope.cli", "try", str(run), "--steps", "1500",
            "--workers", "2", "--quiet", "--also", "lr=0.01", "--only", "lr"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    control = run / "try" / "control"
    end = time.monotonic() + 120
    while checkpoint_step(control) < 100 and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "the same command finishes the rest" in err
    stopped = checkpoint_step(control)
    assert 100 <= stopped < 1540 and not (run / "try" / "try.json").exists()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"started control (resuming from step {stopped})" in done.stdout
    doc = trial_doc(run)
    for f in [*doc["forks"], *doc["controls"]]:
        assert f["status"] == "finished"
        steps = [r["step"] for r in runs.read_metrics(run / "try" / f["name"])]
        assert steps == list(range(50, 1541, 10))
