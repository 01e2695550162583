"""The benchmark runs and reports what docs/benchmarks.md reads; no timing is asserted here."""

import json
import sys

import numpy as np
import pytest

from rnnscope import bench
from rnnscope.cli import main

ROW_KEYS = {"hidden", "layers", "batch", "seq_len", "vocab", "dtype", "rounds", "flops_per_char",
            "fwd_bwd_chars_per_s", "train_chars_per_s", "train_panel_chars_per_s",
            "fwd_bwd_peak_share", "train_peak_share", "panel_overhead", "check_gflops_range",
            "machine"}
TORCH_KEYS = {"torch_fwd_bwd_chars_per_s", "torch_train_chars_per_s", "fwd_bwd_ratio",
              "fwd_bwd_ratio_range", "train_ratio", "train_ratio_range"}


def test_quick_bench_gives_one_row_with_every_key():
    rows = bench.run_bench(vs_torch=False, rounds=2, quick=True)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == ROW_KEYS
    assert row["rounds"] == 2 and row["dtype"] == "float32"
    assert all(row[k] > 0 for k in ("fwd_bwd_chars_per_s", "train_chars_per_s",
                                    "train_panel_chars_per_s"))
    assert row["machine"]["peak_gflops"] > 0 and "torch" not in row["machine"]
    assert "fwd+bwd" in bench.format_bench(rows)


def test_quick_bench_against_torch_adds_the_ratios():
    pytest.importorskip("torch")
    rows = bench.run_bench(vs_torch=True, rounds=1, quick=True)
    assert set(rows[0]) == ROW_KEYS | TORCH_KEYS
    assert rows[0]["machine"]["torch_threads"] >= 1
    low, high = rows[0]["fwd_bwd_ratio_range"]
    assert low <= rows[0]["fwd_bwd_ratio"] <= high
    assert "ratio" in bench.format_bench(rows)


def test_cli_bench_quick_json_prints_the_rows(capsys):
    assert main(["bench", "--quick", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(r) for r in rows] == [ROW_KEYS]


def test_bench_without_torch_installed_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert main(["bench", "--quick", "--vs", "torch"]) == 2
    assert "pip install torch" in capsys.readouterr().err


def test_bench_refuses_zero_rounds(capsys):
    assert main(["bench", "--quick", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err


def test_flops_count_is_the_documented_one():
    H, V = 512, 65
    assert bench.flops_per_char(H, 1, V) == 6 * H**2 + 10 * H * V
    assert bench.flops_per_char(H, 2, V) == 18 * H**2 + 10 * H * V


def test_panel_overhead_is_the_recording_steps_extra_share_of_its_block():
    blocks = np.full((3, 50), 0.1)
    blocks[:, -1] = 0.6  # the step that records costs 0.5 s more than the others
    blocks[1] *= 1.3     # a block on a slower machine: the share stays the same
    assert bench.panel_overhead(blocks) == pytest.approx(0.5 / (49 * 0.1 + 0.6))


def test_a_machine_whose_speed_moves_between_rounds_gets_a_warning():
    row = {"hidden": 512, "layers": 1, "check_gflops_range": [166.0, 203.0]}
    assert "moved between 166 and 203 GFLOP/s" in bench.unsteady_warning(row)
    assert bench.unsteady_warning({**row, "check_gflops_range": [195.0, 203.0]}) == ""


def test_every_round_checks_the_machine_before_its_blocks():
    calls = []
    group = bench.Group({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2, 2)
    times, peaks = bench.interleaved_times([group], 3, lambda: calls.append("check") or 1e11)
    assert peaks == [1e11] * 3  # the warm-up round's check is dropped with the round
    assert calls.count("check") == 4 and calls[0] == "check"
    assert [len(t) for t in times.values()] == [3, 3]
    assert all(t.shape == (2, 2) for per_round in times.values() for t in per_round)
