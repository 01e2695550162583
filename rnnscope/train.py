"""The training loop: batches -> step -> panel -> log -> checkpoint.

Stateful truncated BPTT (SPEC section 1): the train split is cut into B streams; chunk i of an
epoch is columns [i*T, (i+1)*T] of every stream, and the hidden state (not the gradient) is
carried from chunk to chunk and reset to zero at the start of each epoch.

A record is written every --log-every steps and every --eval-every steps (then with eval_nll);
a checkpoint after every eval and at the end. A run that ends off the cadence gets one extra
record marked "final": resuming drops it and restores the state saved before it, so a resumed
run writes the same records as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import panel, runs
from .advice import format_diagnosis, headline
from .config import TrainConfig
from .data import (
    Vocab,
    build_vocab,
    check_trainable,
    chunks_per_epoch,
    eval_streams,
    get_chunk,
    load_corpus,
    make_streams,
    split,
    unigram_nll,
)
from .display import Display, PlainDisplay
from .errors import RnnscopeError
from .model import LossAndGrads, Model, State
from .optim import clip_gradients, learning_rate, on_eval, optimizer_step
from .report import write_report
from .triage import Watch, write_triage

DEFAULT_STEPS = 9_000  # about two minutes on a 2-core machine at the default size
RESUMABLE = ("steps", "minutes", "data_dir", "corpus")  # settings a resumed run may change


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


def train(cfg: TrainConfig, run_dir: str | None = None, resume: str | None = None,
          display: Display | None = None) -> Path:
    """Train a model as cfg says and return its run directory.
    Overflow on the way to a divergence is expected and reported by the loop, not warned."""
    with np.errstate(over="ignore", invalid="ignore"):
        return train_loop(cfg, run_dir, resume, display)


def train_loop(cfg: TrainConfig, run_dir: str | None, resume: str | None,
               display: Display | None) -> Path:
    s = resume_session(Path(resume), cfg) if resume else new_session(cfg.validate(), run_dir)
    s.watch = Watch.for_run(s.path)
    display = display or PlainDisplay()
    total, limit = planned_length(s)
    display.start(s.path, s.step, total, limit)
    t0, lr = time.perf_counter() - s.elapsed, s.cfg.lr
    try:
        while (s.step < total) if total else (time.perf_counter() - t0 < limit):
            elapsed = time.perf_counter() - t0
            progress = s.step / total if total else elapsed / limit
            lr = learning_rate(s.cfg.lr_schedule, s.cfg.lr, progress, s.sched)
            step(s, lr, display, t0)
            display.step(s.step, s.chars, time.perf_counter() - t0)
    except Diverged:
        display.finish()
        conclude(s, display)
        raise
    except KeyboardInterrupt:
        save(s, runs.CHECKPOINT, time.perf_counter() - t0, checkpoint_meta(s))
        display.note(f"interrupted at step {s.step}; continue with --resume {s.path}")
        display.finish()
        raise
    finish(s, lr, time.perf_counter() - t0, display)
    return s.path


def planned_length(s: Session) -> tuple[int | None, float | None]:
    cfg = s.cfg
    if cfg.minutes is not None:
        return None, s.elapsed + cfg.minutes * 60
    total = cfg.steps or DEFAULT_STEPS
    if total <= s.step:
        raise RnnscopeError(f"the run already has {s.step} steps; pass --steps larger than "
                            f"{s.step} to continue it")
    return total, None


def step(s: Session, lr: float, display: Display, t0: float) -> None:
    """One optimizer step on the next chunk, then the record/eval/checkpoint it is due."""
    cfg = s.cfg
    if s.chunk == 0:
        s.h = s.model.zero_state(cfg.batch)
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
            rec["eval_nll"] = evaluate_and_keep_best(s, time.perf_counter() - t0)
            if on_eval(cfg.lr_schedule, s.sched, rec["eval_nll"]):
                display.note(f"step {n}: eval NLL stalled, learning rate factor now "
                             f"{s.sched['factor']:g}")
        write_record(s, rec, display)
        if n % cfg.eval_every == 0:
            save(s, runs.CHECKPOINT, time.perf_counter() - t0, checkpoint_meta(s))


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


def record(s: Session, lr: float, elapsed: float, u: Update) -> dict:
    rec = {"step": s.step, "chars": s.chars, "elapsed_s": round(elapsed, 3), "lr": lr,
           "epoch": s.epoch}
    rec.update(s.interval.summary(s.step))
    rec["grad_norm"] = u.grad_norm
    if u.norms is not None:
        rec.update(panel.readings(u.out.probes, s.model.params, u.norms, u.deltas,
                                  s.cfg.sat_threshold, s.panel_rng, s.cfg.cell))
    return rec


def write_record(s: Session, rec: dict, display: Display) -> None:
    rec = {k: finite_or_none(v) for k, v in rec.items()}
    runs.append_record(s.path, rec)
    display.record(rec)
    for finding in s.watch.update(rec):
        display.note(f"step {rec['step']}: {headline(finding)}")


def finite_or_none(v):
    """NaN/inf become null (JSON has no NaN), also inside lists such as bptt_profile."""
    if isinstance(v, list):
        return [finite_or_none(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def evaluate(model: Model, streams: np.ndarray, seq_len: int) -> float:
    """NLL over the eval streams, the state carried along each stream from zero."""
    h, total, n = model.zero_state(streams.shape[0]), 0.0, 0
    for i in range(chunks_per_epoch(streams, seq_len)):
        x, y = get_chunk(streams, i, seq_len)
        loss, h = model.loss(x, y, h)
        total, n = total + loss * x.size, n + x.size
    return total / n


def evaluate_and_keep_best(s: Session, elapsed: float) -> float:
    e = evaluate(s.model, s.eval_streams, s.cfg.seq_len)
    if e < s.best_eval:
        s.best_eval = e
        save(s, runs.BEST, elapsed, checkpoint_meta(s))
    return e


def finish(s: Session, lr: float, elapsed: float, display: Display) -> None:
    """Close the run: a final record and eval when the run ended off the cadence, checkpoint."""
    cfg, meta = s.cfg, checkpoint_meta(s)
    if s.interval.state["n"] > 0:
        rec = {"step": s.step, "chars": s.chars, "elapsed_s": round(elapsed, 3), "lr": lr,
               "epoch": s.epoch, **s.interval.summary(s.step), "final": True}
        if s.step % cfg.eval_every != 0:
            rec["eval_nll"] = evaluate_and_keep_best(s, elapsed)
        write_record(s, rec, display)
    save(s, runs.CHECKPOINT, elapsed, meta)
    display.finish()
    display.note(summary(s))
    conclude(s, display)


def conclude(s: Session, display: Display) -> None:
    """The verdict into triage.json and the report into report.html (unless --no-report)."""
    result = write_triage(s.path)
    display.note(format_diagnosis(result))
    if s.cfg.report:
        display.note(f"report: {write_report([s.path], None)}")


def summary(s: Session) -> str:
    corpus = runs.read_config(s.path)["corpus"]
    best = f"best eval NLL {s.best_eval:.4f} nats/char" if math.isfinite(s.best_eval) \
        else "no eval yet"
    return (f"{s.step} steps, {s.chars:,} chars: {best} (unigram baseline "
            f"{corpus['unigram_eval_nll']:.4f}, uniform {corpus['uniform_nll']:.4f})")


def check_params(s: Session, n: int, lr: float, loss: float, grad_norm: float,
                 elapsed: float) -> None:
    """A finite loss can still leave parameters that overflowed in the update: stop there."""
    if not all(np.isfinite(v).all() for v in s.model.params.values()):
        diverge(s, n, lr, loss, grad_norm, elapsed, what="parameters")


def diverge(s: Session, n: int, lr: float, loss: float, grad_norm: float, elapsed: float,
            what: str | None = None):
    what = what or ("loss" if not math.isfinite(loss) else "gradient norm")
    rec = {"step": n, "chars": s.chars, "elapsed_s": round(elapsed, 3), "lr": lr,
           "epoch": s.epoch, "train_nll": loss, "grad_norm": grad_norm,
           "diverged": f"{what} not finite"}
    runs.append_record(s.path, {k: finite_or_none(v) for k, v in rec.items()})
    kept = "the last good checkpoint is kept" if (s.path / runs.CHECKPOINT).exists() \
        else "no checkpoint was written before it"
    raise Diverged(f"training diverged at step {n}: the {what} became NaN/inf; {kept} in "
                   f"{s.path}; try a lower --lr or --clip norm")


# ---- sessions: new, saved, resumed


def new_session(cfg: TrainConfig, run_dir: str | None) -> Session:
    corpus = load_corpus(cfg.corpus, cfg.data_dir)
    vocab = build_vocab(corpus.text)
    train_ids, eval_ids = split(vocab.encode(corpus.text), cfg.eval_frac)
    check_trainable(train_ids, eval_ids, cfg.batch, cfg.seq_len)
    path = runs.new_run_dir(run_dir, cfg)
    runs.write_config(path, cfg, corpus_info(corpus, vocab, train_ids, eval_ids), vocab)
    model = runs.model_for(cfg, vocab.size)
    streams = make_streams(train_ids, cfg.batch)
    ev = eval_streams(eval_ids, cfg.batch, cfg.seq_len)
    rng, panel_rng = np.random.default_rng([cfg.seed, 1]), np.random.default_rng([cfg.seed, 2])
    return Session(cfg, path, model, vocab, streams, ev, model.zero_state(cfg.batch), rng,
                   panel_rng)


def corpus_info(corpus, vocab: Vocab, train_ids: np.ndarray, eval_ids: np.ndarray) -> dict:
    """What config.json says of the corpus, with the baselines a model must beat."""
    return {"name": corpus.name, "chars": len(corpus.text), "sha256": corpus.sha256,
            "train_chars": len(train_ids), "eval_chars": len(eval_ids),
            "unigram_eval_nll": unigram_nll(train_ids, eval_ids, vocab.size),
            "uniform_nll": math.log(vocab.size)}


def checkpoint_meta(s: Session) -> dict:
    return {"step": s.step, "epoch": s.epoch, "chunk": s.chunk, "chars": s.chars,
            "best_eval": s.best_eval if math.isfinite(s.best_eval) else None,
            "sched": dict(s.sched), "interval": dict(s.interval.state),
            "rng": s.rng.bit_generator.state, "panel_rng": s.panel_rng.bit_generator.state}


def save(s: Session, name: str, elapsed: float, meta: dict) -> None:
    """Write a checkpoint; parameters that overflowed are never written over a good one."""
    bad = [k for k, v in s.model.params.items() if not np.isfinite(v).all()]
    if bad:
        raise Diverged(f"training diverged by step {s.step}: parameter {bad[0]} overflowed to "
                       f"NaN/inf; the last good checkpoint is kept in {s.path}; try a lower "
                       "--lr or --clip norm")
    runs.save_checkpoint(s.path / name, s.model.params, s.opt_state,
                         s.model.state_parts(s.h), {**meta, "elapsed_s": elapsed})


def resume_session(path: Path, given: TrainConfig) -> Session:
    doc = runs.read_config(path)
    cfg = TrainConfig.from_dict(doc["config"])
    for name in RESUMABLE:
        setattr(cfg, name, getattr(given, name))
    cfg.validate()
    corpus = load_corpus(cfg.corpus, cfg.data_dir)
    vocab = build_vocab(corpus.text)
    if vocab.chars != doc["vocab"]:
        raise RnnscopeError(f"corpus {cfg.corpus!r} has a different vocabulary from the run in "
                            f"{path} ({vocab.size} vs {len(doc['vocab'])} characters); resume "
                            "with the corpus the run was trained on (--corpus)")
    if corpus.sha256 != doc["corpus"]["sha256"]:
        raise RnnscopeError(f"corpus {cfg.corpus!r} is not the text the run in {path} was "
                            "trained on (SHA-256 differs); resume with the original corpus")
    params, opt_state, state, meta = runs.load_checkpoint(path / runs.CHECKPOINT)
    model = runs.model_for(cfg, vocab.size)
    runs.check_params(model, params, path / runs.CHECKPOINT)
    for k in model.params:
        model.params[k][...] = params[k]
    missing = [part for part in model.cell_module.STATE if part not in state]
    if missing:
        raise RnnscopeError(f"checkpoint {path / runs.CHECKPOINT} has no state/{missing[0]}; "
                            "restore the run's files together or start a new run")
    train_ids, eval_ids = split(vocab.encode(corpus.text), cfg.eval_frac)
    runs.keep_records(path, lambda r: r["step"] <= meta["step"] and not r.get("final"))
    s = Session(cfg, path, model, vocab, make_streams(train_ids, cfg.batch),
                eval_streams(eval_ids, cfg.batch, cfg.seq_len), model.state_of(state),
                generator(meta["rng"]), generator(meta["panel_rng"]), opt_state, meta["sched"],
                panel.Interval(meta["interval"]), meta["step"], meta["epoch"], meta["chunk"],
                meta["chars"], meta["elapsed_s"],
                math.inf if meta["best_eval"] is None else meta["best_eval"])
    runs.write_config(path, cfg, corpus_info(corpus, vocab, train_ids, eval_ids), vocab)
    return s


def generator(state: dict) -> np.random.Generator:
    g = np.random.default_rng()
    g.bit_generator.state = state
    return g
