"""Synthetic text with a known floor (SPEC section 9): two random sources whose exact entropy
rate, in nats per character, is computed from the source itself, not estimated from its text.

    markov{K}  an order-K Markov source over the 8 letters a-h. Each of the 8**K contexts (the
               last K letters) has its own next-letter distribution, drawn from a symmetric
               Dirichlet(1/2) (normalised squares of standard normals). Floor: the entropy rate
               sum_s pi(s) H(P(.|s)), pi the stationary distribution over contexts.
    delay{K}   over the 16 letters a-p: x_t = x_{t-K} with probability p = 0.5, else a fresh
               uniform letter (the first K letters are uniform). Given the past, x_t is x_{t-K}
               with probability q = p + (1-p)/A and each other letter with r = (1-p)/A, so the
               floor is -(q ln q + (A-1) r ln r) for every K.
    recall{K}  one item held for K steps among distractors: blocks of K+1 letters, an item
               (uniform over the 8 letters a-h), K-1 distractors (uniform over the 8 letters
               i-p), then the item again. Given the past, the item and the distractors are
               fresh draws and the recall is certain, so the floor is
               (ln 8 + (K-1) ln 8) / (K+1) = K ln 8 / (K+1).

Every document is DOCUMENT_CHARS letters. The seed S (default 0) picks the source (the Markov
tables) and its text. Every random number is a uniform double made from PCG64's raw 64-bit
output, seeded by SeedSequence([S, kind, K]): the bit generator and the seed sequence are stable
across NumPy versions, while Generator's distributions may change. The same name gives the same
text (its SHA-256 is checked when a run resumes).

Arrays: a source's text is a (N,) int array of letter indices; the Markov tables are
(A**K, A), row s the next-letter distribution of context s = sum_i c_i A**(K-1-i) (c_0 the
oldest letter).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

DOCUMENT_CHARS = 1_000_000
MARKOV_ALPHABET = "abcdefgh"
MARKOV_ORDERS = (1, 4)        # 8**5 contexts would get ~30 visits each in a document
MARKOV_BURN_IN = 1_000        # letters drawn and dropped so the text starts near stationarity
DELAY_ALPHABET = "abcdefghijklmnop"
DELAY_P = 0.5
DELAY_LAGS = (1, DOCUMENT_CHARS // 100)  # the K uniform letters at the start stay under 1%
RECALL_ITEMS = "abcdefgh"                  # the letter held
RECALL_DISTRACTORS = "ijklmnop"           # the letters between the item and its recall
RECALL_LAGS = (1, DOCUMENT_CHARS // 100)
KINDS = {"markov": 1, "delay": 2, "recall": 3}  # a source kind's number in the seed sequence
ALPHABETS = {"markov": MARKOV_ALPHABET, "delay": DELAY_ALPHABET,
             "recall": RECALL_ITEMS + RECALL_DISTRACTORS}
STATIONARY_TOL = 1e-15        # L1 change of pi between power iterations at convergence
STATIONARY_MAX_ITER = 100_000


@dataclass(frozen=True)
class Source:
    kind: str   # "markov", "delay" or "recall"
    K: int      # Markov order, the delay, or how many steps the recall's item is held
    seed: int

    @property
    def alphabet(self) -> str:
        return ALPHABETS[self.kind]

    def describe(self) -> dict:
        """What config.json records of the source, besides the floor."""
        d = {"kind": self.kind, "K": self.K, "seed": self.seed, "alphabet": self.alphabet,
             "chars": DOCUMENT_CHARS}
        d.update({"markov": {"dirichlet_alpha": 0.5}, "delay": {"p": DELAY_P},
                  "recall": {"items": RECALL_ITEMS, "distractors": RECALL_DISTRACTORS}
                  }[self.kind])
        return d


def uniforms(rng: np.random.PCG64, n: int) -> np.ndarray:
    """(n,) doubles uniform on [0, 1): the top 53 bits of each raw 64-bit output."""
    return (rng.random_raw(n) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def bit_generator(source: Source) -> np.random.PCG64:
    return np.random.PCG64(np.random.SeedSequence([source.seed, KINDS[source.kind], source.K]))


def generate(source: Source, n: int = DOCUMENT_CHARS) -> str:
    """The source's text, n letters."""
    ids = {"markov": markov_ids, "delay": delay_ids, "recall": recall_ids}[source.kind](source, n)
    letters = np.frombuffer(source.alphabet.encode("ascii"), dtype=np.uint8)
    return letters[ids].tobytes().decode("ascii")


def floor_nll(source: Source) -> float:
    """The exact entropy rate of the source, nats/char."""
    if source.kind == "delay":
        return delay_entropy_rate(DELAY_P, len(DELAY_ALPHABET))
    if source.kind == "recall":
        return recall_entropy_rate(source.K, len(RECALL_ITEMS), len(RECALL_DISTRACTORS))
    return markov_entropy_rate(markov_table(source, bit_generator(source)))


# ---- delay


def delay_ids(source: Source, n: int) -> np.ndarray:
    """x_t = x_{t-K} with probability p, else fresh. Positions t, t+K, t+2K, ... form one
    chain that keeps its letter until the next fresh draw, so x is the fresh letter of the last
    fresh draw in its chain: laid out as rows of K, a running maximum down each column."""
    K, A = source.K, len(DELAY_ALPHABET)
    rng = bit_generator(source)
    rows = -(-n // K)
    u = uniforms(rng, 2 * n).reshape(n, 2)  # a (coin, letter) pair per position
    copy = np.zeros(rows * K, bool)
    copy[:n] = u[:, 0] < DELAY_P
    fresh = np.zeros(rows * K, np.int64)
    fresh[:n] = (u[:, 1] * A).astype(np.int64)
    copy, fresh = copy.reshape(rows, K), fresh.reshape(rows, K)
    copy[0] = False  # the first K letters have nothing K back to copy
    last_fresh = np.maximum.accumulate(np.where(copy, 0, np.arange(rows)[:, None]), axis=0)
    return fresh[last_fresh, np.arange(K)].ravel()[:n]


def delay_entropy_rate(p: float, A: int) -> float:
    q, r = p + (1 - p) / A, (1 - p) / A
    return -(q * math.log(q) + (A - 1) * r * math.log(r))


# ---- recall


def recall_ids(source: Source, n: int) -> np.ndarray:
    """Blocks of K+1 letters from the first: item, K-1 distractors, the item again. A block
    takes K uniforms: the item's, then the distractors'."""
    K, A = source.K, len(RECALL_ITEMS)
    blocks = -(-n // (K + 1))
    u = uniforms(bit_generator(source), blocks * K).reshape(blocks, K)
    letters = (u * A).astype(np.int64)
    letters[:, 1:] += A  # distractors are the letters after the items
    return np.concatenate([letters, letters[:, :1]], axis=1).ravel()[:n]


def recall_entropy_rate(K: int, items: int, distractors: int) -> float:
    """Per block of K+1 letters: a fresh item (ln items), K-1 fresh distractors, a certain
    recall (0)."""
    return (math.log(items) + (K - 1) * math.log(distractors)) / (K + 1)


def recall_oracle_nll(streams: np.ndarray, K: int) -> float:
    """Mean NLL of the exact Bayes predictor on recall{K} streams (B, L) of letter indices, over
    every letter after the first (the ones a model that reads a stream predicts): the belief
    over (phase, held item) starts uniform, each stream read from its first letter without
    knowing where in a block it starts. It scores what the best model can on those streams
    (the floor, plus what a stream's unknown start costs)."""
    A, D = len(RECALL_ITEMS), len(RECALL_DISTRACTORS)
    B, L = streams.shape
    belief = np.full((B, K + 1, A), 1.0 / ((K + 1) * A))  # phase of the last letter, item
    total = 0.0
    for t in range(L):
        x = streams[:, t]
        belief = np.roll(belief, 1, axis=1)  # phase of the letter to come
        like = np.zeros((B, K + 1, A))
        is_item = x < A
        like[is_item, 0, :] = 1.0 / A                    # a fresh item
        like[~is_item, 1:K, :] = 1.0 / D                 # a distractor
        like[is_item, K, x[is_item]] = 1.0               # the recall of the held item
        joint = belief * like
        p = joint.sum(axis=(1, 2))
        total -= np.log(p).sum() if t else 0.0
        belief = joint / p[:, None, None]
        items = np.flatnonzero(is_item)  # a fresh item is now the one held
        fresh = belief[items, 0, :].sum(axis=1)
        belief[items, 0, :] = 0.0
        belief[items, 0, x[items]] = fresh
    return total / (B * (L - 1))


# ---- markov


def markov_table(source: Source, rng: np.random.PCG64) -> np.ndarray:
    """(A**K, A): each row Dirichlet(1/2), as squares of Box-Muller normals, normalised."""
    A = len(MARKOV_ALPHABET)
    shape = (A ** source.K, A)
    u1, u2 = 1.0 - uniforms(rng, math.prod(shape)), uniforms(rng, math.prod(shape))
    z2 = (-2.0 * np.log(u1) * np.cos(2 * np.pi * u2) ** 2).reshape(shape)
    z2 = np.maximum(z2, np.finfo(float).tiny)  # a zero would make a context's letter impossible
    return z2 / z2.sum(axis=1, keepdims=True)


def markov_ids(source: Source, n: int) -> np.ndarray:
    """Sample n letters after MARKOV_BURN_IN from context 0 (inverse CDF, one letter a step)."""
    rng = bit_generator(source)
    table = markov_table(source, rng)
    A, contexts = table.shape[1], table.shape[0]
    cdf = np.cumsum(table, axis=1)
    cdf[:, -1] = 1.0
    rows = cdf.tolist()
    u = uniforms(rng, MARKOV_BURN_IN + n).tolist()
    out, s = [], 0
    for v in u:
        c = bisect.bisect_right(rows[s], v)
        out.append(c)
        s = (s * A + c) % contexts
    return np.array(out[MARKOV_BURN_IN:], dtype=np.int64)


def stationary(table: np.ndarray) -> np.ndarray:
    """(A**K,) the stationary distribution over contexts, by power iteration: context s
    followed by letter c becomes context (s * A + c) mod A**K."""
    contexts, A = table.shape
    pi = np.full(contexts, 1.0 / contexts)
    for _ in range(STATIONARY_MAX_ITER):
        flow = (pi[:, None] * table).reshape(A, contexts // A, A)  # [oldest letter, rest, c]
        new = flow.sum(axis=0).ravel()
        new /= new.sum()
        if np.abs(new - pi).sum() < STATIONARY_TOL:
            return new
        pi = new
    raise RuntimeError("the Markov source's stationary distribution did not converge")


def markov_entropy_rate(table: np.ndarray) -> float:
    pi = stationary(table)
    row_entropy = -(table * np.log(table)).sum(axis=1)
    return float(pi @ row_entropy)
