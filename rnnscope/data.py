"""Corpora, vocabulary, eval split and the stateful batch streams of truncated BPTT.

Shapes and types, fixed here once:
- a corpus text is a str; its ids are a (N,) int32 array of vocabulary indices;
- streams are (B, L) int32: the ids cut into B contiguous parallel streams, L = N // B
  (the remainder is dropped), so stream b reads ids[b*L : (b+1)*L];
- chunk i of an epoch is x = streams[:, i*T : i*T+T].T and y the same window shifted by one,
  both (T, B) int32 and C-contiguous, time-major as in SPEC section 1. Chunk i+1 continues
  every stream exactly where chunk i stopped, so the hidden state can be carried forward.

Corpora: "stdlib" (built in, offline), "tinyshakespeare" (verified download or a local copy),
or any UTF-8 text file given by path. Every problem a user can cause is an RnnscopeError.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RnnscopeError

STDLIB_MAX_CHARS = 2_000_000
TINYSHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/"
                       "data/tinyshakespeare/input.txt")
TINYSHAKESPEARE_FILE = "tinyshakespeare.txt"
TINYSHAKESPEARE_CHARS = 1_115_394
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DOWNLOAD_TIMEOUT_S = 30
KNOWN = ("stdlib", "tinyshakespeare")


@dataclass(frozen=True)
class Corpus:
    name: str    # "stdlib", "tinyshakespeare", or the file path as given
    text: str
    sha256: str  # hex SHA-256 of the UTF-8 bytes of text


@dataclass(frozen=True)
class Vocab:
    chars: str  # sorted unique characters; id i is chars[i]

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """(len(text),) int32 ids; a character outside the vocabulary is an RnnscopeError."""
        table, points = code_points(self.chars), code_points(text)
        ids = np.minimum(np.searchsorted(table, points), len(table) - 1)
        unknown = np.flatnonzero(table[ids] != points)
        if unknown.size:
            char = text[unknown[0]]
            raise RnnscopeError(f"character {char!r} (U+{ord(char):04X}) is not in the "
                                f"vocabulary of {self.size} characters of the training corpus; "
                                "use only characters that occur in that corpus")
        return ids.astype(np.int32)

    def decode(self, ids) -> str:
        points = code_points(self.chars)[np.asarray(ids, dtype=np.int64)]
        return points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def code_points(text: str) -> np.ndarray:
    """(len(text),) uint32 Unicode code points, without a Python-level loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def build_vocab(text: str) -> Vocab:
    if not text:
        raise RnnscopeError("cannot build a vocabulary from an empty text; use a non-empty corpus")
    return Vocab("".join(map(chr, np.unique(code_points(text)))))


# ---- corpora -------------------------------------------------------------------------------

def list_corpora(data_dir: str | None = None) -> list[dict]:
    """The named corpora and where each would be read from; any text file path also works."""
    try:
        path = find_tinyshakespeare(data_dir)
        state = (f"not downloaded (will fetch from {TINYSHAKESPEARE_URL} on first use)"
                 if path is None else located(path, data_dir))
    except RnnscopeError as e:
        state = str(e)
    return [
        {"name": "stdlib", "state": "built-in",
         "description": "the running Python's standard library modules, "
                        f"up to about {STDLIB_MAX_CHARS:,} characters"},
        {"name": "tinyshakespeare", "state": state,
         "description": f"Shakespeare plays from karpathy/char-rnn, "
                        f"{TINYSHAKESPEARE_CHARS:,} characters, SHA-256 verified"},
    ]


def located(path: Path, data_dir: str | None) -> str:
    if path.parent == cache_dir():
        return f"cached at {path}"
    source = "" if data_dir is not None else " (RNNSCOPE_DATA)"
    return f"found in {path.parent}{source}"


def load_corpus(name: str, data_dir: str | None = None) -> Corpus:
    """A named corpus (stdlib, tinyshakespeare) or a UTF-8 text file path; text kept as is."""
    if name == "stdlib":
        text = stdlib_text()
    elif name == "tinyshakespeare":
        text = tinyshakespeare_text(data_dir)
    else:
        text = file_text(name)
    return Corpus(name, text, sha256(text.encode("utf-8")))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stdlib_text() -> str:
    """Sorted top-level modules of the standard library, whole files until the cap is passed."""
    root = Path(sysconfig.get_paths()["stdlib"])
    # _sysconfigdata_* is a generated dict of build flags, not code anyone wrote
    files = [p for p in sorted(root.glob("*.py")) if not p.name.startswith("_sysconfigdata")]
    parts, total = [], 0
    for path in files:
        if total >= STDLIB_MAX_CHARS:
            break
        try:
            part = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(part)
        total += len(part)
    if not parts:
        raise RnnscopeError(f"no standard library sources found in {root}; "
                            "use --corpus tinyshakespeare or a text file path")
    return "".join(parts)


def file_text(name: str) -> str:
    path = Path(name)
    if not path.exists():
        raise RnnscopeError(f"corpus {name!r} is neither a known corpus ({', '.join(KNOWN)}) "
                            "nor an existing file; check the name or path")
    if path.is_dir():
        raise RnnscopeError(f"corpus {name!r} is a directory; give the path of a text file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RnnscopeError(f"cannot read corpus {name!r} ({e.strerror}); "
                            "check its permissions") from e
    if not data:
        raise RnnscopeError(f"corpus {name!r} is empty; give a file with some text in it")
    return decode_utf8(data, name)


def decode_utf8(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RnnscopeError(f"corpus {name!r} is not UTF-8 text (bad byte at offset {e.start}); "
                            "give a plain text file encoded as UTF-8") from e


def tinyshakespeare_text(data_dir: str | None) -> str:
    path = find_tinyshakespeare(data_dir)
    if path is None:
        return download_tinyshakespeare(cache_dir() / TINYSHAKESPEARE_FILE)
    return decode_utf8(verified(path.read_bytes(), str(path)), str(path))


def find_tinyshakespeare(data_dir: str | None) -> Path | None:
    """The local copy to read: --data-dir, then RNNSCOPE_DATA, then the cache; None if none."""
    given = (("--data-dir", data_dir), ("RNNSCOPE_DATA", os.environ.get("RNNSCOPE_DATA")))
    for where, directory in given:
        if directory:
            path = Path(directory) / TINYSHAKESPEARE_FILE
            if not path.is_file():
                raise RnnscopeError(f"{where} {directory!r} has no {TINYSHAKESPEARE_FILE}; "
                                    f"put the file from {TINYSHAKESPEARE_URL} there "
                                    f"or point {where} at the directory that holds it")
            return path
    cached = cache_dir() / TINYSHAKESPEARE_FILE
    return cached if cached.is_file() else None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnscope"


def verified(data: bytes, source: str,
             fix: str = "delete it or point --data-dir at a good copy") -> bytes:
    got = sha256(data)
    if got != TINYSHAKESPEARE_SHA256:
        raise RnnscopeError(f"{source} has SHA-256 {got}, expected {TINYSHAKESPEARE_SHA256}; "
                            f"{fix}")
    return data


def download_tinyshakespeare(target: Path) -> str:
    """Fetch, verify, then cache atomically (temp file in the same directory, then rename)."""
    try:
        with urllib.request.urlopen(TINYSHAKESPEARE_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as e:
        raise RnnscopeError(f"could not download tinyshakespeare ({e}); download "
                            f"{TINYSHAKESPEARE_URL} yourself as {TINYSHAKESPEARE_FILE} and pass "
                            "--data-dir DIR or set RNNSCOPE_DATA=DIR") from e
    fix = "nothing was cached; retry later, or pass --data-dir DIR holding a good copy"
    text = decode_utf8(verified(data, f"the download of {TINYSHAKESPEARE_URL}", fix),
                       TINYSHAKESPEARE_URL)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except OSError:
        pass  # an unwritable cache costs a download next time, not this run
    return text


# ---- split and streams ---------------------------------------------------------------------

def split(ids: np.ndarray, eval_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, eval): the last round(eval_frac * N) ids are the eval split."""
    if not 0 < eval_frac < 1:
        raise RnnscopeError(f"--eval-frac must be in (0, 1), got {eval_frac}")
    n_train = len(ids) - int(round(eval_frac * len(ids)))
    return ids[:n_train], ids[n_train:]


def unigram_nll(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int) -> float:
    """The baseline a model must beat: eval NLL (nats/char) of character frequencies counted on
    the train split (add-one smoothed), ignoring all context."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[eval_ids].mean())


def make_streams(ids: np.ndarray, batch: int) -> np.ndarray:
    """(B, L) with L = len(ids) // B: B contiguous streams read in parallel."""
    L = len(ids) // batch
    if L < 2:
        raise RnnscopeError(f"{len(ids)} characters cannot make {batch} streams of at least "
                            "2 characters; use a smaller --batch or a bigger corpus")
    return np.ascontiguousarray(ids[:batch * L].reshape(batch, L), dtype=np.int32)


def chunks_per_epoch(streams: np.ndarray, seq_len: int) -> int:
    """Chunks of T inputs per epoch; each also needs the target after its last input."""
    return (streams.shape[1] - 1) // seq_len


def get_chunk(streams: np.ndarray, index: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """x, y (T, B) of chunk `index` (0-based in the epoch); y is x one step later."""
    if not 0 <= index < chunks_per_epoch(streams, seq_len):
        raise IndexError(f"chunk {index} outside 0..{chunks_per_epoch(streams, seq_len) - 1}")
    start = index * seq_len
    x = np.ascontiguousarray(streams[:, start:start + seq_len].T)
    y = np.ascontiguousarray(streams[:, start + 1:start + seq_len + 1].T)
    return x, y


def check_trainable(train_ids: np.ndarray, eval_ids: np.ndarray, batch: int,
                    seq_len: int) -> None:
    """Refuse splits too short for one training chunk (B x T) or one eval chunk (T x 1)."""
    needed = batch * (seq_len + 1)
    if len(train_ids) < needed:
        raise RnnscopeError(f"the training split has {len(train_ids)} characters but "
                            f"--batch {batch} x (--seq-len {seq_len} + 1) needs at least "
                            f"{needed}; use a smaller --batch or --seq-len, or a bigger corpus")
    if len(eval_ids) < seq_len + 1:
        raise eval_too_short(len(eval_ids), seq_len)


def eval_streams(eval_ids: np.ndarray, batch: int, seq_len: int) -> np.ndarray:
    """Streams for evaluation: `batch` of them if the split is long enough, else fewer (>= 1)."""
    fits = len(eval_ids) // (seq_len + 1)
    if fits < 1:
        raise eval_too_short(len(eval_ids), seq_len)
    return make_streams(eval_ids, min(batch, fits))


def eval_too_short(n: int, seq_len: int) -> RnnscopeError:
    return RnnscopeError(f"the eval split has {n} characters but one eval chunk needs at least "
                         f"--seq-len {seq_len} + 1 = {seq_len + 1}; use a smaller --seq-len, "
                         "a larger --eval-frac, or a bigger corpus")
