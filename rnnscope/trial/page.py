"""RUN/try/report.html: the trial's table and sentences, and the forks' curves over their
control's, by step and by wall-clock, one pair of figures per start."""

from __future__ import annotations

import datetime
from html import escape
from pathlib import Path

from ..plots import nll_steps, nll_time, svg
from ..report import CSS, PAGE, figures_html, load_runs, section
from ..runs import METRICS, REPORT, write_text
from ..version import __version__
from .plan import Plan
from .words import advice_line, format_table, sentence


def write_trial_report(plan: Plan, doc: dict) -> Path:
    body = [f"<header><h1>rnnscope try {escape(plan.run.name)}</h1><p>Generated "
            f"{datetime.datetime.now():%Y-%m-%d %H:%M} by rnnscope {__version__}: "
            f"{len(doc['forks'])} forks of <code>{escape(str(plan.run))}</code> (verdict "
            f"{escape(doc['verdict'])}).</p></header>",
            section("forks", "Forks against their control",
                    f"<pre>{escape(format_table(doc))}</pre>" + "".join(
                        f"<p>{escape(sentence(f, doc['measure']))}</p>" for f in doc["forks"])
                    + "".join(f"<p>{escape(advice_line(a))}</p>" for a in doc["findings"]))]
    for start in plan.start_step:
        body.append(curves(plan, start))
    file = plan.out / REPORT
    write_text(file, PAGE.format(title=escape(f"rnnscope try: {plan.run.name}"), css=CSS,
                                 body="\n".join(body)))
    return file


def curves(plan: Plan, start: str) -> str:
    """The forks of one start over their control: NLL by step and by wall-clock."""
    names = [f.name for f in plan.forks if f.start == start and f.role != "noise"]
    paths = [plan.out / n for n in names if (plan.out / n / METRICS).exists()]
    if not paths:
        return ""
    data = load_runs(paths)
    figures = [(f"{start}-steps", f"From {start}: NLL by step", "The control first, then each "
                "fork: train NLL (solid), eval NLL (dashed).", nll_steps),
               (f"{start}-time", f"From {start}: NLL by wall-clock", "The same runs by minutes "
                "of training (runs that trained side by side shared the machine).", nll_time)]
    svgs = {fid: svg(fid, draw, data) for fid, _, _, draw in figures}
    return section(f"curves-{start}", f"Forks from {start} over the control",
                   figures_html(svgs, figures))
