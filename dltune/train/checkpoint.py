"""Training state to and from storage: atomic writes, ``weights_only`` loads."""
from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from dltune import storage
from dltune.config import OptimConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

CHECKPOINT_NAME = re.compile(r"epoch_(\d+)\.pt$")


def capture(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, epoch: int, extra: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to continue after ``epoch`` epochs exactly as an uninterrupted run,
    plus ``extra`` (the optimizer hyperparameters, the data spec and an example input,
    so a model can be rebuilt and exported from the checkpoint alone)."""
    import torch

    state: dict[str, Any] = {
        **extra,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, optim_cfg: OptimConfig) -> int:
    """Load ``state`` into the live objects, keeping ``optim_cfg``'s hyperparameters;
    returns the number of epochs already done."""
    import torch

    from dltune.train.optim import apply_hyperparameters

    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    apply_hyperparameters(optim_cfg, optimizer, scheduler, state.get("optim", {}))
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"].cpu())
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
    return int(state["epoch"])


def pack(epoch: int, state: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint file holds: the training function's dict and the epoch it was reported at."""
    return {"epoch": epoch, "state": state}


def to_bytes(state: dict[str, Any]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def from_bytes(data: bytes, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    import torch

    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


def save(state: dict[str, Any], path: str) -> None:
    storage.write_bytes(path, to_bytes(state))


def load(path: str, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    return from_bytes(storage.read_bytes(path), map_location)


def checkpoint_path(directory: str, epoch: int) -> str:
    return storage.join(directory, f"epoch_{epoch:04d}.pt")


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
    """(epoch, path) of the checkpoints in ``directory``, oldest first."""
    if not storage.exists(directory):
        return []
    found = []
    for path in storage.list_files(directory):
        m = CHECKPOINT_NAME.search(path)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)
