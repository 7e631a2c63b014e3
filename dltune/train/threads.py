"""How many threads torch may use in one training process."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from dltune.config import Config, reserved_cpus


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def local_threads(cfg: Config) -> int:
    """scaling.cpus_per_worker, or this machine's cores shared by the training processes on it
    (torchrun's LOCAL_WORLD_SIZE): torch's default of every core per process oversubscribes."""
    if cfg.scaling.cpus_per_worker is not None:
        return max(1, int(cfg.scaling.cpus_per_worker))
    return max(1, machine_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def trial_threads(cfg: Config) -> int:
    """A Tune trial's threads: the CPUs Ray reserved for it, so concurrent trials share the cores."""
    return max(1, int(reserved_cpus(cfg.scaling)))


def cap_worker_threads(threads: int) -> None:
    """In a worker process of ours (a Tune trial's), for its life: torch's threads now, or, before
    anything imported torch (a plain objective may never do so), the OMP_NUM_THREADS torch
    reads at import. Concurrent trials then share the cores instead of each taking all."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set for the duration, then put back (a call leaves no trace)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
