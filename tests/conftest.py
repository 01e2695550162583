"""Shared fixtures: a small real text corpus, and where the shared data lives."""

from pathlib import Path

import pytest

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
