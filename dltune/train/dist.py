"""Process-group set-up from the environment (torchrun, Ray Train or a single process)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from dltune.config import Config
from dltune.errors import ConfigError


@dataclass
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    initialized_here: bool
    ddp: bool = False  # train under DistributedDataParallel (several processes, or any torchrun launch)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def wants_cuda(cfg: Config) -> bool:
    return cfg.train.device == "cuda" or (cfg.train.device == "auto" and cfg.scaling.use_gpu)


def no_gpu(cfg: Config) -> ConfigError:
    key = "train.device" if cfg.train.device == "cuda" else "scaling.use_gpu"
    return ConfigError(f"{key}: a GPU was requested but torch sees no CUDA device")


def pick_device(cfg: Config, local_rank: int) -> torch.device:
    if not wants_cuda(cfg):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise no_gpu(cfg)
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def setup(cfg: Config) -> DistInfo:
    """Join the process group described by RANK / WORLD_SIZE / LOCAL_RANK.

    Ray Train has already initialised it in its workers; torchrun has only set
    the environment, so we initialise (nccl on GPU, gloo on CPU).
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg, local_rank)
    # Under torchrun even one process joins a group (and trains under DDP), so a
    # one-GPU launch check exercises the real backend.
    torchrun = "TORCHELASTIC_RUN_ID" in os.environ
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        return DistInfo(dist.get_rank(), world, local_rank, device, False, world > 1 or torchrun)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 or torchrun:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return DistInfo(dist.get_rank(), world, local_rank, device, True, True)
    return DistInfo(0, 1, 0, device, False)


def teardown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sum of ``values`` over all ranks."""
    if info.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_min(value: int, info: DistInfo) -> int:
    if info.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def gather(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if info.world == 1:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out
