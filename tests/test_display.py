"""The displays show each reading's latest value, per-layer values, trend and health flag."""

import io

import pytest
from rich.console import Console

from rnnscope.display import (
    TREND,
    Board,
    LiveDisplay,
    PlainDisplay,
    arrow,
    make_display,
    sparkline,
)


def records(n=12, layers=2):
    """n records 50 steps apart: train_nll falls, sat_ratio climbs past 0.5 (layer 1 first),
    grad_norm jumps 30-fold at the end, eval_nll every 5th record, one layer's profile NaN."""
    out = []
    for i in range(n):
        step = 50 * (i + 1)
        rec = {"step": step, "chars": 2048 * step, "train_nll": 3.0 - 0.1 * i,
               "sat_ratio": 0.1 + 0.05 * i, "grad_norm": 30.0 if i == n - 1 else 1.0,
               "clip_rate": 0.0, "bptt_profile": [[1, 0.8], [64, 0.8**64]]}
        for l in range(layers):
            rec[f"layer{l}.sat_ratio"] = rec["sat_ratio"] + 0.1 * (2 * l - 1)
            rec[f"layer{l}.bptt_profile"] = [[1, 0.8], [64, None if l else 0.8**64]]
        if i % 5 == 4:
            rec["eval_nll"] = 2.5 - 0.1 * i
        out.append(rec)
    return out


def rows_by_key(board):
    return {row.key: row for row in board.rows()}


def test_board_keeps_latest_values_trends_and_flags():
    board = Board()
    for rec in records():
        board.add(rec)
    rows = rows_by_key(board)
    assert list(rows) == ["train_nll", "eval_nll", "sat_ratio", "grad_norm", "clip_rate",
                          "bptt_profile"]
    sat = rows["sat_ratio"]
    assert sat.value == 0.1 + 0.05 * 11 and sat.flag == ">0.5"
    assert [f for _, f in sat.layers] == [">0.5", ">0.5"] and len(sat.trend) == TREND
    assert rows["grad_norm"].flag == "x30"
    assert rows["eval_nll"].value == 2.5 - 0.1 * 9  # the latest, though not in the last record
    assert rows["bptt_profile"].value == pytest.approx(0.8)  # the gain per time step
    assert rows["bptt_profile"].layers[1] == (None, "nan")
    assert rows["train_nll"].flag == rows["clip_rate"].flag == ""


def test_a_layer_out_of_range_flags_the_row_when_the_mean_is_not():
    board = Board()
    for rec in records(n=8):  # sat_ratio ends at 0.45, its layers at 0.35 and 0.55
        board.add(rec)
    sat = rows_by_key(board)["sat_ratio"]
    assert sat.value < 0.5 and sat.flag == "layer1 >0.5"


def test_gated_readings_get_rows_with_their_per_layer_values():
    """An LSTM's record: the gate rows (i, f, o in that order), memory_steps and the c
    readings, each with both layers' values; no row for readings the cell does not have."""
    board = Board()
    rec = {"step": 50, "chars": 1, "train_nll": 2.0, "memory_steps": 3.5, "c_sat_ratio": 0.1}
    for g in "fio":
        for what in ("mean", "left", "right"):
            rec[f"gate.{g}.{what}"] = 0.5
            rec.update({f"layer{l}.gate.{g}.{what}": 0.4 + 0.2 * l for l in range(2)})
    rec.update({f"layer{l}.memory_steps": 3.0 + l for l in range(2)})
    board.add(rec)
    rows = rows_by_key(board)
    assert list(rows) == ["train_nll", "memory_steps", "c_sat_ratio",
                          *[f"gate.{g}.{w}" for g in "ifo" for w in ("mean", "left", "right")]]
    assert [v for v, _ in rows["gate.f.left"].layers] == [0.4, 0.6000000000000001]
    assert [v for v, _ in rows["memory_steps"].layers] == [3.0, 4.0]


def test_single_layer_rows_have_no_per_layer_values():
    board = Board()
    for rec in records(layers=1):
        board.add(rec)
    assert all(row.layers == [] for row in board.rows())


def test_sparkline_spans_lowest_to_highest_and_arrow_follows_the_last_change():
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert sparkline([2.0, 2.0]) == "▄▄"
    assert sparkline([1.0, None, 3.0]) == "▁ █"
    assert sparkline([]) == sparkline([None]) == ""
    assert arrow([1.0, 2.0]) == "↑" and arrow([2.0, 1.0]) == "↓"
    assert arrow([1.0, 1.001]) == "→" and arrow([1.0]) == arrow([None, 1.0]) == " "


def live_run(recs, notes=()):
    console = Console(file=io.StringIO(), force_terminal=True, width=140, record=True)
    display = LiveDisplay(console)
    display.start("runs/test", 0, 600, None)
    for rec in recs:
        display.step(rec["step"], rec["chars"], 1.0)
        display.record(rec)
    for text in notes:
        display.note(text)
    return display, console


def test_live_panel_shows_values_per_layer_values_trends_and_flags():
    display, console = live_run(records(), notes=["exploding_gradients (warning): grad_norm [x30]"])
    table = display.render().renderables[1]
    console.print(table)
    display.finish()
    text = console.export_text()
    assert "step 600" in text  # finish shows where the run ended, whatever the refresh caught
    sat_line = next(line for line in text.splitlines() if line.startswith(" sat_ratio"))
    assert "0.6500" in sat_line and "0.5500 0.7500" in sat_line  # aggregate, then per layer
    assert "▁▂▃▃▄▅▆▆▇█ ↑" in sat_line and "! >0.5" in sat_line
    assert "x30" in text and "bptt gain/step" in text and "per layer" in text
    assert "exploding_gradients (warning): grad_norm [x30]" in text  # verbatim, not rich markup
    styles = {seg.text.strip(): seg.style for seg in console.render(table) if seg.text.strip()}
    assert styles["! >0.5"].color.name == "yellow"
    assert styles["nan"].color.name == "red"


def test_live_panel_runs_by_time_with_a_single_layer():
    console = Console(file=io.StringIO(), force_terminal=True, width=140, record=True)
    display = LiveDisplay(console)
    display.start("runs/test", 0, None, 120.0)
    for rec in records(n=3, layers=1):
        display.step(rec["step"], rec["chars"], 1.0)
        display.record(rec)
    display.finish()
    assert "per layer" not in console.export_text()


def test_plain_lines_carry_values_and_flags():
    out = io.StringIO()
    display = PlainDisplay(out)
    display.start("runs/test", 0, 600, None)
    for rec in records():
        display.record(rec)
    display.note("finding: saturation (warning)")
    lines = out.getvalue().splitlines()
    assert lines[0] == "training runs/test from step 0 for 600 steps"
    assert len(lines) == 1 + 12 + 1 and lines[-1] == "finding: saturation (warning)"
    assert lines[1].startswith("step 50 | train_nll 3.0000 | sat_ratio 0.1000 |")
    assert "eval_nll" in lines[5] and "eval_nll" not in lines[6]  # only when evaluated
    assert "sat_ratio 0.6500 [>0.5]" in lines[12] and "grad_norm 30.0000 [x30]" in lines[12]
    assert lines[12].endswith("k chars/s")


def test_quiet_or_piped_output_gets_plain_lines():
    assert isinstance(make_display(quiet=True), PlainDisplay)
    assert isinstance(make_display(quiet=False), PlainDisplay)  # pytest's stdout is no terminal
