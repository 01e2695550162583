"""The benchmark engine: rnnscope's training step and forward+backward, against PyTorch's.

Every grid row (a cell, hidden size and number of layers) times a few contestants, each a
function that runs one step on random data of vocabulary 65 (batch 64, seq-len 64, float32, the
state carried from chunk to chunk):

  fwd_bwd        Model.loss_and_grads: forward, loss and hand-written BPTT
  train          train.update (gradients, clipping, Adam) with the panel off
  train_panel    the same, and on every log_every-th step the panel: per-parameter gradient
                 norms and panel.measure, as train.record does
  torch_fwd_bwd  with --vs torch: one-hot input -> nn.RNN (tanh), nn.GRU or nn.LSTM -> Linear
                 -> cross_entropy -> backward, gradients zeroed each step
  torch_train    the same plus clip_grad_norm_ and torch.optim.Adam

Contestants that are compared run in one group, interleaved, so that a machine that gets busier
or quieter in the middle of the bench shifts the members of a pair alike: each round passes
through every group and runs two blocks of each member, a pair in the order A B B A (the next
round B A A B), so that whatever favours a position cancels within the round. The
forward+backward pair runs blocks of a few steps (the speed of a shared machine drifts within
seconds); the panel on and off run blocks of log_every steps, so that each block holds exactly
one panel record, and (but with --full) one block each per round, A B then B A: the longest
blocks, halved so that `rnnscope bench` answers within two minutes. Ratios are taken within
a round; the median over the rounds is reported.
panel_overhead is read inside the panel-on blocks, step by step (see panel_overhead()): between
two blocks the machine's speed drifts by more than the panel costs.

Where the library changes between two blocks the bench idles a moment first: OpenBLAS's and
PyTorch's worker threads keep spinning for a while after their last product, and a block that
starts while the other library's threads still spin runs several times slower. The first step of
every block is not counted either: it wakes the threads and refills the caches the other
contestant emptied, and pays for it by up to half a step.

A check of the machine's speed, a few (64, 512) @ (512, 512) products (the recurrence's own
shape), runs before every block and after the last. A shared machine moves between states: on
the one measured here, for seconds to minutes at a time, the two cores' threads run at about
1.3 times one core instead of 1.8 (the check then takes 260 instead of 190 us). A block is quiet
when the checks on both its sides are within QUIET of the row's fastest check; a round's ratio
counts as quiet when every block of both contestants was. Rows report the ratio over all rounds
and over the quiet ones: the second is what a quiet machine gives, the first what this one did.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np

from . import panel
from .cells import CELLS as CELL_MODULES
from .config import CELLS, TrainConfig
from .errors import RnnscopeError
from .model import Model
from .train import update

FULL_GRID = ((256, 1), (512, 1), (512, 2))  # (hidden, layers): --full
GRID = ((256, 1),)  # the default: every cell at one size, an answer within two minutes
BATCH, SEQ_LEN, VOCAB = 64, 64, 65
QUICK_GRID, QUICK_BATCH, QUICK_SEQ_LEN = ((32, 1),), 16, 16  # a smoke test of a second or two
ROUNDS = {"quick": 2, "default": 2, "full": 5}  # rounds when --rounds is not given
PASSES = 2  # blocks per contestant and round, in the order A B B A: position effects cancel
SHORT_BLOCK = 6  # steps per block, but for the panel on/off pair (log_every steps)
SETTLE_S = 0.25  # idle between NumPy and PyTorch blocks, for the thread pools to stop spinning
DATA_CHUNKS = 8  # random chunks cycled through
PEAK_SIZE, QUICK_PEAK_SIZE = 2048, 512  # n of the n x n x n float32 product that sets the peak
CHECK_SHAPE, CHECK_REPEATS = (64, 512), 5  # the check before every block: (B, H) @ (H, H)
QUIET = 0.9  # a quiet block's checks run at least this share of the row's fastest check


def run_bench(vs_torch: bool, rounds: int | None, quick: bool, grid: str | None = None,
              cells: str | None = None, full: bool = False,
              progress: Callable[[str], None] | None = None) -> list[dict]:
    """One row per cell and grid point, each with the machine's context: by default every cell
    at GRID's one size, with full FULL_GRID's rows, with quick one small row per cell. grid:
    rows as "HxL,HxL" (hidden x layers) instead; cells: "rnn,gru" instead of every cell;
    rounds: None for ROUNDS of the mode. progress(line) hears of every round as it ends."""
    if quick and full:
        raise RnnscopeError("--quick and --full exclude each other; use one of them")
    mode = "quick" if quick else "full" if full else "default"
    rounds = ROUNDS[mode] if rounds is None else rounds
    if rounds < 1:
        raise RnnscopeError(f"--rounds must be at least 1, got {rounds}")
    points = parse_grid(grid) if grid else {"quick": QUICK_GRID, "full": FULL_GRID,
                                            "default": GRID}[mode]
    names = parse_cells(cells) if cells else CELLS
    torch = import_torch() if vs_torch else None
    context = machine_context(torch, QUICK_PEAK_SIZE if quick else PEAK_SIZE)
    batch, seq_len = (QUICK_BATCH, QUICK_SEQ_LEN) if quick else (BATCH, SEQ_LEN)
    configs = [TrainConfig(cell=cell, hidden=hidden, layers=layers, batch=batch,
                           seq_len=seq_len, dtype="float32").validate()
               for cell in names for hidden, layers in points]
    report = progress or (lambda line: None)
    started = time.perf_counter()
    rows = []
    for n, cfg in enumerate(configs, 1):
        label = f"row {n}/{len(configs)}: {cfg.cell} {cfg.hidden}x{cfg.layers}"

        def heard(r: int, label: str = label) -> None:
            what = "warm-up round" if r == 0 else f"round {r}/{rounds}"
            report(f"bench {label}, {what} done, {time.perf_counter() - started:.0f} s")

        rows.append(bench_row(cfg, rounds, torch, context, heard,
                              panel_passes=PASSES if full else 1))
    return rows


def parse_cells(cells: str) -> list[str]:
    names = cells.split(",")
    unknown = [n for n in names if n not in CELLS]
    if unknown:
        raise RnnscopeError(f"--cell {unknown[0]!r} is not known; use one or several of: "
                            f"{', '.join(CELLS)} (comma-separated)")
    return names


def parse_grid(grid: str) -> list[tuple[int, int]]:
    """"512x1,512x2" -> [(512, 1), (512, 2)]."""
    try:
        points = [tuple(int(n) for n in point.split("x")) for point in grid.split(",")]
    except ValueError:
        points = []
    if not points or any(len(p) != 2 or min(p) < 1 for p in points):
        raise RnnscopeError(f"--grid {grid!r} is not a list of HIDDENxLAYERS; use e.g. "
                            "--grid 512x1,512x2")
    return points


def import_torch():
    try:
        import torch
    except ImportError as e:
        raise RnnscopeError("--vs torch needs PyTorch; install it (pip install torch) or run "
                            "`rnnscope bench` without --vs") from e
    return torch


# ---- the machine


def machine_context(torch, peak_size: int) -> dict:
    """What the numbers depend on: CPU, thread counts, library versions and the kernels they
    run, the BLAS environment variables, the matmul peak."""
    libraries = blas_libraries()
    env = {var: os.environ[var] for var in BLAS_VARS if var in os.environ}
    context = {"cpu": cpu_name(), "cores": os.cpu_count(), "numpy": np.__version__,
               "blas": blas_name(), "blas_threads": blas_threads(), "blas_libraries": libraries,
               "blas_env": env, "blas_notes": kernel_notes(env, libraries),
               "peak_gflops": round(matmul_peak(peak_size) / 1e9, 1), "peak_size": peak_size}
    if torch is not None:
        context.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                       torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
                       torch_mkl=torch.backends.mkl.is_available(),
                       torch_mkldnn=torch.backends.mkldnn.is_available())
    return context


BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
             "MKL_NUM_THREADS", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE",
             "ATEN_CPU_CAPABILITY")  # the last four force MKL's or PyTorch's kernels
OWN_KERNEL = ("import numpy, threadpoolctl; print(next(i['architecture'] for i in "
              "threadpoolctl.threadpool_info() if i['internal_api'] == 'openblas'))")


def blas_libraries() -> list[dict]:
    """The BLAS and OpenMP libraries loaded in this process, with the kernels (OpenBLAS: its
    core type) and threads they run, from threadpoolctl (pip install threadpoolctl)."""
    try:
        import threadpoolctl
    except ImportError:
        return [{"library": blas_name(), "kernel": "unknown: pip install threadpoolctl"}]
    return [{"library": i["internal_api"], "version": i.get("version"),
             "kernel": i.get("architecture"), "threads": i["num_threads"],
             "file": os.path.basename(i["filepath"])} for i in threadpoolctl.threadpool_info()]


def kernel_notes(env: dict, libraries: list[dict]) -> list[str]:
    """What the environment does to OpenBLAS's choice of kernels: OPENBLAS_CORETYPE unset (it
    picks the CPU's own), or set, and then whether it forces kernels other than those it would
    pick on this CPU (asked of a fresh interpreter without the variable)."""
    kernel = next((lib["kernel"] for lib in libraries if lib["library"] == "openblas"), None)
    forced = env.get("OPENBLAS_CORETYPE")
    if kernel is None:
        return [] if forced is None else [f"OPENBLAS_CORETYPE={forced} is set, but NumPy's BLAS "
                                          "is not an OpenBLAS this bench can query"]
    if forced is None:
        return [f"OPENBLAS_CORETYPE is unset: OpenBLAS picked its {kernel} kernels for this CPU "
                "itself"]
    own = own_kernel()
    if own == kernel:
        return [f"OPENBLAS_CORETYPE={forced} is set; OpenBLAS runs its {kernel} kernels, the "
                "ones it picks for this CPU anyway"]
    return [f"warning: OPENBLAS_CORETYPE={forced} forces OpenBLAS's {kernel} kernels; on this "
            f"CPU it would pick {own or 'others'} by itself: unset it to time the machine's "
            "own BLAS"]


def own_kernel() -> str | None:
    """The core type OpenBLAS picks on this CPU when OPENBLAS_CORETYPE is unset."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    try:
        out = subprocess.run([sys.executable, "-c", OWN_KERNEL], env=env, capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


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


def flops_per_char(hidden: int, layers: int, vocab: int, blocks: int = 1) -> int:
    """FLOPs of forward+backward per character (2 per multiply-add) of the matrix products, the
    one-hot input product counted as dense, as PyTorch runs it; a cell with `blocks` gate
    blocks (GRU 3, LSTM 4) has them `blocks` times as wide. Per layer: 6 H^2 for the recurrent
    weights (forward, dh_next, their gradient); for the input weights, 4 H V on layer 0
    (forward, gradient; none to a one-hot input) and 6 H^2 above; 6 H V for the readout."""
    return blocks * (layers * 6 * hidden**2 + 4 * hidden * vocab
                     + (layers - 1) * 6 * hidden**2) + 6 * hidden * vocab


# ---- one grid row


def bench_row(cfg: TrainConfig, rounds: int, torch, context: dict,
              heard: Callable[[int], None] = lambda r: None, panel_passes: int = PASSES) -> dict:
    """The contestants at cfg's hidden size, layers, batch and seq-len, timed and summarised;
    heard(r) after each round r (0: the warm-up). panel_passes: blocks per round of the panel
    on and off, the longest group (log_every steps a block); 1 alternates their order from
    round to round instead of within it."""
    chunks = random_chunks(cfg)
    # all the trainer's blocks are log_every steps long, so each ends on the step that records
    trainer = engine_train(cfg, chunks)
    fwd_bwd = {"fwd_bwd": engine_fwd_bwd(cfg, chunks)}
    groups = [Group(fwd_bwd, SHORT_BLOCK, PASSES),
              Group({"train": partial(trainer, False), "train_panel": partial(trainer, True)},
                    cfg.log_every, panel_passes)]
    if torch is not None:
        fwd_bwd["torch_fwd_bwd"] = torch_step(torch, cfg, chunks, train=False)
        groups.append(Group({"torch_train": torch_step(torch, cfg, chunks, train=True)},
                            SHORT_BLOCK, PASSES))
    return summarize(cfg, interleaved_times(groups, rounds, speed_check(), heard), context)


class Group(NamedTuple):
    """Contestants timed against each other: per round, `passes` blocks of `block` steps each."""
    steps: dict[str, Callable[[], None]]
    block: int
    passes: int


class Timings(NamedTuple):
    """Per contestant and round: the seconds of each step, (passes, block), first steps of the
    blocks included, and whether all its blocks were quiet; every check (FLOP/s)."""
    seconds: dict[str, list[np.ndarray]]
    quiet: dict[str, list[bool]]
    checks: list[float]


def random_chunks(cfg: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    rng, shape = np.random.default_rng(cfg.seed), (cfg.seq_len, cfg.batch)
    return [(rng.integers(0, VOCAB, shape), rng.integers(0, VOCAB, shape))
            for _ in range(DATA_CHUNKS)]


def speed_check() -> Callable[[], float]:
    """A function giving the FLOP/s of the best of a few products of the recurrence's shape."""
    rng, (B, H) = np.random.default_rng(0), CHECK_SHAPE
    h, W = rng.standard_normal((B, H), np.float32), rng.standard_normal((H, H), np.float32)
    out = np.empty_like(h)

    def check() -> float:
        best = math.inf
        for _ in range(CHECK_REPEATS):
            t0 = time.perf_counter()
            np.dot(h, W, out=out)
            best = min(best, time.perf_counter() - t0)
        return 2 * B * H * H / best

    return check


def interleaved_times(groups: list[Group], rounds: int, check: Callable[[], float],
                      heard: Callable[[int], None] = lambda r: None) -> Timings:
    """Every group's blocks, round after round, a check before each block and after the last;
    heard(r) after round r. A first round (r = 0) warms up and is dropped."""
    names = [name for g in groups for name in g.steps]
    seconds: dict[str, list] = {name: [] for name in names}
    around: dict[str, list] = {name: [] for name in names}  # per round, the blocks' check indices
    checks: list[float] = []
    last = ""
    for r in range(rounds + 1):
        blocks: dict[str, list] = {name: [] for name in names}
        indices: dict[str, list] = {name: [] for name in names}
        for g in groups if r % 2 == 0 else reversed(groups):
            for p in range(g.passes):
                for name in list(g.steps) if (r + p) % 2 == 0 else reversed(g.steps):
                    last = settled(last, "check")
                    checks.append(check())
                    indices[name].append(len(checks) - 1)
                    last = settled(last, name)
                    blocks[name].append(run_block(g.steps[name], g.block))
        for name in names:
            seconds[name].append(np.stack(blocks[name]))
            around[name].append(indices[name])
        heard(r)
    settled(last, "check")
    checks.append(check())
    fastest = max(checks)
    quiet = {name: [all(min(checks[i], checks[i + 1]) >= QUIET * fastest for i in per_round)
                    for per_round in around[name][1:]] for name in names}
    return Timings({name: per_round[1:] for name, per_round in seconds.items()}, quiet, checks)


def settled(last: str, following: str) -> str:
    """Idle a moment where the library changes (see the module's docstring); returns following."""
    if last and library(last) != library(following):
        time.sleep(SETTLE_S)
    return following


def library(contestant: str) -> str:
    """The library a contestant (or "check") runs in."""
    return "torch" if contestant.startswith("torch_") else "numpy"


def run_block(step: Callable[[], None], steps: int) -> np.ndarray:
    """The seconds of each of `steps` steps."""
    seconds = np.empty(steps)
    for i in range(steps):
        t0 = time.perf_counter()
        step()
        seconds[i] = time.perf_counter() - t0
    return seconds


def summarize(cfg: TrainConfig, timings: Timings, context: dict) -> dict:
    """Medians of chars/s, ratios of paired rounds (all and quiet), shares of the matmul peak,
    panel overhead, the range of the checks (GFLOP/s)."""
    flops = flops_per_char(cfg.hidden, cfg.layers, VOCAB, CELL_MODULES[cfg.cell].BLOCKS)
    peak = context["peak_gflops"] * 1e9
    times = {name: [t[:, 1:] for t in per_round]  # without the blocks' warm-up steps
             for name, per_round in timings.seconds.items()}
    rates = {name: np.array([t.size * cfg.batch * cfg.seq_len / t.sum() for t in per_round])
             for name, per_round in times.items()}
    row = {"cell": cfg.cell, "hidden": cfg.hidden, "layers": cfg.layers, "batch": cfg.batch,
           "seq_len": cfg.seq_len, "vocab": VOCAB, "dtype": cfg.dtype,
           "rounds": len(rates["fwd_bwd"]), "flops_per_char": flops}
    for name, per_round in rates.items():
        row[f"{name}_chars_per_s"] = round(float(np.median(per_round)))
    row["fwd_bwd_peak_share"] = round(row["fwd_bwd_chars_per_s"] * flops / peak, 3)
    row["train_peak_share"] = round(row["train_chars_per_s"] * flops / peak, 3)
    row["panel_overhead"] = round(panel_overhead(np.concatenate(times["train_panel"])), 4)
    row["check_gflops_range"] = [round(min(timings.checks) / 1e9, 1),
                                 round(max(timings.checks) / 1e9, 1)]
    if "torch_fwd_bwd" in rates:
        for what in ("fwd_bwd", "train"):
            row.update(ratios(what, rates[what] / rates[f"torch_{what}"],
                              np.logical_and(timings.quiet[what], timings.quiet[f"torch_{what}"])))
    row["machine"] = context
    return row


def ratios(what: str, per_round: np.ndarray, quiet: np.ndarray) -> dict:
    """The median ratio over all rounds, its range, and the median over the quiet rounds (None
    when no round was quiet) with their count."""
    return {f"{what}_ratio": round(float(np.median(per_round)), 3),
            f"{what}_ratio_range": [round(float(per_round.min()), 3),
                                    round(float(per_round.max()), 3)],
            f"{what}_ratio_quiet": round(float(np.median(per_round[quiet])), 3)
            if quiet.any() else None,
            f"{what}_quiet_rounds": int(quiet.sum())}


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
    model = Model(VOCAB, cfg.hidden, cfg.layers, cell=cfg.cell, seed=cfg.seed, dtype=cfg.dtype)
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
    model = Model(VOCAB, cfg.hidden, cfg.layers, cell=cfg.cell, seed=cfg.seed, dtype=cfg.dtype)
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
            panel.measure(u.out.probes, model.params, u.norms, u.deltas, cfg.sat_threshold,
                           panel_rng, cfg.cell)

    return step


def torch_step(torch, cfg: TrainConfig, chunks, train: bool) -> Callable[[], None]:
    """The same model in PyTorch; with train, also clip_grad_norm_ and Adam (as cfg says)."""
    torch.manual_seed(cfg.seed)
    rnn = torch_module(torch, cfg.cell)(VOCAB, cfg.hidden, cfg.layers)
    readout = torch.nn.Linear(cfg.hidden, VOCAB)
    params = [*rnn.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr) if train else None
    data = [(torch.from_numpy(x), torch.from_numpy(y).reshape(-1)) for x, y in chunks]
    zeros = torch.zeros(cfg.layers, cfg.batch, cfg.hidden)
    h, n = tuple(zeros for _ in CELL_MODULES[cfg.cell].STATE), 0
    h = h[0] if len(h) == 1 else h

    def step() -> None:
        nonlocal h, n
        x, y = data[n % len(data)]
        n += 1
        for p in params:
            p.grad = None
        out, h_n = rnn(torch.nn.functional.one_hot(x, VOCAB).float(), h)
        loss = torch.nn.functional.cross_entropy(readout(out).reshape(-1, VOCAB), y)
        loss.backward()
        h = tuple(s.detach() for s in h_n) if isinstance(h_n, tuple) else h_n.detach()
        if train:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_value)
            opt.step()

    return step


def torch_module(torch, cell: str):
    """PyTorch's module of the cell (nn.RNN is tanh by default)."""
    return getattr(torch.nn, CELL_MODULES[cell].TORCH[0])


# ---- the table


def format_bench(rows: list[dict]) -> str:
    m = rows[0]["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores",
             f"numpy {m['numpy']}, {m['blas']}, BLAS threads {m['blas_threads']}"]
    for lib in m.get("blas_libraries", []):
        lines.append(f"  {lib['library']} {lib.get('version') or ''}: kernel "
                     f"{lib['kernel'] or '-'}, threads {lib.get('threads', '?')}")
    if m.get("blas_env"):
        lines.append("environment: " + ", ".join(f"{k}={v}" for k, v in m["blas_env"].items()))
    lines += m.get("blas_notes", [])
    if "torch" in m:
        lines.append(f"torch {m['torch']}, threads {m['torch_threads']}, kernels "
                     f"{m['torch_cpu_capability']}, MKL {m['torch_mkl']}, oneDNN "
                     f"{m['torch_mkldnn']}")
    lines.append(f"float32 matmul peak ({m['peak_size']}^3): {m['peak_gflops']:.0f} GFLOP/s; "
                 f"batch {rows[0]['batch']}, seq-len {rows[0]['seq_len']}, vocab "
                 f"{rows[0]['vocab']}, {rows[0]['dtype']}, {rows[0]['rounds']} rounds; chars/s; "
                 "ratio over all rounds, quiet: over the rounds the machine ran at full speed")
    vs = "torch_fwd_bwd_chars_per_s" in rows[0]
    head = ["cell", "H", "L"]
    for what in ("fwd+bwd", "train"):
        head += [what] + (["torch", "ratio", "quiet"] if vs else []) + ["peak"]
    table = [head + ["panel_overhead"]]
    for r in rows:
        columns = [r["cell"], r["hidden"], r["layers"]]
        for what in ("fwd_bwd", "train"):
            columns.append(r[f"{what}_chars_per_s"])
            if vs:
                columns += [r[f"torch_{what}_chars_per_s"], f"{r[f'{what}_ratio']:.3f}x",
                            quiet_cell(r, what)]
            columns.append(f"{r[f'{what}_peak_share']:.0%}")
        table.append(columns + [f"{r['panel_overhead']:+.3f}"])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    lines += ["  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True))
              for row in table]
    lines += [unsteady_warning(r) for r in rows if unsteady_warning(r)]
    return "\n".join(lines)


def quiet_cell(row: dict, what: str) -> str:
    n = f"({row[f'{what}_quiet_rounds']}/{row['rounds']})"
    quiet = row[f"{what}_ratio_quiet"]
    return f"{quiet:.3f}x {n}" if quiet is not None else f"- {n}"


def unsteady_warning(row: dict) -> str:
    """A line when the checks of the machine's speed disagree by more than QUIET allows."""
    low, high = row["check_gflops_range"]
    if low >= QUIET * high:
        return ""
    return (f"warning: at {row['cell']} {row['hidden']} x {row['layers']} the machine's speed "
            f"moved between {low:.0f} and {high:.0f} GFLOP/s (the check before each block): other "
            "work shares these cores; trust the quiet ratios, or rerun when the machine is idle")
