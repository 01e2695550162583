"""The cost of rnnscope.torch.Panel inside an ordinary PyTorch loop (at most 5% at log_every=50).

The loop of examples/torch_char_lstm.py (Embedding -> nn.LSTM/GRU/RNN -> Linear, cross-entropy,
backward, clip_grad_norm_, Adam) on random character ids, timed in blocks of --steps steps (a
whole number of record intervals), with the panel ("on": panel.step instead of opt.step) and
without ("off"), on two copies of the same model: the watched one keeps its Panel from block to
block, as in one long run. Blocks run interleaved, off on on off within a round, so a machine that
speeds up or slows down during the run moves both alike; the overhead is the median over the
rounds of (on time / off time) - 1, in wall time and in the process's CPU time (which other
processes on a shared machine disturb less). overhead_in_step_cpu reads the panel's work
directly: the CPU time of panel.step() (record steps included) minus that of opt.step(), over
the loop's CPU time (the hooks' few reductions during backward are left out of it). Making the
Panel and its close() (triage, report: once per run) are outside the timed blocks; every record
step inside them is timed.

    python benchmarks/torch_panel.py --cell lstm --hidden 256 --rounds 5 [--json FILE]

On a shared machine run it with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1: two thread pools
(PyTorch's and NumPy's OpenBLAS) that spin-wait for cores other processes hold slow each other
down by orders of magnitude, which measures the machine, not the panel.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rnnscope.torch import Panel  # noqa: E402

MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
V, EMB = 65, 64


def make_loop(args):
    torch.manual_seed(0)
    emb = nn.Embedding(V, EMB)
    rnn = MODULES[args.cell](EMB, args.hidden, args.layers)
    head = nn.Linear(args.hidden, V)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    data = torch.randint(0, V, (args.steps + 1, args.seq + 1, args.batch))

    def block(panel) -> tuple[float, float, float]:
        """(wall, CPU, CPU in the step call) seconds for --steps training steps, stepping
        through panel if given: the last is the CPU time of opt.step() or panel.step()."""
        h, t0, c0, inside = None, time.perf_counter(), time.process_time(), 0.0
        for i in range(args.steps):
            x, y = data[i, :-1], data[i, 1:]
            out, h = rnn(emb(x), h)
            h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
            loss = nn.functional.cross_entropy(head(out).reshape(-1, V), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            c1 = time.process_time()
            if panel is None:
                opt.step()
            else:
                panel.step(loss, opt)
            inside += time.process_time() - c1
        return time.perf_counter() - t0, time.process_time() - c0, inside

    return rnn, block


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--cell", choices=sorted(MODULES), default="lstm")
    a.add_argument("--hidden", type=int, default=256)
    a.add_argument("--layers", type=int, default=1)
    a.add_argument("--batch", type=int, default=32)
    a.add_argument("--seq", type=int, default=64)
    a.add_argument("--log-every", type=int, default=50)
    a.add_argument("--steps", type=int, default=100, help="steps per timed block")
    a.add_argument("--rounds", type=int, default=5)
    a.add_argument("--json", help="also write the result to this file")
    args = a.parse_args()
    if args.steps % args.log_every:
        a.error("--steps must be a multiple of --log-every (whole record intervals per block)")
    _, off_block = make_loop(args)
    rnn, on_block = make_loop(args)  # the same model, watched, as one long run is
    times = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        panel = Panel(rnn, Path(tmp) / "run", args.log_every, quiet=True, report=False)
        off_block(None)  # warm-up: first calls allocate and pick kernels, the panel's too
        on_block(panel)
        for _ in range(args.rounds):
            for kind in ("off", "on", "on", "off"):
                times[kind].append(on_block(panel) if kind == "on" else off_block(None))
        panel.close()
    result = {
        "cell": args.cell, "hidden": args.hidden, "layers": args.layers, "batch": args.batch,
        "seq_len": args.seq, "log_every": args.log_every, "steps_per_block": args.steps,
        "rounds": args.rounds}
    for i, clock in enumerate(("wall", "cpu")):
        off, on = ([t[i] for t in times[kind]] for kind in ("off", "on"))
        ratios = [(on[2 * r] + on[2 * r + 1]) / (off[2 * r] + off[2 * r + 1])
                  for r in range(args.rounds)]
        result.update({f"step_ms_off_{clock}": 1e3 * statistics.median(off) / args.steps,
                       f"step_ms_on_{clock}": 1e3 * statistics.median(on) / args.steps,
                       f"overhead_{clock}": statistics.median(ratios) - 1,
                       f"overhead_{clock}_range": [min(ratios) - 1, max(ratios) - 1]})
    off, on = ([t[2] for t in times[kind]] for kind in ("off", "on"))
    result["overhead_in_step_cpu"] = (statistics.median(on) - statistics.median(off)) / \
        statistics.median([t[1] for t in times["off"]])
    result.update({
        "load_average": os.getloadavg(),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} torch threads, OPENBLAS_NUM_THREADS="
                   f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}",
    })
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
