"""The ``dltune`` command: parse, load the config, call the library. Errors are one line.

Exit codes: 0 success, 1 failure while running, 2 bad input (config, flags, data).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable

from dltune import __version__
from dltune.command import run_guarded, split_overrides
from dltune.errors import UserError

EPILOG = """examples:
  dltune train configs/quickstart.yaml                      # digits, in this process
  dltune train configs/quickstart.yaml optim.lr=0.01 train.epochs=5
  dltune train configs/quickstart.yaml --launcher torchrun scaling.num_workers=2
  dltune train configs/quickstart.yaml --launcher ray scaling.num_workers=2
  dltune train configs/quickstart.yaml --resume             # continue from the last checkpoint
  dltune tune configs/quickstart_tune.yaml                  # ASHA search on digits
  dltune tune configs/quickstart_tune.yaml --resume         # after a crash or Ctrl-C
  dltune check configs/ctr_deepfm.yaml data.path=/mnt/nfs/ctr/train
  dltune report outputs/quickstart_tune                     # report.html for a search
  dltune automl --help

Overrides are dotted keys: section.key=value (lists as a,b,c). docs/configuration.md lists every key.
"""


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file (local path or hdfs:// / s3:// URI)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dltune", description="Distributed deep-learning training and hyperparameter optimisation from one YAML config.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"dltune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train one model (in-process, torchrun or Ray Train)", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _config_args(train)
    train.add_argument("--launcher", choices=["local", "torchrun", "ray"], help="overrides scaling.launcher")
    train.add_argument("--resume", action="store_true", help="continue the experiment from its last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="delete an earlier run of this experiment first")
    train.add_argument("--quiet", action="store_true", help="no progress output")

    tune = sub.add_parser("tune", help="hyperparameter search over training runs with Ray Tune", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _config_args(tune)
    tune.add_argument("--resume", action="store_true", help="continue an interrupted search (finished trials are not rerun)")
    tune.add_argument("--overwrite", action="store_true", help="delete an earlier search of this experiment first")
    tune.add_argument("--quiet", action="store_true", help="no progress output")

    report = sub.add_parser("report", help="write report.html (and PNG figures) for a search, or compare several")
    report.add_argument("experiments", nargs="+", metavar="EXPERIMENT_DIR", help="a search's experiment dir (local path or hdfs:// / s3:// URI)")
    report.add_argument("--out", default="compare.html", help="with several experiments: the comparison page to write (default: compare.html)")
    report.add_argument("--debug", action="store_true", help="show tracebacks")

    check = sub.add_parser("check", help="validate a config and print the resolved plan without training")
    _config_args(check)

    try:
        from dltune.automl import cli as automl_cli
    except ImportError:
        automl_cli = None
    if automl_cli is not None:
        automl_cli.add_parser(sub)
    return parser


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from dltune import api

    if args.launcher:
        overrides = [*overrides, f"scaling.launcher={args.launcher}"]
    api.train(args.config, overrides, resume=args.resume, overwrite=args.overwrite, verbose=not args.quiet)
    return 0


def cmd_tune(args: argparse.Namespace, overrides: list[str]) -> int:
    from dltune import api

    api.tune(args.config, overrides, resume=args.resume, overwrite=args.overwrite, verbose=not args.quiet)
    return 0


def cmd_report(args: argparse.Namespace, overrides: list[str]) -> int:
    from dltune import storage
    from dltune.report import write_comparison, write_report

    if overrides:
        raise UserError(f"dltune report takes experiment dirs, not overrides: {' '.join(overrides)}")
    if len(args.experiments) == 1:
        print(f"report: {storage.redact(write_report(args.experiments[0]))}")
    else:
        print(f"comparison: {storage.redact(write_comparison(args.experiments, args.out))}")
    return 0


def cmd_check(args: argparse.Namespace, overrides: list[str]) -> int:
    from dltune.plan import describe_plan

    print(describe_plan(args.config, overrides))
    return 0


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # import paths in configs resolve from here, as under `python -m`
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    debug = getattr(args, "debug", False)
    commands: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {"train": cmd_train, "tune": cmd_tune, "check": cmd_check, "report": cmd_report}
    if args.command in commands:
        return run_guarded(lambda: commands[args.command](args, split_overrides(rest)), debug)
    from dltune.automl import cli as automl_cli

    if rest and not getattr(args, "accepts_overrides", True):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.overrides = [*getattr(args, "overrides", []), *rest]
    return run_guarded(lambda: automl_cli.run(args), debug)


if __name__ == "__main__":
    sys.exit(main())
