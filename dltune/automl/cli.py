"""``dltune automl``: the command-line entry of the AutoML job and of ``dltune automl predict``.

The main CLI registers it with ``add_parser(subparsers)`` and calls
``run(args)``; ``python -m dltune.automl.cli ARGS`` is the same as
``dltune automl ARGS``.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any, get_type_hints

from dltune import storage
from dltune.automl.config import AutoMLConfig, build_config, field_names
from dltune.errors import ConfigError, UserError
from dltune.schema import closest, describe

EXAMPLES = """\
examples:
  # flags, as in existing job scripts (also under: ray job submit --working-dir . -- dltune automl ...)
  dltune automl --task_id task_123456 \\
    --train_data hdfs://ns/warehouse/train/part-00000.snappy.parquet \\
    --test_data hdfs://ns/warehouse/test/part-00000.snappy.parquet \\
    --label_col label --output_path ./outputs --time_budget 240 \\
    --task classification --metric roc_auc --estimator_list '["lgbm"]' \\
    --estimator_kwargs '{"n_jobs": 4, "n_concurrent_trials": 5}' --seed 1

  # the same job as YAML, with overrides (YAML < flags < key=value)
  dltune automl configs/automl_lgbm.yaml time_budget=60 seed=2

  # start from an earlier job's best configs; replace a finished task directory
  dltune automl configs/automl_lgbm.yaml --warm_start ./outputs/task_123456 --task_id task_2 --overwrite

  # score new data with a saved model
  dltune automl predict --model ./outputs/task_123456 --data new.parquet --out scored.parquet

CONFIG.yaml is the first positional argument; key=value overrides may follow anywhere.
estimator_kwargs keys that are settings above (n_jobs, n_concurrent_trials, eval_method, ...)
set those settings; the other keys are fixed parameters of every estimator.
Bad input exits with code 2 and one line naming the problem.
"""

PREDICT_FLAGS = ("model", "data", "out")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("items", nargs="*", metavar="CONFIG.yaml | key=value | predict",
                        help="optional YAML config, then key=value overrides; or 'predict' to score data with a saved model")
    job = parser.add_argument_group("job settings (each is also a YAML key)")
    types = get_type_hints(AutoMLConfig)
    for key, type_name, default, text in describe(AutoMLConfig):
        help_text = f"{text}; {type_name} (default: {default})"
        if types[key] is bool:
            job.add_argument(f"--{key}", nargs="?", const="true", metavar="true|false", help=help_text)
        else:
            job.add_argument(f"--{key}", help=help_text)
    job.add_argument("--overwrite", action="store_true", help="replace output_path/task_id if it holds a finished job")
    job.add_argument("--quiet", action="store_true", help="print nothing but errors (job.log still records everything)")
    job.add_argument("--debug", action="store_true", help="show tracebacks")
    scoring = parser.add_argument_group("dltune automl predict")
    scoring.add_argument("--model", help="output directory of a finished job (model.pkl, summary.json)")
    scoring.add_argument("--data", help="parquet/CSV file, directory or glob to score")
    scoring.add_argument("--out", help="parquet file to write: prediction, proba_<class> columns and the label when present")


def add_parser(subparsers: Any) -> None:
    """Register ``automl`` on the main CLI's subparsers object."""
    parser = subparsers.add_parser(
        "automl", help="tabular AutoML with FLAML (classification, regression), trials in parallel on Ray",
        description="Search models and hyperparameters for a tabular dataset with FLAML and write the best model, configs, metrics and predictions.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    _configure(parser)


def _given(args: argparse.Namespace, names: list[str] | tuple[str, ...]) -> list[str]:
    return [name for name in names if getattr(args, name, None) is not None]


def _predict(args: argparse.Namespace, extra: list[str]) -> int:
    from dltune.automl.predict import predict

    stray = extra + [f"--{name}" for name in _given(args, field_names())]
    if stray:
        raise ConfigError(f"predict takes only --model, --data and --out, not {' '.join(stray)}")
    missing = [f"--{name}" for name in PREDICT_FLAGS if getattr(args, name) is None]
    if missing:
        raise ConfigError(f"predict needs {', '.join(missing)} (dltune automl predict --model DIR --data PATH --out PATH)")
    rows = predict(args.model, args.data, args.out)
    if not args.quiet:
        print(f"predictions: {rows} rows written to {storage.redact(args.out)}")
    return 0


def _items(args: argparse.Namespace) -> list[str]:
    """Positional items; a main CLI using parse_known_args passes later ones as ``args.overrides``."""
    items = [*args.items, *getattr(args, "overrides", [])]
    for item in items:
        if item.startswith("-"):
            name = item.lstrip("-").split("=", 1)[0]
            raise ConfigError(f"unknown flag '{item}'{closest(name, [*field_names(), *PREDICT_FLAGS, 'overwrite', 'quiet'])}")
    return items


def config_from_args(args: argparse.Namespace) -> AutoMLConfig:
    """The job config from CONFIG.yaml, the flags and key=value overrides of a parsed command line."""
    stray = [f"--{name}" for name in _given(args, PREDICT_FLAGS)]
    if stray:
        raise ConfigError(f"{', '.join(stray)} belong to 'dltune automl predict'")
    items = _items(args)
    yaml_path = items.pop(0) if items and "=" not in items[0] else None
    flags = {name: getattr(args, name) for name in _given(args, field_names())}
    return build_config(yaml_path, flags, items)


def run(args: argparse.Namespace) -> int:
    """Run ``dltune automl``; bad input raises UserError (exit code 2 in the main CLI)."""
    items = _items(args)
    if items[:1] == ["predict"]:
        return _predict(args, items[1:])
    cfg = config_from_args(args)

    from dltune.automl.job import (
        run_job,  # imports pandas/pyarrow; FLAML and Ray load when the search starts
    )

    run_job(cfg, overwrite=args.overwrite, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="dltune automl", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    _configure(_parser)
    _args, _rest = _parser.parse_known_args()
    _args.overrides = _rest  # as the main CLI passes them
    try:
        sys.exit(run(_args))
    except UserError as exc:
        if _args.debug:
            traceback.print_exc()
        print(f"dltune: error: {storage.redact(str(exc))}", file=sys.stderr)
        sys.exit(2)
