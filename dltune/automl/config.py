"""The AutoML job config: one typed dataclass fed by YAML, command-line flags and k=v overrides.

Flags keep the names our users already have in their scripts (``--task_id``,
``--estimator_list '["lgbm"]'``, ``--estimator_kwargs '{"n_jobs": 4}'``), and
every flag is also a YAML key, so both forms build the same ``AutoMLConfig``.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from dltune.config import load_mapping
from dltune.errors import ConfigError
from dltune.schema import coerce, from_mapping, option, parse_override, set_dotted

Task = Literal["classification", "regression"]
Estimator = Literal[
    "lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "histgb", "kneighbor",
    "catboost", "sgd", "lrl1", "lrl2", "svc", "enet", "lassolars",
]
Metric = Literal[
    "auto", "accuracy", "roc_auc", "roc_auc_weighted", "roc_auc_ovr", "roc_auc_ovo",
    "roc_auc_ovr_weighted", "roc_auc_ovo_weighted", "log_loss", "f1", "micro_f1", "macro_f1", "ap",
    "r2", "rmse", "mae", "mse", "mape",
]
EvalMethod = Literal["auto", "holdout", "cv"]

REGRESSION_METRICS = frozenset({"auto", "r2", "rmse", "mae", "mse", "mape"})
# sklearn scores these from one probability column, so they only work with two classes.
BINARY_METRICS = frozenset({"roc_auc", "roc_auc_weighted", "f1", "ap"})
# ... and these need the full probability matrix of three or more classes.
MULTICLASS_METRICS = frozenset({"roc_auc_ovr", "roc_auc_ovo", "roc_auc_ovr_weighted", "roc_auc_ovo_weighted"})
CLASSIFICATION_ONLY = frozenset({"lrl1", "lrl2", "svc"})
REGRESSION_ONLY = frozenset({"enet", "lassolars"})

# FLAML fit() arguments that are also config keys: inside estimator_kwargs they set the key.
FIT_SETTINGS = frozenset({
    "task", "metric", "time_budget", "estimator_list", "n_jobs", "n_concurrent_trials",
    "eval_method", "n_splits", "early_stop", "sample", "ensemble", "seed",
})

_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class AutoMLConfig:
    task_id: str = option("", help="job name, required; outputs go to output_path/task_id/")
    train_data: str = option("", help="required; training table: parquet or CSV file, directory of part files or glob (local, hdfs://, webhdfs://, s3://)")
    label_col: str = option("label", help="label column")
    test_data: str | None = option(None, help="held-out table scored after the search; when unset, test_ratio of train_data is split off")
    feature_cols: list[str] | None = option(None, help="feature columns (unset: every column but the label)")
    test_ratio: float = option(0.2, help="share of train_data held out as test set when test_data is unset (stratified for classification)", gt=0.0, max=0.9)
    output_path: str = option("./outputs", help="where the task directory is written (local, hdfs://, webhdfs://, s3://)")
    task: Task = option("classification", help="classification (binary or multiclass) or regression")
    metric: Metric = option("auto", help="FLAML metric name; auto = roc_auc (binary), log_loss (multiclass), r2 (regression)")
    estimator_list: list[Estimator] = option(["lgbm", "xgboost", "rf", "extra_tree"], help="FLAML estimators to search, JSON list or comma separated")
    estimator_kwargs: dict[str, Any] = option({}, help="JSON object: FLAML fit settings named here (n_jobs, n_concurrent_trials, ...) set those keys; the rest are fixed estimator parameters")
    time_budget: float = option(60.0, help="search time in seconds", gt=0)
    n_concurrent_trials: int = option(1, help="trials run at once; > 1 runs them on Ray, capped by cluster CPUs // n_jobs", min=1)
    n_jobs: int = option(-1, help="threads per trial; -1 = all cores (one trial at a time) or cluster CPUs / n_concurrent_trials", min=-1)
    eval_method: EvalMethod = option("auto", help="validation during the search: auto, holdout or cv")
    n_splits: int = option(5, help="folds when eval_method is cv", min=2)
    early_stop: bool = option(False, help="stop before the budget once the search has converged")
    sample: bool = option(True, help="start trials on samples of the training data and grow them")
    ensemble: bool = option(False, help="stack the best estimators after the search")
    seed: int = option(1, help="seed for the search and the test split")
    warm_start: str | None = option(None, help="output directory of an earlier job; its best_config_per_estimator is tried first")
    ray_num_cpus: int | None = option(None, help="logical CPUs of the local Ray cluster started when n_concurrent_trials > 1 and RAY_ADDRESS is unset (unset: this machine's cores)", min=1)

    def validate(self) -> None:
        if not self.task_id:
            raise ConfigError("task_id: required (outputs go to output_path/task_id/)")
        if not _TASK_ID.match(self.task_id):
            raise ConfigError(f"task_id: {self.task_id!r} must be letters, digits, '.', '_' or '-' (it names a directory)")
        if not self.train_data:
            raise ConfigError("train_data: required")
        if not self.estimator_list:
            raise ConfigError("estimator_list: give at least one estimator")
        if self.n_jobs == 0:
            raise ConfigError("n_jobs: must be -1 (auto) or >= 1, got 0")
        if self.feature_cols is not None and self.label_col in self.feature_cols:
            raise ConfigError(f"feature_cols: contains the label column '{self.label_col}'")
        regression = self.task == "regression"
        if regression != (self.metric in REGRESSION_METRICS) and self.metric != "auto":
            raise ConfigError(f"metric: '{self.metric}' is not a {self.task} metric (use one of: {', '.join(sorted(_metrics_for(self.task)))})")
        wrong = CLASSIFICATION_ONLY if regression else REGRESSION_ONLY
        for name in self.estimator_list:
            if name in wrong:
                raise ConfigError(f"estimator_list: '{name}' does not support task {self.task}")
            if name == "catboost" and importlib.util.find_spec("catboost") is None:
                raise ConfigError("estimator_list: 'catboost' needs the catboost package (pip install catboost)")


def _metrics_for(task: str) -> set[str]:
    names = set(get_args(Metric))
    return names & REGRESSION_METRICS if task == "regression" else names - REGRESSION_METRICS


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(AutoMLConfig)]


def flag_value(name: str, raw: str) -> Any:
    """Turn one command-line string into the value its config key expects.

    Lists accept JSON (``'["lgbm", "rf"]'``) or comma separated names;
    ``estimator_kwargs`` must be a JSON object. Scalars stay strings and are
    converted by the schema, which names the flag on a bad value.
    """
    tp = get_type_hints(AutoMLConfig)[name]
    if tp == dict[str, Any]:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}: not valid JSON ({exc.msg} at char {exc.pos}): {raw!r}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a JSON object like '{{\"n_jobs\": 4}}', got {raw!r}")
        return value
    if _accepts_list(tp) and raw.lstrip().startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}: not a valid JSON list ({exc.msg}): {raw!r}") from None
    return raw


def _accepts_list(tp: Any) -> bool:
    if get_origin(tp) in (Union, types.UnionType):
        return any(_accepts_list(member) for member in get_args(tp))
    return get_origin(tp) is list


def _lift_fit_settings(layer: dict[str, Any]) -> dict[str, Any]:
    """Move config keys found in estimator_kwargs (n_jobs, n_concurrent_trials, ...) to the top level.

    Our users' scripts put FLAML fit settings and estimator parameters in the
    same JSON object. Within one source (YAML, flags, overrides) a key given
    both ways with different values is refused; across sources the later wins.
    """
    kwargs = layer.get("estimator_kwargs")
    if not isinstance(kwargs, dict):
        return layer
    layer, kwargs = dict(layer), dict(kwargs)
    hints = get_type_hints(AutoMLConfig)
    for key in [k for k in kwargs if k in FIT_SETTINGS]:
        value = kwargs.pop(key)
        if key in layer and coerce(layer[key], hints[key], key) != coerce(value, hints[key], f"estimator_kwargs.{key}"):
            raise ConfigError(f"{key}: given as {layer[key]!r} and as {value!r} in estimator_kwargs; keep one")
        layer[key] = value
    layer["estimator_kwargs"] = kwargs
    return layer


def _merge(base: dict[str, Any], layer: dict[str, Any]) -> None:
    """Later sources replace keys; estimator_kwargs objects are merged key by key."""
    for key, value in layer.items():
        if key == "estimator_kwargs" and isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value


def build_config(yaml_path: str | None, flags: dict[str, str], overrides: list[str]) -> AutoMLConfig:
    """YAML file, then command-line flags, then k=v overrides (later wins), checked once."""
    from_flags = {name: flag_value(name, raw) for name, raw in flags.items()}
    from_overrides: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(AutoMLConfig, from_overrides, key, value)
    mapping: dict[str, Any] = {}
    for layer in (load_mapping(yaml_path) if yaml_path else {}, from_flags, from_overrides):
        _merge(mapping, _lift_fit_settings(layer))
    return from_mapping(AutoMLConfig, mapping)
