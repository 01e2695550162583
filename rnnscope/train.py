"""The training loop: batches -> step -> panel -> log -> checkpoint; new and resumed runs.

Stateful truncated BPTT (SPEC section 1): the train split is cut into B streams; chunk i of an
epoch is columns [i*T, (i+1)*T] of every stream, and the hidden state (not the gradient) is
carried from chunk to chunk and reset to zero at the start of each epoch (and, with
--reset-every K, for each stream every K chunks: heldout.reset_streams).

A record is written every --log-every steps and every --eval-every steps (then with eval_nll
and the state-dependence readings of heldout.py);
a checkpoint after every eval, every --checkpoint-every steps, when SIGINT or SIGTERM stops the
run (after the step it is in) and at the end. A run that ends off the cadence gets one extra
record marked "final". Resuming restores the last checkpoint and drops the records written
after it (and the final one), so a resumed run writes the same records and reaches the same
parameters as an uninterrupted one, however it was stopped, kill -9 included.

`--resume DIR` takes every setting from the run's config.json (TrainConfig.resumed says what a
resume may change). The learning-rate schedule spans the run's length when it started, its
horizon, kept in the checkpoint: a resume that raises --steps or --minutes leaves the schedule's
shape alone, and the steps beyond the horizon run at its final learning rate (cosine's floor,
step's 1/100), as a finished schedule would continue. Stretching the schedule instead would
raise the learning rate of a run that had already cooled down.
"""

from __future__ import annotations

import math
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import panel, runs
from .config import DEFAULT_STEPS, TrainConfig
from .corpora import KNOWN, Corpus, load_corpus
from .data import (
    Vocab,
    build_vocab,
    check_trainable,
    chunks_per_epoch,
    eval_streams,
    get_chunk,
    make_streams,
    split,
    unigram_log_probs,
    unigram_nll,
)
from .display import Display, PlainDisplay
from .errors import Interrupted, RnnscopeError, WriteFailed
from .heldout import evaluate, reset_streams, state_readings
from .model import LossAndGrads, Model, State
from .optim import clip_gradients, learning_rate, on_eval, optimizer_step
from .records import finite, finite_or_none
from .sinks import Sink
from .triage import Watch, format_diagnosis, headline, write_triage

__all__ = ["DEFAULT_STEPS", "Diverged", "resume", "train"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Diverged(Exception):
    """The loss or the gradient became NaN/inf; the last good checkpoint is kept."""


@dataclass
class Session:
    """Everything the loop carries from step to step; the checkpoint saves all of it."""
    cfg: TrainConfig
    path: Path
    model: Model
    vocab: Vocab
    streams: np.ndarray                 # (B, L) train streams
    eval_streams: np.ndarray            # (B', L') eval streams
    h: State                            # carried to the next chunk, in the cell's form
    rng: np.random.Generator            # dropout masks
    panel_rng: np.random.Generator      # the through-time profile's random vectors
    horizon: float                      # steps (seconds with --minutes) the lr schedule spans
    opt_state: dict = field(default_factory=dict)
    sched: dict = field(default_factory=lambda: {"factor": 1.0})
    interval: panel.Interval = field(default_factory=panel.Interval)
    step: int = 0
    epoch: int = 0
    chunk: int = 0                      # next chunk index within the epoch
    chars: int = 0
    elapsed: float = 0.0                # seconds trained before this process
    best_eval: float = math.inf
    deltas: dict | None = None
    watch: Watch | None = None          # the triage, fed each record as it is written
    sinks: list = field(default_factory=list)  # TensorBoard, W&B: each record (rnnscope.sinks)


def train(cfg: TrainConfig, run_dir: str | Path | None = None,
          display: Display | None = None, sinks: Sequence[Sink] = ()) -> Path:
    """Train a new run as cfg says and return its run directory; sinks (TensorBoard, W&B)
    get every record too. A corpus that cannot be trained on is refused before any directory
    is made."""
    cfg = located(cfg.validate().with_length())
    with abort_on_signals("while loading the corpus; nothing was written"):
        text = prepare(cfg)
    with stop_signals() as stop:  # from here a signal ends the run checkpointed
        path = runs.new_run_dir(run_dir, cfg)
        with runs.writer_lock(path), quiet_overflow():
            runs.check_new(path)  # another train that took the lock first has not written here
            runs.write_config(path, cfg, corpus_info(text), text.vocab)
            s = open_session(cfg, path, text)
            s.sinks = list(sinks)
            return run(s, display or PlainDisplay(), stop)


def resume(path: str | Path, changes: dict | None = None,
           display: Display | None = None, sinks: Sequence[Sink] = ()) -> Path:
    """Continue the run in path from its last checkpoint with the settings of its config.json;
    changes holds the flags given with --resume ({"steps": 80}: see TrainConfig.resumed)."""
    path, display = Path(path), display or PlainDisplay()
    runs.read_config(path)  # not a run: refused before a lock file is made in it
    with stop_signals() as stop, runs.writer_lock(path) as left, quiet_overflow():
        if left is not None:
            display.note(f"process {left} stopped without releasing {path / runs.LOCK} "
                         "(killed?); this process takes the run over")
        try:
            s = resume_session(path, changes or {}, display)
        except WriteFailed as e:
            raise WriteFailed(f"{e}; the run is as it was: run the same command again once the "
                              "disk has room (or the directory is writable)") from None
        s.sinks = list(sinks)
        return run(s, display, stop)


@contextmanager
def quiet_overflow() -> Iterator[None]:
    """Overflow on the way to a divergence is expected and reported by the loop, not warned."""
    with np.errstate(over="ignore", invalid="ignore"):
        yield


def run(s: Session, display: Display, stop: Stop) -> Path:
    """Train s to its planned length, then write the verdict and the report; stop (the
    caller's stop_signals) ends it early, checkpointed. The sinks are started from the
    session's step and closed however the run ends."""
    for sink in s.sinks:
        sink.start(s.path, s.step)
    try:
        return run_to_end(s, display, stop)
    finally:
        for sink in s.sinks:
            sink.close()


def run_to_end(s: Session, display: Display, stop: Stop) -> Path:
    s.watch = Watch.for_run(s.path)
    total, limit = planned_length(s)
    display.start(s.path, s.step, total, limit)
    t0, lr = time.perf_counter() - s.elapsed, s.cfg.lr

    def going() -> bool:
        return s.step < total if total else time.perf_counter() - t0 < limit

    try:
        while going() and stop.signum is None:
            lr = learning_rate(s.cfg.lr_schedule, s.cfg.lr, progress(s, t0), s.sched,
                               s.step + 1, s.cfg.warmup)
            step(s, lr, display, t0)
            display.step(s.step, s.chars, time.perf_counter() - t0)
        if going():
            raise interrupted(s, stop.signum, time.perf_counter() - t0)
        finish(s, lr, time.perf_counter() - t0, display)
    except Diverged:
        display.finish()
        conclude(s, display)
        raise
    except WriteFailed as e:
        display.finish()
        raise WriteFailed(f"{e}; everything written before is intact: once the disk has room "
                          f"(or the directory is writable), continue with: "
                          f"{resume_command(s.path)}") from None
    except KeyboardInterrupt:
        display.finish()
        raise
    display.finish()
    display.note(summary(s))
    try:
        conclude(s, display)
    except WriteFailed as e:
        raise WriteFailed(f"{e}; training finished and its checkpoint is saved; "
                          f"`rnnscope report {s.path}` writes the verdict and report") from None
    return s.path


def planned_length(s: Session) -> tuple[int | None, float | None]:
    """(total steps, None) or (None, total seconds); a run that already has them is refused."""
    cfg = s.cfg
    if cfg.minutes is not None:
        if s.elapsed >= cfg.minutes * 60:
            raise RnnscopeError(f"the run in {s.path} has already trained its {cfg.minutes:g} "
                                f"minutes; pass --minutes above {cfg.minutes:g} to continue it")
        return None, cfg.minutes * 60
    if cfg.steps <= s.step:
        raise RnnscopeError(f"the run in {s.path} already has {s.step} steps; pass --steps "
                            f"larger than {s.step} to continue it")
    return cfg.steps, None


def progress(s: Session, t0: float) -> float:
    """How far along the schedule's horizon the run is (1 and beyond: at its end)."""
    done = s.step if s.cfg.minutes is None else time.perf_counter() - t0
    return done / s.horizon


def horizon(cfg: TrainConfig) -> float:
    return cfg.steps if cfg.minutes is None else cfg.minutes * 60


# ---- stopping on SIGINT and SIGTERM


class Stop:
    """A signal handler: the first SIGINT or SIGTERM sets signum and the loop ends after the
    step it is in; a second one stops at once (the last checkpoint is kept)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise Interrupted(signum, f"stopped at once by a second {signal_name(signum)}; "
                              "the last checkpoint is kept")
        self.signum = signum


@contextmanager
def stop_signals() -> Iterator[Stop]:
    """SIGINT and SIGTERM set the Stop yielded while the block runs."""
    stop = Stop()
    with signals_to(stop):
        yield stop


@contextmanager
def abort_on_signals(doing: str) -> Iterator[None]:
    """SIGINT or SIGTERM while the block runs stops it at once: Interrupted, its message
    "stopped by SIGTERM " + doing ("while ...; what is kept"). Every file is written
    atomically, so nothing is left half-written."""
    def abort(signum: int, frame) -> None:
        raise Interrupted(signum, f"stopped by {signal_name(signum)} {doing}")

    with signals_to(abort):
        yield


@contextmanager
def signals_to(handler: Callable[[int, object], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to handler while the block runs, then back to the handlers
    before (signals reach only the main thread; elsewhere nothing is caught and the caller
    stops the run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, signal.SIG_DFL if before is None else before)


def interrupted(s: Session, signum: int, elapsed: float) -> Interrupted:
    """Checkpoint where the run stopped and say how to continue it."""
    checkpoint(s, elapsed)
    return Interrupted(signum, f"stopped by {signal_name(signum)} after step {s.step}; "
                       f"checkpoint saved; continue with: {resume_command(s.path)}")


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def resume_command(path: Path) -> str:
    return f"rnnscope train --resume {shlex.quote(str(path))}"


def step(s: Session, lr: float, display: Display, t0: float) -> None:
    """One optimizer step on the next chunk, then the record/eval/checkpoint it is due."""
    cfg = s.cfg
    if s.chunk == 0:
        s.h = s.model.zero_state(cfg.batch)
    elif cfg.reset_every:
        s.h = reset_streams(s.h, s.step + 1, cfg.reset_every)
    x, y = get_chunk(s.streams, s.chunk, cfg.seq_len)
    n = s.step + 1
    due_record = n % cfg.log_every == 0 or n % cfg.eval_every == 0
    u = update(s.model, x, y, s.h, cfg, s.opt_state, s.deltas, lr, s.rng,
               want_norms=due_record and cfg.panel)
    if not u.finite:
        diverge(s, n, lr, u.out.loss, u.grad_norm, time.perf_counter() - t0)
    s.h, s.deltas, s.step, s.chars = u.out.h_last, u.deltas, n, s.chars + x.size
    s.chunk += 1
    if s.chunk == chunks_per_epoch(s.streams, cfg.seq_len):
        s.chunk, s.epoch = 0, s.epoch + 1
    s.interval.add(n, u.out.loss, u.clip_stat, u.grad_norm)
    if due_record:
        check_params(s, n, lr, u.out.loss, u.grad_norm, time.perf_counter() - t0)
        rec = record(s, lr, time.perf_counter() - t0, u)
        if n % cfg.eval_every == 0:
            rec.update(held_out(s, time.perf_counter() - t0))
            if on_eval(cfg.lr_schedule, s.sched, rec["eval_nll"]):
                display.note(f"step {n}: eval NLL stalled, learning rate factor now "
                             f"{s.sched['factor']:g}")
        write_record(s, rec, display)
    if n % cfg.eval_every == 0 or (cfg.checkpoint_every and n % cfg.checkpoint_every == 0):
        checkpoint(s, time.perf_counter() - t0)


@dataclass
class Update:
    """What one training step computed (see update())."""
    out: LossAndGrads
    grad_norm: float                    # global norm before clipping
    clip_stat: float                    # 1/0 for norm clipping, fraction for elementwise
    norms: dict | None                  # per-parameter gradient norms before clipping
    deltas: dict | None                 # the change applied to each parameter
    finite: bool                        # False: loss or gradient NaN/inf, nothing applied


def update(model: Model, x: np.ndarray, y: np.ndarray, h: np.ndarray, cfg: TrainConfig,
           opt_state: dict, deltas: dict | None, lr: float, rng: np.random.Generator,
           want_norms: bool) -> Update:
    """Gradients, clipping and the optimizer step: the compute of one training step.
    `deltas` are buffers reused from the previous step (None on the first)."""
    out = model.loss_and_grads(x, y, h, cfg.dropout, rng)
    norms = panel.grad_norms(out.grads) if want_norms else None
    grad_norm, clip_stat = clip_gradients(out.grads, cfg.clip, cfg.clip_value)
    if not (math.isfinite(out.loss) and math.isfinite(grad_norm)):
        return Update(out, grad_norm, clip_stat, None, deltas, finite=False)
    deltas = optimizer_step(cfg.optimizer, model.params, out.grads, opt_state, lr,
                            cfg.weight_decay, deltas)
    return Update(out, grad_norm, clip_stat, norms, deltas, finite=True)


def base_record(s: Session, lr: float, elapsed: float) -> dict:
    """The keys every record starts with."""
    return {"step": s.step, "chars": s.chars, "elapsed_s": round(elapsed, 3), "lr": lr,
            "epoch": s.epoch}


def record(s: Session, lr: float, elapsed: float, u: Update) -> dict:
    rec = base_record(s, lr, elapsed)
    rec.update(s.interval.summary(s.step))
    rec["grad_norm"] = u.grad_norm
    if u.norms is not None:
        rec.update(panel.measure(u.out.probes, s.model.params, u.norms, u.deltas,
                                  s.cfg.sat_threshold, s.panel_rng, s.cfg.cell))
    return rec


def write_record(s: Session, rec: dict, display: Display) -> None:
    rec = {k: finite_or_none(v) for k, v in rec.items()}
    runs.append_record(s.path, rec)
    display.record(rec)
    findings = s.watch.update(rec)
    for finding in findings:
        display.note(f"step {rec['step']}: {headline(finding)}")
    for sink in s.sinks:
        sink.write(rec, findings)


def held_out(s: Session, elapsed: float) -> dict:
    """The eval record's scores: eval_nll (best.npz kept at a new best) and, with the panel,
    the state-dependence readings (rnnscope/heldout.py)."""
    e = evaluate(s.model, s.eval_streams, s.cfg.seq_len)
    if e < s.best_eval:
        s.best_eval = e
        save(s, runs.BEST, elapsed, checkpoint_meta(s))
    if not s.cfg.panel:
        return {"eval_nll": e}
    return {"eval_nll": e, **state_readings(s.model, s.eval_streams, s.streams, s.chunk,
                                            s.cfg.seq_len, s.h)}


def finish(s: Session, lr: float, elapsed: float, display: Display) -> None:
    """Close the run: a final record and eval when the run ended off the cadence, checkpoint.
    The checkpoint holds the state before the final record, which a resume drops."""
    meta = checkpoint_meta(s)
    if s.interval.state["n"] > 0:
        rec = {**base_record(s, lr, elapsed), **s.interval.summary(s.step), "final": True}
        if s.step % s.cfg.eval_every != 0:
            rec.update(held_out(s, elapsed))
        write_record(s, rec, display)
    checkpoint(s, elapsed, meta)


def conclude(s: Session, display: Display) -> None:
    """The verdict into triage.json and the report into report.html (unless --no-report); a
    signal stops it at once, the training and its checkpoint already saved."""
    with abort_on_signals(f"while writing the verdict and the report; the run is saved: "
                          f"`rnnscope report {shlex.quote(str(s.path))}` writes the report"):
        result = write_triage(s.path)
        display.note(format_diagnosis(result))
        if s.cfg.report:
            from .report import write_report  # matplotlib: loaded only by runs with a report

            display.note(f"report: {write_report([s.path], None)}")


def summary(s: Session) -> str:
    """The closing line: the best eval NLL against the baselines and, when known, the floor."""
    corpus = runs.read_config(s.path).get("corpus", {})
    best = f"best eval NLL {s.best_eval:.4f} nats/char" if math.isfinite(s.best_eval) \
        else "no eval yet"
    floor = corpus.get("floor_nll")
    if finite(floor):
        above = f"{s.best_eval - floor:.4f} above " if math.isfinite(s.best_eval) else ""
        best += f", {above}the floor {floor:.4f} (the source's entropy rate)"
    baselines = [f"{name} {corpus[key]:.4f}" for name, key in (
        ("unigram baseline", "unigram_eval_nll"), ("uniform", "uniform_nll"))
        if finite(corpus.get(key))]  # a config.json of an older version may lack them
    return f"{s.step} steps, {s.chars:,} chars: {best}" + \
        (f" ({', '.join(baselines)})" if baselines else "")


def check_params(s: Session, n: int, lr: float, loss: float, grad_norm: float,
                 elapsed: float) -> None:
    """A finite loss can still leave parameters that overflowed in the update: stop there."""
    if not all(np.isfinite(v).all() for v in s.model.params.values()):
        diverge(s, n, lr, loss, grad_norm, elapsed, what="parameters")


def diverge(s: Session, n: int, lr: float, loss: float, grad_norm: float, elapsed: float,
            what: str | None = None):
    what = what or ("loss" if not math.isfinite(loss) else "gradient norm")
    rec = {**base_record(s, lr, elapsed), "step": n, "train_nll": loss, "grad_norm": grad_norm,
           "diverged": f"{what} not finite"}
    runs.append_record(s.path, {k: finite_or_none(v) for k, v in rec.items()})
    kept = "the last good checkpoint is kept" if (s.path / runs.CHECKPOINT).exists() \
        else "no checkpoint was written before it"
    raise Diverged(f"training diverged at step {n}: the {what} became NaN/inf; {kept} in "
                   f"{s.path}; try a lower --lr or --clip norm")


# ---- sessions: new, saved, resumed


@dataclass(frozen=True)
class Text:
    """A corpus ready to train on: its vocabulary and its (N,) int32 train and eval ids."""
    corpus: Corpus
    vocab: Vocab
    train_ids: np.ndarray
    eval_ids: np.ndarray


def prepare(cfg: TrainConfig) -> Text:
    corpus = load_corpus(cfg.corpus, cfg.data_dir)
    vocab = build_vocab(corpus.text)
    train_ids, eval_ids = split(vocab.encode(corpus.text), cfg.eval_frac)
    check_trainable(train_ids, eval_ids, cfg.batch, cfg.seq_len)
    return Text(corpus, vocab, train_ids, eval_ids)


def located(cfg: TrainConfig) -> TrainConfig:
    """cfg with a corpus file and --data-dir as absolute paths: the run resumes from anywhere."""
    changes = {}
    if cfg.corpus not in KNOWN and Path(cfg.corpus).is_file():
        changes["corpus"] = str(Path(cfg.corpus).resolve())
    if cfg.data_dir is not None:
        changes["data_dir"] = str(Path(cfg.data_dir).resolve())
    return replace(cfg, **changes)


def corpus_info(text: Text) -> dict:
    """What config.json says of the corpus, with the baselines a model must beat and its floor
    (the best any model can reach; null when unknown)."""
    corpus = text.corpus
    info = {"name": corpus.name, "chars": len(corpus.text), "sha256": corpus.sha256,
            "train_chars": len(text.train_ids), "eval_chars": len(text.eval_ids),
            "unigram_eval_nll": unigram_nll(text.train_ids, text.eval_ids, text.vocab.size),
            "uniform_nll": math.log(text.vocab.size), "floor_nll": corpus.floor_nll}
    return info if corpus.source is None else {**info, "source": corpus.source}


def open_session(cfg: TrainConfig, path: Path, text: Text) -> Session:
    """The session at step 0: the model initialised from the seed (the readout bias at the log
    unigram frequencies with --readout-init prior), fresh RNGs and cursor."""
    model = runs.model_for(cfg, text.vocab.size)
    if cfg.readout_init == "prior":
        model.params["by"][...] = unigram_log_probs(text.train_ids, text.vocab.size)
    return Session(cfg=cfg, path=path, model=model, vocab=text.vocab,
                   streams=make_streams(text.train_ids, cfg.batch),
                   eval_streams=eval_streams(text.eval_ids, cfg.batch, cfg.seq_len),
                   h=model.zero_state(cfg.batch), rng=np.random.default_rng([cfg.seed, 1]),
                   panel_rng=np.random.default_rng([cfg.seed, 2]), horizon=horizon(cfg))


def checkpoint_meta(s: Session) -> dict:
    return {"step": s.step, "epoch": s.epoch, "chunk": s.chunk, "chars": s.chars,
            "best_eval": s.best_eval if math.isfinite(s.best_eval) else None,
            "sched": dict(s.sched), "horizon": s.horizon, "interval": dict(s.interval.state),
            "rng": s.rng.bit_generator.state, "panel_rng": s.panel_rng.bit_generator.state}


def checkpoint(s: Session, elapsed: float, meta: dict | None = None) -> None:
    """Save checkpoint.npz, after making the records up to it durable."""
    runs.sync_records(s.path)
    save(s, runs.CHECKPOINT, elapsed, meta or checkpoint_meta(s))


def save(s: Session, name: str, elapsed: float, meta: dict) -> None:
    """Write a checkpoint; parameters that overflowed are never written over a good one."""
    bad = [k for k, v in s.model.params.items() if not np.isfinite(v).all()]
    if bad:
        raise Diverged(f"training diverged by step {s.step}: parameter {bad[0]} overflowed to "
                       f"NaN/inf; the last good checkpoint is kept in {s.path}; try a lower "
                       "--lr or --clip norm")
    runs.save_checkpoint(s.path / name, s.model.params, s.opt_state,
                         s.model.state_parts(s.h), {**meta, "elapsed_s": elapsed})


def resume_session(path: Path, changes: dict, display: Display) -> Session:
    """The session of the run in path at its last checkpoint (at step 0 when it stopped before
    its first), the records after that step dropped. Nothing is written before every check
    has passed, so a refused resume leaves the run as it was."""
    doc = runs.read_config(path)
    saved = TrainConfig.from_dict(doc["config"]).with_length()
    try:
        cfg = located(saved.resumed(changes))
    except RnnscopeError as e:
        raise RnnscopeError(f"run {path}: {e}") from None
    text = resumed_text(cfg, doc, path)
    file = path / runs.CHECKPOINT
    saved_arrays = runs.load_checkpoint(file) if file.exists() else None
    if saved_arrays:
        runs.check_size(cfg, text.vocab.size, saved_arrays[0], file)
    s = open_session(cfg, path, text)
    if saved_arrays:
        params, opt_state, state, meta = saved_arrays
        runs.check_params(s.model, params, file)
        check_saved_state(s, opt_state, state, file)
        restore_meta(s, meta, file)
        restore(s, params, opt_state, s.model.state_of(state), meta)
    else:
        display.note(f"{path} has no checkpoint yet (it stopped before its first one): "
                     "training it from step 0")
    planned_length(s)
    runs.remove_temporary_files(path)
    if cfg != TrainConfig.from_dict(doc["config"]):
        runs.write_config(path, cfg, corpus_info(text), text.vocab)
    runs.keep_records(path, lambda r: r["step"] <= s.step and not r.get("final"))
    note_horizon(s, display)
    return s


def resumed_text(cfg: TrainConfig, doc: dict, path: Path) -> Text:
    """The corpus of cfg, checked to be the very text the run in path was trained on."""
    try:
        text = prepare(cfg)
    except RnnscopeError as e:
        raise RnnscopeError(f"cannot read the corpus the run in {path} was trained on ({e}); "
                            "if it moved, pass --corpus PATH or --data-dir DIR holding the same "
                            "text") from None
    if text.vocab.chars != doc["vocab"]:
        raise RnnscopeError(f"corpus {cfg.corpus!r} has a different vocabulary from the run in "
                            f"{path} ({text.vocab.size} vs {len(doc['vocab'])} characters); "
                            "resume with the corpus the run was trained on (--corpus)")
    saved = doc.get("corpus", {}).get("sha256")
    if saved is None:
        raise RnnscopeError(f"{path / runs.CONFIG} records no SHA-256 of the corpus, so the "
                            "text the run was trained on cannot be checked; start a new run")
    if text.corpus.sha256 != saved:
        raise RnnscopeError(f"corpus {cfg.corpus!r} is not the text the run in {path} was "
                            "trained on (SHA-256 differs); resume with the original corpus")
    return text


WHOLE = ("step", "epoch", "chunk", "chars")


def check_saved_state(s: Session, opt_state: dict, state: dict, file: Path) -> None:
    """The optimizer slots and the carried state of a checkpoint fit s's model and batch."""
    L, H = s.cfg.layers, s.cfg.hidden
    for part in s.model.cell_module.STATE:
        a = state.get(part)
        if a is None or a.shape != (L, s.cfg.batch, H):
            raise RnnscopeError(f"checkpoint {file}: state/{part} is "
                                f"{'missing' if a is None else a.shape}, expected "
                                f"{(L, s.cfg.batch, H)}; restore the run's files together or "
                                "start a new run")
        runs.check_array(a, f"state/{part}", file)
    for key, a in opt_state.items():
        like = s.model.params.get(key.split(".", 1)[-1])
        if key == "t" and a.shape == () and np.issubdtype(a.dtype, np.integer):
            continue
        if like is None or a.shape != like.shape or a.dtype != like.dtype:
            raise RnnscopeError(f"checkpoint {file}: opt/{key} ({a.dtype.name} {a.shape}) is no "
                                f"slot of the {s.cfg.optimizer} optimizer this run has; restore "
                                "the run's files together or start a new run")
        runs.check_array(a, f"opt/{key}", file)


def restore_meta(s: Session, meta, file: Path) -> None:
    """Check a checkpoint's meta (step, cursor, RNG states, schedule, interval) as this version
    writes it; a meta of another kind is one RnnscopeError naming the file."""
    problem = meta_problem(s, meta)
    if problem is None:
        try:
            generator(meta["rng"]), generator(meta["panel_rng"])
        except (KeyError, TypeError, ValueError) as e:
            problem = f"RNG state: {type(e).__name__}"
    if problem:
        raise RnnscopeError(f"checkpoint {file} is not one this version reads ({problem}); use "
                            "best.npz or start a new run")


def meta_problem(s: Session, meta) -> str | None:
    if not isinstance(meta, dict):
        return f"meta is {type(meta).__name__}, not an object"
    for key in WHOLE:
        if not (type(meta.get(key)) is int and meta[key] >= 0):
            return f"{key} is {meta.get(key)!r}"
    if meta["chunk"] >= chunks_per_epoch(s.streams, s.cfg.seq_len):
        return f"chunk {meta['chunk']} is past the epoch"
    for key in ("sched", "interval"):
        if not isinstance(meta.get(key), dict):
            return f"{key} is {meta.get(key)!r}, not an object"
    numbers = {"elapsed_s": meta.get("elapsed_s"), "horizon": meta.get("horizon", 1),
               **{f"sched.{k}": v for k, v in meta["sched"].items()},
               **{f"interval.{k}": meta["interval"].get(k) for k in panel.Interval.EMPTY}}
    if "best_eval" not in meta:
        return "best_eval is missing"
    if meta["best_eval"] is not None:
        numbers["best_eval"] = meta["best_eval"]
    bad = [k for k, v in numbers.items() if not finite(v)]
    if bad:
        return f"{bad[0]} is {numbers[bad[0]]!r}"
    return None if numbers["horizon"] > 0 else f"horizon is {numbers['horizon']}"


def restore(s: Session, params: dict, opt_state: dict, h: State, meta: dict) -> None:
    """Put a checkpoint's parameters, optimizer and model state and loop state into s."""
    for k in s.model.params:
        s.model.params[k][...] = params[k]
    s.opt_state, s.h = opt_state, h
    s.rng, s.panel_rng = generator(meta["rng"]), generator(meta["panel_rng"])
    s.sched, s.interval = meta["sched"], panel.Interval(meta["interval"])
    s.step, s.epoch, s.chunk, s.chars = meta["step"], meta["epoch"], meta["chunk"], meta["chars"]
    s.elapsed = meta["elapsed_s"]
    s.best_eval = math.inf if meta["best_eval"] is None else meta["best_eval"]
    s.horizon = meta.get("horizon", s.horizon)  # older checkpoints: the run's length now


def note_horizon(s: Session, display: Display) -> None:
    """Say so when a raised length runs past the end of a decaying schedule."""
    schedule = s.cfg.lr_schedule
    if schedule in ("step", "cosine") and horizon(s.cfg) > s.horizon:
        unit = "steps" if s.cfg.minutes is None else "seconds"
        final = learning_rate(schedule, s.cfg.lr, 1.0, s.sched)
        display.note(f"the {schedule} schedule keeps its shape over the run's first "
                     f"{round(s.horizon):,} {unit}; the rest runs at its final learning rate "
                     f"{final:g}")


def generator(state: dict) -> np.random.Generator:
    g = np.random.default_rng()
    g.bit_generator.state = state
    return g
