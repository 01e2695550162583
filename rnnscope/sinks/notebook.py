"""A run in a Jupyter notebook: `rnnscope.load_run(path)` (a trained rnnscope run, with its
model) and `view(path)` (any run: rnnscope.torch.Panel's, a C program's, a log) show
themselves:

    run = rnnscope.load_run("runs/mine")
    run                      # verdict, findings, the loss and saturation figures (the report's)
    run.plot("sat_ratio")    # a matplotlib Figure of one reading (its layers dashed), or of one
                             # of the report's figures by id ("bptt-profile", "grad-norm", ...)
    run.frame()              # the records as a pandas DataFrame, indexed by step

Everything is read from the run directory when asked for, so a run still training shows its
records so far. matplotlib (a dependency of rnnscope) is loaded at the first figure; pandas
only by frame() (`pip install "rnnscope[notebook]"`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from pathlib import Path

from .. import runs
from ..errors import RnnscopeError
from ..records import read_run
from ..triage import read_triage
from . import need

INLINE = ("nll-steps", "saturation")        # the report's figures a run shows inline
LAYER = re.compile(r"^layer(\d+)\.")
STYLE = ("<style>.rnnscope .badge{padding:.1em .5em;border-radius:3px;background:#dde8f5;"
         "font-weight:600}.rnnscope .badge.warning{background:#fde8b8}.rnnscope .badge.critical"
         "{background:#f7c6c4}.rnnscope figure svg{max-width:900px;height:auto}</style>")


class Shown:
    """What a run shows in a notebook; the class using it holds the run's `path`."""

    path: Path

    def _repr_html_(self) -> str:
        from ..plots import svg
        from ..report import FIGURES, figures_html, findings_html

        data = self._data()
        figures = [f for f in FIGURES if f[0] in INLINE]
        svgs = {fid: svg(fid, draw, [data]) for fid, _, _, draw in figures}
        head = f"{escape(data.label)}: {len(data.records)} records"
        return (f'{STYLE}<div class="rnnscope"><h3>{head}</h3>'
                f"{findings_html(read_triage(self.path))}"
                f"{figures_html(svgs, figures)}</div>")

    def plot(self, key: str = "sat_ratio"):
        """A matplotlib Figure: reading `key` against steps (its per-layer values dashed), or
        the report's figure of that id."""
        import matplotlib

        from ..plots import FIGURES, STYLE, XLABEL, new_figure, plot_each, run_handles

        data = self._data()
        drawn = {fid: draw for fid, _, _, draw in FIGURES}
        with matplotlib.rc_context(STYLE):
            if key in drawn:
                return drawn[key]([data])
            keys = recorded(data.records)
            if key not in keys:
                names = sorted(k for k in keys - {"step"} if "." not in k)
                raise RnnscopeError(f"{self.path} has no reading {key!r}; plot one of "
                                    f"{', '.join(names)} "
                                    f"or a figure: {', '.join(drawn)}")
            fig, ((ax,),) = new_figure()
            plot_each(ax, [data], key, lw=1.6)
            for layer_key in sorted(k for k in keys if LAYER.sub("", k) == key and k != key):
                plot_each(ax, [data], layer_key, ls="--", lw=1, alpha=0.7)
            ax.set(xlabel=XLABEL["step"], ylabel=key, title=data.label)
            ax.legend(handles=run_handles([data]))
            return fig

    def frame(self):
        """The records as a pandas DataFrame indexed by step (one column per key; NaN where a
        record lacks it, or held NaN/inf)."""
        pd = need("pandas", "notebook", "Run.frame()")
        return pd.DataFrame.from_records(read_run(self.path)[1]).set_index("step")

    def _data(self):
        from ..report import load_runs

        return load_runs([self.path])[0]


def recorded(records: list[dict]) -> set[str]:
    return {k for r in records for k, v in r.items() if isinstance(v, (int, float, type(None)))
            and not isinstance(v, bool)}


@dataclass
class Run(runs.Run, Shown):
    """A trained rnnscope run (runs.Run: config, vocab, model) that shows itself."""


@dataclass
class View(Shown):
    """Any run (a directory, a metrics.jsonl or a .csv) that shows itself."""
    path: Path


def load_run(path: str | Path, which: str = runs.CHECKPOINT) -> Run:
    """A trained run: its config, vocabulary and the model with the saved parameters."""
    r = runs.load_run(path, which)
    return Run(r.path, r.config, r.vocab, r.model, r.meta)


def view(path: str | Path) -> View:
    """Any run's records, to show in a notebook (checked to be readable now)."""
    read_run(Path(path))
    return View(Path(path))
