"""Corpora, vocabulary, split and stateful streams (rnnscope/data.py). Never touches the network."""

import hashlib
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from rnnscope import data
from rnnscope.errors import RnnscopeError

SHARED = Path(__file__).parents[2] / "shared" / "data"
SHAKESPEARE = SHARED / data.TINYSHAKESPEARE_FILE
needs_shakespeare = pytest.mark.skipif(not SHAKESPEARE.is_file(),
                                       reason=f"{SHAKESPEARE} not present")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No RNNSCOPE_DATA, an empty cache under tmp_path, and any download attempt fails loudly."""
    monkeypatch.delenv("RNNSCOPE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    return tmp_path


# ---- corpora -------------------------------------------------------------------------------

def test_stdlib_corpus_loads_offline_is_large_and_deterministic(isolated):
    first, second = data.load_corpus("stdlib"), data.load_corpus("stdlib")
    assert first.name == "stdlib"
    assert len(first.text) > 500_000
    assert first == second
    assert first.sha256 == hashlib.sha256(first.text.encode("utf-8")).hexdigest()


@needs_shakespeare
def test_tinyshakespeare_loads_from_data_dir_and_matches_pinned_hash(isolated):
    corpus = data.load_corpus("tinyshakespeare", data_dir=str(SHARED))
    assert len(corpus.text) == data.TINYSHAKESPEARE_CHARS
    assert corpus.sha256 == data.TINYSHAKESPEARE_SHA256


@needs_shakespeare
def test_tinyshakespeare_loads_from_rnnscope_data_env(isolated, monkeypatch):
    monkeypatch.setenv("RNNSCOPE_DATA", str(SHARED))
    assert len(data.load_corpus("tinyshakespeare").text) == data.TINYSHAKESPEARE_CHARS
    assert "found in" in data.list_corpora()[1]["state"]


@needs_shakespeare
def test_tinyshakespeare_with_wrong_hash_is_refused(isolated):
    bad = isolated / "bad"
    bad.mkdir()
    tampered = SHAKESPEARE.read_bytes().replace(b"KING", b"KONG")
    (bad / data.TINYSHAKESPEARE_FILE).write_bytes(tampered)
    with pytest.raises(RnnscopeError, match=f"{bad}/tinyshakespeare.txt has SHA-256 .*expected "
                                            f"{data.TINYSHAKESPEARE_SHA256}; delete it"):
        data.load_corpus("tinyshakespeare", data_dir=str(bad))


@needs_shakespeare
def test_tinyshakespeare_is_read_from_the_user_cache(isolated):
    cache = isolated / "cache" / "rnnscope"
    cache.mkdir(parents=True)
    shutil.copy(SHAKESPEARE, cache / data.TINYSHAKESPEARE_FILE)
    assert data.list_corpora()[1]["state"].startswith("cached at")
    assert data.load_corpus("tinyshakespeare").sha256 == data.TINYSHAKESPEARE_SHA256


class FakeResponse:
    def __init__(self, body: bytes):
        self.body = body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return self.body


@needs_shakespeare
def test_tinyshakespeare_download_is_verified_and_cached(isolated, monkeypatch):
    body = SHAKESPEARE.read_bytes()
    monkeypatch.setattr(data.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(body))
    assert len(data.load_corpus("tinyshakespeare").text) == data.TINYSHAKESPEARE_CHARS
    cached = isolated / "cache" / "rnnscope"
    assert [p.name for p in cached.iterdir()] == [data.TINYSHAKESPEARE_FILE]
    assert (cached / data.TINYSHAKESPEARE_FILE).read_bytes() == body


def test_corrupted_download_is_refused_and_not_cached(isolated, monkeypatch):
    monkeypatch.setattr(data.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(b"404: Not Found"))
    with pytest.raises(RnnscopeError, match="has SHA-256 .*expected"):
        data.load_corpus("tinyshakespeare")
    assert not (isolated / "cache" / "rnnscope" / data.TINYSHAKESPEARE_FILE).exists()


def test_download_failure_tells_how_to_work_offline(isolated):
    assert data.list_corpora()[1]["state"].startswith("not downloaded")
    with pytest.raises(RnnscopeError, match="download .* yourself.*--data-dir.*RNNSCOPE_DATA"):
        data.load_corpus("tinyshakespeare")


def test_data_dir_without_the_file_is_named_in_the_error(isolated):
    with pytest.raises(RnnscopeError, match=f"--data-dir '{isolated}' has no tinyshakespeare"):
        data.load_corpus("tinyshakespeare", data_dir=str(isolated))


def test_missing_file_corpus_is_refused(isolated):
    with pytest.raises(RnnscopeError, match="neither a known corpus .* nor an existing file"):
        data.load_corpus(str(isolated / "nope.txt"))


def test_directory_corpus_is_refused(isolated):
    with pytest.raises(RnnscopeError, match="is a directory"):
        data.load_corpus(str(isolated))


def test_empty_file_corpus_is_refused(isolated):
    (isolated / "empty.txt").write_bytes(b"")
    with pytest.raises(RnnscopeError, match="is empty"):
        data.load_corpus(str(isolated / "empty.txt"))


def test_binary_file_corpus_is_refused_with_byte_offset(isolated):
    (isolated / "blob.bin").write_bytes(b"hello\xff\xfe")
    with pytest.raises(RnnscopeError, match="not UTF-8 text .*offset 5"):
        data.load_corpus(str(isolated / "blob.bin"))


def test_file_corpus_text_is_kept_exactly(isolated):
    text = "  caf\u00e9\r\nline two\n\n"
    (isolated / "t.txt").write_bytes(text.encode("utf-8"))
    corpus = data.load_corpus(str(isolated / "t.txt"))
    assert corpus.text == text and corpus.name == str(isolated / "t.txt")


# ---- vocabulary ----------------------------------------------------------------------------

def test_vocab_is_sorted_unique_chars_and_roundtrips():
    text = "hello, w\u00f6rld \U0001f600\n"
    vocab = data.build_vocab(text)
    assert vocab.chars == "".join(sorted(set(text)))
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and ids.max() == vocab.size - 1
    assert vocab.decode(ids) == text
    assert vocab.decode(list(ids)) == text


def test_encoding_an_unknown_char_names_it():
    vocab = data.build_vocab("abc")
    with pytest.raises(RnnscopeError, match="'z' \\(U\\+007A\\) is not in the vocabulary"):
        vocab.encode("abz")


# ---- split and streams ---------------------------------------------------------------------

def test_split_puts_the_last_eval_frac_in_eval():
    ids = np.arange(1000, dtype=np.int32)
    train, evl = data.split(ids, 0.05)
    assert len(train) == 950 and len(evl) == 50
    assert np.array_equal(np.concatenate([train, evl]), ids)


def test_streams_are_contiguous_slices_dropping_the_remainder():
    ids = np.arange(103, dtype=np.int32)
    streams = data.make_streams(ids, 4)
    assert streams.shape == (4, 25)
    assert np.array_equal(streams[2], ids[50:75])


def test_targets_are_inputs_shifted_by_one_within_each_stream():
    streams = data.make_streams(np.arange(400, dtype=np.int32), 4)
    for i in range(data.chunks_per_epoch(streams, 7)):
        x, y = data.get_chunk(streams, i, 7)
        assert x.shape == y.shape == (7, 4)
        assert x.flags.c_contiguous and y.flags.c_contiguous
        assert np.array_equal(y, x + 1)  # ids are positions, so the next char is id + 1


def test_consecutive_chunks_continue_each_stream():
    streams = data.make_streams(np.arange(400, dtype=np.int32), 4)
    for i in range(data.chunks_per_epoch(streams, 7) - 1):
        x, _ = data.get_chunk(streams, i, 7)
        x_next, _ = data.get_chunk(streams, i + 1, 7)
        assert np.array_equal(x_next[0], x[-1] + 1)


@pytest.mark.parametrize("length,seq_len", [(101, 10), (100, 10), (99, 10), (12, 11), (50, 1)])
def test_chunks_per_epoch_never_reads_past_the_stream_end(length, seq_len):
    streams = data.make_streams(np.arange(3 * length, dtype=np.int32), 3)
    n = data.chunks_per_epoch(streams, seq_len)
    _, y = data.get_chunk(streams, n - 1, seq_len)
    assert y[-1, 0] <= length - 1  # the last target is still inside stream 0
    assert (n + 1) * seq_len + 1 > length  # and one more chunk would not fit
    with pytest.raises(IndexError):
        data.get_chunk(streams, n, seq_len)


def test_too_short_corpus_is_refused_naming_the_needed_length():
    train, evl = np.zeros(100, np.int32), np.zeros(100, np.int32)
    with pytest.raises(RnnscopeError, match="needs at least 130; use a smaller --batch"):
        data.check_trainable(train, evl, batch=2, seq_len=64)
    with pytest.raises(RnnscopeError, match="eval split has 10 .* at least .* 65"):
        data.check_trainable(np.zeros(1000, np.int32), evl[:10], batch=2, seq_len=64)
    data.check_trainable(train[:65 * 1], evl[:65], batch=1, seq_len=64)


def test_eval_streams_use_fewer_streams_when_the_eval_split_is_short():
    evl = np.arange(200, dtype=np.int32)
    assert data.eval_streams(evl, batch=2, seq_len=10).shape == (2, 100)
    assert data.eval_streams(evl, batch=32, seq_len=64).shape == (3, 66)
    assert data.eval_streams(evl[:65], batch=32, seq_len=64).shape == (1, 65)
    with pytest.raises(RnnscopeError, match="at least"):
        data.eval_streams(evl[:64], batch=32, seq_len=64)
