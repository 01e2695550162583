"""`gradcheck --user` names a mistake with the layer it sits in, and locates one it cannot name.

Two stacked loops written here, apart from rnnscope's catalogue (rnnscope/gradcheck/bugs.py),
each able to carry one mistake in one layer:
  column_rnn  min-char-rnn's multi-layer style: column vectors, (out, in) weights, batch 1, the
              summed loss (divided by N at the end to answer the mean's gradients), time on
              the outside and the top, middle and bottom layers as separate code paths;
  row_rnn     row vectors, batched, the mean loss, the layers on the outside and time inside,
              the gradient sent down kept per step.
A mistake is (name, layer); the names are the loops' own, mapped to what rnnscope should say.
"""

import json

import numpy as np
import pytest

from rnnscope.cli import main
from rnnscope.gradcheck.cases import load_arrays

L = 3


def case_arrays(path):
    arrays = load_arrays(path)
    P = {k: v for k, v in arrays.items() if k in ("Why", "by") or k[0].isdigit()}
    return arrays, P, arrays["x"], arrays["y"], arrays["h0"]


# ------------------------------------------------------------------- column vectors, batch 1


def column_rnn(P, x, y, h0, bug=None, at=None):
    """Gradients of the summed loss of one stream (x, y: (T,)) in (out, in) layout, with the
    mistake `bug` in layer `at`. Top, middle and bottom layers are separate code paths."""
    Wxh = [P[f"{l}.Wxh"].T for l in range(L)]
    Whh = [P[f"{l}.Whh"].T for l in range(L)]
    bh = [P[f"{l}.bh"] for l in range(L)]
    Why, by = P["Why"].T, P["by"]
    V, T = by.size, len(x)
    hs = [{-1: h0[l]} for l in range(L)]
    xs, ps = {}, {}
    for t in range(T):
        xs[t] = np.zeros(V)
        xs[t][x[t]] = 1
        below = xs[t]
        for l in range(L):
            hs[l][t] = np.tanh(Wxh[l] @ below + Whh[l] @ hs[l][t - 1] + bh[l])
            below = hs[l][t]
        e = np.exp(Why @ below + by - np.max(Why @ below + by))
        ps[t] = e / e.sum()
    g = {k: np.zeros_like(v.T) for k, v in P.items()}
    dhnext = [np.zeros_like(h0[l]) for l in range(L)]
    sent = {l: {} for l in range(L)}  # sent[l][t]: what layer l+1 sends down at step t
    for t in reversed(range(T)):
        dy = ps[t].copy()
        dy[y[t]] -= 1
        g["Why"] += np.outer(dy, hs[L - 1][t])
        g["by"] += dy
        # top layer
        l = L - 1
        b = bug if at == l else None
        dh = Why.T @ dy if b == "dh_next_missing" else \
            dhnext[l] if b == "du_missing" else Why.T @ dy + dhnext[l]
        dhraw = column_raw(dh, hs[l], t, b)
        column_grads(g, l, dh, dhraw, hs[l - 1][t], hs[l], t, b)
        dhnext[l] = column_next(dh, dhraw, Whh[l], Wxh[l], b)
        sent[l - 1][t] = column_down(dhraw, Wxh[l], Whh[l], b)
        # middle layers
        for l in range(L - 2, 0, -1):
            b = bug if at == l else None
            came = column_received(sent[l], t, T, bug if at == l + 1 else None)
            dh = came if b == "dh_next_missing" else dhnext[l] if b == "du_missing" else \
                came + dhnext[l]
            dhraw = column_raw(dh, hs[l], t, b)
            column_grads(g, l, dh, dhraw, hs[l - 1][t], hs[l], t, b)
            dhnext[l] = column_next(dh, dhraw, Whh[l], Wxh[l], b)
            sent[l - 1][t] = column_down(dhraw, Wxh[l], Whh[l], b)
        # bottom layer
        b = bug if at == 0 else None
        came = column_received(sent[0], t, T, bug if at == 1 else None)
        dh = came if b == "dh_next_missing" else dhnext[0] if b == "du_missing" else \
            came + dhnext[0]
        dhraw = column_raw(dh, hs[0], t, b)
        column_grads(g, 0, dh, dhraw, xs[t], hs[0], t, b)
        dhnext[0] = column_next(dh, dhraw, Whh[0], Wxh[0], b)
    return {k: v.T for k, v in g.items()}


def column_raw(dh, h, t, b):
    if b == "tanh_grad_one_minus_h":
        return (1 - h[t]) * dh
    if b == "tanh_grad_of_previous_state":
        return (1 - h[t - 1] ** 2) * dh
    if b == "dhraw_clipped":
        return np.clip((1 - h[t] ** 2) * dh, -0.002, 0.002)
    return (1 - h[t] ** 2) * dh


def column_grads(g, l, dh, dhraw, below, h, t, b):
    delta = dh if b == "bias_from_dh" else dhraw
    if b == "bias_overwritten":
        g[f"{l}.bh"] = delta.copy()
    elif b != "bias_forgotten":
        g[f"{l}.bh"] += delta
    g[f"{l}.Wxh"] += np.outer(dhraw, h[t] if b == "dwxh_own_state" else below)
    if b == "dwhh_transposed":
        g[f"{l}.Whh"] += np.outer(h[t - 1], dhraw)
    else:
        g[f"{l}.Whh"] += np.outer(dhraw, h[t] if b == "dwhh_current_state" else h[t - 1])


def column_next(dh, dhraw, Whh, Wxh, b):
    if b == "whh_untransposed":
        return Whh @ dhraw
    if b == "dhnext_from_dh":
        return Whh.T @ dh
    if b == "dhnext_through_wxh":
        return Wxh.T @ dhraw
    if b == "dhnext_halved":
        return 0.5 * Whh.T @ dhraw
    return Whh.T @ dhraw


def column_down(dhraw, Wxh, Whh, b):
    if b == "wxh_untransposed":
        return Wxh @ dhraw
    if b == "down_doubled":
        return 2 * Wxh.T @ dhraw
    return Wxh.T @ dhraw


def column_received(sent, t, T, b):
    """What a layer reads from the layer above at step t (b: the sending layer's mistake)."""
    if b == "down_one_step_late":
        return sent[t + 1] if t + 1 < T else np.zeros_like(sent[t])
    return sent[t]


def column_answer(path, bug=None, at=None, divide=True, per_length=True):
    """Answer per length (or one call on the whole chunk): the summed loss's gradients divided
    by N = t (batch 1)."""
    arrays, P, x, y, h0 = case_arrays(path)
    out = {}
    T = x.shape[0]
    for t in range(1, T + 1) if per_length else [T]:
        g = column_rnn(P, x[:t, 0], y[:t, 0], h0[:, 0], bug, at)
        prefix = f"grad/T{t}/" if per_length else "grad/"
        out.update({prefix + k: v / (t if divide else 1) for k, v in g.items()})
    np.savez(path, **arrays, **out)


# --------------------------------------------------------------------- row vectors, batched


def row_rnn(P, x, y, h0, bug=None, at=None):
    """Gradients of the mean loss over T*B targets, layer by layer, time inside."""
    (T, B), V = x.shape, P["by"].size
    N = T * B
    us = [np.eye(V)[x]]
    hs = []
    for l in range(L):
        h = [h0[l]]
        for t in range(T):
            h.append(np.tanh(us[l][t] @ P[f"{l}.Wxh"] + h[t] @ P[f"{l}.Whh"] + P[f"{l}.bh"]))
        hs.append(np.array(h))       # (T+1, B, H), hs[l][t+1] the state after step t
        us.append(hs[l][1:])
    logits = us[L] @ P["Why"] + P["by"]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dlogits = p.copy()
    for t in range(T):
        dlogits[t, np.arange(B), y[t]] -= 1
    dlogits /= N
    if bug == "last_step_loss_dropped":
        dlogits[-1] = 0
    g = {"Why": np.einsum("tbh,tbv->hv", us[L - (bug == "dwhy_from_the_layer_below")],
                          dlogits), "by": dlogits.sum((0, 1))}
    from_above = dlogits @ P["Why"].T   # (T, B, H)
    for l in reversed(range(L)):
        b = bug if at == l else None
        dpre = np.zeros_like(from_above)
        carry = np.zeros_like(from_above[0])
        for t in reversed(range(T)):
            dpre[t] = (1 - hs[l][t + 1] ** 2) * (from_above[t] + carry)
            carry = dpre[t] @ (P[f"{l}.Whh"] if b == "whh_untransposed" else P[f"{l}.Whh"].T)
        g[f"{l}.Wxh"] = np.einsum("tbi,tbh->ih", us[l], dpre)
        g[f"{l}.Whh"] = np.einsum("tbi,tbh->ih", hs[l][:-1], dpre)
        g[f"{l}.bh"] = dpre.mean(1).sum(0) if b == "bias_batch_mean" else \
            dpre[:, 0].sum(0) if b == "bias_first_stream" else dpre.sum((0, 1))
        down = dpre @ (P[f"{l}.Wxh"] if b == "wxh_untransposed" else P[f"{l}.Wxh"].T)
        if b == "down_reversed":
            down = down[::-1]
        from_above = down
    return g


def row_answer(path, bug=None, at=None):
    arrays, P, x, y, h0 = case_arrays(path)
    out = {f"grad/T{t}/{k}": v for t in range(1, x.shape[0] + 1)
           for k, v in row_rnn(P, x[:t], y[:t], h0, bug, at).items()}
    np.savez(path, **arrays, **out)


# ------------------------------------------------------------------------------ the verdicts


def export(tmp_path, batch):
    path = tmp_path / "case.npz"
    assert main(["gradcheck", "--export", str(path), "--layers", str(L), "--batch", str(batch),
                 "--seq-len", "6"]) == 0
    return path


def judge(capsys, path):
    capsys.readouterr()
    code = main(["gradcheck", "--user", str(path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["verdict"] == "correct" else 1)
    return result


# the loops' mistake -> (rnnscope's id, the layers it may sit in)
COLUMN_NAMED = {
    "dh_next_missing": ("missing_dh_next", range(L)),
    "du_missing": ("missing_du", range(L)),
    "whh_untransposed": ("whh_not_transposed", range(L)),
    "dhnext_from_dh": ("dh_next_before_tanh", range(L)),
    "tanh_grad_one_minus_h": ("tanh_derivative_wrong", range(L)),
    "tanh_grad_of_previous_state": ("tanh_derivative_wrong_step", range(L)),
    "dwhh_current_state": ("dwhh_uses_h_t", range(L)),
    "dwxh_own_state": ("dwxh_uses_wrong_input", range(1, L)),
    "bias_from_dh": ("grad_uses_dh_not_dh_raw", range(L)),
    "bias_overwritten": ("overwrite_not_accumulate", range(L)),
    "bias_forgotten": ("gradient_never_accumulated", range(L)),
    "wxh_untransposed": ("wxh_not_transposed", range(1, L)),
    "dhnext_through_wxh": ("whh_wxh_swapped", range(1, L)),
    "down_one_step_late": ("dh_below_wrong_step", range(1, L)),
}
ROW_NAMED = {
    "whh_untransposed": ("whh_not_transposed", range(L)),
    "bias_batch_mean": ("bias_grad_mean_not_sum", range(L)),
    "bias_first_stream": None,  # outside the catalogue: see ROW_UNKNOWN
    "wxh_untransposed": ("wxh_not_transposed", range(1, L)),
    "down_reversed": ("dh_below_wrong_step", range(1, L)),
}


def placed(table):
    return [(bug, l) for bug, v in table.items() if v for l in v[1]]


def expected_layer(rnnscope_id, l):
    """missing_du zeroes every layer below it too: in layer l it is missing_du in 0 ... l, which
    the gradients cannot tell from the layers below missing du as well; per-parameter
    mistakes show in the parameters of layer l."""
    return list(range(l + 1)) if rnnscope_id == "missing_du" and l > 0 else l


@pytest.mark.parametrize("per_length", [True, False], ids=["per_length", "one_call"])
@pytest.mark.parametrize("bug, l", placed(COLUMN_NAMED))
def test_a_catalogued_mistake_in_one_layer_of_a_column_loop_is_named_with_it(capsys, tmp_path,
                                                                             bug, l, per_length):
    case = export(tmp_path, batch=1)
    column_answer(case, bug, l, per_length=per_length)
    result = judge(capsys, case)
    want = COLUMN_NAMED[bug][0]
    assert result["verdict"] == want, result["evidence"]
    assert result["evidence"]["layer"] in (l, expected_layer(want, l))


@pytest.mark.parametrize("bug, l", placed(ROW_NAMED))
def test_a_catalogued_mistake_in_one_layer_of_a_row_loop_is_named_with_it(capsys, tmp_path,
                                                                          bug, l):
    case = export(tmp_path, batch=3)
    row_answer(case, bug, l)
    result = judge(capsys, case)
    assert result["verdict"] == ROW_NAMED[bug][0], result["evidence"]
    assert result["evidence"]["layer"] == l


def test_both_loops_are_correct_without_a_mistake(capsys, tmp_path):
    case = export(tmp_path, batch=1)
    column_answer(case)
    assert judge(capsys, case)["verdict"] == "correct"
    case.unlink()
    case = export(tmp_path, batch=3)
    row_answer(case)
    assert judge(capsys, case)["verdict"] == "correct"


def test_a_summed_loss_not_divided_is_a_loss_scale_in_the_readout(capsys, tmp_path):
    case = export(tmp_path, batch=1)
    column_answer(case, divide=False)
    result = judge(capsys, case)
    assert result["verdict"] == "loss_scale_mismatch" and result["evidence"]["layer"] is None


# mistakes outside the catalogue -> (the layer the error enters at, words of its place)
COLUMN_UNKNOWN = {
    "dhraw_clipped": (0, "between {above} and layer {l}'s pre-activation"),
    "dwhh_transposed": (0, "in the gradient of {l}.Whh"),
    "dhnext_halved": (0, "carried back in time: right for T <= 1"),
    "down_doubled": (-1, "between layer {above_l}'s pre-activation and layer {l}'s"),
}
ROW_UNKNOWN = {"bias_first_stream": (0, "in the gradient of {l}.bh")}


def unknown_cases():
    return [("column", bug, l) for bug in COLUMN_UNKNOWN for l in range(L)
            if l + COLUMN_UNKNOWN[bug][0] >= 0] + \
        [("row", bug, l) for bug in ROW_UNKNOWN for l in range(L)]


@pytest.mark.parametrize("style, bug, at", unknown_cases())
def test_a_mistake_outside_the_catalogue_is_located(capsys, tmp_path, style, bug, at):
    case = export(tmp_path, batch=1 if style == "column" else 3)
    (column_answer if style == "column" else row_answer)(case, bug, at)
    result = judge(capsys, case)
    e = result["evidence"]
    assert result["verdict"] == "unknown_bug", e
    shift, words = (COLUMN_UNKNOWN if style == "column" else ROW_UNKNOWN)[bug]
    l = at + shift
    above = "the readout gradient" if l == L - 1 else f"layer {l + 1}'s pre-activation"
    assert e["layer"] == l
    assert words.format(l=l, above=above, above_l=l + 1) in e["where"], e["where"]
    right_above = [k for k in ("Why", "by", *(f"{m}.{p}" for m in range(L - 1, l, -1)
                                             for p in ("Wxh", "Whh", "bh")))]
    assert all(k in e["right"] for k in right_above)


@pytest.mark.parametrize("bug, words", [
    ("last_step_loss_dropped", "at the readout, at dy"),
    ("dwhy_from_the_layer_below", "at the readout, in the gradient of Why (dy is right"),
])
def test_a_mistake_in_the_readout_is_located_there(capsys, tmp_path, bug, words):
    case = export(tmp_path, batch=3)
    row_answer(case, bug)
    e = judge(capsys, case)["evidence"]
    assert e["layer"] is None and words in e["where"], e["where"]
    assert e["chain"][0]["params"] == ["Why", "by"]
