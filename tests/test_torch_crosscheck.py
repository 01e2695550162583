"""The engine agrees with PyTorch autograd and torch.optim in float64, to 1e-10, for every cell.

The same stacked model in torch: nn.RNN (tanh), nn.GRU or nn.LSTM (time-major) + nn.Linear
readout, with weight_ih_l{l} = Wx.T, weight_hh_l{l} = Wh.T (the tanh cell's Wxh, Whh),
Linear.weight = Why.T, Linear.bias = by; with an embedding (--embed E) layer 0 reads
torch.nn.functional.embedding of the ids (its autograd scatter-adds the gradient by id) from a
weight held as embed.T, so that every matrix is transposed alike. Biases: the GRU's bx, bh are
bias_ih, bias_hh; the tanh cell's bh and the LSTM's b are bias_ih, with bias_hh fixed at zero:
torch has two biases where rnnscope has one, and both receive the same gradient, rnnscope's.
"""

import numpy as np
import pytest

from rnnscope import config
from rnnscope.cells import CELLS as REGISTRY
from rnnscope.model import Model
from rnnscope.optim import clip_gradients, learning_rate, optimizer_step

torch = pytest.importorskip("torch")
F = torch.nn.functional

V, H, T, B = 7, 5, 6, 3
RTOL, ATOL = 1e-10, 1e-12
CELLS = tuple(REGISTRY)  # every cell of the registry is cross-checked
MODULES = {name: getattr(torch.nn, c.TORCH[0]) for name, c in REGISTRY.items()}
# rnnscope's local name -> torch's name of the same layer's parameter (the first of a sum: the
# test sets the others to zero)
NAMES = {name: {local: sources[0] for local, sources in c.TORCH[1].items()}
         for name, c in REGISTRY.items()}


def torch_twin(model: Model):
    """The torch module + nn.Linear holding the model's parameters (a bias_hh that rnnscope
    does not have fixed at zero)."""
    rnn = MODULES[model.cell](input_size=model.embed or V, hidden_size=H,
                              num_layers=model.num_layers, batch_first=False, dtype=torch.float64)
    if model.embed:
        rnn.embed_t = torch.nn.Parameter(torch.zeros(model.embed, V, dtype=torch.float64))
    readout = torch.nn.Linear(H, V, dtype=torch.float64)
    with torch.no_grad():
        for l in range(model.num_layers):
            getattr(rnn, f"bias_hh_l{l}").zero_()
        for name, tensor in tensors_by_name(rnn, readout, model).items():
            tensor.copy_(torch.from_numpy(to_torch_layout(model.params[name])))
    return rnn, readout


def tensors_by_name(rnn, readout, model: Model) -> dict:
    """rnnscope parameter name -> the torch parameter that holds it (matrices transposed)."""
    tensors = {"Why": readout.weight, "by": readout.bias}
    if model.embed:
        tensors["embed"] = rnn.embed_t
    for l in range(model.num_layers):
        for local, name in NAMES[model.cell].items():
            tensors[f"{l}.{local}"] = getattr(rnn, f"{name}_l{l}")
    return tensors


def unused_biases(rnn, model: Model) -> dict:
    """{rnnscope's one bias of layer l: torch's bias_hh_l{l}} for the cells whose one bias is
    torch's bias_ih (empty for the GRU, which has both)."""
    if "bias_hh" in NAMES[model.cell].values():
        return {}
    (bias,) = [k for k, v in NAMES[model.cell].items() if v == "bias_ih"]
    return {f"{l}.{bias}": getattr(rnn, f"bias_hh_l{l}") for l in range(model.num_layers)}


def to_torch_layout(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T if a.ndim == 2 else a)


def to_numpy_layout(t) -> np.ndarray:
    a = t.detach().numpy()
    return a.T if a.ndim == 2 else a


def torch_state(state):
    """rnnscope's state (an array, or the LSTM's (h, c)) as torch's."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(torch.from_numpy(np.ascontiguousarray(s)) for s in state)
    return torch.from_numpy(np.ascontiguousarray(state))


def numpy_state(state):
    if isinstance(state, tuple):
        return tuple(s.detach().numpy().copy() for s in state)
    return state.detach().numpy().copy()


def assert_state_close(actual, expected, what):
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), what
        for part, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, f"{what} part {part}")
    else:
        assert_close(actual, expected, what)


def torch_forward(rnn, readout, x, y, h0):
    """Mean cross-entropy over the T*B targets, top-layer outputs (T, B, H), h_n (torch's
    state: (L, B, H), or the LSTM's (h_n, c_n))."""
    out, h_n = rnn(torch_input(rnn, x), torch_state(h0))
    logits = readout(out)
    loss = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    return loss, out, h_n


def torch_input(rnn, x):
    """Layer 0's input (T, B, in): the one-hot rows of the ids, or their embedding."""
    ids = torch.from_numpy(x)
    embed_t = getattr(rnn, "embed_t", None)
    if embed_t is None:
        return F.one_hot(ids, V).to(torch.float64)
    return F.embedding(ids, embed_t.T)


def assert_close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def chunk(seed, layers, with_h0, steps=1, cell="rnn", embed=0):
    """A model (with an E = embed wide input embedding), `steps` consecutive (x, y) chunks of B
    streams, and an optional h0 (every part of the cell's state random)."""
    rng = np.random.default_rng(seed)
    model = Model(V, H, layers, cell=cell, dtype="float64", seed=seed, embed=embed)
    stream = rng.integers(0, V, (steps * T + 1, B))
    chunks = [(stream[k * T:(k + 1) * T], stream[k * T + 1:(k + 1) * T + 1])
              for k in range(steps)]
    h0 = model.state_of({part: rng.normal(0, 0.5, (layers, B, H))
                         for part in model.cell_module.STATE}) if with_h0 else None
    return model, chunks, h0


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("embed", [0, 4])
def test_loss_and_every_gradient_equal_torch_autograd(cell, layers, with_h0, embed):
    model, [(x, y)], h0 = chunk(layers, layers, with_h0, cell=cell, embed=embed)
    rnn, readout = torch_twin(model)
    out = model.loss_and_grads(x, y, h0)
    loss, _, _ = torch_forward(rnn, readout, x, y, h0)
    loss.backward()
    assert out.loss == pytest.approx(loss.item(), rel=RTOL)
    tensors = tensors_by_name(rnn, readout, model)
    assert set(tensors) == set(out.grads)
    for name, tensor in tensors.items():
        assert_close(out.grads[name], to_numpy_layout(tensor.grad), name)
    for name, bias_hh in unused_biases(rnn, model).items():
        assert_close(out.grads[name], bias_hh.grad.numpy(), f"{name} vs its bias_hh")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("with_h0", [False, True])
def test_h_last_and_top_layer_h_equal_torch_outputs(cell, with_h0):
    model, [(x, y)], h0 = chunk(4, 3, with_h0, cell=cell)
    rnn, readout = torch_twin(model)
    out = model.loss_and_grads(x, y, h0)
    _, top, h_n = torch_forward(rnn, readout, x, y, h0)
    assert_state_close(out.h_last, numpy_state(h_n), "h_last vs h_n")
    assert_close(out.probes[-1]["h"], top.detach().numpy(), "top probes['h'] vs output")


def test_probes_dh_and_dh_raw_equal_autograd_of_every_hidden_state():
    """The recurrence unrolled in torch ops, so that autograd can report the gradient reaching
    each h_t (dh, through the readout, the layer above and time) and each a_t (dh_raw)."""
    layers = 2
    model, [(x, y)], h0 = chunk(5, layers, True)
    out = model.loss_and_grads(x, y, h0)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    u = F.one_hot(torch.from_numpy(x), V).to(torch.float64)
    a_all, h_all = [], []
    for l in range(layers):
        h_prev, a_l, h_l = torch.from_numpy(h0[l]), [], []
        for t in range(T):
            a = u[t] @ P[f"{l}.Wxh"] + h_prev @ P[f"{l}.Whh"] + P[f"{l}.bh"]
            h_prev = torch.tanh(a)
            a.retain_grad()
            h_prev.retain_grad()
            a_l.append(a)
            h_l.append(h_prev)
        a_all.append(a_l)
        h_all.append(h_l)
        u = torch.stack(h_l)
    logits = u @ P["Why"] + P["by"]
    F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1)).backward()
    for l, probe in enumerate(out.probes):
        assert_close(probe["h"], torch.stack(h_all[l]).detach().numpy(), f"layer {l} h")
        assert_close(probe["dh"], np.stack([h.grad.numpy() for h in h_all[l]]), f"layer {l} dh")
        assert_close(probe["dh_raw"], np.stack([a.grad.numpy() for a in a_all[l]]),
                     f"layer {l} dh_raw")


def torch_optimizer(name, lr, weight_decay, matrices, biases):
    """torch.optim's version of each rnnscope optimizer (see rnnscope/optim.py)."""
    groups = [{"params": matrices, "weight_decay": weight_decay},
              {"params": biases, "weight_decay": 0.0}]
    if name == "adam":
        # rnnscope's decay is decoupled: Adam without decay, AdamW with it
        cls = torch.optim.AdamW if weight_decay else torch.optim.Adam
        return cls(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    if name == "sgd":  # coupled and decoupled decay coincide for plain SGD
        return torch.optim.SGD(groups, lr=lr)
    assert weight_decay == 0, "torch's decay is coupled for these: no torch twin"
    if name == "momentum":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, eps=1e-8)
    return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=1e-8)


def torch_clip_norm(params, max_norm):
    """clip_grad_norm_ scales by max_norm / (norm + 1e-6); asking it for
    max_norm * (norm + 1e-6) / norm makes the scale max_norm / norm, rnnscope's exact rule.
    Returns the pre-clip norm."""
    norm = torch.nn.utils.get_total_norm([p.grad for p in params]).item()
    returned = torch.nn.utils.clip_grad_norm_(params, max_norm * (norm + 1e-6) / norm)
    assert returned.item() == norm
    return norm


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("name, weight_decay, embed", [
    *[(name, 0.0, 0) for name in config.OPTIMIZERS], ("adam", 0.1, 0), ("sgd", 0.1, 0),
    ("adam", 0.1, 4)])
def test_five_clipped_optimizer_steps_stay_in_lockstep_with_torch(cell, name, weight_decay,
                                                                   embed):
    """Consecutive chunks with the state carried, norm clipping firing on every step, a cosine
    learning rate; after each step: same loss, gradients, grad norm, parameters and state."""
    steps, base_lr, max_norm, layers = 5, 0.05, 0.05, 2
    model, chunks, h = chunk(6, layers, False, steps, cell, embed)
    rnn, readout = torch_twin(model)
    tensors = tensors_by_name(rnn, readout, model)
    trained = list(tensors.values())  # an unused bias_hh stays out: it stays zero
    matrices = [tensors[k] for k in model.params if model.params[k].ndim == 2]
    biases = [tensors[k] for k in model.params if model.params[k].ndim == 1]
    opt = torch_optimizer(name, base_lr, weight_decay, matrices, biases)
    state, deltas, h_torch = {}, None, None
    for step, (x, y) in enumerate(chunks):
        lr = learning_rate("cosine", base_lr, step / steps, {})
        out = model.loss_and_grads(x, y, h)
        grad_norm, fired = clip_gradients(out.grads, "norm", max_norm)
        deltas = optimizer_step(name, model.params, out.grads, state, lr, weight_decay, deltas)
        h = out.h_last

        opt.zero_grad()
        loss, _, h_n = torch_forward(rnn, readout, x, y, h_torch)
        loss.backward()
        pre_clip = {k: to_numpy_layout(t.grad).copy() for k, t in tensors.items()}
        torch_norm = torch_clip_norm(trained, max_norm)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        h_torch = numpy_state(h_n)  # detached: state carried, gradient not

        where = f"{name} step {step}"
        assert fired == 1.0, where
        assert out.loss == pytest.approx(loss.item(), rel=RTOL), where
        assert grad_norm == pytest.approx(torch_norm, rel=RTOL), where
        for k, t in tensors.items():
            g_now = to_numpy_layout(t.grad)
            assert_close(out.grads[k] * grad_norm / max_norm, pre_clip[k], f"{where} grad {k}")
            assert_close(out.grads[k], g_now, f"{where} clipped grad {k}")
            assert_close(model.params[k], to_numpy_layout(t), f"{where} param {k}")
        assert_state_close(h, h_torch, f"{where} h_last")
    for bias_hh in unused_biases(rnn, model).values():
        assert not bias_hh.detach().numpy().any()


def unrolled_layer(cell, P, l, u, state0):
    """One layer of SPEC 8's equations in torch ops, step by step: per step its output h_t,
    gates, and the tensor whose gradient is dh_raw (the GRU's candidate pre-activation; for the
    LSTM a zero added to c_t inside tanh(c_t), so that its gradient is the part of dh entering
    c_t), each with retain_grad."""
    W = {k: P[f"{l}.{k}"] for k in NAMES[cell]}
    h, c = state0
    steps = []
    for t in range(T):
        if cell == "gru":
            x, m = u[t] @ W["Wx"] + W["bx"], h @ W["Wh"] + W["bh"]
            r, z = (torch.sigmoid(x[:, k * H:(k + 1) * H] + m[:, k * H:(k + 1) * H])
                    for k in range(2))
            raw = x[:, 2 * H:] + r * m[:, 2 * H:]
            n = torch.tanh(raw)
            h = (1 - z) * n + z * h
            gates = {"r": r, "z": z, "n": n}
        else:
            a = u[t] @ W["Wx"] + h @ W["Wh"] + W["b"]
            i, f, o = (torch.sigmoid(a[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
            g = torch.tanh(a[:, 2 * H:3 * H])
            c = f * c + i * g
            raw = torch.zeros_like(c, requires_grad=True)
            h = o * torch.tanh(c + raw)
            gates = {"i": i, "f": f, "g": g, "o": o, "c": c}
        for v in (h, raw):
            v.retain_grad()
        steps.append({"h": h, "raw": raw, **gates})
    return steps


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_probes_equal_the_unrolled_equations_and_their_autograd(cell):
    """Every probe of a 2-layer gated model from a random state: h and the gates equal SPEC 8's
    equations unrolled in torch; dh and dh_raw equal autograd's gradients."""
    layers = 2
    model, [(x, y)], h0 = chunk(7, layers, True, cell=cell)
    out = model.loss_and_grads(x, y, h0)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    parts = [torch.from_numpy(p) for p in (h0 if cell == "lstm" else (h0, np.zeros_like(h0)))]
    u, layer_steps = F.one_hot(torch.from_numpy(x), V).to(torch.float64), []
    for l in range(layers):
        layer_steps.append(unrolled_layer(cell, P, l, u, (parts[0][l], parts[1][l])))
        u = torch.stack([s["h"] for s in layer_steps[-1]])
    F.cross_entropy((u @ P["Why"] + P["by"]).reshape(-1, V),
                    torch.from_numpy(y).reshape(-1)).backward()
    for l, (probe, steps) in enumerate(zip(out.probes, layer_steps, strict=True)):
        for key in ("h", *model.cell_module.GATES, *(("c",) if cell == "lstm" else ())):
            assert_close(probe[key], torch.stack([s[key] for s in steps]).detach().numpy(),
                         f"layer {l} {key}")
        assert_close(probe["dh"], np.stack([s["h"].grad.numpy() for s in steps]), f"{l} dh")
        assert_close(probe["dh_raw"], np.stack([s["raw"].grad.numpy() for s in steps]),
                     f"layer {l} dh_raw")
