"""Synthetic sources and their floors (rnnscope/synthetic.py): the floor is the exact entropy rate,
checked against a brute-force enumeration of the source on tiny cases and against estimates from
a long sample of the text itself; the text is deterministic and has the structure its name says."""

import itertools
import math

import numpy as np
import pytest

from rnnscope import synthetic
from rnnscope.synthetic import Source


def entropy(probs) -> float:
    p = np.asarray([q for q in probs if q > 0])
    return float(-(p * np.log(p)).sum())


def ids_of(text: str, alphabet: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), np.uint8).astype(np.int64) - ord(alphabet[0])


def plug_in_conditional_entropy(ids: np.ndarray, lags: tuple, A: int) -> float:
    """H(x_t | x_{t-l} for l in lags) estimated from the counts of a sample."""
    m = max(lags)
    context = np.zeros(len(ids) - m, np.int64)
    for lag in lags:
        context = context * A + ids[m - lag:len(ids) - lag]
    joint = np.bincount(context * A + ids[m:], minlength=A ** (len(lags) + 1))
    n = joint.sum()
    return entropy(joint / n) - entropy(np.bincount(context) / n)


# ---- delay


def delay_block_probs(n: int, K: int, A: int, p: float) -> dict:
    """P(x_1..x_n) of every letter sequence, summed over every path of the process: at each
    position a fresh letter (each with probability (1-p)/A, or 1/A in the first K) or, from
    position K on, a copy of the letter K back (probability p)."""
    paths = {(): 1.0}
    for t in range(n):
        grown: dict = {}
        for seq, pr in paths.items():
            fresh = 1 / A if t < K else (1 - p) / A
            for c in range(A):
                grown[seq + (c,)] = grown.get(seq + (c,), 0.0) + pr * fresh
            if t >= K:
                grown[seq + (seq[t - K],)] += pr * p
        paths = grown
    return paths


@pytest.mark.parametrize("p,A,K", [(0.5, 16, 1), (0.5, 16, 2), (0.3, 3, 3), (0.8, 2, 5)])
def test_delay_floor_equals_brute_force_block_entropy_difference(p, A, K):
    """H(x_n | x_1..x_{n-1}) = H_n - H_{n-1} of the enumerated process, for n past the delay."""
    floor = synthetic.delay_entropy_rate(p, A)
    for n in (K + 1, K + 2):
        h_n = entropy(delay_block_probs(n, K, A, p).values())
        h_before = entropy(delay_block_probs(n - 1, K, A, p).values())
        assert h_n - h_before == pytest.approx(floor, abs=1e-12)


def test_delay_floor_is_the_same_for_every_delay_and_seed():
    floors = {synthetic.floor_nll(Source("delay", K, seed)) for K in (1, 7, 300)
              for seed in (0, 5)}
    assert floors == {synthetic.delay_entropy_rate(synthetic.DELAY_P,
                                                   len(synthetic.DELAY_ALPHABET))}


@pytest.mark.parametrize("K", [1, 3, 40])
def test_delay_text_repeats_exactly_K_back_at_the_floor_rate(K):
    source = Source("delay", K, 0)
    text = synthetic.generate(source)
    assert len(text) == synthetic.DOCUMENT_CHARS and set(text) == set(source.alphabet)
    ids, A = ids_of(text, source.alphabet), len(source.alphabet)
    floor = synthetic.floor_nll(source)
    # 256 cells from a million letters: the plug-in estimate is within ~0.002 of the truth
    assert plug_in_conditional_entropy(ids, (K,), A) == pytest.approx(floor, abs=0.005)
    # 2K back: equal when both steps copied (p**2), else independent, like a delay with p**2
    p = synthetic.DELAY_P
    assert plug_in_conditional_entropy(ids, (2 * K,), A) == pytest.approx(
        synthetic.delay_entropy_rate(p ** 2, A), abs=0.005)
    for lag in (lag for lag in (1, 2, K + 1) if lag % K):  # other lags tell nothing: ln A
        assert plug_in_conditional_entropy(ids, (lag,), A) == pytest.approx(math.log(A),
                                                                            abs=0.005)


# ---- recall


def recall_block_probs(n: int, K: int, A: int, D: int) -> dict:
    """P(x_1..x_n) of every sequence the recall process makes from a block start: at phase
    t mod (K+1) = 0 a fresh item (A letters), at phases 1..K-1 a fresh distractor (D other
    letters), at phase K a copy of the letter K back."""
    paths = {(): 1.0}
    for t in range(n):
        phase, grown = t % (K + 1), {}
        for seq, pr in paths.items():
            if phase == K:
                grown[seq + (seq[t - K],)] = pr
                continue
            letters = range(A) if phase == 0 else range(A, A + D)
            for c in letters:
                grown[seq + (c,)] = pr / len(letters)
        paths = grown
    return paths


@pytest.mark.parametrize("K,A,D", [(1, 3, 2), (2, 3, 2), (3, 2, 3), (4, 2, 2)])
def test_recall_floor_equals_brute_force_block_entropy_differences(K, A, D):
    """H(x_n | x_1..x_{n-1}) = H_n - H_{n-1} of the enumerated process: ln A at an item, ln D at
    a distractor, 0 at the recall; their mean over a block is the floor."""
    h = [entropy(recall_block_probs(n, K, A, D).values()) for n in range(2 * K + 3)]
    steps = np.diff(h)  # steps[t]: the entropy of letter t given the ones before
    expected = [math.log(A)] + [math.log(D)] * (K - 1) + [0.0]
    np.testing.assert_allclose(steps[:2 * K + 2], expected * 2, atol=1e-12)
    assert steps[K + 1:2 * K + 2].mean() == pytest.approx(
        synthetic.recall_entropy_rate(K, A, D), abs=1e-12)


@pytest.mark.parametrize("K", [1, 3, 40])
def test_recall_text_holds_one_item_K_steps_and_the_oracle_scores_the_floor(K):
    source = Source("recall", K, 0)
    text = synthetic.generate(source)
    assert len(text) == synthetic.DOCUMENT_CHARS
    assert set(text) == set(source.alphabet if K > 1 else synthetic.RECALL_ITEMS)
    ids, A = ids_of(text, source.alphabet), len(synthetic.RECALL_ITEMS)
    phase = np.arange(len(ids)) % (K + 1)
    assert (ids[phase == 0] < A).all() and (ids[(phase > 0) & (phase < K)] >= A).all()
    recall = np.flatnonzero(phase == K)
    np.testing.assert_array_equal(ids[recall], ids[recall - K])  # the item, K steps later
    # the fresh letters are uniform: 8 items, 8 distractors
    for letters in (ids[phase == 0], ids[(phase > 0) & (phase < K)]):
        if letters.size:
            assert entropy(np.bincount(letters) / letters.size) == pytest.approx(
                math.log(8), abs=0.001)
    floor = synthetic.floor_nll(source)
    assert floor == pytest.approx(K * math.log(8) / (K + 1), abs=1e-12)
    # the exact predictor, not told where blocks start, scores the floor on the real text;
    # on 100 streams each start may cost it a little (the item and phase it has not seen)
    start = math.log(8) + math.log(K + 1)  # at most what a stream's unknown start costs
    whole = synthetic.recall_oracle_nll(ids[None, :5_000], K)
    assert whole == pytest.approx(floor, abs=start / 5_000)
    cut = synthetic.recall_oracle_nll(ids[:100_000].reshape(100, -1), K)
    assert cut == pytest.approx(floor, abs=100 * start / 100_000)
    if K > 1:  # the letter K-1 back says nothing of a recall: ln 8, the item's own entropy
        back = ids[recall - K + 1]
        joint = np.bincount(back * 16 + ids[recall], minlength=256) / recall.size
        h = entropy(joint) - entropy(np.bincount(back) / recall.size)
        assert h == pytest.approx(math.log(8), abs=0.01)


def test_the_recall_oracle_pays_for_a_wrong_recall():
    """Fed a text whose recall is changed, the oracle's NLL is infinite there: it is sure."""
    ids = ids_of(synthetic.generate(Source("recall", 3, 0), 400), "abcdefghijklmnop")
    good = synthetic.recall_oracle_nll(ids[None], 3)
    ids[7] = (ids[7] + 1) % 8  # position 7 is the recall of block 1
    with np.errstate(divide="ignore", invalid="ignore"):
        bad = synthetic.recall_oracle_nll(ids[None], 3)
    assert math.isfinite(good) and not math.isfinite(bad)


# ---- markov


def stationary_by_eigenvector(table: np.ndarray) -> np.ndarray:
    """pi from the dense (C, C) transition matrix: its left eigenvector of eigenvalue 1."""
    C, A = table.shape
    M = np.zeros((C, C))
    for s, c in itertools.product(range(C), range(A)):
        M[s, (s * A + c) % C] += table[s, c]
    values, vectors = np.linalg.eig(M.T)
    pi = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    return pi / pi.sum()


@pytest.mark.parametrize("K,seed", [(1, 0), (2, 0), (2, 9)])
def test_markov_floor_equals_brute_force_block_entropy_difference(K, seed):
    """Started from its stationary distribution (found independently, by eigenvector), the
    source's H_{K+2} - H_{K+1} over all 8**(K+2) sequences is the entropy rate."""
    source = Source("markov", K, seed)
    table = synthetic.markov_table(source, synthetic.bit_generator(source))
    C, A = table.shape
    pi = stationary_by_eigenvector(table)
    np.testing.assert_allclose(synthetic.stationary(table), pi, atol=1e-12)

    def block(n):
        probs = []
        for seq in itertools.product(range(A), repeat=n):
            s = int(np.ravel_multi_index(seq[:K], (A,) * K))
            pr = pi[s]
            for c in seq[K:]:
                pr *= table[s, c]
                s = (s * A + c) % C
            probs.append(pr)
        return entropy(probs)

    assert block(K + 2) - block(K + 1) == pytest.approx(synthetic.floor_nll(source), abs=1e-12)


@pytest.mark.parametrize("K", [1, 3])
def test_markov_text_has_order_K_and_its_floor(K):
    """On a million letters: the true model's mean log loss and the plug-in estimate of
    H(x_t | the K letters before) both match the floor; K - 1 letters of context are not
    enough (the source is of order K, not less)."""
    source = Source("markov", K, 0)
    text = synthetic.generate(source)
    assert len(text) == synthetic.DOCUMENT_CHARS and set(text) == set(source.alphabet)
    ids, A = ids_of(text, source.alphabet), len(source.alphabet)
    floor = synthetic.floor_nll(source)
    table = synthetic.markov_table(source, synthetic.bit_generator(source))
    context = np.zeros(len(ids) - K, np.int64)
    for lag in range(K, 0, -1):
        context = context * A + ids[K - lag:len(ids) - lag]
    log_loss = -np.log(table[context, ids[K:]]).mean()
    assert log_loss == pytest.approx(floor, abs=0.005)
    assert plug_in_conditional_entropy(ids, tuple(range(1, K + 1)), A) == pytest.approx(
        floor, abs=0.01)
    shorter = plug_in_conditional_entropy(ids, tuple(range(1, K)), A) if K > 1 else \
        entropy(np.bincount(ids) / len(ids))
    assert shorter > floor + 0.05


def test_markov_source_differs_by_seed_and_order():
    floors = [synthetic.floor_nll(Source("markov", K, seed)) for K in (1, 2) for seed in (0, 1)]
    assert len(set(floors)) == 4
    assert all(0 < f < math.log(len(synthetic.MARKOV_ALPHABET)) for f in floors)


# ---- determinism


@pytest.mark.parametrize("kind,K", [("markov", 2), ("delay", 5), ("recall", 6)])
def test_same_source_gives_the_same_text_another_seed_another_text(kind, K):
    first = synthetic.generate(Source(kind, K, 0), 5_000)
    assert synthetic.generate(Source(kind, K, 0), 5_000) == first
    assert synthetic.generate(Source(kind, K, 1), 5_000) != first
    assert synthetic.generate(Source(kind, K, 0))[:5_000] == first


def test_uniforms_come_from_the_raw_bit_stream():
    """The text depends on PCG64's raw output only (stable across NumPy versions): the
    uniforms are its top 53 bits, so they lie in [0, 1) on the 2**-53 grid."""
    raw = np.random.PCG64(7).random_raw(1000)
    u = synthetic.uniforms(np.random.PCG64(7), 1000)
    np.testing.assert_array_equal(u * 2.0 ** 53, (raw >> np.uint64(11)).astype(np.float64))
    assert 0 <= u.min() and u.max() < 1
