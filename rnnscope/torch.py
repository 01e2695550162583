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
from .triage import Watch, format_diagnosis, headline, write_triage
from .version import __version__

__all__ = ["STATE_WINDOW", "Panel", "state_readings"]  # STATE_WINDOW: the readings' characters
CELL_OF = tuple((getattr(nn, c.TORCH[0]), name) for name, c in CELLS.items())  # cells' modules
GRAD_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}  # torch_grad_rel_diff of a match
CLIPPED = 1e-6  # .grad this much (relative) below its norm after backward: clipping fired
OPTIMIZERS = {"Adam": "adam", "Adagrad": "adagrad", "RMSprop": "rmsprop"}


@dataclass
class Batch:
    """What the hooks captured of one training forward pass, time-major."""
    u: torch.Tensor                  # (T, B, in) the module's input
    h0: tuple | None                 # the initial state's parts, each (L, B, H); None: zero
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
                 report: bool = True, seed: int = 0) -> None:
        """rnn: the module to watch; run_dir: a new (or empty) directory for the run.
        quiet: no line per record; loss_reduction: "mean" (PyTorch's default) or "sum" over
        the T*B positions; vocab_size: your alphabet's size, if you want the triage to know
        the loss of a uniform guess; train_chars: your training text's size in characters,
        so that the triage can tell whether the model has read it once (no memorisation is
        claimed before); report: write report.html at close() (False: faster
        tests); seed: the through-time profile's random vectors."""
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
        self.batch: Batch | None = None
        self.forwards = 0                # training forward passes since the last step
        self.grad_sq: dict = {}          # parameter -> squared norm of .grad after backward
        self.torch_grads: dict = {}      # rnn parameter -> .grad after backward (record steps)
        self.warned: set[str] = set()
        self.watched: set = set()        # parameters with a post-accumulate hook
        # rnnscope's engine holding the module's layers (their weights copied in at a record)
        self.model = Model(rnn.input_size, rnn.hidden_size, rnn.num_layers, cell=self.cell,
                           dtype=str(rnn.weight_hh_l0.dtype).removeprefix("torch."))
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
        self.batch = Batch(u.detach().clone(), parts and tuple(
            (p if p.dim() == 3 else p.unsqueeze(1)).detach().clone() for p in parts))
        out, h_n = output
        h_n = tuple(h_n) if isinstance(h_n, tuple) else (h_n,)
        batch = self.batch
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
        params = [p for group in optimizer.param_groups for p in group["params"]
                  if p.grad is not None]
        if self.steps == 0:
            self._describe_optimizer(optimizer)
            self._watch_grads(params)
        n, due = self.steps + 1, self._due()
        now = [torch.linalg.vector_norm(p.grad.detach()) ** 2 for p in params]
        now_sq = float(torch.stack(now).sum())
        pre_sq = float(torch.stack([self.grad_sq.get(p, g) for p, g in zip(params, now,
                                                                           strict=True)]).sum())
        grad_norm = math.sqrt(pre_sq)
        nll = float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        nll /= self._positions() if self.loss_reduction == "sum" else 1
        self.interval.add(n, nll, float(now_sq < pre_sq * (1 - CLIPPED)), grad_norm)
        measured = self._measure() if due else None
        before = [p.detach().clone() for p in params] if measured else None
        optimizer.step()
        self.steps = n
        if due:
            rec = self._base_record(optimizer)
            rec.update(self.interval.summary(n), grad_norm=grad_norm)
            if measured:
                rec.update(self._readings(measured, params, before))
            self._write(rec)
        self.grad_sq, self.torch_grads, self.forwards = {}, {}, 0

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
        self._say(format_diagnosis(write_triage(self.path)))
        if self.report:
            self._say(f"report: {write_report([self.path])}")
        return self.path

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc) -> None:
        if self.hooks:
            self.close()

    # ---- measuring a record step

    def _measure(self) -> dict | None:
        """The engine's pass on the captured batch, before the optimizer changes the weights:
        {"probes", "grads", "grad_diff"}; None (with a note, once) when nothing was captured."""
        b = self.batch
        if b is None or b.dout is None:
            self._warn("no-batch", f"step {self.steps + 1}: no training forward pass of the "
                       "watched module reached the loss since the last step, so the record has "
                       "no layer readings; call panel.step after loss.backward()")
            return None
        to_mean = 1 / self._positions() if self.loss_reduction == "sum" else 1
        with torch.no_grad():
            for k, v in mapped(self.rnn, self.cell, numpy, "sum").items():
                self.model.params[k][...] = v
            h0 = None if b.h0 is None else from_parts([numpy(p) for p in b.h0])
            dh_last = None if b.dh_last is None else numpy(b.dh_last) * to_mean
        # gradients of the mean loss, as rnnscope's engine gives them (SPEC 2)
        probes, grads = self.model.layers_pass(numpy(b.u), h0, numpy(b.dout) * to_mean, dh_last)
        return {"probes": probes, "grads": grads, "grad_diff": self._compare(grads, to_mean, b)}

    def _positions(self) -> int:
        """T*B of the last training batch."""
        return self.shape[0] * self.shape[1]

    def _compare(self, grads: dict, to_mean: float, b: Batch) -> float | None:
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
        if rel > GRAD_TOLERANCE[self.rnn.weight_hh_l0.dtype]:
            causes = ["another loss term that reaches the weights (a penalty, an auxiliary "
                      "loss)", "weight decay added to .grad"]
            if self.forwards > 1:
                causes.insert(0, f"{self.forwards} forward passes before this step (the panel "
                                 "reads the last)")
            if self.rnn.dropout and self.rnn.num_layers > 1 and self.rnn.training:
                causes.insert(0, "dropout between layers, which rnnscope's pass leaves out")
            if b.dc_last:
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
        for finding in self.watch.update(rec):
            self._say(f"step {rec['step']}: {headline(finding)}")

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
    if rnn.weight_hh_l0.dtype not in GRAD_TOLERANCE:
        raise RnnscopeError(f"rnnscope.torch.Panel reads float32 or float64 weights, not "
                            f"{rnn.weight_hh_l0.dtype}; watch the module in full precision")
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


def numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())
