"""The hand-written BPTT of every cell is right: float64 finite differences on every parameter."""

import numpy as np
import pytest

from rnnscope.cells import CELLS
from rnnscope.gradcheck import check_model
from rnnscope.model import Model


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("with_h0", [False, True])
def test_every_parameter_matches_finite_differences(cell, layers, with_h0):
    checks = check_model(vocab_size=7, hidden_size=5, num_layers=layers, seq_len=5, batch=3,
                         with_h0=with_h0, seed=layers, cell=cell)
    assert {c.name for c in checks} == set(Model(7, 5, layers, cell=cell).params)
    for c in checks:
        assert c.rel_error < 1e-6, (c.name, c.rel_error)
        assert c.verdict in ("good", "doubtful")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_an_input_embedding_matches_finite_differences(cell, layers):
    """--embed: layer 0 reads embed[x]; 15 positions over 7 ids repeat ids, so the scatter-add
    of the input gradient sums several positions into one row of embed."""
    checks = check_model(vocab_size=7, hidden_size=5, num_layers=layers, seq_len=5, batch=3,
                         seed=layers, cell=cell, embed=4)
    assert {c.name for c in checks} == set(Model(7, 5, layers, cell=cell, embed=4).params)
    assert Model(7, 5, layers, cell=cell, embed=4).params["embed"].shape == (7, 4)
    for c in checks:
        assert c.rel_error < 1e-6, (c.name, c.rel_error)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("init", ["orthogonal", "normal", "identity"])
def test_gradients_hold_in_the_saturated_regime(cell, init):
    checks = check_model(vocab_size=6, hidden_size=6, num_layers=2, seq_len=6, batch=2,
                         recurrent_init=init, recurrent_scale=3.0, input_scale=3.0, cell=cell)
    assert max(c.rel_error for c in checks) < 1e-6


GATE_INITS = {"forget_bias": 3.0, "chrono_init": 6}  # a value of each init a cell may take


@pytest.mark.parametrize("cell, init", [(name, {flag: GATE_INITS[flag]})
                                        for name, c in CELLS.items() for flag in c.INIT_FLAGS])
def test_gated_gradients_hold_with_the_gate_initialisations(cell, init):
    checks = check_model(vocab_size=6, hidden_size=6, num_layers=2, seq_len=6, batch=2,
                         cell=cell, **init)
    assert max(c.rel_error for c in checks) < 1e-6


def test_gradcheck_catches_a_wrong_gradient():
    model = Model(5, 4, 1, dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, (4, 2)), rng.integers(0, 5, (4, 2))
    from rnnscope.gradcheck import check_gradients
    grads = model.loss_and_grads(x, y).grads
    grads["0.Whh"] = grads["0.Whh"].T.copy()  # the classic transposed-recurrent-gradient bug
    checks = {c.name: c for c in check_gradients(model.params, grads,
                                                 lambda: model.loss(x, y)[0])}
    assert checks["0.Whh"].verdict == "wrong"
    assert checks["Why"].verdict == "good"


def test_probes_are_the_gradients_of_the_mean_loss():
    """dh is the total gradient reaching h_t; perturbing a_t by eps moves the loss by dh_raw*eps."""
    model = Model(6, 4, 2, dtype="float64", seed=1)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 6, (5, 3)), rng.integers(0, 6, (5, 3))
    out = model.loss_and_grads(x, y)
    # bh enters every a_t of its layer, so its gradient is dh_raw summed over t and b
    for l, probe in enumerate(out.probes):
        assert probe["h"].shape == probe["dh"].shape == probe["dh_raw"].shape == (5, 3, 4)
        np.testing.assert_allclose(probe["dh_raw"].sum((0, 1)), out.grads[f"{l}.bh"])
        np.testing.assert_allclose(probe["dh_raw"], (1 - probe["h"] ** 2) * probe["dh"])
        assert np.all(np.abs(probe["dh_raw"]) <= np.abs(probe["dh"]))


def test_h_last_continues_the_sequence():
    """Two chunks with the state carried equal one long chunk."""
    model = Model(6, 4, 2, dtype="float64", seed=1)
    x = np.random.default_rng(3).integers(0, 6, (8, 2))
    logits, _ = model.forward(x)
    first, h = model.forward(x[:4])
    second, _ = model.forward(x[4:], h)
    np.testing.assert_allclose(np.concatenate([first, second]), logits, atol=1e-12)
