"""The report renders in a real headless browser (Debian's chromium driven by Playwright): no
console or page errors, every plot visible with its text drawn. The screenshot is kept as
test-artifacts/report.png."""

import io
import shutil
from pathlib import Path

import pytest

from rnnscope import TrainConfig
from rnnscope.display import PlainDisplay
from rnnscope.plots import FIGURES
from rnnscope.report import write_report
from rnnscope.train import train

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
FIGURE_IDS = [fid for fid, *_ in FIGURES]  # tests/test_report.py checks that the list is complete


@pytest.fixture(scope="module")
def report(small_corpus, tmp_path_factory) -> Path:
    """A report comparing two real short runs, the larger one clipped on most steps."""
    root = tmp_path_factory.mktemp("browser")
    base = dict(corpus=str(small_corpus), batch=4, seq_len=16, steps=60, log_every=10,
                eval_every=20, lr=1e-2)
    paths = [train(TrainConfig(**base, **kw), root / name, display=PlainDisplay(io.StringIO()))
             for name, kw in (("h16", {"hidden": 16}), ("h32", {"hidden": 32, "clip_value": 0.05}))]
    return write_report(paths, root / "compare.html")


@pytest.fixture(scope="module")
def opened(report):
    """The report open in chromium, and the console errors and page errors it raised."""
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.resolve().as_uri(), wait_until="load")
        yield page, errors
        browser.close()


@pytest.fixture
def page(opened):
    return opened[0]


def test_report_renders_without_console_or_page_errors(opened):
    page, errors = opened
    assert page.title().startswith("rnnscope report")
    assert errors == []


def test_every_plot_is_visible_with_a_real_size(page):
    for fid in FIGURE_IDS:
        svg = page.locator(f"#{fid} > svg")
        assert svg.count() == 1, fid
        assert svg.is_visible(), fid
        box = svg.bounding_box()
        assert box["width"] > 300 and box["height"] > 150, (fid, box)


def test_plot_text_drawn_as_paths_resolves_its_glyphs(page):
    # a tick label is <use> of glyph paths defined in the same svg; unresolved, it has no size
    label = page.locator("#nll-steps-text_1")
    assert label.bounding_box()["width"] > 0


def test_clipping_markers_are_drawn(page):
    markers = page.locator("#grad-norm-clip-events-1 use")
    assert markers.count() >= 3
    assert markers.first.bounding_box()["width"] > 0


def test_screenshot_is_kept_as_an_artifact(page, report):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 100_000
    shutil.copy(report, ARTIFACTS / "report.html")
