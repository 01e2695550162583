"""The benchmark engine: rnnscope's training step and forward+backward, against PyTorch's nn.RNN.

Every grid row times a few contestants, each a function that runs one step on random data of
vocabulary 65 (batch 64, seq-len 64, float32, the hidden state carried from chunk to chunk):

  fwd_bwd        Model.loss_and_grads: forward, loss and hand-written BPTT
  train          train.update (gradients, clipping, Adam) with the panel off
  train_panel    the same, and on every log_every-th step the panel: per-parameter gradient
                 norms and panel.readings, as train.record does
  torch_fwd_bwd  with --vs torch: one-hot input -> nn.RNN (tanh) -> Linear -> cross_entropy ->
                 backward, gradients zeroed each step
  torch_train    the same plus clip_grad_norm_ and torch.optim.Adam

Contestants that are compared run in one group, interleaved, so that a machine that gets busier
or quieter in the middle of the bench shifts the members of a pair alike: each round passes
through every group and runs two blocks of each member, a pair in the order A B B A (the next
round B A A B), so that whatever favours a position cancels within the round. The
forward+backward pair runs blocks of a few steps (the speed of a shared machine drifts within
seconds); the panel on and off run blocks of log_every steps, so that each block holds exactly
one panel record. Ratios are taken within a round; the median over the rounds is reported.
panel_overhead is read inside the panel-on blocks, step by step (see panel_overhead()): between
two blocks the machine's speed drifts by more than the panel costs.

Where the library changes between two blocks the bench idles a moment first: OpenBLAS's and
PyTorch's worker threads keep spinning for a while after their last product, and a block that
starts while the other library's threads still spin runs several times slower. The first step of
every block is not counted either: it wakes the threads and refills the caches the other
contestant emptied, and pays for it by up to half a step.

Each round starts with a short matmul check (the best of a few PEAK_CHECK_SIZE^3 products).
On a shared machine its speed moves between states (one measured here: 200 GFLOP/s, then for
minutes 166, with the per-step recurrent product 33% slower); ratios taken in a degraded state
are not those of a quiet machine, so the row keeps the range and the table warns when it is wide.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np

from . import panel
from .config import TrainConfig
from .errors import RnnscopeError
from .model import Model
from .train import update

GRID = ((256, 1), (512, 1), (512, 2))  # (hidden, layers)
BATCH, SEQ_LEN, VOCAB = 64, 64, 65
QUICK_GRID, QUICK_BATCH, QUICK_SEQ_LEN = ((32, 1),), 16, 16  # a smoke test of a second or two
PASSES = 2  # blocks per contestant and round, in the order A B B A: position effects cancel
SHORT_BLOCK = 6  # steps per block, but for the panel on/off pair (log_every steps)
SETTLE_S = 0.25  # idle between NumPy and PyTorch blocks, for the thread pools to stop spinning
DATA_CHUNKS = 8  # random chunks cycled through
PEAK_SIZE, QUICK_PEAK_SIZE = 2048, 512  # n of the n x n x n float32 product that sets the peak
PEAK_CHECK_SIZE = 1024  # the per-round check of the machine's speed (about 30 ms)
STEADY = 1.10  # the most the per-round checks may differ (max / min) for a steady machine


def run_bench(vs_torch: bool, rounds: int, quick: bool) -> list[dict]:
    """One row per grid point (the quick grid: one small row), each with the machine's context."""
    if rounds < 1:
        raise RnnscopeError(f"--rounds must be at least 1, got {rounds}")
    torch = import_torch() if vs_torch else None
    context = machine_context(torch, QUICK_PEAK_SIZE if quick else PEAK_SIZE)
    batch, seq_len = (QUICK_BATCH, QUICK_SEQ_LEN) if quick else (BATCH, SEQ_LEN)
    return [bench_row(TrainConfig(hidden=hidden, layers=layers, batch=batch, seq_len=seq_len,
                                  dtype="float32").validate(), rounds, torch, context)
            for hidden, layers in (QUICK_GRID if quick else GRID)]


def import_torch():
    try:
        import torch
    except ImportError as e:
        raise RnnscopeError("--vs torch needs PyTorch; install it (pip install torch) or run "
                            "`rnnscope bench` without --vs") from e
    return torch


# ---- the machine


def machine_context(torch, peak_size: int) -> dict:
    """What the numbers depend on: CPU, thread counts, library versions, the matmul peak."""
    context = {"cpu": cpu_name(), "cores": os.cpu_count(), "numpy": np.__version__,
               "blas": blas_name(), "blas_threads": blas_threads(),
               "peak_gflops": round(matmul_peak(peak_size) / 1e9, 1), "peak_size": peak_size}
    if torch is not None:
        context.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return context


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_name() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except (TypeError, KeyError):  # numpy < 1.26 has no mode="dicts"
        return "unknown"


def blas_threads() -> str:
    """NumPy's BLAS reads its thread count from the environment at import; by default OpenBLAS
    takes one thread per core."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            return f"{os.environ[var]} ({var})"
    return f"{os.cpu_count()} (default: one per core)"


def matmul_peak(n: int, repeats: int = 10) -> float:
    """FLOP/s of the best of `repeats` float32 n x n x n products of two distinct matrices
    (NumPy computes a.T @ a with a symmetric rank-k update, half the work, which would
    overstate the peak by half again)."""
    a, b = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.dot(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def flops_per_char(hidden: int, layers: int, vocab: int) -> int:
    """FLOPs of forward+backward per character (2 per multiply-add), the one-hot input product
    counted as dense, as PyTorch runs it. Per layer: 6 H^2 for Whh (forward, dh_next, dWhh);
    for Wxh, 4 H V on layer 0 (forward, dWxh; no gradient to a one-hot input) and 6 H^2 above;
    6 H V for the readout."""
    return layers * 6 * hidden**2 + 4 * hidden * vocab + (layers - 1) * 6 * hidden**2 \
        + 6 * hidden * vocab


# ---- one grid row


def bench_row(cfg: TrainConfig, rounds: int, torch, context: dict) -> dict:
    """The contestants at cfg's hidden size, layers, batch and seq-len, timed and summarised."""
    chunks = random_chunks(cfg)
    # all the trainer's blocks are log_every steps long, so each ends on the step that records
    trainer = engine_train(cfg, chunks)
    fwd_bwd = {"fwd_bwd": engine_fwd_bwd(cfg, chunks)}
    groups = [Group(fwd_bwd, SHORT_BLOCK, PASSES),
              Group({"train": partial(trainer, False), "train_panel": partial(trainer, True)},
                    cfg.log_every, PASSES)]
    if torch is not None:
        fwd_bwd["torch_fwd_bwd"] = torch_step(torch, cfg, chunks, train=False)
        groups.append(Group({"torch_train": torch_step(torch, cfg, chunks, train=True)},
                            SHORT_BLOCK, PASSES))
    check = partial(matmul_peak, min(PEAK_CHECK_SIZE, context["peak_size"]), 3)
    return summarize(cfg, *interleaved_times(groups, rounds, check), context)


class Group(NamedTuple):
    """Contestants timed against each other: per round, `passes` blocks of `block` steps each."""
    steps: dict[str, Callable[[], None]]
    block: int
    passes: int


def random_chunks(cfg: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    rng, shape = np.random.default_rng(cfg.seed), (cfg.seq_len, cfg.batch)
    return [(rng.integers(0, VOCAB, shape), rng.integers(0, VOCAB, shape))
            for _ in range(DATA_CHUNKS)]


def interleaved_times(groups: list[Group], rounds: int, check: Callable[[], float]
                      ) -> tuple[dict[str, list[np.ndarray]], list[float]]:
    """Per contestant and round, the seconds of each step, (passes, block), first steps of the
    blocks included; and per round, what check() gave at its start (FLOP/s). A first round warms
    up and is dropped."""
    times: dict[str, list[np.ndarray]] = {name: [] for g in groups for name in g.steps}
    peaks, last = [], ""
    for r in range(rounds + 1):
        if library(last) != "numpy":
            time.sleep(SETTLE_S)
        peaks.append(check())
        last = "check"
        blocks: dict[str, list[np.ndarray]] = {name: [] for name in times}
        for g in groups if r % 2 == 0 else reversed(groups):
            for p in range(g.passes):
                for name in list(g.steps) if (r + p) % 2 == 0 else reversed(g.steps):
                    if library(name) != library(last):
                        time.sleep(SETTLE_S)
                    blocks[name].append(run_block(g.steps[name], g.block))
                    last = name
        for name, timed in blocks.items():
            times[name].append(np.stack(timed))
    return {name: per_round[1:] for name, per_round in times.items()}, peaks[1:]


def library(contestant: str) -> str:
    if not contestant:
        return ""
    return "torch" if contestant.startswith("torch_") else "numpy"


def run_block(step: Callable[[], None], steps: int) -> np.ndarray:
    """The seconds of each of `steps` steps."""
    seconds = np.empty(steps)
    for i in range(steps):
        t0 = time.perf_counter()
        step()
        seconds[i] = time.perf_counter() - t0
    return seconds


def summarize(cfg: TrainConfig, times: dict[str, list[np.ndarray]], peaks: list[float],
              context: dict) -> dict:
    """Medians of chars/s, ratios of paired rounds, shares of the matmul peak, panel overhead,
    the range of the per-round checks of the machine (GFLOP/s)."""
    flops = flops_per_char(cfg.hidden, cfg.layers, VOCAB)
    peak = context["peak_gflops"] * 1e9
    times = {name: [t[:, 1:] for t in per_round] for name, per_round in times.items()}  # warm-ups
    rates = {name: np.array([t.size * cfg.batch * cfg.seq_len / t.sum() for t in per_round])
             for name, per_round in times.items()}
    row = {"hidden": cfg.hidden, "layers": cfg.layers, "batch": cfg.batch, "seq_len": cfg.seq_len,
           "vocab": VOCAB, "dtype": cfg.dtype, "rounds": len(rates["fwd_bwd"]),
           "flops_per_char": flops}
    for name, per_round in rates.items():
        row[f"{name}_chars_per_s"] = round(float(np.median(per_round)))
    row["fwd_bwd_peak_share"] = round(row["fwd_bwd_chars_per_s"] * flops / peak, 3)
    row["train_peak_share"] = round(row["train_chars_per_s"] * flops / peak, 3)
    row["panel_overhead"] = round(panel_overhead(np.concatenate(times["train_panel"])), 4)
    row["check_gflops_range"] = [round(min(peaks) / 1e9, 1), round(max(peaks) / 1e9, 1)]
    if "torch_fwd_bwd" in rates:
        for what in ("fwd_bwd", "train"):
            per_round = rates[what] / rates[f"torch_{what}"]
            row[f"{what}_ratio"] = round(float(np.median(per_round)), 3)
            row[f"{what}_ratio_range"] = [round(float(per_round.min()), 3),
                                          round(float(per_round.max()), 3)]
    row["machine"] = context
    return row


def panel_overhead(blocks: np.ndarray) -> float:
    """1 - (chars/s with the panel) / (chars/s without), from the panel-on blocks (n, steps):
    the extra seconds of a block's last step, the one that takes the readings, over the block's
    median step, as a share of the block; the median over the blocks. The rate without the panel
    comes from the same block's other steps, so that drift of the machine's speed between blocks
    (several percent on a shared machine, against a panel that costs about one) cancels."""
    extra = blocks[:, -1] - np.median(blocks[:, :-1], axis=1)
    return float(np.median(extra / blocks.sum(axis=1)))


# ---- the contestants: each returns a function that runs one step


def engine_fwd_bwd(cfg: TrainConfig, chunks) -> Callable[[], None]:
    model = Model(VOCAB, cfg.hidden, cfg.layers, seed=cfg.seed, dtype=cfg.dtype)
    h, n = model.zero_state(cfg.batch), 0

    def step() -> None:
        nonlocal h, n
        x, y = chunks[n % len(chunks)]
        h, n = model.loss_and_grads(x, y, h).h_last, n + 1

    return step


def engine_train(cfg: TrainConfig, chunks) -> Callable[[bool], None]:
    """train.update as train.step calls it; with_panel, also the readings train.record takes on
    every log_every-th step. The panel on and off share one model, so that their comparison is
    not also one between two placements of the model's arrays in memory."""
    model = Model(VOCAB, cfg.hidden, cfg.layers, seed=cfg.seed, dtype=cfg.dtype)
    h, opt_state, deltas, n = model.zero_state(cfg.batch), {}, None, 0
    rng, panel_rng = np.random.default_rng([cfg.seed, 1]), np.random.default_rng([cfg.seed, 2])

    def step(with_panel: bool) -> None:
        nonlocal h, deltas, n
        x, y = chunks[n % len(chunks)]
        n += 1
        due = with_panel and n % cfg.log_every == 0
        u = update(model, x, y, h, cfg, opt_state, deltas, cfg.lr, rng, want_norms=due)
        h, deltas = u.out.h_last, u.deltas
        if due:
            panel.readings(u.out.probes, model.params, u.norms, u.deltas, cfg.sat_threshold,
                           panel_rng)

    return step


def torch_step(torch, cfg: TrainConfig, chunks, train: bool) -> Callable[[], None]:
    """The same model in PyTorch; with train, also clip_grad_norm_ and Adam (as cfg says)."""
    torch.manual_seed(cfg.seed)
    rnn = torch.nn.RNN(VOCAB, cfg.hidden, cfg.layers, nonlinearity="tanh")
    readout = torch.nn.Linear(cfg.hidden, VOCAB)
    params = [*rnn.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr) if train else None
    data = [(torch.from_numpy(x), torch.from_numpy(y).reshape(-1)) for x, y in chunks]
    h, n = torch.zeros(cfg.layers, cfg.batch, cfg.hidden), 0

    def step() -> None:
        nonlocal h, n
        x, y = data[n % len(data)]
        n += 1
        for p in params:
            p.grad = None
        out, h_n = rnn(torch.nn.functional.one_hot(x, VOCAB).float(), h)
        loss = torch.nn.functional.cross_entropy(readout(out).reshape(-1, VOCAB), y)
        loss.backward()
        h = h_n.detach()
        if train:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_value)
            opt.step()

    return step


# ---- the table


def format_bench(rows: list[dict]) -> str:
    m = rows[0]["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores",
             f"numpy {m['numpy']}, {m['blas']}, BLAS threads {m['blas_threads']}"]
    if "torch" in m:
        lines.append(f"torch {m['torch']}, threads {m['torch_threads']}")
    lines.append(f"float32 matmul peak ({m['peak_size']}^3): {m['peak_gflops']:.0f} GFLOP/s; "
                 f"batch {rows[0]['batch']}, seq-len {rows[0]['seq_len']}, vocab "
                 f"{rows[0]['vocab']}, {rows[0]['dtype']}, {rows[0]['rounds']} rounds; chars/s")
    vs = "torch_fwd_bwd_chars_per_s" in rows[0]
    head = ["H", "L", "fwd+bwd"] + (["torch", "ratio"] if vs else []) + ["peak", "train"] \
        + (["torch", "ratio"] if vs else []) + ["peak", "panel_overhead"]
    table = [head]
    for r in rows:
        fb = [r["fwd_bwd_chars_per_s"]] + ([r["torch_fwd_bwd_chars_per_s"],
                                            f"{r['fwd_bwd_ratio']:.3f}x"] if vs else [])
        tr = [r["train_chars_per_s"]] + ([r["torch_train_chars_per_s"],
                                          f"{r['train_ratio']:.3f}x"] if vs else [])
        table.append([r["hidden"], r["layers"], *fb, f"{r['fwd_bwd_peak_share']:.0%}", *tr,
                      f"{r['train_peak_share']:.0%}", f"{r['panel_overhead']:+.3f}"])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    lines += ["  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True))
              for row in table]
    lines += [unsteady_warning(r) for r in rows if unsteady_warning(r)]
    return "\n".join(lines)


def unsteady_warning(row: dict) -> str:
    """A line when the per-round checks of the machine's speed disagree by more than STEADY."""
    low, high = row["check_gflops_range"]
    if high <= STEADY * low:
        return ""
    return (f"warning: at hidden {row['hidden']} x {row['layers']} the machine's matmul speed "
            f"moved between {low:.0f} and {high:.0f} GFLOP/s from round to round: other work "
            "shares these cores, so the figures are not a quiet machine's; rerun when it is idle")
