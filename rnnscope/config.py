"""Every training setting in one dataclass; it is written to config.json as is."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from . import cells
from .errors import RnnscopeError
from .optim import CLIPS, OPTIMIZERS, SCHEDULES

CELLS = tuple(cells.CELLS)
INITS = ("orthogonal", "normal", "identity")
DTYPES = ("float32", "float64")
READOUT_INITS = ("zero", "prior")
DEFAULT_STEPS = 9_000  # about two minutes on a 2-core machine at the default size
RESUMABLE = ("steps", "minutes", "corpus", "data_dir")  # what a resume may change (see resumed)


@dataclass
class TrainConfig:
    corpus: str = "stdlib"
    data_dir: str | None = None
    cell: str = "rnn"
    hidden: int = 256
    layers: int = 1
    seq_len: int = 64
    batch: int = 32
    steps: int | None = None  # None with minutes=None means DEFAULT_STEPS (see with_length)
    minutes: float | None = None
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_schedule: str = "constant"
    clip: str = "norm"
    clip_value: float = 5.0
    recurrent_init: str = "orthogonal"
    recurrent_scale: float = 1.0
    input_scale: float = 1.0
    forget_bias: float = 1.0  # the LSTM's forget-gate bias at init
    chrono_init: bool = False  # gated cells: chrono gate biases with T_max = seq_len
    weight_decay: float = 0.0
    dropout: float = 0.0
    embed: int = 0  # E > 0: layer 0 reads a learned V x E embedding (SPEC 1); 0: one-hot
    warmup: int = 0  # steps of linear learning-rate warm-up
    readout_init: str = "zero"  # "prior": the readout bias at the log unigram frequencies
    reset_every: int | None = None  # zero each stream's carried state every K chunks (staggered)
    eval_frac: float = 0.05
    eval_every: int = 250
    log_every: int = 50
    checkpoint_every: int | None = None  # also checkpoint every K steps (always at each eval)
    sat_threshold: float = 0.95
    seed: int = 0
    dtype: str = "float32"
    panel: bool = True   # record the full instrument panel (--no-panel: NLL and gradient norm)
    report: bool = True  # write report.html at the end (--no-report: faster sweeps and tests)

    def validate(self) -> TrainConfig:
        """Raise RnnscopeError naming the first bad setting and its fix; return self."""
        choices = {"cell": CELLS, "optimizer": OPTIMIZERS, "lr_schedule": SCHEDULES,
                   "clip": CLIPS, "recurrent_init": INITS, "dtype": DTYPES,
                   "readout_init": READOUT_INITS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise RnnscopeError(f"--{flag(name)} {getattr(self, name)!r} is not known; "
                                    f"use one of: {', '.join(allowed)}")
        positive = ("hidden", "layers", "seq_len", "batch", "lr", "eval_every", "log_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise RnnscopeError(f"--{flag(name)} must be positive, got {getattr(self, name)}")
        for name in ("steps", "minutes", "checkpoint_every", "reset_every"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise RnnscopeError(f"--{flag(name)} must be positive, got {value}")
        if self.steps is not None and self.minutes is not None:
            raise RnnscopeError("give --steps or --minutes, not both")
        for name in ("clip_value", "recurrent_scale", "input_scale"):
            if getattr(self, name) <= 0:
                raise RnnscopeError(f"--{flag(name)} must be positive, got {getattr(self, name)}")
        for name, unused in (("forget_bias", 1.0), ("chrono_init", False)):
            takes = [c for c, m in cells.CELLS.items() if name in m.INIT_FLAGS]
            if getattr(self, name) != unused and self.cell not in takes:
                raise RnnscopeError(f"--{flag(name)} is a gate initialisation that --cell "
                                    f"{self.cell} does not have: drop it or use --cell "
                                    f"{' or --cell '.join(takes)}")
        for name in ("embed", "warmup"):
            if getattr(self, name) < 0:
                raise RnnscopeError(f"--{flag(name)} must be >= 0 (0: off), got "
                                    f"{getattr(self, name)}")
        if self.weight_decay < 0:
            raise RnnscopeError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.dropout < 1:
            raise RnnscopeError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.eval_frac < 0.5:
            raise RnnscopeError(f"--eval-frac must be in (0, 0.5), got {self.eval_frac}")
        if not 0 < self.sat_threshold < 1:
            raise RnnscopeError(f"--sat-threshold must be in (0, 1), got {self.sat_threshold}")
        return self

    def with_length(self) -> TrainConfig:
        """A copy whose length is explicit: --steps DEFAULT_STEPS when neither --steps nor
        --minutes is given, so that a run resumed by a later version keeps its length."""
        if self.steps is None and self.minutes is None:
            return dataclasses.replace(self, steps=DEFAULT_STEPS)
        return dataclasses.replace(self)

    def resumed(self, changes: dict) -> TrainConfig:
        """This run's settings with the changes a resume may make, validated: --steps or
        --minutes raised, --corpus or --data-dir pointed elsewhere (the caller checks that it is
        the same text). A flag equal to the run's own setting changes nothing and is accepted;
        any other change is refused, naming the flag."""
        cfg = dataclasses.replace(self)
        for name, value in changes.items():
            if value == getattr(self, name):
                continue
            if name not in RESUMABLE:
                raise RnnscopeError(f"{shown(name, value)} differs from the run's setting "
                                    f"({getattr(self, name)!r}): a resumed run keeps every "
                                    "setting of its config.json; start a new run to change it")
            setattr(cfg, name, value)
        for name, other in (("steps", "minutes"), ("minutes", "steps")):
            old, new = getattr(self, name), getattr(cfg, name)
            if new == old:
                continue
            if old is None:
                raise RnnscopeError(f"the run's length is set by --{other}; raise --{other} "
                                    f"to continue it, not --{name}")
            if new is None or new < old:
                raise RnnscopeError(f"--{name} {new} is less than the run's {old}: a resumed "
                                    f"run can only be made longer; give --{name} above {old}")
        return cfg.validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The config of a config.json's "config" object: keys of other versions are left out;
        a value not of its field's type is a TypeError naming it."""
        if not isinstance(d, dict):
            raise TypeError(f"config is {type(d).__name__}, not an object")
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        for k, v in d.items():
            if k in kinds and not of_type(v, kinds[k]):
                raise TypeError(f"{k} is {v!r}, not {kinds[k]}")
        return cls(**{k: v for k, v in d.items() if k in kinds})


def of_type(value, kind: str) -> bool:
    """Whether a JSON value has a field's type ("int", "float | None", ...): an int is no bool,
    a float is finite (an int will do)."""
    names = [k.strip() for k in kind.split("|")]
    if value is None:
        return "None" in names
    if isinstance(value, bool):
        return "bool" in names
    if isinstance(value, int):
        return "int" in names or "float" in names
    if isinstance(value, float):
        return "float" in names and math.isfinite(value)
    return isinstance(value, str) and "str" in names


def flag(field_name: str) -> str:
    """The command-line flag of a config field: seq_len -> seq-len."""
    return field_name.replace("_", "-")


def shown(field_name: str, value) -> str:
    """A setting as it is given on the command line: --lr 0.1, --no-panel."""
    if isinstance(value, bool):
        return f"--{flag(field_name)}" if value else f"--no-{flag(field_name)}"
    return f"--{flag(field_name)} {value}"
