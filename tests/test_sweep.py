"""rnnscope sweep: a grid from a YAML spec or --set, each point an ordinary run directory; reruns
skip finished runs and resume interrupted ones; a failing point is recorded while the rest
finish; a spec with errors is refused before anything runs; the same grid on Ray."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnscope import TrainConfig, runs
from rnnscope.cli import main
from rnnscope.display import LiveGrid, PlainGrid
from rnnscope.errors import RnnscopeError
from rnnscope.sweep import point as sweep_point
from rnnscope.sweep import pool as sweep_pool
from rnnscope.sweep import spec as sweep_spec
from rnnscope.sweep import summary as sweep_summary
from rnnscope.sweep import worker as sweep_worker

TINY = ["--batch", "4", "--seq-len", "16", "--log-every", "10", "--eval-every", "20",
        "--no-report", "--quiet"]
GRID = ["--set", "hidden=8,16", "--set", "optimizer=sgd,adam", "--steps", "40"]
ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def records_without_time(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in runs.read_metrics(path)]


def summary_of(out: Path) -> dict:
    return json.loads((out / sweep_summary.SUMMARY).read_text())


@pytest.fixture(scope="module")
def grid_out(small_corpus, tmp_path_factory):
    """hidden 8/16 x optimizer sgd/adam, 40 steps each, two workers; and what it printed."""
    out = tmp_path_factory.mktemp("sweep") / "grid"
    code = main(["sweep", *GRID, "--corpus", str(small_corpus), *TINY, "--workers", "2",
                 "--out", str(out)])
    assert code == 0
    return out


# ---- the spec


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_yaml_spec_reads_like_a_wandb_sweep_file(tmp_path):
    spec = sweep_spec.load_spec(write(tmp_path, """\
name: seed-grid
method: grid
parameters:
  hidden: {values: [256, 512]}
  optimizer:
    values: [sgd, adam]
  seq-len: {value: 32}
  lr: {value: 1e-3}        # YAML reads 1e-3 as text; it is converted as --lr converts it
"""))
    assert spec.name == "seed-grid"
    assert spec.swept == {"hidden": [256, 512], "optimizer": ["sgd", "adam"]}
    assert spec.fixed == {"seq_len": 32, "lr": 0.001}


def test_set_shorthand_and_yaml_give_the_same_grid(tmp_path):
    yaml_spec = sweep_spec.load_spec(write(tmp_path, "method: grid\nparameters:\n"
                                      "  hidden: {values: [8, 16]}\n"
                                      "  clip: {values: [norm, elementwise]}\n"))
    set_spec = sweep_spec.spec_from_sets(["hidden=8,16", "clip=norm,elementwise"])
    assert sweep_spec.grid(yaml_spec, {"steps": 10}) == sweep_spec.grid(set_spec, {"steps": 10})
    points = sweep_spec.grid(set_spec, {"steps": 10})
    assert [p.name for p in points] == ["hidden=8,clip=norm", "hidden=8,clip=elementwise",
                                        "hidden=16,clip=norm", "hidden=16,clip=elementwise"]
    assert all(p.config["steps"] == 10 for p in points)
    assert points[1].config["hidden"] == 8 and points[1].config["clip"] == "elementwise"


def test_a_value_valid_with_some_other_values_is_refused_only_where_its_combination_is(
        tmp_path):
    """--chrono-init needs a gated cell: fine swept with gru and lstm; its grid point with rnn
    is named; fixed true while the cell stays rnn, the line that fixes it is."""
    ok = sweep_spec.spec_from_sets(["cell=gru,lstm", "chrono-init=false,true"])
    assert len(sweep_spec.grid(ok, {})) == 4
    mixed = sweep_spec.spec_from_sets(["cell=rnn,gru", "chrono-init=true"])
    with pytest.raises(RnnscopeError, match=r"^grid point cell=rnn,chrono-init=true: --chrono"):
        sweep_spec.grid(mixed, {})
    fixed = sweep_spec.load_spec(write(tmp_path, "parameters:\n  hidden: {values: [8, 16]}\n"
                                       "  chrono-init: {value: true}\n"))
    with pytest.raises(RnnscopeError, match=r"line 3: parameters.chrono-init.value: --chrono"):
        sweep_spec.grid(fixed, {})
    assert len(sweep_spec.grid(fixed, {"cell": "lstm"})) == 2


def test_point_names_are_safe_directory_names():
    assert sweep_spec.point_name({"lr": 0.001, "corpus": "/data/my text.txt", "panel": False}) == \
        "lr=0.001,corpus=my_text.txt,panel=false"


BAD_SPECS = [
    ("method: grid\nparameters:\n  hiden: {values: [8, 16]}\n", "line 3", "did you mean hidden"),
    ("parameters:\n  hidden: {values: [8, many]}\n", "line 2", "'many' is not a whole number"),
    ("parameters:\n  hidden:\n    values:\n      - 8\n      - 1.5\n", "line 5", "1.5"),
    ("parameters:\n  optimizer: {values: [sgd, lion]}\n", "line 2", "'lion' is not known"),
    ("parameters:\n  hidden: {values: [8, -4]}\n", "line 2", "--hidden must be positive"),
    ("parameters:\n  hidden: {values: [8, 16]\n  lr: 3\n", "line 3", "flow mapping from line 2"),
    ("parameters:\n  hidden: {values: [8]}\n  hidden: {values: [16]}\n", "line 3", "twice"),
    ("method: random\nparameters:\n  hidden: {values: [8]}\n", "line 1", "not supported"),
    ("program: train.py\nparameters:\n  hidden: {values: [8]}\n", "line 1", "program"),
    ("parameters:\n  lr: {min: 0.001, max: 0.1}\n", "line 2", "{values: [a, b, ...]}"),
    ("parameters:\n  hidden: {values: []}\n", "line 2", "non-empty list"),
    ("parameters:\n  minutes: {values: [1, 2]}\n  steps: {value: 10}\n", "grid point minutes=1.0",
     "not both"),
    ("parameters:\n  batch: {values: [4, 100000]}\n", "grid point batch=100000", "--batch"),
    ("name: x\n", "parameters", "give the parameters"),
]


@pytest.mark.parametrize("text,where,says", BAD_SPECS)
def test_a_spec_with_errors_is_refused_in_one_line_before_anything_runs(
        capsys, tmp_path, small_corpus, text, where, says):
    code, out, err = run_cli(capsys, "sweep", write(tmp_path, text), "--corpus", small_corpus,
                             "--out", tmp_path / "out", "--quiet")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert where in err and says in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,says", [
    (["--set", "hiden=8,16"], "'hiden' is not a train flag; did you mean hidden?"),
    (["--set", "hidden=8,x"], "--set hidden=8,x: --hidden 'x' is not a whole number"),
    (["--set", "hidden"], "write --set FLAG=a,b"),
    (["--set", "hidden=8,16", "--hidden", "32"], "--hidden is both swept and fixed"),
    (["--set", "lr=0.1,nan"], "'nan' is not a finite number"),
    ([], "give a sweep file (SPEC.yaml) or --set"),
    (["--set", "hidden=8", "--workers", "0"], "--workers must be positive"),
    (["--set", "hidden=8", "--address", "auto"], "add --backend ray"),
])
def test_bad_set_arguments_are_refused_in_one_line(capsys, tmp_path, small_corpus, argv, says):
    code, _, err = run_cli(capsys, "sweep", *argv, "--corpus", small_corpus, "--out",
                           tmp_path / "out", *TINY)
    assert code == 2 and err.count("\n") == 1, err
    assert says in err, err


def test_a_run_with_other_settings_under_a_point_name_is_refused(capsys, grid_out, tmp_path,
                                                                 small_corpus):
    code, _, err = run_cli(capsys, "sweep", *GRID, "--lr", "0.05", "--corpus", small_corpus,
                           *TINY, "--out", grid_out)
    assert code == 2 and "was trained with --lr 0.002, but this sweep gives --lr 0.05" in err


# ---- a small grid on the local pool


def test_every_grid_point_is_an_ordinary_run_directory(grid_out, small_corpus, tmp_path):
    from rnnscope.display import PlainDisplay
    from rnnscope.train import train

    names = {"hidden=8,optimizer=sgd", "hidden=8,optimizer=adam", "hidden=16,optimizer=sgd",
             "hidden=16,optimizer=adam"}
    assert names <= {p.name for p in grid_out.iterdir()}
    cfg = runs.read_config(grid_out / "hidden=16,optimizer=sgd")["config"]
    assert (cfg["hidden"], cfg["optimizer"], cfg["steps"], cfg["batch"]) == (16, "sgd", 40, 4)
    direct = train(TrainConfig(**cfg), str(tmp_path / "direct"),
                   display=PlainDisplay(open(os.devnull, "w")))  # noqa: SIM115
    assert records_without_time(direct) == records_without_time(grid_out / "hidden=16,"
                                                                 "optimizer=sgd")


def test_existing_commands_work_on_a_grid_point(capsys, grid_out):
    a, b = grid_out / "hidden=8,optimizer=adam", grid_out / "hidden=16,optimizer=adam"
    code, out, _ = run_cli(capsys, "doctor", a, "--json")
    assert code == 0 and json.loads(out)["verdict"]
    assert run_cli(capsys, "compare", a, b)[0] == 0
    assert run_cli(capsys, "sample", a, "--length", "20")[0] == 0


def test_summary_holds_each_runs_outcome(grid_out):
    summary = summary_of(grid_out)
    assert summary["swept"] == ["hidden", "optimizer"] and summary["fixed"]["steps"] == 40
    assert len(summary["runs"]) == 4
    for row in summary["runs"]:
        path = grid_out / row["path"]
        records = runs.read_metrics(path)
        evals = [r["eval_nll"] for r in records if "eval_nll" in r]
        assert row["status"] == "finished" and row["steps"] == 40
        assert row["best_eval_nll"] == min(evals)
        assert row["final_train_nll"] == records[-1]["train_nll"]
        triage = json.loads((path / runs.TRIAGE).read_text())
        assert row["verdict"] == triage["verdict"] and row["findings"] == triage["findings"]
        assert row["settings"] == {k: runs.read_config(path)["config"][k]
                                   for k in ("hidden", "optimizer")}


def test_main_effects_are_the_mean_best_eval_per_value(grid_out):
    summary = summary_of(grid_out)
    best = {tuple(r["settings"].values()): r["best_eval_nll"] for r in summary["runs"]}
    effects = {e["factor"]: e for e in summary["effects"]}
    sgd = effects["optimizer"]["values"][0]
    assert sgd["value"] == "sgd" and sgd["n"] == 2
    assert sgd["mean"] == pytest.approx((best[(8, "sgd")] + best[(16, "sgd")]) / 2)
    assert sgd["std"] == pytest.approx(abs(best[(8, "sgd")] - best[(16, "sgd")]) / 2)
    means = [v["mean"] for e in effects.values() for v in e["values"]]
    assert all(m is not None for m in means)
    ranges = [e["range"] for e in summary["effects"]]
    assert ranges == sorted(ranges, reverse=True)


def test_main_effects_leave_out_failed_runs_and_count_them():
    rows = [{"settings": {"lr": lr}, "status": status, "best_eval_nll": min(e for _, e in ev),
             "evals": ev}
            for lr, status, ev in [(0.1, "finished", [[10, 3.0], [20, 2.5], [40, 2.0]]),
                                   (0.1, "finished", [[10, 4.0], [20, 3.5], [40, 3.0]]),
                                   (9.0, "failed", [[10, 4.0]]),
                                   (9.0, "finished", [[20, 5.0], [40, 5.0]])]]
    (effect,) = sweep_summary.main_effects(rows, ["lr"])
    low, high = effect["values"]
    assert {k: low[k] for k in ("value", "n", "failed", "mean", "std", "min", "max")} == {
        "value": 0.1, "n": 2, "failed": 0, "mean": 2.5, "std": 0.5, "min": 2.0, "max": 3.0}
    assert low["curve"] == {"steps": [10, 20, 40], "mean": [3.5, 3.0, 2.5],
                            "min": [3.0, 2.5, 2.0], "max": [4.0, 3.5, 3.0]}
    assert low["early"] == {"step": 10, "mean": 3.5}  # nearest a quarter of step 40
    assert (high["n"], high["failed"], high["curve"]["steps"]) == (1, 1, [20, 40])
    assert effect["range"] == 2.5


def test_sweep_report_ranks_runs_and_shows_main_effects_and_curves(grid_out):
    html = (grid_out / "report.html").read_text()
    order = [r["name"] for r in sweep_summary.ranked(summary_of(grid_out))]
    shown = re.findall(r"<td>\d+</td><td><span class=\"swatch\"[^>]*></span> ([^<]+)</td>",
                       html)
    assert shown == order
    for fid in ("main-effects", "nll-steps"):
        assert f'<figure id="{fid}"' in html and "<svg" in html
    assert "--optimizer" in html and "--hidden" in html and "range of the means" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_rerun_skips_finished_runs(capsys, grid_out, small_corpus):
    before = {p.name: (p / runs.CHECKPOINT).stat().st_mtime_ns
              for p in grid_out.iterdir() if (p / runs.CHECKPOINT).exists()}
    code, out, _ = run_cli(capsys, "sweep", *GRID, "--corpus", small_corpus, *TINY, "--out",
                           grid_out)
    assert code == 0 and "4 runs in the grid, 0 to run; 4 finished, skipped" in out
    after = {p.name: (p / runs.CHECKPOINT).stat().st_mtime_ns
             for p in grid_out.iterdir() if (p / runs.CHECKPOINT).exists()}
    assert after == before and len(before) == 4


@pytest.mark.slow
def test_a_failing_point_is_recorded_while_the_rest_finish(capsys, small_corpus, tmp_path):
    out = tmp_path / "out"
    argv = ["sweep", "--set", "lr=0.01,1e38", "--optimizer", "sgd", "--clip", "none",
            "--corpus", small_corpus, *TINY, "--out", out]
    code, text, err = run_cli(capsys, *argv, "--steps", "40")
    assert code == 1 and "1 of 2 runs failed (first: lr=1e+38)" in err and err.count("\n") == 1
    rows = {r["name"]: r for r in summary_of(out)["runs"]}
    assert rows["lr=0.01"]["status"] == "finished" and rows["lr=0.01"]["steps"] == 40
    assert rows["lr=1e+38"]["status"] == "failed"
    assert rows["lr=1e+38"]["error"].startswith("diverged at step")
    assert rows["lr=1e+38"]["verdict"] == "diverged"
    log = out / sweep_point.LOGS / "lr=1e+38.log"
    assert log.read_text().count("from step 0") == 1

    code, text, _ = run_cli(capsys, *argv, "--steps", "40")  # kept as failed ...
    assert code == 1 and "1 failed, skipped (--retry-failed runs them again)" in text
    assert log.read_text().count("from step 0") == 1
    code, text, _ = run_cli(capsys, *argv, "--retry-failed", "--steps", "50")  # until asked
    assert code == 1 and "started lr=1e+38 (retrying)" in text
    assert log.read_text().count("from step 0") == 2
    assert "started lr=0.01 (resuming from step 40)" in text  # more steps extend finished runs
    assert [r["step"] for r in runs.read_metrics(out / "lr=0.01")] == [10, 20, 30, 40, 50]


def test_status_of_a_point_is_read_from_its_directory(small_corpus, tmp_path):
    cfg = TrainConfig(corpus=str(small_corpus), hidden=8, batch=4, seq_len=16, steps=40,
                      log_every=10, eval_every=20, report=False)
    point = sweep_spec.Point("p", {}, cfg.to_dict())
    path = tmp_path / "p"
    assert sweep_point.point_status(path, cfg).state == "pending"
    assert sweep_worker.run_point(point, str(tmp_path)) == "finished"
    assert sweep_point.point_status(path, cfg) == sweep_point.Status("finished", 40)
    (path / runs.CHECKPOINT).unlink()  # stopped before its first checkpoint: trains from 0
    assert sweep_point.point_status(path, cfg).state == "started"
    assert sweep_worker.run_point(point, str(tmp_path)) == "finished"
    assert [r["step"] for r in runs.read_metrics(path)] == [10, 20, 30, 40]
    sweep_point.record_failure(path, "the worker process was killed by SIGKILL", "worker")
    assert sweep_point.point_status(path, cfg).detail == "the worker process was killed by SIGKILL"
    (path / "notes.txt").write_text("mine")
    with pytest.raises(RnnscopeError, match="notes.txt, which rnnscope did not write"):
        sweep_point.clear(path)


# ---- the local pool's workers


def test_workers_start_with_one_blas_thread(tmp_path):
    """OpenBLAS starts its threads when NumPy loads: a worker has none besides its own."""
    probe = "import numpy, os; print(len(os.listdir('/proc/self/task')))"
    if not Path("/proc/self/task").exists():
        pytest.skip("needs Linux /proc")
    with open(tmp_path / "log", "w") as log:
        sweep_pool.start_python(["-c", probe], log).wait()
    assert (tmp_path / "log").read_text().strip() == "1"
    if (os.cpu_count() or 1) > 1:  # the probe sees BLAS threads where they are not limited
        plain = {k: v for k, v in os.environ.items() if k not in sweep_pool.BLAS_ENV}
        threads = subprocess.run([sys.executable, "-c", probe], env=plain, capture_output=True,
                                 text=True).stdout
        assert int(threads) > 1


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def checkpoint_step(path: Path) -> int:
    try:
        return runs.load_checkpoint(path / runs.CHECKPOINT)[3]["step"]
    except RnnscopeError:
        return 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_sweep_resumes_its_runs(small_corpus, tmp_path):
    """kill -9 of the sweep: its workers notice, checkpoint and stop; the rerun resumes them;
    Ctrl-C of that rerun: exit 130, runs checkpointed; the third run finishes the grid."""
    out, steps = tmp_path / "out", 3000  # long enough that Ctrl-C lands before the end
    argv = [sys.executable, "-m", "rnnscope.cli", "sweep", "--set", "seed=0,1", "--hidden", "8",
            "--steps", str(steps), "--corpus", str(small_corpus), *TINY, "--workers", "2",
            "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    dirs = [out / "seed=0", out / "seed=1"]

    def start():
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    proc = start()
    wait_for(lambda: all(checkpoint_step(d) >= 20 for d in dirs), 120, "first checkpoints")
    workers = children(proc.pid)
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(alive(w) for w in workers), 30, "workers to stop")
    stopped = [checkpoint_step(d) for d in dirs]
    assert all(20 <= s < steps for s in stopped)
    assert all(sweep_point.point_status(d, TrainConfig.from_dict(
        runs.read_config(d)["config"])).state == "interrupted" for d in dirs)

    proc = start()
    wait_for(lambda: all(checkpoint_step(d) > s for d, s in zip(dirs, stopped, strict=True)),
             120, "the resumed runs to move on")
    proc.send_signal(signal.SIGINT)
    out_text, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "the same command resumes them" in err
    assert all(f"started seed={i} (resuming from step {s})" in out_text
               for i, s in enumerate(stopped))

    proc = start()
    out_text, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    for d in dirs:
        steps_logged = [r["step"] for r in runs.read_metrics(d)]
        assert steps_logged == list(range(10, steps + 1, 10))
        log = (out / sweep_point.LOGS / f"{d.name}.log").read_text()
        assert log.count("resuming from step") == 2
    assert all(r["status"] == "finished" for r in summary_of(out)["runs"])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_worker_that_dies_is_recorded_and_retried_from_its_checkpoint(small_corpus, tmp_path):
    """kill -9 of one run's worker (the OOM killer, say): that run is failed, the other
    finishes; --retry-failed resumes the dead one from its checkpoint."""
    out, steps = tmp_path / "out", 600
    argv = [sys.executable, "-m", "rnnscope.cli", "sweep", "--set", "seed=0,1", "--hidden", "8",
            "--steps", str(steps), "--corpus", str(small_corpus), *TINY, "--workers", "2",
            "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for(lambda: checkpoint_step(out / "seed=0") >= 20 and len(children(proc.pid)) == 2,
             120, "a checkpoint of seed=0")
    worker = next(w for w in children(proc.pid)
                  if "seed=0" in Path(f"/proc/{w}/cmdline").read_text())
    os.kill(worker, signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1 and "1 of 2 runs failed (first: seed=0)" in err
    rows = {r["name"]: r for r in summary_of(out)["runs"]}
    assert rows["seed=0"]["status"] == "failed"
    assert rows["seed=0"]["error"] == "the worker process was killed by SIGKILL"
    assert rows["seed=1"]["status"] == "finished"
    died_at = checkpoint_step(out / "seed=0")

    proc = subprocess.run(argv + ["--retry-failed"], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "started seed=0 (retrying)" in proc.stdout
    assert f"resuming from step {died_at}" in (out / sweep_point.LOGS / "seed=0.log").read_text()
    assert [r["step"] for r in runs.read_metrics(out / "seed=0")][-1] == steps


# ---- the displays


ROWS = [{"name": "hidden=8", "state": "running", "total": 40, "step": 20, "train_nll": 3.1,
         "best_eval": 3.2, "verdict": "healthy"},
        {"name": "hidden=16", "state": "pending", "total": 40, "step": 0, "train_nll": None,
         "best_eval": None, "verdict": None}]


def test_live_grid_has_a_row_per_run_with_progress_and_verdict():
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(LiveGrid.render(ROWS))
    text = console.export_text()
    assert "hidden=8" in text and "20/40" in text and "3.1000" in text and "healthy" in text
    assert "hidden=16" in text and "pending" in text


def test_plain_grid_prints_one_line_per_event():
    import io

    buf = io.StringIO()
    display = PlainGrid(buf)
    display.start(ROWS, "2 runs in the grid, 2 to run")
    display.update(ROWS)
    display.event("finished hidden=8: step 40")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith("2 runs in the grid, 2 to run")


# ---- Ray


def strace_works() -> bool:
    return shutil.which("strace") is not None and subprocess.run(
        ["strace", "-f", "-qq", "-o", os.devnull, "true"], capture_output=True).returncode == 0


def inet_addresses(trace: str) -> set[str]:
    """The IPv4 and IPv6 addresses that any traced process connected, sent or bound to."""
    pairs = re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', trace)
    return {a or b for a, b in pairs}


def loopback(address: str) -> bool:
    return address.startswith(("127.", "::ffff:127.")) or address == "::1"


@pytest.mark.slow
def test_the_same_grid_runs_on_a_local_ray_instance_without_network(grid_out, small_corpus,
                                                                    tmp_path):
    """The grid's four points as Ray tasks give the local pool's records. Under strace, every
    address any process of the sweep and of Ray connects, sends or listens to is loopback:
    usage statistics and everything else stay on the machine."""
    pytest.importorskip("ray")
    out, trace = tmp_path / "ray", tmp_path / "trace"
    argv = [sys.executable, "-m", "rnnscope.cli", "sweep", *GRID, "--corpus", str(small_corpus),
            *TINY, "--backend", "ray", "--workers", "2", "--out", str(out)]
    traced = strace_works()
    if traced:
        argv = ["strace", "-f", "-qq", "-e", "trace=connect,bind,sendto,sendmsg", "-o",
                str(trace), *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run(argv, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 runs in the grid, 4 to run" in proc.stdout
    for row in summary_of(grid_out)["runs"]:
        assert records_without_time(out / row["name"]) == records_without_time(
            grid_out / row["name"])
    if traced:
        addresses = inet_addresses(trace.read_text())
        assert addresses and all(loopback(a) for a in addresses), addresses
