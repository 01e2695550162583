"""A run directory: config.json, metrics.jsonl, atomic checkpoints without pickle, loading,
and the lock that lets one process at a time train a run.

    config.json      {"rnnscope_version", "config": TrainConfig fields, "corpus": {name, chars,
                      sha256}, "vocab": chars}
    metrics.jsonl    one panel record per line: a JSON object with an integer "step"
    checkpoint.npz   "param/{name}", "opt/{key}", "state/{part}" arrays ("state/h", and
                     "state/c" for the LSTM) and "meta" (a JSON string):
                     step, data cursor, RNG states, schedule and interval state, best eval NLL
    best.npz         the same layout, params at the best eval NLL
    train.lock       while a process trains the run: its pid (see writer_lock)

Nothing written is ever left half-done where a reader or a resume would take it: files are
written whole to a temporary file beside them, synced, then renamed over the old one; a record
is appended whole or not at all. A write that fails raises WriteFailed naming the file and the
OS error, and what was there before is intact.
"""

from __future__ import annotations

import codecs
import datetime
import errno
import io
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .data import Vocab
from .errors import RnnscopeError, RnnscopeWarning, WriteFailed
from .model import Model
from .version import __version__

try:
    import fcntl
except ImportError:  # Windows: the lock is the pid file alone (see writer_lock)
    fcntl = None

CONFIG, METRICS, CHECKPOINT, BEST = "config.json", "metrics.jsonl", "checkpoint.npz", "best.npz"
TRIAGE, REPORT, LOCK = "triage.json", "report.html", "train.lock"
TMP_SUFFIX = ".tmp"  # temporary files are .{name}.{random}.tmp beside the file they replace
UMASK = os.umask(0)
os.umask(UMASK)


# ---- writing


def write_failed(path: Path, e: OSError) -> WriteFailed:
    code = errno.errorcode.get(e.errno, str(e.errno))
    return WriteFailed(f"cannot write {path}: {e.strerror or e} ({code})")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write(path: Path, data: bytes) -> None:
    """Write data to a temporary file beside path, fsync, then rename it over path."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise write_failed(path, e) from None
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
        raise
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    """Make a rename durable (a power cut after it keeps the new file); where directories
    cannot be opened (Windows) the rename is left to the file system."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself is done
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def remove_temporary_files(path: Path) -> None:
    """Temporary files a killed writer left in the run (only call it holding the lock)."""
    for name in (CONFIG, METRICS, CHECKPOINT, BEST, TRIAGE, REPORT):
        for tmp in Path(path).glob(f".{name}.*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)


def new_run_dir(run_dir: str | None, cfg: TrainConfig) -> Path:
    """Create the run directory; an existing non-empty one is never reused silently. Without
    run_dir: runs/<time>-<corpus>-<cell><hidden>x<layers>, or the first of -2, -3, ... that no
    other run holds (two runs started in the same second get two names)."""
    if run_dir is not None:
        return make_run_dir(Path(run_dir), "choose another --run-dir")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    corpus = Path(cfg.corpus).stem.replace(":", "-")  # synthetic:delay8 -> synthetic-delay8
    base = Path("runs") / f"{stamp}-{corpus}-{cfg.cell}{cfg.hidden}x{cfg.layers}"
    n = 1
    while True:
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)  # atomic: of two processes making one name, one gets it
            return path
        except FileExistsError:
            n += 1
        except OSError as e:
            raise RnnscopeError(f"cannot create run directory {path}: {e.strerror}; pass "
                                "--run-dir DIR") from None


def make_run_dir(path: Path, fix: str, fix_if_used: str | None = None) -> Path:
    """Create the run directory path (check_new: never reuse one); the errors end with fix
    (fix_if_used when the directory is in use): what to pass instead."""
    if path.exists():
        check_new(path, fix_if_used)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RnnscopeError(f"cannot create run directory {path}: {e.strerror}; {fix}") from None
    return path


def check_new(path: Path, fix: str | None = None) -> None:
    """Refuse a run directory that holds anything but a lock file: never reuse one silently."""
    if not path.is_dir() or any(p.name != LOCK for p in path.iterdir()):
        fix = fix or f"choose another --run-dir, or continue it with --resume {path}"
        raise RnnscopeError(f"run directory {path} already exists and is not empty; {fix}")


def write_config(path: Path, cfg: TrainConfig, corpus_info: dict, vocab: Vocab) -> None:
    doc = {"rnnscope_version": __version__, "source": "rnnscope", "config": cfg.to_dict(),
           "corpus": corpus_info, "vocab": vocab.chars}
    write_text(path / CONFIG, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def read_config(path: Path) -> dict:
    file = Path(path) / CONFIG
    if not Path(path).is_dir():
        raise RnnscopeError(f"run directory {path} does not exist; pass a directory made by "
                            "`rnnscope train`")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        check_doc(doc)
    except FileNotFoundError:
        raise RnnscopeError(f"{path} has no {CONFIG}, so it is not an rnnscope run directory; "
                            "pass a directory made by `rnnscope train`") from None
    except (ValueError, KeyError, TypeError, RnnscopeError) as e:
        raise RnnscopeError(f"{file} is corrupt ({e}); restore it or start a new run") from None
    except OSError as e:
        raise RnnscopeError(f"cannot read {file} ({e.strerror}); check its permissions") from None
    return doc


def check_doc(doc) -> None:
    """A config.json as this version writes it, or an exception saying what is not."""
    if not isinstance(doc, dict):
        raise TypeError(f"it holds {type(doc).__name__}, not an object")
    TrainConfig.from_dict(doc["config"]).validate()
    vocab, corpus = doc["vocab"], doc.get("corpus", {})
    chars = list(vocab) if isinstance(vocab, str) else vocab  # a string, or a list of them
    if not (isinstance(chars, list) and chars and len(set(chars)) == len(chars)
            and all(isinstance(c, str) and len(c) == 1 for c in chars)):
        raise ValueError(f"vocab is {vocab!r:.40}, not distinct characters")
    if not isinstance(corpus, dict) or not isinstance(corpus.get("sha256", ""), str):
        raise ValueError(f"corpus is {corpus!r:.40}, not an object with a sha256 string")


def append_record(path: Path, record: dict) -> None:
    """Append one record line; a write that fails is cut back off, so no torn line is left."""
    file = Path(path) / METRICS
    line = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
    try:
        fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise write_failed(file, e) from None
    try:
        size = os.fstat(fd).st_size
        try:
            write_all(fd, line)
        except OSError as e:
            os.ftruncate(fd, size)
            raise write_failed(file, e) from None
    finally:
        os.close(fd)


def sync_records(path: Path) -> None:
    """fsync metrics.jsonl, so that a checkpoint is never durable before the records up to it."""
    file = Path(path) / METRICS
    try:
        fd = os.open(file, os.O_RDONLY)
    except FileNotFoundError:
        return
    except OSError as e:
        raise write_failed(file, e) from None
    try:
        os.fsync(fd)
    except OSError as e:
        raise write_failed(file, e) from None
    finally:
        os.close(fd)


def read_metrics(path: Path) -> list[dict]:
    """The records of a run, also of one still training or damaged (see read_jsonl)."""
    return read_jsonl(Path(path) / METRICS)


def read_jsonl(file: Path) -> list[dict]:
    """The records of a JSON-lines file: each line a JSON object with an integer "step".
    A last line without its newline is a record still being written and is skipped silently;
    any other line that is not a record (garbage, a line torn by a crash, an edit) is skipped
    with one RnnscopeWarning for the file. A missing file has no records."""
    records, bad = parse_records(file)
    if bad:
        warnings.warn(f"{file}: skipped {len(bad)} unreadable line{'s' if len(bad) > 1 else ''}"
                      f" ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); read the "
                      f"other {len(records)} records", RnnscopeWarning, stacklevel=2)
    return records


def parse_records(file: Path) -> tuple[list[dict], list[str]]:
    """(records, one "line N: why" for each line that is not a record) of a JSON-lines file."""
    data = read_log_bytes(file)
    lines = data.split(b"\n")
    lines.pop()  # the text after the last newline: empty, or a record being written
    records, bad = [], []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad.append(f"line {i}: not JSON")
            continue
        if not isinstance(rec, dict) or type(rec.get("step")) is not int:
            bad.append(f"line {i}: no integer step")
            continue
        records.append(rec)
    return records, bad


BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"))


def read_log_bytes(file: Path) -> bytes:
    """A log's bytes as UTF-8 (b"" when it does not exist): a file that begins with a
    byte-order mark (UTF-8 from a spreadsheet, UTF-16 from Windows PowerShell's `>`) is
    decoded by it; any other file is taken as it is."""
    try:
        data = Path(file).read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as e:
        raise RnnscopeError(f"cannot read {file} ({e.strerror}); check its permissions") from None
    for bom, codec in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec).encode("utf-8")
            except UnicodeDecodeError as e:
                raise RnnscopeError(f"{file} begins as {codec.upper()} text but is not (bad "
                                    f"bytes at offset {e.start}); save it as UTF-8") from None
    return data


def keep_records(path: Path, keep: Callable[[dict], bool]) -> None:
    """Rewrite metrics.jsonl atomically with only the records for which keep(record) holds
    (unreadable lines and a torn last line go too); left alone when it holds just those."""
    file = Path(path) / METRICS
    kept = records_text([r for r in read_jsonl(file) if keep(r)])
    if file.exists() and file.read_bytes() != kept:
        atomic_write(file, kept)


def records_text(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, allow_nan=False) + "\n" for r in records).encode("utf-8")


def save_checkpoint(file: Path, params: dict, opt_state: dict, state: dict, meta: dict) -> None:
    """state: the carried state by part, {"h": (L, B, H)[, "c": ...]} (Model.state_parts);
    written atomically."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"opt/{k}": v for k, v in opt_state.items()})
    arrays.update({f"state/{k}": v for k, v in state.items()})
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(Path(file), buffer.getvalue())


def load_checkpoint(file: Path) -> tuple[dict, dict, dict, dict]:
    """(params, opt_state, state by part, meta); any damage is one clear error, never a pickle
    load."""
    try:
        with open(file, "rb") as f, np.load(f, allow_pickle=False) as z:  # f: closed also
            arrays = {k: z[k] for k in z.files}                            # when load fails
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


# ---- one writer per run


@contextmanager
def writer_lock(path: Path) -> Iterator[int | None]:
    """Hold the run's lock while training it: a second writer is refused (RnnscopeError naming
    the owner's pid). The lock is an flock on train.lock, which the OS releases however the
    owner ends (kill -9 included); the file holds the owner's pid and is removed on release.
    Yields the pid a dead owner left in the file (kill -9, power cut), or None.
    Readers (doctor, report, compare, sample) never take it."""
    file = Path(path) / LOCK
    fd = locked_fd(file)
    try:
        left = read_pid(fd)
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            write_all(fd, f"{os.getpid()}\n".encode())
        except OSError as e:
            raise write_failed(file, e) from None
        yield left
    finally:
        try:
            os.ftruncate(fd, 0)  # an unlink that fails leaves no pid to be mistaken for ours
            file.unlink()
        except OSError:
            pass  # the directory is gone or read-only: the flock still ends with the close
        os.close(fd)


def locked_fd(file: Path) -> int:
    """An fd of file with the lock held (see writer_lock)."""
    while True:
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT | (os.O_EXCL if fcntl is None else 0),
                         0o666)
        except FileExistsError:  # no flock here: the file alone says the run is in use
            raise in_use(file, read_pid_file(file), fix=f"if it is no longer running, delete "
                         f"{file}") from None
        except OSError as e:
            raise write_failed(file, e) from None
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = read_pid(fd)
            os.close(fd)
            raise in_use(file, pid, fix=f"wait for it to finish, or stop it (kill {pid}) "
                         "and resume") from None
        if same_file(fd, file):
            return fd
        os.close(fd)  # the owner removed the file between our open and our lock: again


def in_use(file: Path, pid: int | None, fix: str) -> RnnscopeError:
    return RnnscopeError(f"run {file.parent} is being trained by process {pid or '?'} (it "
                         f"holds {file}); {fix}")


def read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def read_pid_file(file: Path) -> int | None:
    try:
        text = file.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def same_file(fd: int, file: Path) -> bool:
    try:
        st = os.stat(file)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


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
    check_size(cfg, vocab.size, params, path / which)
    model = model_for(cfg, vocab.size)
    check_params(model, params, path / which)
    for k in model.params:
        model.params[k][...] = params[k]
    return Run(path, cfg, vocab, model, meta)


def model_for(cfg: TrainConfig, vocab_size: int) -> Model:
    """The model of cfg, initialised (an --input-scale too large for the dtype overflows to
    inf here and is refused as a divergence at the first step, not warned of)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return Model(vocab_size, cfg.hidden, cfg.layers, cell=cfg.cell, seed=cfg.seed,
                     dtype=cfg.dtype, recurrent_init=cfg.recurrent_init,
                     recurrent_scale=cfg.recurrent_scale, input_scale=cfg.input_scale,
                     forget_bias=cfg.forget_bias,
                     chrono_init=cfg.seq_len if cfg.chrono_init else None,
                     embed=cfg.embed)


def check_size(cfg: TrainConfig, vocab_size: int, params: dict, file: Path) -> None:
    """Before a model is built from cfg: it is the size of the checkpoint's (a config.json
    edited to hidden: 10**9 is refused, not allocated)."""
    layers = {int(k.split(".")[0]) for k in params if k.split(".")[0].isdigit()}
    why = getattr(params.get("Why"), "shape", "missing")
    whole = len(layers) == cfg.layers and max(layers, default=-1) == cfg.layers - 1  # 0..L-1
    if why != (cfg.hidden, vocab_size) or not whole:
        raise RnnscopeError(f"checkpoint {file} does not match its config.json (Why: expected "
                            f"{(cfg.hidden, vocab_size)}, got {why}; layers {sorted(layers)}); "
                            "restore the files together")


def check_params(model: Model, params: dict, file: Path) -> None:
    for k, v in model.params.items():
        if k not in params or params[k].shape != v.shape:
            got = params[k].shape if k in params else "missing"
            raise RnnscopeError(f"checkpoint {file} does not match its config.json ({k}: "
                                f"expected {v.shape}, got {got}); restore the files together")
        check_array(params[k], f"param/{k}", file)


def check_array(a: np.ndarray, name: str, file: Path) -> None:
    """A checkpoint's array holds finite real floats."""
    if not np.issubdtype(a.dtype, np.floating):
        raise RnnscopeError(f"checkpoint {file}: {name} is {a.dtype.name}, not floating point; "
                            "use best.npz or start a new run")
    if not np.isfinite(a).all():
        raise RnnscopeError(f"checkpoint {file}: {name} is not finite; use best.npz or start a "
                            "new run")
