"""The triage's calibration runs from PyTorch loops: an ordinary character model (Embedding ->
nn.RNN / nn.GRU / nn.LSTM -> Linear, cross-entropy, stateful truncated BPTT over B streams, an
eval every EVAL_EVERY steps) watched by rnnscope.torch.Panel, with the usual mistakes made on
purpose: no clipping with a high SGD lr and a large recurrent init, an lr too large or too small
for Adam or SGD, a closed forget gate, a large init.

    python benchmarks/calibration/torch_loops.py NAME RUN_DIR   # one loop (calibrate.py runs it)

A loop is a dict of LOOP's keys; calibrate.py keeps its records as records/<name>.json(l) like
the engine's runs, and judges them the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rnnscope.torch import Panel  # noqa: E402

DATA = (Path(__file__).resolve().parents[3] / "shared" / "data").resolve()
MODULES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
OPTIMIZERS = {"adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
              "sgd": lambda p, lr: torch.optim.SGD(p, lr=lr),
              "momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
              "rmsprop": lambda p, lr: torch.optim.RMSprop(p, lr=lr),
              "adagrad": lambda p, lr: torch.optim.Adagrad(p, lr=lr)}
LOOP = {"module": "rnn", "optimizer": "adam", "lr": 2e-3, "clip": 5.0, "steps": 300,
        "whh_scale": 1.0, "wih_scale": 1.0, "forget_bias": None, "hidden": 64, "batch": 16,
        "seq": 32, "chars": 400_000}
EMB, LOG_EVERY, EVAL_EVERY = 32, 10, 50


def loop(**changes) -> dict:
    unknown = set(changes) - set(LOOP)
    assert not unknown, unknown
    return {**LOOP, **changes}


def streams(ids: torch.Tensor, B: int) -> torch.Tensor:
    L = len(ids) // B
    return ids[:L * B].view(B, L).t().contiguous()


def set_init(rnn: nn.Module, spec: dict) -> None:
    """Scale PyTorch's default init; set the forget gate's block of both biases (an LSTM's
    gates are i, f, g, o: rows H:2H)."""
    H = spec["hidden"]
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("weight_hh"):
                p.mul_(spec["whh_scale"])
            if name.startswith("weight_ih"):
                p.mul_(spec["wih_scale"])
            if spec["forget_bias"] is not None and name.startswith("bias_"):
                p[H:2 * H] = spec["forget_bias"] / 2  # bias_ih + bias_hh = forget_bias


def evaluate(emb, rnn, head, data: torch.Tensor, T: int) -> float:
    rnn.eval()
    total, count, h = 0.0, 0, None
    with torch.no_grad():
        for i in range(0, data.shape[0] - 1 - T, T):
            out, h = rnn(emb(data[i:i + T]), h)
            y = data[i + 1:i + T + 1]
            total += nn.functional.cross_entropy(head(out).reshape(-1, head.out_features),
                                                 y.reshape(-1), reduction="sum").item()
            count += y.numel()
    rnn.train()
    return total / count


def train(spec: dict, run_dir: Path) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    text = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")[:spec["chars"]]
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])
    cut = int(0.9 * len(ids))
    data, held_out = streams(ids[:cut], spec["batch"]), streams(ids[cut:], 4)
    emb = nn.Embedding(len(chars), EMB)
    rnn = MODULES[spec["module"]](EMB, spec["hidden"])
    head = nn.Linear(spec["hidden"], len(chars))
    set_init(rnn, spec)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = OPTIMIZERS[spec["optimizer"]](params, spec["lr"])
    panel = Panel(rnn, run_dir, log_every=LOG_EVERY, quiet=True, vocab_size=len(chars),
                  report=False)
    T, pos, h = spec["seq"], 0, None
    for step in range(1, spec["steps"] + 1):
        if pos + T + 1 > data.shape[0]:
            pos, h = 0, None
        x, y = data[pos:pos + T], data[pos + 1:pos + T + 1]
        pos += T
        out, h = rnn(emb(x), h)
        h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
        loss = nn.functional.cross_entropy(head(out).reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        if spec["clip"]:
            nn.utils.clip_grad_norm_(params, spec["clip"])
        panel.step(loss, opt)
        if step % EVAL_EVERY == 0:
            panel.eval(evaluate(emb, rnn, head, held_out, T))
    panel.close()


def command(name: str) -> str:
    return f"python benchmarks/calibration/torch_loops.py {name} RUN_DIR"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from calibrate import TORCH  # noqa: E402  (the loops and their expected findings)

    name, where = sys.argv[1], Path(sys.argv[2])
    train(TORCH[name][1], where)
    print(json.dumps(json.loads((where / "config.json").read_text())["config"]))
