"""One grid point, trained in a process of its own (`python -m rnnscope.sweep OUT POINT_JSON`,
or a Ray task): a new run, a fork of another run's checkpoint (fork.py), or the one already
there resumed; or a point that runs a program of the user's own (Point.cmd)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import traceback
from pathlib import Path

from .. import runs
from ..errors import RnnscopeError, WriteFailed
from .fork import seed_fork
from .point import DONE, FAILURE, clear, length_change, open_log, record_failure, status_of
from .spec import Point


def run_point(point: Point, out: str) -> str:
    """Train the point to its end in out/<name>: a new run (or a fork of point.start's
    checkpoint), or the one there resumed (a failed one is retried: resumed, or started over
    when it diverged); a program's point runs its command. A failure is written to
    failure.json, never raised. Returns finished | failed | interrupted."""
    from ..display import PlainDisplay  # the training stack: loaded in the worker only
    from ..train import Diverged, resume, train

    path, cfg = Path(out) / point.name, point.train_config()
    with open_log(out, point.name) as log:
        display = PlainDisplay(log)
        try:
            (path / FAILURE).unlink(missing_ok=True)
            status = status_of(point, Path(out))
            if status.state == "finished":
                return "finished"
            if point.cmd is not None:
                return run_command(point.cmd, path, log)
            if status.state == "failed":
                clear(path)
            if status.state in ("started", "interrupted"):
                print(f"resuming from step {status.step}", file=log, flush=True)
                resume(path, length_change(path, cfg), display)
            elif point.start is not None:
                seed_fork(point.start, cfg, path)
                resume(path, {}, display)
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


def run_command(cmd: list[str], path: Path, log) -> str:
    """Run a program of the user's own for a point (its output into the log); exit status 0
    marks the point finished (DONE), any other is its failure. SIGINT is passed on to the
    program, which may checkpoint; the same command runs again on the next sweep."""
    path.mkdir(parents=True, exist_ok=True)
    print(f"running: {' '.join(cmd)}", file=log, flush=True)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    except OSError as e:
        record_failure(path, f"cannot run {cmd[0]}: {e.strerror or e}", "command")
        return "failed"
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        proc.wait()
        return "interrupted"
    if code != 0:
        record_failure(path, f"{cmd[0]} exited with status {code} (its output is in "
                       f"{log.name})", "command")
        return "failed"
    runs.write_text(path / DONE, json.dumps({"command": cmd, "exit": 0}) + "\n")
    return "finished"


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
