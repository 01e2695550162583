"""The C side (rnnscope/csrc/rnnscope.h, examples/c/minrnn.c): the header printed by
`rnnscope c-header` compiles as strict C99; its readings equal rnnscope's panel functions on the
same arrays; the hand-written C RNN's gradients pass `rnnscope gradcheck --user`, its panel
record equals rnnscope's for the same chunk and step, and its training log goes through doctor
and report."""

import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnscope import panel
from rnnscope.cells import CELLS
from rnnscope.cli import main
from rnnscope.gradcheck import cases
from rnnscope.model import Model
from rnnscope.records import read_run

ROOT = Path(__file__).resolve().parents[1]
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
PROBES = ("mean_abs_h", "sat_ratio", "mean_gain", "dh_norm", "dh_raw_norm")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (.ci/run installs one)")


@pytest.fixture(scope="module")
def header(tmp_path_factory) -> Path:
    """rnnscope.h as `rnnscope c-header` prints it, in a directory of its own."""
    out, printed = tmp_path_factory.mktemp("include"), io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["c-header"]) == 0
    (out / "rnnscope.h").write_text(printed.getvalue())
    return out


def compile_c(source: Path, out: Path, include: Path, *flags: str) -> Path:
    subprocess.run([CC, *CFLAGS, *flags, "-I", str(include), str(source), "-lm", "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def minrnn(header, tmp_path_factory) -> Path:
    return compile_c(ROOT / "examples/c/minrnn.c", tmp_path_factory.mktemp("bin") / "minrnn",
                     header)


def reading(name: str, probe: dict) -> float:
    """rnnscope's reading `name` of one layer's probes (the tanh cell's own for mean_gain)."""
    if name in panel.PROBE_READINGS:
        return panel.PROBE_READINGS[name](probe["h"], probe["dh"], probe["dh_raw"], 0.95)
    return CELLS["rnn"].READINGS[name](None, probe, 0.95)


def test_c_header_prints_the_packaged_header(header):
    assert (header / "rnnscope.h").read_text() == \
        (ROOT / "rnnscope/csrc/rnnscope.h").read_text()
    assert "#include <math.h>" in (header / "rnnscope.h").read_text()


# ---- readings: the header against rnnscope's panel functions on the same arrays


@pytest.mark.parametrize("real", ["double", "float"])
def test_header_readings_equal_the_panels_on_the_engines_own_probes(header, tmp_path, real):
    probe = compile_c(ROOT / "tests/c/panel_probe.c", tmp_path / "probe", header, "-pedantic",
                      f"-DRNNSCOPE_REAL={real}")
    model = Model(13, 16, 2, seed=3, dtype="float64", recurrent_scale=2.5, input_scale=3.0)
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 13, (9, 5)), rng.integers(0, 13, (9, 5))
    probes = model.loss_and_grads(x, y).probes
    for l, p in enumerate(probes):
        for name in ("h", "dh", "dh_raw"):
            a = p[name] if real == "double" else p[name].astype(np.float32)
            if l == 1 and name == "h":
                a = a.astype(a.dtype.newbyteorder(">"))  # big-endian files read as well
            np.save(tmp_path / f"{name}{l}.npy", a)
    subprocess.run([str(probe), str(tmp_path), "2"], check=True)
    record = json.loads((tmp_path / "record.jsonl").read_text())
    expected = {f"layer{l}.{name}": reading(name, p) for l, p in enumerate(probes)
                for name in PROBES}
    for name in PROBES:
        expected[name] = np.mean([expected[f"layer{l}.{name}"] for l in range(2)])
    rtol = 1e-12 if real == "double" else 1e-5
    for key, value in expected.items():
        assert record[key] == pytest.approx(value, rel=rtol, abs=1e-12), key
    assert record["step"] == 7 and record["not_a_number"] is None
    assert record["note"] == 'a "quoted" note'
    copy = np.load(tmp_path / "h0_copy.npy", allow_pickle=False)
    assert copy.dtype == (np.float64 if real == "double" else np.float32)
    assert np.array_equal(copy, probes[0]["h"].astype(copy.dtype))


# ---- the C network's gradients and its panel record on a gradcheck case


@pytest.fixture(scope="module")
def filled_case(minrnn, tmp_path_factory):
    case = tmp_path_factory.mktemp("case") / "case"
    assert main(["gradcheck", "--export", str(case), "--layers", "1", "--hidden", "7",
                 "--seq-len", "20", "--batch", "10", "--vocab", "10"]) == 0
    out = subprocess.run([str(minrnn), "case", str(case), "--lr", "0.7"], check=True,
                         capture_output=True, text=True).stdout
    return case, out


def test_c_network_gradients_pass_gradcheck_user(filled_case, capsys):
    case, out = filled_case
    capsys.readouterr()
    assert main(["gradcheck", "--user", str(case), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "correct"
    assert {c["name"] for c in result["params"]} == {"0.Wxh", "0.Whh", "0.bh", "Why", "by"}
    assert all(c["rel_error"] < 1e-12 for c in result["params"])
    loss = float(out.split()[1])
    assert loss == float(np.load(case / "out" / "loss.npy"))
    assert loss == pytest.approx(float(np.load(case / "loss.npy")), rel=1e-14)


def test_c_network_panel_record_equals_rnnscopes_for_the_same_step(filled_case):
    """One SGD step (lr 0.7, elementwise clipping at 5 of the summed-loss gradient) on the case's
    chunk: every reading the C program recorded against rnnscope's panel on its own engine."""
    case, _ = filled_case
    c = cases.read_case(case)
    model = c.model()
    out = model.loss_and_grads(c.x, c.y, c.h0)
    N = c.x.size
    summed = {k: np.clip(N * g, -5, 5) for k, g in out.grads.items()}
    deltas = {k: -0.7 * g for k, g in summed.items()}
    after = {k: model.params[k] + deltas[k] for k in deltas}
    expected = panel.weight_readings(after, panel.grad_norms(out.grads), deltas)
    for name in PROBES:
        expected[name] = expected[f"layer0.{name}"] = reading(name, out.probes[0])
    expected["grad_norm"] = float(np.sqrt(sum(np.sum(g * g) for g in out.grads.values())))
    expected["train_nll"] = out.loss
    expected["clip_rate"] = sum(int(np.sum(np.abs(N * g) > 5)) for g in out.grads.values()) / \
        sum(g.size for g in out.grads.values())
    record = json.loads((case / "panel.jsonl").read_text())
    assert expected["clip_rate"] > 0  # the step clipped some components
    assert set(record) == set(expected) | {"step", "lr"}
    for key, value in expected.items():
        assert record[key] == pytest.approx(value, rel=1e-10), key


def test_c_network_makes_the_run_directory_it_is_given(minrnn, tmp_path, shared_data):
    text = shared_data / "tinyshakespeare.txt"
    run = tmp_path / "runs" / "new"
    subprocess.run([str(minrnn), "train", str(text), str(run), "--hidden", "8", "--steps", "4",
                    "--log-every", "2", "--eval-every", "4"], check=True, capture_output=True)
    doc, records = read_run(run)
    assert doc["source"] == "c" and [r["step"] for r in records] == [2, 4]
    assert all(np.isfinite(records[-1][k]) for k in ("eval_nll", "eval_nll_fresh",
                                                      "eval_nll_carried", "train_nll_fresh"))
    (tmp_path / "file").write_text("")
    refused = subprocess.run([str(minrnn), "train", str(text), str(tmp_path / "file" / "run")],
                             capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.startswith("minrnn: cannot make the run directory")


def test_c_network_refuses_a_case_of_two_layers(minrnn, tmp_path):
    cases.write_case(tmp_path / "deep", num_layers=2)
    run = subprocess.run([str(minrnn), "case", str(tmp_path / "deep")], capture_output=True,
                         text=True)
    assert run.returncode == 2 and "export it with --layers 1" in run.stderr


# ---- the C network training on real text, its log read by doctor and report


@pytest.mark.slow
def test_c_network_trains_on_shakespeare_and_its_log_goes_through_doctor(minrnn, tmp_path,
                                                                          capsys, shared_data):
    run = tmp_path / "run"
    subprocess.run([str(minrnn), "train", str(shared_data / "tinyshakespeare.txt"), str(run),
                    "--hidden", "48", "--seq", "25", "--batch", "4", "--steps", "300",
                    "--log-every", "15", "--eval-every", "150"], check=True,
                   capture_output=True)
    doc, records = read_run(run)
    assert [r["step"] for r in records] == list(range(15, 301, 15))
    assert doc == {"source": "c", "vocab_size": 65, "train_chars": 1059625, "config": {
        "layers": 1, "lr": 0.1, "cell": "rnn", "hidden": 48, "seq_len": 25, "batch": 4,
        "optimizer": "adagrad", "clip": "elementwise", "clip_value": 5, "eval_frac": 0.05,
        "reset_every": None, "log_every": 15, "eval_every": 150}}
    assert records[-1]["train_nll"] < records[0]["train_nll"] < np.log(65) + 1
    assert all(r["dh_raw_norm"] <= r["dh_norm"] and 0 < r["clip_rate"] < 1 for r in records)
    assert [r["step"] for r in records if "eval_nll" in r] == [150, 300]
    for r in records[9::10]:  # a model that learned text forgets a zero state within the window
        assert abs(r["eval_nll_fresh"] - r["eval_nll_carried"]) < 0.3
        assert r["train_nll_fresh"] < np.log(65)
    capsys.readouterr()
    assert main(["doctor", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] in [f["id"] for f in result["findings"]] + ["healthy"]
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    for figure in ("nll-steps", "saturation", "dh", "grad-norm", "update-ratio"):
        drawn = re.search(f'<figure id="{figure}".*?</figure>', html, re.S).group(0)
        assert "no readings recorded" not in drawn, figure
