"""Showing a run while it trains: a live rich panel on a terminal, plain lines otherwise.

The display only reads what the loop hands it (step counts and the panel records); it never
computes a reading itself. Both displays show the same rows (`Board`): each shown reading's
latest value, its per-layer values when the model has several layers, its trend over the last
TREND records and a flag when it is outside its healthy range (rnnscope/health.py).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import NamedTuple, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from . import health, panel
from .cells import CELLS

SIGMOID = tuple(dict.fromkeys(g for c in CELLS.values() for g in c.SIGMOID))  # every cell's
SHOWN = (*(k for k, r in health.READINGS.items() if r.shown and k not in health.PER_GATE),
         *(f"gate.{g}.{row.split('.')[1]}" for g in SIGMOID for row in health.PER_GATE)
         )  # those a record has, the gate rows (every cell's sigmoid gates) last
TREND = 10                                  # records in a trend sparkline
SPARKS = "▁▂▃▄▅▆▇█"
STEADY = 0.01                               # a change below 1% shows as a flat arrow


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


def label(key: str) -> str:
    r = health.reading(key)
    return r.label if r and r.label else key


def fmt(v) -> str:
    if v is None:
        return "nan"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.4f}"
    return str(v)


# ---- what both displays show


class Row(NamedTuple):
    key: str
    value: float | None
    flag: str                               # '' when healthy, else health.flag()'s text
    layers: list[tuple[float | None, str]]  # (value, flag) of each layer, when more than one
    trend: list[float | None]               # the last TREND values, oldest first


class Board:
    """The shown readings of the records so far: the last TREND + 1 values of each key, as
    panel.scalar() makes them (the TREND before the latest are the grad_norm rise's baseline)."""

    def __init__(self) -> None:
        self.history: dict[str, deque] = {}

    def add(self, rec: dict) -> None:
        for key, value in rec.items():
            if (key.split(".", 1)[1] if key.startswith("layer") else key) in SHOWN:
                past = self.history.setdefault(key, deque(maxlen=TREND + 1))
                past.append(panel.scalar(value))

    def rows(self) -> list[Row]:
        return [self.row(key) for key in SHOWN if key in self.history]

    def row(self, key: str) -> Row:
        value, flag = self.latest(key)
        layers = []
        while f"layer{len(layers)}.{key}" in self.history:
            layers.append(self.latest(f"layer{len(layers)}.{key}"))
        bad = [f"layer{l} {f}" for l, (_, f) in enumerate(layers) if f]
        return Row(key, value, flag or (bad[0] if bad else ""),
                   layers if len(layers) > 1 else [], list(self.history[key])[-TREND:])

    def latest(self, key: str) -> tuple[float | None, str]:
        *earlier, value = self.history[key]
        return value, health.flag(key, value, earlier)


def sparkline(values: list[float | None]) -> str:
    """One block per value, scaled between the smallest and largest; a gap for NaN."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, span = min(known), max(known) - min(known)
    top = len(SPARKS) - 1
    return "".join(" " if v is None else SPARKS[round(top * (v - lo) / span) if span else top // 2]
                   for v in values)


def arrow(values: list[float | None]) -> str:
    """Up, down or flat: the latest value against the one before."""
    if len(values) < 2 or values[-1] is None or values[-2] is None:
        return " "
    before, now = values[-2], values[-1]
    if abs(now - before) <= STEADY * abs(before):
        return "→"
    return "↑" if now > before else "↓"


# ---- plain lines


class PlainDisplay:
    """One line per record, for logs and pipes; a flagged reading carries [its flag]."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.t_start = self.chars0 = 0
        self.board = Board()

    def start(self, path, step, total, limit_s) -> None:
        length = f" for {total} steps" if total else f" for {limit_s / 60:g} minutes" \
            if limit_s else ""  # a loop rnnscope does not drive has no known length
        print(f"training {path} from step {step}{length}", file=self.out, flush=True)
        self.t_start, self.chars0 = time.perf_counter(), None

    def step(self, step, chars, elapsed_s) -> None:
        if self.chars0 is None:
            self.chars0 = chars

    def record(self, rec: dict) -> None:
        self.board.add(rec)
        rate = (rec["chars"] - (self.chars0 or 0)) / max(time.perf_counter() - self.t_start, 1e-9)
        parts = [f"step {rec['step']}"]
        for row in self.board.rows():
            if row.key in rec:
                flag = f" [{row.flag}]" if row.flag else ""
                parts.append(f"{label(row.key)} {fmt(row.value)}{flag}")
        print(" | ".join(parts + [f"{rate / 1000:.1f}k chars/s"]), file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def finish(self) -> None:
        pass


# ---- the live panel


def style(flag: str) -> str:
    if not flag:
        return ""
    return "bold red" if flag.endswith("nan") else "bold yellow"


class LiveDisplay:
    """A progress bar with chars/s and ETA, and a table of the latest readings: value, one
    value per layer, trend (sparkline and arrow) and a flag when out of the healthy range."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[where]}"),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console)
        self.board = Board()

    def start(self, path, step, total, limit_s) -> None:
        self.by_time = total is None
        self.task = self.progress.add_task(str(path), total=limit_s if self.by_time else total,
                                           completed=0, where="", rate="")
        self.t0, self.chars0, self.shown, self.at = time.perf_counter(), None, 0.0, None
        self.live = Live(self.render(), console=self.console, refresh_per_second=4)
        self.live.start()

    def step(self, step, chars, elapsed_s) -> None:
        if self.chars0 is None:
            self.chars0 = chars
        self.at = (step, chars, elapsed_s)
        if time.perf_counter() - self.shown >= 0.25:
            self.show_progress()

    def show_progress(self) -> None:
        step, chars, elapsed_s = self.at
        self.shown = time.perf_counter()
        rate = (chars - self.chars0) / max(self.shown - self.t0, 1e-9)
        self.progress.update(self.task, completed=elapsed_s if self.by_time else step,
                             where=f"step {step}", rate=f"{rate / 1000:.1f}k chars/s")

    def record(self, rec: dict) -> None:
        self.board.add(rec)
        self.live.update(self.render())

    def note(self, text: str) -> None:
        self.console.print(text, markup=False)  # findings quote flags like [>0.5] verbatim

    def finish(self) -> None:
        if self.at is not None:
            self.show_progress()  # where the run ended, not where the last refresh caught it
        self.live.stop()

    def render(self) -> Group:
        rows = self.board.rows()
        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("reading")
        table.add_column("value", justify="right")
        layered = any(row.layers for row in rows)
        if layered:
            table.add_column("per layer", justify="right")
        table.add_column("trend")
        table.add_column("")
        for row in rows:
            cells = [label(row.key), Text(fmt(row.value), style(row.flag))]
            if layered:
                cells.append(Text(" ").join(Text(fmt(v), style(f)) for v, f in row.layers))
            trend = f"{sparkline(row.trend)} {arrow(row.trend)}"
            cells += [trend, Text(f"! {row.flag}" if row.flag else "", style(row.flag))]
            table.add_row(*cells)
        return Group(self.progress, table)


# ---- a grid of runs (rnnscope sweep)


class GridDisplay(Protocol):
    """What a sweep shows: rows are sweep.Tracker.rows() (name, state, step, total,
    train_nll, best_eval, verdict); events are one-line news (a run started or ended)."""
    def start(self, rows: list[dict], news: str) -> None: ...
    def event(self, text: str) -> None: ...
    def update(self, rows: list[dict]) -> None: ...
    def finish(self) -> None: ...


def make_grid_display(quiet: bool = False) -> GridDisplay:
    """The live table on an interactive terminal, plain lines with --quiet or when piped."""
    if quiet or not sys.stdout.isatty():
        return PlainGrid()
    return LiveGrid()


class PlainGrid:
    """One line per event, stamped with the time."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout

    def start(self, rows, news) -> None:
        self.event(news)

    def event(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.out, flush=True)

    def update(self, rows) -> None:
        pass

    def finish(self) -> None:
        pass


class LiveGrid:
    """A table of the grid, one row per run: state, a progress bar, step, latest train NLL,
    best eval NLL and the triage's verdict so far; events print above it."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    def start(self, rows, news) -> None:
        self.event(news)
        self.live = Live(self.render(rows), console=self.console, refresh_per_second=2)
        self.live.start()

    def event(self, text: str) -> None:
        self.console.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False)

    def update(self, rows) -> None:
        self.live.update(self.render(rows))

    def finish(self) -> None:
        self.live.stop()

    @staticmethod
    def render(rows: list[dict]) -> Table:
        table = Table(show_header=True, header_style="bold", box=None)
        for name, justify in (("run", "left"), ("state", "left"), ("progress", "left"),
                              ("step", "right"), ("train NLL", "right"),
                              ("best eval", "right"), ("verdict", "left")):
            table.add_column(name, justify=justify)
        for r in rows:
            done = r["step"] / r["total"] if r["total"] else None
            bar = ProgressBar(total=1.0, completed=done or 0, width=20) if done is not None \
                else Text("by time")
            table.add_row(Text(r["name"]), Text(r["state"], STATE_STYLE.get(r["state"], "")),
                          bar, f"{r['step']}/{r['total'] or '?'}", known(r["train_nll"]),
                          known(r["best_eval"]), r["verdict"] or "")
        return table


def known(v) -> str:
    return "–" if v is None else fmt(v)


STATE_STYLE = {"running": "bold cyan", "finished": "green", "failed": "bold red",
               "interrupted": "yellow"}
