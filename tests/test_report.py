"""The HTML report (rnnscope/report.py, rnnscope/plots.py), built from real short runs: it is
self-contained, holds every plot, the findings, the configuration and a sample, overlays several
runs with a legend, and also works on a run still training and on one that diverged."""

import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rnnscope import TrainConfig, runs, triage
from rnnscope.cli import main
from rnnscope.display import PlainDisplay
from rnnscope.plots import MAX_POINTS, series
from rnnscope.report import COMPARE, findings_html, write_report
from rnnscope.train import Diverged, train

FIGURE_IDS = ["nll-steps", "nll-chars", "nll-time", "saturation", "dh", "grad-norm", "update-ratio",
              "bptt-profile", "whh-sigma", "gate-saturation", "memory-steps"]
STEPS = 60


def quiet():
    return PlainDisplay(out=io.StringIO())


def short_config(corpus: Path, **kw) -> TrainConfig:
    base = dict(corpus=str(corpus), hidden=16, batch=4, seq_len=16, steps=STEPS, log_every=10,
                eval_every=20, lr=1e-2)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run_dirs(small_corpus, tmp_path_factory) -> dict[str, Path]:
    """Real short runs: "small"; "large", clipped on most steps; "diverged" (stopped on a NaN);
    "training": a copy of "small" as if still training (no checkpoint, torn last record)."""
    root = tmp_path_factory.mktemp("runs")
    dirs = {"small": train(short_config(small_corpus), root / "small", display=quiet()),
            "large": train(short_config(small_corpus, hidden=32, clip_value=0.05),
                           root / "large", display=quiet())}
    with pytest.raises(Diverged):
        train(short_config(small_corpus, lr=1e38, optimizer="sgd", clip="none", log_every=1,
                           eval_every=1), root / "diverged", display=quiet())
    dirs["diverged"] = root / "diverged"
    dirs["training"] = still_training_copy(dirs["small"], root / "training")
    return dirs


def still_training_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for name in (runs.CHECKPOINT, runs.BEST, runs.TRIAGE, runs.REPORT):
        (dst / name).unlink(missing_ok=True)
    text = (dst / runs.METRICS).read_text()
    (dst / runs.METRICS).write_text(text[:len(text) - len(text.splitlines()[-1]) // 2 - 1])
    return dst


@pytest.fixture(scope="module")
def reports(run_dirs, tmp_path_factory) -> dict[str, str]:
    """The HTML of each run's report, and of "small" and "large" compared."""
    out = tmp_path_factory.mktemp("reports")
    html = {name: write_report([path], out / f"{name}.html").read_text(encoding="utf-8")
            for name, path in run_dirs.items()}
    both = write_report([run_dirs["small"], run_dirs["large"]], out / "compare.html")
    html["compare"] = both.read_text(encoding="utf-8")
    return html


# ---- helpers that read the HTML


class Links(HTMLParser):
    """Every tag name, every attribute that can fetch something, and the CSS text."""
    FETCHING = {"src", "href", "xlink:href", "data", "action", "poster", "srcset"}

    def __init__(self) -> None:
        super().__init__()
        self.tags, self.links, self.css, self._in_style = set(), [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self._in_style = tag == "style"
        self.links += [v for k, v in attrs if k in self.FETCHING]
        self.css += [v for k, v in attrs if k == "style"]

    def handle_data(self, data):
        if self._in_style:
            self.css.append(data)


def element(html: str, element_id: str, tag: str) -> str:
    """The source of the <tag id=element_id> element, nested tags of the same name included."""
    start = html.index(f'<{tag} id="{element_id}"')
    depth = 0
    for m in re.compile(rf"<{tag}\b[^>]*>|</{tag}>").finditer(html, start):
        depth += 0 if m.group().endswith("/>") else 1 if m.group()[1] != "/" else -1
        if depth == 0:
            return html[start:m.end()]
    raise AssertionError(f"<{tag} id={element_id}> is not closed")


def svg_texts(svg: str) -> list[str]:
    """The strings matplotlib drew as paths: it writes each one as a comment."""
    return [t.strip() for t in re.findall(r"<!-- (.*?) -->", svg)]


def without_samples(html: str) -> str:
    return re.sub(r'<pre class="sample">.*?</pre>', "", html, flags=re.S)


# ---- self-contained, every section


def test_report_fetches_nothing_no_script_no_external_link(reports):
    for name, html in reports.items():
        parsed = Links()
        parsed.feed(html)
        assert not parsed.tags & {"script", "link", "img", "iframe", "object", "embed"}, name
        assert all(v.startswith("#") for v in parsed.links), (name, parsed.links)
        css = " ".join(parsed.css)
        assert "@import" not in css and not re.search(r"url\((?!#)", css), name
        assert "http://" not in without_samples(html) and "https://" not in without_samples(html)


def test_report_svgs_have_no_xml_header_doctype_or_font_reference(reports):
    html = reports["small"]
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert "@font-face" not in html and "font-family" not in without_style(html)


def without_style(html: str) -> str:
    return re.sub(r"<style>.*?</style>", "", html, flags=re.S)


def test_report_contains_every_plot_as_inline_svg(reports):
    for name in ("small", "compare"):
        for fid in FIGURE_IDS:
            figure = element(reports[name], fid, "figure")
            assert "<svg" in figure and "<h3>" in figure, (name, fid)


def test_grad_norm_plot_marks_clipping_events(reports, run_dirs):
    clipped = [r for r in runs.read_metrics(run_dirs["large"]) if r["clip_rate"] > 0]
    assert len(clipped) >= 3
    markers = element(reports["large"], "grad-norm-clip-events-0", "g")
    assert markers.count("<use") == len(clipped)
    assert element(reports["small"], "grad-norm-clip-events-0", "g").count("<use") == 0


def test_update_ratio_has_a_panel_per_parameter_and_the_1e3_band(reports, run_dirs):
    texts = svg_texts(element(reports["small"], "update-ratio", "figure"))
    for name in ("0.Wxh", "0.Whh", "0.bh", "Why", "by"):
        assert name in texts
    assert any("1e-3" in t for t in texts)


def test_report_shows_the_triage_findings_with_evidence_and_next_steps(reports, run_dirs):
    for name in ("small", "diverged"):
        path = run_dirs[name]
        file = path / runs.TRIAGE
        result = json.loads(file.read_text()) if file.exists() else triage.diagnose_run(path)
        block = element(reports[name], "findings-0", "div")
        assert f">{result['verdict']}</span>" in block
        for finding in result["findings"]:
            assert f">{finding['id']}</span>" in block


def test_findings_render_evidence_as_list_or_dict_and_escape_it():
    html = findings_html({"verdict": "saturation", "findings": [
        {"id": "saturation", "severity": "warning", "evidence": {"sat_ratio": 0.912345},
         "suspects": ["<script>"], "next": [{"setting": "recurrent_scale", "value": 0.5,
                                               "settings": {"recurrent_scale": 0.5},
                                               "text": "--recurrent-scale 0.5"}]},
        {"id": "plateau", "severity": "info", "evidence": ["flat since step 40"],
         "suspects": "none", "next": "--hidden 512"}]})
    assert "<li>sat_ratio: 0.9123</li>" in html and "<li>flat since step 40</li>" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "--recurrent-scale 0.5" in html and "--hidden 512" in html


def test_findings_show_what_they_explain_beside_what_was_seen():
    html = findings_html({"verdict": "diverged", "findings": [
        {"id": "diverged", "severity": "critical",
         "evidence": {"seen": "train NLL 25", "steps": [50], "readings": {}, "caveat": "none",
                      "consequences": [{"id": "saturation", "severity": "critical",
                                        "evidence": {"seen": "sat_ratio 0.99 <at> step 50",
                                                     "steps": [50], "readings": {}}}]},
         "suspects": ["lr"], "next": ["--lr 0.1"]}]})
    assert 'explains <span class="badge critical">saturation</span>: sat_ratio 0.99 ' \
        "&lt;at&gt; step 50" in html


def test_report_shows_the_configuration_and_a_sample_of_the_final_model(reports):
    config = element(reports["small"], "config", "section")
    assert "<td>hidden</td><td>16</td>" in config and "<td>seq_len</td><td>16</td>" in config
    sample = re.search(r'<pre class="sample">(.*?)</pre>', reports["small"], re.S)
    assert len(sample.group(1)) >= 300
    assert f"checkpoint at step {STEPS}" in reports["small"]


# ---- several runs


def test_several_runs_share_each_plot_with_a_legend_naming_them(reports):
    html = reports["compare"]
    for fid in FIGURE_IDS:
        svg = element(html, fid, "figure")
        legends = [element(svg, m, "g") for m in re.findall(rf'id="({fid}-legend_\d+)"', svg)]
        per_run_panels = fid in ("bptt-profile", "gate-saturation")  # titled by run
        texts = svg_texts(svg if per_run_panels else "".join(legends))
        assert "small" in texts and "large" in texts, fid


def test_several_runs_keep_one_colour_each_across_plots(reports):
    html = reports["compare"]
    colours = re.findall(r'class="swatch" style="background:(#[0-9a-f]{6})"', html)[:2]
    assert colours[0] != colours[1]
    for fid in ("nll-steps", "saturation", "whh-sigma"):
        svg = element(html, fid, "figure")
        assert all(f"stroke: {c}" in svg for c in colours), fid


def test_configuration_of_several_runs_highlights_the_differences(reports):
    config = element(reports["compare"], "config", "section")
    assert re.search(r'<tr class="differs"><td>hidden</td><td>16</td><td>32</td>', config)
    assert re.search(r'<tr class=""><td>seq_len</td><td>16</td><td>16</td>', config)


# ---- runs that are not finished


def test_report_of_a_run_still_training(reports, run_dirs):
    html = reports["training"]
    records = runs.read_metrics(run_dirs["training"])
    assert records[-1]["step"] < STEPS
    assert f"last record at step {records[-1]['step']} of {STEPS}" in html
    assert "no checkpoint yet" in html
    for fid in FIGURE_IDS:
        assert "<svg" in element(html, fid, "figure")


def test_report_of_a_diverged_run(reports, run_dirs):
    html = reports["diverged"]
    last = runs.read_metrics(run_dirs["diverged"])[-1]
    assert f"diverged at step {last['step']}" in html
    assert "diverged" in svg_texts(element(html, "nll-steps", "figure"))
    for fid in FIGURE_IDS:
        assert "<svg" in element(html, fid, "figure")


def test_report_of_a_run_just_started_without_records(run_dirs, tmp_path):
    (tmp_path / "new").mkdir()
    shutil.copy(run_dirs["small"] / runs.CONFIG, tmp_path / "new")
    html = write_report([tmp_path / "new"]).read_text(encoding="utf-8")
    assert "no records yet" in html and "no checkpoint yet" in html
    for fid in FIGURE_IDS:
        assert "no readings recorded" in svg_texts(element(html, fid, "figure")), fid


def test_long_series_are_thinned_keeping_the_last_point():
    records = [{"step": i, "train_nll": 1.0 + 1 / i} for i in range(1, 20_001)]
    xs, ys = series(records, "train_nll")
    assert len(xs) <= MAX_POINTS + 1 and xs[0] == 1 and xs[-1] == 20_000


def test_series_skip_missing_and_non_finite_readings():
    records = [{"step": 1, "grad_norm": 2.0}, {"step": 2, "grad_norm": None}, {"step": 3},
               {"step": 4, "grad_norm": 0.0}, {"step": 5, "grad_norm": 3.0}]
    assert series(records, "grad_norm")[0].tolist() == [1, 4, 5]
    assert series(records, "grad_norm", positive=True)[0].tolist() == [1, 5]


# ---- where the report goes, and the command


def test_default_output_is_in_the_run_or_compare_html_here(run_dirs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert write_report([run_dirs["training"]]) == run_dirs["training"] / runs.REPORT
    assert write_report([run_dirs["training"], run_dirs["small"]]) == Path(COMPARE)
    assert (tmp_path / COMPARE).stat().st_size > 0


def test_cli_report_writes_the_file_given_with_o(run_dirs, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dirs["small"]), str(run_dirs["large"]), "-o", str(out)]) == 0
    assert f"report written to {out}" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_report_of_a_missing_run_or_output_directory_exits_2(run_dirs, tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    assert main(["report", str(run_dirs["small"]), "-o", str(tmp_path / "no" / "r.html")]) == 2
    assert "directory" in capsys.readouterr().err


def test_nll_plot_draws_a_synthetic_corpus_floor_as_a_labelled_line(run_dirs, reports,
                                                                     tmp_path):
    floor_run = train(short_config("synthetic:delay2", eval_frac=0.01, steps=20, report=False),
                      tmp_path / "floor", display=quiet())
    html = write_report([floor_run, run_dirs["small"]], tmp_path / "r.html").read_text()
    for fid in ("nll-steps", "nll-chars", "nll-time"):
        figure = element(html, fid, "figure")
        assert f'id="{fid}-floor-0"' in figure and f'id="{fid}-floor-1"' not in figure
        texts = svg_texts(figure)
        assert "floor 1.961" in texts and "floor: the source's entropy rate" in texts
    assert element(html, "overview", "section").count("from the floor 1.961") == 1
    assert not any("floor" in t for t in svg_texts(element(reports["small"], "nll-steps",
                                                           "figure")))


def test_nll_against_time_is_labelled_in_whole_minutes(tmp_path):
    """A log from another tool with elapsed_s (the PyTorch script of benchmarks/quality/race.py)
    is drawn against wall-clock minutes, its ticks whole minutes."""
    log = tmp_path / "torch.jsonl"
    log.write_text("".join(json.dumps({"step": 150 * m, "train_nll": 2.5 - 0.05 * m,
                                       "eval_nll": 2.6 - 0.05 * m, "elapsed_s": 60.0 * m})
                           + "\n" for m in range(1, 16)))
    html = write_report([log], tmp_path / "r.html").read_text()
    texts = svg_texts(element(html, "nll-time", "figure"))
    assert "wall-clock minutes of training" in texts
    assert {"2", "4", "6", "8", "10", "12", "14"} <= set(texts)


def test_gated_runs_get_gate_saturation_and_memory_plots(small_corpus, tmp_path, run_dirs):
    """An LSTM and a GRU run beside a tanh run: one saturation panel per run with a path per
    recorded gate, memory_steps of the gated runs; the tanh run's panel says it has no gates."""
    gated = [train(short_config(small_corpus, cell=cell), tmp_path / cell, display=quiet())
             for cell in ("lstm", "gru")]
    html = write_report([*gated, run_dirs["small"]], tmp_path / "gated.html").read_text()
    texts = svg_texts(element(html, "gate-saturation", "figure"))
    for gate in ("i", "f", "o", "r", "z"):
        assert f"gate {gate}" in texts
    assert "no gates (rnn cell)" in texts
    memory = svg_texts(element(html, "memory-steps", "figure"))
    assert "no readings recorded" not in memory
    assert any("seq-len (BPTT horizon)" in text for text in memory)
    lstm_sample = element(html, "sample-0", "div")
    assert "No sample" not in lstm_sample
