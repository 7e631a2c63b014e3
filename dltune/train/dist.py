"""Process-group set-up from the environment (torchrun, Ray Train or a single process)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from dltune.config import Config
from dltune.errors import ConfigError

# torch is imported only when a process needs it (a GPU, a process group, a tensor), so a
# training function that never touches torch does not pay for its import.


@dataclass
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: str  # "cpu" or "cuda:N"
    initialized_here: bool
    ddp: bool = False  # train under DistributedDataParallel (several processes, or any torchrun launch)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def wants_cuda(cfg: Config) -> bool:
    return cfg.train.device == "cuda" or (cfg.train.device == "auto" and cfg.scaling.use_gpu)


def no_gpu(cfg: Config) -> ConfigError:
    key = "train.device" if cfg.train.device == "cuda" else "scaling.use_gpu"
    return ConfigError(f"{key}: needs a GPU; none found (set scaling.use_gpu=false or train.device=cpu)")


def pick_device(cfg: Config, local_rank: int) -> str:
    if not wants_cuda(cfg):
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise no_gpu(cfg)
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return f"cuda:{index}"


def setup(cfg: Config) -> DistInfo:
    """Join the process group described by RANK / WORLD_SIZE / LOCAL_RANK.

    Ray Train has already initialised it in its workers; torchrun has only set
    the environment, so we initialise (nccl on GPU, gloo on CPU). A single
    process whose training function uses torch gets a one-rank group.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg, local_rank)
    # Under torchrun even one process joins a group (and trains under DDP), so a
    # one-GPU launch check exercises the real backend.
    torchrun = "TORCHELASTIC_RUN_ID" in os.environ
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "torch" not in sys.modules and world == 1 and not torchrun:
        return DistInfo(0, 1, 0, device, False)  # no torch loaded: no process group can exist
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        return DistInfo(dist.get_rank(), world, local_rank, device, False, world > 1 or torchrun)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if world > 1 or torchrun:
        dist.init_process_group(backend=backend)
        return DistInfo(dist.get_rank(), world, local_rank, device, True, True)
    if not dist.is_available():
        return DistInfo(0, 1, 0, device, False)
    # One process still gets a one-rank group (an in-memory store, no port), as a one-worker
    # Ray Train run does, so a ported script's DistributedSampler, all_reduce and
    # DistributedDataParallel run unchanged. Destroyed again in teardown.
    dist.init_process_group(backend=backend, store=dist.HashStore(), rank=0, world_size=1)
    return DistInfo(0, 1, 0, device, True)


def teardown(info: DistInfo) -> None:
    if info.initialized_here:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def all_sum(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sum of ``values`` over all ranks."""
    if info.world == 1:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def gather(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if info.world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out
