"""Optimizers, gradient clipping and learning-rate schedules.

Everything works on the flat dicts of the model: `params` and `grads` map a parameter name
("0.Whh", "Why", ...) to an array. Optimizer state is a flat dict of numpy arrays so that it can
be saved into an .npz without pickle: one slot array per parameter, named "{slot}.{param}"
("m.0.Whh", "v.0.Whh"), and "t", the number of steps taken, as a 0-d int64 array. Schedule state
is a dict of floats and ints, so that it fits in JSON.

Hyperparameters are fixed, as in the classic recipes (and as torch.optim's defaults where those
are the classic ones):
  momentum  heavy ball, 0.9, the velocity kept in gradient units (as torch.optim.SGD), so that a
            learning-rate change takes effect at once
  adagrad   eps 1e-8, added outside the square root
  rmsprop   decay 0.9 (Hinton's lecture 6e; torch's default is 0.99), eps 1e-8 outside the root
  adam      betas (0.9, 0.999), eps 1e-8 outside the root, bias-corrected (Kingma and Ba)
Weight decay is decoupled (AdamW, Loshchilov and Hutter): theta -= lr * weight_decay * theta,
next to the optimizer's own step, whatever the optimizer; it applies to the matrices (ndim >= 2)
only, never to biases, which set an operating point rather than a capacity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .errors import RnnscopeError

CLIPS = ("norm", "elementwise", "none")
SCHEDULES = ("constant", "step", "cosine", "plateau")

__all__ = ["CLIPS", "OPTIMIZERS", "SCHEDULES", "clip_gradients", "learning_rate", "on_eval",
           "optimizer_step"]

MOMENTUM = 0.9
RMSPROP_DECAY = 0.9
ADAM_BETAS = (0.9, 0.999)
EPS = 1e-8

STEP_MILESTONES = (0.5, 0.75)  # "step" schedule: lr x 0.1 at each of these fractions of training
STEP_FACTOR = 0.1
COSINE_FLOOR = 0.01            # "cosine" ends at this fraction of base_lr
PLATEAU_PATIENCE = 2           # "plateau": evals without improvement before the lr is halved
PLATEAU_MIN_IMPROVEMENT = 1e-3  # nats/char an eval must beat the best by to count as progress
PLATEAU_CUT = 0.5


# ----------------------------------------------------------------------------------- clipping

def clip_gradients(grads: dict[str, np.ndarray], mode: str, value: float) -> tuple[float, float]:
    """Clip `grads` in place; return (grad_norm, clip_stat).

    grad_norm is the global L2 norm of all gradients before clipping (float64 accumulation).
      "norm":        if grad_norm > value, scale every gradient by value / grad_norm, so the
                     global norm becomes value; clip_stat is 1.0 if it fired, else 0.0
      "elementwise": clip each component to [-value, value]; clip_stat is the fraction of all
                     gradient components that were clipped
      "none":        clip_stat is 0.0
    A non-finite norm never fires "norm" clipping: the gradients stay as they are, so the
    divergence shows in the readings instead of being masked.
    """
    if mode not in CLIPS:
        raise RnnscopeError(f"--clip {mode!r} is not known; use one of: {', '.join(CLIPS)}")
    grad_norm = global_norm(grads)
    if mode == "norm" and math.isfinite(grad_norm) and grad_norm > value:
        scale = value / grad_norm
        for g in grads.values():
            g *= scale
        return grad_norm, 1.0
    if mode == "elementwise":
        clipped = total = 0
        for g in grads.values():
            clipped += int(np.count_nonzero(np.abs(g) > value))
            total += g.size
            np.clip(g, -value, value, out=g)
        return grad_norm, clipped / max(total, 1)
    return grad_norm, 0.0


def global_norm(arrays: dict[str, np.ndarray]) -> float:
    """L2 norm over all entries of all arrays, accumulated in float64."""
    total = 0.0
    for a in arrays.values():
        flat = a.reshape(-1).astype(np.float64, copy=False)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


# ---------------------------------------------------------------------------------- optimizers
# Each rule writes this step's change of one parameter into `out` (shape of the parameter) and
# may use `out` as scratch before that; `slots` are its state arrays, updated in place; t >= 1.

def sgd(g, slots, t, lr, out) -> None:
    """delta = -lr * g"""
    np.multiply(g, -lr, out=out)


def momentum(g, slots, t, lr, out) -> None:
    """m <- 0.9 * m + g;  delta = -lr * m"""
    (m,) = slots
    m *= MOMENTUM
    m += g
    np.multiply(m, -lr, out=out)


def adagrad(g, slots, t, lr, out) -> None:
    """v <- v + g**2;  delta = -lr * g / (sqrt(v) + eps)"""
    (v,) = slots
    np.multiply(g, g, out=out)
    v += out
    divide_by_rms(g, v, lr, out)


def rmsprop(g, slots, t, lr, out) -> None:
    """v <- 0.9 * v + 0.1 * g**2;  delta = -lr * g / (sqrt(v) + eps)"""
    (v,) = slots
    np.multiply(g, g, out=out)
    moving_average(v, out, RMSPROP_DECAY, out)
    divide_by_rms(g, v, lr, out)


def adam(g, slots, t, lr, out) -> None:
    """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g**2;
    delta = -lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)"""
    m, v = slots
    b1, b2 = ADAM_BETAS
    moving_average(m, g, b1, out)
    np.multiply(g, g, out=out)
    moving_average(v, out, b2, out)
    divide_by_rms(m, v, lr / (1 - b1**t), out, v_correction=1 - b2**t)


def moving_average(avg: np.ndarray, x: np.ndarray, decay: float, scratch: np.ndarray) -> None:
    """avg <- decay * avg + (1 - decay) * x, in place; x may be `scratch` itself."""
    np.multiply(x, 1 - decay, out=scratch)
    avg *= decay
    avg += scratch


def divide_by_rms(numerator, v, lr, out, v_correction: float = 1.0) -> None:
    """out = -lr * numerator / (sqrt(v / v_correction) + eps)"""
    np.sqrt(v, out=out)
    if v_correction != 1.0:
        out /= math.sqrt(v_correction)
    out += EPS
    np.divide(numerator, out, out=out)
    out *= -lr


class Optimizer(NamedTuple):
    update: Callable[..., None]
    slots: tuple[str, ...]      # names of its per-parameter state arrays


OPTIMIZERS = {  # the registry: --optimizer NAME; a new optimizer is a function and a row
    "adam": Optimizer(adam, ("m", "v")),
    "sgd": Optimizer(sgd, ()),
    "momentum": Optimizer(momentum, ("m",)),
    "adagrad": Optimizer(adagrad, ("v",)),
    "rmsprop": Optimizer(rmsprop, ("v",)),
}


def optimizer_step(name: str, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                   state: dict[str, np.ndarray], lr: float, weight_decay: float = 0.0,
                   deltas: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One step of optimizer `name`: update `params` and `state` in place.

    `state` starts empty ({}); missing slots are created as zeros in each parameter's dtype.
    Returns `deltas`, name -> the change applied to each parameter (theta_new - theta_old),
    written into the arrays of the `deltas` passed in when given, so a step allocates nothing.
    """
    rule = OPTIMIZERS.get(name)
    if rule is None:
        raise RnnscopeError(f"--optimizer {name!r} is not known; use one of: "
                            f"{', '.join(OPTIMIZERS)}")
    if "t" not in state:
        state["t"] = np.zeros((), dtype=np.int64)
    state["t"] += 1
    t = int(state["t"])
    deltas = {} if deltas is None else deltas
    decay = lr * weight_decay
    for pname, p in params.items():
        slots = tuple(slot_array(state, f"{slot}.{pname}", p) for slot in rule.slots)
        out = deltas.get(pname)
        if out is None or out.shape != p.shape or out.dtype != p.dtype:
            out = deltas[pname] = np.empty_like(p)
        rule.update(grads[pname], slots, t, lr, out)
        if decay and p.ndim >= 2:
            # out <- out - decay * p, written as decay * (out / decay - p) to need no temporary;
            # the rounding error stays at one ulp of the terms, as in the direct form
            out /= decay
            out -= p
            out *= decay
        p += out
    return deltas


def slot_array(state: dict[str, np.ndarray], key: str, like: np.ndarray) -> np.ndarray:
    if key not in state:
        state[key] = np.zeros_like(like)
    return state[key]


# ---------------------------------------------------------------------------------- schedules

def learning_rate(schedule: str, base_lr: float, progress: float, sched_state: dict) -> float:
    """The learning rate at `progress` (step / total steps, or elapsed / limit), clamped to [0, 1].

      constant  base_lr
      step      base_lr x 0.1 from 50% of training and x 0.01 from 75%
      cosine    floor + (base_lr - floor) * 0.5 * (1 + cos(pi * progress)), floor = 0.01 base_lr
                (base_lr at the start, about half way down at 50%, the floor at the end)
      plateau   base_lr * sched_state["factor"] (1.0 until on_eval cuts it)
    """
    check_schedule(schedule)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "step":
        return base_lr * STEP_FACTOR ** sum(progress >= m for m in STEP_MILESTONES)
    if schedule == "cosine":
        floor = COSINE_FLOOR * base_lr
        return floor + (base_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "plateau":
        return base_lr * sched_state.get("factor", 1.0)
    return base_lr


def on_eval(schedule: str, sched_state: dict, eval_nll: float) -> bool:
    """Tell the schedule an eval NLL; True when it cut the learning rate.

    Only "plateau" listens: an eval that beats sched_state["best"] by more than 1e-3 nats/char
    becomes the new best; otherwise sched_state["bad_evals"] counts up, and after 2 such evals in
    a row sched_state["factor"] is halved and the count restarts (what people do by hand when
    the eval loss stalls). A NaN or inf eval counts as a stall. The state holds floats and ints
only; "best" appears at the first finite eval.
    """
    check_schedule(schedule)
    if schedule != "plateau":
        return False
    sched_state.setdefault("factor", 1.0)
    sched_state.setdefault("bad_evals", 0)
    best = sched_state.get("best")
    if math.isfinite(eval_nll) and (best is None or eval_nll < best - PLATEAU_MIN_IMPROVEMENT):
        sched_state["best"] = float(eval_nll)
        sched_state["bad_evals"] = 0
        return False
    sched_state["bad_evals"] += 1
    if sched_state["bad_evals"] < PLATEAU_PATIENCE:
        return False
    sched_state["factor"] *= PLATEAU_CUT
    sched_state["bad_evals"] = 0
    return True


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise RnnscopeError(f"--lr-schedule {schedule!r} is not known; use one of: "
                            f"{', '.join(SCHEDULES)}")
