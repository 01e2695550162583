"""The recurrent cells, one module each, behind one interface (the cell contract).

The model (rnnscope/model.py) does everything that is the same for every cell: the input
product ax = u @ Wx + bx for all time steps at once (a row lookup for the one-hot layer 0), the
stacking, dropout, the readout, the loss, the input-weight gradients (single large products over
all steps) and the work buffers. The cell does the rest: the recurrence and its backward pass,
in the per-step loops. The panel (rnnscope/panel.py) asks the cell for its readings and for one
backward step through time. Nothing outside this package branches on a cell's name.

A cell is a module with:

    NAME      its name, the key in CELLS and the value of --cell
    BLOCKS    how many H-wide blocks its pre-activation has: ax is (BLOCKS, T, B, H), gate
              blocks first, so that every block of every step is one contiguous (B, H) array
              (NumPy's elementwise passes run several times slower on column slices)
    STATE     the parts of its carried state: ("h",), or ("h", "c") for the LSTM
    INPUT     (weight, bias): the local names of the parameters the model applies to the layer
              input, ax = u @ P[weight] + P[bias]; the model computes their gradients from dax
    GATES     the gate activations its probes carry, each (T, B, H)
    SIGMOID   the sigmoid gates among them, whose saturation the panel reads
    KEEP      the sigmoid gate that keeps the old state (LSTM f, GRU z; memory_steps reads it),
              None for a cell without one
    INIT_FLAGS  the gate initialisations (TrainConfig fields) that apply to it: forget_bias,
              chrono_init; config.validate refuses the others, the triage suggests only these
    TORCH     (PyTorch module name in torch.nn, {local name: the torch parameters of layer l,
              without the _l{l} suffix, whose sum it is}), SPEC 8's mapping

    init(fan_in, H, rng, init: Init) -> {local name: array}
        one layer's parameters in float64, drawn from rng in a fixed order (reproducible by
        seed). A layer's parameters are the model's "{l}.{local name}".
    forward(P, state0, T, fill, work) -> tape
        P: the layer's parameters by local name; state0: tuple of (B, H), one per STATE part;
        fill(ax) writes the input projection into the (BLOCKS, T, B, H) array the cell hands it:
        ax[k] = u @ Wx[:, k*H:(k+1)*H] + bx[k*H:(k+1)*H].
        Runs the recurrence and returns the tape, a dict of the arrays the backward pass needs,
        with tape[s] (T+1, B, H) for every s in STATE: tape[s][0] is the carried state, tape[s][t]
        the state after step t. tape["h"][1:] is the layer's output.
    backward(P, tape, dh, work, grads) -> dax
        dh (T, B, H): on entry the gradient reaching each h_t from the readout or the layer
        above, on exit the total gradient reaching it (through time too). Writes the gradients
        of the recurrent parameters (every local name but INPUT's) into grads and returns dax
        (BLOCKS, T, B, H), the gradient of the input projection ax; it may add by-products the
        probes need to the tape (the LSTM's dh_raw). Gradients are of the loss
        the model's dh belongs to (the mean NLL); the gradient reaching state0 is not formed
        (truncated BPTT carries the state, not the gradient).
    probes(tape, dh, dax) -> {"h", "dh", "dh_raw", *GATES, ...}, each (T, B, H): SPEC 2's
        probes; docs/panel.md defines dh_raw per cell. A cell may add the arrays its
        through_time step needs.
    through_time(P, probe) -> step(t, v) -> v
        one backward step through the recurrence alone (the full recurrent Jacobian, no input,
        no readout): v is a tuple of (B, H), one per STATE part, the gradient reaching the state
        after step t (probe index t); step returns the gradient reaching the state before it.
        The panel's bptt_profile walks it.
    READINGS  {name: fn(P, probe, sat_threshold) -> float}: the cell's own per-layer readings
        (the panel adds the ones every cell has). A reading a cell does not define is not
        recorded for it.

All work arrays come from work(name, shape), per layer, reused from call to call and aligned to
a cache line; a cell allocates nothing else inside its loops.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from . import gru, lstm, rnn
from .base import Init, Work

__all__ = ["CELLS", "Init", "Work", "layer_params"]

CELLS: dict[str, ModuleType] = {"rnn": rnn, "gru": gru, "lstm": lstm}


def layer_params(params: dict[str, np.ndarray], l: int) -> dict[str, np.ndarray]:
    """Layer l's parameters by local name: "0.Whh" -> "Whh" (the same arrays, not copies)."""
    prefix = f"{l}."
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
