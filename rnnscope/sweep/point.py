"""A grid point's status, read from its run directory (pending, started, interrupted, finished,
failed), its failure.json and its log: what lets the same sweep command again skip finished
runs, resume interrupted ones and leave failed ones alone."""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .. import runs
from ..config import RESUMABLE, TrainConfig, shown
from ..errors import RnnscopeError
from .spec import Point

LOGS, FAILURE, DONE = "logs", "failure.json", "command.json"  # DONE: a program's point ended
RUN_FILES = {runs.CONFIG, runs.METRICS, runs.CHECKPOINT, runs.BEST, runs.TRIAGE, runs.REPORT,
             runs.LOCK, FAILURE}


@dataclass(frozen=True)
class Status:
    state: str          # pending | started | interrupted | finished | failed
    step: int = 0       # the checkpoint's step
    detail: str = ""    # why it failed


def point_status(path: Path, cfg: TrainConfig, command: bool = False) -> Status:
    """pending: nothing there; started: no checkpoint yet (a resume trains it from step 0);
    interrupted: a checkpoint short of the end; finished; failed: failure.json or a diverged
    last record. A program's point (command) is finished once its command exited 0 (DONE)."""
    if not path.is_dir() or not any(p.name != runs.LOCK for p in path.iterdir()):
        return Status("pending")
    if (path / FAILURE).exists():
        return Status("failed", detail=read_failure(path).get("error", "failed"))
    if command:
        return Status("finished" if (path / DONE).exists() else "started")
    records = runs.read_metrics(path)
    if records and records[-1].get("diverged"):
        return Status("failed", records[-1]["step"], f"diverged at step {records[-1]['step']}: "
                      f"{records[-1]['diverged']}")
    if not (path / runs.CHECKPOINT).exists():
        return Status("started")
    meta = checkpoint_meta(path / runs.CHECKPOINT)
    return Status("finished" if finished(cfg, meta) else "interrupted", meta.get("step", 0))


def status_of(point: Point, out: Path) -> Status:
    """The status of a grid point in out."""
    return point_status(out / point.name, point.train_config(), point.cmd is not None)


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
        if p.cmd is not None or not (out / p.name / runs.CONFIG).exists():
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


def open_log(out: str | Path, name: str):
    """The point's log, out/logs/NAME.log, opened for appending."""
    (Path(out) / LOGS).mkdir(parents=True, exist_ok=True)
    return open(Path(out) / LOGS / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
