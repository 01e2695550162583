"""Every reader of a user's file, fed generated inputs (Hypothesis): each input works, or is
refused with one RnnscopeError line naming the file and the problem (exit 2 through the CLI),
and nothing in the directory is written or changed. No other exception, no warning but
rnnscope's own one-line ones.

The readers: logs (metrics.jsonl, CSV: rnnscope/records.py), a run's config.json and its
checkpoints (rnnscope/runs.py), gradient-check cases (.npz and .npy directories:
rnnscope/gradcheck/cases.py) and sweep files (rnnscope/sweep/spec.py). RNNSCOPE_FUZZ_EXAMPLES
sets the examples per reader (docs/format.md records a run with 2000 each)."""

import csv
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnscope.train
from rnnscope import TrainConfig, runs
from rnnscope.cli import main
from rnnscope.compare import compare_runs
from rnnscope.display import PlainDisplay
from rnnscope.errors import RnnscopeError, RnnscopeWarning
from rnnscope.gradcheck import name_bug, read_case
from rnnscope.gradcheck.cases import random_case
from rnnscope.health import READINGS
from rnnscope.records import read_run
from rnnscope.sample import sample
from rnnscope.sweep import load_spec, plan
from rnnscope.train import Diverged, resume, train
from rnnscope.triage import diagnose_run, write_triage

EXAMPLES = int(os.environ.get("RNNSCOPE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


# ---- the property: works, or one line naming the file, and nothing changed


def cli_env() -> dict:
    """This checkout first on the path of a child python."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


def judged(call, root: Path, named: Path) -> str | None:
    """Run call(): None when it worked; the message when it raised RnnscopeError, which must be
    one line naming `named`, with every file under root as it was. Any other exception or
    warning (but rnnscope's own) fails the test."""
    before = digest(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", RnnscopeWarning)
        try:
            call()
        except RnnscopeError as e:
            message = str(e)
            assert "\n" not in message and (named is None or str(named) in message), message
            assert digest(root) == before, message
            return message
    return None


@pytest.fixture(autouse=True, scope="module")
def bounded_memory():
    """A reader that allocates what a spoiled file asks for (layers: 10**9) fails the test with
    a MemoryError here instead of taking the shared machine's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (min(8 << 30, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextmanager
def scratch():
    """A directory of its own for one generated example."""
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# ---- values as users write them

NAN_INF = ["nan", "NaN", "NAN", "-nan", "+nan", "inf", "-inf", "+inf", "Inf", "INF", "infinity",
           "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "null", "None", "NA", "#N/A"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=6)
KEYS = ["step", "train_nll", "eval_nll", "chars", "elapsed_s", "lr", "epoch", "bptt_profile",
        "steps", "final", "diverged", "grad_norm.0.Whh", "update_ratio.Why", "layer0.sat_ratio",
        "layer1.mean_gain", "layer0.bptt_profile", "layer0.gate.f.mean", "layer0.memory_steps",
        *READINGS]
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))
ENCODINGS = ["utf-8"] * 6 + ["utf-8-sig", "utf-16", "latin-1", "cp1252"]
numbers = st.one_of(st.floats(0, 10), st.floats(-1e3, 1e3), st.floats(), st.integers(0, 100),
                    st.integers(-10**20, 10**20))


def rarely(draw, strategy, usual, odds: int = 10):
    """usual, or (one time in odds) anything strategy draws."""
    return draw(strategy) if draw(st.integers(1, odds)) == 1 else usual


@st.composite
def records(draw) -> list[dict]:
    """Records as a log holds them: rising whole steps, train_nll and numeric readings in any
    key order, with now and then any value at any key (a step that goes back, text where a
    number belongs, NaN/inf, a list or an object)."""
    out, step = [], 0
    for _ in range(draw(st.integers(0, 12))):
        step += draw(st.integers(0, 50))
        rec = {"step": rarely(draw, json_values | numbers, step, odds=30)}
        if draw(st.integers(0, 5)):
            rec["train_nll"] = draw(st.floats(0, 6) | numbers)
        for key in draw(st.lists(keys, max_size=8, unique=True)):
            rec[key] = rarely(draw, json_values, draw(numbers), odds=30)
        if draw(st.booleans()):
            rec = dict(draw(st.permutations(list(rec.items()))))
        out.append(rec)
    return out


@st.composite
def jsonl_bytes(draw) -> bytes:
    lines = []
    for rec in draw(records()):
        line = json.dumps(rec, allow_nan=True)
        for word in ("NaN", "Infinity"):
            if word in line and draw(st.booleans()):
                line = line.replace(word, draw(st.sampled_from(NAN_INF)))
        lines.append(line)
    if draw(st.integers(0, 9)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=20)))
    text = "\n".join(lines) + draw(st.sampled_from(["\n"] * 4 + ["", "\r\n"]))
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=200))
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


cell_texts = st.one_of(st.sampled_from(NAN_INF), st.integers().map(str), st.floats().map(repr),
                       st.sampled_from(["", " 3 ", "1_000", "0x10", "true", "False", "[1, 2]",
                                        "[[1, 0.5], [2, 0.25]]", "{}", '"x"', "1,5"]),
                       st.text(max_size=6))


@st.composite
def csv_bytes(draw) -> bytes:
    columns = draw(st.lists(keys.filter(lambda k: k not in ("step", "train_nll")), max_size=8,
                            unique=True))
    for key in ("step", "train_nll"):
        if draw(st.integers(0, 19)):
            columns.insert(draw(st.integers(0, len(columns))), key)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for i in range(draw(st.integers(0, 12))):
        row = [rarely(draw, cell_texts, str(10 * i) if c == "step" else repr(draw(numbers)),
                      odds=20) for c in columns]
        writer.writerow(row[:draw(st.integers(0, len(row) + 1))] if draw(st.integers(0, 19)) == 0
                        else row)
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=200))
    return buffer.getvalue().encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


# ---- logs: metrics.jsonl and CSV


def read_log(file: Path) -> None:
    """What doctor and compare do with a log (report: tests below, through the CLI)."""
    diagnose_run(file)
    compare_runs([file, file])


@FUZZ
@given(data=jsonl_bytes())
def test_any_jsonl_log_is_read_or_refused_in_one_line(data):
    with scratch() as d:
        (d / "log.jsonl").write_bytes(data)
        judged(lambda: read_log(d / "log.jsonl"), d, d / "log.jsonl")


@FUZZ
@given(data=csv_bytes())
def test_any_csv_log_is_read_or_refused_in_one_line(data):
    with scratch() as d:
        (d / "log.csv").write_bytes(data)
        judged(lambda: read_log(d / "log.csv"), d, d / "log.csv")


LOG = [{"step": 10 * i, "train_nll": 4.0 - 0.1 * i, "grad_norm": 1.0} for i in range(1, 9)]


def csv_text(recs: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(recs[0]))
    writer.writeheader()
    writer.writerows(recs)
    return buffer.getvalue()


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_log_with_a_byte_order_mark_is_read_as_utf8(tmp_path, encoding, suffix):
    """Excel's CSV (UTF-8 with a BOM) and Windows PowerShell's `>` (UTF-16 with a BOM)."""
    text = csv_text(LOG) if suffix == ".csv" else "".join(json.dumps(r) + "\n" for r in LOG)
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    (tmp_path / f"log{suffix}").write_bytes(bom + text.encode(encoding))
    assert [r["step"] for r in read_run(tmp_path / f"log{suffix}")[1]] == \
        [r["step"] for r in LOG]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_log_that_is_not_its_encoding_is_one_line(tmp_path, suffix):
    file = tmp_path / f"log{suffix}"
    file.write_bytes(b"\xff\xfe" + b"s\x00t\x00e\x00p\x00\n\x00\x00\xd8")  # a lone surrogate
    message = judged(lambda: diagnose_run(file), tmp_path, file)
    assert message == f"{file} begins as UTF-16 text but is not (bad bytes at offset 12); save " \
                      "it as UTF-8"


def test_a_huge_cell_and_a_huge_log_are_read_or_refused_in_one_line(tmp_path):
    """A cell over csv's field limit is refused; 20,000 records are read (the triage takes
    about 0.35 ms a record)."""
    huge = tmp_path / "cell.csv"
    huge.write_text("step,train_nll,note\n10,1.0," + "x" * 200_000 + "\n")
    assert "field larger than field limit" in judged(lambda: diagnose_run(huge), tmp_path, huge)
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"step": i, "train_nll": 3.0 + 1 / i, "grad_norm": 1.0})
                           + "\n" for i in range(1, 20_001)))
    assert judged(lambda: diagnose_run(big), tmp_path, big) is None


def test_an_empty_log_is_one_line(tmp_path):
    for name in ("empty.csv", "empty.jsonl"):
        (tmp_path / name).write_bytes(b"")
        assert "holds no records" in judged(lambda n=name: diagnose_run(tmp_path / n),
                                            tmp_path, tmp_path / name)


# ---- a run directory: config.json and the checkpoints

FIELDS = list(TrainConfig().to_dict())


@pytest.fixture(scope="module")
def trained(small_corpus, tmp_path_factory) -> Path:
    """A real run of 20 steps (checkpoint.npz and best.npz) to spoil one file of."""
    cfg = TrainConfig(corpus=str(small_corpus), hidden=8, batch=2, seq_len=8, steps=20,
                      log_every=5, eval_every=10, report=False, optimizer="adam")
    return train(cfg, tmp_path_factory.mktemp("trained") / "run",
                 display=PlainDisplay(io.StringIO()))


@pytest.fixture
def plain_triage(monkeypatch):
    """A spoiled run's triage is not held to conftest's story (its records are real, its
    settings anything)."""
    monkeypatch.setattr(rnnscope.train, "write_triage", write_triage)


def read_the_run(path: Path) -> None:
    """What doctor, sample and `train --resume` (one more step) do with a run directory; a
    setting that makes that step diverge (lr: 1e300) is a run that works, and says so."""
    diagnose_run(path)
    run = runs.load_run(path)
    sample(run.model, run.vocab, 20, seed=0)
    try:
        resume(path, {"steps": 21}, display=PlainDisplay(io.StringIO()))
    except Diverged:
        pass


def key_path(draw, doc) -> list:
    """A path of keys into doc, each an existing key or a new one."""
    keys, node = [], doc
    while isinstance(node, dict) and draw(st.integers(0, 2)):
        key = draw(st.sampled_from(sorted(node)) | st.text(max_size=4)) if node else \
            draw(st.text(max_size=4))
        keys.append(key)
        node = node.get(key)
    return keys or [draw(st.sampled_from(sorted(doc)))]


@st.composite
def spoiled_config(draw, doc: dict) -> bytes:
    """config.json with any JSON value at any key, a key gone, or not JSON at all."""
    how = draw(st.sampled_from(["set", "set", "set", "field", "delete", "json", "bytes"]))
    if how == "bytes":
        return draw(st.binary(max_size=100))
    if how == "json":
        return json.dumps(draw(json_values)).encode()
    doc = json.loads(json.dumps(doc))
    keys = ["config", draw(st.sampled_from(FIELDS))] if how == "field" else key_path(draw, doc)
    node = doc
    for k in keys[:-1]:
        node = node.setdefault(k, {}) if isinstance(node.get(k), dict) else node
    if how == "delete":
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = draw(json_values | numbers)
    return json.dumps(doc, allow_nan=True).encode()


@FUZZ
@given(data=st.data())
def test_any_config_json_is_read_or_refused_in_one_line(trained, plain_triage, data):
    doc = json.loads((trained / runs.CONFIG).read_text())
    with scratch() as d:
        run = Path(shutil.copytree(trained, d / "run"))
        (run / runs.CONFIG).write_bytes(data.draw(spoiled_config(doc)))
        judged(lambda: read_the_run(run), d, run)


DTYPES = ["int32", "int64", "uint8", "bool", "float16", "complex128", "U3"]


@st.composite
def spoiled_checkpoint(draw, arrays: dict) -> bytes:
    """checkpoint.npz truncated, or with an array of another dtype or shape, one gone, one
    more, an object array (pickled: never loaded) or a meta of any kind."""
    how = draw(st.sampled_from(["truncate", "dtype", "shape", "drop", "extra", "object",
                                "meta", "meta", "meta"]))
    arrays = dict(arrays)
    name = draw(st.sampled_from(sorted(k for k in arrays if k != "meta")))
    a = arrays[name]
    if how == "truncate":
        return draw(st.sampled_from([b"", b"PK\x03\x04"]))
    if how == "dtype":
        arrays[name] = a.astype(draw(st.sampled_from(DTYPES)))
    elif how == "shape":
        arrays[name] = draw(st.sampled_from([a.reshape(-1), a[None], a.T, np.zeros(0, a.dtype),
                                             *([a[..., :1]] if a.ndim else [])]))
    elif how == "drop":
        del arrays[name]
    elif how == "extra":
        arrays[draw(st.sampled_from(["param/0.Wxz", "opt/m.Why", "opt/x", "state/c"]))] = a
    elif how == "object":
        arrays[name] = np.array([None, 1], dtype=object)
    else:
        meta = json.loads(str(arrays["meta"]))
        if draw(st.booleans()):
            meta = draw(json_values)
        elif draw(st.booleans()):
            meta.pop(draw(st.sampled_from(sorted(meta))))
        else:
            meta[draw(st.sampled_from(sorted(meta)) | st.text(max_size=3))] = \
                draw(json_values | numbers)
        arrays["meta"] = np.array(json.dumps(meta, allow_nan=True))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    return data[:draw(st.integers(1, len(data)))] if draw(st.integers(0, 9)) == 0 else data


@FUZZ
@given(data=st.data())
def test_any_checkpoint_is_read_or_refused_in_one_line(trained, plain_triage, data):
    with np.load(trained / runs.CHECKPOINT, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    with scratch() as d:
        run = Path(shutil.copytree(trained, d / "run"))
        (run / runs.CHECKPOINT).write_bytes(data.draw(spoiled_checkpoint(arrays)))
        judged(lambda: read_the_run(run), d, run)


# ---- gradient-check cases: .npz and directories of .npy


def answered_case(cell: str) -> dict:
    """The arrays of an exported case with the right gradients added (grad/<name>)."""
    model, chunk = random_case(7, 4, 2, 5, 3, True, seed=1, cell=cell)
    state = model.state_of({s: chunk[f"{s}0"] for s in model.cell_module.STATE})
    grads = model.loss_and_grads(chunk["x"], chunk["y"], state).grads
    return {**model.params, **chunk, **{f"grad/{k}": g for k, g in grads.items()}}


CASES = {cell: answered_case(cell) for cell in ("rnn", "lstm")}


@st.composite
def spoiled_case(draw) -> dict:
    """A case with an array gone, of another dtype (integer, complex, ...) or shape, not
    finite, an id out of range, a stray array or an object array."""
    arrays = dict(CASES[draw(st.sampled_from(sorted(CASES)))])
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(sorted(arrays)))
        a = arrays[name]
        how = draw(st.sampled_from(["drop", "dtype", "shape", "nan", "value", "stray",
                                    "object"]))
        if how == "drop":
            del arrays[name]
        elif how == "dtype" and a.dtype.kind in "biuf":
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                arrays[name] = a.astype(draw(st.sampled_from(DTYPES + ["float32"])))
        elif how == "shape":
            arrays[name] = draw(st.sampled_from([a.reshape(-1), a[None], a.T, a[:1],
                                                 np.zeros((0,) + a.shape[1:], a.dtype)]))
        elif how == "nan":
            arrays[name] = np.full_like(a, draw(st.sampled_from([np.nan, np.inf, -np.inf])),
                                        dtype=np.float64)
        elif how == "value" and a.dtype.kind in "biuf":
            arrays[name] = np.full_like(a, draw(st.integers(-10**6, 10**6)))
        elif how == "stray":
            arrays[draw(st.sampled_from(["grad/T0/0.Whh", "grad/T99/Why", "grad/zz",
                                         "out/loss", "out/0.h", "out/9.c", "9.Whh",
                                         "h0", "c0"]))] = a
        else:
            arrays[name] = np.array([None, 1], dtype=object)
    return arrays


def write_arrays(path: Path, arrays: dict) -> None:
    """An .npz, or a directory of .npy files (a name's "/" a subdirectory)."""
    if path.suffix == ".npz":
        np.savez(path, **arrays)
        return
    for name, a in arrays.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(path / f"{name}.npy", a)


@FUZZ
@given(arrays=spoiled_case(), form=st.sampled_from(["case.npz", "case"]),
       cut=st.integers(0, 30))
def test_any_gradcheck_case_is_read_or_refused_in_one_line(arrays, form, cut):
    with scratch() as d:
        write_arrays(d / form, arrays)
        if cut == 0:  # a file cut short
            victim = d / form if form.endswith(".npz") else sorted((d / form).rglob("*.npy"))[0]
            victim.write_bytes(victim.read_bytes()[:len(victim.read_bytes()) // 2])
        judged(lambda: name_bug(read_case(d / form)), d, d / form)


# ---- sweep files: any YAML value at any key

SWEEP_KEYS = ["name", "method", "parameters", "description"]
PARAMETER_KEYS = [*FIELDS, "seq-len", "--hidden", "hiden"]
yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6),
              st.sampled_from(["grid", "random", "adam", "lstm", "1e-3", "yes", "~", "nan"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=2),
    max_leaves=5)


@st.composite
def sweep_yaml(draw, corpus: str) -> str:
    """A sweep file: mostly the right keys holding any YAML value, sometimes any text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=60))
    params = {"corpus": {"value": corpus}}
    for key in draw(st.lists(st.sampled_from(PARAMETER_KEYS) | st.text(max_size=5),
                             max_size=3)):
        entry = draw(st.sampled_from(["value", "values", "any"]))
        params[key] = draw(yaml_values) if entry == "any" else \
            {entry: draw(st.lists(yaml_values, max_size=3) if entry == "values" and
                         draw(st.booleans()) else yaml_values)}
    doc = {"name": "fuzz", "method": "grid", "parameters": params}
    for key in draw(st.lists(st.sampled_from(SWEEP_KEYS) | st.text(max_size=4), max_size=2)):
        doc[key] = draw(yaml_values)
    return yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))


@FUZZ
@given(data=st.data())
def test_any_sweep_file_is_planned_or_refused_in_one_line(small_corpus, isolated, data):
    with scratch() as d:
        (d / "grid.yaml").write_text(data.draw(sweep_yaml(str(small_corpus))), encoding="utf-8")
        message = judged(lambda: plan(load_spec(d / "grid.yaml"), {}, d / "out"), d, None)
        assert message is None or message.startswith((f"{d / 'grid.yaml'}", "grid point ")), \
            message  # a point of the grid, wrong as a whole, is named as its point


# ---- through the command line: exit 2, one line, nothing changed


def refused_by_the_cli(capsys, root: Path, *argv) -> str:
    before = digest(root)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and err.startswith("rnnscope: error: "), (out, err)
    assert digest(root) == before
    return err


def test_every_command_refuses_a_spoiled_file_in_one_line(tmp_path, trained, capsys):
    """doctor, report, compare (a CSV with text in a numeric column), sample and train
    --resume (a checkpoint of complex parameters), gradcheck --user (integer gradients), sweep
    (a parameter that is no train flag)."""
    log = tmp_path / "log.csv"
    log.write_text("train_nll,step\n3.2,10\nhigh,20\n")
    for argv in (["doctor", log], ["report", log], ["compare", log, log]):
        assert "record 2: train_nll is 'high', not a number" in \
            refused_by_the_cli(capsys, tmp_path, *argv)
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    with np.load(run / runs.CHECKPOINT) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["param/0.Whh"] = arrays["param/0.Whh"].astype(np.complex64)
    np.savez(run / runs.CHECKPOINT, **arrays)
    for argv in (["sample", run], ["train", "--resume", run, "--steps", 21]):
        assert f"checkpoint {run / runs.CHECKPOINT}: param/0.Whh is complex64" in \
            refused_by_the_cli(capsys, tmp_path, *argv)
    case = dict(CASES["rnn"], **{"grad/0.Whh": np.ones((4, 4), dtype=np.int64)})
    np.savez(tmp_path / "case.npz", **case)
    assert "grad/0.Whh in" in refused_by_the_cli(capsys, tmp_path, "gradcheck", "--user",
                                                 tmp_path / "case.npz")
    (tmp_path / "grid.yaml").write_text("parameters:\n  hiden: {values: [8, 16]}\n")
    assert "did you mean hidden?" in refused_by_the_cli(capsys, tmp_path, "sweep",
                                                        tmp_path / "grid.yaml")


def test_a_spoiled_config_through_a_real_process_is_one_line(tmp_path, trained):
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    doc = json.loads((run / runs.CONFIG).read_text())
    doc["config"]["hidden"] = "eight"
    (run / runs.CONFIG).write_text(json.dumps(doc))
    before = digest(tmp_path)
    for argv in (["doctor", run], ["sample", run], ["train", "--resume", run]):
        proc = subprocess.run([sys.executable, "-m", "rnnscope.cli", *map(str, argv)],
                              capture_output=True, text=True, env=cli_env())
        assert proc.returncode == 2 and proc.stderr == (
            f"rnnscope: error: {run / runs.CONFIG} is corrupt (hidden is 'eight', not int); "
            "restore it or start a new run\n"), proc.stderr
    assert digest(tmp_path) == before


@pytest.mark.parametrize("field, value", [("layers", 10**9), ("hidden", 10**9),
                                          ("layers", 10**18)])
def test_a_config_json_asking_for_a_huge_model_is_refused_without_building_it(trained, field,
                                                                               value):
    """Found by the property test at 2000 examples: layers 10**9 filled the machine's memory."""
    with scratch() as d:
        run = Path(shutil.copytree(trained, d / "run"))
        doc = json.loads((run / runs.CONFIG).read_text())
        doc["config"][field] = value
        (run / runs.CONFIG).write_text(json.dumps(doc))
        for call in (lambda: runs.load_run(run), lambda: resume(run, {"steps": 21})):
            assert "does not match its config.json" in judged(call, d, run)


def test_a_swept_null_is_not_taken_for_a_fixed_value(tmp_path, small_corpus):
    """Found by the property test at 1138 examples: `values: [null]` was a KeyError."""
    (tmp_path / "grid.yaml").write_text(f"parameters:\n  corpus: {{value: {small_corpus}}}\n"
                                        "  data_dir: {values: [null]}\n")
    points = plan(load_spec(tmp_path / "grid.yaml"), {}, tmp_path / "out")
    assert [p.settings for p in points] == [{"data_dir": None}]
