"""A run's records from anywhere: an rnnscope run directory, a metrics.jsonl or a .csv.

docs/format.md is the user's side of this module. `read_run(path)` returns (doc, records):

    records  one dict per record, the SPEC 3 keys; only `step` (and `train_nll` somewhere in the
             log) is required. NaN/inf read as None, as rnnscope writes them (JSON has no NaN).
             A JSON line that is not a record is skipped with a warning (runs.read_jsonl).
             Consecutive records of the same step are one record (a log that writes its eval on
             a line of its own at a training step reads as rnnscope's own records do).
    doc      the run's config.json (rnnscope's own, the one rnnscope.torch.Panel or a C program
             through rnnscope.h writes, or one written beside a log), or, for a log without
             one, what the records tell: {"source": "log", "format": "csv" | "jsonl",
             "config": {"layers": L, "lr": the first lr}}. A setting the log does not give is
             absent from doc["config"], never guessed; `vocab_size(doc)` is None when unknown.
             doc["source"] is always one of SOURCES (source_of): the triage words its next
             steps for it.

A directory is read through its config.json and its metrics.jsonl (or metrics.csv); a file
named metrics.jsonl or metrics.csv with a config.json beside it is read as that directory.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

from . import runs
from .errors import RnnscopeError
from .health import READINGS, reading_name

CSV_METRICS = "metrics.csv"
SOURCES = ("rnnscope", "pytorch", "c", "log")  # where a run came from: how its advice is worded
LAYER = re.compile(r"^layer(\d+)\.")


def read_run(path: str | Path) -> tuple[dict, list[dict]]:
    """(doc, records) of the run at path: a run directory, a metrics.jsonl or a .csv."""
    path = Path(path)
    metrics, config = locate(path)
    records = check_records(read_csv(metrics) if metrics.suffix == ".csv"
                            else runs.read_jsonl(metrics), metrics)
    if not records and not path.is_dir():
        raise RnnscopeError(f"{path} holds no records; write one record per line (JSON) or "
                            "row (CSV) with at least step and train_nll (docs/format.md)")
    doc = read_doc(config) if config else {"source": "log", "format": metrics.suffix.lstrip("."),
                                           "config": {}}
    doc["source"] = source_of(doc)
    doc["config"] = {**inferred_config(records), **doc["config"]}
    return doc, records


def source_of(doc: dict) -> str:
    """Where the run of a config.json came from, one of SOURCES: the "source" it states (a run of
    rnnscope's own before it stated one has its vocabulary), else "log"."""
    source = doc.get("source", "rnnscope" if "vocab" in doc else "log")
    return source if source in SOURCES else "log"


def locate(path: Path) -> tuple[Path, Path | None]:
    """(the records file, the config.json that describes it or None)."""
    if path.is_dir():
        found = [path / name for name in (runs.METRICS, CSV_METRICS) if (path / name).exists()]
        config = path / runs.CONFIG
        if not found and not config.exists():
            raise RnnscopeError(f"{path} holds no {runs.METRICS} or {CSV_METRICS}; pass a run "
                                "directory, a metrics.jsonl or a .csv log")
        return (found[0] if found else path / runs.METRICS), (config if config.exists()
                                                              else None)
    if not path.exists():
        raise RnnscopeError(f"{path} does not exist; pass a run directory, a metrics.jsonl or "
                            "a .csv log")
    if path.suffix not in (".jsonl", ".json", ".csv"):
        raise RnnscopeError(f"{path} is neither a directory, a .jsonl nor a .csv; write the log "
                            "as JSON lines or CSV (docs/format.md)")
    beside = path.parent / runs.CONFIG
    own = path.name in (runs.METRICS, CSV_METRICS) and beside.exists()
    return path, beside if own else None


def read_doc(config: Path) -> dict:
    """rnnscope's own config.json (validated), or the one of a run rnnscope watched."""
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
    except ValueError as e:
        raise RnnscopeError(f"{config} is not valid JSON ({e}); restore it, or remove it to "
                            "read the records alone") from None
    if isinstance(doc, dict) and "vocab" in doc:
        return runs.read_config(config.parent)
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise RnnscopeError(f"{config} has no \"config\" object; remove it to read the records "
                            "alone (docs/format.md)")
    return doc


def run_name(path: str | Path) -> str:
    """A run's name: its directory's, also when its metrics file is given ("run/metrics.csv");
    a log's own file name otherwise."""
    path = Path(path).resolve()
    return path.parent.name if path.name in (runs.METRICS, CSV_METRICS) else path.name


def vocab_size(doc: dict) -> int | None:
    """The vocabulary size of a run, None when the log does not say."""
    return len(doc["vocab"]) if "vocab" in doc else doc.get("vocab_size")


def inferred_config(records: list[dict]) -> dict:
    """The settings the records themselves show: layers (from the layer{l}. keys) and the
    learning rate of the first record that states one."""
    layers = [int(m.group(1)) + 1 for r in records for k in r if (m := LAYER.match(k))]
    cfg = {"layers": max(layers, default=1)}
    lrs = [r["lr"] for r in records if finite(r.get("lr"))]
    if lrs:
        cfg["lr"] = lrs[0]
    return cfg


# ---- CSV


def read_csv(file: Path) -> list[dict]:
    """One record per row under a header row of keys; an empty cell is an absent reading."""
    try:
        rows = list(csv.reader(io.StringIO(runs.read_log_bytes(file).decode("utf-8"),
                                           newline="")))
    except UnicodeDecodeError as e:
        raise RnnscopeError(f"{file} is not UTF-8 text (bad byte at offset {e.start}); save the "
                            "log as UTF-8 CSV") from None
    except csv.Error as e:  # a cell over csv's field limit (128 KiB)
        raise RnnscopeError(f"{file} is not a CSV log ({e}); write one record per row under "
                            "a header row of keys (docs/format.md)") from None
    if not rows:
        return []
    head = [k.strip() for k in rows[0]]
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) > len(head):
            raise RnnscopeError(f"{file} line {line} has {len(row)} cells but the header has "
                                f"{len(head)}; quote cells that hold commas")
        records.append({k: cell_value(v.strip()) for k, v in zip(head, row, strict=False)
                        if v.strip() != ""})
    return records


def cell_value(text: str):
    """A number, a list or true/false (written as JSON), else the text itself."""
    try:
        value = json.loads(text.lower() if text.lower() in ("true", "false") else text)
    except ValueError:
        try:
            value = float(text)  # nan, inf, -inf and other spellings json does not read
        except ValueError:
            return text
    return value


# ---- checks


def check_records(records: list, file: Path) -> list[dict]:
    """Every record has a step, steps never go back, numeric keys hold numbers, at least one
    record has a train_nll; NaN/inf become None; records of one step are merged."""
    out: list[dict] = []
    for i, rec in enumerate(records, start=1):
        rec = {k: finite_or_none(v) for k, v in rec.items()}
        step = rec.get("step")
        if not (finite(step) and step == int(step) and step >= 0):
            raise RnnscopeError(f"{file} record {i} has no step (a whole number >= 0): "
                                f"step={step!r}; every record needs the optimizer step")
        rec["step"] = int(step)
        for key, value in rec.items():
            if not readable(key, value):
                raise RnnscopeError(f"{file} record {i}: {key} is {value!r}, not a number; "
                                    "write numbers (NLL in nats/char, docs/format.md)")
        if out and rec["step"] < out[-1]["step"]:
            raise RnnscopeError(f"{file} record {i}: step goes back from {out[-1]['step']} to "
                                f"{rec['step']}; a log must hold one run, in step order")
        if out and rec["step"] == out[-1]["step"]:
            out[-1].update(rec)
        else:
            out.append(rec)
    if out and not any("train_nll" in r for r in out):
        raise RnnscopeError(f"{file} has no train_nll; every log needs step and train_nll (the "
                            "mean training loss in nats/char, docs/format.md)")
    return out


def readable(key: str, value) -> bool:
    """Whether a reading has the type its key promises: a number (or None) for the SPEC's
    numeric keys, a list of [k, g_k] pairs for bptt_profile; other keys are kept as they are."""
    base = LAYER.sub("", key)
    if base == "bptt_profile":
        return isinstance(value, list) and all(
            isinstance(p, list) and len(p) == 2 and finite(p[0]) and (p[1] is None or finite(p[1]))
            for p in value)
    numeric = bool(reading_name(base)) or base.split(".", 1)[0] in READINGS  # or per parameter
    return not numeric or value is None or finite(value)


def finite_or_none(v):
    """NaN/inf become None (JSON has no NaN), also inside lists such as bptt_profile."""
    if isinstance(v, list):
        return [finite_or_none(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
