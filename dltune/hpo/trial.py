"""What runs inside one Tune trial.

Single-worker trials call the training loop right here (no Train controller,
about a second of start-up). Multi-worker trials build a Ray Train
TorchTrainer (the Train V2 driver pattern) and forward each epoch's metrics and
checkpoint to Tune, so schedulers (ASHA, PBT) see them and PBT can copy them.
"""
from __future__ import annotations

import copy
import queue
import threading
import uuid
from typing import Any

import numpy as np

from dltune import schema, storage
from dltune.config import Config, from_dict
from dltune.hpo.report_check import check_report, required_metrics
from dltune.launch.ray_checkpoint import checkpoint_dir, load_ray_checkpoint, ray_storage_path
from dltune.launch.ray_cluster import worker_resources
from dltune.launch.ray_errors import in_worker, raise_root_cause
from dltune.launch.ray_train import RayTrainSession
from dltune.launch.user_code import UserCode
from dltune.train.loop import train_loop
from dltune.train.session import Session
from dltune.train.threads import cap_worker_threads, trial_threads

FORWARD_POLL_S = 0.5
TRAIN_RUNS = "train_runs"  # Ray Train's own copies of multi-worker trials' checkpoints, inside the experiment
WORKER_RESTARTS = "worker_restarts"  # metric: worker-group restarts inside the trial's current Train run


def trial_config(base: dict[str, Any], overrides: dict[str, Any]) -> Config:
    """The base config with one trial's sampled values put in by dotted key."""
    mapping = copy.deepcopy(base)
    for key, value in overrides.items():
        schema.set_dotted(Config, mapping, key, plain(value))
    return from_dict(mapping)


def plain(value: Any) -> Any:
    """Searchers hand back numpy scalars (BOHB's choices, for one); the config wants Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class TuneSession(Session):
    """Reports each epoch to Tune with a checkpoint when one is due; resumes from Tune's checkpoint."""

    def resume_state(self, map_location: str) -> dict[str, Any] | None:
        import ray.tune

        ckpt = ray.tune.get_checkpoint()
        return load_ray_checkpoint(ckpt, map_location) if ckpt is not None else None

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        import ray.tune

        check_report(metrics, required_metrics(self.cfg))
        if state is None:
            ray.tune.report(metrics)
            return
        with checkpoint_dir(state) as tmp:
            ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(tmp))


def single_worker_trial(config: dict[str, Any], base: dict[str, Any], code: UserCode) -> None:
    fn = code.load()
    cfg = trial_config(base, config)
    cap_worker_threads(trial_threads(cfg))
    in_worker(lambda: train_loop(cfg, TuneSession(cfg), fn))


def tune_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker of a multi-worker trial."""
    import ray.train

    cfg = from_dict(loop_config["config"])
    rank = ray.train.get_context().get_world_rank()
    fn = loop_config["code"].load()
    in_worker(lambda: train_loop(cfg, RayTrainSession(cfg, rank, Session(cfg, rank), loop_config["initial_checkpoint"]), fn))


def _forwarding_callback(channel: Any) -> Any:
    from ray.train.v2.api.callback import UserCallback

    class ForwardToTune(UserCallback):
        """Runs in the Train controller: passes rank 0's metrics and checkpoint to the trial,
        with how often the worker group was restarted from a checkpoint after a failure."""

        def __init__(self) -> None:
            self.worker_failures = 0

        def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
            self.worker_failures += 1

        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            import ray

            # The controller's own handle rides along so the trial can abort the run (see below).
            forwarded = {**metrics[0], WORKER_RESTARTS: self.worker_failures}
            channel.put((forwarded, checkpoint, ray.get_runtime_context().current_actor))

    return ForwardToTune()


def multi_worker_trial(config: dict[str, Any], base: dict[str, Any], code: UserCode) -> None:
    import ray
    import ray.tune
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    cfg = trial_config(base, config)
    channel = Queue(actor_options={"num_cpus": 0})
    trial_id = ray.tune.get_context().get_trial_id()
    # A fresh Train run each time Tune (re)starts the trial: a run of the same name would resume from
    # its own latest checkpoint, not from the one Tune hands over (a PBT donor's, or the last it kept).
    run_name = f"train_{trial_id}_{uuid.uuid4().hex[:8]}"
    runs_dir = storage.join(cfg.output.dir, cfg.output.experiment, TRAIN_RUNS)
    trainer = TorchTrainer(
        tune_worker,
        train_loop_config={"config": schema.to_mapping(cfg), "initial_checkpoint": ray.tune.get_checkpoint(), "code": code},
        scaling_config=ScalingConfig(num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu, resources_per_worker=worker_resources(cfg)),
        run_config=RunConfig(
            name=run_name,
            storage_path=ray_storage_path(runs_dir),
            callbacks=[_forwarding_callback(channel)],
            failure_config=FailureConfig(max_failures=cfg.scaling.max_failures),
        ),
    )
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the trial thread below
            outcome["error"] = exc

    runner = threading.Thread(target=fit, name="dltune-train-driver", daemon=True)
    runner.start()
    controller = None
    needed = required_metrics(cfg)
    try:
        while runner.is_alive() or not channel.empty():
            try:
                metrics, ckpt, controller = channel.get(timeout=FORWARD_POLL_S)
            except queue.Empty:
                continue
            check_report(metrics, needed)
            ray.tune.report(metrics, checkpoint=ckpt)  # raises SystemExit when Tune stops or pauses the trial
    finally:
        if runner.is_alive() and controller is not None:
            # Tune stopped this trial (ASHA, a PBT pause or exploit): end the Train run now, or its
            # worker group would keep holding the CPUs the next trial waits for.
            ray.kill(controller)
        channel.shutdown()
        discard_train_runs(storage.join(runs_dir, run_name))
    if "error" in outcome:
        raise_root_cause(outcome["error"])
    result = outcome.get("result")
    if result is not None and result.error is not None:
        raise_root_cause(result.error)


def discard_train_runs(path: str) -> None:
    """Tune has already copied every checkpoint it was given; Ray Train's own copies are spare.

    Each trial drops its run when it stops; a trial that Tune pauses is ended
    before it can, so the search sweeps the rest when it finishes.
    """
    try:
        storage.delete(path)
    except OSError:
        pass  # a killed worker may still be writing; leftovers only cost disk
