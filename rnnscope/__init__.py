"""rnnscope: character-level RNNs with hand-written BPTT and an instrument panel.

    from rnnscope import Model, TrainConfig, load_run, view
    from rnnscope.train import train        # train(TrainConfig(...), run_dir) -> Path

load_run(path) is a trained run with its model; it and view(path) (any run's records) show
themselves in a notebook (rnnscope/sinks/notebook.py).

(`train` stays in its module: re-exporting it here would hide the module rnnscope.train.)
"""

from .config import TrainConfig
from .errors import RnnscopeError
from .model import LossAndGrads, Model
from .sinks.notebook import load_run, view
from .version import __version__

__all__ = ["Model", "LossAndGrads", "TrainConfig", "RnnscopeError", "load_run", "view",
           "__version__"]
