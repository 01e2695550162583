"""Peak resident memory of `rnnscope train`, each configuration at two run lengths: what a run
needs, and that nothing grows with the number of steps (the longer run also holds more evals
and checkpoints).

    python benchmarks/memory.py [--steps 100 400] [--json]

Every run is its own child process; its peak (ru_maxrss, the kernel's high-water mark of its
resident set) comes from os.wait4 on that child alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CONFIGS = {
    "default (hidden 256, 1 layer, batch 32)": [],
    "hidden 512, 2 layers (batch 32)": ["--hidden", "512", "--layers", "2"],
}


def peak_rss_mib(train_args: list[str], steps: int) -> float:
    """Peak resident memory of one `rnnscope train` run, in MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rnnscope.cli", "train", "--quiet", "--steps", str(steps),
               "--run-dir", os.path.join(tmp, "run"), *train_args]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {proc.returncode}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def measure(lengths: list[int]) -> list[dict]:
    rows = []
    for name, train_args in CONFIGS.items():
        peaks = {steps: round(peak_rss_mib(train_args, steps), 1) for steps in lengths}
        rows.append({"config": name, "args": train_args,
                     "peak_rss_mib": {str(k): v for k, v in peaks.items()},
                     "growth_mib": round(peaks[max(lengths)] - peaks[min(lengths)], 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[100, 400],
                        help="the two run lengths")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.steps)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        peaks = ", ".join(f"{s} steps {v:.1f} MiB" for s, v in r["peak_rss_mib"].items())
        print(f"{r['config']}: {peaks}; growth {r['growth_mib']:+.1f} MiB")


if __name__ == "__main__":
    main()
