"""Datasets by name. Each builder returns this process's training and validation batches.

Image datasets are small enough to hold per process and are split between
ranks sample by sample; tabular data is split by file / row group so that no
process reads the whole table.
"""
from __future__ import annotations

from collections.abc import Callable

from dltune.config import DataConfig
from dltune.data.spec import DataSpec, Datasets, Task

__all__ = ["DataSpec", "Datasets", "Task", "Builder", "build_datasets"]

Builder = Callable[[DataConfig, int, int, int, int], Datasets]


def _registry() -> dict[str, Builder]:
    from dltune.data import images, synthetic, tabular

    return {
        "digits": images.digits,
        "cifar10": images.cifar10,
        "imagefolder": images.imagefolder,
        "tabular": tabular.tabular,
        "synthetic": synthetic.synthetic,
    }


def build_datasets(cfg: DataConfig, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> Datasets:
    """This process's share of the dataset named by ``cfg.name``."""
    return _registry()[cfg.name](cfg, batch_size, seed, rank, world)
