"""What `dltune train` and `dltune check` verify before anything trains or Ray starts
(`dltune tune` adds its search plan: dltune.hpo.search_plan.preflight)."""
from __future__ import annotations

import math
import os
import sys

from dltune import plugins, storage
from dltune.config import Config
from dltune.errors import ConfigError
from dltune.hpo.report_check import required_metrics
from dltune.schema import near
from dltune.train import dist
from dltune.train.loop import TrainFn, resolve_train_fn

BUNDLED = ("digits", "synthetic")  # datasets that read no files
# What the built-in loop reports (dltune.train.builtin and .metrics), for every task; a test keeps them in step.
BUILTIN_METRICS = ("train_loss", "epoch_time_s", "samples_per_s", "lr", "val_loss", "val_acc", "val_auc", "val_logloss", "val_rmse", "val_mae")


def ray_cluster_given() -> bool:
    """RAY_ADDRESS is set or this process is already connected to a Ray: that cluster decides."""
    ray = sys.modules.get("ray")
    return bool(os.environ.get("RAY_ADDRESS")) or (ray is not None and ray.is_initialized())


def check_gpus(cfg: Config, on_ray: bool) -> None:
    """A GPU request on a machine whose torch sees none: refused here, not as an NCCL traceback
    from a local Ray that was told to invent GPUs. Work that runs on a given Ray cluster
    (``on_ray``: a search, or the ray launcher) is checked against it when joined."""
    if dist.wants_cuda(cfg) and not (on_ray and ray_cluster_given()):
        import torch

        if not torch.cuda.is_available():
            raise dist.no_gpu(cfg)
        needed = gpus_for_workers(cfg.scaling.num_workers, cfg.scaling.gpus_per_worker) if cfg.scaling.launcher == "ray" else 0
        if needed > torch.cuda.device_count():  # the ray launcher's local Ray gets these GPUs: no more than there are
            raise ConfigError(f"scaling.num_workers: {cfg.scaling.num_workers} workers x scaling.gpus_per_worker={cfg.scaling.gpus_per_worker:g} need {needed} GPUs; "
                              f"this machine has {torch.cuda.device_count()}")


def gpus_for_workers(workers: int, per_worker: float) -> int:
    """Whole GPUs that ``workers`` reservations of ``per_worker`` each need: a fraction packs only
    whole workers onto one GPU (5 x 0.4 needs 3, not 2)."""
    if per_worker <= 0:
        return 0
    if per_worker >= 1:
        return workers * math.ceil(per_worker)
    return math.ceil(workers / math.floor(1 / per_worker + 1e-9))


def check_metric(cfg: Config) -> None:
    """What a search reads off each report (tune.metric, a budget's cost metric) against what the
    built-in loop reports; a train.fn reports what it reports, checked as it does (hpo.report_check)."""
    if cfg.train.fn:
        return
    for key, metric in required_metrics(cfg):
        if metric in BUILTIN_METRICS:
            continue
        stems = [m for m in BUILTIN_METRICS if metric.startswith(m)]  # val_accuracy: val_acc, which spelling alone misses
        hint = f" (did you mean '{max(stems, key=len)}'?)" if stems else near(metric, BUILTIN_METRICS)
        raise ConfigError(f"{key}: the built-in loop reports no {metric!r}{hint}; it reports {', '.join(BUILTIN_METRICS)} (the val_ ones by task)")
    if cfg.train.eval_every > 1 and cfg.tune.metric.startswith("val_"):
        raise ConfigError(f"train.eval_every: a search reads tune.metric={cfg.tune.metric} from every epoch's report, but the loop validates "
                          f"every {cfg.train.eval_every} epochs; set train.eval_every=1")


def check_data_paths(cfg: Config) -> None:
    """Paths the data section names: they must exist, and a bundled dataset takes none."""
    if cfg.train.fn or cfg.data.target:
        return  # the user's code reads what it reads
    for key, path in (("data.path", cfg.data.path), ("data.val_path", cfg.data.val_path)):
        if not path:
            continue
        if cfg.data.name in BUNDLED:
            raise ConfigError(f"{key}: data.name={cfg.data.name} reads no files, so {storage.redact(path)} would be ignored; remove {key} or set data.name")
        if not any(c in path for c in "*?[") and not storage.exists(path):
            raise ConfigError(f"{key}: {storage.redact(path)} does not exist")


def check_run(cfg: Config, fn: TrainFn | None = None, search: bool = False) -> None:
    """What train, tune and check refuse alike before anything trains or Ray starts (``search``: tune's extras)."""
    # A torchrun rank runs the local launcher with the group's num_workers: the environment says so.
    if cfg.scaling.launcher == "local" and cfg.scaling.num_workers > 1 and "WORLD_SIZE" not in os.environ:
        raise ConfigError("scaling.num_workers: the local launcher runs one process; use scaling.launcher=torchrun or ray for more")
    resolve_train_fn(cfg, fn)
    for key, path in (("train.loss", cfg.train.loss), ("model.target", cfg.model.target), ("data.target", cfg.data.target)):
        if path:
            plugins.resolve_function(key, path)  # imported here: a typo fails now, not in every trial
    check_gpus(cfg, on_ray=search or cfg.scaling.launcher == "ray")
    check_data_paths(cfg)
    if search and fn is None:
        check_metric(cfg)
