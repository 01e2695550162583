"""A loaded run in a notebook: its HTML (verdict, findings, the loss and saturation figures),
plot() as a matplotlib Figure, frame() as a pandas DataFrame of the records."""

import pytest
from matplotlib.figure import Figure

import rnnscope
from rnnscope.cli import main
from rnnscope.errors import RnnscopeError
from rnnscope.records import read_run


@pytest.fixture(scope="module")
def saturated(small_corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("nb") / "run"
    assert main(["train", "--corpus", str(small_corpus), "--hidden", "16", "--seq-len", "16",
                 "--batch", "4", "--steps", "60", "--log-every", "10", "--eval-every", "30",
                 "--recurrent-scale", "3", "--input-scale", "3", "--lr", "0.05", "--quiet",
                 "--no-report", "--run-dir", str(run)]) == 0
    return run


def test_a_loaded_run_shows_its_verdict_findings_and_figures(saturated):
    run = rnnscope.load_run(saturated)
    assert run.model.params  # still the trained run, model and all
    html = run._repr_html_()
    assert "run: 6 records" in html
    assert 'Verdict <span class="badge critical">saturation</span>' in html
    assert "most units sit on the tanh rails" in html  # the finding's evidence
    assert '<figure id="nll-steps"' in html and '<figure id="saturation"' in html
    assert html.count("<svg") == 2


def test_plot_returns_a_figure_of_the_reading_and_its_layers(saturated):
    run = rnnscope.load_run(saturated)
    fig = run.plot("sat_ratio")
    assert isinstance(fig, Figure)
    [ax] = fig.axes
    steps = [r["step"] for r in read_run(saturated)[1] if "sat_ratio" in r]
    assert [list(line.get_xdata()) for line in ax.get_lines()] == [steps, steps]  # mean, layer0
    assert list(ax.get_lines()[0].get_ydata()) == [
        r["sat_ratio"] for r in read_run(saturated)[1] if "sat_ratio" in r]
    assert isinstance(run.plot("bptt-profile"), Figure)
    with pytest.raises(RnnscopeError, match="no reading 'nope'; plot one of .*sat_ratio"):
        run.plot("nope")


def test_frame_holds_the_records(saturated, tmp_path):
    pd = pytest.importorskip("pandas")
    frame = rnnscope.load_run(saturated).frame()
    records = read_run(saturated)[1]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == [r["step"] for r in records]
    assert list(frame["train_nll"]) == [r["train_nll"] for r in records]
    log = tmp_path / "mine.csv"
    log.write_text("step,train_nll,accuracy\n10,3.0,0.1\n20,2.5,0.2\n")
    view = rnnscope.view(log)
    assert list(view.frame()["accuracy"]) == [0.1, 0.2]
    assert "mine.csv: 2 records" in view._repr_html_()
