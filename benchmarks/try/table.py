"""docs/try.md's table: `rnnscope try` on the triage's calibration recipes (problem runs of
every kind and cell, and healthy runs), through the real CLI.

    python benchmarks/try/table.py [--steps 400] [--workers 2] [NAME ...]   # train + try
    python benchmarks/try/table.py --markdown                              # the table

Each recipe (benchmarks/calibration/calibrate.py) is trained into a temporary directory, then
`rnnscope try RUN --steps N` runs its forks; the run's try.json is kept in records/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "calibration"))
from calibrate import RECIPES, corpora  # noqa: E402

RECORDS = HERE / "records"
PROBLEMS = ("saturating-init-stdlib", "large-recurrence-stdlib", "lr-high-clip-stdlib",
            "lr-high-sgd-noclip-stdlib", "lr-low-stdlib", "weak-recurrence-stdlib",
            "tiny-corpus-big-model", "random-text", "saturating-gates-gru-stdlib",
            "closed-forget-lstm-delay8")
HEALTHY = ("healthy-stdlib", "healthy-gru-shakespeare", "healthy-lstm-shakespeare")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnscope.cli", *args], capture_output=True,
                          text=True)


def trial(name: str, steps: int, workers: int, tmp: Path) -> None:
    run = tmp / name
    flags = shlex.split(RECIPES[name][1].format(**corpora(tmp)))
    cli("train", *flags, "--no-report", "--quiet", "--run-dir", str(run))
    argv = ["try", str(run), "--steps", str(steps), "--workers", str(workers), "--quiet"]
    proc = cli(*argv)
    print(f"{name}: exit {proc.returncode} {proc.stderr.strip()[-300:]}", file=sys.stderr)
    doc = json.loads((run / "try" / "try.json").read_text())
    doc["commands"] = [f"rnnscope train {RECIPES[name][1]}",
                       f"rnnscope {' '.join(argv[:1] + ['RUN'] + argv[2:])}"]
    RECORDS.mkdir(exist_ok=True)
    (RECORDS / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


def first_fork(doc: dict) -> dict | None:
    """The fork of the verdict's first next step."""
    return next((f for f in doc["forks"] if f["rank"] == 0
                 and f["finding"] == doc["verdict"]), None)


def nll(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def markdown() -> str:
    rows = ["| run | cell | verdict | first next step | start | fork vs control (matched "
            "steps) | band | verdict | finding gone |", "|" + "---|" * 9]
    beat = 0
    for name in PROBLEMS:
        if not (RECORDS / f"{name}.json").exists():
            rows.append(f"| {name} | not run |")
            continue
        doc = json.loads((RECORDS / f"{name}.json").read_text())
        f = first_fork(doc)
        cell = re.search(r"--cell (\w+)", RECIPES[name][1])
        cell = cell.group(1) if cell else "rnn"
        if f is None:
            rows.append(f"| {name} | {cell} | {doc['verdict']} | - | - | - | - | not tried | - |")
            continue
        m = f["steps_matched"]
        beat += f["verdict"] == "helped"
        rows.append(f"| {name} | {cell} | {doc['verdict']} | `{f['text']}` | {f['start']} | "
                    f"{nll(m['fork'])} vs {nll(m['control'])} | ±{m['band'] or 0:.3f} | "
                    f"{f['verdict']} | {f['finding_gone']} |")
    rows.append(f"\nfirst next step beat the control beyond noise: {beat} of {len(PROBLEMS)}\n")
    rows += ["| healthy run | forks | helped (capacity) | no measurable difference | hurt | "
             "failed | a fork tied to a finding |", "|" + "---|" * 7]
    for name in HEALTHY:
        if not (RECORDS / f"{name}.json").exists():
            rows.append(f"| {name} | not run |")
            continue
        doc = json.loads((RECORDS / f"{name}.json").read_text())
        v = [f["verdict"] for f in doc["forks"]]
        tied = [f["text"] for f in doc["forks"] if f["finding"] not in (None, "healthy")]
        rows.append(f"| {name} | {len(v)} | {v.count('helped')} | "
                    f"{v.count('no_measurable_difference')} | {v.count('hurt')} | "
                    f"{v.count('failed')} | {', '.join(tied) or 'none'} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.markdown:
        print(markdown())
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names or PROBLEMS + HEALTHY:
            trial(name, args.steps, args.workers, Path(tmp))


if __name__ == "__main__":
    main()
