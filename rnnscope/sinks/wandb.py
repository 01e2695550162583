"""Weights & Biases (`pip install "rnnscope[wandb]"`): every panel reading logged to a W&B run
with `run.log({tag: value, ...}, step=record's step)`, under the same tags as TensorBoard's
(tags.py: W&B draws one section per group), and each triage finding as text
(`triage/{id}`) at the step it first held; the run's summary holds the findings so far.

`WandB(run)` logs into your run (rnnscope.torch.Panel(wandb_run=run)) and leaves it open;
`WandB.new(project)` starts a run when rnnscope starts (`rnnscope train --wandb`), named after
the run directory, with rnnscope's config, and finishes it at the end. W&B's steps only go
forward: log your own metrics with the same optimizer step (or without a step) so that both
land in one history.
"""

from __future__ import annotations

from pathlib import Path

from ..records import locate, read_doc, run_name
from . import need
from .tags import scalars

EXTRA = "wandb"


class WandB:
    """The sink (rnnscope.sinks.Sink) into a W&B run."""

    def __init__(self, run=None, project: str | None = None) -> None:
        self.run, self.project, self.own = run, project, run is None
        self.findings: list[str] = []

    @classmethod
    def new(cls, project: str | None = None) -> WandB:
        """A sink that starts its own run (wandb.init) when the rnnscope run starts."""
        need("wandb", EXTRA, "--wandb")  # refused before training
        return cls(project=project)

    def start(self, path: Path, step: int) -> None:
        if self.own:
            wandb = need("wandb", EXTRA, "--wandb")
            config = locate(path)[1]
            self.run = wandb.init(project=self.project or "rnnscope", name=run_name(path),
                                  config=read_doc(config)["config"] if config else {})

    def write(self, rec: dict, findings: list[dict]) -> None:
        data: dict = scalars(rec)
        for f in findings:
            data[f"triage/{f['id']}"] = f"{f['severity']}: {f['evidence']['seen']}"
            self.findings.append(f["id"])
        if data:
            self.run.log(data, step=rec["step"])
        if findings:
            self.run.summary["triage/findings"] = ", ".join(self.findings)

    def close(self) -> None:
        if self.own and self.run is not None:
            self.run.finish()

