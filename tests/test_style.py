"""The code stays ruff clean (skipped where ruff is not installed)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_is_clean():
    paths = [p for p in ("rnnscope", "tests", "benchmarks") if (ROOT / p).exists()]
    proc = subprocess.run(["ruff", "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
