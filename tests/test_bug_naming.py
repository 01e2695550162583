"""`gradcheck --user` names the mistake in a user's BPTT.

The users here are independent implementations written in this file as min-char-rnn writes its
loop (column vectors, (out, in) weight matrices, one stream at a time, a dict of states with
h[-1] the carried state), not derived from rnnscope's catalogue; each may carry one mistake.
They answer an exported case the way the docs tell a user to, and the real CLI judges them.
"""

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnscope.cli import main
from rnnscope.gradcheck.cases import load_arrays
from rnnscope.model import Model

CATALOGUED = ["missing_dh_next", "dwhh_uses_h_t", "tanh_derivative_wrong", "whh_not_transposed",
              "dh_next_before_tanh", "overwrite_not_accumulate",
              "softmax_grad_missing_minus_one", "loss_scale_mismatch", "gradients_not_reset"]


def min_char_rnn(P, x, y, h0, acc, bug=None, dtype=np.float64):
    """The user's mean loss, its gradients added into `acc` (the caller keeps those arrays from
    call to call, in (out, in) layout) and the states (L, T, B, H). `bug` names one mistake."""
    L = sum(k.endswith(".Whh") for k in P)
    Wxh = [P[f"{l}.Wxh"].T.astype(dtype) for l in range(L)]   # (H, in)
    Whh = [P[f"{l}.Whh"].T.astype(dtype) for l in range(L)]   # (H, H)
    bh = [P[f"{l}.bh"].astype(dtype) for l in range(L)]
    Why, by = P["Why"].T.astype(dtype), P["by"].astype(dtype)  # (V, H), (V,)
    (T, B), (V, H) = x.shape, Why.shape
    N = T * B
    if bug != "gradients_not_reset":
        for g in acc.values():
            g[...] = 0
    loss, states = 0.0, np.zeros((L, T, B, H), dtype)
    for s in range(B):
        hs = [{-1: h0[l, s].astype(dtype)} for l in range(L)]
        xs, ps = {}, {}
        for t in range(T):
            xs[t] = np.zeros(V, dtype)
            xs[t][x[t, s]] = 1
            inp = xs[t]
            for l in range(L):
                a = Wxh[l] @ inp + Whh[l] @ hs[l][t - 1]
                if bug != "forward_without_bias":
                    a = a + bh[l]
                hs[l][t] = states[l, t, s] = np.tanh(a)
                inp = hs[l][t]
            e = np.exp(Why @ inp + by - np.max(Why @ inp + by))
            ps[t] = e / np.sum(e)
            loss += -np.log(ps[t][y[t, s]]) / N
        dhnext = [np.zeros(H, dtype) for _ in range(L)]
        for t in reversed(range(T)):
            dy = np.copy(ps[t])
            if bug != "softmax_grad_missing_minus_one":
                dy[y[t, s]] -= 1
            if bug != "loss_scale_mismatch":
                dy /= N
            acc["Why"] += np.outer(dy, hs[L - 1][t])
            acc["by"] += dy
            dh_above = Why.T @ dy
            for l in reversed(range(L)):
                dh = dh_above if bug == "missing_dh_next" else dh_above + dhnext[l]
                dhraw = tanh_backward(dh, hs[l][t], bug)
                inp = xs[t] if l == 0 else hs[l - 1][t]
                acc[f"{l}.Wxh"] += np.outer(dhraw, inp)
                acc[f"{l}.bh"] += dhraw
                h_before = hs[l][t] if bug == "dwhh_uses_h_t" else hs[l][t - 1]
                if bug == "overwrite_not_accumulate":
                    acc[f"{l}.Whh"][...] = np.outer(dhraw, h_before)
                elif bug == "dwhh_transposed":
                    acc[f"{l}.Whh"] += np.outer(h_before, dhraw)
                else:
                    acc[f"{l}.Whh"] += np.outer(dhraw, h_before)
                if bug == "whh_not_transposed":
                    dhnext[l] = Whh[l] @ dhraw
                elif bug == "dh_next_before_tanh":
                    dhnext[l] = Whh[l].T @ dh
                elif bug == "truncated_every_3_steps" and (T - t) % 3 == 0:
                    dhnext[l] = np.zeros(H, dtype)
                else:
                    dhnext[l] = Whh[l].T @ dhraw
                dh_above = Wxh[l].T @ dhraw
    return loss, states


def tanh_backward(dh, h, bug):
    if bug == "tanh_derivative_wrong":
        return (1 - h) * dh
    if bug == "tanh_derivative_of_the_preactivation":
        return (1 - np.arctanh(h) ** 2) * dh
    if bug == "tanh_derivative_forgotten":
        return dh
    return (1 - h * h) * dh


def answer(path, bug=None, dtype=np.float64, per_length=False, calls=1, forward=False,
           summed_loss=False):
    """Play the user: read the case, run the implementation, add the answers to the case (an
    .npz rewritten with numpy.savez, or .npy files in the directory). calls: how many times
    the one-call answer runs (a second call shows unreset gradients)."""
    arrays = load_arrays(path)
    P = {k: v for k, v in arrays.items() if k in ("Why", "by") or k[0].isdigit()}
    x, y = arrays["x"], arrays["y"]
    h0 = arrays.get("h0", np.zeros((sum(k.endswith(".Whh") for k in P), x.shape[1],
                                    P["Why"].shape[0])))
    acc = {k: np.zeros(v.T.shape, dtype) for k, v in P.items()}
    out = {}
    for t in range(1, x.shape[0] + 1) if per_length else [x.shape[0]] * calls:
        loss, states = min_char_rnn(P, x[:t], y[:t], h0, acc, bug, dtype)
        prefix = f"grad/T{t}/" if per_length else "grad/"
        out.update({prefix + k: g.T.copy() for k, g in acc.items()})
    if forward or summed_loss:
        out["out/loss"] = np.asarray(loss * x.size if summed_loss else loss, dtype)
    if forward:
        out.update({f"out/{l}.h": h for l, h in enumerate(states)})
    if path.is_dir():
        for k, v in out.items():
            np.save(path / f"{k}.npy", v)
    else:
        np.savez(path, **arrays, **out)


def export(tmp_path, *flags, name="case.npz"):
    path = tmp_path / name
    assert main(["gradcheck", "--export", str(path), *map(str, flags)]) == 0
    return path


def judge(capsys, path):
    capsys.readouterr()  # what the export printed
    code = main(["gradcheck", "--user", str(path), "--json"])
    out, err = capsys.readouterr()
    assert err == ""
    result = json.loads(out)
    assert set(result) == {"verdict", "params", "evidence"}
    assert code == (0 if result["verdict"] == "correct" else 1)
    return result


@pytest.mark.parametrize("per_length", [False, True], ids=["one_call", "per_length"])
@pytest.mark.parametrize("bug", CATALOGUED)
def test_each_catalogued_mistake_is_named(capsys, tmp_path, bug, per_length):
    if bug == "gradients_not_reset" and not per_length:
        pytest.skip("one call cannot show unreset gradients (test_one_call_is_blind_to...)")
    case = export(tmp_path)
    answer(case, bug, per_length=per_length)
    result = judge(capsys, case)
    assert result["verdict"] == bug
    assert result["evidence"]["mistake"] == bug and result["evidence"]["also_matches"] == []
    assert {"what", "where", "yours", "fix"} <= set(result["evidence"])
    assert any(p["verdict"] == "wrong" for p in result["params"])


@pytest.mark.parametrize("bug", ["whh_not_transposed", "gradients_not_reset",
                                 "overwrite_not_accumulate"])
def test_a_float32_implementation_is_named_too(capsys, tmp_path, bug):
    case = export(tmp_path, name="case")
    answer(case, bug, np.float32, per_length=True)
    result = judge(capsys, case)
    assert result["verdict"] == bug and result["evidence"]["also_matches"] == []


@pytest.mark.parametrize("bug", ["tanh_derivative_of_the_preactivation",
                                 "tanh_derivative_forgotten"])
def test_every_wrong_tanh_derivative_is_named(capsys, tmp_path, bug):
    case = export(tmp_path)
    answer(case, bug)
    result = judge(capsys, case)
    assert result["verdict"] == "tanh_derivative_wrong"
    assert ("a[l][t]" if "preactivation" in bug else "dh_raw = dh") in \
        result["evidence"]["yours"]


def test_overwriting_one_gradient_names_it_and_where(capsys, tmp_path):
    """min_char_rnn overwrites dWhh only, one stream at a time: the rest accumulate."""
    case = export(tmp_path, "--layers", 3)
    answer(case, "overwrite_not_accumulate", per_length=True)
    result = judge(capsys, case)
    assert result["verdict"] == "overwrite_not_accumulate"
    assert result["evidence"]["shows_in"] == ["0.Whh", "1.Whh", "2.Whh"]
    assert "last stream" in result["evidence"]["yours"]
    assert result["evidence"]["first_wrong_T"] == 1  # B = 3 streams: one kept from T = 1


def test_missing_dh_next_is_right_at_one_step_and_wrong_from_two(capsys, tmp_path):
    case = export(tmp_path)
    answer(case, "missing_dh_next", per_length=True)
    evidence = judge(capsys, case)["evidence"]
    assert (evidence["right_up_to_T"], evidence["first_wrong_T"]) == (1, 2)
    assert {"Why", "by"}.isdisjoint(evidence["shows_in"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("per_length", [False, True], ids=["one_call", "per_length"])
def test_a_correct_implementation_is_correct(capsys, tmp_path, dtype, per_length):
    case = export(tmp_path, "--layers", 3)
    answer(case, None, dtype, per_length=per_length, forward=True)
    result = judge(capsys, case)
    assert result["verdict"] == "correct"
    assert result["evidence"]["precision"] == np.dtype(dtype).name
    worst = max(p["rel_error"] for p in result["params"])
    assert worst < (1e-12 if dtype == np.float64 else 1e-5)
    blind = {b["mistake"] for b in result["evidence"]["blind_to"]}
    assert blind == (set() if per_length else {"gradients_not_reset"})


@pytest.mark.parametrize("bug", [None, "dwhh_uses_h_t"])
def test_a_case_without_h0_starts_from_zeros(capsys, tmp_path, bug):
    case = export(tmp_path, "--no-h0")
    assert "h0" not in load_arrays(case)
    answer(case, bug)
    assert judge(capsys, case)["verdict"] == (bug or "correct")


def test_a_case_too_short_to_show_a_mistake_says_so(capsys, tmp_path):
    case = export(tmp_path, "--seq-len", 1)
    answer(case, "missing_dh_next")
    result = judge(capsys, case)
    assert result["verdict"] == "correct"
    assert "missing_dh_next" in {b["mistake"] for b in result["evidence"]["blind_to"]}


def test_a_truncated_bptt_is_unknown_and_wrong_from_length_4(capsys, tmp_path):
    case = export(tmp_path, "--seq-len", 8)
    answer(case, "truncated_every_3_steps", per_length=True)
    result = judge(capsys, case)
    assert result["verdict"] == "unknown_bug"
    e = result["evidence"]
    assert (e["right_up_to_T"], e["first_wrong_T"]) == (3, 4)
    wrong = {r["param"]: r for r in e["wrong"]}
    assert set(wrong) == {"0.Wxh", "0.Whh", "0.bh", "1.Wxh", "1.Whh", "1.bh"}
    assert set(e["right"]) == {"Why", "by"}
    for r in wrong.values():
        assert 0 < r["norm_ratio"] and -1 <= r["cosine"] < 1 and not r["transposed"]


def test_a_transposed_recurrent_gradient_is_unknown_and_shown_transposed(capsys, tmp_path):
    case = export(tmp_path)
    answer(case, "dwhh_transposed")
    e = judge(capsys, case)["evidence"]
    assert [r["param"] for r in e["wrong"]] == ["0.Whh", "1.Whh"]
    assert all(r["transposed"] and abs(r["norm_ratio"] - 1) < 1e-12 for r in e["wrong"])


def test_an_unknown_bug_under_a_checked_forward_pass_is_in_the_backward_pass(capsys, tmp_path):
    case = export(tmp_path, "--layers", 3)
    answer(case, "dwhh_transposed", per_length=True, forward=True)
    capsys.readouterr()
    assert main(["gradcheck", "--user", str(case)]) == 1
    assert "your forward pass (out/) matches rnnscope's" in capsys.readouterr().out
    e = judge(capsys, case)["evidence"]
    assert e["forward"] == "checked" and e["layer"] == 2
    assert "in the gradient of 2.Whh" in e["where"] and e["below"] == [1, 0]


def test_two_calls_into_unreset_gradients_are_a_factor_2_not_a_named_mistake(capsys,
                                                                             tmp_path):
    """Twice the right gradient matches no catalogued mistake on this case (a loss scale is
    N, T or B): never name what does not match; say what is seen."""
    case = export(tmp_path)
    answer(case, "gradients_not_reset", calls=2)
    result = judge(capsys, case)
    assert result["verdict"] == "unknown_bug"
    assert result["evidence"]["common_factor"] == pytest.approx(2, abs=1e-12)


def test_a_forward_bug_is_a_forward_mismatch_at_its_first_step(capsys, tmp_path):
    case = export(tmp_path)
    answer(case, "forward_without_bias", forward=True)
    result = judge(capsys, case)
    assert result["verdict"] == "forward_mismatch"
    assert (result["evidence"]["step"], result["evidence"]["layer"]) == (0, 0)


def test_a_wrong_loss_alone_is_a_forward_mismatch(capsys, tmp_path):
    case = export(tmp_path)
    answer(case, "forward_without_bias")
    arrays = load_arrays(case)
    np.savez(case, **arrays, **{"out/loss": arrays["loss"] + 0.01})
    result = judge(capsys, case)
    assert result["verdict"] == "forward_mismatch"
    assert result["evidence"]["loss"]["right"] == pytest.approx(float(arrays["loss"]))


def test_a_summed_loss_with_mean_gradients_is_a_loss_scale_mismatch(capsys, tmp_path):
    case = export(tmp_path)
    answer(case, None, summed_loss=True)
    assert judge(capsys, case)["verdict"] == "loss_scale_mismatch"


def test_the_summed_loss_gradients_are_n_times_the_right_ones(capsys, tmp_path):
    case = export(tmp_path, "--seq-len", 7, "--batch", 3)
    answer(case, "loss_scale_mismatch", summed_loss=True)
    result = judge(capsys, case)
    assert result["verdict"] == "loss_scale_mismatch"
    assert result["evidence"]["factor"] == pytest.approx(21)


def test_the_text_output_gives_the_table_then_the_diagnosis(capsys, tmp_path):
    case = export(tmp_path)
    answer(case, "whh_not_transposed")
    capsys.readouterr()
    assert main(["gradcheck", "--user", str(case)]) == 1
    out = capsys.readouterr().out
    table, diagnosis = out.split("\n\n")
    assert table.splitlines()[0].split()[:3] == ["parameter", "entries", "rel"]
    assert "0.Whh" in table and "wrong" in table
    assert diagnosis.startswith("verdict: whh_not_transposed")
    assert "where: dh_next[l] = dh_raw @ Whh.T" in diagnosis
    assert "yours: dh_next[l] = dh_raw @ Whh\n" in diagnosis and "fix:" in diagnosis


# ------------------------------------------------------------------- the exchange from any language


def npy_bytes(a: np.ndarray) -> bytes:
    """The .npy format written by hand, as a C program writes it: magic, version 1.0, header
    dict padded with spaces to a multiple of 64 bytes, then the raw little-endian data."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {a.shape!r}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + \
        a.astype("<f4").tobytes()


def test_a_directory_of_npy_files_written_as_c_writes_them_is_checked(capsys, tmp_path):
    case = export(tmp_path, name="case")
    assert {"grad", "out", "grad/T1", "grad/T6"} <= {
        p.relative_to(case).as_posix() for p in case.rglob("*") if p.is_dir()}
    answer(case, None, np.float32, per_length=True)  # then overwrite with hand-written files
    for file in (case / "grad").rglob("*.npy"):
        file.write_bytes(npy_bytes(np.load(file)))
    result = judge(capsys, case)
    assert result["verdict"] == "correct" and result["evidence"]["precision"] == "float32"


def test_the_exported_case_has_asymmetric_whh_and_nonzero_biases(tmp_path):
    arrays = load_arrays(export(tmp_path, "--layers", 2))
    for l in range(2):
        Whh = arrays[f"{l}.Whh"]
        assert np.linalg.norm(Whh - Whh.T) > 0.5 * np.linalg.norm(Whh)
        assert np.all(arrays[f"{l}.bh"] != 0)
    assert np.all(arrays["by"] != 0) and arrays["h0"].shape == (2, 3, 8)


def test_export_never_overwrites_a_case(capsys, tmp_path):
    case = export(tmp_path)
    assert main(["gradcheck", "--export", str(case)]) == 2
    assert "already exists" in capsys.readouterr().err


def spoil(case, **changes):
    arrays = load_arrays(case)
    arrays.update(changes)
    np.savez(case, **{k: v for k, v in arrays.items() if v is not None})


@pytest.mark.parametrize("change, says", [
    ({"grad/0.Whh": None}, "has no grad/0.Whh"),
    ({"x": None}, "not an rnnscope case"),
    ({"1.bh": None}, "no parameter 1.bh"),
    ({"grad/0.Wxh": np.zeros((8, 11))}, "grad/0.Wxh in"),
    ({"grad/Why": np.full((8, 11), np.nan)}, "not finite"),
    ({"grad/by": np.zeros(11, dtype=np.int32)}, "float32 or float64"),
    ({"grad/0.Wxx": np.zeros(3)}, "names no parameter"),
    ({"grad/T2/by": np.zeros(11)}, "not both"),
    ({"h0": np.zeros((2, 3))}, "h0 in"),
    ({"out/0.h": np.zeros((5, 3, 8))}, "out/0.h in"),
    ({"y": np.zeros((6, 3))}, "integer array"),
])
def test_a_bad_case_is_refused_in_one_line(capsys, tmp_path, change, says):
    case = export(tmp_path)
    answer(case)
    spoil(case, **change)
    assert main(["gradcheck", "--user", str(case)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and says in err, err


def test_an_unreadable_case_is_refused_in_one_line(capsys, tmp_path):
    case = tmp_path / "case.npz"
    case.write_bytes(b"not a zip")
    assert main(["gradcheck", "--user", str(case)]) == 2
    assert "not a readable .npz" in capsys.readouterr().err


# ------------------------------------------------------------------------------ docs/gradcheck.md

DOCS = Path(__file__).resolve().parents[1] / "docs" / "gradcheck.md"


def docs_block(language: str) -> str:
    return DOCS.read_text().split(f"```{language}\n")[1].split("```")[0]


def test_the_numpy_workflow_of_the_docs_is_judged_correct(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    export(tmp_path, "--layers", 2)
    exec(compile(docs_block("python"), str(DOCS), "exec"), {})
    result = judge(capsys, tmp_path / "case.npz")
    assert result["verdict"] == "correct" and "first_wrong_T" not in result["evidence"]
    assert {"grad/T6/0.Whh", "out/loss", "out/1.h"} <= set(load_arrays(tmp_path / "case.npz"))


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_c_npy_writer_of_the_docs_writes_what_numpy_reads(tmp_path):
    main_c = """
int main(int argc, char **argv)
{
    double a[6] = {1, 2, 3, 4, 5, 6.5}, loss = 2.25;
    long shape[2] = {2, 3};
    return npy_write(argv[1], a, 2, shape) || npy_write(argv[2], &loss, 0, shape);
}
"""
    (tmp_path / "w.c").write_text(docs_block("c") + main_c)
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "w"),
                    str(tmp_path / "w.c")], check=True)
    subprocess.run([str(tmp_path / "w"), str(tmp_path / "a.npy"), str(tmp_path / "loss.npy")],
                   check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), [[1, 2, 3], [4, 5, 6.5]])
    loss = np.load(tmp_path / "loss.npy")
    assert loss.shape == () and loss == 2.25


# ----------------------------------------------------------------------------- GRU and LSTM cases

GATED = {"lstm": ("h", "c"), "gru": ("h",)}


def torch_user(arrays, cell):
    """A user's gated network written in PyTorch from SPEC section 8's equations, its gradients
    by autograd: (mean loss, {name: gradient}, {"{l}.{part}": states (T, B, H)})."""
    torch = pytest.importorskip("torch")
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    (T, B), (H, V) = x.shape, arrays["Why"].shape
    P = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()
         if k in ("Why", "by") or k[0].isdigit()}
    L = max(int(k.split(".")[0]) for k in P if k[0].isdigit()) + 1
    state = [{s: torch.from_numpy(arrays[f"{s}0"][l]) for s in GATED[cell]} for l in range(L)]
    states = {f"{l}.{s}": [] for l in range(L) for s in GATED[cell]}
    loss = 0
    for t in range(T):
        u = torch.nn.functional.one_hot(x[t], V).double()
        for l in range(L):
            h = state[l]["h"]
            if cell == "lstm":
                i, f, g, o = (u @ P[f"{l}.Wx"] + h @ P[f"{l}.Wh"] + P[f"{l}.b"]).split(H, dim=1)
                c = torch.sigmoid(f) * state[l]["c"] + torch.sigmoid(i) * torch.tanh(g)
                state[l] = {"h": torch.sigmoid(o) * torch.tanh(c), "c": c}
            else:
                xr, xz, xn = (u @ P[f"{l}.Wx"] + P[f"{l}.bx"]).split(H, dim=1)
                mr, mz, mn = (h @ P[f"{l}.Wh"] + P[f"{l}.bh"]).split(H, dim=1)
                r, z = torch.sigmoid(xr + mr), torch.sigmoid(xz + mz)
                state[l] = {"h": (1 - z) * torch.tanh(xn + r * mn) + z * h}
            for s, v in state[l].items():
                states[f"{l}.{s}"].append(v.detach().numpy())
            u = state[l]["h"]
        loss = loss + torch.nn.functional.cross_entropy(u @ P["Why"] + P["by"], y[t],
                                                        reduction="sum") / (T * B)
    loss.backward()
    return (loss.item(), {k: v.grad.numpy() for k, v in P.items()},
            {k: np.stack(v) for k, v in states.items()})


@pytest.mark.parametrize("cell", sorted(GATED))
def test_a_gated_case_answered_by_autograd_is_correct(capsys, tmp_path, cell):
    case = export(tmp_path, "--cell", cell, name="case")
    arrays = load_arrays(case)
    assert {f"{s}0" for s in GATED[cell]} <= set(arrays)
    loss, grads, states = torch_user(arrays, cell)
    for k, v in {**{f"grad/{k}": g for k, g in grads.items()}, "out/loss": np.asarray(loss),
                 **{f"out/{k}": v for k, v in states.items()}}.items():
        np.save(case / f"{k}.npy", v)
    result = judge(capsys, case)
    assert result["verdict"] == "correct" and result["evidence"]["blind_to"] == []
    assert max(p["rel_error"] for p in result["params"]) < 1e-12


def rnnscope_answer(path, cell):
    """rnnscope's own gradients and states on a 2-layer case (to exercise a cell's plumbing)."""
    arrays = load_arrays(path)
    H, V = arrays["Why"].shape
    model = Model(V, H, 2, cell=cell, dtype="float64")
    for k in model.params:
        model.params[k][...] = arrays[k]
    state0 = model.state_of({s: arrays[f"{s}0"] for s in GATED[cell]})
    out = model.loss_and_grads(arrays["x"], arrays["y"], state0)
    states = {f"{l}.{s}": probe[s].copy() for l, probe in enumerate(out.probes)
              for s in GATED[cell]}
    return arrays, out.grads, states


@pytest.mark.parametrize("cell", sorted(GATED))
def test_a_wrong_gated_gradient_is_an_unknown_bug_never_a_named_one(capsys, tmp_path, cell):
    case = export(tmp_path, "--cell", cell)
    arrays, grads, _ = rnnscope_answer(case, cell)
    grads["0.Wh"] = 1.1 * grads["0.Wh"]
    np.savez(case, **arrays, **{f"grad/{k}": g for k, g in grads.items()})
    result = judge(capsys, case)
    assert result["verdict"] == "unknown_bug"
    (wrong,) = result["evidence"]["wrong"]
    assert wrong["param"] == "0.Wh" and wrong["norm_ratio"] == pytest.approx(1.1)


def test_an_lstm_cell_state_that_differs_is_a_forward_mismatch(capsys, tmp_path):
    case = export(tmp_path, "--cell", "lstm")
    arrays, grads, states = rnnscope_answer(case, "lstm")
    states["1.c"][2, 1, 3] += 1e-3
    np.savez(case, **arrays, **{f"grad/{k}": g for k, g in grads.items()},
             **{f"out/{k}": v for k, v in states.items()})
    e = judge(capsys, case)["evidence"]
    assert (e["step"], e["layer"], e["state"], e["stream"], e["unit"]) == (2, 1, "c", 1, 3)
