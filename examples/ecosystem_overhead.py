"""What writing the panel into TensorBoard, W&B (offline) and a notebook costs per record
(docs/ecosystem.md): the records of a real 2-layer LSTM run written again and again.

    python examples/ecosystem_overhead.py [RUN]     # default: trains a small run in a temp dir
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from rnnscope import view
from rnnscope.config import TrainConfig
from rnnscope.display import PlainDisplay
from rnnscope.records import read_run
from rnnscope.sinks.tags import scalars
from rnnscope.sinks.tensorboard import TensorBoard, Writer
from rnnscope.train import train

REPEAT = 20  # passes over the run's records


def timed(write, records) -> float:
    """Seconds per record of write(rec) over REPEAT passes (steps kept increasing)."""
    last = records[-1]["step"]
    t0 = time.perf_counter()
    for i in range(REPEAT):
        for rec in records:
            write({**rec, "step": rec["step"] + i * last})
    return (time.perf_counter() - t0) / (REPEAT * len(records))


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    if len(sys.argv) > 1:
        run = Path(sys.argv[1])
    else:
        corpus = tmp / "text.txt"
        corpus.write_text(Path(__file__).read_text() * 40)
        cfg = TrainConfig(corpus=str(corpus), cell="lstm", hidden=64, layers=2, seq_len=32,
                          batch=8, steps=200, log_every=10, eval_every=100, report=False)
        run = train(cfg, tmp / "run", PlainDisplay(open(os.devnull, "w")))
    records = read_run(run)[1]
    tags = len(scalars(max(records, key=len)))
    print(f"{len(records)} records of {run}, up to {tags} scalars each; training took "
          f"{records[-1]['elapsed_s'] / len(records) * 1e3:.0f} ms per record")

    sink = TensorBoard(Writer(tmp / "tb"))
    per = timed(lambda rec: sink.write(rec, []), records)
    sink.writer.close()
    size = sum(f.stat().st_size for f in (tmp / "tb").iterdir())
    print(f"TensorBoard: {per * 1e3:.2f} ms per record, "
          f"{size / (REPEAT * len(records)) / 1024:.1f} KiB per record")

    os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(tmp), WANDB_SILENT="true",
                      WANDB_CONSOLE="off")
    import wandb

    from rnnscope.sinks.wandb import WandB

    t0 = time.perf_counter()
    wb = wandb.init(project="overhead")
    start = time.perf_counter() - t0
    sink = WandB(wb)
    per = timed(lambda rec: sink.write(rec, []), records)
    t0 = time.perf_counter()
    wb.finish()
    print(f"W&B offline: {per * 1e3:.2f} ms per record (wandb.init {start:.1f} s, finish "
          f"{time.perf_counter() - t0:.1f} s, once per run)")

    shown = view(run)
    for name, call in (("_repr_html_", shown._repr_html_), ("plot('sat_ratio')",
                       lambda: shown.plot("sat_ratio")), ("frame()", shown.frame)):
        t0 = time.perf_counter()
        call()
        print(f"notebook {name}: {time.perf_counter() - t0:.2f} s")
    lightning(tmp)


def lightning(tmp: Path, steps: int = 200, rounds: int = 2) -> None:
    """Seconds per training step of a small LSTM in a Lightning Trainer, without and with
    PanelCallback (log_every=50), interleaved."""
    import lightning.pytorch as pl
    import torch

    from rnnscope.lightning import PanelCallback

    V, H = 64, 128

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn = torch.nn.Embedding(V, 32), torch.nn.LSTM(32, H, 2)
            self.head = torch.nn.Linear(H, V)

        def training_step(self, batch, i):
            x, y = batch
            out, _ = self.rnn(self.emb(x))
            return torch.nn.functional.cross_entropy(self.head(out).reshape(-1, V),
                                                     y.reshape(-1))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=2e-3)

    g = torch.Generator().manual_seed(0)
    data = [(torch.randint(V, (32, 16), generator=g), torch.randint(V, (32, 16), generator=g))
            for _ in range(steps)]
    times: dict[str, list] = {"without": [], "with PanelCallback": []}
    for r in range(rounds):
        for name in times:
            cbs = [PanelCallback("rnn", tmp / f"pl{r}", 50, quiet=True, report=False)] \
                if name != "without" else []
            trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False,
                                 enable_model_summary=False, callbacks=cbs)
            t0 = time.perf_counter()
            trainer.fit(Net(), torch.utils.data.DataLoader(data, batch_size=None))
            times[name].append((time.perf_counter() - t0) / steps)
    for name, ts in times.items():
        print(f"Lightning {name}: {min(ts) * 1e3:.1f} ms per step (best of {rounds})")


if __name__ == "__main__":
    main()
