"""The vanishing-gradient limit: train each cell on synthetic:delay{K} (or synthetic:recall{K})
for growing K and find the K where it stops reaching the floor (within TOLERANCE nats of the
entropy rate; on recall, within a tenth of what holding the item is worth).

    python benchmarks/limit/limit.py --cell rnn             # train the missing runs of the sweep
    python benchmarks/limit/limit.py --cell lstm --K 32 64  # these K only (again)
    python benchmarks/limit/limit.py --cell gru --K 16 --lr 0.01 [--steps 12000]  # a variant
    python benchmarks/limit/limit.py --markdown             # the table of docs/floors.md
    python benchmarks/limit/limit.py --source recall --cell gru --K 4 16   # the recall sweep
    python benchmarks/limit/limit.py --source recall --markdown

Every run is the same recipe (RECIPE) with --seq-len above every K, so truncated BPTT always
has the dependency inside a chunk for at least half of the positions. Each run's records are
kept in records/<cell>-delay<K>.json(l) (benchmarks/record.py), so the table is re-read without
training again.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from rnnscope import synthetic
from rnnscope.data import chunks_per_epoch, eval_streams, split

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
# recall{K}: one item of 8 held K steps, so holding it is worth ln 8 per block of K+1 letters,
# 0.008 nats/char at K = 256; a run reaches the floor when it has learned RECALLED of that
RECALL_KS = (4, 16, 64, 256)
RECALL_STEPS = 3000
RECALL_VARIANTS = (RECALL_STEPS, 4 * RECALL_STEPS)  # the recipe, and four times as long
RECALLED = 0.9


def recall_recipe(K: int) -> str:
    """hidden 64 holds one item and a count; --seq-len 2K (at least 64) has the dependency
    inside a chunk for half of the positions and bptt_profile reaching k = K; batch 16 keeps
    the eval streams' unknown starts small (the reachable NLL below)."""
    return (f"--hidden 64 --batch 16 --seq-len {max(64, 2 * K)} --eval-frac 0.1 "
            "--eval-every 250 --log-every 50")


def name(cell: str, K: int, lr: float | None = None, steps: int = STEPS,
         source: str = "delay") -> str:
    return f"{cell}-{source}{K}" + (f"-lr{lr:g}" if lr else "") + (
        f"-steps{steps}" if steps != default_steps(source) else "")


def default_steps(source: str) -> int:
    return RECALL_STEPS if source == "recall" else STEPS


def flags(cell: str, K: int, lr: float | None = None, steps: int = STEPS,
          source: str = "delay") -> str:
    recipe = recall_recipe(K) if source == "recall" else RECIPE
    return (f"--corpus synthetic:{source}{K} --cell {cell} {recipe} --steps {steps}" +
            (f" --lr {lr:g}" if lr else ""))


def summary(cell: str, K: int, lr: float | None = None, steps: int = STEPS,
            source: str = "delay") -> dict | None:
    """Best eval NLL against the floor, and how much of a unit gradient survives K steps back
    (bptt_profile at the largest recorded k <= K) at the first and the last record; None when
    the run is not recorded. On recall also the reachable NLL, what holding the item is worth
    and the share of it learned, and the median memory_steps of the last records."""
    found = recorded(name(cell, K, lr, steps, source), RECORDS)
    if found is None:
        return None
    doc, records = found
    best = best_eval(records)
    floor = doc["config"]["corpus"]["floor_nll"]
    profiles = [r["bptt_profile"] for r in records if r.get("bptt_profile")]
    s = {"cell": cell, "K": K, "lr": doc["config"]["config"]["lr"], "steps": steps,
         "best_eval_nll": best["eval_nll"], "best_step": best["step"],
         "floor_nll": floor, "gap": best["eval_nll"] - floor,
         "reaches_floor": best["eval_nll"] - floor <= TOLERANCE,
         "g_K": [[g for k, g in profiles[i] if k <= K][-1] for i in (0, -1)],
         "chars_per_s": doc["chars_per_s"], "load_average": doc["load_average"]}
    if source == "recall":
        s.update(recall_share(doc["config"], K, best["eval_nll"]))
        s["memory_steps"] = statistics.median(
            r["memory_steps"] for r in records[-5:] if r.get("memory_steps") is not None) \
            if any(r.get("memory_steps") is not None for r in records) else None
    return s


def recall_share(config: dict, K: int, best: float) -> dict:
    """The reachable eval NLL (the exact Bayes predictor on the run's own eval streams, each
    read from a zero state as the run's eval does), what holding the item is worth (ln 8 per
    block of K+1) and the share of it the run learned; it reaches the floor at RECALLED."""
    cfg = config["config"]
    text = synthetic.generate(synthetic.Source("recall", K, 0))
    ids = np.frombuffer(text.encode("ascii"), np.uint8).astype(np.int64) - ord("a")
    _, eval_ids = split(ids, cfg["eval_frac"])
    streams = eval_streams(eval_ids, cfg["batch"], cfg["seq_len"])
    used = chunks_per_epoch(streams, cfg["seq_len"]) * cfg["seq_len"] + 1  # what evaluate reads
    reachable = synthetic.recall_oracle_nll(streams[:, :used], K)
    worth = math.log(len(synthetic.RECALL_ITEMS)) / (K + 1)
    share = 1 - (best - reachable) / worth
    return {"reachable": reachable, "worth": worth, "share": share,
            "reaches_floor": share >= RECALLED}


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


def recall_markdown(cells: list[str]) -> str:
    rows = ["| cell | K | steps | best eval NLL (step) | floor | reachable | item worth | "
            "share learned | verdict | gradient left K steps back, first -> last | "
            "memory_steps (last) | chars/s (load) |", "|---" * 12 + "|"]
    for steps, cell, K in itertools.product(RECALL_VARIANTS, cells, RECALL_KS):
        s = summary(cell, K, source="recall", steps=steps)
        if s is not None:
            rows.append(recall_row(s))
    return "\n".join(rows)


def recall_row(s: dict) -> str:
    verdict = "reaches the floor" if s["reaches_floor"] else "stops short"
    memory = "-" if s["memory_steps"] is None else f"{s['memory_steps']:.3g}"
    return (f"| {s['cell']} | {s['K']} | {s['steps']} | {s['best_eval_nll']:.4f} "
            f"({s['best_step']}) | {s['floor_nll']:.4f} | {s['reachable']:.4f} | "
            f"{s['worth']:.4f} | {s['share']:.3f} | {verdict} | "
            f"{s['g_K'][0]:.2g} -> {s['g_K'][1]:.2g} | {memory} | "
            f"{s['chars_per_s'] / 1000:.1f}k ({s['load_average'][0]:g}) |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", default="rnn")
    p.add_argument("--source", choices=("delay", "recall"), default="delay")
    p.add_argument("--K", type=int, nargs="*", help=f"delays to train (default {KS}, recall "
                   f"{RECALL_KS}, the ones not yet recorded)")
    p.add_argument("--lr", type=float, help="the recipe with this Adam lr (default 2e-3)")
    p.add_argument("--steps", type=int, help=f"(default {STEPS}, recall {RECALL_STEPS})")
    p.add_argument("--markdown", action="store_true", help="print the table of every cell")
    args = p.parse_args()
    cells, source = ["rnn", "gru", "lstm"], args.source
    table = recall_markdown if source == "recall" else markdown
    if args.markdown:
        print(table(cells))
        return 0
    steps = args.steps or default_steps(source)
    ks = RECALL_KS if source == "recall" else KS
    with tempfile.TemporaryDirectory() as tmp:
        for K in args.K or ks:
            if args.K or summary(args.cell, K, args.lr, steps, source) is None:
                run = name(args.cell, K, args.lr, steps, source)
                train_and_keep(run, flags(args.cell, K, args.lr, steps, source), RECORDS,
                               Path(tmp) / run)
    print(table([args.cell]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
