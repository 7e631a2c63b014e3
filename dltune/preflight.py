"""What `dltune train` and `dltune check` verify before anything trains or Ray starts
(`dltune tune` adds its search plan: dltune.hpo.search_plan.preflight)."""
from __future__ import annotations

import os

from dltune import storage
from dltune.config import Config
from dltune.errors import ConfigError
from dltune.train import dist
from dltune.train.loop import TrainFn, resolve_train_fn

BUNDLED = ("digits", "synthetic")  # datasets that read no files


def check_gpus(cfg: Config) -> None:
    """A GPU request on a machine whose torch sees none: refused here, not as an NCCL traceback
    from a local Ray that was told to invent GPUs. A cluster (RAY_ADDRESS) is checked when joined."""
    remote_ray = cfg.scaling.launcher == "ray" and os.environ.get("RAY_ADDRESS")
    if dist.wants_cuda(cfg) and not remote_ray:
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


def check_run(cfg: Config, fn: TrainFn | None = None) -> None:
    resolve_train_fn(cfg, fn)
    check_gpus(cfg)
    check_data_paths(cfg)
