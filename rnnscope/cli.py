"""The `rnnscope` command: argument parsing and printing only; every command calls the library.

Exit status: 0 success, 2 bad input (one line naming the problem and the fix), 1 internal
failure, a training run that diverged or a write that failed (one line naming the file and the
OS error), 128 + the signal for a run stopped by SIGINT (130) or SIGTERM (143).
Warnings from the library (a damaged record skipped) are one line each on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import warnings
from pathlib import Path

from .config import (
    CELLS,
    CLIPS,
    DTYPES,
    INITS,
    OPTIMIZERS,
    READOUT_INITS,
    SCHEDULES,
    TrainConfig,
)
from .errors import Interrupted, RnnscopeError, RnnscopeWarning, WriteFailed
from .version import __version__


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str):
        raise RnnscopeError(f"{message}; see `{self.prog} --help`")


def train_flags(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    a = p.add_argument
    a("--corpus", help="stdlib, tinyshakespeare, synthetic:markov{K}, synthetic:delay{K} or "
      "synthetic:recall{K} "
      f"(optionally :seed{{S}}), or a text file path (default {d.corpus})")
    a("--data-dir", help="directory holding tinyshakespeare.txt, for offline use")
    a("--cell", choices=CELLS)
    a("--hidden", type=int, help=f"hidden units per layer (default {d.hidden})")
    a("--layers", type=int, help=f"stacked layers (default {d.layers})")
    a("--seq-len", type=int, help=f"BPTT truncation length T (default {d.seq_len})")
    a("--batch", type=int, help=f"parallel streams B (default {d.batch})")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimizer steps (default: about 2 minutes)")
    length.add_argument("--minutes", type=float, help="train for this many minutes")
    a("--optimizer", choices=OPTIMIZERS)
    a("--lr", type=float, help=f"learning rate (default {d.lr})")
    a("--lr-schedule", choices=SCHEDULES)
    a("--clip", choices=CLIPS)
    a("--clip-value", type=float, help=f"(default {d.clip_value})")
    a("--recurrent-init", choices=INITS)
    a("--recurrent-scale", type=float)
    a("--input-scale", type=float)
    a("--forget-bias", type=float, help=f"LSTM forget-gate bias at init (default {d.forget_bias})")
    a("--chrono-init", action="store_true",
      help="gated cells: chrono initialisation of the gate biases, T_max = --seq-len")
    a("--weight-decay", type=float)
    a("--dropout", type=float, help="dropout on every layer's output (default 0)")
    a("--embed", type=int, metavar="E", help="layer 0 reads a learned E-wide embedding of each "
      "character instead of its one-hot row (default 0: one-hot)")
    a("--warmup", type=int, metavar="STEPS", help="raise the learning rate linearly from "
      "lr/STEPS to lr over the first STEPS steps (default 0: none)")
    a("--readout-init", choices=READOUT_INITS, help="readout bias at zero (default) or at the "
      "log unigram frequencies of the training split (prior)")
    a("--reset-every", type=int, metavar="K", help="zero each stream's carried state every K "
      "chunks, the streams staggered (default: only at each epoch's start); teaches the "
      "model to score from a fresh state too (docs/triage.md, state_dependence)")
    a("--eval-frac", type=float)
    a("--eval-every", type=int, help=f"steps between evals (default {d.eval_every})")
    a("--log-every", type=int, help=f"steps between panel records (default {d.log_every})")
    a("--checkpoint-every", type=int, metavar="K", help="also checkpoint every K steps "
      "(always at each eval and at the end); a crash loses at most the steps since")
    a("--sat-threshold", type=float)
    a("--seed", type=int)
    a("--dtype", choices=DTYPES)
    a("--no-panel", dest="panel", action="store_false",
      help="record only NLL, grad_norm and clip_rate")
    a("--no-report", dest="report", action="store_false",
      help="do not write report.html at the end (rnnscope report RUN makes it later)")


def sink_flags(p: argparse.ArgumentParser, also: str) -> None:
    """--tensorboard DIR and --wandb [PROJECT] (docs/ecosystem.md)."""
    p.add_argument("--tensorboard", metavar="DIR", help=f"{also} write every reading and "
                   "finding as TensorBoard scalars and text into DIR (rnnscope[tensorboard])")
    p.add_argument("--wandb", nargs="?", const="", metavar="PROJECT", help=f"{also} log every "
                   "reading and finding to a new Weights & Biases run in PROJECT (default "
                   "rnnscope; rnnscope[wandb]; WANDB_MODE=offline keeps it on disk)")


def sinks(args: argparse.Namespace) -> list:
    """The sinks the --tensorboard and --wandb flags ask for; a library that is missing is
    refused here, before anything runs."""
    from .sinks.tensorboard import TensorBoard
    from .sinks.wandb import WandB

    out = [TensorBoard.into(args.tensorboard)] if getattr(args, "tensorboard", None) else []
    if hasattr(args, "wandb"):
        out.append(WandB.new(args.wandb or None))
    return out


def build_parser() -> Parser:
    parser = Parser(prog="rnnscope", description="Train character-level RNNs and see why "
                    "they stop learning.")
    parser.add_argument("--version", action="version", version=f"rnnscope {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a model", argument_default=argparse.SUPPRESS)
    train_flags(p)
    p.add_argument("--run-dir", help="where to write the run (default runs/<time>-<corpus>-...)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last "
                   "checkpoint with its own settings; --steps/--minutes may be raised, "
                   "--corpus/--data-dir may point at the same text moved elsewhere")
    p.add_argument("--quiet", action="store_true", help="plain lines instead of the live panel")
    sink_flags(p, "also")

    p = sub.add_parser("sample", help="sample text from a trained run")
    p.add_argument("run")
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--prime", default="")
    p.add_argument("--seed", type=int)
    p.add_argument("--best", action="store_true", help="use best.npz instead of the last "
                   "checkpoint")

    p = sub.add_parser("doctor", help="the triage's findings for a run")
    p.add_argument("run", metavar="RUN|FILE.jsonl|FILE.csv",
                   help="a run directory or a log of your own network (docs/format.md)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("compare", help="runs side by side, with findings across runs")
    p.add_argument("runs", nargs="+", metavar="RUN|FILE.jsonl|FILE.csv")
    p.add_argument("--by", choices=("step", "minute"), default="step",
                   help="match the runs at the same steps (default), or at the same minutes of "
                   "wall time: runs of different cells or batch sizes at one time budget")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("report", help="a self-contained HTML report of one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN|FILE.jsonl|FILE.csv")
    p.add_argument("-o", "--output", help="the HTML file (default: report.html in the run, "
                   "FILE.report.html beside a log, or compare.html here for several runs)")

    p = sub.add_parser("export", help="write a run's readings and findings into TensorBoard "
                       "or Weights & Biases", argument_default=argparse.SUPPRESS)
    p.add_argument("run", metavar="RUN|FILE.jsonl|FILE.csv")
    sink_flags(p, "")

    p = sub.add_parser("gradcheck", help="finite-difference check of rnnscope's or your BPTT")
    p.add_argument("--cell", choices=CELLS, default="rnn")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=8)
    p.add_argument("--vocab", type=int, default=11)
    p.add_argument("--seq-len", type=int, default=6)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--no-h0", dest="h0", action="store_false", help="start from a zero state")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", metavar="CASE", help="write a test case (params, x, y, h0) for "
                   "your own implementation to answer with its gradients: CASE.npz, or a "
                   "directory of .npy files for any other name (docs/gradcheck.md)")
    p.add_argument("--user", metavar="CASE", help="check your answered case against rnnscope's "
                   "gradients and name the mistake in your BPTT")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("bench", help="time the engine (and PyTorch's nn.RNN, nn.GRU, nn.LSTM "
                       "with --vs torch)")
    p.add_argument("--vs", choices=("torch",))
    p.add_argument("--json", action="store_true")
    p.add_argument("--rounds", type=int, help="interleaved timing rounds (default: 2, with "
                   "--full 5)")
    p.add_argument("--quick", action="store_true", help="one small grid row, for a smoke test")
    p.add_argument("--full", action="store_true", help="the full grid (256x1,512x1,512x2) "
                   "instead of hidden 256 alone; takes many minutes")
    p.add_argument("--grid", metavar="HxL,...", help="rows to time instead of the default "
                   "(256x1, or with --full 256x1,512x1,512x2), e.g. 512x1")
    p.add_argument("--cell", metavar="CELL,...", help=f"cells to time (default all: "
                   f"{','.join(CELLS)}), e.g. gru,lstm")

    p = sub.add_parser("sweep", help="a grid of training runs, on this machine or Ray",
                       argument_default=argparse.SUPPRESS,
                       description="Run every combination of the swept values. Train flags "
                       "given here are fixed for every run.")
    p.add_argument("spec", nargs="?", default=None, metavar="SPEC.yaml",
                   help="a sweep file: name, method: grid, parameters (docs/sweeps.md)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FLAG=a,b",
                   help="sweep a train flag over these values (repeat for more factors)")
    p.add_argument("--out", default=None, metavar="DIR", help="where the runs, summary.json "
                   "and report.html go (default sweeps/<name>)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--workers", type=int, default=None, help="runs at once (default: the "
                   "number of cores; with --address, all the cluster takes)")
    p.add_argument("--address", default=None, help="join this Ray cluster (auto, HOST:PORT or "
                   "ray://HOST:PORT) instead of starting a local Ray instance")
    p.add_argument("--retry-failed", action="store_true", default=False,
                   help="run failed grid points again (they are kept as failed otherwise)")
    p.add_argument("--quiet", action="store_true", default=False,
                   help="plain lines instead of the live table")
    train_flags(p)

    p = sub.add_parser("try", help="try the triage's next steps beside a control and say which "
                       "helped (docs/try.md)")
    p.add_argument("run", metavar="RUN", help="a run directory (or, with --cmd, the directory "
                   "of a run of your own program)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="each fork's budget in steps (default: "
                        "RUN's own length)")
    length.add_argument("--minutes", type=float, help="each fork's budget in minutes")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--workers", type=int, default=None, help="runs at once (default: the "
                   "number of cores)")
    p.add_argument("--address", default=None, help="join this Ray cluster")
    p.add_argument("--also", action="append", default=[], metavar="FLAG=V",
                   help="a fork of your own (repeat for more; FLAG=V,FLAG2=V2 changes both)")
    p.add_argument("--only", action="append", default=[], metavar="NAMES",
                   help="run only these forks: their names or a setting they change, "
                   "comma-separated (the controls always run)")
    p.add_argument("--cmd", default=None, metavar="TEMPLATE", help="run your own program per "
                   "fork: placeholders {setting} (settings RUN recorded), {run_dir}, {steps}, "
                   "{minutes}")
    p.add_argument("--quiet", action="store_true", help="plain lines instead of the live table")

    p = sub.add_parser("corpora", help="list the corpora, whether they are available and "
                       "their floors where known; --export writes one to a file")
    p.add_argument("--export", nargs=2, metavar=("NAME", "FILE"),
                   help="write the text of corpus NAME (any --corpus value) to FILE")
    p.add_argument("--data-dir", help="directory holding tinyshakespeare.txt, for offline use")
    sub.add_parser("c-header", help="print rnnscope.h, the C99 header that puts your own C "
                   "network on the panel (rnnscope c-header > rnnscope.h)")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .display import make_display
    from .train import resume, train

    given = {k: v for k, v in vars(args).items() if k not in ("command", "run_dir", "resume",
                                                                "quiet", "tensorboard", "wandb")}
    run_dir, resume_dir = getattr(args, "run_dir", None), getattr(args, "resume", None)
    if resume_dir and run_dir:
        raise RnnscopeError("give --resume DIR or --run-dir DIR, not both")
    display = make_display(getattr(args, "quiet", False))
    if resume_dir:
        path = resume(resume_dir, given, display, sinks(args))
    else:
        path = train(TrainConfig(**given), run_dir, display, sinks(args))
    print(f"run written to {path}")
    return 0


def cmd_sample(args) -> int:
    from .runs import BEST, CHECKPOINT, load_run
    from .sample import sample

    run = load_run(args.run, BEST if args.best else CHECKPOINT)
    print(sample(run.model, run.vocab, args.length, args.temperature, args.prime, args.seed))
    return 0


def cmd_doctor(args) -> int:
    from .triage import diagnose_run, format_diagnosis

    result = diagnose_run(Path(args.run))
    print(json.dumps(result, indent=2) if args.json else format_diagnosis(result))
    return 0


def cmd_compare(args) -> int:
    from .compare import compare_runs, format_comparison

    result = compare_runs([Path(r) for r in args.runs], args.by)
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    out = write_report([Path(r) for r in args.runs], Path(args.output) if args.output else None)
    print(f"report written to {out}")
    return 0


def cmd_export(args) -> int:
    from .sinks import replay

    chosen = sinks(args)
    if not chosen:
        raise RnnscopeError("say where to export: --tensorboard DIR and/or --wandb [PROJECT]")
    n = replay(Path(args.run), chosen)
    where = [f"TensorBoard {args.tensorboard}"] if getattr(args, "tensorboard", None) else []
    where += ["W&B"] if hasattr(args, "wandb") else []
    print(f"exported {n} records of {args.run} to {' and '.join(where)}")
    return 0


def cmd_gradcheck(args) -> int:
    from . import gradcheck

    if args.export:
        gradcheck.write_case(Path(args.export), args.vocab, args.hidden, args.layers,
                             args.seq_len, args.batch, args.h0, args.seed, args.cell)
        print(f"test case written to {args.export}; add your gradients as grad/<name> "
              f"(docs/gradcheck.md) and check them with `rnnscope gradcheck --user "
              f"{args.export}`")
        return 0
    if args.user:
        report = gradcheck.name_bug(gradcheck.read_case(Path(args.user)))
        print(gradcheck.format_bug_report(report, args.json))
        return 0 if report.verdict == "correct" else 1
    checks = gradcheck.check_model(args.vocab, args.hidden, args.layers, args.seq_len,
                                   args.batch, args.h0, args.seed, args.cell)
    print(gradcheck.format_checks(checks, args.json))
    return 0 if all(c.verdict != "wrong" for c in checks) else 1


def cmd_bench(args) -> int:
    from .bench import format_bench, run_bench

    rows = run_bench(vs_torch=args.vs == "torch", rounds=args.rounds, quick=args.quick,
                     grid=args.grid, cells=args.cell, full=args.full,
                     progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(rows, indent=2) if args.json else format_bench(rows))
    return 0


SWEEP_OWN = ("command", "spec", "sets", "out", "backend", "workers", "address", "retry_failed",
             "quiet")


def cmd_sweep(args) -> int:
    from . import sweep
    from .display import make_grid_display

    if bool(args.spec) == bool(args.sets):
        raise RnnscopeError("give a sweep file (SPEC.yaml) or --set FLAG=a,b ..., one of them")
    spec = sweep.load_spec(Path(args.spec)) if args.spec else sweep.spec_from_sets(args.sets)
    fixed = {k: v for k, v in vars(args).items() if k not in SWEEP_OWN}
    out = Path(args.out) if args.out else Path("sweeps") / sweep.name_value(spec.name)
    points = sweep.plan(spec, fixed, out)
    if args.backend == "ray" and (args.address or os.environ.get("RAY_ADDRESS")) \
            and not out.is_absolute():
        print(f"note: --out {out} is relative; the runs go to {out.resolve()}, which every "
              "node of the cluster must see (a shared filesystem)", file=sys.stderr)
    print(f"sweep {spec.name}: {len(points)} runs in {out}", flush=True)
    pool = sweep.make_pool(args.backend, out.resolve(), args.workers, args.address)
    summary = interruptible(lambda: sweep.run_sweep(points, out.resolve(), pool,
                                                    make_grid_display(args.quiet),
                                                    args.retry_failed, spec.name),
                            f"sweep interrupted; the running runs were checkpointed; the same "
                            f"command resumes them (status in {out / sweep.SUMMARY})")
    print(sweep.format_summary(summary))
    page = sweep.write_sweep_report(out.resolve(), summary)
    print(f"summary: {out / sweep.SUMMARY}\nreport: {page}")
    failed = [r["name"] for r in summary["runs"] if r["status"] == "failed"]
    if failed:
        print(f"rnnscope: {len(failed)} of {len(points)} runs failed (first: {failed[0]}); "
              "see the status in summary.json, rerun them with --retry-failed", file=sys.stderr)
        return 1
    return 0


def interruptible(work, message: str):
    """work(), with SIGTERM ending it as Ctrl-C does; an interrupt prints message and exits
    128 + the signal (the running runs stop checkpointed)."""
    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        return work()
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM through interrupt(): main() says it
        raise Interrupted(getattr(e, "signum", signal.SIGINT), message) from None
    finally:
        signal.signal(signal.SIGTERM, before)


def cmd_try(args) -> int:
    from . import sweep, trial
    from .display import make_grid_display

    budget = {k: getattr(args, k) for k in ("steps", "minutes") if getattr(args, k) is not None}
    plan = trial.make_plan(Path(args.run), budget, args.also, args.only, args.cmd)
    forks = [f for f in plan.forks if f.role == "fork"]
    print(f"try {plan.run}: {len(forks)} forks and {len(plan.forks) - len(forks)} controls "
          f"in {plan.out}", flush=True)
    pool = sweep.make_pool(args.backend, plan.out, args.workers, args.address)
    doc = interruptible(lambda: trial.run_trial(plan, pool, make_grid_display(args.quiet)),
                        "try interrupted; the running forks were checkpointed; the same "
                        "command finishes the rest")
    print(trial.format_trial(doc))
    print(f"try.json: {plan.out / trial.TRY_JSON}\nreport: {doc['report']}")
    broken = [c for c in doc["controls"] if c["status"] == "failed"
              and not (c["error"] or "").startswith("diverged")]
    if broken:
        print(f"rnnscope: control {broken[0]['name']} failed ({broken[0]['error']}); its "
              "forks could not be judged; fix it and run the same command again",
              file=sys.stderr)
        return 1
    return 0


def interrupt(signum, frame):
    """SIGTERM ends a sweep as Ctrl-C does: its running runs stop checkpointed."""
    raise Interrupted(signum, "sweep stopped by SIGTERM")


def cmd_corpora(args) -> int:
    from .corpora import export_corpus, list_corpora

    data_dir = args.data_dir or os.environ.get("RNNSCOPE_DATA")
    if args.export:
        name, file = args.export
        c = export_corpus(name, file, data_dir)
        floor = "" if c.floor_nll is None else f", floor {c.floor_nll:.4f} nats/char"
        print(f"wrote {name} to {file}: {len(c.text):,} characters, SHA-256 {c.sha256}{floor}")
        return 0
    for c in list_corpora(data_dir):
        floor = "" if c["floor_nll"] is None else f"floor {c['floor_nll']:.4f} nats/char, "
        print(f"{c['name']:20} {floor}{c['state']}\n{'':20} {c['description']}")
    return 0


def cmd_c_header(args) -> int:
    from importlib.resources import files

    sys.stdout.write((files("rnnscope") / "csrc" / "rnnscope.h").read_text(encoding="utf-8"))
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "doctor": cmd_doctor,
            "compare": cmd_compare, "report": cmd_report, "export": cmd_export,
            "gradcheck": cmd_gradcheck, "bench": cmd_bench, "sweep": cmd_sweep, "try": cmd_try,
            "corpora": cmd_corpora,
            "c-header": cmd_c_header}


def main(argv: list[str] | None = None) -> int:
    from .train import Diverged

    try:
        args = build_parser().parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("default", RnnscopeWarning)
            warnings.showwarning = one_line_warning
            return COMMANDS[args.command](args)
    except RnnscopeError as e:
        print(f"rnnscope: error: {e}", file=sys.stderr)
        return 2
    except WriteFailed as e:
        print(f"rnnscope: error: {e}", file=sys.stderr)
        return 1
    except Diverged as e:
        print(f"rnnscope: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"rnnscope: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("rnnscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # the machine, not the input: a file that could not be read or written
        print(f"rnnscope: error: {e}", file=sys.stderr)
        return 1


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, RnnscopeWarning):
        print(f"rnnscope: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line),
              file=sys.stderr, end="")


if __name__ == "__main__":
    sys.exit(main())
