"""Quality on tinyshakespeare (last 10% as eval): recipes explored in short step-limited runs,
then the best ones for 15 minutes of wall time beside the PyTorch reference script, run at the
same time so that both see the same load.

    python benchmarks/quality/quality.py explore NAME...     # short runs of EXPLORE recipes
    python benchmarks/quality/quality.py budget NAME [NAME]  # 15-minute runs beside torch
    python benchmarks/quality/quality.py markdown            # the tables of docs/floors.md

Records are kept in records/ (benchmarks/record.py), the PyTorch script's output in
records/torch-*.txt. Every run uses one BLAS/OpenMP thread (PyTorch too), so the runs share the
machine's two cores evenly; chars/s and the load average are recorded with every run, because
the machine is shared and its speed moves with what else runs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from record import ONE_THREAD, best_eval, recorded, train_and_keep  # noqa: E402

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "records"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TORCH_SCRIPT = DATA.parent / "tools" / "torch_charlstm.py"
SHAKESPEARE = f"--corpus tinyshakespeare --data-dir {DATA} --eval-frac 0.1"
MINUTES = 15

# short runs: what each lever is worth at a fixed number of steps
RNN = "--cell rnn --steps 3000 --eval-every 250"
EXPLORE = {
    "rnn256": f"{RNN} --hidden 256",
    "rnn256-cosine": f"{RNN} --hidden 256 --lr-schedule cosine",
    "rnn256-cosine-drop0.1": f"{RNN} --hidden 256 --lr-schedule cosine --dropout 0.1",
    "rnn256-cosine-lr4e-3": f"{RNN} --hidden 256 --lr-schedule cosine --lr 0.004",
    "rnn512-cosine": f"{RNN} --hidden 512 --lr-schedule cosine",
}
# the 15-minute runs
BUDGET = {
    "rnn512-default": "--cell rnn --hidden 512 --eval-every 500",
}
TORCH = "--cell lstm --hidden 512"  # the reference, as in ../shared/notes


def explore(names: list[str], tmp: Path) -> None:
    for name in names:
        train_and_keep(f"explore-{name}", f"{SHAKESPEARE} {EXPLORE[name]}", RECORDS,
                       tmp / name)


def budget(names: list[str], tmp: Path) -> None:
    """The 15-minute runs and the PyTorch script, all started together."""
    env = {**os.environ, **ONE_THREAD}
    out = (RECORDS / "torch-lstm512.txt").open("w")
    torch = subprocess.Popen([sys.executable, str(TORCH_SCRIPT), str(DATA / "tinyshakespeare.txt"),
                              str(MINUTES), *TORCH.split()], stdout=out, stderr=subprocess.STDOUT,
                             env=env)
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(len(names)) as pool:
        jobs = [pool.submit(train_and_keep, f"budget-{n}",
                            f"{SHAKESPEARE} {BUDGET[n]} --minutes {MINUTES}", RECORDS, tmp / n)
                for n in names]
        for job in jobs:
            job.result()
    torch.wait()
    out.close()


def torch_evals(file: Path) -> list[tuple[float, float]]:
    """(elapsed seconds, best eval NLL so far) from the PyTorch script's lines."""
    found = re.findall(r"^\s*(\d+)s step \d+ train \S+ eval \S+ best (\S+)", file.read_text(),
                       flags=re.M)
    return [(float(t), float(b)) for t, b in found]


def best_by_minute(evals: list[tuple[float, float]]) -> list[float | None]:
    """The best eval NLL reached by the end of each minute 1..MINUTES."""
    out, best = [], None
    for minute in range(1, MINUTES + 1):
        seen = [e for t, e in evals if t <= 60 * minute]
        best = min(seen) if seen else None
        out.append(best)
    return out


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
    curves = {}
    for name in BUDGET:
        found = recorded(f"budget-{name}", RECORDS)
        if found:
            curves[name] = best_by_minute([(r["elapsed_s"], r["eval_nll"]) for r in found[1]
                                           if r.get("eval_nll") is not None])
    torch_file = RECORDS / "torch-lstm512.txt"
    if torch_file.exists():
        curves["torch lstm512"] = best_by_minute(torch_evals(torch_file))
    head = "| minute | " + " | ".join(curves) + " |"
    table = [head, "|---" * (len(curves) + 1) + "|"] + [
        f"| {m + 1} | " + " | ".join("–" if c[m] is None else f"{c[m]:.4f}"
                                     for c in curves.values()) + " |" for m in range(MINUTES)]
    return "\n".join(rows) + "\n\n" + "\n".join(table)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("explore", "budget", "markdown"))
    p.add_argument("names", nargs="*")
    args = p.parse_args()
    if args.what == "markdown":
        print(markdown())
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        (explore if args.what == "explore" else budget)(args.names, Path(tmp))
    print(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
