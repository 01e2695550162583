"""A gradient-check case: the arrays rnnscope gives a user's own BPTT, and the answers it reads
back. One format from any language: an .npz, or a directory of .npy files where a name's "/"
is a subdirectory (grad/0.Whh is grad/0.Whh.npy).

Written by `rnnscope gradcheck --export [--cell C]` (float64 parameters, int64 ids):
    the parameters, SPEC names, random: {l}.Wxh (in, H), {l}.Whh (H, H), {l}.bh (H) for the
            tanh cell (SPEC 8 for the gated cells' names), Why (H, V), by (V)
    x, y    (T, B)   character ids and targets, time-major
    h0      (L, B, H) the carried state (absent with --no-h0: zeros); the LSTM adds c0
    loss    ()       rnnscope's mean loss over the T*B targets
The cell is the one whose parameter names the case has.
Answered by the user (float32 or float64):
    grad/{name}        the gradient of the mean loss, one call on the whole chunk; or
    grad/T{t}/{name}   one call per length t on x[:t], y[:t], called in increasing t in one
                       process, as the training loop calls it (shows gradients_not_reset and
                       from which length the gradients go wrong)
    out/loss  ()       optional: the loss of the whole chunk, as computed
    out/{l}.h (T, B, H) optional: layer l's states h_0 .. h_{T-1} (without h0); the LSTM's
                       cell states as out/{l}.c
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cells import CELLS, layer_params
from ..errors import RnnscopeError
from ..model import Model
from ..runs import atomic_write
from .fd import random_state

Arrays = dict[str, np.ndarray]
FLOATS = ("float32", "float64")


@dataclass
class Case:
    cell: str
    params: Arrays          # float64, SPEC names
    x: np.ndarray           # (T, B)
    y: np.ndarray           # (T, B)
    state0: Arrays          # the carried state by part ("h", and "c" for the LSTM): (L, B, H)
    calls: dict[int, Arrays]  # length t -> the user's gradients of that call, in call order
    out_loss: float | None = None
    out_states: Arrays = field(default_factory=dict)  # "{l}.{part}" -> (T, B, H)
    dtype: str = "float64"  # float32 when any of the user's arrays is float32
    path: Path | None = None  # the file or directory it was read from

    @property
    def h0(self) -> np.ndarray:
        return self.state0["h"]

    def model(self) -> Model:
        """rnnscope's float64 model holding the case's parameters."""
        H, V = self.params["Why"].shape
        model = Model(V, H, self.h0.shape[0], cell=self.cell, dtype="float64")
        for k, v in self.params.items():
            model.params[k][...] = v
        return model


def random_case(vocab_size: int, hidden_size: int, num_layers: int, seq_len: int, batch: int,
                with_h0: bool, seed: int, cell: str = "rnn") -> tuple[Model, Arrays]:
    """A float64 model with random weights and biases, and a chunk {"x", "y"[, "h0", "c0"]}:
    the biases are not zero, so that a forward pass that forgets one is seen."""
    model = Model(vocab_size, hidden_size, num_layers, cell=cell, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed + 1)
    for v in model.params.values():
        if v.ndim == 1:
            v[...] = rng.normal(0, 0.5, v.shape)
    case = {"x": rng.integers(0, vocab_size, (seq_len, batch)),
            "y": rng.integers(0, vocab_size, (seq_len, batch))}
    if with_h0:
        parts = model.state_parts(random_state(model, batch, rng))
        case.update({f"{part}0": a for part, a in parts.items()})
    return model, case


def write_case(path: Path, vocab_size: int = 11, hidden_size: int = 8, num_layers: int = 2,
               seq_len: int = 6, batch: int = 3, with_h0: bool = True, seed: int = 0,
               cell: str = "rnn") -> None:
    """Export a case to path: an .npz when the name ends in .npz, else a new directory of .npy
    files with empty grad/, grad/T{t}/ and out/ for the answers (a C program need not make
    directories)."""
    if path.exists() and (path.is_file() or any(path.iterdir())):
        raise RnnscopeError(f"{path} already exists; remove it or export to another name (a "
                            "filled case would lose its answers)")
    model, chunk = random_case(vocab_size, hidden_size, num_layers, seq_len, batch, with_h0,
                               seed, cell)
    state0 = model.state_of({s: chunk[f"{s}0"] for s in model.cell_module.STATE}) \
        if with_h0 else None
    loss = model.loss(chunk["x"], chunk["y"], state0)[0]
    arrays = {**model.params, **chunk, "loss": np.float64(loss)}
    if path.suffix == ".npz":
        atomic_write(path, encoded(np.savez, **arrays))
        return
    for sub in ["grad", "out", *(f"grad/T{t}" for t in range(1, seq_len + 1))]:
        (path / sub).mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        atomic_write(path / f"{k}.npy", encoded(np.save, v))


def encoded(save, *args, **kwargs) -> bytes:
    """What save(file, ...) (np.save, np.savez) writes, as bytes."""
    buffer = io.BytesIO()
    save(buffer, *args, **kwargs)
    return buffer.getvalue()


def load_arrays(path: Path) -> Arrays:
    """Every array of an .npz or of a directory's .npy files (subdirectories give "a/b")."""
    if not path.exists():
        raise RnnscopeError(f"{path} does not exist; write a case with `rnnscope gradcheck "
                            "--export CASE.npz` (or a directory name) first")
    files = sorted(path.rglob("*.npy")) if path.is_dir() else [path]
    arrays = {}
    for file in files:
        try:
            with open(file, "rb") as f:  # closed also when the load fails
                if path.is_dir():
                    arrays[file.relative_to(path).with_suffix("").as_posix()] = \
                        np.load(f, allow_pickle=False)
                else:
                    with np.load(f, allow_pickle=False) as z:
                        arrays.update({k: z[k] for k in z.files})
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise RnnscopeError(f"{file} is not a readable {'.npy' if path.is_dir() else '.npz'}"
                                f" ({type(e).__name__}: {e}); write plain numeric arrays with "
                                "numpy.save/savez or the .npy format") from None
    return arrays


def read_case(path: Path) -> Case:
    """A filled case, checked: every problem is an RnnscopeError naming the array and the fix."""
    arrays = load_arrays(path)
    cell, params = case_params(arrays, path)
    x, y = ids(arrays, "x", path), ids(arrays, "y", path)
    T, B = x.shape
    H, V = params["Why"].shape
    L = num_layers(arrays)
    if y.shape != x.shape:
        raise RnnscopeError(f"{path}: y has shape {y.shape}, x {x.shape}; keep the exported x, y")
    if x.max(initial=0) >= V or y.max(initial=0) >= V:
        raise RnnscopeError(f"{path}: ids in x or y reach {max(x.max(), y.max())}, the "
                            f"vocabulary has {V}; keep the exported x, y")
    parts = CELLS[cell].STATE
    state0 = {s: expect(arrays.get(f"{s}0", np.zeros((L, B, H))), (L, B, H), f"{s}0", path)
              for s in parts}
    calls = user_calls(arrays, params, T, path)
    out_states = {f"{l}.{s}": expect(arrays[f"out/{l}.{s}"], (T, B, H), f"out/{l}.{s}", path)
                  for l in range(L) for s in parts if f"out/{l}.{s}" in arrays}
    loss = arrays.get("out/loss")
    if loss is not None:
        expect(loss.reshape(()) if loss.size == 1 else loss, (), "out/loss", path)
    answers = [*(g for c in calls.values() for g in c.values()), *out_states.values(),
               *([] if loss is None else [loss])]
    dtype = "float32" if any(a.dtype == np.float32 for a in answers) else "float64"
    return Case(cell, params, x, y, {s: a.astype(np.float64) for s, a in state0.items()}, calls,
                None if loss is None else float(loss.reshape(())), out_states, dtype, path)


def num_layers(arrays: Arrays) -> int:
    """1 + the largest l of the "{l}.<name>" parameters."""
    layers = [int(k.split(".")[0]) for k in arrays if "/" not in k and k.split(".")[0].isdigit()]
    return max(layers, default=-1) + 1


def case_params(arrays: Arrays, path: Path) -> tuple[str, Arrays]:
    """The cell whose parameter names the case has, and its parameters in float64."""
    L = num_layers(arrays)
    if not L or "Why" not in arrays or "x" not in arrays or "y" not in arrays:
        raise RnnscopeError(f"{path} is not an rnnscope case (needs x, y, Why, by and the "
                            "{l}.<name> parameters of a cell); write one with `rnnscope "
                            "gradcheck --export`")
    if arrays["Why"].ndim != 2 or 0 in arrays["Why"].shape:
        raise RnnscopeError(f"Why in {path} has shape {arrays['Why'].shape}, expected (H, V)")
    H, V = arrays["Why"].shape
    ours = {name: Model(V, H, L, cell=name, dtype="float64").params for name in CELLS}
    cell = next((name for name, p in ours.items()
                 if set(layer_params(p, 0)) == set(layer_params(arrays, 0))), None)
    if cell is None:
        raise RnnscopeError(f"{path}: layer 0 has {', '.join(sorted(layer_params(arrays, 0)))}, "
                            "the parameters of no cell (" + "; ".join(
                                f"{name}: {', '.join(layer_params(p, 0))}"
                                for name, p in ours.items()) + "); keep the exported names")
    for k, v in ours[cell].items():
        if k not in arrays:
            raise RnnscopeError(f"{path} has no parameter {k}; keep every array of the "
                                "exported case")
        expect(arrays[k], v.shape, k, path)
    return cell, {k: arrays[k].astype(np.float64) for k in ours[cell]}


def user_calls(arrays: Arrays, params: Arrays, T: int, path: Path) -> dict[int, Arrays]:
    """The user's gradients: {T: grad/{name}} or {t: grad/T{t}/{name}} in increasing t."""
    lengths = sorted({int(k.split("/")[1][1:]) for k in arrays
                      if k.startswith("grad/T") and k.split("/")[1][1:].isdigit()})
    single = any(k.startswith("grad/") and k[len("grad/"):] in params for k in arrays)
    if single and lengths:
        raise RnnscopeError(f"{path} has both grad/<name> and grad/T<t>/<name>; answer one call "
                            "on the whole chunk or the calls per length, not both")
    if not single and not lengths:
        raise RnnscopeError(f"{path} has no gradients; add your gradient of the mean loss for "
                            "every parameter as grad/<name> (e.g. grad/0.Whh)")
    if lengths and not 1 <= lengths[0] <= lengths[-1] <= T:
        raise RnnscopeError(f"{path}: grad/T<t> must have 1 <= t <= T = {T}, got t = "
                            f"{lengths[0] if lengths[0] < 1 else lengths[-1]}")
    prefixes = {t: f"grad/T{t}/" for t in lengths} if lengths else {T: "grad/"}
    known = {p + k for p in prefixes.values() for k in params}
    stray = [k for k in arrays if k.startswith("grad/") and k not in known]
    if stray:
        raise RnnscopeError(f"{path}: {stray[0]} names no parameter of the case; gradients are "
                            f"grad/<name> or grad/T<t>/<name> with <name> one of "
                            f"{', '.join(params)}")
    return {t: {k: user_grad(arrays, prefix + k, v.shape, path) for k, v in params.items()}
            for t, prefix in prefixes.items()}


def user_grad(arrays: Arrays, key: str, shape: tuple, path: Path) -> np.ndarray:
    if key not in arrays:
        raise RnnscopeError(f"{path} has no {key}; add your gradient of the mean loss for every "
                            "parameter of every call")
    return expect(arrays[key], shape, key, path)


def expect(a: np.ndarray, shape: tuple, name: str, path: Path) -> np.ndarray:
    """a, checked to have the shape, a float dtype and finite values."""
    if a.shape != shape:
        raise RnnscopeError(f"{name} in {path} has shape {a.shape}, expected {shape}")
    if a.dtype.name not in FLOATS:
        raise RnnscopeError(f"{name} in {path} is {a.dtype.name}; write it as float32 or float64")
    if not np.all(np.isfinite(a)):
        bad = np.unravel_index(np.argmin(np.isfinite(a)), a.shape)
        fix = {"grad": "your backward pass overflowed or divided by zero there",
               "out": "your forward pass overflowed there"}.get(name.split("/")[0],
                                                                 "keep the exported values")
        raise RnnscopeError(f"{name} in {path} is not finite at {tuple(map(int, bad))} "
                            f"({a[bad]}); {fix}")
    return a


def ids(arrays: Arrays, name: str, path: Path) -> np.ndarray:
    a = arrays[name]
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer) or a.size == 0:
        raise RnnscopeError(f"{name} in {path} must be a non-empty (T, B) integer array, got "
                            f"{a.dtype.name} {a.shape}; keep the exported {name}")
    if a.min() < 0:
        raise RnnscopeError(f"{name} in {path} has a negative id; keep the exported {name}")
    return a
