"""One grid point, trained in a process of its own (`python -m rnnscope.sweep OUT POINT_JSON`,
or a Ray task): a new run, or the one already there resumed."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from pathlib import Path

from ..errors import RnnscopeError, WriteFailed
from .point import FAILURE, clear, length_change, open_log, point_status, record_failure
from .spec import Point


def run_point(point: Point, out: str) -> str:
    """Train the point to its end in out/<name>: a new run, or the one there resumed (a failed
    one is retried: resumed, or started over when it diverged). A failure is written to
    failure.json, never raised. Returns finished | failed | interrupted."""
    from ..display import PlainDisplay  # the training stack: loaded in the worker only
    from ..train import Diverged, resume, train

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
