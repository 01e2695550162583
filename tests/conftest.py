"""Shared fixtures: a small real text corpus, where the shared data lives, and the triage's
story checked on every run the tests train."""

from pathlib import Path

import pytest
from story import violations

import rnnscope.train
from rnnscope import runs

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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
