"""In-memory batching: tensors are sliced into batches without a per-sample collate.

Every built-in dataset except imagefolder fits in memory per process, and
slicing a tensor by a permutation is an order of magnitude faster than a
DataLoader's per-item collate on small samples.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]


class ShardedOrder:
    """Which samples, in which order, one rank sees in one epoch.

    Shuffling is seeded by (seed, epoch), so a resumed run sees the same order.
    With ``world > 1`` each epoch's permutation is cut to a multiple of ``world``
    and rank r takes every world-th sample from position r, so ranks see
    disjoint samples and the same number of batches (no DDP hang).
    """

    def __init__(self, size: int, ids: torch.Tensor, batch_size: int, shuffle: bool, seed: int, rank: int, world: int) -> None:
        self.size = size
        self.ids = ids
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world = world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        n = self.size
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        if self.world > 1:
            # Training cuts to a multiple of world so every rank takes the same number of
            # steps; evaluation (no per-batch collectives) keeps every sample.
            usable = n - n % self.world if self.shuffle else n
            order = order[:usable][self.rank :: self.world]
        return order

    def sample_ids(self) -> torch.Tensor:
        """Stable ids of the samples this rank sees this epoch (for shard checks)."""
        return self.ids[self.indices()]

    def __len__(self) -> int:
        return (self.num_samples + self.batch_size - 1) // self.batch_size

    @property
    def num_samples(self) -> int:
        return len(self.indices())



class TensorBatches(ShardedOrder):
    """Batches sliced from in-memory ``inputs`` and ``labels``; ``transform`` acts on a whole image batch."""

    def __init__(
        self,
        inputs: tuple[torch.Tensor, ...],
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        ids: torch.Tensor | None = None,
    ) -> None:
        super().__init__(len(labels), ids if ids is not None else torch.arange(len(labels)), batch_size, shuffle, seed, rank, world)
        self.inputs = inputs
        self.labels = labels
        self.transform = transform

    def __iter__(self) -> Iterator[Batch]:
        order = self.indices()
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            xs = tuple(t[idx] for t in self.inputs)
            if self.transform is not None:
                xs = (self.transform(xs[0]), *xs[1:])
            yield xs, self.labels[idx]


class DatasetBatches(ShardedOrder):
    """Batches from a map-style dataset (decoded lazily, e.g. image files) through a DataLoader."""

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool, seed: int, rank: int, world: int, workers: int) -> None:
        size = len(dataset)  # type: ignore[arg-type]
        super().__init__(size, torch.arange(size), batch_size, shuffle, seed, rank, world)
        self.dataset = dataset
        self.workers = workers

    def __iter__(self) -> Iterator[Batch]:
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.dataset, self.indices().tolist()),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.workers,
            persistent_workers=False,
        )
        for x, y in loader:
            yield (x,), y
