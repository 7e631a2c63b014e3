"""What `dltune train` and `dltune check` verify before anything trains or Ray starts
(`dltune tune` adds its search plan: dltune.hpo.search_plan.preflight)."""
from __future__ import annotations

import os
import sys

from dltune import storage
from dltune.config import Config
from dltune.errors import ConfigError
from dltune.train import dist
from dltune.train.loop import TrainFn, resolve_train_fn

BUNDLED = ("digits", "synthetic")  # datasets that read no files


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
    resolve_train_fn(cfg, fn)
    check_gpus(cfg, on_ray=search or cfg.scaling.launcher == "ray")
    check_data_paths(cfg)
