"""The `rnnscope` command: argument parsing and printing only; every command calls the library.

Exit status: 0 success, 2 bad input (one line naming the problem and the fix), 1 internal
failure or a training run that diverged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .config import CELLS, CLIPS, DTYPES, INITS, OPTIMIZERS, SCHEDULES, TrainConfig
from .errors import RnnscopeError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str):
        raise RnnscopeError(f"{message}; see `{self.prog} --help`")


def train_flags(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    a = p.add_argument
    a("--corpus", help=f"stdlib, tinyshakespeare or a text file path (default {d.corpus})")
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
    a("--weight-decay", type=float)
    a("--dropout", type=float, help="dropout on every layer's output (default 0)")
    a("--eval-frac", type=float)
    a("--eval-every", type=int, help=f"steps between evals (default {d.eval_every})")
    a("--log-every", type=int, help=f"steps between panel records (default {d.log_every})")
    a("--sat-threshold", type=float)
    a("--seed", type=int)
    a("--dtype", choices=DTYPES)
    a("--no-panel", dest="panel", action="store_false",
      help="record only NLL, grad_norm and clip_rate")
    a("--no-report", dest="report", action="store_false",
      help="do not write report.html at the end (rnnscope report RUN makes it later)")


def build_parser() -> Parser:
    parser = Parser(prog="rnnscope", description="Train character-level RNNs and see why "
                    "they stop learning.")
    parser.add_argument("--version", action="version", version=f"rnnscope {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a model", argument_default=argparse.SUPPRESS)
    train_flags(p)
    p.add_argument("--run-dir", help="where to write the run (default runs/<time>-<corpus>-...)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument("--quiet", action="store_true", help="plain lines instead of the live panel")

    p = sub.add_parser("sample", help="sample text from a trained run")
    p.add_argument("run")
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--prime", default="")
    p.add_argument("--seed", type=int)
    p.add_argument("--best", action="store_true", help="use best.npz instead of the last "
                   "checkpoint")

    p = sub.add_parser("doctor", help="the triage's findings for a run")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("compare", help="runs side by side, with findings across runs")
    p.add_argument("runs", nargs="+")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("report", help="a self-contained HTML report of one or more runs")
    p.add_argument("runs", nargs="+")
    p.add_argument("-o", "--output", help="the HTML file (default: report.html in the run, "
                   "or compare.html here for several runs)")

    p = sub.add_parser("gradcheck", help="finite-difference check of rnnscope's or your BPTT")
    p.add_argument("--cell", choices=CELLS, default="rnn")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=8)
    p.add_argument("--vocab", type=int, default=11)
    p.add_argument("--seq-len", type=int, default=6)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--no-h0", dest="h0", action="store_false", help="start from a zero state")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", metavar="FILE.npz", help="write a test case (params, x, y, h0) "
                   "for your own implementation to fill with its gradients")
    p.add_argument("--user", metavar="FILE.npz", help="check your implementation's gradients "
                   "(a filled test case) against rnnscope's")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("bench", help="time the engine (and PyTorch's nn.RNN with --vs torch)")
    p.add_argument("--vs", choices=("torch",))
    p.add_argument("--json", action="store_true")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--quick", action="store_true", help="one small grid row, for a smoke test")
    p.add_argument("--grid", metavar="HxL,...", help="rows to time instead of the standard grid "
                   "(256x1,512x1,512x2), e.g. 512x1")

    sub.add_parser("corpora", help="list the corpora and whether they are available")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .display import make_display
    from .train import RESUMABLE, train

    given = {k: v for k, v in vars(args).items() if k not in ("command", "run_dir", "resume",
                                                                "quiet")}
    resume = getattr(args, "resume", None)
    if resume:
        fixed = sorted(set(given) - set(RESUMABLE))
        if fixed:
            raise RnnscopeError(f"--{fixed[0].replace('_', '-')} cannot change when resuming "
                                "(the run keeps its settings); start a new run to change it")
        if getattr(args, "run_dir", None):
            raise RnnscopeError("give --resume DIR or --run-dir DIR, not both")
    cfg = TrainConfig(**given)
    path = train(cfg, getattr(args, "run_dir", None), resume,
                 make_display(getattr(args, "quiet", False)))
    print(f"run written to {path}")
    return 0


def cmd_sample(args) -> int:
    from .runs import BEST, CHECKPOINT, load_run
    from .sample import sample

    run = load_run(args.run, BEST if args.best else CHECKPOINT)
    print(sample(run.model, run.vocab, args.length, args.temperature, args.prime, args.seed))
    return 0


def cmd_doctor(args) -> int:
    from .advice import format_diagnosis
    from .triage import diagnose_run

    result = diagnose_run(Path(args.run))
    print(json.dumps(result, indent=2) if args.json else format_diagnosis(result))
    return 0


def cmd_compare(args) -> int:
    from .compare import compare_runs, format_comparison

    result = compare_runs([Path(r) for r in args.runs])
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    out = write_report([Path(r) for r in args.runs], Path(args.output) if args.output else None)
    print(f"report written to {out}")
    return 0


def cmd_gradcheck(args) -> int:
    from . import gradcheck

    if args.export:
        gradcheck.write_case(Path(args.export), args.vocab, args.hidden, args.layers,
                             args.seq_len, args.batch, args.h0, args.seed)
        print(f"test case written to {args.export}; fill in grad/<name> and check it with "
              f"`rnnscope gradcheck --user {args.export}`")
        return 0
    if args.user:
        checks = gradcheck.check_user_file(Path(args.user))
    else:
        checks = gradcheck.check_model(args.vocab, args.hidden, args.layers, args.seq_len,
                                       args.batch, args.h0, args.seed, args.cell)
    print(gradcheck.format_checks(checks, args.json))
    return 0 if all(c.verdict != "wrong" for c in checks) else 1


def cmd_bench(args) -> int:
    from .bench import format_bench, run_bench

    rows = run_bench(vs_torch=args.vs == "torch", rounds=args.rounds, quick=args.quick,
                     grid=args.grid)
    print(json.dumps(rows, indent=2) if args.json else format_bench(rows))
    return 0


def cmd_corpora(args) -> int:
    from .data import list_corpora

    for c in list_corpora(os.environ.get("RNNSCOPE_DATA")):
        print(f"{c['name']:16} {c['state']}\n{'':16} {c['description']}")
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "doctor": cmd_doctor,
            "compare": cmd_compare, "report": cmd_report, "gradcheck": cmd_gradcheck,
            "bench": cmd_bench, "corpora": cmd_corpora}


def main(argv: list[str] | None = None) -> int:
    from .train import Diverged

    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except RnnscopeError as e:
        print(f"rnnscope: error: {e}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"rnnscope: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rnnscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
