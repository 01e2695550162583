"""rnnscope.lightning.PanelCallback in a real Lightning Trainer on the CPU: its records equal
those rnnscope.torch.Panel writes in a hand-written loop over the same batches (the validation
loss as eval_nll), and the Trainer's own gradient clipping shows in clip_rate."""

import math

import pytest
from conftest import english_text

from rnnscope import runs

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")
from rnnscope.lightning import PanelCallback  # noqa: E402
from rnnscope.torch import Panel  # noqa: E402

F = torch.nn.functional
V, H, T, B, LR = 32, 12, 10, 4, 0.05
TEXT = english_text(3_000)
ALPHABET = sorted(set(TEXT))


def batches(start: int, n: int) -> list[tuple]:
    """n batches of (x, y) ids, (B, T) each, from the text at start."""
    ids = torch.tensor([ALPHABET.index(c) for c in TEXT])
    out = []
    for i in range(n):
        at = start + i * B * (T + 1)
        chunk = ids[at:at + B * (T + 1)].view(B, T + 1)
        out.append((chunk[:, :-1], chunk[:, 1:]))
    return out


class CharLSTM(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(V, 8, dtype=torch.float64)
        self.rnn = torch.nn.LSTM(8, H, 2, batch_first=True, dtype=torch.float64)
        self.head = torch.nn.Linear(H, V, dtype=torch.float64)

    def nll(self, batch):
        x, y = batch
        out, _ = self.rnn(self.emb(x))
        return F.cross_entropy(self.head(out).reshape(-1, V), y.reshape(-1))

    def training_step(self, batch, batch_idx):
        return self.nll(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.nll(batch), batch_size=B)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=LR)


def lightning_run(path, train, val, epochs, clip=None):
    model = CharLSTM()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, gradient_clip_val=clip,
                         callbacks=[PanelCallback(attr="rnn", run_dir=path, log_every=3,
                                                  quiet=True, report=False, vocab_size=V)])
    loader = torch.utils.data.DataLoader  # batch_size=None: each of our batches as it is
    trainer.fit(model, train_dataloaders=loader(train, batch_size=None),
                val_dataloaders=loader(val, batch_size=None))
    return runs.read_metrics(path)


def hand_loop(path, train, val, epochs, clip=None):
    model = CharLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    panel = Panel(model.rnn, path, 3, quiet=True, report=False, vocab_size=V)
    for _ in range(epochs):
        for batch in train:
            loss = model.nll(batch)
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            panel.step(loss, opt)
        with torch.no_grad():
            model.eval()
            panel.eval(sum(float(model.nll(b)) for b in val) / len(val))
            model.train()
    panel.close()
    return runs.read_metrics(path)


def same_records(ours: list[dict], theirs: list[dict]) -> None:
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in a.keys() - {"elapsed_s", "eval_nll"}:
            assert a[key] == b[key], (a["step"], key)
        if "eval_nll" in a:
            assert math.isclose(a["eval_nll"], b["eval_nll"], rel_tol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("clip", [None, 0.3])
def test_callback_records_equal_a_hand_written_loop(tmp_path, clip):
    train, val = batches(0, 7), batches(7 * B * (T + 1), 2)
    ours = lightning_run(tmp_path / "lightning", train, val, 2, clip)
    theirs = hand_loop(tmp_path / "loop", train, val, 2, clip)
    assert [r["step"] for r in ours if "eval_nll" in r] == [7, 14]
    assert any("layer1.gate.f.mean" in r for r in ours)  # the records hold the whole panel
    assert any(r.get("torch_grad_rel_diff", 1) < 1e-9 for r in ours)  # its backward checked
    if clip:
        assert any(r["clip_rate"] > 0 for r in ours if "clip_rate" in r)
    same_records(ours, theirs)
    assert (tmp_path / "lightning" / runs.TRIAGE).exists()
