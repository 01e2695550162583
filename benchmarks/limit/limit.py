"""The vanishing-gradient limit: train each cell on synthetic:delay{K} for growing K and find
the K where it stops reaching the floor (within TOLERANCE nats of the entropy rate).

    python benchmarks/limit/limit.py --cell rnn             # train the missing runs of the sweep
    python benchmarks/limit/limit.py --cell lstm --K 32 64  # these K only (again)
    python benchmarks/limit/limit.py --cell gru --K 16 --lr 0.01 [--steps 12000]  # a variant
    python benchmarks/limit/limit.py --markdown             # the table of docs/floors.md

Every run is the same recipe (RECIPE) with --seq-len above every K, so truncated BPTT always
has the dependency inside a chunk for at least half of the positions. Each run's records are
kept in records/<cell>-delay<K>.json(l) (benchmarks/record.py), so the table is re-read without
training again.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from record import best_eval, recorded, train_and_keep  # noqa: E402

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "records"
RECIPE = "--hidden 128 --batch 32 --seq-len 128 --eval-frac 0.1 --eval-every 250 --log-every 50"
STEPS = 3000
KS = (1, 2, 4, 8, 12, 16, 32, 64)
VARIANTS = ((None, STEPS), (0.01, STEPS), (0.01, 4 * STEPS))  # (Adam lr, None: the default
# 2e-3; steps): the recipe, a higher lr, and the higher lr for four times as long
TOLERANCE = 0.1  # nats above the floor that still count as reaching it (docs/floors.md)


def name(cell: str, K: int, lr: float | None = None, steps: int = STEPS) -> str:
    return f"{cell}-delay{K}" + (f"-lr{lr:g}" if lr else "") + (
        f"-steps{steps}" if steps != STEPS else "")


def flags(cell: str, K: int, lr: float | None = None, steps: int = STEPS) -> str:
    return (f"--corpus synthetic:delay{K} --cell {cell} {RECIPE} --steps {steps}" +
            (f" --lr {lr:g}" if lr else ""))


def summary(cell: str, K: int, lr: float | None = None, steps: int = STEPS) -> dict | None:
    """Best eval NLL against the floor, and how much of a unit gradient survives K steps back
    (bptt_profile at the largest recorded k <= K) at the first and the last record; None when
    the run is not recorded."""
    found = recorded(name(cell, K, lr, steps), RECORDS)
    if found is None:
        return None
    doc, records = found
    best = best_eval(records)
    floor = doc["config"]["corpus"]["floor_nll"]
    profiles = [r["bptt_profile"] for r in records if r.get("bptt_profile")]
    return {"cell": cell, "K": K, "lr": doc["config"]["config"]["lr"], "steps": steps,
            "best_eval_nll": best["eval_nll"], "best_step": best["step"],
            "floor_nll": floor, "gap": best["eval_nll"] - floor,
            "reaches_floor": best["eval_nll"] - floor <= TOLERANCE,
            "g_K": [[g for k, g in profiles[i] if k <= K][-1] for i in (0, -1)],
            "chars_per_s": doc["chars_per_s"], "load_average": doc["load_average"]}


def markdown(cells: list[str]) -> str:
    rows = ["| cell | K | lr | steps | best eval NLL (step) | floor | gap | verdict | gradient "
            "left K steps back, first -> last record | chars/s (load) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for lr, steps in VARIANTS:
        for cell in cells:
            for K in KS:
                s = summary(cell, K, lr, steps)
                if s is not None:
                    rows.append(row(s))
    return "\n".join(rows)


def row(s: dict) -> str:
    verdict = "reaches the floor" if s["reaches_floor"] else "stops short"
    return (f"| {s['cell']} | {s['K']} | {s['lr']:g} | {s['steps']} | {s['best_eval_nll']:.4f} "
            f"({s['best_step']}) | {s['floor_nll']:.4f} | {s['gap']:+.3f} | {verdict} | "
            f"{s['g_K'][0]:.2g} -> {s['g_K'][1]:.2g} | "
            f"{s['chars_per_s'] / 1000:.0f}k ({s['load_average'][0]:g}) |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", default="rnn")
    p.add_argument("--K", type=int, nargs="*", help=f"delays to train (default {KS}, the "
                   "ones not yet recorded)")
    p.add_argument("--lr", type=float, help="the recipe with this Adam lr (default 2e-3)")
    p.add_argument("--steps", type=int, default=STEPS, help=f"(default {STEPS})")
    p.add_argument("--markdown", action="store_true", help="print the table of every cell")
    args = p.parse_args()
    if args.markdown:
        print(markdown(["rnn", "gru", "lstm"]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for K in args.K or KS:
            if args.K or summary(args.cell, K, args.lr, args.steps) is None:
                run = name(args.cell, K, args.lr, args.steps)
                train_and_keep(run, flags(args.cell, K, args.lr, args.steps), RECORDS,
                               Path(tmp) / run)
    print(markdown([args.cell]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
