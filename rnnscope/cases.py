"""A gradient-check case: the arrays rnnscope gives a user's own BPTT, and the answers it reads
back. One format from any language: an .npz, or a directory of .npy files where a name's "/"
is a subdirectory (grad/0.Whh is grad/0.Whh.npy).

Written by `rnnscope gradcheck --export` (float64 parameters, int64 ids):
    {l}.Wxh (in, H)  {l}.Whh (H, H)  {l}.bh (H)  Why (H, V)  by (V)    SPEC names, random
    x, y    (T, B)   character ids and targets, time-major
    h0      (L, B, H) the carried state (absent with --no-h0: zeros)
    loss    ()       rnnscope's mean loss over the T*B targets
Answered by the user (float32 or float64):
    grad/{name}        the gradient of the mean loss, one call on the whole chunk; or
    grad/T{t}/{name}   one call per length t on x[:t], y[:t], called in increasing t in one
                       process, as the training loop calls it (shows gradients_not_reset and
                       from which length the gradients go wrong)
    out/loss  ()       optional: the loss of the whole chunk, as computed
    out/{l}.h (T, B, H) optional: layer l's states h_0 .. h_{T-1} (without h0)
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import RnnscopeError
from .model import Model
from .runs import atomic_write

Arrays = dict[str, np.ndarray]
FLOATS = ("float32", "float64")


@dataclass
class Case:
    params: Arrays          # float64, SPEC names
    x: np.ndarray           # (T, B)
    y: np.ndarray           # (T, B)
    h0: np.ndarray          # (L, B, H)
    calls: dict[int, Arrays]  # length t -> the user's gradients of that call, in call order
    out_loss: float | None = None
    out_h: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (T, B, H)
    dtype: str = "float64"  # float32 when any of the user's arrays is float32

    @property
    def num_layers(self) -> int:
        return self.h0.shape[0]

    def model(self) -> Model:
        """rnnscope's float64 model holding the case's parameters."""
        H, V = self.params["Why"].shape
        model = Model(V, H, self.num_layers, dtype="float64")
        for k, v in self.params.items():
            model.params[k][...] = v
        return model


def random_case(vocab_size: int, hidden_size: int, num_layers: int, seq_len: int, batch: int,
                with_h0: bool, seed: int) -> tuple[Model, Arrays]:
    """A float64 model with random weights and biases, and a chunk {"x", "y"[, "h0"]}: the
    biases are not zero, so that a forward pass that forgets one is seen."""
    model = Model(vocab_size, hidden_size, num_layers, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed + 1)
    for v in model.params.values():
        if v.ndim == 1:
            v[...] = rng.normal(0, 0.5, v.shape)
    case = {"x": rng.integers(0, vocab_size, (seq_len, batch)),
            "y": rng.integers(0, vocab_size, (seq_len, batch))}
    if with_h0:
        case["h0"] = rng.uniform(-0.9, 0.9, (num_layers, batch, hidden_size))
    return model, case


def write_case(path: Path, vocab_size: int = 11, hidden_size: int = 8, num_layers: int = 2,
               seq_len: int = 6, batch: int = 3, with_h0: bool = True, seed: int = 0) -> None:
    """Export a case to path: an .npz when the name ends in .npz, else a new directory of .npy
    files with empty grad/, grad/T{t}/ and out/ for the answers (a C program need not make
    directories)."""
    if path.exists() and (path.is_file() or any(path.iterdir())):
        raise RnnscopeError(f"{path} already exists; remove it or export to another name (a "
                            "filled case would lose its answers)")
    model, chunk = random_case(vocab_size, hidden_size, num_layers, seq_len, batch, with_h0,
                               seed)
    loss = model.loss(chunk["x"], chunk["y"], chunk.get("h0"))[0]
    arrays = {**model.params, **chunk, "loss": np.float64(loss)}
    if path.suffix == ".npz":
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return
    for sub in ["grad", "out", *(f"grad/T{t}" for t in range(1, seq_len + 1))]:
        (path / sub).mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        atomic_write(path / f"{k}.npy", lambda f, v=v: np.save(f, v))


def load_arrays(path: Path) -> Arrays:
    """Every array of an .npz or of a directory's .npy files (subdirectories give "a/b")."""
    if not path.exists():
        raise RnnscopeError(f"{path} does not exist; write a case with `rnnscope gradcheck "
                            "--export CASE.npz` (or a directory name) first")
    files = sorted(path.rglob("*.npy")) if path.is_dir() else [path]
    arrays = {}
    for file in files:
        try:
            if path.is_dir():
                arrays[file.relative_to(path).with_suffix("").as_posix()] = \
                    np.load(file, allow_pickle=False)
            else:
                with np.load(file, allow_pickle=False) as z:
                    arrays.update({k: z[k] for k in z.files})
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise RnnscopeError(f"{file} is not a readable {'.npy' if path.is_dir() else '.npz'}"
                                f" ({type(e).__name__}: {e}); write plain numeric arrays with "
                                "numpy.save/savez or the .npy format") from None
    return arrays


def read_case(path: Path) -> Case:
    """A filled case, checked: every problem is an RnnscopeError naming the array and the fix."""
    arrays = load_arrays(path)
    params = case_params(arrays, path)
    x, y = ids(arrays, "x", path), ids(arrays, "y", path)
    T, B = x.shape
    H, V = params["Why"].shape
    L = sum(k.endswith(".Whh") for k in params)
    if y.shape != x.shape:
        raise RnnscopeError(f"{path}: y has shape {y.shape}, x {x.shape}; keep the exported x, y")
    if x.max(initial=0) >= V or y.max(initial=0) >= V:
        raise RnnscopeError(f"{path}: ids in x or y reach {max(x.max(), y.max())}, the "
                            f"vocabulary has {V}; keep the exported x, y")
    h0 = arrays.get("h0", np.zeros((L, B, H)))
    expect(h0, (L, B, H), "h0", path)
    calls = user_calls(arrays, params, T, path)
    out_h = {}
    for l in range(L):
        if f"out/{l}.h" in arrays:
            out_h[l] = expect(arrays[f"out/{l}.h"], (T, B, H), f"out/{l}.h", path)
    loss = arrays.get("out/loss")
    if loss is not None:
        expect(loss.reshape(()) if loss.size == 1 else loss, (), "out/loss", path)
    answers = [*(g for c in calls.values() for g in c.values()), *out_h.values(),
               *([] if loss is None else [loss])]
    dtype = "float32" if any(a.dtype == np.float32 for a in answers) else "float64"
    return Case(params, x, y, h0.astype(np.float64), calls,
                None if loss is None else float(loss.reshape(())), out_h, dtype)


def case_params(arrays: Arrays, path: Path) -> Arrays:
    L = sum(k.endswith(".Whh") and "/" not in k for k in arrays)
    if not L or "Why" not in arrays or "x" not in arrays or "y" not in arrays:
        raise RnnscopeError(f"{path} is not an rnnscope case (needs x, y, Why, by and "
                            "{l}.Wxh, {l}.Whh, {l}.bh); write one with `rnnscope gradcheck "
                            "--export`")
    H, V = np.shape(arrays["Why"]) if np.ndim(arrays["Why"]) == 2 else (0, 0)
    shapes = {}
    for l in range(L):
        shapes.update({f"{l}.Wxh": (V if l == 0 else H, H), f"{l}.Whh": (H, H),
                       f"{l}.bh": (H,)})
    shapes.update({"Why": (H, V), "by": (V,)})
    for k, shape in shapes.items():
        if k not in arrays:
            raise RnnscopeError(f"{path} has no parameter {k}; keep every array of the "
                                "exported case")
        expect(arrays[k], shape, k, path)
    return {k: arrays[k].astype(np.float64) for k in shapes}


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
    g = expect(arrays[key], shape, key, path)
    if not np.all(np.isfinite(g)):
        bad = np.unravel_index(np.argmin(np.isfinite(g)), g.shape)
        raise RnnscopeError(f"{key} in {path} is not finite at {tuple(map(int, bad))} "
                            f"({g[bad]}); your backward pass overflowed or divided by zero there")
    return g


def expect(a: np.ndarray, shape: tuple, name: str, path: Path) -> np.ndarray:
    if a.shape != shape:
        raise RnnscopeError(f"{name} in {path} has shape {a.shape}, expected {shape}")
    if a.dtype.name not in FLOATS:
        raise RnnscopeError(f"{name} in {path} is {a.dtype.name}; write it as float32 or float64")
    return a


def ids(arrays: Arrays, name: str, path: Path) -> np.ndarray:
    a = arrays[name]
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer) or a.size == 0:
        raise RnnscopeError(f"{name} in {path} must be a non-empty (T, B) integer array, got "
                            f"{a.dtype.name} {a.shape}; keep the exported {name}")
    if a.min() < 0:
        raise RnnscopeError(f"{name} in {path} has a negative id; keep the exported {name}")
    return a
