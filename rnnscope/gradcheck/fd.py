"""Finite-difference gradient checks: float64 central differences against the analytic gradient.

Relative error per parameter is ||g_analytic - g_numeric|| / (||g_analytic|| + ||g_numeric||) over
the checked entries. For a smooth tanh/softmax net in float64: below 1e-7 is right, above 1e-4 is
a bug, in between deserves a closer look (usually a too large or too small eps).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..model import Model

GOOD, WRONG = 1e-7, 1e-4


@dataclass
class ParamCheck:
    name: str
    entries: int          # how many entries were perturbed
    rel_error: float
    max_abs_diff: float
    good: float = GOOD    # below: "good"; above `wrong`: "wrong"; between: "doubtful"
    wrong: float = WRONG

    @property
    def verdict(self) -> str:
        if self.rel_error < self.good:
            return "good"
        return "wrong" if self.rel_error > self.wrong else "doubtful"


def numerical_gradient(loss: Callable[[], float], theta: np.ndarray, index: np.ndarray,
                       eps: float) -> np.ndarray:
    """Central differences of loss() w.r.t. flat entries `index` of theta (perturbed in place)."""
    flat = theta.reshape(-1)
    g = np.empty(len(index))
    for j, i in enumerate(index):
        old = flat[i]
        flat[i] = old + eps
        plus = loss()
        flat[i] = old - eps
        minus = loss()
        flat[i] = old
        g[j] = (plus - minus) / (2 * eps)
    return g


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||): 0 when equal, 1 when opposite or one is zero."""
    scale = norm(a) + norm(b)
    return float(norm(a - b) / scale) if scale > 0 else 0.0


def norm(a: np.ndarray) -> float:
    """The Euclidean norm of every entry (np.linalg.norm's, without its overhead)."""
    return float(np.sqrt(np.vdot(a, a)))


def compare(name: str, analytic: np.ndarray, numeric: np.ndarray, good: float = GOOD,
            wrong: float = WRONG) -> ParamCheck:
    max_abs = float(np.max(np.abs(analytic - numeric))) if analytic.size else 0.0
    return ParamCheck(name, analytic.size, rel_error(analytic, numeric), max_abs, good, wrong)


def check_gradients(params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                    loss: Callable[[], float], eps: float = 1e-6, max_entries: int | None = None,
                    seed: int = 0) -> list[ParamCheck]:
    """Compare grads with central differences of loss() on every parameter.

    max_entries: check at most that many randomly chosen entries per parameter (None: all)."""
    rng = np.random.default_rng(seed)
    checks = []
    for name, theta in params.items():
        index = np.arange(theta.size)
        if max_entries is not None and theta.size > max_entries:
            index = np.sort(rng.choice(theta.size, max_entries, replace=False))
        numeric = numerical_gradient(loss, theta, index, eps)
        checks.append(compare(name, grads[name].reshape(-1)[index], numeric))
    return checks


def check_model(vocab_size: int = 11, hidden_size: int = 8, num_layers: int = 2,
                seq_len: int = 6, batch: int = 3, with_h0: bool = True, seed: int = 0,
                cell: str = "rnn", max_entries: int | None = None, **init) -> list[ParamCheck]:
    """Gradient-check rnnscope's own engine on a random float64 model and chunk."""
    model = Model(vocab_size, hidden_size, num_layers, cell=cell, seed=seed, dtype="float64",
                  **init)
    rng = np.random.default_rng(seed + 1)
    x = rng.integers(0, vocab_size, (seq_len, batch))
    y = rng.integers(0, vocab_size, (seq_len, batch))
    h0 = random_state(model, batch, rng) if with_h0 else None
    grads = model.loss_and_grads(x, y, h0).grads
    return check_gradients(model.params, grads, lambda: model.loss(x, y, h0)[0],
                           max_entries=max_entries, seed=seed)


def random_state(model: Model, batch: int, rng: np.random.Generator):
    """A state in the model's cell form, every part uniform in (-0.9, 0.9)."""
    shape = (model.num_layers, batch, model.hidden_size)
    return model.state_of({part: rng.uniform(-0.9, 0.9, shape)
                           for part in model.cell_module.STATE})


def format_checks(checks: list[ParamCheck], as_json: bool = False) -> str:
    if as_json:
        return json.dumps([{**asdict(c), "verdict": c.verdict} for c in checks], indent=2)
    lines = [f"{'parameter':10} {'entries':>8} {'rel error':>10} {'max |diff|':>10}  verdict"]
    lines += [f"{c.name:10} {c.entries:8d} {c.rel_error:10.2e} {c.max_abs_diff:10.2e}  "
              f"{c.verdict}" for c in checks]
    worst = max(checks, key=lambda c: c.rel_error)
    bands = (f"tolerance {worst.good:g}" if worst.good == worst.wrong else
             f"good < {worst.good:g}, wrong > {worst.wrong:g}")
    lines.append(f"worst: {worst.name} {worst.rel_error:.2e} ({worst.verdict}; {bands})")
    return "\n".join(lines)
