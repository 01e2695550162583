"""What a sweep runs: its spec (a YAML file like a W&B sweep file, or --set FLAG=a,b) and the
grid of points it spans (SPEC section 12).

    name: seed-grid
    method: grid
    parameters:
      hidden: {values: [256, 512]}        # swept: one grid point per combination
      corpus: {value: tinyshakespeare}    # fixed, like an ordinary train flag

Every value is converted by its TrainConfig field's type and checked by TrainConfig.validate()
where it was written (an error names the file, line and key, or the --set argument); every grid
point's settings pass TrainConfig.validate() and the corpus checks `train` makes: all before
anything runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig, flag
from ..errors import RnnscopeError

SPEC_KEYS = ("name", "method", "parameters", "description")
FIXED = object()  # where a fixed value was written, apart from a swept value None
FIELDS = {f.name: f.type for f in dataclasses.fields(TrainConfig)}  # name -> "int | None", ...


@dataclass(frozen=True)
class Spec:
    name: str
    swept: dict   # field -> list of values, in the spec's order
    fixed: dict   # field -> value
    where: dict = dataclasses.field(default_factory=dict, compare=False)
    # (field, value) -> where it was written ("grid.yaml line 4: parameters.hidden.values.1")


@dataclass(frozen=True)
class Point:
    """One grid point: its directory name, its swept settings and every training setting.
    A point may instead start from another run's checkpoint (start: sweep/fork.py), or run a
    program of the user's own (cmd: the argument list; config then holds only its length)."""
    name: str
    settings: dict
    config: dict  # TrainConfig.to_dict()
    start: dict | None = None
    cmd: list | None = None

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.config)


# ---- the spec: YAML or --set, each value converted and checked where it was written


def load_spec(path: Path) -> Spec:
    """The spec in a YAML file; any error is one RnnscopeError naming the file, line and key."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RnnscopeError(f"cannot read sweep file {path}: {getattr(e, 'strerror', e)}; "
                            "pass a readable YAML file") from None
    try:
        lines = key_lines(yaml.compose(text, Loader=yaml.SafeLoader), str(path))
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RnnscopeError(f"{path}{yaml_problem(e)}; fix the syntax (see docs/sweeps.md for "
                            "an example)") from None

    def where(*keys) -> str:
        return f"{path} line {lines.get(keys, lines.get(keys[:-1], 1))}: " + \
            ".".join(map(shown_key, keys))

    if not isinstance(doc, dict):
        raise RnnscopeError(f"{path}: a sweep file is a mapping with name, method and "
                            "parameters; see docs/sweeps.md")
    for key in doc:
        if key not in SPEC_KEYS:
            raise RnnscopeError(f"{where(key)} is not a sweep file key; use "
                                f"{', '.join(SPEC_KEYS)}")
    if doc.get("method", "grid") != "grid":
        raise RnnscopeError(f"{where('method')}: method {doc['method']!r} is not supported; "
                            "rnnscope sweeps run the whole grid (method: grid)")
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        raise RnnscopeError(f"{where('parameters')}: give the parameters as a mapping of train "
                            "flags, e.g. hidden: {values: [256, 512]}")
    swept, fixed, at = {}, {}, {}
    for key, entry in params.items():
        name = field_of(key, where("parameters", key))
        if not isinstance(entry, dict) or len(set(entry) & {"value", "values"}) != 1 \
                or set(entry) - {"value", "values"}:
            raise RnnscopeError(f"{where('parameters', key)}: give {{values: [a, b, ...]}} to "
                                "sweep it or {value: x} to fix it (only grid values, no "
                                "distributions)")
        if "value" in entry:
            at[name, FIXED] = where("parameters", key, "value")
            fixed[name] = coerce(name, entry["value"], at[name, FIXED])
            continue
        values = entry["values"]
        if not isinstance(values, list) or not values:
            raise RnnscopeError(f"{where('parameters', key, 'values')}: give a non-empty list, "
                                "e.g. values: [256, 512]")
        swept[name] = []
        for i, v in enumerate(values):
            swept[name].append(coerce(name, v, where("parameters", key, "values", i)))
            at[name, swept[name][-1]] = where("parameters", key, "values", i)
    name = doc.get("name", Path(path).stem)
    return Spec(str(name), swept, fixed, {(f, fixed[f] if v is FIXED else v): w
                                          for (f, v), w in at.items()})


def shown_key(key) -> str:
    """A key as an error names it: as written, or quoted when it is blank or holds a line
    break or other unprintable character (an error is one line)."""
    text = str(key)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def yaml_problem(e) -> str:
    """' line N: not valid YAML (while parsing X from line M: problem)' from PyYAML's error."""
    mark, context = getattr(e, "problem_mark", None), getattr(e, "context", None)
    start = getattr(e, "context_mark", None)
    where = f" line {mark.line + 1}" if mark else ""
    since = f"{context} from line {start.line + 1}: " if context and start else ""
    problem = " ".join(str(getattr(e, "problem", None) or e).split())  # PyYAML's: lines
    return f"{where}: not valid YAML ({since}{problem})"


def key_lines(node, path: str, keys: tuple = ()) -> dict[tuple, int]:
    """{key path: 1-based line} of every mapping key and list item under the YAML node;
    a key given twice in one mapping (which YAML would silently resolve) is an error."""
    import yaml

    if node is None:
        return {}
    out = {keys: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for k, v in node.value:
            key = k.value
            if key in seen:
                raise RnnscopeError(f"{path} line {k.start_mark.line + 1}: {key!r} is given "
                                    "twice; give each key once")
            seen.add(key)
            out.update(key_lines(v, path, (*keys, key)))
            out[(*keys, key)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out.update(key_lines(v, path, (*keys, i)))
    return out


def spec_from_sets(sets: list[str]) -> Spec:
    """The spec of `--set FLAG=a,b` arguments; the name joins the swept flags."""
    swept, at = {}, {}
    for arg in sets:
        key, eq, values = arg.partition("=")
        where = f"--set {arg}"
        if not eq or not values:
            raise RnnscopeError(f"{where}: write --set FLAG=a,b (e.g. --set hidden=256,512)")
        name = field_of(key, where)
        if name in swept:
            raise RnnscopeError(f"{where}: --set {key} is given twice; list all its values once")
        swept[name] = [coerce(name, v, where) for v in values.split(",")]
        at.update({(name, v): where for v in swept[name]})
    return Spec("-".join(flag(k) for k in swept), swept, {}, at)


def field_of(key, where: str) -> str:
    """The TrainConfig field a parameter names: a flag (seq-len) or a field name (seq_len)."""
    name = str(key).removeprefix("--").replace("-", "_")
    if name in FIELDS:
        return name
    close = difflib.get_close_matches(flag(name), [flag(f) for f in FIELDS], n=1)
    hint = f"; did you mean {close[0]}?" if close else "; see `rnnscope train --help`"
    raise RnnscopeError(f"{where}: {key!r} is not a train flag{hint}")


def coerce(name: str, value, where: str):
    """The value as its TrainConfig field's type (int, float, str or bool, perhaps None), from a
    YAML value or a --set string; anything else is an error naming where it was written."""
    kind = FIELDS[name].split("|")[0].strip()
    if value is None and "None" in FIELDS[name]:
        return None
    text = value.strip() if isinstance(value, str) else value
    try:
        if kind == "bool":
            words = {"true": True, "false": False}
            if isinstance(text, str) and text.lower() in words:
                return words[text.lower()]
            if isinstance(text, bool):
                return text
        elif isinstance(text, bool):
            pass
        elif kind == "int" and (isinstance(text, int) or isinstance(text, str)):
            return int(text)
        elif kind == "float" and isinstance(text, (int, float, str)) and \
                math.isfinite(float(text)):
            return float(text)
        elif kind == "str" and isinstance(text, str):
            return text
    except ValueError:
        pass
    wanted = {"int": "a whole number", "float": "a finite number", "str": "a word or a path",
              "bool": "true or false"}[kind]
    raise RnnscopeError(f"{where}: --{flag(name)} {value!r} is not {wanted}; give "
                        f"{wanted} as for `rnnscope train --{flag(name)}`")


# ---- the grid


def grid(spec: Spec, fixed: dict) -> list[Point]:
    """Every combination of the swept values, over TrainConfig's defaults, the spec's fixed
    values and the fixed train flags; each checked as `train` checks its settings. A value that
    is wrong on its own and in every grid point it is in is reported where it was written; a
    combination that is wrong (--steps with --minutes), as its grid point."""
    both = sorted(set(spec.swept) & set(fixed))
    if both:
        raise RnnscopeError(f"--{flag(both[0])} is both swept and fixed; give it once")
    base = {**TrainConfig().to_dict(), **spec.fixed, **fixed}
    combos = [dict(zip(spec.swept, c, strict=True))
              for c in itertools.product(*spec.swept.values())]
    configs = [TrainConfig(**{**base, **settings}) for settings in combos]
    wrong = [problem(cfg) for cfg in configs]
    for (name, value), where in spec.where.items():
        alone = problem(TrainConfig(**{name: value}))
        if alone and all(w for w, c in zip(wrong, configs, strict=True)
                         if getattr(c, name) == value):
            raise RnnscopeError(f"{where}: {alone}")
    for settings, w in zip(combos, wrong, strict=True):
        if w:
            raise RnnscopeError(f"grid point {point_name(settings)}: {w}")
    points = [Point(point_name(settings), settings, cfg.to_dict())
              for settings, cfg in zip(combos, configs, strict=True)]
    names = [p.name for p in points]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RnnscopeError(f"two grid points would share the directory {twice[0]}; give each "
                            "value once")
    return points


def problem(cfg: TrainConfig) -> str | None:
    """What TrainConfig.validate() finds wrong with cfg, or None."""
    try:
        cfg.validate()
    except RnnscopeError as e:
        return str(e)
    return None


def point_name(settings: dict) -> str:
    """hidden=256,optimizer=sgd: the swept settings, as flags, safe in a file name."""
    if not settings:
        return "run"
    return ",".join(f"{flag(k)}={name_value(v)}" for k, v in settings.items())


def name_value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return repr(v)
    text = Path(v).name if isinstance(v, str) and "/" in v else str(v)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def check_data(points: list[Point]) -> None:
    """Each point's corpus loads and its splits hold one chunk: the checks `train` makes
    before it creates a run, made for the whole grid before anything runs."""
    from ..corpora import load_corpus
    from ..data import check_trainable, split

    lengths = {}
    for p in points:
        cfg = p.train_config()
        key = (cfg.corpus, cfg.data_dir)
        try:
            if key not in lengths:
                lengths[key] = len(load_corpus(*key).text)
            # the split's lengths are all check_trainable needs: stand-in ids of that length
            train_ids, eval_ids = split(range(lengths[key]), cfg.eval_frac)
            check_trainable(train_ids, eval_ids, cfg.batch, cfg.seq_len)
        except RnnscopeError as e:
            raise RnnscopeError(f"grid point {p.name}: {e}") from None
