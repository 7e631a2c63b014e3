"""How prepare_loader splits a dataset between ranks (and DataLoader workers)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, Sampler, get_worker_info


class ShardSampler(Sampler[int]):
    """This rank's indices of a map-style dataset, reshuffled each epoch from (seed, epoch).

    Training (``drop_last``) cuts the order to a multiple of the world size so
    ranks see disjoint samples and take the same number of steps; evaluation
    keeps every sample once (no padding with repeats, unlike DistributedSampler).
    """

    def __init__(self, size: int, rank: int, world: int, shuffle: bool, seed: int, drop_last: bool) -> None:
        self.size, self.rank, self.world = size, rank, world
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        else:
            order = torch.arange(self.size)
        if self.drop_last:
            order = order[: self.size - self.size % self.world]
        return order[self.rank :: self.world].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return len(self.indices())


class ShardedIterable(IterableDataset):
    """An iterable dataset split between ranks and DataLoader workers.

    Item i goes to reader i % readers (readers = ranks x workers); the last
    incomplete round is dropped so every reader yields the same count and DDP
    ranks take the same number of steps.
    """

    def __init__(self, dataset: IterableDataset, rank: int, world: int) -> None:
        self.dataset, self.rank, self.world = dataset, rank, world

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        readers = self.world * workers
        me = self.rank * workers + worker_id
        round_items: list[Any] = []
        for item in self.dataset:
            round_items.append(item)
            if len(round_items) == readers:
                yield round_items[me]
                round_items = []
