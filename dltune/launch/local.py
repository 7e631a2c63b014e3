"""Run the training function in this process; under torchrun each rank runs this same function."""
from __future__ import annotations

from typing import Any

import torch.distributed

from dltune.config import Config
from dltune.train import dist
from dltune.train.loop import TrainFn, train_loop
from dltune.train.session import LocalSession, Session, experiment_dir, prepare_experiment_dir
from dltune.train.threads import local_threads, torch_threads


def run_local(cfg: Config, resume: bool = False, overwrite: bool = False, verbose: bool = True, fn: TrainFn | None = None) -> dict[str, Any]:
    """Train ``cfg`` here, on local_threads(cfg) torch threads. With WORLD_SIZE > 1 in the
    environment (torchrun), join the group first so that rank 0 can prepare the output
    directory before anyone reads it."""
    with torch_threads(local_threads(cfg)):
        return _run(cfg, resume, overwrite, verbose, fn)


def _run(cfg: Config, resume: bool, overwrite: bool, verbose: bool, fn: TrainFn | None) -> dict[str, Any]:
    info = dist.setup(cfg)
    try:
        if info.is_main:
            prepare_experiment_dir(experiment_dir(cfg), resume, overwrite)
        if info.world > 1:
            torch.distributed.barrier()
        session = LocalSession(cfg, info.rank, resume, verbose) if info.is_main else Session(cfg, info.rank, resume)
        summary = train_loop(cfg, session, fn)
        if info.world > 1:
            torch.distributed.barrier()  # no rank leaves the group while rank 0 still writes the outputs
        return summary
    finally:
        dist.teardown(info)
