"""Sweeps (SPEC section 12): running a grid of training runs (rnnscope/sweep_spec.py builds
it), each grid point an ordinary run directory, on local processes or Ray tasks.

    DIR/<name>/          an ordinary run directory per grid point, named by its swept settings
                         (hidden=256,optimizer=sgd); failure.json in it when the run failed
    DIR/logs/<name>.log  what the run printed (its plain training lines, any traceback)
    DIR/summary.json     rnnscope/sweep_summary.py, rewritten as runs end
    DIR/report.html      the grid's report (rnnscope/report.py)

A grid point's status is read from its directory (point_status), so the same command again
skips finished runs, resumes interrupted ones from their checkpoints and leaves failed ones
alone unless asked (--retry-failed). Runs go to a Pool: local processes (LocalPool) or Ray
tasks (rnnscope/sweep_ray.py); either way a run is run_point() in a process of its own whose
BLAS uses one thread. The Tracker follows the runs for the live table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import runs
from .config import RESUMABLE, TrainConfig, shown
from .errors import RnnscopeError, WriteFailed
from .sweep_spec import Point, Spec, check_data, grid
from .sweep_summary import fmt, summarize, write_summary

LOGS, FAILURE = "logs", "failure.json"
BLAS_ENV = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
RUN_FILES = {runs.CONFIG, runs.METRICS, runs.CHECKPOINT, runs.BEST, runs.TRIAGE, runs.REPORT,
             runs.LOCK, FAILURE}
POLL_S = 1.0


# ---- a grid point's status, read from its directory


@dataclass(frozen=True)
class Status:
    state: str          # pending | started | interrupted | finished | failed
    step: int = 0       # the checkpoint's step
    detail: str = ""    # why it failed


def point_status(path: Path, cfg: TrainConfig) -> Status:
    """pending: nothing there; started: no checkpoint yet (a resume trains it from step 0);
    interrupted: a checkpoint short of the end; finished; failed: failure.json or a diverged
    last record."""
    if not path.is_dir() or not any(p.name != runs.LOCK for p in path.iterdir()):
        return Status("pending")
    if (path / FAILURE).exists():
        return Status("failed", detail=read_failure(path).get("error", "failed"))
    records = runs.read_metrics(path)
    if records and records[-1].get("diverged"):
        return Status("failed", records[-1]["step"], f"diverged at step {records[-1]['step']}: "
                      f"{records[-1]['diverged']}")
    if not (path / runs.CHECKPOINT).exists():
        return Status("started")
    meta = checkpoint_meta(path / runs.CHECKPOINT)
    return Status("finished" if finished(cfg, meta) else "interrupted", meta.get("step", 0))


def checkpoint_meta(file: Path) -> dict:
    """A checkpoint's meta (step, elapsed_s, ...) read alone, not its arrays; {} when it cannot
    be read (resuming it then fails with the reason, which failure.json records)."""
    import numpy as np

    try:
        with np.load(file, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return {}


def finished(cfg: TrainConfig, meta: dict) -> bool:
    """The checkpoint has the run's length: its steps, or its minutes of training."""
    cfg = cfg.with_length()
    if cfg.minutes is None:
        return meta.get("step", 0) >= cfg.steps
    return meta.get("elapsed_s", 0) >= cfg.minutes * 60


def read_failure(path: Path) -> dict:
    try:
        return json.loads((path / FAILURE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"error": "failed (failure.json unreadable)"}


def record_failure(path: Path, error: str, kind: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    doc = {"error": error, "kind": kind, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    runs.write_text(path / FAILURE, json.dumps(doc, indent=2) + "\n")


def check_existing(points: list[Point], out: Path) -> None:
    """A run already in DIR under a point's name must have the point's settings (all but those
    a resume may change, and --no-report) and its kind of length (steps or minutes); else the
    sweep would mix two experiments under one name."""
    for p in points:
        if not (out / p.name / runs.CONFIG).exists():
            continue
        had = TrainConfig.from_dict(runs.read_config(out / p.name)["config"]).with_length()
        want = p.train_config().with_length()
        for key, value in want.to_dict().items():
            if key not in (*RESUMABLE, "report") and getattr(had, key) != value:
                raise RnnscopeError(
                    f"{out / p.name} was trained with {shown(key, getattr(had, key))}, but this "
                    f"sweep gives {shown(key, value)}; use another --out, or move that run away")
        if (had.minutes is None) != (want.minutes is None):
            length = "--steps" if had.minutes is None else "--minutes"
            raise RnnscopeError(f"{out / p.name} was trained by {length}; give its length the "
                                "same way, or use another --out")


def length_change(path: Path, cfg: TrainConfig) -> dict:
    """The --steps or --minutes a resume raises the run in path to: the point's, when it is
    longer than the run's own (a run is never shortened)."""
    had = TrainConfig.from_dict(runs.read_config(path)["config"]).with_length()
    want = cfg.with_length()
    name = "steps" if want.minutes is None else "minutes"
    return {name: getattr(want, name)} if getattr(want, name) > getattr(had, name) else {}


def clear(path: Path) -> None:
    """Empty a point's directory to start it over; only files a run or the sweep writes."""
    if not path.exists():
        return
    foreign = [p.name for p in path.iterdir() if p.name not in RUN_FILES
               and not p.name.startswith(".")]
    if foreign:
        raise RnnscopeError(f"{path} holds {foreign[0]}, which rnnscope did not write; move it "
                            "away to let the sweep start this run over")
    shutil.rmtree(path)


# ---- one grid point, in a process of its own


def open_log(out: str | Path, name: str):
    """The point's log, out/logs/NAME.log, opened for appending."""
    (Path(out) / LOGS).mkdir(parents=True, exist_ok=True)
    return open(Path(out) / LOGS / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115


def run_point(point: Point, out: str) -> str:
    """Train the point to its end in out/<name>: a new run, or the one there resumed (a failed
    one is retried: resumed, or started over when it diverged). A failure is written to
    failure.json, never raised. Returns finished | failed | interrupted."""
    from .display import PlainDisplay
    from .train import Diverged, resume, train

    path, cfg = Path(out) / point.name, point.train_config()
    with open_log(out, point.name) as log:
        display = PlainDisplay(log)
        try:
            (path / FAILURE).unlink(missing_ok=True)
            status = point_status(path, cfg)
            if status.state == "finished":
                return "finished"
            if status.state == "failed":
                clear(path)
            if status.state in ("started", "interrupted"):
                print(f"resuming from step {status.step}", file=log, flush=True)
                resume(path, length_change(path, cfg), display)
            else:
                train(cfg, path, display)
            return "finished"
        except KeyboardInterrupt as e:  # SIGINT (from the sweep, or Ray's cancel): checkpointed
            print(e or "interrupted", file=log, flush=True)
            return "interrupted"
        except Diverged as e:  # its last record says so; triage.json has the findings
            print(e, file=log, flush=True)
        except (RnnscopeError, WriteFailed) as e:
            record_failure(path, str(e), type(e).__name__)
        except Exception as e:  # noqa: BLE001 - one run's bug must not stop the grid
            traceback.print_exc(file=log)
            record_failure(path, f"{type(e).__name__}: {e} (traceback in {log.name})", "bug")
        return "failed"


def worker_main(argv: list[str]) -> int:
    """`python -m rnnscope.sweep OUT POINT_JSON`: run one point (LocalPool's worker).
    It stops, checkpointed, on SIGINT and when the sweep that started it dies."""
    out, doc = argv[0], json.loads(argv[1])
    watch_parent(os.getppid())
    return EXIT[run_point(Point(**doc), out)]


EXIT = {"finished": 0, "failed": 1, "interrupted": 130}  # a worker's exit status


def watch_parent(parent: int) -> None:
    """SIGINT this process (train checkpoints and stops) once its parent is gone: a sweep
    killed with -9 leaves no run training on, unseen, into a directory a rerun will resume."""
    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


# ---- pools: where runs execute


class Pool(Protocol):
    workers: int                                       # runs at once

    def submit(self, point: Point) -> None: ...
    def done(self, timeout: float) -> dict[str, str]: ...  # ended: name -> "" or why it died
    def stop(self) -> None: ...                        # interrupt running runs (checkpointed)


def worker_env() -> dict:
    """The environment of a worker process: one BLAS thread, set before NumPy loads (parallel
    runs' BLAS threads would otherwise fight over the cores); this rnnscope on the path."""
    here = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **BLAS_ENV, "PYTHONPATH": path}


def start_python(args: list[str], log) -> subprocess.Popen:
    """A Python process in worker_env(), in a session of its own (a Ctrl-C reaches only the
    sweep, which passes it on once), its output appended to the open file log."""
    return subprocess.Popen([sys.executable, *args], env=worker_env(), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


class LocalPool:
    """One Python process per run (python -m rnnscope.sweep), at most `workers` at once."""

    def __init__(self, out: Path, workers: int) -> None:
        self.out, self.workers = out, workers
        self.procs: dict[str, subprocess.Popen] = {}

    def submit(self, point: Point) -> None:
        doc = json.dumps(dataclasses.asdict(point))
        with open_log(self.out, point.name) as log:
            self.procs[point.name] = start_python(["-m", "rnnscope.sweep", str(self.out), doc],
                                                  log)

    def done(self, timeout: float) -> dict[str, str]:
        end = time.monotonic() + timeout
        while not (ended := [n for n, p in self.procs.items() if p.poll() is not None]) \
                and time.monotonic() < end:
            time.sleep(0.1)
        return {name: died(self.procs.pop(name).returncode) for name in ended}

    def stop(self) -> None:
        for p in self.procs.values():
            p.send_signal(signal.SIGINT)
        for p in self.procs.values():
            try:
                p.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()


STOP_S = 60  # how long a run may take to checkpoint after SIGINT


def died(code: int) -> str:
    """Why a worker's exit status means it did not end its run itself ("" when it did)."""
    if code in EXIT.values():
        return ""
    if code < 0:
        return f"the worker process was killed by {signal.Signals(-code).name}"
    return f"the worker process exited with status {code}"


def make_pool(backend: str, out: Path, workers: int | None, address: str | None) -> Pool:
    """The local process pool (workers default: the machine's cores) or Ray."""
    if workers is not None and workers < 1:
        raise RnnscopeError(f"--workers must be positive, got {workers}")
    if backend == "ray":
        from .sweep_ray import RayPool

        return RayPool(out, workers, address)
    if address:
        raise RnnscopeError("--address joins a Ray cluster; add --backend ray")
    return LocalPool(out, workers or cores())


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


# ---- the sweep


def plan(spec: Spec, fixed: dict, out: Path) -> list[Point]:
    """The grid, every point checked, and checked against the runs already in out."""
    points = grid(spec, fixed)
    check_data(points)
    check_existing(points, out)
    return points


def run_sweep(points: list[Point], out: Path, pool: Pool, display, retry_failed: bool = False,
              name: str = "") -> dict:
    """Run the points not yet finished (failed ones too with retry_failed) on the pool, at most
    pool.workers at once; write summary.json as runs end and return the summary. On Ctrl-C
    (KeyboardInterrupt) the running runs stop checkpointed and the interrupt propagates."""
    out.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(points, out)
    wanted = {"pending", "started", "interrupted"} | ({"failed"} if retry_failed else set())
    todo = [p for p in points if tracker.states[p.name].state in wanted]
    display.start(tracker.rows(), news(tracker, len(todo), retry_failed))
    running: dict[str, Point] = {}
    try:
        while todo or running:
            while todo and len(running) < pool.workers:
                p = todo.pop(0)
                pool.submit(p)
                running[p.name] = p
                display.event(tracker.started(p.name))
            for ended, why in pool.done(POLL_S).items():
                del running[ended]
                display.event(tracker.ended(ended, why))
                write_summary(out, summarize(points, out, tracker.statuses(), name))
            display.update(tracker.rows(running))
    finally:
        pool.stop()
        display.finish()
        summary = summarize(points, out, tracker.statuses(), name)
        write_summary(out, summary)
    return summary


def news(tracker: Tracker, todo: int, retry_failed: bool) -> str:
    """8 runs in the grid, 3 to run; 4 finished, skipped; 1 failed, skipped (...)"""
    states = [s.state for s in tracker.states.values()]
    text = f"{len(states)} runs in the grid, {todo} to run"
    if "finished" in states:
        text += f"; {states.count('finished')} finished, skipped"
    if "failed" in states and not retry_failed:
        text += f"; {states.count('failed')} failed, skipped (--retry-failed runs them again)"
    return text


class Tracker:
    """The grid's live rows: each point's state, step, latest NLLs and verdict so far, read
    from its run directory and judged by a triage Watch as its records arrive."""

    def __init__(self, points: list[Point], out: Path) -> None:
        self.out, self.order = out, [p.name for p in points]
        self.cfgs = {p.name: p.train_config() for p in points}
        self.states = {n: point_status(out / n, cfg) for n, cfg in self.cfgs.items()}
        self.total = {n: cfg.with_length().steps for n, cfg in self.cfgs.items()}
        self.live = {n: {"step": 0, "train_nll": None, "best_eval": None, "verdict": None,
                         "seen": 0, "watch": None} for n in self.order}
        for name in self.order:
            self.refresh(name)

    def refresh(self, name: str) -> None:
        """Feed the run's new records to its Watch (a new one when a resume dropped some)."""
        from .triage import Watch

        path, row = self.out / name, self.live[name]
        records = runs.read_metrics(path) if (path / runs.CONFIG).exists() else []
        if row["watch"] is None or len(records) < row["seen"]:
            if not records:
                return
            row.update(watch=Watch.for_config(runs.read_config(path)), seen=0, best_eval=None)
        for rec in records[row["seen"]:]:
            row["watch"].update(rec)
            if rec.get("train_nll") is not None:
                row["train_nll"] = rec["train_nll"]
            if rec.get("eval_nll") is not None:
                row["best_eval"] = min(rec["eval_nll"], row["best_eval"] or math.inf)
        if records:
            row.update(step=records[-1]["step"], seen=len(records),
                       verdict=row["watch"].result()["verdict"])

    def started(self, name: str) -> str:
        before = self.states[name]
        how = f"resuming from step {before.step}" if before.state == "interrupted" else \
            "retrying" if before.state == "failed" else "new"
        self.states[name] = Status("running", before.step)
        return f"started {name} ({how})"

    def ended(self, name: str, why: str) -> str:
        """The run's state once its worker ended; a worker that died, or ended without a
        checkpoint to resume, leaves failure.json saying so."""
        status = point_status(self.out / name, self.cfgs[name])
        if why or status.state in ("pending", "started"):
            record_failure(self.out / name, why or "the worker stopped before the run "
                           f"finished; see {self.out / LOGS / name}.log", "worker")
            status = point_status(self.out / name, self.cfgs[name])
        self.states[name] = status
        self.refresh(name)
        row = self.live[name]
        if status.state == "failed":
            return f"failed {name}: {status.detail}"
        return (f"{status.state} {name}: step {row['step']}, best eval NLL "
                f"{fmt(row['best_eval'])}, verdict {row['verdict']}")

    def statuses(self) -> dict[str, Status]:
        """Each point's status as read from its directory now."""
        return {n: point_status(self.out / n, cfg) for n, cfg in self.cfgs.items()}

    def rows(self, running=()) -> list[dict]:
        for name in running:
            self.refresh(name)
        keys = ("step", "train_nll", "best_eval", "verdict")
        return [{"name": n, "state": self.states[n].state, "total": self.total[n],
                 **{k: self.live[n][k] for k in keys}} for n in self.order]


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
