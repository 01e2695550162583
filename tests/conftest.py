"""Shared fixtures: a small real text corpus, where the shared data lives, and the triage's
story checked on every run the tests train."""

import errno
import os
import urllib.error
from pathlib import Path

import pytest
from story import violations

import rnnscope.train
from rnnscope import corpora, runs

# ../shared beside the development checkout; CI names it in RNNSCOPE_SHARED (.ci/run), and
# then a file missing from it fails the test that wants it instead of skipping it.
SHARED = Path(os.environ.get("RNNSCOPE_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def english_text(n_chars: int) -> str:
    """Deterministic, varied English-like text (no randomness needed by callers)."""
    words = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
             "mighty jars of plum jam and every river sings to the old stone bridge").split()
    out, i = [], 0
    while sum(map(len, out)) < n_chars:
        out.append(words[(i * 7 + i // 3) % len(words)])
        out.append("\n" if i % 11 == 10 else " ")
        i += 1
    return "".join(out)[:n_chars]


@pytest.fixture(scope="session")
def shared():
    """shared(relative) -> the path of a file of ../shared; the test skips when it is absent (a
    clone has no ../shared), unless RNNSCOPE_SHARED names the directory (CI): then it fails."""
    def path(relative: str) -> Path:
        file = SHARED / relative
        if not file.is_file():
            if os.environ.get("RNNSCOPE_SHARED"):
                pytest.fail(f"RNNSCOPE_SHARED={SHARED} has no {relative}")
            pytest.skip(f"needs {file} (beside the development checkout only)")
        return file
    return path


@pytest.fixture(scope="session")
def shared_data(shared) -> Path:
    """The directory holding tinyshakespeare.txt for offline tests (see shared)."""
    return shared("data/tinyshakespeare.txt").parent


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A 20 kB text file: enough for batch 4 x seq 16 with an eval split, a few epochs fast."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(english_text(20_000), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def story_checked(monkeypatch):
    """Every run a test trains ends with write_triage; its diagnosis must tell a story its
    records agree with (tests/story.py), or the test that trained it fails."""
    write_triage = rnnscope.train.write_triage

    def checked(path):
        result = write_triage(path)
        broken = violations(result, runs.read_metrics(path), runs.read_config(path))
        assert not broken, f"the triage of {path} contradicts its records: {broken}"
        return result

    monkeypatch.setattr(rnnscope.train, "write_triage", checked)


@pytest.fixture
def failing_writes(monkeypatch):
    """fail(name, err) makes every later write to a file whose name contains `name` (its
    temporary file included) fail: EACCES at open, as a read-only directory refuses it; ENOSPC
    as a full disk does, the first os.write taking half of its bytes and the next raising."""
    real_open, real_write, real_close = os.open, os.write, os.close
    target = {"name": None, "err": None}
    writes: dict[int, int] = {}  # fd of a target file -> os.write calls so far

    def chosen(path, flags) -> bool:
        return (target["name"] is not None and target["name"] in os.path.basename(path)
                and flags & (os.O_WRONLY | os.O_RDWR))

    def fake_open(path, flags, *args, **kw):
        if chosen(os.fspath(path), flags) and target["err"] == errno.EACCES:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        fd = real_open(path, flags, *args, **kw)
        if chosen(os.fspath(path), flags):
            writes[fd] = 0
        return fd

    def fake_write(fd, data):
        if fd not in writes:
            return real_write(fd, data)
        writes[fd] += 1
        if writes[fd] > 1:
            raise OSError(target["err"], os.strerror(target["err"]))
        return real_write(fd, bytes(data)[:max(len(data) // 2, 1)])

    def fake_close(fd):
        writes.pop(fd, None)
        real_close(fd)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "write", fake_write)
    monkeypatch.setattr(os, "close", fake_close)

    def fail(name: str | None, err: int) -> None:  # None: writes work again
        target.update(name=name, err=err)
    return fail


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No RNNSCOPE_DATA, an empty cache under tmp_path, and any download attempt fails loudly."""
    monkeypatch.delenv("RNNSCOPE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(corpora.urllib.request, "urlopen", no_network)
    return tmp_path
