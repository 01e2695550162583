"""The HTML report of one or several runs: one self-contained page (inline SVG and CSS, no
scripts, nothing fetched) with the plots (rnnscope/plots.py), each run's triage findings, the
configurations side by side and a text sample from each run's final model.

It reads only the run directory, so it also works on a run still training (a torn last record
is skipped) and on one that stopped on a NaN.
"""

from __future__ import annotations

import datetime
import json
from html import escape
from pathlib import Path

import numpy as np

from .errors import RnnscopeError
from .plots import (
    FIGURES,
    PALETTE,
    RunData,
    is_number,
    svg_figures,
)
from .records import read_run, run_name, vocab_size
from .runs import CHECKPOINT, REPORT, load_run, write_text
from .sample import sample
from .triage import SEVERITY, read_triage
from .version import __version__

COMPARE = "compare.html"                # default output for several runs, in the current dir
SAMPLE = {"length": 300, "temperature": 0.8, "seed": 0}


def write_report(paths: list[Path], out: Path | None = None) -> Path:
    """Write the report of the runs in `paths` (run directories or logs, docs/format.md) to
    `out` and return its path. Default: report.html in the run for one run (beside a log:
    <log>.report.html), compare.html in the current directory for several."""
    if not paths:
        raise RnnscopeError("give at least one run directory to report on")
    out = Path(out) if out else default_output(paths)
    if not out.parent.is_dir():
        raise RnnscopeError(f"cannot write {out}: directory {out.parent} does not exist; "
                            "create it or pass another -o")
    write_text(out, render(load_runs(paths)))
    return out


def default_output(paths: list[Path]) -> Path:
    if len(paths) > 1:
        return Path(COMPARE)
    path = Path(paths[0])
    return path / REPORT if path.is_dir() else path.with_name(path.name + ".report.html")


def load_runs(paths: list[Path]) -> list[RunData]:
    names = [run_name(p) for p in paths]
    labels = names if len(set(names)) == len(names) else [str(p) for p in paths]
    return [RunData(Path(p), label, PALETTE[i % len(PALETTE)], *read_run(p))
            for i, (p, label) in enumerate(zip(paths, labels, strict=True))]


def render(runs: list[RunData]) -> str:
    """The page: overview, findings, plots, configuration, samples."""
    diagnoses = [read_triage(run.path) for run in runs]
    body = [header_html(runs), overview_html(runs, diagnoses),
            section("findings", "Triage", per_run(runs, "findings", map(findings_html, diagnoses))),
            section("plots", "Plots", figures_html(svg_figures(runs))),
            section("config", "Configuration", config_html(runs)),
            section("sample", "Samples from the final model",
                    per_run(runs, "sample", (sample_html(run) for run in runs)))]
    title = "rnnscope report: " + ", ".join(run.label for run in runs)
    return PAGE.format(title=escape(title), css=CSS, body="\n".join(body))


def section(sid: str, title: str, content: str) -> str:
    return f'<section id="{sid}"><h2>{title}</h2>{content}</section>'


def per_run(runs: list[RunData], kind: str, contents) -> str:
    """One block per run, headed by its colour and name, with ids kind-0, kind-1, ..."""
    return "".join(
        f'<div id="{kind}-{i}" class="{kind}"><h3>{swatch(run)} {escape(run.label)}</h3>'
        f"{content}</div>" for i, (run, content) in enumerate(zip(runs, contents, strict=True)))


def swatch(run: RunData) -> str:
    return f'<span class="swatch" style="background:{run.colour}"></span>'


def header_html(runs: list[RunData]) -> str:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    legend = "".join(f"<li>{swatch(run)} {escape(run.label)} <code>{escape(str(run.path))}"
                     "</code></li>" for run in runs)
    return (f"<header><h1>rnnscope report</h1><p>Generated {stamp} by rnnscope {__version__}."
            f'</p><ul class="legend">{legend}</ul></header>')


# ---- overview and status


def overview_html(runs: list[RunData], diagnoses: list[dict]) -> str:
    head = ("<tr><th>run</th><th>status</th><th>records</th><th>chars</th><th>last train NLL"
            "</th><th>best eval NLL</th><th>wall time</th><th>verdict</th></tr>")
    rows = "".join(
        f"<tr><td>{swatch(run)} {escape(run.label)}</td><td>{escape(status(run))}</td>"
        f"<td>{len(run.records)}</td><td>{last(run, 'chars', '{:,}')}</td>"
        f"<td>{last(run, 'train_nll', '{:.4g}')}</td><td>{best_eval(run)}</td>"
        f"<td>{last(run, 'elapsed_s', '{:.0f} s')}</td><td>{verdict_badge(d)}</td></tr>"
        for run, d in zip(runs, diagnoses, strict=True))
    return section("overview", "Overview", f"<table>{head}{rows}</table>")


def status(run: RunData) -> str:
    if not run.records:
        return "no records yet"
    rec, steps = run.records[-1], run.doc["config"].get("steps")
    if rec.get("diverged"):
        return f"diverged at step {rec['step']}: {rec['diverged']}"
    if rec.get("final") or (steps and rec["step"] >= steps):
        return f"finished at step {rec['step']}"
    return f"last record at step {rec['step']}" + (f" of {steps}" if steps else "")


def values_of(run: RunData, key: str) -> list:
    return [r[key] for r in run.records if is_number(r.get(key))]


def last(run: RunData, key: str, fmt: str) -> str:
    values = values_of(run, key)
    return fmt.format(values[-1]) if values else "–"


def best_eval(run: RunData) -> str:
    """The best eval NLL, and how far above the corpus's floor it is when that is known."""
    values = values_of(run, "eval_nll")
    floor = run.doc.get("corpus", {}).get("floor_nll")
    if not values:
        return "–"
    return f"{min(values):.4g}" + (f" ({min(values) - floor:+.3f} from the floor {floor:.4g})"
                                   if is_number(floor) else "")


# ---- triage


def badge(text, severity) -> str:
    return f'<span class="badge {escape(str(severity))}">{escape(str(text))}</span>'


def verdict_badge(d: dict) -> str:
    """The verdict, coloured by the most severe finding."""
    severities = [f.get("severity", "info") for f in d.get("findings", [])]
    known = [s for s in severities if s in SEVERITY]
    worst = min(known, key=SEVERITY.index, default="info")
    return badge(d.get("verdict", "healthy"), worst)


def findings_html(d: dict) -> str:
    findings = d.get("findings", [])
    if not findings:
        return f"<p>Verdict {verdict_badge(d)}: no finding; every reading is in range.</p>"
    head = "<tr><th>finding</th><th>evidence</th><th>suspects</th><th>next steps</th></tr>"
    rows = "".join(map(finding_row, findings))
    return f"<p>Verdict {verdict_badge(d)}</p><table>{head}{rows}</table>"


def finding_row(f: dict) -> str:
    severity = f.get("severity", "info")
    return (f"<tr><td>{badge(f.get('id', '?'), severity)}<br><small>{escape(str(severity))}"
            f"</small></td><td>{evidence_html(f.get('evidence'))}</td>"
            f"<td>{items_html(f.get('suspects'))}</td><td>{next_html(f.get('next'))}</td></tr>")


def next_html(steps) -> str:
    """The next steps' texts (a triage.json from before they were steps holds the texts)."""
    if isinstance(steps, list):
        steps = [s.get("text", "") if isinstance(s, dict) else s for s in steps]
    return items_html(steps)


def evidence_html(ev) -> str:
    """What was seen, what it explains, the readings behind it (folded) and when it may be a
    false positive."""
    if not isinstance(ev, dict) or "seen" not in ev:
        return items_html(ev)
    rest = {k: v for k, v in ev.items() if k not in ("seen", "caveat", "consequences")}
    html = f"<p>{escape(ev['seen'])}</p>"
    for c in ev.get("consequences", []):
        html += (f"<p>explains {badge(c['id'], c['severity'])}: "
                 f"{escape(c['evidence']['seen'])}</p>")
    if rest:
        html += f"<details><summary>readings</summary>{items_html(rest)}</details>"
    if ev.get("caveat"):
        html += f"<p><small>May be a false positive when: {escape(ev['caveat'])}</small></p>"
    return html


def items_html(value) -> str:
    """A finding's field: a string, a list (one item a line) or a dict (key: value lines)."""
    if isinstance(value, dict):
        value = [f"{k}: {short(v)}" for k, v in value.items()]
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{escape(short(v))}</li>" for v in value) + "</ul>"
    return escape(short(value)) if value is not None else ""


def short(v) -> str:
    """A reading as text, floats to 4 significant digits, nested lists and dicts included."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(short(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {short(x)}" for k, x in v.items()) + "}"
    return str(v)


# ---- plots, configuration, sample


def figures_html(svgs: dict[str, tuple[str, bool]], figures=FIGURES) -> str:
    return '<div class="figures">' + "".join(
        f'<figure id="{fid}" class="{"wide" if svgs[fid][1] else ""}"><h3>{escape(title)}</h3>'
        f"{svgs[fid][0]}<figcaption>{escape(caption)}</figcaption></figure>"
        for fid, title, caption, _ in figures) + "</div>"


def config_rows(doc: dict) -> dict[str, str]:
    rows = {k: v if isinstance(v, str) else json.dumps(v) for k, v in doc["config"].items()}
    rows.update({"rnnscope version": str(doc.get("rnnscope_version", "?")),
                 "vocabulary size": str(vocab_size(doc) or "?")})
    if doc.get("source", "rnnscope") != "rnnscope":
        rows["records from"] = str(doc["source"]) + (f" ({doc['format']})" if "format" in doc
                                                     else "")
    rows.update({f"corpus {k}": short(v) for k, v in doc.get("corpus", {}).items()})
    return rows


def config_html(runs: list[RunData]) -> str:
    tables = [config_rows(run.doc) for run in runs]
    keys = list(dict.fromkeys(k for t in tables for k in t))
    head = "<tr><th>setting</th>" + "".join(
        f"<th>{swatch(run)} {escape(run.label)}</th>" for run in runs) + "</tr>"
    rows = "".join(
        f'<tr class="{"differs" if len({t.get(k) for t in tables}) > 1 else ""}">'
        f"<td>{escape(k)}</td>" + "".join(f"<td>{escape(t.get(k, '–'))}</td>" for t in tables)
        + "</tr>" for k in keys)
    note = "<p>Settings that differ between runs are highlighted.</p>" if len(runs) > 1 else ""
    return f'{note}<div class="scroll"><table class="config">{head}{rows}</table></div>'


def sample_html(run_data: RunData) -> str:
    path = run_data.path
    if run_data.doc.get("source", "rnnscope") != "rnnscope" or not path.is_dir():
        return ('<p class="note">No sample: the records come from another program; rnnscope '
                "holds no model to sample from.</p>")
    if not (path / CHECKPOINT).exists():
        return ('<p class="note">No sample: the run has no checkpoint yet (it is just starting, '
                "or it diverged before the first eval wrote one).</p>")
    try:
        run = load_run(path)
    except RnnscopeError as e:
        return f'<p class="note">No sample: {escape(str(e))}</p>'
    if not all(np.isfinite(p).all() for p in run.model.params.values()):
        return '<p class="note">No sample: the last checkpoint holds NaN/inf parameters.</p>'
    with np.errstate(over="ignore"):
        text = sample(run.model, run.vocab, **SAMPLE)
    return (f"<p>{SAMPLE['length']} characters from the checkpoint at step "
            f"{run.meta.get('step', '?')}, temperature {SAMPLE['temperature']}, seed "
            f'{SAMPLE["seed"]}:</p><pre class="sample">{escape(text)}</pre>')


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1400px; padding: 1em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td:first-child { white-space: nowrap; }
.scroll { overflow-x: auto; } tr.differs td { background: #fff6d5; }
table.config td { overflow-wrap: anywhere; max-width: 24em; }
td ul { margin: 0; padding-left: 1.1em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px;
          vertical-align: -0.1em; }
.legend { list-style: none; padding: 0; } .legend li { margin: 0.2em 0; }
.badge { padding: 0.1em 0.5em; border-radius: 3px; background: #dde8f5; font-weight: 600; }
.badge.warning { background: #fde8b8; } .badge.critical { background: #f7c6c4; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
           gap: 1.2em; }
figure { margin: 0; padding: 0.6em; border: 1px solid #e4e4e4; border-radius: 4px; }
figure.wide { grid-column: 1 / -1; }
figure h3 { margin: 0 0 0.3em; font-size: 1em; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85em; color: #555; margin-top: 0.3em; }
figure.wide svg { max-width: 1100px; margin: 0 auto; }
pre.sample { background: #f7f7f7; padding: 0.8em; white-space: pre-wrap; font-size: 0.85em;
             border-radius: 4px; max-height: 24em; overflow: auto; }
.note { color: #8a5a00; }
.flags code { display: inline-block; margin: 0.15em 0.4em 0.15em 0; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""
