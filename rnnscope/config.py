"""Every training setting in one dataclass; it is written to config.json as is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import cells
from .errors import RnnscopeError

CELLS = tuple(cells.CELLS)
OPTIMIZERS = ("adam", "sgd", "momentum", "adagrad", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "plateau")
CLIPS = ("norm", "elementwise", "none")
INITS = ("orthogonal", "normal", "identity")
DTYPES = ("float32", "float64")


@dataclass
class TrainConfig:
    corpus: str = "stdlib"
    data_dir: str | None = None
    cell: str = "rnn"
    hidden: int = 256
    layers: int = 1
    seq_len: int = 64
    batch: int = 32
    steps: int | None = None  # None with minutes=None means DEFAULT_STEPS
    minutes: float | None = None
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_schedule: str = "constant"
    clip: str = "norm"
    clip_value: float = 5.0
    recurrent_init: str = "orthogonal"
    recurrent_scale: float = 1.0
    input_scale: float = 1.0
    weight_decay: float = 0.0
    dropout: float = 0.0
    eval_frac: float = 0.05
    eval_every: int = 250
    log_every: int = 50
    sat_threshold: float = 0.95
    seed: int = 0
    dtype: str = "float32"
    panel: bool = True   # record the full instrument panel (--no-panel: NLL and gradient norm)
    report: bool = True  # write report.html at the end (--no-report: faster sweeps and tests)

    def validate(self) -> TrainConfig:
        """Raise RnnscopeError naming the first bad setting and its fix; return self."""
        choices = {"cell": CELLS, "optimizer": OPTIMIZERS, "lr_schedule": SCHEDULES,
                   "clip": CLIPS, "recurrent_init": INITS, "dtype": DTYPES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise RnnscopeError(f"--{flag(name)} {getattr(self, name)!r} is not known; "
                                    f"use one of: {', '.join(allowed)}")
        positive = ("hidden", "layers", "seq_len", "batch", "lr", "eval_every", "log_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise RnnscopeError(f"--{flag(name)} must be positive, got {getattr(self, name)}")
        for name in ("steps", "minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise RnnscopeError(f"--{flag(name)} must be positive, got {value}")
        if self.steps is not None and self.minutes is not None:
            raise RnnscopeError("give --steps or --minutes, not both")
        for name in ("clip_value", "recurrent_scale", "input_scale"):
            if getattr(self, name) <= 0:
                raise RnnscopeError(f"--{flag(name)} must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise RnnscopeError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.dropout < 1:
            raise RnnscopeError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.eval_frac < 0.5:
            raise RnnscopeError(f"--eval-frac must be in (0, 0.5), got {self.eval_frac}")
        if not 0 < self.sat_threshold < 1:
            raise RnnscopeError(f"--sat-threshold must be in (0, 1), got {self.sat_threshold}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def flag(field_name: str) -> str:
    """The command-line flag of a config field: seq_len -> seq-len."""
    return field_name.replace("_", "-")
