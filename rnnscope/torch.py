"""Your own PyTorch network on rnnscope's panel (SPEC section 10; `pip install rnnscope[torch]`).

`Panel` watches an unmodified nn.RNN (tanh), nn.GRU or nn.LSTM inside your own training loop:

    panel = rnnscope.torch.Panel(model.rnn, "runs/mine")   # 1. after building the model
    ...                                                     #    your loop, unchanged, except:
        panel.step(loss, optimizer)                         # 2. instead of optimizer.step()
    panel.close()                                           # 3. triage.json and report.html

On a record step (every `log_every` steps):
- a forward hook on the module keeps the batch's input and initial state, and a hook on the
  module's output keeps the gradient that reaches it from your loss;
- the module's weights are mapped onto rnnscope's cell (SPEC 8: weight_ih_l{l} is Wx.T, ...)
  and rnnscope's own backward runs on the captured input and output gradient
  (Model.layers_pass), so every per-layer reading (h, dh, dh_raw, the through-time profile) is
  exact: the same numbers rnnscope's engine gives on the same weights and batch;
- rnnscope's weight gradients are compared with those torch accumulated in .grad (before any
  clipping); a difference is recorded (torch_grad_rel_diff) and reported once, with its likely
  causes.
On every step, hooks after gradient accumulation give grad_norm (every parameter the optimizer
steps, before your clipping) and clip_rate (the fraction of steps on which .grad was smaller at
panel.step than after backward); update_ratio is measured around optimizer.step().

`loss` is taken to be the mean NLL over the batch's T*B positions, in nats (PyTorch's default
cross_entropy): it is train_nll, and it makes dh_norm the gradient of the summed NLL (SPEC 3).
Pass loss_reduction="sum" for a loss summed over the positions.

The loops people write:
- gradient accumulation (several forward and backward passes, then panel.step): the record
  step's micro-batches are read as one batch (side by side), so the readings and the gradient
  check are of everything .grad accumulated; divide each micro-batch's mean loss by their
  number, as usual. Micro-batches of different lengths give a record without layer readings;
- torch.autocast: rnnscope's pass runs in the module's own precision on the captured input and
  output gradient (the readings of the full-precision layers); torch's lower-precision .grad is
  compared with a tolerance of that precision;
- torch.compile: pass the compiled model's module (compiled.rnn) or the compiled module itself;
- a module moved to another dtype or device after the Panel was made is followed; one in a
  precision other than float32/float64 is refused at its next forward pass;
- `with Panel(...) as panel:` closes the run also when the loop raises (the exception goes on).

This module imports the real torch (absolute imports); nothing else in rnnscope does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import panel, runs
from .cells import CELLS
from .display import PlainDisplay
from .errors import RnnscopeError
from .heldout import STATE_KEYS, STATE_WINDOW
from .model import Model, from_parts
from .records import finite_or_none
from .report import write_report
from .sinks.tensorboard import TensorBoard
from .sinks.wandb import WandB
from .triage import Watch, format_diagnosis, headline, write_triage
from .version import __version__

__all__ = ["STATE_WINDOW", "Panel", "state_readings"]  # STATE_WINDOW: the readings' characters
CELL_OF = tuple((getattr(nn, c.TORCH[0]), name) for name, c in CELLS.items())  # cells' modules
GRAD_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}  # torch_grad_rel_diff of a match
AUTOCAST_TOLERANCE = 5e-2  # .grad computed by torch.autocast in bfloat16/float16
CLIPPED = 1e-6  # .grad this much (relative) below its norm after backward: clipping fired
OPTIMIZERS = {"Adam": "adam", "Adagrad": "adagrad", "RMSprop": "rmsprop"}


@dataclass
class Batch:
    """What the hooks captured of one training forward pass, time-major."""
    u: torch.Tensor                  # (T, B, in) the module's input
    h0: tuple | None                 # the initial state's parts, each (L, B, H); None: zero
    autocast: torch.dtype | None = None  # the precision torch.autocast ran the module in
    dout: torch.Tensor | None = None     # (T, B, H) gradient reaching the module's output
    dh_last: torch.Tensor | None = None  # (L, B, H) gradient reaching h_n, if your loss reads it
    dc_last: bool = False            # whether a gradient reached the LSTM's c_n


class Panel:
    """rnnscope's instrument panel, triage and report for an nn.RNN, nn.GRU or nn.LSTM trained
    in your own loop. Records go to run_dir/metrics.jsonl every log_every steps (and on eval()).
    """

    def __init__(self, rnn: nn.Module, run_dir: str | Path, log_every: int = 50, *,
                 quiet: bool = False, sat_threshold: float = 0.95, loss_reduction: str = "mean",
                 vocab_size: int | None = None, train_chars: int | None = None,
                 report: bool = True, seed: int = 0, tensorboard=None, wandb_run=None) -> None:
        """rnn: the module to watch (or a torch.compile'd one); run_dir: a new (or empty)
        directory for the run.
        quiet: no line per record; loss_reduction: "mean" (PyTorch's default) or "sum" over
        the T*B positions; vocab_size: your alphabet's size, if you want the triage to know
        the loss of a uniform guess; train_chars: your training text's size in characters,
        so that the triage can tell whether the model has read it once (no memorisation is
        claimed before); report: write report.html at close() (False: faster tests); seed: the
        through-time profile's random vectors; tensorboard: a SummaryWriter and wandb_run: a W&B
        run that every record and finding is also written to (both stay yours: flushed at
        close(), never closed; docs/ecosystem.md)."""
        rnn = compiled_module(rnn)
        self.cell = cell_of(rnn)
        if not (isinstance(log_every, int) and log_every > 0):
            raise RnnscopeError(f"log_every must be a positive integer, got {log_every!r}")
        if loss_reduction not in ("mean", "sum"):
            raise RnnscopeError(f"loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}")
        self.rnn, self.log_every, self.report = rnn, log_every, report
        self.sat_threshold, self.loss_reduction = sat_threshold, loss_reduction
        fix = "pass another run_dir to rnnscope.torch.Panel"
        self.path = runs.make_run_dir(Path(run_dir), fix, fix)
        self.doc = {"rnnscope_version": __version__, "source": "pytorch",
                    "config": {"cell": self.cell, "hidden": rnn.hidden_size,
                               "layers": rnn.num_layers, "dropout": rnn.dropout,
                               "log_every": log_every, "sat_threshold": sat_threshold,
                               "whh_sigma_init": sigma_init(rnn)}}
        if vocab_size:
            self.doc["vocab_size"] = vocab_size
        if train_chars:
            self.doc["train_chars"] = train_chars
        runs.write_text(self.path / runs.CONFIG, json.dumps(self.doc, indent=2) + "\n")
        self.watch: Watch | None = None  # the live triage, made at the first record
        self.display = None if quiet else PlainDisplay()
        if self.display:
            self.display.start(self.path, 0, None, None)
        self.rng = np.random.default_rng([seed, 2])  # the through-time profile's vectors
        self.interval = panel.Interval()
        self.steps, self.chars, self.t0 = 0, 0, time.perf_counter()
        self.shape = (0, 0)              # (T, B) of the last training forward pass
        self.batches: list[Batch] = []   # those of the record step, in order
        self.forwards = 0                # training forward passes since the last step
        self.grad_sq: dict = {}          # parameter -> squared norm of .grad after backward
        self.torch_grads: dict = {}      # rnn parameter -> .grad after backward (record steps)
        self.warned: set[str] = set()
        self.watched: set = set()        # parameters with a post-accumulate hook
        # rnnscope's engine holding the module's layers (their weights copied in at a record)
        self.model = Model(rnn.input_size, rnn.hidden_size, rnn.num_layers, cell=self.cell,
                           dtype=str(rnn.weight_hh_l0.dtype).removeprefix("torch."))
        self.pending: tuple | None = None  # before_step's measurements, for after_step
        self.sinks = [s for s in (tensorboard and TensorBoard(tensorboard),
                                  wandb_run and WandB(wandb_run)) if s]
        for sink in self.sinks:
            sink.start(self.path, 0)
        self.hooks = [rnn.register_forward_hook(self._on_forward, with_kwargs=True)]
        self._watch_grads(rnn.parameters())

    # ---- hooks

    def _due(self) -> bool:
        """Whether the step being computed (the next panel.step) is a record step."""
        return (self.steps + 1) % self.log_every == 0

    def _on_forward(self, module, args, kwargs, output) -> None:
        if not (torch.is_grad_enabled() and module.training):
            return  # an evaluation pass, not a training step
        x = args[0] if args else kwargs["input"]
        check_precision(module.weight_hh_l0.dtype, "now")
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise RnnscopeError("rnnscope.torch.Panel reads padded batches, not a "
                                "PackedSequence; pad the sequences (nn.utils.rnn.pad_sequence)")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        u = time_major(x, self.rnn.batch_first)
        self.shape = tuple(u.shape[:2])  # (T, B)
        self.chars += u.shape[0] * u.shape[1]
        self.forwards += 1
        if not self._due():
            return
        parts = None if hx is None else tuple(hx) if isinstance(hx, tuple) else (hx,)
        device = u.device.type
        batch = Batch(u.detach().clone(), parts and tuple(
            (p if p.dim() == 3 else p.unsqueeze(1)).detach().clone() for p in parts),
            torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None)
        self.batches.append(batch)
        out, h_n = output
        h_n = tuple(h_n) if isinstance(h_n, tuple) else (h_n,)
        if out.requires_grad:
            out.register_hook(lambda g: setattr(batch, "dout", time_major(g, self.rnn.batch_first)))
        if h_n[0].requires_grad:
            h_n[0].register_hook(lambda g: setattr(
                batch, "dh_last", g if g.dim() == 3 else g.unsqueeze(1)))
        if len(h_n) > 1 and h_n[1].requires_grad:
            h_n[1].register_hook(lambda g: setattr(batch, "dc_last", bool(g.abs().max() > 0)))

    def _watch_grads(self, params) -> None:
        rnn_params = set(self.rnn.parameters())
        for p in params:
            if p.requires_grad and p not in self.watched:
                self.watched.add(p)
                self.hooks.append(p.register_post_accumulate_grad_hook(
                    lambda p, keep=p in rnn_params: self._on_grad(p, keep)))

    def _on_grad(self, p: torch.Tensor, keep: bool) -> None:
        g = p.grad.detach()
        self.grad_sq[p] = torch.linalg.vector_norm(g) ** 2  # a tensor: no sync per parameter
        if keep and self._due():
            self.torch_grads[p] = g.clone()

    # ---- the loop's calls

    def step(self, loss, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(), with the panel's measurements around it (as GradScaler.step)."""
        self.before_step(loss, optimizer)
        optimizer.step()
        self.after_step(optimizer)

    def before_step(self, loss, optimizer: torch.optim.Optimizer) -> None:
        """The measurements before the update, for a loop that calls optimizer.step() itself
        (rnnscope.lightning): then after_step(optimizer) right after the update."""
        params = [p for group in optimizer.param_groups for p in group["params"]
                  if p.grad is not None]
        if self.steps == 0:
            self._describe_optimizer(optimizer)
            self._watch_grads(params)
        nll = float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        nll /= self._positions() if self.loss_reduction == "sum" else 1
        measured = self._measure() if self._due() else None
        before = [p.detach().clone() for p in params] if measured else None
        self.pending = (params, nll, measured, before)

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The record of the step optimizer.step() just took (see before_step). Clipping is
        seen from .grad here, so clipping after before_step (Lightning's) counts too."""
        if self.pending is None:
            raise RnnscopeError("panel.after_step(optimizer) follows panel.before_step(loss, "
                                "optimizer) on every step; call before_step first")
        (params, nll, measured, before), self.pending = self.pending, None
        n, due = self.steps + 1, self._due()
        now = [torch.linalg.vector_norm(p.grad.detach()) ** 2 for p in params]
        now_sq = float(torch.stack(now).sum())
        pre_sq = float(torch.stack([self.grad_sq.get(p, g) for p, g in zip(params, now,
                                                                           strict=True)]).sum())
        grad_norm = math.sqrt(pre_sq)
        self.interval.add(n, nll, float(now_sq < pre_sq * (1 - CLIPPED)), grad_norm)
        self.steps = n
        if due:
            rec = self._base_record(optimizer)
            rec.update(self.interval.summary(n), grad_norm=grad_norm)
            if measured:
                rec.update(self._readings(measured, params, before))
            self._write(rec)
        self.grad_sq, self.torch_grads, self.forwards, self.batches = {}, {}, 0, []

    def eval(self, nll: float, **state: float) -> None:
        """Record an eval NLL (nats/char, over your held-out text) at the current step, and the
        state-dependence readings if you measure them: eval_nll_fresh=, eval_nll_carried=,
        train_nll_fresh= (state_readings() computes them with your own scoring function)."""
        unknown = sorted(set(state) - set(STATE_KEYS))
        if unknown:
            raise RnnscopeError(f"panel.eval() got {unknown[0]}=; pass only eval_nll_fresh=, "
                                "eval_nll_carried= or train_nll_fresh= (docs/panel.md)")
        self._write({**self._base_record(None), "eval_nll": float(nll),
                     **{k: float(v) for k, v in state.items()}})

    def close(self) -> Path:
        """A final record for the steps since the last one, then triage.json and report.html.
        Returns the run directory."""
        if self.interval.state["n"] > 0:
            self._write({**self._base_record(None), **self.interval.summary(self.steps),
                         "final": True})
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        for sink in self.sinks:
            sink.close()
        self._say(format_diagnosis(write_triage(self.path)))
        if self.report:
            self._say(f"report: {write_report([self.path])}")
        return self.path

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc) -> None:
        if not self.hooks:
            return
        if exc[0] is None:
            self.close()
            return
        try:  # the loop raised: keep what it recorded readable, and let its exception go on
            self.close()
        except Exception as e:
            self._say(f"rnnscope: the run in {self.path} could not be closed after the loop "
                      f"raised ({type(e).__name__}: {e}); its records are kept")

    # ---- measuring a record step

    def _measure(self) -> dict | None:
        """The engine's pass on the captured batch (the step's micro-batches side by side),
        before the optimizer changes the weights: {"probes", "grads", "grad_diff"}; None
        (with a note, once) when there is no batch to read."""
        used = [b for b in self.batches if b.dout is not None]
        lengths = sorted({b.u.shape[0] for b in used})
        if len(lengths) != 1:
            why = (f"its micro-batches have different lengths (T = {lengths})" if used else
                   "no training forward pass of the watched module reached the loss since the "
                   "last step; call panel.step after loss.backward()")
            self._warn(f"no-batch {bool(used)}", f"step {self.steps + 1}: {why}, so the record "
                       "has no layer readings")
            return None
        dtype = self.rnn.weight_hh_l0.dtype
        if self.model.dtype != numpy_dtype(dtype):  # the module was moved to another dtype
            self.model = Model(self.rnn.input_size, self.rnn.hidden_size, self.rnn.num_layers,
                               cell=self.cell, dtype=str(numpy_dtype(dtype)))
        positions = sum(b.u.shape[0] * b.u.shape[1] for b in used)
        to_mean = 1 / positions if self.loss_reduction == "sum" else 1
        with torch.no_grad():
            for k, v in mapped(self.rnn, self.cell, numpy, "sum").items():
                self.model.params[k][...] = v
            u, h0, dout, dh_last = side_by_side(used, self.rnn.num_layers, dtype)
        # gradients of the mean loss, as rnnscope's engine gives them (SPEC 2)
        probes, grads = self.model.layers_pass(u, None if h0 is None else from_parts(h0),
                                               dout * to_mean,
                                               None if dh_last is None else dh_last * to_mean)
        return {"probes": probes, "grads": grads,
                "grad_diff": self._compare(grads, to_mean, used)}

    def _positions(self) -> int:
        """T*B of the last training batch."""
        return self.shape[0] * self.shape[1]

    def _compare(self, grads: dict, to_mean: float, used: list[Batch]) -> float | None:
        """The relative difference of the .grad torch accumulated (before clipping) from
        rnnscope's weight gradients, reported once when it is too large; None when torch left
        some parameter without a gradient."""
        if len(self.torch_grads) < sum(1 for _ in self.rnn.parameters()):
            return None
        theirs = mapped(self.rnn, self.cell, lambda t: numpy(self.torch_grads[t]) * to_mean,
                        "first")
        diff = math.sqrt(sum(float(np.sum((theirs[k] - g) ** 2)) for k, g in grads.items()))
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        rel = diff / norm if norm > 0 else 0.0
        autocast = next((b.autocast for b in used if b.autocast), None)
        if rel > (AUTOCAST_TOLERANCE if autocast else GRAD_TOLERANCE[self.rnn.weight_hh_l0.dtype]):
            causes = ["another loss term that reaches the weights (a penalty, an auxiliary "
                      "loss)", "weight decay added to .grad"]
            if self.forwards > len(used):
                causes.insert(0, f"{self.forwards - len(used)} forward passes before this step "
                                 "whose output reached no loss")
            if self.rnn.dropout and self.rnn.num_layers > 1 and self.rnn.training:
                causes.insert(0, "dropout between layers, which rnnscope's pass leaves out")
            if autocast:
                causes.insert(0, f"torch.autocast's {str(autocast).removeprefix('torch.')}, far "
                                 "from the module's own precision")
            if any(b.dc_last for b in used):
                causes.insert(0, "a loss that reads c_n, which rnnscope's pass leaves out")
            self._warn("grad", f"step {self.steps + 1}: torch's .grad of the {self.cell} "
                       f"differs from rnnscope's backward on the captured batch by "
                       f"{rel:.2g} (relative); likely {'; or '.join(causes)}. The readings "
                       "are of the batch's loss alone")
        return rel

    def _readings(self, measured: dict, params: list, before: list) -> dict:
        """The panel's readings of the record step, after the optimizer's update."""
        with torch.no_grad():
            after = mapped(self.rnn, self.cell, numpy, "sum")
            change = {p: p.detach() - b for p, b in zip(params, before, strict=True)}
            deltas = mapped(self.rnn, self.cell,  # a frozen parameter does not change
                            lambda t: numpy(change.get(t, torch.zeros_like(t))), "sum")
            d2 = sum(float(torch.sum(d * d)) for d in change.values())
            p2 = sum(float(torch.sum(b * b)) for b in before)
        rec = panel.measure(measured["probes"], after, panel.grad_norms(measured["grads"]),
                             deltas, self.sat_threshold, self.rng, self.cell)
        rec["update_ratio"] = math.sqrt(d2 / p2) if p2 > 0 else math.inf  # every parameter
        if measured["grad_diff"] is not None:
            rec["torch_grad_rel_diff"] = measured["grad_diff"]
        return rec

    # ---- records

    def _base_record(self, optimizer) -> dict:
        rec = {"step": self.steps, "chars": self.chars,
               "elapsed_s": round(time.perf_counter() - self.t0, 3)}
        if optimizer is not None:
            rec["lr"] = optimizer.param_groups[0]["lr"]
        return rec

    def _write(self, rec: dict) -> None:
        rec = {k: finite_or_none(v) for k, v in rec.items()}
        runs.append_record(self.path, rec)
        if self.display:
            self.display.record(rec)
        self.watch = self.watch or Watch.for_config(self.doc)  # next steps worded for PyTorch
        findings = self.watch.update(rec)
        for finding in findings:
            self._say(f"step {rec['step']}: {headline(finding)}")
        for sink in self.sinks:
            sink.write(rec, findings)

    def _say(self, text: str) -> None:
        if self.display:
            self.display.note(text)

    def _warn(self, kind: str, text: str) -> None:
        if kind not in self.warned:
            self.warned.add(kind)
            self._say(f"rnnscope: {text}")

    def _describe_optimizer(self, optimizer) -> None:
        """The optimizer's name and settings into config.json, as rnnscope's flags name them."""
        group, name = optimizer.param_groups[0], type(optimizer).__name__
        if name == "SGD":
            name = "momentum" if group.get("momentum") else "sgd"
        self.doc["config"].update(optimizer=OPTIMIZERS.get(name, name.lower()), lr=group["lr"],
                                  weight_decay=group.get("weight_decay", 0.0),
                                  seq_len=self.shape[0], batch=self.shape[1])
        runs.write_text(self.path / runs.CONFIG, json.dumps(self.doc, indent=2) + "\n")


# ---- the module, its weights and tensors


def state_readings(score: Callable[[object, object], float], held_out, recent,
                   carried) -> dict[str, float]:
    """The state-dependence readings (docs/panel.md) for panel.eval(nll, **readings), from your
    own score(text, h0) -> mean NLL in nats/char of text scored from the state h0 (None: a
    zero state) and carried along it. held_out: the first STATE_WINDOW (200) + 1 characters
    of your held-out text; recent: the last STATE_WINDOW + 1 your training streams read;
    carried: the state your training streams carry now (for as many streams as held_out
    has)."""
    return {"eval_nll_fresh": float(score(held_out, None)),
            "eval_nll_carried": float(score(held_out, carried)),
            "train_nll_fresh": float(score(recent, None))}


def compiled_module(rnn):
    """The module inside a torch.compile'd one (its hooks run when the compiled one is
    called), or rnn itself."""
    inner = getattr(rnn, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else rnn


def check_precision(dtype: torch.dtype, when: str = "") -> None:
    if dtype not in GRAD_TOLERANCE:
        raise RnnscopeError(f"rnnscope.torch.Panel reads float32 or float64 weights, and the "
                            f"watched module's are {when + ' ' if when else ''}{dtype}; keep "
                            "the module in full precision (torch.autocast lowers the precision "
                            "of the computation alone, and is read)")


def cell_of(rnn) -> str:
    """rnnscope's cell for the module, or one clear error for what the panel cannot watch."""
    cell = next((c for cls, c in CELL_OF if isinstance(rnn, cls)), None)
    if cell is None:
        raise RnnscopeError(f"rnnscope.torch.Panel watches an nn.RNN, nn.GRU or nn.LSTM, not "
                            f"{type(rnn).__name__}; pass the recurrent module itself "
                            "(e.g. model.rnn)")
    if rnn.bidirectional:
        raise RnnscopeError("rnnscope.torch.Panel cannot watch a bidirectional module: "
                            "rnnscope's cells run forward in time only; use bidirectional=False")
    if getattr(rnn, "nonlinearity", "tanh") != "tanh":  # nn.RNN's relu
        raise RnnscopeError("rnnscope.torch.Panel cannot watch nn.RNN(nonlinearity='relu'): "
                            "rnnscope's vanilla cell is tanh; use nonlinearity='tanh'")
    if getattr(rnn, "proj_size", 0):
        raise RnnscopeError("rnnscope.torch.Panel cannot watch an LSTM with proj_size > 0: "
                            "rnnscope's LSTM has no projection; use proj_size=0")
    check_precision(rnn.weight_hh_l0.dtype)
    return cell


def sigma_init(rnn) -> float:
    """The largest singular value of the recurrent weights as the panel finds them (your init):
    what the triage compares a grown whh_sigma_max with."""
    with torch.no_grad():
        return round(max(float(torch.linalg.matrix_norm(getattr(rnn, f"weight_hh_l{l}"), ord=2))
                         for l in range(rnn.num_layers)), 4)


def mapped(rnn, cell: str, get, combine: str) -> dict[str, np.ndarray]:
    """rnnscope's parameters of the module, "{l}.{name}" (SPEC 8), from get(tensor): of the
    weights, their changes (combine "sum": b = bias_ih + bias_hh) or their gradients (combine
    "first": b's gradient is either bias's). Matrices transposed; no bias (bias=False): zeros."""
    out = {}
    for l in range(rnn.num_layers):
        for name, sources in CELLS[cell].TORCH[1].items():  # SPEC 8's mapping
            parts = [get(getattr(rnn, f"{s}_l{l}")) for s in sources if hasattr(rnn, f"{s}_l{l}")]
            if combine == "first":
                parts = parts[:1]
            a = sum(parts) if parts else np.zeros(getattr(rnn, f"weight_hh_l{l}").shape[0],
                                                  numpy(rnn.weight_hh_l0).dtype)
            out[f"{l}.{name}"] = np.ascontiguousarray(a.T) if a.ndim == 2 else a
    return out


def time_major(t: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """(T, B, ...) from a batched tensor in the module's layout, or (T, 1, ...) unbatched."""
    if t.dim() == 2:
        return t.unsqueeze(1)
    return t.transpose(0, 1) if batch_first else t


def side_by_side(batches: list[Batch], layers: int, dtype: torch.dtype) -> tuple:
    """(u, h0 parts, dout, dh_last) of micro-batches of one length as one batch, numpy arrays
    in the weights' dtype (autocast's output gradient is of lower precision); a missing state
    or h_n gradient is zero."""
    def joined(tensors) -> np.ndarray:
        return numpy(torch.cat([t.to(dtype) for t in tensors], dim=1))

    def state(b: Batch, i: int) -> torch.Tensor:
        B, H = b.u.shape[1], b.dout.shape[2]
        return b.h0[i] if b.h0 else torch.zeros(layers, B, H, dtype=dtype, device=b.u.device)

    parts = max((len(b.h0) for b in batches if b.h0), default=0)
    h0 = [joined([state(b, i) for b in batches]) for i in range(parts)] or None
    dh_last = None
    if any(b.dh_last is not None for b in batches):
        dh_last = joined([b.dh_last if b.dh_last is not None else torch.zeros_like(state(b, 0))
                          for b in batches])
    return (joined([b.u for b in batches]), h0, joined([b.dout for b in batches]), dh_last)


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return np.dtype(str(dtype).removeprefix("torch."))


def numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())
