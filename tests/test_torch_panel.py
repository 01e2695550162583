"""rnnscope.torch.Panel in ordinary PyTorch loops: its readings equal rnnscope's own engine's on
the mapped weights and the same batch; rnnscope's weight gradients are compared with torch's
.grad; clipping, evals, the run directory, refusals, and the example script end to end."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnscope import panel as rs_panel
from rnnscope.cells import CELLS
from rnnscope.cli import main
from rnnscope.errors import RnnscopeError
from rnnscope.model import Model
from rnnscope.records import read_run
from rnnscope.triage import diagnose_run

torch = pytest.importorskip("torch")
F = torch.nn.functional
from rnnscope.torch import Panel, mapped, state_readings  # noqa: E402  (needs torch)

ROOT = Path(__file__).resolve().parents[1]
V, E, H, T, B = 9, 6, 7, 5, 3
MODULES = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}
RTOL = 1e-9


class Net:
    """A user's char model: input (one-hot, or an embedding), the watched module, a readout."""

    def __init__(self, cell: str, layers: int, batch_first: bool, embed: bool, seed: int = 0,
                 dtype=torch.float64):
        torch.manual_seed(seed)
        self.batch_first, self.embed = batch_first, embed
        self.emb = torch.nn.Embedding(V, E, dtype=dtype) if embed else None
        self.rnn = MODULES[cell](E if embed else V, H, layers, batch_first=batch_first,
                                 dtype=dtype)
        self.head = torch.nn.Linear(H, V, dtype=dtype)

    def parameters(self):
        return [*(self.emb.parameters() if self.embed else []), *self.rnn.parameters(),
                *self.head.parameters()]

    def loss(self, x, y, h):
        """Mean cross-entropy of targets y given ids x, both (T, B), from state h."""
        inp = self.emb(x) if self.embed else F.one_hot(x, V).to(self.head.weight.dtype)
        if self.batch_first:
            inp = inp.transpose(0, 1)
        out, h = self.rnn(inp, h)
        if self.batch_first:
            out = out.transpose(0, 1)
        return F.cross_entropy(self.head(out).reshape(-1, V), y.reshape(-1)), h

    def twin(self, cell: str) -> Model:
        """rnnscope's Model holding the same network: layer 0's input weights absorb the
        embedding (embedding then W_ih equals one-hot times E @ W_ih.T)."""
        dtype = str(self.head.weight.dtype).removeprefix("torch.")
        model = Model(V, H, self.rnn.num_layers, cell=cell, dtype=dtype)
        with torch.no_grad():
            params = mapped(self.rnn, cell, lambda t: t.numpy().copy(), "sum")
            wx = f"0.{CELLS[cell].INPUT[0]}"
            if self.embed:
                params[wx] = self.emb.weight.numpy() @ params[wx]
            params["Why"], params["by"] = self.head.weight.numpy().T, self.head.bias.numpy()
        for k in model.params:
            model.params[k][...] = params[k]
        return model


def numpy_state(h):
    """A torch state as rnnscope's Model takes it: an array, or a tuple (h, c)."""
    return tuple(p.numpy().copy() for p in h) if isinstance(h, tuple) else h.numpy().copy()


def detach(h):
    return tuple(p.detach() for p in h) if isinstance(h, tuple) else h.detach()


def run_loop(net: Net, cell: str, path, steps=6, log_every=3, clip=None, watched=None,
             panel=None, **panel_kw):
    """The user's loop with the panel (on watched, default net.rnn; or the panel given);
    returns the records and, per record step, what rnnscope's own engine reads on the same
    weights and batch."""
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    panel = panel or Panel(net.rnn if watched is None else watched, path, log_every,
                           quiet=True, report=False, **panel_kw)
    rng, data, h = np.random.default_rng([0, 2]), np.random.default_rng(1), None
    expected = {}
    for step in range(1, steps + 1):
        x, y = (torch.from_numpy(data.integers(0, V, (T, B))) for _ in range(2))
        twin = net.twin(cell) if step % log_every == 0 else None
        h0 = None if h is None else numpy_state(h)
        loss, h = net.loss(x, y, h)
        h = detach(h)
        opt.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        if twin is None:
            panel.step(loss, opt)
            continue
        before = [p.detach().clone() for p in net.parameters()]
        grad_norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in net.parameters()))
        panel.step(loss, opt)
        expected[step] = engine_readings(net, cell, twin, x.numpy(), y.numpy(), h0, before, rng)
        expected[step]["grad_norm"] = grad_norm
    panel.close()
    return {r["step"]: r for r in read_run(path)[1]}, expected


def engine_readings(net, cell, twin: Model, x, y, h0, before, rng) -> dict:
    """rnnscope's readings of the step: its engine's probes and gradients on the twin, the
    update the optimizer made, as rnnscope's own training loop computes them."""
    out = twin.loss_and_grads(x, y, h0)
    grads = {k: g for k, g in out.grads.items() if k[0].isdigit()}
    old = {id(p): b for p, b in zip(net.parameters(), before, strict=True)}
    wx = f"0.{CELLS[cell].INPUT[0]}"
    if net.embed:  # the gradient of W_ih.T from that of E @ W_ih.T
        grads[wx] = old[id(net.emb.weight)].numpy().T @ grads[wx]
    after = [p.detach() for p in net.parameters()]
    with torch.no_grad():
        params = mapped(net.rnn, cell, lambda t: t.numpy().copy(), "sum")
        was = mapped(net.rnn, cell, lambda t: old[id(t)].numpy(), "sum")
    deltas = {k: params[k] - was[k] for k in params}  # what the step changed
    rec = rs_panel.measure(out.probes, params, rs_panel.grad_norms(grads), deltas, 0.95, rng,
                            cell)
    d2 = sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before, strict=True))
    rec["update_ratio"] = math.sqrt(d2 / sum(float((b ** 2).sum()) for b in before))
    rec["train_nll"] = out.loss
    return rec


def assert_readings_equal(record: dict, expected: dict) -> None:
    for key, value in expected.items():
        if key == "train_nll":
            continue  # the record's is the mean over the interval
        if isinstance(value, list):
            np.testing.assert_allclose(np.array(record[key]), np.array(value), rtol=RTOL,
                                       err_msg=key)
        elif math.isfinite(value):
            assert record[key] == pytest.approx(value, rel=RTOL, abs=1e-15), key


# ---- readings equal rnnscope's own engine's


@pytest.mark.parametrize("cell", sorted(MODULES))
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batch_first, embed", [(False, False), (True, True)])
def test_panel_readings_equal_rnnscopes_engine_on_the_same_weights_and_batch(
        tmp_path, cell, layers, batch_first, embed):
    net = Net(cell, layers, batch_first, embed)
    records, expected = run_loop(net, cell, tmp_path / "run")
    assert sorted(expected) == [3, 6]
    for step, exp in expected.items():
        rec = records[step]
        assert_readings_equal(rec, exp)
        assert {f"layer{l}.sat_ratio" for l in range(layers)} <= set(rec)
        assert rec["torch_grad_rel_diff"] < 1e-12
        assert rec["clip_rate"] == 0 and rec["chars"] == step * T * B


def test_train_nll_is_the_mean_loss_over_the_interval(tmp_path):
    net = Net("rnn", 1, False, False)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    panel = Panel(net.rnn, tmp_path / "run", 4, quiet=True, report=False)
    losses, data = [], np.random.default_rng(0)
    for _ in range(4):
        x, y = (torch.from_numpy(data.integers(0, V, (T, B))) for _ in range(2))
        loss, _ = net.loss(x, y, None)
        opt.zero_grad()
        loss.backward()
        panel.step(loss, opt)
        losses.append(loss.item())
    panel.close()
    rec = read_run(tmp_path / "run")[1][0]
    assert rec["train_nll"] == pytest.approx(np.mean(losses), rel=1e-12)
    assert rec["steps"] == [1, 4]


def test_a_summed_loss_gives_the_readings_of_the_mean(tmp_path):
    results = []
    for reduction in ("mean", "sum"):
        net = Net("rnn", 2, False, True)
        scale = 1 if reduction == "mean" else T * B
        opt = torch.optim.SGD(net.parameters(), lr=0.3 / scale)
        panel = Panel(net.rnn, tmp_path / reduction, 2, quiet=True, loss_reduction=reduction,
                      report=False)
        data = np.random.default_rng(0)
        for _ in range(2):
            x, y = (torch.from_numpy(data.integers(0, V, (T, B))) for _ in range(2))
            loss = net.loss(x, y, None)[0] * scale
            opt.zero_grad()
            loss.backward()
            panel.step(loss, opt)
        panel.close()
        results.append(read_run(tmp_path / reduction)[1][0])
    mean, summed = results
    for key in ("train_nll", "dh_norm", "dh_raw_norm", "layer1.dh_norm", "grad_norm.0.Whh"):
        assert summed[key] == pytest.approx(mean[key], rel=1e-9), key
    assert summed["torch_grad_rel_diff"] < 1e-12


# ---- the gradient comparison with torch's .grad


def test_clipping_in_the_loop_is_measured_not_mistaken_for_a_wrong_gradient(tmp_path):
    net = Net("rnn", 2, False, True)
    records, expected = run_loop(net, "rnn", tmp_path / "run", clip=1e-3)
    for step in expected:
        assert records[step]["clip_rate"] == 1.0
        assert records[step]["torch_grad_rel_diff"] < 1e-12
        assert records[step]["grad_norm"] > 1e-3  # before clipping
        assert records[step]["dh_norm"] == pytest.approx(expected[step]["dh_norm"], rel=RTOL)


def test_a_loss_term_beyond_the_batch_shows_as_a_gradient_difference(tmp_path, capsys):
    net = Net("rnn", 1, False, False)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    panel = Panel(net.rnn, tmp_path / "run", 2, report=False)
    data = np.random.default_rng(0)
    for _ in range(4):
        x, y = (torch.from_numpy(data.integers(0, V, (T, B))) for _ in range(2))
        loss = net.loss(x, y, None)[0] + 0.1 * net.rnn.weight_hh_l0.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        panel.step(loss, opt)
    panel.close()
    out = capsys.readouterr().out
    assert out.count("torch's .grad of the rnn differs from rnnscope's backward") == 1
    assert "another loss term" in out
    assert all(r["torch_grad_rel_diff"] > 1e-3 for r in read_run(tmp_path / "run")[1]
               if "torch_grad_rel_diff" in r)


def test_a_loss_that_reads_h_n_is_followed_exactly(tmp_path):
    net = Net("rnn", 2, False, True)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    panel = Panel(net.rnn, tmp_path / "run", 1, quiet=True, report=False)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, V, (T, B)))
    out, h_n = net.rnn(net.emb(x))
    loss = out.pow(2).mean() + h_n.sum()  # the last state reaches the loss twice
    loss.backward()
    panel.step(loss, opt)
    panel.close()
    assert read_run(tmp_path / "run")[1][0]["torch_grad_rel_diff"] < 1e-12


def test_a_loss_that_reads_the_lstm_c_n_is_named_as_the_cause(tmp_path, capsys):
    net = Net("lstm", 1, False, True)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    panel = Panel(net.rnn, tmp_path / "run", 1, report=False)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, V, (T, B)))
    out, (h_n, c_n) = net.rnn(net.emb(x))
    loss = out.pow(2).mean() + h_n.sum() + c_n.sum()
    loss.backward()
    panel.step(loss, opt)
    panel.close()
    assert "likely a loss that reads c_n" in capsys.readouterr().out


def test_a_frozen_weight_still_gets_its_readings(tmp_path):
    net = Net("gru", 1, False, True)
    net.rnn.weight_ih_l0.requires_grad_(False)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    panel = Panel(net.rnn, tmp_path / "run", 1, quiet=True, report=False)
    loss, _ = net.loss(*(torch.from_numpy(np.random.default_rng(i).integers(0, V, (T, B)))
                         for i in range(2)), None)
    loss.backward()
    panel.step(loss, opt)
    panel.close()
    rec = read_run(tmp_path / "run")[1][0]
    assert rec["update_ratio.0.Wx"] == 0 and rec["update_ratio.0.Wh"] > 0
    assert "torch_grad_rel_diff" not in rec and rec["grad_norm.0.Wx"] > 0


# ---- the run directory and the loop's other calls


def test_eval_close_and_the_run_directory(tmp_path):
    net = Net("rnn", 1, True, True)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    with Panel(net.rnn, tmp_path / "run", 4, quiet=True, vocab_size=V) as panel:
        data = np.random.default_rng(0)
        for step in range(1, 11):
            x, y = (torch.from_numpy(data.integers(0, V, (T, B))) for _ in range(2))
            loss, _ = net.loss(x, y, None)
            opt.zero_grad()
            loss.backward()
            panel.step(loss, opt)
            if step % 5 == 0:
                with torch.no_grad():
                    carried = net.loss(y, x, None)[1]  # a state another text left
                    state = state_readings(lambda text, h0: net.loss(*text, h0)[0].item(),
                                           (x, y), (y, x), carried)
                    panel.eval(net.loss(x, y, None)[0].item(), **state)
    path = tmp_path / "run"
    doc, records = read_run(path)
    sigma = doc["config"].pop("whh_sigma_init")  # the init the triage compares a grown one with
    assert sigma == pytest.approx(records[0]["whh_sigma_max"], rel=0.5)
    assert doc["config"] == {"cell": "rnn", "hidden": H, "layers": 1, "dropout": 0.0,
                             "log_every": 4, "sat_threshold": 0.95, "optimizer": "adam",
                             "lr": 0.01, "weight_decay": 0, "seq_len": T, "batch": B}
    assert doc["source"] == "pytorch"
    assert doc["vocab_size"] == V
    assert [r["step"] for r in records] == [4, 5, 8, 10]
    assert [r["step"] for r in records if "eval_nll" in r] == [5, 10]
    assert records[1]["eval_nll_fresh"] == records[1]["eval_nll"]  # the same text, zero state
    assert records[1]["eval_nll_carried"] != records[1]["eval_nll"]
    with pytest.raises(RnnscopeError, match="eval_nll_fresh="):
        panel.eval(2.0, fresh=1.0)
    assert records[-1]["final"] and records[-1]["steps"] == [9, 10]
    assert records[-1]["chars"] == 10 * T * B  # the eval passes are not training characters
    assert json.loads((path / "triage.json").read_text()) == diagnose_run(path)
    assert "<svg" in (path / "report.html").read_text()


def test_a_record_line_per_record_unless_quiet(tmp_path, capsys):
    for quiet in (False, True):
        net = Net("rnn", 1, False, False)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        panel = Panel(net.rnn, tmp_path / str(quiet), 2, quiet=quiet, report=False)
        for _ in range(4):
            loss = net.loss(torch.zeros(T, B, dtype=torch.long), torch.ones(T, B,
                                                                            dtype=torch.long),
                            None)[0]
            opt.zero_grad()
            loss.backward()
            panel.step(loss, opt)
        panel.close()
        out = capsys.readouterr().out
        lines = [line for line in out.splitlines() if line.startswith("step ")]
        assert len(lines) == (0 if quiet else 2) and (out == "") == quiet


def test_an_unbatched_input_reads_as_a_batch_of_one(tmp_path):
    net = Net("rnn", 1, False, True)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    panel = Panel(net.rnn, tmp_path / "run", 1, quiet=True, report=False)
    out, _ = net.rnn(net.emb(torch.arange(T) % V))  # (T, E): no batch dimension
    loss = out.pow(2).mean()
    loss.backward()
    panel.step(loss, opt)
    panel.close()
    rec = read_run(tmp_path / "run")[1][0]
    assert rec["chars"] == T and rec["torch_grad_rel_diff"] < 1e-12


# ---- what the panel refuses


@pytest.mark.parametrize("module, message", [
    (lambda: torch.nn.LSTM(3, 4, bidirectional=True), "bidirectional"),
    (lambda: torch.nn.RNN(3, 4, nonlinearity="relu"), "nonlinearity='relu'"),
    (lambda: torch.nn.LSTM(3, 4, proj_size=2), "proj_size"),
    (lambda: torch.nn.Linear(3, 4), "not Linear"),
    (lambda: torch.nn.RNN(3, 4).half(), "float32 or float64"),
])
def test_what_the_panel_cannot_watch_is_refused_with_one_clear_error(tmp_path, module, message):
    with pytest.raises(RnnscopeError, match=message):
        Panel(module(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_packed_sequence_and_a_used_run_directory_are_refused(tmp_path):
    rnn = torch.nn.RNN(3, 4)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RnnscopeError, match="already exists and is not empty"):
        Panel(rnn, tmp_path / "used")
    Panel(rnn, tmp_path / "run", quiet=True)
    packed = torch.nn.utils.rnn.pack_sequence([torch.zeros(3, 3), torch.zeros(2, 3)])
    with pytest.raises(RnnscopeError, match="pad the sequences"):
        rnn(packed)


# ---- the example script


@pytest.mark.slow
def test_the_example_script_trains_with_the_panel_end_to_end(tmp_path, small_corpus):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, str(ROOT / "examples/torch_char_lstm.py"),
                          str(small_corpus), "--steps", "40", "--hidden", "32", "--batch", "8",
                          "--seq", "16", "--eval-every", "20", "--run-dir", str(run)],
                         cwd=ROOT, check=True, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}).stdout
    doc, records = read_run(run)
    assert doc["config"]["cell"] == "lstm" and doc["config"]["optimizer"] == "adam"
    assert [r["step"] for r in records if "eval_nll" in r] == [20, 40]
    assert "verdict:" in out and (run / "report.html").exists()


# ---- the loops people write: accumulation, autocast, compile, a moved module, an exception


def batches(seed: int, n: int, b: int = B):
    data = np.random.default_rng(seed)
    return [tuple(torch.from_numpy(data.integers(0, V, (T, b))) for _ in range(2))
            for _ in range(n)]


@pytest.mark.parametrize("cell", sorted(MODULES))
def test_gradient_accumulation_reads_the_micro_batches_as_one_batch(tmp_path, cell):
    """Three forward and backward passes (each loss / 3), then panel.step: the record is
    rnnscope's engine on the three micro-batches side by side, and torch's accumulated .grad
    matches it."""
    net, micro = Net(cell, 2, False, False), 3
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    panel = Panel(net.rnn, tmp_path / "run", 2, quiet=True, report=False)
    rng, expected = np.random.default_rng([0, 2]), {}
    for step in range(1, 5):
        parts = batches(step, micro)
        twin, before = net.twin(cell), [p.detach().clone() for p in net.parameters()]
        opt.zero_grad()
        for x, y in parts:
            (net.loss(x, y, None)[0] / micro).backward()
        grad_norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in net.parameters()))
        panel.step(net.loss(*parts[-1], None)[0], opt)
        if step % 2 == 0:
            x, y = (torch.cat(a, dim=1).numpy() for a in zip(*parts, strict=True))
            expected[step] = engine_readings(net, cell, twin, x, y, None, before, rng)
            expected[step]["grad_norm"] = grad_norm
    panel.close()
    recs = {r["step"]: r for r in read_run(tmp_path / "run")[1]}
    for step, want in expected.items():
        assert_readings_equal(recs[step], want)
        assert recs[step]["torch_grad_rel_diff"] < 1e-12


def test_micro_batches_of_different_lengths_leave_the_layer_readings_out(tmp_path, capsys):
    net = Net("gru", 1, False, False)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    with Panel(net.rnn, tmp_path / "run", 1, report=False) as panel:
        for x, y in batches(0, 2):
            net.loss(x, y, None)[0].backward()
            net.loss(x[:2], y[:2], None)[0].backward()  # a shorter chunk, the same step
            panel.step(torch.tensor(1.0), opt)
    assert "micro-batches have different lengths (T = [2, 5]), so the record has no layer " \
           "readings" in capsys.readouterr().out
    assert all("sat_ratio" not in r for r in read_run(tmp_path / "run")[1])


def test_autocast_bfloat16_reads_the_full_precision_layers(tmp_path, capsys):
    """torch.autocast runs the LSTM in bfloat16; rnnscope's pass runs its float32 weights on
    the same input: the forward readings are bit for bit those of rnnscope's float32 engine,
    the backward ones within bfloat16's precision of the gradient that reached the module, and
    torch's .grad is compared without a false alarm."""
    net = Net("lstm", 1, False, False, dtype=torch.float32)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    panel = Panel(net.rnn, tmp_path / "run", 1, report=False)
    (x, y), = batches(3, 1)
    twin = net.twin("lstm")
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = net.loss(x, y, None)[0]
    assert net.rnn(F.one_hot(x, V).float())[0].dtype == torch.float32  # outside: float32
    loss.backward()
    panel.step(loss, opt)
    panel.close()
    rec = read_run(tmp_path / "run")[1][0]
    out = twin.loss_and_grads(x.numpy(), y.numpy())
    want = rs_panel.measure(out.probes, twin.params, rs_panel.grad_norms(out.grads),
                             {k: np.zeros_like(v) for k, v in twin.params.items()}, 0.95,
                             np.random.default_rng([0, 2]), "lstm")
    for key in ("mean_abs_h", "sat_ratio", "mean_abs_c", "c_sat_ratio", "gate.f.mean"):
        assert rec[key] == want[key], key
    assert rec["dh_norm"] == pytest.approx(want["dh_norm"], rel=2e-2)
    assert 0 < rec["torch_grad_rel_diff"] < 5e-2
    assert "differs" not in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("wrap", ["module", "model"])
def test_a_torch_compiled_module_is_watched_exactly(tmp_path, wrap):
    """torch.compile (its default backend, inductor): the compiled module itself, or the
    module inside a compiled model (compiled.rnn), reads as the uncompiled one does."""
    net = Net("gru", 2, True, True)
    compiled = torch.compile(net.rnn)
    watched = compiled if wrap == "module" else net.rnn
    net.rnn = compiled
    recs, expected = run_loop(net, "gru", tmp_path / "run", watched=watched)
    for step, want in expected.items():
        assert_readings_equal(recs[step], want)
        assert recs[step]["torch_grad_rel_diff"] < 1e-12


def test_a_module_moved_to_float64_after_the_panel_is_read_in_float64(tmp_path, capsys):
    """The Panel made on float32 weights; the model moved with .double() before training:
    the readings are float64's (relative 1e-9), with no false gradient alarm."""
    net = Net("lstm", 2, False, False, dtype=torch.float32)
    panel = Panel(net.rnn, tmp_path / "run", 3, quiet=True, report=False)
    for module in (net.rnn, net.head):
        module.double()
    recs, expected = run_loop(net, "lstm", tmp_path / "run", panel=panel)
    for step, want in expected.items():
        assert_readings_equal(recs[step], want)
        assert recs[step]["torch_grad_rel_diff"] < 1e-12
    assert "differs" not in capsys.readouterr().out


def test_a_module_moved_to_half_precision_is_refused_at_its_next_forward(tmp_path):
    net = Net("rnn", 1, False, False, dtype=torch.float32)
    Panel(net.rnn, tmp_path / "run", 1, quiet=True, report=False)
    net.rnn.to(torch.bfloat16)
    with pytest.raises(RnnscopeError, match=r"^rnnscope.torch.Panel reads float32 or float64 "
                       r"weights, and the watched module's are now torch.bfloat16; keep"):
        net.rnn(torch.zeros(T, B, V, dtype=torch.bfloat16))


@pytest.mark.parametrize("fails_at", [1, 5])
def test_an_exception_in_the_loop_leaves_a_readable_run_and_goes_on(tmp_path, capsys,
                                                                    fails_at):
    """`with Panel(...)`: the loop raises before its first step or after some records; the
    exception reaches the caller, and doctor and report read the run."""
    net = Net("lstm", 1, False, False)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    path = tmp_path / "run"
    with pytest.raises(ZeroDivisionError), \
            Panel(net.rnn, path, 2, quiet=True, report=False) as panel:
        for step, (x, y) in enumerate(batches(0, 6), start=1):
            loss = net.loss(x, y, None)[0]
            if step == fails_at:
                raise ZeroDivisionError("a bug in the loop")
            opt.zero_grad()
            loss.backward()
            panel.step(loss, opt)
    assert [r["step"] for r in read_run(path)[1]] == ([] if fails_at == 1 else [2, 4])
    capsys.readouterr()
    assert main(["doctor", str(path)]) == 0 and main(["report", str(path)]) == 0
    assert (path / "report.html").exists() and not list(path.glob(".*"))
