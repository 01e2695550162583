"""Train with the real CLI and keep what a benchmark needs: the records (per-parameter norms
left out, gate readings kept) as NAME.jsonl and NAME.json with the command, config, wall time,
chars/s and the machine's load average before and after, in a records directory.

Runs use one BLAS thread: on a shared 2-core machine OpenBLAS's second thread spins waiting for
a core, and a training step was measured 30 times slower with it (65.7k against 1.8k chars/s,
hidden 128, seq-len 128, at a load average of 11).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from rnnscope import runs

ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def train_and_keep(name: str, flags: str, records: Path, run_dir: Path) -> dict:
    """`rnnscope train FLAGS` into run_dir, its records kept as records/NAME.json(l)."""
    cmd = [sys.executable, "-m", "rnnscope.cli", "train", *shlex.split(flags), "--quiet",
           "--no-report", "--run-dir", str(run_dir)]
    start, load0 = time.time(), os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    wall, load1 = time.time() - start, os.getloadavg()[0]
    print(f"{name}: exit {proc.returncode} in {wall:.0f} s", file=sys.stderr)
    kept = kept_records(run_dir)
    doc = {"command": "rnnscope train " + flags, "exit": proc.returncode,
           "stderr": proc.stderr[-2000:], "wall_s": round(wall), "chars_per_s": speed(kept),
           "load_average": [round(load0, 1), round(load1, 1)],
           "config": runs.read_config(run_dir)}
    write_kept(records, name, doc, kept)
    return doc


def kept_records(run_dir: Path, layers: bool = False) -> list[dict]:
    """The run's records without its per-parameter readings (keys with a dot), the gate
    readings (gate.*) kept, and the per-layer ones (layer*) when `layers`."""
    return [{k: v for k, v in r.items() if "." not in k or k.startswith("gate.") or
             layers and k.startswith("layer")} for r in runs.read_metrics(run_dir)]


def speed(records: list[dict]) -> int:
    """chars/s over the run, from its last record."""
    last = records[-1] if records else {"chars": 0, "elapsed_s": 1}
    return round(last["chars"] / last["elapsed_s"])


def write_kept(where: Path, name: str, doc: dict, records: list[dict]) -> None:
    """NAME.jsonl (the records) and NAME.json (the doc) in where."""
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (where / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


def recorded(name: str, records: Path) -> tuple[dict, list[dict]] | None:
    """(NAME.json, the records of NAME.jsonl), or None when the run is not recorded."""
    file = records / f"{name}.jsonl"
    if not file.exists():
        return None
    doc = json.loads((records / f"{name}.json").read_text())
    return doc, [json.loads(line) for line in file.read_text().splitlines()]


def best_eval(records: list[dict]) -> dict:
    """The record with the lowest eval NLL."""
    return min((r for r in records if r.get("eval_nll") is not None),
               key=lambda r: r["eval_nll"])
