"""Where a sweep's runs execute: the Pool protocol and the local pool (one Python process per
run, its BLAS on one thread); rnnscope/sweep/ray_pool.py is the same on Ray."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from .point import open_log
from .spec import Point
from .worker import EXIT

BLAS_ENV = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}


class Pool(Protocol):
    workers: int                                       # runs at once

    def submit(self, point: Point) -> None: ...
    def done(self, timeout: float) -> dict[str, str]: ...  # ended: name -> "" or why it died
    def stop(self) -> None: ...                        # interrupt running runs (checkpointed)


def worker_env() -> dict:
    """The environment of a worker process: one BLAS thread, set before NumPy loads (parallel
    runs' BLAS threads would otherwise fight over the cores); this rnnscope on the path."""
    here = str(Path(__file__).resolve().parents[2])
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


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1
