"""An ordinary PyTorch character-level LSTM, with rnnscope's panel added in three lines (marked
"rnnscope" below; plus the import and the optional panel.eval, with the state-dependence
readings).

    pip install "rnnscope[torch]"
    python examples/torch_char_lstm.py input.txt --steps 2000 --run-dir runs/lstm
    rnnscope doctor runs/lstm        # or open runs/lstm/report.html

Embedding -> nn.LSTM (or nn.GRU, nn.RNN) -> Linear, stateful truncated BPTT over B parallel
streams of the text, Adam, gradient-norm clipping at 5, an eval on the last 10% of the text.
"""

import argparse
import math

import torch
from torch import nn

from rnnscope.torch import STATE_WINDOW, Panel, state_readings


class CharModel(nn.Module):
    def __init__(self, vocab: int, cell: str, hidden: int, layers: int, emb: int = 64):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](emb, hidden, layers)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, h=None):
        out, h = self.rnn(self.emb(x), h)
        return self.head(out), h


def streams(ids: torch.Tensor, B: int) -> torch.Tensor:
    """(L, B): column b is the b-th of B equal parts of the text."""
    L = len(ids) // B
    return ids[:L * B].view(B, L).t().contiguous()


def detach(h):
    return tuple(x.detach() for x in h) if isinstance(h, tuple) else h.detach()


def first_streams(h, n: int):
    """The state of the first n streams (the batch is dimension 1)."""
    return tuple(x[:, :n] for x in h) if isinstance(h, tuple) else h[:, :n]


def evaluate(model: CharModel, data: torch.Tensor, T: int, h=None) -> float:
    """Mean NLL (nats/char) over the eval streams, the state carried along from h (None:
    zero)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, data.shape[0] - T, T):
            logits, h = model(data[i:i + T], h)
            y = data[i + 1:i + T + 1]
            total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 y.reshape(-1), reduction="sum").item()
            count += y.numel()
    model.train()
    return total / count


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("corpus", help="a UTF-8 text file")
    a.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    a.add_argument("--hidden", type=int, default=256)
    a.add_argument("--layers", type=int, default=1)
    a.add_argument("--batch", type=int, default=32)
    a.add_argument("--seq", type=int, default=64)
    a.add_argument("--lr", type=float, default=2e-3)
    a.add_argument("--steps", type=int, default=2000)
    a.add_argument("--eval-every", type=int, default=250)
    a.add_argument("--run-dir", default="runs/torch-char-lstm")
    args = a.parse_args()

    torch.manual_seed(0)
    text = open(args.corpus, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text])
    cut = int(0.9 * len(ids))
    train, held_out = streams(ids[:cut], args.batch), streams(ids[cut:], 1)
    model = CharModel(len(chars), args.cell, args.hidden, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    panel = Panel(model.rnn, args.run_dir, vocab_size=len(chars),  # rnnscope 1: watch model.rnn
                  train_chars=cut)

    T, pos, h = args.seq, 0, None
    W, T_STATE = STATE_WINDOW, min(args.seq, STATE_WINDOW)  # the state readings' window
    for step in range(1, args.steps + 1):
        if pos + T + 1 > train.shape[0]:
            pos, h = 0, None  # a new epoch starts from a zero state
        x, y = train[pos:pos + T], train[pos + 1:pos + T + 1]
        pos += T
        logits, h = model(x, h)
        h = detach(h)
        loss = nn.functional.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        panel.step(loss, opt)  # rnnscope 2: instead of opt.step()
        if step % args.eval_every == 0:
            nll = evaluate(model, held_out, T)
            # the same held-out text from a fresh and from the carried state:
            state = state_readings(lambda text, h0: evaluate(model, text, T_STATE, h0),
                                   held_out[:W + 1], train[max(pos - W, 0):][:W + 1, :1],
                                   first_streams(h, 1))
            panel.eval(nll, **state)
            print(f"step {step}: eval {nll:.4f} nats/char ({nll / math.log(2):.3f} bits)")
    panel.close()  # rnnscope 3: triage.json and report.html in --run-dir


if __name__ == "__main__":
    main()
