"""The consistency harness: every calibration record (benchmarks/calibration/records) gets the
verdict its recipe was built to show and a diagnosis that tells one story its records agree with
(tests/story.py). The real runs the tests train are checked by conftest.py."""

import importlib.util
from pathlib import Path

import pytest

CALIBRATION = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration"


def calibration():
    spec = importlib.util.spec_from_file_location("calibrate", CALIBRATION / "calibrate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CALIBRATE = calibration()
RUNS = [*CALIBRATE.RECIPES, *CALIBRATE.TORCH]  # the engine's runs and the PyTorch loops
RECORDED = [name for name in RUNS if (CALIBRATE.RECORDS / f"{name}.jsonl").exists()]
LONG = list(CALIBRATE.LONG)  # the 15-minute runs kept by benchmarks/quality/race.py


def test_every_recipe_is_recorded():
    assert RECORDED == RUNS


@pytest.mark.parametrize("name", RECORDED + LONG)
def test_a_calibration_run_gets_its_verdict_and_tells_one_story(name):
    result, problems = CALIBRATE.judge(name)
    assert problems == [], result
