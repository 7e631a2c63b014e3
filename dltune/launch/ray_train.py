"""Ray Train launcher: the same loop in TorchTrainer workers, on local Ray or RAY_ADDRESS."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from dltune import ray_logs, schema, storage
from dltune.config import Config, absolute_paths, from_dict
from dltune.errors import UserError
from dltune.launch.ray_checkpoint import checkpoint_dir, load_ray_checkpoint, ray_storage_path
from dltune.launch.ray_cluster import init_ray, worker_resources
from dltune.launch.ray_errors import in_worker, raise_root_cause
from dltune.launch.user_code import UserCode
from dltune.train.loop import TrainFn, train_loop
from dltune.train.session import KEEP_CHECKPOINTS, LocalSession, Session, experiment_dir, prepare_experiment_dir, read_summary

if TYPE_CHECKING:
    import torch

class RayTrainSession(Session):
    """Reports every epoch to Ray Train (with rank 0's checkpoint) and hands the
    rest to ``writer``: rank 0's LocalSession for `dltune train`, a silent
    Session inside a Tune trial. After a worker failure Ray restarts the group
    and ``resume_state`` continues from Ray Train's last checkpoint; a fresh
    group starts from ``initial_checkpoint`` (a Tune trial's, e.g. after a PBT
    exploit) or from the writer's own resume point."""

    def __init__(self, cfg: Config, rank: int, writer: Session, initial_checkpoint: Any = None) -> None:
        super().__init__(cfg, rank, writer.resume)
        self.writer = writer
        self.initial_checkpoint = initial_checkpoint
        self.progress = writer.progress

    def start(self, start_epoch: int) -> None:
        self.writer.start(start_epoch)

    def resume_state(self, map_location: str) -> dict[str, Any] | None:
        import ray.train

        ckpt = ray.train.get_checkpoint() or self.initial_checkpoint
        if ckpt is not None:
            return load_ray_checkpoint(ckpt, map_location, self.exp_dir)
        return self.writer.resume_state(map_location)

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> str | None:
        import ray.train

        kept = self.writer.report(metrics, state)
        if state is None or self.rank != 0:
            ray.train.report(metrics)
            return kept
        # Where the writer keeps the checkpoint already, Ray Train gets its name, not a second copy.
        with checkpoint_dir(state, kept) as tmp:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        return kept

    def export(self, model: torch.nn.Module, example: tuple[torch.Tensor, ...] | None) -> None:
        self.writer.export(model, example)

    def finish(self, summary: dict[str, Any]) -> None:
        self.writer.finish(summary)

    def close(self) -> None:
        self.writer.close()


def train_worker(loop_config: dict[str, Any]) -> None:
    import ray.train

    cfg = from_dict(loop_config["config"])
    rank = ray.train.get_context().get_world_rank()
    exp_dir = experiment_dir(cfg)
    ray_logs.train_worker_lines(os.path.join(exp_dir, ray_logs.RAY_LOG) if rank == 0 and not storage.is_remote(exp_dir) else None)
    resume = loop_config["resume"] or ray.train.get_checkpoint() is not None  # a restarted group continues the same directory
    writer = LocalSession(cfg, rank, resume, loop_config["verbose"]) if rank == 0 else Session(cfg, rank, resume)
    fn = loop_config["code"].load()
    in_worker(lambda: train_loop(cfg, RayTrainSession(cfg, rank, writer), fn))


def run_ray_train(cfg: Config, resume: bool = False, overwrite: bool = False, verbose: bool = True, fn: TrainFn | None = None) -> dict[str, Any]:
    cfg = absolute_paths(cfg)
    exp_dir = experiment_dir(cfg)
    prepare_experiment_dir(exp_dir, resume, overwrite)
    with ray_logs.into_experiment(exp_dir):
        _fit(cfg, exp_dir, resume, verbose, fn)
    summary = read_summary(exp_dir)
    if summary is None:
        raise UserError(f"Ray Train finished but wrote no summary.json to {exp_dir}")
    return summary


def _fit(cfg: Config, exp_dir: str, resume: bool, verbose: bool, fn: TrainFn | None) -> None:
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = worker_resources(cfg)
    # Locally, logical CPUs are raised to what the plan asks for: Ray's CPU count is a
    # scheduling budget, and a 2-core laptop must still run a 2-worker job.
    min_cpus = cfg.scaling.num_workers * resources["CPU"]
    min_gpus = cfg.scaling.num_workers * resources.get("GPU", 0)
    connected = init_ray(int(max(float(os.cpu_count() or 1), min_cpus) + 0.999), int(min_gpus + 0.999) if min_gpus else None,
                         log_to_driver=True, logging_level=logging.WARNING)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"config": schema.to_mapping(cfg), "resume": resume, "verbose": verbose, "code": UserCode.of(cfg, fn)},
        scaling_config=ScalingConfig(num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name="ray_train",
            storage_path=ray_storage_path(exp_dir),
            failure_config=FailureConfig(max_failures=cfg.scaling.max_failures),
            # Ray's checkpoints name rank 0's, and the newest of those is written (and an older one
            # deleted) before Ray records it: both keep the same number, at least two.
            checkpoint_config=CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
            # Ray Train's per-report and worker-group lines stay in its session logs; the
            # workers' own output (dltune's epoch lines from rank 0) still streams here,
            # their failures' tracebacks not (train_worker).
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
    )
    try:
        result = trainer.fit()
        if result.error is not None:
            raise result.error
    except Exception as exc:  # noqa: BLE001 - Ray Train's wrapper of a worker's failure
        ray_logs.RUN_LOG.error("the Ray Train run failed:\n%s", storage.redact(str(exc)))  # the workers' tracebacks, into ray.log
        raise_root_cause(exc)
    finally:
        if connected:
            import ray

            ray.shutdown()  # also stops the workers' log stream, so the error line comes last

