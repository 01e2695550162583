"""Where users already look (SPEC 14), each against the real library, reading back what was
written: TensorBoard's EventAccumulator finds every reading's tag, step and value, and each
finding's text at the step it first held; the W&B offline run (read with wandb's own reader)
holds the same values; a missing library is one line naming the extra, exit 2; importing
rnnscope loads none of them."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnscope import runs
from rnnscope.cli import main
from rnnscope.errors import RnnscopeError
from rnnscope.records import read_run
from rnnscope.sinks.tags import scalars, tag

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("tensorboard", "wandb", "lightning", "pandas")
SATURATING = ["--hidden", "16", "--seq-len", "16", "--batch", "4", "--steps", "120",
              "--log-every", "10", "--eval-every", "60", "--lr", "0.05", "--recurrent-scale",
              "3", "--input-scale", "3", "--quiet", "--no-report"]  # saturation at step 50


def test_importing_rnnscope_loads_no_optional_library():
    code = ("import sys, rnnscope, rnnscope.train, rnnscope.cli, rnnscope.sinks.tensorboard, "
            "rnnscope.sinks.wandb, rnnscope.sinks.notebook; "
            f"print([m for m in {OPTIONAL!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


def test_engine_install_pulls_no_optional_library():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    deps = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
    assert not [m for m in OPTIONAL if m in deps]
    for extra in ("tensorboard", "wandb", "lightning", "notebook"):
        assert re.search(rf"^{extra} = \[", text, re.M), extra


@pytest.mark.parametrize("key, expected", [
    ("train_nll", "loss/train_nll"),
    ("eval_nll", "loss/eval_nll"),
    ("layer0.sat_ratio", "saturation/layer0/sat_ratio"),
    ("sat_ratio", "saturation/sat_ratio"),
    ("layer1.gate.f.left", "gates/layer1/gate.f.left"),
    ("grad_norm.0.Whh", "gradients/layer0/grad_norm.Whh"),
    ("update_ratio.Why", "updates/update_ratio.Why"),
    ("layer2.whh_sigma_max", "updates/layer2/whh_sigma_max"),
    ("torch_grad_rel_diff", "gradients/torch_grad_rel_diff"),
    ("accuracy", "other/accuracy"),
])
def test_tags_are_grouped_as_the_table_of_readings_says(key, expected):
    assert tag(key) == expected


def test_scalars_of_a_record():
    rec = {"step": 20, "train_nll": 2.5, "steps": [11, 20], "final": True, "diverged": "loss",
           "eval_nll": None, "layer0.bptt_profile": [[1, 0.5], [2, 0.25], [4, None]],
           "bptt_profile": [[1, 0.5], [2, 0.25], [4, 0.0625]]}
    assert scalars(rec) == {"loss/train_nll": 2.5,
                            "through_time/layer0/bptt_profile.g1": 0.5,
                            "through_time/layer0/bptt_profile.g2": 0.25,
                            "through_time/bptt_profile": 0.5,  # the gain per step, 0.0625**(1/4)
                            "through_time/bptt_profile.g1": 0.5,
                            "through_time/bptt_profile.g2": 0.25,
                            "through_time/bptt_profile.g4": 0.0625}


# ---- reading back


def tensorboard_of(log_dir: Path) -> tuple[dict, dict]:
    """({tag: {step: value}} of the scalars, {tag: {step: text}} of the texts) in log_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    values = {t: {e.step: e.value for e in acc.Scalars(t)} for t in tags["scalars"]}
    texts = {t.removesuffix("/text_summary"): {
        e.step: e.tensor_proto.string_val[0].decode() for e in acc.Tensors(t)}
        for t in tags["tensors"]}
    return values, texts


def expected_scalars(path: Path) -> dict:
    """{tag: {step: value}} of every reading of the run (records of one step merged)."""
    out: dict = {}
    for rec in read_run(path)[1]:
        for t, v in scalars(rec).items():
            out.setdefault(t, {})[rec["step"]] = v
    return out


def assert_tensorboard_holds(values: dict, path: Path) -> None:
    expected = expected_scalars(path)
    assert values.keys() == expected.keys()
    for t, points in expected.items():
        assert values[t] == {s: np.float32(v) for s, v in points.items()}, t


def first_held(stdout: str) -> dict[str, int]:
    """{finding id: step} from the live lines 'step N: id (severity): ...'."""
    return {m[2]: int(m[1]) for m in re.finditer(r"^step (\d+): (\w+) \(", stdout, re.M)}


def wandb_history(wandb_dir: Path) -> dict[int, dict]:
    """{step: logged values} of the one offline run under wandb_dir, read by wandb's own reader
    (`wandb leet inspect --json`)."""
    [file] = list(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(file)],
                         capture_output=True, text=True, check=True, timeout=120)
    rows: dict[int, dict] = {}
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("type") == "history":
            item = rec["history"]["item"]
            rows.setdefault(item["_step"], {}).update(
                {k: v for k, v in item.items() if not k.startswith("_")})
    return rows


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch) -> Path:
    """W&B in offline mode, its files in tmp_path: nothing is sent anywhere."""
    wandb = pytest.importorskip("wandb")
    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                 "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    wandb.teardown()  # settings are read from the environment again
    yield tmp_path
    wandb.teardown()


@pytest.mark.slow
def test_train_live_and_export_write_every_reading(small_corpus, tmp_path, offline_wandb,
                                                    capsys):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(small_corpus), *SATURATING, "--run-dir", str(run),
                 "--tensorboard", str(tmp_path / "live"), "--wandb", "tests"]) == 0
    held = first_held(capsys.readouterr().out)
    assert held == {"saturation": 50}

    values, texts = tensorboard_of(tmp_path / "live")
    assert_tensorboard_holds(values, run)
    assert {t for t in values if "/" in t.split("/", 1)[1]} >= {
        "saturation/layer0/sat_ratio", "gradients/layer0/dh_norm", "updates/layer0/whh_sigma_max",
        "through_time/layer0/bptt_profile"}
    assert {t: list(s) for t, s in texts.items()} == {"triage/saturation": [50]}
    assert "saturation (critical)" in texts["triage/saturation"][50]

    assert main(["export", str(run), "--tensorboard", str(tmp_path / "after")]) == 0
    after_values, after_texts = tensorboard_of(tmp_path / "after")
    assert after_values == values and after_texts == texts  # export writes what live wrote

    history = wandb_history(offline_wandb)
    for t, points in expected_scalars(run).items():
        for step, v in points.items():
            assert history[step][t] == v, (t, step)
    assert history[50]["triage/saturation"].startswith("critical: from the first record")


@pytest.mark.slow
def test_export_of_a_log_and_a_resumed_run(small_corpus, tmp_path, capsys):
    """A CSV log of another program exports too; a resume purges the points it rewrites."""
    pytest.importorskip("tensorboard")
    log = tmp_path / "mine.csv"
    rows = [f"{s},{3.0 - s / 1000},0.9,0.05,0.7" for s in range(10, 410, 10)]
    log.write_text("step,train_nll,sat_ratio,mean_gain,accuracy\n" + "\n".join(rows) + "\n")
    assert main(["export", str(log), "--tensorboard", str(tmp_path / "log")]) == 0
    values, texts = tensorboard_of(tmp_path / "log")
    assert_tensorboard_holds(values, log)
    assert "other/accuracy" in values and "triage/saturation" in texts

    run, live = tmp_path / "run", tmp_path / "live"
    flags = [*SATURATING[:6], "--steps", "40", "--log-every", "10", "--eval-every", "20",
             "--quiet", "--no-report", "--tensorboard", str(live)]
    assert main(["train", "--corpus", str(small_corpus), *flags, "--run-dir", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--steps", "60", "--tensorboard",
                 str(live)]) == 0
    values, _ = tensorboard_of(live)
    assert_tensorboard_holds(values, run)  # steps 50, 60 once; the records kept, not rewritten


def test_a_missing_library_is_one_line_naming_the_extra(small_corpus, tmp_path, monkeypatch,
                                                        capsys):
    monkeypatch.chdir(tmp_path)  # where `train` would make runs/...
    log = tmp_path / "mine.csv"
    log.write_text("step,train_nll\n10,3.0\n")
    for module, argv in (("tensorboard", ["export", log, "--tensorboard", tmp_path / "tb"]),
                         ("wandb", ["export", log, "--wandb"]),
                         ("wandb", ["train", "--corpus", small_corpus, "--wandb", "p"])):
        monkeypatch.setitem(sys.modules, module, None)
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rnnscope: error: ") and err.count("\n") == 1
        assert f'needs the {module} package, which is not installed; pip install ' \
            f'"rnnscope[{module}]"' in err
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made
    assert main(["export", str(log)]) == 2
    assert "--tensorboard DIR" in capsys.readouterr().err


def test_missing_pandas_and_lightning(tmp_path, monkeypatch):
    from rnnscope import view

    log = tmp_path / "mine.csv"
    log.write_text("step,train_nll\n10,3.0\n")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(RnnscopeError, match=r'pip install "rnnscope\[notebook\]"'):
        view(log).frame()
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.delitem(sys.modules, "rnnscope.lightning", raising=False)
    with pytest.raises(RnnscopeError, match=r'pip install "rnnscope\[lightning\]"'):
        import rnnscope.lightning  # noqa: F401


# ---- rnnscope.torch.Panel, live


def torch_loop(path: Path, steps: int = 8, **sinks) -> Path:
    """A user's loop: a 2-layer GRU on random ids, a record every 2 steps, one eval."""
    torch = pytest.importorskip("torch")
    from rnnscope.torch import Panel

    torch.manual_seed(0)
    V = 7
    rnn, head = torch.nn.GRU(V, 5, 2), torch.nn.Linear(5, V)
    opt = torch.optim.SGD([*rnn.parameters(), *head.parameters()], lr=0.5)
    panel = Panel(rnn, path, 2, quiet=True, report=False, **sinks)
    for step in range(steps):
        x, y = torch.randint(V, (6, 3)), torch.randint(V, (6, 3))
        out, _ = rnn(torch.nn.functional.one_hot(x, V).float())
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        panel.step(loss, opt)
        if step == 3:
            panel.eval(2.0)
    return panel.close()


def test_torch_panel_writes_to_a_summary_writer(tmp_path):
    pytest.importorskip("tensorboard")
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    writer = torch_tb.SummaryWriter(str(tmp_path / "tb"))
    run = torch_loop(tmp_path / "run", tensorboard=writer)
    writer.close()  # the writer stays the user's
    values, _ = tensorboard_of(tmp_path / "tb")
    assert_tensorboard_holds(values, run)
    assert {"gates/layer1/gate.z.mean", "gradients/torch_grad_rel_diff", "loss/eval_nll"} \
        <= values.keys()


@pytest.mark.slow
def test_torch_panel_logs_to_a_wandb_run(tmp_path, offline_wandb):
    import wandb

    wb = wandb.init(project="tests", name="panel")
    run = torch_loop(tmp_path / "run", wandb_run=wb)
    wb.log({"mine": 1.0}, step=8)  # the run stays the user's
    wb.finish()
    history = wandb_history(offline_wandb)
    for t, points in expected_scalars(run).items():
        for step, v in points.items():
            assert history[step][t] == v, (t, step)
    assert history[8]["mine"] == 1.0 and runs.read_metrics(run)[-1]["step"] == 8
