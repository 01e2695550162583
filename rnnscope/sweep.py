"""Sweeps (SPEC section 12): a grid of training runs from one spec, on a local process pool or
on Ray, with the grid's summary and main effects.

A spec is a YAML file like a W&B sweep file, or `--set FLAG=a,b` on the command line:

    name: seed-grid
    method: grid
    parameters:
      hidden: {values: [256, 512]}        # swept: one grid point per combination
      corpus: {value: tinyshakespeare}    # fixed, like an ordinary train flag

Every value is converted by its TrainConfig field's type and every grid point's settings pass
TrainConfig.validate() and the corpus checks `train` makes, before anything runs.

    DIR/<name>/          an ordinary run directory per grid point, named by its swept settings
                         (hidden=256,optimizer=sgd); failure.json in it when the run failed
    DIR/logs/<name>.log  what the run printed (its plain training lines, any traceback)
    DIR/summary.json     every run: settings, status, steps, best eval NLL, final train NLL,
                         verdict, findings; and the main effect of each swept factor
    DIR/report.html      the grid's report (rnnscope/report.py)

A grid point's status is read from its directory (point_status), so the same command again
skips finished runs, resumes interrupted ones from their checkpoints and leaves failed ones
alone unless asked (--retry-failed). Runs go to a Pool: local processes (LocalPool) or Ray
tasks (rnnscope/sweep_ray.py); either way a run is run_point() in a process of its own whose
BLAS uses one thread.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import runs
from .config import TrainConfig, flag
from .errors import RnnscopeError

SUMMARY, LOGS, FAILURE = "summary.json", "logs", "failure.json"
SPEC_KEYS = ("name", "method", "parameters", "description")
FIELDS = {f.name: f.type for f in dataclasses.fields(TrainConfig)}  # name -> "int | None", ...
BLAS_ENV = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
RUN_FILES = {runs.CONFIG, runs.METRICS, runs.CHECKPOINT, runs.BEST, runs.TRIAGE, runs.REPORT,
             FAILURE}
POLL_S = 1.0


@dataclass(frozen=True)
class Spec:
    name: str
    swept: dict   # field -> list of values, in the spec's order
    fixed: dict   # field -> value


@dataclass(frozen=True)
class Point:
    """One grid point: its directory name, its swept settings and every training setting."""
    name: str
    settings: dict
    config: dict  # TrainConfig.to_dict()

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.config)


# ---- the spec: YAML or --set, each value converted and checked where it was written


def load_spec(path: Path) -> Spec:
    """The spec in a YAML file; any error is one RnnscopeError naming the file, line and key."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RnnscopeError(f"cannot read sweep file {path}: {getattr(e, 'strerror', e)}; "
                            "pass a readable YAML file") from None
    try:
        lines = key_lines(yaml.compose(text, Loader=yaml.SafeLoader), str(path))
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RnnscopeError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)}); "
                            "fix the syntax (see docs/sweeps.md for an example)") from None

    def where(*keys) -> str:
        return f"{path} line {lines.get(keys, lines.get(keys[:-1], 1))}: " + \
            ".".join(str(k) for k in keys)

    if not isinstance(doc, dict):
        raise RnnscopeError(f"{path}: a sweep file is a mapping with name, method and "
                            "parameters; see docs/sweeps.md")
    for key in doc:
        if key not in SPEC_KEYS:
            raise RnnscopeError(f"{where(key)} is not a sweep file key; use "
                                f"{', '.join(SPEC_KEYS)}")
    if doc.get("method", "grid") != "grid":
        raise RnnscopeError(f"{where('method')}: method {doc['method']!r} is not supported; "
                            "rnnscope sweeps run the whole grid (method: grid)")
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        raise RnnscopeError(f"{where('parameters')}: give the parameters as a mapping of train "
                            "flags, e.g. hidden: {values: [256, 512]}")
    swept, fixed = {}, {}
    for key, entry in params.items():
        name = field_of(key, where("parameters", key))
        if not isinstance(entry, dict) or len(set(entry) & {"value", "values"}) != 1 \
                or set(entry) - {"value", "values"}:
            raise RnnscopeError(f"{where('parameters', key)}: give {{values: [a, b, ...]}} to "
                                "sweep it or {value: x} to fix it (only grid values, no "
                                "distributions)")
        if "value" in entry:
            fixed[name] = coerce(name, entry["value"], where("parameters", key, "value"))
            continue
        values = entry["values"]
        if not isinstance(values, list) or not values:
            raise RnnscopeError(f"{where('parameters', key, 'values')}: give a non-empty list, "
                                "e.g. values: [256, 512]")
        swept[name] = [coerce(name, v, where("parameters", key, "values", i))
                       for i, v in enumerate(values)]
    name = doc.get("name", Path(path).stem)
    return Spec(str(name), swept, fixed)


def key_lines(node, path: str, keys: tuple = ()) -> dict[tuple, int]:
    """{key path: 1-based line} of every mapping key and list item under the YAML node;
    a key given twice in one mapping (which YAML would silently resolve) is an error."""
    import yaml

    if node is None:
        return {}
    out = {keys: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for k, v in node.value:
            key = k.value
            if key in seen:
                raise RnnscopeError(f"{path} line {k.start_mark.line + 1}: {key!r} is given "
                                    "twice; give each key once")
            seen.add(key)
            out.update(key_lines(v, path, (*keys, key)))
            out[(*keys, key)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out.update(key_lines(v, path, (*keys, i)))
    return out


def spec_from_sets(sets: list[str]) -> Spec:
    """The spec of `--set FLAG=a,b` arguments; the name joins the swept flags."""
    swept = {}
    for arg in sets:
        key, eq, values = arg.partition("=")
        where = f"--set {arg}"
        if not eq or not values:
            raise RnnscopeError(f"{where}: write --set FLAG=a,b (e.g. --set hidden=256,512)")
        name = field_of(key, where)
        if name in swept:
            raise RnnscopeError(f"{where}: --set {key} is given twice; list all its values once")
        swept[name] = [coerce(name, v, where) for v in values.split(",")]
    return Spec("-".join(flag(k) for k in swept), swept, {})


def field_of(key, where: str) -> str:
    """The TrainConfig field a parameter names: a flag (seq-len) or a field name (seq_len)."""
    name = str(key).removeprefix("--").replace("-", "_")
    if name in FIELDS:
        return name
    close = difflib.get_close_matches(flag(name), [flag(f) for f in FIELDS], n=1)
    hint = f"; did you mean {close[0]}?" if close else "; see `rnnscope train --help`"
    raise RnnscopeError(f"{where}: {key!r} is not a train flag{hint}")


def coerce(name: str, value, where: str):
    """The value as its TrainConfig field's type, valid for that setting on its own (as
    TrainConfig.validate() sees it); an error names where the value was written."""
    value = convert(name, value, where)
    try:
        TrainConfig(**{name: value}).validate()
    except RnnscopeError as e:
        raise RnnscopeError(f"{where}: {e}") from None
    return value


def convert(name: str, value, where: str):
    """The value as its TrainConfig field's type (int, float, str or bool, perhaps None), from a
    YAML value or a --set string; anything else is an error naming where it was written."""
    kind = FIELDS[name].split("|")[0].strip()
    if value is None and "None" in FIELDS[name]:
        return None
    text = value.strip() if isinstance(value, str) else value
    try:
        if kind == "bool":
            words = {"true": True, "false": False}
            if isinstance(text, str) and text.lower() in words:
                return words[text.lower()]
            if isinstance(text, bool):
                return text
        elif isinstance(text, bool):
            pass
        elif kind == "int" and (isinstance(text, int) or isinstance(text, str)):
            return int(text)
        elif kind == "float" and isinstance(text, (int, float, str)) and \
                math.isfinite(float(text)):
            return float(text)
        elif kind == "str" and isinstance(text, str):
            return text
    except ValueError:
        pass
    wanted = {"int": "a whole number", "float": "a finite number", "str": "a word or a path",
              "bool": "true or false"}[kind]
    raise RnnscopeError(f"{where}: --{flag(name)} {value!r} is not {wanted}; give "
                        f"{wanted} as for `rnnscope train --{flag(name)}`")


# ---- the grid


def grid(spec: Spec, fixed: dict) -> list[Point]:
    """Every combination of the swept values, over TrainConfig's defaults, the spec's fixed
    values and the fixed train flags; each checked as `train` checks its settings."""
    both = sorted(set(spec.swept) & set(fixed))
    if both:
        raise RnnscopeError(f"--{flag(both[0])} is both swept and fixed; give it once")
    base = {**TrainConfig().to_dict(), **spec.fixed, **fixed}
    points = []
    for combo in itertools.product(*spec.swept.values()):
        settings = dict(zip(spec.swept, combo, strict=True))
        name = point_name(settings)
        cfg = TrainConfig(**{**base, **settings})
        try:
            cfg.validate()
        except RnnscopeError as e:
            raise RnnscopeError(f"grid point {name}: {e}") from None
        points.append(Point(name, settings, cfg.to_dict()))
    names = [p.name for p in points]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RnnscopeError(f"two grid points would share the directory {twice[0]}; give each "
                            "value once")
    return points


def point_name(settings: dict) -> str:
    """hidden=256,optimizer=sgd: the swept settings, as flags, safe in a file name."""
    if not settings:
        return "run"
    return ",".join(f"{flag(k)}={name_value(v)}" for k, v in settings.items())


def name_value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return repr(v)
    text = Path(v).name if isinstance(v, str) and "/" in v else str(v)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def check_data(points: list[Point]) -> None:
    """Each point's corpus loads and its splits hold one chunk: the checks `train` makes
    before it creates a run, made for the whole grid before anything runs."""
    from .data import check_trainable, load_corpus, split

    lengths = {}
    for p in points:
        cfg = p.train_config()
        key = (cfg.corpus, cfg.data_dir)
        try:
            if key not in lengths:
                lengths[key] = len(load_corpus(*key).text)
            # the split's lengths are all check_trainable needs: stand-in ids of that length
            train_ids, eval_ids = split(range(lengths[key]), cfg.eval_frac)
            check_trainable(train_ids, eval_ids, cfg.batch, cfg.seq_len)
        except RnnscopeError as e:
            raise RnnscopeError(f"grid point {p.name}: {e}") from None


# ---- a grid point's status, read from its directory


@dataclass(frozen=True)
class Status:
    state: str          # pending | started | interrupted | finished | failed
    step: int = 0       # the checkpoint's step
    detail: str = ""    # why it failed


def point_status(path: Path, cfg: TrainConfig) -> Status:
    """pending: nothing there; started: no checkpoint yet (it starts over); interrupted: a
    checkpoint short of the end; finished; failed: failure.json or a diverged last record."""
    if not path.is_dir() or not any(path.iterdir()):
        return Status("pending")
    if (path / FAILURE).exists():
        return Status("failed", detail=read_failure(path).get("error", "failed"))
    records = runs.read_metrics(path)
    if records and records[-1].get("diverged"):
        return Status("failed", records[-1]["step"], f"diverged at step {records[-1]['step']}: "
                      f"{records[-1]['diverged']}")
    if not (path / runs.CHECKPOINT).exists():
        return Status("started")
    step = runs.load_checkpoint(path / runs.CHECKPOINT)[3]["step"]
    return Status("finished" if finished(path, cfg, step) else "interrupted", step)


def finished(path: Path, cfg: TrainConfig, step: int) -> bool:
    """A run by steps has them all; a run by minutes ended normally: its triage.json, written
    last, is at least as new as its checkpoint (an interruption writes only the checkpoint)."""
    from .train import DEFAULT_STEPS

    if cfg.minutes is None:
        return step >= (cfg.steps or DEFAULT_STEPS)
    triage = path / runs.TRIAGE
    return triage.exists() and \
        triage.stat().st_mtime_ns >= (path / runs.CHECKPOINT).stat().st_mtime_ns


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
    """A run already in DIR under a point's name must have the point's settings (those a resume
    cannot change); else the sweep would mix two experiments under one name."""
    from .train import RESUMABLE

    for p in points:
        if not (out / p.name / runs.CONFIG).exists():
            continue
        had = TrainConfig.from_dict(runs.read_config(out / p.name)["config"]).to_dict()
        for key, value in p.config.items():
            if key not in (*RESUMABLE, "report") and had[key] != value:
                raise RnnscopeError(
                    f"{out / p.name} was trained with --{flag(key)} {had[key]}, but this sweep "
                    f"gives {value}; use another --out, or move that run away")


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


def run_point(point: Point, out: str) -> str:
    """Train the point to its end in out/<name>: a new run, or the interrupted one resumed (a
    failed one is retried: resumed, or started over when it diverged or has no checkpoint).
    A failure is written to failure.json, never raised. Returns finished | failed |
    interrupted."""
    from .display import PlainDisplay
    from .train import Diverged, train

    path, cfg = Path(out) / point.name, point.train_config()
    (Path(out) / LOGS).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / LOGS / f"{point.name}.log", "a", encoding="utf-8") as log:
        try:
            (path / FAILURE).unlink(missing_ok=True)
            status = point_status(path, cfg)
            if status.state == "finished":
                return "finished"
            if status.state in ("started", "failed"):
                clear(path)
            if status.state == "interrupted":
                print(f"resuming from step {status.step}", file=log, flush=True)
                train(cfg, None, str(path), PlainDisplay(log))
            else:
                train(cfg, str(path), None, PlainDisplay(log))
            return "finished"
        except KeyboardInterrupt:
            return "interrupted"
        except Diverged as e:  # its last record says so; triage.json has the findings
            print(e, file=log, flush=True)
        except RnnscopeError as e:
            record_failure(path, str(e), "error")
        except Exception as e:  # noqa: BLE001 - one run's bug must not stop the grid
            traceback.print_exc(file=log)
            record_failure(path, f"{type(e).__name__}: {e} (traceback in {log.name})", "error")
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
        (self.out / LOGS).mkdir(parents=True, exist_ok=True)
        doc = json.dumps(dataclasses.asdict(point))
        with open(self.out / LOGS / f"{point.name}.log", "a", encoding="utf-8") as log:
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
    return LocalPool(out, workers or os.cpu_count() or 1)


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
    display.start(tracker.rows(), len(todo))
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
                write_summary(out, summarize(points, out, name))
            display.update(tracker.rows(running))
    finally:
        pool.stop()
        display.finish()
        summary = summarize(points, out, name)
        write_summary(out, summary)
    return summary


class Tracker:
    """The grid's live rows: each point's state, step, latest NLLs and verdict so far, read
    from its run directory and judged by a triage Watch as its records arrive."""

    def __init__(self, points: list[Point], out: Path) -> None:
        from .train import DEFAULT_STEPS

        self.out, self.order = out, [p.name for p in points]
        self.cfgs = {p.name: p.train_config() for p in points}
        self.states = {n: point_status(out / n, cfg) for n, cfg in self.cfgs.items()}
        self.total = {n: cfg.steps or (None if cfg.minutes else DEFAULT_STEPS)
                      for n, cfg in self.cfgs.items()}
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
            found = row["watch"].findings()
            row.update(step=records[-1]["step"], seen=len(records),
                       verdict=found[0]["id"] if found else "healthy")

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

    def rows(self, running=()) -> list[dict]:
        for name in running:
            self.refresh(name)
        keys = ("step", "train_nll", "best_eval", "verdict")
        return [{"name": n, "state": self.states[n].state, "total": self.total[n],
                 **{k: self.live[n][k] for k in keys}} for n in self.order]


# ---- summary and main effects


def summarize(points: list[Point], out: Path, name: str = "") -> dict:
    """summary.json: the grid's settings, each run's outcome, the main effects."""
    rows = [run_summary(p, out) for p in points]
    swept = list(points[0].settings) if points else []
    fixed = {k: v for k, v in points[0].config.items() if k not in swept} if points else {}
    return {"name": name, "method": "grid", "swept": swept, "fixed": fixed, "runs": rows,
            "effects": main_effects(rows, swept)}


def run_summary(point: Point, out: Path) -> dict:
    """One run's line in summary.json."""
    from .report import diagnosis

    path = out / point.name
    status = point_status(path, point.train_config())
    row = {"name": point.name, "path": point.name, "settings": point.settings,
           "status": status.state, "error": status.detail or None, "steps": status.step,
           "best_eval_nll": None, "best_eval_step": None, "final_train_nll": None,
           "verdict": None, "findings": []}
    if not (path / runs.CONFIG).exists():
        return row
    records = runs.read_metrics(path)
    evals = [(r["eval_nll"], r["step"]) for r in records if r.get("eval_nll") is not None]
    trains = [r["train_nll"] for r in records if r.get("train_nll") is not None]
    d = diagnosis(path)
    row.update(best_eval_nll=min(evals)[0] if evals else None,
               best_eval_step=min(evals)[1] if evals else None,
               final_train_nll=trains[-1] if trains else None,
               steps=max(status.step, records[-1]["step"] if records else 0),
               verdict=d["verdict"], findings=d["findings"])
    return row


def main_effects(rows: list[dict], swept: list[str]) -> list[dict]:
    """For each factor swept over several values: the best eval NLL of the finished runs with
    each value (n, mean, standard deviation, min, max; how many failed), and the range of the
    means; the factor that moved the result most first."""
    effects = []
    for factor in swept:
        values = list(dict.fromkeys(r["settings"][factor] for r in rows))
        if len(values) < 2:
            continue
        per = []
        for v in values:
            mine = [r for r in rows if r["settings"][factor] == v]
            best = [r["best_eval_nll"] for r in mine if r["status"] == "finished"
                    and r["best_eval_nll"] is not None]
            per.append({"value": v, "n": len(best),
                        "failed": sum(r["status"] == "failed" for r in mine),
                        "mean": statistics.fmean(best) if best else None,
                        "std": statistics.pstdev(best) if best else None,
                        "min": min(best, default=None), "max": max(best, default=None)})
        means = [e["mean"] for e in per if e["mean"] is not None]
        effects.append({"factor": factor, "values": per,
                        "range": max(means) - min(means) if len(means) > 1 else None})
    return sorted(effects, key=lambda e: -(e["range"] or 0))


def effect_curves(summary: dict, records: dict[str, list[dict]]) -> list[tuple[str, list]]:
    """Each main effect over training: [(flag, [(value, steps, mean, min, max)])], the eval NLL
    of the finished runs with each value at the steps all of them evaluated."""
    curves = []
    for e in summary["effects"]:
        lines = []
        for v in e["values"]:
            evals = [{r["step"]: r["eval_nll"] for r in records.get(row["name"], [])
                      if r.get("eval_nll") is not None} for row in summary["runs"]
                     if row["settings"][e["factor"]] == v["value"]
                     and row["status"] == "finished"]
            steps = sorted(set.intersection(*(set(ev) for ev in evals))) if evals else []
            ys = [[ev[s] for ev in evals] for s in steps]  # (steps, runs)
            lines.append((v["value"], steps, [statistics.fmean(y) for y in ys],
                          [min(y) for y in ys], [max(y) for y in ys]))
        curves.append((f"--{flag(e['factor'])}", lines))
    return curves


def write_summary(out: Path, summary: dict) -> None:
    runs.write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")


def ranked(summary: dict) -> list[dict]:
    """The runs, best eval NLL first; runs without one last, in grid order."""
    return sorted(summary["runs"], key=lambda r: (r["best_eval_nll"] is None,
                                                  r["best_eval_nll"] or 0))


def fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def format_summary(summary: dict) -> str:
    """The grid as text: runs sorted by best eval, then each factor's main effect."""
    head = ["#", "run", "status", "steps", "best eval", "final train", "verdict"]
    rows = [[str(i + 1), r["name"], r["status"], str(r["steps"]), fmt(r["best_eval_nll"]),
             fmt(r["final_train_nll"]), r["verdict"] or "-"]
            for i, r in enumerate(ranked(summary))]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
             for row in [head, *rows]]
    if summary["effects"]:
        lines += ["", "main effects (mean best eval NLL of the finished runs per value, "
                  "± standard deviation):"]
    for e in summary["effects"]:
        parts = [f"{value_text(v['value'])} {fmt(v['mean'])} ± {fmt(v['std'])} (n={v['n']}"
                 + (f", {v['failed']} failed)" if v["failed"] else ")") for v in e["values"]]
        lines.append(f"  --{flag(e['factor'])}: " + ";  ".join(parts) +
                     f";  range {fmt(e['range'])}")
    return "\n".join(lines)


def value_text(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
