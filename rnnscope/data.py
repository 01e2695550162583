"""Vocabulary, eval split and the stateful batch streams of truncated BPTT (where the text
comes from is rnnscope/corpora.py).

Shapes and types, fixed here once:
- a corpus text is a str; its ids are a (N,) int32 array of vocabulary indices;
- streams are (B, L) int32: the ids cut into B contiguous parallel streams, L = N // B
  (the remainder is dropped), so stream b reads ids[b*L : (b+1)*L];
- chunk i of an epoch is x = streams[:, i*T : i*T+T].T and y the same window shifted by one,
  both (T, B) int32 and C-contiguous, time-major as in SPEC section 1. Chunk i+1 continues
  every stream exactly where chunk i stopped, so the hidden state can be carried forward.

Every problem a user can cause is an RnnscopeError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import RnnscopeError


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
    return float(-unigram_log_probs(train_ids, vocab_size)[eval_ids].mean())


def unigram_log_probs(train_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """(V,) log frequencies of the characters in the train split, add-one smoothed (a character
    seen only in the eval split still gets a finite log probability)."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    return np.log(counts / counts.sum())


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
