"""Where text comes from (rnnscope/corpora.py): the built-in corpora, the verified download, files,
synthetic sources by name, and exporting any corpus to a file. Never touches the network."""

import hashlib
import math
import re
import shutil
from pathlib import Path

import pytest

from rnnscope import corpora, synthetic
from rnnscope.errors import RnnscopeError


@pytest.fixture
def shakespeare(shared_data) -> Path:
    """tinyshakespeare.txt of ../shared (conftest's shared_data: skips in a clone without it)."""
    return shared_data / corpora.TINYSHAKESPEARE_FILE




# ---- named corpora and files ---------------------------------------------------------------

def test_stdlib_corpus_loads_offline_is_large_and_deterministic(isolated):
    first, second = corpora.load_corpus("stdlib"), corpora.load_corpus("stdlib")
    assert first.name == "stdlib"
    assert len(first.text) > 500_000
    assert first == second
    assert first.sha256 == hashlib.sha256(first.text.encode("utf-8")).hexdigest()


def test_tinyshakespeare_loads_from_data_dir_and_matches_pinned_hash(isolated, shakespeare):
    corpus = corpora.load_corpus("tinyshakespeare", data_dir=str(shakespeare.parent))
    assert len(corpus.text) == corpora.TINYSHAKESPEARE_CHARS
    assert corpus.sha256 == corpora.TINYSHAKESPEARE_SHA256


def test_tinyshakespeare_loads_from_rnnscope_data_env(isolated, shakespeare, monkeypatch):
    monkeypatch.setenv("RNNSCOPE_DATA", str(shakespeare.parent))
    assert len(corpora.load_corpus("tinyshakespeare").text) == corpora.TINYSHAKESPEARE_CHARS
    assert "found in" in corpora.list_corpora()[1]["state"]


def test_tinyshakespeare_with_wrong_hash_is_refused(isolated, shakespeare):
    bad = isolated / "bad"
    bad.mkdir()
    tampered = shakespeare.read_bytes().replace(b"KING", b"KONG")
    (bad / corpora.TINYSHAKESPEARE_FILE).write_bytes(tampered)
    with pytest.raises(RnnscopeError, match=f"{bad}/tinyshakespeare.txt has SHA-256 .*expected "
                                            f"{corpora.TINYSHAKESPEARE_SHA256}; delete it"):
        corpora.load_corpus("tinyshakespeare", data_dir=str(bad))


def test_tinyshakespeare_is_read_from_the_user_cache(isolated, shakespeare):
    cache = isolated / "cache" / "rnnscope"
    cache.mkdir(parents=True)
    shutil.copy(shakespeare, cache / corpora.TINYSHAKESPEARE_FILE)
    assert corpora.list_corpora()[1]["state"].startswith("cached at")
    assert corpora.load_corpus("tinyshakespeare").sha256 == corpora.TINYSHAKESPEARE_SHA256


class FakeResponse:
    def __init__(self, body: bytes):
        self.body = body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return self.body


def test_tinyshakespeare_download_is_verified_and_cached(isolated, shakespeare, monkeypatch):
    body = shakespeare.read_bytes()
    monkeypatch.setattr(corpora.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(body))
    assert len(corpora.load_corpus("tinyshakespeare").text) == corpora.TINYSHAKESPEARE_CHARS
    cached = isolated / "cache" / "rnnscope"
    assert [p.name for p in cached.iterdir()] == [corpora.TINYSHAKESPEARE_FILE]
    assert (cached / corpora.TINYSHAKESPEARE_FILE).read_bytes() == body


def test_corrupted_download_is_refused_and_not_cached(isolated, monkeypatch):
    monkeypatch.setattr(corpora.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(b"404: Not Found"))
    with pytest.raises(RnnscopeError, match="has SHA-256 .*expected"):
        corpora.load_corpus("tinyshakespeare")
    assert not (isolated / "cache" / "rnnscope" / corpora.TINYSHAKESPEARE_FILE).exists()


def test_download_failure_tells_how_to_work_offline(isolated):
    assert corpora.list_corpora()[1]["state"].startswith("not downloaded")
    with pytest.raises(RnnscopeError, match="download .* yourself.*--data-dir.*RNNSCOPE_DATA"):
        corpora.load_corpus("tinyshakespeare")


def test_data_dir_without_the_file_is_named_in_the_error(isolated):
    with pytest.raises(RnnscopeError, match=f"--data-dir '{isolated}' has no tinyshakespeare"):
        corpora.load_corpus("tinyshakespeare", data_dir=str(isolated))


def test_missing_file_corpus_is_refused(isolated):
    with pytest.raises(RnnscopeError, match="neither a known corpus .* nor an existing file"):
        corpora.load_corpus(str(isolated / "nope.txt"))


def test_directory_corpus_is_refused(isolated):
    with pytest.raises(RnnscopeError, match="is a directory"):
        corpora.load_corpus(str(isolated))


def test_empty_file_corpus_is_refused(isolated):
    (isolated / "empty.txt").write_bytes(b"")
    with pytest.raises(RnnscopeError, match="is empty"):
        corpora.load_corpus(str(isolated / "empty.txt"))


def test_binary_file_corpus_is_refused_with_byte_offset(isolated):
    (isolated / "blob.bin").write_bytes(b"hello\xff\xfe")
    with pytest.raises(RnnscopeError, match="not UTF-8 text .*offset 5"):
        corpora.load_corpus(str(isolated / "blob.bin"))


def test_file_corpus_text_is_kept_exactly(isolated):
    text = "  caf\u00e9\r\nline two\n\n"
    (isolated / "t.txt").write_bytes(text.encode("utf-8"))
    corpus = corpora.load_corpus(str(isolated / "t.txt"))
    assert corpus.text == text and corpus.name == str(isolated / "t.txt")




# ---- synthetic sources by name ---------------------------------------------------------------

def test_synthetic_corpus_carries_its_exact_floor_and_settings(isolated):
    corpus = corpora.load_corpus("synthetic:markov2:seed3")
    source = synthetic.Source("markov", 2, 3)
    assert corpus.text == synthetic.generate(source)
    assert corpus.floor_nll == synthetic.floor_nll(source)
    assert corpus.source == {"kind": "markov", "K": 2, "seed": 3, "alphabet": "abcdefgh",
                             "chars": synthetic.DOCUMENT_CHARS, "dirichlet_alpha": 0.5}
    assert corpus.sha256 == hashlib.sha256(corpus.text.encode("utf-8")).hexdigest()


def test_synthetic_seed_defaults_to_zero(isolated):
    assert corpora.load_corpus("synthetic:delay4").sha256 == \
        corpora.load_corpus("synthetic:delay4:seed0").sha256
    assert corpora.load_corpus("synthetic:delay4").floor_nll == pytest.approx(1.9605913, 1e-7)


def test_named_and_file_corpora_have_no_floor(isolated):
    assert corpora.load_corpus("stdlib").floor_nll is None


@pytest.mark.parametrize("name,says", [
    ("synthetic:markov", "is not a synthetic source; use synthetic:markov{K} (K 1-4)"),
    ("synthetic:copy3", "is not a synthetic source"),
    ("synthetic:delay3:seed", "is not a synthetic source"),
    ("synthetic:markov5", "K = 5 is out of range"),
    ("synthetic:delay0", "K = 0 is out of range"),
    ("synthetic:delay10001", "K = 10001 is out of range; use"),
    ("synthetic:recall0", "K = 0 is out of range; use"),
])
def test_bad_synthetic_names_are_refused_naming_the_forms(isolated, name, says):
    with pytest.raises(RnnscopeError, match=re.escape(says)):
        corpora.load_corpus(name)


def test_list_shows_the_synthetic_floors(isolated):
    listed = {c["name"]: c["floor_nll"] for c in corpora.list_corpora()}
    assert listed["stdlib"] is None and listed["tinyshakespeare"] is None
    for K in range(1, 5):
        assert listed[f"synthetic:markov{K}"] == synthetic.floor_nll(
            synthetic.Source("markov", K, 0))
    assert listed["synthetic:delay{K}"] == synthetic.delay_entropy_rate(0.5, 16)
    assert "synthetic:recall{K}" in listed  # its floor depends on K: in the description


def test_a_recall_corpus_carries_its_floor_and_settings(isolated):
    corpus = corpora.load_corpus("synthetic:recall64")
    assert corpus.floor_nll == pytest.approx(64 * math.log(8) / 65, abs=1e-12)
    assert corpus.source == {"kind": "recall", "K": 64, "seed": 0,
                             "alphabet": "abcdefghijklmnop", "chars": synthetic.DOCUMENT_CHARS,
                             "items": "abcdefgh", "distractors": "ijklmnop"}


# ---- export --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["synthetic:delay7:seed2", "stdlib"])
def test_export_writes_exactly_the_corpus_text(isolated, name):
    file = isolated / "out.txt"
    corpus = corpora.export_corpus(name, file)
    assert file.read_bytes() == corpus.text.encode("utf-8")
    assert corpora.load_corpus(str(file)).sha256 == corpus.sha256


def test_export_never_overwrites_a_file(isolated):
    file = isolated / "keep.txt"
    file.write_text("precious")
    with pytest.raises(RnnscopeError, match="already exists; remove it or choose another"):
        corpora.export_corpus("synthetic:delay2", file)
    assert file.read_text() == "precious"


def test_export_into_a_missing_directory_is_refused(isolated):
    with pytest.raises(RnnscopeError, match="does not exist"):
        corpora.export_corpus("synthetic:delay2", isolated / "no" / "out.txt")
