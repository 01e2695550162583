"""Where text comes from: the built-in corpora, a verified download, synthetic sources with a
known floor, and text files (SPEC section 6 and 9). A corpus is its text, its SHA-256 and, for a
synthetic source, its floor: the exact entropy rate (rnnscope/synthetic.py).

Names: "stdlib" (built in, offline), "tinyshakespeare" (verified download or a local copy),
"synthetic:markov{K}" and "synthetic:delay{K}" with an optional ":seed{S}", or any UTF-8 text
file given by path. Every problem a user can cause is an RnnscopeError.
"""

from __future__ import annotations

import hashlib
import os
import re
import sysconfig
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import synthetic
from .errors import RnnscopeError
from .runs import write_text

STDLIB_MAX_CHARS = 2_000_000
TINYSHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/"
                       "data/tinyshakespeare/input.txt")
TINYSHAKESPEARE_FILE = "tinyshakespeare.txt"
TINYSHAKESPEARE_CHARS = 1_115_394
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DOWNLOAD_TIMEOUT_S = 30
KNOWN = ("stdlib", "tinyshakespeare", "synthetic:markov{K}", "synthetic:delay{K}",
         "synthetic:recall{K}")
SYNTHETIC = re.compile(r"synthetic:(markov|delay|recall)(\d+)(?::seed(\d+))?")
LAGS = {"markov": synthetic.MARKOV_ORDERS, "delay": synthetic.DELAY_LAGS,
        "recall": synthetic.RECALL_LAGS}  # the K each synthetic source takes


@dataclass(frozen=True)
class Corpus:
    name: str    # as given: "stdlib", "tinyshakespeare", "synthetic:delay8", a file path
    text: str
    sha256: str  # hex SHA-256 of the UTF-8 bytes of text
    floor_nll: float | None = None  # the exact entropy rate (nats/char), when known
    source: dict | None = None      # a synthetic source's settings


def list_corpora(data_dir: str | None = None) -> list[dict]:
    """The named corpora, where each would be read from and its floor where known (the floors
    of the synthetic sources at seed 0); any text file path also works."""
    try:
        path = find_tinyshakespeare(data_dir)
        state = (f"not downloaded (will fetch from {TINYSHAKESPEARE_URL} on first use)"
                 if path is None else located(path, data_dir))
    except RnnscopeError as e:
        state = str(e)
    lo, hi = synthetic.MARKOV_ORDERS
    letters = synthetic.MARKOV_ALPHABET
    markov = [{"name": f"synthetic:markov{K}", "state": "generated",
               "floor_nll": synthetic.floor_nll(synthetic.Source("markov", K, 0)),
               "description": f"order-{K} Markov source over {letters}, "
                              f"{len(letters) ** K:,} contexts; :seed{{S}} draws another source"}
              for K in range(lo, hi + 1)]
    lo, hi = synthetic.DELAY_LAGS
    delay = {"name": "synthetic:delay{K}", "state": "generated",
             "floor_nll": synthetic.floor_nll(synthetic.Source("delay", 1, 0)),
             "description": f"K from {lo} to {hi:,}: each letter of "
                            f"{synthetic.DELAY_ALPHABET} repeats the one K back with probability "
                            f"{synthetic.DELAY_P:g}, else a fresh uniform letter; the same "
                            "floor for every K and seed"}
    lo, hi = synthetic.RECALL_LAGS
    recall = {"name": "synthetic:recall{K}", "state": "generated",
              "floor_nll": None,
              "description": f"K from {lo} to {hi:,}: blocks of an item of "
                             f"{synthetic.RECALL_ITEMS}, K-1 distractors of "
                             f"{synthetic.RECALL_DISTRACTORS}, the item again; floor K ln 8 / "
                             "(K+1), e.g. recall64 "
                             f"{synthetic.floor_nll(synthetic.Source('recall', 64, 0)):.4f}"}
    return [
        {"name": "stdlib", "state": "built-in", "floor_nll": None,
         "description": "the running Python's standard library modules, "
                        f"up to about {STDLIB_MAX_CHARS:,} characters"},
        {"name": "tinyshakespeare", "state": state, "floor_nll": None,
         "description": f"Shakespeare plays from karpathy/char-rnn, "
                        f"{TINYSHAKESPEARE_CHARS:,} characters, SHA-256 verified"},
        *markov, delay, recall,
    ]


def located(path: Path, data_dir: str | None) -> str:
    if path.parent == cache_dir():
        return f"cached at {path}"
    source = "" if data_dir is not None else " (RNNSCOPE_DATA)"
    return f"found in {path.parent}{source}"


def load_corpus(name: str, data_dir: str | None = None) -> Corpus:
    """A named corpus, a synthetic source or a UTF-8 text file path; text kept as is."""
    source = synthetic_source(name)
    if source is not None:
        text = synthetic.generate(source)
        return Corpus(name, text, sha256(text.encode("utf-8")), synthetic.floor_nll(source),
                      source.describe())
    if name == "stdlib":
        text = stdlib_text()
    elif name == "tinyshakespeare":
        text = tinyshakespeare_text(data_dir)
    else:
        text = file_text(name)
    return Corpus(name, text, sha256(text.encode("utf-8")))


def synthetic_source(name: str) -> synthetic.Source | None:
    """The source a "synthetic:..." name gives; None for any other name."""
    if not name.startswith("synthetic:"):
        return None
    forms = "use " + ", ".join(f"synthetic:{kind}{{K}} (K {lo}-{hi})"
                               for kind, (lo, hi) in LAGS.items()) + \
        ", optionally followed by :seed{S}"
    match = SYNTHETIC.fullmatch(name)
    if match is None:
        raise RnnscopeError(f"corpus {name!r} is not a synthetic source; {forms}")
    kind, K, seed = match[1], int(match[2]), int(match[3] or 0)
    lo, hi = LAGS[kind]
    if not lo <= K <= hi:
        raise RnnscopeError(f"corpus {name!r}: K = {K} is out of range; {forms}")
    return synthetic.Source(kind, K, seed)


def export_corpus(name: str, file: str | Path, data_dir: str | None = None) -> Corpus:
    """Write the text of corpus `name` to `file` (UTF-8, atomically); an existing file is
    never overwritten."""
    file = Path(file)
    if file.exists():
        raise RnnscopeError(f"{file} already exists; remove it or choose another file to "
                            "export to")
    if not file.parent.is_dir():
        raise RnnscopeError(f"cannot write {file}: directory {file.parent} does not exist; "
                            "create it or choose another file")
    corpus = load_corpus(name, data_dir)
    try:
        write_text(file, corpus.text)
    except OSError as e:
        raise RnnscopeError(f"cannot write {file} ({e.strerror}); choose another file") from None
    return corpus


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
