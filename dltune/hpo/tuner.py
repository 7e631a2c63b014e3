"""`dltune tune`: plan, start Ray, run Ray Tune over training runs; hpo.outputs writes the results.

Ray's storage path is output.dir and the experiment name output.experiment,
so the experiment directory is the same for Ray and for us, and `--resume`
finds it again after the driver died.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dltune import ray_compat, ray_logs, schema, storage
from dltune.config import Config
from dltune.errors import RunFailed, UserError
from dltune.hpo import algorithms, experiment_state, results
from dltune.hpo.exploits import OneEntryPerCheckpoint
from dltune.hpo.journal import FILE as JOURNAL, OptunaJournal
from dltune.hpo.live_report import LiveReport
from dltune.hpo.monitor import SearchMonitor
from dltune.hpo.outputs import TuneResult, plan_summary, write_outputs
from dltune.hpo.search_plan import SearchPlan, local_cluster_resources, make_plan, preflight
from dltune.hpo.trial import TRAIN_RUNS, discard_train_runs, multi_worker_trial, single_worker_trial
from dltune.launch.ray_cluster import init_ray, usable_resources
from dltune.launch.user_code import UserCode
from dltune.train.loop import TrainFn
from dltune.train.session import experiment_dir, prepare_experiment_dir


def start_ray(cfg: Config) -> dict[str, float]:
    """Join RAY_ADDRESS or start a local Ray (unless this process is connected already)."""
    import ray

    if not ray.is_initialized():
        res = local_cluster_resources(cfg)
        init_ray(int(res["CPU"]), int(res["GPU"]), log_to_driver=False, logging_level=logging.WARNING)
    return usable_resources(avoid_head=cfg.scaling.avoid_head)


def checkpoint_policy(cfg: Config, plan: SearchPlan) -> Any:
    """Keep each trial's best two checkpoints (export uses the best; Ray always keeps the
    latest for retries), but under PBT the most recent few: an exploit copies the donor's
    latest checkpoint, which must outlive the donor's next report."""
    from ray.tune import CheckpointConfig

    if algorithms.uses_checkpoint_exploits(plan.choice):
        return CheckpointConfig(num_to_keep=4)
    return CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=cfg.tune.metric, checkpoint_score_order=cfg.tune.mode)


def _trainable(plan: SearchPlan, base: dict[str, Any], trial_fn: Callable | None, fn: TrainFn | None) -> Any:
    from ray import tune

    resources = plan.resources.driver if plan.resources.uses_train_controller else plan.resources.worker
    if trial_fn is not None:
        return tune.with_resources(tune.with_parameters(trial_fn, base=base), dict(resources))
    trial = multi_worker_trial if plan.resources.uses_train_controller else single_worker_trial
    return tune.with_resources(tune.with_parameters(trial, base=base, code=UserCode.of(plan.cfg, fn)), dict(resources))


def _storage(exp_root: str) -> tuple[str, Any]:
    """Ray's storage_path and filesystem for output.dir (local path or a URI)."""
    if storage.is_remote(exp_root):
        fs, inner = storage.filesystem(exp_root)
        return inner, fs
    return os.path.abspath(exp_root), None


def run_search(cfg: Config, resume: bool = False, overwrite: bool = False, verbose: bool = True, trial_fn: Callable | None = None,
               fn: TrainFn | None = None) -> TuneResult:
    """Run the search described by ``cfg.tune`` over trials of ``fn`` (a Python function) or
    train.fn; ``trial_fn`` replaces the whole Tune trial (benchmarks compare raw trials)."""
    cfg = preflight(cfg, fn, trial_fn)
    exp_dir = experiment_dir(cfg)
    prepare_experiment_dir(exp_dir, resume, overwrite)
    remote = storage.is_remote(exp_dir)
    work = tempfile.mkdtemp(prefix="dltune-tune-") if remote else exp_dir  # a remote search's files, uploaded at its end
    try:
        with ray_logs.routed_to(os.path.join(work, ray_logs.RAY_LOG)), ray_compat.quiet_tune_output():
            out = _search(cfg, resume, verbose, trial_fn, fn, exp_dir, work)
    finally:
        if remote:
            shutil.rmtree(work, ignore_errors=True)
    if out.summary["status"] == "failed":
        raise RunFailed(storage.redact(out.summary["failures"]), out)
    return out


def _search(cfg: Config, resume: bool, verbose: bool, trial_fn: Callable | None, fn: TrainFn | None, exp_dir: str, work: str) -> TuneResult:
    from ray import tune
    from ray.tune import FailureConfig, RunConfig
    from ray.tune.logger import CSVLoggerCallback
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import Searcher
    from ray.tune.stopper import CombinedStopper

    from dltune.hpo.stoppers import ComputeBudget, StopAtMissingMetric
    from dltune.ray_compat.scheduler_state import SchedulerState
    from dltune.ray_compat.searcher_history import SearcherHistory

    started = time.time()
    cluster = start_ray(cfg)
    plan = make_plan(cfg, cluster)
    if verbose:
        print(f"dltune tune: {storage.redact(exp_dir)}\n{plan.describe()}", flush=True)
    else:
        for warning in plan.warnings():
            print(f"dltune: {warning}", file=sys.stderr)
    base = schema.to_mapping(cfg)
    if algorithms.uses_checkpoint_exploits(plan.choice):
        base["train"]["checkpoint_every"] = 1  # an exploit copies the latest checkpoint: keep one every epoch
    tb_local = os.path.join(work, "tensorboard")
    missing_metric = StopAtMissingMetric()
    stoppers = [missing_metric, *([ComputeBudget(plan.budget)] if plan.budget else [])]
    monitor = SearchMonitor(cfg.tune.metric, cfg.tune.mode, tb_local, cfg.tune.time_budget_s, plan.num_trials, verbose, budget=plan.budget,
                            started=started)
    storage_path, fs = _storage(cfg.output.dir)
    scheduler = algorithms.build_scheduler(plan.choice, cfg, plan.params)  # on resume, tuner.pkl's copy is the one used
    journal_path = os.path.join(work, JOURNAL)  # optuna-dashboard reads a local file: a remote search's is uploaded with the rest of work
    live = [] if not cfg.output.report else [
        OptunaJournal(journal_path, cfg.output.experiment, cfg.tune.metric, cfg.tune.mode, plan.params, cfg.train.epochs),
        LiveReport(exp_dir, cfg.output.report_every_s, plan_summary(cfg, plan), cfg.train.epochs,
                   (journal_path, storage.join(exp_dir, JOURNAL)) if storage.is_remote(exp_dir) else None)]
    guard = experiment_state.ExperimentStateGuard(exp_dir, verbose, judged_results=type(scheduler) is not FIFOScheduler)
    exploits = [OneEntryPerCheckpoint()] if algorithms.uses_checkpoint_exploits(plan.choice) else []
    # the guard first: the scheduler restored after it must find the checkpoints the guard deleted gone
    callbacks = [monitor, missing_metric, ray_compat.result_json_logger(), CSVLoggerCallback(), guard,
                 SchedulerState(scheduler, verbose), *exploits, *live]
    run_config = RunConfig(
        name=cfg.output.experiment,
        storage_path=storage_path,
        storage_filesystem=fs,
        stop=CombinedStopper(*stoppers),
        callbacks=callbacks,
        verbose=0,
        failure_config=FailureConfig(max_failures=cfg.tune.max_failures),
        checkpoint_config=checkpoint_policy(cfg, plan),
    )
    trainable = _trainable(plan, base, trial_fn, fn)
    if resume:
        completed_from = experiment_state.prepare_resume(exp_dir)
        if completed_from and verbose:
            print(f"resume: experiment state completed from the killed driver's staging copy ({completed_from})", flush=True)
    if resume and tune.Tuner.can_restore(exp_dir, storage_filesystem=fs):
        tuner = tune.Tuner.restore(exp_dir, trainable=trainable, resume_errored=True, storage_filesystem=fs,
                                   param_space=algorithms.param_space(plan.params, plan.choice))
        callbacks.append(SearcherHistory(ray_compat.restored_search_alg(tuner), verbose))
        ray_compat.restored_callbacks(tuner, callbacks, kept=SchedulerState)  # this run's paths, not the killed driver's
        if live and work != exp_dir and storage.exists(storage.join(exp_dir, JOURNAL)):
            Path(journal_path).write_bytes(storage.read_bytes(storage.join(exp_dir, JOURNAL)))  # the search's entries go on
    else:
        if resume:
            raise UserError(f"--resume: no Ray Tune experiment state at {storage.redact(exp_dir)}")
        rungs = algorithms.describe_rungs(scheduler, cfg) if verbose else None
        if rungs:
            print(rungs, flush=True)
        search_alg = algorithms.build_searcher(plan.choice, cfg, plan.resources.concurrency)
        tuner = tune.Tuner(
            trainable,
            param_space=algorithms.param_space(plan.params, plan.choice),
            tune_config=tune.TuneConfig(
                metric=cfg.tune.metric,
                mode=cfg.tune.mode,
                search_alg=search_alg,
                scheduler=scheduler,
                num_samples=cfg.tune.num_samples,
                # Tune wraps a Searcher in its ConcurrencyLimiter; a variant generator holds its own limit, and Tune would log it ignored
                max_concurrent_trials=plan.resources.concurrency if isinstance(search_alg, Searcher) else None,
                time_budget_s=cfg.tune.time_budget_s or None,
                reuse_actors=cfg.tune.reuse_actors and not plan.resources.uses_train_controller,
            ),
            run_config=run_config,
        )
    if live and verbose:
        print(f"watch it live: optuna-dashboard {journal_path}" + (f"; report.html is rewritten every {cfg.output.report_every_s:g} s"
                                                                  if cfg.output.report_every_s else ""), flush=True)
    try:
        with ray_compat.trials_without_driver_secrets():
            grid = tuner.fit()
    finally:
        for callback in live:
            callback.close()  # Tune closes them at the experiment's end; not if fit raised before
    if resume:
        for name in experiment_state.remove_abandoned_trial_dirs(exp_dir, [r.path for r in grid]):
            if verbose:
                print(f"resume: removed {name}, a trial the killed driver had started after its last saved state, which ran again", flush=True)
    missing = results.missing_metric(grid)
    if missing is not None:
        raise UserError(str(missing))
    elapsed = monitor.elapsed()  # a resumed search's killed drivers' time too, as Ray's time_budget_s counts it
    spent = results.budget_spent(grid, plan.budget) if plan.budget else None
    if spent is not None and spent >= plan.budget.total:
        cut_by = "compute_budget"
    else:
        cut_by = "time_budget" if cfg.tune.time_budget_s and elapsed >= cfg.tune.time_budget_s else None
    out = write_outputs(cfg, plan, grid, exp_dir, base, elapsed, cut_by, spent, verbose, os.path.isdir(tb_local), journal_path)
    discard_train_runs(storage.join(exp_dir, TRAIN_RUNS))
    if storage.is_remote(exp_dir):
        storage.upload_dir(work, exp_dir)
    return out


