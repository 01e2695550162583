"""rnnscope: character-level RNNs with hand-written BPTT and an instrument panel.

    from rnnscope import Model, TrainConfig, load_run
    from rnnscope.train import train        # train(TrainConfig(...), run_dir) -> Path

(`train` stays in its module: re-exporting it here would hide the module rnnscope.train.)
"""

__version__ = "0.1.0"

from .config import TrainConfig  # noqa: E402
from .errors import RnnscopeError  # noqa: E402
from .model import LossAndGrads, Model  # noqa: E402
from .runs import load_run  # noqa: E402

__all__ = ["Model", "LossAndGrads", "TrainConfig", "RnnscopeError", "load_run", "__version__"]
