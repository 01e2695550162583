"""`rnnscope try RUN --cmd TEMPLATE`: a run of another program (a log, a PyTorch or a C run) has
no checkpoint to fork, so each fork and control runs the user's own program once:

    --cmd "python train.py --lr {lr} --hidden {hidden} --run-dir {run_dir}"

A placeholder is a setting the panel recorded for RUN (its config.json "config", as a field
name or a flag: {seq_len} or {seq-len}), {run_dir} (the fork's directory under RUN/try/),
and {steps} or {minutes} (the budget). Any other placeholder is refused before anything runs.
"""

from __future__ import annotations

import re
import shlex

from ..errors import RnnscopeError

PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w-]*)\}")
OWN = ("run_dir", "steps", "minutes")


def placeholders(template: str, recorded: dict) -> set[str]:
    """The settings the template names; an unknown placeholder or an unusable template is one
    RnnscopeError naming it and the ones allowed."""
    try:
        words = shlex.split(template)
    except ValueError as e:
        raise RnnscopeError(f"--cmd {template!r} cannot be split into words ({e}); check its "
                            "quotes") from None
    if not words:
        raise RnnscopeError("--cmd is empty; give the command that trains one run, e.g. "
                            "--cmd \"python train.py --lr {lr} --run-dir {run_dir}\"")
    names = {m.replace("-", "_") for m in PLACEHOLDER.findall(template)}
    allowed = sorted(set(recorded) | set(OWN))
    for name in sorted(names):
        if name not in allowed:
            raise RnnscopeError(f"--cmd placeholder {{{name}}} is not a setting the run "
                                f"recorded; use one of: {', '.join(map(braced, allowed))}")
    if "run_dir" not in names:
        raise RnnscopeError("--cmd has no {run_dir}: each fork must write its own run "
                            "directory; add --run-dir {run_dir} (or your program's flag for it)")
    return names


def braced(name: str) -> str:
    return "{" + name + "}"


def command(template: str, settings: dict) -> list[str]:
    """The template's words with every placeholder replaced by its setting's value."""
    def value(m: re.Match) -> str:
        v = settings[m.group(1).replace("-", "_")]
        return str(v).lower() if isinstance(v, bool) else str(v)

    return [PLACEHOLDER.sub(value, word) for word in shlex.split(template)]
