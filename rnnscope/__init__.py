"""rnnscope: character-level RNNs with hand-written BPTT and an instrument panel.

    from rnnscope import Model, TrainConfig, load_run
    from rnnscope.train import train        # train(TrainConfig(...), run_dir) -> Path

(`train` stays in its module: re-exporting it here would hide the module rnnscope.train.)
"""

from .config import TrainConfig
from .errors import RnnscopeError
from .model import LossAndGrads, Model
from .runs import load_run
from .version import __version__

__all__ = ["Model", "LossAndGrads", "TrainConfig", "RnnscopeError", "load_run", "__version__"]
