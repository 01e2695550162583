"""Where the time of one forward+backward goes: the per-step recurrent products against the rest.

    python benchmarks/breakdown.py [--cell rnn] [--hidden 512] [--layers 1] [--steps 20]

Times Model.loss_and_grads at batch 64, seq-len 64, vocabulary 65, float32, and inside it the
cell's forward and backward (the recurrence loops; the backward includes the one large product
of the recurrent weight gradient), then one bare (B, H) @ (H, H) product and one
(H, T*B) @ (T*B, H) product for scale.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from rnnscope.bench import BATCH, SEQ_LEN, VOCAB, matmul_peak
from rnnscope.cells import CELLS
from rnnscope.model import Model, empty_aligned


def timed(fn, totals: dict, name: str):
    def wrapper(*args):
        t0 = time.perf_counter()
        out = fn(*args)
        totals[name] += time.perf_counter() - t0
        return out
    return wrapper


def best_ms(fn, repeats: int = 50) -> float:
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=CELLS, default="rnn")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    H, steps = args.hidden, args.steps
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, VOCAB, (SEQ_LEN, BATCH)) for _ in range(2))
    model = Model(VOCAB, H, args.layers, cell=args.cell)
    totals: dict[str, float] = defaultdict(float)
    cell = CELLS[args.cell]
    for name in ("forward", "backward"):
        setattr(cell, name, timed(getattr(cell, name), totals, f"{args.cell}.{name}"))
    model.loss_and_grads(x, y)
    totals.clear()
    t0 = time.perf_counter()
    for _ in range(steps):
        model.loss_and_grads(x, y)
    total = (time.perf_counter() - t0) / steps * 1e3
    parts = {k: v / steps * 1e3 for k, v in totals.items()}
    parts["everything else"] = total - sum(parts.values())

    shapes = ((BATCH, H), (H, H), (BATCH, H), (SEQ_LEN * BATCH, H), (SEQ_LEN * BATCH, H))
    h, W, out, big, big2 = (empty_aligned(s, np.float32) for s in shapes)
    for a in (h, W, big, big2):  # random operands: constant ones let the CPU clock higher
        a[...] = rng.standard_normal(a.shape)
    per_step = best_ms(lambda: np.dot(h, W, out=out))
    dW = best_ms(lambda: np.dot(big.T, big2, out=W), 10)  # not big.T @ big: NumPy halves that
    print(f"{args.cell}, hidden {H}, {args.layers} layer(s): forward+backward {total:.1f} ms "
          f"({BATCH * SEQ_LEN / total * 1e3:,.0f} chars/s)")
    for name, ms in parts.items():
        print(f"  {name:16} {ms:6.1f} ms  {ms / total:4.0%}")
    n_products = 2 * SEQ_LEN * args.layers
    print(f"one ({BATCH}, {H}) @ ({H}, {H}) product: {per_step * 1e3:.0f} us, "
          f"{2 * BATCH * H * H / per_step / 1e6:.0f} GFLOP/s; {n_products} of them "
          f"{n_products * per_step:.1f} ms")
    print(f"one ({H}, {SEQ_LEN * BATCH}) @ ({SEQ_LEN * BATCH}, {H}) product: {dW:.1f} ms, "
          f"{2 * SEQ_LEN * BATCH * H * H / dW / 1e6:.0f} GFLOP/s; "
          f"2048^3 peak {matmul_peak(2048) / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
