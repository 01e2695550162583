"""A sweep's page, DIR/report.html: the runs sorted by best eval NLL, the main effect of each
swept factor (a table and over training), the loss curves of every run, the fixed settings. It
is built from summary.json's content and the runs' own directories, in the report's style."""

from __future__ import annotations

import datetime
from html import escape
from pathlib import Path

from ..config import flag, shown
from ..plots import RunData, main_effects, nll_steps, svg
from ..report import CSS, PAGE, figures_html, load_runs, section, swatch, verdict_badge
from ..runs import CONFIG, REPORT, write_text
from ..version import __version__
from .summary import effect_curves, ranked

SWEEP_FIGURES = [
    ("main-effects", "Main effects over training",
     "For each swept factor, the eval NLL of the finished runs with each value: the line is "
     "their mean at the steps all of them evaluated, the band spans the lowest and highest. "
     "Lines apart early that meet later: the factor sped training up but did not change where "
     "it ends.", main_effects),
    ("nll-steps", "Loss of every run",
     "Train NLL (solid) and eval NLL (dashed) of each run, coloured as in the table.", nll_steps),
]


def write_sweep_report(out: Path, summary: dict) -> Path:
    """out/report.html: the runs sorted by best eval NLL, the main effect of each swept
    factor (table and over training), the loss curves of every run, the fixed settings."""
    rows = [r for r in ranked(summary) if (out / r["path"] / CONFIG).exists()]
    data = load_runs([out / r["path"] for r in rows])
    colours = {r["name"]: run for r, run in zip(rows, data, strict=True)}
    svgs = {"main-effects": svg("main-effects", main_effects, effect_curves(summary)),
            "nll-steps": svg("nll-steps", nll_steps, data)}
    body = [f"<header><h1>rnnscope sweep {escape(summary['name'])}</h1><p>Generated "
            f"{datetime.datetime.now():%Y-%m-%d %H:%M} by rnnscope {__version__}: "
            f"{len(summary['runs'])} runs in <code>{escape(str(out))}</code>.</p></header>",
            section("runs", "Runs, best eval NLL first", sweep_runs_html(summary, colours)),
            section("effects", "Main effects", effects_html(summary["effects"])),
            section("plots", "Plots", figures_html(svgs, SWEEP_FIGURES)),
            section("fixed", "Settings every run shares", settings_html(summary["fixed"]))]
    file = out / REPORT
    write_text(file, PAGE.format(title=escape(f"rnnscope sweep: {summary['name']}"), css=CSS,
                                 body="\n".join(body)))
    return file


def sweep_runs_html(summary: dict, runs_by_name: dict[str, RunData]) -> str:
    """One row per run: its colour and name (a link to its own report when it has one), the
    swept settings, status, steps, best eval NLL, final train NLL and verdict."""
    swept = summary["swept"]
    head = "<tr><th>#</th><th>run</th>" + "".join(f"<th>{escape(flag(k))}</th>" for k in swept) \
        + ("<th>status</th><th>steps</th><th>best eval NLL</th><th>final train NLL</th>"
           "<th>verdict</th></tr>")
    body = []
    for i, r in enumerate(ranked(summary)):
        run = runs_by_name.get(r["name"])
        name = escape(r["name"])
        if run is not None and (run.path / REPORT).exists():
            name = f'<a href="{escape(r["path"])}/{REPORT}">{name}</a>'
        verdict = verdict_badge(r) if r["verdict"] else "–"
        status = escape(r["status"]) + (f"<br><small>{escape(r['error'])}</small>"
                                        if r["error"] else "")
        body.append(f"<tr><td>{i + 1}</td><td>{swatch(run) if run else ''} {name}</td>"
                    + "".join(f"<td>{escape(str(r['settings'][k]))}</td>" for k in swept)
                    + f"<td>{status}</td><td>{r['steps']}</td><td>{number(r['best_eval_nll'])}"
                    f"{step_note(r['best_eval_step'])}</td><td>{number(r['final_train_nll'])}"
                    f"</td><td>{verdict}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def effects_html(effects: list[dict]) -> str:
    """Per swept factor, the best eval NLL of the finished runs with each value: mean ± std
    (min to max, n runs); the lowest mean in bold; the factor that moved it most first."""
    if not effects:
        return "<p>No factor was swept over two or more values.</p>"
    head = ("<tr><th>factor</th><th>value</th><th>mean best eval NLL</th><th>± std</th>"
            "<th>min – max</th><th>finished runs</th><th>failed</th>"
            "<th>mean eval NLL early on</th></tr>")
    rows = []
    for e in effects:
        means = [v["mean"] for v in e["values"] if v["mean"] is not None]
        for j, v in enumerate(e["values"]):
            first = (f'<td rowspan="{len(e["values"])}">--{escape(flag(e["factor"]))}<br><small>'
                     f"range of the means {number(e['range'])}</small></td>" if j == 0 else "")
            mean = number(v["mean"])
            if means and v["mean"] == min(means):
                mean = f"<b>{mean}</b>"
            rows.append(f"<tr>{first}<td>{escape(str(v['value']))}</td><td>{mean}</td>"
                        f"<td>{number(v['std'])}</td><td>{number(v['min'])} – "
                        f"{number(v['max'])}</td><td>{v['n']}</td><td>{v['failed']}</td>"
                        f"<td>{early_html(v['early'])}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def settings_html(settings: dict) -> str:
    """The settings as the train flags that give them: --hidden 256 --no-panel ... (an unset
    setting, and a switch left on, have no flag)."""
    flags = [shown(k, v) for k, v in settings.items() if v is not None and v is not True]
    return '<p class="flags">' + " ".join(f"<code>{escape(x)}</code>" for x in flags) + "</p>"


def early_html(early: dict | None) -> str:
    return "–" if early is None else f"{number(early['mean'])}{step_note(early['step'])}"


def number(v) -> str:
    return "–" if v is None else f"{v:.4f}"


def step_note(step) -> str:
    return "" if step is None else f" <small>at step {step}</small>"
