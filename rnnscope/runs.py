"""A run directory: config.json, metrics.jsonl, atomic checkpoints without pickle, loading.

    config.json      {"rnnscope_version", "config": TrainConfig fields, "corpus": {name, chars,
                      sha256}, "vocab": chars}
    metrics.jsonl    one panel record per line
    checkpoint.npz   "param/{name}", "opt/{key}", "state/{part}" arrays ("state/h", and
                     "state/c" for the LSTM) and "meta" (a JSON string):
                     step, data cursor, RNG states, schedule and interval state, best eval NLL
    best.npz         the same layout, params at the best eval NLL
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .config import TrainConfig
from .data import Vocab
from .errors import RnnscopeError
from .model import Model

CONFIG, METRICS, CHECKPOINT, BEST = "config.json", "metrics.jsonl", "checkpoint.npz", "best.npz"
TRIAGE, REPORT = "triage.json", "report.html"
UMASK = os.umask(0)
os.umask(UMASK)


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary file beside path, fsync, then rename it over path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def new_run_dir(run_dir: str | None, cfg: TrainConfig) -> Path:
    """Create the run directory; an existing non-empty one is never reused silently."""
    if run_dir is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        corpus = Path(cfg.corpus).stem if cfg.corpus not in ("stdlib", "tinyshakespeare") \
            else cfg.corpus
        base = Path("runs") / f"{stamp}-{corpus}-{cfg.cell}{cfg.hidden}x{cfg.layers}"
        path, n = base, 1
        while path.exists():
            path, n = base.with_name(f"{base.name}-{n}"), n + 1
    else:
        path = Path(run_dir)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RnnscopeError(f"run directory {path} already exists and is not empty; choose "
                                f"another --run-dir, or continue it with --resume {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RnnscopeError(f"cannot create run directory {path}: {e.strerror}; "
                            "choose another --run-dir") from None
    return path


def write_config(path: Path, cfg: TrainConfig, corpus_info: dict, vocab: Vocab) -> None:
    doc = {"rnnscope_version": __version__, "config": cfg.to_dict(), "corpus": corpus_info,
           "vocab": vocab.chars}
    write_text(path / CONFIG, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def read_config(path: Path) -> dict:
    file = Path(path) / CONFIG
    if not Path(path).is_dir():
        raise RnnscopeError(f"run directory {path} does not exist; pass a directory made by "
                            "`rnnscope train`")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        TrainConfig.from_dict(doc["config"])
        doc["vocab"]
    except FileNotFoundError:
        raise RnnscopeError(f"{path} has no {CONFIG}, so it is not an rnnscope run directory; "
                            "pass a directory made by `rnnscope train`") from None
    except (ValueError, KeyError, TypeError) as e:
        raise RnnscopeError(f"{file} is corrupt ({e}); restore it or start a new run") from None
    return doc


def append_record(path: Path, record: dict) -> None:
    with open(path / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, allow_nan=False) + "\n")
        f.flush()


def read_metrics(path: Path) -> list[dict]:
    """The records of a run, also of one still training (a torn last line is skipped)."""
    try:
        lines = (Path(path) / METRICS).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise RnnscopeError(f"{Path(path) / METRICS} line {i + 1} is corrupt; remove "
                                    "that line to read the run") from None
    return records


def keep_records(path: Path, keep) -> None:
    """Rewrite metrics.jsonl atomically with only the records for which keep(record) holds."""
    records = [r for r in read_metrics(path) if keep(r)]
    write_text(path / METRICS, "".join(json.dumps(r, allow_nan=False) + "\n" for r in records))


def save_checkpoint(file: Path, params: dict, opt_state: dict, state: dict, meta: dict) -> None:
    """state: the carried state by part, {"h": (L, B, H)[, "c": ...]} (Model.state_parts)."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"opt/{k}": v for k, v in opt_state.items()})
    arrays.update({f"state/{k}": v for k, v in state.items()})
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(Path(file), lambda f: np.savez(f, **arrays))


def load_checkpoint(file: Path) -> tuple[dict, dict, dict, dict]:
    """(params, opt_state, state by part, meta); any damage is one clear error, never a pickle
    load."""
    try:
        with np.load(file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except FileNotFoundError:
        raise RnnscopeError(f"{file} does not exist; train the run first or pass the right "
                            "run directory") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise RnnscopeError(f"checkpoint {file} is corrupt or not an rnnscope checkpoint "
                            f"({type(e).__name__}); use best.npz or start a new run") from None
    params = {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}
    opt = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    state = {k[6:]: v for k, v in arrays.items() if k.startswith("state/")}
    return params, opt, state, meta


@dataclass
class Run:
    path: Path
    config: TrainConfig
    vocab: Vocab
    model: Model
    meta: dict


def load_run(path: str | Path, which: str = CHECKPOINT) -> Run:
    """A trained run: its config, vocabulary and the model with the saved parameters."""
    path = Path(path)
    doc = read_config(path)
    cfg, vocab = TrainConfig.from_dict(doc["config"]), Vocab(doc["vocab"])
    params, _, _, meta = load_checkpoint(path / which)
    model = model_for(cfg, vocab.size)
    check_params(model, params, path / which)
    for k in model.params:
        model.params[k][...] = params[k]
    return Run(path, cfg, vocab, model, meta)


def model_for(cfg: TrainConfig, vocab_size: int) -> Model:
    return Model(vocab_size, cfg.hidden, cfg.layers, cell=cfg.cell, seed=cfg.seed,
                 dtype=cfg.dtype, recurrent_init=cfg.recurrent_init,
                 recurrent_scale=cfg.recurrent_scale, input_scale=cfg.input_scale)


def check_params(model: Model, params: dict, file: Path) -> None:
    for k, v in model.params.items():
        if k not in params or params[k].shape != v.shape:
            got = params[k].shape if k in params else "missing"
            raise RnnscopeError(f"checkpoint {file} does not match its config.json ({k}: "
                                f"expected {v.shape}, got {got}); restore the files together")
