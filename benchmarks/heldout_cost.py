"""What the state-dependence readings cost beside the eval they come with (docs/panel.md):
both timed in one process on the same random weights and text, at a few sizes.

    OPENBLAS_NUM_THREADS=1 python benchmarks/heldout_cost.py
"""

import time

import numpy as np

from rnnscope.data import eval_streams, make_streams
from rnnscope.heldout import evaluate, state_readings
from rnnscope.model import Model

SIZES = [(100, 1, 25, "rnn"), (256, 32, 64, "rnn"), (64, 16, 32, "rnn"), (256, 32, 64, "lstm")]


def main() -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 65, 1_059_624).astype(np.int32)  # tinyshakespeare's split sizes
    held = rng.integers(0, 65, 55_770).astype(np.int32)
    for hidden, batch, seq_len, cell in SIZES:
        model = Model(65, hidden, 1, cell=cell, seed=0)
        streams, evals = make_streams(train, batch), eval_streams(held, batch, seq_len)
        t = time.perf_counter()
        evaluate(model, evals, seq_len)
        t_eval = time.perf_counter() - t
        t = time.perf_counter()
        state_readings(model, evals, streams, 17, seq_len, model.zero_state(batch))
        t_state = time.perf_counter() - t
        print(f"hidden {hidden} batch {batch} seq-len {seq_len} {cell}: eval {t_eval * 1e3:.0f} "
              f"ms, state readings {t_state * 1e3:.1f} ms = {t_state / t_eval:.1%} of the eval")


if __name__ == "__main__":
    main()
