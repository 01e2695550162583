"""Sweeps (SPEC section 12): running a grid of training runs (spec.py builds it), each grid
point an ordinary run directory, on local processes or Ray tasks.

    DIR/<name>/          an ordinary run directory per grid point, named by its swept settings
                         (hidden=256,optimizer=sgd); failure.json in it when the run failed
    DIR/logs/<name>.log  what the run printed (its plain training lines, any traceback)
    DIR/summary.json     summary.py, rewritten as runs end
    DIR/report.html      the grid's page (page.py)

A grid point's status is read from its directory (point_status), so the same command again
skips finished runs, resumes interrupted ones from their checkpoints and leaves failed ones
alone unless asked (--retry-failed). Runs go to a Pool: local processes (LocalPool) or Ray
tasks (ray_pool.py); either way a run is worker.run_point() in a process of its own whose
BLAS uses one thread. The Tracker follows the runs for the live table.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import runs
from ..errors import RnnscopeError
from ..triage import Watch
from .point import LOGS, Status, check_existing, record_failure, status_of
from .pool import LocalPool, Pool, cores
from .spec import Point, Spec, check_data, grid
from .summary import fmt, summarize, write_summary

POLL_S = 1.0


def make_pool(backend: str, out: Path, workers: int | None, address: str | None) -> Pool:
    """The local process pool (workers default: the machine's cores) or Ray."""
    if workers is not None and workers < 1:
        raise RnnscopeError(f"--workers must be positive, got {workers}")
    if backend == "ray":
        from .ray_pool import RayPool  # Ray is an optional extra, imported when asked for

        return RayPool(out, workers, address)
    if address:
        raise RnnscopeError("--address joins a Ray cluster; add --backend ray")
    return LocalPool(out, workers or cores())


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
        self.points = {p.name: p for p in points}
        self.states = self.statuses()
        self.total = {p.name: p.train_config().with_length().steps for p in points}
        self.live = {n: {"step": 0, "train_nll": None, "best_eval": None, "verdict": None,
                         "seen": 0, "watch": None} for n in self.order}
        for name in self.order:
            self.refresh(name)

    def refresh(self, name: str) -> None:
        """Feed the run's new records to its Watch (a new one when a resume dropped some)."""
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
        status = status_of(self.points[name], self.out)
        if why or status.state in ("pending", "started"):
            record_failure(self.out / name, why or "the worker stopped before the run "
                           f"finished; see {self.out / LOGS / name}.log", "worker")
            status = status_of(self.points[name], self.out)
        self.states[name] = status
        self.refresh(name)
        row = self.live[name]
        if status.state == "failed":
            return f"failed {name}: {status.detail}"
        return (f"{status.state} {name}: step {row['step']}, best eval NLL "
                f"{fmt(row['best_eval'])}, verdict {row['verdict']}")

    def statuses(self) -> dict[str, Status]:
        """Each point's status as read from its directory now."""
        return {n: status_of(p, self.out) for n, p in self.points.items()}

    def rows(self, running=()) -> list[dict]:
        for name in running:
            self.refresh(name)
        keys = ("step", "train_nll", "best_eval", "verdict")
        return [{"name": n, "state": self.states[n].state, "total": self.total[n],
                 **{k: self.live[n][k] for k in keys}} for n in self.order]
