"""A next step in the user's own terms: the change a finding asks for, worded for where the run
came from (docs/format.md, "Next steps").

A rule asks for a change of settings, {"optimizer": "adam", "lr": 0.002}, named as rnnscope's
TrainConfig fields; a value relative to a setting the log did not record is ("x", factor). A
next step is

    {"setting": "optimizer", "value": "adam",          # the change's first setting
     "settings": {"optimizer": "adam", "lr": 0.002},    # every setting it changes
     "text": "`torch.optim.Adam(model.parameters(), lr=0.002)` in place of your optimizer"}

with "value" None and "factor" the multiplier where the value is relative to yours. The text
follows the run's source (records.source_of): an rnnscope flag, the PyTorch call or argument
to change, or the setting in words for a C program or a log.
"""

from __future__ import annotations

from ..cells import CELLS
from ..config import flag

CLIP_NORM = 1.0  # the max norm suggested where the run's own --clip-value is not known


def next_step(change: dict, cfg: dict, source: str) -> dict:
    """The next step of a rule's change for a run with settings cfg from source."""
    settings = completed(change, cfg, source)
    name, value = next(iter(settings.items()))
    step = {"setting": name, "value": None if isinstance(value, tuple) else value,
            "settings": {k: None if isinstance(v, tuple) else v for k, v in settings.items()},
            "text": TEXT.get(source, in_words)(settings, cfg)}
    if isinstance(value, tuple):
        step["factor"] = value[1]
    return step


def completed(change: dict, cfg: dict, source: str) -> dict:
    """The change with its values rounded as they are shown, and a norm clip's threshold where
    the run does not already have one (a PyTorch loop, a C program or a log)."""
    out = {k: float(f"{v:.2g}") if k == "lr" and isinstance(v, float) else v
           for k, v in change.items()}
    if out.get("clip") == "norm" and "clip_value" not in out and "clip_value" not in cfg:
        out["clip_value"] = CLIP_NORM
    return out


def number(name: str, value) -> str:
    if isinstance(value, tuple):
        return f"(yours x {value[1]:.2g})"
    return f"{value:.2g}" if name == "lr" and isinstance(value, float) else f"{value:g}" \
        if isinstance(value, float) else str(value)


# ---- rnnscope: its flags


def flags(settings: dict, cfg: dict) -> str:
    """{"lr": 0.0005, "clip": "norm"} -> "--lr 0.0005 --clip norm"; ("x", 0.1) reads
    "(yours x 0.1)"."""
    return " ".join(f"--{flag(name)}" if value is True else f"--{flag(name)} "
                    f"{number(name, value)}" for name, value in settings.items())


# ---- PyTorch: the call or argument to change in the user's loop

TORCH_OPTIM = {"adam": "Adam({params}, lr={lr})", "sgd": "SGD({params}, lr={lr})",
               "momentum": "SGD({params}, lr={lr}, momentum=0.9)",
               "adagrad": "Adagrad({params}, lr={lr})", "rmsprop": "RMSprop({params}, lr={lr})"}
TORCH_SCHEDULE = {
    "cosine": "`torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=your_steps)`, "
              "`scheduler.step()` after each step",
    "plateau": "`torch.optim.lr_scheduler.ReduceLROnPlateau(opt)`, `scheduler.step(eval_loss)` "
               "after each eval",
    "step": "`torch.optim.lr_scheduler.StepLR(opt, step_size=your_steps // 3)`",
    "constant": "no lr scheduler",
}
PARAMS = "model.parameters()"
TORCH_INIT = {"identity": "eye", "orthogonal": "orthogonal", "normal": "normal"}  # nn.init's


def torch_text(settings: dict, cfg: dict) -> str:
    s = dict(settings)
    parts = []
    if "optimizer" in s:
        lr = number("lr", s.pop("lr", cfg.get("lr", 1e-3)))
        parts.append(f"`torch.optim.{TORCH_OPTIM[s.pop('optimizer')].format(params=PARAMS, lr=lr)}`"
                     " in place of your optimizer")
    if "clip" in s:
        parts.append(torch_clip(s.pop("clip"), s.pop("clip_value", cfg.get("clip_value"))))
    if "recurrent_scale" in s or "input_scale" in s:
        scales = {k: s.pop(k) for k in ("recurrent_scale", "input_scale") if k in s}
        parts.append(torch_init(scales))
    parts += [torch_setting(name, value, cfg) for name, value in s.items()]
    return "; ".join(parts)


def torch_clip(mode: str, value) -> str:
    if mode == "norm":
        return (f"`torch.nn.utils.clip_grad_norm_({PARAMS}, {value:g})` after `loss.backward()`, "
                "before `opt.step()` (`panel.step`)")
    if mode == "elementwise":
        return (f"`torch.nn.utils.clip_grad_value_({PARAMS}, {value:g})` after `loss.backward()`, "
                "before `opt.step()` (`panel.step`)")
    return "no gradient clipping call before `opt.step()`"


def torch_init(scales: dict) -> str:
    if all(v == 1 for v in scales.values()):
        return ("PyTorch's default init of the recurrent module (`rnn.reset_parameters()`: "
                "uniform within 1/sqrt(hidden_size)) instead of your scaled weights")
    return "; ".join(f"`rnn.{'weight_hh' if k == 'recurrent_scale' else 'weight_ih'}_l*` at "
                     f"{number(k, v)} times PyTorch's default init" for k, v in scales.items())


def torch_setting(name: str, value, cfg: dict) -> str:
    """The PyTorch wording of one setting."""
    v = number(name, value)
    if name == "lr":
        optim = TORCH_OPTIM.get(cfg.get("optimizer"), "").split("(")[0]
        where = f" (`torch.optim.{optim}({PARAMS}, lr={v})`)" if optim and \
            not isinstance(value, tuple) else ""
        return f"`lr={v}` in the optimizer{where}"
    if name == "lr_schedule":
        return TORCH_SCHEDULE[value]
    if name == "cell":
        old = CELLS.get(cfg.get("cell"))
        was = f" in place of `nn.{old.TORCH[0]}(...)`" if old else ""
        return f"`nn.{CELLS[value].TORCH[0]}(...)`{was}"
    if name in ("forget_bias", "chrono_init"):
        return torch_gate_bias(name, value, cfg)
    return TORCH_SETTING.get(name, "{name} {v}").format(name=name, v=v, torch_init=TORCH_INIT.get(
        value, value))


TORCH_SETTING = {
    "hidden": "`hidden_size={v}` in the recurrent module",
    "layers": "`num_layers={v}` in the recurrent module",
    "dropout": "`dropout={v}` in the recurrent module (between layers), or `nn.Dropout({v})` "
               "before the readout",
    "weight_decay": "`weight_decay={v}` in the optimizer (`torch.optim.AdamW`)",
    "recurrent_init": "`torch.nn.init.{torch_init}_` on each `rnn.weight_hh_l*`",
    "seq_len": "sequences of {v} steps (the length you backpropagate through)",
    "corpus": "a larger training text ({v})",
    "reset_every": "the hidden state reset to zeros every {v} chunks of each stream "
                   "(`h = None` at those steps), so the model also learns from a fresh state",
    "batch": "`batch_size={v}`: more parallel streams, each carrying its own state",
}


def torch_gate_bias(name: str, value, cfg: dict) -> str:
    """The keep gate's block of the biases: rows [k*H, (k+1)*H) of bias_ih/bias_hh."""
    cell = CELLS.get(cfg.get("cell"))
    k = cell.GATES.index(cell.KEEP) if cell is not None and cell.KEEP else 1
    rows = f"[{k}*H:{k + 1}*H]" if k else "[:H]"
    if name == "forget_bias":
        return (f"the forget gate's biases `rnn.bias_ih_l*{rows}` + `rnn.bias_hh_l*{rows}` "
                f"summing to {number(name, value)} at init")
    return (f"chrono init: `rnn.bias_hh_l*{rows}` at log(U(1, seq_len - 1)), "
            f"`rnn.bias_ih_l*{rows}` at 0")


# ---- a C program or a log: the setting in words

WORDS = {"lr": "learning rate", "optimizer": "optimizer", "clip_value": "clipping threshold",
         "recurrent_scale": "recurrent weights' init scale", "input_scale":
         "input weights' init scale", "lr_schedule": "learning-rate schedule", "cell": "cell",
         "hidden": "hidden size", "layers": "layers", "dropout": "dropout", "weight_decay":
         "weight decay", "recurrent_init": "recurrent weights' init", "seq_len":
         "sequence length (steps backpropagated through)", "forget_bias":
         "forget-gate bias at init", "corpus": "training text", "batch":
         "parallel streams (batch size)"}
CLIP_WORDS = {"norm": "clip the gradient's norm", "elementwise": "clip each gradient component",
              "none": "no gradient clipping"}


def in_words(settings: dict, cfg: dict) -> str:
    s, parts = dict(settings), []
    for name, value in list(s.items()):
        if name == "clip_value" and "clip" in settings:
            continue
        if name == "clip":
            at = s.get("clip_value", cfg.get("clip_value"))
            parts.append(CLIP_WORDS[value] + (f" at {at:g}" if value != "none" and at else ""))
        elif name == "chrono_init":
            parts.append("chrono init of the keep gate's biases (log(U(1, seq_len - 1)))")
        elif name == "corpus":
            parts.append("a larger training text")
        elif name == "reset_every":
            parts.append(f"reset the hidden state to zeros every {value} chunks of each stream")
        else:
            shown = value.upper() if name == "cell" else number(name, value)
            parts.append(f"{WORDS.get(name, name.replace('_', ' '))} {shown}")
    return ", ".join(parts)


TEXT = {"rnnscope": flags, "pytorch": torch_text}
