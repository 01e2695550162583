"""The engine agrees with PyTorch autograd and torch.optim in float64, to 1e-10.

The same stacked tanh RNN in torch: nn.RNN (time-major) + nn.Linear readout, with
weight_ih_l{l} = Wxh.T, weight_hh_l{l} = Whh.T, bias_ih_l{l} = bh, bias_hh_l{l} = 0,
Linear.weight = Why.T, Linear.bias = by. torch has two biases per layer where rnnscope has one;
both receive the same gradient, the gradient of bh.
"""

import numpy as np
import pytest

from rnnscope import config
from rnnscope.model import Model
from rnnscope.optim import clip_gradients, learning_rate, optimizer_step

torch = pytest.importorskip("torch")
F = torch.nn.functional

V, H, T, B = 7, 5, 6, 3
RTOL, ATOL = 1e-10, 1e-12


def torch_twin(model: Model):
    """nn.RNN + nn.Linear holding the model's parameters (bias_hh fixed at zero)."""
    rnn = torch.nn.RNN(V, H, num_layers=model.num_layers, nonlinearity="tanh",
                       batch_first=False, dtype=torch.float64)
    readout = torch.nn.Linear(H, V, dtype=torch.float64)
    with torch.no_grad():
        for name, tensor in tensors_by_name(rnn, readout, model.num_layers).items():
            tensor.copy_(torch.from_numpy(to_torch_layout(model.params[name])))
        for l in range(model.num_layers):
            getattr(rnn, f"bias_hh_l{l}").zero_()
    return rnn, readout


def tensors_by_name(rnn, readout, num_layers) -> dict:
    """rnnscope parameter name -> the torch parameter that holds it (matrices transposed)."""
    tensors = {"Why": readout.weight, "by": readout.bias}
    for l in range(num_layers):
        tensors[f"{l}.Wxh"] = getattr(rnn, f"weight_ih_l{l}")
        tensors[f"{l}.Whh"] = getattr(rnn, f"weight_hh_l{l}")
        tensors[f"{l}.bh"] = getattr(rnn, f"bias_ih_l{l}")
    return tensors


def to_torch_layout(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T if a.ndim == 2 else a)


def to_numpy_layout(t) -> np.ndarray:
    a = t.detach().numpy()
    return a.T if a.ndim == 2 else a


def torch_forward(rnn, readout, x, y, h0):
    """Mean cross-entropy over the T*B targets, top-layer outputs (T, B, H), h_n (L, B, H)."""
    one_hot = F.one_hot(torch.from_numpy(x), V).to(torch.float64)  # (T, B, V)
    out, h_n = rnn(one_hot, None if h0 is None else torch.from_numpy(h0))
    logits = readout(out)
    loss = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    return loss, out, h_n


def assert_close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def chunk(seed, layers, with_h0, steps=1):
    """A model, `steps` consecutive (x, y) chunks of B streams, and an optional h0."""
    rng = np.random.default_rng(seed)
    model = Model(V, H, layers, dtype="float64", seed=seed)
    stream = rng.integers(0, V, (steps * T + 1, B))
    chunks = [(stream[k * T:(k + 1) * T], stream[k * T + 1:(k + 1) * T + 1])
              for k in range(steps)]
    h0 = rng.normal(0, 0.5, (layers, B, H)) if with_h0 else None
    return model, chunks, h0


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("with_h0", [False, True])
def test_loss_and_every_gradient_equal_torch_autograd(layers, with_h0):
    model, [(x, y)], h0 = chunk(layers, layers, with_h0)
    rnn, readout = torch_twin(model)
    out = model.loss_and_grads(x, y, h0)
    loss, _, _ = torch_forward(rnn, readout, x, y, h0)
    loss.backward()
    assert out.loss == pytest.approx(loss.item(), rel=RTOL)
    tensors = tensors_by_name(rnn, readout, layers)
    assert set(tensors) == set(out.grads)
    for name, tensor in tensors.items():
        assert_close(out.grads[name], to_numpy_layout(tensor.grad), name)
    for l in range(layers):
        assert_close(out.grads[f"{l}.bh"], getattr(rnn, f"bias_hh_l{l}").grad.numpy(),
                     f"{l}.bh vs bias_hh_l{l}")


@pytest.mark.parametrize("with_h0", [False, True])
def test_h_last_and_top_layer_h_equal_torch_outputs(with_h0):
    model, [(x, y)], h0 = chunk(4, 3, with_h0)
    rnn, readout = torch_twin(model)
    out = model.loss_and_grads(x, y, h0)
    _, top, h_n = torch_forward(rnn, readout, x, y, h0)
    assert_close(out.h_last, h_n.detach().numpy(), "h_last vs h_n")
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


@pytest.mark.parametrize("name, weight_decay", [
    *[(name, 0.0) for name in config.OPTIMIZERS], ("adam", 0.1), ("sgd", 0.1)])
def test_five_clipped_optimizer_steps_stay_in_lockstep_with_torch(name, weight_decay):
    """Consecutive chunks with the state carried, norm clipping firing on every step, a cosine
    learning rate; after each step: same loss, gradients, grad norm and parameters."""
    steps, base_lr, max_norm, layers = 5, 0.05, 0.05, 2
    model, chunks, h = chunk(6, layers, False, steps)
    rnn, readout = torch_twin(model)
    tensors = tensors_by_name(rnn, readout, layers)
    trained = list(tensors.values())  # bias_hh stays out: it stays zero, as in rnnscope
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
        h_torch = h_n.detach().numpy().copy()  # detached: state carried, gradient not

        where = f"{name} step {step}"
        assert fired == 1.0, where
        assert out.loss == pytest.approx(loss.item(), rel=RTOL), where
        assert grad_norm == pytest.approx(torch_norm, rel=RTOL), where
        for k, t in tensors.items():
            g_now = to_numpy_layout(t.grad)
            assert_close(out.grads[k] * grad_norm / max_norm, pre_clip[k], f"{where} grad {k}")
            assert_close(out.grads[k], g_now, f"{where} clipped grad {k}")
            assert_close(model.params[k], to_numpy_layout(t), f"{where} param {k}")
        assert_close(h, h_torch, f"{where} h_last")
    for l in range(layers):
        assert not getattr(rnn, f"bias_hh_l{l}").detach().numpy().any()
