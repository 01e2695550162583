"""Where users already look (SPEC section 14): a run's panel records written into TensorBoard
and Weights & Biases, and a loaded run shown in a notebook. Each library is an optional extra,
imported only when asked for (`need`); `pip install rnnscope` pulls none of them.

    tags.py         a record's readings as {tag: number}, grouped as the report groups them
    tensorboard.py  TensorBoard: the sink, a writer on the tensorboard package alone, export
    wandb.py        Weights & Biases: the sink (wandb.log with the step), a run for the CLI
    notebook.py     a loaded run in Jupyter: _repr_html_, plot(), frame()

A sink is told where the run is and the step it starts from (`start`), then each record as it
is written with the triage findings that first held at it (`write`), then `close`. The same
sinks serve `rnnscope train` (live), rnnscope.torch.Panel (live) and `rnnscope export` (after
the fact, replaying the records through the triage's Watch: the findings land at the same
steps as they would have live).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Protocol

from ..errors import RnnscopeError
from ..records import read_run
from ..triage import Watch, format_finding


class Sink(Protocol):
    def start(self, path: Path, step: int) -> None: ...
    def write(self, rec: dict, findings: list[dict]) -> None: ...
    def close(self) -> None: ...


def need(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional library, or one RnnscopeError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RnnscopeError(f"{what} needs the {module.split('.')[0]} package, which is not "
                            f"installed; pip install \"rnnscope[{extra}]\"") from None


def replay(path: Path, sinks: list[Sink]) -> int:
    """Write the records of the run at path (a run directory or a log) into the sinks, each
    with the findings that first held at it; returns the number of records."""
    doc, records = read_run(path)
    watch = Watch.for_config(doc)
    for sink in sinks:
        sink.start(Path(path), 0)
    try:
        for rec in records:
            findings = watch.update(rec)
            for sink in sinks:
                sink.write(rec, findings)
    finally:
        for sink in sinks:
            sink.close()
    return len(records)


def finding_text(f: dict) -> str:
    """A finding as TensorBoard's text plugin shows it (markdown: a preformatted block)."""
    return "\n".join("    " + line for line in format_finding(f).splitlines())
