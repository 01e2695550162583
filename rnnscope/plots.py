"""The report's figures: one function per figure, each drawing every run in the run's colour.

Figures are matplotlib `Figure` objects (no pyplot, no global state), written as SVG with text
drawn as paths, so the SVG needs no font and nothing outside the page. `svg_figures()` returns
one inline `<svg>` per entry of FIGURES, its ids prefixed with the figure's id so that several
SVGs can share one HTML page.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, FuncFormatter, LogFormatter, MultipleLocator

from .cells import CELLS
from .health import HEALTHY
from .records import vocab_size

MAX_POINTS = 500                        # a longer series is thinned to about this many points
PROFILES_PER_RUN = 4                    # bptt_profile curves drawn per run
PALETTE = [to_hex(c) for c in matplotlib.colormaps["tab10"].colors]
STYLE = {"svg.fonttype": "path", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
         "axes.spines.top": False, "axes.spines.right": False, "legend.fontsize": 8}
NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
NARROW, WIDE = 6.4, 9.6                 # figure widths (inches): half or all of the page
XLABEL = {"step": "optimizer step", "chars": "characters trained on",
          "elapsed_s": "wall-clock minutes of training"}


@dataclass
class RunData:
    """What the report knows about one run."""
    path: Path
    label: str                          # its name in legends: the run directory's name
    colour: str                         # its colour in every figure
    doc: dict                           # config.json
    records: list[dict]                 # metrics.jsonl


# ---- series and shared drawing helpers


def series(records: list[dict], key: str, x: str = "step", positive: bool = False,
           where=None) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) of the records holding finite numbers under `x` and `key` (`key` > 0 when
    `positive`, for log axes; and where(record) when given), thinned to about MAX_POINTS."""
    pts = [(r[x], r[key]) for r in records if is_number(r.get(key)) and is_number(r.get(x))
           and (r[key] > 0 or not positive) and (where is None or where(r))]
    kept = pts[::max(1, math.ceil(len(pts) / MAX_POINTS))]
    if pts and kept[-1] is not pts[-1]:
        kept.append(pts[-1])
    return np.array([p[0] for p in kept]), np.array([p[1] for p in kept], dtype=float)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plot_each(ax, runs: list[RunData], key: str, x: str = "step", positive: bool = False,
              **style) -> np.ndarray:
    """Draw `key` of every run in its colour; return all the y values drawn."""
    drawn = []
    for run in runs:
        xs, ys = series(run.records, key, x, positive)
        ax.plot(xs, ys, color=run.colour, **style)
        drawn.append(ys)
    return np.concatenate(drawn)


def fit_scale(ax, ys: np.ndarray, log: bool | None = None) -> None:
    """Log y axis when asked, or (log=None) when the values span more than a decade or so;
    a note instead of an empty frame when nothing was recorded."""
    if ys.size == 0:
        ax.text(0.5, 0.5, "no readings recorded", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
        ax.set_xticks([])
    elif log or (log is None and ys.min() > 0 and ys.max() / ys.min() > 30):
        log_scale(ax, "y")


def log_scale(ax, which: str, base: int = 10) -> None:
    """A log axis labelled in plain numbers (no mathtext, which is slow to set up), minor ticks
    labelled too when the range is short."""
    getattr(ax, f"set_{which}scale")("log", base=base)
    axis = getattr(ax, f"{which}axis")
    axis.set_major_formatter(LogFormatter(base, labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(base, labelOnlyBase=False, minor_thresholds=(1, 0.5)))


def mark_divergence(ax, runs: list[RunData], x: str) -> None:
    for run in runs:
        for r in run.records:
            if r.get("diverged") and x in r:
                ax.axvline(r[x], color=run.colour, ls=":", lw=1.5)
                ax.annotate(" diverged", (r[x], 0.95), xycoords=("data", "axes fraction"),
                            color=run.colour, fontsize=8, va="top")


def run_handles(runs: list[RunData]) -> list:
    return [Line2D([], [], color=run.colour, lw=2, label=literal(run.label)) for run in runs]


def literal(text: str) -> str:
    """Text that matplotlib draws as written: a run named a$b$ is not mathtext."""
    return text.replace("$", r"\$")


def style_handle(label: str, **style) -> Line2D:
    return Line2D([], [], color=style.pop("color", "0.35"), label=label, **style)


def shade(colour: str, f: float) -> tuple:
    """The colour mixed with white: f=1 is the colour itself, f=0 white."""
    return tuple(1 - f * (1 - c) for c in to_rgb(colour))


def new_figure(nrows: int = 1, ncols: int = 1, width: float = NARROW, height: float = 3.4,
               **kw) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def grid(n: int, panel_height: float = 2.5, **kw):
    """A figure with n panels in rows of up to three; the unused cells are hidden."""
    ncols = max(1, min(3, n))
    nrows = max(1, math.ceil(n / ncols))
    width = WIDE if ncols > 1 else NARROW
    fig, axes = new_figure(nrows, ncols, width, panel_height * nrows + 0.7, **kw)
    n = max(n, 1)  # an empty grid still has its one panel to say so
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


# ---- the figures


STATE_STYLES = {  # the state-dependence readings on the NLL figure (docs/panel.md)
    "eval_nll_fresh": ("eval window from a zero state", {"ls": ":", "marker": "x", "ms": 4}),
    "eval_nll_carried": ("eval window from the carried state",
                         {"ls": "none", "marker": "^", "ms": 3}),
}


def nll(runs: list[RunData], x: str) -> Figure:
    fig, ((ax,),) = new_figure()
    eval_style = {"ls": "--", "marker": "o", "ms": 3}
    ys = [plot_each(ax, runs, "train_nll", x, lw=1.5),
          plot_each(ax, runs, "eval_nll", x, **eval_style)]
    state = []
    for key, (text, style) in STATE_STYLES.items():
        ys.append(plot_each(ax, runs, key, x, **style))
        state += [style_handle(text, **style)] if ys[-1].size else []
    ys = np.concatenate(ys)
    fit_scale(ax, cut_off_blowup(ax, runs, ys))
    mark_divergence(ax, runs, x)
    if x == "chars":
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    if x == "elapsed_s":
        minute_ticks(ax)
    ax.set(xlabel=XLABEL[x], ylabel="NLL (nats/char)")
    ax.legend(handles=run_handles(runs) + [style_handle("train (mean since last record)"),
                                           style_handle("eval split", **eval_style)]
              + state + unigram_baselines(ax, runs) + floors(ax, runs))
    return fig


def minute_ticks(ax) -> None:
    """An axis of seconds labelled in whole minutes, about eight ticks."""
    minutes = ax.get_xlim()[1] / 60
    every = next((m for m in (1, 2, 5, 10, 15, 30, 60) if minutes / m <= 8), 120)
    ax.xaxis.set_major_locator(MultipleLocator(60 * every))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 60:g}"))


def cut_off_blowup(ax, runs: list[RunData], ys: np.ndarray) -> np.ndarray:
    """Keep the NLL axis readable when a run blows up: losses above twice the uniform model's
    (log V) leave the top of the plot, with a note; return the values still shown."""
    top = 2 * max(start_nll(run) for run in runs)
    shown = ys[ys <= top]
    if ys.size and ys.max() > top:
        ax.set_ylim(0.9 * shown.min() if shown.size else 0, top)
        ax.annotate(f"values above {top:.1f} cut off", (0.5, 0.98), xycoords="axes fraction",
                    ha="center", va="top", fontsize=8, color="0.3")
    return shown


def start_nll(run: RunData) -> float:
    """Where training starts: log V, or for a log without its vocabulary its first train NLL."""
    V = vocab_size(run.doc)
    first = [r["train_nll"] for r in run.records if is_number(r.get("train_nll"))]
    return math.log(V) if V else first[0] if first else math.inf


def unigram_baselines(ax, runs: list[RunData]) -> list:
    """The eval NLL of character frequencies, the score a model must beat; its legend entry."""
    drawn = False
    for run in runs:
        base = run.doc.get("corpus", {}).get("unigram_eval_nll")
        if is_number(base):
            ax.axhline(base, color=run.colour, ls="-.", lw=0.8)
            drawn = True
    return [style_handle("unigram baseline (eval)", ls="-.", lw=0.8)] if drawn else []


def floors(ax, runs: list[RunData]) -> list:
    """The floor of a synthetic corpus (its entropy rate, the best any model can reach) as a
    labelled line; its legend entry."""
    drawn = False
    for i, run in enumerate(runs):
        floor = run.doc.get("corpus", {}).get("floor_nll")
        if is_number(floor):
            ax.axhline(floor, color=run.colour, ls=(0, (1, 1)), lw=1.5, gid=f"floor-{i}")
            ax.annotate(f"floor {floor:.3f}", (1.0, floor), xycoords=("axes fraction", "data"),
                        ha="right", va="bottom", fontsize=8, color=run.colour)
            drawn = True
    return [style_handle("floor: the source's entropy rate", ls=(0, (1, 1)), lw=1.5)] \
        if drawn else []


def nll_steps(runs: list[RunData]) -> Figure:
    return nll(runs, "step")


def nll_chars(runs: list[RunData]) -> Figure:
    return nll(runs, "chars")


def nll_time(runs: list[RunData]) -> Figure:
    return nll(runs, "elapsed_s")


def saturation(runs: list[RunData]) -> Figure:
    fig, ((left, right),) = new_figure(ncols=2, width=WIDE)
    panels = ((left, "sat_ratio", "sat_ratio: fraction of |h| > --sat-threshold"),
              (right, "mean_abs_h", "mean_abs_h: mean |h|"))
    for ax, key, ylabel in panels:
        fit_scale(ax, plot_each(ax, runs, key), log=False)
        ax.set(xlabel=XLABEL["step"], ylabel=ylabel)
        ax.set_ylim(bottom=0)
    left.legend(handles=run_handles(runs))
    return fig


def dh(runs: list[RunData]) -> Figure:
    fig, ((ax,),) = new_figure()
    raw_style = {"ls": "--"}
    ys = np.concatenate([plot_each(ax, runs, "dh_norm", positive=True),
                         plot_each(ax, runs, "dh_raw_norm", positive=True, **raw_style)])
    fit_scale(ax, ys, log=True)
    ax.set(xlabel=XLABEL["step"], ylabel="L2 norm per position (summed-NLL gradient)")
    ax.legend(handles=run_handles(runs) + [style_handle("dh_norm: gradient reaching h"),
                                           style_handle("dh_raw_norm: after tanh'", **raw_style)])
    return fig


def grad_norm(runs: list[RunData]) -> Figure:
    fig, ((ax,),) = new_figure()
    fit_scale(ax, plot_each(ax, runs, "grad_norm", positive=True, lw=1.2), log=True)
    marker = {"marker": "v", "ms": 7, "mec": "black", "mew": 0.6, "ls": "none"}
    for i, run in enumerate(runs):
        xs, ys = series(run.records, "grad_norm", positive=True,
                        where=lambda r: (r.get("clip_rate") or 0) > 0)
        ax.plot(xs, ys, color=run.colour, gid=f"clip-events-{i}", **marker)
        if run.doc["config"].get("clip") == "norm":
            ax.axhline(run.doc["config"]["clip_value"], color=run.colour, ls=":", lw=1)
    mark_divergence(ax, runs, "step")
    ax.set(xlabel=XLABEL["step"], ylabel="global gradient L2 norm (before clipping)")
    ax.legend(handles=run_handles(runs) + [
        style_handle("clipping fired since the last record", **marker),
        style_handle("--clip-value (norm clipping)", ls=":")])
    return fig


def update_ratio(runs: list[RunData]) -> Figure:
    names = list(dict.fromkeys(k for run in runs for r in run.records for k in r
                               if k.startswith("update_ratio.")))
    fig, axes = grid(len(names), sharey=True)
    for ax, key in zip(axes, names or ["update_ratio"], strict=True):
        ax.axhspan(*HEALTHY["update_ratio"], color="tab:green", alpha=0.12, lw=0)
        ax.axhline(1e-3, color="0.4", ls="--", lw=0.8)
        fit_scale(ax, plot_each(ax, runs, key, positive=True), log=True)
        ax.set_title(key.removeprefix("update_ratio."))
    fig.supxlabel(XLABEL["step"], fontsize=9)
    fig.supylabel("update ratio ‖Δθ‖ / ‖θ‖ of one step", fontsize=9)
    low, high = HEALTHY["update_ratio"]
    band = Patch(color="tab:green", alpha=0.25, label=f"healthy range {low:g} to {high:g}")
    usual = style_handle("the usual 1e-3", ls="--", lw=0.8)
    fig.legend(handles=run_handles(runs) + [band, usual], loc="outside upper center",
               ncols=min(4, len(runs) + 2))
    return fig


def profile_records(records: list[dict]) -> list[dict]:
    """Up to PROFILES_PER_RUN records with a through-time profile, spread over training."""
    having = [r for r in records if positive_profile(r)]
    picks = np.linspace(0, len(having) - 1, min(PROFILES_PER_RUN, len(having))).round()
    return [having[int(i)] for i in dict.fromkeys(picks)]


def positive_profile(record: dict) -> list:
    """The [k, g_k] of a record that a log-log plot can show."""
    return [p for p in record.get("bptt_profile") or [] if is_number(p[1]) and p[1] > 0]


def bptt_profile(runs: list[RunData]) -> Figure:
    fig, axes = grid(len(runs), panel_height=3.0, sharey=True)
    for ax, run in zip(axes, runs, strict=True):
        picked = profile_records(run.records)
        drawn = []
        for f, r in zip(np.linspace(0.3, 1, len(picked)), picked, strict=True):
            ks, gs = np.array(positive_profile(r)).T
            ax.plot(ks, gs, color=shade(run.colour, f), marker="o", ms=3,
                    label=f"step {r['step']}")
            drawn.append(gs)
        ax.axhline(1.0, color="0.4", ls="--", lw=0.8)
        ys = np.concatenate(drawn) if drawn else np.array([])
        fit_scale(ax, ys, log=True)
        if ys.size:
            log_scale(ax, "x", base=2)
        ax.set_title(literal(run.label), color=run.colour)
        if picked:
            ax.legend(title="recorded at")
    fig.supxlabel("k: steps back through time", fontsize=9)
    fig.supylabel("gradient norm reaching h_(T-k) (unit at h_T)", fontsize=9)
    return fig


def whh_sigma(runs: list[RunData]) -> Figure:
    fig, ((ax,),) = new_figure()
    fit_scale(ax, plot_each(ax, runs, "whh_sigma_max"))
    ax.axhline(1.0, color="0.4", ls="--", lw=0.8)
    ax.set(xlabel=XLABEL["step"], ylabel="largest singular value of Whh (max over layers)")
    ax.legend(handles=run_handles(runs) + [style_handle("σ = 1", ls="--", lw=0.8)])
    return fig


GATE_COLOURS = {"i": "tab:blue", "f": "tab:orange", "o": "tab:green", "r": "tab:red",
                "z": "tab:purple"}


def recorded_gates(records: list[dict]) -> list[str]:
    """The sigmoid gates whose saturation a run recorded, in GATE_COLOURS' order."""
    keys = {k for r in records for k in r}
    return [g for g in GATE_COLOURS if f"gate.{g}.left" in keys]


def gate_saturation(runs: list[RunData]) -> Figure:
    """Per run, each gate's fraction of left- against right-saturated entries, one point per
    record, light to dark over training (Karpathy, Johnson and Fei-Fei 2015, who plot units)."""
    fig, axes = grid(len(runs), panel_height=3.0, sharex=True, sharey=True)
    for ax, run in zip(axes, runs, strict=True):
        gates = recorded_gates(run.records)
        for g in gates:
            pts = [(r[f"gate.{g}.left"], r[f"gate.{g}.right"]) for r in run.records
                   if is_number(r.get(f"gate.{g}.left")) and is_number(r.get(f"gate.{g}.right"))]
            xs, ys = np.array(pts[::max(1, math.ceil(len(pts) / MAX_POINTS))]).T \
                if pts else ([], [])
            ax.plot(xs, ys, color=GATE_COLOURS[g], lw=0.8, alpha=0.6)
            ax.scatter(xs, ys, s=9, color=[shade(GATE_COLOURS[g], f)
                                            for f in np.linspace(0.25, 1, len(xs))])
            ax.plot([], [], color=GATE_COLOURS[g], marker="o", label=f"gate {g}")
        ax.plot([0, 1], [1, 0], color="0.6", ls=":", lw=0.8)  # left + right = 1: all saturated
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.set_title(literal(run.label), color=run.colour)
        if gates:
            ax.legend(loc="upper right")
        else:
            cell = CELLS.get(run.doc["config"].get("cell", "rnn"))
            gateless = cell is not None and not cell.SIGMOID and run.records
            ax.text(0.5, 0.5, f"no gates ({cell.NAME} cell)" if gateless
                    else "no readings recorded",
                    transform=ax.transAxes, ha="center", va="center", color="0.4")
    fig.supxlabel("fraction left-saturated (gate < 0.1)", fontsize=9)
    fig.supylabel("fraction right-saturated (gate > 0.9)", fontsize=9)
    return fig


def memory_steps(runs: list[RunData]) -> Figure:
    fig, ((ax,),) = new_figure()
    fit_scale(ax, plot_each(ax, runs, "memory_steps", positive=True), log=True)
    for run in runs:
        if any("memory_steps" in r for r in run.records):
            ax.axhline(run.doc["config"]["seq_len"], color=run.colour, ls=":", lw=1)
    ax.set(xlabel=XLABEL["step"], ylabel="memory_steps: median unit's -1 / ln(mean keep gate)")
    ax.legend(handles=run_handles(runs) + [style_handle("--seq-len (BPTT horizon)", ls=":")])
    return fig


# id, title, how to read it, function; in page order (a one-panel figure takes half the page)
FIGURES = [
    ("nll-steps", "Loss against steps",
     "Train NLL (mean over the steps since the previous record) and eval NLL.", nll_steps),
    ("nll-chars", "Loss against characters",
     "The same against characters seen, to compare runs with different batch or chunk sizes.",
     nll_chars),
    ("nll-time", "Loss against wall-clock time",
     "The same against minutes of training: which run is ahead at each minute of a time "
     "budget (--minutes), also against a log from another tool that records elapsed_s.",
     nll_time),
    ("saturation", "Saturation",
     "Hidden units near the tanh rails pass little gradient: sat_ratio should stay low.",
     saturation),
    ("dh", "Gradient through the tanh",
     "A wide gap between dh_norm and dh_raw_norm means the tanh derivative is eating the "
     "gradient (saturation).", dh),
    ("grad-norm", "Gradient norm and clipping",
     "Triangles mark records whose interval clipped; dotted lines are the clipping "
     "thresholds.", grad_norm),
    ("update-ratio", "Update ratio per parameter",
     "Size of each step relative to the parameter; the shaded band is the healthy range of "
     "the global ratio (rnnscope/health.py), the dashed line the usual 1e-3.", update_ratio),
    ("whh-sigma", "Recurrent matrix scale",
     "Largest singular value of Whh: well above 1 risks exploding, well below 1 vanishing.",
     whh_sigma),
    ("gate-saturation", "Gate saturation",
     "Gated cells: how often each sigmoid gate sits below 0.1 (left) or above 0.9 (right), one "
     "point per record, darker later. Points on the dotted line are always saturated: a gate "
     "stuck there passes no gradient and no longer adapts.", gate_saturation),
    ("memory-steps", "Memory time",
     "Gated cells: the steps over which the median unit's state decays by e, from the mean of "
     "its keep gate (LSTM f, GRU z); the dotted line is the chunk length.", memory_steps),
    ("bptt-profile", "Gradient through time",
     "How a gradient injected at the last step decays (vanishing) or grows (exploding) "
     "going back k steps, at a few points in training.", bptt_profile),
]


def to_svg(fig: Figure, prefix: str) -> str:
    """The figure as an inline <svg>: no XML header or DOCTYPE, no namespace URLs (HTML
    supplies them), and every id and reference prefixed so the page's ids stay unique."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=NO_METADATA)
    svg = buf.getvalue()
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg[svg.index("<svg"):])
    return re.sub(r'(\bid="|href="#|url\(#)', rf"\g<1>{prefix}-", svg)


def svg(fid: str, draw, *args) -> tuple[str, bool]:
    """(inline svg, whether it is drawn to span the page) of the figure draw(*args)."""
    with matplotlib.rc_context(STYLE):
        fig = draw(*args)
        return to_svg(fig, fid), fig.get_figwidth() > NARROW


def svg_figures(runs: list[RunData]) -> dict[str, tuple[str, bool]]:
    """{figure id: svg(...)} for each of FIGURES."""
    return {fid: svg(fid, draw, runs) for fid, _, _, draw in FIGURES}


# ---- a sweep's figures


def main_effects(curves: list[tuple[str, list]]) -> Figure:
    """One panel per swept factor: per value, the mean eval NLL of its runs against steps, the
    band between their lowest and highest (sweep.summary.effect_curves gives the numbers)."""
    fig, axes = grid(len(curves), sharey=True)
    for ax, (factor, lines) in zip(axes, curves or [("", [])], strict=True):
        drawn = []
        for i, (value, steps, mean, lo, hi) in enumerate(lines):
            colour = PALETTE[i % len(PALETTE)]
            ax.plot(steps, mean, color=colour, marker="o", ms=3, label=literal(str(value)))
            ax.fill_between(steps, lo, hi, color=colour, alpha=0.15, lw=0)
            drawn.append(np.asarray(mean, dtype=float))
        fit_scale(ax, np.concatenate(drawn) if drawn else np.array([]), log=False)
        ax.set_title(literal(factor))
        if drawn:
            ax.legend()
    fig.supxlabel(XLABEL["step"], fontsize=9)
    fig.supylabel("eval NLL (nats/char), mean of the runs", fontsize=9)
    return fig
