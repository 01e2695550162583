"""rnnscope's panel in a PyTorch Lightning Trainer (`pip install "rnnscope[lightning]"`), without
touching the training step:

    from rnnscope.lightning import PanelCallback
    trainer = L.Trainer(callbacks=[PanelCallback(attr="rnn", run_dir="runs/mine")])

The callback is rnnscope.torch.Panel driven by the Trainer's hooks: the loss it is about to
backpropagate (on_before_backward; summed over the micro-batches of a gradient accumulation,
which Lightning scales by 1/k, so it is their mean), the measurements before the update
(on_before_optimizer_step: the engine's pass on the captured batch, the weights before the
step), the record after it (on_train_batch_end), the logged validation loss as eval_nll after
each validation (not the sanity check), and triage.json and report.html when fitting ends.
Clipping by the Trainer (gradient_clip_val) happens after on_before_optimizer_step and is seen
in clip_rate all the same (Panel.after_step reads .grad after the update).

This module imports lightning (absolute imports) and torch; nothing else in rnnscope does.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .errors import RnnscopeWarning
from .sinks import need

need("lightning", "lightning", "rnnscope.lightning")
import lightning.pytorch as pl  # noqa: E402  (after the one-line refusal above)

from .torch import Panel  # noqa: E402


class PanelCallback(pl.Callback):
    """Watch pl_module.<attr> (an nn.RNN, nn.GRU or nn.LSTM; a dotted path such as
    "encoder.rnn" too) with rnnscope.torch.Panel(rnn, run_dir, log_every, **panel_kw);
    eval_key: the metric your validation_step logs (self.log(eval_key, loss)), in nats per
    character, recorded as eval_nll."""

    def __init__(self, attr: str = "rnn", run_dir: str | Path = "runs/lightning",
                 log_every: int = 50, eval_key: str = "val_loss", **panel_kw) -> None:
        self.attr, self.run_dir, self.log_every = attr, run_dir, log_every
        self.eval_key, self.panel_kw = eval_key, panel_kw
        self.panel: Panel | None = None
        self.loss = 0.0
        self.optimizer = None  # the one stepped in this batch, until its record is written
        self.warned = False

    def on_fit_start(self, trainer, pl_module) -> None:
        rnn = pl_module
        for name in self.attr.split("."):
            rnn = getattr(rnn, name)
        self.panel = Panel(rnn, self.run_dir, self.log_every, **self.panel_kw)

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.loss = self.loss + loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.panel.before_step(self.loss, optimizer)
        self.optimizer, self.loss = optimizer, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.optimizer is not None:  # an optimizer step was taken in this batch
            self.panel.after_step(self.optimizer)
            self.optimizer = None

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.panel is None:
            return
        value = trainer.callback_metrics.get(self.eval_key)
        if value is None and not self.warned:
            self.warned = True
            warnings.warn(f"rnnscope.lightning: no {self.eval_key!r} among the logged metrics "
                          f"({', '.join(trainer.callback_metrics) or 'none'}); log the "
                          f"validation NLL with self.log({self.eval_key!r}, loss) or pass "
                          "PanelCallback(eval_key=...)", RnnscopeWarning, stacklevel=2)
        if value is not None:
            self.panel.eval(float(value))

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.panel is not None and self.panel.hooks:
            self.panel.close()
