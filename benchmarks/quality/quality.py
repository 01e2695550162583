"""Quality on tinyshakespeare (last 10% as eval): recipes explored in short step-limited runs.

    python benchmarks/quality/quality.py explore NAME...     # short runs of EXPLORE recipes
    python benchmarks/quality/quality.py markdown            # the table of docs/floors.md

Records are kept in records/ (benchmarks/record.py). Every run uses one BLAS thread; chars/s and
the load average are recorded with every run, because the machine is shared and its speed moves
with what else runs. (The 15-minute runs beside the PyTorch script are still to be made: see
docs/floors.md.)
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
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SHAKESPEARE = f"--corpus tinyshakespeare --data-dir {DATA} --eval-frac 0.1"

# short runs: what each lever is worth at a fixed number of steps
RNN = "--cell rnn --steps 3000 --eval-every 250"
EXPLORE = {
    "rnn256": f"{RNN} --hidden 256",
    "rnn256-cosine": f"{RNN} --hidden 256 --lr-schedule cosine",
    "rnn256-cosine-drop0.1": f"{RNN} --hidden 256 --lr-schedule cosine --dropout 0.1",
    "rnn256-cosine-lr4e-3": f"{RNN} --hidden 256 --lr-schedule cosine --lr 0.004",
    "rnn512-cosine": f"{RNN} --hidden 512 --lr-schedule cosine",
}
def explore(names: list[str], tmp: Path) -> None:
    for name in names:
        train_and_keep(f"explore-{name}", f"{SHAKESPEARE} {EXPLORE[name]}", RECORDS,
                       tmp / name)


def markdown() -> str:
    rows = ["| recipe | flags | steps | best eval NLL (step) | chars/s (load) |",
            "|---|---|---|---|---|"]
    for name, flags in EXPLORE.items():
        found = recorded(f"explore-{name}", RECORDS)
        if found:
            doc, records = found
            best = best_eval(records)
            rows.append(f"| {name} | `{flags}` | {records[-1]['step']} | "
                        f"{best['eval_nll']:.4f} ({best['step']}) | "
                        f"{doc['chars_per_s'] / 1000:.1f}k ({doc['load_average'][0]:g}) |")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("explore", "markdown"))
    p.add_argument("names", nargs="*")
    args = p.parse_args()
    if args.what == "markdown":
        print(markdown())
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        explore(args.names, Path(tmp))
    print(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
