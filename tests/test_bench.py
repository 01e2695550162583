"""The benchmark runs and reports what docs/benchmarks.md reads; no timing is asserted here."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnscope import bench
from rnnscope.cli import main

ROW_KEYS = {"cell", "hidden", "layers", "batch", "seq_len", "vocab", "dtype", "rounds",
            "flops_per_char",
            "fwd_bwd_chars_per_s", "train_chars_per_s", "train_panel_chars_per_s",
            "fwd_bwd_peak_share", "train_peak_share", "panel_overhead", "check_gflops_range",
            "machine"}
TORCH_KEYS = {f"{prefix}{key}" for prefix in ("fwd_bwd_", "train_") for key in
              ("ratio", "ratio_range", "ratio_quiet", "quiet_rounds")} \
    | {"torch_fwd_bwd_chars_per_s", "torch_train_chars_per_s"}


def test_quick_bench_gives_one_row_per_cell_with_every_key():
    rows = bench.run_bench(vs_torch=False, rounds=2, quick=True)
    assert [r["cell"] for r in rows] == ["rnn", "gru", "lstm"]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["rounds"] == 2 and row["dtype"] == "float32"
        assert all(row[k] > 0 for k in ("fwd_bwd_chars_per_s", "train_chars_per_s",
                                        "train_panel_chars_per_s"))
        assert row["machine"]["peak_gflops"] > 0 and "torch" not in row["machine"]
    assert "fwd+bwd" in bench.format_bench(rows) and "lstm" in bench.format_bench(rows)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_quick_bench_against_torch_adds_the_ratios(cell):
    pytest.importorskip("torch")
    rows = bench.run_bench(vs_torch=True, rounds=1, quick=True, cells=cell)
    assert set(rows[0]) == ROW_KEYS | TORCH_KEYS and rows[0]["cell"] == cell
    machine = rows[0]["machine"]
    assert machine["torch_threads"] >= 1 and machine["torch_cpu_capability"]
    low, high = rows[0]["fwd_bwd_ratio_range"]
    assert low <= rows[0]["fwd_bwd_ratio"] <= high
    assert "ratio" in bench.format_bench(rows)


def test_cli_bench_quick_json_prints_the_rows(capsys):
    assert main(["bench", "--quick", "--json", "--cell", "lstm,rnn"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(r) for r in rows] == [ROW_KEYS] * 2
    assert [r["cell"] for r in rows] == ["lstm", "rnn"]


def test_bench_refuses_an_unknown_cell(capsys):
    assert main(["bench", "--quick", "--cell", "gru,transformer"]) == 2
    assert "transformer" in capsys.readouterr().err


def test_every_result_says_which_blas_kernels_ran_and_what_the_environment_set(monkeypatch):
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    context = bench.machine_context(None, 64)
    assert context["blas_env"] == {"OMP_NUM_THREADS": "2"}
    libraries = context["blas_libraries"]
    assert libraries and all("kernel" in lib for lib in libraries)
    openblas = [lib for lib in libraries if lib["library"] == "openblas"]
    if openblas:  # NumPy's wheels: the core type OpenBLAS picked, and that nothing forced it
        assert openblas[0]["kernel"]
        assert "OPENBLAS_CORETYPE is unset" in context["blas_notes"][0]
    text = bench.format_bench([{**row_of(context)}])
    assert "OMP_NUM_THREADS=2" in text and "kernel" in text


def test_a_forced_openblas_kernel_other_than_the_cpus_own_is_warned_about(monkeypatch):
    libraries = [{"library": "openblas", "kernel": "Sandybridge"}]
    monkeypatch.setattr(bench, "own_kernel", lambda: "Haswell")
    forced = {"OPENBLAS_CORETYPE": "Sandybridge"}
    assert bench.kernel_notes(forced, libraries)[0].startswith(
        "warning: OPENBLAS_CORETYPE=Sandybridge forces OpenBLAS's Sandybridge kernels; on this "
        "CPU it would pick Haswell")
    monkeypatch.setattr(bench, "own_kernel", lambda: "Sandybridge")
    assert "warning" not in bench.kernel_notes(forced, libraries)[0]
    assert "unset" in bench.kernel_notes({}, libraries)[0]


def row_of(context: dict) -> dict:
    """A minimal bench row around a machine context, for format_bench."""
    return {"cell": "rnn", "hidden": 8, "layers": 1, "batch": 2, "seq_len": 2, "vocab": 65,
            "dtype": "float32", "rounds": 1, "fwd_bwd_chars_per_s": 1, "train_chars_per_s": 1,
            "fwd_bwd_peak_share": 0.1, "train_peak_share": 0.1, "panel_overhead": 0.0,
            "check_gflops_range": [1.0, 1.0], "machine": context}


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
    assert bench.flops_per_char(H, 1, V, blocks=4) == 24 * H**2 + 16 * H * V + 6 * H * V


def test_panel_overhead_is_the_recording_steps_extra_share_of_its_block():
    blocks = np.full((3, 50), 0.1)
    blocks[:, -1] = 0.6  # the step that records costs 0.5 s more than the others
    blocks[1] *= 1.3     # a block on a slower machine: the share stays the same
    assert bench.panel_overhead(blocks) == pytest.approx(0.5 / (49 * 0.1 + 0.6))


def test_a_machine_whose_speed_moves_gets_a_warning():
    row = {"cell": "rnn", "hidden": 512, "layers": 1, "check_gflops_range": [130.0, 180.0]}
    assert "moved between 130 and 180 GFLOP/s" in bench.unsteady_warning(row)
    assert bench.unsteady_warning({**row, "check_gflops_range": [170.0, 180.0]}) == ""


def test_every_block_sits_between_two_checks_and_slow_checks_mark_their_blocks_loud():
    calls = []
    speeds = iter([100.0] * 6 + [50.0] + [100.0] * 6)  # the 7th check finds the machine slow
    group = bench.Group({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2, 2)

    def check():
        calls.append("check")
        return next(speeds)

    timings = bench.interleaved_times([group], 2, check)
    assert calls[:4] == ["check", "a", "a", "check"]  # a block of 2 steps, then the next check
    assert len(timings.checks) == 3 * 4 + 1  # 3 rounds (one warm-up) of 4 blocks, and a last
    assert [len(t) for t in timings.seconds.values()] == [2, 2]
    assert all(t.shape == (2, 2) for per_round in timings.seconds.values() for t in per_round)
    # round 1 runs b a a b: check 7 (index 6) lies between its two blocks of a
    assert timings.quiet == {"a": [False, True], "b": [True, True]}


def test_ratios_over_all_rounds_and_over_the_quiet_ones():
    r = bench.ratios("fwd_bwd", np.array([1.3, 1.1, 1.31, 1.29]),
                     np.array([True, False, True, True]))
    assert r == {"fwd_bwd_ratio": 1.295, "fwd_bwd_ratio_range": [1.1, 1.31],
                 "fwd_bwd_ratio_quiet": 1.3, "fwd_bwd_quiet_rounds": 3}
    assert bench.ratios("train", np.array([1.2]), np.array([False]))["train_ratio_quiet"] is None


def test_grid_picks_the_rows_and_refuses_what_it_cannot_read(capsys):
    assert bench.parse_grid("512x1,256x2") == [(512, 1), (256, 2)]
    for bad in ("512", "512x", "x1", "512x0", "axb", "512x1x2"):
        assert main(["bench", "--quick", "--grid", bad]) == 2
        assert "--grid" in capsys.readouterr().err


def test_blas_shapes_times_the_same_products_in_both_libraries(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import blas_shapes

    made = blas_shapes.contestants(32, torch)
    assert made["recurrent (B,H)@(H,H)"][0] == 2 * bench.SEQ_LEN - 1
    for name, (_, calls) in made.items():
        ours, theirs = calls["numpy"](), calls["torch"]().numpy()
        assert ours.shape == theirs.shape, name
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3, err_msg=name)


def rows_planned(monkeypatch, **kwargs) -> list[tuple]:
    """(cell, hidden, layers, rounds, panel_passes) of the rows run_bench would time."""
    planned = []

    def plan(cfg, rounds, torch, context, heard, panel_passes):
        planned.append((cfg.cell, cfg.hidden, cfg.layers, rounds, panel_passes))
        return {}

    monkeypatch.setattr(bench, "bench_row", plan)
    monkeypatch.setattr(bench, "machine_context", lambda torch, peak_size: {})
    bench.run_bench(vs_torch=False, rounds=None, quick=False, **kwargs)
    return planned


def test_the_default_bench_times_every_cell_at_one_size_and_full_the_whole_grid(monkeypatch):
    default = rows_planned(monkeypatch)
    assert default == [(cell, 256, 1, bench.ROUNDS["default"], 1)
                       for cell in ("rnn", "gru", "lstm")]
    full = rows_planned(monkeypatch, full=True)
    assert full == [(cell, hidden, layers, bench.ROUNDS["full"], bench.PASSES)
                    for cell in ("rnn", "gru", "lstm") for hidden, layers in bench.FULL_GRID]
    assert rows_planned(monkeypatch, full=True, grid="512x1", cells="lstm") == [
        ("lstm", 512, 1, bench.ROUNDS["full"], bench.PASSES)]


def test_the_bench_reports_every_round_as_it_ends(capsys):
    lines = []
    bench.run_bench(vs_torch=False, rounds=2, quick=True, cells="gru,rnn", progress=lines.append)
    assert len(lines) == 2 * 3  # two rows of a warm-up and two rounds
    assert lines[0].startswith("bench row 1/2: gru 32x1, warm-up round done, ")
    assert lines[-1].startswith("bench row 2/2: rnn 32x1, round 2/2 done, ")
    assert main(["bench", "--quick", "--rounds", "1", "--cell", "rnn"]) == 0
    out, err = capsys.readouterr()
    assert "round 1/1 done" in err and "done" not in out and "fwd+bwd" in out


def test_bench_refuses_quick_and_full_together(capsys):
    assert main(["bench", "--quick", "--full"]) == 2
    assert "--quick and --full" in capsys.readouterr().err
