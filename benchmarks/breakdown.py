"""Where the time of one forward+backward goes, line by line and by kind of work.

    python benchmarks/breakdown.py [--cell lstm,gru] [--hidden 256,512] [--steps 5] [--lines 12]

Times Model.loss_and_grads at batch 64, seq-len 64, vocabulary 65, float32, first bare (the
best of a few rounds), then under a line tracer that charges the seconds between two line
events of rnnscope/model.py or a cell module (rnnscope/cells/) to the first line, and once more
under tracemalloc, which charges each line the bytes of the temporaries it allocates and frees
again (the peak above the memory it started with). A line's time is its least in one run
times its runs per step (a shared machine adds to some runs, never takes away). Each line is
classed by its text:

    GEMM            a matrix product (matmul, dot, @)
    nonlinearity    sigmoid, tanh, exp, reciprocal: the gates' and the cell's activations
    elementwise     products, sums and differences of arrays (ufuncs, in-place operators)
    reduction       sum over an axis
    copy            copyto, take, aligned copies, slice assignments
    python          the loop, calls, returns and what the model does besides

The tracer costs a fixed time per line event, measured on a loop of empty lines and taken off
every line; "python" is what is left of the bare time (the loops, calls and the untraced
callers), so the kinds add up to the bare time.
"""

from __future__ import annotations

import argparse
import linecache
import re
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import numpy as np

from rnnscope.bench import BATCH, SEQ_LEN, VOCAB
from rnnscope.cells import CELLS
from rnnscope.model import Model

TRACED = ("rnnscope/cells/", "rnnscope/model.py")
KINDS = (("GEMM", r"matmul|np\.dot|\s@\s|input_gradient|one_hot_columns"),
         ("nonlinearity", r"sigmoid|tanh|np\.exp|reciprocal|np\.negative"),
         ("reduction", r"\.sum\(|np\.sum"),
         ("copy", r"copyto|np\.take|aligned|^\s*\w+(\[[^]]*\])+(, \w+\[\d\])* = "),
         ("elementwise", r"np\.(multiply|add|subtract)|[-+*/]=|\*|\s-\s|\s\+\s"))
NONLINEAR_FUNCTIONS = {"sigmoid_of_half"}  # every line inside these is a nonlinearity


def kind(func: str, line: str) -> str:
    if func in NONLINEAR_FUNCTIONS:
        return "nonlinearity"
    if func == "fill":
        return "copy"  # the input projection's row lookup (a GEMM for a dense input)
    text = line.split("#")[0]
    for name, pattern in KINDS:
        if re.search(pattern, text):
            return name
    return "python"


class LineTracer:
    """sys.settrace over the files whose path holds one of `traced`: per line (file, function,
    line number), its runs, the sum of its costs (seconds, or temporary bytes with memory) and
    its least cost in one run. A run of a line that calls a traced function is the line's own
    time, before and after the call: the callee's lines are charged to themselves."""

    def __init__(self, memory: bool, traced: tuple = TRACED) -> None:
        self.memory, self.traced, self.t0, self.start = memory, traced, 0.0, 0
        self.stack: list[list] = []  # per traced frame: [the line running, its cost so far]
        self.total: dict = defaultdict(float)
        self.least: dict = defaultdict(lambda: np.inf)
        self.hits: dict = defaultdict(int)

    def __enter__(self):
        if self.memory:
            tracemalloc.start()
        sys.settrace(self.global_trace)
        self.restart()
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(None)
        while self.stack:
            self.finish(self.stack.pop())
        if self.memory:
            tracemalloc.stop()

    def global_trace(self, frame, event, arg):
        path = frame.f_code.co_filename.replace("\\", "/")
        if not any(t in path for t in self.traced):
            return None
        self.pause()
        self.stack.append([None, 0.0])
        return self.local_trace

    def local_trace(self, frame, event, arg):
        if event == "line":
            self.pause()
            self.finish(self.stack[-1])
            self.stack[-1][:] = [(frame.f_code.co_filename, frame.f_code.co_name,
                                  frame.f_lineno), 0.0]
        elif event == "return":
            self.pause()
            self.finish(self.stack.pop())
        self.restart()
        return self.local_trace

    def pause(self) -> None:
        """Charge the cost since restart to the line running in the innermost traced frame."""
        if self.stack:
            self.stack[-1][1] += self.cost()

    def finish(self, run: list) -> None:
        line, cost = run
        if line is not None:
            self.hits[line] += 1
            self.total[line] += cost
            self.least[line] = min(self.least[line], cost)

    def cost(self) -> float:
        if self.memory:
            return tracemalloc.get_traced_memory()[1] - self.start
        return time.perf_counter() - self.t0

    def restart(self) -> None:
        if self.memory:
            tracemalloc.reset_peak()
            self.start = tracemalloc.get_traced_memory()[0]
        else:
            self.t0 = time.perf_counter()


def empty_lines(n: int) -> None:
    for _ in range(n):
        pass


def tracer_cost() -> float:
    """Seconds the tracer adds to one line event: the least over a loop of empty lines."""
    with LineTracer(memory=False, traced=(__file__,)) as tracer:
        empty_lines(10_000)
    return min(tracer.least.values())


def bare_ms(step, steps: int) -> float:
    best = np.inf
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def traced(step, steps: int, memory: bool) -> LineTracer:
    with LineTracer(memory) as tracer:
        for _ in range(steps):
            step()
    return tracer


def breakdown(cell: str, H: int, steps: int, lines: int, per_event: float) -> None:
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, VOCAB, (SEQ_LEN, BATCH)) for _ in range(2))
    model = Model(VOCAB, H, 1, cell=cell)
    step = lambda: model.loss_and_grads(x, y)  # noqa: E731
    step()
    bare = bare_ms(step, steps)
    timer = traced(step, steps, memory=False)
    nbytes = traced(step, 1, memory=True).total
    hits = {k: n // steps for k, n in timer.hits.items()}
    ms = {k: max(least - per_event, 0.0) * hits[k] * 1e3 for k, least in timer.least.items()}
    kinds: dict = defaultdict(float)
    temporaries: dict = defaultdict(float)
    for key in ms:
        what = kind(key[1], linecache.getline(key[0], key[2]))
        kinds[what] += ms[key]
        temporaries[what] += nbytes.get(key, 0)
    kinds["python"] += bare - sum(kinds.values())
    print(f"\n{cell}, hidden {H}, batch {BATCH}, seq-len {SEQ_LEN}: forward+backward {bare:.1f} ms "
          f"({BATCH * SEQ_LEN / bare * 1e3:,.0f} chars/s), {sum(hits.values()):,} lines run")
    print(f"  {'kind':14} {'ms':>6} {'share':>6} {'temporaries MiB':>16}")
    for name in ("GEMM", "nonlinearity", "elementwise", "reduction", "copy", "python"):
        print(f"  {name:14} {kinds[name]:6.1f} {kinds[name] / bare:6.0%} "
              f"{temporaries[name] / 2**20:16.1f}")
    print(f"  the {lines} costliest lines (ms, runs and temporaries KiB per step):")
    for key in sorted(ms, key=ms.get, reverse=True)[:lines]:
        text = linecache.getline(key[0], key[2]).strip()
        print(f"  {ms[key]:6.2f} {hits[key]:4} {nbytes.get(key, 0) / 1024:6.0f}  "
              f"{Path(key[0]).name}:{key[2]} {key[1]}: {text[:64]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", default="lstm,gru", help=f"comma-separated, of {list(CELLS)}")
    parser.add_argument("--hidden", default="256,512", help="comma-separated sizes")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lines", type=int, default=12, help="costliest lines to list")
    args = parser.parse_args()
    per_event = tracer_cost()
    print(f"the line tracer adds {per_event * 1e6:.2f} us to each line; taken off every line")
    for cell in args.cell.split(","):
        for H in (int(h) for h in args.hidden.split(",")):
            breakdown(cell, H, args.steps, args.lines, per_event)


if __name__ == "__main__":
    main()
