"""The matrix products of one rnnscope forward+backward, in NumPy's BLAS and in PyTorch's.

    python benchmarks/blas_shapes.py [--hidden 512] [--rounds 15] [--json]

The engine spends most of a step in BLAS (benchmarks/breakdown.py). This times each product
shape of a 1-layer step at batch 64, seq-len 64, vocabulary 65, float32, in NumPy (the engine's
own calls and layouts) and with torch.mm on the same arrays, interleaved round by round, and
sums them with their counts per step: how long the step's products take in each library. When
the two sums differ, the engine's margin over nn.RNN moves with the BLAS, not with the engine.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from rnnscope.bench import BATCH, SEQ_LEN, SETTLE_S, VOCAB, import_torch, run_block

BLOCK = 5  # calls per block


def products(H: int) -> dict[str, tuple[int, tuple, tuple, bool]]:
    """name -> (count per step, shape of a, shape of b, a is used transposed)."""
    N = SEQ_LEN * BATCH
    return {
        "recurrent (B,H)@(H,H)": (2 * SEQ_LEN - 1, (BATCH, H), (H, H), False),
        "dWhh (H,N)@(N,H)": (1, (N, H), (N, H), True),
        "readout (N,H)@(H,V)": (1, (N, H), (H, VOCAB), False),
        "dWhy (H,N)@(N,V)": (1, (N, H), (N, VOCAB), True),
        "du (N,V)@(V,H)": (1, (N, VOCAB), (VOCAB, H), False),
        "dWxh (V,N)@(N,H)": (1, (VOCAB, N), (N, H), False),
    }


def contestants(H: int, torch) -> dict[str, tuple[int, dict]]:
    """name -> (count per step, {"numpy": call, "torch": call}), both calls writing the same
    product of the same random operands into their own output (returned by the call)."""
    rng = np.random.default_rng(0)
    made = {}
    for name, (count, sa, sb, trans) in products(H).items():
        a = rng.standard_normal(sa, dtype=np.float32)
        b = rng.standard_normal(sb, dtype=np.float32)
        a_op = a.T if trans else a
        out = np.empty((a_op.shape[0], b.shape[1]), np.float32)
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.empty(out.shape)
        ta_op = ta.t() if trans else ta
        made[name] = (count, {
            "numpy": lambda a_op=a_op, b=b, out=out: np.dot(a_op, b, out=out),
            "torch": lambda ta_op=ta_op, tb=tb, tout=tout: torch.mm(ta_op, tb, out=tout)})
    return made


def measure(H: int, rounds: int, torch) -> list[dict]:
    """One row per product: its count and median microseconds per call in each library."""
    rows = []
    for name, (count, calls) in contestants(H, torch).items():
        times: dict[str, list[float]] = {"numpy": [], "torch": []}
        for r in range(rounds):
            for who in ("numpy", "torch") if r % 2 == 0 else ("torch", "numpy"):
                time.sleep(SETTLE_S)  # the other library's threads stop spinning
                calls[who]()  # wakes the threads, refills the caches: not counted
                times[who].append(float(run_block(calls[who], BLOCK).mean()))
        us = {who: float(np.median(t)) * 1e6 for who, t in times.items()}
        rows.append({"product": name, "count": count, "numpy_us": us["numpy"],
                     "torch_us": us["torch"], "numpy_over_torch": us["numpy"] / us["torch"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch = import_torch()
    rows = measure(args.hidden, args.rounds, torch)
    totals = {who: sum(r["count"] * r[f"{who}_us"] for r in rows) / 1e3
              for who in ("numpy", "torch")}
    if args.json:
        print(json.dumps({"hidden": args.hidden, "rows": rows, "step_products_ms": totals}))
        return
    print(f"hidden {args.hidden}, batch {BATCH}, seq-len {SEQ_LEN}, vocab {VOCAB}, float32, "
          f"{args.rounds} rounds; numpy {np.__version__}, torch {torch.__version__}")
    print(f"{'product':24} {'count':>5} {'numpy us':>10} {'torch us':>10} {'numpy/torch':>12}")
    for r in rows:
        print(f"{r['product']:24} {r['count']:>5} {r['numpy_us']:>10.1f} {r['torch_us']:>10.1f} "
              f"{r['numpy_over_torch']:>11.3f}x")
    print(f"the products of one step: numpy {totals['numpy']:.1f} ms, torch {totals['torch']:.1f}"
          f" ms ({totals['numpy'] / totals['torch']:.3f}x)")


if __name__ == "__main__":
    main()
