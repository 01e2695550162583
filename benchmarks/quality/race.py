"""Quality in a wall-clock budget: contestants started at the same moment, side by side, one
BLAS thread each, on tinyshakespeare with the last 10% as eval split.

    python benchmarks/quality/race.py --minutes 15 NAME=rnnscope:"FLAGS" NAME=torch:"ARGS"
    python benchmarks/quality/race.py --table NAME...      # best eval NLL per minute, markdown

A contestant is rnnscope (`rnnscope train` with FLAGS) or ../shared/tools/torch_charlstm.py (the
PyTorch reference of issue 13, with ARGS). On a 2-core machine two contestants get a core each:
neither waits for the other, and both see the same machine. Each one's records are kept in
records/NAME.jsonl beside NAME.json (command, wall time, chars/s, load average); the PyTorch
script's per-minute lines become records with step, train_nll (its last batch), eval_nll,
elapsed_s and chars, so `rnnscope compare` and `rnnscope report` read them like a run:

    cd benchmarks/quality/records && rnnscope report A.jsonl B.jsonl -o race.html
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rnnscope import runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from record import ONE_THREAD, kept_records, recorded, speed, write_kept  # noqa: E402

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "records"
SHARED = Path(__file__).resolve().parents[3] / "shared"
CORPUS = SHARED / "data" / "tinyshakespeare.txt"
TORCH_SCRIPT = SHARED / "tools" / "torch_charlstm.py"
TORCH_LINE = re.compile(r"\s*(\d+)s step (\d+) train ([\d.]+) eval ([\d.]+) best")


def command(kind: str, flags: str, minutes: float, run_dir: Path) -> list[str]:
    if kind == "rnnscope":
        return [sys.executable, "-m", "rnnscope.cli", "train", "--corpus", "tinyshakespeare",
                "--data-dir", str(CORPUS.parent), "--eval-frac", "0.1", "--minutes",
                f"{minutes:g}", *shlex.split(flags), "--quiet", "--no-report", "--run-dir",
                str(run_dir)]
    return [sys.executable, str(TORCH_SCRIPT), str(CORPUS), f"{minutes:g}", *shlex.split(flags)]


def torch_records(out: str, flags: str) -> list[dict]:
    """The script's per-minute lines as records (batch and seq from its flags, default 64)."""
    a = argparse.ArgumentParser()
    a.add_argument("--batch", type=int, default=64)
    a.add_argument("--seq", type=int, default=64)
    sizes, _ = a.parse_known_args(shlex.split(flags))
    return [{"step": int(m[2]), "train_nll": float(m[3]), "eval_nll": float(m[4]),
             "elapsed_s": float(m[1]), "chars": int(m[2]) * sizes.batch * sizes.seq}
            for m in map(TORCH_LINE.match, out.splitlines()) if m]


def race(contestants: list[tuple[str, str, str]], minutes: float, tmp: Path) -> None:
    procs, load0 = {}, os.getloadavg()[0]
    start = time.time()
    for name, kind, flags in contestants:
        procs[name] = subprocess.Popen(command(kind, flags, minutes, tmp / name),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, **ONE_THREAD})
    for name, kind, flags in contestants:
        out, err = procs[name].communicate()
        wall = time.time() - start
        if kind == "rnnscope":
            recs, config = kept_records(tmp / name), runs.read_config(tmp / name)
        else:
            recs, config = torch_records(out, flags), {"config": {}}
        doc = {"command": f"{kind} {flags}", "minutes": minutes,
               "exit": procs[name].returncode, "stderr": err[-2000:], "wall_s": round(wall),
               "chars_per_s": speed(recs),
               "load_average": [round(load0, 1), round(os.getloadavg()[0], 1)],
               "beside": [n for n, _, _ in contestants if n != name], **config}
        write_kept(RECORDS, name, doc, recs)
        print(f"{name}: exit {procs[name].returncode}, {len(recs)} records", file=sys.stderr)


def best_by_minute(records: list[dict], minutes: int) -> list[float | None]:
    """The best eval NLL reached by the end of each minute 1..minutes (None before any eval)."""
    evals = [(r["elapsed_s"], r["eval_nll"]) for r in records
             if r.get("eval_nll") is not None and r.get("elapsed_s") is not None]
    return [min((e for t, e in evals if t <= 60 * m), default=None)
            for m in range(1, minutes + 1)]


def table(names: list[str]) -> str:
    docs = {n: recorded(n, RECORDS) for n in names}
    minutes = int(max(doc["minutes"] for doc, _ in docs.values()))
    rows = ["| minute | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    curves = {n: best_by_minute(recs, minutes) for n, (_, recs) in docs.items()}
    for m in range(minutes):
        cells = [f"{curves[n][m]:.4f}" if curves[n][m] is not None else "-" for n in names]
        rows.append(f"| {m + 1} | " + " | ".join(cells) + " |")
    rows.append("| chars/s | " + " | ".join(f"{docs[n][0]['chars_per_s'] / 1000:.1f}k"
                                           for n in names) + " |")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--table", action="store_true", help="print the per-minute table of NAMEs")
    p.add_argument("contestants", nargs="+", help='NAME=rnnscope:"FLAGS" or NAME=torch:"ARGS"')
    args = p.parse_args()
    if args.table:
        print(table(args.contestants))
        return 0
    parsed = []
    for c in args.contestants:
        name, _, rest = c.partition("=")
        kind, _, flags = rest.partition(":")
        if kind not in ("rnnscope", "torch"):
            p.error(f"{c}: write NAME=rnnscope:FLAGS or NAME=torch:ARGS")
        parsed.append((name, kind, flags))
    with tempfile.TemporaryDirectory() as tmp:
        race(parsed, args.minutes, Path(tmp))
    print(table([n for n, _, _ in parsed]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
