"""What every dataset builder returns: this process's batches and what a model needs to know."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
