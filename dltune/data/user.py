"""A user's own torch Datasets for the built-in loop (``data.target``).

    def my_data(cfg: dltune.config.Config) -> dltune.TorchDatasets:
        return dltune.TorchDatasets(train=MyDataset("train"), val=MyDataset("val"),
                                    task="multiclass", num_outputs=10, input_shape=(1, 28, 28))

Each item is ``(input, target)``; ``input`` may be a tensor or a tuple of
tensors (passed to the model as separate arguments). Targets: class indices
(multiclass), 0/1 floats (binary, one column per output) or floats (regression).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from dltune import plugins
from dltune.config import Config
from dltune.data import DataSpec, Task
from dltune.data.batches import Batch
from dltune.errors import ConfigError

TASKS = ("multiclass", "binary", "regression")


@dataclass
class TorchDatasets:
    """What a ``data.target`` function returns: the datasets and what a model needs to know of them."""

    train: Dataset
    val: Dataset
    task: Task
    num_outputs: int
    input_shape: tuple[int, ...] = ()  # of one input (images: (C, H, W)); () when the model does not need it
    label_names: list[str] = field(default_factory=list)

    def spec(self) -> DataSpec:
        kind = "image" if len(self.input_shape) == 3 else "dense"
        return DataSpec(kind=kind, task=self.task, num_outputs=self.num_outputs, input_shape=tuple(self.input_shape), label_names=list(self.label_names))


def load_user_datasets(cfg: Config) -> TorchDatasets:
    """Call ``data.target`` with the config and check what came back."""
    fn = plugins.resolve_function("data.target", cfg.data.target)
    out = fn(cfg)
    if not isinstance(out, TorchDatasets):
        raise ConfigError(f"data.target: {cfg.data.target} returned {type(out).__name__}, not dltune.TorchDatasets")
    for name in ("train", "val"):
        if not isinstance(getattr(out, name), Dataset):
            raise ConfigError(f"data.target: {cfg.data.target} returned a {name} of type {type(getattr(out, name)).__name__}, not a torch Dataset")
    if out.task not in TASKS:
        raise ConfigError(f"data.target: task {out.task!r} is not one of {', '.join(TASKS)}")
    if out.num_outputs < 1:
        raise ConfigError(f"data.target: num_outputs must be >= 1, got {out.num_outputs}")
    return out


class LoaderBatches:
    """A DataLoader's batches in the built-in loop's form ((inputs, ...), target).

    The run context's sampler already reshuffles each epoch, so set_epoch here
    does nothing; ``sample_ids`` are the dataset indices this rank reads."""

    def __init__(self, loader: DataLoader, task: Task) -> None:
        self.loader = loader
        self.task = task
        self.iterable = isinstance(loader.dataset, IterableDataset)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffling is the run context's (prepare_loader)."""

    def __len__(self) -> int:
        if self.iterable:
            raise ConfigError("train.max_steps_per_epoch: the training dataset is iterable, so its length is unknown; set steps per epoch")
        return len(self.loader)

    @property
    def num_samples(self) -> int:
        sampler: Any = self.loader.sampler
        return len(sampler) if not self.iterable else 0

    def sample_ids(self) -> torch.Tensor | None:
        return None if self.iterable else torch.tensor(self.loader.sampler.indices(), dtype=torch.long)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            if not isinstance(batch, (list, tuple)) or len(batch) != 2:
                raise ConfigError("data.target: dataset items must be (input, target) pairs")
            x, y = batch
            inputs = tuple(x) if isinstance(x, (list, tuple)) else (x,)
            if self.task != "multiclass":
                y = y.float()
                if y.dim() == 1:
                    y = y.unsqueeze(1)
            yield inputs, y


def user_batches(data: TorchDatasets, prepare_loader: Callable[..., DataLoader], batch_size: int) -> tuple[LoaderBatches, LoaderBatches]:
    train = LoaderBatches(prepare_loader(data.train, batch_size=batch_size, shuffle=True), data.task)
    val = LoaderBatches(prepare_loader(data.val, batch_size=batch_size, shuffle=False), data.task)
    return train, val
