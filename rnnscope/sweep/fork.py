"""A grid point that starts from another run's checkpoint (Point.start), as `rnnscope try`'s
forks of training settings do:

    start = {"run": "/abs/RUN",            the run whose checkpoint.npz the fork copies
             "meta": {"elapsed_s": 0.0, ...}}  checkpoint meta the copy changes (train.py's
                                            checkpoint_meta: step, chunk, horizon, best_eval...)

The fork is a new run directory holding config.json (the point's settings, the source run's
corpus and vocabulary) and a copy of the source's checkpoint (its parameters, optimizer state
and carried state) with the meta changed, and no records: resuming it trains the fork from
there with its own settings. The source run's files are only read.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .. import runs
from ..config import TrainConfig
from ..errors import RnnscopeError


def seed_fork(start: dict, cfg: TrainConfig, path: Path) -> None:
    """Make path the fork's run directory (see the module docstring). It is written in a
    temporary directory beside path and renamed into place: a fork is there whole or not at
    all. path must be absent or empty."""
    source = Path(start["run"])
    doc = runs.read_config(source)
    params, opt, state, meta = runs.load_checkpoint(source / runs.CHECKPOINT)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".fork", dir=path.parent))
    try:
        runs.write_text(tmp / runs.CONFIG, json.dumps({**doc, "config": cfg.to_dict()},
                                                      indent=2, ensure_ascii=False) + "\n")
        runs.save_checkpoint(tmp / runs.CHECKPOINT, params, opt, state,
                             {**meta, **start.get("meta", {})})
        if path.exists():
            if any(path.iterdir()):
                raise RnnscopeError(f"{path} is not empty; move it away to fork {source} there")
            path.rmdir()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
