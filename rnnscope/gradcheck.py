"""Finite-difference gradient checks: float64 central differences against the analytic gradient.

Relative error per parameter is ||g_analytic - g_numeric|| / (||g_analytic|| + ||g_numeric||) over
the checked entries. For a smooth tanh/softmax net in float64: below 1e-7 is right, above 1e-4 is
a bug, in between deserves a closer look (usually a too large or too small eps).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import RnnscopeError
from .model import Model

GOOD, WRONG = 1e-7, 1e-4


@dataclass
class ParamCheck:
    name: str
    entries: int          # how many entries were perturbed
    rel_error: float
    max_abs_diff: float

    @property
    def verdict(self) -> str:
        if self.rel_error < GOOD:
            return "good"
        return "wrong" if self.rel_error > WRONG else "doubtful"


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


def compare(name: str, analytic: np.ndarray, numeric: np.ndarray) -> ParamCheck:
    diff = np.linalg.norm(analytic - numeric)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    rel = float(diff / scale) if scale > 0 else 0.0
    max_abs = float(np.max(np.abs(analytic - numeric))) if len(analytic) else 0.0
    return ParamCheck(name, len(analytic), rel, max_abs)


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


# ---- checking a user's own implementation against rnnscope's (finite-difference verified) one


def random_case(vocab_size: int, hidden_size: int, num_layers: int, seq_len: int, batch: int,
                with_h0: bool, seed: int) -> tuple[Model, dict]:
    """A random float64 model and chunk: {"x", "y"[, "h0"]} with x, y (T, B), h0 (L, B, H)."""
    model = Model(vocab_size, hidden_size, num_layers, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed + 1)
    case = {"x": rng.integers(0, vocab_size, (seq_len, batch)),
            "y": rng.integers(0, vocab_size, (seq_len, batch))}
    if with_h0:
        case["h0"] = rng.uniform(-0.9, 0.9, (num_layers, batch, hidden_size))
    return model, case


def write_case(path: Path, vocab_size: int = 11, hidden_size: int = 8, num_layers: int = 2,
               seq_len: int = 6, batch: int = 3, with_h0: bool = True, seed: int = 0) -> None:
    """An .npz with the params (SPEC names), x, y, h0 and the expected loss, for a user to run
    through their own implementation and add their gradients as "grad/{name}"."""
    model, case = random_case(vocab_size, hidden_size, num_layers, seq_len, batch, with_h0,
                              seed)
    loss = model.loss(case["x"], case["y"], case.get("h0"))[0]
    with open(path, "wb") as f:
        np.savez(f, **model.params, **case, loss=np.float64(loss))


def check_user_file(path: Path) -> list[ParamCheck]:
    """Compare the "grad/{name}" arrays in a filled test case with rnnscope's gradients."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RnnscopeError(f"{path} does not exist; write a test case with "
                            "`rnnscope gradcheck --export FILE.npz` first") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise RnnscopeError(f"{path} is not a readable .npz ({type(e).__name__}); save it "
                            "with numpy.savez") from None
    model = model_from_case(arrays, path)
    x, y, h0 = arrays["x"], arrays["y"], arrays.get("h0")
    grads = model.loss_and_grads(x, y, h0).grads
    missing = [k for k in grads if f"grad/{k}" not in arrays]
    if missing:
        raise RnnscopeError(f"{path} has no grad/{missing[0]}; add your gradient of the mean "
                            "loss for every parameter as grad/<name>")
    checks = []
    for k, g in grads.items():
        user = arrays[f"grad/{k}"].astype(np.float64)
        if user.shape != g.shape:
            raise RnnscopeError(f"grad/{k} in {path} has shape {user.shape}, expected "
                                f"{g.shape} (same as the parameter)")
        checks.append(compare(k, g.ravel(), user.ravel()))
    return checks


def model_from_case(arrays: dict, path: Path) -> Model:
    names = [k for k in arrays if k.endswith(".Whh") and not k.startswith("grad/")]
    if not names or "x" not in arrays or "y" not in arrays or "Why" not in arrays:
        raise RnnscopeError(f"{path} is not an rnnscope test case (needs x, y, Why and "
                            "{l}.Whh); write one with `rnnscope gradcheck --export`")
    H, V = arrays["Why"].shape
    model = Model(V, H, len(names), dtype="float64")
    for k in model.params:
        if k not in arrays or arrays[k].shape != model.params[k].shape:
            raise RnnscopeError(f"{path}: parameter {k} is missing or has the wrong shape; "
                                "keep the arrays of the exported case")
        model.params[k][...] = arrays[k]
    return model


def format_checks(checks: list[ParamCheck], as_json: bool = False) -> str:
    if as_json:
        return json.dumps([{**asdict(c), "verdict": c.verdict} for c in checks], indent=2)
    lines = [f"{'parameter':10} {'entries':>8} {'rel error':>10} {'max |diff|':>10}  verdict"]
    lines += [f"{c.name:10} {c.entries:8d} {c.rel_error:10.2e} {c.max_abs_diff:10.2e}  "
              f"{c.verdict}" for c in checks]
    worst = max(checks, key=lambda c: c.rel_error)
    lines.append(f"worst: {worst.name} {worst.rel_error:.2e} ({worst.verdict}; good < {GOOD:g}, "
                 f"wrong > {WRONG:g})")
    return "\n".join(lines)
