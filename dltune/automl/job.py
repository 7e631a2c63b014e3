"""Run one AutoML job: check inputs, search with FLAML (on Ray when trials run in parallel), write outputs.

Order matters for what users see on failure: the config, the warm-start
source and both tables are checked before the task directory is created, and
summary.json is written last, so a directory without it never looks finished.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from dltune import storage
from dltune.automl.config import BINARY_METRICS, AutoMLConfig
from dltune.automl.data import Tables, load_tables
from dltune.automl.predict import parquet_bytes, prediction_frame
from dltune.automl.progress import (
    JobLog,
    TrialProgress,
    captured,
    ray_progress_callback,
    read_trial_log,
    redact_file,
)
from dltune.errors import ConfigError, UserError
from dltune.ray_compat import flaml_automl, trials_without_driver_secrets
from dltune.report import drawn
from dltune.schema import to_mapping
from dltune.train.threads import machine_cores

TRIAL_LOG = "flaml_trials.jsonl"
PROBA_METRICS = frozenset({"log_loss", "ap", "roc_auc", "roc_auc_weighted", "roc_auc_ovr", "roc_auc_ovo", "roc_auc_ovr_weighted", "roc_auc_ovo_weighted"})


def to_json(obj: Any) -> str:
    """Redacted, indented JSON; numpy scalars and arrays become plain numbers and lists."""
    return json.dumps(storage.redact(obj), indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n"


def resolve_metric(cfg: AutoMLConfig, y: pd.Series) -> str:
    """FLAML's 'auto' choice made explicit, so metrics.json and progress lines name the metric."""
    if cfg.metric != "auto":
        return cfg.metric
    if cfg.task == "regression":
        return "r2"
    return "roc_auc" if y.nunique() == 2 else "log_loss"


def metric_score(metric: str, loss: float) -> float:
    """FLAML minimises a loss; report the metric itself (1 - loss for metrics where higher is better)."""
    return float(loss if flaml_automl.is_min_metric(metric) else 1.0 - loss)


def test_score(automl: Any, task: str, metric: str, X: pd.DataFrame, y: pd.Series) -> float:
    """``metric`` of the fitted model on held-out rows, computed the way FLAML scores validation folds."""
    if task == "regression":
        return metric_score(metric, flaml_automl.metric_loss(metric, automl.predict(X), y.to_numpy()))
    # Class indices make string labels and the positive class (the second one) behave as in FLAML.
    index = {label: i for i, label in enumerate(automl.classes_)}
    y_true = y.map(index).to_numpy()
    if metric in PROBA_METRICS:
        y_pred = automl.predict_proba(X)
        if metric in BINARY_METRICS:
            y_pred = y_pred[:, 1]
    else:
        y_pred = pd.Series(np.asarray(automl.predict(X))).map(index).to_numpy()
    return metric_score(metric, flaml_automl.metric_loss(metric, y_pred, y_true, labels=list(range(len(index)))))


def load_warm_start(cfg: AutoMLConfig) -> dict[str, dict[str, Any]]:
    """best_config_per_estimator of an earlier job, for the estimators this job searches."""
    path = cfg.warm_start or ""
    source = path if path.endswith(".json") else storage.join(path, "best_config.json")
    try:
        previous = json.loads(storage.read_text(source)).get("best_config_per_estimator") or {}
    except storage.StorageError:
        raise ConfigError(f"warm_start: no best_config.json in {storage.redact(path)} (give the output directory of an earlier dltune automl job)") from None
    except (json.JSONDecodeError, AttributeError):
        raise ConfigError(f"warm_start: {storage.redact(source)} is not a best_config.json written by dltune automl") from None
    points = {}
    for name, config in previous.items():
        if name in cfg.estimator_list and config:
            # FLAML refuses a starting sample size when sampling is off.
            points[name] = {k: v for k, v in config.items() if cfg.sample or k != "FLAML_sample_size"}
    if not points:
        raise ConfigError(f"warm_start: {storage.redact(source)} has no best config for {', '.join(cfg.estimator_list)}")
    return points


def prepare_task_dir(task_dir: str, overwrite: bool) -> None:
    """Refuse to replace a finished job unless asked; clear leftovers of an unfinished one."""
    try:
        if storage.exists(storage.join(task_dir, "summary.json")) and not overwrite:
            raise UserError(f"{storage.redact(task_dir)} already holds a finished job (summary.json); pass --overwrite to replace it or pick another task_id")
        if storage.exists(task_dir):
            storage.delete(task_dir)
        storage.makedirs(task_dir)
    except storage.StorageError as exc:
        raise UserError(f"output_path: {exc}") from None


@dataclasses.dataclass
class Concurrency:
    requested: int
    trials: int  # trials that can actually run at once
    n_jobs: int  # CPUs each trial's estimator uses
    cpus: float  # the CPUs there are: this machine's, or the Ray cluster's
    asked_n_jobs: int
    on_ray: bool = False

    def describe(self) -> str:
        where = f"on Ray ({self.cpus:g} CPUs)" if self.on_ray else f"in this process ({self.cpus:g} CPUs)"
        text = f"concurrency: {self.trials} trial{'s' if self.trials > 1 else ''} at a time {where}, n_jobs={self.n_jobs} each"
        if self.trials < self.requested:
            text += f"; {self.requested} concurrent trials were asked for, but {self.cpus:g} CPUs hold {self.trials} of n_jobs={self.n_jobs}"
        if 0 < self.asked_n_jobs != self.n_jobs:
            text += f"; n_jobs={self.asked_n_jobs} capped at the {self.cpus:g} CPUs there are"
        return text


def plan_concurrency(requested: int, n_jobs: int, cpus: float, on_ray: bool = False) -> Concurrency:
    """Trials that can run at once on ``cpus`` when each takes n_jobs CPUs (-1: an equal share),
    with n_jobs capped at the CPUs there are."""
    share = n_jobs if n_jobs > 0 else max(1, int(cpus // requested))
    per_trial = max(1, min(share, int(cpus)))
    trials = max(1, min(requested, int(cpus // per_trial)))
    return Concurrency(requested, trials, per_trial, cpus, n_jobs, on_ray and trials > 1)


@contextlib.contextmanager
def concurrency(cfg: AutoMLConfig) -> Iterator[Concurrency]:
    """The trials that can run at once, with Ray connected while they run in parallel.

    Under ``ray job submit`` (or with RAY_ADDRESS set) this joins that cluster
    to count its CPUs; otherwise a local Ray of ray_num_cpus logical CPUs
    (default: this machine's cores) is started only when that many CPUs hold
    more than one trial. Only a Ray started here is shut down here.
    """
    requested = cfg.n_concurrent_trials
    in_process = dataclasses.replace(plan_concurrency(requested, cfg.n_jobs, float(machine_cores())), trials=1, on_ray=False)
    address = os.environ.get("RAY_ADDRESS") or None
    connected = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    local_cpus = float(cfg.ray_num_cpus or machine_cores())
    if requested == 1 or (address is None and not connected and plan_concurrency(requested, cfg.n_jobs, local_cpus).trials == 1):
        yield in_process
        return
    import ray

    if not connected:
        # Worker output would flood the driver; trial results are logged from the driver instead.
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address is None:
            options.update(address="local", num_cpus=int(local_cpus), include_dashboard=False)
        else:
            options["address"] = address
        ray.init(**options)
    try:
        plan = plan_concurrency(requested, cfg.n_jobs, float(ray.cluster_resources().get("CPU", 0)), on_ray=True)
        if plan.trials == 1 and not connected:
            ray.shutdown()
        yield plan if plan.trials > 1 else in_process
    finally:
        if not connected and ray.is_initialized():
            ray.shutdown()


def _estimator_params(cfg: AutoMLConfig) -> dict[str, Any] | None:
    """estimator_kwargs left after lifting fit settings: fixed (not searched) parameters of every estimator."""
    if not cfg.estimator_kwargs:
        return None
    return {name: {key: {"domain": value} for key, value in cfg.estimator_kwargs.items()} for name in cfg.estimator_list}


def _fit(cfg: AutoMLConfig, tables: Tables, metric: str, plan: Concurrency, stage: str, progress: TrialProgress,
         starting_points: dict[str, Any] | None) -> Any:
    from flaml import AutoML

    trial_log = os.path.join(stage, TRIAL_LOG)
    settings: dict[str, Any] = dict(
        task=cfg.task, metric=metric, time_budget=cfg.time_budget, estimator_list=list(cfg.estimator_list),
        n_jobs=plan.n_jobs, n_concurrent_trials=plan.trials, eval_method=cfg.eval_method, n_splits=cfg.n_splits,
        early_stop=cfg.early_stop, sample=cfg.sample, ensemble=cfg.ensemble, seed=cfg.seed,
        log_file_name=trial_log, log_type="all", custom_hp=_estimator_params(cfg),
        # verbose 3 logs FLAML's INFO lines to job.log; in parallel runs it would also
        # turn on Ray Tune's console tables, which add nothing to our progress lines.
        verbose=3 if plan.trials == 1 else 2,
    )
    if starting_points:
        settings["starting_points"] = starting_points
    automl = AutoML()
    if plan.trials > 1:
        ray_dir = tempfile.mkdtemp(prefix="dltune-ray-tune-")
        settings["use_ray"] = {"callbacks": [ray_progress_callback(progress)], "storage_path": ray_dir, "reuse_actors": True}
        try:
            with progress.running(), trials_without_driver_secrets():
                automl.fit(tables.X_train, tables.y_train, **settings)
        finally:
            shutil.rmtree(ray_dir, ignore_errors=True)
    else:
        with progress.running(follow=trial_log):
            automl.fit(tables.X_train, tables.y_train, **settings)
    # The progress callback only matters during fit and would make the model unpicklable.
    flaml_automl.forget_ray_settings(automl, plan.trials > 1)
    if automl.best_estimator is None:
        raise UserError(f"no trial finished within time_budget={cfg.time_budget:g}s; raise time_budget (details in job.log)")
    return automl


def _report_warm_start(log: JobLog, stage: str, starting_points: dict[str, Any]) -> dict[str, bool]:
    """Whether the first trial of each warm-started estimator used the previous best config."""
    first: dict[str, dict[str, Any]] = {}
    for record in read_trial_log(os.path.join(stage, TRIAL_LOG)):
        first.setdefault(record["learner"], record["config"])
    used = {}
    for name, point in starting_points.items():
        tried = first.get(name)
        hyper = {k: v for k, v in point.items() if k != "FLAML_sample_size"}
        used[name] = tried is not None and all(np.isclose(tried.get(k, np.nan), v) if isinstance(v, float) else tried.get(k) == v for k, v in hyper.items())
        log.say(f"warm start: first {name} configuration tried {'is' if used[name] else 'is NOT'} the previous best: {tried}")
    return used


def _write_outputs(automl: Any, cfg: AutoMLConfig, tables: Tables, metric: str, stage: str) -> dict[str, Any]:
    """Model, configs, metrics, predictions and importances into ``stage``; returns the metrics."""
    def put(name: str, data: bytes | str) -> None:
        path = os.path.join(stage, name)
        storage.write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)

    put("model.pkl", pickle.dumps(automl))
    booster = getattr(getattr(automl.model, "estimator", None), "booster_", None)  # absent for a stacked ensemble
    if automl.best_estimator == "lgbm" and booster is not None:
        put("model.lgbm.txt", booster.model_to_string())
    put("best_config.json", to_json({
        "best_estimator": automl.best_estimator,
        "best_config": automl.best_config,
        "best_config_per_estimator": automl.best_config_per_estimator,
        "best_loss_per_estimator": automl.best_loss_per_estimator,
    }))
    put("predictions.parquet", parquet_bytes(prediction_frame(automl, tables.X_test, cfg.task, tables.y_test, cfg.label_col)))
    importances, names = automl.feature_importances_, automl.feature_names_in_
    if importances is not None and names is not None and np.ndim(importances) == 1 and len(importances) == len(names):
        frame = pd.DataFrame({"feature": list(names), "importance": importances}).sort_values("importance", ascending=False)
        put("feature_importances.csv", frame.to_csv(index=False))
    trials = read_trial_log(os.path.join(stage, TRIAL_LOG))
    return {
        "metric": metric,
        "validation": metric_score(metric, automl.best_loss),
        "test": test_score(automl, cfg.task, metric, tables.X_test, tables.y_test),
        "test_source": tables.test_source,
        "best_estimator": automl.best_estimator,
        "trials": len(trials),
        "trials_per_estimator": {name: sum(r["learner"] == name for r in trials) for name in cfg.estimator_list},
        "time_to_best_s": automl.time_to_find_best_model,
        "train_rows": len(tables.y_train),
        "test_rows": len(tables.y_test),
    }


def _search(cfg: AutoMLConfig, tables: Tables, metric: str, stage: str, log: JobLog,
            starting_points: dict[str, Any] | None) -> dict[str, Any]:
    """Plan concurrency, fit, write the artifacts into ``stage``; returns metrics.json's content."""
    with captured(log), concurrency(cfg) as plan:
        log.say(plan.describe())
        progress = TrialProgress(log, metric, lambda loss: metric_score(metric, loss), cfg.time_budget)
        fit_started = time.time()
        automl = _fit(cfg, tables, metric, plan, stage, progress, starting_points)
        fit_seconds = time.time() - fit_started
        progress.report()
        metrics = _write_outputs(automl, cfg, tables, metric, stage)
        if starting_points:
            metrics["warm_start_first_trial_is_previous_best"] = _report_warm_start(log, stage, starting_points)
    metrics.update(time_budget_s=cfg.time_budget, fit_time_s=round(fit_seconds, 2), concurrent_trials=plan.trials, n_jobs=plan.n_jobs)
    log.say(f"done: validation {metric} {metrics['validation']:.4f}, test {metric} {metrics['test']:.4f}, "
            f"best estimator {metrics['best_estimator']}, {metrics['trials']} trials in {fit_seconds:.0f}s")
    return metrics


def run_job(cfg: AutoMLConfig, overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Run the job described by ``cfg``; returns summary.json's content."""
    started = time.time()
    starting_points = load_warm_start(cfg) if cfg.warm_start else None
    tables = load_tables(cfg)
    metric = resolve_metric(cfg, tables.y_train)
    task_dir = storage.join(cfg.output_path, cfg.task_id)
    prepare_task_dir(task_dir, overwrite)
    # Remote outputs are staged locally (FLAML writes its trial log with open()) and uploaded at the end.
    stage = task_dir if not storage.is_remote(task_dir) else tempfile.mkdtemp(prefix="dltune-automl-")
    log = JobLog(os.path.join(stage, "job.log"), quiet)
    try:
        log.say(f"automl {cfg.task_id}: {cfg.task}, metric {metric}, estimators {', '.join(cfg.estimator_list)}, "
                f"time budget {cfg.time_budget:g}s, {len(tables.y_train)} train / {len(tables.y_test)} test rows")
        log.write(f"config:\n{to_json(to_mapping(cfg))}")
        for name, point in (starting_points or {}).items():
            log.say(f"warm start: {name} starts from the previous best {point}")
        try:
            metrics = _search(cfg, tables, metric, stage, log, starting_points)
        except Exception:
            log.write(f"failed:\n{traceback.format_exc()}")
            raise
        metrics["total_time_s"] = round(time.time() - started, 2)
        storage.write_text(os.path.join(stage, "metrics.json"), to_json(metrics))
        drawn(lambda: _report(cfg, metric, metrics, stage))
        log.close()
        redact_file(os.path.join(stage, TRIAL_LOG))
        summary = _summary(cfg, tables, metrics, stage, started)
        try:
            if stage != task_dir:
                storage.upload_dir(stage, task_dir)
            storage.write_text(storage.join(task_dir, "summary.json"), to_json(summary))
        except storage.StorageError as exc:
            raise UserError(f"output_path: {exc}") from None
    finally:
        log.close()
        if stage != task_dir:
            shutil.rmtree(stage, ignore_errors=True)
    if not quiet:
        print(f"outputs: {storage.redact(task_dir)}")
    return summary


def _report(cfg: AutoMLConfig, metric: str, metrics: dict[str, Any], stage: str) -> None:
    from dltune.report import automl as automl_report

    facts = [("task", cfg.task), ("estimators", ", ".join(cfg.estimator_list)), ("best estimator", metrics["best_estimator"]),
             ("trials", metrics["trials"]), ("concurrent trials", metrics["concurrent_trials"]), ("time budget", f"{cfg.time_budget:g} s"),
             (f"test {metric}", f"{metrics['test']:.4f}")]
    automl_report.write(stage, cfg.task_id, metric, read_trial_log(os.path.join(stage, TRIAL_LOG)), lambda loss: metric_score(metric, loss),
                        not flaml_automl.is_min_metric(metric), facts)


def _summary(cfg: AutoMLConfig, tables: Tables, metrics: dict[str, Any], stage: str, started: float) -> dict[str, Any]:
    import flaml

    return {
        "task_id": cfg.task_id,
        "status": "finished",
        "task": cfg.task,
        "label_col": cfg.label_col,
        "feature_cols": list(tables.X_train.columns),
        "metrics": metrics,
        "outputs": sorted([*os.listdir(stage), "summary.json"]),
        "config": to_mapping(cfg),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"flaml": flaml.__version__, "python": platform.python_version()},
    }
