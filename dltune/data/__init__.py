"""Datasets by name. Each builder returns this process's training and validation batches.

Image datasets are small enough to hold per process and are split between
ranks sample by sample; tabular data is split by file / row group so that no
process reads the whole table.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from dltune.config import DataConfig
from dltune.data.batches import ShardedOrder

Task = Literal["multiclass", "binary", "regression"]


@dataclass
class DataSpec:
    """What a model needs to know about its inputs and outputs."""

    kind: Literal["image", "tabular", "dense"]  # dense: one flat feature tensor (a user dataset's)
    task: Task
    num_outputs: int
    input_shape: tuple[int, ...] = ()  # images: (C, H, W)
    num_dense: int = 0  # tabular: dense features
    num_sparse: int = 0  # tabular: sparse columns
    hash_buckets: int = 0
    label_names: list[str] = field(default_factory=list)


@dataclass
class Datasets:
    train: ShardedOrder
    val: ShardedOrder
    spec: DataSpec
    # True when the split between ranks happened at read time (tabular): steps
    # per epoch may then differ between ranks and the loop evens them out.
    pre_sharded: bool = False


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
