"""Showing a run while it trains: a live rich panel on a terminal, plain lines otherwise.

The display only reads what the loop hands it (step counts and the panel records); it never
computes a reading itself.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

SHOWN = ("train_nll", "eval_nll", "mean_abs_h", "sat_ratio", "mean_gain", "dh_norm",
         "dh_raw_norm", "grad_norm", "clip_rate", "update_ratio", "whh_sigma_max")


class Display(Protocol):
    def start(self, path, step: int, total: int | None, limit_s: float | None) -> None: ...
    def step(self, step: int, chars: int, elapsed_s: float) -> None: ...
    def record(self, rec: dict) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self) -> None: ...


def make_display(quiet: bool = False) -> Display:
    """The live panel on an interactive terminal, plain lines with --quiet or when piped."""
    if quiet or not sys.stdout.isatty():
        return PlainDisplay()
    return LiveDisplay()


def fmt(v) -> str:
    if v is None:
        return "nan"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.4f}"
    return str(v)


class PlainDisplay:
    """One line per record, for logs and pipes."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.t_start = self.chars0 = 0

    def start(self, path, step, total, limit_s) -> None:
        length = f"{total} steps" if total else f"{limit_s / 60:g} minutes"
        print(f"training {path} from step {step} for {length}", file=self.out, flush=True)
        self.t_start, self.chars0 = time.perf_counter(), None

    def step(self, step, chars, elapsed_s) -> None:
        if self.chars0 is None:
            self.chars0 = chars

    def record(self, rec: dict) -> None:
        rate = (rec["chars"] - (self.chars0 or 0)) / max(time.perf_counter() - self.t_start, 1e-9)
        parts = [f"step {rec['step']}"] + [f"{k} {fmt(rec[k])}" for k in SHOWN if k in rec]
        print(" | ".join(parts + [f"{rate / 1000:.1f}k chars/s"]), file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def finish(self) -> None:
        pass


class LiveDisplay:
    """A progress bar with chars/s and ETA, and a table of the latest readings."""

    def __init__(self) -> None:
        self.console = Console()
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[where]}"),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console)
        self.last: dict = {}
        self.notes: list[str] = []

    def start(self, path, step, total, limit_s) -> None:
        self.by_time = total is None
        self.task = self.progress.add_task(str(path), total=limit_s if self.by_time else total,
                                           completed=0, where="", rate="")
        self.t0, self.chars0, self.shown = time.perf_counter(), None, 0.0
        self.live = Live(self.render(), console=self.console, refresh_per_second=4)
        self.live.start()

    def step(self, step, chars, elapsed_s) -> None:
        now = time.perf_counter()
        if self.chars0 is None:
            self.chars0 = chars
        if now - self.shown < 0.25:
            return
        self.shown = now
        rate = (chars - self.chars0) / max(now - self.t0, 1e-9)
        self.progress.update(self.task, completed=elapsed_s if self.by_time else step,
                             where=f"step {step}", rate=f"{rate / 1000:.1f}k chars/s")

    def record(self, rec: dict) -> None:
        self.last = rec
        self.live.update(self.render())

    def note(self, text: str) -> None:
        self.console.print(text)

    def finish(self) -> None:
        self.live.stop()

    def render(self):
        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("reading")
        table.add_column("value", justify="right")
        for k in SHOWN:
            if k in self.last:
                table.add_row(k, fmt(self.last[k]))
        return Group(self.progress, table)
