"""What dltune needs from Ray that Ray has no public switch for, in one place.

Each private name below, and why there is no public way (Ray 2.60):
- ``ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE``: Tune copies these driver
  variables (AWS credentials among them) into every trial's runtime env, which Ray's
  runtime-env agent logs in clear; no setting turns the copy off.
- ``ray.train._internal.session._TrainingResult`` and a trial's checkpoint manager's
  ``_latest_checkpoint_result`` / ``_checkpoint_results``: the checkpoint a trial goes on
  from. Tune offers no way to point a trial at another checkpoint: a PBT exploit hands over
  the donor's, which the donor then deletes, and a resumed experiment's saved state can name
  checkpoints older than the trial's newest, or deleted ones; and PBT's own save of a top trial
  books a checkpoint a second time, which the keep policy then deletes while it is in use
  (drop_duplicate_checkpoints; docs/ray_upstream.md).
- a trial's storage context (``ray.train._internal.storage.StorageContext``):
  ``experiment_driver_staging_path``, ``current_checkpoint_index`` and ``trial_dir_name``,
  with the trial's ``init_local_path()`` and its checkpoint manager's ``register_checkpoint``:
  a resumed trial goes on in the dir and from the checkpoints it really had, which the saved
  state can lag behind (dltune.hpo.experiment_state); Tune has no API for either.
- ``ray.train._internal.session._FutureTrainingResult`` and its ``resolve``: a checkpoint save
  PBT keeps in its population until it resolves; a saved population holds what it resolved to
  (dltune.ray_compat.scheduler_state), since the save outlives no driver.
- ``JsonLoggerCallback._restore_from_remote``: Ray's JSON logger copies a trial's
  result.json back from storage whenever the trial (re)starts from a checkpoint; that copy
  is only as new as the last experiment sync, so a PBT pause overwrote the lines logged
  since. No setting turns the copy off (see result_json_logger).
- ``Tuner._local_tuner``, its run config and its tune config: the callbacks a restored Tuner
  runs with, and the searcher it restored. ``Tuner.restore`` takes them from tuner.pkl, as the
  killed driver built them, with its paths (an experiment dir since moved, a remote search's
  temp dir since deleted); it takes no run config, and hands back no searcher.
- ``ResultGrid._experiment_analysis.trials``: the Trial objects behind the results, the only
  place a trial's retry count (``num_failures``) is kept.
- ``RAY_AIR_NEW_OUTPUT=0``: Ray Tune's legacy console output, which dltune silences with
  verbose=0 and replaces with its monitor; this variable is the only switch between the two.
- ``RAY_TRAIN_ENABLE_PREEMPTION_WATCHER`` (``ray.train.v2._internal.constants``): on a local
  Ray, which has no node to preempt, Ray Train's preemption watcher is one more actor process
  per worker group, and creating it prints a core-worker ERROR line (ray-project/ray#53727) on
  the user's console; the variable is its only switch.
- ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` (``ray.train.v2._internal.constants``): how often a
  Ray Train controller polls its workers, which is how soon it sees each step of a run's life;
  the variable is the only setting (see worker_environment).
- ``ray._private.services.canonicalize_bootstrap_address_or_die`` and the
  ``RAY_GCS_SERVER_PORT`` variable: the GCS address a worker needs, known before
  ``ray.init`` (a runtime env is fixed then); see dltune.launch.ray_cluster.

Scheduler and searcher subclasses that lean on private names live beside this module, in
``dltune.ray_compat.schedulers`` and ``dltune.ray_compat.optuna_search``, and the scheduler's
state across a resume in ``dltune.ray_compat.scheduler_state``, the searcher's history checked
after one in ``dltune.ray_compat.searcher_history`` (they import Ray when imported; this
module does not). Optuna's GPSampler with a constant liar for concurrent trials, which reads
the study as GPSampler does, is in ``dltune.ray_compat.optuna_gp``. What the AutoML job needs
of FLAML's internals (FLAML drives Ray Tune for its parallel trials) is in
``dltune.ray_compat.flaml_automl``.

``dltune.ray_compat.check.missing()`` lists what an installed Ray, Optuna or FLAML lacks of
all these and of the modules beside this one, so that an upgrade fails in one test.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from typing import Any

from dltune.storage import exists_on

GCS_PORT_VARIABLE = "RAY_GCS_SERVER_PORT"  # read by Ray when it starts a head node
PREEMPTION_WATCHER_VARIABLE = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"  # read by each Ray Train controller
HEALTH_CHECK_VARIABLE = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"  # read by each Ray Train controller

# Credentials Ray Tune copies from the driver's environment into every trial actor's runtime
# env, which Ray's runtime-env agent then writes, in clear, into the session's logs.
PROPAGATED_SECRETS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"})


@contextlib.contextmanager
def trials_without_driver_secrets() -> Iterator[None]:
    """Run Tune trials without the driver's credentials in their runtime env.

    Workers get credentials the way a cluster's nodes should: from their own
    environment (a Kubernetes Secret, the node's profile). A local Ray started
    by this process hands its environment down to its workers anyway. Ray
    reads the names from this set each time it registers a trainable, so it is
    narrowed for the duration and put back after.
    """
    from ray.tune.execution import class_cache

    names = class_cache.ENV_VARS_TO_PROPAGATE
    dropped = names & PROPAGATED_SECRETS
    names -= dropped
    try:
        yield
    finally:
        names |= dropped


def training_result(checkpoint: Any, metrics: dict[str, Any]) -> Any:
    """A checkpoint with the metrics it was reported with, as a trial's checkpoint manager keeps it."""
    from ray.train._internal.session import _TrainingResult

    return _TrainingResult(checkpoint, metrics)


def latest_checkpoint_result(trial: Any) -> Any:
    """What the trial goes on from when it next starts: a training_result, or None."""
    return trial.run_metadata.checkpoint_manager._latest_checkpoint_result


def go_on_from(trial: Any, result: Any) -> None:
    """Make ``result`` (a training_result) the checkpoint the trial next starts from."""
    trial.run_metadata.checkpoint_manager._latest_checkpoint_result = result


@functools.cache
def _pending_save_class() -> type:
    from ray.train._internal.session import _FutureTrainingResult

    return _FutureTrainingResult


def is_pending_save(obj: Any) -> bool:
    """Whether ``obj`` is a checkpoint save PBT scheduled and keeps until it resolves."""
    return isinstance(obj, _pending_save_class())


def saved_checkpoint(save: Any) -> Any:
    """The checkpoint a pending save resolved to, or None while it has not (or saved nothing)."""
    result = save.resolve(block=False)
    return result.checkpoint if result else None


def forget_checkpoints(trial: Any) -> None:
    """Empty the trial's checkpoint book-keeping, to register its checkpoints anew."""
    manager = trial.run_metadata.checkpoint_manager
    manager._checkpoint_results, manager._latest_checkpoint_result = [], None


def drop_duplicate_checkpoints(trial: Any) -> None:
    """Keep one entry per checkpoint dir in the trial's book-keeping, its newest. At a perturbation
    PBT saves a running top trial while Tune saves the same report's checkpoint (should_checkpoint):
    the dir is registered twice, and the keep policy deletes it when the older entry falls out,
    while the newer one, and PBT's population, still name it (a later exploit or restore fails,
    and the next pruning raises FileNotFoundError on the dir it deleted already)."""
    manager = trial.run_metadata.checkpoint_manager
    seen: set[str] = set()
    newest_first = []
    for result in reversed(manager._checkpoint_results):
        if result.checkpoint.path not in seen:
            seen.add(result.checkpoint.path)
            newest_first.append(result)
    manager._checkpoint_results = newest_first[::-1]


def drop_missing_checkpoints(trial: Any) -> None:
    """Drop the checkpoints gone from storage from the trial's book-keeping, its latest aside.
    The keep policy deletes a dir after the experiment state that names it was
    saved: a resumed trial's next pruning would raise FileNotFoundError on it, and Tune would log
    "Error handling checkpoint" and skip the rest of that save's handling."""
    manager = trial.run_metadata.checkpoint_manager
    manager._checkpoint_results = [r for r in manager._checkpoint_results
                                   if r is manager._latest_checkpoint_result or exists_on(r.checkpoint.filesystem, r.checkpoint.path)]


def register_checkpoint(trial: Any, checkpoint: Any, metrics: dict[str, Any]) -> None:
    """Add ``checkpoint``, reported with ``metrics``, to the trial's book-keeping as its newest
    (the keep policy prunes as Ray would)."""
    trial.run_metadata.checkpoint_manager.register_checkpoint(training_result(checkpoint, metrics))


def number_checkpoints_after(trial: Any, index: int) -> None:
    """The trial's next checkpoint dir is numbered after checkpoint_<index>, never onto it."""
    trial.storage.current_checkpoint_index = max(trial.storage.current_checkpoint_index, index)


def move_trial_dir(trial: Any, name: str) -> None:
    """Make ``name`` (a dir in the experiment dir) the trial's dir, on storage and locally."""
    trial.relative_logdir = trial.storage.trial_dir_name = name
    trial.init_local_path()


def stored_results(trial: Any) -> list[dict[str, Any]]:
    """The trial's result.json on storage (its ``storage`` names the filesystem and dir), one dict
    per line; a line a killed driver left torn is passed over, and no file gives none."""
    fs, path = trial.storage.storage_filesystem, f"{trial.storage.trial_fs_path}/result.json"
    try:
        with fs.open_input_stream(path) as f:
            lines = f.read().decode("utf-8").splitlines()
    except OSError:  # FileNotFoundError among them
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def staging_dir(trial: Any) -> str:
    """The dir on the driver's node where Ray stages the experiment state before copying it to storage."""
    return trial.storage.experiment_driver_staging_path


@functools.cache
def _result_json_logger_class() -> type:
    from ray.tune.logger import JsonLoggerCallback

    class ResultJsonLogger(JsonLoggerCallback):
        def _restore_from_remote(self, file_name: str, trial: Any) -> None:
            if not os.path.exists(os.path.join(trial.local_path, file_name)):
                super()._restore_from_remote(file_name, trial)

    return ResultJsonLogger


def result_json_logger() -> Any:
    """Ray's JSON result logger, fetching a trial's result.json from storage only when this
    driver has no copy of its own (a resumed experiment), so each file stays whole across
    PBT pauses and trial retries."""
    return _result_json_logger_class()()


def restored_callbacks(tuner: Any, callbacks: list[Any], kept: type) -> None:
    """Give a restored ``tuner`` this run's ``callbacks``, in their order (Tune hands each its saved
    state by position), except that a callback of type ``kept`` stays tuner.pkl's own: it shares
    objects with the rest of tuner.pkl (SchedulerState, the scheduler Tune restores)."""
    run_config = tuner._local_tuner.get_run_config()
    old = [c for c in run_config.callbacks or [] if isinstance(c, kept)]
    run_config.callbacks = [old[0] if isinstance(c, kept) and old else c for c in callbacks]


def restored_search_alg(tuner: Any) -> Any:
    """The search algorithm of a restored ``tuner``: the object Tune restores the saved searcher state into."""
    return tuner._local_tuner._tune_config.search_alg


def grid_trials(grid: Any) -> list[Any]:
    """The Trial objects of a ResultGrid, in the order of its results."""
    return grid._experiment_analysis.trials


def gcs_address(address: str) -> str:
    """The GCS ``host:port`` that a cluster address ("auto", "host:port") stands for."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    return canonicalize_bootstrap_address_or_die(address)


@contextlib.contextmanager
def environment(values: dict[str, str], keep_set: bool = False) -> Iterator[None]:
    """``values`` in os.environ for the block, each variable put back as it was after; with
    ``keep_set``, one the user has set already keeps the user's value."""
    previous = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if not (keep_set and previous[name] is not None):
            os.environ[name] = value
    try:
        yield
    finally:
        for name, old in previous.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def head_gcs_port(port: int) -> contextlib.AbstractContextManager[None]:
    """A local Ray started in this block puts its GCS on ``port``; the variable is put back after."""
    return environment({GCS_PORT_VARIABLE: str(port)})


def worker_environment(gcs: str) -> dict[str, str]:
    """The variables every worker of ours gets on any Ray: its GCS address, and how often a Ray
    Train controller polls its workers. Ray's 2 s default is paid at each step of a run's life
    (started, running, finished, shut down): about 6 s of a two-epoch run's 17 s here
    (bench/ray_train_poll.py), in every multi-worker trial of a search. A quarter second costs
    one tiny actor call per worker each time. A value in the user's environment is kept."""
    return {"RAY_ADDRESS": gcs, HEALTH_CHECK_VARIABLE: os.environ.get(HEALTH_CHECK_VARIABLE, "0.25")}


def local_worker_environment(gcs: str) -> dict[str, str]:
    """worker_environment's, and on a local Ray Ray Train's preemption watcher off unless the
    user's environment turns it on."""
    return {**worker_environment(gcs), PREEMPTION_WATCHER_VARIABLE: os.environ.get(PREEMPTION_WATCHER_VARIABLE, "0")}


def quiet_tune_output() -> contextlib.AbstractContextManager[None]:
    """For the block, Ray Tune's legacy console output and none of its automatic per-trial
    loggers: dltune's monitor replaces its tables and TensorBoard loggers, and dltune adds the
    JSON and CSV loggers itself. Ray reads both variables when a Tuner runs, and a local Ray
    started in the block hands them to its workers (a multi-worker trial's TorchTrainer reads
    the first). A variable the user has set keeps its value."""
    return environment({"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}, keep_set=True)


def missing_here() -> list[str]:
    """The private names above that the installed Ray lacks or has changed, each as 'where: name'."""
    import importlib

    from ray.train import CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.tune import ResultGrid, Tuner
    from ray.tune.impl.tuner_internal import TunerInternal
    from ray.tune.logger import JsonLoggerCallback

    gone = []
    for module, name in (("ray.tune.execution.class_cache", "ENV_VARS_TO_PROPAGATE"), ("ray.train._internal.session", "_TrainingResult"),
                         ("ray._private.services", "canonicalize_bootstrap_address_or_die")):
        if not hasattr(importlib.import_module(module), name):
            gone.append(f"{module}: {name}")
    train_constants = importlib.import_module("ray.train.v2._internal.constants")
    for name, variable in (("ENABLE_PREEMPTION_WATCHER_ENV_VAR", PREEMPTION_WATCHER_VARIABLE), ("HEALTH_CHECK_INTERVAL_S_ENV_VAR", HEALTH_CHECK_VARIABLE)):
        if getattr(train_constants, name, None) != variable:
            gone.append(f"ray.train.v2._internal.constants: {name} is no longer {variable}")
    if not gone and not isinstance(importlib.import_module("ray.tune.execution.class_cache").ENV_VARS_TO_PROPAGATE, set):
        gone.append("ray.tune.execution.class_cache: ENV_VARS_TO_PROPAGATE is no longer a set")
    if not callable(getattr(getattr(importlib.import_module("ray.train._internal.session"), "_FutureTrainingResult", None), "resolve", None)):
        gone.append("ray.train._internal.session._FutureTrainingResult: resolve")
    manager = _CheckpointManager(CheckpointConfig())
    gone += [f"ray.train._internal.checkpoint_manager._CheckpointManager: {name}"
             for name in ("_latest_checkpoint_result", "_checkpoint_results", "register_checkpoint") if not hasattr(manager, name)]
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial

    context = StorageContext.__init__.__code__.co_names
    gone += [f"ray.train._internal.storage.StorageContext: {name}" for name in ("current_checkpoint_index", "trial_dir_name") if name not in context]
    if not isinstance(getattr(StorageContext, "experiment_driver_staging_path", None), property):
        gone.append("ray.train._internal.storage.StorageContext: experiment_driver_staging_path")
    if not callable(getattr(Trial, "init_local_path", None)):
        gone.append("ray.tune.experiment.Trial: init_local_path")
    if "_local_tuner" not in getattr(Tuner, "__annotations__", {}) or not callable(getattr(TunerInternal, "get_run_config", None)):
        gone.append("ray.tune.Tuner: _local_tuner.get_run_config")
    if "_tune_config" not in TunerInternal.__init__.__code__.co_names:  # building one writes an experiment dir
        gone.append("ray.tune.impl.tuner_internal.TunerInternal: _tune_config")
    if not callable(getattr(JsonLoggerCallback, "_restore_from_remote", None)):
        gone.append("ray.tune.logger.JsonLoggerCallback: _restore_from_remote")
    if getattr(getattr(ResultGrid(_NoTrials()), "_experiment_analysis", None), "trials", None) != []:
        gone.append("ray.tune.ResultGrid: _experiment_analysis.trials")
    return gone


class _NoTrials:
    """Just enough of an ExperimentAnalysis for a ResultGrid."""

    trials: list[Any] = []
