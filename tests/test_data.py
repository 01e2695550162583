"""Vocabulary, split and stateful streams (rnnscope/data.py)."""

import numpy as np
import pytest

from rnnscope import data
from rnnscope.errors import RnnscopeError

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
